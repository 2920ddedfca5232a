//! Locks and the lock-free index free list every memfs table allocates from.
//!
//! - [`RwLock`] / [`Mutex`]: futex-based (`rustix-futex-sync`, a port of
//!   std's futex locks). They spin briefly, then sleep in the kernel, so a
//!   worker waiting for a file that another worker is filling with 16 MiB
//!   does not burn a core. The read-write lock prefers writers, so a stream
//!   of readers cannot starve a writer.
//! - [`FreeList`]: a Treiber stack of `u32` slot indices with an ABA tag in
//!   the head word. Pop and push are a handful of atomic operations, never
//!   allocate and never wait on another thread holding a lock. It is the
//!   allocator of the inode table, the directory-entry arena, the name
//!   segments and the chunk-map nodes (the data chunks have their own
//!   allocator, `store/bitmap.rs`, which keeps a file's chunks together).

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use core::sync::atomic::{AtomicU32, AtomicU64};

/// The per-inode lock.
pub(crate) type RwLock<T> = rustix_futex_sync::RwLock<T>;
/// A shared guard of [`RwLock`].
pub(crate) type ReadGuard<'a, T> = rustix_futex_sync::RwLockReadGuard<'a, T>;
/// An exclusive guard of [`RwLock`].
pub(crate) type WriteGuard<'a, T> = rustix_futex_sync::RwLockWriteGuard<'a, T>;
/// Short critical sections (hash-bucket stripes).
pub(crate) type Mutex<T> = rustix_futex_sync::Mutex<T>;

/// Marks the end of a list, and "no slot" in every table.
pub(crate) const NONE: u32 = u32::MAX;

/// A lock-free stack of the free indices of one table (`0..capacity`).
///
/// The head word packs the top index (low 32 bits, [`NONE`] when empty) and
/// a tag (high 32 bits) that every successful pop and push increments, so a
/// pop that read a stale `next` link fails its compare-exchange instead of
/// corrupting the list (the ABA problem).
pub(crate) struct FreeList {
    head: AtomicU64,
    links: Box<[AtomicU32]>,
    free: AtomicU32,
}

fn pack(top: u32, tag: u32) -> u64 {
    (u64::from(tag) << 32) | u64::from(top)
}

#[allow(clippy::cast_possible_truncation, reason = "unpacking the low half")]
fn top_of(head: u64) -> u32 {
    head as u32
}

#[allow(clippy::cast_possible_truncation, reason = "unpacking the high half")]
fn tag_of(head: u64) -> u32 {
    (head >> 32) as u32
}

impl FreeList {
    /// A list of `capacity` indices, all free except the first `reserved`
    /// (which the caller owns from the start, e.g. the root inode). Lowest
    /// index on top, so a fresh table fills front to back.
    pub(crate) fn new(capacity: u32, reserved: u32) -> FreeList {
        assert!(capacity < NONE, "a table holds fewer than u32::MAX slots");
        assert!(reserved <= capacity);
        let links: Vec<AtomicU32> = (0..capacity)
            .map(|i| AtomicU32::new(if i + 1 < capacity { i + 1 } else { NONE }))
            .collect();
        let top = if reserved < capacity { reserved } else { NONE };
        FreeList {
            head: AtomicU64::new(pack(top, 0)),
            links: links.into_boxed_slice(),
            free: AtomicU32::new(capacity - reserved),
        }
    }

    /// Bytes of heap this list holds (its links).
    pub(crate) fn heap_bytes(capacity: u32) -> u64 {
        u64::from(capacity) * core::mem::size_of::<AtomicU32>() as u64
    }

    /// Takes a free index, or `None` when the table is full.
    pub(crate) fn pop(&self) -> Option<u32> {
        // Acquire pairs with the Release of the push that put the top there,
        // so its `links` store is visible below.
        let mut head = self.head.load(Acquire);
        loop {
            let top = top_of(head);
            if top == NONE {
                return None;
            }
            // A stale read (another thread popped `top` meanwhile) is caught
            // by the tag in the compare-exchange.
            let next = self.links[top as usize].load(Relaxed);
            match self.head.compare_exchange_weak(
                head,
                pack(next, tag_of(head).wrapping_add(1)),
                Acquire,
                Acquire,
            ) {
                Ok(_) => {
                    // Relaxed: a statistic for statfs, ordering nothing.
                    self.free.fetch_sub(1, Relaxed);
                    return Some(top);
                }
                Err(actual) => head = actual,
            }
        }
    }

    /// Gives `index` back. The caller has given up every use of the slot.
    pub(crate) fn push(&self, index: u32) {
        let link = &self.links[index as usize];
        let mut head = self.head.load(Relaxed);
        loop {
            link.store(top_of(head), Relaxed);
            // Release publishes the link store (and the caller's last writes
            // to the slot) to the next popper's Acquire.
            match self.head.compare_exchange_weak(
                head,
                pack(index, tag_of(head).wrapping_add(1)),
                Release,
                Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => head = actual,
            }
        }
        self.free.fetch_add(1, Relaxed);
    }

    /// Free indices right now (a snapshot, for statfs).
    pub(crate) fn free(&self) -> u32 {
        self.free.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_every_index_once_then_reports_full() {
        let list = FreeList::new(4, 1);
        assert_eq!(list.free(), 3);
        assert_eq!(list.pop(), Some(1));
        assert_eq!(list.pop(), Some(2));
        assert_eq!(list.pop(), Some(3));
        assert_eq!(list.pop(), None);
        list.push(2);
        assert_eq!(list.free(), 1);
        assert_eq!(list.pop(), Some(2));
        assert_eq!(list.pop(), None);
    }
}
