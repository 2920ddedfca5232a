//! Many threads acquiring and releasing at random, single blocks and many.
//!
//! Every block has an ownership word: a thread claims it with a
//! compare-exchange from "free" when the pool hands it the block, and gives
//! it back with a compare-exchange from its own id before dropping the block.
//! A block handed to two holders at once fails the claim. Each holder also
//! stamps its block and checks the stamp before release, so a block written
//! by anyone else in between is caught too. At the end every block must be
//! back, the statistics must add up, and the pool must hand out all blocks
//! again, each exactly once.
//!
//! The run is seeded (`STRESS_SEED=<n>` replays one); the seed is printed.
// Helpers outside `#[test]` fns are test code too (clippy.toml allows
// unwrap in tests): a panic here is a failed test, not a crashed daemon.
#![allow(clippy::unwrap_used)]
// The loom build has only the free list (see tests/loom.rs).
#![cfg(not(loom))]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use slabfuse_pool::{BackingRequest, Block, BlockPool, Exhausted, Slab, SlabConfig};

/// A small, seedable generator (xorshift64*): no dependency needed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: usize) -> usize {
        let bound = u64::try_from(bound).unwrap();
        usize::try_from(self.next() % bound).unwrap()
    }
}

const FREE: u32 = 0;

struct Shared {
    pool: BlockPool,
    owners: Vec<AtomicU32>,
    exhausted_seen: AtomicU64,
}

struct Holder<'a> {
    shared: &'a Shared,
    thread_id: u32,
    held: Vec<(Block<'a>, u64)>,
    stamp: u64,
}

impl<'a> Holder<'a> {
    fn take(&mut self, mut block: Block<'a>) {
        let index = block.index().as_usize();
        let claimed = self.shared.owners[index].compare_exchange(
            FREE,
            self.thread_id,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        assert_eq!(
            claimed,
            Ok(FREE),
            "block {index} handed out while held by another"
        );
        self.stamp += 1;
        let stamp = (u64::from(self.thread_id) << 48) | self.stamp;
        let bytes = block.as_mut_slice();
        let len = bytes.len();
        bytes[..8].copy_from_slice(&stamp.to_le_bytes());
        bytes[len - 8..].copy_from_slice(&stamp.to_le_bytes());
        self.held.push((block, stamp));
    }

    fn give_back(&mut self, at: usize) {
        let (block, stamp) = self.held.swap_remove(at);
        let bytes = block.as_slice();
        let len = bytes.len();
        assert_eq!(
            bytes[..8],
            stamp.to_le_bytes(),
            "block written by someone else"
        );
        assert_eq!(
            bytes[len - 8..],
            stamp.to_le_bytes(),
            "block written by someone else"
        );
        let index = block.index().as_usize();
        let released = self.shared.owners[index].compare_exchange(
            self.thread_id,
            FREE,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        assert_eq!(
            released,
            Ok(self.thread_id),
            "block {index} not owned by its holder"
        );
        drop(block);
    }

    fn exhausted(&self, _: Exhausted) {
        self.shared.exhausted_seen.fetch_add(1, Ordering::Relaxed);
    }
}

fn run(seed: u64, blocks: usize, threads: u32, operations_per_thread: usize, hold_max: usize) {
    let config = SlabConfig {
        block_size: 4096,
        blocks,
        backing: BackingRequest::Normal,
        lock: false,
    };
    let shared = Shared {
        pool: BlockPool::new(Slab::map(&config).unwrap()),
        owners: (0..blocks).map(|_| AtomicU32::new(FREE)).collect(),
        exhausted_seen: AtomicU64::new(0),
    };
    std::thread::scope(|scope| {
        for thread_id in 1..=threads {
            let shared = &shared;
            scope.spawn(move || {
                let mut rng =
                    Rng(seed ^ u64::from(thread_id).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
                let mut holder = Holder {
                    shared,
                    thread_id,
                    held: Vec::new(),
                    stamp: 0,
                };
                for _ in 0..operations_per_thread {
                    let choice = rng.below(100);
                    if holder.held.len() >= hold_max || (choice >= 55 && !holder.held.is_empty()) {
                        let at = rng.below(holder.held.len());
                        holder.give_back(at);
                    } else if choice < 30 {
                        match shared.pool.acquire() {
                            Ok(block) => holder.take(block),
                            Err(exhausted) => holder.exhausted(exhausted),
                        }
                    } else {
                        let wanted = 1 + rng.below(6);
                        match shared.pool.acquire_many(wanted) {
                            Ok(mut reservation) => {
                                assert_eq!(reservation.len(), wanted);
                                // Sometimes take only part: the rest must
                                // go back when the reservation drops.
                                let taking = if choice < 45 {
                                    wanted
                                } else {
                                    rng.below(wanted + 1)
                                };
                                for block in reservation.by_ref().take(taking) {
                                    holder.take(block);
                                }
                            }
                            Err(exhausted) => holder.exhausted(exhausted),
                        }
                    }
                }
                while !holder.held.is_empty() {
                    holder.give_back(0);
                }
            });
        }
    });

    let stats = shared.pool.stats();
    assert_eq!(stats.in_use, 0, "{stats:?}");
    assert_eq!(stats.blocks_total, blocks);
    assert!(
        stats.high_water <= blocks && stats.high_water > 0,
        "{stats:?}"
    );
    assert_eq!(
        stats.exhausted,
        shared.exhausted_seen.load(Ordering::Relaxed),
        "every failure counted once"
    );
    assert!(
        shared
            .owners
            .iter()
            .all(|owner| owner.load(Ordering::Relaxed) == FREE)
    );
    let all: Vec<Block<'_>> = shared.pool.acquire_many(blocks).unwrap().collect();
    let distinct: BTreeSet<u32> = all.iter().map(|block| block.index().get()).collect();
    assert_eq!(distinct.len(), blocks, "every block came back exactly once");
    println!("seed {seed:#x}: {stats:?}");
}

/// `STRESS_SEED` (hex) if set, else the clock mixed with `salt`; printed so
/// that a failure can be replayed with `STRESS_SEED=<printed> cargo test`.
fn seed(salt: u64) -> u64 {
    let seed = match std::env::var("STRESS_SEED") {
        Ok(text) => {
            u64::from_str_radix(text.trim_start_matches("0x"), 16).expect("STRESS_SEED is hex")
        }
        Err(_) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            u64::try_from(now.as_nanos() & u128::from(u64::MAX))
                .unwrap()
                .rotate_left(17)
                ^ salt
        }
    };
    println!("STRESS_SEED={seed:x}");
    seed
}

#[test]
fn four_threads_on_64_blocks() {
    run(seed(1), 64, 4, 300_000, 24);
}

#[test]
fn four_threads_fighting_over_4_blocks() {
    // Exhaustion is the common case here; the failure paths get exercised.
    run(seed(2), 4, 4, 300_000, 3);
}
