//! The session and its workers: plan, map, serve.
//!
//! [`Session::new`] is the whole start-up: it computes the [`Plan`], maps
//! the slab, builds the block pool, clones one channel per worker, gives
//! each worker its receive buffer and lays out the deferred-reply slots.
//! Everything after that, [`Worker::run`], allocates nothing: it reads a
//! message into its blocks, parses it in place, calls the filesystem and
//! writes the reply, until the kernel says the filesystem is gone.
//!
//! The runtime is `no_std`: it spawns no threads. A daemon runs each
//! [`Worker`] on a thread of its own; an appliance image may run one.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize};

use rustix::io::{Errno, IoSliceMut};
use slabfuse_pool::{Backing, BlockPool, LockStatus, PoolStats, Slab, SlabConfig, SlabError};
use zerocopy::IntoBytes;

use crate::abi::{self, Opcode};
use crate::buffer::{self, BlockList, MAX_RECV_IOVECS, RecvBuffer};
use crate::channel::Channel;
use crate::fs::{ConnInfo, Filesystem};
use crate::init::{self, InitReply};
use crate::op::Operation;
use crate::parse::{self, NAME_SCRATCH_BYTES, ParseContext};
use crate::plan::{Config, Plan, PlanError};
use crate::reply::*;
use crate::stats::{Counters, Stats};
use crate::types::{NodeId, Request, RequestId};

/// Why a session could not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionError {
    /// The configuration cannot be planned.
    Plan(PlanError),
    /// The slab could not be mapped.
    Slab(SlabError),
    /// Cloning a channel for a worker failed.
    Clone(Errno),
}

impl core::fmt::Display for SessionError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SessionError::Plan(e) => write!(f, "memory plan: {e}"),
            SessionError::Slab(e) => write!(f, "slab: {e}"),
            SessionError::Clone(e) => write!(f, "cloning /dev/fuse for a worker: {e}"),
        }
    }
}

impl core::error::Error for SessionError {}

/// One deferred-reply slot.
pub(crate) struct DeferredSlot {
    /// Claimed by a deferred reply.
    pub(crate) busy: AtomicBool,
    /// The request it answers (valid while busy).
    pub(crate) unique: AtomicU64,
    /// An INTERRUPT arrived for it.
    pub(crate) interrupted: AtomicBool,
    /// The channel its request came in on (replies go back there).
    pub(crate) channel: AtomicUsize,
    /// Pool blocks held for its data, under the buffer module's invariant.
    /// The lock is never contended: only the reply holding the slot uses it.
    pub(crate) blocks: spin::Mutex<BlockList>,
}

/// Negotiated state, written once by the worker that answers INIT.
struct ConnState {
    /// 0 = not yet, 1 = agreed.
    initialized: AtomicBool,
    minor: AtomicU32,
    flags: AtomicU64,
    max_write: AtomicU32,
    max_read: AtomicU32,
    max_readahead: AtomicU32,
    max_pages: AtomicU32,
}

/// What every worker and every deferred reply shares.
pub(crate) struct Core {
    pub(crate) pool: BlockPool,
    pub(crate) channels: Vec<Box<dyn Channel>>,
    pub(crate) counters: Box<[Counters]>,
    pub(crate) shared_counters: Counters,
    pub(crate) deferred: Box<[DeferredSlot]>,
    pub(crate) plan: Plan,
    pub(crate) config: Config,
    pub(crate) init_flags: u64,
    conn: ConnState,
    /// Receive buffers not yet handed to a worker.
    buffers: spin::Mutex<Vec<Option<RecvBuffer>>>,
}

impl Core {
    /// Claims a free slot for request `unique` with `blocks` pool blocks.
    pub(crate) fn claim_slot(
        &self,
        unique: u64,
        channel: usize,
        blocks: usize,
    ) -> Result<usize, slabfuse_pool::Exhausted> {
        for (i, slot) in self.deferred.iter().enumerate() {
            if slot
                .busy
                .compare_exchange(false, true, AcqRel, Relaxed)
                .is_err()
            {
                continue;
            }
            let list = match buffer::take_blocks(&self.pool, blocks) {
                Ok(l) => l,
                Err(e) => {
                    slot.busy.store(false, Release);
                    return Err(e);
                }
            };
            *slot.blocks.lock() = list;
            slot.unique.store(unique, Relaxed);
            slot.channel.store(channel, Relaxed);
            slot.interrupted.store(false, Relaxed);
            return Ok(i);
        }
        Err(slabfuse_pool::Exhausted)
    }

    /// Frees a slot and returns its blocks to the pool.
    pub(crate) fn release_slot(&self, slot: usize) {
        let s = &self.deferred[slot];
        {
            let mut blocks = s.blocks.lock();
            // SAFETY: the slot held these blocks under the buffer module's
            // invariant; the reply that held the slot is finished with them.
            unsafe { buffer::return_blocks(&self.pool, &mut blocks) };
        }
        s.unique.store(0, Relaxed);
        // Release: a thread that claims this slot next sees it emptied.
        s.busy.store(false, Release);
    }

    /// Marks deferred request `target` interrupted; true if one was found.
    fn mark_interrupted(&self, target: u64) -> bool {
        let mut found = false;
        for s in self.deferred.iter() {
            if s.busy.load(Acquire) && s.unique.load(Relaxed) == target {
                s.interrupted.store(true, Release);
                found = true;
            }
        }
        found
    }

    fn parse_context(&self) -> ParseContext {
        ParseContext {
            name_max: self.config.name_max,
            setxattr_ext: self.conn.flags.load(Acquire) & abi::FUSE_SETXATTR_EXT != 0,
        }
    }

    fn conn_info(&self) -> Option<ConnInfo> {
        if !self.conn.initialized.load(Acquire) {
            return None;
        }
        Some(ConnInfo {
            minor: self.conn.minor.load(Relaxed),
            flags: self.conn.flags.load(Relaxed),
            max_write: self.conn.max_write.load(Relaxed),
            max_read: self.conn.max_read.load(Relaxed),
            max_readahead: self.conn.max_readahead.load(Relaxed),
            max_pages: u16::try_from(self.conn.max_pages.load(Relaxed)).unwrap_or(u16::MAX),
        })
    }
}

/// A FUSE session: the memory, the channels and the filesystem.
pub struct Session<F: Filesystem> {
    core: Arc<Core>,
    fs: Arc<F>,
}

impl<F: Filesystem> Clone for Session<F> {
    fn clone(&self) -> Self {
        Session {
            core: Arc::clone(&self.core),
            fs: Arc::clone(&self.fs),
        }
    }
}

impl<F: Filesystem> Session<F> {
    /// Plans, maps and lays out everything the session will ever use.
    /// `channel` is the connection (the fd a mount returned, or a simulated
    /// kernel); it is cloned once per extra worker.
    pub fn new(
        config: Config,
        fs: F,
        channel: Box<dyn Channel>,
    ) -> Result<Session<F>, SessionError> {
        let init_flags = fs.init_flags();
        let plan = Plan::compute(&config).map_err(SessionError::Plan)?;
        let slab = Slab::map(&SlabConfig {
            block_size: plan.block_size,
            blocks: plan.pool_blocks,
            backing: config.backing,
            lock: config.lock_memory,
        })
        .map_err(SessionError::Slab)?;
        let pool = BlockPool::new(slab);

        let mut channels: Vec<Box<dyn Channel>> = Vec::with_capacity(plan.workers);
        for _ in 1..plan.workers {
            channels.push(channel.clone_channel().map_err(SessionError::Clone)?);
        }
        channels.insert(0, channel);

        let mut buffers = Vec::with_capacity(plan.workers);
        for _ in 0..plan.workers {
            // Cannot fail: the plan sized the pool for these buffers.
            let b = RecvBuffer::new(&pool, plan.blocks_per_buffer)
                .map_err(|_| SessionError::Plan(PlanError::Overflow))?;
            buffers.push(Some(b));
        }
        let counters = (0..plan.workers).map(|_| Counters::new()).collect();
        let deferred = (0..plan.max_deferred)
            .map(|_| DeferredSlot {
                busy: AtomicBool::new(false),
                unique: AtomicU64::new(0),
                interrupted: AtomicBool::new(false),
                channel: AtomicUsize::new(0),
                blocks: spin::Mutex::new(BlockList::new()),
            })
            .collect();
        let core = Core {
            pool,
            channels,
            counters,
            shared_counters: Counters::new(),
            deferred,
            plan,
            config,
            init_flags,
            conn: ConnState {
                initialized: AtomicBool::new(false),
                minor: AtomicU32::new(0),
                flags: AtomicU64::new(0),
                max_write: AtomicU32::new(0),
                max_read: AtomicU32::new(0),
                max_readahead: AtomicU32::new(0),
                max_pages: AtomicU32::new(0),
            },
            buffers: spin::Mutex::new(buffers),
        };
        Ok(Session {
            core: Arc::new(core),
            fs: Arc::new(fs),
        })
    }

    /// The plan in force.
    pub fn plan(&self) -> &Plan {
        &self.core.plan
    }

    /// The configuration it was made from.
    pub fn config(&self) -> &Config {
        &self.core.config
    }

    /// The slab backing actually obtained (verified, not assumed).
    pub fn backing(&self) -> Backing {
        self.core.pool.slab().backing()
    }

    /// Whether the slab is locked in memory.
    pub fn lock_status(&self) -> LockStatus {
        self.core.pool.slab().lock_status()
    }

    /// Bytes mapped for the slab (blocks plus the pool's metadata).
    pub fn mapped_bytes(&self) -> usize {
        self.core.pool.slab().mapped_bytes()
    }

    /// The filesystem.
    pub fn filesystem(&self) -> &Arc<F> {
        &self.fs
    }

    /// What INIT agreed, once it has.
    pub fn conn(&self) -> Option<ConnInfo> {
        self.core.conn_info()
    }

    /// Counters summed over workers and deferred replies.
    pub fn stats(&self) -> Stats {
        let mut s = Stats::default();
        for c in self.core.counters.iter() {
            c.add_to(&mut s);
        }
        self.core.shared_counters.add_to(&mut s);
        s
    }

    /// The block pool's numbers.
    pub fn pool_stats(&self) -> PoolStats {
        self.core.pool.stats()
    }

    /// Fills all memory that holds no live message — every free pool block
    /// and the receive buffers not yet handed to a worker — with `byte`.
    ///
    /// A diagnostic for the proof that no reply carries bytes its request
    /// did not produce: fill with a canary before [`workers`](Self::workers),
    /// then look for the canary in replies. It takes every free block for a
    /// moment, so it raises the pool's high-water mark to the total; never
    /// call it on a serving session.
    pub fn fill_unused_memory(&self, byte: u8) {
        for buffer in self.core.buffers.lock().iter_mut().flatten() {
            buffer.fill(&self.core.pool, byte);
        }
        let stats = self.core.pool.stats();
        if let Ok(free) = self
            .core
            .pool
            .acquire_many(stats.blocks_total - stats.in_use)
        {
            for mut block in free {
                block.as_mut_slice().fill(byte);
            }
        }
    }

    /// Deferred replies outstanding now.
    pub fn deferred_outstanding(&self) -> usize {
        self.core
            .deferred
            .iter()
            .filter(|s| s.busy.load(Acquire))
            .count()
    }

    /// The workers, one per planned worker; each call hands out the ones
    /// not yet taken.
    pub fn workers(&self) -> Vec<Worker<F>> {
        let mut out = Vec::new();
        let mut buffers = self.core.buffers.lock();
        for (index, slot) in buffers.iter_mut().enumerate() {
            if let Some(buffer) = slot.take() {
                // The first worker polls, if asked to and if its channel
                // can; the others sleep in blocking reads, so at most one
                // core is ever busy waiting.
                let poll_ns = match self.core.config.poll_ns {
                    0 => 0,
                    ns if index == 0 && self.core.channels[0].enable_polling().is_ok() => ns,
                    _ => 0,
                };
                out.push(Worker {
                    core: Arc::clone(&self.core),
                    fs: Arc::clone(&self.fs),
                    index,
                    buffer: Some(buffer),
                    scratch: Box::new([0; NAME_SCRATCH_BYTES]),
                    poll_ns,
                    last_served_ns: 0,
                });
            }
        }
        out
    }
}

/// Why a worker stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum WorkerExit {
    /// The filesystem was unmounted (`ENODEV`) or the channel closed.
    Unmounted,
    /// The connection was aborted (through fusectl: every read answers
    /// `ECONNABORTED`).
    Aborted,
    /// The kernel refused INIT's terms; the session cannot serve.
    Refused,
}

/// After a read answered `ECONNABORTED`: was the connection aborted, or
/// unmounted? The kernel answers `ECONNABORTED` also to a read that was
/// taking a request off the queue when a plain unmount shut the connection
/// down (`fuse_dev_do_read` finds its processing queue disconnected), so
/// one such answer proves nothing. Once the connection is down every read
/// returns at once, and says which it was: `ENODEV` after an unmount,
/// `ECONNABORTED` after an abort through fusectl. No request can be taken
/// by these reads: a disconnected queue hands out none.
fn settle_abort(channel: &dyn Channel, iov: &mut [IoSliceMut<'_>]) -> WorkerExit {
    // A blocking read waits for the shutdown to finish; a polling one may
    // see EAGAIN for the few microseconds it takes: retry that long.
    for _ in 0..1000 {
        match channel.receive(iov) {
            Ok(0) | Err(Errno::NODEV) => return WorkerExit::Unmounted,
            // Still shutting down (or a polling channel with nothing yet).
            Err(Errno::CONNABORTED | Errno::INTR | Errno::AGAIN) => {}
            Ok(_) | Err(_) => return WorkerExit::Unmounted,
        }
    }
    WorkerExit::Aborted
}

/// One worker: a channel, a receive buffer, a name scratch.
pub struct Worker<F: Filesystem> {
    core: Arc<Core>,
    fs: Arc<F>,
    index: usize,
    buffer: Option<RecvBuffer>,
    scratch: Box<[u8; NAME_SCRATCH_BYTES]>,
    /// Keep reading without sleeping this long after a request (0: never).
    poll_ns: u64,
    /// When this worker last finished a request (monotonic ns).
    last_served_ns: u64,
}

impl<F: Filesystem> Drop for Worker<F> {
    fn drop(&mut self) {
        // Every block comes back, however the worker ended.
        if let Some(b) = self.buffer.take() {
            b.release(&self.core.pool);
        }
    }
}

impl<F: Filesystem> Worker<F> {
    /// This worker's index (its channel and counters).
    pub fn index(&self) -> usize {
        self.index
    }

    /// Serves until the filesystem is unmounted. Allocates nothing.
    ///
    /// Errors are the channel's own failures other than the protocol's
    /// expected ones (`EINTR` retried, `ENODEV` = unmounted).
    pub fn run(&mut self) -> Result<WorkerExit, Errno> {
        loop {
            if let Some(exit) = self.serve_one()? {
                return Ok(exit);
            }
        }
    }

    /// Reads and answers one message. `Ok(Some(_))` when the worker should
    /// stop; `Ok(None)` to go on.
    pub fn serve_one(&mut self) -> Result<Option<WorkerExit>, Errno> {
        let Worker {
            core,
            fs,
            index,
            buffer,
            scratch,
            poll_ns,
            last_served_ns,
        } = self;
        let Some(buffer) = buffer.as_mut() else {
            return Ok(Some(WorkerExit::Unmounted));
        };
        let core: &Arc<Core> = core;
        let channel = &*core.channels[*index];
        let received = {
            let mut iov: heapless::Vec<IoSliceMut<'_>, MAX_RECV_IOVECS> = heapless::Vec::new();
            buffer.iovecs(&core.pool, &mut iov);
            let result = if *poll_ns == 0 {
                channel.receive(&mut iov)
            } else {
                receive_polling(channel, &mut iov, *last_served_ns + *poll_ns)
            };
            match result {
                Ok(0) => return Ok(Some(WorkerExit::Unmounted)),
                Ok(n) => n,
                Err(Errno::INTR | Errno::AGAIN) => return Ok(None),
                Err(Errno::NODEV) => return Ok(Some(WorkerExit::Unmounted)),
                Err(Errno::CONNABORTED) => return Ok(Some(settle_abort(channel, &mut iov))),
                Err(e) => return Err(e),
            }
        };
        let counters = &core.counters[*index];
        let mut segments: heapless::Vec<&[u8], MAX_RECV_IOVECS> = heapless::Vec::new();
        let dest = buffer.split(&core.pool, received, &mut segments);
        let ctx = core.parse_context();
        let outcome = match parse::parse(&segments, received, &ctx, &mut scratch[..]) {
            Ok((header, op)) => {
                let route = WorkerRoute {
                    core,
                    channel: *index,
                    counters,
                    dest,
                };
                dispatch(&**fs, core, counters, header, op, route)
            }
            Err(failure) => {
                counters.malformed();
                if let (Some(h), true) = (failure.header, failure.wants_reply()) {
                    send_error(channel, h.unique, failure.reason.errno(), counters);
                }
                Ok(None)
            }
        };
        if *poll_ns > 0 {
            *last_served_ns = monotonic_ns();
        }
        outcome
    }
}

/// Nanoseconds on the monotonic clock (the vDSO: no system call).
fn monotonic_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    (t.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(t.tv_nsec as u64)
}

/// One read for a polling worker: retries non-blocking reads until
/// `spin_until_ns`, then sleeps until a message is waiting.
fn receive_polling(
    channel: &dyn Channel,
    iov: &mut [IoSliceMut<'_>],
    spin_until_ns: u64,
) -> Result<usize, Errno> {
    loop {
        match channel.try_receive(iov) {
            Err(Errno::AGAIN) => {}
            other => return other,
        }
        if monotonic_ns() < spin_until_ns {
            core::hint::spin_loop();
        } else {
            channel.wait_readable()?;
        }
    }
}

/// Answers `unique` with `errno` outside any reply object.
fn send_error(channel: &dyn Channel, unique: u64, errno: Errno, counters: &Counters) {
    let h = abi::fuse_out_header {
        len: 16,
        error: -errno.raw_os_error(),
        unique,
    };
    match channel.send(&[rustix::io::IoSlice::new(h.as_bytes())]) {
        Ok(_) => {}
        Err(Errno::NOENT) => counters.reply_to_interrupted(),
        Err(_) => counters.reply_error(),
    }
}

/// Calls the filesystem for one parsed request.
fn dispatch<F: Filesystem>(
    fs: &F,
    core: &Arc<Core>,
    counters: &Counters,
    header: abi::fuse_in_header,
    op: Operation<'_>,
    route: WorkerRoute<'_>,
) -> Result<Option<WorkerExit>, Errno> {
    let req = Request {
        unique: RequestId(header.unique),
        node: NodeId(header.nodeid),
        uid: header.uid,
        gid: header.gid,
        pid: header.pid,
    };
    let opcode = match Opcode::from_raw(header.opcode) {
        Some(o) => o,
        None => {
            counters.unknown_opcode();
            send_error(
                &*core.channels[route.channel],
                header.unique,
                Errno::NOSYS,
                counters,
            );
            return Ok(None);
        }
    };
    counters.request(opcode);
    let initialized = core.conn.initialized.load(Acquire);
    if !initialized && !matches!(op, Operation::Init(_)) {
        // Only INIT may come first; anything else is a protocol violation.
        counters.malformed();
        if parse::wants_reply(header.opcode) {
            send_error(
                &*core.channels[route.channel],
                header.unique,
                Errno::IO,
                counters,
            );
        }
        return Ok(None);
    }
    if let Operation::Init(init_in) = op {
        return handle_init(fs, core, counters, header, &init_in, route);
    }
    let rc = || ReplyCore::new(header.unique, opcode, route);
    let _replied: Replied = match op {
        Operation::Init(_) => return Ok(None),
        Operation::Destroy => {
            fs.destroy();
            ReplyEmpty::new(rc()).ok()
        }
        Operation::Interrupt(i) => {
            counters.interrupt_delivered();
            core.mark_interrupted(i.target.0);
            fs.interrupt(&req, i);
            return Ok(None);
        }
        Operation::Forget(f) => {
            fs.forget(&req, f);
            return Ok(None);
        }
        Operation::BatchForget(b) => {
            fs.batch_forget(&req, b);
            return Ok(None);
        }
        Operation::Lookup(a) => fs.lookup(&req, a, ReplyEntry::new(rc())),
        Operation::GetAttr(a) => fs.getattr(&req, a, ReplyAttr::new(rc())),
        Operation::SetAttr(a) => fs.setattr(&req, a, ReplyAttr::new(rc())),
        Operation::ReadLink(a) => fs.readlink(&req, a, ReplyData::new(rc(), parse::SYMLINK_MAX)),
        Operation::Symlink(a) => fs.symlink(&req, a, ReplyEntry::new(rc())),
        Operation::MkNod(a) => fs.mknod(&req, a, ReplyEntry::new(rc())),
        Operation::MkDir(a) => fs.mkdir(&req, a, ReplyEntry::new(rc())),
        Operation::Unlink(a) => fs.unlink(&req, a, ReplyEmpty::new(rc())),
        Operation::RmDir(a) => fs.rmdir(&req, a, ReplyEmpty::new(rc())),
        Operation::Rename(a) => fs.rename(&req, a, ReplyEmpty::new(rc())),
        Operation::Link(a) => fs.link(&req, a, ReplyEntry::new(rc())),
        Operation::Open(a) => fs.open(&req, a, ReplyOpen::new(rc())),
        Operation::Read(a) => fs.read(&req, a, ReplyData::new(rc(), a.size as usize)),
        Operation::Write(a) => {
            counters.write_served(a.data.len());
            fs.write(&req, a, ReplyWrite::new(rc(), false))
        }
        Operation::StatFs(a) => fs.statfs(&req, a, ReplyStatfs::new(rc())),
        Operation::Release(a) => fs.release(&req, a, ReplyEmpty::new(rc())),
        Operation::Fsync(a) => fs.fsync(&req, a, ReplyEmpty::new(rc())),
        Operation::SetXattr(a) => fs.setxattr(&req, a, ReplyEmpty::new(rc())),
        Operation::GetXattr(a) => fs.getxattr(&req, a, ReplyXattr::new(rc(), a.size)),
        Operation::ListXattr(a) => fs.listxattr(&req, a, ReplyXattr::new(rc(), a.size)),
        Operation::RemoveXattr(a) => fs.removexattr(&req, a, ReplyEmpty::new(rc())),
        Operation::Flush(a) => fs.flush(&req, a, ReplyEmpty::new(rc())),
        Operation::OpenDir(a) => fs.opendir(&req, a, ReplyOpen::new(rc())),
        Operation::ReadDir(a) => fs.readdir(&req, a, ReplyDirectory::new(rc(), a.size as usize)),
        Operation::ReadDirPlus(a) => {
            fs.readdirplus(&req, a, ReplyDirectoryPlus::new(rc(), a.size as usize))
        }
        Operation::ReleaseDir(a) => fs.releasedir(&req, a, ReplyEmpty::new(rc())),
        Operation::FsyncDir(a) => fs.fsyncdir(&req, a, ReplyEmpty::new(rc())),
        Operation::Access(a) => fs.access(&req, a, ReplyEmpty::new(rc())),
        Operation::Create(a) => fs.create(&req, a, ReplyCreate::new(rc())),
        Operation::Fallocate(a) => fs.fallocate(&req, a, ReplyEmpty::new(rc())),
        Operation::Lseek(a) => fs.lseek(&req, a, ReplyLseek::new(rc())),
        Operation::CopyFileRange { mut args, wide } => {
            if !wide {
                // The narrow reply counts in a u32: never ask for more.
                args.len = args.len.min(u64::from(u32::MAX));
            }
            fs.copy_file_range(&req, args, ReplyWrite::new(rc(), wide))
        }
        Operation::TmpFile(a) => fs.tmpfile(&req, a, ReplyCreate::new(rc())),
        Operation::SyncFs(a) => fs.syncfs(&req, a, ReplyEmpty::new(rc())),
        Operation::Unsupported(_) | Operation::Unknown(_) => {
            ReplyEmpty::new(rc()).error(Errno::NOSYS)
        }
    };
    Ok(None)
}

/// Answers INIT, records what was agreed and tells the filesystem.
fn handle_init<F: Filesystem>(
    fs: &F,
    core: &Arc<Core>,
    counters: &Counters,
    header: abi::fuse_in_header,
    init_in: &abi::fuse_init_in,
    route: WorkerRoute<'_>,
) -> Result<Option<WorkerExit>, Errno> {
    let channel = &*core.channels[route.channel];
    if core.conn.initialized.load(Acquire) {
        // A second INIT on a live connection is a protocol violation.
        counters.malformed();
        send_error(channel, header.unique, Errno::IO, counters);
        return Ok(None);
    }
    let reply = init::negotiate(
        init_in,
        &core.plan,
        core.init_flags,
        core.config.max_readahead,
        core.config.max_background,
    );
    let mut rc = ReplyCore::new(header.unique, Opcode::FUSE_INIT, route);
    match reply {
        InitReply::Agreed { out, len, conn } => {
            let c = &core.conn;
            c.minor.store(conn.minor, Relaxed);
            c.flags.store(conn.flags, Relaxed);
            c.max_write.store(conn.max_write, Relaxed);
            c.max_read.store(conn.max_read, Relaxed);
            c.max_readahead.store(conn.max_readahead, Relaxed);
            c.max_pages.store(u32::from(conn.max_pages), Relaxed);
            // The filesystem is ready before the kernel may send anything
            // else (it waits for this reply).
            fs.init(&conn);
            // Release: pairs with the Acquire loads of `initialized` (and the
            // flags read after it) on every worker.
            c.initialized.store(true, Release);
            let bytes = out.as_bytes();
            let _ = rc.send_init(&bytes[..len.min(bytes.len())]);
            crate::log_info!("INIT agreed: {}", conn);
            Ok(None)
        }
        InitReply::RetryWithOurMajor { out } => {
            let _ = rc.send_init(&out.as_bytes()[..abi::FUSE_COMPAT_INIT_OUT_SIZE]);
            Ok(None)
        }
        InitReply::Refused { errno, reason } => {
            // The reason is for the log only (nothing without `defmt`).
            #[cfg(not(feature = "defmt"))]
            let _ = reason;
            crate::log_warn!("INIT refused: {}", reason);
            let _ = ReplyEmpty::new(rc).error(errno);
            Ok(Some(WorkerExit::Refused))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::io::IoSlice;

    /// A channel whose reads answer a fixed script, then `ENODEV`.
    struct Scripted {
        script: &'static [Errno],
        next: AtomicUsize,
    }

    impl Channel for Scripted {
        fn receive(&self, _bufs: &mut [IoSliceMut<'_>]) -> Result<usize, Errno> {
            let i = self.next.fetch_add(1, Relaxed);
            Err(self.script.get(i).copied().unwrap_or(Errno::NODEV))
        }
        fn send(&self, bufs: &[IoSlice<'_>]) -> Result<usize, Errno> {
            Ok(bufs.iter().map(|b| b.len()).sum())
        }
        fn clone_channel(&self) -> Result<Box<dyn Channel>, Errno> {
            Err(Errno::NOTSUP)
        }
    }

    fn settle(script: &'static [Errno]) -> (WorkerExit, usize) {
        let channel = Scripted {
            script,
            next: AtomicUsize::new(0),
        };
        let exit = settle_abort(&channel, &mut []);
        (exit, channel.next.load(Relaxed))
    }

    #[test]
    fn econnaborted_racing_an_unmount_is_an_unmount() {
        // The unmount's shutdown caught a read mid-request; the next read
        // says ENODEV.
        assert_eq!(settle(&[]), (WorkerExit::Unmounted, 1));
        assert_eq!(
            settle(&[Errno::AGAIN, Errno::CONNABORTED]),
            (WorkerExit::Unmounted, 3)
        );
    }

    #[test]
    fn econnaborted_on_every_read_is_an_abort() {
        const ALWAYS: [Errno; 1000] = [Errno::CONNABORTED; 1000];
        assert_eq!(settle(&ALWAYS), (WorkerExit::Aborted, 1000));
    }
}
