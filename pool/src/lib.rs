//! slabfuse-pool: one fixed slab of memory and a lock-free pool of its blocks.
//!
//! Everything slabfuse serves with lives in one [`Slab`], mapped once at
//! start-up and never grown. A [`BlockPool`] hands out its equal-size blocks.
//! The crate is `#![no_std]` and does not use `alloc` at all.
//!
//! # Layers, bottom up
//!
//! - [`Slab`] (`slab.rs`): the anonymous mapping. Backing is tried in order
//!   hugetlb pages, transparent huge pages, normal pages (unless the caller
//!   pins one), pre-faulted and `mlock`ed where permitted, and the backing
//!   actually obtained is *verified* from `/proc/self/smaps` and reported as
//!   a [`Backing`] value, never assumed.
//! - `smaps.rs`: a streaming, allocation-free scanner of `/proc/self/smaps`
//!   that finds the slab's VMA by its start address.
//! - `freelist.rs`: a Treiber stack of block indices with an ABA tag, plus a
//!   reservation counter, written in safe code over plain atomics so that the
//!   `loom` model test checks the very same code.
//! - [`BlockPool`] (`pool.rs`): the free list over the slab's blocks. Acquire
//!   and release are O(1), never allocate and never wait; a request for `k`
//!   blocks gets all `k` or none; a full pool answers `Err(Exhausted)`.
//!
//! # Guarantees
//!
//! - No heap: the crate has no `alloc` dependency; the free list's links live
//!   in the slab's own mapping, after the blocks (hugetlb: in a small
//!   companion mapping, see [`Slab`]).
//! - A [`Block`] is the only handle to its memory, is released exactly once
//!   (on drop), and cannot be cloned or used after release: double release is
//!   impossible by construction, not by a runtime check.
//! - `unsafe` is denied at the crate root and allowed only in `slab.rs` and
//!   `pool.rs`, whose module docs carry a `# Safety` section. Every unsafe
//!   block holds one operation and a `// SAFETY:` proof.
//!
//! # Example
//!
//! ```
//! use slabfuse_pool::{BackingRequest, BlockPool, Slab, SlabConfig};
//!
//! let config = SlabConfig {
//!     block_size: 4096,
//!     blocks: 8,
//!     backing: BackingRequest::Normal,
//!     lock: false,
//! };
//! let pool = BlockPool::new(Slab::map(&config)?);
//! let mut block = pool.acquire()?;
//! block.as_mut_slice()[0] = 42;
//! assert_eq!(pool.stats().in_use, 1);
//! drop(block); // back in the pool
//! let blocks = pool.acquire_many(8)?; // all eight, or an error
//! assert_eq!(blocks.len(), 8);
//! # Ok::<(), Box<dyn core::error::Error>>(())
//! ```
#![no_std]
#![deny(unsafe_code)]

#[cfg(test)]
extern crate std;

mod config;
mod error;
// The free list is public only in the `loom` build, where `tests/loom.rs`
// drives it directly; in the normal build it is an implementation detail.
#[cfg(loom)]
pub mod freelist;
#[cfg(not(loom))]
mod freelist;
mod sync;

// The mapping and the pool need the kernel, so the loom model leaves them out.
#[cfg(not(loom))]
#[allow(unsafe_code)]
mod pool;
#[cfg(not(loom))]
#[allow(unsafe_code)]
mod slab;
#[cfg(not(loom))]
mod smaps;

pub use config::{
    BLOCK_SIZE_BYTES_MAX, BLOCKS_MAX, Backing, BackingRequest, LockStatus, SlabConfig,
};
pub use error::{Exhausted, SlabError};
pub use freelist::PoolStats;
#[cfg(not(loom))]
pub use pool::{Block, BlockIndex, BlockPool, Reservation};
#[cfg(not(loom))]
pub use slab::Slab;
#[cfg(not(loom))]
pub use smaps::SmapsFacts;
