//! The backbone: seeded random operation sequences run on memfs and on a
//! tmpfs side by side, every result, errno, stat field, timestamp change,
//! listing and byte compared.
//!
//! A small namespace (four directories, a handful of names) makes the
//! operations collide: renames over existing names, links to directories,
//! rmdir of non-empty directories, writes through symlinks, and so on.
//! Writes go at random offsets with sizes up to 16 MiB, buffered, with
//! `O_APPEND`, `O_TRUNC` and `O_DIRECT`; then truncate, fallocate (every
//! mode), rename (with `RENAME_NOREPLACE` / `RENAME_EXCHANGE`), link,
//! unlink, mkdir, rmdir, symlink, mknod, chmod, utimensat, xattrs, reads,
//! `SEEK_DATA` / `SEEK_HOLE` and `copy_file_range`. Every few steps, and at
//! the end, the two trees are compared in full.
//!
//! `SLABFUSE_SEED=<n>` replays a run; `SLABFUSE_DIFF_STEPS=<n>` sets its
//! length (default 1200, about 20 s here).

mod memfs_util;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use memfs_util::*;
use slabfuse_memfs::MemFsConfig;
use slabfuse_tests::{AlignedBuf, Rng};

const DIRS: [&str; 4] = ["", "d0", "d1", "d0/d2"];
/// Names of files (mostly) and of the directories (sometimes: collisions).
const NAMES: [&str; 9] = ["a", "b", "c", "e", "f", "d0", "d1", "d2", "l"];
const XATTRS: [&str; 7] = [
    "user.a",
    "user.b",
    "trusted.t",
    "security.s",
    "user.",
    "other.x",
    "system.y",
];

/// The two filesystems, memfs first.
struct Pair {
    roots: [PathBuf; 2],
}

/// One step's observable outcome on one filesystem.
type Outcome = Result<String, i32>;

fn path(rng: &mut Rng) -> String {
    let dir = DIRS[rng.below(DIRS.len() as u64) as usize];
    let name = if rng.chance(4, 5) {
        NAMES[rng.below(5) as usize]
    } else {
        NAMES[5 + rng.below(4) as usize]
    };
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

fn size(rng: &mut Rng) -> usize {
    match rng.below(100) {
        0..=69 => rng.below(8192) as usize,
        70..=89 => rng.below(256 << 10) as usize,
        90..=97 => rng.below(2 << 20) as usize,
        _ => rng.below(16 << 20) as usize + 1,
    }
}

fn offset(rng: &mut Rng) -> u64 {
    match rng.below(100) {
        0..=49 => rng.below(64 << 10),
        50..=89 => rng.below(4 << 20),
        _ => rng.below(64 << 20),
    }
}

fn show<T: std::fmt::Debug>(r: R<T>) -> Outcome {
    r.map(|v| format!("{v:?}"))
}

/// The parent directory of a relative path ("" for the root).
fn parent(rel: &str) -> String {
    match rel.rfind('/') {
        Some(i) => rel[..i].to_string(),
        None => String::new(),
    }
}

impl Pair {
    fn at(&self, fs: usize, rel: &str) -> PathBuf {
        if rel.is_empty() {
            self.roots[fs].clone()
        } else {
            self.roots[fs].join(rel)
        }
    }

    /// Which of mtime and ctime of each of `watch` changed across `op`
    /// (atime is left out: page-cache hits on memfs reach no daemon).
    fn timed(&self, watch: &[String], op: &dyn Fn(&Path) -> Outcome) -> [(Outcome, String); 2] {
        if !watch.is_empty() {
            // tmpfs may stamp with the coarse clock: let it tick, or a
            // change within one tick would look like no change.
            std::thread::sleep(coarse_tick());
        }
        std::array::from_fn(|fs| {
            let before: Vec<_> = watch.iter().map(|w| times(&self.at(fs, w))).collect();
            let out = op(&self.roots[fs]);
            let after: Vec<_> = watch.iter().map(|w| times(&self.at(fs, w))).collect();
            if std::env::var_os("SLABFUSE_DIFF_TRACE").is_some() {
                eprintln!("  fs {fs}: {watch:?} before {before:?} after {after:?}");
            }
            let mask: String = before
                .iter()
                .zip(&after)
                .map(|(b, a)| match (b, a) {
                    (Ok(b), Ok(a)) => format!(
                        "{}{} ",
                        if b[1] != a[1] { 'm' } else { '-' },
                        if b[2] != a[2] { 'c' } else { '-' }
                    ),
                    _ => "?? ".to_string(),
                })
                .collect();
            (out, mask)
        })
    }
}

fn write_step(root: &Path, rel: &str, flags: i32, off: u64, data: &[u8]) -> Outcome {
    let fd = open(&root.join(rel), flags | libc::O_NONBLOCK, 0o644)?;
    let n = if flags & libc::O_APPEND != 0 {
        write(&fd, data)?
    } else {
        pwrite(&fd, data, off)?
    };
    Ok(format!("wrote {n}"))
}

fn direct_step(root: &Path, rel: &str, off: u64, buf: &AlignedBuf) -> Outcome {
    let fd = open(
        &root.join(rel),
        libc::O_CREAT | libc::O_RDWR | libc::O_DIRECT | libc::O_NONBLOCK,
        0o600,
    )?;
    let n = pwrite(&fd, buf, off)?;
    let mut back = AlignedBuf::zeroed(buf.len());
    let m = pread(&fd, &mut back, off)?;
    Ok(format!("direct {n} {m} {}", back[..m] == buf[..m]))
}

fn with_fd(root: &Path, rel: &str, flags: i32, f: impl FnOnce(&OwnedFd) -> Outcome) -> Outcome {
    // O_NONBLOCK: the namespace holds FIFOs, whose opens would block.
    let fd = open(&root.join(rel), flags | libc::O_NONBLOCK, 0)?;
    f(&fd)
}

#[test]
fn random_operations_match_tmpfs() {
    slabfuse_tests::require_mounts!();
    let seed = slabfuse_tests::seed(0x5eed_d1ff);
    let steps: usize = std::env::var("SLABFUSE_DIFF_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1200);
    let memfs = memfs(MemFsConfig {
        size_bytes: 1 << 30,
        ..MemFsConfig::default()
    });
    let tmpfs = Tmpfs::mount("size=1g,mode=755");
    // The roots start alike: same mode (memfs's root is 1777 by default).
    chmod(memfs.path(), 0o755).unwrap();
    let pair = Pair {
        roots: [memfs.path().to_path_buf(), tmpfs.path().to_path_buf()],
    };
    let mut rng = Rng::new(seed);
    for dir in &DIRS[1..] {
        for fs in 0..2 {
            mkdir(&pair.at(fs, dir), 0o755).unwrap();
        }
    }
    // Per operation kind: (succeeded, failed), to show the mix exercised.
    let mut tally = std::collections::BTreeMap::<String, (u32, u32)>::new();
    let mut data = vec![0u8; 16 << 20];
    rng.fill(&mut data);
    for step in 0..steps {
        let a = path(&mut rng);
        let b = path(&mut rng);
        let pa = parent(&a);
        let pb = parent(&b);
        let kind = rng.below(24);
        let (what, results): (String, [(Outcome, String); 2]) = match kind {
            0..=3 => {
                let mut flags = libc::O_CREAT | libc::O_WRONLY;
                if rng.chance(1, 6) {
                    flags |= libc::O_TRUNC;
                }
                if rng.chance(1, 6) {
                    flags |= libc::O_APPEND;
                }
                if rng.chance(1, 10) {
                    flags |= libc::O_EXCL;
                }
                let (off, len) = (offset(&mut rng), size(&mut rng));
                let start = rng.below((data.len() - len) as u64 + 1) as usize;
                let chunk = &data[start..start + len];
                let r = pair.timed(&[a.clone(), pa.clone()], &|root| {
                    write_step(root, &a, flags, off, chunk)
                });
                (format!("write {a} flags {flags:#o} off {off} len {len}"), r)
            }
            4 => {
                let off = rng.below(2048) * 4096;
                let len = (rng.below(1024) as usize + 1) * 4096;
                let mut buf = AlignedBuf::zeroed(len);
                rng.fill(&mut buf);
                let r = pair.timed(std::slice::from_ref(&a), &|root| {
                    direct_step(root, &a, off, &buf)
                });
                (format!("O_DIRECT write {a} off {off} len {len}"), r)
            }
            5 => {
                let len = if rng.chance(1, 2) {
                    rng.below(16384)
                } else {
                    offset(&mut rng)
                };
                let r = pair.timed(std::slice::from_ref(&a), &|root| {
                    show(truncate(&root.join(&a), len))
                });
                (format!("truncate {a} {len}"), r)
            }
            6 => {
                let modes = [
                    0,
                    libc::FALLOC_FL_KEEP_SIZE,
                    libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                    libc::FALLOC_FL_ZERO_RANGE,
                    libc::FALLOC_FL_PUNCH_HOLE,
                ];
                let mode = modes[rng.below(modes.len() as u64) as usize];
                let (off, len) = (offset(&mut rng), size(&mut rng) as u64);
                let r = pair.timed(std::slice::from_ref(&a), &|root| {
                    with_fd(root, &a, libc::O_RDWR, |fd| {
                        show(fallocate(fd, mode, off, len))
                    })
                });
                (format!("fallocate {a} mode {mode} off {off} len {len}"), r)
            }
            7 | 8 => {
                let flags =
                    [0, 0, 0, libc::RENAME_NOREPLACE, libc::RENAME_EXCHANGE][rng.below(5) as usize];
                // Names move: the parents are watched by name, the moved
                // inodes by where they end up.
                let r = pair.timed(&[pa.clone(), pb.clone()], &|root| {
                    let (fa, fb) = (root.join(&a), root.join(&b));
                    let before = (times(&fa), times(&fb));
                    let r = rename2(&fa, &fb, flags);
                    let moved = match (&r, flags) {
                        (Ok(()), libc::RENAME_EXCHANGE) => (times(&fb), times(&fa)),
                        (Ok(()), _) => (times(&fb), Err(0)),
                        _ => (times(&fa), times(&fb)),
                    };
                    let c = |b: &R<[i128; 3]>, a: &R<[i128; 3]>| match (b, a) {
                        (Ok(b), Ok(a)) => {
                            if b[2] != a[2] {
                                "c"
                            } else {
                                "-"
                            }
                        }
                        _ => "?",
                    };
                    r.map(|()| format!("{}{}", c(&before.0, &moved.0), c(&before.1, &moved.1)))
                });
                (format!("rename {a} -> {b} flags {flags}"), r)
            }
            9 => {
                let r = pair.timed(&[a.clone(), pb.clone()], &|root| {
                    show(link(&root.join(&a), &root.join(&b)))
                });
                (format!("link {a} {b}"), r)
            }
            10 => {
                let r = pair.timed(std::slice::from_ref(&pa), &|root| {
                    show(unlink(&root.join(&a)))
                });
                (format!("unlink {a}"), r)
            }
            11 => {
                let mode = [0o755, 0o700, 0o2775, 0o1777][rng.below(4) as usize];
                let r = pair.timed(std::slice::from_ref(&pa), &|root| {
                    show(mkdir(&root.join(&a), mode))
                });
                (format!("mkdir {a} {mode:o}"), r)
            }
            12 => {
                let r = pair.timed(std::slice::from_ref(&pa), &|root| {
                    show(rmdir(&root.join(&a)))
                });
                (format!("rmdir {a}"), r)
            }
            13 => {
                let target: Vec<u8> = if rng.chance(1, 3) {
                    vec![b'x'; 100 + rng.below(400) as usize]
                } else {
                    NAMES[rng.below(NAMES.len() as u64) as usize]
                        .as_bytes()
                        .to_vec()
                };
                let r = pair.timed(std::slice::from_ref(&pa), &|root| {
                    show(symlink(&target, &root.join(&a)))
                });
                (format!("symlink {a} len {}", target.len()), r)
            }
            14 => {
                let mode = [0o644, 0o600, 0o4755, 0o2755, 0o1777, 0o000][rng.below(6) as usize];
                let r = pair.timed(std::slice::from_ref(&a), &|root| {
                    show(chmod(&root.join(&a), mode))
                });
                (format!("chmod {a} {mode:o}"), r)
            }
            15 => {
                let t = |rng: &mut Rng| match rng.below(4) {
                    0 => (0, libc::UTIME_NOW),
                    1 => (0, libc::UTIME_OMIT),
                    _ => (
                        rng.below(2_000_000_000) as i64,
                        rng.below(1_000_000_000) as i64,
                    ),
                };
                let (at, mt) = (t(&mut rng), t(&mut rng));
                let nofollow = rng.chance(1, 2);
                let r = pair.timed(std::slice::from_ref(&a), &|root| {
                    let p = root.join(&a);
                    utimens(&p, at, mt, nofollow)?;
                    // Times set explicitly must read back exactly.
                    let t = times(&p)?;
                    if !nofollow && lstat(&p).map(|s| s.mode & libc::S_IFMT) == Ok(libc::S_IFLNK) {
                        return Ok("link".to_string());
                    }
                    let shown = |set: (i64, i64), got: i128| match set.1 {
                        libc::UTIME_NOW => "now".to_string(),
                        libc::UTIME_OMIT => "omit".to_string(),
                        _ => got.to_string(),
                    };
                    Ok(format!("{} {}", shown(at, t[0]), shown(mt, t[1])))
                });
                (format!("utimens {a} {at:?} {mt:?} nofollow {nofollow}"), r)
            }
            16 | 17 => {
                let name = if rng.chance(5, 6) {
                    XATTRS[rng.below(4) as usize]
                } else {
                    XATTRS[4 + rng.below(3) as usize]
                };
                let op = rng.below(4);
                let len = if rng.chance(1, 8) {
                    5000 + rng.below(60000)
                } else {
                    rng.below(300)
                } as usize;
                let start = rng.below((data.len() - len) as u64) as usize;
                let value = &data[start..start + len];
                let flags = [0, 0, libc::XATTR_CREATE, libc::XATTR_REPLACE][rng.below(4) as usize];
                let r = pair.timed(std::slice::from_ref(&a), &|root| {
                    let p = root.join(&a);
                    match op {
                        0 | 1 => show(setxattr(&p, name, value, flags)),
                        2 => show(removexattr(&p, name)),
                        _ => show(getxattr(&p, name).map(|v| v.len())),
                    }
                });
                (
                    format!("xattr op {op} {a} {name} len {len} flags {flags}"),
                    r,
                )
            }
            18 => {
                let d = DIRS[rng.below(DIRS.len() as u64) as usize];
                let r = pair.timed(&[], &|root| {
                    show(list(&if d.is_empty() {
                        root.to_path_buf()
                    } else {
                        root.join(d)
                    }))
                });
                (format!("readdir {d}"), r)
            }
            19 => {
                let r = pair.timed(&[], &|root| show(lstat(&root.join(&a))));
                (format!("lstat {a}"), r)
            }
            20 => {
                let (off, len) = (offset(&mut rng), size(&mut rng));
                let r = pair.timed(&[], &|root| {
                    with_fd(root, &a, libc::O_RDONLY, |fd| {
                        let mut buf = vec![0u8; len];
                        let n = pread(fd, &mut buf, off)?;
                        let sum = buf[..n]
                            .iter()
                            .fold(0u64, |s, &b| s.wrapping_mul(31).wrapping_add(u64::from(b)));
                        Ok(format!("{n} {sum}"))
                    })
                });
                (format!("read {a} off {off} len {len}"), r)
            }
            21 => {
                let off = offset(&mut rng) as i64;
                let whence = if rng.chance(1, 2) {
                    libc::SEEK_DATA
                } else {
                    libc::SEEK_HOLE
                };
                let r = pair.timed(&[], &|root| {
                    // Known difference: a directory's SEEK_DATA is the
                    // kernel's generic llseek on FUSE (ENXIO past its
                    // size), EINVAL on tmpfs. Not the filesystem's call.
                    if std::fs::metadata(root.join(&a)).is_ok_and(|m| m.is_dir()) {
                        return Ok("dir".into());
                    }
                    with_fd(root, &a, libc::O_RDONLY, |fd| show(lseek(fd, off, whence)))
                });
                (format!("lseek {a} {off} {whence}"), r)
            }
            22 => {
                let (oa, ob, len) = (offset(&mut rng), offset(&mut rng), size(&mut rng));
                let r = pair.timed(std::slice::from_ref(&b), &|root| {
                    let fa = open(&root.join(&a), libc::O_RDONLY | libc::O_NONBLOCK, 0)?;
                    let fb = open(
                        &root.join(&b),
                        libc::O_WRONLY | libc::O_CREAT | libc::O_NONBLOCK,
                        0o644,
                    )?;
                    show(copy_file_range(&fa, oa, &fb, ob, len))
                });
                (format!("copy_file_range {a}@{oa} -> {b}@{ob} len {len}"), r)
            }
            _ => {
                let r = pair.timed(std::slice::from_ref(&pa), &|root| {
                    if rng_free_choice(step) {
                        show(mknod(&root.join(&a), libc::S_IFIFO | 0o644, 0))
                    } else {
                        with_fd(root, &a, libc::O_WRONLY | libc::O_TRUNC, |_| {
                            Ok("trunc".into())
                        })
                    }
                });
                (format!("mknod-or-otrunc {a}"), r)
            }
        };
        if std::env::var_os("SLABFUSE_DIFF_TRACE").is_some() {
            eprintln!("step {step}: {what}");
        }
        let [(ma, mm), (ta, tm)] = &results;
        let t = tally
            .entry(what.split_whitespace().next().unwrap_or("").to_string())
            .or_default();
        if ma.is_ok() {
            t.0 += 1;
        } else {
            t.1 += 1;
        }
        assert_eq!(
            (ma, mm),
            (ta, tm),
            "step {step} (seed {seed}): {what}: memfs (left) and tmpfs (right) differ"
        );
        let trace = std::env::var_os("SLABFUSE_DIFF_TRACE").is_some();
        if trace || step % 100 == 99 || step + 1 == steps {
            if let Err(e) = compare_trees(&pair.roots[0], &pair.roots[1]) {
                panic!("step {step} (seed {seed}) after {what}: trees differ: {e}");
            }
            // What the kernel caches of memfs (names and attributes, for
            // a day by default) is what memfs holds: the same walk after
            // the kernel dropped its caches, so that every name and every
            // attribute comes from memfs again, shows the same.
            let paths = tree_paths(&pair.roots[0]);
            let cached = attributes(&pair.roots[0], &paths);
            drop_kernel_caches();
            let fresh = attributes(&pair.roots[0], &paths);
            for (c, f) in cached.iter().zip(&fresh) {
                assert_eq!(
                    c, f,
                    "step {step} (seed {seed}): the kernel's cache (left) and memfs (right) differ"
                );
            }
            assert_eq!(cached.len(), fresh.len());
            // Inodes in use (hard links beyond the first count, as on
            // tmpfs) agree too.
            let used = pair.roots.clone().map(|r| {
                let st = statvfs(&r);
                st.f_files - st.f_ffree
            });
            assert_eq!(
                used[0], used[1],
                "step {step} (seed {seed}): inodes in use differ"
            );
        }
    }
    eprintln!("operations (ok, failed): {tally:?}");
}

/// One tick of the coarse clock tmpfs may stamp with, plus a margin.
fn coarse_tick() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid timespec to fill.
    let r = unsafe { libc::clock_getres(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    let res = if r == 0 {
        ts.tv_nsec as u64
    } else {
        10_000_000
    };
    std::time::Duration::from_nanos(res + 500_000)
}

/// A deterministic choice that does not consume the generator (so that
/// both filesystems' closures decide alike).
fn rng_free_choice(step: usize) -> bool {
    step.is_multiple_of(2)
}
