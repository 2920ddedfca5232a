//! POSIX ACLs, as tmpfs keeps them, on FUSE's terms.
//!
//! With `FUSE_POSIX_ACL` the kernel parses, validates, caches and enforces
//! ACLs; what it leaves to the filesystem (`fs/fuse/acl.c`) is what tmpfs
//! does in `simple_set_acl` and `simple_acl_create`:
//!
//! - storing them, as the xattrs `system.posix_acl_access` and
//!   `system.posix_acl_default` in the kernel's xattr format (the kernel
//!   sends and reads exactly that);
//! - keeping the mode in step: setting an access ACL sets the permission
//!   bits from it, and one that says no more than the mode is not stored
//!   at all ([`equiv_mode`]); a chmod rewrites the ACL's owner, mask (or
//!   group) and other entries ([`chmod`]);
//! - inheritance: a node made in a directory with a default ACL gets that
//!   ACL masked by the mode it was made with as its access ACL, and a
//!   directory gets the default ACL too ([`create_masq`]); the umask is
//!   then ignored, and applied by memfs otherwise (`FUSE_DONT_MASK`).
//!
//! The format: a little-endian `u32` version (2), then entries of
//! `(tag: u16, perm: u16, id: u32)`, sorted by tag as the kernel wrote
//! them. An ACL is handled in a stack buffer of at most [`MAX_BYTES`] (511
//! entries); a larger one is refused with `E2BIG` when it is set.

use crate::error::{Error, Result};

/// The access ACL's xattr name.
pub(crate) const ACCESS: &[u8] = b"system.posix_acl_access";
/// The default ACL's xattr name (directories only; the kernel checks).
pub(crate) const DEFAULT: &[u8] = b"system.posix_acl_default";

const VERSION: u32 = 2;
const HEADER_BYTES: usize = 4;
const ENTRY_BYTES: usize = 8;
/// The largest ACL memfs keeps: header and 511 entries.
pub(crate) const MAX_BYTES: usize = HEADER_BYTES + 511 * ENTRY_BYTES;

const USER_OBJ: u16 = 0x01;
const USER: u16 = 0x02;
const GROUP_OBJ: u16 = 0x04;
const GROUP: u16 = 0x08;
const MASK: u16 = 0x10;
const OTHER: u16 = 0x20;

const S_IRWXUGO: u32 = 0o777;

/// An ACL in the kernel's xattr format, in a fixed buffer.
#[derive(Clone)]
pub(crate) struct Acl {
    bytes: [u8; MAX_BYTES],
    len: usize,
}

/// Whether an ACL says more than the mode can (named users or groups, a
/// mask): then it must be stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Extended {
    Yes,
    No,
}

impl Acl {
    /// An ACL from its xattr bytes (`len` of them, given in slices): its
    /// shape checked (version, whole entries, known tags, the entries a
    /// valid ACL must have).
    pub(crate) fn from_slices<'s>(
        len: usize,
        slices: impl Iterator<Item = &'s [u8]>,
    ) -> Result<Acl> {
        if len > MAX_BYTES {
            return Err(Error::TooBig);
        }
        let mut acl = Acl {
            bytes: [0; MAX_BYTES],
            len: 0,
        };
        for s in slices {
            let end = acl.len + s.len();
            if end > len {
                return Err(Error::Inval);
            }
            acl.bytes[acl.len..end].copy_from_slice(s);
            acl.len = end;
        }
        if acl.len != len {
            return Err(Error::Inval);
        }
        acl.check()?;
        Ok(acl)
    }

    /// An ACL of `len` bytes written in place by `fill` (no copy through
    /// another buffer), its shape checked as [`Acl::from_slices`] does.
    pub(crate) fn from_fill(len: usize, fill: impl FnOnce(&mut [u8])) -> Result<Acl> {
        if len > MAX_BYTES {
            return Err(Error::TooBig);
        }
        let mut acl = Acl {
            bytes: [0; MAX_BYTES],
            len,
        };
        fill(&mut acl.bytes[..len]);
        acl.check()?;
        Ok(acl)
    }

    /// The xattr bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    fn check(&self) -> Result<()> {
        if self.len < HEADER_BYTES || !(self.len - HEADER_BYTES).is_multiple_of(ENTRY_BYTES) {
            return Err(Error::Inval);
        }
        let version =
            u32::from_le_bytes([self.bytes[0], self.bytes[1], self.bytes[2], self.bytes[3]]);
        if version != VERSION {
            return Err(Error::Inval);
        }
        let (mut user_obj, mut group_obj, mut other, mut mask, mut named) = (0, 0, 0, 0, 0);
        for i in 0..self.count() {
            match self.tag(i) {
                USER_OBJ => user_obj += 1,
                GROUP_OBJ => group_obj += 1,
                OTHER => other += 1,
                MASK => mask += 1,
                USER | GROUP => named += 1,
                _ => return Err(Error::Inval),
            }
        }
        let complete = user_obj == 1 && group_obj == 1 && other == 1 && mask <= 1;
        if !complete || (named > 0 && mask == 0) {
            return Err(Error::Inval);
        }
        Ok(())
    }

    fn count(&self) -> usize {
        (self.len - HEADER_BYTES) / ENTRY_BYTES
    }

    fn at(i: usize) -> usize {
        HEADER_BYTES + i * ENTRY_BYTES
    }

    fn tag(&self, i: usize) -> u16 {
        let at = Acl::at(i);
        u16::from_le_bytes([self.bytes[at], self.bytes[at + 1]])
    }

    fn perm(&self, i: usize) -> u32 {
        let at = Acl::at(i) + 2;
        u32::from(u16::from_le_bytes([self.bytes[at], self.bytes[at + 1]]))
    }

    fn set_perm(&mut self, i: usize, perm: u32) {
        let at = Acl::at(i) + 2;
        // Permissions are three bits; the kernel never sends more.
        let perm = (perm & 0o7) as u16;
        self.bytes[at..at + 2].copy_from_slice(&perm.to_le_bytes());
    }

    fn find(&self, tag: u16) -> Option<usize> {
        (0..self.count()).find(|i| self.tag(*i) == tag)
    }
}

/// The mode an access ACL implies (`mode`'s other bits kept), and whether
/// the ACL says more than that mode (`posix_acl_equiv_mode`).
pub(crate) fn equiv_mode(acl: &Acl, mode: u32) -> (u32, Extended) {
    let mut bits = 0;
    let mut extended = Extended::No;
    for i in 0..acl.count() {
        let perm = acl.perm(i) & 0o7;
        match acl.tag(i) {
            USER_OBJ => bits |= perm << 6,
            GROUP_OBJ => bits |= perm << 3,
            OTHER => bits |= perm,
            MASK => {
                bits = (bits & !0o070) | (perm << 3);
                extended = Extended::Yes;
            }
            _ => extended = Extended::Yes,
        }
    }
    ((mode & !S_IRWXUGO) | bits, extended)
}

/// A chmod to `mode`: the owner, mask (or owning group, without a mask)
/// and other entries take the new bits (`posix_acl_chmod`).
pub(crate) fn chmod(acl: &mut Acl, mode: u32) {
    let group = acl.find(MASK).or_else(|| acl.find(GROUP_OBJ));
    for i in 0..acl.count() {
        match acl.tag(i) {
            USER_OBJ => acl.set_perm(i, (mode >> 6) & 0o7),
            OTHER => acl.set_perm(i, mode & 0o7),
            _ => {}
        }
    }
    if let Some(i) = group {
        acl.set_perm(i, (mode >> 3) & 0o7);
    }
}

/// Inheritance (`posix_acl_create_masq`): the parent's default ACL becomes
/// the new node's access ACL, each class limited by the mode it is made
/// with, and the mode limited by the ACL. Returns the new mode and whether
/// the access ACL must be stored.
pub(crate) fn create_masq(acl: &mut Acl, mode: u32) -> (u32, Extended) {
    let mut bits = mode & S_IRWXUGO;
    let mut extended = Extended::No;
    let (mut group_obj, mut mask) = (None, None);
    for i in 0..acl.count() {
        match acl.tag(i) {
            USER_OBJ => {
                let perm = acl.perm(i) & ((bits >> 6) & 0o7);
                acl.set_perm(i, perm);
                bits &= (perm << 6) | !0o700;
            }
            OTHER => {
                let perm = acl.perm(i) & (bits & 0o7);
                acl.set_perm(i, perm);
                bits &= perm | !0o007;
            }
            GROUP_OBJ => group_obj = Some(i),
            MASK => {
                mask = Some(i);
                extended = Extended::Yes;
            }
            _ => extended = Extended::Yes,
        }
    }
    if let Some(i) = mask.or(group_obj) {
        let perm = acl.perm(i) & ((bits >> 3) & 0o7);
        acl.set_perm(i, perm);
        bits &= (perm << 3) | !0o070;
    }
    ((mode & !S_IRWXUGO) | bits, extended)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(entries: &[(u16, u16, u32)]) -> Acl {
        let mut bytes = [0u8; MAX_BYTES];
        bytes[..4].copy_from_slice(&VERSION.to_le_bytes());
        let mut len = 4;
        for (tag, perm, id) in entries {
            bytes[len..len + 2].copy_from_slice(&tag.to_le_bytes());
            bytes[len + 2..len + 4].copy_from_slice(&perm.to_le_bytes());
            bytes[len + 4..len + 8].copy_from_slice(&id.to_le_bytes());
            len += 8;
        }
        Acl::from_slices(len, [&bytes[..len]].into_iter()).unwrap()
    }

    const NOBODY: u32 = u32::MAX;

    fn minimal(u: u16, g: u16, o: u16) -> Acl {
        acl(&[
            (USER_OBJ, u, NOBODY),
            (GROUP_OBJ, g, NOBODY),
            (OTHER, o, NOBODY),
        ])
    }

    fn extended() -> Acl {
        acl(&[
            (USER_OBJ, 7, NOBODY),
            (USER, 6, 1000),
            (GROUP_OBJ, 5, NOBODY),
            (MASK, 6, NOBODY),
            (OTHER, 4, NOBODY),
        ])
    }

    #[test]
    fn a_minimal_acl_is_the_mode() {
        assert_eq!(
            equiv_mode(&minimal(7, 5, 0), 0o100644),
            (0o100750, Extended::No)
        );
        assert_eq!(
            equiv_mode(&minimal(6, 4, 4), 0o104000),
            (0o104644, Extended::No)
        );
    }

    #[test]
    fn a_mask_gives_the_group_bits_and_must_be_stored() {
        assert_eq!(equiv_mode(&extended(), 0o100000), (0o100764, Extended::Yes));
    }

    #[test]
    fn chmod_rewrites_owner_mask_and_other() {
        let mut a = extended();
        chmod(&mut a, 0o100541);
        let perms: [u32; 5] = core::array::from_fn(|i| a.perm(i));
        // The named user and the owning group keep theirs; the mask moves.
        assert_eq!(perms, [5, 6, 5, 4, 1]);
        let mut m = minimal(7, 7, 7);
        chmod(&mut m, 0o640);
        assert_eq!(equiv_mode(&m, 0), (0o640, Extended::No));
    }

    #[test]
    fn inheritance_masks_both_ways() {
        // Default u::rwx,g::r-x,o::--- and a creat(0666): rw-,r--,---.
        let mut a = minimal(7, 5, 0);
        assert_eq!(create_masq(&mut a, 0o100666), (0o100640, Extended::No));
        assert_eq!(equiv_mode(&a, 0), (0o640, Extended::No));
        // With a named user the mask is limited by the group bits.
        let mut e = extended();
        assert_eq!(create_masq(&mut e, 0o040755), (0o040744, Extended::Yes));
        let perms: [u32; 5] = core::array::from_fn(|i| e.perm(i));
        assert_eq!(perms, [7, 6, 5, 4, 4]);
    }

    #[test]
    fn malformed_acls_are_refused() {
        let bad = |bytes: &[u8]| Acl::from_slices(bytes.len(), [bytes].into_iter()).err();
        assert_eq!(bad(&[2, 0, 0]), Some(Error::Inval));
        assert_eq!(bad(&[1, 0, 0, 0]), Some(Error::Inval));
        assert_eq!(bad(&[2, 0, 0, 0, 1, 0, 7, 0, 0, 0, 0]), Some(Error::Inval));
        // Only the owner entry: incomplete.
        assert_eq!(
            bad(&[2, 0, 0, 0, 1, 0, 7, 0, 0, 0, 0, 0]),
            Some(Error::Inval)
        );
        let huge = [0u8; MAX_BYTES + 8];
        assert_eq!(bad(&huge), Some(Error::TooBig));
    }
}
