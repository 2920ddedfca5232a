//! The lock-free free list: a Treiber stack of block indices with an ABA tag,
//! and a reservation counter that makes multi-block acquires all-or-nothing.
//!
//! This module is safe code over plain atomics and a caller-supplied slice of
//! next-links, so the `loom` model (`tests/loom.rs`) checks exactly this code;
//! the pool supplies the links from the slab's metadata area.
//!
//! # Representation
//!
//! - `links[i]` holds the *entry* below block `i` on the stack, where an
//!   entry is `index + 1` and 0 means "none". The links live outside the
//!   blocks, so a thread that reads a stale link reads an atomic that only the
//!   free list writes, never a block that its new owner may be writing.
//! - `head` packs the top entry in its low 32 bits and a generation tag in its
//!   high 32 bits. Every successful change of `head` (push or pop) increments
//!   the tag, so a pop that read `head` before other threads popped and pushed
//!   the same top back fails its compare-exchange instead of installing a
//!   stale next-link (the ABA problem). The tag wraps after 2^32 changes; a
//!   stale pop could then succeed wrongly only if its thread stalled between
//!   one load and one compare-exchange while exactly a multiple of 2^32 other
//!   operations completed, which we accept.
//! - `blocks_free` counts entries that may still be reserved.
//!
//! # The invariant
//!
//! At every moment, *the stack holds at least `blocks_free` + (blocks
//! reserved but not yet popped) entries*. Reserving decrements `blocks_free`
//! before popping; releasing pushes before incrementing `blocks_free`. So a
//! thread that holds a reservation for `k` blocks can pop `k` times and every
//! pop finds an entry: the pops of a reservation never fail and never wait
//! for another thread (they only retry a compare-exchange that another
//! thread's progress made fail: lock-free).
//!
//! # Orderings
//!
//! - A push's successful compare-exchange on `head` is `Release`; a pop's
//!   loads and compare-exchange of `head` are `Acquire`. Every change of
//!   `head` is a read-modify-write, so it continues the release sequence of
//!   all earlier pushes: a pop synchronizes with the push of the entry it
//!   takes. That makes visible to the popper (a) the next-link the pusher
//!   stored and (b) everything the block's previous owner wrote into the
//!   block. The loom model fails if any of these is weakened (checked by
//!   mutation: see `tests/loom.rs`).
//! - `blocks_free`: the reservation's successful compare-exchange is `Acquire`
//!   and the increments in `release`/`unreserve` are `Release`. A reservation
//!   funded by a release therefore happens after that release's push, so the
//!   popper's view of `head` includes it (this is what keeps the invariant
//!   true across threads, not only in some global order).
//! - Statistics (`high_water`, `exhausted`) are `Relaxed` counters: each is
//!   exact, they order nothing, and a [`PoolStats`] is not an atomic snapshot.
// In the normal build this module is private and re-exported piecemeal; its
// items are `pub` because the loom build makes the module public.
#![cfg_attr(not(loom), allow(unreachable_pub))]

use crate::config::BLOCKS_MAX;
use crate::error::Exhausted;
use crate::sync::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

/// The entry that means "no block": the end of the list, or an empty stack.
const ENTRY_NONE: u32 = 0;

/// Packs a top entry and a tag into a `head` word.
const fn pack(entry: u32, tag: u32) -> u64 {
    ((tag as u64) << 32) | entry as u64
}

/// The top entry of a `head` word (its low 32 bits).
#[allow(
    clippy::cast_possible_truncation,
    reason = "keeping the low 32 bits is the point"
)]
const fn entry_of(head: u64) -> u32 {
    head as u32
}

/// The generation tag of a `head` word (its high 32 bits).
#[allow(clippy::cast_possible_truncation, reason = "the shift leaves 32 bits")]
const fn tag_of(head: u64) -> u32 {
    (head >> 32) as u32
}

/// Usage counters of a pool, readable at any time without locking.
///
/// Each field is read with a `Relaxed` load and is exact at the moment it was
/// read; the fields are not one atomic snapshot (a release may land between
/// two loads).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PoolStats {
    /// Blocks in the pool, in use or not.
    pub blocks_total: usize,
    /// Blocks held by live `Block`s, plus blocks reserved by a live
    /// `Reservation` and not yet taken from it.
    pub in_use: usize,
    /// The largest `in_use` ever reached.
    pub high_water: usize,
    /// How many acquires failed with [`Exhausted`].
    pub exhausted: u64,
}

/// A lock-free stack of block indices `0..links.len()` plus a reservation
/// counter. See the module documentation for the representation, the
/// invariant and the orderings.
///
/// The `links` slice is passed to each call rather than stored, so that the
/// pool can own both the slab (where the links live) and this list without
/// borrowing from itself. Every call must pass the slice `new` was given.
#[derive(Debug)]
pub struct FreeList {
    /// Top entry (low 32 bits) and generation tag (high 32 bits).
    head: AtomicU64,
    /// Entries that may still be reserved (see the invariant).
    blocks_free: AtomicUsize,
    /// `links.len()`.
    blocks_total: usize,
    /// The largest `blocks_total - blocks_free` after a reservation.
    high_water: AtomicUsize,
    /// Failed reservations.
    exhausted: AtomicU64,
}

impl FreeList {
    /// A list holding every index of `links`, lowest on top, and writes the
    /// links accordingly.
    ///
    /// The stores are `Relaxed`: the list is not shared yet, and whatever
    /// shares it later (a thread spawn, a `Release` store of a pointer) orders
    /// them before any other thread's use.
    ///
    /// # Panics
    ///
    /// If `links` has more than [`BLOCKS_MAX`] entries (the slab never does).
    pub fn new(links: &[AtomicU32]) -> Self {
        let blocks_total = links.len();
        assert!(
            blocks_total <= BLOCKS_MAX,
            "a free list indexes at most u32::MAX blocks"
        );
        let mut entry_next = 2u32; // the entry of index 1, below index 0
        for (index, link) in links.iter().enumerate() {
            let last = index + 1 == blocks_total;
            link.store(
                if last { ENTRY_NONE } else { entry_next },
                Ordering::Relaxed,
            );
            // Cannot overflow: for the last index we store ENTRY_NONE instead.
            entry_next = entry_next.wrapping_add(1);
        }
        let top = if blocks_total == 0 { ENTRY_NONE } else { 1 };
        Self {
            head: AtomicU64::new(pack(top, 0)),
            blocks_free: AtomicUsize::new(blocks_total),
            blocks_total,
            high_water: AtomicUsize::new(0),
            exhausted: AtomicU64::new(0),
        }
    }

    /// The number of indices the list manages.
    pub fn blocks_total(&self) -> usize {
        self.blocks_total
    }

    /// Reserves `blocks` entries: afterwards the caller may call
    /// [`pop_reserved`](Self::pop_reserved) exactly `blocks` times (or give
    /// the unused part back with [`unreserve`](Self::unreserve)).
    ///
    /// # Errors
    ///
    /// [`Exhausted`] if fewer than `blocks` entries are free; nothing is
    /// reserved then, and the failure is counted.
    pub fn reserve(&self, blocks: usize) -> Result<(), Exhausted> {
        let mut free = self.blocks_free.load(Ordering::Relaxed);
        loop {
            let Some(left) = free.checked_sub(blocks) else {
                // Relaxed: a statistic; it orders nothing.
                self.exhausted.fetch_add(1, Ordering::Relaxed);
                return Err(Exhausted);
            };
            // Acquire pairs with the Release increments in `release` and
            // `unreserve`: the pushes that funded this count happen before
            // our pops (see the module doc). Failure only reloads the count.
            match self.blocks_free.compare_exchange_weak(
                free,
                left,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    // Relaxed: a statistic; it orders nothing. The high water
                    // only grows, so when it is already at least `in_use` the
                    // read-modify-write can be skipped (the common case; it
                    // saves a locked instruction per acquire). fetch_max is
                    // one atomic step, so no larger value is ever lost.
                    let in_use = self.blocks_total - left;
                    if in_use > self.high_water.load(Ordering::Relaxed) {
                        self.high_water.fetch_max(in_use, Ordering::Relaxed);
                    }
                    return Ok(());
                }
                Err(actual) => free = actual,
            }
        }
    }

    /// Returns `blocks` reserved but never popped entries to the free count.
    pub fn unreserve(&self, blocks: usize) {
        // Release pairs with the Acquire in `reserve` (kept for symmetry with
        // `release`; no push precedes this increment, the entries never left).
        self.blocks_free.fetch_add(blocks, Ordering::Release);
    }

    /// Pops one index; the caller must hold an unused reservation (from
    /// [`reserve`](Self::reserve)), which this consumes.
    ///
    /// # Panics
    ///
    /// If the stack is empty, which the invariant rules out for a caller
    /// holding a reservation: a panic here is a bug in this module (or a
    /// caller popping without reserving), never a full pool.
    pub fn pop_reserved(&self, links: &[AtomicU32]) -> u32 {
        // Acquire pairs with the Release of the push that made this entry the
        // top (or with a later read-modify-write in its release sequence).
        let mut head = self.head.load(Ordering::Acquire);
        loop {
            let top = entry_of(head);
            assert!(
                top != ENTRY_NONE,
                "free list empty under a reservation: invariant broken"
            );
            let index = top - 1;
            // Relaxed: the Acquire above ordered the pusher's store of this
            // link before us. If another thread popped `index` meanwhile, we
            // may read a newer link, but then `head`'s tag changed and the
            // compare-exchange below fails, discarding it.
            let next = links[index as usize].load(Ordering::Relaxed);
            let new = pack(next, tag_of(head).wrapping_add(1));
            // Acquire on success and failure, as for the load above (on
            // failure we use the new top's link next time round). No Release
            // is needed: nothing we wrote is read through this value, and a
            // read-modify-write continues the release sequences of earlier
            // pushes whatever its own ordering, so later pops still
            // synchronize with those pushes.
            match self
                .head
                .compare_exchange_weak(head, new, Ordering::Acquire, Ordering::Acquire)
            {
                Ok(_) => return index,
                Err(actual) => head = actual,
            }
        }
    }

    /// Pushes `index` back and makes it reservable again. The caller gives up
    /// every access to the block before calling (the `Release` below
    /// publishes its writes to the next owner).
    ///
    /// # Panics
    ///
    /// If `index` is out of range of `links`.
    pub fn release(&self, links: &[AtomicU32], index: u32) {
        let link = &links[index as usize];
        let entry = index + 1; // cannot overflow: index < links.len() <= u32::MAX
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // Relaxed: published by the Release compare-exchange below. Only
            // the current owner of `index` writes this link, and a pop reads
            // it only after acquiring a `head` that has `index` on top.
            link.store(entry_of(head), Ordering::Relaxed);
            let new = pack(entry, tag_of(head).wrapping_add(1));
            // Release pairs with the Acquire in `pop_reserved`; failure just
            // retries with the newer top (no data is read through it).
            match self
                .head
                .compare_exchange_weak(head, new, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(actual) => head = actual,
            }
        }
        // Push first, then count: this is the half of the invariant that
        // keeps every reservation backed by an entry. Release pairs with the
        // Acquire in `reserve`.
        self.blocks_free.fetch_add(1, Ordering::Release);
    }

    /// The usage counters (see [`PoolStats`] for what they mean).
    pub fn stats(&self) -> PoolStats {
        // Relaxed loads: statistics, see the module doc.
        let blocks_free = self.blocks_free.load(Ordering::Relaxed);
        let in_use = self.blocks_total.saturating_sub(blocks_free);
        PoolStats {
            blocks_total: self.blocks_total,
            in_use,
            // The high-water update follows the reservation, so a reader may
            // see the new `in_use` first; never report a high water below it.
            high_water: self.high_water.load(Ordering::Relaxed).max(in_use),
            exhausted: self.exhausted.load(Ordering::Relaxed),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn links<const N: usize>() -> [AtomicU32; N] {
        core::array::from_fn(|_| AtomicU32::new(0xdead))
    }

    #[test]
    fn head_packing_round_trips() {
        let head = pack(7, 0xffff_ffff);
        assert_eq!(entry_of(head), 7);
        assert_eq!(tag_of(head), 0xffff_ffff);
        assert_eq!(pack(ENTRY_NONE, 0), 0);
    }

    #[test]
    fn new_stacks_every_index_lowest_on_top() {
        let links = links::<4>();
        let list = FreeList::new(&links);
        assert_eq!(list.blocks_total(), 4);
        let stored: [u32; 4] = core::array::from_fn(|i| links[i].load(Ordering::Relaxed));
        assert_eq!(stored, [2, 3, 4, ENTRY_NONE]);
        list.reserve(4).unwrap();
        let popped: [u32; 4] = core::array::from_fn(|_| list.pop_reserved(&links));
        assert_eq!(popped, [0, 1, 2, 3]);
    }

    #[test]
    fn release_is_lifo_and_every_change_bumps_the_tag() {
        let links = links::<3>();
        let list = FreeList::new(&links);
        let tag_before = tag_of(list.head.load(Ordering::Relaxed));
        list.reserve(2).unwrap();
        let a = list.pop_reserved(&links);
        let b = list.pop_reserved(&links);
        list.release(&links, a);
        list.release(&links, b);
        assert_eq!(tag_of(list.head.load(Ordering::Relaxed)), tag_before + 4);
        list.reserve(1).unwrap();
        assert_eq!(
            list.pop_reserved(&links),
            b,
            "last released is first acquired"
        );
    }

    #[test]
    fn reservation_is_all_or_nothing_and_failures_are_counted() {
        let links = links::<3>();
        let list = FreeList::new(&links);
        list.reserve(2).unwrap();
        let before = list.stats();
        assert_eq!(list.reserve(2), Err(Exhausted));
        let after = list.stats();
        assert_eq!(
            after.in_use, before.in_use,
            "a failed reservation takes nothing"
        );
        assert_eq!(after.exhausted, before.exhausted + 1);
        assert_eq!(list.reserve(1), Ok(()));
        assert_eq!(list.reserve(1), Err(Exhausted));
        assert_eq!(list.reserve(usize::MAX), Err(Exhausted));
        assert_eq!(list.stats().exhausted, 3);
    }

    #[test]
    fn stats_track_in_use_and_high_water() {
        let links = links::<4>();
        let list = FreeList::new(&links);
        let zero = PoolStats {
            blocks_total: 4,
            in_use: 0,
            high_water: 0,
            exhausted: 0,
        };
        assert_eq!(list.stats(), zero);
        list.reserve(3).unwrap();
        list.unreserve(2);
        assert_eq!(
            list.stats(),
            PoolStats {
                in_use: 1,
                high_water: 3,
                ..zero
            }
        );
        let index = list.pop_reserved(&links);
        list.release(&links, index);
        assert_eq!(
            list.stats(),
            PoolStats {
                in_use: 0,
                high_water: 3,
                ..zero
            }
        );
    }

    #[test]
    #[should_panic(expected = "invariant broken")]
    fn popping_without_a_reservation_from_an_empty_stack_panics() {
        let links = links::<1>();
        let list = FreeList::new(&links);
        list.reserve(1).unwrap();
        let _ = list.pop_reserved(&links);
        let _ = list.pop_reserved(&links); // no reservation: a caller bug
    }

    #[test]
    fn an_empty_list_is_always_exhausted() {
        let list = FreeList::new(&[]);
        assert_eq!(list.reserve(1), Err(Exhausted));
        assert_eq!(list.reserve(0), Ok(()));
        assert_eq!(list.stats().blocks_total, 0);
    }
}
