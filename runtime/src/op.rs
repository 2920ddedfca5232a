//! Typed requests: one struct per operation, borrowing from the message.
//!
//! The parser ([`crate::parse`]) turns a raw message into an [`Operation`];
//! the dispatcher hands each variant's struct to the matching
//! [`crate::Filesystem`] method. Names are byte slices (checked: non-empty,
//! no `/`, NUL-terminated on the wire, at most the configured name length);
//! payloads are [`Payload`]s, the message's own bytes spread over the
//! receive buffer's blocks, never copied.

use crate::abi;
use crate::types::{FileHandle, NodeId, RequestId, Timestamp};

/// Bytes of a message that may span several receive blocks: the payload of a
/// WRITE, the value of a SETXATTR. Iterate with [`Payload::slices`]; the
/// slices are the receive buffer itself, in order, none of them empty.
#[derive(Clone, Copy, Debug)]
pub struct Payload<'a> {
    /// The segments from the one holding the first payload byte onwards.
    segments: &'a [&'a [u8]],
    /// Where the payload starts in `segments[0]`.
    first_offset: usize,
    /// Payload length in bytes.
    len: usize,
}

impl<'a> Payload<'a> {
    /// An empty payload.
    pub const EMPTY: Payload<'static> = Payload {
        segments: &[],
        first_offset: 0,
        len: 0,
    };

    /// A payload of `len` bytes starting `first_offset` bytes into the first
    /// of `segments`. Returns `None` when the segments hold fewer bytes.
    pub fn new(segments: &'a [&'a [u8]], first_offset: usize, len: usize) -> Option<Payload<'a>> {
        let mut available = 0usize;
        for (i, s) in segments.iter().enumerate() {
            let usable = if i == 0 {
                s.len().checked_sub(first_offset)?
            } else {
                s.len()
            };
            available = available.saturating_add(usable);
            if available >= len {
                break;
            }
        }
        if available < len || (segments.is_empty() && (first_offset != 0 || len != 0)) {
            return None;
        }
        Some(Payload {
            segments,
            first_offset,
            len,
        })
    }

    /// A payload that is one contiguous slice (tests, and filesystems that
    /// forward data they already hold).
    pub fn from_slices(slices: &'a [&'a [u8]]) -> Payload<'a> {
        let len = slices.iter().map(|s| s.len()).sum();
        Payload {
            segments: slices,
            first_offset: 0,
            len,
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The payload as slices of the receive buffer, in order.
    pub fn slices(&self) -> PayloadSlices<'a> {
        PayloadSlices {
            segments: self.segments,
            offset: self.first_offset,
            remaining: self.len,
        }
    }

    /// Copies the payload into `dst`, as much as fits; returns bytes copied.
    pub fn copy_to(&self, dst: &mut [u8]) -> usize {
        let mut done = 0;
        for s in self.slices() {
            let n = s.len().min(dst.len() - done);
            dst[done..done + n].copy_from_slice(&s[..n]);
            done += n;
            if done == dst.len() {
                break;
            }
        }
        done
    }

    /// The segments, the offset into the first and the length.
    pub(crate) fn raw_parts(&self) -> (&'a [&'a [u8]], usize, usize) {
        (self.segments, self.first_offset, self.len)
    }

    /// The first `n` bytes (all of it when `n >= len`).
    pub fn prefix(&self, n: usize) -> Payload<'a> {
        Payload {
            len: self.len.min(n),
            ..*self
        }
    }
}

/// Iterator over a [`Payload`]'s slices.
#[derive(Clone, Debug)]
pub struct PayloadSlices<'a> {
    segments: &'a [&'a [u8]],
    offset: usize,
    remaining: usize,
}

impl<'a> Iterator for PayloadSlices<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        while self.remaining > 0 {
            let (first, rest) = self.segments.split_first()?;
            let start = self.offset.min(first.len());
            let take = (first.len() - start).min(self.remaining);
            self.segments = rest;
            self.offset = 0;
            if take > 0 {
                self.remaining -= take;
                return Some(&first[start..start + take]);
            }
        }
        None
    }
}

/// How SETATTR sets a time: to a given value or to "now" (`UTIME_NOW`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TimeOrNow {
    /// A specific time.
    Specific(Timestamp),
    /// The filesystem's current time.
    Now,
}

/// LOOKUP: resolve `name` in directory `parent`.
#[derive(Clone, Copy, Debug)]
pub struct Lookup<'a> {
    /// The directory.
    pub parent: NodeId,
    /// The name to resolve.
    pub name: &'a [u8],
}

/// FORGET: the kernel dropped `nlookup` references to `node`. No reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Forget {
    /// The node.
    pub node: NodeId,
    /// How many lookups to forget.
    pub nlookup: u64,
}

/// BATCH_FORGET: many [`Forget`]s in one message. No reply.
#[derive(Clone, Copy, Debug)]
pub struct BatchForget<'a> {
    /// The `fuse_forget_one` records, `count` of them.
    records: Payload<'a>,
    count: usize,
}

impl<'a> BatchForget<'a> {
    pub(crate) fn new(records: Payload<'a>, count: usize) -> BatchForget<'a> {
        BatchForget { records, count }
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when the batch is empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The records, decoded one at a time (a record may span two blocks).
    pub fn iter(&self) -> impl Iterator<Item = Forget> + 'a {
        let mut reader = crate::parse::Cursor::over_payload(self.records);
        (0..self.count).map_while(move |_| {
            reader.read::<abi::fuse_forget_one>().ok().map(|r| Forget {
                node: NodeId(r.nodeid),
                nlookup: r.nlookup,
            })
        })
    }
}

/// GETATTR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct GetAttr {
    /// The node.
    pub node: NodeId,
    /// The open file the caller used (`fstat`), when the kernel says.
    pub fh: Option<FileHandle>,
}

/// SETATTR: change the attributes that are `Some`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SetAttr {
    /// The node.
    pub node: NodeId,
    /// The open file the change came through (`ftruncate`, `fchmod`).
    pub fh: Option<FileHandle>,
    /// New permission bits (the type bits are the kernel's, ignore them).
    pub mode: Option<u32>,
    /// New owner.
    pub uid: Option<u32>,
    /// New group.
    pub gid: Option<u32>,
    /// New size (truncate or extend).
    pub size: Option<u64>,
    /// New access time.
    pub atime: Option<TimeOrNow>,
    /// New modification time.
    pub mtime: Option<TimeOrNow>,
    /// New status-change time (kernels send this with writeback caching).
    pub ctime: Option<Timestamp>,
    /// Clear set-user-id and set-group-id (`FATTR_KILL_SUIDGID`).
    pub kill_suidgid: bool,
    /// Lock owner, when the kernel sends one.
    pub lock_owner: Option<u64>,
}

/// READLINK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ReadLink {
    /// The symlink.
    pub node: NodeId,
}

/// SYMLINK: create `name` in `parent` pointing at `target`.
#[derive(Clone, Copy, Debug)]
pub struct Symlink<'a> {
    /// The directory.
    pub parent: NodeId,
    /// The new link's name.
    pub name: &'a [u8],
    /// What it points at (not NUL-terminated here).
    pub target: &'a [u8],
}

/// MKNOD: create a file, device, FIFO or socket.
#[derive(Clone, Copy, Debug)]
pub struct MkNod<'a> {
    /// The directory.
    pub parent: NodeId,
    /// The new node's name.
    pub name: &'a [u8],
    /// Type and permission bits.
    pub mode: u32,
    /// Device number for devices.
    pub rdev: u32,
    /// The caller's umask (already applied by the kernel unless `DONT_MASK`).
    pub umask: u32,
}

/// MKDIR.
#[derive(Clone, Copy, Debug)]
pub struct MkDir<'a> {
    /// The parent directory.
    pub parent: NodeId,
    /// The new directory's name.
    pub name: &'a [u8],
    /// Permission bits (the kernel does not set `S_IFDIR` here).
    pub mode: u32,
    /// The caller's umask.
    pub umask: u32,
}

/// UNLINK.
#[derive(Clone, Copy, Debug)]
pub struct Unlink<'a> {
    /// The directory.
    pub parent: NodeId,
    /// The name to remove.
    pub name: &'a [u8],
}

/// RMDIR.
#[derive(Clone, Copy, Debug)]
pub struct RmDir<'a> {
    /// The parent directory.
    pub parent: NodeId,
    /// The directory to remove.
    pub name: &'a [u8],
}

/// `renameat2` flags.
pub mod rename_flags {
    /// Fail with `EEXIST` if the target exists.
    pub const RENAME_NOREPLACE: u32 = 1 << 0;
    /// Swap source and target atomically.
    pub const RENAME_EXCHANGE: u32 = 1 << 1;
    /// Leave a whiteout in place of the source (overlayfs).
    pub const RENAME_WHITEOUT: u32 = 1 << 2;
}

/// RENAME and RENAME2 (RENAME arrives with `flags == 0`).
#[derive(Clone, Copy, Debug)]
pub struct Rename<'a> {
    /// The source directory.
    pub parent: NodeId,
    /// The source name.
    pub name: &'a [u8],
    /// The target directory.
    pub new_parent: NodeId,
    /// The target name.
    pub new_name: &'a [u8],
    /// [`rename_flags`].
    pub flags: u32,
}

/// LINK: a new name for an existing node.
#[derive(Clone, Copy, Debug)]
pub struct Link<'a> {
    /// The existing node.
    pub node: NodeId,
    /// The directory of the new name.
    pub new_parent: NodeId,
    /// The new name.
    pub new_name: &'a [u8],
}

/// OPEN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Open {
    /// The file.
    pub node: NodeId,
    /// `open(2)` flags (`O_ACCMODE`, `O_TRUNC` with atomic O_TRUNC, …).
    pub flags: i32,
    /// `FUSE_OPEN_KILL_SUIDGID`.
    pub kill_suidgid: bool,
}

/// READ: `size` bytes at `offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Read {
    /// The file.
    pub node: NodeId,
    /// From OPEN.
    pub fh: FileHandle,
    /// Byte offset.
    pub offset: u64,
    /// Bytes asked for (the reply may be shorter at end of file).
    pub size: u32,
    /// The open file's flags.
    pub flags: i32,
    /// Lock owner, when the kernel sends one.
    pub lock_owner: Option<u64>,
}

/// WRITE: `data` at `offset`. `data` is the receive buffer itself.
#[derive(Clone, Copy, Debug)]
pub struct Write<'a> {
    /// The file.
    pub node: NodeId,
    /// From OPEN.
    pub fh: FileHandle,
    /// Byte offset. For `O_APPEND` files the kernel has already set it to
    /// the end of file as it knows it; `flags` carries `O_APPEND` for
    /// filesystems that prefer their own idea of the size.
    pub offset: u64,
    /// The bytes, as slices of the receive blocks.
    pub data: Payload<'a>,
    /// `FUSE_WRITE_*` flags.
    pub write_flags: u32,
    /// The open file's flags.
    pub flags: i32,
    /// Lock owner, when the kernel sends one.
    pub lock_owner: Option<u64>,
}

/// STATFS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct StatFs {
    /// Any node of the filesystem.
    pub node: NodeId,
}

/// RELEASE: the last close of an open file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Release {
    /// The file.
    pub node: NodeId,
    /// From OPEN.
    pub fh: FileHandle,
    /// The open file's flags.
    pub flags: i32,
    /// `FUSE_RELEASE_*`.
    pub release_flags: u32,
    /// Lock owner.
    pub lock_owner: u64,
}

/// FSYNC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Fsync {
    /// The file.
    pub node: NodeId,
    /// From OPEN.
    pub fh: FileHandle,
    /// Only data, not metadata (`fdatasync`).
    pub datasync: bool,
}

/// `setxattr(2)` flags.
pub mod xattr_flags {
    /// Fail with `EEXIST` if the attribute exists.
    pub const XATTR_CREATE: i32 = 1;
    /// Fail with `ENODATA` if the attribute does not exist.
    pub const XATTR_REPLACE: i32 = 2;
}

/// SETXATTR.
#[derive(Clone, Copy, Debug)]
pub struct SetXattr<'a> {
    /// The node.
    pub node: NodeId,
    /// Attribute name, with its namespace (`user.foo`).
    pub name: &'a [u8],
    /// The value (may span receive blocks).
    pub value: Payload<'a>,
    /// [`xattr_flags`].
    pub flags: i32,
    /// `FUSE_SETXATTR_*` (with `SETXATTR_EXT`).
    pub setxattr_flags: u32,
}

/// GETXATTR: with `size == 0` the caller asks only for the value's length.
#[derive(Clone, Copy, Debug)]
pub struct GetXattr<'a> {
    /// The node.
    pub node: NodeId,
    /// Attribute name.
    pub name: &'a [u8],
    /// Buffer size of the caller; 0 asks for the length.
    pub size: u32,
}

/// LISTXATTR: NUL-separated names; `size == 0` asks for the length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ListXattr {
    /// The node.
    pub node: NodeId,
    /// Buffer size of the caller; 0 asks for the length.
    pub size: u32,
}

/// REMOVEXATTR.
#[derive(Clone, Copy, Debug)]
pub struct RemoveXattr<'a> {
    /// The node.
    pub node: NodeId,
    /// Attribute name.
    pub name: &'a [u8],
}

/// FLUSH: sent on every `close(2)` of a file descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Flush {
    /// The file.
    pub node: NodeId,
    /// From OPEN.
    pub fh: FileHandle,
    /// Lock owner.
    pub lock_owner: u64,
}

/// OPENDIR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct OpenDir {
    /// The directory.
    pub node: NodeId,
    /// `open(2)` flags.
    pub flags: i32,
}

/// READDIR and READDIRPLUS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ReadDir {
    /// The directory.
    pub node: NodeId,
    /// From OPENDIR.
    pub fh: FileHandle,
    /// Where to continue: 0, or the `offset` of the last entry returned.
    pub offset: u64,
    /// Reply size limit in bytes.
    pub size: u32,
}

/// RELEASEDIR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ReleaseDir {
    /// The directory.
    pub node: NodeId,
    /// From OPENDIR.
    pub fh: FileHandle,
    /// The open flags.
    pub flags: i32,
}

/// FSYNCDIR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct FsyncDir {
    /// The directory.
    pub node: NodeId,
    /// From OPENDIR.
    pub fh: FileHandle,
    /// Only data.
    pub datasync: bool,
}

/// ACCESS (only sent without `default_permissions`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Access {
    /// The node.
    pub node: NodeId,
    /// `R_OK | W_OK | X_OK`, or `F_OK` (0).
    pub mask: u32,
}

/// CREATE: create and open a regular file.
#[derive(Clone, Copy, Debug)]
pub struct Create<'a> {
    /// The directory.
    pub parent: NodeId,
    /// The new file's name.
    pub name: &'a [u8],
    /// Type and permission bits.
    pub mode: u32,
    /// The caller's umask.
    pub umask: u32,
    /// `open(2)` flags.
    pub flags: i32,
    /// `FUSE_OPEN_KILL_SUIDGID`.
    pub kill_suidgid: bool,
}

/// INTERRUPT: the caller of request `target` got a signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Interrupt {
    /// The interrupted request.
    pub target: RequestId,
}

/// `fallocate(2)` modes.
pub mod fallocate_mode {
    /// Do not change the file size.
    pub const FALLOC_FL_KEEP_SIZE: i32 = 0x01;
    /// Deallocate the range (with `KEEP_SIZE`).
    pub const FALLOC_FL_PUNCH_HOLE: i32 = 0x02;
    /// Remove the range, shifting what follows.
    pub const FALLOC_FL_COLLAPSE_RANGE: i32 = 0x08;
    /// Zero the range.
    pub const FALLOC_FL_ZERO_RANGE: i32 = 0x10;
    /// Insert a hole, shifting what follows.
    pub const FALLOC_FL_INSERT_RANGE: i32 = 0x20;
    /// Unshare shared blocks.
    pub const FALLOC_FL_UNSHARE_RANGE: i32 = 0x40;
}

/// FALLOCATE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Fallocate {
    /// The file.
    pub node: NodeId,
    /// From OPEN.
    pub fh: FileHandle,
    /// Start of the range.
    pub offset: u64,
    /// Length of the range.
    pub length: u64,
    /// [`fallocate_mode`] bits.
    pub mode: i32,
}

/// `lseek(2)` whence values the kernel forwards.
pub mod whence {
    /// Next data at or after the offset.
    pub const SEEK_DATA: u32 = 3;
    /// Next hole at or after the offset.
    pub const SEEK_HOLE: u32 = 4;
}

/// LSEEK (the kernel forwards only `SEEK_DATA` and `SEEK_HOLE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Lseek {
    /// The file.
    pub node: NodeId,
    /// From OPEN.
    pub fh: FileHandle,
    /// Start offset.
    pub offset: u64,
    /// [`whence`].
    pub whence: u32,
}

/// COPY_FILE_RANGE and COPY_FILE_RANGE_64.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CopyFileRange {
    /// Source file.
    pub node_in: NodeId,
    /// Source handle.
    pub fh_in: FileHandle,
    /// Source offset.
    pub offset_in: u64,
    /// Destination file.
    pub node_out: NodeId,
    /// Destination handle.
    pub fh_out: FileHandle,
    /// Destination offset.
    pub offset_out: u64,
    /// Bytes to copy.
    pub len: u64,
    /// `copy_file_range(2)` flags (must be 0 today).
    pub flags: u64,
}

/// TMPFILE: create an unnamed regular file in `parent` (`O_TMPFILE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TmpFile {
    /// The directory.
    pub parent: NodeId,
    /// Type and permission bits.
    pub mode: u32,
    /// The caller's umask.
    pub umask: u32,
    /// `open(2)` flags.
    pub flags: i32,
}

/// A parsed request.
#[derive(Clone, Copy, Debug)]
pub enum Operation<'a> {
    /// INIT (handled by the runtime). The struct is zero-extended when the
    /// kernel sent the pre-7.36 16-byte form.
    Init(abi::fuse_init_in),
    /// DESTROY (handled by the runtime, then [`crate::Filesystem::destroy`]).
    Destroy,
    /// INTERRUPT.
    Interrupt(Interrupt),
    /// LOOKUP.
    Lookup(Lookup<'a>),
    /// FORGET.
    Forget(Forget),
    /// BATCH_FORGET.
    BatchForget(BatchForget<'a>),
    /// GETATTR.
    GetAttr(GetAttr),
    /// SETATTR.
    SetAttr(SetAttr),
    /// READLINK.
    ReadLink(ReadLink),
    /// SYMLINK.
    Symlink(Symlink<'a>),
    /// MKNOD.
    MkNod(MkNod<'a>),
    /// MKDIR.
    MkDir(MkDir<'a>),
    /// UNLINK.
    Unlink(Unlink<'a>),
    /// RMDIR.
    RmDir(RmDir<'a>),
    /// RENAME / RENAME2.
    Rename(Rename<'a>),
    /// LINK.
    Link(Link<'a>),
    /// OPEN.
    Open(Open),
    /// READ.
    Read(Read),
    /// WRITE.
    Write(Write<'a>),
    /// STATFS.
    StatFs(StatFs),
    /// RELEASE.
    Release(Release),
    /// FSYNC.
    Fsync(Fsync),
    /// SETXATTR.
    SetXattr(SetXattr<'a>),
    /// GETXATTR.
    GetXattr(GetXattr<'a>),
    /// LISTXATTR.
    ListXattr(ListXattr),
    /// REMOVEXATTR.
    RemoveXattr(RemoveXattr<'a>),
    /// FLUSH.
    Flush(Flush),
    /// OPENDIR.
    OpenDir(OpenDir),
    /// READDIR.
    ReadDir(ReadDir),
    /// READDIRPLUS.
    ReadDirPlus(ReadDir),
    /// RELEASEDIR.
    ReleaseDir(ReleaseDir),
    /// FSYNCDIR.
    FsyncDir(FsyncDir),
    /// ACCESS.
    Access(Access),
    /// CREATE.
    Create(Create<'a>),
    /// FALLOCATE.
    Fallocate(Fallocate),
    /// LSEEK.
    Lseek(Lseek),
    /// COPY_FILE_RANGE (`wide == false`) and COPY_FILE_RANGE_64.
    CopyFileRange {
        /// The arguments.
        args: CopyFileRange,
        /// Reply with `fuse_copy_file_range_out` (64-bit count).
        wide: bool,
    },
    /// TMPFILE.
    TmpFile(TmpFile),
    /// SYNCFS.
    SyncFs(StatFs),
    /// A request this runtime knows but does not serve (answered `ENOSYS`).
    Unsupported(abi::Opcode),
    /// An opcode this ABI does not know (answered `ENOSYS`).
    Unknown(u32),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_slices_cover_exactly_the_payload_across_segments() {
        let a = [1u8, 2, 3, 4];
        let b = [5u8, 6];
        let c = [7u8, 8, 9];
        let segs: [&[u8]; 3] = [&a, &b, &c];
        let p = Payload::new(&segs, 2, 6).unwrap();
        let got: heapless::Vec<&[u8], 4> = p.slices().collect();
        assert_eq!(got.as_slice(), &[&[3u8, 4][..], &[5, 6], &[7, 8]]);
        let mut dst = [0u8; 10];
        assert_eq!(p.copy_to(&mut dst), 6);
        assert_eq!(&dst[..6], &[3, 4, 5, 6, 7, 8]);
        assert_eq!(p.prefix(3).slices().count(), 2);
    }

    #[test]
    fn payload_longer_than_the_segments_is_refused() {
        let a = [1u8, 2, 3, 4];
        let segs: [&[u8]; 1] = [&a];
        assert!(Payload::new(&segs, 2, 3).is_none());
        assert!(Payload::new(&segs, 5, 0).is_none());
        assert!(Payload::new(&segs, 4, 0).is_some());
        assert!(Payload::new(&[], 0, 0).is_some());
    }

    #[test]
    fn empty_segments_are_skipped() {
        let a = [1u8, 2];
        let e: [u8; 0] = [];
        let segs: [&[u8]; 3] = [&a, &e, &a];
        let p = Payload::new(&segs, 2, 2).unwrap();
        let got: heapless::Vec<&[u8], 4> = p.slices().collect();
        assert_eq!(got.as_slice(), &[&[1u8, 2][..]]);
    }
}
