//! The daemon in the foreground (`-f`) on real mounts: the plan line, the
//! options it honours, the negotiation sentence, and every way it ends
//! (SIGTERM, SIGINT, SIGHUP, an unmount from outside) with its summary line
//! and exit code 0. Needs root; skips with a reason otherwise.
//!
//! Checks of the root directory's attributes and of the serving counts need
//! memfs to answer GETATTR and friends; while it answers ENOSYS they are
//! skipped with a note (see `root_attributes`).

// Test code: a panic here is a failed test, not a crashed daemon.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod daemon_support;

use std::os::unix::fs::MetadataExt;

use daemon_support::*;
use slabfuse_tests::{KnobLock, MAX_PAGES_LIMIT, Sysctl, require_mounts};

/// The kernel's cap on a request, bytes, as the daemon computes it.
fn kernel_cap_bytes() -> u64 {
    let pages: u64 = std::fs::read_to_string(MAX_PAGES_LIMIT)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(256);
    pages * rustix::param::page_size() as u64
}

fn human(bytes: u64) -> String {
    for (shift, unit) in [(30, "G"), (20, "M"), (10, "K")] {
        if bytes > 0 && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// Starts a daemon with `args`, stops it with `signal`, and checks the
/// unmount, the exit code and the summary line; returns the stderr.
fn stops_cleanly_on(signal: i32, args: &[&str]) -> String {
    let (_dir, mp) = mount_dir("daemon-fg");
    let mut d = Daemon::foreground(&mp, args);
    // Some traffic, so that the summary has something to count.
    for _ in 0..3 {
        assert_eq!(fs_type(&mp), Ok(FUSE_SUPER_MAGIC));
    }
    d.signal(signal);
    let status = d.wait_exit();
    let err = d.wait_stderr_eof();
    assert_eq!(status.code(), Some(0), "{}\n{err}", describe(status));
    assert!(!is_mounted(&mp), "still mounted after signal {signal}");
    let summary = check_summary_line(&err);
    // INIT and three STATFS at least.
    assert!(number(&summary, "requests") >= 4, "{err}");
    assert_eq!(number(&summary, "malformed"), 0, "{err}");
    assert!(
        err.lines()
            .last()
            .unwrap()
            .starts_with("slabfuse-memfs: summary "),
        "the summary is the last line:\n{err}"
    );
    err
}

#[test]
fn the_plan_line_has_every_field_and_the_defaults() {
    require_mounts!();
    // The message size depends on the sysctl: hold it still.
    let _knob = KnobLock::shared("max_pages_limit");
    let (_dir, mp) = mount_dir("daemon-fg");
    let d = Daemon::foreground(&mp, &[]);
    let err = d.stderr();
    let plan = check_plan_line(&err);
    let cpus = std::thread::available_parallelism().unwrap().get() as u64;
    assert_eq!(number(&plan, "workers"), cpus, "{err}");
    assert_eq!(
        field(&plan, "max_message"),
        human(kernel_cap_bytes().min(16 << 20)),
        "{err}"
    );
    assert_eq!(field(&plan, "storage"), "64M", "{err}");
    assert_eq!(number(&plan, "inodes"), 65536, "{err}");
    // As root, mlockall is permitted.
    assert_eq!(field(&plan, "locked"), "all", "{err}");
    // The default mount: fuse.slabfuse-memfs, named after the program,
    // default_permissions on, nosuid and nodev.
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = info
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(mp.to_str().unwrap()))
        .unwrap();
    assert!(
        line.contains(" - fuse.slabfuse-memfs slabfuse-memfs "),
        "{line}"
    );
    assert!(line.contains("default_permissions"), "{line}");
    assert!(line.contains("nosuid") && line.contains("nodev"), "{line}");
    if let Some(root) = root_attributes(&mp) {
        assert!(root.is_dir());
        assert_eq!(root.mode() & 0o7777, 0o1777, "memfs's default root mode");
        assert_eq!(root.uid(), 0, "the root belongs to the mounter");
    }
}

#[test]
fn options_are_honoured_before_and_after_the_mount_point() {
    require_mounts!();
    let (_dir, mp) = mount_dir("daemon-fg");
    let mut all = vec!["-f", "-o", "size=8M,inodes=1024,workers=1,hugepages=off"];
    let mp_str = mp.to_str().unwrap().to_string();
    all.push(&mp_str);
    // Long options after the mount point override the -o values.
    all.extend([
        "--max-message",
        "512K",
        "--block-size=128K",
        "-o",
        "ro,allow_other,no_default_permissions,noexec,fsname=memtest,subtype=memtest2,\
         uid=1234,gid=567,mode=0750,nofail,_netdev,relatime,x-systemd.automount",
    ]);
    let args: Vec<&std::ffi::OsStr> = all.iter().map(std::ffi::OsStr::new).collect();
    let mut d = Daemon::start(&mp, &args);
    d.wait_serving();
    let err = d.stderr();
    let plan = check_plan_line(&err);
    assert_eq!(number(&plan, "workers"), 1, "{err}");
    assert_eq!(field(&plan, "max_message"), "512K", "{err}");
    assert_eq!(field(&plan, "block_size"), "128K", "{err}");
    // 512K in 128K blocks: four per receive buffer, four spare.
    assert_eq!(number(&plan, "pool_blocks"), 8, "{err}");
    assert_eq!(field(&plan, "backing"), "normal", "hugepages=off: {err}");
    assert_eq!(field(&plan, "storage"), "8M", "{err}");
    assert_eq!(number(&plan, "inodes"), 1024, "{err}");
    assert!(
        !err.contains("kernel limit"),
        "512K is within the kernel's cap: no negotiation sentence\n{err}"
    );
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = info
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(mp.to_str().unwrap()))
        .unwrap();
    assert!(line.contains(" - fuse.memtest2 memtest "), "{line}");
    assert!(line.split(' ').nth(5).unwrap().starts_with("ro,"), "{line}");
    assert!(
        line.contains("noexec") && line.contains("allow_other"),
        "{line}"
    );
    assert!(!line.contains("default_permissions"), "{line}");
    if let Some(root) = root_attributes(&mp) {
        assert_eq!(root.mode() & 0o7777, 0o750);
        assert_eq!((root.uid(), root.gid()), (1234, 567));
    }
}

#[test]
fn sixteen_mib_at_the_default_page_limit_prints_the_negotiation() {
    require_mounts!();
    if !std::path::Path::new(MAX_PAGES_LIMIT).exists() {
        eprintln!("SKIPPED: this kernel has no fs.fuse.max_pages_limit");
        return;
    }
    let (_dir, mp) = mount_dir("daemon-fg");
    {
        let _limit = Sysctl::set(MAX_PAGES_LIMIT, "256").unwrap();
        let d = Daemon::foreground(&mp, &["--max-message", "16M", "--workers", "1"]);
        let err = d.stderr();
        assert!(
            err.contains(
                "slabfuse-memfs: max message 16M asked, kernel limit 1M \
                 (fs.fuse.max_pages_limit = 256): raise fs.fuse.max_pages_limit to 4096 for \
                 16M requests\n"
            ),
            "{err}"
        );
        assert_eq!(field(&check_plan_line(&err), "max_message"), "1M");
    }
    // With the limit raised, 16M is granted and nothing needs saying.
    let _limit = Sysctl::set(MAX_PAGES_LIMIT, "4096").unwrap();
    let (_dir, mp) = mount_dir("daemon-fg");
    let d = Daemon::foreground(&mp, &["--max-message", "16M", "--workers", "1"]);
    let err = d.stderr();
    assert_eq!(field(&check_plan_line(&err), "max_message"), "16M", "{err}");
    assert!(!err.contains("kernel limit"), "{err}");
}

#[test]
fn sigterm_unmounts_and_prints_the_summary() {
    require_mounts!();
    stops_cleanly_on(libc::SIGTERM, &["--size", "4M"]);
}

#[test]
fn sigint_unmounts_and_prints_the_summary() {
    require_mounts!();
    stops_cleanly_on(libc::SIGINT, &["--size", "4M"]);
}

#[test]
fn sighup_unmounts_and_prints_the_summary() {
    require_mounts!();
    stops_cleanly_on(libc::SIGHUP, &["--size", "4M", "--workers", "1"]);
}

#[test]
fn an_unmount_from_outside_ends_the_daemon_with_a_summary() {
    require_mounts!();
    let (_dir, mp) = mount_dir("daemon-fg");
    let mut d = Daemon::foreground(&mp, &["--size", "4M"]);
    let (status, _, err) = run(std::process::Command::new("umount").arg(&mp), STEP_TIMEOUT);
    assert!(status.success(), "umount: {err}");
    let status = d.wait_exit();
    let err = d.wait_stderr_eof();
    assert_eq!(status.code(), Some(0), "{}\n{err}", describe(status));
    check_summary_line(&err);
}

#[test]
fn a_second_signal_gives_up_on_a_busy_lazily_unmounted_filesystem() {
    require_mounts!();
    let (_dir, mp) = mount_dir("daemon-fg");
    let mut d = Daemon::foreground(&mp, &["--size", "4M", "--workers", "1"]);
    // An open directory keeps the superblock alive after a lazy unmount,
    // so the workers keep serving it.
    let open = match std::fs::File::open(&mp) {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
            eprintln!("note: memfs cannot open its root yet ({e}): skipped");
            return;
        }
        Err(e) => panic!("open {}: {e}", mp.display()),
    };
    d.signal(libc::SIGTERM);
    assert!(
        wait_until(STEP_TIMEOUT, || !is_mounted(&mp)),
        "not detached"
    );
    // Still serving the open directory.
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(d.stderr().lines().all(|l| !l.contains(" summary ")));
    d.signal(libc::SIGTERM);
    let status = d.wait_exit();
    let err = d.wait_stderr_eof();
    assert_eq!(status.code(), Some(1), "{}\n{err}", describe(status));
    assert!(err.contains("SIGTERM again while open files kept"), "{err}");
    check_summary_line(&err);
    drop(open);
}

#[test]
fn serving_statfs_getattr_and_readdir_allocates_nothing_and_faults_nothing() {
    require_mounts!();
    let (_dir, mp) = mount_dir("daemon-fg");
    let mut d = Daemon::foreground(&mp, &["--size", "4M"]);
    for _ in 0..20 {
        assert_eq!(fs_type(&mp), Ok(FUSE_SUPER_MAGIC));
        let _ = std::fs::metadata(&mp);
        let _ = std::fs::read_dir(&mp).map(|r| r.count());
    }
    d.signal(libc::SIGTERM);
    let status = d.wait_exit();
    let err = d.wait_stderr_eof();
    assert_eq!(status.code(), Some(0), "{err}");
    let summary = check_summary_line(&err);
    // The daemon's own part of the promise (wait path, signal path, worker
    // loop) plus memfs's for these operations.
    assert_eq!(number(&summary, "heap_allocs_after_start"), 0, "{err}");
    assert_eq!(number(&summary, "page_faults_after_start"), 0, "{err}");
}
