//! Serving allocates nothing: a counting global allocator (in this test
//! binary only) counts every allocation on every thread while the
//! "serving" flag is set, around a mixed workload on an in-process memfs
//! mount: creates, a 16 MiB `O_DIRECT` write and read, buffered I/O, a
//! read of a file with a hole in every other chunk (more slices than a
//! reply takes: the copying fallback), a listing of a 2000-entry directory (READDIR and READDIRPLUS), xattrs,
//! renames, links, symlinks, truncate, fallocate, lseek, copy_file_range,
//! statfs, unlinks. The workload's own calls are libc calls on paths and
//! buffers made before the flag is set, so they allocate nothing either.

mod memfs_util;

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use memfs_util::c;
use slabfuse_memfs::MemFsConfig;
use slabfuse_tests::AlignedBuf;

static SERVING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
/// Sizes of the first allocations seen while serving (for the message).
static FIRST_SIZES: [AtomicUsize; 8] = [const { AtomicUsize::new(0) }; 8];

struct Counting;

impl Counting {
    fn note(&self, size: usize) {
        if SERVING.load(Ordering::Relaxed) {
            let n = ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
            if let Some(slot) = FIRST_SIZES.get(n) {
                slot.store(size, Ordering::Relaxed);
            }
        }
    }
}

// SAFETY: every method forwards to the system allocator unchanged; the
// counting touches only atomics and never allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.note(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        self.note(layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        self.note(new_size);
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const DIR_ENTRIES: usize = 2000;
const BIG: usize = 16 << 20;

/// Every path and buffer the workload uses, made up front.
struct Workload {
    dir: CString,
    entries: Vec<CString>,
    big: CString,
    frag: CString,
    small: CString,
    copy: CString,
    renamed: CString,
    linked: CString,
    link: CString,
    xattr_names: Vec<CString>,
    root: CString,
    buf: AlignedBuf,
    small_buf: Vec<u8>,
    dents: Vec<u8>,
    target: CString,
}

fn ok(r: i64, what: &str) {
    assert!(r >= 0, "{what}: {}", std::io::Error::last_os_error());
}

// One libc call per wrapper, so that each unsafe block has one operation
// and one proof. None of them allocates.

fn c_open(p: &CString, flags: i32, mode: u32) -> i32 {
    // SAFETY: `p` is a valid C string.
    let fd = unsafe { libc::open(p.as_ptr(), flags, mode) };
    ok(fd.into(), "open");
    fd
}

fn c_close(fd: i32) {
    // SAFETY: `fd` is ours and closed once.
    unsafe { libc::close(fd) };
}

fn c_path(f: unsafe extern "C" fn(*const libc::c_char) -> i32, p: &CString, what: &str) {
    // SAFETY: `f` is a libc call taking one path; `p` is a valid C string.
    ok(unsafe { f(p.as_ptr()) }.into(), what);
}

fn c_two(
    f: unsafe extern "C" fn(*const libc::c_char, *const libc::c_char) -> i32,
    a: &CString,
    b: &CString,
    what: &str,
) {
    // SAFETY: `f` is a libc call taking two paths; both are valid C strings.
    ok(unsafe { f(a.as_ptr(), b.as_ptr()) }.into(), what);
}

fn c_pwrite(fd: i32, buf: &[u8], off: i64) -> usize {
    // SAFETY: `buf` is valid for reads of its length.
    let n = unsafe { libc::pwrite(fd, buf.as_ptr().cast(), buf.len(), off) };
    ok(n as i64, "pwrite");
    n as usize
}

fn c_pread(fd: i32, buf: &mut [u8], off: i64) -> usize {
    // SAFETY: `buf` is valid for writes of its length.
    let n = unsafe { libc::pread(fd, buf.as_mut_ptr().cast(), buf.len(), off) };
    ok(n as i64, "pread");
    n as usize
}

fn c_fallocate(fd: i32, mode: i32, off: i64, len: i64) {
    // SAFETY: a plain syscall on our fd.
    ok(
        unsafe { libc::fallocate(fd, mode, off, len) }.into(),
        "fallocate",
    );
}

fn c_seek_hole(fd: i32) -> i64 {
    // SAFETY: a plain syscall on our fd.
    unsafe { libc::lseek(fd, 0, libc::SEEK_HOLE) }
}

fn c_ftruncate(fd: i32, len: i64) {
    // SAFETY: a plain syscall on our fd.
    ok(unsafe { libc::ftruncate(fd, len) }.into(), "ftruncate");
}

fn c_copy(from: i32, to: i32, len: usize) -> i64 {
    let (mut a, mut b) = (0i64, 0i64);
    // SAFETY: valid fds and offsets.
    unsafe { libc::copy_file_range(from, &mut a, to, &mut b, len, 0) as i64 }
}

fn c_mkdir(p: &CString) {
    // SAFETY: `p` is a valid C string.
    ok(unsafe { libc::mkdir(p.as_ptr(), 0o755) }.into(), "mkdir");
}

fn c_stat(p: &CString, st: &mut libc::stat) {
    // SAFETY: valid C string and buffer.
    ok(unsafe { libc::stat(p.as_ptr(), st) }.into(), "stat");
}

fn c_setxattr(p: &CString, name: &CString, value: &[u8]) {
    // SAFETY: valid C strings and value buffer.
    let r = unsafe {
        libc::setxattr(
            p.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    ok(r.into(), "setxattr");
}

fn c_getxattr(p: &CString, name: &CString, buf: &mut [u8]) -> isize {
    // SAFETY: valid C strings and buffer (a zero length asks for the size).
    let r = unsafe {
        libc::getxattr(
            p.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    ok(r as i64, "getxattr");
    r
}

fn c_listxattr(p: &CString, buf: &mut [u8]) {
    // SAFETY: valid C string and buffer.
    let r = unsafe { libc::listxattr(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    ok(r as i64, "listxattr");
}

fn c_removexattr(p: &CString, name: &CString) {
    // SAFETY: valid C strings.
    ok(
        unsafe { libc::removexattr(p.as_ptr(), name.as_ptr()) }.into(),
        "removexattr",
    );
}

fn c_readlink(p: &CString, buf: &mut [u8]) {
    // SAFETY: valid C string and buffer.
    let r = unsafe { libc::readlink(p.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    ok(r as i64, "readlink");
}

fn c_statvfs(p: &CString, st: &mut libc::statvfs) {
    // SAFETY: valid C string and buffer.
    ok(unsafe { libc::statvfs(p.as_ptr(), st) }.into(), "statvfs");
}

/// Reads a whole directory with getdents64 (no libc DIR, no Rust alloc).
fn list_dir(path: &CString, dents: &mut [u8]) -> usize {
    let fd = c_open(path, libc::O_RDONLY | libc::O_DIRECTORY, 0);
    let mut entries = 0;
    loop {
        // SAFETY: `dents` is a valid buffer of its length.
        let n = unsafe { libc::syscall(libc::SYS_getdents64, fd, dents.as_mut_ptr(), dents.len()) };
        ok(n, "getdents64");
        if n == 0 {
            break;
        }
        let mut at = 0usize;
        while at < n as usize {
            let reclen = u16::from_ne_bytes([dents[at + 16], dents[at + 17]]) as usize;
            entries += 1;
            at += reclen;
        }
    }
    c_close(fd);
    entries
}

/// One round of everything; returns the listing's length.
fn run(w: &mut Workload) -> usize {
    c_mkdir(&w.dir);
    for e in &w.entries {
        c_close(c_open(e, libc::O_CREAT | libc::O_WRONLY, 0o644));
    }
    // 16 MiB with O_DIRECT, read back, a hole punched and found.
    let fd = c_open(&w.big, libc::O_CREAT | libc::O_RDWR | libc::O_DIRECT, 0o644);
    assert_eq!(c_pwrite(fd, &w.buf, 0), BIG);
    assert_eq!(c_pread(fd, &mut w.buf, 0), BIG);
    c_fallocate(
        fd,
        libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
        4096,
        65536,
    );
    assert_eq!(c_seek_hole(fd), 4096);
    // A 16 MiB read of a file with a hole in every other chunk needs more
    // slices than one reply takes: the copying fallback, checked.
    let ffd = c_open(
        &w.frag,
        libc::O_CREAT | libc::O_RDWR | libc::O_DIRECT,
        0o644,
    );
    for k in (0..BIG / 4096).step_by(2) {
        assert_eq!(c_pwrite(ffd, &w.buf[..4096], (k * 4096) as i64), 4096);
    }
    c_ftruncate(ffd, BIG as i64);
    assert_eq!(c_pread(ffd, &mut w.buf, 0), BIG);
    for (k, chunk) in w.buf.chunks(4096).enumerate() {
        let expect = if k % 2 == 0 { 0x5a } else { 0 };
        assert!(
            chunk.iter().all(|&b| b == expect),
            "chunk {k} of the fragmented file"
        );
    }
    w.buf.fill(0x5a);
    c_close(ffd);
    // Buffered I/O and copy_file_range.
    let sfd = c_open(&w.small, libc::O_CREAT | libc::O_RDWR, 0o644);
    assert_eq!(c_pwrite(sfd, &w.small_buf, 100), w.small_buf.len());
    assert_eq!(c_pread(sfd, &mut w.small_buf, 100), w.small_buf.len());
    let cfd = c_open(&w.copy, libc::O_CREAT | libc::O_RDWR, 0o644);
    assert_eq!(c_copy(fd, cfd, 1 << 20), 1 << 20);
    c_ftruncate(cfd, 12345);
    c_fallocate(cfd, 0, 0, 1 << 20);
    for f in [cfd, sfd, fd] {
        c_close(f);
    }
    // A big listing (READDIRPLUS, then READDIR), and stat of every entry.
    let listed = list_dir(&w.dir, &mut w.dents);
    let _ = list_dir(&w.dir, &mut w.dents);
    // SAFETY: an all-zero stat is a valid value to overwrite.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    for e in &w.entries {
        c_stat(e, &mut st);
    }
    // xattrs: set, get (length and value), list, remove.
    let mut value = [0u8; 256];
    for x in &w.xattr_names {
        c_setxattr(&w.small, x, &w.small_buf[..200]);
        assert_eq!(c_getxattr(&w.small, x, &mut []), 200);
        assert_eq!(c_getxattr(&w.small, x, &mut value), 200);
    }
    c_listxattr(&w.small, &mut value);
    for x in &w.xattr_names {
        c_removexattr(&w.small, x);
    }
    // Names: rename, link, symlink, readlink, statfs, unlink, rmdir.
    c_two(libc::rename, &w.small, &w.renamed, "rename");
    c_two(libc::link, &w.renamed, &w.linked, "link");
    c_two(libc::symlink, &w.target, &w.link, "symlink");
    c_readlink(&w.link, &mut value[..]);
    // SAFETY: an all-zero statvfs is a valid value to overwrite.
    let mut sfs: libc::statvfs = unsafe { std::mem::zeroed() };
    c_statvfs(&w.root, &mut sfs);
    for p in [&w.renamed, &w.linked, &w.link, &w.big, &w.copy, &w.frag] {
        c_path(libc::unlink, p, "unlink");
    }
    for e in &w.entries {
        c_path(libc::unlink, e, "unlink entry");
    }
    c_path(libc::rmdir, &w.dir, "rmdir");
    listed
}

#[test]
fn serving_a_mixed_workload_allocates_nothing() {
    slabfuse_tests::require_mounts!();
    // 16 MiB requests need the kernel's page limit raised (restored after).
    let _limit = memfs_util::raise_max_pages(std::time::Duration::from_secs(20));
    let m = memfs_util::memfs(MemFsConfig {
        size_bytes: 128 << 20,
        inodes: 8192,
        ..MemFsConfig::default()
    });
    if _limit.is_some() {
        // One READ carries all 16 MiB: the fragmented read takes the
        // copying fallback (2048 data and 2048 hole slices > 1022).
        assert_eq!(m.session().conn().map(|c| c.max_read), Some(16 << 20));
    }
    let root = m.path();
    let dir = root.join("big-dir");
    let mut w = Workload {
        dir: c(&dir),
        entries: (0..DIR_ENTRIES)
            .map(|i| c(&dir.join(format!("entry-with-a-longer-name-{i:05}"))))
            .collect(),
        big: c(&root.join("big")),
        frag: c(&root.join("frag")),
        small: c(&root.join("small")),
        copy: c(&root.join("copy")),
        renamed: c(&root.join("renamed")),
        linked: c(&root.join("linked")),
        link: c(&root.join("link")),
        xattr_names: ["user.a", "user.b", "trusted.c", "security.d"]
            .iter()
            .map(|n| CString::new(*n).unwrap())
            .collect(),
        root: c(root),
        buf: AlignedBuf::zeroed(BIG),
        small_buf: vec![9u8; 10000],
        dents: vec![0u8; 32 << 10],
        target: CString::new(vec![b't'; 300]).unwrap(),
    };
    w.buf.fill(0x5a);
    // Warm-up: every code path runs once before counting (lazy statics,
    // thread-locals, the kernel's first requests).
    assert_eq!(run(&mut w), DIR_ENTRIES + 2);
    SERVING.store(true, Ordering::SeqCst);
    let listed = run(&mut w);
    let listed_again = run(&mut w);
    SERVING.store(false, Ordering::SeqCst);
    let count = ALLOCATIONS.load(Ordering::SeqCst);
    let sizes: Vec<usize> = FIRST_SIZES
        .iter()
        .map(|s| s.load(Ordering::Relaxed))
        .collect();
    assert_eq!((listed, listed_again), (DIR_ENTRIES + 2, DIR_ENTRIES + 2));
    assert_eq!(
        count, 0,
        "allocations while serving (first sizes {sizes:?})"
    );
    let stats = m.session().stats();
    eprintln!("served {} requests, 0 allocations", stats.requests);
}
