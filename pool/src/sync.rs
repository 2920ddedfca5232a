//! The atomics the free list uses: `core`'s in the real build, `loom`'s under
//! `--cfg loom`, so that the model test checks the same code that ships.
//!
//! Only the free list goes through this module. The slab's links area is
//! viewed as `core` atomics (it is mmap'd memory), which is why the mapping
//! and the pool are left out of the loom build.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
