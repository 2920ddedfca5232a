//! The block pool: hands out the slab's blocks as [`Block`] handles.
//!
//! [`BlockPool::acquire`] and the release in [`Block`]'s `Drop` are O(1),
//! never allocate, never block and are safe from any number of threads (the
//! lock-free free list in `freelist.rs`). [`BlockPool::acquire_many`] reserves
//! `k` blocks all at once or fails without taking any, so no request ever
//! holds part of what it needs while waiting for the rest: no deadlock, no
//! partial holds. A full pool is `Err(Exhausted)`, never a wait.
//!
//! # Ownership, and why double release is impossible
//!
//! A [`Block`] is the only handle to its memory. It is not `Clone`, its
//! release happens in `Drop`, and every method that gives it up takes `self`
//! by value, so the compiler rejects any use after release:
//!
//! ```compile_fail,E0382
//! # use slabfuse_pool::{BackingRequest, BlockPool, Slab, SlabConfig};
//! # let config = SlabConfig { block_size: 4096, blocks: 1, backing: BackingRequest::Normal, lock: false };
//! # let pool = BlockPool::new(Slab::map(&config).unwrap());
//! let block = pool.acquire().unwrap();
//! drop(block);          // released here, exactly once
//! let _ = block.index(); // error[E0382]: borrow of moved value: `block`
//! ```
//!
//! ```compile_fail,E0599
//! # use slabfuse_pool::{BackingRequest, BlockPool, Slab, SlabConfig};
//! # let config = SlabConfig { block_size: 4096, blocks: 1, backing: BackingRequest::Normal, lock: false };
//! # let pool = BlockPool::new(Slab::map(&config).unwrap());
//! let block = pool.acquire().unwrap();
//! let twin = block.clone(); // error[E0599]: no method named `clone`
//! ```
//!
//! Nor can a block outlive its pool (which would leave it pointing into an
//! unmapped slab):
//!
//! ```compile_fail,E0505
//! # use slabfuse_pool::{BackingRequest, BlockPool, Slab, SlabConfig};
//! # let config = SlabConfig { block_size: 4096, blocks: 1, backing: BackingRequest::Normal, lock: false };
//! # let pool = BlockPool::new(Slab::map(&config).unwrap());
//! let block = pool.acquire().unwrap();
//! drop(pool); // error[E0505]: cannot move out of `pool` because it is borrowed
//! let _ = block.index();
//! ```
//!
//! (Stable rustdoc does not check the error codes; each snippet was checked
//! to compile once the line marked `error` is removed.)
//!
//! The raw escape hatch ([`Block::into_raw`], [`BlockPool::from_raw`]) moves
//! that guarantee to the caller, which is why `from_raw` is `unsafe`.
//!
//! # Safety
//!
//! This file is one of the two in the crate that use `unsafe` (with
//! `slab.rs`). The unsafe operations are creating `&[u8]` / `&mut [u8]` over a
//! block, and [`BlockPool::from_raw`]. They rest on this invariant:
//!
//! *At most one live [`Block`] exists per index.* A `Block` is created only
//! (a) from an index popped off the free list under a reservation — the list
//! hands each pushed index to exactly one popper — or (b) by `from_raw`,
//! whose contract requires an index that `into_raw` took out of a `Block`
//! (which did not release it) and that is converted back at most once. A
//! `Block` pushes its index back only in `Drop`, after which it is gone.
//!
//! Memory outside the pool's view of a block is reachable only through raw
//! pointers ([`Slab::as_ptr`], [`BlockPool::block_ptr`], [`Block::as_ptr`]),
//! whose dereference is the caller's `unsafe` and documented as allowed only
//! for blocks the caller holds.

use core::fmt;
use core::iter::FusedIterator;
use core::mem::ManuallyDrop;
use core::ptr::NonNull;

use crate::error::Exhausted;
use crate::freelist::{FreeList, PoolStats};
use crate::slab::Slab;

/// The index of a block in its pool, `0..blocks_total`.
///
/// A plain number: it owns nothing and may be copied freely. Ownership of a
/// block is a [`Block`]; a `BlockIndex` stands for an owned block only
/// between [`Block::into_raw`] and the one [`BlockPool::from_raw`] that takes
/// it back (memfs keeps such indices in its tables, 4 bytes each).
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BlockIndex(u32);

// memfs relies on the compact representation.
const _: () = assert!(core::mem::size_of::<BlockIndex>() == 4);

impl BlockIndex {
    /// Wraps a raw index (e.g. one read back from a table).
    pub const fn new(index: u32) -> Self {
        Self(index)
    }

    /// The raw index.
    pub const fn get(self) -> u32 {
        self.0
    }

    /// The raw index as a `usize`, for indexing.
    #[allow(
        clippy::cast_possible_truncation,
        reason = "usize holds a u32 (asserted in config)"
    )]
    pub const fn as_usize(self) -> usize {
        self.0 as usize
    }
}

impl From<BlockIndex> for u32 {
    fn from(index: BlockIndex) -> Self {
        index.0
    }
}

/// A fixed pool of equal-size blocks over one [`Slab`], which it owns.
///
/// Share it by reference (`&BlockPool` is `Send + Sync`); blocks borrow it,
/// so it outlives them all.
#[derive(Debug)]
pub struct BlockPool {
    slab: Slab,
    free_list: FreeList,
}

impl BlockPool {
    /// A pool of every block of `slab`, all free.
    pub fn new(slab: Slab) -> Self {
        let free_list = FreeList::new(slab.links());
        Self { slab, free_list }
    }

    /// Takes one free block.
    ///
    /// # Errors
    ///
    /// [`Exhausted`] if no block is free (counted in [`PoolStats::exhausted`]).
    pub fn acquire(&self) -> Result<Block<'_>, Exhausted> {
        self.free_list.reserve(1)?;
        let index = self.free_list.pop_reserved(self.slab.links());
        Ok(Block {
            pool: self,
            index: BlockIndex(index),
        })
    }

    /// Reserves `blocks` free blocks at once, or none: the returned
    /// [`Reservation`] yields exactly `blocks` [`Block`]s, and any it has not
    /// yielded go back to the pool when it is dropped. `acquire_many(0)`
    /// succeeds with an empty reservation.
    ///
    /// # Errors
    ///
    /// [`Exhausted`] if fewer than `blocks` are free. Nothing is taken then;
    /// the failure is counted once in [`PoolStats::exhausted`].
    pub fn acquire_many(&self, blocks: usize) -> Result<Reservation<'_>, Exhausted> {
        if blocks > 0 {
            self.free_list.reserve(blocks)?;
        }
        Ok(Reservation {
            pool: self,
            blocks_left: blocks,
        })
    }

    /// The usage counters; lock-free, readable at any time (see [`PoolStats`]).
    pub fn stats(&self) -> PoolStats {
        self.free_list.stats()
    }

    /// Bytes per block.
    pub fn block_size(&self) -> usize {
        self.slab.block_size()
    }

    /// Number of blocks, in use or not.
    pub fn blocks_total(&self) -> usize {
        self.free_list.blocks_total()
    }

    /// The slab the blocks live in (backing, lock status, smaps facts).
    pub fn slab(&self) -> &Slab {
        &self.slab
    }

    /// The start of block `index`, for callers that keep raw indices.
    ///
    /// Safe to call; dereferencing the pointer is the caller's `unsafe` and
    /// sound only while the caller holds that block (as a [`Block`], or as
    /// an index from [`Block::into_raw`] not yet passed to
    /// [`from_raw`](Self::from_raw)) and the pool lives.
    ///
    /// # Panics
    ///
    /// If `index` is not below [`blocks_total`](Self::blocks_total).
    pub fn block_ptr(&self, index: BlockIndex) -> NonNull<u8> {
        self.slab.block_ptr(index.as_usize())
    }

    /// Turns an index from [`Block::into_raw`] back into its [`Block`].
    ///
    /// # Safety
    ///
    /// `index` must have come from [`Block::into_raw`] on a block of *this*
    /// pool, and each such index may be passed here at most once (otherwise
    /// two `Block`s would own the same memory, and the block would be
    /// released twice).
    ///
    /// # Panics
    ///
    /// If `index` is not below [`blocks_total`](Self::blocks_total) (which the
    /// contract already rules out).
    pub unsafe fn from_raw(&self, index: BlockIndex) -> Block<'_> {
        assert!(
            index.as_usize() < self.blocks_total(),
            "block index out of range"
        );
        Block { pool: self, index }
    }

    /// Gives block `index` back; only `Block::drop` calls this.
    fn release(&self, index: BlockIndex) {
        self.free_list.release(self.slab.links(), index.0);
    }
}

/// One block of a [`BlockPool`], owned: the only handle to its memory.
///
/// Released on drop (exactly once: see the module doc). `Send + Sync`: it
/// can be handed to another thread, like a `&mut [u8]`. Its contents are not
/// cleared on release; a fresh slab's blocks are zero, later ones hold
/// whatever their last owner wrote (the runtime clears what it must).
#[must_use = "dropping a Block releases it at once"]
pub struct Block<'pool> {
    pool: &'pool BlockPool,
    index: BlockIndex,
}

impl<'pool> Block<'pool> {
    /// This block's index in its pool.
    pub fn index(&self) -> BlockIndex {
        self.index
    }

    /// Bytes in the block (the pool's block size).
    pub fn len(&self) -> usize {
        self.pool.block_size()
    }

    /// Always `false`: a block is at least one page.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The pool this block belongs to.
    pub fn pool(&self) -> &'pool BlockPool {
        self.pool
    }

    /// The block's bytes.
    pub fn as_slice(&self) -> &[u8] {
        let ptr = self.pool.block_ptr(self.index);
        // SAFETY: `ptr` is non-null and points to `len()` bytes inside the
        // slab's live read-write mapping (slab invariant 2), which outlives
        // `'pool` and so this borrow. The bytes are initialized (zero-filled
        // by the kernel, then written only as bytes). This `Block` is the only
        // owner of the block (module invariant), and `&self` excludes a
        // concurrent `&mut` through it, so no one writes while we read.
        unsafe { core::slice::from_raw_parts(ptr.as_ptr(), self.len()) }
    }

    /// The block's bytes, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        let ptr = self.pool.block_ptr(self.index);
        // SAFETY: as in `as_slice`; moreover `&mut self` makes this the only
        // reference derived from the one owner of the block, so it is unique.
        unsafe { core::slice::from_raw_parts_mut(ptr.as_ptr(), self.len()) }
    }

    /// A raw pointer to the block's first byte (for `readv`/`writev`).
    /// Reading through it is sound while this `Block` lives and no `&mut`
    /// to it is in use.
    pub fn as_ptr(&self) -> *const u8 {
        self.pool.block_ptr(self.index).as_ptr()
    }

    /// A raw writable pointer to the block's first byte (for `readv`).
    /// Writing through it is sound while this `Block` lives and no other
    /// reference to it is in use; every byte must stay initialized (do not
    /// copy uninitialized padding into a block).
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.pool.block_ptr(self.index).as_ptr()
    }

    /// Gives up the handle without releasing the block: it stays in use
    /// until [`BlockPool::from_raw`] turns the index back into a `Block`
    /// (or forever, if it never does).
    ///
    /// ```
    /// # use slabfuse_pool::{BackingRequest, BlockPool, Slab, SlabConfig};
    /// # let config = SlabConfig { block_size: 4096, blocks: 2, backing: BackingRequest::Normal, lock: false };
    /// # let pool = BlockPool::new(Slab::map(&config)?);
    /// let index = pool.acquire()?.into_raw(); // e.g. stored in a table
    /// assert_eq!(pool.stats().in_use, 1);
    /// // SAFETY: `index` came from `into_raw` on this pool, converted back once.
    /// let block = unsafe { pool.from_raw(index) };
    /// drop(block);
    /// assert_eq!(pool.stats().in_use, 0);
    /// # Ok::<(), Box<dyn core::error::Error>>(())
    /// ```
    #[must_use = "the block stays in use until `from_raw` takes this index back"]
    pub fn into_raw(self) -> BlockIndex {
        ManuallyDrop::new(self).index
    }
}

impl Drop for Block<'_> {
    fn drop(&mut self) {
        self.pool.release(self.index);
    }
}

impl AsRef<[u8]> for Block<'_> {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

impl AsMut<[u8]> for Block<'_> {
    fn as_mut(&mut self) -> &mut [u8] {
        self.as_mut_slice()
    }
}

impl fmt::Debug for Block<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Block")
            .field("index", &self.index)
            .field("len", &self.len())
            .finish()
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Block<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "Block {{ index: {=u32}, len: {=usize} }}",
            self.index.0,
            self.len()
        );
    }
}

/// `k` blocks reserved by [`BlockPool::acquire_many`], yielded one by one.
///
/// Taking a block from it never fails (the reservation guarantees the free
/// list holds it). Blocks not taken go back to the pool when the reservation
/// is dropped.
#[must_use = "dropping a Reservation returns all its blocks at once"]
pub struct Reservation<'pool> {
    pool: &'pool BlockPool,
    /// Reserved blocks not yet yielded.
    blocks_left: usize,
}

impl<'pool> Iterator for Reservation<'pool> {
    type Item = Block<'pool>;

    fn next(&mut self) -> Option<Block<'pool>> {
        if self.blocks_left == 0 {
            return None;
        }
        let index = self.pool.free_list.pop_reserved(self.pool.slab.links());
        self.blocks_left -= 1;
        Some(Block {
            pool: self.pool,
            index: BlockIndex(index),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.blocks_left, Some(self.blocks_left))
    }
}

impl ExactSizeIterator for Reservation<'_> {}

impl FusedIterator for Reservation<'_> {}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.blocks_left > 0 {
            self.pool.free_list.unreserve(self.blocks_left);
        }
    }
}

impl fmt::Debug for Reservation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("blocks_left", &self.blocks_left)
            .finish()
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Reservation<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "Reservation {{ blocks_left: {=usize} }}",
            self.blocks_left
        );
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for BlockPool {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "BlockPool {{ block_size: {=usize}, stats: {} }}",
            self.block_size(),
            self.stats()
        );
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::vec::Vec;

    use super::*;
    use crate::{BackingRequest, SlabConfig};

    fn pool(blocks: usize) -> BlockPool {
        let config = SlabConfig {
            block_size: rustix::param::page_size(),
            blocks,
            backing: BackingRequest::Normal,
            lock: false,
        };
        BlockPool::new(Slab::map(&config).unwrap())
    }

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn handles_are_send_and_sync() {
        assert_send_sync::<Block<'static>>();
        assert_send_sync::<BlockPool>();
        assert_send_sync::<Reservation<'static>>();
        assert_send_sync::<Slab>();
    }

    #[test]
    fn block_is_neither_clone_nor_copy() {
        // Compile-time proof by method resolution: if `Block` implemented
        // Clone, `<Block as AmbiguousIfClone<_>>::some_item` would have two
        // candidate impls and this would not compile.
        trait AmbiguousIfClone<A> {
            fn some_item() {}
        }
        impl<T: ?Sized> AmbiguousIfClone<()> for T {}
        #[allow(dead_code)]
        struct Invalid;
        impl<T: Clone> AmbiguousIfClone<Invalid> for T {}
        <Block<'static> as AmbiguousIfClone<_>>::some_item();
    }

    #[test]
    fn acquire_gives_distinct_blocks_until_exhausted() {
        let pool = pool(4);
        assert_eq!(pool.blocks_total(), 4);
        assert_eq!(pool.block_size(), rustix::param::page_size());
        let blocks: Vec<Block<'_>> = (0..4).map(|_| pool.acquire().unwrap()).collect();
        let indices: BTreeSet<u32> = blocks.iter().map(|block| block.index().get()).collect();
        assert_eq!(indices.len(), 4);
        assert!(indices.iter().all(|&index| index < 4));
        assert_eq!(pool.acquire().err(), Some(Exhausted));
        assert_eq!(pool.stats().exhausted, 1);
        drop(blocks);
        assert_eq!(pool.stats().in_use, 0);
        assert!(pool.acquire().is_ok());
    }

    #[test]
    fn blocks_are_writable_and_disjoint() {
        let pool = pool(3);
        let mut blocks: Vec<Block<'_>> = (0..3).map(|_| pool.acquire().unwrap()).collect();
        for (fill, block) in (1u8..).zip(blocks.iter_mut()) {
            assert!(
                block.as_slice().iter().all(|&byte| byte == 0),
                "fresh blocks are zero"
            );
            block.as_mut_slice().fill(fill);
            assert_eq!(block.as_mut_ptr().cast_const(), block.as_ptr());
            assert_eq!(
                block.as_ptr(),
                pool.block_ptr(block.index()).as_ptr().cast_const()
            );
        }
        for (fill, block) in (1u8..).zip(blocks.iter()) {
            assert_eq!(block.len(), pool.block_size());
            assert!(!block.is_empty());
            assert!(block.as_ref().iter().all(|&byte| byte == fill));
        }
        let first = &mut blocks[0];
        first.as_mut()[0] = 0xaa;
        assert_eq!(first.as_slice()[0], 0xaa);
        assert!(core::ptr::eq(first.pool(), &pool));
    }

    #[test]
    fn release_happens_exactly_once_per_block() {
        let pool = pool(2);
        let block = pool.acquire().unwrap();
        let index = block.index();
        assert_eq!(pool.stats().in_use, 1);
        drop(block); // the one release; `block` cannot be named again
        assert_eq!(pool.stats().in_use, 0);
        // If the block had been released twice, the list would now hand out
        // the same index twice: take everything and check they differ.
        let a = pool.acquire().unwrap();
        let b = pool.acquire().unwrap();
        assert_ne!(a.index(), b.index());
        assert!(a.index() == index || b.index() == index);
        assert_eq!(pool.acquire().err(), Some(Exhausted));
    }

    #[test]
    fn acquire_many_is_all_or_nothing() {
        let pool = pool(5);
        let held = pool.acquire_many(3).unwrap();
        assert_eq!(held.len(), 3);
        let before = pool.stats();
        assert_eq!(pool.acquire_many(3).err(), Some(Exhausted));
        let after = pool.stats();
        assert_eq!(
            after,
            PoolStats {
                exhausted: before.exhausted + 1,
                ..before
            },
            "a failed acquire_many takes nothing and counts one exhaustion"
        );
        let rest = pool.acquire_many(2).unwrap();
        assert_eq!(pool.stats().in_use, 5);
        drop((held, rest));
        assert_eq!(pool.stats().in_use, 0);
        assert_eq!(
            pool.acquire_many(6).err(),
            Some(Exhausted),
            "more than the pool has"
        );
        assert_eq!(pool.acquire_many(0).map(|r| r.len()), Ok(0));
    }

    #[test]
    fn reservation_yields_exactly_k_distinct_blocks() {
        let pool = pool(4);
        let mut reservation = pool.acquire_many(4).unwrap();
        assert_eq!(reservation.size_hint(), (4, Some(4)));
        let first = reservation.next().unwrap();
        assert_eq!(reservation.len(), 3);
        let rest: Vec<Block<'_>> = reservation.by_ref().collect();
        assert_eq!(rest.len(), 3);
        assert!(reservation.next().is_none(), "fused");
        let indices: BTreeSet<u32> = rest
            .iter()
            .chain([&first])
            .map(|block| block.index().get())
            .collect();
        assert_eq!(indices.len(), 4);
    }

    #[test]
    fn dropped_reservation_returns_untaken_blocks() {
        let pool = pool(4);
        let mut reservation = pool.acquire_many(3).unwrap();
        let taken = reservation.next().unwrap();
        assert_eq!(pool.stats().in_use, 3, "reserved blocks count as in use");
        drop(reservation);
        assert_eq!(pool.stats().in_use, 1, "the two untaken blocks are back");
        let others = pool.acquire_many(3).unwrap();
        assert_eq!(others.len(), 3);
        drop((taken, others));
        assert_eq!(pool.stats().in_use, 0);
    }

    #[test]
    fn stats_track_high_water_and_exhaustion() {
        let pool = pool(4);
        let zero = PoolStats {
            blocks_total: 4,
            in_use: 0,
            high_water: 0,
            exhausted: 0,
        };
        assert_eq!(pool.stats(), zero);
        let a = pool.acquire().unwrap();
        let many = pool.acquire_many(2).unwrap();
        assert_eq!(
            pool.stats(),
            PoolStats {
                in_use: 3,
                high_water: 3,
                ..zero
            }
        );
        drop(many);
        assert_eq!(
            pool.stats(),
            PoolStats {
                in_use: 1,
                high_water: 3,
                ..zero
            }
        );
        let _ = pool.acquire_many(4);
        let _ = pool.acquire_many(9);
        assert_eq!(
            pool.stats(),
            PoolStats {
                in_use: 1,
                high_water: 3,
                exhausted: 2,
                ..zero
            }
        );
        drop(a);
        let all = pool.acquire_many(4).unwrap();
        assert_eq!(
            pool.stats(),
            PoolStats {
                in_use: 4,
                high_water: 4,
                exhausted: 2,
                ..zero
            }
        );
        drop(all);
    }

    #[test]
    fn raw_round_trip_keeps_the_block_in_use() {
        let pool = pool(2);
        let mut block = pool.acquire().unwrap();
        block.as_mut_slice()[..5].copy_from_slice(b"hello");
        let index = block.into_raw();
        assert_eq!(pool.stats().in_use, 1, "into_raw does not release");
        let ptr = pool.block_ptr(index);
        // SAFETY: test: we hold block `index` (taken out by `into_raw`) and
        // nothing else refers to it.
        let first = unsafe { ptr.read() };
        assert_eq!(first, b'h');
        // SAFETY: `index` came from `into_raw` on this pool and is converted
        // back exactly once.
        let block = unsafe { pool.from_raw(index) };
        assert_eq!(block.index(), index);
        assert_eq!(&block.as_slice()[..5], b"hello");
        drop(block);
        assert_eq!(pool.stats().in_use, 0);
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn block_ptr_panics_past_the_end() {
        let pool = pool(2);
        let _ = pool.block_ptr(BlockIndex::new(2));
    }

    #[test]
    fn block_index_is_a_transparent_u32() {
        let index = BlockIndex::new(7);
        assert_eq!((index.get(), index.as_usize(), u32::from(index)), (7, 7, 7));
        assert_eq!(core::mem::size_of::<BlockIndex>(), 4);
        assert!(BlockIndex::new(1) < BlockIndex::new(2));
    }

    #[test]
    fn pool_exposes_its_slab_and_debug_output() {
        let pool = pool(2);
        assert_eq!(pool.slab().blocks(), 2);
        let block = pool.acquire().unwrap();
        let text = std::format!("{block:?} {:?}", pool.acquire_many(1).unwrap());
        assert!(
            text.contains("Block { index:") && text.contains("blocks_left: 1"),
            "{text}"
        );
    }
}
