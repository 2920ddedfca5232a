//! The mount point: resolved, checked and held for the daemon's life.
//!
//! [`claim`] refuses, with a message that says which, a mount point that
//! does not exist, is not a directory, already has something mounted on it,
//! or is held by another daemon (the runtime's `MountpointGuard`, an
//! exclusive `flock`). "Already mounted" is decided from
//! `/proc/self/mountinfo` before the directory is touched at all, so a
//! mount point with a hung or half-written FUSE filesystem on it gives a
//! clear error instead of a hang or that filesystem's errno; it is checked
//! again after the claim, which closes the race with a second daemon that
//! mounts between our check and our `flock`.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use slabfuse::mount::{MountError, MountpointGuard};

use crate::Failure;

/// A claimed mount point.
#[derive(Debug)]
pub(crate) struct Mountpoint {
    /// Canonical absolute path (no symlinks): what `/proc/mounts` shows and
    /// what unmounting names.
    pub(crate) path: PathBuf,
    /// The same, for system calls.
    pub(crate) c_path: CString,
    /// Held until the daemon exits.
    _claim: MountpointGuard,
}

/// Resolves `path`, checks it and holds it. Errors are exit code 1.
pub(crate) fn claim(path: &Path) -> Result<Mountpoint, Failure> {
    let fail =
        |p: &Path, why: &dyn std::fmt::Display| Failure::Runtime(format!("{}: {why}", p.display()));
    let already = MountError::AlreadyMounted;
    if is_mount_point(path) {
        return Err(fail(path, &already));
    }
    let canonical = std::fs::canonicalize(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => fail(path, &"mount point does not exist"),
        _ => fail(path, &format_args!("cannot resolve the mount point: {e}")),
    })?;
    if is_mount_point(&canonical) {
        return Err(fail(&canonical, &already));
    }
    match std::fs::metadata(&canonical) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(fail(&canonical, &"mount point is not a directory")),
        Err(e) => {
            return Err(fail(
                &canonical,
                &format_args!("cannot stat the mount point: {e}"),
            ));
        }
    }
    let c_path = CString::new(canonical.as_os_str().as_bytes())
        .map_err(|_| fail(&canonical, &"the path contains a NUL byte"))?;
    let guard = MountpointGuard::claim(&c_path).map_err(|e| {
        if is_mount_point(&canonical) {
            fail(&canonical, &already)
        } else {
            fail(&canonical, &e)
        }
    })?;
    if is_mount_point(&canonical) {
        return Err(fail(&canonical, &already));
    }
    Ok(Mountpoint {
        path: canonical,
        c_path,
        _claim: guard,
    })
}

/// Whether something is mounted on `path` (exactly; no resolution), per
/// `/proc/self/mountinfo`.
pub(crate) fn is_mount_point(path: &Path) -> bool {
    let Ok(info) = std::fs::read("/proc/self/mountinfo") else {
        return false;
    };
    let want = path.as_os_str().as_bytes();
    info.split(|&b| b == b'\n')
        .filter_map(|line| line.split(|&b| b == b' ').nth(4))
        .any(|field| unescape(field) == want)
}

/// Undoes mountinfo's octal escapes (`\040` for a space, and so on).
fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\'
            && let Some(octal) = field.get(i + 1..i + 4)
            && octal.iter().all(|d| (b'0'..=b'7').contains(d))
        {
            let value = octal
                .iter()
                .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
            if let Ok(byte) = u8::try_from(value) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(field[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape(br"/a\040b\011c\134d"), b"/a b\tc\\d");
        assert_eq!(unescape(br"/plain"), b"/plain");
        assert_eq!(unescape(br"/trailing\04"), br"/trailing\04");
    }

    #[test]
    fn the_root_is_a_mount_point_and_a_fresh_directory_is_not() {
        assert!(is_mount_point(Path::new("/")));
        let dir = std::env::temp_dir().join(format!("memfs-mp-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(!is_mount_point(&dir));
        let _ = std::fs::remove_dir(&dir);
    }
}
