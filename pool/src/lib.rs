//! slabfuse-pool: the slab and the block pool (placeholder, being written).
#![no_std]
