//! Why an operation failed, inside memfs: a small `Copy` enum, turned into
//! an errno in exactly one place ([`Error::errno`]) when the reply is sent.

use rustix::io::Errno;

/// A failed operation, named after the errno tmpfs gives for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Error {
    /// No such name, or a node the kernel should not know any more.
    NoEnt,
    /// The name exists.
    Exist,
    /// Not a directory where one is needed.
    NotDir,
    /// A directory where none is allowed.
    IsDir,
    /// The directory is not empty.
    NotEmpty,
    /// The data budget, the inode table or a metadata arena is full.
    NoSpace,
    /// Invalid argument.
    Inval,
    /// No such extended attribute.
    NoData,
    /// Operation not supported (fallocate modes, xattr namespaces).
    NotSupported,
    /// Past the end of file for `SEEK_DATA` / `SEEK_HOLE`.
    Nxio,
    /// Operation not permitted.
    Perm,
    /// Permission denied (only [`access`](slabfuse::Filesystem::access)).
    Access,
    /// A size beyond the largest file.
    FileTooBig,
    /// An extended attribute list beyond what one reply may carry.
    TooBig,
}

impl Error {
    /// The errno the kernel (and the caller) gets.
    pub(crate) fn errno(self) -> Errno {
        match self {
            Error::NoEnt => Errno::NOENT,
            Error::Exist => Errno::EXIST,
            Error::NotDir => Errno::NOTDIR,
            Error::IsDir => Errno::ISDIR,
            Error::NotEmpty => Errno::NOTEMPTY,
            Error::NoSpace => Errno::NOSPC,
            Error::Inval => Errno::INVAL,
            Error::NoData => Errno::NODATA,
            Error::NotSupported => Errno::OPNOTSUPP,
            Error::Nxio => Errno::NXIO,
            Error::Perm => Errno::PERM,
            Error::Access => Errno::ACCESS,
            Error::FileTooBig => Errno::FBIG,
            Error::TooBig => Errno::TOOBIG,
        }
    }
}

/// Results inside memfs.
pub(crate) type Result<T> = core::result::Result<T, Error>;
