//! A dropped slab leaves nothing mapped: blocks, links and guard pages.
//!
//! Alone in its own test binary on purpose: with other tests running, a new
//! thread's stack could be mapped into the freed range before we look.
// Helpers outside `#[test]` fns are test code too (clippy.toml allows
// unwrap in tests): a panic here is a failed test, not a crashed daemon.
#![allow(clippy::unwrap_used)]
// The loom build has only the free list (see tests/loom.rs).
#![cfg(not(loom))]

use slabfuse_pool::{BackingRequest, BlockPool, Slab, SlabConfig};

/// The VMAs of this process that intersect `range`.
fn mappings_in(range: std::ops::Range<usize>) -> Vec<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines()
        .filter(|line| {
            let (start, end) = line.split(' ').next().unwrap().split_once('-').unwrap();
            let start = usize::from_str_radix(start, 16).unwrap();
            let end = usize::from_str_radix(end, 16).unwrap();
            start < range.end && range.start < end
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn drop_unmaps_the_slab_and_its_guards() {
    let page = rustix::param::page_size();
    for backing in [BackingRequest::Normal, BackingRequest::Thp] {
        let config = SlabConfig {
            block_size: 64 * 1024,
            blocks: 40,
            backing,
            lock: false,
        };
        let slab = Slab::map(&config).unwrap();
        let start = slab.as_ptr().as_ptr().addr();
        let range = start - page..start + slab.mapped_bytes() + page;
        let before = mappings_in(range.clone());
        assert!(before.len() >= 3, "guard, body VMA(s), guard: {before:?}");
        assert!(
            before.first().unwrap().contains(" ---p ") && before.last().unwrap().contains(" ---p ")
        );
        drop(BlockPool::new(slab));
        assert_eq!(mappings_in(range), Vec::<String>::new(), "{backing:?}");
    }
}
