//! Extended attributes: one blob per inode, stored like file data.
//!
//! The blob is a [`Content`] (so its bytes count against the data budget,
//! as `MemFsConfig::size_bytes` says) holding records back to back:
//!
//! ```text
//! [name_len: u8][0; 3][value_len: u32 LE][name bytes][NUL][value bytes]
//! ```
//!
//! A record's header, name and NUL never straddle a 4 KiB chunk: when they
//! would, the record starts at the next chunk and the gap is zero (a header
//! with `name_len == 0`, or fewer than 8 bytes left in the chunk, means
//! "skip to the next chunk"). So every name is one contiguous slice of
//! chunk memory: LISTXATTR hands the names to the reply without copying
//! them first, and GETXATTR sends the value straight from the chunks.
//! Values (up to 64 KiB) may span chunks.
//!
//! Setting appends the new record first and only then removes the old one
//! (compacting what follows), so running out of space loses nothing.
//! Namespaces as tmpfs: `user.`, `trusted.`, `security.`, and of `system.`
//! the two POSIX ACLs (`acl.rs` says what they add); anything else is
//! `EOPNOTSUPP`, a bare prefix `EINVAL`; `trusted.` names are listed only
//! to root. ACLs are not charged to the inode space (tmpfs keeps them
//! outside its xattrs).

use slabfuse::op::xattr_flags::{XATTR_CREATE, XATTR_REPLACE};
use slabfuse::{DataParts, NodeId, Replied, ReplyXattr, Request};

use crate::MemFs;
use crate::acl::{self, Acl, Extended};
use crate::common::{Atime, S_ISGID, now};
use crate::error::{Error, Result};
use crate::node::{Inode, xattr_space};
use crate::store::{CHUNK_BYTES, Content, Storage};
use crate::sync::WriteGuard;

const CHUNK: u64 = CHUNK_BYTES as u64;
const HEADER_BYTES: u64 = 8;
const NAMESPACES: [&[u8]; 3] = [b"user.", b"trusted.", b"security."];

/// Checks an attribute name's namespace.
fn check_name(name: &[u8]) -> Result<()> {
    if is_acl(name) {
        return Ok(());
    }
    for ns in NAMESPACES {
        if name.starts_with(ns) {
            return if name.len() == ns.len() {
                Err(Error::Inval)
            } else {
                Ok(())
            };
        }
    }
    Err(Error::NotSupported)
}

/// Whether `name` is one of the POSIX ACLs.
fn is_acl(name: &[u8]) -> bool {
    name == acl::ACCESS || name == acl::DEFAULT
}

/// What an attribute costs in the inode space: nothing for an ACL.
fn space_of(name: &[u8], value_len: usize) -> u64 {
    if is_acl(name) {
        0
    } else {
        xattr_space(name.len(), value_len)
    }
}

/// One record of a blob.
#[derive(Clone, Copy, Debug)]
struct Record {
    /// Where the header starts.
    start: u64,
    name_len: u64,
    value_len: u64,
}

impl Record {
    fn name_at(&self) -> u64 {
        self.start + HEADER_BYTES
    }
    fn value_at(&self) -> u64 {
        self.name_at() + self.name_len + 1
    }
    fn end(&self) -> u64 {
        self.value_at() + self.value_len
    }
}

/// Where a record of `name_len` may start at or after `pos`.
fn place(pos: u64, name_len: u64) -> u64 {
    let room = CHUNK - pos % CHUNK;
    if room < HEADER_BYTES + name_len + 1 {
        pos.div_ceil(CHUNK) * CHUNK
    } else {
        pos
    }
}

/// The records of a blob of `len` bytes, in order.
#[derive(Clone)]
struct Records<'a> {
    content: &'a Content,
    st: &'a Storage,
    pos: u64,
    len: u64,
}

impl Iterator for Records<'_> {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        let r = next_record(self.content, self.st, self.pos, self.len)?;
        self.pos = r.end();
        Some(r)
    }
}

/// The first record at or after `pos` in a blob of `len` bytes.
fn next_record(content: &Content, st: &Storage, mut pos: u64, len: u64) -> Option<Record> {
    loop {
        if pos >= len {
            return None;
        }
        if CHUNK - pos % CHUNK < HEADER_BYTES {
            pos = pos.div_ceil(CHUNK) * CHUNK;
            continue;
        }
        let mut h = [0u8; HEADER_BYTES as usize];
        content.read_into(st, pos, &mut h);
        let name_len = u64::from(h[0]);
        if name_len == 0 {
            pos = (pos / CHUNK + 1) * CHUNK;
            continue;
        }
        let value_len = u64::from(u32::from_le_bytes([h[4], h[5], h[6], h[7]]));
        return Some(Record {
            start: pos,
            name_len,
            value_len,
        });
    }
}

/// A record's name, one contiguous slice of chunk memory.
fn name_of<'a>(content: &'a Content, st: &'a Storage, r: &Record) -> &'a [u8] {
    let name_len = usize::try_from(r.name_len).unwrap_or(0);
    content.piece(st, r.name_at(), name_len)
}

/// The names of a blob for LISTXATTR (cloneable: the reply walks it twice,
/// once for the length).
#[derive(Clone)]
struct Names<'a> {
    records: Records<'a>,
    trusted: bool,
}

impl<'a> Iterator for Names<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            let r = self.records.next()?;
            let name = name_of(self.records.content, self.records.st, &r);
            if self.trusted || !name.starts_with(b"trusted.") {
                return Some(name);
            }
        }
    }
}

impl MemFs {
    /// [`check_name`], and ACLs only when they are on.
    fn check_name(&self, name: &[u8]) -> Result<()> {
        if is_acl(name) && !self.config.posix_acl {
            return Err(Error::NotSupported);
        }
        check_name(name)
    }

    fn records<'a>(&'a self, inode: &'a Inode) -> Records<'a> {
        Records {
            content: &inode.xattrs,
            st: &self.store,
            pos: 0,
            len: inode.xattr_bytes,
        }
    }

    fn find_xattr(&self, inode: &Inode, name: &[u8]) -> Option<Record> {
        self.records(inode)
            .find(|r| name_of(&inode.xattrs, &self.store, r) == name)
    }

    /// SETXATTR. `setxattr_flags` are FUSE's (`FUSE_SETXATTR_ACL_KILL_SGID`).
    pub(crate) fn set_xattr<'s>(
        &self,
        node: NodeId,
        name: &[u8],
        value_len: usize,
        value: impl Iterator<Item = &'s [u8]>,
        flags: i32,
        setxattr_flags: u32,
    ) -> Result<()> {
        self.check_name(name)?;
        if is_acl(name) {
            let acl = Acl::from_slices(value_len, value)?;
            return self.set_acl(node, name, &acl, setxattr_flags);
        }
        let mut g = self.write_counted(node)?;
        // tmpfs charges an attribute to the inode space before it looks at
        // the flags, so a full inode space says ENOSPC first.
        let charge = space_of(name, value_len);
        self.inodes.charge(charge)?;
        let old = self.find_xattr(&g, name);
        let refused = if flags & XATTR_CREATE != 0 && old.is_some() {
            Some(Error::Exist)
        } else if flags & XATTR_REPLACE != 0 && old.is_none() {
            Some(Error::NoData)
        } else {
            None
        };
        if let Some(e) = refused {
            self.inodes.refund(charge);
            return Err(e);
        }
        if let Err(e) = self.append_record(&mut g, name, value_len, value, charge) {
            self.inodes.refund(charge);
            return Err(e);
        }
        if let Some(r) = old {
            self.remove_record(&mut g, r, name);
        }
        g.ctime = now();
        Ok(())
    }

    /// Appends a record (the caller has charged `charge` and removes any
    /// older record of the name after). Out of space: nothing changes.
    fn append_record<'s>(
        &self,
        inode: &mut Inode,
        name: &[u8],
        value_len: usize,
        value: impl Iterator<Item = &'s [u8]>,
        charge: u64,
    ) -> Result<()> {
        let name_len = u8::try_from(name.len()).map_err(|_| Error::Inval)?;
        let value_len32 = u32::try_from(value_len).map_err(|_| Error::TooBig)?;
        let end = inode.xattr_bytes;
        let start = place(end, u64::from(name_len));
        let mut header = [0u8; HEADER_BYTES as usize];
        header[0] = name_len;
        header[4..].copy_from_slice(&value_len32.to_le_bytes());
        let total = HEADER_BYTES as usize + name.len() + 1 + value_len;
        let nul = [0u8];
        let src = [&header[..], name, &nul[..]]
            .into_iter()
            .chain(value.map(|v| -> &[u8] { v }));
        let written = inode.xattrs.write(&self.store, start, total, src);
        if written < total {
            // Out of space: drop the partial record; the old value stays.
            inode.xattrs.truncate(&self.store, end);
            return Err(Error::NoSpace);
        }
        inode.xattr_bytes = start + total as u64;
        inode.xattr_charge += charge;
        Ok(())
    }

    /// Sets (or, when it says no more than the mode, drops) an ACL, as
    /// tmpfs's `simple_set_acl`: an access ACL sets the permission bits,
    /// and loses the set-group-id bit when the kernel says the caller may
    /// not keep it.
    fn set_acl(&self, node: NodeId, name: &[u8], acl: &Acl, setxattr_flags: u32) -> Result<()> {
        let mut g = self.write_counted(node)?;
        let store = if name == acl::ACCESS {
            let (mode, extended) = acl::equiv_mode(acl, g.mode);
            g.mode = mode;
            if setxattr_flags & slabfuse::abi::FUSE_SETXATTR_ACL_KILL_SGID != 0 {
                g.mode &= !S_ISGID;
            }
            extended == Extended::Yes
        } else {
            true
        };
        let old = self.find_xattr(&g, name);
        if store {
            let bytes = acl.as_bytes();
            self.append_record(&mut g, name, bytes.len(), core::iter::once(bytes), 0)?;
        }
        if let Some(r) = old {
            self.remove_record(&mut g, r, name);
        }
        g.ctime = now();
        Ok(())
    }

    /// Write-locks `node` for a new attribute: live and still counted (a
    /// retired inode has no name and no handle: nothing can see it).
    fn write_counted(&self, node: NodeId) -> Result<WriteGuard<'_, Inode>> {
        let g = self.write_live(self.index(node)?)?;
        if !g.counted {
            return Err(Error::NoEnt);
        }
        Ok(g)
    }

    /// One of `inode`'s ACLs with its record, if it has it.
    fn find_acl(&self, inode: &Inode, name: &[u8]) -> Option<(Record, Acl)> {
        let r = self.find_xattr(inode, name)?;
        let len = usize::try_from(r.value_len).ok()?;
        let acl = Acl::from_fill(len, |buf| {
            inode.xattrs.read_into(&self.store, r.value_at(), buf)
        })
        .ok()?;
        Some((r, acl))
    }

    /// One of `inode`'s ACLs, if it has it.
    pub(crate) fn read_acl(&self, inode: &Inode, name: &[u8]) -> Option<Acl> {
        self.find_acl(inode, name).map(|(_, acl)| acl)
    }

    /// After a chmod: the access ACL follows the new mode.
    pub(crate) fn chmod_acl(&self, inode: &mut Inode) {
        let Some((r, mut acl)) = self.find_acl(inode, acl::ACCESS) else {
            return;
        };
        acl::chmod(&mut acl, inode.mode);
        let bytes = acl.as_bytes();
        // Same length, same place: overwriting cannot run out of space.
        inode.xattrs.write(
            &self.store,
            r.value_at(),
            bytes.len(),
            core::iter::once(bytes),
        );
    }

    /// A new node's ACLs from its parent's default ACL (`simple_acl_create`):
    /// the access ACL when it says more than the mode, and for a directory
    /// the default ACL itself. Out of space: `ENOSPC`, the caller undoes.
    pub(crate) fn inherit_acls(
        &self,
        inode: &mut Inode,
        parent_default: &Acl,
        access: &Acl,
        extended: Extended,
    ) -> Result<()> {
        if extended == Extended::Yes {
            let bytes = access.as_bytes();
            self.append_record(inode, acl::ACCESS, bytes.len(), core::iter::once(bytes), 0)?;
        }
        if inode.is_dir() {
            let bytes = parent_default.as_bytes();
            self.append_record(inode, acl::DEFAULT, bytes.len(), core::iter::once(bytes), 0)?;
        }
        Ok(())
    }

    /// Removes record `r` (of attribute `name`) and moves the records
    /// after it down; gives back its inode-space charge.
    fn remove_record(&self, inode: &mut Inode, r: Record, name: &[u8]) {
        let c = space_of(name, usize::try_from(r.value_len).unwrap_or(0));
        inode.xattr_charge -= c;
        self.inodes.refund(c);
        let len = inode.xattr_bytes;
        let mut pos = r.end();
        let mut w = r.start;
        // Moves never go up (see `place`): each record lands at or before
        // where it was, so the loop can read ahead of what it writes.
        while let Some(next) = next_record(&inode.xattrs, &self.store, pos, len) {
            pos = next.end();
            let at = place(w, next.name_len);
            if at > w {
                // The skipped tail of a chunk must read as "skip".
                let gap = usize::try_from(at - w).unwrap_or(0);
                let zeros = [0u8; HEADER_BYTES as usize];
                let src = core::iter::repeat_n(&zeros[..], gap.div_ceil(zeros.len()));
                inode.xattrs.write(&self.store, w, gap, src);
            }
            let size = next.end() - next.start;
            inode.xattrs.move_down(&self.store, next.start, at, size);
            w = at + size;
        }
        inode.xattrs.truncate(&self.store, w);
        inode.xattr_bytes = w;
    }

    /// GETXATTR: the value straight from its chunks.
    pub(crate) fn get_xattr(&self, node: NodeId, name: &[u8], reply: ReplyXattr<'_>) -> Replied {
        if let Err(e) = self.check_name(name) {
            return reply.error(e.errno());
        }
        let (_, g) = match self.read_node(node, Atime::Keep) {
            Ok(found) => found,
            Err(e) => return reply.error(e.errno()),
        };
        let Some(r) = self.find_xattr(&g, name) else {
            return reply.error(Error::NoData.errno());
        };
        let len = usize::try_from(r.value_len).unwrap_or(0);
        let mut parts = DataParts::new();
        if g.xattrs
            .read_parts(&self.store, r.value_at(), len, &mut parts)
            .is_err()
        {
            return reply.error(Error::TooBig.errno());
        }
        reply.value_parts(parts.slices())
    }

    /// LISTXATTR.
    pub(crate) fn list_xattr(&self, req: &Request, node: NodeId, reply: ReplyXattr<'_>) -> Replied {
        let (_, g) = match self.read_node(node, Atime::Keep) {
            Ok(found) => found,
            Err(e) => return reply.error(e.errno()),
        };
        let names = Names {
            records: self.records(&g),
            trusted: req.uid == 0,
        };
        reply.names(names)
    }

    /// REMOVEXATTR.
    pub(crate) fn remove_xattr(&self, node: NodeId, name: &[u8]) -> Result<()> {
        self.check_name(name)?;
        let id = self.index(node)?;
        let mut g = self.write_live(id)?;
        match self.find_xattr(&g, name) {
            Some(r) => self.remove_record(&mut g, r, name),
            // Removing an ACL that is not there succeeds on tmpfs (it sets
            // "no ACL", and stamps ctime for it).
            None if is_acl(name) => {}
            None => return Err(Error::NoData),
        }
        g.ctime = now();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_are_those_of_tmpfs() {
        assert_eq!(check_name(b"user.a"), Ok(()));
        assert_eq!(check_name(b"trusted.x"), Ok(()));
        assert_eq!(check_name(b"security.selinux"), Ok(()));
        assert_eq!(check_name(b"user."), Err(Error::Inval));
        assert_eq!(check_name(b"system.foo"), Err(Error::NotSupported));
        assert_eq!(check_name(b"system.posix_acl_access"), Ok(()));
        assert_eq!(check_name(b"system.posix_acl_default"), Ok(()));
        assert_eq!(
            check_name(b"system.posix_acl_access2"),
            Err(Error::NotSupported)
        );
        assert_eq!(check_name(b"foo.bar"), Err(Error::NotSupported));
    }

    #[test]
    fn headers_and_names_never_straddle_a_chunk() {
        assert_eq!(place(0, 10), 0);
        assert_eq!(place(4090, 1), 4096);
        assert_eq!(place(4080, 7), 4080);
        assert_eq!(place(4080, 8), 4096);
    }
}
