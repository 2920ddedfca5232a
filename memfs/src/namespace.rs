//! Names: lookup, creating nodes of every type, links, unlink and rmdir,
//! rename (with `RENAME_NOREPLACE`, `RENAME_EXCHANGE`, `RENAME_WHITEOUT`),
//! `O_TMPFILE`, and directory listings.
//!
//! Locking: an operation that changes a directory and the inodes it names
//! first finds them under the directory's read lock, then takes write locks
//! on all of them in slot order ([`MemFs::lock_set`]) and checks that the
//! names still mean what they meant; if a concurrent change got in between,
//! it starts over. A new inode is set up under its own lock before its
//! directory is locked, so no operation ever waits for a lock while holding
//! one of a higher slot.

use slabfuse::op::rename_flags::{RENAME_EXCHANGE, RENAME_NOREPLACE, RENAME_WHITEOUT};
use slabfuse::types::mode::{S_IFCHR, S_IFDIR, S_IFLNK, S_IFMT};
use slabfuse::{Entry, FileType, NodeId, Request};

use crate::MemFs;
use crate::acl;
use crate::common::{S_ISGID, check_parent, now};
use crate::error::{Error, Result};
use crate::node::SHORT_SYMLINK_BYTES;
use crate::sync::NONE;

/// What a new node is.
#[derive(Clone, Copy)]
pub(crate) struct NewNode<'a> {
    /// Type and permission bits.
    pub(crate) mode: u32,
    pub(crate) rdev: u32,
    /// A symlink's target.
    pub(crate) target: &'a [u8],
    /// Whether the reply opens it (CREATE, TMPFILE): one open handle.
    pub(crate) open: bool,
    /// Whether it gets a name (all but TMPFILE): its link count.
    pub(crate) named: bool,
    /// The caller's umask: applied here (`FUSE_DONT_MASK`) unless the
    /// parent has a default ACL, which replaces it.
    pub(crate) umask: u32,
}

/// An entry of a directory found under its read lock.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Found {
    dirent: u32,
    child: u32,
}

impl MemFs {
    /// The entry `name` of directory `dir`, under its read lock.
    fn find(&self, dir: u32, name: &[u8]) -> Result<Option<Found>> {
        let d = self.read_live(dir)?;
        if !d.is_dir() {
            return Err(Error::NotDir);
        }
        Ok(self
            .entries
            .lookup(&self.names, dir, name)
            .map(|(dirent, child)| Found { dirent, child }))
    }

    /// Whether `name` in `dir` is still `expected` (under a lock of `dir`).
    fn still(&self, dir: u32, name: &[u8], expected: Option<Found>) -> bool {
        self.entries
            .lookup(&self.names, dir, name)
            .map(|(dirent, child)| Found { dirent, child })
            == expected
    }

    /// LOOKUP: the entry (lookup count + 1) or a negative entry.
    pub(crate) fn lookup_entry(&self, parent: NodeId, name: &[u8]) -> Result<Entry> {
        let p = self.index(parent)?;
        let child = {
            let d = self.read_live(p)?;
            // "." of any node: how the kernel turns an NFS file handle or
            // open_by_handle_at() back into a node (FUSE_EXPORT_SUPPORT);
            // it then checks the generation.
            if !d.is_dir() && name != b"." {
                return Err(Error::NotDir);
            }
            let child = match name {
                b"." => Some(p),
                b".." => Some(d.parent),
                _ => self.entries.lookup(&self.names, p, name).map(|(_, c)| c),
            };
            if let Some(c) = child {
                // Pinned while the directory still names it.
                self.pin(c);
            }
            child
        };
        let Some(c) = child else {
            return Ok(self.negative_entry());
        };
        let g = self.rlock(c);
        if !g.is_live() {
            drop(g);
            self.forget_n(c, 1);
            return Err(Error::NoEnt);
        }
        Ok(self.entry(c, &g))
    }

    /// Sets up a fresh inode for `node` in a free slot, owned by the
    /// caller, in `parent` (for set-group-id inheritance). Its lookup count
    /// is 1 when `pinned` (an entry reply will name it).
    fn new_inode(
        &self,
        req: &Request,
        parent: u32,
        node: NewNode<'_>,
        pinned: bool,
    ) -> Result<u32> {
        let is_link = node.mode & S_IFMT == S_IFLNK;
        let (dir_gid, dir_sgid, default_acl) = {
            let d = self.rlock(parent);
            check_parent(&d)?;
            // Symlinks take no ACLs (their mode is always 0777).
            let default_acl = if is_link {
                None
            } else {
                self.read_acl(&d, acl::DEFAULT)
            };
            (d.gid, d.mode & S_ISGID != 0, default_acl)
        };
        let mut mode = node.mode;
        // The parent's default ACL, masked by the mode asked for, becomes
        // the access ACL, and the mode is masked by it; without one, the
        // umask applies, as on tmpfs.
        let inherited = match &default_acl {
            Some(default) => {
                let mut access = default.clone();
                let (masked, extended) = acl::create_masq(&mut access, mode);
                mode = masked;
                Some((access, extended))
            }
            None => {
                if !is_link {
                    mode &= !(node.umask & 0o777);
                }
                None
            }
        };
        let id = self.inodes.alloc()?;
        let is_dir = mode & S_IFMT == S_IFDIR;
        // A set-group-id directory gives its group to what is made in it,
        // and its set-group-id bit to subdirectories (the kernel leaves this
        // to the filesystem; it already stripped S_ISGID where not allowed).
        let gid = if dir_sgid {
            if is_dir {
                mode |= S_ISGID;
            }
            dir_gid
        } else {
            req.gid
        };
        let mut g = self.wlock(id);
        g.init(mode, req.uid, gid, node.rdev, now());
        if node.named {
            // A directory counts "." and its entry in the parent.
            g.nlink = if is_dir { 2 } else { 1 };
        }
        if is_dir {
            g.parent = parent;
            // Relaxed: a hint for the rename loop check only (the locked
            // copy in the inode is the truth).
            self.inodes
                .slot(id)
                .parent
                .store(parent, core::sync::atomic::Ordering::Relaxed);
        }
        if mode & S_IFMT == S_IFLNK {
            let stored = if node.target.len() < SHORT_SYMLINK_BYTES {
                match self.names.store(node.target) {
                    Some(head) => {
                        g.short_link = head;
                        true
                    }
                    None => false,
                }
            } else {
                let len = node.target.len();
                g.data
                    .write(&self.store, 0, len, core::iter::once(node.target))
                    == len
            };
            if !stored {
                self.clear(&mut g);
                drop(g);
                self.inodes.release(id);
                return Err(Error::NoSpace);
            }
            g.size = node.target.len() as u64;
        }
        if let (Some(default), Some((access, extended))) = (&default_acl, &inherited)
            && self
                .inherit_acls(&mut g, default, access, *extended)
                .is_err()
        {
            self.clear(&mut g);
            drop(g);
            self.inodes.release(id);
            return Err(Error::NoSpace);
        }
        if node.open {
            g.opens = 1;
        }
        self.inodes
            .slot(id)
            .lookups
            .store(u64::from(pinned), core::sync::atomic::Ordering::Relaxed);
        Ok(id)
    }

    /// Undoes [`new_inode`](Self::new_inode) for an inode never named.
    fn discard(&self, id: u32) {
        {
            let mut g = self.wlock(id);
            self.clear(&mut g);
        }
        self.inodes
            .slot(id)
            .lookups
            .store(0, core::sync::atomic::Ordering::Relaxed);
        self.inodes.release(id);
    }

    /// MKNOD, MKDIR, SYMLINK, CREATE: a new node named `name` in `parent`.
    /// Returns its slot and its entry (lookup count 1).
    pub(crate) fn make(
        &self,
        req: &Request,
        parent: NodeId,
        name: &[u8],
        node: NewNode<'_>,
    ) -> Result<(u32, Entry)> {
        let p = self.index(parent)?;
        if self.find(p, name)?.is_some() {
            return Err(Error::Exist);
        }
        let id = self.new_inode(req, p, node, true)?;
        let kind = FileType::from_mode(node.mode).unwrap_or(FileType::RegularFile);
        let inserted = {
            let mut d = self.wlock(p);
            match check_parent(&d) {
                Err(e) => Err(e),
                Ok(()) if self.still(p, name, None) => {
                    let dir = &mut *d;
                    match self
                        .entries
                        .insert(&self.names, &mut dir.dir, p, name, id, kind)
                    {
                        Ok(_) => {
                            let t = now();
                            dir.mtime = t;
                            dir.ctime = t;
                            if kind == FileType::Directory {
                                dir.nlink += 1;
                            }
                            Ok(())
                        }
                        Err(_) => Err(Error::NoSpace),
                    }
                }
                Ok(()) => Err(Error::Exist),
            }
        };
        if let Err(e) = inserted {
            self.discard(id);
            return Err(e);
        }
        let g = self.rlock(id);
        Ok((id, self.entry(id, &g)))
    }

    /// TMPFILE: an unnamed regular file (nlink 0), open, lookup count 1.
    pub(crate) fn make_tmpfile(
        &self,
        req: &Request,
        parent: NodeId,
        mode: u32,
        umask: u32,
    ) -> Result<(u32, Entry)> {
        let p = self.index(parent)?;
        let node = NewNode {
            mode,
            rdev: 0,
            target: &[],
            open: true,
            named: false,
            umask,
        };
        let id = self.new_inode(req, p, node, true)?;
        let g = self.rlock(id);
        Ok((id, self.entry(id, &g)))
    }

    /// LINK: a new name for a node (not a directory).
    pub(crate) fn link_node(&self, node: NodeId, parent: NodeId, name: &[u8]) -> Result<Entry> {
        let c = self.index(node)?;
        let p = self.index(parent)?;
        let mut set = self.lock_set(&[p, c]);
        if p == c {
            return Err(Error::Perm);
        }
        let (dir, child) = set.two(p, c);
        check_parent(dir)?;
        child.live()?;
        if child.is_dir() {
            return Err(Error::Perm);
        }
        if !child.counted {
            // Retired: no name, no handle (the kernel refuses this first).
            return Err(Error::NoEnt);
        }
        if self.entries.lookup(&self.names, p, name).is_some() {
            return Err(Error::Exist);
        }
        // A second name costs an inode, as on tmpfs (an O_TMPFILE getting
        // its first name does not).
        let charged = child.nlink > 0;
        if charged {
            self.inodes.count()?;
        }
        if self
            .entries
            .insert(&self.names, &mut dir.dir, p, name, c, child.kind())
            .is_err()
        {
            if charged {
                self.inodes.uncount();
            }
            return Err(Error::NoSpace);
        }
        let t = now();
        dir.mtime = t;
        dir.ctime = t;
        child.nlink += 1;
        child.ctime = t;
        self.pin(c);
        Ok(self.entry(c, child))
    }

    /// UNLINK (`dir == false`) and RMDIR (`dir == true`).
    pub(crate) fn remove(&self, parent: NodeId, name: &[u8], rmdir: bool) -> Result<()> {
        let p = self.index(parent)?;
        loop {
            let found = self.find(p, name)?.ok_or(Error::NoEnt)?;
            let c = found.child;
            let freed = {
                let mut set = self.lock_set(&[p, c]);
                if !self.still(p, name, Some(found)) {
                    continue;
                }
                if c == p {
                    return Err(Error::Inval);
                }
                let (dir, child) = set.two(p, c);
                dir.live()?;
                child.live()?;
                if rmdir {
                    if !child.is_dir() {
                        return Err(Error::NotDir);
                    }
                    if child.dir.count != 0 {
                        return Err(Error::NotEmpty);
                    }
                } else if child.is_dir() {
                    return Err(Error::IsDir);
                }
                self.entries
                    .remove(&self.names, &mut dir.dir, p, found.dirent);
                let t = now();
                dir.mtime = t;
                dir.ctime = t;
                child.ctime = t;
                if rmdir {
                    dir.nlink -= 1;
                    child.nlink = 0;
                } else {
                    self.drop_link(child);
                }
                self.free_if_unused(c, child)
            };
            if freed {
                self.inodes.release(c);
            }
            return Ok(());
        }
    }

    /// Whether directory `dir` is `ancestor` or lies below it (walks the
    /// parent links up to the root).
    fn is_within(&self, dir: u32, ancestor: u32) -> bool {
        let mut at = dir;
        for _ in 0..self.inodes.capacity() {
            if at == ancestor {
                return true;
            }
            if at == 0 || at == NONE {
                return false;
            }
            at = self
                .inodes
                .slot(at)
                .parent
                .load(core::sync::atomic::Ordering::Relaxed);
        }
        false
    }

    /// RENAME and RENAME2.
    pub(crate) fn rename_node(
        &self,
        req: &Request,
        parent: NodeId,
        name: &[u8],
        new_parent: NodeId,
        new_name: &[u8],
        flags: u32,
    ) -> Result<()> {
        if flags & !(RENAME_NOREPLACE | RENAME_EXCHANGE | RENAME_WHITEOUT) != 0
            || (flags & RENAME_EXCHANGE != 0 && flags & (RENAME_NOREPLACE | RENAME_WHITEOUT) != 0)
        {
            return Err(Error::Inval);
        }
        let sp = self.index(parent)?;
        let dp = self.index(new_parent)?;
        // The whiteout is made first, so that running out of inodes fails
        // the rename before anything moved.
        let whiteout = if flags & RENAME_WHITEOUT != 0 {
            let node = NewNode {
                mode: S_IFCHR,
                rdev: 0,
                target: &[],
                open: false,
                named: true,
                umask: 0,
            };
            Some(self.new_inode(req, sp, node, false)?)
        } else {
            None
        };
        let result = self.rename_locked(sp, name, dp, new_name, flags, whiteout);
        if let (Err(_), Some(w)) = (result, whiteout) {
            self.discard(w);
        }
        result
    }

    fn rename_locked(
        &self,
        sp: u32,
        name: &[u8],
        dp: u32,
        new_name: &[u8],
        flags: u32,
        whiteout: Option<u32>,
    ) -> Result<()> {
        loop {
            let src = self.find(sp, name)?.ok_or(Error::NoEnt)?;
            let dst = self.find(dp, new_name)?;
            let s = src.child;
            let t = dst.map_or(NONE, |f| f.child);
            let mut set = self.lock_set(&[sp, dp, s, t]);
            if !self.still(sp, name, Some(src)) || !self.still(dp, new_name, dst) {
                continue;
            }
            check_parent(set.get(sp))?;
            check_parent(set.get(dp))?;
            let s_dir = set.get(s).is_dir();
            let s_kind = set.get(s).kind();
            if flags & RENAME_EXCHANGE != 0 {
                let dst = dst.ok_or(Error::NoEnt)?;
                if s == t {
                    return Ok(());
                }
                let t_dir = set.get(t).is_dir();
                let t_kind = set.get(t).kind();
                if sp != dp
                    && ((s_dir && self.is_within(dp, s)) || (t_dir && self.is_within(sp, t)))
                {
                    return Err(Error::Inval);
                }
                self.entries.set_child(src.dirent, t, t_kind);
                self.entries.set_child(dst.dirent, s, s_kind);
                if sp != dp {
                    if s_dir {
                        self.reparent(&mut set, s, sp, dp);
                    }
                    if t_dir {
                        self.reparent(&mut set, t, dp, sp);
                    }
                }
                let now = now();
                for id in [sp, dp, s, t] {
                    let g = set.get(id);
                    g.ctime = now;
                    if id == sp || id == dp {
                        g.mtime = now;
                    }
                }
                return Ok(());
            }
            if let Some(dst) = dst {
                if s == t {
                    // Two names of one inode: rename does nothing (POSIX).
                    return Ok(());
                }
                if flags & RENAME_NOREPLACE != 0 {
                    return Err(Error::Exist);
                }
                let target = set.get(t);
                if s_dir {
                    if !target.is_dir() {
                        return Err(Error::NotDir);
                    }
                    if target.dir.count != 0 {
                        return Err(Error::NotEmpty);
                    }
                } else if target.is_dir() {
                    return Err(Error::IsDir);
                }
                let _ = dst;
            }
            if s_dir && sp != dp && self.is_within(dp, s) {
                return Err(Error::Inval);
            }
            // Name the source at the target first: the only step that can
            // fail (no entry or name space left), before anything changed.
            match dst {
                Some(d) => self.entries.set_child(d.dirent, s, s_kind),
                None => {
                    let dir = set.get(dp);
                    self.entries
                        .insert(&self.names, &mut dir.dir, dp, new_name, s, s_kind)
                        .map_err(|_| Error::NoSpace)?;
                }
            }
            match whiteout {
                Some(w) => {
                    self.entries.set_child(src.dirent, w, FileType::CharDevice);
                }
                None => {
                    let dir = set.get(sp);
                    self.entries
                        .remove(&self.names, &mut dir.dir, sp, src.dirent);
                }
            }
            if s_dir && sp != dp {
                self.reparent(&mut set, s, sp, dp);
            }
            let now = now();
            let mut freed = false;
            if t != NONE {
                let t_dir = set.get(t).is_dir();
                if t_dir {
                    set.get(dp).nlink -= 1;
                }
                let target = set.get(t);
                if t_dir {
                    target.nlink = 0;
                } else {
                    self.drop_link(target);
                }
                target.ctime = now;
                freed = self.free_if_unused(t, target);
            }
            for id in [sp, dp, s] {
                let g = set.get(id);
                g.ctime = now;
                if id == sp || id == dp {
                    g.mtime = now;
                }
            }
            drop(set);
            if freed {
                self.inodes.release(t);
            }
            return Ok(());
        }
    }

    /// Takes one name from a non-directory; dropping an extra name gives
    /// back the inode it was charged (see [`link`](Self::link_node)).
    fn drop_link(&self, inode: &mut crate::node::Inode) {
        if inode.nlink > 1 {
            self.inodes.uncount();
        }
        inode.nlink = inode.nlink.saturating_sub(1);
    }

    /// Moves directory `s` from parent `from` to parent `to` (all locked).
    fn reparent(&self, set: &mut crate::common::Locked<'_>, s: u32, from: u32, to: u32) {
        set.get(from).nlink -= 1;
        set.get(to).nlink += 1;
        set.get(s).parent = to;
        self.inodes
            .slot(s)
            .parent
            .store(to, core::sync::atomic::Ordering::Relaxed);
    }
}
