//! Concurrency: writers and readers on different files and on one file,
//! with self-describing 4 KiB blocks that readers verify; and a 16 MiB
//! writer that must not stall readers of other files.
//!
//! Every block a writer writes carries (file, block index, writer,
//! sequence) in its first 32 bytes and a fill derived from them, so a
//! reader can tell a whole block from a torn or misplaced one. Same-file
//! tests use `O_DIRECT` on both sides, so each read and write is one FUSE
//! request and memfs's per-file lock makes it atomic (the page cache makes
//! no such promise, on tmpfs either).

mod memfs_util;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use memfs_util::*;
use slabfuse_memfs::MemFsConfig;
use slabfuse_tests::{AlignedBuf, Rng};

const BLOCK: usize = 4096;

fn fill_block(buf: &mut [u8], file: u64, index: u64, writer: u64, seq: u64) {
    let head = [file, index, writer, seq];
    for (i, v) in head.iter().enumerate() {
        buf[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
    }
    let seed = file ^ index.rotate_left(17) ^ writer.rotate_left(33) ^ seq.rotate_left(47);
    for (i, b) in buf[32..].iter_mut().enumerate() {
        *b = (seed.wrapping_mul(i as u64 + 1) >> 24) as u8;
    }
}

/// Checks one block read back: all zeros (never written), or a whole
/// block of `file` at `index`.
fn check_block(buf: &[u8], file: u64, index: u64) -> Result<(), String> {
    if buf.iter().all(|&b| b == 0) {
        return Ok(());
    }
    let word = |i: usize| u64::from_le_bytes(buf[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
    let (f, i, w, s) = (word(0), word(1), word(2), word(3));
    if (f, i) != (file, index) {
        return Err(format!(
            "block {index} of file {file} holds block {i} of file {f}"
        ));
    }
    let mut expect = vec![0u8; BLOCK];
    fill_block(&mut expect, f, i, w, s);
    if buf != expect.as_slice() {
        return Err(format!(
            "block {index} of file {file} is torn (writer {w} seq {s})"
        ));
    }
    Ok(())
}

#[test]
fn writers_and_readers_on_different_files_and_on_one_file() {
    slabfuse_tests::require_mounts!();
    let m = memfs(MemFsConfig {
        size_bytes: 512 << 20,
        ..MemFsConfig::default()
    });
    let root = m.path().to_path_buf();
    let seed = slabfuse_tests::seed(0xc0c0);
    let stop = Arc::new(AtomicBool::new(false));
    let checked = Arc::new(AtomicU64::new(0));
    const FILES: u64 = 3; // 0, 1: own writer each; 2: shared by two writers
    const BLOCKS: u64 = 2048; // 8 MiB per file
    for f in 0..FILES {
        let fd = open(
            &root.join(format!("f{f}")),
            libc::O_CREAT | libc::O_RDWR,
            0o644,
        )
        .unwrap();
        ftruncate(&fd, BLOCKS * BLOCK as u64).unwrap();
    }
    let mut threads = Vec::new();
    // Writers: files 0 and 1 one each, file 2 two at once.
    for (writer, file) in [(0u64, 0u64), (1, 1), (2, 2), (3, 2)] {
        let root = root.clone();
        let stop = stop.clone();
        threads.push(std::thread::spawn(move || {
            let mut rng = Rng::new(seed ^ writer.wrapping_mul(0x9e37));
            let fd = open(
                &root.join(format!("f{file}")),
                libc::O_RDWR | libc::O_DIRECT,
                0,
            )
            .unwrap();
            let mut buf = AlignedBuf::zeroed(256 * BLOCK);
            let mut seq = 0;
            while !stop.load(Ordering::Relaxed) {
                let n = 1 + rng.below(256);
                let first = rng.below(BLOCKS - n + 1);
                for k in 0..n {
                    let b = (k as usize) * BLOCK;
                    fill_block(&mut buf[b..b + BLOCK], file, first + k, writer, seq);
                }
                let len = n as usize * BLOCK;
                assert_eq!(pwrite(&fd, &buf[..len], first * BLOCK as u64), Ok(len));
                seq += 1;
            }
            seq
        }));
    }
    // Readers: two per file, all O_DIRECT (one request per read).
    for reader in 0..6u64 {
        let file = reader % FILES;
        let root = root.clone();
        let stop = stop.clone();
        let checked = checked.clone();
        threads.push(std::thread::spawn(move || {
            let mut rng = Rng::new(seed ^ 0xbeef ^ reader);
            let fd = open(
                &root.join(format!("f{file}")),
                libc::O_RDONLY | libc::O_DIRECT,
                0,
            )
            .unwrap();
            let mut buf = AlignedBuf::zeroed(64 * BLOCK);
            while !stop.load(Ordering::Relaxed) {
                let n = 1 + rng.below(64);
                let first = rng.below(BLOCKS - n + 1);
                let len = n as usize * BLOCK;
                assert_eq!(pread(&fd, &mut buf[..len], first * BLOCK as u64), Ok(len));
                for k in 0..n as usize {
                    if let Err(e) =
                        check_block(&buf[k * BLOCK..(k + 1) * BLOCK], file, first + k as u64)
                    {
                        panic!("seed {seed}: {e}");
                    }
                }
                checked.fetch_add(n, Ordering::Relaxed);
            }
            0
        }));
    }
    std::thread::sleep(Duration::from_secs(4));
    stop.store(true, Ordering::Relaxed);
    let writes: Vec<u64> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    eprintln!(
        "writes per writer {:?}, blocks verified {}",
        &writes[..4],
        checked.load(Ordering::Relaxed)
    );
    assert!(
        writes[..4].iter().all(|&w| w > 10),
        "every writer made progress"
    );
    assert!(
        checked.load(Ordering::Relaxed) > 1000,
        "readers made progress"
    );
    // At rest, every block of every file is whole.
    for f in 0..FILES {
        let data = read_all(&root.join(format!("f{f}"))).unwrap();
        for (i, b) in data.chunks(BLOCK).enumerate() {
            check_block(b, f, i as u64).unwrap();
        }
    }
}

#[test]
fn a_16_mib_writer_does_not_stall_readers_of_other_files() {
    slabfuse_tests::require_mounts!();
    // 16 MiB requests need the kernel's page limit raised (restored after).
    let _limit = raise_max_pages(Duration::from_secs(20));
    let m = memfs(MemFsConfig {
        size_bytes: 256 << 20,
        ..MemFsConfig::default()
    });
    let root = m.path().to_path_buf();
    std::fs::write(root.join("small"), vec![7u8; 64 << 10]).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let big_writes = Arc::new(AtomicU64::new(0));
    let writer = {
        let (root, stop, big_writes) = (root.clone(), stop.clone(), big_writes.clone());
        std::thread::spawn(move || {
            let fd = open(
                &root.join("big"),
                libc::O_CREAT | libc::O_RDWR | libc::O_DIRECT,
                0o644,
            )
            .unwrap();
            let mut buf = AlignedBuf::zeroed(16 << 20);
            buf.fill(3);
            while !stop.load(Ordering::Relaxed) {
                assert_eq!(pwrite(&fd, &buf, 0), Ok(16 << 20));
                big_writes.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    // Wait for the writer to be under way, then time small reads.
    while big_writes.load(Ordering::Relaxed) == 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let fd = open(&root.join("small"), libc::O_RDONLY | libc::O_DIRECT, 0).unwrap();
    let mut buf = AlignedBuf::zeroed(64 << 10);
    let mut worst = Duration::ZERO;
    let mut reads = 0u32;
    let start = Instant::now();
    let writes_before = big_writes.load(Ordering::Relaxed);
    while start.elapsed() < Duration::from_secs(2) {
        let t = Instant::now();
        assert_eq!(pread(&fd, &mut buf, 0), Ok(64 << 10));
        worst = worst.max(t.elapsed());
        reads += 1;
    }
    let writes_during = big_writes.load(Ordering::Relaxed) - writes_before;
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert!(buf.iter().all(|&b| b == 7));
    eprintln!(
        "{reads} reads of another file during {writes_during} 16 MiB writes; worst {worst:?}"
    );
    // Reads interleave with the big writes instead of queueing behind them:
    // many more reads than writes completed in the same time.
    assert!(writes_during > 0);
    assert!(
        reads as u64 > 4 * writes_during,
        "reads stalled behind the writer"
    );
}

#[test]
fn concurrent_namespace_churn_stays_consistent_and_leaks_nothing() {
    slabfuse_tests::require_mounts!();
    let m = memfs(MemFsConfig {
        size_bytes: 64 << 20,
        inodes: 4096,
        ..MemFsConfig::default()
    });
    let root = m.path().to_path_buf();
    let seed = slabfuse_tests::seed(0xd1d1);
    for d in ["a", "b", "a/c"] {
        mkdir(&root.join(d), 0o755).unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let (root, stop) = (root.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut rng = Rng::new(seed ^ t);
                let dirs = ["", "a", "b", "a/c"];
                let names = ["x", "y", "z", "w", "c"];
                let pick = |rng: &mut Rng| {
                    let d = dirs[rng.below(4) as usize];
                    let n = names[rng.below(5) as usize];
                    root.join(d).join(n)
                };
                let mut ops = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let (p, q) = (pick(&mut rng), pick(&mut rng));
                    // Errors are expected (races, collisions); only hangs,
                    // crashes and inconsistencies count.
                    let _ = match rng.below(8) {
                        0 => std::fs::write(&p, vec![t as u8; rng.below(20000) as usize])
                            .map_err(|e| e.raw_os_error().unwrap_or(0)),
                        1 => mkdir(&p, 0o755),
                        2 => rmdir(&p),
                        3 => unlink(&p),
                        4 => link(&p, &q),
                        5 => rename2(&p, &q, 0),
                        6 => rename2(&p, &q, libc::RENAME_EXCHANGE),
                        _ => setxattr(&p, "user.t", &[t as u8; 100], 0),
                    };
                    ops += 1;
                }
                ops
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    let ops: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    eprintln!("{ops} namespace operations");
    // Directory link counts and sizes agree with what the tree holds.
    fn check(dir: &std::path::Path) -> u64 {
        let names = list(dir).unwrap();
        let st = lstat(dir).unwrap();
        let mut subdirs = 0;
        let mut inside = 0;
        for n in &names {
            let p = dir.join(n);
            if lstat(&p).unwrap().mode & libc::S_IFMT == libc::S_IFDIR {
                subdirs += 1;
                inside += check(&p);
            }
        }
        assert_eq!(st.nlink, 2 + subdirs, "{}", dir.display());
        assert_eq!(st.size, 40 + 20 * names.len() as i64, "{}", dir.display());
        names.len() as u64 + inside
    }
    check(&root);
    std::fs::remove_dir_all(root.join("a")).unwrap();
    std::fs::remove_dir_all(root.join("b")).unwrap();
    for n in list(&root).unwrap() {
        let p = root.join(n);
        if lstat(&p).unwrap().mode & libc::S_IFMT == libc::S_IFDIR {
            std::fs::remove_dir_all(&p).unwrap();
        } else {
            unlink(&p).unwrap();
        }
    }
    assert_eq!(m.fs().inodes_used(), 1);
    assert_eq!(m.fs().used_bytes(), 0);
    std::fs::write("/proc/sys/vm/drop_caches", "2").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while m.fs().slots_used() != 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(m.fs().slots_used(), 1, "inode slots leaked");
}
