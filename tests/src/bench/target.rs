//! Targets (tmpfs, slabfuse-memfs, the peers, extra daemons) and their
//! mounts: start, find the daemon, measure it, stop it, read what it said.
//!
//! A [`Mount`] is a guard: dropped before [`Mount::stop`] (an error, Ctrl-C)
//! it still stops the daemon it started (by PID, and only that one) and
//! removes the mount, lazily if need be, and only then removes its empty
//! mountpoint directory (`rmdir`, never a recursive delete: a directory
//! that is still mounted must not be emptied through the mount).
//!
//! Daemons run in their own process group, so the terminal's Ctrl-C reaches
//! the harness (and fio), not them: the harness then stops them itself, in
//! order, and gets their summary lines.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::mount::{UnmountFlags, unmount};
use rustix::process::{Pid, Signal, kill_process};
use serde_json::{Value, json};

use crate::procfs;
use crate::{Error, Res, Stop, log};

/// What kind of target, which decides how it is mounted and stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// tmpfs, mounted by the harness: the ceiling, no daemon.
    Tmpfs,
    /// slabfuse-memfs: stopped with SIGTERM, prints plan and summary lines.
    Slabfuse,
    /// Any other FUSE daemon: stopped by unmounting.
    Peer,
}

/// A filesystem to measure.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    /// Its name in the results.
    pub(crate) label: String,
    /// How to mount and stop it.
    pub(crate) kind: Kind,
    /// The command (argv) with `{mnt}` for the mountpoint; empty for tmpfs.
    /// A single element is run with `bash -c`.
    pub(crate) command: Vec<String>,
}

impl Target {
    /// The command as one string, for the results.
    pub(crate) fn command_line(&self) -> String {
        if self.kind == Kind::Tmpfs {
            "mount -t tmpfs -o size=BUDGET".into()
        } else {
            self.command.join(" ")
        }
    }
}

/// How long a daemon may take to mount.
const MOUNT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a daemon may take to exit once told to.
const EXIT_TIMEOUT: Duration = Duration::from_secs(15);

/// A mounted target.
pub(crate) struct Mount {
    target: Target,
    /// `<base>/<label>`: the mountpoint.
    path: PathBuf,
    child: Option<Child>,
    daemon_pid: Option<i32>,
    log_path: PathBuf,
    entry: Option<procfs::MountEntry>,
    done: bool,
}

/// The base directory of all mountpoints of this process.
fn mount_base() -> PathBuf {
    std::env::temp_dir().join(format!("slabfuse-bench-{}", std::process::id()))
}

/// Removes the (empty) base directory at the end of the run.
pub(crate) fn remove_mount_base() {
    let _ = std::fs::remove_dir(mount_base());
}

impl Mount {
    /// Mounts `target` with a data budget of `budget` bytes (tmpfs's size;
    /// the daemons take it on their command line already) and waits until
    /// it answers. The daemon's stdout and stderr go to `log_path`.
    pub(crate) fn start(target: &Target, budget: u64, log_path: &Path, stop: &Stop) -> Res<Mount> {
        let path = mount_base().join(&target.label);
        if procfs::mount_entry(&path).is_some() {
            return Err(Error::Failed(format!(
                "{} is still mounted from an earlier attempt",
                path.display()
            )));
        }
        std::fs::create_dir_all(&path)
            .map_err(|e| Error::Failed(format!("mkdir {}: {e}", path.display())))?;
        let mut m = Mount {
            target: target.clone(),
            path: path.clone(),
            child: None,
            daemon_pid: None,
            log_path: log_path.to_path_buf(),
            entry: None,
            done: false,
        };
        if target.kind == Kind::Tmpfs {
            let data = CString::new(format!("size={budget},mode=1777")).map_err(|_| fail("nul"))?;
            rustix::mount::mount(
                c"tmpfs",
                path.as_path(),
                c"tmpfs",
                rustix::mount::MountFlags::empty(),
                Some(data.as_c_str()),
            )
            .map_err(|e| Error::Failed(format!("mount tmpfs on {}: {e}", path.display())))?;
            m.entry = procfs::mount_entry(&path);
            return Ok(m);
        }

        let mnt = path.to_string_lossy().into_owned();
        let argv: Vec<String> = target
            .command
            .iter()
            .map(|a| a.replace("{mnt}", &mnt))
            .collect();
        let mut cmd = if argv.len() == 1 {
            let mut c = Command::new("bash");
            c.arg("-c").arg(&argv[0]);
            c
        } else {
            let mut c = Command::new(&argv[0]);
            c.args(&argv[1..]);
            c
        };
        let out = File::create(log_path)
            .map_err(|e| Error::Failed(format!("create {}: {e}", log_path.display())))?;
        let err = out
            .try_clone()
            .map_err(|e| Error::Failed(format!("dup log fd: {e}")))?;
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            // Its own process group: Ctrl-C is the harness's to handle.
            .process_group(0);
        let child = cmd
            .spawn()
            .map_err(|e| Error::Failed(format!("start {}: {e}", argv[0])))?;
        let pid = child.id() as i32;
        m.child = Some(child);

        let deadline = Instant::now() + MOUNT_TIMEOUT;
        loop {
            if let Some(e) = procfs::mount_entry(&path) {
                m.entry = Some(e);
                break;
            }
            if let Some(Ok(Some(status))) = m.child.as_mut().map(Child::try_wait) {
                return Err(Error::Failed(format!(
                    "{} exited ({status}) before mounting:\n{}",
                    target.label,
                    log_tail(log_path, 15)
                )));
            }
            if Instant::now() > deadline {
                return Err(Error::Failed(format!(
                    "{} did not mount within {} s:\n{}",
                    target.label,
                    MOUNT_TIMEOUT.as_secs(),
                    log_tail(log_path, 15)
                )));
            }
            stop.check()?;
            std::thread::sleep(Duration::from_millis(10));
        }
        // The mount exists as soon as mount(2) returns; the first access
        // waits for INIT to be answered, so after this the daemon serves.
        std::fs::metadata(&path)
            .map_err(|e| Error::Failed(format!("stat {}: {e}", path.display())))?;
        // The daemon: our child or a descendant holding /dev/fuse (a mount
        // helper such as fusermount3 may hold it for a moment: skipped).
        m.daemon_pid = procfs::with_descendants(pid)
            .into_iter()
            .find(|&p| procfs::holds_dev_fuse(p) && !procfs::comm(p).starts_with("fusermount"))
            .or(Some(pid));
        Ok(m)
    }

    /// The mountpoint.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The daemon's PID (`None` for tmpfs).
    pub(crate) fn daemon_pid(&self) -> Option<i32> {
        self.daemon_pid
    }

    /// The filesystem type (`fuse.…`, `tmpfs`).
    pub(crate) fn fstype(&self) -> String {
        self.entry
            .as_ref()
            .map(|e| e.fstype.clone())
            .unwrap_or_default()
    }

    /// The FUSE connection number (the device's minor), for FUSE mounts.
    pub(crate) fn fuse_connection(&self) -> Option<u32> {
        self.entry
            .as_ref()
            .filter(|e| e.fstype.starts_with("fuse") && e.major == 0)
            .map(|e| e.minor)
    }

    /// Stops the target and reports the daemon: its memory and CPU (read
    /// before it is told to stop) and the lines it printed.
    pub(crate) fn stop(mut self) -> Res<DaemonReport> {
        let mut report = DaemonReport {
            pid: self.daemon_pid,
            comm: self.daemon_pid.map(procfs::comm),
            ..DaemonReport::default()
        };
        if let Some(pid) = self.daemon_pid {
            report.status = procfs::status(pid);
            report.cpu_s =
                procfs::process_cpu_ticks(pid).map(|t| t as f64 / procfs::ticks_per_second());
        }
        let exit = self.shutdown(true);
        report.exit = exit;
        if self.target.kind != Kind::Tmpfs {
            let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
            report.plan = find_kv_line(&text, "slabfuse-memfs: plan ");
            report.summary = find_kv_line(&text, "slabfuse-memfs: summary ");
            report.peer_largest = find_peer_largest(&text);
            report.log_tail = text
                .lines()
                .rev()
                .take(6)
                .map(str::to_string)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
        }
        self.done = true;
        Ok(report)
    }

    /// Stops the daemon and removes the mount; returns how the daemon
    /// ended. `verbose`: report what had to be forced.
    fn shutdown(&mut self, verbose: bool) -> Option<String> {
        let label = self.target.label.clone();
        let mut exit = None;
        match self.target.kind {
            Kind::Tmpfs => {}
            Kind::Slabfuse => {
                // SIGTERM: the daemon unmounts itself and prints its summary
                // (also while it is still starting: then it just exits).
                for pid in self.own_pids() {
                    signal(pid, Signal::TERM);
                }
                exit = self.wait_child(EXIT_TIMEOUT);
            }
            Kind::Peer if self.is_mounted() => {
                if unmount(self.path.as_path(), UnmountFlags::empty()).is_err() {
                    let _ = unmount(self.path.as_path(), UnmountFlags::DETACH);
                }
                exit = self.wait_child(EXIT_TIMEOUT);
            }
            Kind::Peer => {
                // Not mounted (yet): stopped while starting. SIGTERM now;
                // if it mounted meanwhile, the lazy unmount below removes it.
                for pid in self.own_pids() {
                    signal(pid, Signal::TERM);
                }
                exit = self.wait_child(Duration::from_secs(5));
            }
        }
        if self.child.is_some() {
            // Still running: SIGTERM, then SIGKILL, to our processes only.
            if verbose {
                log(format_args!("{label}: daemon still running; SIGTERM"));
            }
            for pid in self.own_pids() {
                signal(pid, Signal::TERM);
            }
            exit = self.wait_child(Duration::from_secs(5));
            if self.child.is_some() {
                for pid in self.own_pids() {
                    signal(pid, Signal::KILL);
                }
                exit = self.wait_child(Duration::from_secs(5));
            }
        }
        if self.is_mounted() {
            let flags = if self.target.kind == Kind::Tmpfs {
                UnmountFlags::empty()
            } else {
                if verbose {
                    log(format_args!(
                        "{label}: still mounted after the daemon ended; lazy unmount"
                    ));
                }
                UnmountFlags::DETACH
            };
            if unmount(self.path.as_path(), flags).is_err() {
                let _ = unmount(self.path.as_path(), UnmountFlags::DETACH);
            }
        }
        if !self.is_mounted() {
            let _ = std::fs::remove_dir(&self.path);
        }
        exit
    }

    fn is_mounted(&self) -> bool {
        procfs::mount_entry(&self.path).is_some()
    }

    /// Our child and the daemon (if it is a descendant we found).
    fn own_pids(&self) -> Vec<i32> {
        let mut v: Vec<i32> = self.child.iter().map(|c| c.id() as i32).collect();
        if let Some(d) = self.daemon_pid
            && !v.contains(&d)
        {
            v.push(d);
        }
        v
    }

    /// Waits up to `timeout` for our child to exit; returns its status.
    fn wait_child(&mut self, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut()?;
            match child.try_wait() {
                Ok(Some(status)) => {
                    self.child = None;
                    return Some(status.to_string());
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Ok(None) => return None,
                Err(e) => {
                    self.child = None;
                    return Some(format!("wait failed: {e}"));
                }
            }
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if !self.done {
            self.shutdown(true);
        }
    }
}

fn fail(what: &str) -> Error {
    Error::Failed(what.to_string())
}

fn signal(pid: i32, sig: Signal) {
    if let Some(p) = Pid::from_raw(pid) {
        let _ = kill_process(p, sig);
    }
}

/// What a daemon was and said.
#[derive(Clone, Debug, Default)]
pub(crate) struct DaemonReport {
    /// Its PID.
    pub(crate) pid: Option<i32>,
    /// Its command name.
    pub(crate) comm: Option<String>,
    /// Memory before it was stopped.
    pub(crate) status: Option<procfs::Status>,
    /// User + system CPU over its whole life, seconds.
    pub(crate) cpu_s: Option<f64>,
    /// How it exited (`None`: unknown, e.g. tmpfs).
    pub(crate) exit: Option<String>,
    /// slabfuse-memfs's plan line, as key → value.
    pub(crate) plan: Option<BTreeMap<String, String>>,
    /// slabfuse-memfs's summary line, as key → value.
    pub(crate) summary: Option<BTreeMap<String, String>>,
    /// The peers' exit line: (largest READ, largest WRITE) in bytes.
    pub(crate) peer_largest: Option<(u64, u64)>,
    /// The last lines of its output.
    pub(crate) log_tail: Vec<String>,
}

impl DaemonReport {
    /// A number from the summary line (sizes like `16M` become bytes).
    pub(crate) fn summary_value(&self, key: &str) -> Option<f64> {
        let v = self.summary.as_ref()?.get(key)?;
        parse_number(v)
    }

    /// A number from the plan line (sizes like `16M` become bytes).
    pub(crate) fn plan_value(&self, key: &str) -> Option<f64> {
        let v = self.plan.as_ref()?.get(key)?;
        parse_number(v)
    }

    /// Largest WRITE and READ payloads the daemon reports, bytes.
    pub(crate) fn largest(&self) -> (Option<u64>, Option<u64>) {
        if self.summary.is_some() {
            (
                self.summary_value("largest_write").map(|v| v as u64),
                self.summary_value("largest_read").map(|v| v as u64),
            )
        } else if let Some((r, w)) = self.peer_largest {
            (Some(w), Some(r))
        } else {
            (None, None)
        }
    }

    /// As JSON.
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "pid": self.pid,
            "comm": self.comm,
            "vmhwm_kib": self.status.and_then(|s| s.vmhwm_kib),
            "vmrss_kib": self.status.and_then(|s| s.vmrss_kib),
            "threads": self.status.and_then(|s| s.threads),
            "cpu_s": self.cpu_s,
            "exit": self.exit,
            "plan": self.plan,
            "summary": self.summary,
            "peer_largest_read_bytes": self.peer_largest.map(|p| p.0),
            "peer_largest_write_bytes": self.peer_largest.map(|p| p.1),
            "log_tail": self.log_tail,
        })
    }
}

/// `12`, `1.5`, or a size `16M`/`128K`/`1G` as bytes.
pub(crate) fn parse_number(v: &str) -> Option<f64> {
    if let Ok(n) = v.parse::<f64>() {
        return Some(n);
    }
    crate::cli::parse_size(v).ok().map(|b| b as f64)
}

/// The last line starting with `prefix`, split into `key=value` fields.
fn find_kv_line(text: &str, prefix: &str) -> Option<BTreeMap<String, String>> {
    let line = text.lines().rev().find(|l| l.starts_with(prefix))?;
    Some(
        line[prefix.len()..]
            .split_whitespace()
            .filter_map(|f| f.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

/// The peers' exit line: `… largest READ request N bytes, largest WRITE
/// request M bytes`.
fn find_peer_largest(text: &str) -> Option<(u64, u64)> {
    let line = text
        .lines()
        .rev()
        .find(|l| l.contains("largest READ request"))?;
    let number_after = |key: &str| -> Option<u64> {
        let rest = &line[line.find(key)? + key.len()..];
        rest.split_whitespace().next()?.parse().ok()
    };
    Some((
        number_after("largest READ request")?,
        number_after("largest WRITE request")?,
    ))
}

/// The last `n` lines of a file, for error messages.
pub(crate) fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_summary_and_peer_lines() {
        let text = "slabfuse-memfs: plan workers=2 max_message=16M\n\
                    slabfuse-memfs: summary requests=3086 largest_write=1M eagain=0\n";
        let s = find_kv_line(text, "slabfuse-memfs: summary ").expect("summary");
        assert_eq!(s["largest_write"], "1M");
        assert_eq!(parse_number(&s["largest_write"]), Some(1048576.0));
        let p =
            "fuser-memfs: largest READ request 16777216 bytes, largest WRITE request 1048576 bytes";
        assert_eq!(find_peer_largest(p), Some((16777216, 1048576)));
    }
}
