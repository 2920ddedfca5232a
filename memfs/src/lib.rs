//! slabfuse-memfs: the fixed-budget in-memory filesystem (placeholder, being written).
#![no_std]
