//! Directory entries: one preallocated arena for all directories, a name
//! index and a cookie index over it.
//!
//! Each directory keeps its entries in a doubly linked list in creation
//! order ([`DirList`], inside the directory's inode, so its lock guards it).
//! Every entry gets a *cookie* from its directory's counter, which only
//! grows: cookies are the `readdir` offsets, so an offset stays meaningful
//! while entries come and go, and listing from offset `c` means "the
//! entries with a cookie above `c`" (a renamed entry gets a new cookie, as
//! on tmpfs). Cookies 1 and 2 are `.` and `..`; entries start at 3.
//!
//! Two hash indexes make lookups O(1) in any directory size: by
//! `(directory, name)` and by `(directory, cookie)` (to resume a listing).
//! Both chain through the entries and are shared by all directories, so
//! each bucket is guarded by one of [`STRIPES`] mutexes, held only while a
//! chain is walked or relinked (never while another lock is taken).
//!
//! The entry fields are atomics written under the owning directory's write
//! lock and read under its read lock, which orders them; the indexes read
//! the `dir` field of entries of *other* directories only to skip them.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::Ordering::Relaxed;
use core::sync::atomic::{AtomicU32, AtomicU64};

use slabfuse::FileType;

use crate::names::{self, Names};
use crate::sync::{FreeList, Mutex, NONE};

/// Hash-bucket lock stripes (a power of two).
pub(crate) const STRIPES: usize = 256;
/// The first cookie of an entry (1 is `.`, 2 is `..`).
pub(crate) const COOKIE_FIRST: u64 = 3;

/// One directory entry.
struct Dirent {
    /// Owning directory's inode slot; [`NONE`] when free.
    dir: AtomicU32,
    child: AtomicU32,
    cookie: AtomicU64,
    /// First name segment.
    name: AtomicU32,
    /// Name length (low 16 bits) and `DT_*` type (bits 16..24).
    len_kind: AtomicU32,
    hash: AtomicU32,
    prev: AtomicU32,
    next: AtomicU32,
    name_next: AtomicU32,
    cookie_next: AtomicU32,
}

/// A directory's list of entries (kept in its inode, under its lock).
#[derive(Clone, Copy, Debug)]
pub(crate) struct DirList {
    head: u32,
    tail: u32,
    /// Entries, `.` and `..` not counted.
    pub(crate) count: u32,
    next_cookie: u64,
}

impl Default for DirList {
    fn default() -> DirList {
        DirList {
            head: NONE,
            tail: NONE,
            count: 0,
            next_cookie: COOKIE_FIRST,
        }
    }
}

/// What a listing needs of an entry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EntryInfo {
    pub(crate) child: u32,
    pub(crate) cookie: u64,
    pub(crate) kind: FileType,
    pub(crate) name: u32,
    pub(crate) len: usize,
}

/// Which index.
#[derive(Clone, Copy)]
enum Which {
    Name,
    Cookie,
}

struct Index {
    heads: Box<[AtomicU32]>,
    stripes: Box<[Mutex<()>]>,
    mask: u64,
}

impl Index {
    fn new(buckets: usize) -> Index {
        let heads: Vec<AtomicU32> = (0..buckets).map(|_| AtomicU32::new(NONE)).collect();
        let stripes: Vec<Mutex<()>> = (0..STRIPES).map(|_| Mutex::new(())).collect();
        Index {
            heads: heads.into_boxed_slice(),
            stripes: stripes.into_boxed_slice(),
            mask: buckets as u64 - 1,
        }
    }

    fn bucket(&self, dir: u32, key: u64) -> usize {
        let x = (u64::from(dir) << 32 ^ key).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        ((x >> 29) & self.mask) as usize
    }

    fn stripe(&self, bucket: usize) -> &Mutex<()> {
        &self.stripes[bucket & (STRIPES - 1)]
    }
}

/// The arena and its indexes.
pub(crate) struct Entries {
    slots: Box<[Dirent]>,
    free: FreeList,
    by_name: Index,
    by_cookie: Index,
}

/// Why an entry could not be added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NoSpace;

impl Entries {
    /// `count` entries; each index gets the next power of two of buckets.
    pub(crate) fn new(count: u32) -> Entries {
        let slots: Vec<Dirent> = (0..count)
            .map(|_| Dirent {
                dir: AtomicU32::new(NONE),
                child: AtomicU32::new(NONE),
                cookie: AtomicU64::new(0),
                name: AtomicU32::new(NONE),
                len_kind: AtomicU32::new(0),
                hash: AtomicU32::new(0),
                prev: AtomicU32::new(NONE),
                next: AtomicU32::new(NONE),
                name_next: AtomicU32::new(NONE),
                cookie_next: AtomicU32::new(NONE),
            })
            .collect();
        let buckets = Entries::buckets(count);
        Entries {
            slots: slots.into_boxed_slice(),
            free: FreeList::new(count, 0),
            by_name: Index::new(buckets),
            by_cookie: Index::new(buckets),
        }
    }

    fn buckets(count: u32) -> usize {
        (count as usize).next_power_of_two().max(STRIPES)
    }

    /// Heap bytes of `count` entries and their indexes.
    pub(crate) fn heap_bytes(count: u32) -> u64 {
        let buckets = Entries::buckets(count) as u64;
        u64::from(count) * core::mem::size_of::<Dirent>() as u64
            + FreeList::heap_bytes(count)
            + 2 * (buckets * 4 + STRIPES as u64 * core::mem::size_of::<Mutex<()>>() as u64)
    }

    /// Entries free right now.
    pub(crate) fn free_count(&self) -> u32 {
        self.free.free()
    }

    fn link(&self, d: u32, which: Which) -> &AtomicU32 {
        let e = &self.slots[d as usize];
        match which {
            Which::Name => &e.name_next,
            Which::Cookie => &e.cookie_next,
        }
    }

    fn index(&self, which: Which) -> &Index {
        match which {
            Which::Name => &self.by_name,
            Which::Cookie => &self.by_cookie,
        }
    }

    fn index_insert(&self, which: Which, bucket: usize, d: u32) {
        let index = self.index(which);
        let _stripe = index.stripe(bucket).lock();
        self.link(d, which)
            .store(index.heads[bucket].load(Relaxed), Relaxed);
        index.heads[bucket].store(d, Relaxed);
    }

    fn index_remove(&self, which: Which, bucket: usize, d: u32) {
        let index = self.index(which);
        let _stripe = index.stripe(bucket).lock();
        let mut at = &index.heads[bucket];
        loop {
            let e = at.load(Relaxed);
            if e == NONE {
                return;
            }
            if e == d {
                at.store(self.link(d, which).load(Relaxed), Relaxed);
                return;
            }
            at = self.link(e, which);
        }
    }

    /// The entry named `name` in directory `dir` and its child. The caller
    /// holds `dir`'s lock.
    pub(crate) fn lookup(&self, names: &Names, dir: u32, name: &[u8]) -> Option<(u32, u32)> {
        let hash = names::hash(name);
        let bucket = self.by_name.bucket(dir, u64::from(hash));
        let _stripe = self.by_name.stripe(bucket).lock();
        let mut d = self.by_name.heads[bucket].load(Relaxed);
        while d != NONE {
            let e = &self.slots[d as usize];
            if e.dir.load(Relaxed) == dir
                && e.hash.load(Relaxed) == hash
                && names.equals(
                    e.name.load(Relaxed),
                    (e.len_kind.load(Relaxed) & 0xFFFF) as usize,
                    name,
                )
            {
                return Some((d, e.child.load(Relaxed)));
            }
            d = e.name_next.load(Relaxed);
        }
        None
    }

    /// Appends `name -> child` to `dir` (the caller holds its write lock and
    /// checked that the name is absent). Stores the name; `NoSpace` when
    /// the arena or the name arena is full.
    pub(crate) fn insert(
        &self,
        names: &Names,
        list: &mut DirList,
        dir: u32,
        name: &[u8],
        child: u32,
        kind: FileType,
    ) -> Result<u32, NoSpace> {
        let d = self.free.pop().ok_or(NoSpace)?;
        let Some(name_head) = names.store(name) else {
            self.free.push(d);
            return Err(NoSpace);
        };
        let hash = names::hash(name);
        let cookie = list.next_cookie;
        list.next_cookie += 1;
        let e = &self.slots[d as usize];
        e.child.store(child, Relaxed);
        e.cookie.store(cookie, Relaxed);
        e.name.store(name_head, Relaxed);
        #[allow(
            clippy::cast_possible_truncation,
            reason = "names are at most 255 bytes"
        )]
        e.len_kind
            .store(name.len() as u32 | kind.dirent_type() << 16, Relaxed);
        e.hash.store(hash, Relaxed);
        e.prev.store(list.tail, Relaxed);
        e.next.store(NONE, Relaxed);
        e.dir.store(dir, Relaxed);
        if list.tail == NONE {
            list.head = d;
        } else {
            self.slots[list.tail as usize].next.store(d, Relaxed);
        }
        list.tail = d;
        list.count += 1;
        self.index_insert(Which::Name, self.by_name.bucket(dir, u64::from(hash)), d);
        self.index_insert(Which::Cookie, self.by_cookie.bucket(dir, cookie), d);
        Ok(d)
    }

    /// Removes entry `d` from `dir` (write-locked by the caller) and frees
    /// it and its name.
    pub(crate) fn remove(&self, names: &Names, list: &mut DirList, dir: u32, d: u32) {
        let e = &self.slots[d as usize];
        let hash = e.hash.load(Relaxed);
        let cookie = e.cookie.load(Relaxed);
        self.index_remove(Which::Name, self.by_name.bucket(dir, u64::from(hash)), d);
        self.index_remove(Which::Cookie, self.by_cookie.bucket(dir, cookie), d);
        let prev = e.prev.load(Relaxed);
        let next = e.next.load(Relaxed);
        if prev == NONE {
            list.head = next;
        } else {
            self.slots[prev as usize].next.store(next, Relaxed);
        }
        if next == NONE {
            list.tail = prev;
        } else {
            self.slots[next as usize].prev.store(prev, Relaxed);
        }
        list.count -= 1;
        names.release(e.name.load(Relaxed));
        e.dir.store(NONE, Relaxed);
        e.name.store(NONE, Relaxed);
        self.free.push(d);
    }

    /// Points entry `d` at another node (`RENAME_EXCHANGE`).
    pub(crate) fn set_child(&self, d: u32, child: u32, kind: FileType) {
        let e = &self.slots[d as usize];
        e.child.store(child, Relaxed);
        let len = e.len_kind.load(Relaxed) & 0xFFFF;
        e.len_kind.store(len | kind.dirent_type() << 16, Relaxed);
    }

    /// The first entry of `dir` with a cookie above `cookie` (`NONE` at the
    /// end). The caller holds `dir`'s lock.
    pub(crate) fn first_after(&self, list: &DirList, dir: u32, cookie: u64) -> u32 {
        if cookie < COOKIE_FIRST {
            return list.head;
        }
        // Usually the listing goes on right after the entry it stopped at.
        let bucket = self.by_cookie.bucket(dir, cookie);
        let found = {
            let _stripe = self.by_cookie.stripe(bucket).lock();
            let mut d = self.by_cookie.heads[bucket].load(Relaxed);
            while d != NONE {
                let e = &self.slots[d as usize];
                if e.dir.load(Relaxed) == dir && e.cookie.load(Relaxed) == cookie {
                    break;
                }
                d = e.cookie_next.load(Relaxed);
            }
            d
        };
        if found != NONE {
            return self.slots[found as usize].next.load(Relaxed);
        }
        // That entry is gone: walk the list (in cookie order) past it.
        let mut d = list.head;
        while d != NONE && self.slots[d as usize].cookie.load(Relaxed) <= cookie {
            d = self.slots[d as usize].next.load(Relaxed);
        }
        d
    }

    /// The entry after `d` in its directory (`NONE` at the end).
    pub(crate) fn next(&self, d: u32) -> u32 {
        self.slots[d as usize].next.load(Relaxed)
    }

    /// The fields a listing needs.
    pub(crate) fn info(&self, d: u32) -> EntryInfo {
        let e = &self.slots[d as usize];
        let len_kind = e.len_kind.load(Relaxed);
        EntryInfo {
            child: e.child.load(Relaxed),
            cookie: e.cookie.load(Relaxed),
            kind: FileType::from_mode((len_kind >> 16) << 12).unwrap_or(FileType::RegularFile),
            name: e.name.load(Relaxed),
            len: (len_kind & 0xFFFF) as usize,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_lookup_list_and_resume_after_removal() {
        let names = Names::new(64);
        let entries = Entries::new(16);
        let mut list = DirList::default();
        for (i, n) in [&b"a"[..], b"b", b"c"].into_iter().enumerate() {
            entries
                .insert(
                    &names,
                    &mut list,
                    7,
                    n,
                    10 + i as u32,
                    FileType::RegularFile,
                )
                .unwrap();
        }
        let (db, child) = entries.lookup(&names, 7, b"b").unwrap();
        assert_eq!(child, 11);
        assert!(entries.lookup(&names, 8, b"b").is_none());
        let after_b = entries.info(db).cookie;
        entries.remove(&names, &mut list, 7, db);
        assert!(entries.lookup(&names, 7, b"b").is_none());
        // Resuming after the removed "b" continues with "c".
        let d = entries.first_after(&list, 7, after_b);
        assert_eq!(entries.info(d).child, 12);
        assert_eq!(entries.first_after(&list, 7, 0), list.head);
        assert_eq!(list.count, 2);
        assert_eq!(entries.next(d), NONE);
    }
}
