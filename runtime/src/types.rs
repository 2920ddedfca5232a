//! Identifiers and attribute types the filesystem sees.
//!
//! IDs are newtypes so that a node id cannot be passed where a file handle is
//! meant; their docs say who issues them and how long they live.

use core::time::Duration;

use crate::abi;

/// A node (inode) id as the kernel knows it.
///
/// Issued by the filesystem in entry replies (LOOKUP, CREATE, MKDIR, …);
/// every entry reply adds one to the node's *lookup count* in the kernel, and
/// FORGET / BATCH_FORGET subtract from it. A node may be reused for another
/// object only after its lookup count has dropped to zero (and, for the
/// kernel's caches, with a different `generation`). [`NodeId::ROOT`] is the
/// mount's root and is never forgotten.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(transparent)]
pub struct NodeId(pub u64);

impl NodeId {
    /// The root directory of the mount (`FUSE_ROOT_ID`).
    pub const ROOT: NodeId = NodeId(abi::FUSE_ROOT_ID);
}

/// A file handle: an opaque value the filesystem returns from OPEN, CREATE or
/// OPENDIR and gets back on every request made through that open file, until
/// the matching RELEASE / RELEASEDIR.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(transparent)]
pub struct FileHandle(pub u64);

/// The kernel's id for one request (`fuse_in_header.unique`).
///
/// Even for ordinary requests; an INTERRUPT names the request it interrupts
/// by this id. Ids are reused by the kernel after the reply is written, so an
/// id is only meaningful while its request is outstanding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(transparent)]
pub struct RequestId(pub u64);

/// Who asked: the caller's credentials and the request's ids, from the
/// request header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Request {
    /// This request's id.
    pub unique: RequestId,
    /// The node the request is about (0 for requests about no node).
    pub node: NodeId,
    /// Effective uid of the calling process (in the mount's user namespace).
    pub uid: u32,
    /// Effective gid of the calling process.
    pub gid: u32,
    /// Thread group id of the calling process (0 for kernel-internal requests).
    pub pid: u32,
}

/// A point in time as the kernel's attributes carry it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Timestamp {
    /// Seconds since the Unix epoch.
    pub secs: i64,
    /// Nanoseconds, `< 1_000_000_000`.
    pub nanos: u32,
}

impl Timestamp {
    /// A timestamp from seconds and nanoseconds.
    pub const fn new(secs: i64, nanos: u32) -> Timestamp {
        Timestamp { secs, nanos }
    }
}

/// The type of a directory entry, as `DT_*` values in `fuse_dirent.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FileType {
    /// `S_IFIFO`
    NamedPipe,
    /// `S_IFCHR`
    CharDevice,
    /// `S_IFDIR`
    Directory,
    /// `S_IFBLK`
    BlockDevice,
    /// `S_IFREG`
    RegularFile,
    /// `S_IFLNK`
    Symlink,
    /// `S_IFSOCK`
    Socket,
}

/// `S_IFMT` and the type bits of `st_mode`.
pub mod mode {
    /// Mask of the file type bits.
    pub const S_IFMT: u32 = 0o170000;
    /// Socket.
    pub const S_IFSOCK: u32 = 0o140000;
    /// Symbolic link.
    pub const S_IFLNK: u32 = 0o120000;
    /// Regular file.
    pub const S_IFREG: u32 = 0o100000;
    /// Block device.
    pub const S_IFBLK: u32 = 0o060000;
    /// Directory.
    pub const S_IFDIR: u32 = 0o040000;
    /// Character device.
    pub const S_IFCHR: u32 = 0o020000;
    /// FIFO.
    pub const S_IFIFO: u32 = 0o010000;
}

impl FileType {
    /// The type encoded in the `S_IFMT` bits of a mode, if it is a valid one.
    pub const fn from_mode(m: u32) -> Option<FileType> {
        Some(match m & mode::S_IFMT {
            mode::S_IFIFO => FileType::NamedPipe,
            mode::S_IFCHR => FileType::CharDevice,
            mode::S_IFDIR => FileType::Directory,
            mode::S_IFBLK => FileType::BlockDevice,
            mode::S_IFREG => FileType::RegularFile,
            mode::S_IFLNK => FileType::Symlink,
            mode::S_IFSOCK => FileType::Socket,
            _ => return None,
        })
    }

    /// The `S_IF*` bits of this type.
    pub const fn mode_bits(self) -> u32 {
        match self {
            FileType::NamedPipe => mode::S_IFIFO,
            FileType::CharDevice => mode::S_IFCHR,
            FileType::Directory => mode::S_IFDIR,
            FileType::BlockDevice => mode::S_IFBLK,
            FileType::RegularFile => mode::S_IFREG,
            FileType::Symlink => mode::S_IFLNK,
            FileType::Socket => mode::S_IFSOCK,
        }
    }

    /// The `DT_*` value of this type (`mode >> 12`).
    pub const fn dirent_type(self) -> u32 {
        self.mode_bits() >> 12
    }
}

/// A node's attributes, what `stat(2)` shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Attr {
    /// Inode number shown to `stat` (usually the node id).
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Storage used, in 512-byte units (`st_blocks`).
    pub blocks: u64,
    /// Last access.
    pub atime: Timestamp,
    /// Last data modification.
    pub mtime: Timestamp,
    /// Last status change.
    pub ctime: Timestamp,
    /// Type and permission bits (`st_mode`).
    pub mode: u32,
    /// Hard link count.
    pub nlink: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Device number for device nodes.
    pub rdev: u32,
    /// Preferred I/O size (`st_blksize`); 0 lets the kernel choose.
    pub blksize: u32,
}

impl Attr {
    /// The wire form of these attributes.
    pub fn to_abi(&self) -> abi::fuse_attr {
        // Times before 1970 travel as the two's complement of the negative
        // seconds, exactly as the kernel reads them back (`(s64)attr->mtime`).
        abi::fuse_attr {
            ino: self.ino,
            size: self.size,
            blocks: self.blocks,
            atime: self.atime.secs as u64,
            mtime: self.mtime.secs as u64,
            ctime: self.ctime.secs as u64,
            atimensec: self.atime.nanos,
            mtimensec: self.mtime.nanos,
            ctimensec: self.ctime.nanos,
            mode: self.mode,
            nlink: self.nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: self.rdev,
            blksize: self.blksize,
            flags: 0,
        }
    }
}

/// One directory entry as an entry reply carries it: the node, its
/// attributes and how long the kernel may cache each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Entry {
    /// The node this name resolves to; `NodeId(0)` is a negative entry
    /// ("no such name", cacheable for `entry_ttl`).
    pub node: NodeId,
    /// Generation: `(node, generation)` is unique for the filesystem's life.
    pub generation: u64,
    /// The node's attributes.
    pub attr: Attr,
    /// How long the kernel may cache the name.
    pub entry_ttl: Duration,
    /// How long the kernel may cache the attributes.
    pub attr_ttl: Duration,
}

impl Entry {
    /// The wire form of this entry.
    pub fn to_abi(&self) -> abi::fuse_entry_out {
        abi::fuse_entry_out {
            nodeid: self.node.0,
            generation: self.generation,
            entry_valid: self.entry_ttl.as_secs(),
            attr_valid: self.attr_ttl.as_secs(),
            entry_valid_nsec: self.entry_ttl.subsec_nanos(),
            attr_valid_nsec: self.attr_ttl.subsec_nanos(),
            attr: self.attr.to_abi(),
        }
    }
}

/// Filesystem-wide numbers for `statfs(2)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Statfs {
    /// Total data blocks, in `frsize` units.
    pub blocks: u64,
    /// Free blocks.
    pub bfree: u64,
    /// Free blocks available to unprivileged users.
    pub bavail: u64,
    /// Total inodes.
    pub files: u64,
    /// Free inodes.
    pub ffree: u64,
    /// Block size.
    pub bsize: u32,
    /// Longest name.
    pub namelen: u32,
    /// Fragment size (the unit of `blocks`).
    pub frsize: u32,
}

impl Statfs {
    /// The wire form.
    pub fn to_abi(&self) -> abi::fuse_kstatfs {
        abi::fuse_kstatfs {
            blocks: self.blocks,
            bfree: self.bfree,
            bavail: self.bavail,
            files: self.files,
            ffree: self.ffree,
            bsize: self.bsize,
            namelen: self.namelen,
            frsize: self.frsize,
            padding: 0,
            spare: [0; 6],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_types_round_trip_through_mode_bits() {
        for t in [
            FileType::NamedPipe,
            FileType::CharDevice,
            FileType::Directory,
            FileType::BlockDevice,
            FileType::RegularFile,
            FileType::Symlink,
            FileType::Socket,
        ] {
            assert_eq!(FileType::from_mode(t.mode_bits() | 0o644), Some(t));
        }
        assert_eq!(FileType::from_mode(0o644), None);
        assert_eq!(FileType::Directory.dirent_type(), 4);
        assert_eq!(FileType::RegularFile.dirent_type(), 8);
    }

    #[test]
    fn negative_times_travel_as_twos_complement() {
        let a = Attr {
            mtime: Timestamp::new(-1, 5),
            ..Attr::default()
        };
        let w = a.to_abi();
        assert_eq!(w.mtime as i64, -1);
        assert_eq!(w.mtimensec, 5);
    }

    #[test]
    fn entry_ttls_split_into_seconds_and_nanoseconds() {
        let e = Entry {
            node: NodeId(7),
            generation: 3,
            attr: Attr::default(),
            entry_ttl: Duration::new(2, 500),
            attr_ttl: Duration::from_millis(1500),
        };
        let w = e.to_abi();
        assert_eq!((w.nodeid, w.generation), (7, 3));
        assert_eq!((w.entry_valid, w.entry_valid_nsec), (2, 500));
        assert_eq!((w.attr_valid, w.attr_valid_nsec), (1, 500_000_000));
    }
}
