//! The backing fallback chain against the real kernel.
//!
//! These tests change `vm.nr_hugepages` (and the 1 GiB pool), so they need
//! root; without it they print why they skip. They hold one lock for their
//! whole run so that they never overlap each other, and every sysctl they
//! touch is restored by a guard's `Drop`, also when an assertion fails.
//! (The `HugePages_Free` checks assume no other process takes hugetlb pages
//! during the few milliseconds a test holds them.)
// Helpers outside `#[test]` fns are test code too (clippy.toml allows
// unwrap in tests): a panic here is a failed test, not a crashed daemon.
#![allow(clippy::unwrap_used)]
// The loom build has only the free list (see tests/loom.rs).
#![cfg(not(loom))]

use std::sync::{Mutex, MutexGuard};

use slabfuse_pool::{Backing, BackingRequest, BlockPool, Slab, SlabConfig, SlabError};

const NR_HUGEPAGES: &str = "/proc/sys/vm/nr_hugepages";
const NR_HUGEPAGES_1G: &str = "/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages";
const MIB: usize = 1 << 20;

/// Serializes every test in this file.
static SYSCTL: Mutex<()> = Mutex::new(());

fn serialized() -> MutexGuard<'static, ()> {
    // A failed test poisons the lock; the next one may still run.
    SYSCTL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Sets a sysctl-style file and restores its old value on drop.
struct SysctlGuard {
    path: &'static str,
    old: String,
}

impl SysctlGuard {
    fn set(path: &'static str, value: usize) -> Self {
        let old = std::fs::read_to_string(path).unwrap().trim().to_owned();
        std::fs::write(path, value.to_string()).unwrap();
        Self { path, old }
    }

    fn old(&self) -> usize {
        self.old.parse().unwrap()
    }

    fn current(&self) -> usize {
        std::fs::read_to_string(self.path)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for SysctlGuard {
    fn drop(&mut self) {
        if let Err(error) = std::fs::write(self.path, &self.old) {
            eprintln!("FAILED to restore {} to {}: {error}", self.path, self.old);
        }
    }
}

fn meminfo(field: &str) -> usize {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap();
    let line = text.lines().find(|line| line.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn exercise(pool: &BlockPool) {
    let mut blocks: Vec<_> = (0..pool.blocks_total())
        .map(|_| pool.acquire().unwrap())
        .collect();
    for (fill, block) in (1u8..).zip(blocks.iter_mut()) {
        block.as_mut_slice().fill(fill);
    }
    for (fill, block) in (1u8..).zip(blocks.iter()) {
        assert!(block.as_slice().iter().all(|&byte| byte == fill));
    }
    assert!(pool.acquire().is_err());
    drop(blocks);
    assert_eq!(pool.stats().in_use, 0);
}

#[test]
fn hugetlb_2m_when_pages_are_reserved() {
    let _serial = serialized();
    if !is_root() {
        println!("SKIP: writing {NR_HUGEPAGES} needs root");
        return;
    }
    let config = SlabConfig {
        block_size: 2 * MIB,
        blocks: 3,
        backing: BackingRequest::HugeTlb,
        lock: true,
    };
    let pages_needed = config.validate().unwrap().div_ceil(2 * MIB);
    let total = {
        let old = std::fs::read_to_string(NR_HUGEPAGES)
            .unwrap()
            .trim()
            .parse::<usize>()
            .unwrap();
        old + pages_needed
    };
    let sysctl = SysctlGuard::set(NR_HUGEPAGES, total);
    if sysctl.current() < total {
        println!(
            "SKIP: the kernel reserved only {} of {total} hugetlb pages",
            sysctl.current()
        );
        return;
    }
    let free_before = meminfo("HugePages_Free:");

    for request in [BackingRequest::HugeTlb, BackingRequest::Auto] {
        let slab = Slab::map(&SlabConfig {
            backing: request,
            ..config
        })
        .unwrap();
        assert_eq!(slab.backing(), Backing::HugeTlb2M, "{request:?}");
        let facts = slab.smaps().expect("verified from smaps");
        assert_eq!(facts.kernel_page_size_kib, 2048, "{facts:?}");
        assert_eq!(facts.hugetlb_kib, 3 * 2048, "populated: {facts:?}");
        assert_eq!(
            Ok(slab.mapped_bytes()),
            config.mapped_bytes_for(Backing::HugeTlb2M)
        );
        assert_eq!(slab.as_ptr().as_ptr().addr() % (2 * MIB), 0);
        assert_eq!(
            meminfo("HugePages_Free:"),
            free_before - pages_needed,
            "MAP_POPULATE took them"
        );
        let pool = BlockPool::new(slab);
        exercise(&pool);
        drop(pool);
        assert_eq!(
            meminfo("HugePages_Free:"),
            free_before,
            "drop gave the pages back"
        );
    }
    let old = sysctl.old();
    drop(sysctl);
    assert_eq!(
        std::fs::read_to_string(NR_HUGEPAGES).unwrap().trim(),
        old.to_string(),
        "restored"
    );
}

#[test]
fn without_hugetlb_pages_auto_falls_to_thp_and_pinned_hugetlb_fails_clearly() {
    let _serial = serialized();
    if !is_root() {
        println!("SKIP: writing {NR_HUGEPAGES} needs root");
        return;
    }
    let sysctl = SysctlGuard::set(NR_HUGEPAGES, 0);
    assert_eq!(
        meminfo("HugePages_Free:"),
        0,
        "old value was {}",
        sysctl.old()
    );
    let config = SlabConfig {
        block_size: 2 * MIB,
        blocks: 4,
        backing: BackingRequest::Auto,
        lock: true,
    };

    let slab = Slab::map(&config).unwrap();
    let facts = slab.smaps().expect("verified from smaps");
    let thp_mode =
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    if thp_mode.contains("[madvise]") || thp_mode.contains("[always]") {
        assert_eq!(slab.backing(), Backing::Thp, "{facts:?}");
        assert!(facts.anon_huge_pages_kib >= 2048, "verified: {facts:?}");
        assert_eq!(facts.kernel_page_size_kib, 4);
    } else {
        println!("THP is {thp_mode:?} here: Auto must then report normal");
        assert_eq!(slab.backing(), Backing::Normal, "{facts:?}");
    }
    exercise(&BlockPool::new(slab));

    let pinned = Slab::map(&SlabConfig {
        backing: BackingRequest::HugeTlb,
        ..config
    });
    let error = pinned.expect_err("no hugetlb pages, so pinned hugetlb must fail");
    assert_eq!(
        error,
        SlabError::HugeTlbUnavailable {
            errno: rustix::io::Errno::NOMEM,
            pages_2m_needed: 4
        }
    );
    let message = error.to_string();
    assert!(
        message.contains("hugetlb pages requested but none could be mapped (ENOMEM)"),
        "{message}"
    );
    assert!(message.contains("sysctl vm.nr_hugepages=N"), "{message}");
    drop(sysctl);
}

#[test]
fn hugetlb_1g_when_a_gigantic_page_can_be_reserved() {
    let _serial = serialized();
    if !is_root() {
        println!("SKIP: writing {NR_HUGEPAGES_1G} needs root");
        return;
    }
    if std::fs::metadata(NR_HUGEPAGES_1G).is_err() {
        println!("SKIP: this kernel has no 1 GiB hugetlb pages");
        return;
    }
    // Keep a wide margin: a 1 GiB page must come out of free memory.
    if meminfo("MemAvailable:") < 4 * 1024 * 1024 {
        println!("SKIP: less than 4 GiB available for a 1 GiB page");
        return;
    }
    let sysctl = SysctlGuard::set(NR_HUGEPAGES_1G, 1);
    if sysctl.current() < 1 {
        println!("SKIP: the kernel could not assemble a 1 GiB page (memory fragmented)");
        return;
    }
    let config = SlabConfig {
        block_size: 1024 * MIB,
        blocks: 1,
        backing: BackingRequest::HugeTlb,
        lock: false,
    };
    let slab = Slab::map(&config).unwrap();
    assert_eq!(slab.backing(), Backing::HugeTlb1G);
    assert_eq!(slab.smaps().unwrap().kernel_page_size_kib, 1024 * 1024);
    // 1 GiB of blocks + one page of links, not a second gigantic page.
    assert_eq!(
        Ok(slab.mapped_bytes()),
        config.mapped_bytes_for(Backing::HugeTlb1G)
    );
    assert_eq!(slab.mapped_bytes(), 1024 * MIB + rustix::param::page_size());
    let pool = BlockPool::new(slab);
    let mut block = pool.acquire().unwrap();
    block.as_mut_slice()[1024 * MIB - 1] = 7;
    drop(block);
    drop(pool);
    drop(sysctl);
    assert_eq!(
        std::fs::read_to_string(NR_HUGEPAGES_1G).unwrap().trim(),
        "0"
    );
}
