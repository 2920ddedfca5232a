//! The parser: one message, spread over the receive buffer's iovecs, to a
//! typed [`Operation`].
//!
//! The contract, smoltcp style: for any bytes at all, [`parse`] returns
//! either a request or a [`Malformed`] value; it never panics, never reads
//! outside the segments it is given and never allocates. Fixed-size argument
//! structs are *copied* onto the stack with zerocopy (they are small and may
//! straddle two blocks); names are borrowed from the message when they sit in
//! one segment and copied into the worker's name scratch when they straddle
//! (at most a few KiB, never file data); payloads are never copied.
//!
//! What the kernel promises and we check anyway, because a fault-injecting
//! transport or a hostile peer can break it: `len` equals the bytes read;
//! names are NUL-terminated; counts and sizes match the bytes present;
//! `offset + size` does not overflow.

// `as` casts that truncate are where wire parsers hide their bugs: none
// here, without an explicit reason.
#![warn(clippy::cast_possible_truncation)]

use rustix::io::Errno;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::abi::{self, Opcode};
use crate::op::*;
use crate::types::{FileHandle, NodeId, RequestId, Timestamp};

/// Longest xattr name the VFS passes on (`XATTR_NAME_MAX`).
pub const XATTR_NAME_MAX: usize = 255;
/// Longest symlink target, without its NUL (`PATH_MAX - 1`).
pub const SYMLINK_MAX: usize = 4095;
/// Bytes of name scratch a worker needs: two names of the longest kind the
/// kernel sends, or a name and a symlink target, each with its NUL.
pub const NAME_SCRATCH_BYTES: usize = 2 * (abi::FUSE_NAME_MAX + 1) + SYMLINK_MAX + 1;

/// Why a message was refused. Each maps to one errno in [`Malformed::errno`];
/// the dispatcher answers with it (when the header is intact and the
/// operation expects a reply) and counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Malformed {
    /// Fewer bytes than a `fuse_in_header`: nothing to answer to.
    HeaderTruncated,
    /// `len` in the header differs from the bytes received.
    LengthMismatch,
    /// The arguments are shorter than the operation's struct.
    ArgumentsTruncated,
    /// Bytes left over after the operation's arguments.
    TrailingBytes,
    /// A name without its terminating NUL.
    MissingNul,
    /// A name longer than the configured limit.
    NameTooLong,
    /// An xattr name longer than `XATTR_NAME_MAX`.
    XattrNameTooLong,
    /// An empty name, or one containing `/`.
    BadName,
    /// `offset + size` overflows for a WRITE or FALLOCATE.
    FileTooBig,
    /// `offset + size` overflows elsewhere, or a value is out of range.
    InvalidArgument,
    /// A WRITE or SETXATTR whose size disagrees with its payload.
    PayloadMismatch,
    /// `total_extlen` reaches past the message.
    BadExtension,
    /// The names do not fit the worker's scratch (only a hostile peer).
    ScratchExhausted,
}

impl Malformed {
    /// The errno a refused request is answered with.
    pub const fn errno(self) -> Errno {
        match self {
            Malformed::HeaderTruncated | Malformed::LengthMismatch => Errno::IO,
            Malformed::NameTooLong => Errno::NAMETOOLONG,
            Malformed::XattrNameTooLong => Errno::RANGE,
            Malformed::FileTooBig => Errno::FBIG,
            Malformed::ArgumentsTruncated
            | Malformed::TrailingBytes
            | Malformed::MissingNul
            | Malformed::BadName
            | Malformed::InvalidArgument
            | Malformed::PayloadMismatch
            | Malformed::BadExtension
            | Malformed::ScratchExhausted => Errno::INVAL,
        }
    }
}

/// What the parser needs from the session: negotiated protocol details.
#[derive(Clone, Copy, Debug)]
pub struct ParseContext {
    /// Longest entry name accepted (`ENAMETOOLONG` above it).
    pub name_max: usize,
    /// `FUSE_SETXATTR_EXT` was negotiated: `fuse_setxattr_in` is 16 bytes.
    pub setxattr_ext: bool,
}

impl Default for ParseContext {
    fn default() -> ParseContext {
        ParseContext {
            name_max: 255,
            setxattr_ext: false,
        }
    }
}

/// A message the parser could not turn into a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseFailure {
    /// The header, when at least its 40 bytes arrived.
    pub header: Option<abi::fuse_in_header>,
    /// What was wrong.
    pub reason: Malformed,
}

impl ParseFailure {
    /// Whether the kernel waits for an answer to this message: false for
    /// FORGET, BATCH_FORGET and INTERRUPT, and when there is no header.
    pub fn wants_reply(&self) -> bool {
        match self.header {
            None => false,
            Some(h) => wants_reply(h.opcode),
        }
    }
}

/// Whether requests with this raw opcode are answered at all.
pub fn wants_reply(opcode: u32) -> bool {
    !matches!(
        Opcode::from_raw(opcode),
        Some(Opcode::FUSE_FORGET | Opcode::FUSE_BATCH_FORGET | Opcode::FUSE_INTERRUPT)
    )
}

/// A read position over the message's segments.
#[derive(Clone, Debug)]
pub struct Cursor<'a> {
    segments: &'a [&'a [u8]],
    /// Offset into `segments[0]`.
    offset: usize,
    /// Bytes left to read.
    remaining: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor over the first `len` bytes of `segments` (fewer if the
    /// segments hold fewer).
    pub fn new(segments: &'a [&'a [u8]], len: usize) -> Cursor<'a> {
        let held: usize = segments.iter().map(|s| s.len()).sum();
        Cursor {
            segments,
            offset: 0,
            remaining: len.min(held),
        }
    }

    /// A cursor over a payload's bytes.
    pub fn over_payload(p: Payload<'a>) -> Cursor<'a> {
        let (segments, offset, remaining) = p.raw_parts();
        Cursor {
            segments,
            offset,
            remaining,
        }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// Drops empty or fully consumed leading segments.
    fn settle(&mut self) {
        while let Some((first, rest)) = self.segments.split_first() {
            if self.offset < first.len() {
                break;
            }
            self.offset -= first.len();
            self.segments = rest;
        }
    }

    /// Reads a fixed-size struct (copying it; it may span segments).
    pub fn read<T: FromBytes + IntoBytes + KnownLayout + Immutable>(
        &mut self,
    ) -> Result<T, Malformed> {
        let size = core::mem::size_of::<T>();
        self.read_prefix::<T>(size)
    }

    /// Reads `n <= size_of::<T>()` bytes into a zeroed `T` (older, shorter
    /// forms of a struct).
    pub fn read_prefix<T: FromBytes + IntoBytes + KnownLayout + Immutable>(
        &mut self,
        n: usize,
    ) -> Result<T, Malformed> {
        let mut value = T::new_zeroed();
        let dst = value.as_mut_bytes();
        if n > dst.len() || n > self.remaining {
            return Err(Malformed::ArgumentsTruncated);
        }
        self.copy_into(&mut dst[..n]);
        Ok(value)
    }

    /// Copies exactly `dst.len()` bytes; the caller checked `remaining`.
    fn copy_into(&mut self, dst: &mut [u8]) {
        let mut done = 0;
        while done < dst.len() {
            self.settle();
            let Some(first) = self.segments.first() else {
                break;
            };
            let avail = &first[self.offset..];
            let n = avail.len().min(dst.len() - done);
            dst[done..done + n].copy_from_slice(&avail[..n]);
            done += n;
            self.offset += n;
            self.remaining -= n;
        }
    }

    /// Skips `n` bytes.
    pub fn skip(&mut self, n: usize) -> Result<(), Malformed> {
        if n > self.remaining {
            return Err(Malformed::ArgumentsTruncated);
        }
        let mut left = n;
        while left > 0 {
            self.settle();
            let Some(first) = self.segments.first() else {
                break;
            };
            let k = (first.len() - self.offset).min(left);
            self.offset += k;
            left -= k;
        }
        self.remaining -= n;
        Ok(())
    }

    /// The next `n` bytes as a payload (borrowed, not copied).
    pub fn take_payload(&mut self, n: usize) -> Result<Payload<'a>, Malformed> {
        if n > self.remaining {
            return Err(Malformed::ArgumentsTruncated);
        }
        self.settle();
        let p = Payload::new(self.segments, self.offset, n).ok_or(Malformed::ArgumentsTruncated)?;
        self.skip(n)?;
        Ok(p)
    }

    /// Everything left, as a payload.
    pub fn rest(&mut self) -> Result<Payload<'a>, Malformed> {
        self.take_payload(self.remaining)
    }

    /// Reads a NUL-terminated string of at most `max` bytes (without NUL)
    /// and consumes its NUL. Borrowed from the message when it lies in one
    /// segment; otherwise copied to the front of `scratch`, which is then
    /// shortened past it so the next name gets fresh room.
    pub fn read_cstr<'x>(
        &mut self,
        scratch: &mut &'x mut [u8],
        max: usize,
        too_long: Malformed,
    ) -> Result<&'x [u8], Malformed>
    where
        'a: 'x,
    {
        self.settle();
        // Fast path: the whole string and its NUL in the current segment.
        if let Some(first) = self.segments.first() {
            let avail = &first[self.offset..];
            let window = &avail[..avail.len().min(self.remaining)];
            if let Some(nul) = window.iter().position(|&b| b == 0) {
                if nul > max {
                    return Err(too_long);
                }
                let s: &'a [u8] = &first[self.offset..self.offset + nul];
                self.offset += nul + 1;
                self.remaining -= nul + 1;
                return Ok(s);
            }
        }
        // Slow path: scan across segments, copying into scratch.
        let mut probe = self.clone();
        let mut len = 0usize;
        loop {
            if probe.remaining == 0 {
                return Err(Malformed::MissingNul);
            }
            let mut b = [0u8; 1];
            probe.copy_into(&mut b);
            if b[0] == 0 {
                break;
            }
            len += 1;
            if len > max {
                return Err(too_long);
            }
        }
        let taken = core::mem::take(scratch);
        if taken.len() < len {
            *scratch = taken;
            return Err(Malformed::ScratchExhausted);
        }
        let (name, rest) = taken.split_at_mut(len);
        *scratch = rest;
        self.copy_into(name);
        self.skip(1)?;
        Ok(name)
    }

    /// An entry name: non-empty, no `/`, at most `name_max` bytes.
    pub fn read_name<'x>(
        &mut self,
        scratch: &mut &'x mut [u8],
        name_max: usize,
    ) -> Result<&'x [u8], Malformed>
    where
        'a: 'x,
    {
        let name = self.read_cstr(scratch, name_max, Malformed::NameTooLong)?;
        if name.is_empty() || name.contains(&b'/') {
            return Err(Malformed::BadName);
        }
        Ok(name)
    }

    /// An xattr name: non-empty, at most `XATTR_NAME_MAX` bytes.
    pub fn read_xattr_name<'x>(&mut self, scratch: &mut &'x mut [u8]) -> Result<&'x [u8], Malformed>
    where
        'a: 'x,
    {
        let name = self.read_cstr(scratch, XATTR_NAME_MAX, Malformed::XattrNameTooLong)?;
        if name.is_empty() {
            return Err(Malformed::BadName);
        }
        Ok(name)
    }

    /// Fails unless every byte was consumed.
    pub fn finish(&self) -> Result<(), Malformed> {
        if self.remaining == 0 {
            Ok(())
        } else {
            Err(Malformed::TrailingBytes)
        }
    }
}

/// Splits a message off its header: checks the header, `len` and the
/// extension area, and returns the header and a cursor over the arguments.
pub fn split_header<'a>(
    segments: &'a [&'a [u8]],
    received: usize,
) -> Result<(abi::fuse_in_header, Cursor<'a>), ParseFailure> {
    let mut cursor = Cursor::new(segments, received);
    let header: abi::fuse_in_header = cursor.read().map_err(|_| ParseFailure {
        header: None,
        reason: Malformed::HeaderTruncated,
    })?;
    let fail = |reason| ParseFailure {
        header: Some(header),
        reason,
    };
    if header.len as usize != received || cursor.remaining() + 40 != received {
        return Err(fail(Malformed::LengthMismatch));
    }
    // Extensions (security context, supplementary groups) sit at the end;
    // this runtime negotiates none of them, so it only steps around them.
    let ext_bytes = usize::from(header.total_extlen) * 8;
    if ext_bytes > cursor.remaining() {
        return Err(fail(Malformed::BadExtension));
    }
    cursor.remaining -= ext_bytes;
    Ok((header, cursor))
}

/// Converts setattr's seconds/nanoseconds, refusing out-of-range nanos.
fn timestamp(secs: u64, nanos: u32) -> Result<Timestamp, Malformed> {
    if nanos >= 1_000_000_000 {
        return Err(Malformed::InvalidArgument);
    }
    Ok(Timestamp::new(secs as i64, nanos))
}

/// `offset + len` must stay within `i64` (the kernel's `loff_t`).
fn check_range(offset: u64, len: u64, reason: Malformed) -> Result<(), Malformed> {
    match offset.checked_add(len) {
        Some(end) if end <= i64::MAX as u64 => Ok(()),
        _ => Err(reason),
    }
}

/// Parses one message.
///
/// `segments` are the receive buffer's filled regions in order (the 80-byte
/// head, then blocks); `received` is what `readv` returned. `scratch` is the
/// worker's name scratch ([`NAME_SCRATCH_BYTES`]); names that straddle two
/// segments are assembled there.
pub fn parse<'a, 'x>(
    segments: &'a [&'a [u8]],
    received: usize,
    ctx: &ParseContext,
    scratch: &'x mut [u8],
) -> Result<(abi::fuse_in_header, Operation<'x>), ParseFailure>
where
    'a: 'x,
{
    let (header, mut c) = split_header(segments, received)?;
    let fail = |reason| ParseFailure {
        header: Some(header),
        reason,
    };
    let Some(opcode) = Opcode::from_raw(header.opcode) else {
        // Not malformed: a newer kernel may send opcodes this ABI lacks. The
        // dispatcher answers ENOSYS.
        return Ok((header, Operation::Unknown(header.opcode)));
    };
    let node = NodeId(header.nodeid);
    let mut scratch = scratch;
    let op = parse_args(opcode, node, &mut c, ctx, &mut scratch).map_err(fail)?;
    Ok((header, op))
}

fn parse_args<'a, 'x>(
    opcode: Opcode,
    node: NodeId,
    c: &mut Cursor<'a>,
    ctx: &ParseContext,
    scratch: &mut &'x mut [u8],
) -> Result<Operation<'x>, Malformed>
where
    'a: 'x,
{
    use Opcode::*;
    let name_max = ctx.name_max;
    let op = match opcode {
        FUSE_INIT => {
            // Before 7.36 the kernel sent 16 bytes; newer ones 64. Accept
            // anything from 16 up (a future kernel may send more).
            let n = c.remaining().min(core::mem::size_of::<abi::fuse_init_in>());
            if n < abi::FUSE_COMPAT_INIT_IN_SIZE {
                return Err(Malformed::ArgumentsTruncated);
            }
            let init = c.read_prefix::<abi::fuse_init_in>(n)?;
            let rest = c.remaining();
            c.skip(rest)?;
            Operation::Init(init)
        }
        FUSE_DESTROY => Operation::Destroy,
        FUSE_INTERRUPT => {
            let a: abi::fuse_interrupt_in = c.read()?;
            Operation::Interrupt(Interrupt {
                target: RequestId(a.unique),
            })
        }
        FUSE_LOOKUP => Operation::Lookup(Lookup {
            parent: node,
            name: c.read_name(scratch, name_max)?,
        }),
        FUSE_FORGET => {
            let a: abi::fuse_forget_in = c.read()?;
            Operation::Forget(Forget {
                node,
                nlookup: a.nlookup,
            })
        }
        FUSE_BATCH_FORGET => {
            let a: abi::fuse_batch_forget_in = c.read()?;
            let count = a.count as usize;
            let bytes = count
                .checked_mul(core::mem::size_of::<abi::fuse_forget_one>())
                .ok_or(Malformed::InvalidArgument)?;
            if bytes != c.remaining() {
                return Err(Malformed::PayloadMismatch);
            }
            Operation::BatchForget(BatchForget::new(c.take_payload(bytes)?, count))
        }
        FUSE_GETATTR => {
            let a: abi::fuse_getattr_in = c.read()?;
            Operation::GetAttr(GetAttr {
                node,
                fh: (a.getattr_flags & abi::FUSE_GETATTR_FH != 0).then_some(FileHandle(a.fh)),
            })
        }
        FUSE_SETATTR => {
            let a: abi::fuse_setattr_in = c.read()?;
            let v = a.valid;
            let has = |bit| v & bit != 0;
            let time = |now_bit, set_bit, secs, nanos| -> Result<Option<TimeOrNow>, Malformed> {
                Ok(if has(now_bit) {
                    Some(TimeOrNow::Now)
                } else if has(set_bit) {
                    Some(TimeOrNow::Specific(timestamp(secs, nanos)?))
                } else {
                    None
                })
            };
            Operation::SetAttr(SetAttr {
                node,
                fh: has(abi::FATTR_FH).then_some(FileHandle(a.fh)),
                mode: has(abi::FATTR_MODE).then_some(a.mode),
                uid: has(abi::FATTR_UID).then_some(a.uid),
                gid: has(abi::FATTR_GID).then_some(a.gid),
                size: if has(abi::FATTR_SIZE) {
                    check_range(a.size, 0, Malformed::FileTooBig)?;
                    Some(a.size)
                } else {
                    None
                },
                atime: time(abi::FATTR_ATIME_NOW, abi::FATTR_ATIME, a.atime, a.atimensec)?,
                mtime: time(abi::FATTR_MTIME_NOW, abi::FATTR_MTIME, a.mtime, a.mtimensec)?,
                ctime: if has(abi::FATTR_CTIME) {
                    Some(timestamp(a.ctime, a.ctimensec)?)
                } else {
                    None
                },
                kill_suidgid: has(abi::FATTR_KILL_SUIDGID),
                lock_owner: has(abi::FATTR_LOCKOWNER).then_some(a.lock_owner),
            })
        }
        FUSE_READLINK => Operation::ReadLink(ReadLink { node }),
        FUSE_SYMLINK => {
            let name = c.read_name(scratch, name_max)?;
            let target = c.read_cstr(scratch, SYMLINK_MAX, Malformed::NameTooLong)?;
            if target.is_empty() {
                return Err(Malformed::BadName);
            }
            Operation::Symlink(Symlink {
                parent: node,
                name,
                target,
            })
        }
        FUSE_MKNOD => {
            let a: abi::fuse_mknod_in = c.read()?;
            Operation::MkNod(MkNod {
                parent: node,
                name: c.read_name(scratch, name_max)?,
                mode: a.mode,
                rdev: a.rdev,
                umask: a.umask,
            })
        }
        FUSE_MKDIR => {
            let a: abi::fuse_mkdir_in = c.read()?;
            Operation::MkDir(MkDir {
                parent: node,
                name: c.read_name(scratch, name_max)?,
                mode: a.mode,
                umask: a.umask,
            })
        }
        FUSE_UNLINK => Operation::Unlink(Unlink {
            parent: node,
            name: c.read_name(scratch, name_max)?,
        }),
        FUSE_RMDIR => Operation::RmDir(RmDir {
            parent: node,
            name: c.read_name(scratch, name_max)?,
        }),
        FUSE_RENAME | FUSE_RENAME2 => {
            let (new_parent, flags) = if opcode == FUSE_RENAME {
                let a: abi::fuse_rename_in = c.read()?;
                (a.newdir, 0)
            } else {
                let a: abi::fuse_rename2_in = c.read()?;
                (a.newdir, a.flags)
            };
            let name = c.read_name(scratch, name_max)?;
            let new_name = c.read_name(scratch, name_max)?;
            Operation::Rename(Rename {
                parent: node,
                name,
                new_parent: NodeId(new_parent),
                new_name,
                flags,
            })
        }
        FUSE_LINK => {
            let a: abi::fuse_link_in = c.read()?;
            Operation::Link(Link {
                node: NodeId(a.oldnodeid),
                new_parent: node,
                new_name: c.read_name(scratch, name_max)?,
            })
        }
        FUSE_OPEN => {
            let a: abi::fuse_open_in = c.read()?;
            Operation::Open(Open {
                node,
                flags: a.flags as i32,
                kill_suidgid: a.open_flags & abi::FUSE_OPEN_KILL_SUIDGID != 0,
            })
        }
        FUSE_READ => {
            let a: abi::fuse_read_in = c.read()?;
            check_range(a.offset, u64::from(a.size), Malformed::InvalidArgument)?;
            Operation::Read(Read {
                node,
                fh: FileHandle(a.fh),
                offset: a.offset,
                size: a.size,
                flags: a.flags as i32,
                lock_owner: (a.read_flags & abi::FUSE_READ_LOCKOWNER != 0).then_some(a.lock_owner),
            })
        }
        FUSE_WRITE => {
            let a: abi::fuse_write_in = c.read()?;
            if a.size as usize != c.remaining() {
                return Err(Malformed::PayloadMismatch);
            }
            check_range(a.offset, u64::from(a.size), Malformed::FileTooBig)?;
            Operation::Write(Write {
                node,
                fh: FileHandle(a.fh),
                offset: a.offset,
                data: c.rest()?,
                write_flags: a.write_flags,
                flags: a.flags as i32,
                lock_owner: (a.write_flags & abi::FUSE_WRITE_LOCKOWNER != 0)
                    .then_some(a.lock_owner),
            })
        }
        FUSE_STATFS => Operation::StatFs(StatFs { node }),
        FUSE_SYNCFS => {
            let _: abi::fuse_syncfs_in = c.read()?;
            Operation::SyncFs(StatFs { node })
        }
        FUSE_RELEASE | FUSE_RELEASEDIR => {
            let a: abi::fuse_release_in = c.read()?;
            if opcode == FUSE_RELEASE {
                Operation::Release(Release {
                    node,
                    fh: FileHandle(a.fh),
                    flags: a.flags as i32,
                    release_flags: a.release_flags,
                    lock_owner: a.lock_owner,
                })
            } else {
                Operation::ReleaseDir(ReleaseDir {
                    node,
                    fh: FileHandle(a.fh),
                    flags: a.flags as i32,
                })
            }
        }
        FUSE_FSYNC | FUSE_FSYNCDIR => {
            let a: abi::fuse_fsync_in = c.read()?;
            let datasync = a.fsync_flags & abi::FUSE_FSYNC_FDATASYNC != 0;
            let fh = FileHandle(a.fh);
            if opcode == FUSE_FSYNC {
                Operation::Fsync(Fsync { node, fh, datasync })
            } else {
                Operation::FsyncDir(FsyncDir { node, fh, datasync })
            }
        }
        FUSE_SETXATTR => {
            let a: abi::fuse_setxattr_in = if ctx.setxattr_ext {
                c.read()?
            } else {
                c.read_prefix(abi::FUSE_COMPAT_SETXATTR_IN_SIZE)?
            };
            let name = c.read_xattr_name(scratch)?;
            if a.size as usize != c.remaining() {
                return Err(Malformed::PayloadMismatch);
            }
            Operation::SetXattr(SetXattr {
                node,
                name,
                value: c.rest()?,
                flags: a.flags as i32,
                setxattr_flags: a.setxattr_flags,
            })
        }
        FUSE_GETXATTR => {
            let a: abi::fuse_getxattr_in = c.read()?;
            Operation::GetXattr(GetXattr {
                node,
                name: c.read_xattr_name(scratch)?,
                size: a.size,
            })
        }
        FUSE_LISTXATTR => {
            let a: abi::fuse_getxattr_in = c.read()?;
            Operation::ListXattr(ListXattr { node, size: a.size })
        }
        FUSE_REMOVEXATTR => Operation::RemoveXattr(RemoveXattr {
            node,
            name: c.read_xattr_name(scratch)?,
        }),
        FUSE_FLUSH => {
            let a: abi::fuse_flush_in = c.read()?;
            Operation::Flush(Flush {
                node,
                fh: FileHandle(a.fh),
                lock_owner: a.lock_owner,
            })
        }
        FUSE_OPENDIR => {
            let a: abi::fuse_open_in = c.read()?;
            Operation::OpenDir(OpenDir {
                node,
                flags: a.flags as i32,
            })
        }
        FUSE_READDIR | FUSE_READDIRPLUS => {
            let a: abi::fuse_read_in = c.read()?;
            let rd = ReadDir {
                node,
                fh: FileHandle(a.fh),
                offset: a.offset,
                size: a.size,
            };
            if opcode == FUSE_READDIR {
                Operation::ReadDir(rd)
            } else {
                Operation::ReadDirPlus(rd)
            }
        }
        FUSE_ACCESS => {
            let a: abi::fuse_access_in = c.read()?;
            Operation::Access(Access { node, mask: a.mask })
        }
        FUSE_CREATE => {
            let a: abi::fuse_create_in = c.read()?;
            Operation::Create(Create {
                parent: node,
                name: c.read_name(scratch, name_max)?,
                mode: a.mode,
                umask: a.umask,
                flags: a.flags as i32,
                kill_suidgid: a.open_flags & abi::FUSE_OPEN_KILL_SUIDGID != 0,
            })
        }
        FUSE_TMPFILE => {
            let a: abi::fuse_create_in = c.read()?;
            // The kernel sends the unnamed dentry's name ("/") after the
            // struct (`fuse_create_open` has two in-args for TMPFILE too);
            // it names nothing, so it is skipped, not checked as a name.
            let _ = c.rest()?;
            Operation::TmpFile(TmpFile {
                parent: node,
                mode: a.mode,
                umask: a.umask,
                flags: a.flags as i32,
            })
        }
        FUSE_FALLOCATE => {
            let a: abi::fuse_fallocate_in = c.read()?;
            check_range(a.offset, a.length, Malformed::FileTooBig)?;
            Operation::Fallocate(Fallocate {
                node,
                fh: FileHandle(a.fh),
                offset: a.offset,
                length: a.length,
                mode: a.mode as i32,
            })
        }
        FUSE_LSEEK => {
            let a: abi::fuse_lseek_in = c.read()?;
            Operation::Lseek(Lseek {
                node,
                fh: FileHandle(a.fh),
                offset: a.offset,
                whence: a.whence,
            })
        }
        FUSE_COPY_FILE_RANGE | FUSE_COPY_FILE_RANGE_64 => {
            let a: abi::fuse_copy_file_range_in = c.read()?;
            check_range(a.off_in, a.len, Malformed::InvalidArgument)?;
            check_range(a.off_out, a.len, Malformed::FileTooBig)?;
            Operation::CopyFileRange {
                args: CopyFileRange {
                    node_in: node,
                    fh_in: FileHandle(a.fh_in),
                    offset_in: a.off_in,
                    node_out: NodeId(a.nodeid_out),
                    fh_out: FileHandle(a.fh_out),
                    offset_out: a.off_out,
                    len: a.len,
                    flags: a.flags,
                },
                wide: opcode == FUSE_COPY_FILE_RANGE_64,
            }
        }
        // Known to the ABI, not served: the arguments are not inspected.
        FUSE_GETLK | FUSE_SETLK | FUSE_SETLKW | FUSE_BMAP | FUSE_IOCTL | FUSE_POLL
        | FUSE_NOTIFY_REPLY | FUSE_SETUPMAPPING | FUSE_REMOVEMAPPING | FUSE_STATX | CUSE_INIT => {
            let rest = c.remaining();
            c.skip(rest)?;
            return Ok(Operation::Unsupported(opcode));
        }
    };
    c.finish()?;
    Ok(op)
}

#[cfg(test)]
mod tests;
