//! The runtime on real mounts: large messages as the kernel really sends
//! them, with `fs.fuse.max_pages_limit` raised and at its default.
//!
//! Note: an `O_DIRECT` client buffer must be page-aligned, or the kernel
//! splits the request at the page it cannot pin; these tests use
//! [`AlignedBuf`].

// Test code: a panic here is a failed test, not a crashed daemon.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::FileExt;
use std::sync::Mutex;
use std::time::Duration;

use slabfuse::op::*;
use slabfuse::*;
use slabfuse_tests::*;

const FILE: NodeId = NodeId(2);

/// A one-file filesystem that records the size of every READ and WRITE.
#[derive(Default)]
struct RecordFs {
    data: Mutex<Vec<u8>>,
    writes: Mutex<Vec<usize>>,
    reads: Mutex<Vec<usize>>,
}

impl RecordFs {
    fn attr(&self, node: NodeId) -> Attr {
        let size = self.data.lock().unwrap().len() as u64;
        Attr {
            ino: node.0,
            size: if node == FILE { size } else { 0 },
            mode: if node == FILE { 0o100666 } else { 0o40777 },
            nlink: 1,
            ..Attr::default()
        }
    }
}

impl Filesystem for RecordFs {
    fn lookup(&self, _: &Request, op: Lookup<'_>, reply: ReplyEntry<'_>) -> Replied {
        if op.name != b"f" {
            return reply.error(Errno::NOENT);
        }
        reply.entry(&Entry {
            node: FILE,
            generation: 1,
            attr: self.attr(FILE),
            entry_ttl: Duration::ZERO,
            attr_ttl: Duration::ZERO,
        })
    }

    fn getattr(&self, _: &Request, op: GetAttr, reply: ReplyAttr<'_>) -> Replied {
        reply.attr(&self.attr(op.node), Duration::ZERO)
    }

    fn setattr(&self, _: &Request, op: SetAttr, reply: ReplyAttr<'_>) -> Replied {
        if let Some(size) = op.size {
            self.data.lock().unwrap().resize(size as usize, 0);
        }
        reply.attr(&self.attr(op.node), Duration::ZERO)
    }

    fn write(&self, _: &Request, op: Write<'_>, reply: ReplyWrite<'_>) -> Replied {
        self.writes.lock().unwrap().push(op.data.len());
        let mut data = self.data.lock().unwrap();
        let end = op.offset as usize + op.data.len();
        if data.len() < end {
            data.resize(end, 0);
        }
        op.data.copy_to(&mut data[op.offset as usize..end]);
        reply.written(op.data.len() as u64)
    }

    fn read(&self, _: &Request, op: Read, reply: ReplyData<'_>) -> Replied {
        self.reads.lock().unwrap().push(op.size as usize);
        let data = self.data.lock().unwrap();
        let start = (op.offset as usize).min(data.len());
        let end = (start + op.size as usize).min(data.len());
        reply.data(&data[start..end])
    }
}

/// Writes 16 MiB with `O_DIRECT` from an aligned buffer and reads it back;
/// returns the WRITE and READ sizes the filesystem saw.
fn sixteen_mib_round_trip(m: &Mounted<RecordFs>) -> (Vec<usize>, Vec<usize>) {
    let path = m.path().join("f");
    let mut buf = AlignedBuf::zeroed(16 << 20);
    Rng::new(16).fill(&mut buf);
    let f = open_direct(&path, 0, 0o644).expect("open O_DIRECT");
    assert_eq!(f.write_at(&buf, 0).expect("write"), 16 << 20);
    let mut back = AlignedBuf::zeroed(16 << 20);
    assert_eq!(f.read_at(&mut back, 0).expect("read"), 16 << 20);
    assert!(back[..] == buf[..], "data read back differs");
    let writes = m.fs().writes.lock().unwrap().clone();
    let reads = m.fs().reads.lock().unwrap().clone();
    (writes, reads)
}

#[test]
fn sixteen_mib_direct_write_is_one_request_with_max_pages_limit_raised() {
    require_mounts!();
    let _limit = Sysctl::set(MAX_PAGES_LIMIT, "4096").expect("raise max_pages_limit");
    let m = Mounted::with_defaults(RecordFs::default());
    assert_eq!(m.session().plan().max_write, 16 << 20);
    assert_eq!(m.session().conn().unwrap().max_write, 16 << 20);
    let (writes, reads) = sixteen_mib_round_trip(&m);
    assert_eq!(writes, vec![16 << 20], "one WRITE of 16 MiB");
    assert_eq!(reads, vec![16 << 20], "one READ of 16 MiB");
    let stats = m.session().stats();
    assert_eq!(stats.largest_write, 16 << 20);
    assert_eq!(stats.largest_read, 16 << 20);
    let exits = m.unmount();
    assert!(
        exits.iter().all(|e| *e == Ok(WorkerExit::Unmounted)),
        "{exits:?}"
    );
}

#[test]
fn sixteen_mib_direct_write_is_sixteen_requests_at_the_default_limit() {
    require_mounts!();
    let _shared = KnobLock::shared(&knob_name(MAX_PAGES_LIMIT));
    let limit = std::fs::read_to_string(MAX_PAGES_LIMIT).expect("read limit");
    if limit.trim() != "256" {
        eprintln!(
            "SKIPPED: max_pages_limit is {} here, not the default 256",
            limit.trim()
        );
        return;
    }
    let m = Mounted::with_defaults(RecordFs::default());
    // Asked 16 MiB, granted what the kernel allows, and said why.
    let plan = m.session().plan();
    assert_eq!(plan.max_message_asked, 16 << 20);
    assert_eq!(plan.max_write, 1 << 20);
    assert!(
        plan.negotiation()
            .to_string()
            .contains("raise fs.fuse.max_pages_limit to 4096")
    );
    let (writes, reads) = sixteen_mib_round_trip(&m);
    assert_eq!(writes, vec![1 << 20; 16], "sixteen 1 MiB WRITEs");
    assert_eq!(reads, vec![1 << 20; 16], "sixteen 1 MiB READs");
}

#[test]
fn workers_end_cleanly_on_unmount_and_return_every_block() {
    require_mounts!();
    let m = Mounted::with_defaults(RecordFs::default());
    std::fs::write(m.path().join("f"), b"hello").expect("write");
    assert_eq!(std::fs::read(m.path().join("f")).expect("read"), b"hello");
    let session = m.session().clone();
    let exits = m.unmount();
    assert_eq!(exits.len(), session.plan().workers);
    assert!(
        exits.iter().all(|e| *e == Ok(WorkerExit::Unmounted)),
        "{exits:?}"
    );
    assert_eq!(session.pool_stats().in_use, 0);
}
