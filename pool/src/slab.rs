//! The slab: one anonymous mapping made at start-up, carved into equal blocks,
//! pre-faulted, locked where permitted, and verified from `/proc/self/smaps`.
//!
//! # Layout
//!
//! THP and normal slabs are one mapping:
//!
//! ```text
//! [guard page][blocks: blocks * block_size][links: 4 bytes per block, page-rounded][guard page]
//!             ^ aligned to 2 MiB for THP (over-mapped, then trimmed)
//! ```
//!
//! The guard pages are `PROT_NONE` (address space, no memory). They catch
//! overruns off either end, and they keep the kernel from merging a
//! neighbouring anonymous mapping into the slab's VMA, which would make the
//! smaps figures (found by start address) include someone else's memory.
//!
//! A hugetlb mapping can only consist of whole huge pages, so there the links
//! (a few bytes per block) get their own small normal-page mapping instead of
//! costing one more huge page (2 MiB, or 1 GiB with 1G pages) after the
//! blocks. hugetlb VMAs are never merged by the kernel, so they need no
//! guard.
//!
//! # Order of operations (measured on Linux 6.18)
//!
//! - hugetlb: `mmap(MAP_HUGETLB | MAP_HUGE_{1GB,2MB} | MAP_POPULATE)`. With
//!   too few reserved pages this fails at once with `ENOMEM`. We never pass
//!   `MAP_NORESERVE`: with it the mmap succeeds and the first touch of an
//!   unbacked page is a `SIGBUS`.
//! - THP: map, `madvise(MADV_HUGEPAGE)`, *then* pre-fault with
//!   `MADV_POPULATE_WRITE` (touching one byte per page on kernels before 5.14).
//!   Pre-faulting first (`MAP_POPULATE`) leaves 4 KiB pages that are not
//!   collapsed until khugepaged gets to them, if ever.
//! - normal: the same, with `MADV_NOHUGEPAGE` so a system in THP "always"
//!   mode does not silently turn a pinned normal slab into THP.
//! - then `mlock` if asked; a refusal is reported in [`LockStatus`].
//!
//! # Safety
//!
//! This file is one of the two in the crate that use `unsafe` (with
//! `pool.rs`). The unsafe operations are the system calls on raw address
//! ranges (`mmap`, `munmap`, `mprotect`, `madvise`, `mlock`), the pre-fault
//! fallback's volatile writes, the pointer arithmetic from a block index to
//! its address, and viewing the links area as `&[AtomicU32]`. They rest on
//! these invariants of [`Slab`]:
//!
//! 1. Each `Mapping` describes exactly a range this process mapped and has
//!    not unmapped, and is the only owner of it; it unmaps it on drop.
//! 2. `blocks_ptr .. blocks_ptr + blocks * block_size` lies inside a
//!    read-write mapping of the slab, and `blocks * block_size` plus the
//!    largest rounding is below `isize::MAX` ([`SlabConfig::validate`]).
//! 3. `links_ptr .. links_ptr + 4 * blocks` lies inside a read-write,
//!    page-aligned mapping of the slab that was zero-filled by the kernel and
//!    is only ever accessed through `AtomicU32`s.
//! 4. No Rust reference into the slab outlives it: references are handed out
//!    only borrowing `&self` (the links) or, in `pool.rs`, borrowing the pool
//!    that owns the slab (blocks).

use core::ffi::c_void;
use core::ptr::NonNull;
use core::sync::atomic::AtomicU32;

use rustix::io::Errno;
use rustix::mm::{Advice, MapFlags, MprotectFlags, ProtFlags};

use crate::config::{
    Backing, BackingRequest, HUGE_PAGE_1G_BYTES, HUGE_PAGE_2M_BYTES, LockStatus, SlabConfig,
    round_up,
};
use crate::error::SlabError;
use crate::smaps::{self, SmapsFacts};

/// One fixed anonymous mapping carved into `blocks` equal blocks.
///
/// Made once by [`Slab::map`], never grown, unmapped on drop. Hand it to
/// [`BlockPool::new`](crate::BlockPool::new) to serve its blocks. The backing
/// it reports is what `/proc/self/smaps` showed after pre-faulting, never
/// merely what was asked for.
#[derive(Debug)]
pub struct Slab {
    /// THP/normal: guards, blocks and links. hugetlb: the blocks only.
    #[allow(dead_code, reason = "held for its Drop, which unmaps it")]
    main: Mapping,
    /// hugetlb only: the links, in normal pages.
    #[allow(dead_code, reason = "held for its Drop, which unmaps it")]
    links_mapping: Option<Mapping>,
    /// Start of block 0 (invariant 2).
    blocks_ptr: NonNull<u8>,
    /// Start of the links (invariant 3).
    links_ptr: NonNull<AtomicU32>,
    /// `log2(block_size)`: block `i` starts at `blocks_ptr + (i << shift)`.
    block_shift: u32,
    blocks: usize,
    /// Bytes of the blocks area (rounded up to whole huge pages for hugetlb).
    blocks_area_bytes: usize,
    /// Bytes of the links area (rounded up to a page).
    links_area_bytes: usize,
    backing: Backing,
    lock_status: LockStatus,
    smaps: Option<SmapsFacts>,
}

// SAFETY: a `Slab` exclusively owns its mappings (invariant 1); moving it to
// another thread moves that ownership, and no thread-local state is involved.
unsafe impl Send for Slab {}

// SAFETY: through `&Slab` other threads get only raw pointers (whose use is
// their own `unsafe`) and `&[AtomicU32]` to the links, which is `Sync`.
// Nothing in `Slab` itself is mutated after `map` returns.
unsafe impl Sync for Slab {}

impl Slab {
    /// Maps, pre-faults and (if asked) locks a slab as `config` says, trying
    /// backings in the order hugetlb, THP, normal unless one is pinned.
    ///
    /// # Errors
    ///
    /// - [`SlabError::BadBlockSize`], [`SlabError::NoBlocks`],
    ///   [`SlabError::TooManyBlocks`]: see [`SlabConfig::validate`].
    /// - [`SlabError::HugeTlbUnavailable`]: hugetlb was pinned and could not
    ///   be mapped (with `Auto`, the slab falls back to THP instead).
    /// - [`SlabError::Map`], [`SlabError::Populate`]: out of address space or
    ///   memory.
    ///
    /// A refused `mlock` is not an error: see [`Slab::lock_status`].
    pub fn map(config: &SlabConfig) -> Result<Self, SlabError> {
        let blocks_bytes = config.validate()?;
        let page_size_bytes = rustix::param::page_size();
        let links_bytes = config.links_bytes(page_size_bytes);

        let hugetlb = match config.backing {
            BackingRequest::Auto => map_hugetlb(config.block_size, blocks_bytes).ok(),
            BackingRequest::HugeTlb => Some(map_hugetlb(config.block_size, blocks_bytes).map_err(
                |errno| SlabError::HugeTlbUnavailable {
                    errno,
                    pages_2m_needed: blocks_bytes.div_ceil(HUGE_PAGE_2M_BYTES),
                },
            )?),
            BackingRequest::Thp | BackingRequest::Normal => None,
        };

        let layout = match hugetlb {
            Some((main, backing)) => {
                // Normal pages for the links; MAP_POPULATE is right here
                // (no THP decision to make before the first touch).
                let links_mapping = Mapping::anonymous(
                    links_bytes,
                    ProtFlags::READ | ProtFlags::WRITE,
                    MapFlags::PRIVATE | MapFlags::POPULATE,
                )
                .map_err(SlabError::Map)?;
                Layout {
                    blocks_ptr: main.ptr,
                    blocks_area_bytes: main.len_bytes,
                    links_ptr: links_mapping.ptr,
                    main,
                    links_mapping: Some(links_mapping),
                    backing,
                }
            }
            None => {
                let thp = config.backing != BackingRequest::Normal;
                let main = map_guarded(blocks_bytes, links_bytes, page_size_bytes, thp)?;
                Layout {
                    // After the guard page.
                    blocks_ptr: main.ptr_at(page_size_bytes),
                    blocks_area_bytes: blocks_bytes,
                    // Right after the blocks, which end on a page boundary
                    // (block_size is a multiple of the page size).
                    links_ptr: main.ptr_at(page_size_bytes + blocks_bytes),
                    main,
                    links_mapping: None,
                    backing: if thp { Backing::Thp } else { Backing::Normal },
                }
            }
        };

        let mut slab = Self {
            main: layout.main,
            links_mapping: layout.links_mapping,
            blocks_ptr: layout.blocks_ptr,
            links_ptr: layout.links_ptr.cast(),
            block_shift: config.block_size.trailing_zeros(),
            blocks: config.blocks,
            blocks_area_bytes: layout.blocks_area_bytes,
            links_area_bytes: links_bytes,
            backing: Backing::Normal,
            lock_status: LockStatus::NotRequested,
            smaps: None,
        };
        if config.lock {
            slab.lock_status = slab.lock();
        }
        // Verify; never assume. Without /proc, hugetlb is still certain (the
        // kernel fails MAP_HUGETLB rather than give other pages), but THP is
        // not, so an unverifiable THP slab is reported as normal.
        slab.smaps = smaps::read_self(slab.blocks_ptr.addr().get())
            .ok()
            .flatten();
        slab.backing = match slab.smaps {
            Some(facts) => facts.backing(),
            None if layout.backing.is_hugetlb() => layout.backing,
            None => Backing::Normal,
        };
        Ok(slab)
    }

    /// `mlock`s the blocks area and the links area (not the guard pages).
    fn lock(&self) -> LockStatus {
        let ranges = [
            (self.blocks_ptr, self.blocks_area_bytes),
            (self.links_ptr.cast::<u8>(), self.links_area_bytes),
        ];
        for (ptr, len_bytes) in ranges {
            // SAFETY: rustix requires the range to be valid to read: it is
            // the blocks area or the links area, each inside a live
            // read-write mapping of ours (invariants 1 to 3).
            let locked = unsafe { rustix::mm::mlock(ptr.as_ptr().cast(), len_bytes) };
            if let Err(errno) = locked {
                return LockStatus::Refused(errno);
            }
        }
        LockStatus::Locked
    }

    /// The backing obtained, as verified from `/proc/self/smaps` (see
    /// [`SmapsFacts::backing`]). Without `/proc`, hugetlb is reported as
    /// mapped and THP as [`Backing::Normal`], since THP cannot be confirmed.
    pub fn backing(&self) -> Backing {
        self.backing
    }

    /// Whether the slab is locked in RAM, or why not.
    pub fn lock_status(&self) -> LockStatus {
        self.lock_status
    }

    /// Bytes per block (a power of two).
    pub fn block_size(&self) -> usize {
        1 << self.block_shift
    }

    /// Number of blocks.
    pub fn blocks(&self) -> usize {
        self.blocks
    }

    /// Bytes of memory mapped read-write for this slab: the blocks area
    /// (rounded up to whole huge pages for hugetlb) plus the links area.
    /// Guard pages, which are address space only, are not counted. Equals
    /// [`SlabConfig::mapped_bytes_for`] of [`Slab::backing`]'s mapping kind.
    pub fn mapped_bytes(&self) -> usize {
        self.blocks_area_bytes + self.links_area_bytes
    }

    /// The start of block 0; block `i` starts `i * block_size()` bytes later.
    /// At least page-aligned, and aligned to 2 MiB for THP and hugetlb.
    ///
    /// Dereferencing it is the caller's `unsafe`, and is sound only for
    /// blocks the caller holds (a [`Block`](crate::Block) or an index from
    /// [`Block::into_raw`](crate::Block::into_raw)) while the slab lives.
    pub fn as_ptr(&self) -> NonNull<u8> {
        self.blocks_ptr
    }

    /// What `/proc/self/smaps` said about the blocks area right after it was
    /// mapped, pre-faulted and locked; `None` if it could not be read.
    pub fn smaps(&self) -> Option<SmapsFacts> {
        self.smaps
    }

    /// The start of block `index`.
    ///
    /// # Panics
    ///
    /// If `index >= self.blocks()` (a caller bug: indices come from the pool).
    pub(crate) fn block_ptr(&self, index: usize) -> NonNull<u8> {
        assert!(
            index < self.blocks,
            "block index {index} out of range (slab has {})",
            self.blocks
        );
        let offset_bytes = index << self.block_shift;
        // SAFETY: index < blocks, so offset_bytes <= (blocks - 1) * block_size,
        // which lies inside the blocks area and below isize::MAX (invariant
        // 2): the result stays within the same mapping.
        unsafe { self.blocks_ptr.add(offset_bytes) }
    }

    /// The free list's next-links, one per block.
    pub(crate) fn links(&self) -> &[AtomicU32] {
        // SAFETY: by invariant 3 the range is `blocks` properly aligned
        // (page-aligned start), initialized (zero-filled, and any u32 is a
        // valid AtomicU32) elements in our mapping, accessed only atomically,
        // so shared references to it are sound; by invariant 4 it is not
        // unmapped while this borrow of `self` lives.
        unsafe { core::slice::from_raw_parts(self.links_ptr.as_ptr(), self.blocks) }
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for Slab {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "Slab {{ backing: {}, blocks: {=usize}, block_size: {=usize}, mapped_bytes: {=usize}, lock: {} }}",
            self.backing,
            self.blocks,
            self.block_size(),
            self.mapped_bytes(),
            self.lock_status
        );
    }
}

/// The mappings of a slab before it is locked and verified.
struct Layout {
    main: Mapping,
    links_mapping: Option<Mapping>,
    blocks_ptr: NonNull<u8>,
    blocks_area_bytes: usize,
    links_ptr: NonNull<u8>,
    /// What the mapping calls asked the kernel for (smaps has the last word).
    backing: Backing,
}

/// Tries hugetlb pages for the blocks area: 1 GiB pages when the block size
/// is a multiple of 1 GiB, then 2 MiB pages. Pre-faulted (`MAP_POPULATE`), so
/// a shortage of reserved pages fails here with `ENOMEM`, never later.
fn map_hugetlb(block_size: usize, blocks_bytes: usize) -> Result<(Mapping, Backing), Errno> {
    let flags = MapFlags::PRIVATE | MapFlags::HUGETLB | MapFlags::POPULATE;
    let read_write = ProtFlags::READ | ProtFlags::WRITE;
    if block_size.is_multiple_of(HUGE_PAGE_1G_BYTES) {
        let len_bytes = round_up(blocks_bytes, HUGE_PAGE_1G_BYTES);
        if let Ok(mapping) = Mapping::anonymous(len_bytes, read_write, flags | MapFlags::HUGE_1GB) {
            return Ok((mapping, Backing::HugeTlb1G));
        }
    }
    let len_bytes = round_up(blocks_bytes, HUGE_PAGE_2M_BYTES);
    let mapping = Mapping::anonymous(len_bytes, read_write, flags | MapFlags::HUGE_2MB)?;
    Ok((mapping, Backing::HugeTlb2M))
}

/// Maps `[guard][blocks][links][guard]` with the blocks aligned to 2 MiB
/// when `thp` (else to a page), advises THP on or off for the blocks, and
/// pre-faults blocks and links. The blocks start one page into the mapping.
fn map_guarded(
    blocks_bytes: usize,
    links_bytes: usize,
    page_size_bytes: usize,
    thp: bool,
) -> Result<Mapping, SlabError> {
    let align_bytes = if thp {
        HUGE_PAGE_2M_BYTES
    } else {
        page_size_bytes
    };
    let body_bytes = blocks_bytes + links_bytes;
    // The kernel returns a page-aligned address, so an `align_bytes`-aligned
    // start with a guard page below it lies within the first `align_bytes`.
    let over_bytes = align_bytes + body_bytes + page_size_bytes;
    let mut mapping = Mapping::anonymous(
        over_bytes,
        ProtFlags::READ | ProtFlags::WRITE,
        MapFlags::PRIVATE,
    )
    .map_err(SlabError::Map)?;
    let raw_addr = mapping.ptr.as_ptr().addr();
    let blocks_addr = round_up(raw_addr + page_size_bytes, align_bytes);
    mapping
        .unmap_front(blocks_addr - page_size_bytes - raw_addr)
        .map_err(SlabError::Map)?;
    mapping
        .unmap_back(mapping.len_bytes - (page_size_bytes + body_bytes + page_size_bytes))
        .map_err(SlabError::Map)?;
    // Now `mapping` is exactly [guard][body][guard].
    mapping
        .protect_none(0, page_size_bytes)
        .map_err(SlabError::Map)?;
    mapping
        .protect_none(page_size_bytes + body_bytes, page_size_bytes)
        .map_err(SlabError::Map)?;
    let blocks_offset = page_size_bytes;

    // Before the first touch, so that the faults below allocate huge pages.
    // Errors are ignored: EINVAL means THP is not built in, and either way
    // the smaps check reports what we really got.
    let advice = if thp {
        Advice::LinuxHugepage
    } else {
        Advice::LinuxNoHugepage
    };
    let _ = mapping.advise(blocks_offset, blocks_bytes, advice);

    match mapping.advise(blocks_offset, body_bytes, Advice::LinuxPopulateWrite) {
        Ok(()) => {}
        // Before Linux 5.14: no MADV_POPULATE_WRITE; fault the pages by hand.
        Err(Errno::INVAL) => mapping.touch_pages(blocks_offset, body_bytes, page_size_bytes),
        Err(errno) => return Err(SlabError::Populate(errno)),
    }
    Ok(mapping)
}

/// An anonymous mapping this process owns, unmapped on drop (invariant 1).
#[derive(Debug)]
struct Mapping {
    ptr: NonNull<u8>,
    len_bytes: usize,
}

impl Mapping {
    /// `mmap(NULL, len_bytes, prot, flags | MAP_ANONYMOUS)`.
    fn anonymous(len_bytes: usize, prot: ProtFlags, flags: MapFlags) -> Result<Self, Errno> {
        // SAFETY: with a null address hint rustix requires nothing more; the
        // kernel picks a range that overlaps no existing mapping, so no Rust
        // reference can refer to it.
        let ptr =
            unsafe { rustix::mm::mmap_anonymous(core::ptr::null_mut(), len_bytes, prot, flags) }?;
        // Without MAP_FIXED the kernel never places a mapping at address 0
        // (vm.mmap_min_addr), so this cannot fail in practice.
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or(Errno::FAULT)?;
        Ok(Self { ptr, len_bytes })
    }

    /// The raw start of the range `offset_bytes..` (no dereference).
    fn at(&self, offset_bytes: usize) -> *mut c_void {
        self.ptr.as_ptr().wrapping_add(offset_bytes).cast()
    }

    /// The address `offset_bytes` into the mapping.
    ///
    /// # Panics
    ///
    /// If `offset_bytes` is past the end.
    fn ptr_at(&self, offset_bytes: usize) -> NonNull<u8> {
        assert!(offset_bytes <= self.len_bytes, "offset past the mapping");
        // SAFETY: the offset is at most one past the end of our live mapping
        // (checked above), a range below isize::MAX bytes (the sizes were
        // validated), so the result is in bounds of the same allocation.
        unsafe { self.ptr.add(offset_bytes) }
    }

    /// Unmaps the first `bytes` (a multiple of the page size) of the range.
    fn unmap_front(&mut self, bytes: usize) -> Result<(), Errno> {
        if bytes == 0 {
            return Ok(());
        }
        let rest = self.ptr_at(bytes);
        // SAFETY: the first `bytes` of our own live mapping (invariant 1),
        // page-aligned, not yet handed out, so no reference refers to them.
        unsafe { rustix::mm::munmap(self.at(0), bytes) }?;
        self.ptr = rest;
        self.len_bytes -= bytes;
        Ok(())
    }

    /// Unmaps the last `bytes` (a multiple of the page size) of the range.
    fn unmap_back(&mut self, bytes: usize) -> Result<(), Errno> {
        if bytes == 0 {
            return Ok(());
        }
        let keep_bytes = self.len_bytes - bytes;
        // SAFETY: the last `bytes` of our own live mapping (invariant 1),
        // page-aligned, not yet handed out, so no reference refers to them.
        unsafe { rustix::mm::munmap(self.at(keep_bytes), bytes) }?;
        self.len_bytes = keep_bytes;
        Ok(())
    }

    /// Makes `bytes` at `offset_bytes` inaccessible (a guard).
    fn protect_none(&self, offset_bytes: usize, bytes: usize) -> Result<(), Errno> {
        // SAFETY: a page-aligned part of our own live mapping (invariant 1)
        // that is never handed out, so no reference refers to it.
        unsafe { rustix::mm::mprotect(self.at(offset_bytes), bytes, MprotectFlags::empty()) }
    }

    /// `madvise` on `bytes` at `offset_bytes`.
    fn advise(&self, offset_bytes: usize, bytes: usize, advice: Advice) -> Result<(), Errno> {
        // SAFETY: a page-aligned part of our own live read-write mapping
        // (invariant 1) with no references into it yet. The advices used
        // (HUGEPAGE, NOHUGEPAGE, POPULATE_WRITE) do not change its contents:
        // populating anonymous memory faults in zero pages.
        unsafe { rustix::mm::madvise(self.at(offset_bytes), bytes, advice) }
    }

    /// Faults in `bytes` at `offset_bytes` by writing a zero to each page.
    fn touch_pages(&self, offset_bytes: usize, bytes: usize, page_size_bytes: usize) {
        for page_offset in (offset_bytes..offset_bytes + bytes).step_by(page_size_bytes) {
            let byte = self.ptr.as_ptr().wrapping_add(page_offset);
            // SAFETY: `byte` lies in a read-write part of our own live
            // mapping (invariant 1) with no references into it yet; the
            // memory is zero-filled, so writing a zero changes nothing but
            // makes the kernel allocate the page. Volatile, so it is not
            // optimized away.
            unsafe { byte.write_volatile(0) };
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: exactly the range we still own (invariant 1), and by
        // invariant 4 no reference into it outlives the slab being dropped.
        let unmapped = unsafe { rustix::mm::munmap(self.at(0), self.len_bytes) };
        // munmap of a range we own fails only on ENOMEM for a VMA split,
        // which a whole-range unmap never needs. Nothing to do otherwise.
        debug_assert!(unmapped.is_ok(), "munmap of the slab failed: {unmapped:?}");
    }
}

#[cfg(test)]
mod tests {
    use std::string::String;

    use super::*;
    use crate::config::BLOCK_SIZE_BYTES_MAX;

    fn normal(block_size: usize, blocks: usize) -> SlabConfig {
        SlabConfig {
            block_size,
            blocks,
            backing: BackingRequest::Normal,
            lock: false,
        }
    }

    /// The line of /proc/self/maps that contains `addr`.
    fn maps_line(addr: usize) -> Option<String> {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        maps.lines()
            .find(|line| {
                let range = line.split(' ').next().unwrap();
                let (start, end) = range.split_once('-').unwrap();
                let start = usize::from_str_radix(start, 16).unwrap();
                let end = usize::from_str_radix(end, 16).unwrap();
                (start..end).contains(&addr)
            })
            .map(String::from)
    }

    #[test]
    fn normal_slab_reports_its_shape_and_verified_backing() {
        let page = rustix::param::page_size();
        let config = normal(page, 5);
        let slab = Slab::map(&config).unwrap();
        assert_eq!(slab.block_size(), page);
        assert_eq!(slab.blocks(), 5);
        assert_eq!(slab.backing(), Backing::Normal);
        assert_eq!(slab.lock_status(), LockStatus::NotRequested);
        assert_eq!(
            Ok(slab.mapped_bytes()),
            config.mapped_bytes_for(Backing::Normal)
        );
        assert_eq!(slab.as_ptr().as_ptr().addr() % page, 0);
        let facts = slab.smaps().expect("/proc is mounted here");
        assert_eq!(facts.kernel_page_size_kib * 1024, page as u64);
        assert_eq!(
            facts.size_kib * 1024,
            (5 * page) as u64,
            "the blocks are their own VMA"
        );
        assert_eq!(facts.rss_kib, facts.size_kib, "pre-faulted");
        assert_eq!(slab.links().len(), 5);
        assert!(
            slab.links()
                .iter()
                .all(|link| link.load(core::sync::atomic::Ordering::Relaxed) == 0)
        );
    }

    #[test]
    fn guard_pages_surround_the_slab() {
        let page = rustix::param::page_size();
        let slab = Slab::map(&normal(page, 3)).unwrap();
        let start = slab.as_ptr().as_ptr().addr();
        let end = start + slab.mapped_bytes();
        let below = maps_line(start - 1).unwrap();
        let above = maps_line(end).unwrap();
        assert!(below.contains(" ---p "), "below: {below}");
        assert!(above.contains(" ---p "), "above: {above}");
        assert!(maps_line(start).unwrap().contains(" rw-p "));
        // That drop unmaps all of it is checked in tests/fallback.rs, where
        // no other test maps memory concurrently.
    }

    #[test]
    fn block_pointers_are_aligned_and_in_range() {
        let block = 64 * 1024;
        let slab = Slab::map(&normal(block, 4)).unwrap();
        for index in 0..4 {
            let ptr = slab.block_ptr(index).as_ptr().addr();
            assert_eq!(ptr, slab.as_ptr().as_ptr().addr() + index * block);
            assert_eq!(ptr % rustix::param::page_size(), 0);
        }
    }

    #[test]
    #[should_panic(expected = "out of range")]
    fn block_ptr_rejects_an_index_past_the_end() {
        let slab = Slab::map(&normal(rustix::param::page_size(), 2)).unwrap();
        let _ = slab.block_ptr(2);
    }

    #[test]
    fn thp_request_is_verified_not_assumed() {
        let config = SlabConfig {
            block_size: HUGE_PAGE_2M_BYTES,
            blocks: 2,
            backing: BackingRequest::Thp,
            lock: false,
        };
        let slab = Slab::map(&config).unwrap();
        assert_eq!(
            slab.as_ptr().as_ptr().addr() % HUGE_PAGE_2M_BYTES,
            0,
            "2 MiB aligned"
        );
        let facts = slab.smaps().unwrap();
        assert_eq!(slab.backing(), facts.backing());
        let mode = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .unwrap_or_default();
        if mode.contains("[madvise]") || mode.contains("[always]") {
            assert_eq!(slab.backing(), Backing::Thp, "{facts:?}");
            assert!(facts.anon_huge_pages_kib >= 2048, "{facts:?}");
        } else {
            std::println!("THP mode is {mode:?}: only checking consistency");
        }
    }

    #[test]
    fn pinned_normal_gets_no_huge_pages() {
        let config = normal(HUGE_PAGE_2M_BYTES, 2);
        let slab = Slab::map(&config).unwrap();
        assert_eq!(slab.backing(), Backing::Normal);
        assert_eq!(slab.smaps().unwrap().anon_huge_pages_kib, 0);
    }

    #[test]
    fn lock_is_applied_and_visible_in_smaps() {
        // Small enough for the default 8 MiB RLIMIT_MEMLOCK of non-root users.
        let page = rustix::param::page_size();
        let config = SlabConfig {
            lock: true,
            ..normal(page, 4)
        };
        let slab = Slab::map(&config).unwrap();
        match slab.lock_status() {
            LockStatus::Locked => {
                assert_eq!(slab.smaps().unwrap().locked_kib * 1024, (4 * page) as u64)
            }
            LockStatus::Refused(errno) => {
                std::println!("mlock refused here ({errno:?}); not an error")
            }
            LockStatus::NotRequested => panic!("lock was requested"),
        }
    }

    #[test]
    fn refused_mlock_is_reported_not_fatal() {
        // Capabilities are per thread: drop CAP_IPC_LOCK in a thread of our
        // own so that RLIMIT_MEMLOCK applies to it, then map more than that.
        let limit = rustix::process::getrlimit(rustix::process::Resource::Memlock);
        let Some(limit_bytes) = limit.current else {
            std::println!("SKIP: RLIMIT_MEMLOCK is unlimited, mlock cannot be refused");
            return;
        };
        let limit_bytes = usize::try_from(limit_bytes).unwrap();
        let handle = std::thread::spawn(move || {
            let mut caps = rustix::thread::capabilities(None).unwrap();
            caps.effective
                .remove(rustix::thread::CapabilitySet::IPC_LOCK);
            rustix::thread::set_capabilities(None, caps).unwrap();
            let page = rustix::param::page_size();
            let blocks = limit_bytes / page + 256;
            let config = SlabConfig {
                lock: true,
                ..normal(page, blocks)
            };
            let slab = Slab::map(&config).unwrap();
            slab.lock_status()
        });
        match handle.join().unwrap() {
            LockStatus::Refused(errno) => {
                assert!(
                    [Errno::NOMEM, Errno::PERM, Errno::AGAIN].contains(&errno),
                    "{errno:?}"
                );
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn bad_configs_map_nothing() {
        let page = rustix::param::page_size();
        assert!(matches!(
            Slab::map(&normal(page + 1, 1)),
            Err(SlabError::BadBlockSize { .. })
        ));
        assert_eq!(Slab::map(&normal(page, 0)).err(), Some(SlabError::NoBlocks));
        assert!(matches!(
            Slab::map(&normal(BLOCK_SIZE_BYTES_MAX, usize::MAX / 4)),
            Err(SlabError::TooManyBlocks { .. })
        ));
    }

    #[test]
    fn touch_pages_faults_in_without_changing_contents() {
        let page = rustix::param::page_size();
        let mapping = Mapping::anonymous(
            6 * page,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE,
        )
        .unwrap();
        // Guards around pages 1..5 keep neighbours out of their VMA.
        mapping.protect_none(0, page).unwrap();
        mapping.protect_none(5 * page, page).unwrap();
        mapping.touch_pages(page, 4 * page, page);
        let start = mapping.ptr.as_ptr().addr() + page;
        let facts = smaps::read_self(start).unwrap().unwrap();
        assert_eq!(
            (facts.size_kib * 1024, facts.rss_kib * 1024),
            ((4 * page) as u64, (4 * page) as u64)
        );
        let all_zero = (page..5 * page).all(|offset| {
            let byte = mapping.ptr.as_ptr().wrapping_add(offset);
            // SAFETY: test: `byte` is in a readable, initialized (zero-filled)
            // part of the mapping we own and nobody else accesses.
            unsafe { byte.read() == 0 }
        });
        assert!(all_zero);
    }
}
