//! File data and attributes: open/release, read (zero-copy), write,
//! setattr (truncate, chmod, chown, utimens), fallocate, lseek,
//! copy_file_range, readlink, and directory listings.
//!
//! A read holds the file's read lock while its reply is written, so the
//! slices it sends straight from the chunk slab cannot change under the
//! kernel's copy; a write holds the write lock while it copies the payload
//! into chunks. Other files are never involved.

use slabfuse::op::fallocate_mode::{FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE};
use slabfuse::op::whence::{SEEK_DATA, SEEK_HOLE};
use slabfuse::op::{SetAttr, TimeOrNow};
use slabfuse::types::mode::S_IFMT;
use slabfuse::{
    Attr, DataParts, Entry, FileType, NodeId, Replied, ReplyData, ReplyDirectory,
    ReplyDirectoryPlus,
};

use crate::MemFs;
use crate::common::{Atime, O_ACCMODE, O_RDONLY, O_TRUNC, S_ISGID, S_ISUID, S_IXGRP, now};
use crate::error::{Error, Result};
use crate::names::SEGMENT_BYTES;
use crate::node::{Inode, SHORT_SYMLINK_BYTES};
use crate::store::CHUNK_BYTES;
use crate::sync::NONE;

/// The largest file (`MAX_LFS_FILESIZE` on 64-bit Linux, tmpfs's limit).
pub(crate) const FILE_BYTES_MAX: u64 = i64::MAX as u64;

/// Entries of a READDIRPLUS batch: found under the directory's lock, then
/// answered one by one with each child's own lock.
const PLUS_BATCH: usize = 16;

/// Clears set-user-id, and set-group-id when group-executable (what the
/// kernel means by "kill suid/sgid").
fn kill_suidgid(inode: &mut Inode) {
    inode.mode &= !S_ISUID;
    if inode.mode & S_IXGRP != 0 {
        inode.mode &= !S_ISGID;
    }
}

fn time_of(t: TimeOrNow, now: slabfuse::Timestamp) -> slabfuse::Timestamp {
    match t {
        TimeOrNow::Specific(ts) => ts,
        TimeOrNow::Now => now,
    }
}

impl MemFs {
    /// GETATTR.
    pub(crate) fn attr_of(&self, node: NodeId) -> Result<Attr> {
        let id = self.index(node)?;
        let g = self.read_live(id)?;
        Ok(self.attr(id, &g))
    }

    /// SETATTR.
    pub(crate) fn set_attr(&self, op: &SetAttr) -> Result<Attr> {
        let id = self.index(op.node)?;
        let mut g = self.write_live(id)?;
        let t = now();
        if let Some(size) = op.size {
            if g.is_dir() {
                return Err(Error::IsDir);
            }
            if !g.is_reg() {
                return Err(Error::Inval);
            }
            if size > FILE_BYTES_MAX {
                return Err(Error::FileTooBig);
            }
            if size < g.size {
                g.data.truncate(&self.store, size);
            }
            g.size = size;
            // tmpfs stamps mtime (and ctime, below) on every truncate,
            // even to the same size, whatever else the call says.
            g.mtime = t;
        }
        if let Some(mode) = op.mode {
            g.mode = (g.mode & S_IFMT) | (mode & 0o7777);
            // The access ACL's owner, mask and other entries follow.
            self.chmod_acl(&mut g);
        }
        if let Some(uid) = op.uid {
            g.uid = uid;
        }
        if let Some(gid) = op.gid {
            g.gid = gid;
        }
        if op.kill_suidgid {
            kill_suidgid(&mut g);
        }
        if let Some(a) = op.atime {
            g.atime = time_of(a, t);
        }
        if let Some(m) = op.mtime {
            g.mtime = time_of(m, t);
        }
        // Every SETATTR stamps ctime, as every tmpfs setattr does. That
        // includes one with nothing to set: the kernel sends it for
        // `chown(path, -1, -1)` (the VFS asks for `ATTR_CTIME` alone, which
        // FUSE forwards only with writeback caching), and tmpfs updates
        // ctime then too.
        g.ctime = op.ctime.unwrap_or(t);
        Ok(self.attr(id, &g))
    }

    /// OPEN: counts the handle; `O_TRUNC` empties a regular file (the
    /// kernel leaves that to OPEN with `FUSE_ATOMIC_O_TRUNC`), stamping
    /// mtime and ctime as tmpfs does for every truncating open.
    pub(crate) fn open_file(&self, node: NodeId, flags: i32, kill: bool) -> Result<u32> {
        let id = self.index(node)?;
        let mut g = self.write_live(id)?;
        if g.is_dir() && flags & O_ACCMODE != O_RDONLY {
            return Err(Error::IsDir);
        }
        if flags & O_TRUNC != 0 && g.is_reg() {
            g.data.truncate(&self.store, 0);
            g.size = 0;
            let t = now();
            g.mtime = t;
            g.ctime = t;
            if kill {
                kill_suidgid(&mut g);
            }
        }
        g.opens += 1;
        Ok(self.open_flags(&g))
    }

    /// `FOPEN_*` flags for an open of `inode`.
    pub(crate) fn open_flags(&self, inode: &Inode) -> u32 {
        let mut flags = 0;
        if inode.is_reg() {
            if self.config.direct_io {
                flags |= slabfuse::abi::FOPEN_DIRECT_IO;
            }
            if self.config.keep_cache {
                flags |= slabfuse::abi::FOPEN_KEEP_CACHE;
            }
        }
        flags
    }

    /// RELEASE: the handle is gone; an unlinked file may go with it.
    pub(crate) fn release_file(&self, node: NodeId) {
        let Ok(id) = self.index(node) else {
            return;
        };
        let freed = {
            let mut g = self.wlock(id);
            if !g.is_live() {
                return;
            }
            g.opens = g.opens.saturating_sub(1);
            self.free_if_unused(id, &mut g)
        };
        if freed {
            self.inodes.release(id);
        }
    }

    /// READ, answered under the file's read lock: slices of the chunk slab
    /// and of a zero page, or a copy when that takes too many slices.
    pub(crate) fn read_file(
        &self,
        node: NodeId,
        offset: u64,
        size: u32,
        reply: ReplyData<'_>,
    ) -> Replied {
        let (_, g) = match self.read_node(node, Atime::Touch) {
            Ok(found) => found,
            Err(e) => return reply.error(e.errno()),
        };
        if g.is_dir() {
            return reply.error(Error::IsDir.errno());
        }
        if offset >= g.size {
            return reply.data(&[]);
        }
        let len = usize::try_from((g.size - offset).min(u64::from(size))).unwrap_or(0);
        let mut parts = DataParts::new();
        if g.data
            .read_parts(&self.store, offset, len, &mut parts)
            .is_ok()
        {
            return reply.parts(&parts);
        }
        drop(parts);
        // Relaxed: a statistic.
        self.reads_copied
            .fetch_add(1, core::sync::atomic::Ordering::Relaxed);
        reply.fill(|w| {
            let n = len.min(w.remaining());
            let _ = g.data.read_fill(&self.store, offset, n, w);
            Ok(())
        })
    }

    /// WRITE at the offset the kernel chose (for `O_APPEND` it is the end
    /// of file, which the kernel knows exactly: every change goes through
    /// it). Writes what fits; `ENOSPC` only when nothing did.
    pub(crate) fn write_data<'s>(
        &self,
        node: NodeId,
        offset: u64,
        len: usize,
        data: impl Iterator<Item = &'s [u8]>,
        kill: bool,
    ) -> Result<usize> {
        let id = self.index(node)?;
        let mut g = self.write_live(id)?;
        if g.is_dir() {
            return Err(Error::IsDir);
        }
        if len == 0 {
            return Ok(0);
        }
        if offset
            .checked_add(len as u64)
            .is_none_or(|end| end > FILE_BYTES_MAX)
        {
            return Err(Error::FileTooBig);
        }
        let written = g.data.write(&self.store, offset, len, data);
        // tmpfs stamps the file before it writes, so even a write that
        // finds no space changes mtime and ctime.
        let t = now();
        g.mtime = t;
        g.ctime = t;
        if kill {
            kill_suidgid(&mut g);
        }
        if written == 0 {
            return Err(Error::NoSpace);
        }
        g.size = g.size.max(offset + written as u64);
        Ok(written)
    }

    /// FALLOCATE: mode 0 and `KEEP_SIZE` allocate, `PUNCH_HOLE | KEEP_SIZE`
    /// deallocates; everything else is `EOPNOTSUPP`, as on tmpfs.
    pub(crate) fn allocate(&self, node: NodeId, offset: u64, length: u64, mode: i32) -> Result<()> {
        if mode & !(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE) != 0 {
            return Err(Error::NotSupported);
        }
        let punch = mode & FALLOC_FL_PUNCH_HOLE != 0;
        if punch && mode & FALLOC_FL_KEEP_SIZE == 0 {
            return Err(Error::NotSupported);
        }
        if length == 0 {
            return Err(Error::Inval);
        }
        let end = offset
            .checked_add(length)
            .filter(|&e| e <= FILE_BYTES_MAX)
            .ok_or(Error::FileTooBig)?;
        let id = self.index(node)?;
        let mut g = self.write_live(id)?;
        if g.is_dir() {
            return Err(Error::IsDir);
        }
        if !g.is_reg() {
            return Err(Error::NoEnt);
        }
        if punch {
            g.data.punch(&self.store, offset, length);
        } else {
            g.data
                .allocate(&self.store, offset, length)
                .map_err(|_| Error::NoSpace)?;
            if mode & FALLOC_FL_KEEP_SIZE == 0 && end > g.size {
                g.size = end;
            }
        }
        let t = now();
        g.mtime = t;
        g.ctime = t;
        Ok(())
    }

    /// LSEEK with `SEEK_DATA` / `SEEK_HOLE`.
    pub(crate) fn seek(&self, node: NodeId, offset: u64, whence: u32) -> Result<u64> {
        let id = self.index(node)?;
        let g = self.read_live(id)?;
        let data = match whence {
            SEEK_DATA => true,
            SEEK_HOLE => false,
            _ => return Err(Error::Inval),
        };
        g.data
            .seek(&self.store, offset, g.size, data)
            .ok_or(Error::Nxio)
    }

    /// COPY_FILE_RANGE: copies inside storage (holes arrive as written
    /// zeros, as tmpfs's generic copy writes them).
    pub(crate) fn copy_range(
        &self,
        node_in: NodeId,
        offset_in: u64,
        node_out: NodeId,
        offset_out: u64,
        len: u64,
    ) -> Result<u64> {
        let si = self.index(node_in)?;
        let di = self.index(node_out)?;
        if si == di {
            return self.copy_within(si, offset_in, offset_out, len);
        }
        let mut set = self.lock_set(&[si, di]);
        let (src, dst) = set.two(si, di);
        src.live()?;
        dst.live()?;
        if src.is_dir() || dst.is_dir() {
            return Err(Error::IsDir);
        }
        if offset_in >= src.size || len == 0 {
            return Ok(0);
        }
        let n = (src.size - offset_in).min(len);
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        if offset_out
            .checked_add(n as u64)
            .is_none_or(|e| e > FILE_BYTES_MAX)
        {
            return Err(Error::FileTooBig);
        }
        let pieces = src.data.pieces(&self.store, offset_in, n);
        let written = dst.data.write(&self.store, offset_out, n, pieces);
        let t = now();
        dst.mtime = t;
        dst.ctime = t;
        if written == 0 {
            return Err(Error::NoSpace);
        }
        dst.size = dst.size.max(offset_out + written as u64);
        Ok(written as u64)
    }

    /// COPY_FILE_RANGE within one file (the kernel refuses overlapping
    /// ranges), a chunk at a time through a stack buffer.
    fn copy_within(&self, id: u32, offset_in: u64, offset_out: u64, len: u64) -> Result<u64> {
        let mut g = self.write_live(id)?;
        if g.is_dir() {
            return Err(Error::IsDir);
        }
        if offset_in >= g.size || len == 0 {
            return Ok(0);
        }
        let n = (g.size - offset_in).min(len);
        if offset_out.checked_add(n).is_none_or(|e| e > FILE_BYTES_MAX) {
            return Err(Error::FileTooBig);
        }
        let mut buf = [0u8; CHUNK_BYTES];
        let mut done = 0u64;
        while done < n {
            let take = (n - done).min(CHUNK_BYTES as u64) as usize;
            g.data
                .read_into(&self.store, offset_in + done, &mut buf[..take]);
            let w = g.data.write(
                &self.store,
                offset_out + done,
                take,
                core::iter::once(&buf[..take]),
            );
            done += w as u64;
            if w < take {
                break;
            }
        }
        let t = now();
        g.mtime = t;
        g.ctime = t;
        if done == 0 {
            return Err(Error::NoSpace);
        }
        g.size = g.size.max(offset_out + done);
        Ok(done)
    }

    /// READLINK: short targets from the name arena (copied), long ones
    /// straight from their chunk.
    pub(crate) fn read_link(&self, node: NodeId, reply: ReplyData<'_>) -> Replied {
        let (_, g) = match self.read_node(node, Atime::Touch) {
            Ok(found) => found,
            Err(e) => return reply.error(e.errno()),
        };
        if !g.is_symlink() {
            return reply.error(Error::Inval.errno());
        }
        let len = usize::try_from(g.size).unwrap_or(0);
        if g.short_link != NONE {
            let mut buf = [0u8; SHORT_SYMLINK_BYTES];
            let len = len.min(SHORT_SYMLINK_BYTES);
            self.names.copy(g.short_link, &mut buf[..len]);
            return reply.data(&buf[..len]);
        }
        reply.data(g.data.piece(&self.store, 0, len))
    }

    /// READDIR from `offset` (a cookie: 0 at the start, 1 after `.`, 2
    /// after `..`, then the cookie of the last entry sent).
    pub(crate) fn list(&self, node: NodeId, offset: u64, mut reply: ReplyDirectory<'_>) -> Replied {
        let (id, g) = match self.read_node(node, Atime::Touch) {
            Ok(found) => found,
            Err(e) => return reply.error(e.errno()),
        };
        if !g.is_dir() {
            return reply.error(Error::NotDir.errno());
        }
        let ino = u64::from(id) + 1;
        if offset < 1 && !reply.add(ino, 1, FileType::Directory, b".") {
            return reply.ok();
        }
        if offset < 2 && !reply.add(u64::from(g.parent) + 1, 2, FileType::Directory, b"..") {
            return reply.ok();
        }
        let mut d = self.entries.first_after(&g.dir, id, offset);
        let mut name = [0u8; 256];
        while d != NONE {
            let e = self.entries.info(d);
            let n = &mut name[..e.len.min(255)];
            self.names.copy(e.name, n);
            if !reply.add(u64::from(e.child) + 1, e.cookie, e.kind, n) {
                break;
            }
            d = self.entries.next(d);
        }
        reply.ok()
    }

    /// READDIRPLUS: as READDIR, each entry with its attributes and one
    /// lookup reference (`.` and `..` get none: the kernel takes none).
    pub(crate) fn list_plus(
        &self,
        node: NodeId,
        offset: u64,
        mut reply: ReplyDirectoryPlus<'_>,
    ) -> Replied {
        let (id, g) = match self.read_node(node, Atime::Touch) {
            Ok(found) => found,
            Err(e) => return reply.error(e.errno()),
        };
        // The directory's lock is let go before `..` is locked.
        let parent = {
            let g = g;
            if !g.is_dir() {
                return reply.error(Error::NotDir.errno());
            }
            if offset < 1 {
                let e = self.entry(id, &g);
                if !reply.add(&e, 1, FileType::Directory, b".") {
                    return reply.ok();
                }
            }
            g.parent
        };
        if offset < 2 {
            let e = {
                let p = self.rlock(parent);
                self.entry(parent, &p)
            };
            if !reply.add(&e, 2, FileType::Directory, b"..") {
                return reply.ok();
            }
        }
        let mut cursor = offset;
        loop {
            // Under the directory's lock: the next entries, each pinned
            // (lookup count + 1) so that it outlives the lock.
            let mut batch: heapless::Vec<(u32, u64, FileType, usize, [u8; 256]), PLUS_BATCH> =
                heapless::Vec::new();
            let more = {
                let g = self.rlock(id);
                if !g.is_live() {
                    break;
                }
                let mut d = self.entries.first_after(&g.dir, id, cursor);
                while d != NONE && !batch.is_full() {
                    let e = self.entries.info(d);
                    let mut name = [0u8; 256];
                    let len = e.len.min(255);
                    self.names.copy(e.name, &mut name[..len]);
                    self.pin(e.child);
                    let _ = batch.push((e.child, e.cookie, e.kind, len, name));
                    d = self.entries.next(d);
                }
                d != NONE
            };
            let mut stopped = false;
            for (child, cookie, kind, len, name) in &batch {
                if stopped {
                    self.forget_n(*child, 1);
                    continue;
                }
                let entry: Option<Entry> = {
                    let c = self.rlock(*child);
                    c.is_live().then(|| self.entry(*child, &c))
                };
                match entry {
                    Some(e) if reply.add(&e, *cookie, *kind, &name[..*len]) => cursor = *cookie,
                    _ => {
                        // Did not fit (or vanished): not sent, not counted.
                        self.forget_n(*child, 1);
                        stopped = true;
                    }
                }
            }
            if stopped || !more {
                break;
            }
        }
        reply.ok()
    }

    /// ACCESS (only sent without `default_permissions`): the mode bits
    /// against the caller; root may read and write anything and execute
    /// what anyone may.
    pub(crate) fn check_access(&self, node: NodeId, uid: u32, gid: u32, mask: u32) -> Result<()> {
        let id = self.index(node)?;
        let g = self.read_live(id)?;
        let mask = mask & 7;
        if mask == 0 {
            return Ok(());
        }
        let granted = if uid == 0 {
            let any_x = g.mode & 0o111 != 0 || g.is_dir();
            6 | if any_x { 1 } else { 0 }
        } else if uid == g.uid {
            (g.mode >> 6) & 7
        } else if gid == g.gid {
            (g.mode >> 3) & 7
        } else {
            g.mode & 7
        };
        if granted & mask == mask {
            Ok(())
        } else {
            Err(Error::Access)
        }
    }
}

// A name copied for a reply fits the stack buffers above.
const _: () = assert!(SEGMENT_BYTES * 8 >= 255);
