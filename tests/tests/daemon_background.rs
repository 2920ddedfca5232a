//! The daemon without `-f`: the command returns only once the mount
//! answers, and the daemon it leaves behind keeps serving, detached, until
//! it is unmounted or signalled. And mount points that are busy: already
//! mounted, held by a serving daemon, or raced for by two daemons at once.
//! Needs root; skips with a reason otherwise.

// Test code: a panic here is a failed test, not a crashed daemon.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod daemon_support;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use daemon_support::*;
use slabfuse_tests::require_mounts;

/// Starts `slabfuse-memfs ARGS MOUNTPOINT` (no `-f`) and waits for the
/// command to return.
fn start_background(mp: &Path, args: &[&str]) -> (Daemon, std::process::ExitStatus) {
    let mut all: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    all.push(mp.as_os_str());
    let mut d = Daemon::start(mp, &all);
    let status = d.wait_exit();
    (d, status)
}

/// The one daemon serving `mp`.
fn the_daemon_on(mp: &Path) -> u32 {
    let pids = daemons_on(mp);
    assert_eq!(pids.len(), 1, "daemons on {}: {pids:?}", mp.display());
    pids[0]
}

/// A tmpfs mounted for the test, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path) -> Tmpfs {
        rustix::mount::mount(
            "none",
            at,
            "tmpfs",
            rustix::mount::MountFlags::empty(),
            c"size=1M",
        )
        .unwrap();
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        force_unmount(&self.0);
    }
}

#[test]
fn the_command_returns_once_the_mount_answers_and_the_daemon_serves_on() {
    require_mounts!();
    let (_dir, mp) = mount_dir("daemon-bg");
    let (mut d, status) = start_background(&mp, &["--size", "4M"]);
    assert_eq!(
        status.code(),
        Some(0),
        "{}\n{}",
        describe(status),
        d.stderr()
    );
    // No waiting: the command returned, so the mount answers already.
    assert!(is_mounted(&mp), "not mounted when the command returned");
    assert_eq!(fs_type(&mp), Ok(FUSE_SUPER_MAGIC));
    assert!(wait_until(STEP_TIMEOUT, || d
        .stderr()
        .contains("slabfuse-memfs: plan ")));
    check_plan_line(&d.stderr());

    // The daemon is another process: detached (its own session), in /,
    // with stdin and stdout on /dev/null and stderr kept.
    let pid = the_daemon_on(&mp);
    assert_ne!(pid, d.pid());
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let session: u32 = after_name.split(' ').nth(3).unwrap().parse().unwrap();
    assert_eq!(session, pid, "setsid: the daemon leads its own session");
    let link = |p: &str| std::fs::read_link(format!("/proc/{pid}/{p}")).unwrap();
    assert_eq!(link("cwd"), Path::new("/"));
    assert_eq!(link("fd/0"), Path::new("/dev/null"));
    assert_eq!(link("fd/1"), Path::new("/dev/null"));
    assert!(link("fd/2").to_string_lossy().starts_with("pipe:"));

    // Still serving a while later.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(fs_type(&mp), Ok(FUSE_SUPER_MAGIC));
    if root_attributes(&mp).is_some() {
        std::fs::write(mp.join("f"), b"kept").unwrap();
        assert_eq!(std::fs::read(mp.join("f")).unwrap(), b"kept");
    }
    assert!(!d.stderr().contains(" summary "));

    // umount ends it; its summary arrives on the stderr it kept.
    let (status, _, err) = run(std::process::Command::new("umount").arg(&mp), STEP_TIMEOUT);
    assert!(status.success(), "umount: {err}");
    let err = d.wait_stderr_eof();
    check_summary_line(&err);
    assert!(daemons_on(&mp).is_empty());
}

#[test]
fn sigterm_to_the_background_daemon_unmounts_it() {
    require_mounts!();
    let (_dir, mp) = mount_dir("daemon-bg");
    let (mut d, status) = start_background(&mp, &["--size", "4M", "--workers", "1"]);
    assert_eq!(status.code(), Some(0), "{}", d.stderr());
    send_signal(the_daemon_on(&mp), libc::SIGTERM);
    let err = d.wait_stderr_eof();
    check_summary_line(&err);
    assert!(!is_mounted(&mp));
}

#[test]
fn an_already_mounted_mount_point_exits_1_in_both_modes() {
    require_mounts!();
    let (_dir, mp) = mount_dir("daemon-bg");
    let _tmpfs = Tmpfs::mount(&mp);
    for foreground in [true, false] {
        let mut args = vec![mp.as_os_str()];
        if foreground {
            args.push(OsStr::new("-f"));
        }
        let (status, _, err) = run_daemon(&args);
        assert_eq!(status.code(), Some(1), "{}: {err}", describe(status));
        assert!(
            err.contains(&format!(
                "{}: mount point is busy: something is already mounted there",
                mp.display()
            )),
            "{err}"
        );
        assert!(!err.contains(" plan "), "nothing was planned: {err}");
    }
}

#[test]
fn a_mount_point_another_daemon_serves_exits_1_and_leaves_it_serving() {
    require_mounts!();
    let (_dir, mp) = mount_dir("daemon-bg");
    let (_first, status) = start_background(&mp, &["--size", "4M", "--workers", "1"]);
    assert_eq!(status.code(), Some(0));
    // Spelled three ways: as given, with a trailing slash, through `.`.
    let spellings = [
        mp.clone().into_os_string(),
        format!("{}/", mp.display()).into(),
        format!("{}/./", mp.display()).into(),
    ];
    for spelling in &spellings {
        for foreground in [true, false] {
            let mut args = vec![spelling.as_os_str()];
            if foreground {
                args.push(OsStr::new("-f"));
            }
            let (status, _, err) = run_daemon(&args);
            assert_eq!(status.code(), Some(1), "{spelling:?}: {err}");
            assert!(err.contains("mount point is busy"), "{err}");
        }
    }
    assert_eq!(
        fs_type(&mp),
        Ok(FUSE_SUPER_MAGIC),
        "the first one serves on"
    );
}

#[test]
fn of_two_daemons_racing_for_a_mount_point_one_wins_and_one_says_busy() {
    require_mounts!();
    for round in 0..3 {
        let (_dir, mp) = mount_dir("daemon-race");
        let args: Vec<&OsStr> = ["--size", "4M", "--workers", "1"]
            .iter()
            .map(OsStr::new)
            .chain([mp.as_os_str()])
            .collect();
        // Both start before either has checked anything.
        let mut a = Daemon::start(&mp, &args);
        let mut b = Daemon::start(&mp, &args);
        let (sa, sb) = (a.wait_exit(), b.wait_exit());
        let mut codes = [sa.code(), sb.code()];
        codes.sort();
        assert_eq!(
            codes,
            [Some(0), Some(1)],
            "round {round}:\n{}\n{}",
            a.stderr(),
            b.stderr()
        );
        let loser = if sa.code() == Some(1) { &a } else { &b };
        assert!(
            wait_until(STEP_TIMEOUT, || loser
                .stderr()
                .contains("mount point is busy")),
            "round {round}: {}",
            loser.stderr()
        );
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let mounts = info
            .lines()
            .filter(|l| l.split(' ').nth(4) == Some(mp.to_str().unwrap()))
            .count();
        assert_eq!(mounts, 1, "round {round}: mounted once");
        assert_eq!(fs_type(&mp), Ok(FUSE_SUPER_MAGIC));
        let (status, _, err) = run(std::process::Command::new("umount").arg(&mp), STEP_TIMEOUT);
        assert!(status.success(), "umount: {err}");
        let winner = if sa.code() == Some(0) { &mut a } else { &mut b };
        check_summary_line(&winner.wait_stderr_eof());
    }
}
