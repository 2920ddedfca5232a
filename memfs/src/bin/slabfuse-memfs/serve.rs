//! The daemon's life: claim, mount, start, serve, stop, summarize.
//!
//! In order, and why in that order:
//!
//! 1. Block the stop signals (SIGINT, SIGTERM, SIGHUP) and
//!    [`WORKERS_DONE`] before any thread exists, so that every thread
//!    inherits the mask and only the main thread's `sigwaitinfo` ever
//!    receives them: no handler runs anywhere, nothing is interrupted.
//! 2. Claim the mount point, lay out memfs's storage, mount, build the
//!    session (the request slab). Any failure unmounts what was mounted
//!    (the [`Mounted`] guard) and is exit code 1.
//! 3. Prepare for serving without faults: pre-fault the main thread's
//!    stack, lock all memory, warm the clocks (see `memory`). Print the
//!    plan. Start the workers (after the plan line, so that a mount that
//!    answers has printed it; `MCL_FUTURE` locks their stacks as they are
//!    mapped, and each worker writes its own stack through).
//! 4. Wait until the kernel's INIT is answered and every worker is in its
//!    loop. That moment is **start**: the allocation and fault counters are
//!    read, and only then does a background daemon's parent learn that the
//!    mount is ready, so whatever a caller does after the mount command
//!    returns is measured.
//! 5. Wait for a signal. A stop signal unmounts lazily (`MNT_DETACH`, or
//!    `fusermount3 -u -z`); the workers then read `ENODEV` and stop, and the
//!    last one raises [`WORKERS_DONE`]. An unmount from outside goes straight
//!    to that last step. Nothing in this step allocates or faults, except
//!    the unmount call itself on the `fusermount3` path (it runs a helper
//!    process); that call is measured separately and left out of the
//!    counts.
//! 6. **End**: read the counters again, then (and only then, formatting
//!    allocates) print the summary.

use std::ffi::CString;
use std::time::{Duration, Instant};

use slabfuse::mount::{MountError, MountMethod};
use slabfuse::plan::MessageLimit;
use slabfuse::{DevFuse, Session, WorkerExit};
use slabfuse_memfs::{MemFs, MemFsError};

use crate::daemonize::Readiness;
use crate::memory::{self, LockAll, Measure};
use crate::mountpoint;
use crate::report::{Locked, PlanLine, SummaryLine};
use crate::settings::{self, Settings};
use crate::sys::{SignalSet, c_int};
use crate::workers::{WORKERS_DONE, WorkerEnd, Workers};
use crate::{EXIT_FAILURE, EXIT_OK, Failure, say};

/// How long the kernel may take to send INIT after the mount.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often start-up looks at INIT while waiting (start-up only: serving
/// never polls).
const READY_POLL: Duration = Duration::from_millis(1);
/// How much of the main thread's stack to write before serving: far more
/// than the wait loop and the unmount call need. (The main stack grows on
/// demand; written once, `mlockall` keeps it.)
const MAIN_STACK_PREFAULT_BYTES: usize = 256 << 10;

/// The mount. Dropped while still mounted (an error, a worker that
/// failed), it unmounts lazily.
struct Mounted {
    c_path: CString,
    method: MountMethod,
    /// Unmounted (by us, or the kernel said so): nothing to undo.
    gone: bool,
}

impl Mounted {
    /// Lazy unmount. Allocates nothing on the `mount(2)` path.
    fn unmount(&mut self) -> Result<(), MountError> {
        let result = slabfuse::mount::unmount(&self.c_path, self.method, true);
        if result.is_ok() {
            self.gone = true;
        }
        result
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if !self.gone {
            let _ = self.unmount();
        }
    }
}

/// What the stop signals did.
#[derive(Default)]
struct Stopping {
    /// The first stop signal.
    signal: Option<c_int>,
    /// Our unmount call's result.
    unmount: Option<Result<(), MountError>>,
    /// What our unmount call itself cost (left out of the counts).
    unmount_cost: Measure,
    /// A second stop signal came while workers were still serving.
    gave_up: bool,
}

/// Runs the daemon until it is unmounted; returns the exit code. Errors
/// before serving starts are returned as [`Failure`]s.
pub(crate) fn serve(settings: Settings, readiness: &mut Readiness) -> Result<u8, Failure> {
    let signals = SignalSet::of(&[libc::SIGINT, libc::SIGTERM, libc::SIGHUP, WORKERS_DONE])
        .and_then(|s| s.block().map(|()| s))
        .map_err(|e| Failure::Runtime(format!("cannot block signals: {e}")))?;

    let mountpoint = mountpoint::claim(&settings.mountpoint)?;
    let place = mountpoint.path.display().to_string();
    let memfs = MemFs::new(&settings.memfs).map_err(|e| match e {
        MemFsError::Budget => Failure::Usage(format!(
            "size={} inodes={}: {e}",
            crate::size::Human(settings.memfs.size_bytes),
            settings.memfs.inodes
        )),
        MemFsError::Slab(_) => Failure::Runtime(format!("memfs: {e}")),
    })?;
    let storage = memfs.storage_plan();
    let (fd, method) = slabfuse::mount::mount(&mountpoint.c_path, &settings.mount)
        .map_err(|e| Failure::Runtime(format!("{place}: {e}")))?;
    let mut mounted = Mounted {
        c_path: mountpoint.c_path.clone(),
        method,
        gone: false,
    };
    let mut runtime = settings.runtime;
    if method == MountMethod::Fusermount && runtime.workers > 1 && !settings::can_open_dev_fuse() {
        // Every worker after the first opens /dev/fuse again and attaches
        // it with FUSE_DEV_IOC_CLONE; a user who cannot open /dev/fuse (it
        // is 0600 on some systems) has only the fd fusermount3 handed over.
        say(format_args!(
            "workers={} needs /dev/fuse to be readable and writable by this user; using one \
             worker (make /dev/fuse mode 0666, or run as root, for more)",
            runtime.workers
        ));
        runtime.workers = 1;
    }
    let session = Session::new(runtime, memfs, Box::new(DevFuse::new(fd)))
        .map_err(|e| Failure::Runtime(format!("{place}: {e}")))?;

    memory::prefault_stack::<MAIN_STACK_PREFAULT_BYTES>();
    let lock = memory::lock_all();
    memory::warm_clocks();

    let plan = *session.plan();
    let locked = match lock {
        LockAll::Locked => Locked::All,
        LockAll::Refused(_) => Locked::Parts {
            slab: session.lock_status().is_locked(),
            storage: storage.lock.is_locked(),
        },
    };
    say(format_args!(
        "{}",
        PlanLine {
            workers: plan.workers,
            max_message_bytes: plan.max_write as u64,
            block_size_bytes: plan.block_size as u64,
            pool_blocks: plan.pool_blocks,
            backing: session.backing().name(),
            locked,
            storage_bytes: storage.data_bytes,
            inodes: storage.inodes,
            mapped_total_bytes: planned_bytes(&session, &storage),
        }
    ));
    if plan.limit != MessageLimit::AsAsked {
        say(format_args!("{}", plan.negotiation()));
    }
    if let LockAll::Refused(why) = &lock {
        say(format_args!("{why}"));
    }

    // After the plan line, so that a mount that answers has printed it.
    // With MCL_FUTURE in force their stacks are locked as they are mapped;
    // either way each worker writes its stack through before serving.
    let workers = Workers::spawn(&session)
        .map_err(|e| Failure::Runtime(format!("cannot start a worker thread: {e}")))?;

    let mut pending = wait_until_ready(&session, &workers, &signals, &place)?;

    // Start: from here until `end`, nothing may allocate or fault.
    let start = Measure::now();
    readiness.ready();
    let mut stopping = Stopping::default();
    loop {
        let signal = match pending.take() {
            Some(s) => s,
            None => signals.wait(),
        };
        if signal == WORKERS_DONE {
            if workers.all_stopped() {
                break;
            }
            // Someone else's SIGUSR1: not ours to act on.
            continue;
        }
        if stopping.signal.is_some() {
            stopping.gave_up = true;
            break;
        }
        stopping.signal = Some(signal);
        let before = Measure::now();
        stopping.unmount = Some(mounted.unmount());
        stopping.unmount_cost = Measure::now().since(before);
    }
    let end = Measure::now();
    let serving = end.since(start).since(stopping.unmount_cost);
    let stats = session.stats();
    let pool = session.pool_stats();
    // End: formatting (allocation) is allowed again.

    let summary = SummaryLine {
        requests: stats.requests,
        largest_write_bytes: stats.largest_write,
        largest_read_bytes: stats.largest_read,
        eagain: stats.eagain,
        malformed: stats.malformed,
        heap_allocs_after_start: serving.heap_allocs,
        page_faults_after_start: serving.page_faults,
        pool_high_water: pool.high_water,
        pool_blocks: pool.blocks_total,
    };
    let mut code = EXIT_OK;
    if let Some(Err(e)) = &stopping.unmount {
        say(format_args!("unmounting {place}: {e}"));
    }
    if stopping.gave_up {
        say(format_args!(
            "{} again while open files kept the unmounted filesystem busy: giving up \
             (the kernel aborts the connection as the daemon exits)",
            signal_name(stopping.signal.unwrap_or(libc::SIGTERM))
        ));
        code = EXIT_FAILURE;
    } else {
        let ends = workers.join();
        if ends
            .iter()
            .all(|e| *e == WorkerEnd::Exit(WorkerExit::Unmounted))
        {
            // The kernel said the filesystem is gone: unmounting the path
            // again could hit whatever is mounted there next.
            mounted.gone = true;
        }
        for end in ends
            .iter()
            .filter(|e| **e != WorkerEnd::Exit(WorkerExit::Unmounted))
        {
            code = EXIT_FAILURE;
            match end {
                WorkerEnd::Exit(WorkerExit::Aborted) => {
                    say(format_args!("{place}: the connection was aborted"))
                }
                WorkerEnd::Exit(WorkerExit::Refused) => {
                    say(format_args!("{place}: the kernel refused INIT"))
                }
                WorkerEnd::Exit(WorkerExit::Unmounted) => {}
                WorkerEnd::Failed(e) => say(format_args!("{place}: a worker failed: {e}")),
                WorkerEnd::Panicked => say(format_args!("{place}: a worker panicked")),
            }
        }
    }
    say(format_args!("{summary}"));
    Ok(code)
}

/// Waits until INIT is answered and every worker is serving. Returns a stop
/// signal that arrived meanwhile (handled once serving has started), or an
/// error when serving cannot start.
fn wait_until_ready(
    session: &Session<MemFs>,
    workers: &Workers,
    signals: &SignalSet,
    place: &str,
) -> Result<Option<c_int>, Failure> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut stop = None;
    loop {
        let initialized = session.conn().is_some();
        if initialized && workers.all_started() {
            return Ok(stop);
        }
        if workers.all_stopped() {
            return Err(Failure::Runtime(format!(
                "{place}: the workers stopped before the filesystem was ready (the kernel \
                 refused INIT, or the filesystem was unmounted at once)"
            )));
        }
        if let (Some(signal), false) = (stop, initialized) {
            return Err(Failure::Runtime(format!(
                "{place}: {} before the filesystem was ready",
                signal_name(signal)
            )));
        }
        if Instant::now() >= deadline {
            return Err(Failure::Runtime(format!(
                "{place}: the kernel sent no INIT within {} s",
                READY_TIMEOUT.as_secs()
            )));
        }
        match signals.wait_for(READY_POLL) {
            Some(WORKERS_DONE) | None => {}
            Some(signal) => stop = Some(signal),
        }
    }
}

/// A stop signal's name.
fn signal_name(signal: c_int) -> String {
    match signal {
        libc::SIGINT => "SIGINT".into(),
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGHUP => "SIGHUP".into(),
        other => format!("signal {other}"),
    }
}

/// Everything the daemon maps for serving, as the plan line reports it: the
/// runtime's slab, memfs's storage and tables, the workers' stacks (locked
/// and written through before serving) and the main thread's pre-faulted
/// stack. What the process holds beyond this is the executable and the
/// little heap of start-up, a few MiB that do not grow.
fn planned_bytes(session: &slabfuse::Session<MemFs>, storage: &slabfuse_memfs::StoragePlan) -> u64 {
    let stacks = session.plan().workers as u64 * crate::workers::STACK_BYTES as u64;
    session.mapped_bytes() as u64 + storage.mapped_bytes + stacks + MAIN_STACK_PREFAULT_BYTES as u64
}
