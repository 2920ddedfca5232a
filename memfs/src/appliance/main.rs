//! `slabfuse-memfs` as a static appliance image: no libc, no std, a fixed
//! memory budget, defmt logs.
//!
//! Built by `just appliance` (see `linker/appliance.ld` for the layout and
//! the Justfile for the flags): a non-PIE static executable whose entry
//! point ([`entry`]) reads the command line off the initial stack and calls
//! [`main`]. From there, in order:
//!
//! 1. Block SIGTERM, SIGINT, SIGUSR1 and SIGPIPE (threads inherit the
//!    mask: only the main thread takes them, synchronously, in
//!    `rt_sigtimedwait`), lock the image in memory, parse the command line
//!    ([`args`]).
//! 2. Plan (`slabfuse::Plan`), build memfs (its storage slab and tables),
//!    claim the mount point, `mount(2)`, build the session (the runtime's
//!    slab, one cloned `/dev/fuse` fd per worker).
//! 3. Check the budget, log the memory plan ([`memory`]), seal the
//!    start-up arena ([`arena`]): from here on every heap allocation is
//!    counted, and none may grow the arena.
//! 4. Start one worker thread per CPU it is told to use ([`sys::spawn`]),
//!    each pinned to one CPU of the affinity mask, and wait for signals:
//!    SIGTERM/SIGINT unmount (lazily if busy), SIGUSR1 means a worker logged
//!    something or ended; when a worker ends the filesystem is unmounted.
//! 5. When every worker has ended: join them, log the counters, the heap
//!    allocations after start (zero) and the resident memory against the
//!    plan, and exit.
//!
//! Memory: the arena holds what start-up allocates; the pool and memfs
//! storage are slabs (mapped, pre-faulted, locked); worker stacks are
//! mapped, locked and measured; logging uses a fixed ring ([`logger`]).
//!
//! `unsafe` is denied here and allowed only in `entry`, `sys`, `mem`,
//! `arena` and `logger`, whose module docs each carry a `# Safety` section.

#![no_std]
#![no_main]
#![deny(unsafe_code)]

extern crate alloc;

#[allow(unsafe_code)]
mod arena;
mod args;
#[allow(unsafe_code)]
mod entry;
#[allow(unsafe_code)]
mod logger;
#[allow(unsafe_code)]
mod mem;
mod memory;
#[allow(unsafe_code)]
mod sys;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::ffi::CStr;
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use core::sync::atomic::{AtomicI32, AtomicU32};

use defmt::{Display2Format, error, info, warn};
use rustix::io::Errno;
use rustix::process::Signal;
use slabfuse::mount::{MountMethod, MountOptions, MountpointGuard};
use slabfuse::pool::LockStatus;
use slabfuse::{Config, DevFuse, Plan, Session, Worker, WorkerExit};
use slabfuse_memfs::{MemFs, MemFsConfig};

use crate::args::{Command, Options, UsageError};
use crate::memory::MemoryPlan;
use crate::sys::{SignalSet, Thread};

#[global_allocator]
static ALLOCATOR: arena::Arena = arena::Arena;

/// The program name: the default fsname and subtype (`fuse.slabfuse-memfs`,
/// as the std daemon's).
const PROGRAM: &str = "slabfuse-memfs";
/// Stack of each worker thread. The deepest a worker went is logged at exit
/// (`stack high-water`), so this can be checked against real use.
const WORKER_STACK_BYTES: usize = 128 << 10;

/// Exit codes.
const EXIT_OK: i32 = 0;
const EXIT_FAILURE: i32 = 1;
const EXIT_USAGE: i32 = 2;

/// The mount point while mounted, for the panic handler's lazy unmount.
/// (Only the main thread locks it, briefly; the panic handler only tries.)
static MOUNTED: spin::Mutex<Option<&'static CStr>> = spin::Mutex::new(None);

/// The image's main: returns the exit code.
fn main(mut argv: entry::Args) -> i32 {
    logger::init_main_thread();
    let signals = SignalSet::of(&[Signal::TERM, Signal::INT, Signal::USR1, Signal::PIPE]);
    if let Err(e) = signals.block() {
        error!("blocking signals: errno {=i32}", e.raw_os_error());
        return EXIT_FAILURE;
    }
    sys::lock_image();
    let _program = argv.next();
    let options = match args::parse(argv) {
        Ok(Command::Run(o)) => o,
        Ok(Command::Help) => return print(args::HELP),
        Ok(Command::Version) => {
            return print(concat!(
                "slabfuse-memfs ",
                env!("CARGO_PKG_VERSION"),
                " (appliance)\n"
            ));
        }
        Err(UsageError(message)) => {
            error!("usage: {=str} (see --help)", message);
            return EXIT_USAGE;
        }
    };
    if let Some(fd) = options.log_fd {
        logger::set_fd(fd);
    }
    match serve(&options, &signals) {
        Ok(code) => code,
        Err(Failed) => EXIT_FAILURE,
    }
}

/// Writes `text` to stdout; the exit code.
fn print(text: &str) -> i32 {
    if sys::write_stdout(text.as_bytes()) {
        EXIT_OK
    } else {
        EXIT_FAILURE
    }
}

/// Start-up failed; the reason was logged.
struct Failed;

/// How one worker ended, written by its thread, read by the main thread.
struct WorkerResult {
    /// 0 = running, then 1 + the [`Outcome`] index.
    state: AtomicU32,
    /// The errno of [`Outcome::Error`].
    errno: AtomicI32,
}

/// A worker thread's job: the worker, its CPU, where it reports.
struct Job {
    worker: Worker<MemFs>,
    cpu: Option<usize>,
    result: &'static WorkerResult,
}

/// A worker's end, as recorded in [`WorkerResult::state`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
enum Outcome {
    /// `ENODEV` or end of file: the filesystem was unmounted.
    Unmounted,
    /// The connection was aborted (fusectl).
    Aborted,
    /// The kernel refused INIT's terms.
    Refused,
    /// `/dev/fuse` failed otherwise (the errno is in the result).
    Error,
}

impl Outcome {
    /// Every outcome, in the order of [`WorkerResult::state`]'s codes.
    const ALL: [Outcome; 4] = [
        Outcome::Unmounted,
        Outcome::Aborted,
        Outcome::Refused,
        Outcome::Error,
    ];
}

impl WorkerResult {
    fn outcome(&self) -> Option<Outcome> {
        // Acquire: pairs with the worker's Release store.
        let s = self.state.load(Acquire) as usize;
        s.checked_sub(1).and_then(|i| Outcome::ALL.get(i).copied())
    }
}

impl sys::ThreadMain for Job {
    fn run(&mut self) {
        run_worker(self);
    }
}

/// A worker thread: pin, serve, report.
fn run_worker(job: &mut Job) {
    let index = job.worker.index();
    if let Some(cpu) = job.cpu {
        let mut set = rustix::thread::CpuSet::new();
        set.set(cpu);
        if let Err(e) = rustix::thread::sched_setaffinity(None, &set) {
            warn!(
                "worker {=usize}: pinning to CPU {=usize}: errno {=i32}",
                index,
                cpu,
                e.raw_os_error()
            );
        }
    }
    let outcome = match job.worker.run() {
        Ok(WorkerExit::Unmounted) => Outcome::Unmounted,
        Ok(WorkerExit::Aborted) => Outcome::Aborted,
        Ok(WorkerExit::Refused) => Outcome::Refused,
        Err(e) => {
            job.result.errno.store(e.raw_os_error(), Relaxed);
            error!(
                "worker {=usize}: /dev/fuse: errno {=i32}",
                index,
                e.raw_os_error()
            );
            Outcome::Error
        }
    };
    let code = Outcome::ALL.iter().position(|o| *o == outcome).unwrap_or(3) as u32 + 1;
    // Release: the errno above is visible to whoever sees the state.
    job.result.state.store(code, Release);
    info!("worker {=usize} ended: {}", index, outcome);
    // Tell the main thread (it takes SIGUSR1 synchronously).
    let _ = rustix::process::kill_process(rustix::process::getpid(), Signal::USR1);
}

/// Mounts, serves, unmounts; the exit code.
fn serve(options: &Options, signals: &SignalSet) -> Result<i32, Failed> {
    let mountpoint = options.mountpoint;
    let mountpoint_str = mountpoint.to_str().unwrap_or("(not UTF-8)");

    // CPUs: the ones we are told to use (the affinity mask).
    let cpus: Vec<usize> = match rustix::thread::sched_getaffinity(None) {
        Ok(set) => (0..rustix::thread::CpuSet::MAX_CPU)
            .filter(|c| set.is_set(*c))
            .collect(),
        Err(_) => Vec::new(),
    };
    let serve = &options.serve;
    let workers = serve.workers.unwrap_or(cpus.len().max(1));
    let backing = serve.hugepages.backing();
    info!(
        "slabfuse-memfs {=str} (appliance): {=str}, {=usize} workers on {=usize} CPUs, hugepages {}",
        env!("CARGO_PKG_VERSION"),
        mountpoint_str,
        workers,
        cpus.len(),
        serve.hugepages
    );

    // The runtime's plan, before anything is mapped.
    let config = Config {
        workers,
        max_message: usize::try_from(serve.max_message_bytes).unwrap_or(usize::MAX),
        block_size: serve
            .block_size_bytes
            .map(|b| usize::try_from(b).unwrap_or(usize::MAX)),
        backing,
        lock_memory: true,
        max_pages_limit: slabfuse::plan::read_max_pages_limit(),
        poll_ns: serve.poll_us.saturating_mul(1000),
        ..Config::default()
    };
    // The polling worker reads the monotonic clock: resolve it (the vDSO,
    // or its fallback) before serving, not on the first request.
    let _ = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let plan = Plan::compute(&config).map_err(|e| {
        error!("memory plan: {}", e);
        Failed
    })?;
    info!("plan: {}", plan);
    info!("{}", Display2Format(&plan.negotiation()));

    // memfs: its storage slab and tables. What it allocates from the heap
    // (its tables) is counted in its storage plan, so it is taken out of
    // the arena's line of the memory plan.
    let defaults = MemFsConfig::default();
    let memfs_config = MemFsConfig {
        size_bytes: serve.size_bytes,
        inodes: serve.inodes.unwrap_or(defaults.inodes),
        backing,
        lock: true,
        root_mode: serve.root_mode.unwrap_or(defaults.root_mode),
        root_uid: serve
            .root_uid
            .unwrap_or_else(|| rustix::process::geteuid().as_raw()),
        root_gid: serve
            .root_gid
            .unwrap_or_else(|| rustix::process::getegid().as_raw()),
        // ACLs make the kernel check permissions: only where it is asked to.
        posix_acl: serve.mount.default_permissions,
        ..defaults
    };
    let arena_before = arena::stats().used_bytes;
    let memfs = MemFs::new(&memfs_config).map_err(|e| {
        error!("memfs: {}", Display2Format(&e));
        Failed
    })?;
    let memfs_heap_bytes = arena::stats().used_bytes.saturating_sub(arena_before) as u64;
    let storage = memfs.storage_plan();
    info!(
        "storage: data {=u64} B, {=u32} inodes, mapped {=u64} B = slab {=u64} + tables {=u64} (heap used: {=u64}), backing {}, lock {=str}",
        storage.data_bytes,
        storage.inodes,
        storage.mapped_bytes,
        storage.slab_bytes,
        storage.metadata_bytes,
        memfs_heap_bytes,
        storage.backing,
        lock_name(storage.lock)
    );
    if let Some(budget) = options.budget_bytes {
        // A first check before mounting, with the pool as planned.
        let planned = plan.pool_bytes as u64 + storage.mapped_bytes;
        if planned > budget {
            error!(
                "budget: pool {=usize} B + storage {=u64} B = {=u64} B is over the budget of {=u64} B",
                plan.pool_bytes, storage.mapped_bytes, planned, budget
            );
            return Err(Failed);
        }
    }

    // Mount.
    let _guard = MountpointGuard::claim(mountpoint).map_err(|e| {
        error!("mount point {=str}: {}", mountpoint_str, Display2Format(&e));
        Failed
    })?;
    let mount_options = mount_options(options);
    let fd = slabfuse::mount::mount_syscall(mountpoint, &mount_options).map_err(|e| {
        error!("mounting {=str}: {}", mountpoint_str, Display2Format(&e));
        Failed
    })?;
    *MOUNTED.lock() = Some(mountpoint);
    let session = match Session::new(config, memfs, Box::new(DevFuse::new(fd))) {
        Ok(s) => s,
        Err(e) => {
            error!("session: {}", Display2Format(&e));
            unmount(mountpoint, mountpoint_str);
            return Err(Failed);
        }
    };

    // Everything the workers need, allocated now.
    let workers_list = session.workers();
    let results: &'static [WorkerResult] = Vec::leak(
        (0..workers_list.len())
            .map(|_| WorkerResult {
                state: AtomicU32::new(0),
                errno: AtomicI32::new(0),
            })
            .collect(),
    );
    let jobs: &'static mut [Job] = Vec::leak(
        workers_list
            .into_iter()
            .zip(results)
            .map(|(worker, result)| {
                let cpu = (!cpus.is_empty()).then(|| cpus[worker.index() % cpus.len()]);
                Job {
                    worker,
                    cpu,
                    result,
                }
            })
            .collect(),
    );
    let mut threads: Vec<Thread> = Vec::with_capacity(jobs.len());

    // The memory plan, checked against the budget, then sealed.
    let arena_stats = arena::stats();
    let memory = MemoryPlan {
        image: sys::image_bytes() as u64,
        stacks: (jobs.len() * WORKER_STACK_BYTES.next_multiple_of(rustix::param::page_size()))
            as u64,
        arena: (arena_stats.committed_bytes as u64).saturating_sub(memfs_heap_bytes),
        pool: session.mapped_bytes() as u64,
        storage: storage.mapped_bytes,
    };
    info!(
        "pool: {=usize} blocks of {=usize} B, backing {}, lock {=str}",
        plan.pool_blocks,
        plan.block_size,
        session.backing(),
        lock_name(session.lock_status())
    );
    info!(
        "memory plan: image {=u64} + stacks {=u64} + arena {=u64} + pool {=u64} + storage {=u64} = {=u64} bytes",
        memory.image,
        memory.stacks,
        memory.arena,
        memory.pool,
        memory.storage,
        memory.total()
    );
    if let Some(budget) = options.budget_bytes {
        let used = memory.budgeted();
        if used > budget {
            error!(
                "budget: pool + storage = {=u64} B is over the budget of {=u64} B",
                used, budget
            );
            unmount(mountpoint, mountpoint_str);
            return Err(Failed);
        }
        info!(
            "budget: pool + storage = {=u64} of {=u64} bytes",
            used, budget
        );
    }
    arena::mark_serving();
    logger::set_deferred(true);

    // Serve.
    for job in jobs.iter_mut() {
        let index = job.worker.index();
        match sys::spawn(job, WORKER_STACK_BYTES) {
            Ok(t) => threads.push(t),
            Err(e) => {
                error!(
                    "starting worker {=usize}: errno {=i32}",
                    index,
                    e.raw_os_error()
                );
                break;
            }
        }
    }
    // Spawning mapped and faulted in the stacks; from here on, nothing may.
    let faults_at_start = memory::page_faults().unwrap_or(0);
    let resident = memory::resident_bytes().unwrap_or(0);
    info!(
        "serving {=str} with {=usize} workers: resident {=u64} bytes, planned {=u64} ({=i64} basis points off)",
        mountpoint_str,
        threads.len(),
        resident,
        memory.total(),
        memory::deviation_basis_points(resident, memory.total())
    );
    if threads.len() < results.len() {
        unmount(mountpoint, mountpoint_str);
    }

    // Wait: signals, and workers that end.
    let mut unmounted = threads.len() < results.len();
    let started = threads.len();
    loop {
        let ended = results[..started]
            .iter()
            .filter(|r| r.outcome().is_some())
            .count();
        if ended > 0 && !unmounted {
            info!("a worker ended: unmounting {=str}", mountpoint_str);
            unmount(mountpoint, mountpoint_str);
            unmounted = true;
        }
        if ended == started {
            break;
        }
        let signal = signals.wait(None);
        logger::drain();
        if let Some(s) = signal
            && (s == Signal::TERM.as_raw() || s == Signal::INT.as_raw())
            && !unmounted
        {
            info!("signal {=i32}: unmounting {=str}", s, mountpoint_str);
            unmount(mountpoint, mountpoint_str);
            unmounted = true;
        }
    }
    for (i, t) in threads.iter().enumerate() {
        t.join();
        info!(
            "worker {=usize}: stack high-water {=usize} of {=usize} bytes",
            i,
            t.stack_high_water(),
            t.resident_bytes()
        );
    }
    *MOUNTED.lock() = None;
    let resident_at_end = memory::resident_bytes().unwrap_or(0);
    let faults_while_serving = memory::page_faults()
        .unwrap_or(0)
        .saturating_sub(faults_at_start);
    logger::set_deferred(false);

    // The record of the run.
    let stats = session.stats();
    let pool = session.pool_stats();
    let arena_end = arena::stats();
    info!(
        "exit: {=u64} requests, {=u64} bytes written, {=u64} bytes read, largest write {=u64}, largest read {=u64}, {=u64} EAGAIN, {=u64} malformed",
        stats.requests,
        stats.bytes_written,
        stats.bytes_read,
        stats.largest_write,
        stats.largest_read,
        stats.eagain,
        stats.malformed
    );
    info!("pool at exit: {}", pool);
    info!(
        "page faults while serving: {=u64} (all threads, from the start of the last worker until all were joined)",
        faults_while_serving
    );
    info!(
        "heap allocations after serving began: {=u64} (arena: {})",
        arena_end.allocations_after_serving, arena_end
    );
    info!(
        "memory at exit: resident {=u64} bytes, planned {=u64} ({=i64} basis points off)",
        resident_at_end,
        memory.total(),
        memory::deviation_basis_points(resident_at_end, memory.total())
    );
    let failed = results[..started]
        .iter()
        .any(|r| matches!(r.outcome(), Some(Outcome::Error | Outcome::Refused)));
    if failed {
        for (i, r) in results.iter().enumerate() {
            if r.outcome() == Some(Outcome::Error) {
                error!(
                    "worker {=usize} failed: errno {=i32}",
                    i,
                    r.errno.load(Relaxed)
                );
            }
        }
    }
    let code = if failed || started < results.len() {
        EXIT_FAILURE
    } else {
        EXIT_OK
    };
    logger::drain_for_exit();
    Ok(code)
}

/// A slab's lock status, for the log.
fn lock_name(status: LockStatus) -> &'static str {
    match status {
        LockStatus::Locked => "locked",
        LockStatus::Refused(_) => "refused (RLIMIT_MEMLOCK?)",
        LockStatus::NotRequested => "not requested",
    }
}

/// The runtime's mount options from the command line's.
fn mount_options(options: &Options) -> MountOptions {
    let m = &options.serve.mount;
    let fsname = m.fsname.clone().unwrap_or_else(|| {
        options
            .source
            .and_then(|s| s.to_str().ok())
            .map_or_else(|| String::from(PROGRAM), String::from)
    });
    MountOptions {
        fsname,
        subtype: Some(m.subtype.clone().unwrap_or_else(|| String::from(PROGRAM))),
        allow_other: m.allow_other,
        default_permissions: m.default_permissions,
        read_only: m.read_only,
        max_read: m.max_read,
        suid: m.suid,
        dev: m.dev,
        noexec: m.noexec,
        ..MountOptions::default()
    }
}

/// Unmounts; when the mount is busy (open files, a shell's cwd), detaches
/// it instead: it disappears from the namespace now and the connection ends
/// when the last user is gone. "Not mounted" (someone unmounted it first)
/// is not an error.
fn unmount(mountpoint: &CStr, name: &str) {
    match slabfuse::mount::unmount(mountpoint, MountMethod::Syscall, false) {
        Ok(()) => {}
        Err(slabfuse::mount::MountError::Mount(Errno::BUSY)) => {
            warn!("{=str} is busy: detaching it (lazy unmount)", name);
            if let Err(e) = slabfuse::mount::unmount(mountpoint, MountMethod::Syscall, true) {
                error!("detaching {=str}: {}", name, Display2Format(&e));
            }
        }
        Err(slabfuse::mount::MountError::Mount(Errno::INVAL)) => {}
        Err(e) => error!("unmounting {=str}: {}", name, Display2Format(&e)),
    }
}

/// The panic handler's clean-up: detach the mount, if one is up.
fn detach_mount_after_panic() {
    let Some(mut mounted) = MOUNTED.try_lock() else {
        return;
    };
    if let Some(mountpoint) = mounted.take() {
        let _ = rustix::mount::unmount(mountpoint, rustix::mount::UnmountFlags::DETACH);
    }
}
