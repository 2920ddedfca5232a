//! slabfuse-memfs: a fixed-budget in-memory filesystem that behaves like
//! tmpfs wherever FUSE allows.
//!
//! Everything it will ever use is laid out by [`MemFs::new`]: the data
//! slab of 4 KiB chunks (a [`slabfuse::pool::Slab`], on transparent huge
//! pages when the kernel gives them) and fixed metadata tables sized from
//! the configuration (`plan.rs` explains each formula). Serving
//! allocates nothing: a full table or a full budget is `ENOSPC`, and
//! freeing makes room again.
//!
//! The modules, bottom up:
//!
//! - `sync`: futex locks and the lock-free index free list of every table.
//! - `store`: chunks, their goal-based allocator (a lock-free bitmap that
//!   keeps each file's chunks neighbours in the slab) and per-object chunk
//!   maps (radix trees); zero-copy reads; the one file with `unsafe`
//!   (`store/raw.rs`).
//! - `names`, `dir`: the name arena and the directory-entry arena with its
//!   name and cookie hash indexes.
//! - `node`: the inode table, one lock per inode.
//! - `common`: lookup counts, retiring and freeing inodes, lock ordering,
//!   the entries and attributes replies carry.
//! - `plan`: the sizing formulas; `error`: the internal errors and their
//!   errnos.
//! - `namespace`, `file`, `xattr`: the operations.
//! - [`options`]: the command-line settings the daemon and the appliance
//!   image share, and their parsers.
//!
//! Concurrency: every operation locks the inodes it touches, never a
//! global lock: reads of different files never wait for each other, and a
//! 16 MiB write to one file holds only that file.
#![no_std]
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

mod acl;
mod common;
mod dir;
mod error;
mod file;
mod names;
mod namespace;
mod node;
pub mod options;
mod plan;
mod store;
mod sync;
mod xattr;

use ::core::fmt;
use ::core::time::Duration;

use slabfuse::abi::{
    FUSE_ATOMIC_O_TRUNC, FUSE_DIRECT_IO_ALLOW_MMAP, FUSE_DONT_MASK, FUSE_EXPORT_SUPPORT,
    FUSE_POSIX_ACL,
};
use slabfuse::op::*;
use slabfuse::pool::{Backing, BackingRequest, LockStatus, SlabError};
use slabfuse::types::mode::{
    S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG, S_IFSOCK,
};
use slabfuse::{
    Errno, FileHandle, Filesystem, Replied, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen, ReplyStatfs, ReplyWrite,
    ReplyXattr, Request, Statfs,
};

use crate::dir::Entries;
use crate::error::Error;
use crate::names::Names;
use crate::namespace::NewNode;
use crate::node::Table;
use crate::plan::Layout;
use crate::store::{CHUNK_BYTES, Storage};

/// What memfs is built with: the budget, fixed at start-up.
#[derive(Clone, Copy, Debug)]
pub struct MemFsConfig {
    /// Bytes of file data (and xattr values, long symlink targets) it may hold.
    pub size_bytes: u64,
    /// Inodes (files, directories, symlinks, …) it may hold, root included.
    pub inodes: u32,
    /// Backing for the data slab.
    pub backing: BackingRequest,
    /// Lock the data slab in memory.
    pub lock: bool,
    /// Root directory's permission bits (`mode=`).
    pub root_mode: u32,
    /// Root directory's owner (`uid=`).
    pub root_uid: u32,
    /// Root directory's group (`gid=`).
    pub root_gid: u32,
    /// How long the kernel may cache a name (and a "no such name"),
    /// milliseconds. memfs changes nothing on its own: every change comes
    /// through the one kernel that caches, which updates or drops what it
    /// cached (a new name is instantiated, a removed or renamed one is
    /// dropped or moved). So a cached name is never stale, and the default
    /// is long: 1 day. (libfuse's default is 1 s; with it, a walk after a
    /// pause costs a LOOKUP per component.)
    pub entry_ttl_ms: u32,
    /// How long the kernel may cache attributes, milliseconds. The kernel
    /// drops them itself after every operation that changes them (a
    /// directory's after each change to its entries, a file's after
    /// WRITE, FALLOCATE, COPY_FILE_RANGE and truncating OPEN, atime after
    /// READ, READDIR and READLINK, ctime after LINK, UNLINK, RENAME and
    /// xattr changes; SETATTR answers with the new ones), and memfs changes
    /// attributes only in those requests: exact, so also 1 day by default.
    /// `tests/tests/memfs_diff.rs` checks it (the cached view against a
    /// fresh one after the kernel dropped its caches), as do the tmpfs
    /// comparisons and pjdfstest.
    pub attr_ttl_ms: u32,
    /// Open regular files with `FOPEN_DIRECT_IO` (no page cache; shared
    /// mmap still works through `FUSE_DIRECT_IO_ALLOW_MMAP`). Off: the
    /// page cache is used like tmpfs's, and `O_DIRECT` opens bypass it.
    pub direct_io: bool,
    /// Open regular files with `FOPEN_KEEP_CACHE`: cached pages survive a
    /// reopen (faster re-reads), but reads served from the cache do not
    /// update atime as tmpfs would. Off by default.
    pub keep_cache: bool,
    /// POSIX ACLs (`FUSE_POSIX_ACL`, see `acl.rs`): on by default, as on
    /// tmpfs. The kernel then checks permissions itself whatever the mount
    /// says, so a mount without `default_permissions` must turn this off.
    pub posix_acl: bool,
}

/// One day in milliseconds: the default entry and attribute TTLs.
const DAY_MS: u32 = 24 * 60 * 60 * 1000;

impl Default for MemFsConfig {
    fn default() -> MemFsConfig {
        MemFsConfig {
            size_bytes: 64 << 20,
            inodes: 65536,
            backing: BackingRequest::Auto,
            lock: true,
            root_mode: 0o1777,
            root_uid: 0,
            root_gid: 0,
            entry_ttl_ms: DAY_MS,
            attr_ttl_ms: DAY_MS,
            direct_io: false,
            keep_cache: false,
            posix_acl: true,
        }
    }
}

/// What memfs laid out at start-up: printed in the daemon's plan line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoragePlan {
    /// Data budget, bytes: `size_bytes` rounded down to whole 4 KiB chunks.
    /// File data, xattr blobs and symlink targets of 128 bytes or more
    /// count against it; metadata does not (see `metadata_bytes`).
    pub data_bytes: u64,
    /// Inode table capacity.
    pub inodes: u32,
    /// Bytes mapped or allocated for storage and metadata, in total:
    /// `slab_bytes + metadata_bytes`, all touched at start-up.
    pub mapped_bytes: u64,
    /// Backing of the data slab.
    pub backing: Backing,
    /// Whether the data slab is locked.
    pub lock: LockStatus,
    /// Bytes the data slab maps (chunks plus the pool's free-list links).
    pub slab_bytes: u64,
    /// Heap bytes of the metadata tables (inodes, directory entries,
    /// names, chunk-map nodes), **on top of** the data budget.
    pub metadata_bytes: u64,
    /// Directory entries (names, hard links, whiteouts) it may hold.
    pub dirents: u32,
    /// 32-byte name segments.
    pub name_segments: u32,
    /// 64-byte chunk-map nodes.
    pub tree_nodes: u32,
}

/// Why memfs could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemFsError {
    /// The budget is unusable (too small or too large).
    Budget,
    /// Mapping the data slab failed.
    Slab(SlabError),
}

impl fmt::Display for MemFsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemFsError::Budget => write!(
                f,
                "unusable storage budget (need 4 KiB to 8 TiB of data and 1 to 2^30 inodes)"
            ),
            MemFsError::Slab(e) => write!(f, "data slab: {e}"),
        }
    }
}

impl ::core::error::Error for MemFsError {}

/// The filesystem.
pub struct MemFs {
    plan: StoragePlan,
    config: MemFsConfig,
    entry_ttl: Duration,
    attr_ttl: Duration,
    store: Storage,
    names: Names,
    entries: Entries,
    inodes: Table,
    /// READs answered by copying (see [`MemFs::reads_copied`]).
    reads_copied: ::core::sync::atomic::AtomicU64,
}

impl MemFs {
    /// Lays out all storage for `config`.
    pub fn new(config: &MemFsConfig) -> Result<MemFs, MemFsError> {
        let layout = Layout::compute(config).map_err(|_| MemFsError::Budget)?;
        let store = Storage::new(layout.chunks, layout.nodes, config.backing, config.lock)
            .map_err(MemFsError::Slab)?;
        let slab_bytes = store.slab().mapped_bytes() as u64;
        let metadata_bytes = layout.metadata_bytes();
        let plan = StoragePlan {
            data_bytes: u64::from(layout.chunks) * CHUNK_BYTES as u64,
            inodes: layout.inodes,
            mapped_bytes: slab_bytes + metadata_bytes,
            backing: store.slab().backing(),
            lock: store.slab().lock_status(),
            slab_bytes,
            metadata_bytes,
            dirents: layout.dirents,
            name_segments: layout.name_segments,
            tree_nodes: layout.nodes,
        };
        let fs = MemFs {
            plan,
            config: *config,
            entry_ttl: Duration::from_millis(u64::from(config.entry_ttl_ms)),
            attr_ttl: Duration::from_millis(u64::from(config.attr_ttl_ms)),
            store,
            names: Names::new(layout.name_segments),
            entries: Entries::new(layout.dirents),
            inodes: Table::new(layout.inodes),
            reads_copied: ::core::sync::atomic::AtomicU64::new(0),
        };
        {
            let mut root = fs.wlock(0);
            root.init(
                S_IFDIR | (config.root_mode & 0o7777),
                config.root_uid,
                config.root_gid,
                0,
                crate::common::now(),
            );
            root.nlink = 2;
            root.parent = 0;
        }
        fs.inodes
            .slot(0)
            .parent
            .store(0, ::core::sync::atomic::Ordering::Relaxed);
        Ok(fs)
    }

    /// What was laid out.
    pub fn storage_plan(&self) -> StoragePlan {
        self.plan
    }

    /// Bytes of the data budget in use right now (whole chunks).
    pub fn used_bytes(&self) -> u64 {
        (self.store.chunks_total() - self.store.chunks_free()) * CHUNK_BYTES as u64
    }

    /// Inodes in use right now, the root included (unlinked files count
    /// while open, as on tmpfs).
    pub fn inodes_used(&self) -> u32 {
        self.inodes.used()
    }

    /// Inode-table slots taken right now: the inodes in use plus those
    /// already freed whose FORGET the kernel has not sent yet.
    pub fn slots_used(&self) -> u32 {
        self.inodes.capacity() - self.inodes.free_count()
    }

    /// READs answered with a copy of the data instead of slices of the
    /// slab: those whose range is split in more runs of neighbouring chunks
    /// (and holes) than a reply has iovecs for (`MAX_DATA_PARTS`). A file
    /// written sequentially needs none, even for 16 MiB reads.
    pub fn reads_copied(&self) -> u64 {
        self.reads_copied
            .load(::core::sync::atomic::Ordering::Relaxed)
    }

    /// Free entries of the metadata arenas (directory entries, name
    /// segments, chunk-map nodes): when one runs out, creating names or
    /// mapping chunks fails with `ENOSPC` before the data budget does.
    pub fn arenas_free(&self) -> (u32, u32, u32) {
        (
            self.entries.free_count(),
            self.names.free_count(),
            self.store.nodes_free(),
        )
    }
}

/// Replies to an entry-making operation.
fn entry_reply(reply: ReplyEntry<'_>, r: error::Result<slabfuse::Entry>) -> Replied {
    match r {
        Ok(e) => reply.entry(&e),
        Err(e) => reply.error(e.errno()),
    }
}

fn empty_reply(reply: ReplyEmpty<'_>, r: error::Result<()>) -> Replied {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(e.errno()),
    }
}

fn is_valid_type(mode: u32) -> bool {
    matches!(
        mode & S_IFMT,
        S_IFREG | S_IFCHR | S_IFBLK | S_IFIFO | S_IFSOCK
    )
}

impl Filesystem for MemFs {
    fn init_flags(&self) -> u64 {
        let mut flags = slabfuse::init::DEFAULT_INIT_FLAGS
            | slabfuse::init::READDIRPLUS
            | FUSE_ATOMIC_O_TRUNC
            // LOOKUP answers "." and ".." (for NFS export and
            // open_by_handle_at), checked against the generation.
            | FUSE_EXPORT_SUPPORT;
        if self.config.direct_io {
            flags |= FUSE_DIRECT_IO_ALLOW_MMAP;
        }
        if self.config.posix_acl {
            // POSIX ACLs as tmpfs has them: the kernel enforces them, memfs
            // stores them, keeps the mode in step and passes default ACLs
            // on (acl.rs); so it also applies the umask itself.
            flags |= FUSE_POSIX_ACL | FUSE_DONT_MASK;
        }
        flags
    }

    fn lookup(&self, _req: &Request, op: Lookup<'_>, reply: ReplyEntry<'_>) -> Replied {
        entry_reply(reply, self.lookup_entry(op.parent, op.name))
    }

    fn forget(&self, _req: &Request, op: Forget) {
        if let Ok(id) = self.index(op.node) {
            self.forget_n(id, op.nlookup);
        }
    }

    fn getattr(&self, _req: &Request, op: GetAttr, reply: ReplyAttr<'_>) -> Replied {
        match self.attr_of(op.node) {
            Ok(a) => reply.attr(&a, self.attr_ttl),
            Err(e) => reply.error(e.errno()),
        }
    }

    fn setattr(&self, _req: &Request, op: SetAttr, reply: ReplyAttr<'_>) -> Replied {
        match self.set_attr(&op) {
            Ok(a) => reply.attr(&a, self.attr_ttl),
            Err(e) => reply.error(e.errno()),
        }
    }

    fn readlink(&self, _req: &Request, op: ReadLink, reply: ReplyData<'_>) -> Replied {
        self.read_link(op.node, reply)
    }

    fn symlink(&self, req: &Request, op: Symlink<'_>, reply: ReplyEntry<'_>) -> Replied {
        if op.target.is_empty() {
            return reply.error(Errno::NOENT);
        }
        let node = NewNode {
            mode: S_IFLNK | 0o777,
            rdev: 0,
            target: op.target,
            open: false,
            named: true,
            umask: 0,
        };
        entry_reply(
            reply,
            self.make(req, op.parent, op.name, node).map(|(_, e)| e),
        )
    }

    fn mknod(&self, req: &Request, op: MkNod<'_>, reply: ReplyEntry<'_>) -> Replied {
        let mut mode = op.mode;
        if mode & S_IFMT == 0 {
            mode |= S_IFREG;
        }
        if !is_valid_type(mode) {
            return reply.error(if mode & S_IFMT == S_IFDIR {
                Errno::PERM
            } else {
                Errno::INVAL
            });
        }
        let node = NewNode {
            mode: (mode & S_IFMT) | (mode & 0o7777),
            rdev: op.rdev,
            target: &[],
            open: false,
            named: true,
            umask: op.umask,
        };
        entry_reply(
            reply,
            self.make(req, op.parent, op.name, node).map(|(_, e)| e),
        )
    }

    fn mkdir(&self, req: &Request, op: MkDir<'_>, reply: ReplyEntry<'_>) -> Replied {
        let node = NewNode {
            mode: S_IFDIR | (op.mode & 0o7777),
            rdev: 0,
            target: &[],
            open: false,
            named: true,
            umask: op.umask,
        };
        entry_reply(
            reply,
            self.make(req, op.parent, op.name, node).map(|(_, e)| e),
        )
    }

    fn unlink(&self, _req: &Request, op: Unlink<'_>, reply: ReplyEmpty<'_>) -> Replied {
        empty_reply(reply, self.remove(op.parent, op.name, false))
    }

    fn rmdir(&self, _req: &Request, op: RmDir<'_>, reply: ReplyEmpty<'_>) -> Replied {
        empty_reply(reply, self.remove(op.parent, op.name, true))
    }

    fn rename(&self, req: &Request, op: Rename<'_>, reply: ReplyEmpty<'_>) -> Replied {
        let r = self.rename_node(
            req,
            op.parent,
            op.name,
            op.new_parent,
            op.new_name,
            op.flags,
        );
        empty_reply(reply, r)
    }

    fn link(&self, _req: &Request, op: Link<'_>, reply: ReplyEntry<'_>) -> Replied {
        entry_reply(reply, self.link_node(op.node, op.new_parent, op.new_name))
    }

    fn open(&self, _req: &Request, op: Open, reply: ReplyOpen<'_>) -> Replied {
        match self.open_file(op.node, op.flags, op.kill_suidgid) {
            Ok(flags) => reply.opened(FileHandle(0), flags),
            Err(e) => reply.error(e.errno()),
        }
    }

    fn read(&self, _req: &Request, op: Read, reply: ReplyData<'_>) -> Replied {
        self.read_file(op.node, op.offset, op.size, reply)
    }

    fn write(&self, _req: &Request, op: Write<'_>, reply: ReplyWrite<'_>) -> Replied {
        let kill = op.write_flags & slabfuse::abi::FUSE_WRITE_KILL_SUIDGID != 0;
        match self.write_data(op.node, op.offset, op.data.len(), op.data.slices(), kill) {
            Ok(n) => reply.written(n as u64),
            Err(e) => reply.error(e.errno()),
        }
    }

    fn statfs(&self, _req: &Request, _op: StatFs, reply: ReplyStatfs<'_>) -> Replied {
        let free = self.store.chunks_free();
        reply.statfs(&Statfs {
            blocks: self.store.chunks_total(),
            bfree: free,
            bavail: free,
            files: u64::from(self.inodes.limit()),
            ffree: u64::from(self.inodes.limit() - self.inodes.used()),
            bsize: CHUNK_BYTES as u32,
            namelen: 255,
            frsize: CHUNK_BYTES as u32,
        })
    }

    fn release(&self, _req: &Request, op: Release, reply: ReplyEmpty<'_>) -> Replied {
        self.release_file(op.node);
        reply.ok()
    }

    fn fsync(&self, _req: &Request, _op: Fsync, reply: ReplyEmpty<'_>) -> Replied {
        reply.ok()
    }

    fn setxattr(&self, _req: &Request, op: SetXattr<'_>, reply: ReplyEmpty<'_>) -> Replied {
        let r = self.set_xattr(
            op.node,
            op.name,
            op.value.len(),
            op.value.slices(),
            op.flags,
            op.setxattr_flags,
        );
        empty_reply(reply, r)
    }

    fn getxattr(&self, _req: &Request, op: GetXattr<'_>, reply: ReplyXattr<'_>) -> Replied {
        self.get_xattr(op.node, op.name, reply)
    }

    fn listxattr(&self, req: &Request, op: ListXattr, reply: ReplyXattr<'_>) -> Replied {
        self.list_xattr(req, op.node, reply)
    }

    fn removexattr(&self, _req: &Request, op: RemoveXattr<'_>, reply: ReplyEmpty<'_>) -> Replied {
        empty_reply(reply, self.remove_xattr(op.node, op.name))
    }

    /// FLUSH (every `close(2)`): memfs has nothing to flush, and it does
    /// not take POSIX locks (the kernel keeps them), so it answers
    /// `ENOSYS`, after which the kernel stops sending FLUSH at all (it still
    /// writes back dirty mmap pages at close, as WRITEs): one round trip
    /// less per close, nothing else changes.
    fn flush(&self, _req: &Request, _op: Flush, reply: ReplyEmpty<'_>) -> Replied {
        reply.error(Errno::NOSYS)
    }

    fn opendir(&self, _req: &Request, op: OpenDir, reply: ReplyOpen<'_>) -> Replied {
        let r = self.index(op.node).and_then(|id| {
            let g = self.read_live(id)?;
            if g.is_dir() {
                Ok(())
            } else {
                Err(Error::NotDir)
            }
        });
        match r {
            Ok(()) => reply.opened(FileHandle(0), 0),
            Err(e) => reply.error(e.errno()),
        }
    }

    fn readdir(&self, _req: &Request, op: ReadDir, reply: ReplyDirectory<'_>) -> Replied {
        self.list(op.node, op.offset, reply)
    }

    fn readdirplus(&self, _req: &Request, op: ReadDir, reply: ReplyDirectoryPlus<'_>) -> Replied {
        self.list_plus(op.node, op.offset, reply)
    }

    fn fsyncdir(&self, _req: &Request, _op: FsyncDir, reply: ReplyEmpty<'_>) -> Replied {
        reply.ok()
    }

    fn access(&self, req: &Request, op: Access, reply: ReplyEmpty<'_>) -> Replied {
        empty_reply(reply, self.check_access(op.node, req.uid, req.gid, op.mask))
    }

    fn create(&self, req: &Request, op: Create<'_>, reply: ReplyCreate<'_>) -> Replied {
        let node = NewNode {
            mode: S_IFREG | (op.mode & 0o7777),
            rdev: 0,
            target: &[],
            open: true,
            named: true,
            umask: op.umask,
        };
        match self.make(req, op.parent, op.name, node) {
            Ok((id, entry)) => {
                let flags = self.open_flags(&self.rlock(id));
                reply.created(&entry, FileHandle(0), flags)
            }
            // Created meanwhile by someone else: without O_EXCL, open it.
            Err(Error::Exist) if op.flags & crate::common::O_EXCL == 0 => {
                let r = self.lookup_entry(op.parent, op.name).and_then(|entry| {
                    match self.open_file(entry.node, op.flags, op.kill_suidgid) {
                        Ok(flags) => Ok((entry, flags)),
                        Err(e) => {
                            self.forget(
                                req,
                                Forget {
                                    node: entry.node,
                                    nlookup: 1,
                                },
                            );
                            Err(e)
                        }
                    }
                });
                match r {
                    Ok((entry, _)) if entry.node.0 == 0 => reply.error(Errno::NOENT),
                    Ok((entry, flags)) => reply.created(&entry, FileHandle(0), flags),
                    Err(e) => reply.error(e.errno()),
                }
            }
            Err(e) => reply.error(e.errno()),
        }
    }

    fn fallocate(&self, _req: &Request, op: Fallocate, reply: ReplyEmpty<'_>) -> Replied {
        empty_reply(reply, self.allocate(op.node, op.offset, op.length, op.mode))
    }

    fn lseek(&self, _req: &Request, op: Lseek, reply: ReplyLseek<'_>) -> Replied {
        match self.seek(op.node, op.offset, op.whence) {
            Ok(o) => reply.offset(o),
            Err(e) => reply.error(e.errno()),
        }
    }

    fn copy_file_range(&self, _req: &Request, op: CopyFileRange, reply: ReplyWrite<'_>) -> Replied {
        if op.flags != 0 {
            return reply.error(Errno::INVAL);
        }
        match self.copy_range(op.node_in, op.offset_in, op.node_out, op.offset_out, op.len) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(e.errno()),
        }
    }

    fn tmpfile(&self, req: &Request, op: TmpFile, reply: ReplyCreate<'_>) -> Replied {
        let mode = S_IFREG | (op.mode & 0o7777);
        match self.make_tmpfile(req, op.parent, mode, op.umask) {
            Ok((id, entry)) => {
                let flags = self.open_flags(&self.rlock(id));
                reply.created(&entry, FileHandle(0), flags)
            }
            Err(e) => reply.error(e.errno()),
        }
    }

    fn syncfs(&self, _req: &Request, _op: StatFs, reply: ReplyEmpty<'_>) -> Replied {
        reply.ok()
    }
}
