//! 16 MiB reads go out straight from the chunk slab: a file written
//! sequentially, also after deletes (which give chunks back in file order)
//! and while another file is written at the same time, has its chunks in
//! slab order, so a 16 MiB READ reply is a few slices, never the copy that
//! a reply of more than `MAX_DATA_PARTS` slices needs. The copy is still
//! there for files whose chunks really are scattered.

mod memfs_util;

use std::path::Path;
use std::time::Duration;

use memfs_util::*;
use slabfuse_memfs::MemFsConfig;
use slabfuse_tests::AlignedBuf;

const MIB: usize = 1 << 20;
const BIG: usize = 16 * MIB;

/// Data of block `i` of file `tag`: every 4 KiB page differs.
fn fill(buf: &mut [u8], tag: u8, block: usize) {
    for (p, page) in buf.chunks_mut(4096).enumerate() {
        page.fill(tag ^ (block as u8).wrapping_mul(31) ^ (p as u8));
    }
}

/// Writes `blocks` blocks of `len` bytes with O_DIRECT, in order.
fn write_file(path: &Path, tag: u8, blocks: usize, len: usize) {
    let fd = open(path, libc::O_CREAT | libc::O_WRONLY | libc::O_DIRECT, 0o644).expect("create");
    let mut buf = AlignedBuf::zeroed(len);
    for b in 0..blocks {
        fill(&mut buf, tag, b);
        assert_eq!(pwrite(&fd, &buf, (b * len) as u64), Ok(len));
    }
}

/// Reads the file back in 16 MiB O_DIRECT reads and checks every byte.
fn check_file(path: &Path, tag: u8, blocks: usize, len: usize) {
    let fd = open(path, libc::O_RDONLY | libc::O_DIRECT, 0).expect("open");
    let mut buf = AlignedBuf::zeroed(BIG);
    let mut want = vec![0u8; len];
    let total = blocks * len;
    for at in (0..total).step_by(BIG) {
        assert_eq!(pread(&fd, &mut buf, at as u64), Ok(BIG.min(total - at)));
        for (i, got) in buf.chunks(len).enumerate() {
            fill(&mut want, tag, (at + i * len) / len);
            assert!(got == &want[..], "{} at {}", path.display(), at + i * len);
        }
    }
}

#[test]
fn sixteen_mib_reads_of_sequential_files_are_not_copied() {
    slabfuse_tests::require_mounts!();
    // 16 MiB requests need the kernel's page limit raised (restored after).
    let Some(_limit) = raise_max_pages(Duration::from_secs(20)) else {
        eprintln!("SKIPPED: max_pages_limit could not be raised to 4096");
        return;
    };
    let m = memfs(MemFsConfig {
        size_bytes: 256 << 20,
        ..MemFsConfig::default()
    });
    let root = m.path().to_path_buf();
    // Written, read, deleted, three times: the frees of one round are the
    // chunks of the next.
    for round in 0..3u8 {
        let f = root.join("seq");
        write_file(&f, round, 6, BIG);
        check_file(&f, round, 6, BIG);
        unlink(&f).unwrap();
    }
    assert_eq!(m.fs().reads_copied(), 0, "sequential files were copied");
    // Two files written at once, 1 MiB at a time each.
    for round in 0..2u8 {
        std::thread::scope(|s| {
            for (tag, name) in [(10 + round, "a"), (20 + round, "b")] {
                let p = root.join(name);
                s.spawn(move || write_file(&p, tag, 64, MIB));
            }
        });
        check_file(&root.join("a"), 10 + round, 64, MIB);
        check_file(&root.join("b"), 20 + round, 64, MIB);
        unlink(&root.join("a")).unwrap();
        unlink(&root.join("b")).unwrap();
    }
    assert_eq!(
        m.fs().reads_copied(),
        0,
        "files written side by side were copied"
    );
}

#[test]
fn scattered_chunks_are_still_read_right_through_the_copy() {
    slabfuse_tests::require_mounts!();
    let Some(_limit) = raise_max_pages(Duration::from_secs(20)) else {
        eprintln!("SKIPPED: max_pages_limit could not be raised to 4096");
        return;
    };
    let m = memfs(MemFsConfig {
        size_bytes: 32 << 20,
        ..MemFsConfig::default()
    });
    let root = m.path().to_path_buf();
    // Every chunk taken, then every other one freed: a new file gets
    // chunks with a gap after each.
    let full = open(&root.join("full"), libc::O_CREAT | libc::O_RDWR, 0o644).unwrap();
    fallocate(&full, 0, 0, 32 << 20).unwrap();
    let mode = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
    for page in (0..(32 << 20) / 4096).step_by(2) {
        fallocate(&full, mode, page * 4096, 4096).unwrap();
    }
    let f = root.join("scattered");
    write_file(&f, 7, 1, BIG);
    assert_eq!(statvfs(&root).f_bfree, 0);
    check_file(&f, 7, 1, BIG);
    assert!(m.fs().reads_copied() >= 1, "4096 runs fit no reply");
}
