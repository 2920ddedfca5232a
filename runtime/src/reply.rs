//! Replies: one typed object per request, consumed by exactly one answer.
//!
//! Every [`crate::Filesystem`] method that expects an answer gets a reply
//! object and must return [`Replied`], which only the reply's own methods
//! make: so a method cannot forget to answer, or answer twice, and compile.
//! Answers go out at once, in one `writev`: the 16-byte header and the fixed
//! reply struct from the stack, data from wherever it lives.
//!
//! Data replies ([`ReplyData`], [`ReplyXattr`]) are always vectored, one code
//! path: the filesystem either hands over slices of its own memory
//! ([`DataParts`], sent straight from there: no copy at all), or writes into
//! the free part of the worker's receive blocks through a [`DestWriter`]
//! (one copy, the filesystem's). Only bytes written are ever sent.
//!
//! Deferring: [`ReplyEntry::defer`] (and the same on every reply type) turns
//! a reply into one with `'static` lifetime that another thread may answer
//! later. It takes a deferred-reply slot and, for data replies, the pool
//! blocks its answer needs. When either is exhausted the request is answered
//! `EAGAIN` on the spot and `Err(Replied)` comes back: the worker goes on
//! serving and nothing was allocated. A deferred reply dropped unanswered is
//! answered `EIO` and counted, so the kernel never waits forever.

use alloc::sync::Arc;
use core::sync::atomic::Ordering::{Acquire, Relaxed};
use core::time::Duration;

use heapless::Vec;
use rustix::io::{Errno, IoSlice};
use zerocopy::IntoBytes;

use crate::abi::{self, Opcode};
use crate::buffer::{self, Dest, DestWriter, Full, MAX_MESSAGE_BLOCKS};
use crate::session::Core;
use crate::stats::Counters;
use crate::types::{Attr, Entry, FileHandle, FileType, RequestId, Statfs};

/// Most iovecs in one `writev` (`UIO_MAXIOV`).
pub const MAX_REPLY_IOVECS: usize = 1024;
/// Most slices a [`DataParts`] holds: the rest of a reply's iovecs after
/// its header and fixed struct.
pub const MAX_DATA_PARTS: usize = MAX_REPLY_IOVECS - 2;

/// Zeros that data replies point at for holes, so a hole costs no copy.
/// 16 KiB keeps it small in the static appliance image.
static ZEROS: [u8; 16 * 1024] = [0; 16 * 1024];

/// Proof that a request was answered, or handed to a deferred reply.
///
/// Only reply methods make one; a filesystem method returns it.
#[must_use = "return it from the Filesystem method: it proves the request was answered"]
#[derive(Debug)]
pub struct Replied {
    _private: (),
}

impl Replied {
    const fn new() -> Replied {
        Replied { _private: () }
    }
}

/// Slices of the filesystem's own memory that make up a data reply, sent
/// with no copy: each slice is one iovec of the reply's `writev`.
pub struct DataParts<'d> {
    parts: Vec<&'d [u8], MAX_DATA_PARTS>,
    len: usize,
}

impl Default for DataParts<'_> {
    fn default() -> Self {
        DataParts::new()
    }
}

impl<'d> DataParts<'d> {
    /// No parts.
    pub const fn new() -> DataParts<'d> {
        DataParts {
            parts: Vec::new(),
            len: 0,
        }
    }

    /// Total bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The slices, in order.
    pub fn slices(&self) -> &[&'d [u8]] {
        &self.parts
    }

    /// Empties the list.
    pub fn clear(&mut self) {
        self.parts.clear();
        self.len = 0;
    }

    /// Appends `bytes`. `Err(Full)` when no iovec is left: fall back to
    /// [`ReplyData::fill`]. Slices are not merged here (two adjacent slices
    /// may belong to different allocations); a filesystem that knows its
    /// storage is one region passes whole runs instead.
    pub fn push(&mut self, bytes: &'d [u8]) -> Result<(), Full> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.parts.push(bytes).map_err(|_| Full)?;
        self.len += bytes.len();
        Ok(())
    }

    /// Appends `count` zero bytes without copying (they point at a static
    /// zero page).
    pub fn push_zeros(&mut self, count: usize) -> Result<(), Full> {
        let mut left = count;
        while left > 0 {
            let n = left.min(ZEROS.len());
            self.parts.push(&ZEROS[..n]).map_err(|_| Full)?;
            self.len += n;
            left -= n;
        }
        Ok(())
    }
}

/// Where a reply goes, and what it may use.
pub(crate) struct ReplyCore<'w> {
    unique: u64,
    opcode: Opcode,
    route: Route<'w>,
}

enum Route<'w> {
    /// Answered by the worker that read the request.
    Worker(WorkerRoute<'w>),
    /// Answered later, from any thread.
    Deferred(DeferredRoute),
    /// Answered; nothing left to do on drop.
    Sent,
}

/// The worker's side of a synchronous reply.
pub(crate) struct WorkerRoute<'w> {
    pub(crate) core: &'w Arc<Core>,
    pub(crate) channel: usize,
    pub(crate) counters: &'w Counters,
    pub(crate) dest: Dest<'w>,
}

struct DeferredRoute {
    core: Arc<Core>,
    slot: usize,
}

/// One reply about to be written.
struct Message<'x> {
    unique: u64,
    opcode: Opcode,
    error: Option<Errno>,
    fixed: &'x [u8],
    payload: Payload<'x>,
}

impl Message<'_> {
    /// Builds the iovecs (header, fixed struct, data) and writes them with
    /// one `writev` on `channel`; counts the outcome.
    fn send_on(self, core: &Core, channel: usize, counters: &Counters, dest: &Dest<'_>) {
        let errno = self.error.map_or(0, |e| -e.raw_os_error());
        let mut header = abi::fuse_out_header {
            len: 0,
            error: errno,
            unique: self.unique,
        };
        let mut iov: Vec<IoSlice<'_>, MAX_REPLY_IOVECS> = Vec::new();
        // Slot 0 is the header, filled in once the length is known.
        let _ = iov.push(IoSlice::new(&[]));
        let mut built = true;
        let mut data_len = 0usize;
        if !self.fixed.is_empty() {
            built &= iov.push(IoSlice::new(self.fixed)).is_ok();
        }
        match self.payload {
            Payload::None => {}
            Payload::Parts(parts) => {
                for p in parts.iter().filter(|p| !p.is_empty()) {
                    built &= iov.push(IoSlice::new(p)).is_ok();
                    data_len += p.len();
                }
            }
            Payload::Dest(n) => {
                built &= buffer::dest_iovecs(dest, n, &mut iov).is_ok();
                data_len = n;
            }
        }
        let total = core::mem::size_of::<abi::fuse_out_header>() + self.fixed.len() + data_len;
        let channel = &*core.channels[channel];
        let result = match (built, u32::try_from(total)) {
            (true, Ok(len)) => {
                header.len = len;
                iov[0] = IoSlice::new(header.as_bytes());
                channel.send(&iov)
            }
            // More iovecs than one writev takes, or a length beyond u32: the
            // filesystem's mistake, and the kernel gets EIO instead.
            _ => {
                header.error = -Errno::IO.raw_os_error();
                header.len = 16;
                data_len = 0;
                channel.send(&[IoSlice::new(header.as_bytes())])
            }
        };
        match result {
            Ok(_) => {
                if header.error == 0 && self.opcode == Opcode::FUSE_READ {
                    counters.read_served(data_len);
                }
            }
            Err(Errno::NOENT) => counters.reply_to_interrupted(),
            Err(_) => counters.reply_error(),
        }
    }
}

/// What follows the fixed reply struct.
#[derive(Clone, Copy)]
enum Payload<'x> {
    None,
    Parts(&'x [&'x [u8]]),
    Dest(usize),
}

impl<'w> ReplyCore<'w> {
    pub(crate) fn new(unique: u64, opcode: Opcode, route: WorkerRoute<'w>) -> ReplyCore<'w> {
        ReplyCore {
            unique,
            opcode,
            route: Route::Worker(route),
        }
    }

    fn core(&self) -> Option<&Core> {
        match &self.route {
            Route::Worker(w) => Some(w.core),
            Route::Deferred(d) => Some(&d.core),
            Route::Sent => None,
        }
    }

    fn counters(&self) -> Option<&Counters> {
        match &self.route {
            Route::Worker(w) => Some(w.counters),
            Route::Deferred(d) => Some(&d.core.shared_counters),
            Route::Sent => None,
        }
    }

    fn is_interrupted(&self) -> bool {
        match &self.route {
            Route::Deferred(d) => d.core.deferred[d.slot].interrupted.load(Acquire),
            _ => false,
        }
    }

    /// Runs `f` over this reply's room for data.
    fn with_dest<R>(&mut self, f: impl FnOnce(&mut Dest<'_>) -> R) -> Option<R> {
        match &mut self.route {
            Route::Worker(w) => Some(f(&mut w.dest)),
            Route::Deferred(d) => {
                let slot = &d.core.deferred[d.slot];
                let blocks = slot.blocks.lock();
                let mut dest = Dest::over_blocks(&d.core.pool, &blocks);
                Some(f(&mut dest))
            }
            Route::Sent => None,
        }
    }

    fn dest_capacity(&mut self) -> usize {
        self.with_dest(|d| d.capacity()).unwrap_or(0)
    }

    /// Sends one reply and marks this core sent; a deferred reply's slot
    /// and blocks are freed once the reply is out.
    fn send(&mut self, error: Option<Errno>, fixed: &[u8], payload: Payload<'_>) -> Replied {
        let route = core::mem::replace(&mut self.route, Route::Sent);
        let msg = Message {
            unique: self.unique,
            opcode: self.opcode,
            error,
            fixed,
            payload,
        };
        match route {
            Route::Worker(w) => msg.send_on(w.core, w.channel, w.counters, &w.dest),
            Route::Deferred(d) => {
                let slot = &d.core.deferred[d.slot];
                {
                    let blocks = slot.blocks.lock();
                    let dest = Dest::over_blocks(&d.core.pool, &blocks);
                    msg.send_on(
                        &d.core,
                        slot.channel.load(Relaxed),
                        &d.core.shared_counters,
                        &dest,
                    );
                }
                d.core.release_slot(d.slot);
            }
            Route::Sent => {}
        }
        Replied::new()
    }

    fn error(&mut self, e: Errno) -> Replied {
        self.send(Some(e), &[], Payload::None)
    }

    /// INIT's reply: its length depends on the protocol minor.
    pub(crate) fn send_init(&mut self, fixed: &[u8]) -> Replied {
        self.ok_struct(fixed)
    }

    fn ok_struct(&mut self, fixed: &[u8]) -> Replied {
        self.send(None, fixed, Payload::None)
    }

    /// Turns a worker reply into a deferred one holding a slot and
    /// `blocks` pool blocks; answers EAGAIN when either is exhausted.
    fn defer(&mut self, blocks: usize) -> Result<ReplyCore<'static>, Replied> {
        let (core, channel, counters) = match &self.route {
            Route::Worker(w) => (w.core, w.channel, w.counters),
            // Deferring twice is a no-op move: hand back the same route.
            Route::Deferred(d) => {
                let route = DeferredRoute {
                    core: d.core.clone(),
                    slot: d.slot,
                };
                self.route = Route::Sent;
                return Ok(ReplyCore {
                    unique: self.unique,
                    opcode: self.opcode,
                    route: Route::Deferred(route),
                });
            }
            Route::Sent => return Err(Replied::new()),
        };
        match core.claim_slot(self.unique, channel, blocks) {
            Ok(slot) => {
                counters.deferred();
                let core = Arc::clone(core);
                self.route = Route::Sent;
                Ok(ReplyCore {
                    unique: self.unique,
                    opcode: self.opcode,
                    route: Route::Deferred(DeferredRoute { core, slot }),
                })
            }
            Err(_) => {
                counters.eagain();
                Err(self.error(Errno::AGAIN))
            }
        }
    }

    fn request(&self) -> RequestId {
        RequestId(self.unique)
    }
}

impl Drop for ReplyCore<'_> {
    fn drop(&mut self) {
        if matches!(self.route, Route::Sent) {
            return;
        }
        if let (Some(c), true) = (self.counters(), matches!(self.route, Route::Deferred(_))) {
            c.deferred_dropped();
        }
        let _ = self.send(Some(Errno::IO), &[], Payload::None);
    }
}

macro_rules! reply_common {
    ($name:ident) => {
        impl<'w> $name<'w> {
            /// Answers with an error.
            pub fn error(mut self, e: Errno) -> Replied {
                self.core.error(e)
            }

            /// The request this reply answers.
            pub fn request(&self) -> RequestId {
                self.core.request()
            }

            /// Whether the kernel sent an INTERRUPT for this request while it
            /// was deferred (answer `EINTR` if the work can be abandoned).
            pub fn is_interrupted(&self) -> bool {
                self.core.is_interrupted()
            }

            /// Keeps the request to answer later, from any thread. Takes a
            /// deferred-reply slot and the pool blocks the answer needs; when
            /// either is exhausted the request is answered `EAGAIN` now and
            /// `Err` carries the proof.
            pub fn defer(mut self) -> Result<($name<'static>, Replied), Replied> {
                let blocks = self.blocks_for_defer();
                let core = self.core.defer(blocks)?;
                Ok((self.rebuild(core), Replied::new()))
            }
        }
    };
}

/// A reply type that holds nothing but its core and needs no pool blocks
/// to be deferred.
macro_rules! simple_reply {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub struct $name<'w> {
            core: ReplyCore<'w>,
        }
        reply_common!($name);

        impl<'w> $name<'w> {
            pub(crate) fn new(core: ReplyCore<'w>) -> Self {
                $name { core }
            }
            fn blocks_for_defer(&self) -> usize {
                0
            }
            fn rebuild(self, core: ReplyCore<'static>) -> $name<'static> {
                $name { core }
            }
        }
    };
}

simple_reply!(
    /// An answer with no data (UNLINK, RELEASE, SETXATTR, …).
    ReplyEmpty
);

impl<'w> ReplyEmpty<'w> {
    /// Success.
    pub fn ok(mut self) -> Replied {
        self.core.ok_struct(&[])
    }
}

simple_reply!(
    /// An entry: LOOKUP, MKNOD, MKDIR, SYMLINK, LINK.
    ReplyEntry
);

impl<'w> ReplyEntry<'w> {
    /// The entry. Each successful entry reply (with a non-zero node) adds
    /// one to the node's lookup count.
    pub fn entry(mut self, entry: &Entry) -> Replied {
        let out = entry.to_abi();
        self.core.ok_struct(out.as_bytes())
    }
}

simple_reply!(
    /// Attributes: GETATTR, SETATTR.
    ReplyAttr
);

impl<'w> ReplyAttr<'w> {
    /// The attributes and how long the kernel may cache them.
    pub fn attr(mut self, attr: &Attr, ttl: Duration) -> Replied {
        let out = abi::fuse_attr_out {
            attr_valid: ttl.as_secs(),
            attr_valid_nsec: ttl.subsec_nanos(),
            dummy: 0,
            attr: attr.to_abi(),
        };
        self.core.ok_struct(out.as_bytes())
    }
}

simple_reply!(
    /// An open file: OPEN, OPENDIR.
    ReplyOpen
);

impl<'w> ReplyOpen<'w> {
    /// The handle and `FOPEN_*` flags.
    pub fn opened(mut self, fh: FileHandle, open_flags: u32) -> Replied {
        let out = abi::fuse_open_out {
            fh: fh.0,
            open_flags,
            backing_id: 0,
        };
        self.core.ok_struct(out.as_bytes())
    }
}

simple_reply!(
    /// CREATE and TMPFILE: an entry and an open file.
    ReplyCreate
);

impl<'w> ReplyCreate<'w> {
    /// The new entry, its handle and `FOPEN_*` flags.
    pub fn created(mut self, entry: &Entry, fh: FileHandle, open_flags: u32) -> Replied {
        #[derive(zerocopy::IntoBytes, zerocopy::Immutable)]
        #[repr(C)]
        struct Out {
            entry: abi::fuse_entry_out,
            open: abi::fuse_open_out,
        }
        let out = Out {
            entry: entry.to_abi(),
            open: abi::fuse_open_out {
                fh: fh.0,
                open_flags,
                backing_id: 0,
            },
        };
        self.core.ok_struct(out.as_bytes())
    }
}

/// WRITE, and COPY_FILE_RANGE's narrow form: bytes written.
pub struct ReplyWrite<'w> {
    core: ReplyCore<'w>,
    wide: bool,
}
reply_common!(ReplyWrite);

impl<'w> ReplyWrite<'w> {
    pub(crate) fn new(core: ReplyCore<'w>, wide: bool) -> Self {
        ReplyWrite { core, wide }
    }
    fn blocks_for_defer(&self) -> usize {
        0
    }
    fn rebuild(self, core: ReplyCore<'static>) -> ReplyWrite<'static> {
        ReplyWrite {
            core,
            wide: self.wide,
        }
    }
    /// How many bytes were written (or copied).
    pub fn written(mut self, count: u64) -> Replied {
        if self.wide {
            let out = abi::fuse_copy_file_range_out {
                bytes_copied: count,
            };
            self.core.ok_struct(out.as_bytes())
        } else {
            let out = abi::fuse_write_out {
                size: u32::try_from(count).unwrap_or(u32::MAX),
                padding: 0,
            };
            self.core.ok_struct(out.as_bytes())
        }
    }
}

simple_reply!(
    /// STATFS.
    ReplyStatfs
);

impl<'w> ReplyStatfs<'w> {
    /// The numbers.
    pub fn statfs(mut self, st: &Statfs) -> Replied {
        let out = abi::fuse_statfs_out { st: st.to_abi() };
        self.core.ok_struct(out.as_bytes())
    }
}

simple_reply!(
    /// LSEEK.
    ReplyLseek
);

impl<'w> ReplyLseek<'w> {
    /// The resulting offset.
    pub fn offset(mut self, offset: u64) -> Replied {
        let out = abi::fuse_lseek_out { offset };
        self.core.ok_struct(out.as_bytes())
    }
}

fn blocks_for(core: &ReplyCore<'_>, bytes: usize) -> usize {
    let block = core.core().map(|c| c.pool.block_size()).unwrap_or(1).max(1);
    bytes.div_ceil(block).min(MAX_MESSAGE_BLOCKS)
}

/// Data: READ and READLINK. Always vectored (see the module doc).
pub struct ReplyData<'w> {
    core: ReplyCore<'w>,
    limit: usize,
}
reply_common!(ReplyData);

impl<'w> ReplyData<'w> {
    pub(crate) fn new(core: ReplyCore<'w>, limit: usize) -> Self {
        ReplyData { core, limit }
    }
    fn blocks_for_defer(&self) -> usize {
        blocks_for(&self.core, self.limit)
    }
    fn rebuild(self, core: ReplyCore<'static>) -> ReplyData<'static> {
        ReplyData {
            core,
            limit: self.limit,
        }
    }

    /// Most bytes the reply may carry (the size asked for).
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Sends `bytes` (at most [`limit`](Self::limit) of them) straight from
    /// where they are.
    pub fn data(mut self, bytes: &[u8]) -> Replied {
        let n = bytes.len().min(self.limit);
        self.core.send(None, &[], Payload::Parts(&[&bytes[..n]]))
    }

    /// Sends the parts straight from where they are (truncated to the limit).
    pub fn parts(mut self, parts: &DataParts<'_>) -> Replied {
        if parts.len() <= self.limit {
            return self.core.send(None, &[], Payload::Parts(parts.slices()));
        }
        let mut clipped: Vec<&[u8], MAX_DATA_PARTS> = Vec::new();
        let mut left = self.limit;
        for p in parts.slices() {
            if left == 0 {
                break;
            }
            let n = p.len().min(left);
            let _ = clipped.push(&p[..n]);
            left -= n;
        }
        self.core.send(None, &[], Payload::Parts(&clipped))
    }

    /// Lets `f` write the data into the reply's own room (the worker's
    /// blocks, or a deferred reply's), then sends what was written. An
    /// `Err` from `f` is sent instead.
    pub fn fill(mut self, f: impl FnOnce(&mut DestWriter<'_, '_>) -> Result<(), Errno>) -> Replied {
        let limit = self.limit;
        let outcome = self.core.with_dest(|dest| {
            let mut w = DestWriter::new(dest, limit);
            f(&mut w).map(|()| w.written())
        });
        match outcome {
            Some(Ok(n)) => self.core.send(None, &[], Payload::Dest(n)),
            Some(Err(e)) => self.core.error(e),
            None => Replied::new(),
        }
    }

    /// Room for [`fill`](Self::fill): `min(limit, capacity)`.
    pub fn fill_capacity(&mut self) -> usize {
        self.core.dest_capacity().min(self.limit)
    }
}

/// GETXATTR and LISTXATTR.
pub struct ReplyXattr<'w> {
    core: ReplyCore<'w>,
    size: u32,
}
reply_common!(ReplyXattr);

impl<'w> ReplyXattr<'w> {
    pub(crate) fn new(core: ReplyCore<'w>, size: u32) -> Self {
        ReplyXattr { core, size }
    }
    fn blocks_for_defer(&self) -> usize {
        blocks_for(&self.core, self.size as usize)
    }
    fn rebuild(self, core: ReplyCore<'static>) -> ReplyXattr<'static> {
        ReplyXattr {
            core,
            size: self.size,
        }
    }

    /// The caller's buffer size; 0 means "how long is it?".
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Answers with a value of `len` bytes given as parts: its length when
    /// the caller asked for that, `ERANGE` when it does not fit, else the
    /// bytes (sent from where they are).
    pub fn value_parts(mut self, parts: &[&[u8]]) -> Replied {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if self.size == 0 {
            let out = abi::fuse_getxattr_out {
                size: u32::try_from(len).unwrap_or(u32::MAX),
                padding: 0,
            };
            return self.core.ok_struct(out.as_bytes());
        }
        if len > self.size as usize {
            return self.core.error(Errno::RANGE);
        }
        self.core.send(None, &[], Payload::Parts(parts))
    }

    /// As [`value_parts`](Self::value_parts) for one slice.
    pub fn value(self, bytes: &[u8]) -> Replied {
        self.value_parts(&[bytes])
    }

    /// LISTXATTR: the names, each sent followed by a NUL, built in the
    /// reply's own room. Length query and `ERANGE` as for values.
    pub fn names<'n>(mut self, names: impl Iterator<Item = &'n [u8]> + Clone) -> Replied {
        let len: usize = names.clone().map(|n| n.len() + 1).sum();
        if self.size == 0 {
            let out = abi::fuse_getxattr_out {
                size: u32::try_from(len).unwrap_or(u32::MAX),
                padding: 0,
            };
            return self.core.ok_struct(out.as_bytes());
        }
        if len > self.size as usize {
            return self.core.error(Errno::RANGE);
        }
        let outcome = self.core.with_dest(|dest| {
            let mut w = DestWriter::new(dest, len);
            for n in names {
                w.put(n)?;
                w.put(&[0])?;
            }
            Ok::<usize, Full>(w.written())
        });
        match outcome {
            Some(Ok(n)) => self.core.send(None, &[], Payload::Dest(n)),
            Some(Err(Full)) => self.core.error(Errno::RANGE),
            None => Replied::new(),
        }
    }
}

/// Encodes one record at `at` bytes into `dest`, if it fits under `limit`.
fn put_record(
    core: &mut ReplyCore<'_>,
    limit: usize,
    at: usize,
    fixed: &[u8],
    name: &[u8],
) -> Option<usize> {
    let record = abi::fuse_rec_align(fixed.len() + name.len());
    if at + record > limit {
        return None;
    }
    core.with_dest(|dest| {
        let mut w = DestWriter::new(dest, limit);
        // Skip what earlier records wrote (rewrite-free: only advance).
        let mut skip = at;
        while skip > 0 {
            let n = w.fill_next(|chunk| chunk.len().min(skip));
            if n == 0 {
                return None;
            }
            skip -= n;
        }
        w.put(fixed).ok()?;
        w.put(name).ok()?;
        // Padding is written as zeros: no stale byte travels in a record.
        w.put_zeros(record - fixed.len() - name.len()).ok()?;
        Some(at + record)
    })
    .flatten()
}

/// A directory listing: records are encoded into the reply's own room as
/// they are added, and `ok` sends what was added.
macro_rules! listing_reply {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        pub struct $name<'w> {
            core: ReplyCore<'w>,
            limit: usize,
            written: usize,
        }
        reply_common!($name);

        impl<'w> $name<'w> {
            pub(crate) fn new(core: ReplyCore<'w>, limit: usize) -> Self {
                $name {
                    core,
                    limit,
                    written: 0,
                }
            }
            fn blocks_for_defer(&self) -> usize {
                blocks_for(&self.core, self.limit)
            }
            fn rebuild(self, core: ReplyCore<'static>) -> $name<'static> {
                $name {
                    core,
                    limit: self.limit,
                    written: self.written,
                }
            }
            /// Appends one record; false when it does not fit.
            fn push(&mut self, fixed: &[u8], name: &[u8]) -> bool {
                match put_record(&mut self.core, self.limit, self.written, fixed, name) {
                    Some(end) => {
                        self.written = end;
                        true
                    }
                    None => false,
                }
            }
            /// Sends the entries added (none = end of directory).
            pub fn ok(mut self) -> Replied {
                let n = self.written;
                self.core.send(None, &[], Payload::Dest(n))
            }
        }
    };
}

listing_reply!(
    /// READDIR: entries encoded into the reply's own room as they are added.
    ReplyDirectory
);

listing_reply!(
    /// READDIRPLUS: entries with their attributes.
    ReplyDirectoryPlus
);

impl ReplyDirectory<'_> {
    /// Adds one entry; `offset` is what the kernel sends back to continue
    /// *after* this entry. Returns false (entry not added) when it does not
    /// fit: send what you have with [`ok`](Self::ok).
    pub fn add(&mut self, ino: u64, offset: u64, kind: FileType, name: &[u8]) -> bool {
        let Ok(namelen) = u32::try_from(name.len()) else {
            return false;
        };
        let d = abi::fuse_dirent {
            ino,
            off: offset,
            namelen,
            r#type: kind.dirent_type(),
        };
        self.push(d.as_bytes(), name)
    }
}

impl ReplyDirectoryPlus<'_> {
    /// Adds one entry with its lookup data. The kernel takes a lookup
    /// reference for every entry added with a non-zero node **except `.` and
    /// `..`**: count it as a LOOKUP. Returns false when it does not fit.
    pub fn add(&mut self, entry: &Entry, offset: u64, kind: FileType, name: &[u8]) -> bool {
        let Ok(namelen) = u32::try_from(name.len()) else {
            return false;
        };
        let d = abi::fuse_direntplus {
            entry_out: entry.to_abi(),
            dirent: abi::fuse_dirent {
                ino: entry.attr.ino,
                off: offset,
                namelen,
                r#type: kind.dirent_type(),
            },
        };
        self.push(d.as_bytes(), name)
    }
}
