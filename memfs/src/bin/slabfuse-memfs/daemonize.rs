//! Going to the background once the mount is ready, as FUSE daemons do.
//!
//! `mount(8)`, `mount.fuse3` and scripts run the daemon and wait for it to
//! exit: it must exit 0 only when the filesystem can be used, and non-zero
//! (with the reason on stderr) when it cannot. So [`background`] forks
//! *first*, while the process still has one thread and nothing mapped: the
//! child does all the work (mounts, maps and locks memory, starts workers;
//! memory locks are not inherited across `fork`, so it must be the child
//! that maps and locks) and reports through a pipe, and the parent just
//! waits on that pipe:
//!
//! - the child writes `0` once the session is serving ([`Readiness::ready`]):
//!   the parent exits 0;
//! - the child writes its exit code (1 or 2) after printing why it failed
//!   ([`Readiness::failed`]): the parent exits with that code;
//! - the pipe closes with nothing written (the child crashed): the parent
//!   reaps it, says how it died and exits 1.
//!
//! The child starts a new session (`setsid`: no controlling terminal, no
//! Ctrl-C from it), changes to `/` (so it keeps no directory busy) and
//! points stdin and stdout at `/dev/null`. It keeps **stderr**: errors and
//! the summary line at exit still reach whoever started it (the journal,
//! under systemd).

use std::io::{PipeWriter, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;

use crate::sys::{self, Forked};
use crate::{Failure, say};

/// The byte that says "the mount is ready".
const READY: u8 = 0;

/// How the serving process tells whoever started it that it is ready.
#[derive(Debug)]
pub(crate) struct Readiness {
    /// The pipe to the waiting parent; `None` in the foreground, or once
    /// reported.
    pipe: Option<PipeWriter>,
}

impl Readiness {
    /// In the foreground nobody waits.
    pub(crate) fn foreground() -> Readiness {
        Readiness { pipe: None }
    }

    /// The mount is ready: the parent may exit 0. Allocates nothing (one
    /// `write`, one `close`).
    pub(crate) fn ready(&mut self) {
        self.report(READY);
    }

    /// Start-up failed with exit code `code` (the reason is on stderr).
    pub(crate) fn failed(&mut self, code: u8) {
        self.report(code.max(1));
    }

    fn report(&mut self, byte: u8) {
        if let Some(mut pipe) = self.pipe.take() {
            // A parent that is gone cannot be told; nothing else to do.
            let _ = pipe.write(&[byte]);
        }
    }
}

/// Forks. In the parent this does not return: it exits with the child's
/// verdict. In the child it returns the [`Readiness`] to report with.
pub(crate) fn background() -> Result<Readiness, Failure> {
    let threads = thread_count();
    if threads != Some(1) {
        // Our own bug: `main` calls this before starting any thread.
        return Err(Failure::Runtime(format!(
            "cannot go to the background: {threads:?} threads already running (expected 1)"
        )));
    }
    let (mut reader, writer) = std::io::pipe()
        .map_err(|e| Failure::Runtime(format!("cannot go to the background: pipe: {e}")))?;
    match sys::fork()
        .map_err(|e| Failure::Runtime(format!("cannot go to the background: fork: {e}")))?
    {
        Forked::Parent(child) => {
            drop(writer);
            let mut byte = [0u8; 1];
            let code = match reader.read(&mut byte) {
                Ok(1) => byte[0],
                _ => {
                    let how = match sys::wait_child(child) {
                        Ok(status) => ExitStatus::from_raw(status).to_string(),
                        Err(e) => format!("unknown ({e})"),
                    };
                    say(format_args!(
                        "the daemon (pid {child}) ended before the mount was ready: {how}"
                    ));
                    1
                }
            };
            std::process::exit(i32::from(code));
        }
        Forked::Child => {
            drop(reader);
            let detach = || -> std::io::Result<()> {
                sys::setsid()?;
                std::env::set_current_dir("/")?;
                sys::stdin_stdout_to_dev_null()
            };
            let mut readiness = Readiness { pipe: Some(writer) };
            if let Err(e) = detach() {
                let failure = Failure::Runtime(format!("cannot go to the background: {e}"));
                say(format_args!("{failure}"));
                readiness.failed(failure.exit_code());
                std::process::exit(i32::from(failure.exit_code()));
            }
            Ok(readiness)
        }
    }
}

/// Threads of this process, from `/proc/self/status`.
fn thread_count() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
}
