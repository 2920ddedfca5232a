//! Verifying a slab's backing from `/proc/self/smaps`, without allocating.
//!
//! The file is streamed through a fixed buffer on the stack, line by line.
//! We look for the VMA whose start address equals the slab's blocks area and
//! collect its `Size`, `Rss`, `KernelPageSize`, `AnonHugePages` and `Locked`
//! fields ([`SmapsFacts`]); [`SmapsFacts::backing`] says what they prove.
//!
//! Matching by start address is exact because the slab makes sure no other
//! mapping can merge into the front of its VMA (a guard page below a THP or
//! normal slab; hugetlb VMAs never merge). A line longer than the buffer
//! (a header naming a very long path) is cut: its start, which holds the
//! address range, is parsed and the rest skipped. Field lines are short.
//!
//! This module is safe code; reading the file is the only system interaction.

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;

use crate::config::Backing;

/// Bytes of the stack buffer lines are assembled in. Field lines are under
/// 100 bytes; header lines may be longer and are cut (see the module doc).
const LINE_BUFFER_BYTES: usize = 1024;

/// What `/proc/self/smaps` says about the slab's blocks VMA.
///
/// The numbers are the kernel's, in KiB (it prints "kB"). For a THP slab the
/// VMA is the blocks area alone (the `MADV_HUGEPAGE` flag sets it apart); for
/// a normal slab it may also span the links area that follows the blocks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SmapsFacts {
    /// `Size`: the VMA's length.
    pub size_kib: u64,
    /// `Rss`: how much of it is resident (all of it, once pre-faulted).
    pub rss_kib: u64,
    /// `KernelPageSize`: 2048 or 1048576 for hugetlb, the base page otherwise.
    pub kernel_page_size_kib: u64,
    /// `AnonHugePages`: how much is backed by transparent huge pages.
    pub anon_huge_pages_kib: u64,
    /// `Private_Hugetlb` + `Shared_Hugetlb`: how much is backed by hugetlb
    /// pages (the kernel counts those here, not in `Rss` or `Locked`).
    pub hugetlb_kib: u64,
    /// `Locked`: how much is `mlock`ed.
    pub locked_kib: u64,
}

impl SmapsFacts {
    /// The backing these facts prove: hugetlb by its kernel page size, THP by
    /// a non-zero `AnonHugePages`, and otherwise normal pages.
    pub fn backing(&self) -> Backing {
        match self.kernel_page_size_kib {
            1_048_576 => Backing::HugeTlb1G,
            2048 => Backing::HugeTlb2M,
            _ if self.anon_huge_pages_kib > 0 => Backing::Thp,
            _ => Backing::Normal,
        }
    }
}

impl core::fmt::Display for SmapsFacts {
    /// `KernelPageSize=4kB,AnonHugePages=8192kB,Hugetlb=0kB,Rss=8192kB,Locked=8192kB`
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "KernelPageSize={}kB,AnonHugePages={}kB,Hugetlb={}kB,Rss={}kB,Locked={}kB",
            self.kernel_page_size_kib,
            self.anon_huge_pages_kib,
            self.hugetlb_kib,
            self.rss_kib,
            self.locked_kib
        )
    }
}

/// Reads `/proc/self/smaps` and returns the facts of the VMA starting at
/// `vma_start`, or `None` if no VMA starts there.
///
/// # Errors
///
/// The errno of `open` or `read` (e.g. `ENOENT` when `/proc` is not mounted,
/// as on some appliances).
pub(crate) fn read_self(vma_start: usize) -> Result<Option<SmapsFacts>, Errno> {
    let fd = rustix::fs::open(
        c"/proc/self/smaps",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut buffer = [0u8; LINE_BUFFER_BYTES];
    scan(vma_start, &mut buffer, |chunk| {
        loop {
            match rustix::io::read(&fd, &mut *chunk) {
                Err(Errno::INTR) => {}
                other => return other,
            }
        }
    })
}

/// Streams lines from `read` (which fills the slice it is given and returns
/// how many bytes it wrote, 0 at the end) through `buffer`, looking for the
/// VMA that starts at `vma_start`.
fn scan(
    vma_start: usize,
    buffer: &mut [u8],
    mut read: impl FnMut(&mut [u8]) -> Result<usize, Errno>,
) -> Result<Option<SmapsFacts>, Errno> {
    let mut scanner = Scanner {
        vma_start,
        found: false,
        facts: SmapsFacts::default(),
    };
    let mut filled = 0; // bytes of an unfinished line at the front of `buffer`
    let mut skipping = false; // discarding the rest of a line that was cut
    loop {
        let read_bytes = read(&mut buffer[filled..])?;
        if read_bytes == 0 {
            // The file need not end with a newline. (If this line ends the
            // target VMA, `found` stays true: the outcome is the same.)
            if filled > 0 && !skipping {
                scanner.line(&buffer[..filled]);
            }
            break;
        }
        filled += read_bytes;
        let mut consumed = 0;
        while let Some(newline) = buffer[consumed..filled]
            .iter()
            .position(|&byte| byte == b'\n')
        {
            let line = &buffer[consumed..consumed + newline];
            consumed += newline + 1;
            if skipping {
                skipping = false;
            } else if scanner.line(line) == Flow::Done {
                return Ok(Some(scanner.facts));
            }
        }
        buffer.copy_within(consumed..filled, 0);
        filled -= consumed;
        if filled == buffer.len() {
            // A line longer than the buffer: parse its start, skip the rest.
            if !skipping && scanner.line(buffer) == Flow::Done {
                return Ok(Some(scanner.facts));
            }
            skipping = true;
            filled = 0;
        }
    }
    Ok(scanner.found.then_some(scanner.facts))
}

/// Whether the scan should go on.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Flow {
    More,
    Done,
}

/// The line-by-line state of a scan.
struct Scanner {
    vma_start: usize,
    /// Whether the lines now being read belong to the target VMA.
    found: bool,
    facts: SmapsFacts,
}

impl Scanner {
    fn line(&mut self, line: &[u8]) -> Flow {
        if let Some(start) = header_start(line) {
            if self.found {
                return Flow::Done; // the next VMA begins: ours is complete
            }
            self.found = start == self.vma_start;
            return Flow::More;
        }
        if !self.found {
            return Flow::More;
        }
        let Some((name, value_kib)) = field(line) else {
            return Flow::More;
        };
        let facts = &mut self.facts;
        match name {
            b"Size" => facts.size_kib = value_kib,
            b"Rss" => facts.rss_kib = value_kib,
            b"KernelPageSize" => facts.kernel_page_size_kib = value_kib,
            b"AnonHugePages" => facts.anon_huge_pages_kib = value_kib,
            b"Shared_Hugetlb" | b"Private_Hugetlb" => {
                facts.hugetlb_kib = facts.hugetlb_kib.saturating_add(value_kib);
            }
            b"Locked" => facts.locked_kib = value_kib,
            _ => {}
        }
        Flow::More
    }
}

/// The start address of a VMA header line (`7f12a0000000-7f12a0400000 rw-p
/// ...`), or `None` for any other line.
fn header_start(line: &[u8]) -> Option<usize> {
    let first = line.split(|&byte| byte == b' ').next()?;
    let dash = first.iter().position(|&byte| byte == b'-')?;
    let start = parse_hex(&first[..dash])?;
    parse_hex(&first[dash + 1..])?;
    Some(start)
}

/// A `Name:   123 kB` field line as (`Name`, 123). Lines whose value is not
/// a number (e.g. `VmFlags: rd wr`) give `None`.
fn field(line: &[u8]) -> Option<(&[u8], u64)> {
    let colon = line.iter().position(|&byte| byte == b':')?;
    let value = line[colon + 1..]
        .split(|&byte| byte == b' ')
        .find(|word| !word.is_empty())?;
    Some((&line[..colon], parse_decimal(value)?))
}

fn parse_hex(digits: &[u8]) -> Option<usize> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0usize, |value, &digit| {
        let nibble = char::from(digit).to_digit(16)?;
        value
            .checked_mul(16)?
            .checked_add(usize::try_from(nibble).ok()?)
    })
}

fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |value, &digit| {
        let decimal = char::from(digit).to_digit(10)?;
        value.checked_mul(10)?.checked_add(u64::from(decimal))
    })
}

#[cfg(test)]
mod tests {
    use std::string::String;
    use std::vec::Vec;

    use super::*;

    /// Three VMAs: a binary, a THP slab (start 0x7f0000200000) and a hugetlb
    /// slab whose last line has no newline.
    fn fixture(long_path_bytes: usize) -> String {
        let mut text = String::new();
        text.push_str("55d0c0000000-55d0c0021000 r--p 00000000 fd:01 1234   /usr/bin/");
        text.extend(core::iter::repeat_n('x', long_path_bytes));
        text.push('\n');
        text.push_str(
            "Size:                132 kB\nKernelPageSize:        4 kB\nRss:                  64 kB\n\
             AnonHugePages:         0 kB\nLocked:                0 kB\nVmFlags: rd mr mw me\n",
        );
        text.push_str(
            "7f0000200000-7f0000a00000 rw-p 00000000 00:00 0 \nSize:               8192 kB\n\
             KernelPageSize:        4 kB\nMMUPageSize:           4 kB\nRss:                8192 kB\n\
             AnonHugePages:      8192 kB\nTHPeligible:    1\nLocked:             8192 kB\n\
             VmFlags: rd wr mr mw me ac hg lo\n",
        );
        text.push_str(
            "7f0000a00000-7f0000c00000 rw-p 00000000 00:0f 99 /anon_hugepage (deleted)\n\
             Size:               2048 kB\nKernelPageSize:     2048 kB\nRss:                   0 kB\n\
             AnonHugePages:       999 kB\nShared_Hugetlb:         0 kB\n\
             Private_Hugetlb:     2048 kB\nLocked:                0 kB\nVmFlags: rd wr mr mw me de ht",
        );
        text
    }

    fn scan_text(
        text: &str,
        start: usize,
        buffer_bytes: usize,
        chunk_bytes: usize,
    ) -> Option<SmapsFacts> {
        let mut rest = text.as_bytes();
        let mut buffer: Vec<u8> = std::vec![0; buffer_bytes];
        scan(start, &mut buffer, |chunk| {
            let n = chunk.len().min(chunk_bytes).min(rest.len());
            chunk[..n].copy_from_slice(&rest[..n]);
            rest = &rest[n..];
            Ok(n)
        })
        .unwrap()
    }

    const THP_FACTS: SmapsFacts = SmapsFacts {
        size_kib: 8192,
        rss_kib: 8192,
        kernel_page_size_kib: 4,
        anon_huge_pages_kib: 8192,
        hugetlb_kib: 0,
        locked_kib: 8192,
    };

    #[test]
    fn finds_the_vma_by_start_whatever_the_chunking() {
        let text = fixture(10);
        for buffer_bytes in [64, 100, 1024] {
            for chunk_bytes in [1, 3, 17, 4096] {
                let facts = scan_text(&text, 0x7f00_0020_0000, buffer_bytes, chunk_bytes);
                assert_eq!(
                    facts,
                    Some(THP_FACTS),
                    "buffer {buffer_bytes} chunk {chunk_bytes}"
                );
            }
        }
    }

    #[test]
    fn cuts_lines_longer_than_the_buffer() {
        let text = fixture(5000);
        assert_eq!(scan_text(&text, 0x7f00_0020_0000, 64, 7), Some(THP_FACTS));
        let first = scan_text(&text, 0x55d0_c000_0000, 64, 7).unwrap();
        assert_eq!(
            (first.size_kib, first.rss_kib, first.backing()),
            (132, 64, Backing::Normal)
        );
    }

    #[test]
    fn the_last_vma_may_lack_a_final_newline() {
        let text = fixture(0);
        assert!(!text.ends_with('\n'));
        let last = scan_text(&text, 0x7f00_00a0_0000, 64, 5).unwrap();
        assert_eq!(
            (last.size_kib, last.hugetlb_kib, last.backing()),
            (2048, 2048, Backing::HugeTlb2M)
        );
    }

    #[test]
    fn no_vma_at_the_address_gives_none() {
        // 0x7f0000200001 lies inside a VMA but does not start one.
        assert_eq!(scan_text(&fixture(0), 0x7f00_0020_0001, 64, 9), None);
        assert_eq!(scan_text("", 0x1000, 64, 9), None);
    }

    #[test]
    fn read_errors_are_passed_on() {
        let mut buffer = [0u8; 16];
        assert_eq!(scan(0, &mut buffer, |_| Err(Errno::IO)), Err(Errno::IO));
    }

    #[test]
    fn backing_from_facts() {
        let page = |kib| SmapsFacts {
            kernel_page_size_kib: kib,
            ..SmapsFacts::default()
        };
        assert_eq!(page(2048).backing(), Backing::HugeTlb2M);
        assert_eq!(page(1_048_576).backing(), Backing::HugeTlb1G);
        assert_eq!(page(4).backing(), Backing::Normal);
        assert_eq!(THP_FACTS.backing(), Backing::Thp);
        assert_eq!(
            std::format!("{THP_FACTS}"),
            "KernelPageSize=4kB,AnonHugePages=8192kB,Hugetlb=0kB,Rss=8192kB,Locked=8192kB"
        );
    }

    #[test]
    fn line_parsers() {
        assert_eq!(
            header_start(b"00400000-00452000 r-xp 00000000 08:02 173521 /bin/x"),
            Some(0x40_0000)
        );
        assert_eq!(header_start(b"Size:   4 kB"), None);
        assert_eq!(header_start(b"VmFlags: rd-wr"), None);
        assert_eq!(
            field(b"Rss:                1234 kB"),
            Some((&b"Rss"[..], 1234))
        );
        assert_eq!(field(b"VmFlags: rd wr"), None);
        assert_eq!(field(b"no colon"), None);
        assert_eq!(parse_hex(b"ffffffffffffffffff"), None, "overflow");
        assert_eq!(parse_decimal(b""), None);
    }

    #[test]
    fn reads_this_process() {
        // The stack of this thread is a VMA; find any VMA start via the real
        // file by scanning for a line we know exists: the first header.
        let text = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let first_line = text.lines().next().unwrap();
        let start = header_start(first_line.as_bytes()).unwrap();
        let facts = read_self(start).unwrap().unwrap();
        assert!(
            facts.size_kib > 0 && facts.kernel_page_size_kib > 0,
            "{facts:?}"
        );
    }
}
