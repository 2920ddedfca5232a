//! What the caller asks of a slab ([`SlabConfig`], [`BackingRequest`]) and
//! what the kernel actually gave ([`Backing`], [`LockStatus`]).
//!
//! Sizing rules live here, in one place, with the reason for each limit:
//! [`SlabConfig::validate`] is the only gate, and [`SlabConfig::mapped_bytes_for`]
//! is what a memory plan should add up (it is exactly what [`Slab::map`]
//! maps for that backing).
//!
//! [`Slab::map`]: crate::Slab::map

use rustix::io::Errno;

use crate::error::SlabError;

/// The largest block: 1 GiB, one hugetlb-1G page.
///
/// Larger blocks would gain nothing (no larger page size exists on x86-64 or
/// arm64) and would make one request pin an absurd amount of memory.
pub const BLOCK_SIZE_BYTES_MAX: usize = 1 << 30;

/// The most blocks one slab may have.
///
/// A free-list entry stores `index + 1` in 32 bits (0 means "end of list"),
/// and [`BlockIndex`](crate::BlockIndex) is a `u32`, so indices `0..=u32::MAX - 1`
/// are representable: that is `u32::MAX` blocks.
#[allow(
    clippy::cast_possible_truncation,
    reason = "usize is at least 32 bits here"
)]
pub const BLOCKS_MAX: usize = u32::MAX as usize;

// `BLOCKS_MAX` relies on usize holding a u32; slabfuse supports no 16-bit target.
const _: () = assert!(usize::BITS >= 32);

/// Size of a hugetlb-2M page, and the alignment THP needs.
pub(crate) const HUGE_PAGE_2M_BYTES: usize = 2 << 20;
/// Size of a hugetlb-1G page.
pub(crate) const HUGE_PAGE_1G_BYTES: usize = 1 << 30;
/// Bytes of free-list metadata per block: one `AtomicU32` next-link.
pub(crate) const LINK_BYTES: usize = core::mem::size_of::<u32>();

/// Which backing the caller wants for the slab.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum BackingRequest {
    /// Try hugetlb pages (1 GiB pages when the block size is a multiple of
    /// 1 GiB, then 2 MiB pages), then transparent huge pages, then normal
    /// pages. Never fails for lack of huge pages.
    #[default]
    Auto,
    /// Hugetlb pages only; fail with [`SlabError::HugeTlbUnavailable`] when
    /// none can be mapped.
    HugeTlb,
    /// Transparent huge pages. Best effort: when the kernel gives normal
    /// pages instead, the slab reports [`Backing::Normal`] rather than failing.
    Thp,
    /// Normal pages; the slab is marked `MADV_NOHUGEPAGE` so that a system in
    /// THP "always" mode does not turn it into huge pages behind our back.
    Normal,
}

/// The backing a slab actually got, as verified from `/proc/self/smaps`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Backing {
    /// hugetlb pages of 2 MiB (`KernelPageSize: 2048 kB`).
    HugeTlb2M,
    /// hugetlb pages of 1 GiB (`KernelPageSize: 1048576 kB`).
    HugeTlb1G,
    /// Transparent huge pages: base pages with `AnonHugePages` > 0.
    Thp,
    /// Normal base pages (or huge pages that could not be verified).
    Normal,
}

impl Backing {
    /// The short name used in logs and by the `probe` example:
    /// `hugetlb-2M`, `hugetlb-1G`, `thp` or `normal`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::HugeTlb2M => "hugetlb-2M",
            Self::HugeTlb1G => "hugetlb-1G",
            Self::Thp => "thp",
            Self::Normal => "normal",
        }
    }

    /// Whether this backing is hugetlb (either page size).
    pub const fn is_hugetlb(self) -> bool {
        matches!(self, Self::HugeTlb2M | Self::HugeTlb1G)
    }

    /// The unit the blocks area is rounded up to for this backing: a hugetlb
    /// mapping is made of whole huge pages; THP and normal memory of base
    /// pages. (THP is *aligned* to 2 MiB but not rounded: a tail shorter than
    /// 2 MiB simply stays in base pages instead of costing a whole huge page.)
    pub(crate) fn round_bytes(self, page_size_bytes: usize) -> usize {
        match self {
            Self::HugeTlb2M => HUGE_PAGE_2M_BYTES,
            Self::HugeTlb1G => HUGE_PAGE_1G_BYTES,
            Self::Thp | Self::Normal => page_size_bytes,
        }
    }
}

impl core::fmt::Display for Backing {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether the slab is locked in RAM (`mlock`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockStatus {
    /// `mlock` succeeded: the slab cannot be swapped out or reclaimed.
    Locked,
    /// `mlock` was refused (usually `ENOMEM` or `EPERM` from `RLIMIT_MEMLOCK`,
    /// which is 8 MiB for unprivileged users on Debian). The slab works, but
    /// its pages (all, or the links area if only the blocks area could be
    /// locked) may be swapped; the caller decides whether that matters.
    Refused(Errno),
    /// The configuration asked for no locking.
    NotRequested,
}

impl LockStatus {
    /// Whether the slab is locked.
    pub const fn is_locked(self) -> bool {
        matches!(self, Self::Locked)
    }
}

impl core::fmt::Display for LockStatus {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Locked => f.write_str("locked"),
            Self::Refused(errno) => write!(
                f,
                "mlock refused ({}): raise `ulimit -l` (RLIMIT_MEMLOCK) or grant CAP_IPC_LOCK",
                crate::error::ErrnoName(*errno)
            ),
            Self::NotRequested => f.write_str("not requested"),
        }
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for LockStatus {
    fn format(&self, f: defmt::Formatter<'_>) {
        match self {
            Self::Locked => defmt::write!(f, "Locked"),
            Self::Refused(errno) => defmt::write!(f, "Refused(errno {=i32})", errno.raw_os_error()),
            Self::NotRequested => defmt::write!(f, "NotRequested"),
        }
    }
}

/// What to map: `blocks` blocks of `block_size` bytes each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SlabConfig {
    /// Bytes per block: a power of two from the base page size (4 KiB on
    /// x86-64) to [`BLOCK_SIZE_BYTES_MAX`] (1 GiB).
    pub block_size: usize,
    /// Number of blocks: 1 to [`BLOCKS_MAX`].
    pub blocks: usize,
    /// Which backing to try (see [`BackingRequest`]).
    pub backing: BackingRequest,
    /// Whether to `mlock` the slab. A refusal is reported, not fatal.
    pub lock: bool,
}

impl SlabConfig {
    /// `blocks` blocks of `block_size` bytes, [`BackingRequest::Auto`], locked.
    pub const fn new(block_size: usize, blocks: usize) -> Self {
        Self {
            block_size,
            blocks,
            backing: BackingRequest::Auto,
            lock: true,
        }
    }

    /// Checks the sizing rules and returns the bytes of the blocks area
    /// (`blocks * block_size`).
    ///
    /// # Errors
    ///
    /// [`SlabError::BadBlockSize`], [`SlabError::NoBlocks`] or
    /// [`SlabError::TooManyBlocks`].
    pub fn validate(&self) -> Result<usize, SlabError> {
        let page_size_bytes = rustix::param::page_size();
        // A power of two at least one page keeps every block page-aligned
        // (O_DIRECT and hugetlb need that) and makes index -> address a shift.
        if !self.block_size.is_power_of_two()
            || self.block_size < page_size_bytes
            || self.block_size > BLOCK_SIZE_BYTES_MAX
        {
            return Err(SlabError::BadBlockSize {
                block_size_bytes: self.block_size,
                page_size_bytes,
            });
        }
        if self.blocks == 0 {
            return Err(SlabError::NoBlocks);
        }
        let too_many = SlabError::TooManyBlocks {
            blocks: self.blocks,
            block_size_bytes: self.block_size,
        };
        if self.blocks > BLOCKS_MAX {
            return Err(too_many);
        }
        // Rust objects (and so our slices) may not exceed isize::MAX bytes;
        // leave room for the largest rounding and the links area too.
        let blocks_bytes = self.blocks.checked_mul(self.block_size).ok_or(too_many)?;
        let links_bytes = self.blocks.checked_mul(LINK_BYTES).ok_or(too_many)?;
        let worst_bytes = blocks_bytes
            .checked_add(HUGE_PAGE_1G_BYTES)
            .and_then(|bytes| bytes.checked_add(links_bytes))
            .and_then(|bytes| bytes.checked_add(2 * page_size_bytes))
            .ok_or(too_many)?;
        if isize::try_from(worst_bytes).is_err() {
            return Err(too_many);
        }
        Ok(blocks_bytes)
    }

    /// Bytes of memory [`Slab::map`](crate::Slab::map) maps read-write when it
    /// obtains `backing`: the blocks area rounded up to that backing's page
    /// (a base page for THP and normal) plus the free-list links
    /// rounded up to a base page. Guard pages (`PROT_NONE`, no memory) are not
    /// counted. This is the number a memory plan should budget.
    ///
    /// # Errors
    ///
    /// As [`SlabConfig::validate`].
    pub fn mapped_bytes_for(&self, backing: Backing) -> Result<usize, SlabError> {
        let blocks_bytes = self.validate()?;
        let page_size_bytes = rustix::param::page_size();
        let blocks_area_bytes = round_up(blocks_bytes, backing.round_bytes(page_size_bytes));
        Ok(blocks_area_bytes + self.links_bytes(page_size_bytes))
    }

    /// Bytes of the links area: one `u32` per block, rounded up to a page.
    pub(crate) fn links_bytes(&self, page_size_bytes: usize) -> usize {
        round_up(self.blocks * LINK_BYTES, page_size_bytes)
    }
}

/// Rounds `bytes` up to a multiple of `unit` (a power of two). Callers have
/// checked that the result does not overflow (see [`SlabConfig::validate`]).
pub(crate) const fn round_up(bytes: usize, unit: usize) -> usize {
    (bytes + unit - 1) & !(unit - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backing_names_are_the_documented_ones() {
        assert_eq!(Backing::HugeTlb2M.name(), "hugetlb-2M");
        assert_eq!(Backing::HugeTlb1G.name(), "hugetlb-1G");
        assert_eq!(Backing::Thp.name(), "thp");
        assert_eq!(Backing::Normal.name(), "normal");
        assert_eq!(std::format!("{}", Backing::Thp), "thp");
        assert!(Backing::HugeTlb1G.is_hugetlb() && !Backing::Thp.is_hugetlb());
    }

    #[test]
    fn validate_accepts_powers_of_two_from_a_page_to_1g() {
        let page = rustix::param::page_size();
        let mut size = page;
        while size <= BLOCK_SIZE_BYTES_MAX {
            assert_eq!(SlabConfig::new(size, 3).validate(), Ok(3 * size));
            size *= 2;
        }
    }

    #[test]
    fn validate_rejects_bad_sizes_and_counts() {
        let page = rustix::param::page_size();
        for size in [0, 1, page / 2, page + 1, 3 * page, 2 * BLOCK_SIZE_BYTES_MAX] {
            assert!(
                matches!(
                    SlabConfig::new(size, 1).validate(),
                    Err(SlabError::BadBlockSize { .. })
                ),
                "{size}"
            );
        }
        assert_eq!(
            SlabConfig::new(page, 0).validate(),
            Err(SlabError::NoBlocks)
        );
        assert!(matches!(
            SlabConfig::new(BLOCK_SIZE_BYTES_MAX, usize::MAX / 2).validate(),
            Err(SlabError::TooManyBlocks { .. })
        ));
        if usize::BITS > 32 {
            assert!(matches!(
                SlabConfig::new(page, BLOCKS_MAX + 1).validate(),
                Err(SlabError::TooManyBlocks { .. })
            ));
        }
    }

    #[test]
    fn mapped_bytes_for_rounds_per_backing() {
        let page = rustix::param::page_size();
        let config = SlabConfig::new(page, 3);
        let links = page; // 3 links of 4 bytes fit one page
        assert_eq!(
            config.mapped_bytes_for(Backing::Normal),
            Ok(3 * page + links)
        );
        assert_eq!(config.mapped_bytes_for(Backing::Thp), Ok(3 * page + links));
        assert_eq!(
            config.mapped_bytes_for(Backing::HugeTlb2M),
            Ok(HUGE_PAGE_2M_BYTES + links)
        );
        assert_eq!(
            config.mapped_bytes_for(Backing::HugeTlb1G),
            Ok(HUGE_PAGE_1G_BYTES + links)
        );
        let big = SlabConfig::new(HUGE_PAGE_2M_BYTES, 4096);
        assert_eq!(
            big.mapped_bytes_for(Backing::HugeTlb2M),
            Ok(4096 * HUGE_PAGE_2M_BYTES + 16384)
        );
        assert_eq!(round_up(0, 4096), 0);
        assert_eq!(round_up(4097, 4096), 8192);
    }

    #[test]
    fn lock_status_reports_refusal() {
        assert!(LockStatus::Locked.is_locked());
        assert!(!LockStatus::Refused(Errno::NOMEM).is_locked());
        assert!(!LockStatus::NotRequested.is_locked());
        let text = std::format!("{}", LockStatus::Refused(Errno::NOMEM));
        assert!(
            text.contains("ENOMEM") && text.contains("ulimit -l"),
            "{text}"
        );
    }
}
