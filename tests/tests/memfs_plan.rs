//! The storage plan: what `MemFs::new` lays out is what it reports, all of
//! it is resident at once (serving faults nothing in), and unusable
//! budgets are refused. Also the `direct_io` and `keep_cache` options.
//!
//! One test per process would be cleanest for RSS; the RSS test holds a
//! lock so the other tests of this file do not allocate meanwhile.

mod memfs_util;

use std::sync::Mutex;

use memfs_util::*;
use slabfuse_memfs::{MemFs, MemFsConfig, MemFsError};

static RSS: Mutex<()> = Mutex::new(());

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let kib = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .expect("VmRSS in /proc/self/status");
    kib * 1024
}

#[test]
fn mapped_bytes_are_exact_and_resident_at_start_up() {
    let _only = RSS.lock().unwrap();
    let config = MemFsConfig {
        size_bytes: 96 << 20,
        inodes: 100_000,
        lock: false,
        ..MemFsConfig::default()
    };
    let before = rss_bytes();
    let fs = MemFs::new(&config).unwrap();
    let grown = rss_bytes().saturating_sub(before);
    let plan = fs.storage_plan();
    eprintln!("{plan:?}, RSS grew by {grown} bytes");
    assert_eq!(plan.data_bytes, 96 << 20);
    assert_eq!(plan.inodes, 100_000);
    assert_eq!(plan.mapped_bytes, plan.slab_bytes + plan.metadata_bytes);
    // The slab: 4 KiB per chunk plus 4 bytes of free-list link per chunk.
    assert_eq!(plan.slab_bytes, (96 << 20) + (96 << 20) / 4096 * 4);
    // Everything was touched at start-up: RSS grew by what the plan says
    // (within 2 MiB for allocator and page rounding, and THP rounding).
    let slack = 2 << 20;
    assert!(
        grown + slack >= plan.mapped_bytes && grown <= plan.mapped_bytes + 4 * slack,
        "RSS grew by {grown}, plan says {}",
        plan.mapped_bytes
    );
    assert_eq!(fs.used_bytes(), 0);
    assert_eq!(fs.inodes_used(), 1);
}

#[test]
fn unusable_budgets_are_refused() {
    let _only = RSS.lock().unwrap();
    for (size_bytes, inodes) in [(0, 10), (4095, 10), (1 << 20, 0), (1 << 50, 10)] {
        let r = MemFs::new(&MemFsConfig {
            size_bytes,
            inodes,
            lock: false,
            ..MemFsConfig::default()
        });
        assert!(
            matches!(r, Err(MemFsError::Budget)),
            "{size_bytes} {inodes}"
        );
    }
}

#[test]
fn direct_io_and_keep_cache_options_serve_correctly() {
    slabfuse_tests::require_mounts!();
    let _only = RSS.lock().unwrap();
    for (direct_io, keep_cache) in [(true, false), (false, true)] {
        let m = memfs(MemFsConfig {
            size_bytes: 32 << 20,
            direct_io,
            keep_cache,
            ..MemFsConfig::default()
        });
        let f = m.path().join("f");
        std::fs::write(&f, b"hello world").unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"hello world");
        let fd = open(&f, libc::O_RDWR, 0).unwrap();
        assert_eq!(pwrite(&fd, b"HELLO", 0), Ok(5));
        assert_eq!(std::fs::read(&f).unwrap(), b"HELLO world");
        // Shared writable mmap works in both modes.
        use std::os::fd::AsRawFd;
        // SAFETY: a fresh shared mapping of one page of our own file.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED, "mmap with direct_io={direct_io}");
        // SAFETY: `p` maps at least 11 readable and writable bytes.
        let map = unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), 11) };
        assert_eq!(&map[..], b"HELLO world");
        map[0] = b'J';
        // SAFETY: `p` is the mapping made above.
        assert_eq!(unsafe { libc::msync(p, 4096, libc::MS_SYNC) }, 0);
        // SAFETY: unmapping the mapping made above, once.
        unsafe { libc::munmap(p, 4096) };
        assert_eq!(std::fs::read(&f).unwrap(), b"JELLO world");
    }
}
