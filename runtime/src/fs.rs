//! The [`Filesystem`] trait: one method per operation.
//!
//! Methods take `&self` and may run on several workers at once: a filesystem
//! does its own locking (per node, so that reads of different files never
//! wait for each other). Each method gets the request's credentials, the
//! operation's arguments (borrowing from the message) and a reply object it
//! must consume; see [`crate::reply`]. Defaults answer `ENOSYS` (the kernel
//! then stops sending some of them, e.g. FLUSH, FSYNC, ACCESS) or succeed
//! where the kernel expects that of a filesystem without the feature
//! (OPEN, OPENDIR, RELEASE, RELEASEDIR, STATFS), as libfuse does.
//!
//! **Serving allocates nothing**: an implementation used with this runtime's
//! promise must not allocate in these methods either.

use rustix::io::Errno;

use crate::op::*;
use crate::reply::*;
use crate::types::{FileHandle, Request, Statfs};

/// What INIT negotiated, given to [`Filesystem::init`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ConnInfo {
    /// Protocol minor version in use (7.x).
    pub minor: u32,
    /// INIT flags both sides agreed on (`flags | flags2 << 32`).
    pub flags: u64,
    /// Largest WRITE payload the kernel will send.
    pub max_write: u32,
    /// Largest READ the kernel will ask for.
    pub max_read: u32,
    /// Read-ahead the kernel will do.
    pub max_readahead: u32,
    /// Pages per request.
    pub max_pages: u16,
}

/// A filesystem served by this runtime.
#[allow(unused_variables)]
pub trait Filesystem: Send + Sync {
    /// INIT features to ask the kernel for: [`crate::init::DEFAULT_INIT_FLAGS`]
    /// unless the filesystem implements what more need (e.g. add
    /// [`crate::init::READDIRPLUS`] with [`readdirplus`](Self::readdirplus),
    /// `FUSE_ATOMIC_O_TRUNC` when OPEN honours `O_TRUNC`).
    fn init_flags(&self) -> u64 {
        crate::init::DEFAULT_INIT_FLAGS
    }

    /// Called once INIT has been answered. Nothing is served before it
    /// returns on the worker that handled INIT.
    fn init(&self, conn: &ConnInfo) {}

    /// Called on DESTROY (some kernels send it at unmount).
    fn destroy(&self) {}

    /// The kernel interrupted request `op.target`. Deferred replies for it
    /// already report [`ReplyEntry::is_interrupted`] (and alike); answering
    /// `EINTR` lets the caller go. Synchronous filesystems ignore this.
    fn interrupt(&self, req: &Request, op: Interrupt) {}

    /// Resolve a name; reply with an entry (lookup count + 1) or `ENOENT`.
    fn lookup(&self, req: &Request, op: Lookup<'_>, reply: ReplyEntry<'_>) -> Replied {
        reply.error(Errno::NOSYS)
    }

    /// Drop lookups. No reply.
    fn forget(&self, req: &Request, op: Forget) {}

    /// Drop lookups of many nodes. No reply. Default: [`forget`](Self::forget) each.
    fn batch_forget(&self, req: &Request, op: BatchForget<'_>) {
        for f in op.iter() {
            self.forget(req, f);
        }
    }

    /// Attributes.
    fn getattr(&self, req: &Request, op: GetAttr, reply: ReplyAttr<'_>) -> Replied {
        reply.error(Errno::NOSYS)
    }

    /// Change attributes; reply with the new ones.
    fn setattr(&self, req: &Request, op: SetAttr, reply: ReplyAttr<'_>) -> Replied {
        reply.error(Errno::NOSYS)
    }

    /// A symlink's target.
    fn readlink(&self, req: &Request, op: ReadLink, reply: ReplyData<'_>) -> Replied {
        reply.error(Errno::NOSYS)
    }

    /// Create a symlink.
    fn symlink(&self, req: &Request, op: Symlink<'_>, reply: ReplyEntry<'_>) -> Replied {
        reply.error(Errno::NOSYS)
    }

    /// Create a node.
    fn mknod(&self, req: &Request, op: MkNod<'_>, reply: ReplyEntry<'_>) -> Replied {
        reply.error(Errno::NOSYS)
    }

    /// Create a directory.
    fn mkdir(&self, req: &Request, op: MkDir<'_>, reply: ReplyEntry<'_>) -> Replied {
        reply.error(Errno::NOSYS)
    }

    /// Remove a name.
    fn unlink(&self, req: &Request, op: Unlink<'_>, reply: ReplyEmpty<'_>) -> Replied {
        reply.error(Errno::NOSYS)
    }

    /// Remove an empty directory.
    fn rmdir(&self, req: &Request, op: RmDir<'_>, reply: ReplyEmpty<'_>) -> Replied {
        reply.error(Errno::NOSYS)
    }

    /// Rename (RENAME and RENAME2; see [`rename_flags`]).
    fn rename(&self, req: &Request, op: Rename<'_>, reply: ReplyEmpty<'_>) -> Replied {
        reply.error(Errno::NOSYS)
    }

    /// Hard link.
    fn link(&self, req: &Request, op: Link<'_>, reply: ReplyEntry<'_>) -> Replied {
        reply.error(Errno::NOSYS)
    }

    /// Open a file. Default: success, handle 0.
    fn open(&self, req: &Request, op: Open, reply: ReplyOpen<'_>) -> Replied {
        reply.opened(FileHandle(0), 0)
    }

    /// Read: answer with [`ReplyData::parts`] (zero copy from the
    /// filesystem's memory) or [`ReplyData::fill`] (into the worker's blocks).
    fn read(&self, req: &Request, op: Read, reply: ReplyData<'_>) -> Replied {
        reply.error(Errno::NOSYS)
    }

    /// Write: `op.data` is the payload as slices of the receive blocks.
    fn write(&self, req: &Request, op: Write<'_>, reply: ReplyWrite<'_>) -> Replied {
        reply.error(Errno::NOSYS)
    }

    /// Filesystem numbers. Default: all zero, names up to 255 bytes.
    fn statfs(&self, req: &Request, op: StatFs, reply: ReplyStatfs<'_>) -> Replied {
        reply.statfs(&Statfs {
            namelen: 255,
            bsize: 512,
            frsize: 512,
            ..Statfs::default()
        })
    }

    /// Last close of an open file. Default: success.
    fn release(&self, req: &Request, op: Release, reply: ReplyEmpty<'_>) -> Replied {
        reply.ok()
    }

    /// Sync a file.
    fn fsync(&self, req: &Request, op: Fsync, reply: ReplyEmpty<'_>) -> Replied {
        reply.error(Errno::NOSYS)
    }

    /// Set an extended attribute.
    fn setxattr(&self, req: &Request, op: SetXattr<'_>, reply: ReplyEmpty<'_>) -> Replied {
        reply.error(Errno::NOSYS)
    }

    /// Get an extended attribute (see [`ReplyXattr::value`]).
    fn getxattr(&self, req: &Request, op: GetXattr<'_>, reply: ReplyXattr<'_>) -> Replied {
        reply.error(Errno::NOSYS)
    }

    /// List extended attributes (see [`ReplyXattr::names`]).
    fn listxattr(&self, req: &Request, op: ListXattr, reply: ReplyXattr<'_>) -> Replied {
        reply.error(Errno::NOSYS)
    }

    /// Remove an extended attribute.
    fn removexattr(&self, req: &Request, op: RemoveXattr<'_>, reply: ReplyEmpty<'_>) -> Replied {
        reply.error(Errno::NOSYS)
    }

    /// A `close(2)` of a descriptor of this open file.
    fn flush(&self, req: &Request, op: Flush, reply: ReplyEmpty<'_>) -> Replied {
        reply.error(Errno::NOSYS)
    }

    /// Open a directory. Default: success, handle 0.
    fn opendir(&self, req: &Request, op: OpenDir, reply: ReplyOpen<'_>) -> Replied {
        reply.opened(FileHandle(0), 0)
    }

    /// List a directory from `op.offset` (see [`ReplyDirectory::add`]).
    fn readdir(&self, req: &Request, op: ReadDir, reply: ReplyDirectory<'_>) -> Replied {
        reply.error(Errno::NOSYS)
    }

    /// List a directory with attributes (see [`ReplyDirectoryPlus::add`]).
    fn readdirplus(&self, req: &Request, op: ReadDir, reply: ReplyDirectoryPlus<'_>) -> Replied {
        reply.error(Errno::NOSYS)
    }

    /// Last close of an open directory. Default: success.
    fn releasedir(&self, req: &Request, op: ReleaseDir, reply: ReplyEmpty<'_>) -> Replied {
        reply.ok()
    }

    /// Sync a directory.
    fn fsyncdir(&self, req: &Request, op: FsyncDir, reply: ReplyEmpty<'_>) -> Replied {
        reply.error(Errno::NOSYS)
    }

    /// Check access (only without `default_permissions`).
    fn access(&self, req: &Request, op: Access, reply: ReplyEmpty<'_>) -> Replied {
        reply.error(Errno::NOSYS)
    }

    /// Create and open a file.
    fn create(&self, req: &Request, op: Create<'_>, reply: ReplyCreate<'_>) -> Replied {
        reply.error(Errno::NOSYS)
    }

    /// Allocate, punch or zero a range.
    fn fallocate(&self, req: &Request, op: Fallocate, reply: ReplyEmpty<'_>) -> Replied {
        reply.error(Errno::NOSYS)
    }

    /// `SEEK_DATA` / `SEEK_HOLE`.
    fn lseek(&self, req: &Request, op: Lseek, reply: ReplyLseek<'_>) -> Replied {
        reply.error(Errno::NOSYS)
    }

    /// Copy a range between files.
    fn copy_file_range(&self, req: &Request, op: CopyFileRange, reply: ReplyWrite<'_>) -> Replied {
        reply.error(Errno::NOSYS)
    }

    /// Create an unnamed file (`O_TMPFILE`).
    fn tmpfile(&self, req: &Request, op: TmpFile, reply: ReplyCreate<'_>) -> Replied {
        reply.error(Errno::NOSYS)
    }

    /// Sync the whole filesystem.
    fn syncfs(&self, req: &Request, op: StatFs, reply: ReplyEmpty<'_>) -> Replied {
        reply.error(Errno::NOSYS)
    }
}
