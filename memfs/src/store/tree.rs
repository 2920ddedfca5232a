//! The chunk map: a radix tree per [`Content`](super::Content) from chunk
//! index (byte offset / 4 KiB) to chunk, its nodes from one preallocated
//! pool ([`Nodes`]).
//!
//! A node is 16 `u32` entries (64 bytes, one cache line): 4 bits of the
//! chunk index per level. The height grows with the largest index stored:
//! height 0 holds chunk 0 in the root word itself (a one-page file needs no
//! node), height 1 covers 64 KiB, height 3 covers 16 MiB, and height 13
//! covers 2^52 chunks, more than the largest file (2^63 bytes). Sparse files
//! cost nodes only along the paths to their chunks.
//!
//! An entry is 0 when empty. At the leaf level it is `block + 1`, with
//! [`UNWRITTEN`] set for chunks that fallocate reserved and nothing has
//! written yet (tmpfs keeps such pages "not uptodate": they count in
//! `st_blocks` but are holes to `SEEK_DATA`). Above the leaves it is
//! `node + 1`.
//!
//! Entries are `AtomicU32`s accessed with `Relaxed` ordering: the owning
//! inode's lock orders every access (readers under its read lock, writers
//! under its write lock), the atomics only keep this module free of
//! `unsafe`. Free nodes are all-zero (a node is freed only once empty), so
//! a node comes out of the pool ready to use.

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::sync::atomic::AtomicU32;
use core::sync::atomic::Ordering::Relaxed;

use crate::sync::FreeList;

/// Entries per node.
pub(crate) const FANOUT: usize = 16;
/// Index bits per level.
const FANOUT_BITS: u32 = 4;
/// The tallest tree: 16^13 = 2^52 chunks of 4 KiB cover every file offset.
pub(crate) const HEIGHT_MAX: u8 = 13;
/// Marks a fallocated chunk that nothing has written yet.
pub(crate) const UNWRITTEN: u32 = 1 << 31;

const _: () = assert!(FANOUT == 1 << FANOUT_BITS);
const _: () = assert!(FANOUT_BITS * HEIGHT_MAX as u32 >= 63 - 12);

/// Chunk indices a tree of `height` covers.
pub(crate) const fn span(height: u8) -> u64 {
    1u64 << (FANOUT_BITS * height as u32)
}

/// The block of a leaf entry (which must not be 0).
pub(crate) const fn block_of(entry: u32) -> u32 {
    (entry & !UNWRITTEN) - 1
}

/// The node pool.
pub(crate) struct Nodes {
    entries: Box<[AtomicU32]>,
    free: FreeList,
}

impl Nodes {
    /// `count` nodes, all free.
    pub(crate) fn new(count: u32) -> Nodes {
        let entries: Vec<AtomicU32> = (0..count as usize * FANOUT)
            .map(|_| AtomicU32::new(0))
            .collect();
        let nodes = Nodes {
            entries: entries.into_boxed_slice(),
            free: FreeList::new(count, 0),
        };
        // Touch every page now (a zeroed allocation may be lazily mapped),
        // so that serving never page-faults here.
        for e in nodes.entries.iter().step_by(1024) {
            e.fetch_or(0, Relaxed);
        }
        nodes
    }

    /// Heap bytes `count` nodes take (entries and free-list links).
    pub(crate) fn heap_bytes(count: u32) -> u64 {
        u64::from(count) * (FANOUT * core::mem::size_of::<AtomicU32>()) as u64
            + FreeList::heap_bytes(count)
    }

    /// Nodes free right now.
    pub(crate) fn free_count(&self) -> u32 {
        self.free.free()
    }

    fn alloc(&self) -> Option<u32> {
        self.free.pop()
    }

    fn release(&self, node: u32) {
        debug_assert!(self.is_empty(node));
        self.free.push(node);
    }

    fn entry(&self, node: u32, i: usize) -> &AtomicU32 {
        &self.entries[node as usize * FANOUT + i]
    }

    fn is_empty(&self, node: u32) -> bool {
        (0..FANOUT).all(|i| self.entry(node, i).load(Relaxed) == 0)
    }
}

/// Where a leaf entry lives: the root word, or entry `i` of a node.
#[derive(Clone, Copy)]
pub(crate) enum Slot {
    Root,
    At(u32, usize),
}

/// A tree's root word and height (kept in the [`Content`](super::Content)).
#[derive(Debug, Default)]
pub(crate) struct Tree {
    root: u32,
    height: u8,
}

/// What [`Tree::find`] looks for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    /// A chunk that has been written (`SEEK_DATA`).
    Data,
    /// An absent or unwritten chunk (`SEEK_HOLE`).
    Hole,
}

impl Tree {
    /// The leaf entry of chunk `index` (0 if absent).
    pub(crate) fn get(&self, nodes: &Nodes, index: u64) -> u32 {
        if index >= span(self.height) {
            return 0;
        }
        let mut entry = self.root;
        let mut height = self.height;
        while height > 0 {
            if entry == 0 {
                return 0;
            }
            let shift = FANOUT_BITS * u32::from(height - 1);
            let i = ((index >> shift) as usize) & (FANOUT - 1);
            entry = nodes.entry(entry - 1, i).load(Relaxed);
            height -= 1;
        }
        entry
    }

    /// The slot for chunk `index`, growing the tree and adding nodes on the
    /// way as needed; `None` when the node pool is exhausted (what was added
    /// stays, empty, and is reused by the next attempt).
    pub(crate) fn slot(&mut self, nodes: &Nodes, index: u64) -> Option<Slot> {
        while index >= span(self.height) {
            if self.height >= HEIGHT_MAX {
                return None;
            }
            if self.root == 0 {
                self.height += 1;
                continue;
            }
            let node = nodes.alloc()?;
            nodes.entry(node, 0).store(self.root, Relaxed);
            self.root = node + 1;
            self.height += 1;
        }
        if self.height == 0 {
            return Some(Slot::Root);
        }
        if self.root == 0 {
            self.root = nodes.alloc()? + 1;
        }
        let mut node = self.root - 1;
        let mut height = self.height;
        loop {
            let shift = FANOUT_BITS * u32::from(height - 1);
            let i = ((index >> shift) as usize) & (FANOUT - 1);
            if height == 1 {
                return Some(Slot::At(node, i));
            }
            let e = nodes.entry(node, i);
            let mut child = e.load(Relaxed);
            if child == 0 {
                child = nodes.alloc()? + 1;
                e.store(child, Relaxed);
            }
            node = child - 1;
            height -= 1;
        }
    }

    /// The entry in `slot`.
    pub(crate) fn load(&self, nodes: &Nodes, slot: Slot) -> u32 {
        match slot {
            Slot::Root => self.root,
            Slot::At(node, i) => nodes.entry(node, i).load(Relaxed),
        }
    }

    /// Sets the entry in `slot`.
    pub(crate) fn store(&mut self, nodes: &Nodes, slot: Slot, entry: u32) {
        match slot {
            Slot::Root => self.root = entry,
            Slot::At(node, i) => nodes.entry(node, i).store(entry, Relaxed),
        }
    }

    /// Removes the chunks with indices in `from..to`, handing each leaf
    /// entry to `release`, and frees the nodes that become empty.
    pub(crate) fn remove(
        &mut self,
        nodes: &Nodes,
        from: u64,
        to: u64,
        release: &mut impl FnMut(u32),
    ) {
        let to = to.min(span(self.height));
        if self.root == 0 || from >= to {
            return;
        }
        if self.height == 0 {
            release(self.root);
            self.root = 0;
            return;
        }
        if remove_in(nodes, self.root - 1, self.height, 0, from, to, release) {
            nodes.release(self.root - 1);
            self.root = 0;
            self.height = 0;
        } else {
            self.shrink(nodes);
        }
    }

    /// Lowers the tree while its root node holds only entry 0.
    fn shrink(&mut self, nodes: &Nodes) {
        while self.height > 0 && self.root != 0 {
            let node = self.root - 1;
            if (1..FANOUT).any(|i| nodes.entry(node, i).load(Relaxed) != 0) {
                return;
            }
            let first = nodes.entry(node, 0).swap(0, Relaxed);
            nodes.release(node);
            self.root = first;
            self.height -= 1;
        }
    }

    /// The first chunk index `>= from` that is what `want` asks for. A
    /// hole is always found (past the tree, everything is a hole).
    pub(crate) fn find(&self, nodes: &Nodes, from: u64, want: Want) -> Option<u64> {
        if from >= span(self.height) {
            return match want {
                Want::Data => None,
                Want::Hole => Some(from),
            };
        }
        match find_in(nodes, self.root, self.height, 0, from, want) {
            Some(i) => Some(i),
            None if want == Want::Hole => Some(span(self.height)),
            None => None,
        }
    }
}

/// Removes `from..to` under `node` (of `height >= 1`, covering indices from
/// `base`); true when the node is empty afterwards.
fn remove_in(
    nodes: &Nodes,
    node: u32,
    height: u8,
    base: u64,
    from: u64,
    to: u64,
    release: &mut impl FnMut(u32),
) -> bool {
    let child_span = span(height - 1);
    let first = if from > base {
        ((from - base) / child_span) as usize
    } else {
        0
    };
    let last = (to.saturating_sub(base).div_ceil(child_span)).min(FANOUT as u64) as usize;
    for i in first..last {
        let e = nodes.entry(node, i);
        let child = e.load(Relaxed);
        if child == 0 {
            continue;
        }
        if height == 1 {
            release(child);
            e.store(0, Relaxed);
            continue;
        }
        let child_base = base + i as u64 * child_span;
        if remove_in(nodes, child - 1, height - 1, child_base, from, to, release) {
            nodes.release(child - 1);
            e.store(0, Relaxed);
        }
    }
    nodes.is_empty(node)
}

/// Searches the subtree of `entry` (of `height`, covering indices from
/// `base`) for the first index `>= from` that `want` asks for.
fn find_in(nodes: &Nodes, entry: u32, height: u8, base: u64, from: u64, want: Want) -> Option<u64> {
    let start = base.max(from);
    if height == 0 {
        let data = entry != 0 && entry & UNWRITTEN == 0;
        return match (want, data) {
            (Want::Data, true) | (Want::Hole, false) => Some(start),
            _ => None,
        };
    }
    if entry == 0 {
        return match want {
            Want::Data => None,
            Want::Hole => Some(start),
        };
    }
    let child_span = span(height - 1);
    let first = ((start - base) / child_span) as usize;
    for i in first..FANOUT {
        let child = nodes.entry(entry - 1, i).load(Relaxed);
        let child_base = base + i as u64 * child_span;
        if let Some(found) = find_in(nodes, child, height - 1, child_base, from, want) {
            return Some(found);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_finds_removes_and_frees_every_node() {
        let nodes = Nodes::new(64);
        let mut t = Tree::default();
        for (n, index) in [0u64, 1, 17, 4096, 1 << 40].into_iter().enumerate() {
            let s = t.slot(&nodes, index).unwrap();
            t.store(&nodes, s, n as u32 + 1);
        }
        assert_eq!(t.get(&nodes, 17), 3);
        assert_eq!(t.get(&nodes, 18), 0);
        assert_eq!(t.get(&nodes, 1 << 40), 5);
        assert_eq!(t.find(&nodes, 2, Want::Data), Some(17));
        assert_eq!(t.find(&nodes, 18, Want::Data), Some(4096));
        assert_eq!(t.find(&nodes, 0, Want::Hole), Some(2));
        let mut seen = Vec::new();
        t.remove(&nodes, 1, u64::MAX, &mut |e| seen.push(e));
        assert_eq!(seen, [2, 3, 4, 5]);
        assert_eq!(t.height, 0);
        assert_eq!(t.root, 1);
        t.remove(&nodes, 0, 1, &mut |_| {});
        assert_eq!(nodes.free_count(), 64);
    }

    #[test]
    fn unwritten_chunks_are_holes_to_seek() {
        let nodes = Nodes::new(8);
        let mut t = Tree::default();
        for i in 0..4u64 {
            let s = t.slot(&nodes, i).unwrap();
            let flag = if i == 1 { UNWRITTEN } else { 0 };
            t.store(&nodes, s, (i as u32 + 1) | flag);
        }
        assert_eq!(t.find(&nodes, 1, Want::Data), Some(2));
        assert_eq!(t.find(&nodes, 0, Want::Hole), Some(1));
        assert_eq!(t.find(&nodes, 2, Want::Hole), Some(4));
        assert_eq!(block_of(2 | UNWRITTEN), 1);
    }
}
