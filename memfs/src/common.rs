//! What every operation shares: node lookup and locking, lookup counts and
//! freeing, entries and attributes for replies, the clock.

use core::sync::atomic::Ordering::{AcqRel, Relaxed};
use core::time::Duration;

use heapless::Vec;
use slabfuse::{Entry, NodeId, Timestamp};

use crate::MemFs;
use crate::error::{Error, Result};
use crate::node::{BOGO_DIRENT_BYTES, Inode, node_id};
use crate::sync::{NONE, ReadGuard, WriteGuard};

/// `open(2)` flags the filesystem looks at (from rustix, so that the
/// library needs no libc).
pub(crate) const O_ACCMODE: i32 = rustix::fs::OFlags::RWMODE.bits() as i32;
pub(crate) const O_RDONLY: i32 = rustix::fs::OFlags::RDONLY.bits() as i32;
pub(crate) const O_TRUNC: i32 = rustix::fs::OFlags::TRUNC.bits() as i32;
pub(crate) const O_EXCL: i32 = rustix::fs::OFlags::EXCL.bits() as i32;

/// Mode bits.
pub(crate) const S_ISUID: u32 = 0o4000;
pub(crate) const S_ISGID: u32 = 0o2000;
pub(crate) const S_IXGRP: u32 = 0o0010;

/// The current time (`CLOCK_REALTIME`, nanoseconds).
pub(crate) fn now() -> Timestamp {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
    #[allow(clippy::cast_possible_truncation, reason = "tv_nsec < 1e9")]
    Timestamp::new(t.tv_sec, t.tv_nsec as u32)
}

/// Whether an access should update atime under `relatime` (the default
/// mount option, so what tmpfs does): atime not after mtime or ctime, or a
/// day old. FUSE inodes are `S_NOATIME` in the kernel, so memfs keeps atime.
pub(crate) fn relatime_due(inode: &Inode, now: Timestamp) -> bool {
    inode.atime <= inode.mtime
        || inode.atime <= inode.ctime
        || now.secs.saturating_sub(inode.atime.secs) >= 24 * 60 * 60
}

/// Write guards on up to four inodes, taken in slot order.
pub(crate) struct Locked<'a> {
    ids: Vec<u32, 4>,
    guards: Vec<WriteGuard<'a, Inode>, 4>,
}

impl Locked<'_> {
    /// The inode of slot `id` (one of those locked).
    pub(crate) fn get(&mut self, id: u32) -> &mut Inode {
        let i = self.position(id);
        &mut self.guards[i]
    }

    fn position(&self, id: u32) -> usize {
        self.ids
            .iter()
            .position(|&x| x == id)
            .unwrap_or_else(|| unreachable!("slot {id} was not locked"))
    }

    /// Two different locked inodes at once.
    pub(crate) fn two(&mut self, a: u32, b: u32) -> (&mut Inode, &mut Inode) {
        let (i, j) = (self.position(a), self.position(b));
        assert!(i != j);
        if i < j {
            let (lo, hi) = self.guards.split_at_mut(j);
            (&mut lo[i], &mut hi[0])
        } else {
            let (lo, hi) = self.guards.split_at_mut(i);
            (&mut hi[0], &mut lo[j])
        }
    }
}

/// Whether reading an inode stamps its atime.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Atime {
    /// Stamp it (relatime), before the read lock is taken.
    Touch,
    /// Leave it (attribute and xattr reads).
    Keep,
}

impl MemFs {
    /// The slot of `node`.
    pub(crate) fn index(&self, node: NodeId) -> Result<u32> {
        self.inodes.index_of(node)
    }

    /// Shared lock on slot `id`.
    pub(crate) fn rlock(&self, id: u32) -> ReadGuard<'_, Inode> {
        self.inodes.slot(id).inode.read()
    }

    /// Exclusive lock on slot `id`.
    pub(crate) fn wlock(&self, id: u32) -> WriteGuard<'_, Inode> {
        self.inodes.slot(id).inode.write()
    }

    /// Exclusive locks on the distinct slots of `ids`, in slot order (the
    /// one order every multi-inode operation uses: no deadlock).
    pub(crate) fn lock_set(&self, ids: &[u32]) -> Locked<'_> {
        let mut sorted: Vec<u32, 4> = Vec::new();
        for &id in ids {
            if id != NONE && !sorted.contains(&id) && sorted.push(id).is_err() {
                unreachable!("at most four inodes are locked together");
            }
        }
        sorted.sort_unstable();
        let mut guards = Vec::new();
        for &id in &sorted {
            if guards.push(self.wlock(id)).is_err() {
                unreachable!("one guard per distinct slot, at most four");
            }
        }
        Locked {
            ids: sorted,
            guards,
        }
    }

    /// Adds one kernel reference to slot `id` (an entry reply is coming).
    /// The caller knows the inode cannot be freed meanwhile: it holds the
    /// lock of a directory that names it, or the inode's own lock.
    pub(crate) fn pin(&self, id: u32) {
        // Relaxed: the count is read for freeing only under the inode's
        // write lock, after a lock (the directory's, or the inode's own)
        // that the pinning thread held and released; that lock orders it.
        self.inodes.slot(id).lookups.fetch_add(1, Relaxed);
    }

    /// FORGET: drops `n` kernel references to slot `id` and frees the
    /// inode when nothing holds it any more.
    pub(crate) fn forget_n(&self, id: u32, n: u64) {
        let slot = self.inodes.slot(id);
        let freed = {
            let mut inode = slot.inode.write();
            if !inode.is_live() {
                return;
            }
            // Saturating: a kernel that forgets more than it looked up must
            // not make the count wrap and pin the inode forever.
            // Relaxed load, AcqRel exchange: the exchange is a
            // read-modify-write, so it sees every earlier pin (each one a
            // read-modify-write of the same counter).
            let mut current = slot.lookups.load(Relaxed);
            loop {
                let next = current.saturating_sub(n);
                match slot
                    .lookups
                    .compare_exchange_weak(current, next, AcqRel, Relaxed)
                {
                    Ok(_) => break,
                    Err(actual) => current = actual,
                }
            }
            self.free_if_unused(id, &mut inode)
        };
        if freed {
            self.inodes.release(id);
        }
    }

    /// Clears the inode in slot `id` (write-locked by the caller) when it
    /// has no name, no kernel reference and no open handle. Returns true
    /// when it did: the caller then releases the slot *after* unlocking.
    /// Without name and handle but still known to the kernel, the inode is
    /// retired: its storage and its place under the inode limit go now,
    /// the slot when the kernel forgets it.
    pub(crate) fn free_if_unused(&self, id: u32, inode: &mut Inode) -> bool {
        if id == 0 || !inode.is_live() || inode.nlink != 0 || inode.opens != 0 {
            return false;
        }
        self.retire(inode);
        if self.inodes.slot(id).lookups.load(Relaxed) != 0 {
            return false;
        }
        self.clear(inode);
        true
    }

    /// Releases an unreachable inode's place under the inode limit (once)
    /// and its storage.
    fn retire(&self, inode: &mut Inode) {
        if inode.counted {
            inode.counted = false;
            self.inodes.uncount();
        }
        self.release_storage(inode);
    }

    /// Releases an inode's data, xattrs and symlink target (idempotent:
    /// something may have reached a retired inode in a race, and is let go
    /// again when the slot is cleared).
    fn release_storage(&self, inode: &mut Inode) {
        inode.data.clear(&self.store);
        inode.size = 0;
        inode.xattrs.clear(&self.store);
        inode.xattr_bytes = 0;
        self.inodes.refund(inode.xattr_charge);
        inode.xattr_charge = 0;
        if inode.short_link != NONE {
            self.names.release(inode.short_link);
            inode.short_link = NONE;
        }
    }

    /// Releases everything an inode holds and marks its slot free.
    pub(crate) fn clear(&self, inode: &mut Inode) {
        self.retire(inode);
        inode.mode = 0;
        inode.nlink = 0;
    }

    /// The entry reply for slot `id` (its lookup count already raised).
    pub(crate) fn entry(&self, id: u32, inode: &Inode) -> Entry {
        Entry {
            node: node_id(id),
            generation: inode.generation,
            attr: self.attr(id, inode),
            entry_ttl: self.entry_ttl,
            attr_ttl: self.attr_ttl,
        }
    }

    /// A negative entry: "no such name", cacheable for the entry TTL (every
    /// creation goes through this kernel, which then drops it).
    pub(crate) fn negative_entry(&self) -> Entry {
        Entry {
            node: NodeId(0),
            generation: 0,
            attr: slabfuse::Attr::default(),
            entry_ttl: self.entry_ttl,
            attr_ttl: Duration::ZERO,
        }
    }

    /// `stat` of slot `id`; directories get tmpfs's bogo size.
    pub(crate) fn attr(&self, id: u32, inode: &Inode) -> slabfuse::Attr {
        let mut a = inode.attr(id);
        if inode.is_dir() {
            a.size = (2 + u64::from(inode.dir.count)) * BOGO_DIRENT_BYTES;
        }
        a
    }

    /// Reads slot `id` for an operation: a live inode or `ENOENT`.
    pub(crate) fn read_live(&self, id: u32) -> Result<ReadGuard<'_, Inode>> {
        let g = self.rlock(id);
        g.live()?;
        Ok(g)
    }

    /// The live inode of `node` under its read lock, with its slot; with
    /// [`Atime::Touch`] its atime is stamped first (relatime), as tmpfs
    /// stamps reads, readlinks and listings.
    pub(crate) fn read_node(
        &self,
        node: NodeId,
        atime: Atime,
    ) -> Result<(u32, ReadGuard<'_, Inode>)> {
        let id = self.index(node)?;
        if atime == Atime::Touch {
            self.touch_atime(id);
        }
        Ok((id, self.read_live(id)?))
    }

    /// Writes slot `id` for an operation: a live inode or `ENOENT`.
    pub(crate) fn write_live(&self, id: u32) -> Result<WriteGuard<'_, Inode>> {
        let g = self.wlock(id);
        g.live()?;
        Ok(g)
    }

    /// Updates atime of slot `id` if `relatime` says so (takes the write
    /// lock only when it does).
    pub(crate) fn touch_atime(&self, id: u32) {
        let t = now();
        if !relatime_due(&self.rlock(id), t) {
            return;
        }
        let mut g = self.wlock(id);
        if g.is_live() && relatime_due(&g, t) {
            g.atime = t;
        }
    }
}

/// Checks that a directory can take a new entry (it exists, is a
/// directory, and was not removed).
pub(crate) fn check_parent(dir: &Inode) -> Result<()> {
    dir.live()?;
    if !dir.is_dir() {
        return Err(Error::NotDir);
    }
    if dir.nlink == 0 {
        return Err(Error::NoEnt);
    }
    Ok(())
}
