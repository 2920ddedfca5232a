//! Microbenchmarks of the hot path, without the kernel: parsing messages,
//! and one whole `serve_one` (receive → parse → dispatch → encode → send)
//! over an in-memory channel that hands out a canned message and discards
//! replies. `cargo bench -p slabfuse --bench hot_path`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use divan::{Bencher, black_box};
use slabfuse::abi::{self, Opcode};
use slabfuse::channel::Channel;
use slabfuse::op::*;
use slabfuse::parse::{NAME_SCRATCH_BYTES, ParseContext, parse};
use slabfuse::pool::BackingRequest;
use slabfuse::*;
use zerocopy::IntoBytes;

fn main() {
    divan::main();
}

fn message(opcode: Opcode, nodeid: u64, args: &[&[u8]]) -> Vec<u8> {
    let len: usize = 40 + args.iter().map(|a| a.len()).sum::<usize>();
    let h = abi::fuse_in_header {
        len: u32::try_from(len).expect("small"),
        opcode: opcode as u32,
        unique: 2,
        nodeid,
        ..Default::default()
    };
    let mut m = h.as_bytes().to_vec();
    for a in args {
        m.extend_from_slice(a);
    }
    m
}

fn segments(msg: &[u8], block: usize) -> Vec<&[u8]> {
    let head = msg.len().min(80);
    let mut v = vec![&msg[..head]];
    v.extend(msg[head..].chunks(block));
    v
}

#[divan::bench]
fn parse_lookup(b: Bencher) {
    let m = message(Opcode::FUSE_LOOKUP, 1, &[b"some-file-name.txt\0"]);
    let segs = segments(&m, 1 << 20);
    let mut scratch = vec![0u8; NAME_SCRATCH_BYTES];
    let ctx = ParseContext::default();
    b.bench_local(|| {
        let r = parse(black_box(&segs), m.len(), &ctx, &mut scratch);
        black_box(r.is_ok())
    });
}

#[divan::bench]
fn parse_lookup_straddling_name(b: Bencher) {
    let name = [b'n'; 100];
    let m = message(Opcode::FUSE_LOOKUP, 1, &[&name, b"\0"]);
    let segs = segments(&m, 1 << 20);
    let mut scratch = vec![0u8; NAME_SCRATCH_BYTES];
    let ctx = ParseContext::default();
    b.bench_local(|| black_box(parse(black_box(&segs), m.len(), &ctx, &mut scratch).is_ok()));
}

#[divan::bench(args = [4096, 1 << 20, 16 << 20])]
fn parse_write(b: Bencher, size: usize) {
    let w = abi::fuse_write_in {
        size: u32::try_from(size).expect("fits"),
        ..Default::default()
    };
    let payload = vec![7u8; size];
    let m = message(Opcode::FUSE_WRITE, 2, &[w.as_bytes(), &payload]);
    let segs = segments(&m, 2 << 20);
    let mut scratch = vec![0u8; NAME_SCRATCH_BYTES];
    let ctx = ParseContext::default();
    b.bench_local(|| {
        let r = parse(black_box(&segs), m.len(), &ctx, &mut scratch);
        black_box(matches!(r, Ok((_, Operation::Write(_)))))
    });
}

#[divan::bench]
fn parse_setattr(b: Bencher) {
    let a = abi::fuse_setattr_in {
        valid: abi::FATTR_MODE | abi::FATTR_MTIME | abi::FATTR_SIZE,
        ..Default::default()
    };
    let m = message(Opcode::FUSE_SETATTR, 2, &[a.as_bytes()]);
    let segs = segments(&m, 1 << 20);
    let mut scratch = vec![0u8; NAME_SCRATCH_BYTES];
    let ctx = ParseContext::default();
    b.bench_local(|| black_box(parse(black_box(&segs), m.len(), &ctx, &mut scratch).is_ok()));
}

/// A channel whose first receive is INIT and every later one `message`;
/// replies are counted and dropped.
struct MemChannel {
    init: Vec<u8>,
    message: Vec<u8>,
    receives: AtomicU64,
    sent_bytes: AtomicU64,
}

impl Channel for MemChannel {
    fn receive(&self, bufs: &mut [rustix::io::IoSliceMut<'_>]) -> Result<usize, Errno> {
        let msg = if self.receives.fetch_add(1, Ordering::Relaxed) == 0 {
            &self.init
        } else {
            &self.message
        };
        let mut done = 0;
        for b in bufs.iter_mut() {
            let n = b.len().min(msg.len() - done);
            b[..n].copy_from_slice(&msg[done..done + n]);
            done += n;
            if done == msg.len() {
                break;
            }
        }
        Ok(done)
    }

    fn send(&self, bufs: &[rustix::io::IoSlice<'_>]) -> Result<usize, Errno> {
        let n: usize = bufs.iter().map(|b| b.len()).sum();
        self.sent_bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }

    fn clone_channel(&self) -> Result<Box<dyn Channel>, Errno> {
        Err(Errno::NOSYS)
    }
}

static DATA: [u8; 65536] = [b'd'; 65536];

/// Answers the benchmarked operations without allocating.
struct BenchFs;

impl Filesystem for BenchFs {
    fn lookup(&self, _: &Request, _: Lookup<'_>, reply: ReplyEntry<'_>) -> Replied {
        reply.entry(&Entry {
            node: NodeId(2),
            generation: 1,
            attr: Attr::default(),
            entry_ttl: Duration::from_secs(1),
            attr_ttl: Duration::from_secs(1),
        })
    }
    fn getattr(&self, _: &Request, _: GetAttr, reply: ReplyAttr<'_>) -> Replied {
        reply.attr(&Attr::default(), Duration::from_secs(1))
    }
    fn read(&self, _: &Request, op: Read, reply: ReplyData<'_>) -> Replied {
        let n = (op.size as usize).min(DATA.len());
        if op.node.0 == 2 {
            reply.data(&DATA[..n])
        } else {
            reply.fill(|w| w.put(&DATA[..n]).map_err(|_| Errno::IO))
        }
    }
    fn readdir(&self, _: &Request, op: ReadDir, mut reply: ReplyDirectory<'_>) -> Replied {
        for i in op.offset..10_000 {
            if !reply.add(i + 10, i + 1, FileType::RegularFile, b"a-typical-file-name") {
                break;
            }
        }
        reply.ok()
    }
}

/// A one-worker session over a [`MemChannel`] serving `message`, INIT done.
fn worker_for(message: Vec<u8>) -> (Session<BenchFs>, Worker<BenchFs>) {
    let init = abi::fuse_init_in {
        major: 7,
        minor: 45,
        flags: 0xffff_ffff,
        ..Default::default()
    };
    let config = Config {
        workers: 1,
        max_message: 1 << 20,
        max_pages_limit: Some(256),
        backing: BackingRequest::Thp,
        lock_memory: false,
        ..Config::default()
    };
    let channel = MemChannel {
        init: self::message(Opcode::FUSE_INIT, 0, &[init.as_bytes()]),
        message,
        receives: AtomicU64::new(0),
        sent_bytes: AtomicU64::new(0),
    };
    let session = Session::new(config, BenchFs, Box::new(channel)).expect("session");
    let mut worker = session.workers().pop().expect("a worker");
    worker.serve_one().expect("INIT");
    assert!(session.conn().is_some());
    (session, worker)
}

fn bench_serve(b: Bencher, message: Vec<u8>) {
    let (_session, mut worker) = worker_for(message);
    b.bench_local(|| black_box(worker.serve_one()));
}

#[divan::bench]
fn serve_lookup(b: Bencher) {
    bench_serve(
        b,
        message(Opcode::FUSE_LOOKUP, 1, &[b"some-file-name.txt\0"]),
    );
}

#[divan::bench]
fn serve_getattr(b: Bencher) {
    let g = abi::fuse_getattr_in::default();
    bench_serve(b, message(Opcode::FUSE_GETATTR, 2, &[g.as_bytes()]));
}

#[divan::bench(args = [4096, 65536])]
fn serve_read_zero_copy(b: Bencher, size: u32) {
    let r = abi::fuse_read_in {
        size,
        ..Default::default()
    };
    bench_serve(b, message(Opcode::FUSE_READ, 2, &[r.as_bytes()]));
}

#[divan::bench(args = [4096, 65536])]
fn serve_read_fill(b: Bencher, size: u32) {
    let r = abi::fuse_read_in {
        size,
        ..Default::default()
    };
    bench_serve(b, message(Opcode::FUSE_READ, 3, &[r.as_bytes()]));
}

#[divan::bench]
fn serve_readdir_4k(b: Bencher) {
    let r = abi::fuse_read_in {
        size: 4096,
        ..Default::default()
    };
    bench_serve(b, message(Opcode::FUSE_READDIR, 1, &[r.as_bytes()]));
}
