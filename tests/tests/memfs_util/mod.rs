//! Shared helpers of the memfs real-mount tests: mounting memfs and a
//! tmpfs side by side, and thin libc wrappers that return the errno.

#![allow(dead_code, unreachable_pub)]

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use slabfuse_memfs::{MemFs, MemFsConfig};
use slabfuse_tests::{Mounted, TempDir};

/// memfs with `config`, mounted with the test defaults.
pub fn memfs(config: MemFsConfig) -> Mounted<MemFs> {
    let fs = MemFs::new(&MemFsConfig {
        lock: false,
        ..config
    })
    .expect("memfs");
    Mounted::with_defaults(fs)
}

/// memfs with a 256 MiB budget and 64 Ki inodes.
pub fn memfs_default() -> Mounted<MemFs> {
    memfs(MemFsConfig {
        size_bytes: 256 << 20,
        ..MemFsConfig::default()
    })
}

/// A tmpfs mounted on a fresh temp dir, unmounted (lazily) on drop.
pub struct Tmpfs {
    dir: TempDir,
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs with `options` (e.g. `"size=8m,nr_inodes=100"`).
    pub fn mount(options: &str) -> Tmpfs {
        let dir = TempDir::new("tmpfs");
        let path = dir.path().join("t");
        std::fs::create_dir(&path).expect("mkdir");
        let target = CString::new(path.as_os_str().as_bytes()).expect("path");
        let data = CString::new(options).expect("options");
        rustix::mount::mount(
            c"tmpfs",
            target.as_c_str(),
            c"tmpfs",
            rustix::mount::MountFlags::empty(),
            data.as_c_str(),
        )
        .expect("mount tmpfs");
        Tmpfs { dir, path }
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        slabfuse_tests::force_unmount(&self.path);
        let _ = &self.dir;
    }
}

/// A path as a C string.
pub fn c(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).expect("no NUL in path")
}

/// The errno of the last failed libc call.
pub fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// `Ok(value)` or `Err(errno)` for a libc return value (-1 = failure).
pub fn check<T: PartialOrd + From<i8>>(ret: T) -> Result<T, i32> {
    if ret < T::from(0) {
        Err(errno())
    } else {
        Ok(ret)
    }
}

// ---------------------------------------------------------------------------
// Operations by path, each giving `Ok(value)` or `Err(errno)`, so that the
// same call on memfs and on tmpfs can be compared result for result.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// A result as the kernel gave it.
pub type R<T = ()> = Result<T, i32>;

fn ok_or_errno(ret: i64) -> R<i64> {
    if ret < 0 { Err(errno()) } else { Ok(ret) }
}

/// `open(2)`.
pub fn open(p: &Path, flags: i32, mode: u32) -> R<OwnedFd> {
    let c = c(p);
    // SAFETY: `c` is a valid NUL-terminated path for the call's duration.
    let fd = unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC, mode) };
    let fd = ok_or_errno(i64::from(fd))?;
    // SAFETY: `fd` was just returned by open(2) and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// `pwrite(2)` of all of `buf` (one call; the count it returned).
pub fn pwrite(fd: &OwnedFd, buf: &[u8], offset: u64) -> R<usize> {
    // SAFETY: `buf` is valid for `buf.len()` bytes.
    let n = unsafe {
        libc::pwrite(
            fd.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            offset as i64,
        )
    };
    ok_or_errno(n as i64).map(|n| n as usize)
}

/// `write(2)` (at the file position).
pub fn write(fd: &OwnedFd, buf: &[u8]) -> R<usize> {
    // SAFETY: `buf` is valid for `buf.len()` bytes.
    let n = unsafe { libc::write(fd.as_raw_fd(), buf.as_ptr().cast(), buf.len()) };
    ok_or_errno(n as i64).map(|n| n as usize)
}

/// `pread(2)` into `buf`.
pub fn pread(fd: &OwnedFd, buf: &mut [u8], offset: u64) -> R<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
    let n = unsafe {
        libc::pread(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            offset as i64,
        )
    };
    ok_or_errno(n as i64).map(|n| n as usize)
}

/// Reads a whole file by path (`Err` if it cannot be opened).
pub fn read_all(p: &Path) -> R<Vec<u8>> {
    std::fs::read(p).map_err(|e| e.raw_os_error().unwrap_or(0))
}

/// `fallocate(2)`.
pub fn fallocate(fd: &OwnedFd, mode: i32, offset: u64, len: u64) -> R {
    // SAFETY: plain syscall on an owned fd.
    let r = unsafe { libc::fallocate(fd.as_raw_fd(), mode, offset as i64, len as i64) };
    ok_or_errno(i64::from(r)).map(drop)
}

/// `lseek(2)`.
pub fn lseek(fd: &OwnedFd, offset: i64, whence: i32) -> R<i64> {
    // SAFETY: plain syscall on an owned fd.
    let r = unsafe { libc::lseek(fd.as_raw_fd(), offset, whence) };
    ok_or_errno(r)
}

/// `ftruncate(2)`.
pub fn ftruncate(fd: &OwnedFd, size: u64) -> R {
    // SAFETY: plain syscall on an owned fd.
    let r = unsafe { libc::ftruncate(fd.as_raw_fd(), size as i64) };
    ok_or_errno(i64::from(r)).map(drop)
}

/// `truncate(2)`.
pub fn truncate(p: &Path, size: u64) -> R {
    let c = c(p);
    // SAFETY: valid C string.
    let r = unsafe { libc::truncate(c.as_ptr(), size as i64) };
    ok_or_errno(i64::from(r)).map(drop)
}

/// `renameat2(2)`.
pub fn rename2(a: &Path, b: &Path, flags: u32) -> R {
    let (ca, cb) = (c(a), c(b));
    // SAFETY: valid C strings; renameat2 has no libc wrapper everywhere.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            flags,
        )
    };
    ok_or_errno(r).map(drop)
}

/// `link(2)`.
pub fn link(a: &Path, b: &Path) -> R {
    std::fs::hard_link(a, b).map_err(|e| e.raw_os_error().unwrap_or(0))
}

/// `unlink(2)`.
pub fn unlink(p: &Path) -> R {
    std::fs::remove_file(p).map_err(|e| e.raw_os_error().unwrap_or(0))
}

/// `mkdir(2)`.
pub fn mkdir(p: &Path, mode: u32) -> R {
    let c = c(p);
    // SAFETY: valid C string.
    let r = unsafe { libc::mkdir(c.as_ptr(), mode) };
    ok_or_errno(i64::from(r)).map(drop)
}

/// `rmdir(2)`.
pub fn rmdir(p: &Path) -> R {
    std::fs::remove_dir(p).map_err(|e| e.raw_os_error().unwrap_or(0))
}

/// `symlink(2)`.
pub fn symlink(target: &[u8], p: &Path) -> R {
    let t = CString::new(target).expect("no NUL");
    let c = c(p);
    // SAFETY: valid C strings.
    let r = unsafe { libc::symlink(t.as_ptr(), c.as_ptr()) };
    ok_or_errno(i64::from(r)).map(drop)
}

/// `readlink(2)`.
pub fn readlink(p: &Path) -> R<Vec<u8>> {
    std::fs::read_link(p)
        .map(|t| t.as_os_str().as_bytes().to_vec())
        .map_err(|e| e.raw_os_error().unwrap_or(0))
}

/// `mknod(2)`.
pub fn mknod(p: &Path, mode: u32, dev: u64) -> R {
    let c = c(p);
    // SAFETY: valid C string.
    let r = unsafe { libc::mknod(c.as_ptr(), mode, dev) };
    ok_or_errno(i64::from(r)).map(drop)
}

/// `chmod(2)`.
pub fn chmod(p: &Path, mode: u32) -> R {
    let c = c(p);
    // SAFETY: valid C string.
    let r = unsafe { libc::chmod(c.as_ptr(), mode) };
    ok_or_errno(i64::from(r)).map(drop)
}

/// `lchown(2)`.
pub fn lchown(p: &Path, uid: u32, gid: u32) -> R {
    let c = c(p);
    // SAFETY: valid C string.
    let r = unsafe { libc::lchown(c.as_ptr(), uid, gid) };
    ok_or_errno(i64::from(r)).map(drop)
}

/// A time for `utimensat`: seconds and nanoseconds, or `UTIME_NOW` /
/// `UTIME_OMIT` in the nanoseconds.
pub fn utimens(p: &Path, atime: (i64, i64), mtime: (i64, i64), nofollow: bool) -> R {
    let c = c(p);
    let ts = [
        libc::timespec {
            tv_sec: atime.0,
            tv_nsec: atime.1,
        },
        libc::timespec {
            tv_sec: mtime.0,
            tv_nsec: mtime.1,
        },
    ];
    let flags = if nofollow {
        libc::AT_SYMLINK_NOFOLLOW
    } else {
        0
    };
    // SAFETY: valid C string and two timespecs.
    let r = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), ts.as_ptr(), flags) };
    ok_or_errno(i64::from(r)).map(drop)
}

/// `lsetxattr(2)`.
pub fn setxattr(p: &Path, name: &str, value: &[u8], flags: i32) -> R {
    let (c, n) = (c(p), CString::new(name).expect("name"));
    // SAFETY: valid C strings and a valid value buffer.
    let r = unsafe {
        libc::lsetxattr(
            c.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    };
    ok_or_errno(i64::from(r)).map(drop)
}

/// `lgetxattr(2)` with a buffer of `size` bytes (0: the length query).
pub fn getxattr_sized(p: &Path, name: &str, size: usize) -> R<Vec<u8>> {
    let (c, n) = (c(p), CString::new(name).expect("name"));
    let mut buf = vec![0u8; size];
    // SAFETY: valid C strings and a buffer of `size` bytes.
    let r = unsafe { libc::lgetxattr(c.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), size) };
    let len = ok_or_errno(r as i64)? as usize;
    if size == 0 {
        return Ok(len.to_le_bytes().to_vec());
    }
    buf.truncate(len);
    Ok(buf)
}

/// `lgetxattr(2)`: the whole value.
pub fn getxattr(p: &Path, name: &str) -> R<Vec<u8>> {
    getxattr_sized(p, name, 65536)
}

/// `llistxattr(2)`: the names, sorted (tmpfs lists in hash order).
pub fn listxattr(p: &Path) -> R<Vec<String>> {
    let c = c(p);
    let mut buf = vec![0u8; 65536];
    // SAFETY: valid C string and buffer.
    let r = unsafe { libc::llistxattr(c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    let len = ok_or_errno(r as i64)? as usize;
    let mut names: Vec<String> = buf[..len]
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    names.sort();
    Ok(names)
}

/// `lremovexattr(2)`.
pub fn removexattr(p: &Path, name: &str) -> R {
    let (c, n) = (c(p), CString::new(name).expect("name"));
    // SAFETY: valid C strings.
    let r = unsafe { libc::lremovexattr(c.as_ptr(), n.as_ptr()) };
    ok_or_errno(i64::from(r)).map(drop)
}

/// `copy_file_range(2)`.
pub fn copy_file_range(a: &OwnedFd, off_a: u64, b: &OwnedFd, off_b: u64, len: usize) -> R<usize> {
    let mut oa = off_a as i64;
    let mut ob = off_b as i64;
    // SAFETY: valid fds and offsets.
    let r =
        unsafe { libc::copy_file_range(a.as_raw_fd(), &mut oa, b.as_raw_fd(), &mut ob, len, 0) };
    ok_or_errno(r as i64).map(|n| n as usize)
}

/// The fields of `lstat` that memfs must give exactly as tmpfs does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatSummary {
    pub mode: u32,
    pub nlink: u64,
    pub uid: u32,
    pub gid: u32,
    pub size: i64,
    pub blocks: i64,
    pub rdev: u64,
    pub blksize: i64,
}

/// The raw `lstat`.
pub fn lstat_raw(p: &Path) -> R<libc::stat> {
    let c = c(p);
    // SAFETY: an all-zero stat is a valid value to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string and stat buffer.
    let r = unsafe { libc::lstat(c.as_ptr(), &mut st) };
    ok_or_errno(i64::from(r))?;
    Ok(st)
}

/// `lstat`, summarized.
pub fn lstat(p: &Path) -> R<StatSummary> {
    let st = lstat_raw(p)?;
    Ok(StatSummary {
        mode: st.st_mode,
        nlink: st.st_nlink,
        uid: st.st_uid,
        gid: st.st_gid,
        size: st.st_size,
        blocks: st.st_blocks,
        rdev: st.st_rdev,
        blksize: st.st_blksize,
    })
}

/// (atime, mtime, ctime) in nanoseconds.
pub fn times(p: &Path) -> R<[i128; 3]> {
    let st = lstat_raw(p)?;
    let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
    Ok([
        ns(st.st_atime, st.st_atime_nsec),
        ns(st.st_mtime, st.st_mtime_nsec),
        ns(st.st_ctime, st.st_ctime_nsec),
    ])
}

/// The data extents of an open file, by `SEEK_DATA` / `SEEK_HOLE`.
pub fn extents(fd: &OwnedFd) -> R<Vec<(i64, i64)>> {
    let mut out = Vec::new();
    let mut pos = 0i64;
    loop {
        let data = match lseek(fd, pos, libc::SEEK_DATA) {
            Ok(d) => d,
            Err(libc::ENXIO) => return Ok(out),
            Err(e) => return Err(e),
        };
        let hole = lseek(fd, data, libc::SEEK_HOLE)?;
        out.push((data, hole));
        pos = hole;
    }
}

/// The sorted entry names of a directory (`.` and `..` left out).
pub fn list(p: &Path) -> R<Vec<String>> {
    let mut v: Vec<String> = std::fs::read_dir(p)
        .map_err(|e| e.raw_os_error().unwrap_or(0))?
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    Ok(v)
}

/// Compares two trees entry by entry: names, `lstat` summaries, symlink
/// targets, file contents (in 1 MiB pieces), data extents and xattrs.
/// Returns the first difference found.
pub fn compare_trees(a: &Path, b: &Path) -> Result<(), String> {
    compare_dir(a, b, Path::new(""))
}

fn compare_dir(a: &Path, b: &Path, rel: &Path) -> Result<(), String> {
    let (la, lb) = (list(&a.join(rel)), list(&b.join(rel)));
    if la != lb {
        return Err(format!("{}: listing {la:?} != {lb:?}", rel.display()));
    }
    for name in la.unwrap_or_default() {
        let r = rel.join(&name);
        let (pa, pb) = (a.join(&r), b.join(&r));
        let (sa, sb) = (lstat(&pa), lstat(&pb));
        if sa != sb {
            return Err(format!("{}: lstat {sa:?} != {sb:?}", r.display()));
        }
        let (xa, xb) = (listxattr(&pa), listxattr(&pb));
        if xa != xb {
            return Err(format!("{}: xattrs {xa:?} != {xb:?}", r.display()));
        }
        for x in xa.unwrap_or_default() {
            let (va, vb) = (getxattr(&pa, &x), getxattr(&pb, &x));
            if va != vb {
                return Err(format!("{}: xattr {x} differs", r.display()));
            }
        }
        let Ok(s) = sa else { continue };
        match s.mode & libc::S_IFMT {
            libc::S_IFDIR => compare_dir(a, b, &r)?,
            libc::S_IFLNK if readlink(&pa) != readlink(&pb) => {
                return Err(format!("{}: symlink targets differ", r.display()));
            }
            libc::S_IFREG => compare_file(&pa, &pb).map_err(|e| format!("{}: {e}", r.display()))?,
            _ => {}
        }
    }
    Ok(())
}

/// Every path under `root` (relative, `""` for the root itself), depth
/// first in name order. Listing may change directories' atimes.
pub fn tree_paths(root: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) {
        out.push(rel.to_path_buf());
        for name in list(&root.join(rel)).unwrap_or_default() {
            let r = rel.join(&name);
            if lstat(&root.join(&r)).is_ok_and(|s| s.mode & libc::S_IFMT == libc::S_IFDIR) {
                walk(root, &r, out);
            } else {
                out.push(r);
            }
        }
    }
    let mut out = Vec::new();
    walk(root, Path::new(""), &mut out);
    out
}

/// The `lstat` summary and times of each of `paths` under `root`: path
/// walks and attributes only, which change nothing.
pub fn attributes(root: &Path, paths: &[PathBuf]) -> Vec<(PathBuf, R<StatSummary>, R<[i128; 3]>)> {
    paths
        .iter()
        .map(|r| {
            let p = root.join(r);
            (r.clone(), lstat(&p), times(&p))
        })
        .collect()
}

/// Makes the kernel forget the dentries and inodes it caches (those not
/// in use), so that the next walk of a FUSE mount asks the daemon again.
pub fn drop_kernel_caches() {
    std::fs::write("/proc/sys/vm/drop_caches", "2").expect("write drop_caches");
}

/// Compares two regular files' bytes and data extents.
pub fn compare_file(pa: &Path, pb: &Path) -> Result<(), String> {
    let fa = open(pa, libc::O_RDONLY | libc::O_NONBLOCK, 0).map_err(|e| format!("open a: {e}"))?;
    let fb = open(pb, libc::O_RDONLY | libc::O_NONBLOCK, 0).map_err(|e| format!("open b: {e}"))?;
    let (ea, eb) = (extents(&fa), extents(&fb));
    if ea != eb {
        return Err(format!("extents {ea:?} != {eb:?}"));
    }
    let mut ba = vec![0u8; 1 << 20];
    let mut bb = vec![0u8; 1 << 20];
    let mut off = 0u64;
    loop {
        let na = pread(&fa, &mut ba, off).map_err(|e| format!("read a: {e}"))?;
        let nb = pread(&fb, &mut bb, off).map_err(|e| format!("read b: {e}"))?;
        if na != nb || ba[..na] != bb[..nb] {
            let first = ba[..na.min(nb)]
                .iter()
                .zip(&bb[..na.min(nb)])
                .position(|(x, y)| x != y);
            return Err(format!(
                "contents differ at {off} (+{first:?}), lengths {na} {nb}"
            ));
        }
        if na == 0 {
            return Ok(());
        }
        off += na as u64;
    }
}

/// `statvfs(2)`.
pub fn statvfs(root: &Path) -> libc::statvfs {
    let c = c(root);
    // SAFETY: an all-zero statvfs is a valid value to overwrite.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid C string and buffer.
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0, "statvfs");
    st
}

/// Raises `fs.fuse.max_pages_limit` to 4096 pages (16 MiB requests) for
/// the guard's life, through the harness's `Sysctl` (which serializes the
/// knob across test processes). When another process holds the knob for
/// longer than `patience`, goes on without it (requests then stay at the
/// current limit) rather than stall the test run; the late guard, if it
/// comes, is dropped at once, which restores the old value.
pub fn raise_max_pages(patience: std::time::Duration) -> Option<slabfuse_tests::Sysctl> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let guard = slabfuse_tests::Sysctl::set(slabfuse_tests::MAX_PAGES_LIMIT, "4096").ok();
        let _ = tx.send(guard);
    });
    match rx.recv_timeout(patience) {
        Ok(guard) => guard,
        Err(_) => {
            eprintln!(
                "max_pages_limit is held by another process: going on with {} pages",
                std::fs::read_to_string(slabfuse_tests::MAX_PAGES_LIMIT)
                    .unwrap_or_default()
                    .trim()
            );
            None
        }
    }
}
