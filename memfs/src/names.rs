//! The name arena: directory-entry names and short symlink targets.
//!
//! Names live in 32-byte segments from one preallocated pool; a name of `n`
//! bytes takes `ceil(n / 32)` segments chained by a link array (a 255-byte
//! name takes 8). Most names fit one segment. A name is written once when
//! its entry is created and read until it is released, always under the
//! lock of the inode that owns it (the directory, or the symlink), which
//! orders those accesses; the bytes are stored in `AtomicU64` words so that
//! this module needs no `unsafe` (`Relaxed` loads and stores compile to
//! plain moves).

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::Ordering::Relaxed;
use core::sync::atomic::{AtomicU32, AtomicU64};

use crate::sync::{FreeList, NONE};

/// Bytes per segment.
pub(crate) const SEGMENT_BYTES: usize = 32;
const WORDS: usize = SEGMENT_BYTES / 8;

/// The arena.
pub(crate) struct Names {
    words: Box<[AtomicU64]>,
    next: Box<[AtomicU32]>,
    free: FreeList,
}

impl Names {
    /// `segments` segments, all free.
    pub(crate) fn new(segments: u32) -> Names {
        let words: Vec<AtomicU64> = (0..segments as usize * WORDS)
            .map(|_| AtomicU64::new(0))
            .collect();
        let next: Vec<AtomicU32> = (0..segments).map(|_| AtomicU32::new(NONE)).collect();
        let names = Names {
            words: words.into_boxed_slice(),
            next: next.into_boxed_slice(),
            free: FreeList::new(segments, 0),
        };
        // Touch every page of the zeroed words (see `store::tree::Nodes`).
        for w in names.words.iter().step_by(512) {
            w.fetch_or(0, Relaxed);
        }
        names
    }

    /// Heap bytes of `segments` segments (bytes, links, free list).
    pub(crate) fn heap_bytes(segments: u32) -> u64 {
        u64::from(segments) * (SEGMENT_BYTES + 4) as u64 + FreeList::heap_bytes(segments)
    }

    /// Segments free right now.
    pub(crate) fn free_count(&self) -> u32 {
        self.free.free()
    }

    /// Stores `name` (1 to 255 bytes... or a short symlink target);
    /// returns its first segment, or `None` when the arena is full.
    pub(crate) fn store(&self, name: &[u8]) -> Option<u32> {
        let mut head = NONE;
        let mut tail = NONE;
        for piece in name.chunks(SEGMENT_BYTES) {
            let Some(seg) = self.free.pop() else {
                if head != NONE {
                    self.release(head);
                }
                return None;
            };
            self.next[seg as usize].store(NONE, Relaxed);
            for (w, bytes) in piece.chunks(8).enumerate() {
                let mut word = [0u8; 8];
                word[..bytes.len()].copy_from_slice(bytes);
                self.words[seg as usize * WORDS + w].store(u64::from_le_bytes(word), Relaxed);
            }
            if tail == NONE {
                head = seg;
            } else {
                self.next[tail as usize].store(seg, Relaxed);
            }
            tail = seg;
        }
        Some(head)
    }

    /// Releases the segments of the name starting at `head`.
    pub(crate) fn release(&self, head: u32) {
        let mut seg = head;
        while seg != NONE {
            let next = self.next[seg as usize].load(Relaxed);
            self.free.push(seg);
            seg = next;
        }
    }

    /// The bytes of one segment.
    fn segment(&self, seg: u32) -> [u8; SEGMENT_BYTES] {
        let mut out = [0u8; SEGMENT_BYTES];
        for w in 0..WORDS {
            let word = self.words[seg as usize * WORDS + w].load(Relaxed);
            out[w * 8..w * 8 + 8].copy_from_slice(&word.to_le_bytes());
        }
        out
    }

    /// Whether the `len`-byte name at `head` is `name`.
    pub(crate) fn equals(&self, head: u32, len: usize, name: &[u8]) -> bool {
        if len != name.len() {
            return false;
        }
        let mut seg = head;
        for piece in name.chunks(SEGMENT_BYTES) {
            if seg == NONE || self.segment(seg)[..piece.len()] != *piece {
                return false;
            }
            seg = self.next[seg as usize].load(Relaxed);
        }
        true
    }

    /// Copies the `dst.len()`-byte name at `head` into `dst`.
    pub(crate) fn copy(&self, head: u32, dst: &mut [u8]) {
        let mut seg = head;
        for piece in dst.chunks_mut(SEGMENT_BYTES) {
            if seg == NONE {
                piece.fill(0);
                continue;
            }
            piece.copy_from_slice(&self.segment(seg)[..piece.len()]);
            seg = self.next[seg as usize].load(Relaxed);
        }
    }
}

/// FNV-1a of a name: the directory hash index's key (with the directory).
pub(crate) fn hash(name: &[u8]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in name {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_compares_copies_and_releases() {
        let names = Names::new(10);
        let long = [b'x'; 255];
        let a = names.store(b"hello").unwrap();
        let b = names.store(&long).unwrap();
        assert_eq!(names.free_count(), 1);
        assert!(names.equals(a, 5, b"hello"));
        assert!(!names.equals(a, 5, b"hellp"));
        assert!(names.equals(b, 255, &long));
        let mut out = [0u8; 255];
        names.copy(b, &mut out);
        assert_eq!(out, long);
        assert!(names.store(&long).is_none());
        assert_eq!(names.free_count(), 1);
        names.release(b);
        names.release(a);
        assert_eq!(names.free_count(), 10);
    }
}
