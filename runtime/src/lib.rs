//! slabfuse: a `no_std` FUSE runtime for Linux that allocates at start-up
//! and never again.
//!
//! At start-up the runtime computes a memory plan ([`plan`]), maps one slab
//! of huge-page-backed blocks (`slabfuse-pool`) and gives every worker its
//! receive buffer. While serving, a worker reads each request with one
//! `readv` into its blocks, parses it in place, hands the filesystem its
//! arguments as borrowed slices and writes the answer with one `writev`.
//! A request that needs memory the plan did not give it (a deferred reply
//! when the pool is empty) is answered `EAGAIN`: nothing is allocated,
//! nothing waits.
//!
//! The layers, top down, and what each guarantees:
//!
//! - [`fs`] — the [`Filesystem`] trait: one method per operation, a typed
//!   reply object per request that must be consumed exactly once.
//! - [`reply`] — answers: the header and fixed struct from the stack, data
//!   either straight from the filesystem's memory ([`DataParts`]) or from
//!   the worker's blocks; deferral with `EAGAIN` on exhaustion.
//! - [`session`] — start-up ([`Session::new`]) and the worker loop
//!   ([`Worker::run`]): dispatch, INIT ([`init`]), INTERRUPT, counters
//!   ([`stats`]).
//! - [`parse`] / [`op`] — bytes to [`op::Operation`]: never panics, never
//!   reads out of bounds, never allocates; malformed input is a
//!   [`parse::Malformed`] value that becomes an errno.
//! - [`abi`] — the kernel ABI at protocol 7.45, each struct size-checked.
//! - [`channel`] — the transport: `/dev/fuse` behind a trait, so a simulated
//!   kernel and a fault injector can stand in for it.
//! - [`buffer`] — receive buffers and reply room made of pool blocks (one of
//!   two files with `unsafe`, each block of it with its proof).
//! - [`mount`] — `mount(2)` or `fusermount3`, and unmount.
//!
//! Allocation happens in [`Session::new`] and [`Session::workers`] only.

#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod abi;
pub mod buffer;
pub mod channel;
pub mod fs;
pub mod init;
mod log;
pub mod mount;
pub mod op;
pub mod parse;
pub mod plan;
pub mod reply;
pub mod session;
pub mod stats;
pub mod types;

pub use channel::{Channel, DevFuse};
pub use fs::{ConnInfo, Filesystem};
pub use plan::{Config, Plan};
pub use reply::{
    DataParts, Replied, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus,
    ReplyEmpty, ReplyEntry, ReplyLseek, ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr,
};
pub use rustix::io::Errno;
pub use session::{Session, SessionError, Worker, WorkerExit};
pub use slabfuse_pool as pool;
pub use stats::Stats;
pub use types::{Attr, Entry, FileHandle, FileType, NodeId, Request, RequestId, Statfs, Timestamp};
