//! The start-up arena: the image's global allocator, a bump allocator that
//! grows only until serving starts.
//!
//! Everything the runtime and memfs allocate (the session, its slot
//! tables, memfs's inode and directory tables, the command line's strings)
//! is allocated before serving; after that, allocation is a bug. So the
//! allocator is as simple as the pattern: one address range is reserved
//! up front (`PROT_NONE`, which costs no memory), and a pointer moves up
//! through it. Pages are made writable and locked (or pre-faulted) in steps
//! of [`COMMIT_STEP_BYTES`] as the pointer reaches them, so the arena's
//! resident size is its committed size, which the memory plan prints.
//!
//! Freeing gives memory back only when it is the last allocation (a
//! `Vec` that grew, a `String` that was formatted and dropped): the start-up
//! code allocates little and never in a pattern that would waste much.
//!
//! [`mark_serving`] seals the arena: from then on every allocation is
//! counted (the count is logged at exit and must be zero), and the arena no
//! longer grows: an allocation that does not fit the committed tail fails
//! (the panic handler then logs it), because growing would break the
//! fixed memory budget the plan promised.
//!
//! # Safety
//!
//! One of the image's few files with `unsafe`. The arena hands out disjoint
//! ranges of its reserved mapping: `next` only grows while the lock is held,
//! except that freeing the allocation that ends at `next` moves it back to
//! that allocation's start (no live allocation lies above it). A range is
//! handed out only below `committed`, which is readable and writable.

use core::alloc::{GlobalAlloc, Layout};
use core::ptr::null_mut;
use core::sync::atomic::Ordering::Relaxed;
use core::sync::atomic::{AtomicBool, AtomicU64};

use rustix::mm::{MapFlags, MprotectFlags, ProtFlags};

/// Address space reserved for the arena: far more than start-up ever needs
/// (a reservation without access costs no memory, only a range of
/// addresses); the committed part is what counts.
const RESERVE_BYTES: usize = 1 << 30;
/// Commit granularity: each step is one `mprotect` and one `mlock`.
const COMMIT_STEP_BYTES: usize = 64 << 10;

/// The arena's bookkeeping, under [`STATE`]'s lock.
struct State {
    /// Start of the reservation (0 until the first allocation).
    base: usize,
    /// Offset of the first free byte.
    next: usize,
    /// Bytes from `base` that are writable and resident.
    committed: usize,
    /// No growing any more.
    sealed: bool,
    /// The high-water mark of `next`.
    used_max: usize,
}

static STATE: spin::Mutex<State> = spin::Mutex::new(State {
    base: 0,
    next: 0,
    committed: 0,
    sealed: false,
    used_max: 0,
});

/// Set by [`mark_serving`]; allocations after it are counted.
static SERVING: AtomicBool = AtomicBool::new(false);
/// Allocations (alloc, alloc_zeroed, realloc) since the process began.
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
/// Allocations since [`mark_serving`].
static ALLOCATIONS_AFTER_SERVING: AtomicU64 = AtomicU64::new(0);
/// Allocations refused (sealed arena full, or the reservation exhausted).
static REFUSED: AtomicU64 = AtomicU64::new(0);

/// The image's global allocator.
pub(crate) struct Arena;

impl State {
    /// Reserves the address range on first use.
    fn reserve(&mut self) -> bool {
        if self.base != 0 {
            return true;
        }
        // SAFETY: a fresh anonymous mapping at an address the kernel picks,
        // without access: it aliases nothing.
        let map = unsafe {
            rustix::mm::mmap_anonymous(
                null_mut(),
                RESERVE_BYTES,
                ProtFlags::empty(),
                MapFlags::PRIVATE | MapFlags::NORESERVE,
            )
        };
        match map {
            Ok(p) => {
                self.base = p as usize;
                true
            }
            Err(_) => false,
        }
    }

    /// Makes the arena writable and resident up to at least `end` (an
    /// offset), in whole steps. Refused once sealed.
    fn commit(&mut self, end: usize) -> bool {
        if end <= self.committed {
            return true;
        }
        if self.sealed || end > RESERVE_BYTES {
            return false;
        }
        let new_committed = end.next_multiple_of(COMMIT_STEP_BYTES).min(RESERVE_BYTES);
        let start = (self.base + self.committed) as *mut core::ffi::c_void;
        let len = new_committed - self.committed;
        // SAFETY: `start..start + len` is the uncommitted part of our own
        // reservation, which no Rust object uses yet.
        let ok =
            unsafe { rustix::mm::mprotect(start, len, MprotectFlags::READ | MprotectFlags::WRITE) };
        if ok.is_err() {
            return false;
        }
        crate::sys::lock_or_populate(start.cast(), len);
        self.committed = new_committed;
        true
    }

    /// Bumps `next` for `layout`; the offset of the new block.
    fn bump(&mut self, layout: Layout) -> Option<usize> {
        if !self.reserve() {
            return None;
        }
        let start = (self.base + self.next).checked_next_multiple_of(layout.align())? - self.base;
        let end = start.checked_add(layout.size())?;
        if !self.commit(end) {
            return None;
        }
        self.next = end;
        self.used_max = self.used_max.max(end);
        Some(start)
    }
}

fn count_allocation() {
    // Relaxed: independent tallies, read at exit after the threads that
    // could allocate have been joined (the join orders them).
    ALLOCATIONS.fetch_add(1, Relaxed);
    if SERVING.load(Relaxed) {
        ALLOCATIONS_AFTER_SERVING.fetch_add(1, Relaxed);
    }
}

// SAFETY: `alloc` returns null or a block of `layout.size()` bytes aligned
// to `layout.align()` that no other live allocation overlaps (the module's
// invariant: `next` only passes over handed-out ranges); `dealloc` only
// reclaims a block that ends at `next`; `realloc` either grows the last
// block in place (nothing lies above it) or falls back to alloc + copy +
// dealloc.
unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        let mut s = STATE.lock();
        match s.bump(layout) {
            Some(offset) => (s.base + offset) as *mut u8,
            None => {
                REFUSED.fetch_add(1, Relaxed);
                null_mut()
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let mut s = STATE.lock();
        let offset = ptr as usize - s.base;
        if offset + layout.size() == s.next {
            s.next = offset;
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        {
            let mut s = STATE.lock();
            let offset = ptr as usize - s.base;
            if offset + layout.size() == s.next {
                // The last block: grow or shrink it where it is.
                count_allocation();
                let Some(end) = offset.checked_add(new_size) else {
                    return null_mut();
                };
                if s.commit(end) {
                    s.next = end;
                    s.used_max = s.used_max.max(end);
                    return ptr;
                }
                REFUSED.fetch_add(1, Relaxed);
                return null_mut();
            }
            if new_size <= layout.size() {
                // Shrinking a block that is not the last: keep it as it is.
                count_allocation();
                return ptr;
            }
        }
        // SAFETY: the caller guarantees `layout.align()` with `new_size` is
        // a valid layout (GlobalAlloc::realloc's contract).
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: `new_layout` has a non-zero size (new_size > layout.size()).
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks are live, disjoint (the new one was just
            // bumped above the old) and at least `layout.size()` long.
            unsafe { core::ptr::copy_nonoverlapping(ptr, new, layout.size()) };
            // SAFETY: `ptr` was allocated here with `layout` and is no longer
            // used by the caller once realloc succeeds.
            unsafe { self.dealloc(ptr, layout) };
        }
        new
    }
}

/// Seals the arena and starts counting: see the module doc.
pub(crate) fn mark_serving() {
    STATE.lock().sealed = true;
    // Relaxed: threads that serve are created after this store (thread
    // creation orders it before anything they do).
    SERVING.store(true, Relaxed);
}

/// The arena's numbers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, defmt::Format)]
pub(crate) struct ArenaStats {
    /// Bytes handed out and not given back (the bump pointer).
    pub(crate) used_bytes: usize,
    /// Highest the bump pointer went.
    pub(crate) used_max_bytes: usize,
    /// Bytes writable and resident.
    pub(crate) committed_bytes: usize,
    /// Allocations since the process began.
    pub(crate) allocations: u64,
    /// Allocations since serving began.
    pub(crate) allocations_after_serving: u64,
    /// Allocations refused.
    pub(crate) refused: u64,
}

/// The arena's numbers now.
pub(crate) fn stats() -> ArenaStats {
    let s = STATE.lock();
    ArenaStats {
        used_bytes: s.next,
        used_max_bytes: s.used_max,
        committed_bytes: s.committed,
        allocations: ALLOCATIONS.load(Relaxed),
        allocations_after_serving: ALLOCATIONS_AFTER_SERVING.load(Relaxed),
        refused: REFUSED.load(Relaxed),
    }
}
