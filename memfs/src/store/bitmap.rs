//! The chunk allocator: one bit per chunk of the data slab, goal-based
//! (ext4-style), lock-free.
//!
//! Why not a free list: a LIFO free list hands chunks back in the reverse
//! of the order they were freed, so a file rewritten after a delete, or
//! two files written at the same time, end up with chunks that are never
//! neighbours in the slab. Reads are sent straight from the slab, one
//! slice per run of neighbouring chunks, and a reply takes at most
//! `MAX_DATA_PARTS` (1022) slices: a 16 MiB read of 4096 scattered chunks
//! must be copied instead. Here a file's chunks land in slab order.
//!
//! How a chunk is chosen ([`Bitmap::claim`]):
//!
//! 1. *The goal*: the chunk right after the one holding the file's
//!    previous 4 KiB. A file written front to back takes one neighbour
//!    after the other: one atomic `fetch_or`, O(1).
//! 2. Otherwise *a new run*, searched forward from a shared cursor. The
//!    cursor then moves past the new chunk by a gap that grows with the
//!    file (its chunk index rounded up to a power of two, at most
//!    [`RUN_CHUNKS_MAX`]), so the next file to start a run starts it
//!    beyond that room: two files written at once leapfrog in runs that
//!    double up to 4 MiB instead of interleaving chunk by chunk, while
//!    small files still pack densely. A file large enough for runs of a
//!    word (64 chunks) or more looks for an entirely free word first
//!    (within [`SCAN_WORDS`] words), else takes the first free chunk.
//!
//! Counting is separate from searching: [`Bitmap::reserve`] takes chunks
//! from the free count (all or none) *before* any bit is searched, so
//! `statfs` and `ENOSPC` are exact and a claim that holds a reservation
//! always finds a free bit (there are at least as many clear bits as
//! outstanding reservations). A claim is one `fetch_or` that sees the bit
//! clear: only one thread can, so a chunk has one owner. Nothing here
//! allocates, locks or waits: a claim is O(1) when the goal is free, and
//! a search reads each bitmap word at most once per pass (the bitmap of
//! 1 GiB is 4096 words).

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::Ordering::{AcqRel, Relaxed};
use core::sync::atomic::{AtomicU32, AtomicU64};

/// Chunks per bitmap word.
const WORD_BITS: u32 = 64;
/// The largest gap a new run leaves before the next file's run: 4 MiB.
pub(crate) const RUN_CHUNKS_MAX: u32 = 1024;
/// Words a new run of a word or more looks through for an entirely free
/// one before it takes the first free chunk.
pub(crate) const SCAN_WORDS: u32 = 64;

/// Which chunks are in use, and how many are free.
pub(crate) struct Bitmap {
    /// Bit `i % 64` of word `i / 64` is set while chunk `i` is taken (or
    /// does not exist: the bits past the last chunk stay set).
    words: Box<[AtomicU64]>,
    chunks: u32,
    /// Chunks neither taken nor reserved.
    free: AtomicU32,
    /// Where the next new run starts looking (a chunk index, a hint).
    cursor: AtomicU32,
}

/// The gap a new run for file chunk `index` leaves before the next file's
/// run: the chunks the file holds up to there, rounded up to a power of
/// two, so its runs double; at least 1, at most [`RUN_CHUNKS_MAX`].
fn run_gap(index: u64) -> u32 {
    let wanted = index
        .saturating_add(1)
        .min(u64::from(RUN_CHUNKS_MAX))
        .next_power_of_two();
    #[allow(clippy::cast_possible_truncation, reason = "at most RUN_CHUNKS_MAX")]
    let gap = wanted as u32;
    gap
}

impl Bitmap {
    /// `chunks` chunks, all free.
    pub(crate) fn new(chunks: u32) -> Bitmap {
        let count = chunks.div_ceil(WORD_BITS);
        let words: Vec<AtomicU64> = (0..count)
            .map(|w| {
                // Bits of chunks past the end are taken for good.
                let first = w * WORD_BITS;
                let valid = chunks - first;
                let used = if valid >= WORD_BITS {
                    0
                } else {
                    !0u64 << valid
                };
                AtomicU64::new(used)
            })
            .collect();
        Bitmap {
            words: words.into_boxed_slice(),
            chunks,
            free: AtomicU32::new(chunks),
            cursor: AtomicU32::new(0),
        }
    }

    /// Heap bytes of the bitmap for `chunks` chunks.
    pub(crate) fn heap_bytes(chunks: u32) -> u64 {
        u64::from(chunks.div_ceil(WORD_BITS)) * core::mem::size_of::<AtomicU64>() as u64
    }

    /// Chunks in all.
    pub(crate) fn total(&self) -> u32 {
        self.chunks
    }

    /// Chunks free right now (neither taken nor reserved).
    pub(crate) fn free(&self) -> u32 {
        self.free.load(Relaxed)
    }

    /// Takes `n` chunks from the free count, all or none. Each must then
    /// be claimed ([`claim`](Self::claim)) or given back
    /// ([`unreserve`](Self::unreserve)).
    pub(crate) fn reserve(&self, n: u32) -> bool {
        // Relaxed: a counter; the bits themselves are ordered by their own
        // read-modify-writes.
        let mut free = self.free.load(Relaxed);
        loop {
            let Some(left) = free.checked_sub(n) else {
                return false;
            };
            match self
                .free
                .compare_exchange_weak(free, left, Relaxed, Relaxed)
            {
                Ok(_) => return true,
                Err(now) => free = now,
            }
        }
    }

    /// Gives back reservations not claimed.
    pub(crate) fn unreserve(&self, n: u32) {
        self.free.fetch_add(n, Relaxed);
    }

    /// Claims a chunk for a reservation the caller holds, preferably
    /// `goal`; `index` is the file chunk it is for (it sizes the gap of a
    /// new run). Always succeeds: see the module doc.
    pub(crate) fn claim(&self, goal: Option<u32>, index: u64) -> u32 {
        if let Some(g) = goal
            && g < self.chunks
            && self.try_take(g)
        {
            return g;
        }
        let gap = run_gap(index);
        let start = self.cursor.load(Relaxed) % self.chunks;
        let chunk = if gap >= WORD_BITS {
            self.free_word(start)
                .unwrap_or_else(|| self.first_fit(start))
        } else {
            self.first_fit(start)
        };
        // Relaxed: a hint; a lost update only moves where a search starts.
        self.cursor
            .store(chunk.saturating_add(gap) % self.chunks, Relaxed);
        chunk
    }

    /// Gives chunk `chunk` back (its owner has just dropped it).
    pub(crate) fn release(&self, chunk: u32) {
        let (w, bit) = (chunk / WORD_BITS, chunk % WORD_BITS);
        // AcqRel: the owner's last writes to the chunk happen before the
        // next claimer's (its Acquire side of the `fetch_or`).
        let was = self.words[w as usize].fetch_and(!(1u64 << bit), AcqRel);
        debug_assert!(was & (1u64 << bit) != 0, "chunk {chunk} released twice");
        self.free.fetch_add(1, Relaxed);
    }

    /// Whether chunk `chunk` is taken (for tests and assertions).
    #[cfg(test)]
    pub(crate) fn is_taken(&self, chunk: u32) -> bool {
        let (w, bit) = (chunk / WORD_BITS, chunk % WORD_BITS);
        self.words[w as usize].load(Relaxed) & (1u64 << bit) != 0
    }

    /// Takes chunk `chunk` if it is free: true when this call took it.
    fn try_take(&self, chunk: u32) -> bool {
        let (w, bit) = (chunk / WORD_BITS, chunk % WORD_BITS);
        let mask = 1u64 << bit;
        let word = &self.words[w as usize];
        // A plain load first: a taken goal costs no cache-line write.
        if word.load(Relaxed) & mask != 0 {
            return false;
        }
        word.fetch_or(mask, AcqRel) & mask == 0
    }

    fn word_count(&self) -> u32 {
        #[allow(clippy::cast_possible_truncation, reason = "built from a u32 count")]
        let n = self.words.len() as u32;
        n
    }

    /// The first chunk of an entirely free word among the [`SCAN_WORDS`]
    /// words from `start`'s, taken; `None` when there is none.
    fn free_word(&self, start: u32) -> Option<u32> {
        let words = self.word_count();
        let first = start / WORD_BITS;
        for i in 0..SCAN_WORDS.min(words) {
            let w = (first + i) % words;
            if self.words[w as usize].load(Relaxed) == 0 && self.try_take(w * WORD_BITS) {
                return Some(w * WORD_BITS);
            }
        }
        None
    }

    /// The first free chunk at or after `start` (wrapping), taken. The
    /// caller holds a reservation, so one exists; a pass can miss it only
    /// while other threads free and take chunks around it, and then
    /// another pass follows.
    fn first_fit(&self, start: u32) -> u32 {
        let words = self.word_count();
        let first = start / WORD_BITS;
        loop {
            for i in 0..=words {
                let w = (first + i) % words;
                // The first word is searched from `start` on the first
                // visit, and whole when the pass wraps back to it.
                let below = if i == 0 {
                    (1u64 << (start % WORD_BITS)) - 1
                } else {
                    0
                };
                let word = &self.words[w as usize];
                let mut seen = word.load(Relaxed) | below;
                while seen != !0 {
                    let bit = (!seen).trailing_zeros();
                    let mask = 1u64 << bit;
                    let was = word.fetch_or(mask, AcqRel);
                    if was & mask == 0 {
                        return w * WORD_BITS + bit;
                    }
                    seen = was | below;
                }
            }
            core::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(b: &Bitmap, goal: Option<u32>, index: u64) -> u32 {
        assert!(b.reserve(1));
        b.claim(goal, index)
    }

    #[test]
    fn counts_reserves_all_or_nothing_and_never_hands_out_the_tail() {
        let b = Bitmap::new(70);
        assert_eq!(b.free(), 70);
        assert!(!b.reserve(71));
        assert!(b.reserve(70));
        let mut seen = alloc::collections::BTreeSet::new();
        for i in 0..70u64 {
            assert!(seen.insert(b.claim(None, i)));
        }
        assert_eq!(seen.last(), Some(&69));
        assert!(!b.reserve(1));
        b.release(5);
        assert_eq!(b.free(), 1);
        assert_eq!(take(&b, None, 0), 5);
        assert_eq!(b.free(), 0);
    }

    #[test]
    fn a_file_rewritten_after_a_delete_is_contiguous() {
        let b = Bitmap::new(4096);
        let mut file = Vec::new();
        let mut goal = None;
        for i in 0..1000u64 {
            let c = take(&b, goal, i);
            goal = Some(c + 1);
            file.push(c);
        }
        assert!(file.windows(2).all(|w| w[1] == w[0] + 1));
        // Freed front to back (as a delete does), then written again.
        for &c in &file {
            b.release(c);
        }
        let mut again = Vec::new();
        let mut goal = None;
        for i in 0..3000u64 {
            let c = take(&b, goal, i);
            goal = Some(c + 1);
            again.push(c);
        }
        let breaks = again.windows(2).filter(|w| w[1] != w[0] + 1).count();
        assert!(breaks <= 1, "{breaks} breaks");
    }

    #[test]
    fn two_files_written_at_once_get_long_runs() {
        let b = Bitmap::new(1 << 16);
        let mut files = [Vec::new(), Vec::new()];
        let mut goals = [None, None];
        for i in 0..8192u64 {
            for f in 0..2 {
                let c = take(&b, goals[f], i);
                goals[f] = Some(c + 1);
                files[f].push(c);
            }
        }
        for f in &files {
            let runs = 1 + f.windows(2).filter(|w| w[1] != w[0] + 1).count();
            // Runs double up to RUN_CHUNKS_MAX: about log2(1024) short
            // ones, then 8192 / 1024 long ones.
            assert!(runs <= 24, "{runs} runs");
        }
    }

    #[test]
    fn small_files_pack_densely() {
        let b = Bitmap::new(1024);
        for _ in 0..100 {
            take(&b, None, 0);
        }
        assert!((0..100).all(|c| b.is_taken(c)));
    }

    #[test]
    fn a_fragmented_bitmap_fills_every_hole() {
        let b = Bitmap::new(640);
        assert!(b.reserve(640));
        for i in 0..640 {
            b.claim(None, i);
        }
        for c in (0..640).step_by(3) {
            b.release(c);
        }
        let free = b.free();
        for i in 0..free {
            b.reserve(1);
            b.claim(Some(7), u64::from(i) * 100);
        }
        assert_eq!(b.free(), 0);
        assert!((0..640).all(|c| b.is_taken(c)));
    }

    #[test]
    fn concurrent_claims_never_share_a_chunk() {
        extern crate std;
        let b = Bitmap::new(4096);
        let taken: [std::sync::Mutex<Vec<u32>>; 4] = Default::default();
        std::thread::scope(|s| {
            for t in &taken {
                let b = &b;
                s.spawn(move || {
                    let mut goal = None;
                    for i in 0..1024u64 {
                        assert!(b.reserve(1));
                        let c = b.claim(goal, i);
                        goal = Some(c + 1);
                        t.lock().unwrap().push(c);
                    }
                });
            }
        });
        let mut all: Vec<u32> = taken
            .iter()
            .flat_map(|t| t.lock().unwrap().clone())
            .collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 4096);
        assert_eq!(b.free(), 0);
    }
}
