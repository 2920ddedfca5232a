//! Errors: [`SlabError`] for start-up (mapping the slab), [`Exhausted`] for
//! the serving path (a full pool).
//!
//! Both are small `Copy` values. The pool never turns [`Exhausted`] into an
//! errno itself; the dispatcher answers `EAGAIN` (see DESIGN.md, "EAGAIN, not
//! allocation"). [`SlabError::errno`] gives the kernel's errno where there is
//! one, for the one place that maps errors to exit codes.

use core::fmt;

use rustix::io::Errno;

/// Why [`Slab::map`](crate::Slab::map) failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlabError {
    /// The block size is not a power of two between the base page size and
    /// [`BLOCK_SIZE_BYTES_MAX`](crate::BLOCK_SIZE_BYTES_MAX).
    BadBlockSize {
        /// The block size asked for.
        block_size_bytes: usize,
        /// The base page size of this machine (the smallest block).
        page_size_bytes: usize,
    },
    /// Zero blocks were asked for.
    NoBlocks,
    /// More than [`BLOCKS_MAX`](crate::BLOCKS_MAX) blocks, or more bytes than
    /// one mapping (and one Rust slice) can span.
    TooManyBlocks {
        /// The number of blocks asked for.
        blocks: usize,
        /// The block size asked for.
        block_size_bytes: usize,
    },
    /// [`BackingRequest::HugeTlb`](crate::BackingRequest::HugeTlb) was pinned
    /// and no hugetlb mapping could be made (usually `ENOMEM`: too few pages
    /// reserved in `vm.nr_hugepages`).
    HugeTlbUnavailable {
        /// What `mmap(MAP_HUGETLB)` returned.
        errno: Errno,
        /// How many free 2 MiB pages this slab needs.
        pages_2m_needed: usize,
    },
    /// The anonymous mapping (or trimming it, or its guard pages) failed.
    Map(Errno),
    /// Pre-faulting the slab (`MADV_POPULATE_WRITE`) failed: usually not
    /// enough free memory for the whole slab.
    Populate(Errno),
}

impl SlabError {
    /// The errno behind this error, if the kernel gave one.
    pub const fn errno(self) -> Option<Errno> {
        match self {
            Self::HugeTlbUnavailable { errno, .. } | Self::Map(errno) | Self::Populate(errno) => {
                Some(errno)
            }
            Self::BadBlockSize { .. } | Self::NoBlocks | Self::TooManyBlocks { .. } => None,
        }
    }
}

impl fmt::Display for SlabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BadBlockSize {
                block_size_bytes,
                page_size_bytes,
            } => write!(
                f,
                "block size {block_size_bytes} bytes is not a power of two between the page size \
                 ({page_size_bytes} bytes) and 1 GiB"
            ),
            Self::NoBlocks => f.write_str("a slab needs at least one block"),
            Self::TooManyBlocks {
                blocks,
                block_size_bytes,
            } => write!(
                f,
                "{blocks} blocks of {block_size_bytes} bytes do not fit one mapping \
                 (at most {} blocks and isize::MAX bytes)",
                crate::BLOCKS_MAX
            ),
            Self::HugeTlbUnavailable {
                errno,
                pages_2m_needed,
            } => write!(
                f,
                "hugetlb pages requested but none could be mapped ({}): reserve some with \
                 `sysctl vm.nr_hugepages=N` (this slab needs {pages_2m_needed} free pages of 2 MiB)",
                ErrnoName(errno)
            ),
            Self::Map(errno) => {
                write!(
                    f,
                    "anonymous mmap of the slab failed ({})",
                    ErrnoName(errno)
                )
            }
            Self::Populate(errno) => write!(
                f,
                "pre-faulting the slab failed ({}): not enough free memory for the whole slab",
                ErrnoName(errno)
            ),
        }
    }
}

impl core::error::Error for SlabError {}

#[cfg(feature = "defmt")]
impl defmt::Format for SlabError {
    fn format(&self, f: defmt::Formatter<'_>) {
        match *self {
            Self::BadBlockSize {
                block_size_bytes,
                page_size_bytes,
            } => defmt::write!(
                f,
                "BadBlockSize {{ block_size_bytes: {=usize}, page_size_bytes: {=usize} }}",
                block_size_bytes,
                page_size_bytes
            ),
            Self::NoBlocks => defmt::write!(f, "NoBlocks"),
            Self::TooManyBlocks {
                blocks,
                block_size_bytes,
            } => defmt::write!(
                f,
                "TooManyBlocks {{ blocks: {=usize}, block_size_bytes: {=usize} }}",
                blocks,
                block_size_bytes
            ),
            Self::HugeTlbUnavailable {
                errno,
                pages_2m_needed,
            } => defmt::write!(
                f,
                "HugeTlbUnavailable {{ errno: {=i32}, pages_2m_needed: {=usize} }}",
                errno.raw_os_error(),
                pages_2m_needed
            ),
            Self::Map(errno) => defmt::write!(f, "Map(errno {=i32})", errno.raw_os_error()),
            Self::Populate(errno) => {
                defmt::write!(f, "Populate(errno {=i32})", errno.raw_os_error())
            }
        }
    }
}

/// The pool has fewer free blocks than were asked for.
///
/// A value, not a wait: the caller answers the request with `EAGAIN` and the
/// daemon keeps serving. Each occurrence is counted in
/// [`PoolStats::exhausted`](crate::PoolStats::exhausted).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Exhausted;

impl fmt::Display for Exhausted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("block pool exhausted: not enough free blocks for this request")
    }
}

impl core::error::Error for Exhausted {}

/// Displays an errno by its C name (`ENOMEM`), which is what people search
/// for; without `std`, rustix can only print the number.
#[derive(Clone, Copy)]
pub(crate) struct ErrnoName(pub(crate) Errno);

impl fmt::Display for ErrnoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The errnos that mmap, madvise, mlock, open and read return.
        let name = match self.0 {
            Errno::NOMEM => "ENOMEM",
            Errno::PERM => "EPERM",
            Errno::AGAIN => "EAGAIN",
            Errno::INVAL => "EINVAL",
            Errno::ACCESS => "EACCES",
            Errno::FAULT => "EFAULT",
            Errno::NOENT => "ENOENT",
            Errno::NOSYS => "ENOSYS",
            Errno::OVERFLOW => "EOVERFLOW",
            Errno::BUSY => "EBUSY",
            Errno::EXIST => "EEXIST",
            Errno::INTR => "EINTR",
            Errno::IO => "EIO",
            Errno::NODEV => "ENODEV",
            Errno::OPNOTSUPP => "EOPNOTSUPP",
            Errno::HWPOISON => "EHWPOISON",
            other => return write!(f, "errno {}", other.raw_os_error()),
        };
        f.write_str(name)
    }
}

#[cfg(test)]
mod tests {
    use std::format;
    use std::string::ToString;

    use super::*;

    #[test]
    fn hugetlb_message_says_what_to_do() {
        let error = SlabError::HugeTlbUnavailable {
            errno: Errno::NOMEM,
            pages_2m_needed: 5,
        };
        let text = error.to_string();
        assert_eq!(
            text,
            "hugetlb pages requested but none could be mapped (ENOMEM): reserve some with \
             `sysctl vm.nr_hugepages=N` (this slab needs 5 free pages of 2 MiB)"
        );
        assert_eq!(error.errno(), Some(Errno::NOMEM));
    }

    #[test]
    fn every_variant_has_a_message_and_errno_where_due() {
        let cases = [
            (
                SlabError::BadBlockSize {
                    block_size_bytes: 3,
                    page_size_bytes: 4096,
                },
                None,
                "power of two",
            ),
            (SlabError::NoBlocks, None, "at least one block"),
            (
                SlabError::TooManyBlocks {
                    blocks: 9,
                    block_size_bytes: 4096,
                },
                None,
                "do not fit",
            ),
            (
                SlabError::Map(Errno::NOMEM),
                Some(Errno::NOMEM),
                "mmap of the slab failed (ENOMEM)",
            ),
            (
                SlabError::Populate(Errno::FAULT),
                Some(Errno::FAULT),
                "pre-faulting",
            ),
        ];
        for (error, errno, needle) in cases {
            assert_eq!(error.errno(), errno);
            assert!(error.to_string().contains(needle), "{error}");
        }
        let dyn_error: &dyn core::error::Error = &SlabError::NoBlocks;
        assert!(dyn_error.source().is_none());
    }

    #[test]
    fn exhausted_is_a_copy_value_with_a_message() {
        let a = Exhausted;
        let b = a;
        assert_eq!(a, b);
        assert!(a.to_string().contains("exhausted"));
    }

    #[test]
    fn errno_names() {
        assert_eq!(format!("{}", ErrnoName(Errno::PERM)), "EPERM");
        assert_eq!(format!("{}", ErrnoName(Errno::AGAIN)), "EAGAIN");
        assert_eq!(
            format!("{}", ErrnoName(Errno::from_raw_os_error(200))),
            "errno 200"
        );
    }
}
