//! The appliance's memory plan: every resident byte the image will have,
//! one line per consumer, and the measurement to hold it against.
//!
//! Consumers, and why each is fixed before serving:
//! - the image itself (code, read-only data, data, `.bss`), locked at
//!   start-up;
//! - the worker stacks, mapped, locked and filled at spawn;
//! - the start-up arena's committed bytes (the session, its tables, the
//!   command line; memfs's tables are counted in storage, not here);
//! - the runtime's pool slab (receive buffers and spare blocks), mapped,
//!   pre-faulted and locked by `slabfuse-pool`;
//! - memfs storage: its data slab and its tables, as memfs reports them.
//!
//! Not planned: the kernel-provided main thread stack (a few pages are
//! touched at start-up), the vDSO pages and page tables (which RSS does not
//! count).
//!
//! Resident memory is read from `/proc/self/status`: `VmRSS` plus
//! `HugetlbPages` (hugetlb pages are not part of `VmRSS`).

/// One line per consumer, bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub(crate) struct MemoryPlan {
    /// The image's segments.
    pub(crate) image: u64,
    /// All worker stacks.
    pub(crate) stacks: u64,
    /// The arena's committed bytes, less memfs's tables (counted in
    /// `storage`).
    pub(crate) arena: u64,
    /// The runtime's slab (`Session::mapped_bytes`).
    pub(crate) pool: u64,
    /// memfs storage (`StoragePlan::mapped_bytes`).
    pub(crate) storage: u64,
}

impl MemoryPlan {
    /// The sum.
    pub(crate) fn total(&self) -> u64 {
        let sum = self.image + self.stacks + self.arena + self.pool + self.storage;
        debug_assert!(sum >= self.pool + self.storage);
        sum
    }

    /// What `--budget` bounds: pool and storage.
    pub(crate) fn budgeted(&self) -> u64 {
        self.pool + self.storage
    }
}

/// Reads as much of a `/proc` file as fits in `buf`; the length read, or
/// `None` when it cannot be opened or read. Allocates nothing.
fn read_proc_file(path: &core::ffi::CStr, buf: &mut [u8]) -> Option<usize> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ok()?;
    let mut len = 0;
    while len < buf.len() {
        match rustix::io::read(&fd, &mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return None,
        }
    }
    Some(len)
}

/// Resident bytes of this process now (`VmRSS + HugetlbPages`), or `None`
/// when `/proc` is not there. Allocates nothing.
pub(crate) fn resident_bytes() -> Option<u64> {
    // `status` is about 1.5 KiB; the fields wanted come before its end.
    let mut buf = [0u8; 4096];
    let len = read_proc_file(c"/proc/self/status", &mut buf)?;
    let text = &buf[..len];
    let rss = field_kib(text, b"VmRSS:")?;
    let hugetlb = field_kib(text, b"HugetlbPages:").unwrap_or(0);
    Some((rss + hugetlb) * 1024)
}

/// Page faults of this process so far, minor and major, all threads (live
/// and ended), from `/proc/self/stat`; `None` when `/proc` is not there.
/// Allocates nothing.
pub(crate) fn page_faults() -> Option<u64> {
    let mut buf = [0u8; 1024];
    let len = read_proc_file(c"/proc/self/stat", &mut buf)?;
    // The fields after the command name (which may hold spaces, but ends
    // at the last ')'): state, ppid, pgrp, session, tty_nr, tpgid, flags,
    // minflt, cminflt, majflt.
    let text = &buf[..len];
    let after = &text[text.iter().rposition(|b| *b == b')')? + 1..];
    let mut fields = after.split(|b| *b == b' ').filter(|f| !f.is_empty());
    let minflt = decimal(fields.nth(7)?)?;
    let majflt = decimal(fields.nth(1)?)?;
    Some(minflt + majflt)
}

/// A decimal number, all digits.
fn decimal(digits: &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for &b in digits {
        if !b.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(value)
}

/// The number of a `Name:   1234 kB` line of `/proc/self/status`.
fn field_kib(text: &[u8], name: &[u8]) -> Option<u64> {
    let line = text
        .split(|b| *b == b'\n')
        .find(|line| line.starts_with(name))?;
    let mut value = 0u64;
    let mut seen = false;
    for &b in &line[name.len()..] {
        match b {
            b'0'..=b'9' => {
                value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
                seen = true;
            }
            b' ' | b'\t' if !seen => {}
            _ => break,
        }
    }
    seen.then_some(value)
}

/// How far `measured` is from `planned`, in hundredths of a percent of the
/// plan (signed: positive when more is resident than planned).
pub(crate) fn deviation_basis_points(measured: u64, planned: u64) -> i64 {
    if planned == 0 {
        return 0;
    }
    let diff = i128::from(measured) - i128::from(planned);
    i64::try_from(diff * 10_000 / i128::from(planned)).unwrap_or(i64::MAX)
}
