//! The transport to the kernel: a trait, and `/dev/fuse` behind it.
//!
//! Workers talk to the kernel only through [`Channel`]: one `readv` per
//! request, one `writev` per reply. [`DevFuse`] is the real device; the test
//! crate has a simulated kernel over a `SOCK_SEQPACKET` socket pair and a
//! fault-injecting wrapper, both implementing the same trait, so every path
//! the daemon takes can be driven without a mount.
//!
//! What the kernel's errors mean here (from `fs/fuse/dev.c`): on receive,
//! `ENODEV` = the filesystem was unmounted or the connection aborted (the
//! worker ends cleanly), `EINTR`/`EAGAIN` = try again; on send, `ENOENT` =
//! the request is gone (interrupted or aborted), which is not an error.
//!
//! # Safety
//!
//! One `unsafe` call: the `FUSE_DEV_IOC_CLONE` ioctl, whose argument is a
//! pointer to a `u32` that the kernel only reads.

use alloc::boxed::Box;

use rustix::fd::{AsFd, BorrowedFd, OwnedFd};
use rustix::io::{Errno, IoSlice, IoSliceMut};

use crate::abi;

/// One connection to the kernel, as a worker sees it.
pub trait Channel: Send + Sync {
    /// Reads one whole message into `bufs` (one `readv`); returns its length.
    fn receive(&self, bufs: &mut [IoSliceMut<'_>]) -> Result<usize, Errno>;

    /// Writes one whole reply from `bufs` (one `writev`); returns the bytes
    /// written.
    fn send(&self, bufs: &[IoSlice<'_>]) -> Result<usize, Errno>;

    /// Another channel to the same connection, for another worker. Replies
    /// must go out on the channel their request came in on.
    fn clone_channel(&self) -> Result<Box<dyn Channel>, Errno>;

    /// Switches this channel to polled reads: afterwards
    /// [`try_receive`](Self::try_receive) returns `EAGAIN` at once when no
    /// message waits, and [`wait_readable`](Self::wait_readable) sleeps
    /// until one does. Channels that cannot do this say `Err(NOTSUP)` and
    /// are served with blocking reads.
    fn enable_polling(&self) -> Result<(), Errno> {
        Err(Errno::NOTSUP)
    }

    /// A read that does not block once polling is enabled (see
    /// [`enable_polling`](Self::enable_polling)); otherwise [`receive`](Self::receive).
    fn try_receive(&self, bufs: &mut [IoSliceMut<'_>]) -> Result<usize, Errno> {
        self.receive(bufs)
    }

    /// Sleeps until a message is waiting (polling channels only).
    fn wait_readable(&self) -> Result<(), Errno> {
        Ok(())
    }
}

/// The real `/dev/fuse` device of a mounted filesystem.
#[derive(Debug)]
pub struct DevFuse {
    fd: OwnedFd,
    /// `O_NONBLOCK` is set: reads return `EAGAIN` instead of sleeping.
    polling: core::sync::atomic::AtomicBool,
}

impl DevFuse {
    /// Wraps the fd a mount returned.
    pub fn new(fd: OwnedFd) -> DevFuse {
        DevFuse {
            fd,
            polling: core::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The device fd.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Opens a new `/dev/fuse` fd and attaches it to this connection with
    /// `FUSE_DEV_IOC_CLONE`, so that a worker reads its own queue of
    /// replies-in-progress and does not contend on one fd.
    pub fn clone_fd(&self) -> Result<DevFuse, Errno> {
        use rustix::fs::{Mode, OFlags};
        let fd = rustix::fs::open(c"/dev/fuse", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())?;
        let session_fd =
            u32::try_from(rustix::fd::AsRawFd::as_raw_fd(&self.fd)).map_err(|_| Errno::BADF)?;
        type Clone = rustix::ioctl::Setter<
            {
                rustix::ioctl::opcode::read::<u32>(
                    abi::FUSE_DEV_IOC_MAGIC,
                    abi::FUSE_DEV_IOC_CLONE_NR,
                )
            },
            u32,
        >;
        // SAFETY: FUSE_DEV_IOC_CLONE's argument is a pointer to a u32 that
        // the kernel only reads, which is what a `Setter<_, u32>` passes.
        let clone = unsafe { Clone::new(session_fd) };
        // SAFETY: the ioctl reads one u32 (the session fd) through the
        // pointer rustix passes, writes nothing back and keeps no reference.
        unsafe { rustix::ioctl::ioctl(&fd, clone) }?;
        Ok(DevFuse::new(fd))
    }
}

impl Channel for DevFuse {
    fn receive(&self, bufs: &mut [IoSliceMut<'_>]) -> Result<usize, Errno> {
        loop {
            match rustix::io::readv(&self.fd, bufs) {
                Err(Errno::AGAIN) if self.polling.load(core::sync::atomic::Ordering::Relaxed) => {
                    self.wait_readable()?;
                }
                other => return other,
            }
        }
    }

    fn enable_polling(&self) -> Result<(), Errno> {
        use rustix::fs::OFlags;
        let flags = rustix::fs::fcntl_getfl(&self.fd)?;
        rustix::fs::fcntl_setfl(&self.fd, flags | OFlags::NONBLOCK)?;
        // Relaxed: only the worker that owns this channel reads the flag.
        self.polling
            .store(true, core::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    fn try_receive(&self, bufs: &mut [IoSliceMut<'_>]) -> Result<usize, Errno> {
        rustix::io::readv(&self.fd, bufs)
    }

    fn wait_readable(&self) -> Result<(), Errno> {
        use rustix::event::{PollFd, PollFlags};
        let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
        match rustix::event::poll(&mut fds, None) {
            Ok(_) | Err(Errno::INTR) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn send(&self, bufs: &[IoSlice<'_>]) -> Result<usize, Errno> {
        rustix::io::writev(&self.fd, bufs)
    }

    fn clone_channel(&self) -> Result<Box<dyn Channel>, Errno> {
        Ok(Box::new(self.clone_fd()?))
    }
}
