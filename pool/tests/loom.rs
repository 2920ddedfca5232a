//! A `loom` model of the free list: every interleaving of 2-3 threads
//! acquiring and releasing single blocks and reservations on a tiny pool.
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p slabfuse-pool --release --test loom
//! ```
//!
//! The free list is the shipped code (`freelist.rs`), built over loom's
//! atomics by the crate's `sync` module. Each block's memory is modelled by a
//! `loom::cell::UnsafeCell`: loom reports any two accesses to one cell that
//! are not ordered by happens-before, so a block handed to two holders at
//! once, or handed over without the release/acquire pairing that publishes
//! the previous owner's writes, fails the model. The links are a plain
//! `Vec` of loom atomics, as they are a slice of `AtomicU32` in the slab.
//!
//! The model was checked against deliberately broken free lists; each of
//! these fails it: no ABA tag bump; a `Relaxed` push; a `Relaxed` pop;
//! incrementing the free count before the push; `Relaxed` on the free
//! count's reserve/release pair.
//!
//! # Safety
//!
//! This test uses `unsafe` only to read and write the modelled block memory
//! through `UnsafeCell` pointers; loom checks that those accesses are
//! exclusive, which is exactly the property under test.
// Helpers outside `#[test]` fns are test code too (clippy.toml allows
// unwrap in tests): a panic here is a failed test, not a crashed daemon.
#![allow(clippy::unwrap_used)]
#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::sync::atomic::AtomicU32;
use loom::thread;
use slabfuse_pool::Exhausted;
use slabfuse_pool::freelist::FreeList;

struct Model {
    links: Vec<AtomicU32>,
    list: FreeList,
    blocks: Vec<UnsafeCell<u32>>,
}

impl Model {
    fn new(blocks: usize) -> Arc<Self> {
        let links: Vec<AtomicU32> = (0..blocks).map(|_| AtomicU32::new(0)).collect();
        let list = FreeList::new(&links);
        let blocks = (0..blocks).map(|_| UnsafeCell::new(0)).collect();
        Arc::new(Self {
            links,
            list,
            blocks,
        })
    }

    /// Reserves and pops `count` blocks, or none.
    fn acquire(&self, count: usize) -> Result<Vec<u32>, Exhausted> {
        self.list.reserve(count)?;
        Ok((0..count)
            .map(|_| self.list.pop_reserved(&self.links))
            .collect())
    }

    /// What a holder does with its block: write it, read it back.
    fn use_block(&self, index: u32, stamp: u32) {
        let cell = &self.blocks[index as usize];
        // SAFETY: loom checks that no other thread accesses this cell
        // concurrently; if the free list were wrong, loom fails the model here.
        cell.with_mut(|ptr| unsafe { ptr.write(stamp) });
        // SAFETY: as above.
        let read = cell.with(|ptr| unsafe { ptr.read() });
        assert_eq!(read, stamp, "block {index} written by someone else");
    }

    fn release(&self, index: u32) {
        self.list.release(&self.links, index);
    }

    /// After all threads are done: everything is back, exactly once.
    fn check_all_back(&self) {
        let total = self.links.len();
        assert_eq!(self.list.stats().in_use, 0);
        let mut all = self.acquire(total).expect("every block is free again");
        all.sort_unstable();
        assert_eq!(
            all,
            (0..total as u32).collect::<Vec<_>>(),
            "each block exactly once"
        );
    }
}

/// Explores the interleavings of `f` with at most `preemptions` forced
/// thread switches (loom's bound; unbounded search of three threads with
/// retry loops takes minutes, bounded search still covers the known bug
/// shapes: the ABA interleaving needs 2).
fn model(preemptions: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(preemptions);
    builder.check(f);
}

/// Two threads each take one block, use it and give it back, on a pool of 2
/// (and then of 1, where one of them must see `Exhausted` or wait its turn).
#[test]
fn single_acquire_release() {
    for blocks in [1, 2] {
        model(3, move || {
            let pool = Model::new(blocks);
            let handles: Vec<_> = (1..=2)
                .map(|stamp| {
                    let pool = pool.clone();
                    thread::spawn(move || {
                        if let Ok(taken) = pool.acquire(1) {
                            pool.use_block(taken[0], stamp);
                            pool.release(taken[0]);
                        }
                    })
                })
                .collect();
            for handle in handles {
                handle.join().unwrap();
            }
            pool.check_all_back();
        });
    }
}

/// A reservation of 2 races a single acquire on a pool of 3: both succeed,
/// their blocks are disjoint, and a release by one feeds the other.
#[test]
fn many_and_single_interleave() {
    model(3, || {
        let pool = Model::new(3);
        let many = {
            let pool = pool.clone();
            thread::spawn(move || {
                let taken = pool.acquire(2).expect("3 blocks, 2 + 1 wanted");
                for &index in &taken {
                    pool.use_block(index, 10 + index);
                }
                for index in taken {
                    pool.release(index);
                }
            })
        };
        let single = {
            let pool = pool.clone();
            thread::spawn(move || {
                let taken = pool.acquire(1).expect("3 blocks, 2 + 1 wanted");
                pool.use_block(taken[0], 99);
                pool.release(taken[0]);
                // Again: now it may get a block the other thread released.
                if let Ok(again) = pool.acquire(1) {
                    pool.use_block(again[0], 98);
                    pool.release(again[0]);
                }
            })
        };
        many.join().unwrap();
        single.join().unwrap();
        pool.check_all_back();
    });
}

/// The ABA shape: one thread pops A (reading next = B) while another pops A
/// and B and pushes A back. Without the tag, the stale compare-exchange would
/// install B, still held, as the top, and B would be handed out twice.
#[test]
fn aba_is_prevented_by_the_tag() {
    model(3, || {
        let pool = Model::new(3);
        let churn = {
            let pool = pool.clone();
            thread::spawn(move || {
                let taken = pool.acquire(2).expect("2 of 3");
                pool.release(taken[0]);
                pool.use_block(taken[1], 7);
                pool.release(taken[1]);
            })
        };
        let taker = {
            let pool = pool.clone();
            thread::spawn(move || {
                let taken = pool.acquire(1).expect("1 of 3");
                pool.use_block(taken[0], 8);
                pool.release(taken[0]);
            })
        };
        churn.join().unwrap();
        taker.join().unwrap();
        pool.check_all_back();
    });
}

/// All-or-nothing under contention: on a pool of 2, a reservation of 2 and
/// a reservation of 1 cannot both hold at once; a failed one takes nothing,
/// and a partly used reservation gives the rest back.
#[test]
fn exhaustion_takes_nothing() {
    model(3, || {
        let pool = Model::new(2);
        let handles: Vec<_> = [2usize, 1]
            .into_iter()
            .map(|count| {
                let pool = pool.clone();
                thread::spawn(move || match pool.acquire(count) {
                    Ok(taken) => {
                        pool.use_block(taken[0], 50 + count as u32);
                        for index in taken {
                            pool.release(index);
                        }
                        0
                    }
                    Err(Exhausted) => 1,
                })
            })
            .collect();
        let failures: u64 = handles
            .into_iter()
            .map(|handle| handle.join().unwrap())
            .sum();
        assert_eq!(pool.list.stats().exhausted, failures);
        // A reservation whose blocks are only partly taken: the rest returns.
        pool.list.reserve(2).unwrap();
        let index = pool.list.pop_reserved(&pool.links);
        pool.list.unreserve(1);
        pool.release(index);
        pool.check_all_back();
    });
}

/// Three threads, one block each, on a pool of 2: some must fail, none may
/// share, and everything returns.
#[test]
fn three_threads_two_blocks() {
    model(2, || {
        let pool = Model::new(2);
        let handles: Vec<_> = (1..=3)
            .map(|stamp| {
                let pool = pool.clone();
                thread::spawn(move || {
                    if let Ok(taken) = pool.acquire(1) {
                        pool.use_block(taken[0], stamp);
                        pool.release(taken[0]);
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
        pool.check_all_back();
    });
}
