//! Byte views of data chunks: the only `unsafe` in memfs.
//!
//! # Safety
//!
//! Chunks are blocks of the data slab's [`BlockPool`]. At start-up
//! `Storage::new` takes every block of the pool and turns each into a bare
//! index ([`Block::into_raw`](slabfuse_pool::Block::into_raw)), never to
//! give it back while the pool lives: so the pool hands no block to anyone
//! else, and memfs holds all of them, which is the condition under which
//! [`BlockPool::block_ptr`] may be dereferenced. Among memfs's objects, the
//! chunk allocator (`bitmap.rs`) decides who holds which. The functions
//! here turn a chunk index back into bytes. They are sound because of this
//! invariant, which the parent module (`store`) keeps and which nothing
//! outside it can break (the [`Content`] fields, the bitmap and the node
//! pool are private to it):
//!
//! 1. *One owner.* A chunk is claimed in the bitmap by a `fetch_or` that
//!    finds its bit clear, which only one thread can (`Bitmap::claim`);
//!    the claimer stores the index in exactly one [`Content`]'s chunk map,
//!    once, and nothing else holds it until that `Content` removes it from
//!    its map and clears the bit (once, `Storage::release_chunk`), after
//!    which it keeps no slice of it. `Content` is neither `Clone` nor
//!    `Copy`, so ownership cannot be duplicated.
//! 2. *Borrow = access.* Bytes of a chunk are read only through
//!    [`chunks`], which takes `&Content` of the owner, and written only
//!    through [`chunk_mut`], which takes `&mut Content` of the owner, for
//!    the lifetime of the returned slice. So while a shared slice lives, no
//!    `&mut Content` of its owner exists, hence no writer and no release of
//!    those chunks; while a mutable slice lives, its owner is mutably
//!    borrowed, hence no other slice of that chunk exists. The callers hold
//!    the owning inode's read lock (for `&Content`) or write lock (for
//!    `&mut Content`), which is how these borrows arise across threads;
//!    a data reply is sent while the read guard lives. The bitmap's
//!    `fetch_or` and `fetch_and` are `AcqRel`, so a chunk's last owner's
//!    writes happen before its next owner's.
//! 3. *Valid memory.* The pool outlives every slice (the slices borrow it),
//!    block `i` starts `i * CHUNK_BYTES` after block 0 in one mapping
//!    ([`Slab::as_ptr`](slabfuse_pool::Slab::as_ptr)), and its bytes are
//!    initialized (zero-filled by the kernel, only ever written as bytes).

use slabfuse_pool::{BlockIndex, BlockPool};

use super::{CHUNK_BYTES, Content};

/// The bytes of `count` chunks that are consecutive in the slab, from
/// block `first`: one slice, for one iovec of a data reply.
///
/// The caller (in `store`) passes blocks that `owner`'s chunk map holds
/// (invariant 1); `count >= 1`.
pub(super) fn chunks<'a>(
    pool: &'a BlockPool,
    owner: &'a Content,
    first: u32,
    count: usize,
) -> &'a [u8] {
    let _ = owner;
    assert!(count >= 1 && first as usize + count <= pool.blocks_total());
    let ptr = pool.block_ptr(BlockIndex::new(first));
    // SAFETY: blocks `first..first + count` are valid indices (asserted), so
    // the range lies inside the slab's blocks area, one live mapping that
    // `pool` owns and that outlives 'a (invariant 3); its bytes are
    // initialized. `owner` owns every one of these blocks (invariant 1) and
    // is shared-borrowed for 'a, so no `&mut` slice of them exists or can be
    // made for 'a and none is released (invariant 2).
    unsafe { core::slice::from_raw_parts(ptr.as_ptr(), count * CHUNK_BYTES) }
}

/// The bytes of chunk `block`, writable. The caller (in `store`) passes a
/// block that `owner`'s chunk map holds, or one it has just claimed in the
/// bitmap and is about to store there (invariant 1).
pub(super) fn chunk_mut<'a>(
    pool: &'a BlockPool,
    owner: &'a mut Content,
    block: u32,
) -> &'a mut [u8] {
    let _ = owner;
    let ptr = pool.block_ptr(BlockIndex::new(block));
    // SAFETY: `block_ptr` checked the index, so the chunk lies inside the
    // slab's live mapping, which outlives 'a (invariant 3). Its one owner is
    // exclusively borrowed for 'a, so no other slice of it exists or can be
    // made for 'a (invariant 2).
    unsafe { core::slice::from_raw_parts_mut(ptr.as_ptr(), CHUNK_BYTES) }
}
