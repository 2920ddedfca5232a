//! Receive buffers and reply destinations made of pool blocks.
//!
//! A worker's `RecvBuffer` is an 80-byte head followed by the blocks it
//! took from the pool at start-up. `readv` fills the head first, so a WRITE's
//! header and `fuse_write_in` end exactly at the head's end and its payload
//! starts at the first byte of a block. After a read, `RecvBuffer::split`
//! cuts the buffer into the message (shared slices) and the space after it
//! ([`Dest`], exclusive), where replies that need room (READ into worker
//! memory, READDIR, GETXATTR) are built.
//!
//! # Safety
//!
//! This is one of the two files of the runtime with `unsafe` code. The pool
//! hands out blocks as [`slabfuse_pool::Block`] handles; a buffer keeps them as raw
//! [`BlockIndex`]es (so that it does not borrow the pool it sits next to) and
//! turns an index back into a slice only here. The invariant that makes this
//! sound: **an index held by a `RecvBuffer` or a [`Dest`] was obtained with
//! `Block::into_raw` and is held by nothing else until it is given back with
//! `BlockPool::from_raw`**. So the memory of a held block is reachable only
//! through its holder, and a `&mut` to the holder is a `&mut` to the memory.

use heapless::Vec;
use rustix::io::{IoSlice, IoSliceMut};
use slabfuse_pool::{BlockIndex, BlockPool, Exhausted};

use crate::abi::WRITE_HEADER_BYTES;

/// Most blocks one message may span. With `readv`'s limit of 1024 iovecs
/// this could be 1023; 256 keeps per-worker and per-deferred-reply index
/// lists at 1 KiB and still allows 16 MiB messages with 64 KiB blocks.
pub const MAX_MESSAGE_BLOCKS: usize = 256;
/// Iovecs of one `readv`: the head plus the blocks.
pub const MAX_RECV_IOVECS: usize = MAX_MESSAGE_BLOCKS + 1;

/// The list of blocks a buffer or a deferred reply owns.
pub(crate) type BlockList = Vec<BlockIndex, MAX_MESSAGE_BLOCKS>;

/// The bytes of block `index`, mutably.
///
/// # Safety
///
/// The caller holds `index` in the sense of the module invariant (taken with
/// `into_raw`, held by nothing else) and, for the returned lifetime, makes no
/// other reference to the block.
#[allow(clippy::mut_from_ref)] // Uniqueness is this function's contract.
unsafe fn block_mut(pool: &BlockPool, index: BlockIndex) -> &mut [u8] {
    let ptr = pool.block_ptr(index).as_ptr();
    // SAFETY: `block_ptr` points at `block_size` bytes of the pool's mapping
    // that live as long as `pool`; by this function's contract nothing else
    // references them for `'s`, so a unique slice is sound.
    unsafe { core::slice::from_raw_parts_mut(ptr, pool.block_size()) }
}

/// The bytes of block `index`, shared.
///
/// # Safety
///
/// As [`block_mut`], except that other shared references may coexist.
unsafe fn block_ref(pool: &BlockPool, index: BlockIndex) -> &[u8] {
    let ptr = pool.block_ptr(index).as_ptr();
    // SAFETY: as in `block_mut`; no unique reference exists for `'s`.
    unsafe { core::slice::from_raw_parts(ptr, pool.block_size()) }
}

/// Takes `count` blocks from the pool as raw indices (all or none).
pub(crate) fn take_blocks(pool: &BlockPool, count: usize) -> Result<BlockList, Exhausted> {
    if count > MAX_MESSAGE_BLOCKS {
        return Err(Exhausted);
    }
    let reservation = pool.acquire_many(count)?;
    let mut list = BlockList::new();
    for block in reservation {
        // Cannot fail: `count <= MAX_MESSAGE_BLOCKS` was checked above.
        let _ = list.push(block.into_raw());
    }
    Ok(list)
}

/// Gives raw indices back to the pool.
///
/// # Safety
///
/// Every index in `list` is held by the caller (module invariant) and is
/// not used again.
pub(crate) unsafe fn return_blocks(pool: &BlockPool, list: &mut BlockList) {
    for index in list.drain(..) {
        // SAFETY: the caller holds `index` and gives it up here; `from_raw`
        // turns it back into the single handle that owns it, whose drop
        // returns it to the free list exactly once.
        drop(unsafe { pool.from_raw(index) });
    }
}

/// A worker's receive buffer: the head and its blocks.
pub(crate) struct RecvBuffer {
    /// Where the request header (and WRITE's `fuse_write_in`) lands.
    head: [u8; WRITE_HEADER_BYTES],
    /// Blocks held under the module invariant.
    blocks: BlockList,
}

impl RecvBuffer {
    /// A buffer of `count` blocks taken from `pool`.
    pub(crate) fn new(pool: &BlockPool, count: usize) -> Result<RecvBuffer, Exhausted> {
        Ok(RecvBuffer {
            head: [0; WRITE_HEADER_BYTES],
            blocks: take_blocks(pool, count)?,
        })
    }

    /// The iovecs for one `readv`: head, then every block.
    pub(crate) fn iovecs<'s>(
        &'s mut self,
        pool: &'s BlockPool,
        out: &mut Vec<IoSliceMut<'s>, MAX_RECV_IOVECS>,
    ) {
        out.clear();
        let _ = out.push(IoSliceMut::new(&mut self.head));
        for &index in self.blocks.iter() {
            // SAFETY: `self` holds `index` (module invariant) and is borrowed
            // mutably for `'s`; indices in the list are distinct, so each
            // slice is the only reference to its block.
            let block = unsafe { block_mut(pool, index) };
            let _ = out.push(IoSliceMut::new(block));
        }
    }

    /// Splits after a read of `received` bytes: the message as shared
    /// segments (pushed to `segments`) and the rest as a [`Dest`].
    pub(crate) fn split<'s>(
        &'s mut self,
        pool: &'s BlockPool,
        received: usize,
        segments: &mut Vec<&'s [u8], MAX_RECV_IOVECS>,
    ) -> Dest<'s> {
        segments.clear();
        let head_len = received.min(WRITE_HEADER_BYTES);
        let _ = segments.push(&self.head[..head_len]);
        let mut left = received - head_len;
        let block_size = pool.block_size();
        let blocks: &'s [BlockIndex] = &self.blocks;
        let mut first_free = 0;
        let mut tail: &'s mut [u8] = &mut [];
        for (i, &index) in blocks.iter().enumerate() {
            if left == 0 {
                first_free = i;
                break;
            }
            // SAFETY: held by `self` (module invariant), which is borrowed
            // mutably for `'s`; this is the only reference made to block `i`.
            let block = unsafe { block_mut(pool, index) };
            let used = left.min(block_size);
            let (msg, free) = block.split_at_mut(used);
            let _ = segments.push(msg);
            left -= used;
            tail = free;
            first_free = i + 1;
        }
        Dest {
            first: tail,
            blocks: &blocks[first_free..],
            pool,
        }
    }

    /// Fills the head and every block with `byte` (a diagnostic: see
    /// `Session::fill_unused_memory`).
    pub(crate) fn fill(&mut self, pool: &BlockPool, byte: u8) {
        self.head.fill(byte);
        for &index in self.blocks.iter() {
            // SAFETY: held by `self` (module invariant), which is borrowed
            // mutably; the slice is dropped before the next one is made.
            unsafe { block_mut(pool, index) }.fill(byte);
        }
    }

    /// Returns the blocks to the pool.
    pub(crate) fn release(mut self, pool: &BlockPool) {
        // SAFETY: the buffer holds its blocks and is consumed here.
        unsafe { return_blocks(pool, &mut self.blocks) };
    }
}

/// Room for a reply: the tail of the block where the request ended, then
/// whole blocks. Written front to back by a [`DestWriter`].
pub struct Dest<'s> {
    first: &'s mut [u8],
    blocks: &'s [BlockIndex],
    pool: &'s BlockPool,
}

impl<'s> Dest<'s> {
    /// A destination over blocks held by a deferred reply.
    pub(crate) fn over_blocks(pool: &'s BlockPool, blocks: &'s [BlockIndex]) -> Dest<'s> {
        Dest {
            first: &mut [],
            blocks,
            pool,
        }
    }

    /// Total bytes of room.
    pub fn capacity(&self) -> usize {
        self.first.len() + self.blocks.len() * self.pool.block_size()
    }

    /// Region `i` (0 = the tail, then the blocks), mutably.
    fn region_mut(&mut self, i: usize) -> Option<&mut [u8]> {
        if i == 0 {
            return Some(&mut *self.first);
        }
        let index = *self.blocks.get(i - 1)?;
        // SAFETY: the `Dest` was made from a holder of these indices (a
        // receive buffer or a deferred reply) borrowed mutably for `'s`;
        // `&mut self` makes this the only reference to the block now.
        Some(unsafe { block_mut(self.pool, index) })
    }

    /// The first `len` written bytes as iovecs (appended to `out`).
    fn written_iovecs<'x, const N: usize>(
        &'x self,
        len: usize,
        out: &mut Vec<IoSlice<'x>, N>,
    ) -> Result<(), ()> {
        let mut left = len;
        let take = left.min(self.first.len());
        if take > 0 {
            out.push(IoSlice::new(&self.first[..take]))
                .map_err(|_| ())?;
            left -= take;
        }
        for &index in self.blocks {
            if left == 0 {
                break;
            }
            // SAFETY: held as in `region_mut`; `&self` allows only shared
            // references for `'x`, and none is unique.
            let block = unsafe { block_ref(self.pool, index) };
            let take = left.min(block.len());
            out.push(IoSlice::new(&block[..take])).map_err(|_| ())?;
            left -= take;
        }
        Ok(())
    }
}

/// Writes a reply front to back into a [`Dest`], never past `limit`.
///
/// Only bytes written through this writer are ever sent: a reply can not
/// carry whatever an earlier request left in the blocks.
pub struct DestWriter<'d, 's> {
    dest: &'d mut Dest<'s>,
    region: usize,
    offset: usize,
    written: usize,
    limit: usize,
}

/// The writer is at its limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Full;

impl<'d, 's> DestWriter<'d, 's> {
    /// A writer over `dest` that stops at `limit` bytes (or capacity).
    pub(crate) fn new(dest: &'d mut Dest<'s>, limit: usize) -> DestWriter<'d, 's> {
        let limit = limit.min(dest.capacity());
        DestWriter {
            dest,
            region: 0,
            offset: 0,
            written: 0,
            limit,
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> usize {
        self.written
    }

    /// Bytes that may still be written.
    pub fn remaining(&self) -> usize {
        self.limit - self.written
    }

    /// Calls `f` with the next contiguous unwritten chunk (at most
    /// `remaining()` bytes) and advances by what `f` returns (clamped to
    /// the chunk). `f` must have written every byte it counts: the count is
    /// what is sent. Returns the bytes counted, 0 when full.
    pub fn fill_next(&mut self, f: impl FnOnce(&mut [u8]) -> usize) -> usize {
        let remaining = self.remaining();
        if remaining == 0 {
            return 0;
        }
        loop {
            let offset = self.offset;
            let Some(region) = self.dest.region_mut(self.region) else {
                return 0;
            };
            if offset >= region.len() {
                self.region += 1;
                self.offset = 0;
                continue;
            }
            let end = region.len().min(offset + remaining);
            let chunk = &mut region[offset..end];
            let n = f(chunk).min(end - offset);
            self.offset += n;
            self.written += n;
            return n;
        }
    }

    /// Appends `bytes`; all or nothing.
    pub fn put(&mut self, bytes: &[u8]) -> Result<(), Full> {
        if bytes.len() > self.remaining() {
            return Err(Full);
        }
        let mut rest = bytes;
        while !rest.is_empty() {
            let n = self.fill_next(|chunk| {
                let n = chunk.len().min(rest.len());
                chunk[..n].copy_from_slice(&rest[..n]);
                n
            });
            rest = &rest[n..];
        }
        Ok(())
    }

    /// Appends `count` zero bytes; all or nothing.
    pub fn put_zeros(&mut self, count: usize) -> Result<(), Full> {
        if count > self.remaining() {
            return Err(Full);
        }
        let mut left = count;
        while left > 0 {
            left -= self.fill_next(|chunk| {
                let n = chunk.len().min(left);
                chunk[..n].fill(0);
                n
            });
        }
        Ok(())
    }

    /// Appends as much of `bytes` as fits; returns how much.
    pub fn put_partial(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(self.remaining());
        // Cannot fail: `n <= remaining`.
        let _ = self.put(&bytes[..n]);
        n
    }
}

/// Appends the iovecs of the first `len` bytes of `dest` to `out`.
pub(crate) fn dest_iovecs<'x, const N: usize>(
    dest: &'x Dest<'_>,
    len: usize,
    out: &mut Vec<IoSlice<'x>, N>,
) -> Result<(), ()> {
    dest.written_iovecs(len, out)
}
