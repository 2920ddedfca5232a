//! The daemon run the ways systems run FUSE daemons: by `mount.fuse3`
//! (which finds `slabfuse-memfs` in PATH), by `mount -t
//! fuse.slabfuse-memfs` and by an `/etc/fstab` entry, and by an
//! unprivileged user, through `fusermount3`. Needs root; skips with a
//! reason otherwise.
//!
//! `mount(8)` removes PATH from the environment before it runs a helper,
//! so `mount.fuse3`'s shell searches only its default path
//! (`/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`). To
//! test `mount -t` and fstab without installing anything, those tests run
//! in a private mount namespace (`unshare -m`) in which a directory holding
//! a `slabfuse-memfs` symlink is bind-mounted over `/usr/local/sbin`; the
//! namespace, its mounts and the bind go away with the test. The fstab is
//! a test file given to `mount -T`.
//!
//! The unprivileged test also runs in a private namespace: `fusermount3`
//! opens `/dev/fuse` with the caller's rights, and some systems (test VMs,
//! containers) keep `/dev/fuse` at mode 0600, so the namespace gets a 0666
//! node of the same device bound over it, as a normal Debian system has.

// Test code: a panic here is a failed test, not a crashed daemon.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod daemon_support;

use std::path::Path;
use std::process::Command;

use daemon_support::*;
use slabfuse_tests::require_mounts;

/// Kills any daemon left on the mount point when a test ends (also in
/// another mount namespace: the pid namespace is shared).
struct KillDaemonsOn<'a>(&'a Path);

impl Drop for KillDaemonsOn<'_> {
    fn drop(&mut self) {
        kill_daemons_on(self.0);
    }
}

/// Runs `script` with `sh -eu` in a private mount namespace, with `env`;
/// returns its exit status, stdout and stderr (which includes the stderr of
/// any daemon it started, read until that daemon exits).
fn in_private_namespace(
    script: &str,
    cwd: &Path,
    env: &[(&str, &Path)],
) -> (std::process::ExitStatus, String, String) {
    let mut cmd = Command::new("unshare");
    cmd.args([
        "--mount",
        "--propagation",
        "private",
        "--",
        "sh",
        "-euc",
        script,
    ])
    .current_dir(cwd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd, STEP_TIMEOUT)
}

/// A directory holding `slabfuse-memfs` -> the built binary.
fn helper_dir(tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    std::os::unix::fs::symlink(daemon_binary(), dir.path().join("slabfuse-memfs")).unwrap();
    dir
}

/// The mountinfo line printed by a script (`mounted: <line>`).
fn mounted_line(out: &str) -> &str {
    out.lines()
        .find_map(|l| l.strip_prefix("mounted: "))
        .unwrap_or_else(|| panic!("no mounted: line in\n{out}"))
}

#[test]
fn mount_fuse3_finds_the_daemon_in_path_and_umount_ends_it() {
    require_mounts!();
    require_command!("mount.fuse3");
    let (_dir, mp) = mount_dir("daemon-helper");
    let _cleanup = KillDaemonsOn(&mp);
    let path = format!(
        "{}:{}",
        daemon_binary_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    // What mount(8) runs for `mount -t fuse.slabfuse-memfs memfs MP -o ...`.
    let mut cmd = Command::new("mount.fuse3");
    cmd.arg("memfs")
        .arg(&mp)
        .args(["-t", "fuse.slabfuse-memfs"])
        .args(["-o", "size=8M,inodes=1024,workers=1,nofail,_netdev,noatime"])
        .env("PATH", path);
    let mut d = Daemon::start_command(&mp, &mut cmd);
    let status = d.wait_exit();
    assert_eq!(
        status.code(),
        Some(0),
        "{}\n{}",
        describe(status),
        d.stderr()
    );
    assert_eq!(
        fs_type(&mp),
        Ok(FUSE_SUPER_MAGIC),
        "answers when mount.fuse3 returns"
    );
    assert!(wait_until(STEP_TIMEOUT, || d.stderr().contains(" plan ")));
    let plan = check_plan_line(&d.stderr());
    assert_eq!(field(&plan, "storage"), "8M");
    assert_eq!(number(&plan, "inodes"), 1024);
    assert_eq!(number(&plan, "workers"), 1);
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = info
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(mp.to_str().unwrap()))
        .unwrap();
    assert!(line.contains(" - fuse.slabfuse-memfs memfs "), "{line}");
    // mount.fuse3 asks for suid and dev unless told nosuid, nodev.
    let flags = line.split(' ').nth(5).unwrap();
    assert!(
        !flags.contains("nosuid") && !flags.contains("nodev"),
        "{line}"
    );

    let (status, _, err) = run(Command::new("umount").arg(&mp), STEP_TIMEOUT);
    assert!(status.success(), "umount: {err}");
    let err = d.wait_stderr_eof();
    check_summary_line(&err);
    assert!(daemons_on(&mp).is_empty());
}

#[test]
fn mount_t_fuse_slabfuse_memfs_mounts_and_umount_ends_it() {
    require_mounts!();
    require_command!("unshare");
    require_command!("mount.fuse3");
    let helpers = helper_dir("daemon-helper-bin");
    let (dir, mp) = mount_dir("daemon-helper");
    let _cleanup = KillDaemonsOn(&mp);
    let (status, out, err) = in_private_namespace(
        r#"
        mount --bind "$HELPERS" /usr/local/sbin
        mount -t fuse.slabfuse-memfs memfs "$MP" -o size=8M,inodes=1024,workers=1
        echo "mounted: $(grep " $MP " /proc/self/mountinfo)"
        echo "fstype: $(stat -f -c %t "$MP")"
        umount "$MP"
        "#,
        dir.path(),
        &[("HELPERS", helpers.path()), ("MP", &mp)],
    );
    assert!(status.success(), "{}\n{out}\n{err}", describe(status));
    let line = mounted_line(&out);
    assert!(line.contains(" - fuse.slabfuse-memfs memfs "), "{line}");
    assert!(out.contains("fstype: 65735546"), "{out}");
    let plan = check_plan_line(&err);
    assert_eq!(field(&plan, "storage"), "8M", "{err}");
    assert_eq!(number(&plan, "inodes"), 1024, "{err}");
    check_summary_line(&err);
    assert!(daemons_on(&mp).is_empty(), "umount ended the daemon");
}

#[test]
fn an_fstab_entry_mounts_with_its_options_and_umount_ends_it() {
    require_mounts!();
    require_command!("unshare");
    require_command!("mount.fuse3");
    let helpers = helper_dir("daemon-helper-bin");
    let (dir, mp) = mount_dir("daemon-helper");
    let _cleanup = KillDaemonsOn(&mp);
    let fstab = dir.path().join("fstab");
    std::fs::write(
        &fstab,
        format!(
            "# a test fstab\n\
             memfs {} fuse.slabfuse-memfs \
             defaults,nofail,_netdev,noatime,size=2M,inodes=512,workers=1,mode=0700,\
             x-systemd.device-timeout=5 0 0\n",
            mp.display()
        ),
    )
    .unwrap();
    let (status, out, err) = in_private_namespace(
        r#"
        mount --bind "$HELPERS" /usr/local/sbin
        mount -T "$FSTAB" "$MP"
        echo "mounted: $(grep " $MP " /proc/self/mountinfo)"
        echo "mode: $(stat -c %a "$MP" 2>&1)"
        umount "$MP"
        "#,
        dir.path(),
        &[("HELPERS", helpers.path()), ("MP", &mp), ("FSTAB", &fstab)],
    );
    assert!(status.success(), "{}\n{out}\n{err}", describe(status));
    assert!(
        mounted_line(&out).contains(" - fuse.slabfuse-memfs memfs "),
        "{out}"
    );
    let plan = check_plan_line(&err);
    assert_eq!(field(&plan, "storage"), "2M", "{err}");
    assert_eq!(number(&plan, "inodes"), 512, "{err}");
    if !out.contains("Function not implemented") {
        assert!(out.contains("mode: 700"), "mode=0700 from fstab: {out}");
    }
    check_summary_line(&err);
    assert!(daemons_on(&mp).is_empty(), "umount ended the daemon");
}

#[test]
fn an_unprivileged_user_mounts_through_fusermount3_and_sigterm_unmounts() {
    require_mounts!();
    require_command!("unshare");
    require_command!("setpriv");
    require_command!("fusermount3");
    let (dir, mp) = mount_dir("daemon-unpriv");
    let _cleanup = KillDaemonsOn(&mp);
    // nobody must own the mount point (fusermount3's rule) and reach it.
    rustix::fs::chown(
        &mp,
        Some(rustix::fs::Uid::from_raw(65534)),
        Some(rustix::fs::Gid::from_raw(65534)),
    )
    .unwrap();
    let (status, out, err) = in_private_namespace(
        r#"
        maj=$((0x$(stat -c %t /dev/fuse))); min=$((0x$(stat -c %T /dev/fuse)))
        mknod "$WORK/fuse" c "$maj" "$min" && chmod 0666 "$WORK/fuse" || { echo "skip: mknod"; exit 0; }
        mount --bind "$WORK/fuse" /dev/fuse
        as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups -- "$@"; }
        # Not through the function: `$!` must be the daemon itself.
        setpriv --reuid=65534 --regid=65534 --clear-groups -- "$BIN" -f --size 4M "$MP" &
        pid=$!
        # statfs as nobody reaches the daemon (root would get a stand-in
        # answer without allow_other), and returns once INIT is answered.
        i=0
        until [ "$(as_nobody stat -f -c %t "$MP" 2>/dev/null)" = 65735546 ]; do
            i=$((i + 1)); [ $i -lt 400 ] || { echo "not serving"; kill -9 $pid; exit 1; }
            sleep 0.05
        done
        echo "mounted: $(grep " $MP " /proc/self/mountinfo)"
        kill -TERM $pid
        code=0; wait $pid || code=$?
        echo "exit: $code"
        grep -q " $MP " /proc/self/mountinfo && echo "still mounted" || echo "unmounted"
        "#,
        dir.path(),
        &[("WORK", dir.path()), ("MP", &mp), ("BIN", daemon_binary())],
    );
    if out.contains("skip: mknod") {
        eprintln!("SKIPPED: cannot make a device node here");
        return;
    }
    assert!(status.success(), "{}\n{out}\n{err}", describe(status));
    let line = mounted_line(&out);
    // Only fusermount3 can have mounted it for uid 65534.
    assert!(line.contains("user_id=65534"), "{line}");
    assert!(out.contains("exit: 0"), "{out}\n{err}");
    assert!(out.contains("unmounted"), "fusermount3 -u -z: {out}\n{err}");
    let plan = check_plan_line(&err);
    // Without CAP_IPC_LOCK and with a finite `ulimit -l`, locking all is
    // refused and said so.
    if field(&plan, "locked") != "all" {
        assert!(err.contains("mlockall refused"), "{err}");
    }
    let summary = check_summary_line(&err);
    // The unmount ran a fusermount3 process (which allocates); the count
    // leaves the daemon's own unmount call out.
    assert_eq!(number(&summary, "heap_allocs_after_start"), 0, "{err}");
}
