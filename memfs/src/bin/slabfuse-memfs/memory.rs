//! Making "no allocation and no page fault after start" true, and measuring
//! it.
//!
//! The slabs (the runtime's request pool and memfs's storage) are mapped,
//! pre-faulted and locked by their own crates. What is left is everything
//! else a serving process touches, prepared here before serving starts:
//!
//! - [`lock_all`]: `mlockall(MCL_CURRENT | MCL_FUTURE)` locks *and
//!   populates* every mapping: code and data of the binary and libc, the
//!   heap, the main stack, and (`MCL_FUTURE`) the worker stacks mapped
//!   after it. It needs `CAP_IPC_LOCK` or an unlimited `RLIMIT_MEMLOCK`;
//!   `MCL_FUTURE` under a finite limit would make any later mapping (a
//!   thread stack, `fusermount3 -u` at exit) fail once the limit is
//!   reached, so without the privilege only `MCL_CURRENT` is tried, and a
//!   refusal is reported, not fatal: serving then goes on unlocked, where
//!   code pages run for the first time, or reclaimed, may still fault.
//! - [`prefault_stack`]: each worker thread (and the main thread, whose
//!   stack grows on demand) writes its stack down to near its end before
//!   serving, so the deepest call it will make does not fault, locked or
//!   not.
//! - [`warm_clocks`]: the first `clock_gettime` of a process reads the
//!   vDSO's data pages (`[vvar]`), which `mlockall` cannot populate (they
//!   are `VM_PFNMAP`) and which fault on first touch; rustix's vDSO lookup
//!   is also done once, here. The same for `getrusage`, the allocator's
//!   counters and `kill` (the last worker raises a signal after start), so
//!   that their first use after start costs nothing.
//!
//! [`Measure`] is the pair of counters the summary reports.

use crate::counting_alloc::HeapCounts;
use crate::sys;

/// `CAP_IPC_LOCK`'s bit in the capability sets (`linux/capability.h`).
const CAP_IPC_LOCK: u32 = 14;

/// The outcome of [`lock_all`].
#[derive(Debug)]
pub(crate) enum LockAll {
    /// Every page is locked (and, with the privilege, every future one).
    Locked,
    /// Refused; the message says why and what to do.
    Refused(String),
}

/// Locks all memory, as far as this process is permitted to.
pub(crate) fn lock_all() -> LockAll {
    let limit = sys::memlock_limit();
    let privileged = has_cap_ipc_lock() || matches!(limit, Ok(None));
    match sys::mlockall(privileged) {
        Ok(()) => LockAll::Locked,
        Err(e) => {
            let limit = match limit {
                Ok(Some(bytes)) => format!("{}", crate::size::Human(bytes)),
                Ok(None) => "unlimited".to_string(),
                Err(_) => "unknown".to_string(),
            };
            LockAll::Refused(format!(
                "mlockall refused ({e}); RLIMIT_MEMLOCK (ulimit -l) is {limit}: raise it or \
                 grant CAP_IPC_LOCK to lock all memory. Serving goes on unlocked: pages may \
                 fault after start"
            ))
        }
    }
}

/// Whether `CAP_IPC_LOCK` is in this process's effective set.
fn has_cap_ipc_lock() -> bool {
    let status = match std::fs::read_to_string("/proc/self/status") {
        Ok(s) => s,
        Err(_) => return false,
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << CAP_IPC_LOCK) != 0)
}

/// Writes `BYTES` of the calling thread's stack, below the caller's frame.
/// Call it first in a thread, with `BYTES` its stack size minus room for
/// the frames above (thread start-up) and for the guard page.
#[inline(never)]
pub(crate) fn prefault_stack<const BYTES: usize>() {
    let mut probe = [0u8; BYTES];
    // The zeroing must happen: black_box makes the array observable.
    std::hint::black_box(&mut probe);
}

/// Reads every clock the runtime, memfs or std might read while serving,
/// through both std and rustix, so that the vDSO pages are mapped in.
pub(crate) fn warm_clocks() {
    use rustix::time::{ClockId, clock_gettime};
    let _ = std::hint::black_box(std::time::SystemTime::now());
    let _ = std::hint::black_box(std::time::Instant::now());
    for clock in [
        ClockId::Realtime,
        ClockId::Monotonic,
        ClockId::RealtimeCoarse,
        ClockId::MonotonicCoarse,
        ClockId::Boottime,
    ] {
        let _ = std::hint::black_box(clock_gettime(clock));
    }
    let _ = std::hint::black_box(Measure::now());
    sys::probe_process();
}

/// Heap allocations and page faults at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Measure {
    /// Allocations and reallocations so far.
    pub(crate) heap_allocs: u64,
    /// Page faults so far.
    pub(crate) page_faults: u64,
}

impl Measure {
    /// Now. Allocates nothing.
    pub(crate) fn now() -> Measure {
        Measure {
            heap_allocs: HeapCounts::now().allocations,
            page_faults: sys::page_faults(),
        }
    }

    /// What happened between `earlier` and `self`.
    pub(crate) fn since(self, earlier: Measure) -> Measure {
        Measure {
            heap_allocs: self.heap_allocs.saturating_sub(earlier.heap_allocs),
            page_faults: self.page_faults.saturating_sub(earlier.page_faults),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_subtract_without_underflow() {
        let a = Measure {
            heap_allocs: 10,
            page_faults: 5,
        };
        let b = Measure {
            heap_allocs: 15,
            page_faults: 5,
        };
        assert_eq!(
            b.since(a),
            Measure {
                heap_allocs: 5,
                page_faults: 0
            }
        );
        assert_eq!(a.since(b), Measure::default());
    }

    #[test]
    fn a_prefaulted_stack_takes_no_faults_when_used_again() {
        let t = std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(|| {
                prefault_stack::<{ 768 << 10 }>();
                // Faults are per process; other test threads may fault
                // meanwhile, so only check that this runs (no overflow).
                prefault_stack::<{ 768 << 10 }>();
            })
            .unwrap();
        t.join().unwrap();
    }
}
