//! Feature by feature, memfs against tmpfs: each test runs the same
//! sequence of calls on a memfs mount and on a tmpfs mount and compares the
//! transcripts (results, errnos, stat fields, contents, listings).
//!
//! What is compared is what both must agree on; inode numbers and absolute
//! times are left out (times are compared as "changed or not", or read
//! back after being set explicitly).

mod memfs_util;

use std::fmt::Debug;
use std::path::Path;

use memfs_util::*;
use slabfuse_memfs::MemFsConfig;
use slabfuse_tests::AlignedBuf;

/// A transcript of one run.
#[derive(Default)]
struct Log(Vec<String>);

impl Log {
    fn push<T: Debug>(&mut self, what: &str, v: T) {
        self.0.push(format!("{what}: {v:?}"));
    }
}

/// Runs `f` on memfs and on tmpfs (same budget where it matters) and
/// compares the transcripts line by line.
fn both(f: impl Fn(&Path, &mut Log)) {
    let memfs = memfs(MemFsConfig {
        size_bytes: 256 << 20,
        ..MemFsConfig::default()
    });
    let tmpfs = Tmpfs::mount("size=256m,mode=1777");
    let mut logs = [Log::default(), Log::default()];
    f(memfs.path(), &mut logs[0]);
    f(tmpfs.path(), &mut logs[1]);
    if std::env::var_os("SLABFUSE_SHOW_TRANSCRIPT").is_some() {
        for line in &logs[0].0 {
            eprintln!("  {line}");
        }
    }
    for (i, (m, t)) in logs[0].0.iter().zip(&logs[1].0).enumerate() {
        assert_eq!(m, t, "line {i}: memfs (left) and tmpfs (right) differ");
    }
    assert_eq!(logs[0].0.len(), logs[1].0.len());
}

fn changed(before: R<[i128; 3]>, after: R<[i128; 3]>) -> String {
    match (before, after) {
        (Ok(b), Ok(a)) => ["a", "m", "c"]
            .iter()
            .enumerate()
            .map(|(i, n)| if b[i] != a[i] { *n } else { "-" })
            .collect(),
        _ => "?".into(),
    }
}

/// Which times of `paths` the call `f` changed (after letting the coarse
/// clock tick, which tmpfs may stamp with).
fn stamps<T: Debug>(log: &mut Log, what: &str, paths: &[&Path], f: impl FnOnce() -> T) {
    std::thread::sleep(std::time::Duration::from_millis(11));
    let before: Vec<_> = paths.iter().map(|p| times(p)).collect();
    let r = f();
    let after: Vec<_> = paths.iter().map(|p| times(p)).collect();
    let marks: Vec<String> = before
        .into_iter()
        .zip(after)
        .map(|(b, a)| changed(b, a))
        .collect();
    log.push(what, (r, marks));
}

#[test]
fn files_directories_and_their_errors() {
    slabfuse_tests::require_mounts!();
    both(|r, log| {
        log.push("root", lstat(r));
        let f = r.join("f");
        let fd = open(&f, libc::O_CREAT | libc::O_EXCL | libc::O_RDWR, 0o640).unwrap();
        log.push("write", pwrite(&fd, b"hello world", 0));
        log.push(
            "excl again",
            open(&f, libc::O_CREAT | libc::O_EXCL | libc::O_RDWR, 0o640).map(drop),
        );
        log.push("stat", lstat(&f));
        log.push("read", read_all(&f));
        log.push("mkdir", mkdir(&r.join("d"), 0o750));
        log.push("mkdir again", mkdir(&r.join("d"), 0o750));
        log.push("mkdir sub", mkdir(&r.join("d/s"), 0o700));
        log.push("dir stat", lstat(&r.join("d")));
        log.push("root stat", lstat(r));
        log.push("rmdir nonempty", rmdir(&r.join("d")));
        log.push("rmdir file", rmdir(&f));
        log.push("unlink dir", unlink(&r.join("d")));
        log.push("unlink missing", unlink(&r.join("nope")));
        log.push(
            "open missing",
            open(&r.join("nope"), libc::O_RDONLY, 0).map(drop),
        );
        log.push(
            "through file",
            open(&r.join("f/x"), libc::O_CREAT | libc::O_RDWR, 0o600).map(drop),
        );
        log.push("mkdir in missing", mkdir(&r.join("no/x"), 0o700));
        log.push(
            "open dir for write",
            open(&r.join("d"), libc::O_RDWR, 0).map(drop),
        );
        log.push(
            "name 255",
            open(
                &r.join("n".repeat(255)),
                libc::O_CREAT | libc::O_RDWR,
                0o600,
            )
            .map(drop),
        );
        log.push(
            "name 256",
            open(
                &r.join("n".repeat(256)),
                libc::O_CREAT | libc::O_RDWR,
                0o600,
            )
            .map(drop),
        );
        log.push("name 1100", lstat(&r.join("n".repeat(1100))));
        log.push("listing", list(r));
        log.push("rmdir sub", rmdir(&r.join("d/s")));
        log.push("dir stat", lstat(&r.join("d")));
        log.push("rmdir", rmdir(&r.join("d")));
        log.push("rmdir again", rmdir(&r.join("d")));
        log.push("root stat", lstat(r));
        log.push("truncate dir", truncate(r, 0));
        log.push(
            "mknod fifo",
            mknod(&r.join("fifo"), libc::S_IFIFO | 0o644, 0),
        );
        log.push(
            "mknod chr",
            mknod(&r.join("chr"), libc::S_IFCHR | 0o600, libc::makedev(1, 3)),
        );
        log.push(
            "mknod blk",
            mknod(&r.join("blk"), libc::S_IFBLK | 0o600, libc::makedev(8, 1)),
        );
        log.push(
            "mknod sock",
            mknod(&r.join("sock"), libc::S_IFSOCK | 0o600, 0),
        );
        log.push("mknod reg", mknod(&r.join("reg"), libc::S_IFREG | 0o600, 0));
        for n in ["fifo", "chr", "blk", "sock", "reg"] {
            log.push(n, lstat(&r.join(n)));
        }
        log.push("listing", list(r));
    });
}

#[test]
fn symlinks_and_hard_links() {
    slabfuse_tests::require_mounts!();
    both(|r, log| {
        std::fs::write(r.join("t"), b"target").unwrap();
        for (name, len) in [("s1", 1), ("s127", 127), ("s128", 128), ("s4095", 4095)] {
            let target = vec![b'x'; len];
            log.push(name, symlink(&target, &r.join(name)));
            log.push(name, lstat(&r.join(name)));
            log.push(name, readlink(&r.join(name)).map(|t| t == target));
        }
        log.push("s4096", symlink(&[b'x'; 4096], &r.join("s4096")));
        log.push("empty target", symlink(b"", &r.join("se")));
        log.push("to t", symlink(b"t", &r.join("st")));
        log.push("follow", read_all(&r.join("st")));
        log.push("readlink file", readlink(&r.join("t")));
        log.push("link", link(&r.join("t"), &r.join("t2")));
        log.push("link again", link(&r.join("t"), &r.join("t2")));
        log.push("nlink", lstat(&r.join("t")));
        log.push("link dir", link(r, &r.join("rootlink")));
        log.push("link symlink", link(&r.join("st"), &r.join("st2")));
        log.push("symlink nlink", lstat(&r.join("st")));
        log.push("unlink t", unlink(&r.join("t")));
        log.push("via t2", read_all(&r.join("t2")));
        log.push("t2", lstat(&r.join("t2")));
        log.push("dangling", read_all(&r.join("st")));
        log.push("listing", list(r));
        let s = statvfs(r);
        log.push("inodes used", s.f_files - s.f_ffree);
    });
}

#[test]
fn renames_with_every_flag() {
    slabfuse_tests::require_mounts!();
    both(|r, log| {
        for d in ["a", "b", "a/sub", "b/full", "empty"] {
            mkdir(&r.join(d), 0o755).unwrap();
        }
        std::fs::write(r.join("a/f"), b"1").unwrap();
        std::fs::write(r.join("b/g"), b"2").unwrap();
        std::fs::write(r.join("b/full/x"), b"3").unwrap();
        let p = |s: &str| r.join(s);
        stamps(log, "file across", &[&p("a"), &p("b"), &p("a/f")], || {
            rename2(&p("a/f"), &p("b/f"), 0)
        });
        log.push("moved", lstat(&p("b/f")));
        stamps(log, "over file", &[&p("b")], || {
            rename2(&p("b/g"), &p("b/f"), 0)
        });
        log.push("content", read_all(&p("b/f")));
        log.push(
            "noreplace",
            rename2(&p("b/f"), &p("b/full/x"), libc::RENAME_NOREPLACE),
        );
        log.push(
            "noreplace free",
            rename2(&p("b/f"), &p("b/h"), libc::RENAME_NOREPLACE),
        );
        log.push("dir over nonempty", rename2(&p("a/sub"), &p("b/full"), 0));
        log.push("dir over file", rename2(&p("a/sub"), &p("b/h"), 0));
        log.push("file over dir", rename2(&p("b/h"), &p("empty"), 0));
        log.push("dir into itself", rename2(&p("a"), &p("a/sub/in"), 0));
        log.push("missing", rename2(&p("nope"), &p("b/nope"), 0));
        log.push(
            "both flags",
            rename2(
                &p("b/h"),
                &p("a/x"),
                libc::RENAME_NOREPLACE | libc::RENAME_EXCHANGE,
            ),
        );
        log.push("bad flag", rename2(&p("b/h"), &p("a/x"), 1 << 7));
        stamps(
            log,
            "dir over empty",
            &[&p("a"), &p(""), &p("a/sub")],
            || rename2(&p("a/sub"), &p("empty"), 0),
        );
        for d in ["a", "b", "", "empty"] {
            log.push(d, lstat(&p(d)));
        }
        log.push(
            "exchange missing",
            rename2(&p("b/h"), &p("a/none"), libc::RENAME_EXCHANGE),
        );
        stamps(log, "exchange file/dir", &[&p("b"), &p("")], || {
            rename2(&p("b/h"), &p("empty"), libc::RENAME_EXCHANGE)
        });
        for d in ["b", "", "empty", "b/h"] {
            log.push(d, lstat(&p(d)));
        }
        log.push("listings", (list(r), list(&p("b"))));
        log.push("same inode", {
            link(&p("empty"), &p("hard")).unwrap();
            rename2(&p("empty"), &p("hard"), 0)
        });
        log.push("both names stay", (lstat(&p("empty")), lstat(&p("hard"))));
        log.push(
            "whiteout",
            rename2(&p("hard"), &p("b/moved"), libc::RENAME_WHITEOUT),
        );
        log.push("the whiteout", lstat(&p("hard")));
        log.push("root", lstat(r));
        let s = statvfs(r);
        log.push("inodes used", s.f_files - s.f_ffree);
    });
}

#[test]
fn truncate_sparse_files_and_no_stale_bytes() {
    slabfuse_tests::require_mounts!();
    both(|r, log| {
        let f = r.join("f");
        let fd = open(&f, libc::O_CREAT | libc::O_RDWR, 0o644).unwrap();
        log.push("write", pwrite(&fd, &[0xAB; 10000], 0));
        log.push("shrink", ftruncate(&fd, 100));
        log.push("stat", lstat(&f));
        log.push("extend", ftruncate(&fd, 20000));
        let data = read_all(&f).unwrap();
        log.push(
            "zeros after shrink+extend",
            (
                data.len(),
                data[..100].iter().all(|&b| b == 0xAB),
                data[100..].iter().all(|&b| b == 0),
            ),
        );
        log.push("stat", lstat(&f));
        log.push("far write", pwrite(&fd, b"end", 1 << 40));
        log.push("sparse stat", lstat(&f));
        log.push("extents", extents(&fd));
        log.push("hole read", {
            let mut b = vec![1u8; 8192];
            pread(&fd, &mut b, 1 << 30).map(|n| (n, b.iter().all(|&x| x == 0)))
        });
        log.push("truncate huge", ftruncate(&fd, i64::MAX as u64));
        log.push("truncate too big", ftruncate(&fd, 1 << 63));
        log.push("truncate", truncate(&f, 5000));
        log.push("stat", lstat(&f));
        // A chunk freed by one file and reused by another carries nothing.
        let g = r.join("g");
        std::fs::write(&g, vec![0xFF; 1 << 20]).unwrap();
        unlink(&g).unwrap();
        let h = r.join("h");
        let hd = open(&h, libc::O_CREAT | libc::O_RDWR, 0o644).unwrap();
        for k in 0..64u64 {
            pwrite(&hd, &[k as u8 + 1], k * 16384 + 7).unwrap();
        }
        let hb = read_all(&h).unwrap();
        log.push("reuse", (hb.len(), hb.iter().filter(|&&b| b != 0).count()));
        log.push("reuse stat", lstat(&h));
        // Extending by write leaves zeros between the old end and the write.
        let e = r.join("e");
        let ed = open(&e, libc::O_CREAT | libc::O_RDWR, 0o644).unwrap();
        pwrite(&ed, &[3u8; 50], 0).unwrap();
        ftruncate(&ed, 10).unwrap();
        pwrite(&ed, &[4u8; 10], 30).unwrap();
        log.push("gap", read_all(&e));
    });
}

#[test]
fn fallocate_punch_and_seek_data_hole() {
    slabfuse_tests::require_mounts!();
    both(|r, log| {
        let f = r.join("f");
        let fd = open(&f, libc::O_CREAT | libc::O_RDWR, 0o644).unwrap();
        pwrite(&fd, &[1u8; 10000], 0).unwrap();
        let modes = [
            ("keep", libc::FALLOC_FL_KEEP_SIZE, 20000, 8192),
            ("zero", 0, 0, 30000),
            (
                "punch",
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                0,
                4096,
            ),
            (
                "punch partial",
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                5000,
                100,
            ),
            ("punch no keep", libc::FALLOC_FL_PUNCH_HOLE, 0, 4096),
            ("zero range", libc::FALLOC_FL_ZERO_RANGE, 0, 4096),
            ("collapse", libc::FALLOC_FL_COLLAPSE_RANGE, 0, 4096),
            ("insert", libc::FALLOC_FL_INSERT_RANGE, 0, 4096),
            ("zero length", 0, 0, 0),
            ("past end keep", libc::FALLOC_FL_KEEP_SIZE, 1 << 20, 4096),
        ];
        for (name, mode, off, len) in modes {
            stamps(log, name, &[&f], || fallocate(&fd, mode, off, len));
            log.push(name, lstat(&f));
            log.push("extents", extents(&fd));
        }
        for off in [0i64, 4096, 5000, 12288, 29999, 30000, 1 << 20] {
            log.push(
                "seek",
                (
                    off,
                    lseek(&fd, off, libc::SEEK_DATA),
                    lseek(&fd, off, libc::SEEK_HOLE),
                ),
            );
        }
        let data = read_all(&f).unwrap();
        log.push(
            "content",
            (data.len(), data.iter().map(|&b| u64::from(b)).sum::<u64>()),
        );
        // Writing into a fallocated chunk makes it data.
        pwrite(&fd, b"x", 25000).unwrap();
        log.push("extents", extents(&fd));
        // fallocate over an unwritten chunk makes it data too (tmpfs).
        fallocate(&fd, 0, 12288, 4096).unwrap();
        log.push("extents", extents(&fd));
        log.push(
            "truncate drops fallocated tail",
            (ftruncate(&fd, 4000), lstat(&f)),
        );
    });
}

#[test]
fn append_direct_io_copy_range_and_mmap() {
    slabfuse_tests::require_mounts!();
    both(|r, log| {
        let a = r.join("a");
        let fd = open(&a, libc::O_CREAT | libc::O_WRONLY | libc::O_APPEND, 0o644).unwrap();
        log.push(
            "append",
            (write(&fd, b"123"), pwrite(&fd, b"45", 0), write(&fd, b"6")),
        );
        log.push("content", read_all(&a));
        // O_DIRECT, aligned, mixed with buffered reads.
        let d = r.join("d");
        let dfd = open(&d, libc::O_CREAT | libc::O_RDWR | libc::O_DIRECT, 0o644).unwrap();
        let mut buf = AlignedBuf::zeroed(1 << 20);
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        log.push("direct write", pwrite(&dfd, &buf, 8192));
        log.push("direct unaligned", pwrite(&dfd, &buf[..100], 1));
        let mut back = AlignedBuf::zeroed(1 << 20);
        log.push(
            "direct read",
            pread(&dfd, &mut back, 8192).map(|n| (n, back[..] == buf[..])),
        );
        log.push(
            "buffered read",
            read_all(&d).map(|v| {
                (
                    v.len(),
                    v[8192..] == buf[..],
                    v[..8192].iter().all(|&b| b == 0),
                )
            }),
        );
        log.push("stat", lstat(&d));
        // copy_file_range: between files (holes arrive as data), at EOF,
        // within one file.
        let c = r.join("c");
        let cfd = open(&c, libc::O_CREAT | libc::O_RDWR, 0o644).unwrap();
        let src = open(&d, libc::O_RDONLY, 0).unwrap();
        log.push("copy", copy_file_range(&src, 0, &cfd, 100, 20000));
        log.push("copy at eof", copy_file_range(&src, 1 << 21, &cfd, 0, 100));
        log.push("copy stat", lstat(&c));
        log.push(
            "copy content",
            read_all(&c).map(|v| v[100..].to_vec() == read_all(&d).unwrap()[..20000]),
        );
        log.push("copy within", copy_file_range(&cfd, 100, &cfd, 50000, 4000));
        log.push(
            "copy within content",
            read_all(&c).map(|v| v[50000..54000] == v[100..4100]),
        );
        log.push(
            "copy overlapping",
            copy_file_range(&cfd, 100, &cfd, 200, 4000),
        );
        // Shared writable mmap: writes through the map reach the file.
        let m = r.join("m");
        let mfd = open(&m, libc::O_CREAT | libc::O_RDWR, 0o644).unwrap();
        ftruncate(&mfd, 3 * 4096).unwrap();
        use std::os::fd::AsRawFd;
        // SAFETY: a fresh shared mapping of 3 pages of our own file.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                3 * 4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                mfd.as_raw_fd(),
                0,
            )
        };
        assert_ne!(p, libc::MAP_FAILED);
        // SAFETY: `p` maps 3 * 4096 writable bytes.
        let map = unsafe { std::slice::from_raw_parts_mut(p.cast::<u8>(), 3 * 4096) };
        map[5000..5005].copy_from_slice(b"mmap!");
        // SAFETY: `p` is the mapping made above.
        log.push("msync", unsafe { libc::msync(p, 3 * 4096, libc::MS_SYNC) });
        log.push(
            "read after mmap write",
            read_all(&m).map(|v| v[5000..5005].to_vec()),
        );
        pwrite(&mfd, b"write", 8000).unwrap();
        log.push("mmap sees write", map[8000..8005].to_vec());
        // SAFETY: unmapping the mapping made above, once.
        unsafe { libc::munmap(p, 3 * 4096) };
        log.push("mmap stat", lstat(&m));
    });
}

#[test]
fn extended_attributes() {
    slabfuse_tests::require_mounts!();
    both(|r, log| {
        let f = r.join("f");
        std::fs::write(&f, b"x").unwrap();
        mkdir(&r.join("d"), 0o755).unwrap();
        symlink(b"f", &r.join("l")).unwrap();
        for n in [
            "user.a",
            "trusted.t",
            "security.s",
            "user.",
            "foo.bar",
            "system.x",
            "user.empty",
        ] {
            let v: &[u8] = if n == "user.empty" { b"" } else { b"value" };
            log.push(n, setxattr(&f, n, v, 0));
        }
        log.push("list", listxattr(&f));
        log.push("get", getxattr(&f, "user.a"));
        log.push("get empty", getxattr(&f, "user.empty"));
        log.push("get missing", getxattr(&f, "user.zz"));
        log.push("get bad ns", getxattr(&f, "foo.x"));
        log.push("length query", getxattr_sized(&f, "user.a", 0));
        log.push("short buffer", getxattr_sized(&f, "user.a", 2));
        log.push(
            "create existing",
            setxattr(&f, "user.a", b"q", libc::XATTR_CREATE),
        );
        log.push(
            "replace missing",
            setxattr(&f, "user.q", b"q", libc::XATTR_REPLACE),
        );
        log.push(
            "replace",
            setxattr(&f, "user.a", b"longer value", libc::XATTR_REPLACE),
        );
        log.push("get", getxattr(&f, "user.a"));
        let big: Vec<u8> = (0..65536u32).map(|i| (i * 7) as u8).collect();
        log.push("64 KiB", setxattr(&f, "user.big", &big, 0));
        log.push("64 KiB back", getxattr(&f, "user.big").map(|v| v == big));
        log.push("too big", setxattr(&f, "user.huge", &vec![0u8; 65537], 0));
        log.push(
            "long name",
            setxattr(&f, &format!("user.{}", "n".repeat(250)), b"v", 0),
        );
        log.push(
            "name too long",
            setxattr(&f, &format!("user.{}", "n".repeat(251)), b"v", 0),
        );
        for i in 0..40 {
            setxattr(&f, &format!("user.many{i}"), &vec![i as u8; i * 97], 0).unwrap();
        }
        for i in (0..40).step_by(3) {
            removexattr(&f, &format!("user.many{i}")).unwrap();
        }
        log.push("list", listxattr(&f));
        log.push(
            "values intact",
            (0..40)
                .filter(|i| i % 3 != 0)
                .all(|i| getxattr(&f, &format!("user.many{i}")) == Ok(vec![i as u8; i * 97])),
        );
        log.push("remove", removexattr(&f, "user.a"));
        log.push("remove again", removexattr(&f, "user.a"));
        log.push("remove bad ns", removexattr(&f, "foo.a"));
        log.push("dir user", setxattr(&r.join("d"), "user.d", b"1", 0));
        log.push("symlink user", setxattr(&r.join("l"), "user.l", b"1", 0));
        log.push(
            "symlink trusted",
            setxattr(&r.join("l"), "trusted.l", b"1", 0),
        );
        log.push("symlink list", listxattr(&r.join("l")));
        let s = statvfs(r);
        log.push("inodes used", s.f_files - s.f_ffree);
        log.push("ctime", {
            let before = times(&f);
            std::thread::sleep(std::time::Duration::from_millis(11));
            setxattr(&f, "user.c", b"1", 0).unwrap();
            changed(before, times(&f))
        });
    });
}

#[test]
fn modes_owners_and_set_group_id() {
    slabfuse_tests::require_mounts!();
    both(|r, log| {
        let f = r.join("f");
        std::fs::write(&f, b"x").unwrap();
        stamps(log, "chmod", &[&f], || chmod(&f, 0o4755));
        stamps(log, "chown", &[&f], || lchown(&f, 1000, 1000));
        log.push("stat", lstat(&f));
        // chown(-1, -1) of a set-user-id, set-group-id file: only ctime
        // changes, or also the mode? As tmpfs, whatever the kernel asks.
        chmod(&f, 0o6755).unwrap();
        stamps(log, "chown -1 -1 setuid", &[&f], || {
            lchown(&f, u32::MAX, u32::MAX)
        });
        log.push("stat", lstat(&f));
        log.push("chmod all bits", (chmod(&f, 0o7777), lstat(&f)));
        let s = r.join("sg");
        mkdir(&s, 0o777).unwrap();
        lchown(&s, 0, 1234).unwrap();
        chmod(&s, 0o2777).unwrap();
        std::fs::write(s.join("file"), b"").unwrap();
        mkdir(&s.join("sub"), 0o755).unwrap();
        symlink(b"x", &s.join("link")).unwrap();
        mknod(&s.join("fifo"), libc::S_IFIFO | 0o644, 0).unwrap();
        for n in ["file", "sub", "link", "fifo"] {
            log.push(n, lstat(&s.join(n)));
        }
        // As an unprivileged user (this thread's fsuid/fsgid only).
        let s2 = s.clone();
        let out = std::thread::spawn(move || {
            // SAFETY: changes this thread's filesystem ids only.
            unsafe {
                libc::setfsgid(1000);
            }
            // SAFETY: as above.
            unsafe {
                libc::setfsuid(1000);
            }
            let mut v = Vec::new();
            let p = s2.join("mine");
            v.push(format!(
                "{:?}",
                std::fs::write(&p, b"data").map_err(|e| e.raw_os_error())
            ));
            v.push(format!("{:?}", lstat(&p)));
            // Not in group 1234: the kernel drops S_ISGID from chmod.
            v.push(format!("{:?}", (chmod(&p, 0o2755), lstat(&p))));
            v.push(format!("{:?}", (chmod(&p, 0o4755), lstat(&p))));
            // Writing clears set-user-id.
            v.push(format!(
                "{:?}",
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(&p)
                    .and_then(|mut fh| {
                        use std::io::Write;
                        fh.write_all(b"more")
                    })
                    .map_err(|e| e.raw_os_error())
            ));
            v.push(format!("{:?}", lstat(&p)));
            v.push(format!("{:?}", chmod(&s2.join("file"), 0o600)));
            v.push(format!("{:?}", lchown(&p, 0, 0)));
            // Not the owner: chown to (-1, -1) still only touches ctime.
            let other = s2.join("file");
            let before = times(&other);
            std::thread::sleep(std::time::Duration::from_millis(11));
            v.push(format!("{:?}", lchown(&other, u32::MAX, u32::MAX)));
            v.push(changed(before, times(&other)));
            v
        })
        .join()
        .unwrap();
        log.push("unprivileged", out);
    });
}

#[test]
fn timestamps() {
    slabfuse_tests::require_mounts!();
    both(|r, log| {
        let d = r.join("d");
        mkdir(&d, 0o755).unwrap();
        let f = d.join("f");
        stamps(log, "create", &[&d], || {
            std::fs::write(&f, b"abc").map_err(|e| e.raw_os_error())
        });
        stamps(log, "write", &[&f, &d], || {
            std::fs::OpenOptions::new()
                .append(true)
                .open(&f)
                .map(|mut h| {
                    use std::io::Write;
                    h.write_all(b"x").is_ok()
                })
                .is_ok()
        });
        stamps(log, "read", &[&f], || read_all(&f).map(|v| v.len()));
        stamps(log, "read again", &[&f], || read_all(&f).map(|v| v.len()));
        stamps(log, "truncate same size", &[&f], || truncate(&f, 4));
        stamps(log, "truncate", &[&f], || truncate(&f, 10));
        stamps(log, "open O_TRUNC", &[&f], || {
            open(&f, libc::O_WRONLY | libc::O_TRUNC, 0).map(drop)
        });
        stamps(log, "link", &[&f, &d], || link(&f, &d.join("g")));
        stamps(log, "unlink", &[&f, &d], || unlink(&d.join("g")));
        stamps(log, "rename", &[&d], || rename2(&f, &d.join("h"), 0));
        let f = d.join("h");
        stamps(log, "setxattr", &[&f], || setxattr(&f, "user.x", b"1", 0));
        stamps(log, "readdir", &[&d], || list(&d));
        stamps(log, "readdir again", &[&d], || list(&d));
        stamps(log, "symlink", &[&d], || symlink(b"h", &d.join("l")));
        stamps(log, "readlink", &[&d.join("l")], || readlink(&d.join("l")));
        stamps(log, "utimens", &[&f], || utimens(&f, (5, 6), (7, 8), false));
        log.push("set", times(&f).map(|t| (t[0], t[1])));
        stamps(log, "utimens omit atime", &[&f], || {
            utimens(&f, (0, libc::UTIME_OMIT), (9, 999_999_999), false)
        });
        log.push("set", times(&f).map(|t| (t[0], t[1])));
        stamps(log, "utimens now", &[&f], || {
            utimens(&f, (0, libc::UTIME_NOW), (0, libc::UTIME_OMIT), false)
        });
        stamps(log, "utimens both omit", &[&f], || {
            utimens(&f, (0, libc::UTIME_OMIT), (0, libc::UTIME_OMIT), false)
        });
        // chown to (-1, -1) changes nothing but ctime (through FUSE: a
        // SETATTR with no field set).
        stamps(log, "chown -1 -1", &[&f], || lchown(&f, u32::MAX, u32::MAX));
        stamps(log, "chown -1 -1 directory", &[&d], || {
            lchown(&d, u32::MAX, u32::MAX)
        });
        stamps(log, "lchown -1 -1 symlink", &[&d.join("l"), &f], || {
            lchown(&d.join("l"), u32::MAX, u32::MAX)
        });
        stamps(log, "fchown -1 -1", &[&f], || {
            let fd = open(&f, libc::O_RDONLY, 0)?;
            // SAFETY: plain syscall on an owned fd.
            let r =
                unsafe { libc::fchown(std::os::fd::AsRawFd::as_raw_fd(&fd), u32::MAX, u32::MAX) };
            check(r).map(drop)
        });
        stamps(log, "utimens symlink", &[&d.join("l"), &f], || {
            utimens(&d.join("l"), (1, 2), (3, 4), true)
        });
        log.push(
            "negative",
            (
                utimens(&f, (-5, 1), (-1_000_000, 5), false),
                times(&f).map(|t| (t[0], t[1])),
            ),
        );
        let fd = open(&f, libc::O_RDWR, 0).unwrap();
        stamps(log, "fallocate", &[&f], || fallocate(&fd, 0, 0, 100));
        stamps(log, "ftruncate same", &[&f], || ftruncate(&fd, 100));
        stamps(log, "mkdir", &[&d], || mkdir(&d.join("s"), 0o755));
        stamps(log, "rmdir", &[&d], || rmdir(&d.join("s")));
    });
}

#[test]
fn tmpfile_unlinked_open_files_and_statfs() {
    slabfuse_tests::require_mounts!();
    both(|r, log| {
        let before = statvfs(r);
        // An unlinked file keeps working while open; its space comes back
        // when it is closed.
        let f = r.join("f");
        let fd = open(&f, libc::O_CREAT | libc::O_RDWR, 0o644).unwrap();
        pwrite(&fd, &vec![1u8; 1 << 20], 0).unwrap();
        unlink(&f).unwrap();
        log.push("write after unlink", pwrite(&fd, b"more", 1 << 20));
        let mut b = [0u8; 4];
        log.push(
            "read after unlink",
            pread(&fd, &mut b, 1 << 20).map(|n| (n, b)),
        );
        let open_used = statvfs(r);
        log.push(
            "used while open",
            (
                before.f_bfree - open_used.f_bfree,
                before.f_ffree - open_used.f_ffree,
            ),
        );
        drop(fd);
        // Space comes back at close (tmpfs at once; memfs on RELEASE).
        let mut after = statvfs(r);
        for _ in 0..100 {
            if after.f_bfree == before.f_bfree {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
            after = statvfs(r);
        }
        log.push(
            "back after close",
            (
                after.f_bfree == before.f_bfree,
                after.f_ffree == before.f_ffree,
            ),
        );
        // O_TMPFILE, then a name for it.
        let t = open(r, libc::O_TMPFILE | libc::O_RDWR, 0o600).unwrap();
        log.push("tmpfile write", pwrite(&t, b"tmp", 0));
        use std::os::fd::AsRawFd;
        // SAFETY: an all-zero stat is valid to overwrite; valid fd.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid fd and buffer.
        unsafe { libc::fstat(t.as_raw_fd(), &mut st) };
        log.push(
            "tmpfile stat",
            (st.st_nlink, st.st_size, st.st_mode, st.st_blocks),
        );
        log.push("listing", list(r));
        let name = c(&r.join("named"));
        // SAFETY: valid fd and C strings.
        let rc = unsafe {
            libc::linkat(
                t.as_raw_fd(),
                c"".as_ptr(),
                libc::AT_FDCWD,
                name.as_ptr(),
                libc::AT_EMPTY_PATH,
            )
        };
        log.push("linkat", rc);
        log.push(
            "named",
            (lstat(&r.join("named")), read_all(&r.join("named"))),
        );
        let s = statvfs(r);
        log.push(
            "statfs",
            (
                s.f_bsize,
                s.f_frsize,
                s.f_blocks,
                s.f_namemax,
                s.f_files - s.f_ffree,
                s.f_blocks - s.f_bfree,
            ),
        );
    });
}

#[test]
fn readdir_offsets_stay_valid_while_the_directory_changes() {
    slabfuse_tests::require_mounts!();
    both(|r, log| {
        let d = r.join("d");
        mkdir(&d, 0o755).unwrap();
        for i in 0..300 {
            std::fs::write(d.join(format!("e{i:03}")), b"").unwrap();
        }
        let dc = c(&d);
        // SAFETY: valid C string; the DIR is closed below.
        let dir = unsafe { libc::opendir(dc.as_ptr()) };
        assert!(!dir.is_null());
        let mut seen = std::collections::BTreeMap::<String, u32>::new();
        let mut saved = None;
        let mut step = 0;
        loop {
            // SAFETY: `dir` is open.
            let e = unsafe { libc::readdir(dir) };
            if e.is_null() {
                break;
            }
            // SAFETY: readdir returned a valid entry, alive until the next
            // readdir on `dir`.
            let entry = unsafe { &*e };
            // SAFETY: `d_name` is NUL-terminated.
            let name = unsafe { std::ffi::CStr::from_ptr(entry.d_name.as_ptr()) }
                .to_string_lossy()
                .into_owned();
            *seen.entry(name.clone()).or_default() += 1;
            step += 1;
            if step == 100 {
                // Change the directory mid-listing: remove entries already
                // listed and not yet listed, add new ones.
                for i in (0..300).step_by(7) {
                    let _ = unlink(&d.join(format!("e{i:03}")));
                }
                for i in 0..50 {
                    std::fs::write(d.join(format!("n{i:02}")), b"").unwrap();
                }
                // SAFETY: `dir` is open.
                saved = Some((unsafe { libc::telldir(dir) }, name));
            }
        }
        // Entries present throughout were listed exactly once.
        let stable: Vec<String> = (0..300)
            .filter(|i| i % 7 != 0)
            .map(|i| format!("e{i:03}"))
            .collect();
        log.push(
            "stable once",
            stable.iter().all(|n| seen.get(n) == Some(&1)),
        );
        log.push("no duplicates", seen.values().all(|&c| c == 1));
        // A saved offset still resumes right after its entry.
        let (pos, _) = saved.unwrap();
        // SAFETY: `dir` is open and `pos` came from telldir on it.
        unsafe { libc::seekdir(dir, pos) };
        // SAFETY: `dir` is open.
        let e = unsafe { libc::readdir(dir) };
        log.push("resumes", !e.is_null());
        // SAFETY: `dir` is open; closed once.
        unsafe { libc::closedir(dir) };
        log.push("final listing", list(&d).map(|v| v.len()));
        log.push("dir size", lstat(&d).map(|s| s.size));
    });
}

#[test]
fn lookup_counts_balance_and_every_inode_comes_back() {
    slabfuse_tests::require_mounts!();
    let m = memfs(MemFsConfig {
        size_bytes: 64 << 20,
        inodes: 4096,
        ..MemFsConfig::default()
    });
    let r = m.path();
    for round in 0..2 {
        mkdir(&r.join("d"), 0o755).unwrap();
        for i in 0..1000 {
            std::fs::write(r.join(format!("d/f{i}")), format!("{i}")).unwrap();
        }
        // READDIRPLUS (ls -l) takes references; LOOKUP takes references.
        let mut listed = 0;
        for e in std::fs::read_dir(r.join("d")).unwrap() {
            assert!(e.unwrap().metadata().unwrap().len() > 0);
            listed += 1;
        }
        assert_eq!(listed, 1000);
        for i in (0..1000).step_by(3) {
            assert_eq!(
                std::fs::read(r.join(format!("d/f{i}"))).unwrap(),
                format!("{i}").as_bytes()
            );
        }
        for i in 0..1000 {
            unlink(&r.join(format!("d/f{i}"))).unwrap();
        }
        rmdir(&r.join("d")).unwrap();
        // In use at once (tmpfs counts this way too); the slots come back
        // when the kernel has forgotten the nodes.
        assert_eq!(m.fs().inodes_used(), 1, "round {round}");
        std::fs::write("/proc/sys/vm/drop_caches", "2").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while m.fs().slots_used() != 1 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(m.fs().slots_used(), 1, "round {round}: slots not forgotten");
        assert_eq!(m.fs().used_bytes(), 0);
    }
}

/// A file handle buffer (`struct file_handle` with 128 bytes of handle).
#[repr(C, align(8))]
struct Handle([u8; 136]);

fn name_to_handle(p: &Path) -> R<Handle> {
    let mut h = Handle([0; 136]);
    h.0[..4].copy_from_slice(&128u32.to_ne_bytes());
    let c = c(p);
    let mut mount_id = 0;
    // SAFETY: valid C string, a handle buffer with room for 128 bytes.
    let r = unsafe {
        libc::name_to_handle_at(
            libc::AT_FDCWD,
            c.as_ptr(),
            h.0.as_mut_ptr().cast(),
            &mut mount_id,
            0,
        )
    };
    if r < 0 { Err(errno()) } else { Ok(h) }
}

fn open_by_handle(root: &std::os::fd::OwnedFd, h: &mut Handle) -> R<Vec<u8>> {
    use std::os::fd::{AsRawFd, FromRawFd};
    // SAFETY: a valid mount fd and a handle filled by name_to_handle_at.
    let fd = unsafe {
        libc::open_by_handle_at(root.as_raw_fd(), h.0.as_mut_ptr().cast(), libc::O_RDONLY)
    };
    if fd < 0 {
        return Err(errno());
    }
    // SAFETY: `fd` was just opened and is owned by nobody else.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
    let mut buf = vec![0u8; 64];
    let n = pread(&fd, &mut buf, 0).unwrap_or(0);
    buf.truncate(n);
    Ok(buf)
}

#[test]
fn file_handles_resolve_and_go_stale() {
    slabfuse_tests::require_mounts!();
    both(|r, log| {
        mkdir(&r.join("d"), 0o755).unwrap();
        std::fs::write(r.join("d/f"), b"by handle").unwrap();
        let root = open(r, libc::O_RDONLY | libc::O_DIRECTORY, 0).unwrap();
        let mut hf = name_to_handle(&r.join("d/f")).unwrap();
        let mut hd = name_to_handle(&r.join("d")).unwrap();
        // Drop the kernel's caches so that the handles are decoded afresh
        // (LOOKUP of "." on the node id, then its generation checked).
        std::fs::write("/proc/sys/vm/drop_caches", "2").unwrap();
        log.push("file", open_by_handle(&root, &mut hf));
        log.push("dir", open_by_handle(&root, &mut hd).map(|_| ()));
        unlink(&r.join("d/f")).unwrap();
        std::fs::write("/proc/sys/vm/drop_caches", "2").unwrap();
        log.push("stale", open_by_handle(&root, &mut hf));
        // A new file may take the old one's slot: still stale.
        std::fs::write(r.join("d/g"), b"other").unwrap();
        log.push("still stale", open_by_handle(&root, &mut hf));
    });
}

/// A POSIX ACL in the kernel's xattr format: version 2, then (tag, perm,
/// id) entries in the kernel's order.
fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in entries {
        v.extend_from_slice(&tag.to_le_bytes());
        v.extend_from_slice(&perm.to_le_bytes());
        v.extend_from_slice(&id.to_le_bytes());
    }
    v
}

const ACL_USER_OBJ: u16 = 0x01;
const ACL_USER: u16 = 0x02;
const ACL_GROUP_OBJ: u16 = 0x04;
const ACL_GROUP: u16 = 0x08;
const ACL_MASK: u16 = 0x10;
const ACL_OTHER: u16 = 0x20;
const NO_ID: u32 = u32::MAX;
const ACCESS: &str = "system.posix_acl_access";
const DEFAULT: &str = "system.posix_acl_default";

/// As an unprivileged user (uid and gid 1000, this thread's fs ids only).
fn as_user_1000<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        // SAFETY: changes this thread's filesystem ids only.
        unsafe {
            libc::setfsgid(1000);
        }
        // SAFETY: as above.
        unsafe {
            libc::setfsuid(1000);
        }
        f()
    })
    .join()
    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

#[test]
fn posix_acls_set_inherited_chmodded_and_enforced() {
    slabfuse_tests::require_mounts!();
    both(|r, log| {
        let f = r.join("f");
        std::fs::write(&f, b"x").unwrap();
        chmod(&f, 0o644).unwrap();
        // An extended ACL: stored, and its mask becomes the group bits.
        let extended = acl(&[
            (ACL_USER_OBJ, 6, NO_ID),
            (ACL_USER, 7, 1000),
            (ACL_GROUP_OBJ, 4, NO_ID),
            (ACL_GROUP, 5, 100),
            (ACL_MASK, 7, NO_ID),
            (ACL_OTHER, 4, NO_ID),
        ]);
        stamps(log, "set extended", &[&f], || {
            setxattr(&f, ACCESS, &extended, 0)
        });
        log.push("mode", lstat(&f).map(|s| s.mode));
        log.push("read back", getxattr(&f, ACCESS));
        log.push("list", listxattr(&f));
        // chmod moves the owner, mask and other entries.
        log.push("chmod", chmod(&f, 0o751));
        log.push("after chmod", getxattr(&f, ACCESS));
        // An ACL that says no more than a mode is not kept.
        let g = r.join("g");
        std::fs::write(&g, b"").unwrap();
        let minimal = acl(&[
            (ACL_USER_OBJ, 7, NO_ID),
            (ACL_GROUP_OBJ, 5, NO_ID),
            (ACL_OTHER, 0, NO_ID),
        ]);
        log.push("set minimal", setxattr(&g, ACCESS, &minimal, 0));
        log.push("mode", lstat(&g).map(|s| s.mode));
        log.push("not kept", (getxattr(&g, ACCESS), listxattr(&g)));
        // Malformed and misplaced ACLs are refused.
        log.push("bad version", setxattr(&g, ACCESS, &[1, 0, 0, 0], 0));
        log.push(
            "incomplete",
            setxattr(&g, ACCESS, &acl(&[(ACL_USER_OBJ, 7, NO_ID)]), 0),
        );
        log.push("default on a file", setxattr(&g, DEFAULT, &minimal, 0));

        // Inheritance: a default ACL on a directory replaces the umask.
        let d = r.join("d");
        mkdir(&d, 0o755).unwrap();
        let default = acl(&[
            (ACL_USER_OBJ, 7, NO_ID),
            (ACL_USER, 7, 1000),
            (ACL_GROUP_OBJ, 5, NO_ID),
            (ACL_MASK, 7, NO_ID),
            (ACL_OTHER, 0, NO_ID),
        ]);
        log.push("set default", setxattr(&d, DEFAULT, &default, 0));
        log.push("dir list", listxattr(&d));
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(d.join("file"))
            .unwrap();
        mkdir(&d.join("sub"), 0o777).unwrap();
        mknod(&d.join("fifo"), libc::S_IFIFO | 0o644, 0).unwrap();
        symlink(b"file", &d.join("link")).unwrap();
        for n in ["file", "sub", "fifo", "link"] {
            let p = d.join(n);
            log.push(
                n,
                (
                    lstat(&p).map(|s| s.mode),
                    getxattr(&p, ACCESS),
                    getxattr(&p, DEFAULT),
                ),
            );
        }
        log.push("grandchild", {
            mkdir(&d.join("sub/deeper"), 0o700).unwrap();
            let p = d.join("sub/deeper");
            (lstat(&p).map(|s| s.mode), getxattr(&p, DEFAULT))
        });
        log.push("tmpfile", {
            let fd = open(&d, libc::O_TMPFILE | libc::O_WRONLY, 0o666).unwrap();
            let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
            // SAFETY: a valid fd and a stat buffer.
            let ret = unsafe { libc::fstat(std::os::fd::AsRawFd::as_raw_fd(&fd), st.as_mut_ptr()) };
            assert_eq!(ret, 0);
            // SAFETY: fstat succeeded.
            unsafe { st.assume_init() }.st_mode
        });
        // Without the default ACL the umask applies again.
        log.push("remove default", removexattr(&d, DEFAULT));
        std::fs::write(d.join("plain"), b"").unwrap();
        log.push("plain", lstat(&d.join("plain")).map(|s| s.mode));
        log.push(
            "remove access",
            (removexattr(&f, ACCESS), lstat(&f).map(|s| s.mode)),
        );
        log.push("remove again", removexattr(&f, ACCESS));

        // Enforcement by the kernel, from what memfs stores.
        let secret = r.join("secret");
        std::fs::write(&secret, b"hi").unwrap();
        chmod(&secret, 0o600).unwrap();
        let read_as_1000 = |p: &Path| {
            let p = p.to_owned();
            as_user_1000(move || read_all(&p))
        };
        log.push("denied", read_as_1000(&secret));
        let grant = acl(&[
            (ACL_USER_OBJ, 6, NO_ID),
            (ACL_USER, 4, 1000),
            (ACL_GROUP_OBJ, 0, NO_ID),
            (ACL_MASK, 4, NO_ID),
            (ACL_OTHER, 0, NO_ID),
        ]);
        setxattr(&secret, ACCESS, &grant, 0).unwrap();
        log.push("granted", read_as_1000(&secret));
        log.push("chmod 600 masks it again", chmod(&secret, 0o600));
        log.push("masked", read_as_1000(&secret));
    });
}
