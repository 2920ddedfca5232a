//! What the `daemon_*` tests share: finding (and building) the
//! `slabfuse-memfs` binary, running it, reading its plan and summary lines,
//! and guards that unmount and kill whatever a test started, even when the
//! test fails.
//!
//! # Finding the binary
//!
//! A test of another package cannot use `CARGO_BIN_EXE_slabfuse-memfs`, and
//! `cargo test` does not build other packages' binaries. So
//! [`daemon_binary`] runs `cargo build -p slabfuse-memfs --bin
//! slabfuse-memfs` once per test process, with the cargo that built the
//! test (`env!("CARGO")`), the test's own profile and target directory
//! (read from the test executable's path, `<target>/<profile>/deps/…`), and
//! uses `<target>/<profile>/slabfuse-memfs`. When fresh, that build is a
//! no-op of a fraction of a second; when stale, the tests never run an old
//! daemon. `SLABFUSE_MEMFS_BIN=/path/to/slabfuse-memfs` skips the build
//! (e.g. to test an installed binary).
//!
//! Each `daemon_*.rs` file includes this module (`#[macro_use] mod
//! daemon_support;`) and uses a part of it; the rest would warn as unused
//! in that test crate, hence the allows.
#![allow(dead_code, unused_imports, unused_macros, unreachable_pub)]

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use slabfuse_tests::{TempDir, force_unmount, is_mounted, privileged_skip_reason};

/// `FUSE_SUPER_MAGIC`: `statfs` of a FUSE mount.
pub const FUSE_SUPER_MAGIC: u64 = 0x6573_5546;
/// How long any one step (a start, a stop) may take before the test fails.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(20);
/// The plan line's fields, in order.
pub const PLAN_FIELDS: [&str; 9] = [
    "workers",
    "max_message",
    "block_size",
    "pool_blocks",
    "backing",
    "locked",
    "storage",
    "inodes",
    "mapped_total",
];
/// The summary line's fields, in order.
pub const SUMMARY_FIELDS: [&str; 8] = [
    "requests",
    "largest_write",
    "largest_read",
    "eagain",
    "malformed",
    "heap_allocs_after_start",
    "page_faults_after_start",
    "pool_high_water",
];

/// The daemon binary, built if needed; see the module doc.
pub fn daemon_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(path) = std::env::var_os("SLABFUSE_MEMFS_BIN") {
            return PathBuf::from(path);
        }
        let exe = std::env::current_exe().expect("current_exe");
        // <target>/<profile>/deps/<test>-<hash>
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("the test executable lives in <target>/<profile>/deps");
        let target_dir = profile_dir.parent().expect("<target>");
        let profile = profile_dir
            .file_name()
            .and_then(OsStr::to_str)
            .expect("profile directory name");
        let mut cargo = Command::new(env!("CARGO"));
        cargo
            .args([
                "build",
                "--quiet",
                "-p",
                "slabfuse-memfs",
                "--bin",
                "slabfuse-memfs",
            ])
            .env("CARGO_TARGET_DIR", target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        match profile {
            "debug" => {}
            "release" => {
                cargo.arg("--release");
            }
            other => {
                cargo.args(["--profile", other]);
            }
        }
        let out = cargo.output().expect("run cargo to build slabfuse-memfs");
        assert!(
            out.status.success(),
            "building slabfuse-memfs failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let binary = profile_dir.join("slabfuse-memfs");
        assert!(binary.exists(), "{} was not built", binary.display());
        binary
    })
}

/// The directory that holds [`daemon_binary`] (for `PATH`).
pub fn daemon_binary_dir() -> &'static Path {
    daemon_binary().parent().expect("binary directory")
}

/// A fresh directory with an empty `m` subdirectory to mount on.
pub fn mount_dir(tag: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new(tag);
    let mp = dir.path().join("m");
    std::fs::create_dir(&mp).expect("mkdir mount point");
    (dir, mp)
}

/// Collects a pipe's text on a thread until EOF (the last process holding
/// the write end exits).
pub struct Collector {
    text: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

impl Collector {
    /// Starts reading `pipe`.
    pub fn start(mut pipe: impl Read + Send + 'static) -> Collector {
        let text = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&text);
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => sink
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&buf[..n])),
                }
            }
        });
        Collector {
            text,
            reader: Some(reader),
        }
    }

    /// What arrived so far.
    pub fn text(&self) -> String {
        self.text.lock().unwrap().clone()
    }

    /// Waits for EOF (every writer gone); false on timeout.
    pub fn wait_eof(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while let Some(r) = &self.reader {
            if r.is_finished() {
                let _ = self.reader.take().map(JoinHandle::join);
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }
}

/// Runs a command to completion (killing it after `timeout`): exit
/// status, stdout, stderr.
pub fn run(cmd: &mut Command, timeout: Duration) -> (ExitStatus, String, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let mut out = Collector::start(child.stdout.take().unwrap());
    let mut err = Collector::start(child.stderr.take().unwrap());
    let status = wait_child(&mut child, timeout);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    // A daemon the command left in the background holds its stderr until
    // it exits.
    let eof = out.wait_eof(timeout) && err.wait_eof(timeout);
    assert!(
        eof,
        "{cmd:?}: output still open {timeout:?} after it exited\nstderr: {}",
        err.text()
    );
    let status = status.unwrap_or_else(|| {
        panic!(
            "{cmd:?} did not finish within {timeout:?}\nstderr: {}",
            err.text()
        )
    });
    (status, out.text(), err.text())
}

/// Runs the daemon binary with `args` and waits for it (it must not serve:
/// for usage errors, `--help` and the like).
pub fn run_daemon(args: &[&OsStr]) -> (ExitStatus, String, String) {
    run(Command::new(daemon_binary()).args(args), STEP_TIMEOUT)
}

/// Waits for `child` up to `timeout`; `None` if it is still running.
pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Sends `signal` to process `pid`.
pub fn send_signal(pid: u32, signal: i32) {
    let pid = libc::pid_t::try_from(pid).expect("pid");
    // SAFETY: kill has no memory effects in this process.
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(
        rc,
        0,
        "kill({pid}, {signal}): {}",
        std::io::Error::last_os_error()
    );
}

/// `statfs(path).f_type`, or the errno. (`f_type` is a signed word whose
/// width depends on the architecture; magic numbers are positive.)
pub fn fs_type(path: &Path) -> Result<u64, rustix::io::Errno> {
    rustix::fs::statfs(path).map(|s| s.f_type as u64)
}

/// True once `path` is a FUSE mount that answers (`statfs` goes to the
/// daemon, and returns only after INIT has been answered).
pub fn fuse_answers(path: &Path) -> bool {
    is_mounted(path) && fs_type(path) == Ok(FUSE_SUPER_MAGIC)
}

/// Polls `what` until true; false after `timeout`.
pub fn wait_until(timeout: Duration, mut what: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if what() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Processes whose command line is this binary's (argv[0] ending in
/// `slabfuse-memfs`) and names `mountpoint`: daemons that went to the
/// background are found this way.
pub fn daemons_on(mountpoint: &Path) -> Vec<u32> {
    let want = mountpoint.as_os_str().as_bytes();
    let mut pids = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let mut args = cmdline.split(|&b| b == 0);
        let is_daemon = args
            .next()
            .is_some_and(|argv0| argv0.ends_with(b"slabfuse-memfs"));
        if is_daemon && args.any(|a| a == want) {
            pids.push(pid);
        }
    }
    pids
}

/// Kills (SIGKILL) every daemon serving `mountpoint`, then unmounts it.
pub fn kill_daemons_on(mountpoint: &Path) {
    for pid in daemons_on(mountpoint) {
        if let Ok(pid) = libc::pid_t::try_from(pid) {
            // SAFETY: kill has no memory effects in this process; the pid
            // was just found running our binary on our mount point.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    force_unmount(mountpoint);
}

/// A daemon started by a test, in the foreground (`-f`) or not. On drop it
/// unmounts the mount point and kills the daemon (and whatever daemon went
/// to the background for this mount point), so a failed test leaves
/// nothing behind.
pub struct Daemon {
    child: Child,
    mountpoint: PathBuf,
    stderr: Collector,
    exited: Option<ExitStatus>,
}

impl Daemon {
    /// Starts the binary with `args` (which name `mountpoint` somewhere).
    pub fn start(mountpoint: &Path, args: &[&OsStr]) -> Daemon {
        Daemon::start_command(mountpoint, Command::new(daemon_binary()).args(args))
    }

    /// Starts `cmd` (the binary, or a helper that runs it, like
    /// `mount.fuse3`), whose daemon will serve `mountpoint`.
    pub fn start_command(mountpoint: &Path, cmd: &mut Command) -> Daemon {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        let stderr = Collector::start(child.stderr.take().unwrap());
        Daemon {
            child,
            mountpoint: mountpoint.to_path_buf(),
            stderr,
            exited: None,
        }
    }

    /// Starts `slabfuse-memfs -f ARGS MOUNTPOINT` and waits until the mount
    /// answers.
    pub fn foreground(mountpoint: &Path, args: &[&str]) -> Daemon {
        let mut all: Vec<&OsStr> = vec![OsStr::new("-f")];
        all.extend(args.iter().map(OsStr::new));
        all.push(mountpoint.as_os_str());
        let mut d = Daemon::start(mountpoint, &all);
        d.wait_serving();
        d
    }

    /// The started process's pid (the daemon itself in the foreground).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the mount answers and the plan line has been read from
    /// the daemon's stderr; panics with the daemon's stderr when that does
    /// not happen, or when the daemon exits first.
    pub fn wait_serving(&mut self) {
        let planned = |d: &Daemon| d.stderr.text().contains("slabfuse-memfs: plan ");
        let ok = wait_until(STEP_TIMEOUT, || {
            (fuse_answers(&self.mountpoint) && planned(self))
                || matches!(self.child.try_wait(), Ok(Some(_)))
        });
        assert!(
            ok && fuse_answers(&self.mountpoint) && planned(self),
            "the daemon did not serve {} within {STEP_TIMEOUT:?} (exit: {:?})\nstderr:\n{}",
            self.mountpoint.display(),
            self.child.try_wait(),
            self.stderr.text()
        );
    }

    /// Sends `signal` to the started process.
    pub fn signal(&self, signal: i32) {
        send_signal(self.pid(), signal);
    }

    /// Waits for the started process to exit; panics after [`STEP_TIMEOUT`].
    pub fn wait_exit(&mut self) -> ExitStatus {
        if let Some(s) = self.exited {
            return s;
        }
        let status = wait_child(&mut self.child, STEP_TIMEOUT).unwrap_or_else(|| {
            panic!(
                "the daemon did not exit within {STEP_TIMEOUT:?}\nstderr:\n{}",
                self.stderr.text()
            )
        });
        self.exited = Some(status);
        status
    }

    /// Waits until every process holding the daemon's stderr is gone (for a
    /// daemon in the background: until the background daemon exits) and
    /// returns all it printed.
    pub fn wait_stderr_eof(&mut self) -> String {
        let done = self.stderr.wait_eof(STEP_TIMEOUT);
        assert!(
            done,
            "the daemon's stderr stayed open for {STEP_TIMEOUT:?}:\n{}",
            self.stderr.text()
        );
        self.stderr.text()
    }

    /// What the daemon printed so far.
    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// The mount point.
    pub fn mountpoint(&self) -> &Path {
        &self.mountpoint
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        force_unmount(&self.mountpoint);
        if self.exited.is_none() && matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        kill_daemons_on(&self.mountpoint);
    }
}

/// The `slabfuse-memfs: <kind> k=v …` line of `stderr`, as ordered pairs;
/// panics (showing `stderr`) when there is not exactly one.
pub fn fields(stderr: &str, kind: &str) -> Vec<(String, String)> {
    let prefix = format!("slabfuse-memfs: {kind} ");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with(&prefix)).collect();
    assert_eq!(lines.len(), 1, "expected one {kind} line in:\n{stderr}");
    lines[0][prefix.len()..]
        .split(' ')
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .unwrap_or_else(|| panic!("{kv:?} is not key=value in {:?}", lines[0]));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// The value of `key` in `fields`.
pub fn field<'a>(fields: &'a [(String, String)], key: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("no {key} in {fields:?}"))
}

/// The value of `key` as a number.
pub fn number(fields: &[(String, String)], key: &str) -> u64 {
    let v = field(fields, key);
    v.parse()
        .unwrap_or_else(|_| panic!("{key}={v} is not a number"))
}

/// Whether `v` is a size as the daemon prints them: `123`, `4K`, `16M`, `1G`.
pub fn is_size(v: &str) -> bool {
    let digits = v.trim_end_matches(['K', 'M', 'G']);
    !digits.is_empty() && digits.len() + 1 >= v.len() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Checks the plan line: every field, in order, each well-formed.
pub fn check_plan_line(stderr: &str) -> Vec<(String, String)> {
    let f = fields(stderr, "plan");
    let keys: Vec<&str> = f.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, PLAN_FIELDS, "plan fields in:\n{stderr}");
    assert!(number(&f, "workers") >= 1);
    assert!(number(&f, "pool_blocks") >= 1);
    assert!(number(&f, "inodes") >= 1);
    for k in ["max_message", "block_size", "storage", "mapped_total"] {
        assert!(is_size(field(&f, k)), "{k}={} is not a size", field(&f, k));
    }
    assert!(
        ["hugetlb-2M", "hugetlb-1G", "thp", "normal"].contains(&field(&f, "backing")),
        "backing={}",
        field(&f, "backing")
    );
    assert!(
        ["all", "slab+storage", "slab", "storage", "no"].contains(&field(&f, "locked")),
        "locked={}",
        field(&f, "locked")
    );
    f
}

/// Checks the summary line: every field, in order, each well-formed.
pub fn check_summary_line(stderr: &str) -> Vec<(String, String)> {
    let f = fields(stderr, "summary");
    let keys: Vec<&str> = f.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, SUMMARY_FIELDS, "summary fields in:\n{stderr}");
    for k in [
        "requests",
        "eagain",
        "malformed",
        "heap_allocs_after_start",
        "page_faults_after_start",
    ] {
        number(&f, k);
    }
    for k in ["largest_write", "largest_read"] {
        assert!(is_size(field(&f, k)), "{k}={} is not a size", field(&f, k));
    }
    let (used, total) = field(&f, "pool_high_water")
        .split_once('/')
        .expect("pool_high_water=USED/TOTAL");
    let (used, total): (u64, u64) = (used.parse().unwrap(), total.parse().unwrap());
    assert!(
        used <= total && total >= 1,
        "pool_high_water={used}/{total}"
    );
    f
}

/// Describes an exit status for messages.
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => format!("signal {s}"),
        _ => format!("{status:?}"),
    }
}

/// `std::fs::metadata` of the mount's root, where memfs answers GETATTR.
/// `None` while memfs does not implement it yet (ENOSYS): the callers'
/// attribute checks need the real filesystem and are skipped until then.
pub fn root_attributes(mountpoint: &Path) -> Option<std::fs::Metadata> {
    match std::fs::metadata(mountpoint) {
        Ok(m) => Some(m),
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
            eprintln!(
                "note: memfs answers GETATTR with ENOSYS (not implemented yet): skipping the root attribute checks"
            );
            None
        }
        Err(e) => panic!("stat {}: {e}", mountpoint.display()),
    }
}

/// Returns early from a test, with a reason, when `cmd` is not installed.
/// (Include this module with `#[macro_use]`.)
macro_rules! require_command {
    ($cmd:expr) => {
        if !$crate::daemon_support::have_command($cmd) {
            eprintln!("SKIPPED {}: `{}` is not installed", module_path!(), $cmd);
            return;
        }
    };
}

/// Whether `name` is found in PATH (or is an existing path).
pub fn have_command(name: &str) -> bool {
    if name.contains('/') {
        return Path::new(name).exists();
    }
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(name).exists()))
        || ["/sbin", "/usr/sbin", "/bin", "/usr/bin"]
            .iter()
            .any(|d| Path::new(d).join(name).exists())
}
