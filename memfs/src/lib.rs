//! slabfuse-memfs: a fixed-budget in-memory filesystem (skeleton: the
//! constructor API is fixed; the filesystem itself is being written).
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

use core::fmt;

use slabfuse::Filesystem;
use slabfuse::pool::{Backing, BackingRequest, LockStatus, SlabError};

/// What memfs is built with: the budget, fixed at start-up.
#[derive(Clone, Copy, Debug)]
pub struct MemFsConfig {
    /// Bytes of file data (and xattr values, long symlink targets) it may hold.
    pub size_bytes: u64,
    /// Inodes (files, directories, symlinks, …) it may hold, root included.
    pub inodes: u32,
    /// Backing for the data slab.
    pub backing: BackingRequest,
    /// Lock the data slab in memory.
    pub lock: bool,
    /// Root directory's permission bits (`mode=`).
    pub root_mode: u32,
    /// Root directory's owner (`uid=`).
    pub root_uid: u32,
    /// Root directory's group (`gid=`).
    pub root_gid: u32,
}

impl Default for MemFsConfig {
    fn default() -> MemFsConfig {
        MemFsConfig {
            size_bytes: 64 << 20,
            inodes: 65536,
            backing: BackingRequest::Auto,
            lock: true,
            root_mode: 0o1777,
            root_uid: 0,
            root_gid: 0,
        }
    }
}

/// What memfs laid out at start-up: printed in the daemon's plan line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoragePlan {
    /// Data budget, bytes.
    pub data_bytes: u64,
    /// Inode table capacity.
    pub inodes: u32,
    /// Bytes mapped or allocated for storage and metadata, in total.
    pub mapped_bytes: u64,
    /// Backing of the data slab.
    pub backing: Backing,
    /// Whether the data slab is locked.
    pub lock: LockStatus,
}

/// Why memfs could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemFsError {
    /// The budget is unusable (too small or too large).
    Budget,
    /// Mapping the data slab failed.
    Slab(SlabError),
}

impl fmt::Display for MemFsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MemFsError::Budget => write!(f, "unusable storage budget"),
            MemFsError::Slab(e) => write!(f, "data slab: {e}"),
        }
    }
}

impl core::error::Error for MemFsError {}

/// The filesystem.
pub struct MemFs {
    plan: StoragePlan,
}

impl MemFs {
    /// Lays out all storage for `config`.
    pub fn new(config: &MemFsConfig) -> Result<MemFs, MemFsError> {
        Ok(MemFs {
            plan: StoragePlan {
                data_bytes: config.size_bytes,
                inodes: config.inodes,
                mapped_bytes: 0,
                backing: Backing::Normal,
                lock: LockStatus::NotRequested,
            },
        })
    }

    /// What was laid out.
    pub fn storage_plan(&self) -> StoragePlan {
        self.plan
    }
}

impl Filesystem for MemFs {}
