//! Counters that cost no allocation and no shared cache line on the hot path.
//!
//! Each worker owns one [`Counters`] (cache-line aligned, written only by
//! that worker with `Relaxed` adds); deferred replies, sent from any thread,
//! share one more. [`Stats`] is their sum, read at any time. Relaxed is
//! enough: every counter is independent, and a reader only needs each value
//! to be one that was really reached, not a snapshot consistent across
//! counters.

use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::abi::Opcode;

/// One worker's counters.
#[repr(align(128))]
pub struct Counters {
    requests: [AtomicU64; Opcode::COUNT],
    unknown_opcodes: AtomicU64,
    malformed: AtomicU64,
    eagain: AtomicU64,
    largest_write: AtomicU64,
    largest_read: AtomicU64,
    bytes_written: AtomicU64,
    bytes_read: AtomicU64,
    replies_to_interrupted: AtomicU64,
    reply_errors: AtomicU64,
    deferred: AtomicU64,
    deferred_dropped: AtomicU64,
    interrupts_delivered: AtomicU64,
}

impl Default for Counters {
    fn default() -> Counters {
        Counters::new()
    }
}

impl Counters {
    /// All zero.
    pub const fn new() -> Counters {
        #[allow(clippy::declare_interior_mutable_const)]
        const Z: AtomicU64 = AtomicU64::new(0);
        Counters {
            requests: [Z; Opcode::COUNT],
            unknown_opcodes: Z,
            malformed: Z,
            eagain: Z,
            largest_write: Z,
            largest_read: Z,
            bytes_written: Z,
            bytes_read: Z,
            replies_to_interrupted: Z,
            reply_errors: Z,
            deferred: Z,
            deferred_dropped: Z,
            interrupts_delivered: Z,
        }
    }

    pub(crate) fn request(&self, op: Opcode) {
        self.requests[op.counter_index()].fetch_add(1, Relaxed);
    }
    pub(crate) fn unknown_opcode(&self) {
        self.unknown_opcodes.fetch_add(1, Relaxed);
    }
    pub(crate) fn malformed(&self) {
        self.malformed.fetch_add(1, Relaxed);
    }
    pub(crate) fn eagain(&self) {
        self.eagain.fetch_add(1, Relaxed);
    }
    pub(crate) fn write_served(&self, bytes: usize) {
        let b = bytes as u64;
        self.bytes_written.fetch_add(b, Relaxed);
        self.largest_write.fetch_max(b, Relaxed);
    }
    pub(crate) fn read_served(&self, bytes: usize) {
        let b = bytes as u64;
        self.bytes_read.fetch_add(b, Relaxed);
        self.largest_read.fetch_max(b, Relaxed);
    }
    pub(crate) fn reply_to_interrupted(&self) {
        self.replies_to_interrupted.fetch_add(1, Relaxed);
    }
    pub(crate) fn reply_error(&self) {
        self.reply_errors.fetch_add(1, Relaxed);
    }
    pub(crate) fn deferred(&self) {
        self.deferred.fetch_add(1, Relaxed);
    }
    pub(crate) fn deferred_dropped(&self) {
        self.deferred_dropped.fetch_add(1, Relaxed);
    }
    pub(crate) fn interrupt_delivered(&self) {
        self.interrupts_delivered.fetch_add(1, Relaxed);
    }

    /// Adds this worker's counters into `into`.
    pub(crate) fn add_to(&self, into: &mut Stats) {
        for (i, c) in self.requests.iter().enumerate() {
            let v = c.load(Relaxed);
            into.requests_by_opcode[i] += v;
            into.requests += v;
        }
        let unknown = self.unknown_opcodes.load(Relaxed);
        into.unknown_opcodes += unknown;
        into.requests += unknown;
        into.malformed += self.malformed.load(Relaxed);
        into.eagain += self.eagain.load(Relaxed);
        into.largest_write = into.largest_write.max(self.largest_write.load(Relaxed));
        into.largest_read = into.largest_read.max(self.largest_read.load(Relaxed));
        into.bytes_written += self.bytes_written.load(Relaxed);
        into.bytes_read += self.bytes_read.load(Relaxed);
        into.replies_to_interrupted += self.replies_to_interrupted.load(Relaxed);
        into.reply_errors += self.reply_errors.load(Relaxed);
        into.deferred += self.deferred.load(Relaxed);
        into.deferred_dropped += self.deferred_dropped.load(Relaxed);
        into.interrupts_delivered += self.interrupts_delivered.load(Relaxed);
    }
}

/// The session's counters, summed over workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stats {
    /// Requests received, all opcodes (unknown ones included).
    pub requests: u64,
    /// Requests per opcode, indexed by [`Opcode::counter_index`].
    pub requests_by_opcode: [u64; Opcode::COUNT],
    /// Requests with an opcode this ABI does not know (answered `ENOSYS`).
    pub unknown_opcodes: u64,
    /// Malformed messages (answered with an errno, or dropped and counted).
    pub malformed: u64,
    /// Requests answered `EAGAIN` because the pool had no blocks.
    pub eagain: u64,
    /// Largest WRITE payload received, bytes.
    pub largest_write: u64,
    /// Largest READ reply sent, bytes.
    pub largest_read: u64,
    /// WRITE payload bytes received.
    pub bytes_written: u64,
    /// READ reply bytes sent.
    pub bytes_read: u64,
    /// Replies the kernel refused with `ENOENT`: the request had been
    /// interrupted or aborted meanwhile (not an error).
    pub replies_to_interrupted: u64,
    /// Replies the kernel refused for another reason.
    pub reply_errors: u64,
    /// Replies deferred by the filesystem.
    pub deferred: u64,
    /// Deferred replies dropped unanswered (answered `EIO` by the runtime).
    pub deferred_dropped: u64,
    /// INTERRUPTs delivered to the filesystem.
    pub interrupts_delivered: u64,
}

impl Default for Stats {
    fn default() -> Stats {
        Stats {
            requests: 0,
            requests_by_opcode: [0; Opcode::COUNT],
            unknown_opcodes: 0,
            malformed: 0,
            eagain: 0,
            largest_write: 0,
            largest_read: 0,
            bytes_written: 0,
            bytes_read: 0,
            replies_to_interrupted: 0,
            reply_errors: 0,
            deferred: 0,
            deferred_dropped: 0,
            interrupts_delivered: 0,
        }
    }
}

impl Stats {
    /// Requests seen with opcode `op`.
    pub fn requests_of(&self, op: Opcode) -> u64 {
        self.requests_by_opcode[op.counter_index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_sum_and_maxima_combine_across_workers() {
        let a = Counters::new();
        let b = Counters::new();
        a.request(Opcode::FUSE_READ);
        b.request(Opcode::FUSE_READ);
        b.request(Opcode::CUSE_INIT);
        a.write_served(10);
        b.write_served(30);
        a.read_served(7);
        a.eagain();
        let mut s = Stats::default();
        a.add_to(&mut s);
        b.add_to(&mut s);
        assert_eq!(s.requests, 3);
        assert_eq!(s.requests_of(Opcode::FUSE_READ), 2);
        assert_eq!(s.requests_of(Opcode::CUSE_INIT), 1);
        assert_eq!((s.largest_write, s.bytes_written), (30, 40));
        assert_eq!((s.largest_read, s.eagain), (7, 1));
    }
}
