//! The inode table: fixed slots, each with its own lock.
//!
//! Slot `i` is node id `i + 1` (the root is slot 0, node 1) and inode
//! number `i + 1`. A slot is reused only after its inode was freed, which
//! happens when it has no name (`nlink == 0`), the kernel holds no
//! reference (lookup count 0: every entry reply added one, FORGET took them
//! back) and no file handle is open. So the kernel never holds a node id
//! that now means another object; the slot's `generation` grows on every
//! reuse, making `(node, generation)` unique for the filesystem's life.
//!
//! Lock order: whoever needs several inode locks takes them in slot order
//! ([`crate::MemFs::lock_set`]); nobody takes an inode lock while holding a
//! hash-bucket stripe or the lock of a higher slot. Lookup counts are
//! atomics outside the lock so that a LOOKUP can pin a child under its
//! directory's read lock without taking the child's lock.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::Ordering::Relaxed;
use core::sync::atomic::{AtomicU32, AtomicU64};

use slabfuse::types::mode::{S_IFDIR, S_IFLNK, S_IFMT, S_IFREG};
use slabfuse::{Attr, FileType, NodeId, Timestamp};

use crate::dir::DirList;
use crate::error::{Error, Result};
use crate::store::Content;
use crate::sync::{FreeList, NONE, RwLock};

/// tmpfs's directory size unit (`BOGO_DIRENT_SIZE`): a directory's size is
/// `2 * 20` plus 20 per entry.
pub(crate) const BOGO_DIRENT_BYTES: u64 = 20;
/// Symlink targets shorter than this live in the name arena; longer ones
/// in a data chunk (tmpfs's `SHORT_SYMLINK_LEN`, and its `st_blocks`).
pub(crate) const SHORT_SYMLINK_BYTES: usize = 128;

/// An inode's state, under its slot's lock.
#[derive(Debug)]
pub(crate) struct Inode {
    /// Type and permission bits; 0 when the slot is free.
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) nlink: u32,
    /// Device number (`new_encode_dev` form, as FUSE carries it).
    pub(crate) rdev: u32,
    /// Bytes (regular files, symlinks); directories: tmpfs's bogo size.
    pub(crate) size: u64,
    pub(crate) atime: Timestamp,
    pub(crate) mtime: Timestamp,
    pub(crate) ctime: Timestamp,
    pub(crate) generation: u64,
    /// Open file handles (OPEN/CREATE/TMPFILE minus RELEASE).
    pub(crate) opens: u32,
    /// Regular file data, or a long symlink target.
    pub(crate) data: Content,
    /// The extended-attribute blob (see `xattr.rs`) and its length.
    pub(crate) xattrs: Content,
    pub(crate) xattr_bytes: u64,
    /// Inode space its xattrs take (see [`xattr_space`]).
    pub(crate) xattr_charge: u64,
    /// A short symlink target's first name segment ([`NONE`] otherwise).
    pub(crate) short_link: u32,
    /// A directory's entries.
    pub(crate) dir: DirList,
    /// A directory's parent slot (the root is its own parent).
    pub(crate) parent: u32,
    /// Counted against the inode limit: from creation until it has neither
    /// a name nor an open handle (then its storage goes at once, as on
    /// tmpfs, even while the kernel still holds a reference to the node).
    pub(crate) counted: bool,
}

impl Inode {
    fn free() -> Inode {
        Inode {
            mode: 0,
            uid: 0,
            gid: 0,
            nlink: 0,
            rdev: 0,
            size: 0,
            atime: Timestamp::default(),
            mtime: Timestamp::default(),
            ctime: Timestamp::default(),
            generation: 1,
            opens: 0,
            data: Content::new(),
            xattrs: Content::new(),
            xattr_bytes: 0,
            xattr_charge: 0,
            short_link: NONE,
            dir: DirList::default(),
            parent: NONE,
            counted: false,
        }
    }

    /// Whether the slot holds an inode.
    pub(crate) fn is_live(&self) -> bool {
        self.mode != 0
    }

    /// The type.
    pub(crate) fn kind(&self) -> FileType {
        FileType::from_mode(self.mode).unwrap_or(FileType::RegularFile)
    }

    pub(crate) fn is_dir(&self) -> bool {
        self.mode & S_IFMT == S_IFDIR
    }

    pub(crate) fn is_reg(&self) -> bool {
        self.mode & S_IFMT == S_IFREG
    }

    pub(crate) fn is_symlink(&self) -> bool {
        self.mode & S_IFMT == S_IFLNK
    }

    /// Fails with `ENOENT` for a free slot (a node the kernel should no
    /// longer use).
    pub(crate) fn live(&self) -> Result<&Inode> {
        if self.is_live() {
            Ok(self)
        } else {
            Err(Error::NoEnt)
        }
    }

    /// What `stat` shows, for the inode in slot `slot`.
    pub(crate) fn attr(&self, slot: u32) -> Attr {
        Attr {
            ino: u64::from(slot) + 1,
            size: self.size,
            // Storage in 512-byte units: 8 per 4 KiB chunk, as tmpfs.
            blocks: (self.data.chunks()) * 8,
            atime: self.atime,
            mtime: self.mtime,
            ctime: self.ctime,
            mode: self.mode,
            nlink: self.nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: self.rdev,
            blksize: 4096,
        }
    }

    /// Initializes a free slot's inode (keeping its generation, one up).
    pub(crate) fn init(&mut self, mode: u32, uid: u32, gid: u32, rdev: u32, now: Timestamp) {
        debug_assert!(!self.is_live());
        self.mode = mode;
        self.uid = uid;
        self.gid = gid;
        self.rdev = rdev;
        self.nlink = 0;
        self.size = 0;
        self.atime = now;
        self.mtime = now;
        self.ctime = now;
        self.generation += 1;
        self.opens = 0;
        self.xattr_bytes = 0;
        self.xattr_charge = 0;
        self.short_link = NONE;
        self.dir = DirList::default();
        self.parent = NONE;
        self.counted = true;
    }
}

/// One slot of the table.
pub(crate) struct Slot {
    pub(crate) inode: RwLock<Inode>,
    /// The kernel's references (entry replies minus FORGETs).
    pub(crate) lookups: AtomicU64,
    /// A directory's parent, readable without the lock (for the rename
    /// loop check; the lock-protected copy is `Inode::parent`).
    pub(crate) parent: AtomicU32,
}

/// The table.
///
/// It has more slots than the inode limit: an inode that lost its last
/// name and handle stops counting against the limit at once (tmpfs frees
/// it then), but its slot stays taken until the kernel's FORGET arrives,
/// which may be a moment later. The spare slots ([`spare_slots`]) absorb
/// those moments.
pub(crate) struct Table {
    slots: Box<[Slot]>,
    free: FreeList,
    /// Bytes of tmpfs's "inode space" in use: [`BOGO_INODE_BYTES`] per
    /// inode and per extra hard link, plus what xattrs cost.
    ispace_used: AtomicU64,
    limit: u32,
}

/// tmpfs's inode-space unit (`BOGO_INODE_SIZE`): `nr_inodes` buys this
/// many bytes per inode, and statfs's free inodes are free bytes over it.
pub(crate) const BOGO_INODE_BYTES: u64 = 1024;

/// What an xattr costs of the inode space, as tmpfs counts it
/// (`simple_xattr_space`: 40 plus the full name plus the value).
pub(crate) fn xattr_space(name_bytes: usize, value_bytes: usize) -> u64 {
    40 + name_bytes as u64 + value_bytes as u64
}

/// Slots beyond the inode limit for inodes waiting for their FORGET.
pub(crate) fn spare_slots(limit: u32) -> u32 {
    limit / 8 + 64
}

impl Table {
    /// Room for `limit` inodes; slot 0 (the root) is taken from the start.
    pub(crate) fn new(limit: u32) -> Table {
        let count = limit + spare_slots(limit);
        let slots: Vec<Slot> = (0..count)
            .map(|_| Slot {
                inode: RwLock::new(Inode::free()),
                lookups: AtomicU64::new(0),
                parent: AtomicU32::new(NONE),
            })
            .collect();
        Table {
            slots: slots.into_boxed_slice(),
            free: FreeList::new(count, 1),
            ispace_used: AtomicU64::new(BOGO_INODE_BYTES),
            limit,
        }
    }

    /// Heap bytes of the table for `limit` inodes (slots and free list).
    pub(crate) fn heap_bytes(limit: u32) -> u64 {
        let count = limit + spare_slots(limit);
        u64::from(count) * core::mem::size_of::<Slot>() as u64 + FreeList::heap_bytes(count)
    }

    /// Slots in the table.
    pub(crate) fn capacity(&self) -> u32 {
        #[allow(clippy::cast_possible_truncation, reason = "built from a u32 count")]
        let n = self.slots.len() as u32;
        n
    }

    /// Slots free right now.
    pub(crate) fn free_count(&self) -> u32 {
        self.free.free()
    }

    /// The inode limit.
    pub(crate) fn limit(&self) -> u32 {
        self.limit
    }

    /// Inodes in use as statfs reports them (`files - ffree`): inode
    /// space in use, in inode units, rounded up.
    pub(crate) fn used(&self) -> u32 {
        let used = self.ispace_used.load(Relaxed).div_ceil(BOGO_INODE_BYTES);
        u32::try_from(used).unwrap_or(u32::MAX).min(self.limit)
    }

    /// The slot of a node id (`ENOENT` for ids memfs never issued).
    pub(crate) fn index_of(&self, node: NodeId) -> Result<u32> {
        let slot = node.0.checked_sub(1).ok_or(Error::NoEnt)?;
        if slot >= self.slots.len() as u64 {
            return Err(Error::NoEnt);
        }
        #[allow(clippy::cast_possible_truncation, reason = "below the u32 slot count")]
        Ok(slot as u32)
    }

    /// Slot `index`.
    pub(crate) fn slot(&self, index: u32) -> &Slot {
        &self.slots[index as usize]
    }

    /// Takes a free slot for a new inode, counted against the limit
    /// (`ENOSPC` when the limit is reached, as tmpfs).
    pub(crate) fn alloc(&self) -> Result<u32> {
        self.count()?;
        self.free.pop().ok_or_else(|| {
            self.uncount();
            Error::NoSpace
        })
    }

    /// Counts one more against the limit (`ENOSPC` when reached): a new
    /// inode, or a hard link beyond an inode's first name (tmpfs charges
    /// each extra link as an inode, to bound its directory memory).
    pub(crate) fn count(&self) -> Result<()> {
        self.charge(BOGO_INODE_BYTES)
    }

    /// Gives back what [`count`](Self::count) took.
    pub(crate) fn uncount(&self) {
        self.refund(BOGO_INODE_BYTES);
    }

    /// Takes `bytes` of inode space (`ENOSPC` when they are not free).
    /// Relaxed throughout: a budget counter, ordering no other memory
    /// (the compare-exchange alone keeps it from going over the limit).
    pub(crate) fn charge(&self, bytes: u64) -> Result<()> {
        let total = u64::from(self.limit) * BOGO_INODE_BYTES;
        let mut used = self.ispace_used.load(Relaxed);
        loop {
            let next = used
                .checked_add(bytes)
                .filter(|&n| n <= total)
                .ok_or(Error::NoSpace)?;
            match self
                .ispace_used
                .compare_exchange_weak(used, next, Relaxed, Relaxed)
            {
                Ok(_) => return Ok(()),
                Err(now) => used = now,
            }
        }
    }

    /// Gives back `bytes` of inode space.
    pub(crate) fn refund(&self, bytes: u64) {
        self.ispace_used.fetch_sub(bytes, Relaxed);
    }

    /// Returns a slot whose inode has been cleared.
    pub(crate) fn release(&self, index: u32) {
        self.free.push(index);
    }
}

/// The node id of slot `index`.
pub(crate) fn node_id(index: u32) -> NodeId {
    NodeId(u64::from(index) + 1)
}
