//! slabfuse: the FUSE runtime (placeholder, being written).
#![no_std]
