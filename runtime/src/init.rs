//! INIT: version and feature negotiation.
//!
//! The kernel opens every connection with INIT, carrying its version and the
//! features it offers; the reply carries ours, and from then on both sides
//! use the smaller minor version and the features both named. This module is
//! a pure function from the kernel's offer and the plan to the reply, so it
//! is tested without a kernel.
//!
//! Degrading gracefully: from protocol 7.26 up every kernel is served; a
//! feature the kernel does not offer is simply not used. A kernel with a
//! newer *major* version gets the 8-byte reply that asks it to retry with
//! ours (it then sends a second INIT). Older than 7.26 is refused with
//! `EPROTO` and a clear reason.

use rustix::io::Errno;

use crate::abi::{self, *};
use crate::fs::ConnInfo;
use crate::plan::Plan;

/// Features every filesystem gets by default, and why:
/// - `ASYNC_READ`: the kernel may send several READs of one file at once.
/// - `BIG_WRITES` + `MAX_PAGES`: writes up to `max_write`, requests up to
///   `max_pages` pages (the large-message path).
/// - `PARALLEL_DIROPS`: lookups and readdirs in one directory run in
///   parallel (filesystems are `Sync` and lock for themselves).
/// - `ASYNC_DIO`: direct I/O of one call is split into concurrent requests.
/// - `CACHE_SYMLINKS`: READLINK answers are cached.
/// - `SETXATTR_EXT`: the extended `fuse_setxattr_in` (the runtime parses it).
/// - `INIT_EXT`: use `flags2`.
///
/// Features that change what the filesystem must do are opt-in through
/// [`crate::Filesystem::init_flags`]; see [`READDIRPLUS`] and
/// `FUSE_ATOMIC_O_TRUNC` (OPEN must then truncate on `O_TRUNC` itself).
pub const DEFAULT_INIT_FLAGS: u64 = FUSE_ASYNC_READ
    | FUSE_BIG_WRITES
    | FUSE_MAX_PAGES
    | FUSE_PARALLEL_DIROPS
    | FUSE_ASYNC_DIO
    | FUSE_CACHE_SYMLINKS
    | FUSE_SETXATTR_EXT
    | FUSE_INIT_EXT;

/// READDIRPLUS, adaptively (the kernel uses it for `ls -l`-like walks):
/// for filesystems that implement [`crate::Filesystem::readdirplus`].
pub const READDIRPLUS: u64 = FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO;

/// What to answer an INIT with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitReply {
    /// Agreed: send `out` truncated to `len` bytes, then serve with `conn`.
    Agreed {
        /// The reply struct.
        out: abi::fuse_init_out,
        /// How many bytes of it this kernel expects.
        len: usize,
        /// What was agreed.
        conn: ConnInfo,
    },
    /// The kernel speaks a newer major version: reply with ours (8 bytes)
    /// and wait for another INIT.
    RetryWithOurMajor {
        /// The reply struct (only `major`/`minor` are sent).
        out: abi::fuse_init_out,
    },
    /// Cannot serve this kernel.
    Refused {
        /// Errno for the reply.
        errno: Errno,
        /// Why, for the log.
        reason: RefuseReason,
    },
}

/// Why INIT was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum RefuseReason {
    /// The kernel's major version is older than 7.
    MajorTooOld {
        /// Kernel's major.
        major: u32,
    },
    /// The kernel's minor is older than [`FUSE_MIN_MINOR_VERSION`].
    MinorTooOld {
        /// Kernel's minor.
        minor: u32,
    },
}

impl core::fmt::Display for RefuseReason {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            RefuseReason::MajorTooOld { major } => {
                write!(f, "kernel FUSE protocol {major}.x is older than 7.x")
            }
            RefuseReason::MinorTooOld { minor } => write!(
                f,
                "kernel FUSE protocol 7.{minor} is older than 7.{FUSE_MIN_MINOR_VERSION}, the \
                 oldest this runtime serves"
            ),
        }
    }
}

/// Negotiates. `wanted` is the feature set the filesystem asks for
/// (normally [`DEFAULT_INIT_FLAGS`]); `max_readahead` and `max_background`
/// come from the configuration.
pub fn negotiate(
    kernel: &abi::fuse_init_in,
    plan: &Plan,
    wanted: u64,
    max_readahead: u32,
    max_background: u16,
) -> InitReply {
    let mut out = abi::fuse_init_out {
        major: FUSE_KERNEL_VERSION,
        minor: FUSE_KERNEL_MINOR_VERSION,
        ..abi::fuse_init_out::default()
    };
    if kernel.major > FUSE_KERNEL_VERSION {
        return InitReply::RetryWithOurMajor { out };
    }
    if kernel.major < FUSE_KERNEL_VERSION {
        return InitReply::Refused {
            errno: Errno::PROTO,
            reason: RefuseReason::MajorTooOld {
                major: kernel.major,
            },
        };
    }
    if kernel.minor < FUSE_MIN_MINOR_VERSION {
        return InitReply::Refused {
            errno: Errno::PROTO,
            reason: RefuseReason::MinorTooOld {
                minor: kernel.minor,
            },
        };
    }
    let minor = kernel.minor.min(FUSE_KERNEL_MINOR_VERSION);
    let kernel_flags = u64::from(kernel.flags)
        | if u64::from(kernel.flags) & FUSE_INIT_EXT != 0 {
            u64::from(kernel.flags2) << 32
        } else {
            0
        };
    let agreed = kernel_flags & wanted;
    // With MAX_PAGES the kernel takes our page count (clamped to its
    // limit); without it (7.26, 7.27) it uses its fixed 32 pages.
    let max_pages = if agreed & FUSE_MAX_PAGES != 0 {
        plan.max_pages
    } else {
        32
    };
    let page = crate::plan::page_size();
    let max_write = plan.max_write.min(usize::from(max_pages) * page);
    let max_write_u32 = u32::try_from(plan.max_write).unwrap_or(u32::MAX);
    out.max_readahead = kernel.max_readahead.min(max_readahead);
    let (low, high) = abi::split_flags(agreed);
    out.flags = low;
    out.flags2 = if agreed & FUSE_INIT_EXT != 0 { high } else { 0 };
    out.max_background = max_background;
    out.congestion_threshold = max_background.saturating_mul(3) / 4;
    // Announce the buffer's real capacity: the kernel insists every read
    // offers 80 + max_write bytes, and our receive buffers are that size.
    out.max_write = max_write_u32;
    out.time_gran = 1;
    out.max_pages = max_pages;
    let conn = ConnInfo {
        minor,
        flags: agreed,
        max_write: u32::try_from(max_write).unwrap_or(u32::MAX),
        max_read: u32::try_from(usize::from(max_pages) * page).unwrap_or(u32::MAX),
        max_readahead: out.max_readahead,
        max_pages,
    };
    InitReply::Agreed {
        out,
        len: core::mem::size_of::<abi::fuse_init_out>(),
        conn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Config, Plan};

    fn plan(max_message: usize, limit: u32) -> Plan {
        Plan::compute(&Config {
            max_message,
            max_pages_limit: Some(limit),
            ..Config::default()
        })
        .unwrap()
    }

    fn kernel(minor: u32, flags: u64) -> abi::fuse_init_in {
        abi::fuse_init_in {
            major: 7,
            minor,
            max_readahead: 128 * 1024,
            flags: abi::split_flags(flags).0,
            flags2: abi::split_flags(flags).1,
            ..Default::default()
        }
    }

    const MODERN: u64 = FUSE_ASYNC_READ
        | FUSE_ATOMIC_O_TRUNC
        | FUSE_BIG_WRITES
        | FUSE_MAX_PAGES
        | FUSE_PARALLEL_DIROPS
        | FUSE_DO_READDIRPLUS
        | FUSE_READDIRPLUS_AUTO
        | FUSE_ASYNC_DIO
        | FUSE_CACHE_SYMLINKS
        | FUSE_SETXATTR_EXT
        | FUSE_INIT_EXT
        | FUSE_WRITEBACK_CACHE
        | FUSE_POSIX_LOCKS
        | FUSE_HAS_RESEND
        | FUSE_OVER_IO_URING;

    #[test]
    fn a_modern_kernel_gets_sixteen_mib_and_the_features_asked() {
        let p = plan(16 << 20, 4096);
        let InitReply::Agreed { out, len, conn } =
            negotiate(&kernel(45, MODERN), &p, DEFAULT_INIT_FLAGS, 1 << 20, 64)
        else {
            panic!("refused")
        };
        assert_eq!(len, 64);
        assert_eq!((out.major, out.minor), (7, 45));
        assert_eq!(out.max_write, 16 << 20);
        assert_eq!(out.max_pages, 4096);
        assert_eq!(conn.minor, 45);
        assert_eq!(conn.flags, DEFAULT_INIT_FLAGS);
        assert_eq!(u64::from(out.flags) & FUSE_ATOMIC_O_TRUNC, 0);
        // Offered but not asked for: not agreed.
        assert_eq!(u64::from(out.flags) & FUSE_WRITEBACK_CACHE, 0);
        assert_eq!(u64::from(out.flags) & FUSE_POSIX_LOCKS, 0);
        assert_eq!(out.flags2, 0);
        assert_eq!(out.max_readahead, 128 * 1024);
        assert_eq!(out.time_gran, 1);
    }

    #[test]
    fn an_old_kernel_without_max_pages_or_flags2_is_served_with_less() {
        let p = plan(16 << 20, 256);
        let offered =
            FUSE_ASYNC_READ | FUSE_BIG_WRITES | FUSE_PARALLEL_DIROPS | FUSE_DO_READDIRPLUS;
        let wanted = DEFAULT_INIT_FLAGS | READDIRPLUS;
        let InitReply::Agreed { out, conn, .. } =
            negotiate(&kernel(26, offered), &p, wanted, 1 << 20, 64)
        else {
            panic!("refused")
        };
        assert_eq!(conn.minor, 26);
        assert_eq!(conn.flags, offered);
        assert_eq!(conn.max_pages, 32);
        assert_eq!(conn.max_write, 128 * 1024);
        // The buffer is still announced in full: the kernel's read rule.
        assert_eq!(out.max_write, 1 << 20);
        assert_eq!(out.flags2, 0);
    }

    #[test]
    fn flags2_travels_only_with_init_ext() {
        let p = plan(1 << 20, 256);
        let wanted = DEFAULT_INIT_FLAGS | FUSE_HAS_RESEND;
        let InitReply::Agreed { out, .. } = negotiate(&kernel(45, MODERN), &p, wanted, 1 << 20, 64)
        else {
            panic!("refused")
        };
        assert_eq!(out.flags2, abi::split_flags(FUSE_HAS_RESEND).1);
        let no_ext = MODERN & !FUSE_INIT_EXT;
        let InitReply::Agreed { out, conn, .. } =
            negotiate(&kernel(45, no_ext), &p, wanted, 1 << 20, 64)
        else {
            panic!("refused")
        };
        assert_eq!(out.flags2, 0);
        assert_eq!(conn.flags & FUSE_HAS_RESEND, 0);
    }

    #[test]
    fn versions_out_of_range_are_refused_or_retried() {
        let p = plan(1 << 20, 256);
        let mut k = kernel(25, MODERN);
        assert!(matches!(
            negotiate(&k, &p, DEFAULT_INIT_FLAGS, 0, 0),
            InitReply::Refused {
                errno: Errno::PROTO,
                reason: RefuseReason::MinorTooOld { minor: 25 }
            }
        ));
        k.major = 8;
        assert!(matches!(
            negotiate(&k, &p, DEFAULT_INIT_FLAGS, 0, 0),
            InitReply::RetryWithOurMajor { .. }
        ));
        k.major = 6;
        assert!(matches!(
            negotiate(&k, &p, DEFAULT_INIT_FLAGS, 0, 0),
            InitReply::Refused { .. }
        ));
    }

    #[test]
    fn a_newer_minor_is_answered_with_ours() {
        let p = plan(1 << 20, 256);
        let InitReply::Agreed { out, conn, .. } =
            negotiate(&kernel(99, MODERN), &p, DEFAULT_INIT_FLAGS, 1 << 20, 64)
        else {
            panic!("refused")
        };
        assert_eq!(out.minor, 45);
        assert_eq!(conn.minor, 45);
    }
}
