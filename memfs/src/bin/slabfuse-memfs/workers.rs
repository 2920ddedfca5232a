//! Worker threads: one per runtime [`Worker`], each on a stack of a fixed,
//! explicit size that it writes through before serving.
//!
//! The main thread learns that the workers are gone without polling and
//! without allocating: the last worker to stop raises [`WORKERS_DONE`] for
//! the process, a signal every thread blocks and the main thread waits for
//! with `sigwaitinfo`. The counting happens in a drop guard, so a worker
//! that panics is counted too.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Release};
use std::thread::JoinHandle;

use slabfuse::{Errno, Session, Worker, WorkerExit};
use slabfuse_memfs::MemFs;

use crate::memory::prefault_stack;
use crate::sys::{self, c_int};

/// Each worker's stack: std's own default for spawned threads, and ample
/// for `Worker::run` (its iovec and segment arrays, 257 entries each, live
/// on the stack) and memfs's operations beneath it.
pub(crate) const STACK_BYTES: usize = 2 << 20;
/// How much of it is written before serving: all but the top 256 KiB,
/// which holds the thread's start-up frames (and glibc's thread control
/// block) above the probe.
const STACK_PREFAULT_BYTES: usize = STACK_BYTES - (256 << 10);

/// Raised (process-directed) by the last worker to stop.
pub(crate) const WORKERS_DONE: c_int = libc::SIGUSR1;

/// How one worker ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WorkerEnd {
    /// `Worker::run` returned.
    Exit(WorkerExit),
    /// Reading or writing `/dev/fuse` failed unexpectedly.
    Failed(Errno),
    /// The thread panicked.
    Panicked,
}

/// Counters shared between the workers and the main thread.
#[derive(Debug, Default)]
struct State {
    /// Workers that reached their serving loop.
    started: AtomicUsize,
    /// Workers not yet stopped.
    live: AtomicUsize,
}

/// Decrements `live` when a worker stops, however it stops, and raises
/// [`WORKERS_DONE`] when it was the last.
struct Leaving(Arc<State>);

impl Drop for Leaving {
    fn drop(&mut self) {
        // AcqRel: Release so that the main thread, which reads `live` with
        // Acquire after the signal, sees everything this worker did (its
        // counters, its blocks back in the pool); Acquire so that the last
        // worker's signal comes after every other worker's decrement.
        if self.0.live.fetch_sub(1, AcqRel) == 1 {
            sys::raise_for_process(WORKERS_DONE);
        }
    }
}

/// The running workers.
pub(crate) struct Workers {
    handles: Vec<JoinHandle<Result<WorkerExit, Errno>>>,
    state: Arc<State>,
}

impl Workers {
    /// Starts one thread per worker of `session`. Call with
    /// [`WORKERS_DONE`] (and the stop signals) already blocked: the threads
    /// inherit the mask.
    pub(crate) fn spawn(session: &Session<MemFs>) -> std::io::Result<Workers> {
        let workers = session.workers();
        let state = Arc::new(State::default());
        // Release: pairs with the Acquire loads in `all_stopped`.
        state.live.store(workers.len(), Release);
        let mut handles = Vec::with_capacity(workers.len());
        for worker in workers {
            let index = worker.index();
            let state = Arc::clone(&state);
            let handle = std::thread::Builder::new()
                .name(format!("memfs-worker-{index}"))
                .stack_size(STACK_BYTES)
                .spawn(move || serve(worker, state));
            match handle {
                Ok(h) => handles.push(h),
                Err(e) => {
                    // The workers already running stop when the caller
                    // unmounts on this error.
                    return Err(e);
                }
            }
        }
        Ok(Workers { handles, state })
    }

    /// How many there are.
    pub(crate) fn count(&self) -> usize {
        self.handles.len()
    }

    /// Every worker has reached its serving loop.
    pub(crate) fn all_started(&self) -> bool {
        // Acquire: pairs with the Release increment in `serve`.
        self.state.started.load(Acquire) == self.count()
    }

    /// Every worker has stopped.
    pub(crate) fn all_stopped(&self) -> bool {
        // Acquire: pairs with the AcqRel decrement in `Leaving::drop`.
        self.state.live.load(Acquire) == 0
    }

    /// Waits for every worker and says how each ended. Call after
    /// [`Workers::all_stopped`]; allocates (the result list).
    pub(crate) fn join(self) -> Vec<WorkerEnd> {
        self.handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(Ok(exit)) => WorkerEnd::Exit(exit),
                Ok(Err(errno)) => WorkerEnd::Failed(errno),
                Err(_) => WorkerEnd::Panicked,
            })
            .collect()
    }
}

/// A worker thread's body.
fn serve(mut worker: Worker<MemFs>, state: Arc<State>) -> Result<WorkerExit, Errno> {
    prefault_stack::<STACK_PREFAULT_BYTES>();
    let leaving = Leaving(Arc::clone(&state));
    // Release: pairs with the Acquire load in `all_started`.
    state.started.fetch_add(1, Release);
    let exit = worker.run();
    // The worker's blocks go back to the pool before it counts as stopped.
    drop(worker);
    drop(leaving);
    exit
}
