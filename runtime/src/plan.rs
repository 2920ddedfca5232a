//! The memory plan: every sizing decision in one place, computed before
//! anything is mapped.
//!
//! [`Plan::compute`] turns a [`Config`] and the kernel's request-size limit
//! into block counts, one line per consumer, and ends in an assertion that
//! the consumers add up to the pool. The daemon prints the plan at start-up;
//! after that, the runtime never asks for memory again.
//!
//! The rules it keeps, and why:
//! - A read of `/dev/fuse` must offer at least `80 + max_write` bytes and at
//!   least `FUSE_MIN_READ_BUFFER` (8 KiB), or the kernel fails it with
//!   EINVAL (`fuse_dev_do_read`). A SETXATTR of the largest value the VFS
//!   allows (64 KiB) must also fit, or the kernel answers it E2BIG itself.
//! - The kernel caps request size at `max_pages` pages, and `max_pages` at
//!   `/proc/sys/fs/fuse/max_pages_limit` (256 pages unless raised; a fixed
//!   256 on kernels without the sysctl). Announcing a `max_write` above the
//!   cap would only make every receive buffer bigger than any request, so
//!   `max_write` is clamped to it and the plan says so.
//! - One message spans at most [`MAX_MESSAGE_BLOCKS`] blocks (the iovec
//!   lists are fixed-capacity).

use core::fmt;

use slabfuse_pool::BackingRequest;

use crate::abi::{FUSE_MIN_READ_BUFFER, WRITE_HEADER_BYTES};
use crate::buffer::MAX_MESSAGE_BLOCKS;
use crate::parse::XATTR_NAME_MAX;

/// The page size the kernel counts `max_pages` in. FUSE on x86_64 and
/// aarch64-4K; other page sizes are read at run time by [`page_size`].
pub fn page_size() -> usize {
    rustix::param::page_size()
}

/// Largest xattr value the VFS passes on (`XATTR_SIZE_MAX`).
pub const XATTR_SIZE_MAX: usize = 65536;
/// The largest SETXATTR message: header, extended `fuse_setxattr_in`, the
/// longest name with its NUL, the largest value.
pub const SETXATTR_MESSAGE_MAX: usize = 40 + 16 + XATTR_NAME_MAX + 1 + XATTR_SIZE_MAX;
/// `max_pages_limit` of kernels that have no sysctl for it
/// (`FUSE_MAX_MAX_PAGES`).
pub const DEFAULT_MAX_PAGES_LIMIT: u32 = 256;
/// Largest block the automatic choice picks: one huge page.
pub const AUTO_BLOCK_SIZE_MAX: usize = 2 << 20;
/// Smallest block (one page).
pub const BLOCK_SIZE_MIN: usize = 4096;
/// Largest block accepted (a 1 GiB huge page).
pub const BLOCK_SIZE_MAX: usize = 1 << 30;

/// What the user asks for.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Worker threads, each with its own `/dev/fuse` fd and receive buffer.
    pub workers: usize,
    /// Largest WRITE payload to ask the kernel for, bytes.
    pub max_message: usize,
    /// Pool block size; `None` picks the smallest power of two that holds
    /// one message, at most 2 MiB.
    pub block_size: Option<usize>,
    /// Pool blocks beyond the receive buffers, for deferred data replies;
    /// `None` reserves one message's worth.
    pub spare_blocks: Option<usize>,
    /// Deferred replies that may be outstanding at once.
    pub max_deferred: usize,
    /// Backing for the slab.
    pub backing: BackingRequest,
    /// Lock the slab in memory (`mlock`); refusal is reported, not fatal.
    pub lock_memory: bool,
    /// The kernel's `max_pages_limit`, or `None` when it has no such sysctl.
    pub max_pages_limit: Option<u32>,
    /// Longest entry name accepted (`ENAMETOOLONG` above).
    pub name_max: usize,
    /// Read-ahead to offer, bytes (the kernel's own value caps it).
    pub max_readahead: u32,
    /// Background requests the kernel may have outstanding.
    pub max_background: u16,
    /// After serving a request, the first worker keeps reading without
    /// sleeping for up to this long (0: never). Back-to-back requests then
    /// find it awake, which saves the wake-up of each round trip; the cost
    /// is one busy core while traffic lasts, never while idle.
    pub poll_ns: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            workers: 2,
            max_message: 16 << 20,
            block_size: None,
            spare_blocks: None,
            max_deferred: 64,
            backing: BackingRequest::Auto,
            lock_memory: true,
            max_pages_limit: Some(DEFAULT_MAX_PAGES_LIMIT),
            name_max: 255,
            max_readahead: 1 << 20,
            max_background: 64,
            poll_ns: 0,
        }
    }
}

/// Why the negotiated message size is below the one asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum MessageLimit {
    /// Granted in full.
    AsAsked,
    /// `/proc/sys/fs/fuse/max_pages_limit` caps requests at this many pages.
    KernelPagesLimit {
        /// The limit, pages.
        pages: u32,
        /// Whether the sysctl exists (false: a fixed limit of an old kernel).
        sysctl: bool,
    },
    /// Rounded down to whole pages.
    PageRounding,
}

/// A configuration the plan cannot honour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum PlanError {
    /// Zero workers.
    NoWorkers,
    /// `max_message` below one page or above what `max_pages` can express.
    MessageSize {
        /// The size asked for.
        asked: usize,
    },
    /// Block size not a power of two in 4 KiB..=1 GiB.
    BlockSize {
        /// The size asked for.
        asked: usize,
    },
    /// One message would span more blocks than a receive buffer holds.
    TooManyBlocksPerMessage {
        /// Blocks one message needs.
        needed: usize,
        /// Smallest block size that works.
        min_block_size: usize,
    },
    /// A total overflowed (absurd worker or block counts).
    Overflow,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PlanError::NoWorkers => write!(f, "at least one worker is needed"),
            PlanError::MessageSize { asked } => write!(
                f,
                "max message {} is out of range: it must be between 4 KiB and {} (65535 pages)",
                Bytes(asked),
                Bytes(65535 * page_size())
            ),
            PlanError::BlockSize { asked } => write!(
                f,
                "block size {} must be a power of two between 4 KiB and 1 GiB",
                Bytes(asked)
            ),
            PlanError::TooManyBlocksPerMessage {
                needed,
                min_block_size,
            } => write!(
                f,
                "one message would span {needed} blocks, more than the {MAX_MESSAGE_BLOCKS} a \
                 receive buffer holds: use a block size of at least {}",
                Bytes(min_block_size)
            ),
            PlanError::Overflow => write!(f, "the plan overflows: fewer workers or blocks"),
        }
    }
}

impl core::error::Error for PlanError {}

/// The computed plan.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Plan {
    /// Worker threads.
    pub workers: usize,
    /// The `max_message` asked for.
    pub max_message_asked: usize,
    /// `max_write` announced in INIT: the largest WRITE the kernel will send.
    pub max_write: usize,
    /// `max_pages` announced in INIT.
    pub max_pages: u16,
    /// Why `max_write` is what it is.
    pub limit: MessageLimit,
    /// Pool block size, bytes.
    pub block_size: usize,
    /// Bytes one receive buffer must offer: `max(80 + max_write, 8 KiB,
    /// largest SETXATTR)`.
    pub receive_bytes: usize,
    /// Blocks per receive buffer (after the 80-byte head).
    pub blocks_per_buffer: usize,
    /// One receive buffer per worker.
    pub receive_blocks: usize,
    /// Spare blocks for deferred data replies.
    pub spare_blocks: usize,
    /// All pool blocks.
    pub pool_blocks: usize,
    /// Pool bytes (`pool_blocks * block_size`).
    pub pool_bytes: usize,
    /// Deferred reply slots.
    pub max_deferred: usize,
}

impl Plan {
    /// Computes the plan; the last lines assert that it adds up.
    pub fn compute(config: &Config) -> Result<Plan, PlanError> {
        let page = page_size();
        if config.workers == 0 {
            return Err(PlanError::NoWorkers);
        }
        let max_expressible = 65535 * page;
        if config.max_message < page || config.max_message > max_expressible {
            return Err(PlanError::MessageSize {
                asked: config.max_message,
            });
        }

        // Message size: what the kernel will really send.
        let (limit_pages, sysctl) = match config.max_pages_limit {
            Some(p) => (p.max(1), true),
            None => (DEFAULT_MAX_PAGES_LIMIT, false),
        };
        let kernel_cap = (limit_pages as usize).saturating_mul(page);
        let rounded = config.max_message / page * page;
        let (max_write, limit) = if rounded > kernel_cap {
            (
                kernel_cap,
                MessageLimit::KernelPagesLimit {
                    pages: limit_pages,
                    sysctl,
                },
            )
        } else if rounded < config.max_message {
            (rounded, MessageLimit::PageRounding)
        } else {
            (rounded, MessageLimit::AsAsked)
        };
        let max_pages = u16::try_from(max_write / page).map_err(|_| PlanError::Overflow)?;

        // Receive buffer: the kernel's minimum-read rule, and SETXATTR.
        let receive_bytes = (WRITE_HEADER_BYTES + max_write)
            .max(FUSE_MIN_READ_BUFFER)
            .max(SETXATTR_MESSAGE_MAX);
        let block_room = receive_bytes - WRITE_HEADER_BYTES;

        let block_size = match config.block_size {
            Some(b) => {
                if !b.is_power_of_two() || !(BLOCK_SIZE_MIN..=BLOCK_SIZE_MAX).contains(&b) {
                    return Err(PlanError::BlockSize { asked: b });
                }
                b
            }
            None => block_room
                .next_power_of_two()
                .clamp(BLOCK_SIZE_MIN, AUTO_BLOCK_SIZE_MAX),
        };
        let blocks_per_buffer = block_room.div_ceil(block_size);
        if blocks_per_buffer > MAX_MESSAGE_BLOCKS {
            return Err(PlanError::TooManyBlocksPerMessage {
                needed: blocks_per_buffer,
                min_block_size: block_room.div_ceil(MAX_MESSAGE_BLOCKS).next_power_of_two(),
            });
        }

        // One line per consumer.
        // Each worker owns one receive buffer for its whole life.
        let receive_blocks = config
            .workers
            .checked_mul(blocks_per_buffer)
            .ok_or(PlanError::Overflow)?;
        // Deferred data replies borrow spare blocks until they are answered.
        let spare_blocks = config.spare_blocks.unwrap_or(blocks_per_buffer);
        let pool_blocks = receive_blocks
            .checked_add(spare_blocks)
            .ok_or(PlanError::Overflow)?;
        let pool_bytes = pool_blocks
            .checked_mul(block_size)
            .ok_or(PlanError::Overflow)?;

        let plan = Plan {
            workers: config.workers,
            max_message_asked: config.max_message,
            max_write,
            max_pages,
            limit,
            block_size,
            receive_bytes,
            blocks_per_buffer,
            receive_blocks,
            spare_blocks,
            pool_blocks,
            pool_bytes,
            max_deferred: config.max_deferred,
        };
        // The kernel's rule and the consumers, checked once more as a sum.
        assert!(
            WRITE_HEADER_BYTES + plan.blocks_per_buffer * plan.block_size >= plan.receive_bytes
        );
        assert!(plan.receive_bytes >= WRITE_HEADER_BYTES + plan.max_write);
        assert_eq!(plan.receive_blocks + plan.spare_blocks, plan.pool_blocks);
        assert_eq!(plan.pool_blocks * plan.block_size, plan.pool_bytes);
        Ok(plan)
    }

    /// One sentence on the negotiated message size, for the start-up log:
    /// what was asked, what the kernel allows and what to do about it.
    pub fn negotiation(&self) -> Negotiation<'_> {
        Negotiation(self)
    }
}

/// Display helper: see [`Plan::negotiation`].
pub struct Negotiation<'a>(&'a Plan);

impl fmt::Display for Negotiation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.0;
        match p.limit {
            MessageLimit::AsAsked => write!(
                f,
                "max message {} granted ({} pages per request)",
                Bytes(p.max_write),
                p.max_pages
            ),
            MessageLimit::PageRounding => write!(
                f,
                "max message {} asked, {} used (whole pages)",
                Bytes(p.max_message_asked),
                Bytes(p.max_write)
            ),
            MessageLimit::KernelPagesLimit {
                pages,
                sysctl: true,
            } => {
                let wanted = p.max_message_asked.div_ceil(page_size());
                write!(
                    f,
                    "max message {} asked, kernel limit {} (fs.fuse.max_pages_limit = {pages}): \
                     raise fs.fuse.max_pages_limit to {wanted} for {} requests",
                    Bytes(p.max_message_asked),
                    Bytes(p.max_write),
                    Bytes(p.max_message_asked)
                )
            }
            MessageLimit::KernelPagesLimit {
                pages,
                sysctl: false,
            } => write!(
                f,
                "max message {} asked, kernel limit {} ({pages} pages, fixed on this kernel: \
                 it has no fs.fuse.max_pages_limit)",
                Bytes(p.max_message_asked),
                Bytes(p.max_write)
            ),
        }
    }
}

/// Reads `/proc/sys/fs/fuse/max_pages_limit`: `None` when the kernel has no
/// such sysctl (then the limit is a fixed 256 pages).
pub fn read_max_pages_limit() -> Option<u32> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(
        c"/proc/sys/fs/fuse/max_pages_limit",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let mut buf = [0u8; 32];
    let n = rustix::io::read(&fd, &mut buf).ok()?;
    parse_decimal(&buf[..n])
}

/// Parses a decimal number surrounded by optional whitespace.
pub(crate) fn parse_decimal(bytes: &[u8]) -> Option<u32> {
    let s = core::str::from_utf8(bytes).ok()?;
    s.trim().parse().ok()
}

/// Formats a byte count with the largest binary unit that divides it.
#[derive(Clone, Copy, Debug)]
pub struct Bytes(pub usize);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        if b == 0 {
            return write!(f, "0");
        }
        for (shift, unit) in [(30, "G"), (20, "M"), (10, "K")] {
            if b.is_multiple_of(1 << shift) {
                return write!(f, "{}{unit}", b >> shift);
            }
        }
        write!(f, "{b}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max_message: usize, limit: Option<u32>) -> Config {
        Config {
            max_message,
            max_pages_limit: limit,
            ..Config::default()
        }
    }

    #[test]
    fn sixteen_mib_with_the_limit_raised_uses_eight_two_mib_blocks() {
        let p = Plan::compute(&config(16 << 20, Some(4096))).unwrap();
        assert_eq!(p.max_write, 16 << 20);
        assert_eq!(p.max_pages, 4096);
        assert_eq!(p.limit, MessageLimit::AsAsked);
        assert_eq!(p.block_size, 2 << 20);
        assert_eq!(p.blocks_per_buffer, 8);
        assert_eq!(p.receive_bytes, 80 + (16 << 20));
        assert_eq!(p.receive_blocks, 2 * 8);
        assert_eq!(p.spare_blocks, 8);
        assert_eq!(p.pool_blocks, 24);
    }

    #[test]
    fn the_default_kernel_limit_clamps_to_one_mib_and_says_how_to_raise_it() {
        let p = Plan::compute(&config(16 << 20, Some(256))).unwrap();
        assert_eq!(p.max_write, 1 << 20);
        assert_eq!(p.max_pages, 256);
        assert_eq!(p.block_size, 1 << 20);
        assert_eq!(p.blocks_per_buffer, 1);
        let msg = alloc::format!("{}", p.negotiation());
        assert_eq!(
            msg,
            "max message 16M asked, kernel limit 1M (fs.fuse.max_pages_limit = 256): raise \
             fs.fuse.max_pages_limit to 4096 for 16M requests"
        );
    }

    #[test]
    fn kernels_without_the_sysctl_are_capped_at_256_pages() {
        let p = Plan::compute(&config(4 << 20, None)).unwrap();
        assert_eq!(p.max_write, 1 << 20);
        assert!(alloc::format!("{}", p.negotiation()).contains("no fs.fuse.max_pages_limit"));
    }

    #[test]
    fn small_messages_still_hold_the_largest_setxattr() {
        let p = Plan::compute(&config(4096, Some(256))).unwrap();
        assert_eq!(p.max_write, 4096);
        assert_eq!(p.receive_bytes, SETXATTR_MESSAGE_MAX);
        assert!(80 + p.blocks_per_buffer * p.block_size >= SETXATTR_MESSAGE_MAX);
    }

    #[test]
    fn tiny_blocks_for_big_messages_are_refused_with_the_size_that_works() {
        let c = Config {
            block_size: Some(4096),
            ..config(16 << 20, Some(4096))
        };
        match Plan::compute(&c) {
            Err(PlanError::TooManyBlocksPerMessage {
                needed,
                min_block_size,
            }) => {
                assert_eq!(needed, 4096);
                assert_eq!(min_block_size, 65536);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_inputs_are_errors_not_panics() {
        assert_eq!(
            Plan::compute(&Config {
                workers: 0,
                ..Config::default()
            }),
            Err(PlanError::NoWorkers)
        );
        assert!(matches!(
            Plan::compute(&config(100, Some(256))),
            Err(PlanError::MessageSize { .. })
        ));
        assert!(matches!(
            Plan::compute(&Config {
                block_size: Some(3000),
                ..Config::default()
            }),
            Err(PlanError::BlockSize { .. })
        ));
        assert_eq!(
            Plan::compute(&Config {
                workers: usize::MAX,
                ..Config::default()
            }),
            Err(PlanError::Overflow)
        );
    }

    #[test]
    fn odd_sizes_round_down_to_pages() {
        let p = Plan::compute(&config((1 << 20) + 100, Some(4096))).unwrap();
        assert_eq!(p.max_write, 1 << 20);
        assert_eq!(p.limit, MessageLimit::PageRounding);
    }

    #[test]
    fn decimal_parsing_tolerates_newlines() {
        assert_eq!(parse_decimal(b"256\n"), Some(256));
        assert_eq!(parse_decimal(b" 4096 "), Some(4096));
        assert_eq!(parse_decimal(b"x"), None);
        assert_eq!(alloc::format!("{}", Bytes(3 << 20)), "3M");
        assert_eq!(alloc::format!("{}", Bytes(1000)), "1000");
    }
}
