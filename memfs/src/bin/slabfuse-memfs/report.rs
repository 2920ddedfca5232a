//! What the daemon prints: one `plan` line at start, one `summary` line at
//! exit, and [`say`] for everything else on stderr.
//!
//! Both lines are `key=value` fields separated by single spaces, values
//! without spaces, so a script (or a test) can split them. Sizes are exact:
//! `16M` where the value is a whole number of M (or G, K), else bytes.
//!
//! Formatting allocates: the summary's numbers are taken first, as plain
//! values, and only then formatted (see `serve`).

use core::fmt;
use std::io::Write;

use crate::size::Human;

/// The program's name, the prefix of every line it prints.
pub(crate) const PROGRAM: &str = "slabfuse-memfs";

/// Prints `slabfuse-memfs: <message>` on stderr as one `write`, so that a
/// line is never interleaved with another process's output. Errors are
/// ignored: a daemon whose stderr was closed must keep serving.
pub(crate) fn say(message: fmt::Arguments<'_>) {
    let line = format!("{PROGRAM}: {message}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// How much of the daemon's memory is locked in RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Locked {
    /// `mlockall`: every page, code and stacks included.
    All,
    /// Only these parts locked themselves (`mlockall` was refused).
    Parts {
        /// The runtime's slab.
        slab: bool,
        /// memfs's data storage.
        storage: bool,
    },
}

impl fmt::Display for Locked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match *self {
            Locked::All => "all",
            Locked::Parts {
                slab: true,
                storage: true,
            } => "slab+storage",
            Locked::Parts {
                slab: true,
                storage: false,
            } => "slab",
            Locked::Parts {
                slab: false,
                storage: true,
            } => "storage",
            Locked::Parts {
                slab: false,
                storage: false,
            } => "no",
        })
    }
}

/// The start-up line: `plan workers=… max_message=… …`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PlanLine {
    /// Worker threads.
    pub(crate) workers: usize,
    /// The message size in force (`max_write` announced to the kernel).
    pub(crate) max_message_bytes: u64,
    /// Pool block size.
    pub(crate) block_size_bytes: u64,
    /// Pool blocks.
    pub(crate) pool_blocks: usize,
    /// The runtime slab's verified backing (`hugetlb-2M`, `hugetlb-1G`,
    /// `thp`, `normal`).
    pub(crate) backing: &'static str,
    /// What is locked.
    pub(crate) locked: Locked,
    /// memfs's data budget.
    pub(crate) storage_bytes: u64,
    /// memfs's inode capacity.
    pub(crate) inodes: u32,
    /// Slab plus memfs storage, bytes mapped.
    pub(crate) mapped_total_bytes: u64,
}

impl fmt::Display for PlanLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "plan workers={} max_message={} block_size={} pool_blocks={} backing={} locked={} \
             storage={} inodes={} mapped_total={}",
            self.workers,
            Human(self.max_message_bytes),
            Human(self.block_size_bytes),
            self.pool_blocks,
            self.backing,
            self.locked,
            Human(self.storage_bytes),
            self.inodes,
            Human(self.mapped_total_bytes),
        )
    }
}

/// The exit line: `summary requests=… …`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SummaryLine {
    /// Requests received, INIT included.
    pub(crate) requests: u64,
    /// Largest WRITE payload, bytes.
    pub(crate) largest_write_bytes: u64,
    /// Largest READ reply, bytes.
    pub(crate) largest_read_bytes: u64,
    /// Requests answered `EAGAIN` (pool exhausted).
    pub(crate) eagain: u64,
    /// Malformed messages.
    pub(crate) malformed: u64,
    /// Heap allocations (and reallocations) while serving.
    pub(crate) heap_allocs_after_start: u64,
    /// Page faults (minor + major) while serving.
    pub(crate) page_faults_after_start: u64,
    /// Most pool blocks ever in use at once.
    pub(crate) pool_high_water: usize,
    /// Pool blocks in all.
    pub(crate) pool_blocks: usize,
}

impl fmt::Display for SummaryLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "summary requests={} largest_write={} largest_read={} eagain={} malformed={} \
             heap_allocs_after_start={} page_faults_after_start={} pool_high_water={}/{}",
            self.requests,
            Human(self.largest_write_bytes),
            Human(self.largest_read_bytes),
            self.eagain,
            self.malformed,
            self.heap_allocs_after_start,
            self.page_faults_after_start,
            self.pool_high_water,
            self.pool_blocks,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_line_has_every_field_in_order() {
        let line = PlanLine {
            workers: 2,
            max_message_bytes: 1 << 20,
            block_size_bytes: 1 << 20,
            pool_blocks: 3,
            backing: "thp",
            locked: Locked::All,
            storage_bytes: 64 << 20,
            inodes: 65536,
            mapped_total_bytes: (67 << 20) + 4096,
        };
        assert_eq!(
            line.to_string(),
            "plan workers=2 max_message=1M block_size=1M pool_blocks=3 backing=thp locked=all \
             storage=64M inodes=65536 mapped_total=68612K"
        );
    }

    #[test]
    fn summary_line_has_every_field_in_order() {
        let line = SummaryLine {
            requests: 12,
            largest_write_bytes: 1 << 20,
            largest_read_bytes: 100,
            eagain: 1,
            malformed: 0,
            heap_allocs_after_start: 0,
            page_faults_after_start: 0,
            pool_high_water: 2,
            pool_blocks: 3,
        };
        assert_eq!(
            line.to_string(),
            "summary requests=12 largest_write=1M largest_read=100 eagain=1 malformed=0 \
             heap_allocs_after_start=0 page_faults_after_start=0 pool_high_water=2/3"
        );
    }

    #[test]
    fn locked_names() {
        let parts = |slab, storage| Locked::Parts { slab, storage }.to_string();
        assert_eq!(Locked::All.to_string(), "all");
        assert_eq!(parts(true, true), "slab+storage");
        assert_eq!(parts(true, false), "slab");
        assert_eq!(parts(false, true), "storage");
        assert_eq!(parts(false, false), "no");
    }
}
