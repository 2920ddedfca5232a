//! The FUSE kernel ABI, declared once.
//!
//! This module mirrors `include/uapi/linux/fuse.h` at protocol **7.45** (Linux
//! 6.18's header; libfuse ships the same text as `include/fuse_kernel.h`).
//! Debian 12's `/usr/include/linux/fuse.h` stops at 7.38, so nothing here is
//! taken from the system headers.
//!
//! Rules kept in this file:
//! - Structs keep the kernel's names (`fuse_in_header`), fields and order, and
//!   each is followed by a size assertion against the header's layout. Fields
//!   newer than 7.26 (the oldest protocol this runtime serves) say "since 7.x".
//! - Every struct derives zerocopy's `FromBytes, IntoBytes, KnownLayout,
//!   Immutable`: reading one from the wire or writing one out is a checked
//!   copy, never a pointer cast. Padding is explicit, so `IntoBytes` can prove
//!   no uninitialised byte ever reaches the kernel.
//! - Opcodes are an enum built with [`Opcode::from_raw`], so an unknown opcode
//!   is a value the dispatcher answers with `ENOSYS`, never a panic.
//!
//! Protocol changelog, from the header, for the minors this runtime cares about:
//! 7.26 HANDLE_KILLPRIV, POSIX_ACL · 7.27 ABORT_ERROR · 7.28 COPY_FILE_RANGE,
//! MAX_PAGES + `max_pages`, CACHE_SYMLINKS · 7.29 NO_OPENDIR_SUPPORT · 7.31
//! WRITE_KILL_PRIV, `map_alignment` · 7.32 `fuse_attr.flags`, SUBMOUNTS · 7.33
//! HANDLE_KILLPRIV_V2, extended `fuse_setxattr_in`, SETXATTR_EXT · 7.34 SYNCFS
//! · 7.35 FOPEN_NOFLUSH · 7.36 `flags2` in INIT, SECURITY_CTX · 7.37 TMPFILE ·
//! 7.38 `fuse_in_header.total_extlen`, extension headers, PARALLEL_DIRECT_WRITES
//! · 7.39 STATX · 7.40 PASSTHROUGH, `backing_id`, HAS_RESEND · 7.41 ALLOW_IDMAP
//! · 7.42 OVER_IO_URING and the ring structs · 7.43 REQUEST_TIMEOUT · 7.44
//! NOTIFY_INC_EPOCH · 7.45 COPY_FILE_RANGE_64, `fuse_copy_file_range_out`,
//! NOTIFY_PRUNE.

#![allow(non_camel_case_types, missing_docs)]

use static_assertions::const_assert_eq;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Major protocol version this runtime speaks.
pub const FUSE_KERNEL_VERSION: u32 = 7;
/// Highest minor version this module mirrors.
pub const FUSE_KERNEL_MINOR_VERSION: u32 = 45;
/// Oldest minor version the runtime agrees to serve. 7.26 is what the kernels
/// of the oldest still-supported appliance distributions speak (Linux 4.14+).
pub const FUSE_MIN_MINOR_VERSION: u32 = 26;
/// The node ID of the root inode.
pub const FUSE_ROOT_ID: u64 = 1;
/// The kernel refuses a read of `/dev/fuse` that offers fewer bytes than this
/// (or than `sizeof(fuse_in_header) + sizeof(fuse_write_in) + max_write`).
pub const FUSE_MIN_READ_BUFFER: usize = 8192;
/// Longest name the kernel sends (it rejects longer ones before they reach us).
pub const FUSE_NAME_MAX: usize = 1024;

/// `fuse_attr` flags (since 7.32).
pub const FUSE_ATTR_SUBMOUNT: u32 = 1 << 0;
pub const FUSE_ATTR_DAX: u32 = 1 << 1;

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_attr {
    pub ino: u64,
    pub size: u64,
    pub blocks: u64,
    pub atime: u64,
    pub mtime: u64,
    pub ctime: u64,
    pub atimensec: u32,
    pub mtimensec: u32,
    pub ctimensec: u32,
    pub mode: u32,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u32,
    pub blksize: u32,
    /// Since 7.32 (was padding).
    pub flags: u32,
}
const_assert_eq!(core::mem::size_of::<fuse_attr>(), 88);

/// Bit-for-bit `struct statx_timestamp` (since 7.39).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_sx_time {
    pub tv_sec: i64,
    pub tv_nsec: u32,
    pub __reserved: i32,
}
const_assert_eq!(core::mem::size_of::<fuse_sx_time>(), 16);

/// Bit-for-bit `struct statx` (since 7.39).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_statx {
    pub mask: u32,
    pub blksize: u32,
    pub attributes: u64,
    pub nlink: u32,
    pub uid: u32,
    pub gid: u32,
    pub mode: u16,
    pub __spare0: [u16; 1],
    pub ino: u64,
    pub size: u64,
    pub blocks: u64,
    pub attributes_mask: u64,
    pub atime: fuse_sx_time,
    pub btime: fuse_sx_time,
    pub ctime: fuse_sx_time,
    pub mtime: fuse_sx_time,
    pub rdev_major: u32,
    pub rdev_minor: u32,
    pub dev_major: u32,
    pub dev_minor: u32,
    pub __spare2: [u64; 14],
}
const_assert_eq!(core::mem::size_of::<fuse_statx>(), 256);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_kstatfs {
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub bsize: u32,
    pub namelen: u32,
    pub frsize: u32,
    pub padding: u32,
    pub spare: [u32; 6],
}
const_assert_eq!(core::mem::size_of::<fuse_kstatfs>(), 80);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_file_lock {
    pub start: u64,
    pub end: u64,
    pub r#type: u32,
    /// tgid
    pub pid: u32,
}
const_assert_eq!(core::mem::size_of::<fuse_file_lock>(), 24);

/// Bitmasks for `fuse_setattr_in.valid`.
pub const FATTR_MODE: u32 = 1 << 0;
pub const FATTR_UID: u32 = 1 << 1;
pub const FATTR_GID: u32 = 1 << 2;
pub const FATTR_SIZE: u32 = 1 << 3;
pub const FATTR_ATIME: u32 = 1 << 4;
pub const FATTR_MTIME: u32 = 1 << 5;
pub const FATTR_FH: u32 = 1 << 6;
pub const FATTR_ATIME_NOW: u32 = 1 << 7;
pub const FATTR_MTIME_NOW: u32 = 1 << 8;
pub const FATTR_LOCKOWNER: u32 = 1 << 9;
pub const FATTR_CTIME: u32 = 1 << 10;
/// Since 7.33.
pub const FATTR_KILL_SUIDGID: u32 = 1 << 11;

/// Flags returned by OPEN / CREATE / OPENDIR.
pub const FOPEN_DIRECT_IO: u32 = 1 << 0;
pub const FOPEN_KEEP_CACHE: u32 = 1 << 1;
pub const FOPEN_NONSEEKABLE: u32 = 1 << 2;
pub const FOPEN_CACHE_DIR: u32 = 1 << 3;
pub const FOPEN_STREAM: u32 = 1 << 4;
/// Since 7.35.
pub const FOPEN_NOFLUSH: u32 = 1 << 5;
/// Since 7.38.
pub const FOPEN_PARALLEL_DIRECT_WRITES: u32 = 1 << 6;
/// Since 7.40.
pub const FOPEN_PASSTHROUGH: u32 = 1 << 7;

/// INIT request/reply flags (`flags`, and bits 32..63 in `flags2`).
pub const FUSE_ASYNC_READ: u64 = 1 << 0;
pub const FUSE_POSIX_LOCKS: u64 = 1 << 1;
pub const FUSE_FILE_OPS: u64 = 1 << 2;
pub const FUSE_ATOMIC_O_TRUNC: u64 = 1 << 3;
pub const FUSE_EXPORT_SUPPORT: u64 = 1 << 4;
pub const FUSE_BIG_WRITES: u64 = 1 << 5;
pub const FUSE_DONT_MASK: u64 = 1 << 6;
pub const FUSE_SPLICE_WRITE: u64 = 1 << 7;
pub const FUSE_SPLICE_MOVE: u64 = 1 << 8;
pub const FUSE_SPLICE_READ: u64 = 1 << 9;
pub const FUSE_FLOCK_LOCKS: u64 = 1 << 10;
pub const FUSE_HAS_IOCTL_DIR: u64 = 1 << 11;
pub const FUSE_AUTO_INVAL_DATA: u64 = 1 << 12;
pub const FUSE_DO_READDIRPLUS: u64 = 1 << 13;
pub const FUSE_READDIRPLUS_AUTO: u64 = 1 << 14;
pub const FUSE_ASYNC_DIO: u64 = 1 << 15;
pub const FUSE_WRITEBACK_CACHE: u64 = 1 << 16;
pub const FUSE_NO_OPEN_SUPPORT: u64 = 1 << 17;
pub const FUSE_PARALLEL_DIROPS: u64 = 1 << 18;
pub const FUSE_HANDLE_KILLPRIV: u64 = 1 << 19;
pub const FUSE_POSIX_ACL: u64 = 1 << 20;
pub const FUSE_ABORT_ERROR: u64 = 1 << 21;
pub const FUSE_MAX_PAGES: u64 = 1 << 22;
pub const FUSE_CACHE_SYMLINKS: u64 = 1 << 23;
pub const FUSE_NO_OPENDIR_SUPPORT: u64 = 1 << 24;
pub const FUSE_EXPLICIT_INVAL_DATA: u64 = 1 << 25;
pub const FUSE_MAP_ALIGNMENT: u64 = 1 << 26;
pub const FUSE_SUBMOUNTS: u64 = 1 << 27;
pub const FUSE_HANDLE_KILLPRIV_V2: u64 = 1 << 28;
pub const FUSE_SETXATTR_EXT: u64 = 1 << 29;
pub const FUSE_INIT_EXT: u64 = 1 << 30;
pub const FUSE_INIT_RESERVED: u64 = 1 << 31;
/// Since 7.36: bits 32..63 travel shifted down in `flags2`.
pub const FUSE_SECURITY_CTX: u64 = 1 << 32;
pub const FUSE_HAS_INODE_DAX: u64 = 1 << 33;
/// Since 7.38.
pub const FUSE_CREATE_SUPP_GROUP: u64 = 1 << 34;
pub const FUSE_HAS_EXPIRE_ONLY: u64 = 1 << 35;
/// Since 7.39.
pub const FUSE_DIRECT_IO_ALLOW_MMAP: u64 = 1 << 36;
/// Since 7.40.
pub const FUSE_PASSTHROUGH: u64 = 1 << 37;
pub const FUSE_NO_EXPORT_SUPPORT: u64 = 1 << 38;
pub const FUSE_HAS_RESEND: u64 = 1 << 39;
/// Since 7.41.
pub const FUSE_ALLOW_IDMAP: u64 = 1 << 40;
/// Since 7.42.
pub const FUSE_OVER_IO_URING: u64 = 1 << 41;
/// Since 7.43.
pub const FUSE_REQUEST_TIMEOUT: u64 = 1 << 42;

/// Splits 64 INIT flag bits into `flags` (low half) and `flags2` (high).
pub const fn split_flags(flags: u64) -> (u32, u32) {
    let low = (flags & 0xffff_ffff) as u32;
    let high = (flags >> 32) as u32;
    (low, high)
}

/// Release flags.
pub const FUSE_RELEASE_FLUSH: u32 = 1 << 0;
pub const FUSE_RELEASE_FLOCK_UNLOCK: u32 = 1 << 1;
/// Getattr flags.
pub const FUSE_GETATTR_FH: u32 = 1 << 0;
/// Lock flags.
pub const FUSE_LK_FLOCK: u32 = 1 << 0;
/// WRITE flags.
pub const FUSE_WRITE_CACHE: u32 = 1 << 0;
pub const FUSE_WRITE_LOCKOWNER: u32 = 1 << 1;
/// Since 7.33 (7.31 called it FUSE_WRITE_KILL_PRIV).
pub const FUSE_WRITE_KILL_SUIDGID: u32 = 1 << 2;
/// READ flags.
pub const FUSE_READ_LOCKOWNER: u32 = 1 << 1;
/// Fsync flags.
pub const FUSE_FSYNC_FDATASYNC: u32 = 1 << 0;
/// Open flags (`fuse_open_in.open_flags`, since 7.33).
pub const FUSE_OPEN_KILL_SUIDGID: u32 = 1 << 0;
/// Setxattr flags (`fuse_setxattr_in.setxattr_flags`, since 7.33).
pub const FUSE_SETXATTR_ACL_KILL_SGID: u32 = 1 << 0;
/// notify_inval_entry flags (since 7.38).
pub const FUSE_EXPIRE_ONLY: u32 = 1 << 0;

/// Ioctl flags.
pub const FUSE_IOCTL_COMPAT: u32 = 1 << 0;
pub const FUSE_IOCTL_UNRESTRICTED: u32 = 1 << 1;
pub const FUSE_IOCTL_RETRY: u32 = 1 << 2;
pub const FUSE_IOCTL_32BIT: u32 = 1 << 3;
pub const FUSE_IOCTL_DIR: u32 = 1 << 4;
pub const FUSE_IOCTL_COMPAT_X32: u32 = 1 << 5;
pub const FUSE_IOCTL_MAX_IOV: u32 = 256;
/// Poll flags.
pub const FUSE_POLL_SCHEDULE_NOTIFY: u32 = 1 << 0;

/// Extension types (since 7.38). Types 0..31 are secctx headers.
pub const FUSE_MAX_NR_SECCTX: u32 = 31;
pub const FUSE_EXT_GROUPS: u32 = 32;

/// The high bit of `unique` marks a resent request (since 7.40).
pub const FUSE_UNIQUE_RESEND: u64 = 1 << 63;
/// Interrupt requests carry the interrupted request's id with this bit set;
/// ordinary requests have it clear (`FUSE_INT_REQ_BIT` in fs/fuse/dev.c).
pub const FUSE_INT_REQ_BIT: u64 = 1 << 0;
/// Set by the kernel in `uid`/`gid` when an idmapping has no mapping (7.41).
pub const FUSE_INVALID_UIDGID: u32 = u32::MAX;

/// Request opcodes. `from_raw` maps every value the kernel may send, and
/// anything else to `None` (answered `ENOSYS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u32)]
pub enum Opcode {
    FUSE_LOOKUP = 1,
    /// No reply.
    FUSE_FORGET = 2,
    FUSE_GETATTR = 3,
    FUSE_SETATTR = 4,
    FUSE_READLINK = 5,
    FUSE_SYMLINK = 6,
    FUSE_MKNOD = 8,
    FUSE_MKDIR = 9,
    FUSE_UNLINK = 10,
    FUSE_RMDIR = 11,
    FUSE_RENAME = 12,
    FUSE_LINK = 13,
    FUSE_OPEN = 14,
    FUSE_READ = 15,
    FUSE_WRITE = 16,
    FUSE_STATFS = 17,
    FUSE_RELEASE = 18,
    FUSE_FSYNC = 20,
    FUSE_SETXATTR = 21,
    FUSE_GETXATTR = 22,
    FUSE_LISTXATTR = 23,
    FUSE_REMOVEXATTR = 24,
    FUSE_FLUSH = 25,
    FUSE_INIT = 26,
    FUSE_OPENDIR = 27,
    FUSE_READDIR = 28,
    FUSE_RELEASEDIR = 29,
    FUSE_FSYNCDIR = 30,
    FUSE_GETLK = 31,
    FUSE_SETLK = 32,
    FUSE_SETLKW = 33,
    FUSE_ACCESS = 34,
    FUSE_CREATE = 35,
    FUSE_INTERRUPT = 36,
    FUSE_BMAP = 37,
    FUSE_DESTROY = 38,
    FUSE_IOCTL = 39,
    FUSE_POLL = 40,
    FUSE_NOTIFY_REPLY = 41,
    /// No reply.
    FUSE_BATCH_FORGET = 42,
    FUSE_FALLOCATE = 43,
    FUSE_READDIRPLUS = 44,
    FUSE_RENAME2 = 45,
    FUSE_LSEEK = 46,
    FUSE_COPY_FILE_RANGE = 47,
    FUSE_SETUPMAPPING = 48,
    FUSE_REMOVEMAPPING = 49,
    /// Since 7.34.
    FUSE_SYNCFS = 50,
    /// Since 7.37.
    FUSE_TMPFILE = 51,
    /// Since 7.39.
    FUSE_STATX = 52,
    /// Since 7.45.
    FUSE_COPY_FILE_RANGE_64 = 53,
    CUSE_INIT = 4096,
}

impl Opcode {
    /// Number of distinct opcode slots in per-opcode counters: every value
    /// `from_raw` accepts maps to an index below this (CUSE_INIT to 54).
    pub const COUNT: usize = 55;

    /// The opcode for a raw header value, or `None` for one this ABI lacks.
    pub const fn from_raw(raw: u32) -> Option<Opcode> {
        use Opcode::*;
        Some(match raw {
            1 => FUSE_LOOKUP,
            2 => FUSE_FORGET,
            3 => FUSE_GETATTR,
            4 => FUSE_SETATTR,
            5 => FUSE_READLINK,
            6 => FUSE_SYMLINK,
            8 => FUSE_MKNOD,
            9 => FUSE_MKDIR,
            10 => FUSE_UNLINK,
            11 => FUSE_RMDIR,
            12 => FUSE_RENAME,
            13 => FUSE_LINK,
            14 => FUSE_OPEN,
            15 => FUSE_READ,
            16 => FUSE_WRITE,
            17 => FUSE_STATFS,
            18 => FUSE_RELEASE,
            20 => FUSE_FSYNC,
            21 => FUSE_SETXATTR,
            22 => FUSE_GETXATTR,
            23 => FUSE_LISTXATTR,
            24 => FUSE_REMOVEXATTR,
            25 => FUSE_FLUSH,
            26 => FUSE_INIT,
            27 => FUSE_OPENDIR,
            28 => FUSE_READDIR,
            29 => FUSE_RELEASEDIR,
            30 => FUSE_FSYNCDIR,
            31 => FUSE_GETLK,
            32 => FUSE_SETLK,
            33 => FUSE_SETLKW,
            34 => FUSE_ACCESS,
            35 => FUSE_CREATE,
            36 => FUSE_INTERRUPT,
            37 => FUSE_BMAP,
            38 => FUSE_DESTROY,
            39 => FUSE_IOCTL,
            40 => FUSE_POLL,
            41 => FUSE_NOTIFY_REPLY,
            42 => FUSE_BATCH_FORGET,
            43 => FUSE_FALLOCATE,
            44 => FUSE_READDIRPLUS,
            45 => FUSE_RENAME2,
            46 => FUSE_LSEEK,
            47 => FUSE_COPY_FILE_RANGE,
            48 => FUSE_SETUPMAPPING,
            49 => FUSE_REMOVEMAPPING,
            50 => FUSE_SYNCFS,
            51 => FUSE_TMPFILE,
            52 => FUSE_STATX,
            53 => FUSE_COPY_FILE_RANGE_64,
            4096 => CUSE_INIT,
            _ => return None,
        })
    }

    /// Index into per-opcode counter arrays (`< Opcode::COUNT`).
    pub const fn counter_index(self) -> usize {
        match self {
            Opcode::CUSE_INIT => 54,
            other => other as usize,
        }
    }

    /// The kernel's name without the `FUSE_` prefix, for logs and reports.
    pub const fn name(self) -> &'static str {
        use Opcode::*;
        match self {
            FUSE_LOOKUP => "LOOKUP",
            FUSE_FORGET => "FORGET",
            FUSE_GETATTR => "GETATTR",
            FUSE_SETATTR => "SETATTR",
            FUSE_READLINK => "READLINK",
            FUSE_SYMLINK => "SYMLINK",
            FUSE_MKNOD => "MKNOD",
            FUSE_MKDIR => "MKDIR",
            FUSE_UNLINK => "UNLINK",
            FUSE_RMDIR => "RMDIR",
            FUSE_RENAME => "RENAME",
            FUSE_LINK => "LINK",
            FUSE_OPEN => "OPEN",
            FUSE_READ => "READ",
            FUSE_WRITE => "WRITE",
            FUSE_STATFS => "STATFS",
            FUSE_RELEASE => "RELEASE",
            FUSE_FSYNC => "FSYNC",
            FUSE_SETXATTR => "SETXATTR",
            FUSE_GETXATTR => "GETXATTR",
            FUSE_LISTXATTR => "LISTXATTR",
            FUSE_REMOVEXATTR => "REMOVEXATTR",
            FUSE_FLUSH => "FLUSH",
            FUSE_INIT => "INIT",
            FUSE_OPENDIR => "OPENDIR",
            FUSE_READDIR => "READDIR",
            FUSE_RELEASEDIR => "RELEASEDIR",
            FUSE_FSYNCDIR => "FSYNCDIR",
            FUSE_GETLK => "GETLK",
            FUSE_SETLK => "SETLK",
            FUSE_SETLKW => "SETLKW",
            FUSE_ACCESS => "ACCESS",
            FUSE_CREATE => "CREATE",
            FUSE_INTERRUPT => "INTERRUPT",
            FUSE_BMAP => "BMAP",
            FUSE_DESTROY => "DESTROY",
            FUSE_IOCTL => "IOCTL",
            FUSE_POLL => "POLL",
            FUSE_NOTIFY_REPLY => "NOTIFY_REPLY",
            FUSE_BATCH_FORGET => "BATCH_FORGET",
            FUSE_FALLOCATE => "FALLOCATE",
            FUSE_READDIRPLUS => "READDIRPLUS",
            FUSE_RENAME2 => "RENAME2",
            FUSE_LSEEK => "LSEEK",
            FUSE_COPY_FILE_RANGE => "COPY_FILE_RANGE",
            FUSE_SETUPMAPPING => "SETUPMAPPING",
            FUSE_REMOVEMAPPING => "REMOVEMAPPING",
            FUSE_SYNCFS => "SYNCFS",
            FUSE_TMPFILE => "TMPFILE",
            FUSE_STATX => "STATX",
            FUSE_COPY_FILE_RANGE_64 => "COPY_FILE_RANGE_64",
            CUSE_INIT => "CUSE_INIT",
        }
    }
}

/// Unsolicited notification codes (sent with `unique == 0`).
pub const FUSE_NOTIFY_POLL: i32 = 1;
pub const FUSE_NOTIFY_INVAL_INODE: i32 = 2;
pub const FUSE_NOTIFY_INVAL_ENTRY: i32 = 3;
pub const FUSE_NOTIFY_STORE: i32 = 4;
pub const FUSE_NOTIFY_RETRIEVE: i32 = 5;
pub const FUSE_NOTIFY_DELETE: i32 = 6;
/// Since 7.40.
pub const FUSE_NOTIFY_RESEND: i32 = 7;
/// Since 7.44.
pub const FUSE_NOTIFY_INC_EPOCH: i32 = 8;
/// Since 7.45.
pub const FUSE_NOTIFY_PRUNE: i32 = 9;

pub const FUSE_COMPAT_ENTRY_OUT_SIZE: usize = 120;

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_entry_out {
    /// Inode ID.
    pub nodeid: u64,
    /// nodeid:generation must be unique for the filesystem's lifetime.
    pub generation: u64,
    /// Cache timeout for the name.
    pub entry_valid: u64,
    /// Cache timeout for the attributes.
    pub attr_valid: u64,
    pub entry_valid_nsec: u32,
    pub attr_valid_nsec: u32,
    pub attr: fuse_attr,
}
const_assert_eq!(core::mem::size_of::<fuse_entry_out>(), 128);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_forget_in {
    pub nlookup: u64,
}
const_assert_eq!(core::mem::size_of::<fuse_forget_in>(), 8);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_forget_one {
    pub nodeid: u64,
    pub nlookup: u64,
}
const_assert_eq!(core::mem::size_of::<fuse_forget_one>(), 16);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_batch_forget_in {
    pub count: u32,
    pub dummy: u32,
}
const_assert_eq!(core::mem::size_of::<fuse_batch_forget_in>(), 8);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_getattr_in {
    pub getattr_flags: u32,
    pub dummy: u32,
    pub fh: u64,
}
const_assert_eq!(core::mem::size_of::<fuse_getattr_in>(), 16);

pub const FUSE_COMPAT_ATTR_OUT_SIZE: usize = 96;

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_attr_out {
    /// Cache timeout for the attributes.
    pub attr_valid: u64,
    pub attr_valid_nsec: u32,
    pub dummy: u32,
    pub attr: fuse_attr,
}
const_assert_eq!(core::mem::size_of::<fuse_attr_out>(), 104);

/// Since 7.39.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_statx_in {
    pub getattr_flags: u32,
    pub reserved: u32,
    pub fh: u64,
    pub sx_flags: u32,
    pub sx_mask: u32,
}
const_assert_eq!(core::mem::size_of::<fuse_statx_in>(), 24);

/// Since 7.39.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_statx_out {
    pub attr_valid: u64,
    pub attr_valid_nsec: u32,
    pub flags: u32,
    pub spare: [u64; 2],
    pub stat: fuse_statx,
}
const_assert_eq!(core::mem::size_of::<fuse_statx_out>(), 288);

pub const FUSE_COMPAT_MKNOD_IN_SIZE: usize = 8;

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_mknod_in {
    pub mode: u32,
    pub rdev: u32,
    pub umask: u32,
    pub padding: u32,
}
const_assert_eq!(core::mem::size_of::<fuse_mknod_in>(), 16);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_mkdir_in {
    pub mode: u32,
    pub umask: u32,
}
const_assert_eq!(core::mem::size_of::<fuse_mkdir_in>(), 8);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_rename_in {
    pub newdir: u64,
}
const_assert_eq!(core::mem::size_of::<fuse_rename_in>(), 8);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_rename2_in {
    pub newdir: u64,
    pub flags: u32,
    pub padding: u32,
}
const_assert_eq!(core::mem::size_of::<fuse_rename2_in>(), 16);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_link_in {
    pub oldnodeid: u64,
}
const_assert_eq!(core::mem::size_of::<fuse_link_in>(), 8);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_setattr_in {
    pub valid: u32,
    pub padding: u32,
    pub fh: u64,
    pub size: u64,
    pub lock_owner: u64,
    pub atime: u64,
    pub mtime: u64,
    pub ctime: u64,
    pub atimensec: u32,
    pub mtimensec: u32,
    pub ctimensec: u32,
    pub mode: u32,
    pub unused4: u32,
    pub uid: u32,
    pub gid: u32,
    pub unused5: u32,
}
const_assert_eq!(core::mem::size_of::<fuse_setattr_in>(), 88);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_open_in {
    pub flags: u32,
    /// `FUSE_OPEN_*`, since 7.33 (was unused).
    pub open_flags: u32,
}
const_assert_eq!(core::mem::size_of::<fuse_open_in>(), 8);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_create_in {
    pub flags: u32,
    pub mode: u32,
    pub umask: u32,
    /// `FUSE_OPEN_*`, since 7.33 (was padding).
    pub open_flags: u32,
}
const_assert_eq!(core::mem::size_of::<fuse_create_in>(), 16);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_open_out {
    pub fh: u64,
    pub open_flags: u32,
    /// Since 7.40 (was padding).
    pub backing_id: i32,
}
const_assert_eq!(core::mem::size_of::<fuse_open_out>(), 16);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_release_in {
    pub fh: u64,
    pub flags: u32,
    pub release_flags: u32,
    pub lock_owner: u64,
}
const_assert_eq!(core::mem::size_of::<fuse_release_in>(), 24);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_flush_in {
    pub fh: u64,
    pub unused: u32,
    pub padding: u32,
    pub lock_owner: u64,
}
const_assert_eq!(core::mem::size_of::<fuse_flush_in>(), 24);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_read_in {
    pub fh: u64,
    pub offset: u64,
    pub size: u32,
    pub read_flags: u32,
    pub lock_owner: u64,
    pub flags: u32,
    pub padding: u32,
}
const_assert_eq!(core::mem::size_of::<fuse_read_in>(), 40);

pub const FUSE_COMPAT_WRITE_IN_SIZE: usize = 24;

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_write_in {
    pub fh: u64,
    pub offset: u64,
    pub size: u32,
    pub write_flags: u32,
    pub lock_owner: u64,
    pub flags: u32,
    pub padding: u32,
}
const_assert_eq!(core::mem::size_of::<fuse_write_in>(), 40);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_write_out {
    pub size: u32,
    pub padding: u32,
}
const_assert_eq!(core::mem::size_of::<fuse_write_out>(), 8);

pub const FUSE_COMPAT_STATFS_SIZE: usize = 48;

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_statfs_out {
    pub st: fuse_kstatfs,
}
const_assert_eq!(core::mem::size_of::<fuse_statfs_out>(), 80);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_fsync_in {
    pub fh: u64,
    pub fsync_flags: u32,
    pub padding: u32,
}
const_assert_eq!(core::mem::size_of::<fuse_fsync_in>(), 16);

/// Size of `fuse_setxattr_in` before 7.33 and whenever `FUSE_SETXATTR_EXT`
/// was not negotiated.
pub const FUSE_COMPAT_SETXATTR_IN_SIZE: usize = 8;

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_setxattr_in {
    pub size: u32,
    pub flags: u32,
    /// Since 7.33, only with `FUSE_SETXATTR_EXT`.
    pub setxattr_flags: u32,
    pub padding: u32,
}
const_assert_eq!(core::mem::size_of::<fuse_setxattr_in>(), 16);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_getxattr_in {
    pub size: u32,
    pub padding: u32,
}
const_assert_eq!(core::mem::size_of::<fuse_getxattr_in>(), 8);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_getxattr_out {
    pub size: u32,
    pub padding: u32,
}
const_assert_eq!(core::mem::size_of::<fuse_getxattr_out>(), 8);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_lk_in {
    pub fh: u64,
    pub owner: u64,
    pub lk: fuse_file_lock,
    pub lk_flags: u32,
    pub padding: u32,
}
const_assert_eq!(core::mem::size_of::<fuse_lk_in>(), 48);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_lk_out {
    pub lk: fuse_file_lock,
}
const_assert_eq!(core::mem::size_of::<fuse_lk_out>(), 24);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_access_in {
    pub mask: u32,
    pub padding: u32,
}
const_assert_eq!(core::mem::size_of::<fuse_access_in>(), 8);

/// Size of `fuse_init_in` the kernel sends before 7.36 (no `flags2`).
pub const FUSE_COMPAT_INIT_IN_SIZE: usize = 16;

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_init_in {
    pub major: u32,
    pub minor: u32,
    pub max_readahead: u32,
    pub flags: u32,
    /// Since 7.36, valid when `flags` has `FUSE_INIT_EXT`.
    pub flags2: u32,
    pub unused: [u32; 11],
}
const_assert_eq!(core::mem::size_of::<fuse_init_in>(), 64);

pub const FUSE_COMPAT_INIT_OUT_SIZE: usize = 8;
pub const FUSE_COMPAT_22_INIT_OUT_SIZE: usize = 24;

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_init_out {
    pub major: u32,
    pub minor: u32,
    pub max_readahead: u32,
    pub flags: u32,
    pub max_background: u16,
    pub congestion_threshold: u16,
    pub max_write: u32,
    pub time_gran: u32,
    /// Since 7.28.
    pub max_pages: u16,
    /// Since 7.31.
    pub map_alignment: u16,
    /// Since 7.36.
    pub flags2: u32,
    /// Since 7.40.
    pub max_stack_depth: u32,
    /// Since 7.43.
    pub request_timeout: u16,
    pub unused: [u16; 11],
}
const_assert_eq!(core::mem::size_of::<fuse_init_out>(), 64);

pub const CUSE_INIT_INFO_MAX: usize = 4096;

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct cuse_init_in {
    pub major: u32,
    pub minor: u32,
    pub unused: u32,
    pub flags: u32,
}
const_assert_eq!(core::mem::size_of::<cuse_init_in>(), 16);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct cuse_init_out {
    pub major: u32,
    pub minor: u32,
    pub unused: u32,
    pub flags: u32,
    pub max_read: u32,
    pub max_write: u32,
    /// chardev major
    pub dev_major: u32,
    /// chardev minor
    pub dev_minor: u32,
    pub spare: [u32; 10],
}
const_assert_eq!(core::mem::size_of::<cuse_init_out>(), 72);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_interrupt_in {
    pub unique: u64,
}
const_assert_eq!(core::mem::size_of::<fuse_interrupt_in>(), 8);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_bmap_in {
    pub block: u64,
    pub blocksize: u32,
    pub padding: u32,
}
const_assert_eq!(core::mem::size_of::<fuse_bmap_in>(), 16);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_bmap_out {
    pub block: u64,
}
const_assert_eq!(core::mem::size_of::<fuse_bmap_out>(), 8);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_ioctl_in {
    pub fh: u64,
    pub flags: u32,
    pub cmd: u32,
    pub arg: u64,
    pub in_size: u32,
    pub out_size: u32,
}
const_assert_eq!(core::mem::size_of::<fuse_ioctl_in>(), 32);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_ioctl_iovec {
    pub base: u64,
    pub len: u64,
}
const_assert_eq!(core::mem::size_of::<fuse_ioctl_iovec>(), 16);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_ioctl_out {
    pub result: i32,
    pub flags: u32,
    pub in_iovs: u32,
    pub out_iovs: u32,
}
const_assert_eq!(core::mem::size_of::<fuse_ioctl_out>(), 16);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_poll_in {
    pub fh: u64,
    pub kh: u64,
    pub flags: u32,
    pub events: u32,
}
const_assert_eq!(core::mem::size_of::<fuse_poll_in>(), 24);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_poll_out {
    pub revents: u32,
    pub padding: u32,
}
const_assert_eq!(core::mem::size_of::<fuse_poll_out>(), 8);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_notify_poll_wakeup_out {
    pub kh: u64,
}
const_assert_eq!(core::mem::size_of::<fuse_notify_poll_wakeup_out>(), 8);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_fallocate_in {
    pub fh: u64,
    pub offset: u64,
    pub length: u64,
    pub mode: u32,
    pub padding: u32,
}
const_assert_eq!(core::mem::size_of::<fuse_fallocate_in>(), 32);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_in_header {
    pub len: u32,
    pub opcode: u32,
    pub unique: u64,
    pub nodeid: u64,
    pub uid: u32,
    pub gid: u32,
    pub pid: u32,
    /// Length of extensions in 8-byte units, since 7.38 (was padding).
    pub total_extlen: u16,
    pub padding: u16,
}
const_assert_eq!(core::mem::size_of::<fuse_in_header>(), 40);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_out_header {
    pub len: u32,
    pub error: i32,
    pub unique: u64,
}
const_assert_eq!(core::mem::size_of::<fuse_out_header>(), 16);

/// The fixed part of `struct fuse_dirent`; `namelen` name bytes follow, and
/// the record is padded with zeros to a multiple of 8.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_dirent {
    pub ino: u64,
    pub off: u64,
    pub namelen: u32,
    pub r#type: u32,
}
const_assert_eq!(core::mem::size_of::<fuse_dirent>(), 24);
/// `FUSE_NAME_OFFSET`: where the name starts in a dirent record.
pub const FUSE_NAME_OFFSET: usize = 24;

/// The fixed part of `struct fuse_direntplus`; the name follows as above.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_direntplus {
    pub entry_out: fuse_entry_out,
    pub dirent: fuse_dirent,
}
const_assert_eq!(core::mem::size_of::<fuse_direntplus>(), 152);
/// `FUSE_NAME_OFFSET_DIRENTPLUS`.
pub const FUSE_NAME_OFFSET_DIRENTPLUS: usize = 152;

/// `FUSE_REC_ALIGN`: variable-length records are aligned to 8 bytes.
pub const fn fuse_rec_align(len: usize) -> usize {
    (len + 7) & !7
}

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_notify_inval_inode_out {
    pub ino: u64,
    pub off: i64,
    pub len: i64,
}
const_assert_eq!(core::mem::size_of::<fuse_notify_inval_inode_out>(), 24);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_notify_inval_entry_out {
    pub parent: u64,
    pub namelen: u32,
    /// Since 7.38 (was padding).
    pub flags: u32,
}
const_assert_eq!(core::mem::size_of::<fuse_notify_inval_entry_out>(), 16);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_notify_delete_out {
    pub parent: u64,
    pub child: u64,
    pub namelen: u32,
    pub padding: u32,
}
const_assert_eq!(core::mem::size_of::<fuse_notify_delete_out>(), 24);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_notify_store_out {
    pub nodeid: u64,
    pub offset: u64,
    pub size: u32,
    pub padding: u32,
}
const_assert_eq!(core::mem::size_of::<fuse_notify_store_out>(), 24);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_notify_retrieve_out {
    pub notify_unique: u64,
    pub nodeid: u64,
    pub offset: u64,
    pub size: u32,
    pub padding: u32,
}
const_assert_eq!(core::mem::size_of::<fuse_notify_retrieve_out>(), 32);

/// Matches the size of `fuse_write_in`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_notify_retrieve_in {
    pub dummy1: u64,
    pub offset: u64,
    pub size: u32,
    pub dummy2: u32,
    pub dummy3: u64,
    pub dummy4: u64,
}
const_assert_eq!(core::mem::size_of::<fuse_notify_retrieve_in>(), 40);

/// Since 7.45.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_notify_prune_out {
    pub count: u32,
    pub padding: u32,
    pub spare: u64,
}
const_assert_eq!(core::mem::size_of::<fuse_notify_prune_out>(), 16);

/// Since 7.40.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_backing_map {
    pub fd: i32,
    pub flags: u32,
    pub padding: u64,
}
const_assert_eq!(core::mem::size_of::<fuse_backing_map>(), 16);

/// Device ioctls: `FUSE_DEV_IOC_MAGIC` and the numbers under it.
pub const FUSE_DEV_IOC_MAGIC: u8 = 229;
/// `FUSE_DEV_IOC_CLONE = _IOR(229, 0, uint32_t)`: attach a new `/dev/fuse`
/// fd to an existing connection (the argument is the session fd).
pub const FUSE_DEV_IOC_CLONE_NR: u8 = 0;
/// `FUSE_DEV_IOC_BACKING_OPEN = _IOW(229, 1, struct fuse_backing_map)`.
pub const FUSE_DEV_IOC_BACKING_OPEN_NR: u8 = 1;
/// `FUSE_DEV_IOC_BACKING_CLOSE = _IOW(229, 2, uint32_t)`.
pub const FUSE_DEV_IOC_BACKING_CLOSE_NR: u8 = 2;
/// `FUSE_DEV_IOC_SYNC_INIT = _IO(229, 3)`.
pub const FUSE_DEV_IOC_SYNC_INIT_NR: u8 = 3;

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_lseek_in {
    pub fh: u64,
    pub offset: u64,
    pub whence: u32,
    pub padding: u32,
}
const_assert_eq!(core::mem::size_of::<fuse_lseek_in>(), 24);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_lseek_out {
    pub offset: u64,
}
const_assert_eq!(core::mem::size_of::<fuse_lseek_out>(), 8);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_copy_file_range_in {
    pub fh_in: u64,
    pub off_in: u64,
    pub nodeid_out: u64,
    pub fh_out: u64,
    pub off_out: u64,
    pub len: u64,
    pub flags: u64,
}
const_assert_eq!(core::mem::size_of::<fuse_copy_file_range_in>(), 56);

/// Reply of `FUSE_COPY_FILE_RANGE_64`, since 7.45.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_copy_file_range_out {
    pub bytes_copied: u64,
}
const_assert_eq!(core::mem::size_of::<fuse_copy_file_range_out>(), 8);

pub const FUSE_SETUPMAPPING_FLAG_WRITE: u64 = 1 << 0;
pub const FUSE_SETUPMAPPING_FLAG_READ: u64 = 1 << 1;

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_setupmapping_in {
    /// An already open handle.
    pub fh: u64,
    /// Offset into the file to start the mapping.
    pub foffset: u64,
    /// Length of mapping required.
    pub len: u64,
    /// `FUSE_SETUPMAPPING_FLAG_*`.
    pub flags: u64,
    /// Offset in the memory window.
    pub moffset: u64,
}
const_assert_eq!(core::mem::size_of::<fuse_setupmapping_in>(), 40);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_removemapping_in {
    /// Number of `fuse_removemapping_one` that follow.
    pub count: u32,
}
const_assert_eq!(core::mem::size_of::<fuse_removemapping_in>(), 4);

#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_removemapping_one {
    /// Offset into the DAX window to start the unmapping.
    pub moffset: u64,
    /// Length of the mapping.
    pub len: u64,
}
const_assert_eq!(core::mem::size_of::<fuse_removemapping_one>(), 16);

/// Since 7.34.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_syncfs_in {
    pub padding: u64,
}
const_assert_eq!(core::mem::size_of::<fuse_syncfs_in>(), 8);

/// One security context: followed by its name and the context label (7.36).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_secctx {
    pub size: u32,
    pub padding: u32,
}
const_assert_eq!(core::mem::size_of::<fuse_secctx>(), 8);

/// Count and total size of the security contexts that follow (7.36).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_secctx_header {
    pub size: u32,
    pub nr_secctx: u32,
}
const_assert_eq!(core::mem::size_of::<fuse_secctx_header>(), 8);

/// Extension header (7.38): `size` includes this header; `type` above
/// `FUSE_MAX_NR_SECCTX` distinguishes it from a `fuse_secctx_header`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_ext_header {
    pub size: u32,
    pub r#type: u32,
}
const_assert_eq!(core::mem::size_of::<fuse_ext_header>(), 8);

/// Fixed part of the supplementary-groups extension (7.38); `nr_groups`
/// u32 group ids follow.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_supp_groups {
    pub nr_groups: u32,
}
const_assert_eq!(core::mem::size_of::<fuse_supp_groups>(), 4);

/// Size of the in/out header area of an io_uring request (7.42).
pub const FUSE_URING_IN_OUT_HEADER_SZ: usize = 128;
/// Size of the per-opcode header area of an io_uring request (7.42).
pub const FUSE_URING_OP_IN_OUT_SZ: usize = 128;

/// Part of `fuse_uring_req_header` (7.42).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_uring_ent_in_out {
    pub flags: u64,
    /// Commit id to use in the reply (see `fuse_uring_cmd_req`).
    pub commit_id: u64,
    /// Size of the user payload buffer.
    pub payload_sz: u32,
    pub padding: u32,
    pub reserved: u64,
}
const_assert_eq!(core::mem::size_of::<fuse_uring_ent_in_out>(), 32);

/// Header of every FUSE-over-io_uring request (7.42).
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable)]
#[repr(C)]
pub struct fuse_uring_req_header {
    /// `fuse_in_header` / `fuse_out_header`.
    pub in_out: [u8; FUSE_URING_IN_OUT_HEADER_SZ],
    /// Per-opcode header.
    pub op_in: [u8; FUSE_URING_OP_IN_OUT_SZ],
    pub ring_ent_in_out: fuse_uring_ent_in_out,
}
const_assert_eq!(core::mem::size_of::<fuse_uring_req_header>(), 288);

/// SQE commands to the kernel (7.42).
pub const FUSE_IO_URING_CMD_INVALID: u32 = 0;
/// Register the request buffer and fetch a request.
pub const FUSE_IO_URING_CMD_REGISTER: u32 = 1;
/// Commit a result and fetch the next request.
pub const FUSE_IO_URING_CMD_COMMIT_AND_FETCH: u32 = 2;

/// In the 80-byte command area of the SQE (7.42).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable,
)]
#[repr(C)]
pub struct fuse_uring_cmd_req {
    pub flags: u64,
    /// Entry identifier for commits.
    pub commit_id: u64,
    /// Queue the command is for.
    pub qid: u16,
    pub padding: [u8; 6],
}
const_assert_eq!(core::mem::size_of::<fuse_uring_cmd_req>(), 24);

/// Bytes in front of a WRITE payload: the header plus `fuse_write_in`. The
/// receive buffer's first iovec has exactly this length so that WRITE data
/// lands at the start of a block.
pub const WRITE_HEADER_BYTES: usize =
    core::mem::size_of::<fuse_in_header>() + core::mem::size_of::<fuse_write_in>();
const_assert_eq!(WRITE_HEADER_BYTES, 80);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_accepted_opcode_round_trips_and_has_a_counter_slot() {
        let mut seen = 0;
        for raw in 0..=5000u32 {
            if let Some(op) = Opcode::from_raw(raw) {
                assert_eq!(op as u32, raw);
                assert!(op.counter_index() < Opcode::COUNT);
                assert!(!op.name().is_empty());
                seen += 1;
            }
        }
        // 53 FUSE opcodes (1..=53 minus the unused 7 and 19) + CUSE_INIT.
        assert_eq!(seen, 52);
    }

    #[test]
    fn unknown_opcodes_are_none() {
        for raw in [0, 7, 19, 54, 4095, 4097, u32::MAX, 436_207_616] {
            assert_eq!(Opcode::from_raw(raw), None, "{raw}");
        }
    }

    #[test]
    fn record_alignment_matches_the_kernel_macro() {
        assert_eq!(fuse_rec_align(0), 0);
        assert_eq!(fuse_rec_align(1), 8);
        assert_eq!(fuse_rec_align(24 + 3), 32);
        assert_eq!(fuse_rec_align(152 + 8), 160);
    }
}
