//! Proofs on real mounts: **interrupts reach deferred requests**, **EAGAIN
//! when the pool is exhausted** (at the client, at once, the daemon serving
//! on), and **unmount with requests in flight** (every worker exits, every
//! block returns).

// Test code: a panic here is a failed test, not a crashed daemon.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use slabfuse::mount::MountOptions;
use slabfuse::pool::BackingRequest;
use slabfuse::{Config, WorkerExit, abi, init};
use slabfuse_tests::testfs::{self, StaticFs};
use slabfuse_tests::*;

fn config(spare_blocks: usize) -> Config {
    Config {
        workers: 2,
        max_message: 1 << 20,
        block_size: Some(1 << 20),
        spare_blocks: Some(spare_blocks),
        backing: BackingRequest::Thp,
        lock_memory: false,
        ..Config::default()
    }
}

fn options() -> MountOptions {
    MountOptions {
        fsname: "slabfuse-proof".into(),
        subtype: Some("slabfuse-proof".into()),
        allow_other: true,
        ..MountOptions::default()
    }
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Answers any deferred reply still held when a test ends (also when it
/// fails), so that no client stays blocked and the unmount can finish.
struct CompleteOnDrop(std::sync::Arc<StaticFs>);

impl Drop for CompleteOnDrop {
    fn drop(&mut self) {
        self.0.complete_deferred(0);
    }
}

extern "C" fn ignore_signal(_: libc::c_int) {}

/// Installs a SIGUSR1 handler without `SA_RESTART`, so a blocked read sees
/// the signal (and the kernel sends FUSE_INTERRUPT).
fn install_sigusr1() {
    // SAFETY: all-zero is a valid `sigaction` (no flags, no handler yet).
    let mut sa: libc::sigaction = unsafe { std::mem::zeroed() };
    sa.sa_sigaction = ignore_signal as *const () as usize;
    // SAFETY: `sa_mask` is a valid sigset_t owned by `sa`.
    unsafe { libc::sigemptyset(&mut sa.sa_mask) };
    // SAFETY: installs a handler that does nothing, which is
    // async-signal-safe; no old action is asked for.
    let rc = unsafe { libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()) };
    assert_eq!(rc, 0);
}

/// A thread that reads `len` bytes of `path` with O_DIRECT; sends back its
/// pthread id, then the read's result (bytes or errno).
fn reader(
    path: std::path::PathBuf,
    len: usize,
) -> (libc::pthread_t, mpsc::Receiver<Result<usize, i32>>) {
    let (id_tx, id_rx) = mpsc::channel();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // SAFETY: pthread_self has no preconditions.
        id_tx.send(unsafe { libc::pthread_self() }).unwrap();
        let f = open_direct(&path, 0, 0).unwrap();
        let mut buf = AlignedBuf::zeroed(len);
        let r = f
            .read_at(&mut buf, 0)
            .map_err(|e| e.raw_os_error().unwrap_or(0));
        let _ = tx.send(r);
    });
    (id_rx.recv().unwrap(), rx)
}

#[test]
fn interrupt_reaches_deferred_request() {
    require_mounts!();
    install_sigusr1();
    let fs = StaticFs::default();
    // Synchronous direct I/O: ASYNC_DIO would send the READ as a background
    // request, which the kernel never interrupts.
    fs.init_flags_override.store(
        init::DEFAULT_INIT_FLAGS & !abi::FUSE_ASYNC_DIO,
        Ordering::Relaxed,
    );
    let m = Mounted::new(fs, config(4), options());
    let _complete = CompleteOnDrop(std::sync::Arc::clone(m.fs()));
    let (thread, result) = reader(m.path().join("slow"), 4096);
    wait_until("the READ to be deferred", || m.fs().deferred_count() == 1);
    // SAFETY: `thread` is a live thread of this process (it is blocked in
    // read); SIGUSR1 has a handler installed.
    assert_eq!(unsafe { libc::pthread_kill(thread, libc::SIGUSR1) }, 0);
    let r = result
        .recv_timeout(Duration::from_secs(10))
        .expect("the read returned");
    assert_eq!(r, Err(libc::EINTR), "the caller sees EINTR");
    assert_eq!(
        m.fs().interrupts.load(Ordering::Relaxed),
        1,
        "INTERRUPT reached the filesystem"
    );
    assert_eq!(m.fs().deferred_count(), 0);
    // The slot is freed just after the reply is written (its blocks carry
    // the payload), so the caller may see EINTR a moment before.
    wait_until("the deferred slot to be freed", || {
        m.session().deferred_outstanding() == 0
    });
    assert_eq!(m.session().stats().interrupts_delivered, 1);
}

#[test]
fn eagain_when_pool_exhausted() {
    require_mounts!();
    // One spare 1 MiB block: one deferred 1 MiB read at a time.
    let m = Mounted::new(StaticFs::default(), config(1), options());
    let _complete = CompleteOnDrop(std::sync::Arc::clone(m.fs()));
    let receive_blocks = m.session().plan().receive_blocks;
    let slow = m.path().join("slow");
    let (_, first) = reader(slow.clone(), 1 << 20);
    wait_until("the first READ to be deferred", || {
        m.fs().deferred_count() == 1
    });
    assert_eq!(m.session().pool_stats().in_use, receive_blocks + 1);

    // The next one finds no block: EAGAIN at the client, at once.
    let t = Instant::now();
    let (_, second) = reader(slow.clone(), 1 << 20);
    let r = second.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(r, Err(libc::EAGAIN));
    let waited = t.elapsed();
    // Meanwhile everything else is served.
    let f = open_direct(&m.path().join("a"), 0, 0).unwrap();
    let mut buf = AlignedBuf::zeroed(1 << 20);
    assert_eq!(f.read_at(&mut buf, 0).unwrap(), 1 << 20);
    assert!(buf.iter().all(|&b| b == b'A'));
    assert!(std::fs::metadata(m.path().join("b")).is_ok());

    // The deferred read completes; its block comes back; reads work again.
    assert_eq!(m.fs().complete_deferred(1 << 20), 1);
    assert_eq!(
        first.recv_timeout(Duration::from_secs(10)).unwrap(),
        Ok(1 << 20)
    );
    assert_eq!(m.session().pool_stats().in_use, receive_blocks);
    let (_, third) = reader(slow, 4096);
    wait_until("the third READ to be deferred", || {
        m.fs().deferred_count() == 1
    });
    m.fs().complete_deferred(4096);
    assert_eq!(
        third.recv_timeout(Duration::from_secs(10)).unwrap(),
        Ok(4096)
    );
    let stats = m.session().stats();
    eprintln!(
        "EAGAIN reached the client after {waited:?}; eagain={}",
        stats.eagain
    );
    assert_eq!(stats.eagain, 1);
    assert!(m.session().pool_stats().exhausted >= 1);
}

#[test]
fn unmount_with_requests_in_flight_returns_every_block() {
    require_mounts!();
    let m = Mounted::new(StaticFs::default(), config(8), options());
    let session = m.session().clone();
    // Four reads held in deferred replies, plus traffic on the side.
    let mut readers = Vec::new();
    for _ in 0..4 {
        readers.push(reader(m.path().join("slow"), 1 << 20).1);
    }
    wait_until("four deferred READs", || m.fs().deferred_count() == 4);
    assert!(session.pool_stats().in_use > session.plan().receive_blocks);
    let fs = std::sync::Arc::clone(m.fs());
    let _complete = CompleteOnDrop(std::sync::Arc::clone(&fs));
    // Unmount (lazily, as the daemon does) while they are in flight; the
    // backend completes them afterwards, then the last file closes.
    let unmounting = std::thread::spawn(move || m.unmount());
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(fs.complete_deferred(1 << 20), 4);
    for r in readers {
        assert_eq!(
            r.recv_timeout(Duration::from_secs(10)).unwrap(),
            Ok(1 << 20)
        );
    }
    let exits = unmounting.join().unwrap();
    assert_eq!(exits.len(), 2);
    assert!(
        exits.iter().all(|e| *e == Ok(WorkerExit::Unmounted)),
        "{exits:?}"
    );
    assert_eq!(session.pool_stats().in_use, 0, "every block is back");
    assert_eq!(session.deferred_outstanding(), 0);
    let _ = testfs::FILE_A;
}

/// Writes `data` to `path` with O_DIRECT (creating it).
fn write_direct(path: &std::path::Path, data: &[u8]) {
    let f = open_direct(path, libc::O_CREAT, 0o644).unwrap();
    let mut buf = AlignedBuf::zeroed(data.len());
    buf.copy_from_slice(data);
    assert_eq!(f.write_at(&buf, 0).unwrap(), data.len());
}

/// Reads `len` bytes of `path` with O_DIRECT (from the daemon, not a cache).
fn read_direct(path: &std::path::Path, len: usize) -> Vec<u8> {
    let f = open_direct(path, 0, 0).unwrap();
    let mut buf = AlignedBuf::zeroed(len);
    assert_eq!(f.read_at(&mut buf, 0).unwrap(), len);
    buf.to_vec()
}

#[test]
fn eagain_when_pool_exhausted_loses_no_data() {
    use slabfuse_memfs::{MemFs, MemFsConfig};
    use slabfuse_tests::deferring::Deferring;
    use std::os::unix::fs::MetadataExt;
    require_mounts!();
    let memfs = MemFs::new(&MemFsConfig {
        size_bytes: 64 << 20,
        inodes: 1000,
        backing: BackingRequest::Thp,
        lock: false,
        ..MemFsConfig::default()
    })
    .unwrap();
    let m = Mounted::new(Deferring::new(memfs), config(1), options());
    let mut rng = Rng::new(slabfuse_tests::seed(9));
    let mut before = vec![0u8; 8 << 20];
    let mut slow = vec![0u8; 4 << 20];
    let mut after = vec![0u8; 8 << 20];
    rng.fill(&mut before);
    rng.fill(&mut slow);
    rng.fill(&mut after);
    write_direct(&m.path().join("before"), &before);
    write_direct(&m.path().join("slow"), &slow);
    let ino = std::fs::metadata(m.path().join("slow")).unwrap().ino();
    m.fs().slow_node.store(ino, Ordering::Relaxed);

    // One READ of the slow file holds the only spare block...
    let (_, first) = reader(m.path().join("slow"), 1 << 20);
    wait_until("the first READ to be held", || m.fs().held() == 1);
    // ...so the next finds none: EAGAIN at the client.
    let (_, second) = reader(m.path().join("slow"), 1 << 20);
    assert_eq!(
        second.recv_timeout(Duration::from_secs(10)).unwrap(),
        Err(libc::EAGAIN)
    );
    // Meanwhile writes and reads of other files go on, and lose nothing.
    write_direct(&m.path().join("after"), &after);
    assert!(read_direct(&m.path().join("before"), before.len()) == before);
    // The held READ completes with the right bytes; its block comes back.
    assert_eq!(m.fs().complete(), 1);
    assert_eq!(
        first.recv_timeout(Duration::from_secs(10)).unwrap(),
        Ok(1 << 20)
    );
    wait_until("the spare block to come back", || {
        m.session().pool_stats().in_use == m.session().plan().receive_blocks
    });
    // Everything written before and during the exhaustion is intact.
    assert!(read_direct(&m.path().join("before"), before.len()) == before);
    assert!(read_direct(&m.path().join("after"), after.len()) == after);
    m.fs().slow_node.store(0, Ordering::Relaxed);
    assert!(read_direct(&m.path().join("slow"), slow.len()) == slow);
    assert_eq!(m.session().stats().eagain, 1);
}
