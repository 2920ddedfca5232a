//! slabfuse-tests: the harness shared by the simulated-kernel tests, the
//! real-mount tests and the proofs.
//!
//! Everything here cleans up after itself even when a test fails: mounts
//! are guards that unmount (lazily, so a hung daemon cannot wedge the test)
//! on drop; sysctl changes are guards that restore the old value; global
//! knobs are serialized across test processes with a file lock.

#![deny(unsafe_op_in_unsafe_fn)]

use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use slabfuse::mount::{MountMethod, MountOptions};
use slabfuse::{Config, DevFuse, Filesystem, Session, WorkerExit};

pub mod deferring;
pub mod sim;
pub mod testfs;

/// Why a privileged test cannot run here, or `None` when it can.
pub fn privileged_skip_reason() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("not root: real mounts need CAP_SYS_ADMIN".into());
    }
    if !Path::new("/dev/fuse").exists() {
        return Some("/dev/fuse is missing".into());
    }
    None
}

/// Returns early from a test (with a printed reason) when real mounts are
/// impossible here.
#[macro_export]
macro_rules! require_mounts {
    () => {
        if let Some(reason) = $crate::privileged_skip_reason() {
            eprintln!("SKIPPED {}: {reason}", module_path!());
            return;
        }
    };
}

/// A fresh, empty directory under the system temp dir, removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `slabfuse-<tag>-<pid>-<n>`.
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("slabfuse-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// An exclusive or shared lock on a global kernel knob, across processes
/// (cargo test threads and nextest processes alike).
pub struct KnobLock {
    _file: File,
}

impl KnobLock {
    fn take(name: &str, exclusive: bool) -> KnobLock {
        let path = std::env::temp_dir().join(format!("slabfuse-knob-{name}.lock"));
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .expect("open knob lock");
        let op = if exclusive {
            rustix::fs::FlockOperation::LockExclusive
        } else {
            rustix::fs::FlockOperation::LockShared
        };
        rustix::fs::flock(&file, op).expect("flock knob lock");
        KnobLock { _file: file }
    }

    /// Shared: the holder relies on the knob keeping its value.
    pub fn shared(name: &str) -> KnobLock {
        KnobLock::take(name, false)
    }

    /// Exclusive: the holder changes the knob.
    pub fn exclusive(name: &str) -> KnobLock {
        KnobLock::take(name, true)
    }
}

/// A sysctl set for the guard's life and restored on drop (even on panic).
pub struct Sysctl {
    path: PathBuf,
    old: String,
    _lock: KnobLock,
}

impl Sysctl {
    /// Sets `path` (e.g. `/proc/sys/fs/fuse/max_pages_limit`) to `value`,
    /// holding the knob's exclusive lock.
    pub fn set(path: &str, value: &str) -> std::io::Result<Sysctl> {
        let lock = KnobLock::exclusive(&knob_name(path));
        let old = std::fs::read_to_string(path)?.trim().to_string();
        std::fs::write(path, value)?;
        Ok(Sysctl {
            path: path.into(),
            old,
            _lock: lock,
        })
    }

    /// The value before this guard.
    pub fn old(&self) -> &str {
        &self.old
    }
}

impl Drop for Sysctl {
    fn drop(&mut self) {
        if let Err(e) = std::fs::write(&self.path, &self.old) {
            eprintln!("could not restore {}: {e}", self.path.display());
        }
    }
}

/// The lock name of a sysctl path.
pub fn knob_name(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_string()
}

/// `fs.fuse.max_pages_limit`.
pub const MAX_PAGES_LIMIT: &str = "/proc/sys/fs/fuse/max_pages_limit";
/// `vm.nr_hugepages`.
pub const NR_HUGEPAGES: &str = "/proc/sys/vm/nr_hugepages";

/// Whether `path` is a mount point right now (from `/proc/self/mountinfo`).
pub fn is_mounted(path: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.to_string_lossy();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|mp| unescape_mount_path(mp) == want)
}

fn unescape_mount_path(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Unmounts `path` lazily if it is mounted; ignores errors.
pub fn force_unmount(path: &Path) {
    if is_mounted(path)
        && let Ok(c) = CString::new(path.as_os_str().as_encoded_bytes())
    {
        let _ = rustix::mount::unmount(c.as_c_str(), rustix::mount::UnmountFlags::DETACH);
    }
}

/// A filesystem served in this process on a real mount, by runtime
/// workers on threads. Unmounts and joins on drop.
pub struct Mounted<F: Filesystem + 'static> {
    dir: TempDir,
    mountpoint: PathBuf,
    /// The connection's number under `/sys/fs/fuse/connections`.
    connection: u32,
    session: Session<F>,
    workers: Vec<JoinHandle<Result<WorkerExit, slabfuse::Errno>>>,
}

impl<F: Filesystem + 'static> Mounted<F> {
    /// Mounts `fs` at a fresh temp dir with `config` and `options`, starts
    /// one thread per worker and waits until INIT has been answered.
    pub fn new(fs: F, config: Config, options: MountOptions) -> Mounted<F> {
        Mounted::new_filled(fs, config, options, None)
    }

    /// As [`new`](Self::new), with every unused byte of the runtime's slab
    /// set to `canary` before serving (see `Session::fill_unused_memory`).
    pub fn new_filled(
        fs: F,
        mut config: Config,
        options: MountOptions,
        canary: Option<u8>,
    ) -> Mounted<F> {
        let dir = TempDir::new("mnt");
        let mountpoint = dir.path().join("m");
        std::fs::create_dir(&mountpoint).expect("mkdir mountpoint");
        let c = CString::new(mountpoint.as_os_str().as_encoded_bytes()).expect("path");
        if config.max_pages_limit == Some(slabfuse::plan::DEFAULT_MAX_PAGES_LIMIT) {
            config.max_pages_limit = slabfuse::plan::read_max_pages_limit();
        }
        let fd = slabfuse::mount::mount_syscall(&c, &options).expect("mount");
        let session = match Session::new(config, fs, Box::new(DevFuse::new(fd))) {
            Ok(s) => s,
            Err(e) => {
                force_unmount(&mountpoint);
                panic!("session: {e}");
            }
        };
        if let Some(byte) = canary {
            session.fill_unused_memory(byte);
        }
        let workers = session
            .workers()
            .into_iter()
            .map(|mut w| {
                std::thread::Builder::new()
                    .name(format!("slabfuse-worker-{}", w.index()))
                    .spawn(move || w.run())
                    .expect("spawn worker")
            })
            .collect();
        let connection = match std::fs::metadata(&mountpoint) {
            Ok(md) => {
                use std::os::unix::fs::MetadataExt;
                rustix::fs::minor(md.dev())
            }
            Err(_) => 0,
        };
        let m = Mounted {
            dir,
            mountpoint,
            connection,
            session,
            workers,
        };
        // The first access triggers INIT; wait for it so tests start clean.
        let deadline = Instant::now() + Duration::from_secs(10);
        while m.session.conn().is_none() {
            let _ = std::fs::metadata(&m.mountpoint);
            if Instant::now() > deadline {
                panic!("INIT was not answered within 10 s");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        m
    }

    /// Mounts with the defaults for tests: 2 workers, 16 MiB messages
    /// (clamped to the kernel's limit), `default_permissions`.
    pub fn with_defaults(fs: F) -> Mounted<F> {
        let config = Config {
            lock_memory: false,
            ..Config::default()
        };
        let options = MountOptions {
            fsname: "slabfuse-test".into(),
            subtype: Some("slabfuse-test".into()),
            allow_other: true,
            ..MountOptions::default()
        };
        Mounted::new(fs, config, options)
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.mountpoint
    }

    /// The session (stats, pool, filesystem).
    pub fn session(&self) -> &Session<F> {
        &self.session
    }

    /// The filesystem.
    pub fn fs(&self) -> &Arc<F> {
        self.session.filesystem()
    }

    /// Unmounts and waits for every worker; returns their exits.
    pub fn unmount(mut self) -> Vec<Result<WorkerExit, slabfuse::Errno>> {
        self.stop()
    }

    fn stop(&mut self) -> Vec<Result<WorkerExit, slabfuse::Errno>> {
        if let Ok(c) = CString::new(self.mountpoint.as_os_str().as_encoded_bytes()) {
            let _ = slabfuse::mount::unmount(&c, MountMethod::Syscall, true);
        }
        // Workers end when the connection goes away, i.e. when the last
        // file on the (lazily unmounted) filesystem closes. A failed test
        // can leave a client blocked on a request nobody will answer; then
        // abort the connection, or this process could never exit.
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.workers.iter().any(|h| !h.is_finished()) {
            if Instant::now() > deadline {
                eprintln!("workers still serving 10 s after unmount: aborting the connection");
                abort_connection(self.connection);
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut exits = Vec::new();
        for h in self.workers.drain(..) {
            match h.join() {
                Ok(r) => exits.push(r),
                Err(_) => exits.push(Err(slabfuse::Errno::IO)),
            }
        }
        exits
    }
}

/// Aborts FUSE connection `id` through fusectl (mounting fusectl for the
/// moment if needed): every request fails, every reader sees ENODEV.
pub fn abort_connection(id: u32) {
    let dir = Path::new("/sys/fs/fuse/connections");
    let mounted_here = if dir.join(id.to_string()).exists() {
        false
    } else {
        rustix::mount::mount(
            c"none",
            c"/sys/fs/fuse/connections",
            c"fusectl",
            rustix::mount::MountFlags::empty(),
            None,
        )
        .is_ok()
    };
    if let Err(e) = std::fs::write(dir.join(id.to_string()).join("abort"), "1") {
        eprintln!("could not abort FUSE connection {id}: {e}");
    }
    if mounted_here {
        let _ = rustix::mount::unmount(
            c"/sys/fs/fuse/connections",
            rustix::mount::UnmountFlags::DETACH,
        );
    }
}

impl<F: Filesystem + 'static> Drop for Mounted<F> {
    fn drop(&mut self) {
        let _ = self.stop();
        force_unmount(&self.mountpoint);
        let _ = &self.dir;
    }
}

/// Opens `path` with `O_DIRECT` (and `extra` flags) for page-aligned I/O.
pub fn open_direct(path: &Path, extra: i32, mode: u32) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut o = std::fs::OpenOptions::new();
    o.read(true)
        .write(true)
        .custom_flags(libc::O_DIRECT | extra)
        .mode(mode);
    if extra & libc::O_CREAT != 0 {
        o.create(true);
    }
    o.open(path)
}

/// A page-aligned heap buffer for `O_DIRECT` I/O.
pub struct AlignedBuf {
    ptr: *mut u8,
    len: usize,
    layout: std::alloc::Layout,
}

// SAFETY: the buffer is an exclusively owned heap allocation, like a Vec.
unsafe impl Send for AlignedBuf {}

impl AlignedBuf {
    /// `len` zero bytes aligned to 4 KiB.
    pub fn zeroed(len: usize) -> AlignedBuf {
        let layout = std::alloc::Layout::from_size_align(len.max(1), 4096).expect("layout");
        // SAFETY: the layout has non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        assert!(!ptr.is_null(), "allocation failed");
        AlignedBuf { ptr, len, layout }
    }
}

impl std::ops::Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `ptr` is valid for `len` initialised bytes while `self` lives.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl std::ops::DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`, and `&mut self` makes the slice unique.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `zeroed` with this layout, freed once.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) };
    }
}

/// A tiny deterministic generator (xorshift64*) for seeded tests: every
/// failure replays from its seed.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// From a seed (0 is mapped to a fixed non-zero state).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `num/den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// The seed for a seeded test: `SLABFUSE_SEED` if set, else `default`.
/// Printed so that a failure can be replayed.
pub fn seed(default: u64) -> u64 {
    let s = std::env::var("SLABFUSE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    eprintln!("seed = {s} (replay with SLABFUSE_SEED={s})");
    s
}

/// Raw fd of a file, for libc calls in tests.
pub fn raw(f: &File) -> i32 {
    f.as_raw_fd()
}
