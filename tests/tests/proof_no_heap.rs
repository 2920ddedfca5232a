//! Proof: **no heap allocation while serving** — the runtime, driven over
//! every opcode it handles through the simulated kernel, allocates and frees
//! nothing once the session serves.
//!
//! A counting global allocator counts every allocation and deallocation made
//! by a daemon thread (the workers, and the thread that completes deferred
//! replies) after the "serving" mark. The simulated kernel's own side of each
//! channel call is excluded (it stands for the kernel), and so is the test's
//! client thread. The workload covers 16 MiB writes and reads, a 5000-entry
//! directory through READDIR and READDIRPLUS, xattrs of every size class,
//! rename and rename2, deferred replies, interrupts, pool exhaustion
//! (EAGAIN), malformed and unknown messages, FORGET and BATCH_FORGET.

// Test code: a panic here is a failed test, not a crashed daemon.
#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use slabfuse::abi::{self, Opcode};
use slabfuse::pool::BackingRequest;
use slabfuse::{Config, Errno, Session, WorkerExit};
use slabfuse_tests::sim::{self, SimKernel, cstr};
use slabfuse_tests::testfs::{self, StaticFs};
use zerocopy::IntoBytes;

static SERVING: AtomicBool = AtomicBool::new(false);
static ALLOCS: AtomicU64 = AtomicU64::new(0);
static FREES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static DAEMON: Cell<bool> = const { Cell::new(false) };
}

fn counted() -> bool {
    SERVING.load(Ordering::Relaxed)
        && DAEMON.try_with(|d| d.get()).unwrap_or(false)
        && !sim::in_kernel()
}

struct Counting;

// SAFETY: forwards every call to the system allocator unchanged; the
// counters are atomics and allocate nothing.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counted() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if counted() {
            FREES.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: as above, for `dealloc`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counted() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: as above, for `realloc`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn read(k: &mut SimKernel, node: u64, offset: u64, size: u32) -> u64 {
    let arg = abi::fuse_read_in {
        offset,
        size,
        ..Default::default()
    };
    k.request(Opcode::FUSE_READ, node, &[arg.as_bytes()])
}

/// Every opcode the runtime handles, once or more; asserts each answer.
fn workload(k: &mut SimKernel, fs: &StaticFs, completer: &Completer) {
    // Name operations.
    let u = k.request(Opcode::FUSE_LOOKUP, 1, &[&cstr(b"a")]);
    assert_eq!(k.expect_reply(u).error, 0);
    let long = cstr(&[b'q'; 200]);
    let u = k.request(Opcode::FUSE_LOOKUP, 1, &[&long]);
    assert_eq!(k.expect_reply(u).errno(), Some(Errno::NOENT));
    k.request(
        Opcode::FUSE_FORGET,
        2,
        &[abi::fuse_forget_in { nlookup: 1 }.as_bytes()],
    );
    let mut batch = abi::fuse_batch_forget_in { count: 3, dummy: 0 }
        .as_bytes()
        .to_vec();
    for n in [2u64, 3, 4] {
        batch.extend_from_slice(
            abi::fuse_forget_one {
                nodeid: n,
                nlookup: 1,
            }
            .as_bytes(),
        );
    }
    k.request(Opcode::FUSE_BATCH_FORGET, 0, &[&batch]);
    let u = k.request(
        Opcode::FUSE_GETATTR,
        2,
        &[abi::fuse_getattr_in::default().as_bytes()],
    );
    assert_eq!(k.expect_reply(u).error, 0);
    let sa = abi::fuse_setattr_in {
        valid: abi::FATTR_MODE | abi::FATTR_MTIME_NOW | abi::FATTR_SIZE,
        mode: 0o600,
        size: 5,
        ..Default::default()
    };
    let u = k.request(Opcode::FUSE_SETATTR, 2, &[sa.as_bytes()]);
    assert_eq!(k.expect_reply(u).error, 0);
    let u = k.request(Opcode::FUSE_READLINK, 20, &[]);
    assert_eq!(k.expect_reply(u).payload, b"target/of/the/link");
    let u = k.request(
        Opcode::FUSE_SYMLINK,
        1,
        &[&cstr(b"ln"), &cstr(&[b't'; 3000])],
    );
    assert_eq!(k.expect_reply(u).error, 0);
    let mk = abi::fuse_mknod_in {
        mode: 0o10644,
        ..Default::default()
    };
    let u = k.request(Opcode::FUSE_MKNOD, 1, &[mk.as_bytes(), &cstr(b"fifo")]);
    assert_eq!(k.expect_reply(u).error, 0);
    let md = abi::fuse_mkdir_in {
        mode: 0o755,
        umask: 0o22,
    };
    let u = k.request(Opcode::FUSE_MKDIR, 1, &[md.as_bytes(), &cstr(b"d")]);
    assert_eq!(k.expect_reply(u).error, 0);
    let u = k.request(Opcode::FUSE_UNLINK, 1, &[&cstr(b"fifo")]);
    assert_eq!(k.expect_reply(u).error, 0);
    let u = k.request(Opcode::FUSE_RMDIR, 1, &[&cstr(b"d")]);
    assert_eq!(k.expect_reply(u).errno(), Some(Errno::NOTEMPTY));
    let rn = abi::fuse_rename_in { newdir: 1 };
    let u = k.request(
        Opcode::FUSE_RENAME,
        1,
        &[rn.as_bytes(), &cstr(b"a"), &cstr(b"a2")],
    );
    assert_eq!(k.expect_reply(u).error, 0);
    let rn2 = abi::fuse_rename2_in {
        newdir: 1,
        flags: 1,
        padding: 0,
    };
    let u = k.request(
        Opcode::FUSE_RENAME2,
        1,
        &[rn2.as_bytes(), &cstr(b"a"), &cstr(b"b")],
    );
    assert_eq!(k.expect_reply(u).errno(), Some(Errno::EXIST));
    let ln = abi::fuse_link_in { oldnodeid: 2 };
    let u = k.request(Opcode::FUSE_LINK, 1, &[ln.as_bytes(), &cstr(b"hard")]);
    assert_eq!(k.expect_reply(u).error, 0);
    let cr = abi::fuse_create_in {
        flags: 0o102,
        mode: 0o100644,
        umask: 0o22,
        open_flags: 0,
    };
    let u = k.request(Opcode::FUSE_CREATE, 1, &[cr.as_bytes(), &cstr(b"new")]);
    assert_eq!(k.expect_reply(u).error, 0);
    let u = k.request(Opcode::FUSE_TMPFILE, 1, &[cr.as_bytes()]);
    assert_eq!(k.expect_reply(u).error, 0);

    // Open files.
    let op = abi::fuse_open_in {
        flags: 2,
        open_flags: 0,
    };
    let u = k.request(Opcode::FUSE_OPEN, 2, &[op.as_bytes()]);
    assert_eq!(k.expect_reply(u).error, 0);
    let data = vec![testfs::WRITE_BYTE; 16 << 20];
    let wr = abi::fuse_write_in {
        size: 16 << 20,
        ..Default::default()
    };
    let u = k.request(Opcode::FUSE_WRITE, 2, &[wr.as_bytes(), &data]);
    assert_eq!(
        k.expect_reply(u).parse::<abi::fuse_write_out>().size,
        16 << 20
    );
    let u = read(k, 2, 0, 16 << 20);
    assert_eq!(k.expect_reply(u).payload.len(), 16 << 20);
    let u = read(k, 3, 0, 16 << 20);
    assert_eq!(k.expect_reply(u).payload.len(), 16 << 20);
    let u = read(k, 3, 1, 100);
    assert_eq!(k.expect_reply(u).payload.len(), 50);
    let fl = abi::fuse_flush_in::default();
    let u = k.request(Opcode::FUSE_FLUSH, 2, &[fl.as_bytes()]);
    assert_eq!(k.expect_reply(u).error, 0);
    let fs_in = abi::fuse_fsync_in::default();
    let u = k.request(Opcode::FUSE_FSYNC, 2, &[fs_in.as_bytes()]);
    assert_eq!(k.expect_reply(u).error, 0);
    let fa = abi::fuse_fallocate_in {
        length: 4096,
        ..Default::default()
    };
    let u = k.request(Opcode::FUSE_FALLOCATE, 2, &[fa.as_bytes()]);
    assert_eq!(k.expect_reply(u).error, 0);
    let ls = abi::fuse_lseek_in {
        offset: 10,
        whence: 4,
        ..Default::default()
    };
    let u = k.request(Opcode::FUSE_LSEEK, 2, &[ls.as_bytes()]);
    assert_eq!(k.expect_reply(u).error, 0);
    let cf = abi::fuse_copy_file_range_in {
        nodeid_out: 3,
        len: 1 << 20,
        ..Default::default()
    };
    let u = k.request(Opcode::FUSE_COPY_FILE_RANGE, 2, &[cf.as_bytes()]);
    assert_eq!(k.expect_reply(u).error, 0);
    let u = k.request(Opcode::FUSE_COPY_FILE_RANGE_64, 2, &[cf.as_bytes()]);
    assert_eq!(k.expect_reply(u).error, 0);
    let rl = abi::fuse_release_in::default();
    let u = k.request(Opcode::FUSE_RELEASE, 2, &[rl.as_bytes()]);
    assert_eq!(k.expect_reply(u).error, 0);

    // Directories: 5000 entries through READDIR and READDIRPLUS.
    fs.dir_entries.store(5000, Ordering::Relaxed);
    let u = k.request(Opcode::FUSE_OPENDIR, 1, &[op.as_bytes()]);
    assert_eq!(k.expect_reply(u).error, 0);
    for opcode in [Opcode::FUSE_READDIR, Opcode::FUSE_READDIRPLUS] {
        let mut offset = 0u64;
        let mut pages = 0;
        loop {
            let arg = abi::fuse_read_in {
                offset,
                size: 4096,
                ..Default::default()
            };
            let u = k.request(opcode, 1, &[arg.as_bytes()]);
            let r = k.expect_reply(u);
            if r.payload.is_empty() {
                break;
            }
            pages += 1;
            // The last record's offset is where to go on.
            offset = last_dirent_offset(&r.payload, opcode == Opcode::FUSE_READDIRPLUS);
        }
        assert!(pages > 10);
        assert_eq!(offset, 5000);
    }
    let u = k.request(Opcode::FUSE_FSYNCDIR, 1, &[fs_in.as_bytes()]);
    assert_eq!(k.expect_reply(u).error, 0);
    let u = k.request(Opcode::FUSE_RELEASEDIR, 1, &[rl.as_bytes()]);
    assert_eq!(k.expect_reply(u).error, 0);

    // Extended attributes.
    for (name, size, expect) in [
        (&b"user.s0"[..], 0u32, 0usize),
        (b"user.s1", 0, 0),
        (b"user.s4000", 4000, 4000),
        (b"user.s65536", 65536, 65536),
    ] {
        let g = abi::fuse_getxattr_in { size, padding: 0 };
        let u = k.request(Opcode::FUSE_GETXATTR, 2, &[g.as_bytes(), &cstr(name)]);
        let r = k.expect_reply(u);
        assert_eq!(r.error, 0);
        if size > 0 {
            assert_eq!(r.payload.len(), expect);
        }
    }
    let g = abi::fuse_getxattr_in {
        size: 100,
        padding: 0,
    };
    let u = k.request(Opcode::FUSE_LISTXATTR, 2, &[g.as_bytes()]);
    assert_eq!(k.expect_reply(u).error, 0);
    let value = vec![b'v'; 60_000];
    let sx = abi::fuse_setxattr_in {
        size: 60_000,
        flags: 1,
        setxattr_flags: 0,
        padding: 0,
    };
    let u = k.request(
        Opcode::FUSE_SETXATTR,
        2,
        &[sx.as_bytes(), &cstr(b"user.big"), &value],
    );
    assert_eq!(k.expect_reply(u).error, 0);
    let u = k.request(Opcode::FUSE_REMOVEXATTR, 2, &[&cstr(b"user.big")]);
    assert_eq!(k.expect_reply(u).error, 0);

    // Filesystem-wide.
    let u = k.request(Opcode::FUSE_STATFS, 1, &[]);
    assert_eq!(k.expect_reply(u).error, 0);
    let u = k.request(
        Opcode::FUSE_SYNCFS,
        1,
        &[abi::fuse_syncfs_in::default().as_bytes()],
    );
    assert_eq!(k.expect_reply(u).error, 0);
    let ac = abi::fuse_access_in {
        mask: 4,
        padding: 0,
    };
    let u = k.request(Opcode::FUSE_ACCESS, 2, &[ac.as_bytes()]);
    assert_eq!(k.expect_reply(u).error, 0);

    // Deferred replies: interrupted, completed from another thread, and
    // exhaustion (EAGAIN) once the spare blocks are taken.
    let interrupted = read(k, testfs::SLOW.0, 0, 4096);
    k.expect_silence(Duration::from_millis(20));
    k.interrupt(interrupted);
    assert_eq!(k.expect_reply(interrupted).errno(), Some(Errno::INTR));
    let a = read(k, testfs::SLOW.0, 0, 1 << 20);
    let b = read(k, testfs::SLOW.0, 0, 1 << 20);
    let r = k.next_reply(Duration::from_secs(10)).unwrap();
    assert_eq!(
        r.errno(),
        Some(Errno::AGAIN),
        "the second deferral finds no blocks"
    );
    let kept = if r.unique == a { b } else { a };
    while fs.deferred_count() == 0 {
        std::thread::yield_now();
    }
    completer.complete(1 << 20);
    assert_eq!(k.expect_reply(kept).payload.len(), 1 << 20);

    // Hostile input.
    k.send_raw(&[0u8; 12]);
    let mut h = k.header(Opcode::FUSE_LOOKUP, 1, 3);
    h.len += 1;
    k.send_vectored(&[h.as_bytes(), b"ab\0"]);
    assert_eq!(k.expect_reply(h.unique).errno(), Some(Errno::IO));
    let mut h = k.header(Opcode::FUSE_LOOKUP, 1, 0);
    h.opcode = 4000;
    k.send_raw(h.as_bytes());
    assert_eq!(k.expect_reply(h.unique).errno(), Some(Errno::NOSYS));
    let u = k.request(
        Opcode::FUSE_GETLK,
        2,
        &[abi::fuse_lk_in::default().as_bytes()],
    );
    assert_eq!(k.expect_reply(u).errno(), Some(Errno::NOSYS));
}

fn last_dirent_offset(payload: &[u8], plus: bool) -> u64 {
    use zerocopy::FromBytes;
    let fixed = if plus { 152 } else { 24 };
    let mut at = 0;
    let mut last = 0;
    while at < payload.len() {
        let d_at = at + fixed - 24;
        let (d, _) = abi::fuse_dirent::read_from_prefix(&payload[d_at..]).unwrap();
        last = d.off;
        at += abi::fuse_rec_align(fixed + d.namelen as usize);
    }
    last
}

/// A daemon-side thread that completes deferred replies on request, like a
/// slow backend would. Spawned before serving; waits without allocating.
struct Completer {
    want: Arc<AtomicU64>,
    done: Arc<AtomicU64>,
}

impl Completer {
    fn spawn(fs: Arc<StaticFs>) -> Completer {
        let want = Arc::new(AtomicU64::new(0));
        let done = Arc::new(AtomicU64::new(0));
        let (w, d) = (Arc::clone(&want), Arc::clone(&done));
        std::thread::spawn(move || {
            DAEMON.with(|f| f.set(true));
            loop {
                let len = w.swap(0, Ordering::Acquire);
                if len == u64::MAX {
                    return;
                }
                if len > 0 {
                    fs.complete_deferred(len as usize);
                    d.fetch_add(1, Ordering::Release);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        Completer { want, done }
    }

    fn complete(&self, len: u64) {
        let before = self.done.load(Ordering::Acquire);
        self.want.store(len, Ordering::Release);
        while self.done.load(Ordering::Acquire) == before {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for Completer {
    fn drop(&mut self) {
        self.want.store(u64::MAX, Ordering::Release);
    }
}

#[test]
fn no_heap_alloc_while_serving() {
    let (channel, mut kernel) = sim::pair();
    let config = Config {
        workers: 2,
        max_message: 16 << 20,
        max_pages_limit: Some(4096),
        // One spare message: the second concurrent deferral gets EAGAIN.
        spare_blocks: Some(1),
        block_size: Some(1 << 20),
        backing: BackingRequest::Thp,
        lock_memory: false,
        ..Config::default()
    };
    let session = Session::new(config, StaticFs::default(), Box::new(channel)).unwrap();
    let workers: Vec<_> = session
        .workers()
        .into_iter()
        .map(|mut w| {
            std::thread::spawn(move || {
                DAEMON.with(|d| d.set(true));
                w.run()
            })
        })
        .collect();
    let completer = Completer::spawn(Arc::clone(session.filesystem()));
    kernel.init(sim::KERNEL_FLAGS);

    // Warm up once (anything lazy would show here, not in the proof).
    workload(&mut kernel, session.filesystem(), &completer);
    let before = session.stats();

    SERVING.store(true, Ordering::SeqCst);
    for _ in 0..3 {
        workload(&mut kernel, session.filesystem(), &completer);
    }
    SERVING.store(false, Ordering::SeqCst);

    let stats = session.stats();
    let served = stats.requests - before.requests;
    let allocs = ALLOCS.load(Ordering::SeqCst);
    let frees = FREES.load(Ordering::SeqCst);
    eprintln!(
        "served {served} requests (every opcode, 16 MiB I/O, 5000-entry dirs, EAGAIN {}, \
         interrupts {}): {allocs} allocations, {frees} deallocations",
        stats.eagain - before.eagain,
        stats.interrupts_delivered - before.interrupts_delivered
    );
    assert!(served > 800);
    assert_eq!(stats.eagain - before.eagain, 3);
    assert_eq!(stats.largest_write, 16 << 20);
    assert_eq!(allocs, 0, "heap allocations while serving");
    assert_eq!(frees, 0, "heap deallocations while serving");

    drop(completer);
    kernel.hang_up();
    for w in workers {
        assert_eq!(w.join().unwrap(), Ok(WorkerExit::Unmounted));
    }
}
