//! Probe what this machine gives a slab: maps one, acquires every block (and
//! one more, which must fail), releases them all, and prints one line.
//!
//! ```text
//! cargo run -p slabfuse-pool --example probe -- --blocks 8 --block-size 2M [--backing auto|hugetlb|thp|normal] [--no-lock]
//! backing=thp blocks=8 block_size=2097152 locked=yes in_use=0 high_water=8 exhausted=1 verified=smaps:KernelPageSize=4kB,AnonHugePages=16384kB,Hugetlb=0kB,Rss=16384kB,Locked=16384kB
//! ```
//!
//! Exit status: 0 on success, 1 if the slab cannot be mapped (the reason is
//! on stderr, e.g. hugetlb pinned with no pages reserved), 2 on bad arguments.

#![cfg_attr(loom, allow(unused))]

use std::process::ExitCode;

use slabfuse_pool::{BackingRequest, SlabConfig};
#[cfg(not(loom))]
use slabfuse_pool::{BlockPool, Slab};

const USAGE: &str = "usage: probe --blocks N --block-size SIZE[K|M|G] \
                     [--backing auto|hugetlb|thp|normal] [--no-lock]";

// The loom build of the crate has only the free list; nothing to probe.
#[cfg(loom)]
fn main() {}

#[cfg(not(loom))]
fn main() -> ExitCode {
    let config = match parse_args(std::env::args().skip(1)) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("probe: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let slab = match Slab::map(&config) {
        Ok(slab) => slab,
        Err(error) => {
            eprintln!("probe: {error}");
            return ExitCode::from(1);
        }
    };
    let pool = BlockPool::new(slab);
    let blocks: Vec<_> = (0..config.blocks)
        .map_while(|_| pool.acquire().ok())
        .collect();
    let all_taken = blocks.len() == config.blocks;
    let one_more_failed = pool.acquire().is_err();
    drop(blocks);

    let stats = pool.stats();
    let slab = pool.slab();
    let verified = match slab.smaps() {
        Some(facts) => format!("smaps:{facts}"),
        None => "unavailable".to_owned(),
    };
    println!(
        "backing={} blocks={} block_size={} locked={} in_use={} high_water={} exhausted={} \
         verified={verified}",
        slab.backing(),
        slab.blocks(),
        slab.block_size(),
        if slab.lock_status().is_locked() {
            "yes"
        } else {
            "no"
        },
        stats.in_use,
        stats.high_water,
        stats.exhausted,
    );
    if !slab.lock_status().is_locked() && config.lock {
        eprintln!("probe: note: {}", slab.lock_status());
    }
    if !(all_taken && one_more_failed && stats.in_use == 0) {
        eprintln!("probe: the pool did not behave: {stats:?}");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<SlabConfig, String> {
    let mut blocks = None;
    let mut block_size = None;
    let mut backing = BackingRequest::Auto;
    let mut lock = true;
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--blocks" => {
                let text = value()?;
                blocks = Some(
                    text.parse()
                        .map_err(|_| format!("bad block count {text:?}"))?,
                );
            }
            "--block-size" => block_size = Some(parse_size(&value()?)?),
            "--backing" => {
                backing = match value()?.as_str() {
                    "auto" => BackingRequest::Auto,
                    "hugetlb" => BackingRequest::HugeTlb,
                    "thp" => BackingRequest::Thp,
                    "normal" => BackingRequest::Normal,
                    other => return Err(format!("unknown backing {other:?}")),
                }
            }
            "--no-lock" => lock = false,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let config = SlabConfig {
        blocks: blocks.ok_or("--blocks is required")?,
        block_size: block_size.ok_or("--block-size is required")?,
        backing,
        lock,
    };
    // Sizing errors are argument errors too (exit 2), with the pool's message.
    config.validate().map_err(|error| error.to_string())?;
    Ok(config)
}

/// `4096`, `4K`, `2M`, `1G` (binary units; `k`/`m`/`g` and a trailing `iB` or
/// `B` accepted).
fn parse_size(text: &str) -> Result<usize, String> {
    let bad = || format!("bad size {text:?} (examples: 4096, 4K, 2M, 1G)");
    let trimmed = text.trim_end_matches("iB").trim_end_matches('B');
    let (digits, shift) = match trimmed.char_indices().last() {
        Some((at, 'K' | 'k')) => (&trimmed[..at], 10),
        Some((at, 'M' | 'm')) => (&trimmed[..at], 20),
        Some((at, 'G' | 'g')) => (&trimmed[..at], 30),
        _ => (trimmed, 0),
    };
    let number: usize = digits.parse().map_err(|_| bad())?;
    number.checked_mul(1 << shift).ok_or_else(bad)
}
