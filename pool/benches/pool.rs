//! Benchmarks of one acquire + release, run with `cargo bench -p slabfuse-pool`.
//!
//! - `lock_free`: [`BlockPool::acquire`] and the release in `Block`'s drop
//!   (the shipped Treiber stack with reservation counter and statistics).
//! - `lock_free_many_8`: [`BlockPool::acquire_many`] of 8 blocks, taken and
//!   released (per operation of 8 blocks).
//! - `spin_locked`: the alternative the issue asked to measure, a stack of
//!   indices behind a `spin::mutex::SpinMutex`, keeping the same statistics
//!   (in use, high water) inside the critical section. Bench-only.
//! - `std_alloc`: `std::alloc::alloc` + `dealloc` of one block (page-aligned),
//!   what the pool replaces.
//!
//! Every benchmark runs with 1 thread, with 2 threads hammering the same
//! pool (the machine has 2 cores), and with 4 (oversubscribed: a thread can
//! be preempted inside the spin lock's critical section, which the lock-free
//! list does not have), for 4 KiB and 2 MiB blocks. The free-list benches
//! use large samples (~1 ms each) so that the threads, which divan starts
//! together at each sample, really overlap instead of mostly running one
//! after the other. The pool and block size do not change the free list's work; the
//! 2 MiB case matters for `std_alloc`, where it crosses glibc's mmap
//! threshold.

use std::alloc::{Layout, alloc, dealloc};
use std::sync::OnceLock;

use slabfuse_pool::{BackingRequest, BlockPool, Slab, SlabConfig};
use spin::mutex::SpinMutex;

fn main() {
    divan::main();
}

const BLOCK_SIZES: [usize; 2] = [4096, 2 << 20];

/// Enough blocks that 4 threads never exhaust the pool.
const BLOCKS: usize = 64;

fn pool(block_size: usize) -> &'static BlockPool {
    static POOL_4K: OnceLock<BlockPool> = OnceLock::new();
    static POOL_2M: OnceLock<BlockPool> = OnceLock::new();
    let cell = if block_size == 4096 {
        &POOL_4K
    } else {
        &POOL_2M
    };
    cell.get_or_init(|| {
        let config = SlabConfig {
            block_size,
            blocks: BLOCKS,
            backing: BackingRequest::Normal,
            lock: false,
        };
        BlockPool::new(Slab::map(&config).expect("map the bench slab"))
    })
}

#[divan::bench(args = BLOCK_SIZES, threads = [1, 2, 4], sample_size = 100_000)]
fn lock_free(bencher: divan::Bencher<'_, '_>, block_size: usize) {
    let pool = pool(block_size);
    bencher.bench(|| {
        let block = pool.acquire().expect("the bench never exhausts the pool");
        divan::black_box(&block);
    });
}

#[divan::bench(args = BLOCK_SIZES, threads = [1, 2, 4], sample_size = 20_000)]
fn lock_free_many_8(bencher: divan::Bencher<'_, '_>, block_size: usize) {
    let pool = pool(block_size);
    bencher.bench(|| {
        for block in pool
            .acquire_many(8)
            .expect("the bench never exhausts the pool")
        {
            divan::black_box(&block);
        }
    });
}

/// The spin-locked alternative: a pre-sized stack of indices behind a spin
/// lock, with the same statistics kept under the lock.
struct SpinStack {
    inner: SpinMutex<SpinInner>,
}

struct SpinInner {
    free: Vec<u32>,
    in_use: usize,
    high_water: usize,
    exhausted: u64,
}

impl SpinStack {
    fn new(blocks: u32) -> Self {
        let free = (0..blocks).rev().collect();
        Self {
            inner: SpinMutex::new(SpinInner {
                free,
                in_use: 0,
                high_water: 0,
                exhausted: 0,
            }),
        }
    }

    fn acquire(&self) -> Option<u32> {
        let mut inner = self.inner.lock();
        match inner.free.pop() {
            Some(index) => {
                inner.in_use += 1;
                inner.high_water = inner.high_water.max(inner.in_use);
                Some(index)
            }
            None => {
                inner.exhausted += 1;
                None
            }
        }
    }

    fn release(&self, index: u32) {
        let mut inner = self.inner.lock();
        // Capacity was reserved up front: this never reallocates.
        inner.free.push(index);
        inner.in_use -= 1;
    }
}

fn spin_stack() -> &'static SpinStack {
    static STACK: OnceLock<SpinStack> = OnceLock::new();
    STACK.get_or_init(|| SpinStack::new(64))
}

#[divan::bench(args = BLOCK_SIZES, threads = [1, 2, 4], sample_size = 100_000)]
fn spin_locked(bencher: divan::Bencher<'_, '_>, block_size: usize) {
    // The block size changes nothing for an index stack; kept for the table.
    let _ = block_size;
    let stack = spin_stack();
    bencher.bench(|| {
        let index = stack.acquire().expect("the bench never exhausts the stack");
        divan::black_box(index);
        stack.release(index);
    });
}

#[divan::bench(args = BLOCK_SIZES, threads = [1, 2, 4])]
fn std_alloc(bencher: divan::Bencher<'_, '_>, block_size: usize) {
    let layout = Layout::from_size_align(block_size, 4096).expect("valid layout");
    bencher.bench(|| {
        // SAFETY: `layout` has a non-zero size.
        let ptr = unsafe { alloc(layout) };
        assert!(!ptr.is_null());
        divan::black_box(ptr);
        // SAFETY: `ptr` was allocated just above with the same layout.
        unsafe { dealloc(ptr, layout) };
    });
}
