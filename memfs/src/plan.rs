//! Sizing: every table memfs will ever use, computed from the configuration
//! in one place before anything is mapped.
//!
//! The data budget (`size_bytes`) is file data only, as tmpfs's `size=`:
//! 4 KiB chunks in their own slab, plus, like file data, extended-attribute
//! blobs and symlink targets of 128 bytes or more (tmpfs also stores those
//! in a page). Metadata comes **on top** of the budget, in tables sized
//! here, one line per consumer; [`Layout::metadata_bytes`] is their exact
//! heap size and goes into `StoragePlan::mapped_bytes` with the slab's.

use crate::MemFsConfig;
use crate::dir::Entries;
use crate::names::Names;
use crate::node::Table;
use crate::store::CHUNK_BYTES;
use crate::store::bitmap::Bitmap;
use crate::store::tree::Nodes;

/// The most chunks: a chunk-map entry keeps its top bit for "unwritten"
/// (8 TiB of data).
const CHUNKS_MAX: u64 = (1 << 31) - 2;
/// The most inodes: node ids and slot indices are `u32`s with a sentinel.
const INODES_MAX: u32 = 1 << 30;

/// The table sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Data chunks: `size_bytes / 4096`.
    pub(crate) chunks: u32,
    /// Chunk-map nodes (64 bytes each).
    pub(crate) nodes: u32,
    /// The inode limit, the root included (the table has
    /// `node::spare_slots` more slots for inodes awaiting their FORGET).
    pub(crate) inodes: u32,
    /// Directory entries (48 bytes each).
    pub(crate) dirents: u32,
    /// Name segments (32 bytes each, plus a 4-byte link).
    pub(crate) name_segments: u32,
}

/// Why a configuration cannot be laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Unusable;

impl Layout {
    /// The layout for `config`.
    pub(crate) fn compute(config: &MemFsConfig) -> Result<Layout, Unusable> {
        let chunks = config.size_bytes / CHUNK_BYTES as u64;
        if chunks == 0 || chunks > CHUNKS_MAX || config.inodes == 0 || config.inodes > INODES_MAX {
            return Err(Unusable);
        }
        let chunks = u32::try_from(chunks).map_err(|_| Unusable)?;
        let inodes = config.inodes;
        // Every name costs an inode's worth of tmpfs's inode space (a new
        // inode, or an extra hard link, or a whiteout), so there are never
        // more entries than the inode limit.
        let dirents = inodes + 16;
        // 64 bytes of name per entry on average (most names fit one 32-byte
        // segment; a 255-byte name takes 8), plus a quarter segment per
        // inode for symlink targets under 128 bytes.
        let name_segments = 2 * dirents + inodes / 4;
        // Dense data needs one leaf per 16 chunks; the worst dense layout is
        // many two-chunk files (one node each): half a node per chunk. Plus
        // a little per inode for sparse files and xattr blobs.
        let nodes = chunks / 2 + inodes / 16 + 64;
        Ok(Layout {
            chunks,
            nodes,
            inodes,
            dirents,
            name_segments,
        })
    }

    /// Exact heap bytes of the metadata tables.
    pub(crate) fn metadata_bytes(&self) -> u64 {
        Table::heap_bytes(self.inodes)
            + Entries::heap_bytes(self.dirents)
            + Names::heap_bytes(self.name_segments)
            + Nodes::heap_bytes(self.nodes)
            + Bitmap::heap_bytes(self.chunks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_and_tables_follow_the_formulas() {
        let config = MemFsConfig {
            size_bytes: 8 << 20,
            inodes: 1024,
            ..MemFsConfig::default()
        };
        let l = Layout::compute(&config).unwrap();
        assert_eq!(l.chunks, 2048);
        assert_eq!(l.dirents, 1024 + 16);
        assert_eq!(l.nodes, 1024 + 64 + 64);
        assert!(l.metadata_bytes() > 0);
        let tiny = MemFsConfig {
            size_bytes: 100,
            ..MemFsConfig::default()
        };
        assert_eq!(Layout::compute(&tiny), Err(Unusable));
    }
}
