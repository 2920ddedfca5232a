//! The system calls std does not wrap: signals, fork, memory locking,
//! resource usage. Each wrapper is safe to call; the `unsafe` stays here.
//!
//! Nothing here allocates, so the wrappers used after start-up (waiting for
//! a signal, raising one, reading the fault counter) keep the serving
//! promise.
//!
//! # Safety
//!
//! This is one of the two files of the binary with `unsafe` (the other is
//! `counting_alloc.rs`). Every block is one libc call whose pointer
//! arguments point to live, properly typed locals or fields for the length
//! of the call, and whose return value is checked. The one call with a
//! precondition beyond that is [`fork`], which is sound only while the
//! process has a single thread; its caller checks that first.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::AsRawFd;
use std::time::Duration;

pub(crate) use libc::c_int;

/// A set of signals (`sigset_t`).
#[derive(Clone, Copy)]
pub(crate) struct SignalSet {
    set: libc::sigset_t,
}

impl SignalSet {
    /// The set of `signals`.
    pub(crate) fn of(signals: &[c_int]) -> io::Result<SignalSet> {
        let mut set = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: `set` is a live sigset_t-sized local that sigemptyset
        // initializes.
        check(unsafe { libc::sigemptyset(set.as_mut_ptr()) })?;
        // SAFETY: sigemptyset returned 0 above, so `set` is initialized.
        let mut set = unsafe { set.assume_init() };
        for &signal in signals {
            // SAFETY: `set` is an initialized sigset_t local.
            check(unsafe { libc::sigaddset(&mut set, signal) })?;
        }
        Ok(SignalSet { set })
    }

    /// Blocks these signals in the calling thread; threads it spawns later
    /// inherit the mask, so calling this first in `main` blocks them in
    /// every thread and only [`SignalSet::wait`] receives them.
    pub(crate) fn block(&self) -> io::Result<()> {
        // SAFETY: `self.set` is initialized and the old mask is not asked for.
        let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &self.set, std::ptr::null_mut()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::from_raw_os_error(rc))
        }
    }

    /// Waits for one of these (blocked) signals and returns it. No
    /// allocation, no handler: the signal is taken off the pending set.
    pub(crate) fn wait(&self) -> c_int {
        loop {
            // SAFETY: `self.set` is initialized; a null siginfo is allowed.
            let signal = unsafe { libc::sigwaitinfo(&self.set, std::ptr::null_mut()) };
            if signal > 0 {
                return signal;
            }
            // EINTR (a signal outside the set was handled): wait again.
        }
    }

    /// As [`SignalSet::wait`], but gives up after `timeout`: `None`.
    pub(crate) fn wait_for(&self, timeout: Duration) -> Option<c_int> {
        let ts = libc::timespec {
            tv_sec: libc::time_t::try_from(timeout.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
        };
        // SAFETY: `self.set` and `ts` are initialized locals; a null
        // siginfo is allowed.
        let signal = unsafe { libc::sigtimedwait(&self.set, std::ptr::null_mut(), &ts) };
        // EAGAIN: timed out; EINTR: interrupted. Either way, nothing came.
        (signal > 0).then_some(signal)
    }
}

/// Sends `signal` to this process (any thread that does not block it, or
/// the pending set, where [`SignalSet::wait`] finds it). Async-signal-safe
/// and allocation-free.
pub(crate) fn raise_for_process(signal: c_int) {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    // SAFETY: kill with our own pid and a valid signal number has no memory
    // effects in this process beyond delivering the signal. Its only
    // failure (EINVAL for a bad signal) cannot happen for the constants
    // used here.
    unsafe { libc::kill(pid, signal) };
}

/// `kill(getpid(), 0)`: checks that this process exists, delivering
/// nothing; run before serving so that [`raise_for_process`]'s code is
/// mapped in.
pub(crate) fn probe_process() {
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    // SAFETY: signal 0 delivers nothing; kill only checks the pid.
    unsafe { libc::kill(pid, 0) };
}

/// Page faults of this process so far, minor and major, all threads
/// (`getrusage(RUSAGE_SELF)`).
pub(crate) fn page_faults() -> u64 {
    let mut usage = MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage` is a live rusage-sized local that getrusage fills.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        return 0;
    }
    // SAFETY: getrusage succeeded and filled `usage`; it was zeroed before,
    // and rusage is plain integers, valid for any bit pattern anyway.
    let usage = unsafe { usage.assume_init() };
    u64::try_from(usage.ru_minflt).unwrap_or(0) + u64::try_from(usage.ru_majflt).unwrap_or(0)
}

/// `mlockall(MCL_CURRENT | MCL_FUTURE)` (or `MCL_CURRENT` alone): lock and
/// pre-fault every page mapped now (and, with `future`, every page mapped
/// later).
pub(crate) fn mlockall(future: bool) -> io::Result<()> {
    let flags = if future {
        libc::MCL_CURRENT | libc::MCL_FUTURE
    } else {
        libc::MCL_CURRENT
    };
    // SAFETY: mlockall takes no pointers; it changes only memory residency.
    check(unsafe { libc::mlockall(flags) })
}

/// The `RLIMIT_MEMLOCK` soft limit in bytes, `None` when unlimited.
pub(crate) fn memlock_limit() -> io::Result<Option<u64>> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a live rlimit local that getrlimit fills.
    check(unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) })?;
    Ok((limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur))
}

/// Which side of a [`fork`] this is.
pub(crate) enum Forked {
    /// The original process; the child's pid.
    Parent(libc::pid_t),
    /// The new process.
    Child,
}

/// `fork()`.
///
/// The caller must have checked that the process has one thread: a child
/// forked from a multi-threaded process may only call async-signal-safe
/// functions, and the daemon's child does everything (it allocates, spawns
/// threads).
pub(crate) fn fork() -> io::Result<Forked> {
    // SAFETY: the caller checked that this process has a single thread, so
    // the child starts with consistent allocator and libc state.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent(pid)),
    }
}

/// `setsid()`: a new session with no controlling terminal, so the daemon
/// outlives the terminal and does not get its Ctrl-C.
pub(crate) fn setsid() -> io::Result<()> {
    // SAFETY: setsid takes no arguments.
    if unsafe { libc::setsid() } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Points standard input and output at `/dev/null`.
pub(crate) fn stdin_stdout_to_dev_null() -> io::Result<()> {
    let null = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    for target in [libc::STDIN_FILENO, libc::STDOUT_FILENO] {
        // SAFETY: both fds are open (`null` lives until the end of the
        // function); dup2 replaces `target` atomically.
        check(unsafe { libc::dup2(null.as_raw_fd(), target) })?;
    }
    Ok(())
}

/// Waits for child `pid` to end; its wait status.
pub(crate) fn wait_child(pid: libc::pid_t) -> io::Result<c_int> {
    let mut status: c_int = 0;
    loop {
        // SAFETY: `status` is a live c_int local that waitpid fills.
        let rc = unsafe { libc::waitpid(pid, &mut status, 0) };
        if rc == pid {
            return Ok(status);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Turns a libc `0 / -1 + errno` return into a `Result`.
fn check(rc: c_int) -> io::Result<()> {
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocked_signal_is_waited_for_not_delivered() {
        let set = SignalSet::of(&[libc::SIGUSR2]).unwrap();
        set.block().unwrap();
        assert_eq!(set.wait_for(Duration::from_millis(1)), None);
        // A thread-directed signal, so that no other test thread (which may
        // not block it) could take it instead.
        // SAFETY: pthread_self has no preconditions.
        let me = unsafe { libc::pthread_self() };
        // SAFETY: `me` is this live thread; SIGUSR2 is blocked in it, so it
        // only becomes pending.
        let rc = unsafe { libc::pthread_kill(me, libc::SIGUSR2) };
        assert_eq!(rc, 0);
        assert_eq!(set.wait(), libc::SIGUSR2);
    }

    #[test]
    fn page_faults_only_grow() {
        let a = page_faults();
        let v = std::hint::black_box(vec![1u8; 1 << 22]);
        let b = page_faults();
        drop(v);
        assert!(b >= a);
    }
}
