//! Byte storage: 4 KiB chunks from the data slab, mapped per object by a
//! radix tree ([`tree`]).
//!
//! A [`Content`] is a sparse byte array: a regular file's data, a long
//! symlink's target, an inode's extended-attribute blob. Its chunks are
//! tmpfs's pages: a chunk exists only where something was written or
//! fallocated, so holes read as zeros and cost nothing, `st_blocks` is
//! `8 * chunks`, and `SEEK_HOLE` / `PUNCH_HOLE` work at 4 KiB granularity
//! exactly as on tmpfs.
//!
//! Invariants kept here:
//!
//! - *No stale bytes.* A chunk is zeroed when it is taken from the pool
//!   (entirely, or everywhere a write does not cover), and every byte of an
//!   allocated chunk at or past the object's size is zero: shrinking zeroes
//!   the tail of the last partial chunk. So a hole, an extension by
//!   truncate and the tail of a chunk always read as zeros.
//! - *One owner per chunk*, and access to chunk bytes only through the
//!   owner's borrow: see the `# Safety` section of `raw.rs`, the one file
//!   with `unsafe`.
//!
//! Reads are zero-copy: [`Content::read_parts`] describes a range as slices
//! of the slab (chunks consecutive in the slab merge into one slice) and of
//! a static zero page for holes. For that to pay off, a file's chunks must
//! be neighbours in the slab: [`bitmap`] places each new chunk right after
//! the file's previous one whenever it can, also after deletes and with
//! several writers at once.
//!
//! The chunks come from the slab's [`BlockPool`], all of them taken at
//! start-up: memfs is the pool's only user, and [`bitmap::Bitmap`] says
//! which of them holds what.

pub(crate) mod bitmap;
#[allow(unsafe_code)]
mod raw;
pub(crate) mod tree;

use slabfuse::DataParts;
use slabfuse::buffer::{DestWriter, Full};
use slabfuse::pool::{BackingRequest, BlockPool, Slab, SlabConfig, SlabError};

use bitmap::Bitmap;
use tree::{Nodes, Slot, Tree, UNWRITTEN, Want, block_of};

/// Bytes per chunk: tmpfs's page size.
pub(crate) const CHUNK_BYTES: usize = 4096;
const CHUNK: u64 = CHUNK_BYTES as u64;

/// Zeros for holes that must be handed on as bytes (copy_file_range).
static ZERO_CHUNK: [u8; CHUNK_BYTES] = [0; CHUNK_BYTES];

/// The data chunks and the chunk-map nodes.
pub(crate) struct Storage {
    /// The slab's pool, every block of it taken at start-up (so nothing
    /// else can be handed one); `raw` turns chunk indices into bytes.
    pool: BlockPool,
    /// Which chunks are in use.
    bitmap: Bitmap,
    nodes: Nodes,
}

/// The chunk pool is out of chunks, or the node pool out of nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NoSpace;

impl Storage {
    /// Maps `chunks` chunks (as `backing` says) and lays out `nodes` nodes.
    pub(crate) fn new(
        chunks: u32,
        nodes: u32,
        backing: BackingRequest,
        lock: bool,
    ) -> Result<Storage, SlabError> {
        let slab = Slab::map(&SlabConfig {
            block_size: CHUNK_BYTES,
            blocks: chunks as usize,
            backing,
            lock,
        })?;
        let pool = BlockPool::new(slab);
        // Take every block: from now on the bitmap decides who holds which
        // (see `raw.rs`, invariant 1). The indices are not needed: they are
        // `0..chunks`, and the pool never sees them again.
        let all = pool
            .acquire_many(chunks as usize)
            .map_err(|_| SlabError::NoBlocks)?;
        for block in all {
            let _ = block.into_raw();
        }
        Ok(Storage {
            pool,
            bitmap: Bitmap::new(chunks),
            nodes: Nodes::new(nodes),
        })
    }

    /// The data slab (backing, lock status, mapped bytes).
    pub(crate) fn slab(&self) -> &Slab {
        self.pool.slab()
    }

    /// Chunks in the budget.
    pub(crate) fn chunks_total(&self) -> u64 {
        u64::from(self.bitmap.total())
    }

    /// Chunks free right now.
    pub(crate) fn chunks_free(&self) -> u64 {
        u64::from(self.bitmap.free())
    }

    /// Chunk-map nodes free right now.
    pub(crate) fn nodes_free(&self) -> u32 {
        self.nodes.free_count()
    }

    /// Takes a free chunk, `goal` if that one is free, for file chunk
    /// `index` (its bytes are whatever its last owner left: the caller
    /// zeroes or overwrites all of them).
    fn take_chunk(&self, goal: Option<u32>, index: u64) -> Option<u32> {
        if !self.bitmap.reserve(1) {
            return None;
        }
        Some(self.bitmap.claim(goal, index))
    }

    /// Gives back a chunk its owner has just dropped from its map.
    fn release_chunk(&self, block: u32) {
        self.bitmap.release(block);
    }
}

/// A source of bytes for [`Content::write`]: slices, consumed in order.
struct Cursor<'s, I: Iterator<Item = &'s [u8]>> {
    current: &'s [u8],
    rest: I,
}

impl<'s, I: Iterator<Item = &'s [u8]>> Cursor<'s, I> {
    /// Copies exactly `dst.len()` bytes (the caller asks for no more than
    /// the source holds; a short source leaves zeros).
    fn copy_into(&mut self, dst: &mut [u8]) {
        let mut done = 0;
        while done < dst.len() {
            if self.current.is_empty() {
                match self.rest.next() {
                    Some(s) => self.current = s,
                    None => {
                        dst[done..].fill(0);
                        return;
                    }
                }
                continue;
            }
            let n = self.current.len().min(dst.len() - done);
            dst[done..done + n].copy_from_slice(&self.current[..n]);
            self.current = &self.current[n..];
            done += n;
        }
    }
}

/// A sparse byte array in chunks. Not `Clone`: it owns its chunks.
#[derive(Debug, Default)]
pub(crate) struct Content {
    tree: Tree,
    chunks: u32,
}

/// The chunk index and the offset in it of byte `offset`.
fn split(offset: u64) -> (u64, usize) {
    (offset / CHUNK, (offset % CHUNK) as usize)
}

impl Content {
    /// An empty array.
    pub(crate) fn new() -> Content {
        Content::default()
    }

    /// Chunks held (`st_blocks / 8`).
    pub(crate) fn chunks(&self) -> u64 {
        u64::from(self.chunks)
    }

    /// Describes bytes `offset..offset + len` as slices (holes as zeros) in
    /// `parts`. `Err(Full)` when more slices would be needed than a reply
    /// takes: the caller falls back to [`read_fill`](Self::read_fill).
    pub(crate) fn read_parts<'a>(
        &'a self,
        st: &'a Storage,
        offset: u64,
        len: usize,
        parts: &mut DataParts<'a>,
    ) -> Result<(), Full> {
        // The run being built: blocks `run_first..run_first + run_blocks`,
        // from byte `run_skip` of the first, `run_len` bytes.
        let mut run: Option<(u32, usize, usize, usize)> = None;
        let mut zeros = 0usize;
        let mut pos = offset;
        let end = offset + len as u64;
        while pos < end {
            let (index, within) = split(pos);
            let take = (CHUNK_BYTES - within).min((end - pos) as usize);
            let entry = self.tree.get(&st.nodes, index);
            if entry == 0 {
                if let Some((first, blocks, skip, bytes)) = run.take() {
                    parts.push(&raw::chunks(&st.pool, self, first, blocks)[skip..skip + bytes])?;
                }
                zeros += take;
            } else {
                if zeros > 0 {
                    parts.push_zeros(zeros)?;
                    zeros = 0;
                }
                let block = block_of(entry);
                run = match run {
                    // Extends the run when this chunk follows it in the slab
                    // and the run reaches the end of its last chunk.
                    Some((first, blocks, skip, bytes))
                        if within == 0
                            && first + blocks as u32 == block
                            && skip + bytes == blocks * CHUNK_BYTES =>
                    {
                        Some((first, blocks + 1, skip, bytes + take))
                    }
                    other => {
                        if let Some((first, blocks, skip, bytes)) = other {
                            parts.push(
                                &raw::chunks(&st.pool, self, first, blocks)[skip..skip + bytes],
                            )?;
                        }
                        Some((block, 1, within, take))
                    }
                };
            }
            pos += take as u64;
        }
        if let Some((first, blocks, skip, bytes)) = run {
            parts.push(&raw::chunks(&st.pool, self, first, blocks)[skip..skip + bytes])?;
        }
        if zeros > 0 {
            parts.push_zeros(zeros)?;
        }
        Ok(())
    }

    /// Copies bytes `offset..offset + len` into a reply's own room.
    pub(crate) fn read_fill(
        &self,
        st: &Storage,
        offset: u64,
        len: usize,
        w: &mut DestWriter<'_, '_>,
    ) -> Result<(), Full> {
        let mut pos = offset;
        let end = offset + len as u64;
        while pos < end {
            let piece = self.piece(st, pos, (end - pos) as usize);
            w.put(piece)?;
            pos += piece.len() as u64;
        }
        Ok(())
    }

    /// Copies bytes from `offset` into `dst` (holes as zeros).
    pub(crate) fn read_into(&self, st: &Storage, offset: u64, dst: &mut [u8]) {
        let mut done = 0;
        while done < dst.len() {
            let piece = self.piece(st, offset + done as u64, dst.len() - done);
            dst[done..done + piece.len()].copy_from_slice(piece);
            done += piece.len();
        }
    }

    /// The bytes from `offset` to the end of its chunk (at most `max`): a
    /// slice of the chunk, or of zeros for a hole.
    pub(crate) fn piece<'a>(&'a self, st: &'a Storage, offset: u64, max: usize) -> &'a [u8] {
        let (index, within) = split(offset);
        let take = (CHUNK_BYTES - within).min(max);
        let entry = self.tree.get(&st.nodes, index);
        if entry == 0 {
            &ZERO_CHUNK[..take]
        } else {
            &raw::chunks(&st.pool, self, block_of(entry), 1)[within..within + take]
        }
    }

    /// Writes `len` bytes from `src` at `offset`, taking chunks as needed.
    /// Returns the bytes written; fewer than `len` (whole chunks' worth from
    /// `offset`) when storage ran out, as tmpfs writes what fits.
    pub(crate) fn write<'s>(
        &mut self,
        st: &Storage,
        offset: u64,
        len: usize,
        src: impl Iterator<Item = &'s [u8]>,
    ) -> usize {
        let mut cursor = Cursor {
            current: &[],
            rest: src,
        };
        let mut done = 0usize;
        // Where the next new chunk should go: after the previous one.
        let mut goal = None;
        while done < len {
            let pos = offset + done as u64;
            let (index, within) = split(pos);
            let take = (CHUNK_BYTES - within).min(len - done);
            let whole = within == 0 && take == CHUNK_BYTES;
            let Some(block) = self.chunk_for_write(st, index, whole, goal) else {
                break;
            };
            goal = Some(block + 1);
            cursor.copy_into(&mut raw::chunk_mut(&st.pool, self, block)[within..within + take]);
            done += take;
        }
        done
    }

    /// The block of chunk `index`, made present and marked written; a new
    /// chunk is zeroed unless the caller overwrites all of it. A new chunk
    /// goes to `goal` when free (see [`bitmap`]); without a goal, after the
    /// block of chunk `index - 1`.
    fn chunk_for_write(
        &mut self,
        st: &Storage,
        index: u64,
        whole: bool,
        goal: Option<u32>,
    ) -> Option<u32> {
        let slot = self.tree.slot(&st.nodes, index)?;
        let entry = self.tree.load(&st.nodes, slot);
        if entry != 0 {
            if entry & UNWRITTEN != 0 {
                self.tree.store(&st.nodes, slot, entry & !UNWRITTEN);
            }
            return Some(block_of(entry));
        }
        let goal = goal.or_else(|| self.goal_after(st, index));
        let block = st.take_chunk(goal, index)?;
        if !whole {
            raw::chunk_mut(&st.pool, self, block).fill(0);
        }
        self.store_new(st, slot, block + 1);
        Some(block)
    }

    /// The block right after the one of chunk `index - 1`, if present:
    /// where chunk `index` belongs to continue its run.
    fn goal_after(&self, st: &Storage, index: u64) -> Option<u32> {
        let before = self.tree.get(&st.nodes, index.checked_sub(1)?);
        (before != 0).then(|| block_of(before) + 1)
    }

    fn store_new(&mut self, st: &Storage, slot: Slot, entry: u32) {
        self.tree.store(&st.nodes, slot, entry);
        self.chunks += 1;
    }

    /// Zeroes bytes `offset..offset + len` in the chunks that exist there
    /// (takes none).
    fn zero_bytes(&mut self, st: &Storage, offset: u64, len: u64) {
        let end = offset.saturating_add(len);
        let mut pos = offset;
        while pos < end {
            let (index, within) = split(pos);
            let take = (CHUNK - within as u64).min(end - pos) as usize;
            let entry = self.tree.get(&st.nodes, index);
            if entry != 0 {
                raw::chunk_mut(&st.pool, self, block_of(entry))[within..within + take].fill(0);
            }
            pos += take as u64;
        }
    }

    /// Releases the chunks with indices in `from..to`.
    fn remove_chunks(&mut self, st: &Storage, from: u64, to: u64) {
        let mut released = 0u32;
        self.tree.remove(&st.nodes, from, to, &mut |entry| {
            st.release_chunk(block_of(entry));
            released += 1;
        });
        self.chunks -= released;
    }

    /// Sets the size to `new_size`: releases every chunk past the new end
    /// (fallocated ones too, as tmpfs) and zeroes the rest of the last
    /// partial chunk. Growing needs nothing: bytes past the old size are
    /// already zero.
    pub(crate) fn truncate(&mut self, st: &Storage, new_size: u64) {
        let (index, within) = split(new_size);
        if within != 0 {
            self.zero_bytes(st, new_size, CHUNK - within as u64);
            self.remove_chunks(st, index + 1, u64::MAX);
        } else {
            self.remove_chunks(st, index, u64::MAX);
        }
    }

    /// `FALLOC_FL_PUNCH_HOLE`: releases the whole chunks in the range and
    /// zeroes the partial ones at its ends.
    pub(crate) fn punch(&mut self, st: &Storage, offset: u64, len: u64) {
        let end = offset.saturating_add(len);
        let first_whole = offset.div_ceil(CHUNK);
        let end_whole = end / CHUNK;
        if first_whole >= end_whole {
            self.zero_bytes(st, offset, len);
            return;
        }
        self.zero_bytes(st, offset, first_whole * CHUNK - offset);
        self.zero_bytes(st, end_whole * CHUNK, end - end_whole * CHUNK);
        self.remove_chunks(st, first_whole, end_whole);
    }

    /// fallocate (mode 0 or `KEEP_SIZE`): every chunk of the range present.
    /// New chunks are zeroed and *unwritten* (holes to `SEEK_DATA`, as
    /// tmpfs's not-uptodate pages); an unwritten chunk fallocated again
    /// becomes data (tmpfs initializes such a page then). All-or-nothing on
    /// chunks: when not every missing chunk is free, nothing is taken and
    /// `NoSpace` is returned.
    pub(crate) fn allocate(&mut self, st: &Storage, offset: u64, len: u64) -> Result<(), NoSpace> {
        let first = offset / CHUNK;
        let end = offset.saturating_add(len).div_ceil(CHUNK);
        let span = end - first;
        if span > st.chunks_total() {
            return Err(NoSpace);
        }
        let mut missing = 0u32;
        for index in first..end {
            if self.tree.get(&st.nodes, index) == 0 {
                missing += 1;
            }
        }
        if !st.bitmap.reserve(missing) {
            return Err(NoSpace);
        }
        let mut goal = None;
        for index in first..end {
            let Some(slot) = self.tree.slot(&st.nodes, index) else {
                // Out of chunk-map nodes: what was taken stays (as a write
                // that runs out keeps what it wrote), the rest goes back.
                st.bitmap.unreserve(missing);
                return Err(NoSpace);
            };
            let entry = self.tree.load(&st.nodes, slot);
            if entry == 0 {
                let goal_here = goal.or_else(|| self.goal_after(st, index));
                let block = st.bitmap.claim(goal_here, index);
                missing -= 1;
                raw::chunk_mut(&st.pool, self, block).fill(0);
                self.store_new(st, slot, (block + 1) | UNWRITTEN);
                goal = Some(block + 1);
            } else {
                if entry & UNWRITTEN != 0 {
                    self.tree.store(&st.nodes, slot, entry & !UNWRITTEN);
                }
                goal = Some(block_of(entry) + 1);
            }
        }
        Ok(())
    }

    /// Releases every chunk and node.
    pub(crate) fn clear(&mut self, st: &Storage) {
        self.remove_chunks(st, 0, u64::MAX);
    }

    /// `SEEK_DATA` (`data == true`) or `SEEK_HOLE` from `offset` in an
    /// object of `size` bytes, as tmpfs answers: `None` (ENXIO) at or past
    /// the end, or when no data follows; the end of file is a hole.
    pub(crate) fn seek(&self, st: &Storage, offset: u64, size: u64, data: bool) -> Option<u64> {
        if offset >= size {
            return None;
        }
        let want = if data { Want::Data } else { Want::Hole };
        let found = self.tree.find(&st.nodes, offset / CHUNK, want);
        let pos = found.map(|index| index.saturating_mul(CHUNK).max(offset));
        match (data, pos) {
            (true, Some(p)) if p < size => Some(p),
            (true, _) => None,
            (false, Some(p)) => Some(p.min(size)),
            (false, None) => Some(size),
        }
    }

    /// The pieces of `offset..offset + len` (chunk slices, zeros for holes),
    /// in order: the source of a copy into another object.
    pub(crate) fn pieces<'a>(
        &'a self,
        st: &'a Storage,
        offset: u64,
        len: usize,
    ) -> impl Iterator<Item = &'a [u8]> + 'a {
        let end = offset + len as u64;
        let mut pos = offset;
        core::iter::from_fn(move || {
            if pos >= end {
                return None;
            }
            let piece = self.piece(st, pos, (end - pos) as usize);
            pos += piece.len() as u64;
            Some(piece)
        })
    }

    /// Moves `len` bytes from `src` down to `dst < src` within this object
    /// (memmove), through a small stack buffer. Used to compact the xattr
    /// blob; the range is already allocated, so nothing is taken.
    pub(crate) fn move_down(&mut self, st: &Storage, src: u64, dst: u64, len: u64) {
        debug_assert!(dst <= src);
        let mut buf = [0u8; 256];
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(buf.len() as u64) as usize;
            self.read_into(st, src + done, &mut buf[..n]);
            let written = self.write(st, dst + done, n, core::iter::once(&buf[..n]));
            debug_assert_eq!(written, n);
            done += n as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn storage(chunks: u32) -> Storage {
        Storage::new(chunks, chunks / 8 + 64, BackingRequest::Normal, false).unwrap()
    }

    fn read(c: &Content, st: &Storage, offset: u64, len: usize) -> alloc::vec::Vec<u8> {
        let mut v = alloc::vec![0xAAu8; len];
        c.read_into(st, offset, &mut v);
        v
    }

    #[test]
    fn writes_read_back_and_holes_read_zero() {
        let st = storage(16);
        let mut c = Content::new();
        let data = [7u8; 5000];
        assert_eq!(c.write(&st, 3000, 5000, core::iter::once(&data[..])), 5000);
        assert_eq!(c.chunks(), 2);
        let v = read(&c, &st, 0, 9000);
        assert!(v[..3000].iter().all(|&b| b == 0));
        assert!(v[3000..8000].iter().all(|&b| b == 7));
        assert!(v[8000..].iter().all(|&b| b == 0));
        let mut parts = DataParts::new();
        c.read_parts(&st, 0, 9000, &mut parts).unwrap();
        assert_eq!(parts.len(), 9000);
        // Blocks 0 and 1 are consecutive: one slice for the data.
        assert_eq!(parts.slices().len(), 2);
    }

    #[test]
    fn shrink_then_extend_reads_zeros() {
        let st = storage(4);
        let mut c = Content::new();
        let data = [9u8; 8192];
        c.write(&st, 0, 8192, core::iter::once(&data[..]));
        c.truncate(&st, 100);
        assert_eq!(c.chunks(), 1);
        let v = read(&c, &st, 0, 8192);
        assert!(v[..100].iter().all(|&b| b == 9));
        assert!(v[100..].iter().all(|&b| b == 0));
        c.clear(&st);
        assert_eq!(st.chunks_free(), 4);
        // A reused chunk carries nothing of its last owner.
        let mut d = Content::new();
        d.write(&st, 10, 1, core::iter::once(&[1u8][..]));
        let v = read(&d, &st, 0, 4096);
        assert_eq!(v.iter().filter(|&&b| b != 0).count(), 1);
    }

    /// Slices a zero-copy read of `len` bytes from `offset` takes
    /// (`None`: more than a reply holds, so it would be copied).
    fn slices(c: &Content, st: &Storage, offset: u64, len: usize) -> Option<usize> {
        let mut parts = DataParts::new();
        c.read_parts(st, offset, len, &mut parts).ok()?;
        assert_eq!(parts.len(), len);
        Some(parts.slices().len())
    }

    const MIB: usize = 1 << 20;

    #[test]
    fn sequential_writes_stay_one_slice_after_deletes_and_with_two_writers() {
        let st = storage(16384);
        let data = alloc::vec![5u8; MIB];
        let write_mib = |c: &mut Content, i: usize| {
            let n = c.write(&st, (i * MIB) as u64, MIB, core::iter::once(&data[..]));
            assert_eq!(n, MIB);
        };
        // 48 MiB written front to back, deleted (chunks freed in file
        // order, as an unlink does), written again, three times over.
        for _ in 0..3 {
            let mut c = Content::new();
            for i in 0..48 {
                write_mib(&mut c, i);
            }
            for at in [0, 16 * MIB, 32 * MIB] {
                assert!(slices(&c, &st, at as u64, 16 * MIB).unwrap() <= 2);
            }
            c.clear(&st);
        }
        // Two files written at the same time, 1 MiB each in turn.
        let (mut a, mut b) = (Content::new(), Content::new());
        for i in 0..24 {
            write_mib(&mut a, i);
            write_mib(&mut b, i);
        }
        for c in [&a, &b] {
            for at in [0, 8 * MIB] {
                let n = slices(c, &st, at as u64, 16 * MIB).unwrap();
                // Runs of up to 4 MiB: a handful of slices, not thousands.
                assert!(n <= 8, "{n} slices");
            }
        }
        a.clear(&st);
        b.clear(&st);
        assert_eq!(st.chunks_free(), 16384);
    }

    #[test]
    fn a_fragmented_file_is_left_to_the_copy_and_reads_right() {
        let st = storage(8192);
        // Fill storage, then free every other chunk: what a new file gets
        // is scattered, one chunk per run.
        let mut full = Content::new();
        full.allocate(&st, 0, 8192 * CHUNK).unwrap();
        for i in (0..8192u64).step_by(2) {
            full.punch(&st, i * CHUNK, CHUNK);
        }
        let mut c = Content::new();
        let pattern: alloc::vec::Vec<u8> = (0..16 * MIB).map(|i| (i / 4093) as u8).collect();
        assert_eq!(
            c.write(&st, 0, pattern.len(), core::iter::once(&pattern[..])),
            pattern.len()
        );
        assert_eq!(st.chunks_free(), 0);
        // 4096 runs: more slices than a reply takes.
        assert_eq!(slices(&c, &st, 0, 16 * MIB), None);
        assert!(slices(&c, &st, 0, MIB).is_some());
        assert_eq!(read(&c, &st, 0, 16 * MIB), pattern);
        c.clear(&st);
        full.clear(&st);
        assert_eq!(st.chunks_free(), 8192);
    }

    #[test]
    fn full_storage_writes_what_fits() {
        let st = storage(2);
        let mut c = Content::new();
        let data = [1u8; 12288];
        assert_eq!(c.write(&st, 0, 12288, core::iter::once(&data[..])), 8192);
        assert_eq!(c.allocate(&st, 8192, 4096), Err(NoSpace));
        c.punch(&st, 0, 4096);
        assert_eq!(c.chunks(), 1);
        assert_eq!(c.allocate(&st, 8192, 4096), Ok(()));
        assert_eq!(c.seek(&st, 0, 12288, true), Some(4096));
        assert_eq!(c.seek(&st, 4096, 12288, false), Some(8192));
        assert_eq!(c.seek(&st, 9000, 12288, true), None);
        assert_eq!(c.seek(&st, 12288, 12288, false), None);
    }
}
