//! A simulated kernel: the runtime served over a `SOCK_SEQPACKET` socket
//! pair instead of `/dev/fuse`.
//!
//! The daemon's end is a [`SimChannel`] (a [`Channel`]), the test's end a
//! [`SimKernel`]. Like `/dev/fuse`, a seqpacket socket delivers one whole
//! message per read. The channel keeps the kernel's rules that a socket does
//! not: a read must offer at least `max(8 KiB, 80 + max_write)` bytes or it
//! fails with `EINVAL` (`max_write` is learned from the INIT reply, 4 KiB
//! before it, as in `fs/fuse/dev.c`), and a reply must be one whole message
//! whose header `len` matches what was written. The kernel side numbers
//! requests with even ids and interrupts with odd ones, as the kernel does.
//!
//! A socket cannot carry a 16 MiB message in one piece (the kernel builds
//! each seqpacket message in one allocation, at most a few MiB), so messages
//! above [`SOCKET_MESSAGE_MAX`] travel through a queue both ends share while
//! the socket carries a token in their place: still one whole message per
//! read, in the order sent.
//!
//! [`FaultyChannel`] wraps any channel and injects, from a seeded generator,
//! what a real connection can do to a daemon: `EINTR` on reads, a message
//! cut short, `ENOENT` on replies (request interrupted meanwhile) and
//! `ENODEV` (unmounted) mid-flight. Every run replays from its seed.

use std::collections::VecDeque;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustix::io::{Errno, IoSlice, IoSliceMut};
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};
use slabfuse::abi::{self, Opcode};
use slabfuse::channel::Channel;
use zerocopy::{FromBytes, IntoBytes};

use crate::Rng;

thread_local! {
    /// Set while a thread runs the simulated kernel's side of a channel
    /// call: allocation-counting proofs exclude those allocations, which
    /// stand for the kernel's own work.
    static IN_KERNEL: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this thread is inside the simulated kernel right now.
pub fn in_kernel() -> bool {
    IN_KERNEL.try_with(|k| k.get()).unwrap_or(true)
}

/// Marks the current thread as running kernel code until dropped.
struct KernelSection;

impl KernelSection {
    fn enter() -> KernelSection {
        IN_KERNEL.with(|k| k.set(true));
        KernelSection
    }
}

impl Drop for KernelSection {
    fn drop(&mut self) {
        IN_KERNEL.with(|k| k.set(false));
    }
}

/// Largest message sent through the socket itself; larger ones go through
/// the shared queue.
pub const SOCKET_MESSAGE_MAX: usize = 1 << 20;
/// The token standing for a queued large message.
const BIG_TOKEN: &[u8; 8] = b"SIM-BIG!";

/// Large messages in flight, one queue per direction.
#[derive(Default)]
struct BigQueues {
    to_daemon: Mutex<VecDeque<Vec<u8>>>,
    to_kernel: Mutex<VecDeque<Vec<u8>>>,
}

/// The daemon's end of the simulated connection.
pub struct SimChannel {
    fd: Arc<OwnedFd>,
    big: Arc<BigQueues>,
    /// `max_write` as the kernel knows it (4 KiB until INIT is answered).
    max_write: Arc<AtomicU32>,
    /// Reads refused with EINVAL for offering too little.
    short_reads: Arc<AtomicU64>,
    /// The id of the last INIT request read (its reply sets `max_write`).
    init_unique: Arc<AtomicU64>,
}

impl SimChannel {
    fn min_read(&self) -> usize {
        (abi::FUSE_MIN_READ_BUFFER).max(80 + self.max_write.load(Ordering::Acquire) as usize)
    }

    /// One read, with `flags` (`DONTWAIT` for a polled read).
    fn receive_with(&self, bufs: &mut [IoSliceMut<'_>], flags: RecvFlags) -> Result<usize, Errno> {
        let _kernel = KernelSection::enter();
        let offered: usize = bufs.iter().map(|b| b.len()).sum();
        if offered < self.min_read() {
            self.short_reads.fetch_add(1, Ordering::Relaxed);
            return Err(Errno::INVAL);
        }
        loop {
            match rustix::net::recvmsg(
                self.fd.as_fd(),
                bufs,
                &mut rustix::net::RecvAncillaryBuffer::default(),
                flags,
            ) {
                Ok(r) => {
                    if r.flags.contains(rustix::net::ReturnFlags::TRUNC) {
                        // The kernel would never do this: the message was
                        // bigger than the buffer. Report it as the kernel
                        // does for an oversize request (it fails the request
                        // and the read goes on); here: a test bug.
                        panic!("simulated message larger than the receive buffer");
                    }
                    let mut bytes = r.bytes;
                    if bytes == BIG_TOKEN.len() && bufs[0].len() >= 8 && &bufs[0][..8] == BIG_TOKEN
                    {
                        let msg = self.big.to_daemon.lock().expect("queue").pop_front();
                        let msg = msg.expect("a queued message for every token");
                        assert!(
                            msg.len() <= offered,
                            "simulated message larger than the buffer"
                        );
                        let mut done = 0;
                        for b in bufs.iter_mut() {
                            let n = b.len().min(msg.len() - done);
                            b[..n].copy_from_slice(&msg[done..done + n]);
                            done += n;
                        }
                        bytes = msg.len();
                    }
                    let r_bytes = bytes;
                    let mut head = [0u8; 40];
                    let mut filled = 0;
                    for b in bufs.iter() {
                        let n = b.len().min(40 - filled).min(r_bytes - filled);
                        head[filled..filled + n].copy_from_slice(&b[..n]);
                        filled += n;
                        if filled == 40 || filled == r_bytes {
                            break;
                        }
                    }
                    if let Ok(h) = abi::fuse_in_header::read_from_bytes(&head[..])
                        && filled == 40
                        && h.opcode == Opcode::FUSE_INIT as u32
                    {
                        self.init_unique.store(h.unique, Ordering::Release);
                    }
                    return Ok(r_bytes);
                }
                Err(Errno::INTR) => continue,
                // The test kernel closed its end: the filesystem is gone.
                Err(Errno::CONNRESET) => return Err(Errno::NODEV),
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads refused because the buffer was smaller than the kernel allows.
    pub fn short_reads(&self) -> u64 {
        self.short_reads.load(Ordering::Relaxed)
    }
}

impl Channel for SimChannel {
    fn receive(&self, bufs: &mut [IoSliceMut<'_>]) -> Result<usize, Errno> {
        self.receive_with(bufs, RecvFlags::empty())
    }

    fn enable_polling(&self) -> Result<(), Errno> {
        Ok(())
    }

    fn try_receive(&self, bufs: &mut [IoSliceMut<'_>]) -> Result<usize, Errno> {
        self.receive_with(bufs, RecvFlags::DONTWAIT)
    }

    fn wait_readable(&self) -> Result<(), Errno> {
        let _kernel = KernelSection::enter();
        let mut pfd = [rustix::event::PollFd::new(
            &*self.fd,
            rustix::event::PollFlags::IN,
        )];
        match rustix::event::poll(&mut pfd, None) {
            Ok(_) | Err(Errno::INTR) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn send(&self, bufs: &[IoSlice<'_>]) -> Result<usize, Errno> {
        let _kernel = KernelSection::enter();
        // Learn max_write from the INIT reply, as the kernel does.
        let mut head = [0u8; 16 + 24];
        let mut filled = 0;
        for b in bufs {
            let n = b.len().min(head.len() - filled);
            head[filled..filled + n].copy_from_slice(&b[..n]);
            filled += n;
            if filled == head.len() {
                break;
            }
        }
        if let Ok((h, rest)) = abi::fuse_out_header::read_from_prefix(&head[..filled]) {
            let init = self.init_unique.load(Ordering::Acquire);
            if h.error == 0 && init != 0 && h.unique == init && rest.len() >= 24 {
                let max_write = u32::from_ne_bytes([rest[20], rest[21], rest[22], rest[23]]);
                self.max_write.store(max_write.max(4096), Ordering::Release);
            }
        }
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let token_iov = [IoSlice::new(BIG_TOKEN)];
        let to_send: &[IoSlice<'_>] = if total > SOCKET_MESSAGE_MAX {
            let mut msg = Vec::with_capacity(total);
            for b in bufs {
                msg.extend_from_slice(b);
            }
            self.big.to_kernel.lock().expect("queue").push_back(msg);
            &token_iov
        } else {
            bufs
        };
        match rustix::net::sendmsg(
            self.fd.as_fd(),
            to_send,
            &mut rustix::net::SendAncillaryBuffer::default(),
            SendFlags::NOSIGNAL,
        ) {
            Ok(_) => Ok(total),
            Err(Errno::PIPE | Errno::CONNRESET) => Err(Errno::NODEV),
            Err(e) => Err(e),
        }
    }

    fn clone_channel(&self) -> Result<Box<dyn Channel>, Errno> {
        Ok(Box::new(SimChannel {
            fd: Arc::clone(&self.fd),
            big: Arc::clone(&self.big),
            max_write: Arc::clone(&self.max_write),
            short_reads: Arc::clone(&self.short_reads),
            init_unique: Arc::clone(&self.init_unique),
        }))
    }
}

/// One reply as the simulated kernel received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimReply {
    /// `fuse_out_header.unique`.
    pub unique: u64,
    /// `fuse_out_header.error` (0 or a negative errno).
    pub error: i32,
    /// Everything after the header.
    pub payload: Vec<u8>,
}

impl SimReply {
    /// The payload as a `T` (the whole payload must be exactly a `T`).
    pub fn parse<T: FromBytes>(&self) -> T {
        T::read_from_bytes(&self.payload)
            .unwrap_or_else(|_| panic!("payload is {} bytes", self.payload.len()))
    }

    /// The errno of an error reply.
    pub fn errno(&self) -> Option<Errno> {
        (self.error != 0).then(|| Errno::from_raw_os_error(-self.error))
    }
}

/// The test's end: sends requests, receives replies.
pub struct SimKernel {
    fd: OwnedFd,
    big: Arc<BigQueues>,
    next_unique: u64,
    /// Replies received while waiting for another one.
    pending: VecDeque<SimReply>,
    /// Credentials put in request headers.
    pub uid: u32,
    /// See `uid`.
    pub gid: u32,
    /// See `uid`.
    pub pid: u32,
}

/// Creates a connected pair: the daemon's channel and the test's kernel.
pub fn pair() -> (SimChannel, SimKernel) {
    let (a, b) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .expect("socketpair");
    let big = Arc::new(BigQueues::default());
    // Room for several 1 MiB messages in flight (the default buffer holds
    // about 200 KiB; only CAP_NET_ADMIN may force more, so try both).
    for fd in [&a, &b] {
        use rustix::net::sockopt::*;
        if set_socket_send_buffer_size_force(fd, 8 << 20).is_err() {
            let _ = set_socket_send_buffer_size(fd, 8 << 20);
        }
        if set_socket_recv_buffer_size_force(fd, 8 << 20).is_err() {
            let _ = set_socket_recv_buffer_size(fd, 8 << 20);
        }
    }
    (
        SimChannel {
            fd: Arc::new(a),
            big: Arc::clone(&big),
            max_write: Arc::new(AtomicU32::new(4096)),
            short_reads: Arc::new(AtomicU64::new(0)),
            init_unique: Arc::new(AtomicU64::new(0)),
        },
        SimKernel {
            fd: b,
            big,
            next_unique: 0,
            pending: VecDeque::new(),
            uid: 1000,
            gid: 1000,
            pid: 4242,
        },
    )
}

impl SimKernel {
    /// The next even request id.
    fn next_unique(&mut self) -> u64 {
        self.next_unique += 2;
        self.next_unique
    }

    /// A request header for `opcode` with `args_len` bytes of arguments.
    pub fn header(&mut self, opcode: Opcode, nodeid: u64, args_len: usize) -> abi::fuse_in_header {
        abi::fuse_in_header {
            len: (40 + args_len) as u32,
            opcode: opcode as u32,
            unique: self.next_unique(),
            nodeid,
            uid: self.uid,
            gid: self.gid,
            pid: self.pid,
            total_extlen: 0,
            padding: 0,
        }
    }

    /// Sends raw bytes as one message.
    pub fn send_raw(&self, bytes: &[u8]) {
        self.send_vectored(&[bytes]);
    }

    /// Sends slices as one message.
    pub fn send_vectored(&self, parts: &[&[u8]]) {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if total > SOCKET_MESSAGE_MAX {
            self.big
                .to_daemon
                .lock()
                .expect("queue")
                .push_back(parts.concat());
            self.send_vectored(&[BIG_TOKEN]);
            return;
        }
        let iov: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
        let n = rustix::net::sendmsg(
            &self.fd,
            &iov,
            &mut rustix::net::SendAncillaryBuffer::default(),
            SendFlags::NOSIGNAL,
        )
        .expect("send to daemon");
        assert_eq!(n, parts.iter().map(|p| p.len()).sum::<usize>());
    }

    /// Sends a request with `args` (already encoded); returns its id.
    pub fn request(&mut self, opcode: Opcode, nodeid: u64, args: &[&[u8]]) -> u64 {
        let len: usize = args.iter().map(|a| a.len()).sum();
        let h = self.header(opcode, nodeid, len);
        let mut parts: Vec<&[u8]> = vec![h.as_bytes()];
        parts.extend_from_slice(args);
        self.send_vectored(&parts);
        h.unique
    }

    /// Sends an INTERRUPT for `target` (odd id, as the kernel does).
    pub fn interrupt(&mut self, target: u64) {
        let arg = abi::fuse_interrupt_in { unique: target };
        let h = abi::fuse_in_header {
            len: 48,
            opcode: Opcode::FUSE_INTERRUPT as u32,
            unique: target | abi::FUSE_INT_REQ_BIT,
            ..Default::default()
        };
        self.send_vectored(&[h.as_bytes(), arg.as_bytes()]);
    }

    /// Receives the next reply (any request), waiting up to `timeout`.
    pub fn next_reply(&mut self, timeout: Duration) -> Option<SimReply> {
        if let Some(r) = self.pending.pop_front() {
            return Some(r);
        }
        self.recv_one(timeout)
    }

    fn recv_one(&mut self, timeout: Duration) -> Option<SimReply> {
        let deadline = Instant::now() + timeout;
        let mut buf = vec![0u8; SOCKET_MESSAGE_MAX + 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ms = left.as_millis().min(i32::MAX as u128) as i32;
            let mut pfd = [rustix::event::PollFd::new(
                &self.fd,
                rustix::event::PollFlags::IN,
            )];
            let ts = rustix::time::Timespec {
                tv_sec: (ms / 1000) as i64,
                tv_nsec: ((ms % 1000) * 1_000_000) as i64,
            };
            match rustix::event::poll(&mut pfd, Some(&ts)) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(Errno::INTR) => continue,
                Err(e) => panic!("poll: {e}"),
            }
            let n = match rustix::io::read(&self.fd, &mut buf) {
                Ok(0) => return None,
                Ok(n) => n,
                Err(Errno::INTR | Errno::AGAIN) => continue,
                Err(Errno::CONNRESET) => return None,
                Err(e) => panic!("read reply: {e}"),
            };
            let big;
            let msg: &[u8] = if n == BIG_TOKEN.len() && &buf[..8] == BIG_TOKEN {
                big = self
                    .big
                    .to_kernel
                    .lock()
                    .expect("queue")
                    .pop_front()
                    .expect("queued reply");
                &big
            } else {
                &buf[..n]
            };
            let n = msg.len();
            let (h, rest) = abi::fuse_out_header::read_from_prefix(msg)
                .unwrap_or_else(|_| panic!("reply of {n} bytes has no header"));
            assert_eq!(
                h.len as usize, n,
                "reply header len must equal the bytes written"
            );
            assert!(
                h.error <= 0 && h.error > -4096,
                "error {} out of range",
                h.error
            );
            return Some(SimReply {
                unique: h.unique,
                error: h.error,
                payload: rest.to_vec(),
            });
        }
    }

    /// Receives the reply to `unique`, keeping others for later.
    pub fn reply_to(&mut self, unique: u64, timeout: Duration) -> Option<SimReply> {
        if let Some(i) = self.pending.iter().position(|r| r.unique == unique) {
            return self.pending.remove(i);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let r = self.recv_one(left)?;
            if r.unique == unique {
                return Some(r);
            }
            self.pending.push_back(r);
        }
    }

    /// Like [`reply_to`](Self::reply_to) with a 10 s timeout, panicking on none.
    pub fn expect_reply(&mut self, unique: u64) -> SimReply {
        self.reply_to(unique, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("no reply to request {unique}"))
    }

    /// Asserts that no reply arrives within `wait`.
    pub fn expect_silence(&mut self, wait: Duration) {
        if let Some(r) = self.next_reply(wait) {
            panic!("unexpected reply {r:?}");
        }
    }

    /// INIT as a 7.45 kernel offering `flags`, with `max_readahead`; returns
    /// the daemon's `fuse_init_out`.
    pub fn init(&mut self, flags: u64) -> abi::fuse_init_out {
        self.init_with(45, flags)
    }

    /// INIT with a chosen minor version.
    pub fn init_with(&mut self, minor: u32, flags: u64) -> abi::fuse_init_out {
        let arg = abi::fuse_init_in {
            major: 7,
            minor,
            max_readahead: 1 << 20,
            flags: flags as u32,
            flags2: (flags >> 32) as u32,
            ..Default::default()
        };
        let unique = self.request(Opcode::FUSE_INIT, 0, &[arg.as_bytes()]);
        let r = self.expect_reply(unique);
        assert_eq!(r.error, 0, "INIT refused: {r:?}");
        r.parse()
    }

    /// Closes the kernel's end: the daemon's next read sees the filesystem
    /// gone.
    pub fn hang_up(self) {
        drop(self);
    }
}

/// Everything a modern kernel offers in INIT (what 6.18 sends).
pub const KERNEL_FLAGS: u64 = abi::FUSE_ASYNC_READ
    | abi::FUSE_POSIX_LOCKS
    | abi::FUSE_ATOMIC_O_TRUNC
    | abi::FUSE_EXPORT_SUPPORT
    | abi::FUSE_BIG_WRITES
    | abi::FUSE_DONT_MASK
    | abi::FUSE_SPLICE_WRITE
    | abi::FUSE_SPLICE_MOVE
    | abi::FUSE_SPLICE_READ
    | abi::FUSE_FLOCK_LOCKS
    | abi::FUSE_HAS_IOCTL_DIR
    | abi::FUSE_AUTO_INVAL_DATA
    | abi::FUSE_DO_READDIRPLUS
    | abi::FUSE_READDIRPLUS_AUTO
    | abi::FUSE_ASYNC_DIO
    | abi::FUSE_WRITEBACK_CACHE
    | abi::FUSE_NO_OPEN_SUPPORT
    | abi::FUSE_PARALLEL_DIROPS
    | abi::FUSE_HANDLE_KILLPRIV
    | abi::FUSE_POSIX_ACL
    | abi::FUSE_ABORT_ERROR
    | abi::FUSE_MAX_PAGES
    | abi::FUSE_CACHE_SYMLINKS
    | abi::FUSE_NO_OPENDIR_SUPPORT
    | abi::FUSE_EXPLICIT_INVAL_DATA
    | abi::FUSE_HANDLE_KILLPRIV_V2
    | abi::FUSE_SETXATTR_EXT
    | abi::FUSE_INIT_EXT
    | abi::FUSE_SECURITY_CTX
    | abi::FUSE_CREATE_SUPP_GROUP
    | abi::FUSE_HAS_EXPIRE_ONLY
    | abi::FUSE_DIRECT_IO_ALLOW_MMAP
    | abi::FUSE_PASSTHROUGH
    | abi::FUSE_NO_EXPORT_SUPPORT
    | abi::FUSE_HAS_RESEND
    | abi::FUSE_ALLOW_IDMAP
    | abi::FUSE_OVER_IO_URING
    | abi::FUSE_REQUEST_TIMEOUT;

/// What a [`FaultyChannel`] does, per mille of calls.
#[derive(Clone, Copy, Debug, Default)]
pub struct FaultPlan {
    /// A read fails with `EINTR` before reading (the worker must retry).
    pub eintr_per_mille: u64,
    /// A message arrives cut short by a few bytes (its `len` then lies).
    pub truncate_per_mille: u64,
    /// A reply fails with `ENOENT`, as when its request was interrupted.
    pub reply_enoent_per_mille: u64,
    /// After this many successful reads, every read fails `ENODEV`.
    pub unmount_after_reads: Option<u64>,
}

/// Wraps a channel and injects faults from a seeded generator.
pub struct FaultyChannel {
    inner: Box<dyn Channel>,
    plan: FaultPlan,
    rng: Arc<Mutex<Rng>>,
    reads: Arc<AtomicU64>,
    unmounted: Arc<AtomicBool>,
    /// Faults injected so far (all kinds).
    pub injected: Arc<AtomicU64>,
}

impl FaultyChannel {
    /// Wraps `inner`.
    pub fn new(inner: Box<dyn Channel>, plan: FaultPlan, seed: u64) -> FaultyChannel {
        FaultyChannel {
            inner,
            plan,
            rng: Arc::new(Mutex::new(Rng::new(seed))),
            reads: Arc::new(AtomicU64::new(0)),
            unmounted: Arc::new(AtomicBool::new(false)),
            injected: Arc::new(AtomicU64::new(0)),
        }
    }

    fn roll(&self, per_mille: u64) -> bool {
        per_mille > 0 && self.rng.lock().expect("rng").chance(per_mille, 1000)
    }

    fn count(&self) {
        self.injected.fetch_add(1, Ordering::Relaxed);
    }
}

impl Channel for FaultyChannel {
    fn receive(&self, bufs: &mut [IoSliceMut<'_>]) -> Result<usize, Errno> {
        if self.unmounted.load(Ordering::Acquire) {
            return Err(Errno::NODEV);
        }
        if let Some(limit) = self.plan.unmount_after_reads
            && self.reads.load(Ordering::Relaxed) >= limit
        {
            self.unmounted.store(true, Ordering::Release);
            self.count();
            return Err(Errno::NODEV);
        }
        if self.roll(self.plan.eintr_per_mille) {
            self.count();
            return Err(Errno::INTR);
        }
        let n = self.inner.receive(bufs)?;
        self.reads.fetch_add(1, Ordering::Relaxed);
        if n > 1 && self.roll(self.plan.truncate_per_mille) {
            self.count();
            let cut = 1 + self.rng.lock().expect("rng").below(n.min(48) as u64 - 1) as usize;
            return Ok(n - cut);
        }
        Ok(n)
    }

    fn send(&self, bufs: &[IoSlice<'_>]) -> Result<usize, Errno> {
        if self.roll(self.plan.reply_enoent_per_mille) {
            // The reply is lost as if the request had been interrupted; the
            // kernel side sees no reply at all.
            self.count();
            return Err(Errno::NOENT);
        }
        self.inner.send(bufs)
    }

    fn clone_channel(&self) -> Result<Box<dyn Channel>, Errno> {
        Ok(Box::new(FaultyChannel {
            inner: self.inner.clone_channel()?,
            plan: self.plan,
            rng: Arc::clone(&self.rng),
            reads: Arc::clone(&self.reads),
            unmounted: Arc::clone(&self.unmounted),
            injected: Arc::clone(&self.injected),
        }))
    }
}

/// Encodes a name with its NUL.
pub fn cstr(name: &[u8]) -> Vec<u8> {
    let mut v = name.to_vec();
    v.push(0);
    v
}
