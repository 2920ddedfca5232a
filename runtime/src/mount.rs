//! Mounting and unmounting.
//!
//! With `CAP_SYS_ADMIN` (root, or an appliance's init) the runtime mounts
//! itself with `mount(2)`: it opens `/dev/fuse` and names the fd in the mount
//! data, as the kernel's `fuse_parse_param` expects. Without it, the `std`
//! feature runs `fusermount3`, which mounts for us and passes the fd back
//! over a unix socket (`SCM_RIGHTS`); [`mount`] tries `mount(2)` first and
//! falls back when it, or opening `/dev/fuse`, is refused, as libfuse does.
//!
//! [`MountpointGuard`] keeps two daemons from mounting the same directory:
//! it refuses a directory that already is a mount point and holds an
//! exclusive `flock` on it for the daemon's life, so two daemons racing for
//! it cannot both pass.

use alloc::ffi::CString;
use alloc::format;
use alloc::string::String;
use core::ffi::CStr;
use core::fmt;

use rustix::fd::OwnedFd;
use rustix::fs::{FlockOperation, Mode, OFlags};
use rustix::io::Errno;
use rustix::mount::{MountFlags, UnmountFlags};

/// Options users expect of a FUSE mount.
#[derive(Clone, Debug)]
pub struct MountOptions {
    /// The "device" shown in `/proc/mounts` and `df`.
    pub fsname: String,
    /// Filesystem subtype: the type shows as `fuse.<subtype>`.
    pub subtype: Option<String>,
    /// Let users other than the mounter access the mount.
    pub allow_other: bool,
    /// Let the kernel check permissions from the mode bits.
    pub default_permissions: bool,
    /// Mount read-only.
    pub read_only: bool,
    /// Cap READ requests (bytes); `None` leaves the kernel's default.
    pub max_read: Option<u32>,
    /// Allow set-user-id bits to take effect (off: `nosuid`).
    pub suid: bool,
    /// Allow device nodes to be opened (off: `nodev`).
    pub dev: bool,
    /// Forbid executing files (`noexec`).
    pub noexec: bool,
    /// Owner the kernel reports for the connection (`user_id=`).
    pub user_id: u32,
    /// Group the kernel reports for the connection (`group_id=`).
    pub group_id: u32,
}

impl Default for MountOptions {
    fn default() -> MountOptions {
        MountOptions {
            fsname: String::from("slabfuse"),
            subtype: None,
            allow_other: false,
            default_permissions: true,
            read_only: false,
            max_read: None,
            suid: false,
            dev: false,
            noexec: false,
            user_id: rustix::process::geteuid().as_raw(),
            group_id: rustix::process::getegid().as_raw(),
        }
    }
}

impl MountOptions {
    /// The filesystem type string: `fuse` or `fuse.<subtype>`.
    pub fn fs_type(&self) -> String {
        match &self.subtype {
            Some(s) => format!("fuse.{s}"),
            None => String::from("fuse"),
        }
    }

    /// The `-o` options in fusermount3's syntax (also what `/proc/mounts`
    /// shows of them).
    pub fn fusermount_options(&self) -> String {
        let mut o = format!("fsname={}", escape_option(&self.fsname));
        if let Some(s) = &self.subtype {
            o.push_str(&format!(",subtype={}", escape_option(s)));
        }
        for (on, name) in [
            (self.allow_other, "allow_other"),
            (self.default_permissions, "default_permissions"),
            (self.read_only, "ro"),
            (!self.suid, "nosuid"),
            (!self.dev, "nodev"),
            (self.noexec, "noexec"),
        ] {
            if on {
                o.push(',');
                o.push_str(name);
            }
        }
        if let Some(m) = self.max_read {
            o.push_str(&format!(",max_read={m}"));
        }
        o
    }

    fn flags(&self) -> MountFlags {
        let mut f = MountFlags::empty();
        if self.read_only {
            f |= MountFlags::RDONLY;
        }
        if !self.suid {
            f |= MountFlags::NOSUID;
        }
        if !self.dev {
            f |= MountFlags::NODEV;
        }
        if self.noexec {
            f |= MountFlags::NOEXEC;
        }
        f
    }

    /// The data string `mount(2)` passes to the fuse filesystem.
    fn kernel_data(&self, fd: i32, root_mode: u32) -> String {
        let mut d = format!(
            "fd={fd},rootmode={root_mode:o},user_id={},group_id={}",
            self.user_id, self.group_id
        );
        if self.default_permissions {
            d.push_str(",default_permissions");
        }
        if self.allow_other {
            d.push_str(",allow_other");
        }
        if let Some(m) = self.max_read {
            d.push_str(&format!(",max_read={m}"));
        }
        d
    }
}

/// Commas separate options: one inside a value is escaped as fusermount3
/// expects (`\,`).
fn escape_option(s: &str) -> String {
    s.replace('\\', "\\\\").replace(',', "\\,")
}

/// Why mounting failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MountError {
    /// The mount point does not exist or is not a directory.
    NotADirectory(Errno),
    /// Already a mount point (another filesystem is mounted there).
    AlreadyMounted,
    /// Another daemon holds the mount point.
    Busy,
    /// Opening `/dev/fuse` failed.
    OpenDevice(Errno),
    /// `mount(2)` failed.
    Mount(Errno),
    /// A path or option contained a NUL byte.
    InvalidString,
    /// `fusermount3` could not be run or failed.
    Fusermount(String),
}

impl fmt::Display for MountError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MountError::NotADirectory(e) => {
                write!(f, "mount point is not an existing directory ({e})")
            }
            MountError::AlreadyMounted => write!(
                f,
                "mount point is busy: something is already mounted there (unmount it first)"
            ),
            MountError::Busy => write!(
                f,
                "mount point is busy: another daemon is mounting or serving it"
            ),
            MountError::OpenDevice(e) => write!(
                f,
                "cannot open /dev/fuse ({e}): is the fuse module loaded and /dev/fuse present?"
            ),
            MountError::Mount(e) => write!(f, "mount(2) failed ({e})"),
            MountError::InvalidString => write!(f, "a path or option contains a NUL byte"),
            MountError::Fusermount(s) => write!(f, "fusermount3: {s}"),
        }
    }
}

impl core::error::Error for MountError {}

/// A claim on a mount point: see the module doc. Keep it for as long as the
/// filesystem is mounted.
#[derive(Debug)]
pub struct MountpointGuard {
    _dir: OwnedFd,
}

impl MountpointGuard {
    /// Checks that `path` is a directory that nothing is mounted on and that
    /// no other daemon holds, and holds it.
    pub fn claim(path: &CStr) -> Result<MountpointGuard, MountError> {
        let dir = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(MountError::NotADirectory)?;
        match rustix::fs::flock(&dir, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(Errno::WOULDBLOCK) => return Err(MountError::Busy),
            Err(e) => return Err(MountError::Mount(e)),
        }
        let here = rustix::fs::fstat(&dir).map_err(MountError::NotADirectory)?;
        let parent = rustix::fs::statat(&dir, c"..", rustix::fs::AtFlags::empty())
            .map_err(MountError::NotADirectory)?;
        // A mount point's root sits on another device than its parent (or
        // is its own parent, for `/`).
        if here.st_dev != parent.st_dev || here.st_ino == parent.st_ino {
            return Err(MountError::AlreadyMounted);
        }
        Ok(MountpointGuard { _dir: dir })
    }
}

/// Mounts with `mount(2)` (needs `CAP_SYS_ADMIN`); returns the device fd.
pub fn mount_syscall(mountpoint: &CStr, options: &MountOptions) -> Result<OwnedFd, MountError> {
    let dev = rustix::fs::open(c"/dev/fuse", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
        .map_err(MountError::OpenDevice)?;
    let root_mode = crate::types::mode::S_IFDIR;
    let data = options.kernel_data(rustix::fd::AsRawFd::as_raw_fd(&dev), root_mode);
    let data = CString::new(data).map_err(|_| MountError::InvalidString)?;
    let source = CString::new(options.fsname.as_str()).map_err(|_| MountError::InvalidString)?;
    let fstype = CString::new(options.fs_type()).map_err(|_| MountError::InvalidString)?;
    rustix::mount::mount(
        source.as_c_str(),
        mountpoint,
        fstype.as_c_str(),
        options.flags(),
        data.as_c_str(),
    )
    .map_err(MountError::Mount)?;
    Ok(dev)
}

/// How the filesystem was mounted, which decides how it is unmounted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MountMethod {
    /// `mount(2)`; unmount with `umount2`.
    Syscall,
    /// `fusermount3`; unmount with `fusermount3 -u`.
    Fusermount,
}

/// Mounts with `mount(2)`, or through `fusermount3` when that is refused
/// for lack of privilege (`std` feature).
pub fn mount(
    mountpoint: &CStr,
    options: &MountOptions,
) -> Result<(OwnedFd, MountMethod), MountError> {
    match mount_syscall(mountpoint, options) {
        Ok(fd) => Ok((fd, MountMethod::Syscall)),
        // Not privileged enough to mount, or to open /dev/fuse (some
        // systems keep it 0600): fusermount3 is setuid root and can.
        #[cfg(feature = "std")]
        Err(
            MountError::Mount(Errno::PERM) | MountError::OpenDevice(Errno::ACCESS | Errno::PERM),
        ) => {
            let path = std::path::Path::new(
                <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(
                    mountpoint.to_bytes(),
                ),
            );
            Ok((fusermount::mount(path, options)?, MountMethod::Fusermount))
        }
        Err(e) => Err(e),
    }
}

/// Unmounts. `lazy` detaches even while files are open (the filesystem
/// then goes away when the last one is closed).
pub fn unmount(mountpoint: &CStr, method: MountMethod, lazy: bool) -> Result<(), MountError> {
    match method {
        MountMethod::Syscall => {
            let flags = if lazy {
                UnmountFlags::DETACH
            } else {
                UnmountFlags::empty()
            };
            rustix::mount::unmount(mountpoint, flags).map_err(MountError::Mount)
        }
        #[cfg(feature = "std")]
        MountMethod::Fusermount => {
            let path = std::path::Path::new(
                <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(
                    mountpoint.to_bytes(),
                ),
            );
            fusermount::unmount(path, lazy)
        }
        #[cfg(not(feature = "std"))]
        MountMethod::Fusermount => Err(MountError::Fusermount(String::from(
            "fusermount3 needs the std feature",
        ))),
    }
}

#[cfg(feature = "std")]
mod fusermount {
    //! The unprivileged path: `fusermount3` mounts and hands the fd back.

    extern crate std;

    use alloc::format;
    use alloc::string::{String, ToString};
    use core::mem::MaybeUninit;
    use std::os::fd::AsRawFd;
    use std::path::Path;
    use std::process::Command;

    use rustix::fd::OwnedFd;
    use rustix::io::IoSliceMut;
    use rustix::net::{
        AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SocketFlags,
        SocketType,
    };

    use super::{MountError, MountOptions};

    /// Runs `fusermount3 -o OPTS -- MOUNTPOINT` with `_FUSE_COMMFD` set and
    /// receives the `/dev/fuse` fd it sends.
    pub(super) fn mount(mountpoint: &Path, options: &MountOptions) -> Result<OwnedFd, MountError> {
        let (ours, theirs) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::empty(),
            None,
        )
        .map_err(|e| MountError::Fusermount(format!("socketpair: {e}")))?;
        rustix::io::fcntl_setfd(&ours, rustix::io::FdFlags::CLOEXEC)
            .map_err(|e| MountError::Fusermount(format!("fcntl: {e}")))?;
        let mut child = Command::new("fusermount3")
            .arg("-o")
            .arg(options.fusermount_options())
            .arg("--")
            .arg(mountpoint)
            .env("_FUSE_COMMFD", theirs.as_raw_fd().to_string())
            .spawn()
            .map_err(|e| MountError::Fusermount(format!("cannot run fusermount3: {e}")))?;
        drop(theirs);
        let mut byte = [0u8; 1];
        let mut iov = [IoSliceMut::new(&mut byte)];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let received = rustix::net::recvmsg(&ours, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC);
        let mut fd = None;
        if received.is_ok() {
            for msg in control.drain() {
                if let RecvAncillaryMessage::ScmRights(mut fds) = msg {
                    fd = fds.next();
                }
            }
        }
        let status = child
            .wait()
            .map_err(|e| MountError::Fusermount(format!("waiting for fusermount3: {e}")))?;
        match (fd, status.success()) {
            (Some(fd), true) => Ok(fd),
            (_, false) => Err(MountError::Fusermount(format!("exited with {status}"))),
            (None, true) => Err(MountError::Fusermount(String::from(
                "it exited without passing the /dev/fuse fd",
            ))),
        }
    }

    /// `fusermount3 -u [-z] MOUNTPOINT`.
    pub(super) fn unmount(mountpoint: &Path, lazy: bool) -> Result<(), MountError> {
        let mut cmd = Command::new("fusermount3");
        cmd.arg("-u");
        if lazy {
            cmd.arg("-z");
        }
        let status = cmd
            .arg("--")
            .arg(mountpoint)
            .status()
            .map_err(|e| MountError::Fusermount(format!("cannot run fusermount3: {e}")))?;
        if status.success() {
            Ok(())
        } else {
            Err(MountError::Fusermount(format!("-u exited with {status}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_render_as_fusermount_and_kernel_expect() {
        let o = MountOptions {
            fsname: String::from("mem,fs"),
            subtype: Some(String::from("slabfuse-memfs")),
            allow_other: true,
            read_only: true,
            max_read: Some(131072),
            user_id: 0,
            group_id: 0,
            ..MountOptions::default()
        };
        assert_eq!(o.fs_type(), "fuse.slabfuse-memfs");
        assert_eq!(
            o.fusermount_options(),
            "fsname=mem\\,fs,subtype=slabfuse-memfs,allow_other,default_permissions,ro,nosuid,\
             nodev,max_read=131072"
        );
        assert_eq!(
            o.kernel_data(5, 0o40000),
            "fd=5,rootmode=40000,user_id=0,group_id=0,default_permissions,allow_other,\
             max_read=131072"
        );
        assert!(o.flags().contains(MountFlags::RDONLY | MountFlags::NOSUID));
    }
}
