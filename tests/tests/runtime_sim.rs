//! The runtime against the simulated kernel: every reply checked byte for
//! byte, malformed and hostile input, 16 MiB writes across blocks, deferred
//! replies, interrupts, pool exhaustion and injected faults. No privileges
//! needed.

// Test code: a panic here is a failed test, not a crashed daemon.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use slabfuse::abi::{self, Opcode};
use slabfuse::op::*;
use slabfuse::pool::BackingRequest;
use slabfuse::*;
use slabfuse_tests::sim::{self, FaultPlan, FaultyChannel, SimKernel, cstr};
use zerocopy::{FromBytes, IntoBytes};

const FILE: u64 = 2;
const SLOW: u64 = 3;
const DIR_ENTRIES: usize = 1000;

fn pattern_byte(offset: u64) -> u8 {
    (offset.wrapping_mul(31) ^ (offset >> 11)) as u8
}

fn pattern(offset: u64, len: usize) -> Vec<u8> {
    (0..len as u64).map(|i| pattern_byte(offset + i)).collect()
}

fn attr(node: u64) -> Attr {
    Attr {
        ino: node,
        size: 1 << 30,
        blocks: 8,
        atime: Timestamp::new(1_700_000_000, 1),
        mtime: Timestamp::new(1_700_000_001, 2),
        ctime: Timestamp::new(1_700_000_002, 3),
        mode: if node == 1 { 0o40755 } else { 0o100644 },
        nlink: 1,
        uid: 1000,
        gid: 1000,
        rdev: 0,
        blksize: 4096,
    }
}

fn entry(node: u64) -> Entry {
    Entry {
        node: NodeId(node),
        generation: 7,
        attr: attr(node),
        entry_ttl: Duration::new(1, 5),
        attr_ttl: Duration::new(2, 6),
    }
}

/// What the test filesystem saw of WRITEs.
#[derive(Debug, Default, Clone)]
struct WriteSeen {
    len: usize,
    slices: usize,
    first_aligned: bool,
    content_ok: bool,
}

#[derive(Default)]
struct TestFs {
    writes: Mutex<Vec<WriteSeen>>,
    deferred: Mutex<Vec<ReplyData<'static>>>,
    interrupts: Mutex<Vec<RequestId>>,
    /// Answer READ of FILE through `fill` instead of zero-copy parts.
    fill_reads: AtomicUsize,
    forgets: AtomicU64,
    block_size: AtomicUsize,
}

impl Filesystem for TestFs {
    fn init_flags(&self) -> u64 {
        init::DEFAULT_INIT_FLAGS | init::READDIRPLUS
    }

    fn lookup(&self, _: &Request, op: Lookup<'_>, reply: ReplyEntry<'_>) -> Replied {
        match (op.parent.0, op.name) {
            (1, b"file") => reply.entry(&entry(FILE)),
            (1, b"slow") => reply.entry(&entry(SLOW)),
            (1, n) if n.len() > 100 => reply.entry(&entry(100 + n.len() as u64)),
            _ => reply.error(Errno::NOENT),
        }
    }

    fn forget(&self, _: &Request, op: Forget) {
        self.forgets.fetch_add(op.nlookup, Ordering::Relaxed);
    }

    fn getattr(&self, _: &Request, op: GetAttr, reply: ReplyAttr<'_>) -> Replied {
        reply.attr(&attr(op.node.0), Duration::from_millis(1500))
    }

    fn read(&self, _: &Request, op: Read, reply: ReplyData<'_>) -> Replied {
        if op.node.0 == SLOW {
            return match reply.defer() {
                Ok((deferred, replied)) => {
                    self.deferred.lock().unwrap().push(deferred);
                    replied
                }
                Err(replied) => replied,
            };
        }
        let data = pattern(op.offset, op.size as usize);
        if self.fill_reads.load(Ordering::Relaxed) > 0 {
            reply.fill(|w| {
                // Half the data, to show a short read carries only it.
                w.put(&data[..data.len() / 2]).map_err(|_| Errno::IO)
            })
        } else {
            let mut parts = DataParts::new();
            let mid = data.len() / 3;
            parts.push(&data[..mid]).unwrap();
            parts.push_zeros(0).unwrap();
            parts.push(&data[mid..]).unwrap();
            reply.parts(&parts)
        }
    }

    fn write(&self, _: &Request, op: Write<'_>, reply: ReplyWrite<'_>) -> Replied {
        let block = self.block_size.load(Ordering::Relaxed).max(1);
        let mut seen = WriteSeen {
            len: op.data.len(),
            first_aligned: true,
            content_ok: true,
            ..WriteSeen::default()
        };
        let mut off = op.offset;
        for (i, s) in op.data.slices().enumerate() {
            if i == 0 {
                seen.first_aligned = (s.as_ptr() as usize).is_multiple_of(block);
            }
            seen.slices += 1;
            if s != pattern(off, s.len()) {
                seen.content_ok = false;
            }
            off += s.len() as u64;
        }
        self.writes.lock().unwrap().push(seen);
        reply.written(op.data.len() as u64)
    }

    fn readdir(&self, _: &Request, op: ReadDir, mut reply: ReplyDirectory<'_>) -> Replied {
        for i in op.offset as usize..DIR_ENTRIES {
            let name = format!("entry-{i:05}-{}", "x".repeat(i % 13));
            if !reply.add(
                10 + i as u64,
                i as u64 + 1,
                FileType::RegularFile,
                name.as_bytes(),
            ) {
                break;
            }
        }
        reply.ok()
    }

    fn getxattr(&self, _: &Request, op: GetXattr<'_>, reply: ReplyXattr<'_>) -> Replied {
        match op.name {
            b"user.big" => reply.value(&[0xAB; 3000]),
            b"user.small" => reply.value(b"v"),
            _ => reply.error(Errno::NODATA),
        }
    }

    fn listxattr(&self, _: &Request, _: ListXattr, reply: ReplyXattr<'_>) -> Replied {
        reply.names([&b"user.big"[..], b"user.small"].into_iter())
    }

    fn interrupt(&self, _: &Request, op: Interrupt) {
        self.interrupts.lock().unwrap().push(op.target);
        let mut deferred = self.deferred.lock().unwrap();
        if let Some(i) = deferred.iter().position(|d| d.request() == op.target) {
            let d = deferred.remove(i);
            assert!(d.is_interrupted());
            let _ = d.error(Errno::INTR);
        }
    }
}

struct Served {
    session: Session<TestFs>,
    kernel: SimKernel,
    workers: Vec<JoinHandle<Result<WorkerExit, Errno>>>,
}

impl Served {
    fn start(config: Config) -> Served {
        let (channel, kernel) = sim::pair();
        Served::start_on(config, Box::new(channel), kernel)
    }

    fn start_on(config: Config, channel: Box<dyn Channel>, kernel: SimKernel) -> Served {
        let session = Session::new(config, TestFs::default(), channel).expect("session");
        session
            .filesystem()
            .block_size
            .store(session.plan().block_size, Ordering::Relaxed);
        let workers = session
            .workers()
            .into_iter()
            .map(|mut w| std::thread::spawn(move || w.run()))
            .collect();
        Served {
            session,
            kernel,
            workers,
        }
    }

    fn stop(self) -> (Session<TestFs>, Vec<Result<WorkerExit, Errno>>) {
        self.kernel.hang_up();
        let exits = self
            .workers
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        (self.session, exits)
    }
}

/// Waits (up to 10 s) for `f` to hold.
fn wait_for(mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "condition not reached in 10 s"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn config(max_message: usize, workers: usize) -> Config {
    Config {
        workers,
        max_message,
        max_pages_limit: Some(4096),
        backing: BackingRequest::Thp,
        lock_memory: false,
        ..Config::default()
    }
}

fn served() -> Served {
    let mut s = Served::start(config(1 << 20, 2));
    s.kernel.init(sim::KERNEL_FLAGS);
    s
}

#[test]
fn init_reply_is_byte_exact() {
    let mut s = Served::start(config(16 << 20, 1));
    let out = s.kernel.init(sim::KERNEL_FLAGS);
    let wanted = init::DEFAULT_INIT_FLAGS | init::READDIRPLUS;
    let expected = abi::fuse_init_out {
        major: 7,
        minor: 45,
        max_readahead: 1 << 20,
        flags: wanted as u32,
        max_background: 64,
        congestion_threshold: 48,
        max_write: 16 << 20,
        time_gran: 1,
        max_pages: 4096,
        flags2: 0,
        ..Default::default()
    };
    assert_eq!(out.as_bytes(), expected.as_bytes());
    let conn = s.session.conn().expect("initialized");
    assert_eq!(conn.minor, 45);
    assert_eq!(conn.max_write, 16 << 20);
    let (session, exits) = s.stop();
    assert_eq!(exits, vec![Ok(WorkerExit::Unmounted)]);
    assert_eq!(session.stats().requests_of(Opcode::FUSE_INIT), 1);
}

#[test]
fn an_old_kernel_is_served_at_its_version() {
    let mut s = Served::start(config(1 << 20, 1));
    let offered = abi::FUSE_ASYNC_READ | abi::FUSE_BIG_WRITES | abi::FUSE_MAX_PAGES;
    let out = s.kernel.init_with(28, offered);
    assert_eq!((out.major, out.minor), (7, 45));
    assert_eq!(u64::from(out.flags), offered);
    assert_eq!(s.session.conn().unwrap().minor, 28);
    let u = s.kernel.request(
        Opcode::FUSE_GETATTR,
        1,
        &[abi::fuse_getattr_in::default().as_bytes()],
    );
    assert_eq!(s.kernel.expect_reply(u).error, 0);
    s.stop();
}

#[test]
fn a_kernel_older_than_7_26_is_refused_with_eproto() {
    let mut s = Served::start(config(1 << 20, 1));
    let arg = abi::fuse_init_in {
        major: 7,
        minor: 25,
        ..Default::default()
    };
    let u = s
        .kernel
        .request(Opcode::FUSE_INIT, 0, &[&arg.as_bytes()[..16]]);
    assert_eq!(s.kernel.expect_reply(u).errno(), Some(Errno::PROTO));
    let (_, exits) = s.stop();
    assert_eq!(exits, vec![Ok(WorkerExit::Refused)]);
}

#[test]
fn requests_before_init_are_refused_and_counted() {
    let mut s = Served::start(config(1 << 20, 1));
    let u = s.kernel.request(Opcode::FUSE_LOOKUP, 1, &[&cstr(b"file")]);
    assert_eq!(s.kernel.expect_reply(u).errno(), Some(Errno::IO));
    s.kernel.init(sim::KERNEL_FLAGS);
    let (session, _) = s.stop();
    assert_eq!(session.stats().malformed, 1);
}

#[test]
fn entry_attr_and_statfs_replies_are_byte_exact() {
    let mut s = served();
    let u = s.kernel.request(Opcode::FUSE_LOOKUP, 1, &[&cstr(b"file")]);
    let r = s.kernel.expect_reply(u);
    assert_eq!(r.error, 0);
    let expected = abi::fuse_entry_out {
        nodeid: 2,
        generation: 7,
        entry_valid: 1,
        attr_valid: 2,
        entry_valid_nsec: 5,
        attr_valid_nsec: 6,
        attr: attr(2).to_abi(),
    };
    assert_eq!(r.payload, expected.as_bytes());
    assert_eq!(r.parse::<abi::fuse_entry_out>().attr.mtimensec, 2);

    let u = s.kernel.request(
        Opcode::FUSE_GETATTR,
        2,
        &[abi::fuse_getattr_in::default().as_bytes()],
    );
    let r = s.kernel.expect_reply(u);
    let expected = abi::fuse_attr_out {
        attr_valid: 1,
        attr_valid_nsec: 500_000_000,
        dummy: 0,
        attr: attr(2).to_abi(),
    };
    assert_eq!(r.payload, expected.as_bytes());

    // STATFS falls to the trait's default.
    let u = s.kernel.request(Opcode::FUSE_STATFS, 1, &[]);
    let r = s.kernel.expect_reply(u);
    let st: abi::fuse_statfs_out = r.parse();
    assert_eq!((st.st.namelen, st.st.bsize), (255, 512));

    let u = s.kernel.request(Opcode::FUSE_LOOKUP, 1, &[&cstr(b"nope")]);
    assert_eq!(s.kernel.expect_reply(u).errno(), Some(Errno::NOENT));
    s.stop();
}

#[test]
fn names_that_straddle_the_head_and_the_first_block_arrive_whole() {
    let mut s = served();
    // Header (40) + name: a 200-byte name crosses the 80-byte head.
    let name = vec![b'n'; 200];
    let u = s.kernel.request(Opcode::FUSE_LOOKUP, 1, &[&cstr(&name)]);
    let r = s.kernel.expect_reply(u);
    assert_eq!(r.parse::<abi::fuse_entry_out>().nodeid, 100 + 200);
    s.stop();
}

#[test]
fn forget_and_batch_forget_reach_the_filesystem_without_replies() {
    let mut s = served();
    s.kernel.request(
        Opcode::FUSE_FORGET,
        2,
        &[abi::fuse_forget_in { nlookup: 3 }.as_bytes()],
    );
    let mut batch = abi::fuse_batch_forget_in {
        count: 100,
        dummy: 0,
    }
    .as_bytes()
    .to_vec();
    for i in 0..100u64 {
        batch.extend_from_slice(
            abi::fuse_forget_one {
                nodeid: 10 + i,
                nlookup: 1,
            }
            .as_bytes(),
        );
    }
    s.kernel.request(Opcode::FUSE_BATCH_FORGET, 0, &[&batch]);
    // A request after them: its reply must be the next one seen (no reply
    // came for the forgets).
    let u = s.kernel.request(Opcode::FUSE_LOOKUP, 1, &[&cstr(b"file")]);
    let r = s.kernel.next_reply(Duration::from_secs(10)).unwrap();
    assert_eq!(r.unique, u);
    // Another worker may still be inside BATCH_FORGET when the LOOKUP's
    // reply arrives: wait for the count, within a generous deadline.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while s.session.filesystem().forgets.load(Ordering::Relaxed) < 103
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(s.session.filesystem().forgets.load(Ordering::Relaxed), 103);
    s.stop();
}

#[test]
fn reads_zero_copy_and_filled_carry_exactly_the_data() {
    let mut s = served();
    let read = |k: &mut SimKernel, offset, size| {
        let arg = abi::fuse_read_in {
            offset,
            size,
            ..Default::default()
        };
        let u = k.request(Opcode::FUSE_READ, FILE, &[arg.as_bytes()]);
        k.expect_reply(u)
    };
    let r = read(&mut s.kernel, 12345, 100_000);
    assert_eq!(r.error, 0);
    assert_eq!(r.payload, pattern(12345, 100_000));

    s.session
        .filesystem()
        .fill_reads
        .store(1, Ordering::Relaxed);
    let r = read(&mut s.kernel, 777, 1 << 20);
    assert_eq!(
        r.payload,
        pattern(777, 1 << 19),
        "a short fill carries only what was written"
    );
    let (session, _) = s.stop();
    let stats = session.stats();
    assert_eq!(stats.largest_read, 1 << 19);
    assert_eq!(stats.bytes_read, 100_000 + (1 << 19));
}

#[test]
fn sixteen_mib_write_arrives_block_aligned_across_eight_blocks() {
    let mut s = Served::start(config(16 << 20, 2));

    let out = s.kernel.init(sim::KERNEL_FLAGS);
    assert_eq!(out.max_write, 16 << 20);
    assert_eq!(s.session.plan().block_size, 2 << 20);
    let data = pattern(0, 16 << 20);
    let arg = abi::fuse_write_in {
        offset: 0,
        size: 16 << 20,
        ..Default::default()
    };
    let u = s
        .kernel
        .request(Opcode::FUSE_WRITE, FILE, &[arg.as_bytes(), &data]);
    let r = s.kernel.expect_reply(u);
    assert_eq!(r.parse::<abi::fuse_write_out>().size, 16 << 20);
    let seen = s.session.filesystem().writes.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].len, 16 << 20);
    assert_eq!(seen[0].slices, 8, "one slice per 2 MiB block");
    assert!(seen[0].first_aligned, "payload starts at a block boundary");
    assert!(seen[0].content_ok);
    // And a 16 MiB read comes back whole.
    let arg = abi::fuse_read_in {
        offset: 4096,
        size: 16 << 20,
        ..Default::default()
    };
    let u = s.kernel.request(Opcode::FUSE_READ, FILE, &[arg.as_bytes()]);
    let r = s.kernel.expect_reply(u);
    assert_eq!(r.payload.len(), 16 << 20);
    assert!(r.payload == pattern(4096, 16 << 20));
    let (session, exits) = s.stop();
    assert!(exits.iter().all(|e| *e == Ok(WorkerExit::Unmounted)));
    assert_eq!(session.stats().largest_write, 16 << 20);
    assert_eq!(session.stats().largest_read, 16 << 20);
}

#[test]
fn readdir_records_are_aligned_padded_with_zeros_and_resume_at_offsets() {
    let mut s = served();
    let mut offset = 0u64;
    let mut names = Vec::new();
    loop {
        let arg = abi::fuse_read_in {
            offset,
            size: 4096,
            ..Default::default()
        };
        let u = s.kernel.request(Opcode::FUSE_READDIR, 1, &[arg.as_bytes()]);
        let r = s.kernel.expect_reply(u);
        assert_eq!(r.error, 0);
        assert!(r.payload.len() <= 4096);
        if r.payload.is_empty() {
            break;
        }
        let mut at = 0;
        while at < r.payload.len() {
            let (d, rest) = abi::fuse_dirent::read_from_prefix(&r.payload[at..]).unwrap();
            let name = &rest[..d.namelen as usize];
            let rec = abi::fuse_rec_align(24 + d.namelen as usize);
            assert!(
                r.payload[at + 24 + d.namelen as usize..at + rec]
                    .iter()
                    .all(|&b| b == 0),
                "padding must be zeros"
            );
            assert_eq!(d.r#type, FileType::RegularFile.dirent_type());
            names.push(String::from_utf8(name.to_vec()).unwrap());
            offset = d.off;
            at += rec;
        }
    }
    assert_eq!(names.len(), DIR_ENTRIES);
    assert_eq!(names[999], format!("entry-00999-{}", "x".repeat(999 % 13)));
    s.stop();
}

#[test]
fn xattr_replies_answer_length_queries_and_erange() {
    let mut s = served();
    let get = |k: &mut SimKernel, name: &[u8], size: u32| {
        let arg = abi::fuse_getxattr_in { size, padding: 0 };
        let u = k.request(Opcode::FUSE_GETXATTR, FILE, &[arg.as_bytes(), &cstr(name)]);
        k.expect_reply(u)
    };
    let r = get(&mut s.kernel, b"user.big", 0);
    assert_eq!(r.parse::<abi::fuse_getxattr_out>().size, 3000);
    assert_eq!(
        get(&mut s.kernel, b"user.big", 2999).errno(),
        Some(Errno::RANGE)
    );
    assert_eq!(
        get(&mut s.kernel, b"user.big", 3000).payload,
        vec![0xAB; 3000]
    );
    assert_eq!(
        get(&mut s.kernel, b"user.none", 10).errno(),
        Some(Errno::NODATA)
    );

    let arg = abi::fuse_getxattr_in {
        size: 0,
        padding: 0,
    };
    let u = s
        .kernel
        .request(Opcode::FUSE_LISTXATTR, FILE, &[arg.as_bytes()]);
    assert_eq!(
        s.kernel
            .expect_reply(u)
            .parse::<abi::fuse_getxattr_out>()
            .size,
        20
    );
    let arg = abi::fuse_getxattr_in {
        size: 100,
        padding: 0,
    };
    let u = s
        .kernel
        .request(Opcode::FUSE_LISTXATTR, FILE, &[arg.as_bytes()]);
    assert_eq!(s.kernel.expect_reply(u).payload, b"user.big\0user.small\0");
    let arg = abi::fuse_getxattr_in {
        size: 5,
        padding: 0,
    };
    let u = s
        .kernel
        .request(Opcode::FUSE_LISTXATTR, FILE, &[arg.as_bytes()]);
    assert_eq!(s.kernel.expect_reply(u).errno(), Some(Errno::RANGE));
    s.stop();
}

#[test]
fn unknown_and_unsupported_opcodes_get_enosys_and_serving_goes_on() {
    let mut s = served();
    for opcode in [7u32, 19, 54, 999, 4095, u32::MAX] {
        let mut h = s.kernel.header(Opcode::FUSE_LOOKUP, 1, 0);
        h.opcode = opcode;
        s.kernel.send_raw(h.as_bytes());
        assert_eq!(
            s.kernel.expect_reply(h.unique).errno(),
            Some(Errno::NOSYS),
            "{opcode}"
        );
    }
    let u = s.kernel.request(
        Opcode::FUSE_GETLK,
        FILE,
        &[abi::fuse_lk_in::default().as_bytes()],
    );
    assert_eq!(s.kernel.expect_reply(u).errno(), Some(Errno::NOSYS));
    let u = s.kernel.request(Opcode::FUSE_LOOKUP, 1, &[&cstr(b"file")]);
    assert_eq!(s.kernel.expect_reply(u).error, 0);
    let (session, _) = s.stop();
    assert_eq!(session.stats().unknown_opcodes, 6);
    assert_eq!(session.stats().malformed, 0);
}

#[test]
fn malformed_messages_are_answered_with_the_right_errno() {
    let mut s = served();
    let k = &mut s.kernel;
    let cases: Vec<(&str, Vec<u8>, Option<Errno>)> = {
        let mut v = Vec::new();
        // len says more than was sent.
        let mut h = k.header(Opcode::FUSE_LOOKUP, 1, 5);
        h.len += 10;
        v.push((
            "len lies",
            [h.as_bytes(), b"file\0"].concat(),
            Some(Errno::IO),
        ));
        // Missing NUL.
        let h = k.header(Opcode::FUSE_LOOKUP, 1, 4);
        v.push((
            "no NUL",
            [h.as_bytes(), b"file"].concat(),
            Some(Errno::INVAL),
        ));
        // Name of 256 bytes.
        let name = cstr(&[b'a'; 256]);
        let h = k.header(Opcode::FUSE_LOOKUP, 1, name.len());
        v.push((
            "long name",
            [h.as_bytes(), &name].concat(),
            Some(Errno::NAMETOOLONG),
        ));
        // A name with a slash.
        let h = k.header(Opcode::FUSE_MKDIR, 1, 8 + 4);
        let m = abi::fuse_mkdir_in {
            mode: 0o755,
            umask: 0,
        };
        v.push((
            "slash",
            [h.as_bytes(), m.as_bytes(), b"a/b\0"].concat(),
            Some(Errno::INVAL),
        ));
        // Arguments shorter than the struct.
        let h = k.header(Opcode::FUSE_READ, FILE, 8);
        v.push((
            "short args",
            [h.as_bytes(), &[0u8; 8][..]].concat(),
            Some(Errno::INVAL),
        ));
        // offset + size overflows.
        let r = abi::fuse_read_in {
            offset: u64::MAX - 10,
            size: 100,
            ..Default::default()
        };
        let h = k.header(Opcode::FUSE_READ, FILE, 40);
        v.push((
            "read overflow",
            [h.as_bytes(), r.as_bytes()].concat(),
            Some(Errno::INVAL),
        ));
        let w = abi::fuse_write_in {
            offset: i64::MAX as u64,
            size: 4,
            ..Default::default()
        };
        let h = k.header(Opcode::FUSE_WRITE, FILE, 44);
        v.push((
            "write overflow",
            [h.as_bytes(), w.as_bytes(), b"abcd"].concat(),
            Some(Errno::FBIG),
        ));
        // WRITE size disagrees with its payload.
        let w = abi::fuse_write_in {
            size: 10,
            ..Default::default()
        };
        let h = k.header(Opcode::FUSE_WRITE, FILE, 44);
        v.push((
            "write size",
            [h.as_bytes(), w.as_bytes(), b"abcd"].concat(),
            Some(Errno::INVAL),
        ));
        // Trailing bytes after a fixed struct.
        let h = k.header(Opcode::FUSE_GETATTR, FILE, 24);
        v.push((
            "trailing",
            [h.as_bytes(), &[0u8; 24][..]].concat(),
            Some(Errno::INVAL),
        ));
        // Extension length reaching past the message.
        let mut h = k.header(Opcode::FUSE_GETATTR, FILE, 16);
        h.total_extlen = 100;
        v.push((
            "extlen",
            [h.as_bytes(), &[0u8; 16][..]].concat(),
            Some(Errno::INVAL),
        ));
        // BATCH_FORGET count lies: no reply (forgets are never answered).
        let h = k.header(Opcode::FUSE_BATCH_FORGET, 0, 8 + 16);
        let b = abi::fuse_batch_forget_in { count: 5, dummy: 0 };
        v.push((
            "forget count",
            [h.as_bytes(), b.as_bytes(), &[0u8; 16][..]].concat(),
            None,
        ));
        // A second INIT.
        let h = k.header(Opcode::FUSE_INIT, 0, 64);
        let i = abi::fuse_init_in {
            major: 7,
            minor: 45,
            ..Default::default()
        };
        v.push((
            "second INIT",
            [h.as_bytes(), i.as_bytes()].concat(),
            Some(Errno::IO),
        ));
        // A bad xattr name (too long): ERANGE as the VFS gives.
        let name = cstr(&[b'x'; 300]);
        let h = k.header(Opcode::FUSE_GETXATTR, FILE, 8 + name.len());
        let g = abi::fuse_getxattr_in {
            size: 0,
            padding: 0,
        };
        v.push((
            "xattr name",
            [h.as_bytes(), g.as_bytes(), &name].concat(),
            Some(Errno::RANGE),
        ));
        // Bad nanoseconds in SETATTR.
        let a = abi::fuse_setattr_in {
            valid: abi::FATTR_MTIME,
            mtimensec: 2_000_000_000,
            ..Default::default()
        };
        let h = k.header(Opcode::FUSE_SETATTR, FILE, 88);
        v.push((
            "nanos",
            [h.as_bytes(), a.as_bytes()].concat(),
            Some(Errno::INVAL),
        ));
        v
    };
    let mut expected_malformed = 0;
    for (what, bytes, errno) in cases {
        let unique = abi::fuse_in_header::read_from_prefix(&bytes)
            .unwrap()
            .0
            .unique;
        k.send_raw(&bytes);
        expected_malformed += 1;
        if let Some(e) = errno {
            assert_eq!(k.expect_reply(unique).errno(), Some(e), "{what}")
        }
        // The session keeps serving the next valid request.
        let u = k.request(Opcode::FUSE_LOOKUP, 1, &[&cstr(b"file")]);
        let r = k.expect_reply(u);
        assert_eq!(r.error, 0, "after {what}");
    }
    // A message shorter than a header cannot be answered: dropped, counted.
    k.send_raw(&[1, 2, 3]);
    expected_malformed += 1;
    let u = k.request(Opcode::FUSE_LOOKUP, 1, &[&cstr(b"file")]);
    let r = k.next_reply(Duration::from_secs(10)).unwrap();
    assert_eq!(r.unique, u, "nothing may answer the headerless message");
    let (session, exits) = s.stop();
    assert!(exits.iter().all(|e| *e == Ok(WorkerExit::Unmounted)));
    assert_eq!(session.stats().malformed, expected_malformed);
}

#[test]
fn interrupt_reaches_a_deferred_request_and_the_caller_sees_eintr() {
    let mut s = served();
    let arg = abi::fuse_read_in {
        size: 4096,
        ..Default::default()
    };
    let u = s.kernel.request(Opcode::FUSE_READ, SLOW, &[arg.as_bytes()]);
    // Deferred: no reply yet, and the worker serves others meanwhile.
    let l = s.kernel.request(Opcode::FUSE_LOOKUP, 1, &[&cstr(b"file")]);
    assert_eq!(s.kernel.expect_reply(l).error, 0);
    // Two workers: the READ may still be on its way to being deferred.
    wait_for(|| s.session.deferred_outstanding() == 1);
    s.kernel.interrupt(u);
    assert_eq!(s.kernel.expect_reply(u).errno(), Some(Errno::INTR));
    assert_eq!(
        *s.session.filesystem().interrupts.lock().unwrap(),
        vec![RequestId(u)]
    );
    // The slot is freed just after the reply is written.
    wait_for(|| s.session.deferred_outstanding() == 0);
    let (session, _) = s.stop();
    assert_eq!(session.stats().interrupts_delivered, 1);
    assert_eq!(session.stats().deferred, 1);
}

#[test]
fn pool_exhaustion_answers_eagain_at_once_and_loses_nothing() {
    // 1 MiB messages in 1 MiB blocks; 2 spare blocks = 2 deferred reads.
    let mut c = config(1 << 20, 2);
    c.spare_blocks = Some(2);
    let mut s = Served::start(c);
    s.kernel.init(sim::KERNEL_FLAGS);
    let receive_blocks = s.session.plan().receive_blocks;
    let read = |k: &mut SimKernel, node, size: u32| {
        let arg = abi::fuse_read_in {
            size,
            ..Default::default()
        };
        k.request(Opcode::FUSE_READ, node, &[arg.as_bytes()])
    };
    let sent = [
        read(&mut s.kernel, SLOW, 1 << 20),
        read(&mut s.kernel, SLOW, 1 << 20),
        read(&mut s.kernel, SLOW, 1 << 20),
    ];
    // Two workers take them in any order; whichever comes third finds no
    // blocks and is answered EAGAIN, at once.
    let refused = s
        .kernel
        .next_reply(Duration::from_secs(10))
        .expect("an EAGAIN");
    assert_eq!(refused.errno(), Some(Errno::AGAIN));
    assert!(sent.contains(&refused.unique));
    assert_eq!(s.session.pool_stats().in_use, receive_blocks + 2);
    // Everything else is still served.
    let u = read(&mut s.kernel, FILE, 4096);
    assert_eq!(s.kernel.expect_reply(u).payload, pattern(0, 4096));
    // Complete the deferred reads from another thread, through fill.
    let fs = Arc::clone(s.session.filesystem());
    std::thread::spawn(move || {
        for d in fs.deferred.lock().unwrap().drain(..) {
            let _ = d.fill(|w| w.put(&pattern(0, 1 << 20)).map_err(|_| Errno::IO));
        }
    })
    .join()
    .unwrap();
    for u in sent.iter().filter(|&&u| u != refused.unique) {
        let r = s.kernel.expect_reply(*u);
        assert_eq!(r.payload.len(), 1 << 20);
        assert!(r.payload == pattern(0, 1 << 20));
    }
    // Every spare block is back; a new deferral succeeds again.
    assert_eq!(s.session.pool_stats().in_use, receive_blocks);
    let d = read(&mut s.kernel, SLOW, 1 << 20);
    s.kernel.expect_silence(Duration::from_millis(50));
    let deferred = s
        .session
        .filesystem()
        .deferred
        .lock()
        .unwrap()
        .pop()
        .unwrap();
    let _ = deferred.data(b"late");
    assert_eq!(s.kernel.expect_reply(d).payload, b"late");
    let (session, _) = s.stop();
    assert_eq!(session.stats().eagain, 1);
    assert!(session.pool_stats().exhausted >= 1);
    drop(session);
}

#[test]
fn a_deferred_reply_dropped_unanswered_is_answered_eio() {
    let mut s = served();
    let arg = abi::fuse_read_in {
        size: 10,
        ..Default::default()
    };
    let u = s.kernel.request(Opcode::FUSE_READ, SLOW, &[arg.as_bytes()]);
    s.kernel.expect_silence(Duration::from_millis(50));
    s.session.filesystem().deferred.lock().unwrap().clear();
    assert_eq!(s.kernel.expect_reply(u).errno(), Some(Errno::IO));
    let (session, _) = s.stop();
    assert_eq!(session.stats().deferred_dropped, 1);
}

#[test]
fn unmount_ends_every_worker_and_every_block_comes_back() {
    let mut s = Served::start(config(16 << 20, 4));
    s.kernel.init(sim::KERNEL_FLAGS);
    // Requests in flight when the kernel goes away.
    for _ in 0..50 {
        s.kernel.request(Opcode::FUSE_LOOKUP, 1, &[&cstr(b"file")]);
    }
    let (session, exits) = s.stop();
    assert_eq!(exits.len(), 4);
    assert!(
        exits.iter().all(|e| *e == Ok(WorkerExit::Unmounted)),
        "{exits:?}"
    );
    // Workers dropped: their receive buffers are back in the pool.
    assert_eq!(session.pool_stats().in_use, 0);
    assert!(session.pool_stats().high_water >= session.plan().receive_blocks);
}

#[test]
fn many_workers_answer_concurrent_requests() {
    let mut s = Served::start(config(1 << 20, 4));
    s.kernel.init(sim::KERNEL_FLAGS);
    let mut ids = Vec::new();
    for i in 0..2000u64 {
        let arg = abi::fuse_read_in {
            offset: i * 100,
            size: 1000,
            ..Default::default()
        };
        ids.push((
            i,
            s.kernel.request(Opcode::FUSE_READ, FILE, &[arg.as_bytes()]),
        ));
    }
    for (i, u) in ids {
        assert_eq!(s.kernel.expect_reply(u).payload, pattern(i * 100, 1000));
    }
    let (session, _) = s.stop();
    assert_eq!(session.stats().requests_of(Opcode::FUSE_READ), 2000);
}

#[test]
fn injected_faults_are_survived_and_replay_from_their_seed() {
    let seed = slabfuse_tests::seed(0x5eed_fa17);
    let (channel, kernel) = sim::pair();
    let plan = FaultPlan {
        eintr_per_mille: 100,
        truncate_per_mille: 50,
        reply_enoent_per_mille: 50,
        unmount_after_reads: Some(3000),
    };
    let faulty = FaultyChannel::new(Box::new(channel), plan, seed);
    let injected = Arc::clone(&faulty.injected);
    let mut s = Served::start_on(config(1 << 20, 2), Box::new(faulty), kernel);
    // INIT may itself be cut or lost: retry until it is agreed.
    let mut answered = 0u64;
    let mut sent = 0u64;
    while s.session.conn().is_none() && sent < 50 {
        let arg = abi::fuse_init_in {
            major: 7,
            minor: 45,
            flags: sim::KERNEL_FLAGS as u32,
            ..Default::default()
        };
        let u = s.kernel.request(Opcode::FUSE_INIT, 0, &[arg.as_bytes()]);
        sent += 1;
        if s.kernel.reply_to(u, Duration::from_millis(200)).is_some() {
            answered += 1;
        }
    }
    assert!(s.session.conn().is_some());
    // Requests go out in batches; replies are collected until the batch is
    // answered or the line stays silent (a lost reply never comes).
    let mut errors = 0u64;
    for batch in 0..25u64 {
        let mut ids = std::collections::HashMap::new();
        for j in 0..100u64 {
            let i = batch * 100 + j;
            let arg = abi::fuse_read_in {
                offset: i,
                size: 64,
                ..Default::default()
            };
            ids.insert(
                s.kernel.request(Opcode::FUSE_READ, FILE, &[arg.as_bytes()]),
                i,
            );
            sent += 1;
        }
        while !ids.is_empty() {
            let Some(r) = s.kernel.next_reply(Duration::from_millis(300)) else {
                break;
            };
            let i = ids
                .remove(&r.unique)
                .expect("a reply to a request in flight");
            answered += 1;
            match r.errno() {
                None => assert_eq!(r.payload, pattern(i, 64)),
                // A cut message: its len lies, so the parser answers EIO.
                Some(Errno::IO) => errors += 1,
                Some(e) => panic!("unexpected {e}"),
            }
        }
    }
    let (session, exits) = s.stop();
    let stats = session.stats();
    eprintln!(
        "sent {sent}, answered {answered}, cut {errors}, injected {}, malformed {}, \
         lost replies {}",
        injected.load(Ordering::Relaxed),
        stats.malformed,
        stats.replies_to_interrupted
    );
    assert!(
        exits.iter().all(|e| *e == Ok(WorkerExit::Unmounted)),
        "{exits:?}"
    );
    assert!(injected.load(Ordering::Relaxed) > 100);
    assert!(errors > 0 && stats.malformed >= errors);
    // Faults cost a fraction of the replies, never the session.
    assert!(answered * 10 >= sent * 8, "answered {answered} of {sent}");
    assert_eq!(session.pool_stats().in_use, 0);
}

#[test]
fn a_polling_worker_serves_like_a_sleeping_one() {
    let mut c = config(1 << 20, 2);
    c.poll_ns = 2_000_000;
    let mut s = Served::start(c);
    s.kernel.init(sim::KERNEL_FLAGS);
    // Back-to-back requests (the polling worker finds them awake), then a
    // pause longer than the budget (it must fall asleep and wake again).
    for round in 0..3u64 {
        let mut ids = Vec::new();
        for i in 0..300u64 {
            let arg = abi::fuse_read_in {
                offset: round * 1000 + i,
                size: 100,
                ..Default::default()
            };
            ids.push((
                round * 1000 + i,
                s.kernel.request(Opcode::FUSE_READ, FILE, &[arg.as_bytes()]),
            ));
        }
        for (offset, u) in ids {
            assert_eq!(s.kernel.expect_reply(u).payload, pattern(offset, 100));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (session, exits) = s.stop();
    assert!(
        exits.iter().all(|e| *e == Ok(WorkerExit::Unmounted)),
        "{exits:?}"
    );
    assert_eq!(session.stats().requests_of(Opcode::FUSE_READ), 900);
}
