//! The daemon's global allocator: the system allocator, counted.
//!
//! The summary line's `heap_allocs_after_start` is the difference of
//! [`HeapCounts::now`] between the start of serving and its end. Every Rust
//! heap allocation on every thread goes through here (the runtime, memfs,
//! std); `alloc`, `alloc_zeroed` and `realloc` count as allocations,
//! `dealloc` separately as a free. (C code in libc that calls `malloc`
//! directly is not seen; nothing on the serving path does.)
//!
//! Counting costs one relaxed atomic add per call and never allocates, so
//! the allocator can be called from anywhere the system allocator can.
//!
//! # Safety
//!
//! This is one of the two files of the binary with `unsafe` (the other is
//! `sys.rs`). Each method forwards its arguments unchanged to
//! [`System`], whose contract is the same as the one the caller of the
//! method already upholds; the counters are plain atomics.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;

/// Allocations (`alloc`, `alloc_zeroed`, `realloc`) since the process began.
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
/// Frees (`dealloc`) since the process began.
static FREES: AtomicU64 = AtomicU64::new(0);

/// [`System`], counted. Install with `#[global_allocator]`.
pub(crate) struct Counting;

// SAFETY: every method returns exactly what `System` returns for the same
// arguments, so `Counting` upholds `GlobalAlloc`'s contract because `System`
// does; counting does not allocate, so no method re-enters the allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // Relaxed: the counters are independent tallies; readers that need
        // a bound on them synchronize through other atomics (see `serve`).
        ALLOCATIONS.fetch_add(1, Relaxed);
        // SAFETY: the caller guarantees `layout` has a non-zero size, which
        // is all `System.alloc` requires.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        // SAFETY: as in `alloc`: the caller guarantees a non-zero size.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        FREES.fetch_add(1, Relaxed);
        // SAFETY: the caller guarantees `ptr` came from this allocator (that
        // is, from `System`, since every method forwards there) with
        // `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Relaxed);
        // SAFETY: the caller guarantees `ptr` came from this allocator (so
        // from `System`) with `layout`, and a valid non-zero `new_size`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// The allocator's tallies at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct HeapCounts {
    /// Allocations and reallocations.
    pub(crate) allocations: u64,
    /// Frees.
    pub(crate) frees: u64,
}

impl HeapCounts {
    /// The tallies now (all threads).
    pub(crate) fn now() -> HeapCounts {
        HeapCounts {
            allocations: ALLOCATIONS.load(Relaxed),
            frees: FREES.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocations_and_frees_are_counted() {
        // Other test threads may allocate meanwhile: only lower bounds hold.
        let before = HeapCounts::now();
        let v = std::hint::black_box(vec![1u8; 100]);
        let mid = HeapCounts::now();
        drop(v);
        let after = HeapCounts::now();
        assert!(mid.allocations > before.allocations);
        assert!(after.frees > mid.frees);
    }
}
