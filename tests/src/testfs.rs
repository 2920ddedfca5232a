//! `StaticFs`: a test filesystem that answers every operation the runtime
//! serves **without allocating**, so proofs can count allocations of the
//! runtime alone.
//!
//! Layout: the root (1) holds `dir_entries` entries named `entry-<n>`; node
//! [`FILE_A`] is `FILE_SIZE` bytes of `'A'`, read zero-copy from a static
//! buffer; [`FILE_B`] is the same size of `'B'`, read through
//! `ReplyData::fill` (a copy into the worker's blocks); [`SLOW`] defers its
//! reads (answered later by [`StaticFs::complete_deferred`], or `EINTR` on
//! INTERRUPT). xattr `user.sN` has a value of N bytes of `'X'`. WRITEs are
//! checked against the byte [`WRITE_BYTE`] and not stored. No byte any reply
//! carries is ever [`CANARY`] (0xEE).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use slabfuse::op::*;
use slabfuse::*;

/// A regular file read zero-copy.
pub const FILE_A: NodeId = NodeId(2);
/// A regular file read through the worker's blocks.
pub const FILE_B: NodeId = NodeId(3);
/// A file whose reads are deferred.
pub const SLOW: NodeId = NodeId(4);
/// Size of `FILE_A` and `FILE_B`.
pub const FILE_SIZE: u64 = 32 << 20;
/// What WRITE payloads must consist of.
pub const WRITE_BYTE: u8 = b'W';
/// The byte the no-stale-bytes proof fills free memory with.
pub const CANARY: u8 = 0xEE;
/// Longest xattr value served.
pub const XATTR_MAX: usize = 65536;

static A_BYTES: [u8; 65536] = [b'A'; 65536];
static B_BYTES: [u8; 65536] = [b'B'; 65536];
static X_BYTES: [u8; XATTR_MAX] = [b'X'; XATTR_MAX];

/// The filesystem.
pub struct StaticFs {
    /// Entries in the root directory.
    pub dir_entries: AtomicUsize,
    /// Deferred reads waiting for completion.
    deferred: spin::Mutex<heapless::Vec<ReplyData<'static>, 64>>,
    /// WRITE payload bytes that were not `WRITE_BYTE`.
    pub bad_write_bytes: AtomicU64,
    /// WRITE payload bytes seen.
    pub write_bytes: AtomicU64,
    /// INTERRUPTs seen.
    pub interrupts: AtomicU64,
    /// Lookups minus forgets.
    pub lookups: AtomicU64,
    /// INIT flags to ask for instead of the default set (0 = default).
    pub init_flags_override: AtomicU64,
}

impl Default for StaticFs {
    fn default() -> Self {
        StaticFs {
            dir_entries: AtomicUsize::new(100),
            deferred: spin::Mutex::new(heapless::Vec::new()),
            bad_write_bytes: AtomicU64::new(0),
            write_bytes: AtomicU64::new(0),
            interrupts: AtomicU64::new(0),
            lookups: AtomicU64::new(0),
            init_flags_override: AtomicU64::new(0),
        }
    }
}

fn attr(node: NodeId) -> Attr {
    let dir = node == NodeId::ROOT || node.0 >= 1000;
    Attr {
        ino: node.0,
        size: if dir { 0 } else { FILE_SIZE },
        blocks: if dir { 0 } else { FILE_SIZE / 512 },
        atime: Timestamp::new(1_000_000, 1),
        mtime: Timestamp::new(1_000_001, 2),
        ctime: Timestamp::new(1_000_002, 3),
        mode: if dir { 0o40755 } else { 0o100644 },
        nlink: if dir { 2 } else { 1 },
        uid: 0,
        gid: 0,
        rdev: 0,
        blksize: 4096,
    }
}

fn entry(node: NodeId) -> Entry {
    Entry {
        node,
        generation: 1,
        attr: attr(node),
        entry_ttl: Duration::from_secs(1),
        attr_ttl: Duration::from_secs(1),
    }
}

/// Writes `entry-<n>` into `buf`; returns its length. No allocation.
pub fn entry_name(n: usize, buf: &mut [u8; 32]) -> usize {
    let prefix = b"entry-";
    buf[..prefix.len()].copy_from_slice(prefix);
    let mut digits = [0u8; 20];
    let mut k = 0;
    let mut v = n;
    loop {
        digits[k] = b'0' + (v % 10) as u8;
        k += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for i in 0..k {
        buf[prefix.len() + i] = digits[k - 1 - i];
    }
    prefix.len() + k
}

/// Parses the N of `user.sN`.
fn xattr_len(name: &[u8]) -> Option<usize> {
    let digits = name.strip_prefix(b"user.s")?;
    if digits.is_empty() || digits.len() > 6 {
        return None;
    }
    let mut n = 0usize;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n * 10 + usize::from(d - b'0');
    }
    (n <= XATTR_MAX).then_some(n)
}

impl StaticFs {
    /// Answers every deferred read with `len` bytes of `'A'` (through the
    /// deferred reply's own blocks). Returns how many were answered.
    pub fn complete_deferred(&self, len: usize) -> usize {
        let mut n = 0;
        loop {
            let Some(d) = self.deferred.lock().pop() else {
                return n;
            };
            let _ = d.fill(|w| {
                let mut left = len.min(w.remaining());
                while left > 0 {
                    let k = left.min(A_BYTES.len());
                    w.put(&A_BYTES[..k]).map_err(|_| Errno::IO)?;
                    left -= k;
                }
                Ok(())
            });
            n += 1;
        }
    }

    /// Deferred reads outstanding.
    pub fn deferred_count(&self) -> usize {
        self.deferred.lock().len()
    }
}

impl Filesystem for StaticFs {
    fn init_flags(&self) -> u64 {
        match self.init_flags_override.load(Ordering::Relaxed) {
            0 => init::DEFAULT_INIT_FLAGS | init::READDIRPLUS | abi::FUSE_ATOMIC_O_TRUNC,
            flags => flags,
        }
    }

    fn interrupt(&self, _: &Request, op: Interrupt) {
        self.interrupts.fetch_add(1, Ordering::Relaxed);
        let mut deferred = self.deferred.lock();
        if let Some(i) = deferred.iter().position(|d| d.request() == op.target) {
            let d = deferred.swap_remove(i);
            drop(deferred);
            let _ = d.error(Errno::INTR);
        }
    }

    fn lookup(&self, _: &Request, op: Lookup<'_>, reply: ReplyEntry<'_>) -> Replied {
        let node = match op.name {
            b"a" => FILE_A,
            b"b" => FILE_B,
            b"slow" => SLOW,
            b"dir" => NodeId(1000),
            n if n.starts_with(b"entry-") => NodeId(10_000),
            _ => return reply.error(Errno::NOENT),
        };
        self.lookups.fetch_add(1, Ordering::Relaxed);
        reply.entry(&entry(node))
    }

    fn forget(&self, _: &Request, op: Forget) {
        self.lookups.fetch_sub(
            op.nlookup.min(self.lookups.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
    }

    fn getattr(&self, _: &Request, op: GetAttr, reply: ReplyAttr<'_>) -> Replied {
        reply.attr(&attr(op.node), Duration::from_secs(1))
    }

    fn setattr(&self, _: &Request, op: SetAttr, reply: ReplyAttr<'_>) -> Replied {
        let mut a = attr(op.node);
        if let Some(m) = op.mode {
            a.mode = (a.mode & 0o170000) | (m & 0o7777);
        }
        reply.attr(&a, Duration::from_secs(1))
    }

    fn readlink(&self, _: &Request, _: ReadLink, reply: ReplyData<'_>) -> Replied {
        reply.data(b"target/of/the/link")
    }

    fn symlink(&self, _: &Request, _: Symlink<'_>, reply: ReplyEntry<'_>) -> Replied {
        reply.entry(&entry(NodeId(20)))
    }

    fn mknod(&self, _: &Request, _: MkNod<'_>, reply: ReplyEntry<'_>) -> Replied {
        reply.entry(&entry(NodeId(21)))
    }

    fn mkdir(&self, _: &Request, _: MkDir<'_>, reply: ReplyEntry<'_>) -> Replied {
        reply.entry(&entry(NodeId(1001)))
    }

    fn unlink(&self, _: &Request, _: Unlink<'_>, reply: ReplyEmpty<'_>) -> Replied {
        reply.ok()
    }

    fn rmdir(&self, _: &Request, _: RmDir<'_>, reply: ReplyEmpty<'_>) -> Replied {
        reply.error(Errno::NOTEMPTY)
    }

    fn rename(&self, _: &Request, op: Rename<'_>, reply: ReplyEmpty<'_>) -> Replied {
        if op.flags & rename_flags::RENAME_NOREPLACE != 0 {
            return reply.error(Errno::EXIST);
        }
        reply.ok()
    }

    fn link(&self, _: &Request, op: Link<'_>, reply: ReplyEntry<'_>) -> Replied {
        reply.entry(&entry(op.node))
    }

    fn open(&self, _: &Request, _: Open, reply: ReplyOpen<'_>) -> Replied {
        reply.opened(FileHandle(7), abi::FOPEN_KEEP_CACHE)
    }

    fn read(&self, _: &Request, op: Read, reply: ReplyData<'_>) -> Replied {
        let size = op.size as usize;
        let left = FILE_SIZE.saturating_sub(op.offset) as usize;
        // Short at end of file, like any file; every third read also asks
        // for fewer bytes than requested to exercise short replies.
        let mut n = size.min(left);
        if op.offset % 3 == 1 {
            n /= 2;
        }
        match op.node {
            FILE_A => {
                let mut parts = DataParts::new();
                let mut remaining = n;
                while remaining > 0 {
                    let k = remaining.min(A_BYTES.len());
                    if parts.push(&A_BYTES[..k]).is_err() {
                        return reply.error(Errno::IO);
                    }
                    remaining -= k;
                }
                reply.parts(&parts)
            }
            FILE_B => reply.fill(|w| {
                let mut remaining = n;
                while remaining > 0 {
                    let k = remaining.min(B_BYTES.len());
                    w.put(&B_BYTES[..k]).map_err(|_| Errno::IO)?;
                    remaining -= k;
                }
                Ok(())
            }),
            SLOW => match reply.defer() {
                Ok((d, replied)) => {
                    if let Err(d) = self.deferred.lock().push(d) {
                        let _ = d.error(Errno::BUSY);
                    }
                    replied
                }
                Err(replied) => replied,
            },
            _ => reply.error(Errno::ISDIR),
        }
    }

    fn write(&self, _: &Request, op: Write<'_>, reply: ReplyWrite<'_>) -> Replied {
        let mut bad = 0u64;
        for s in op.data.slices() {
            bad += s.iter().filter(|&&b| b != WRITE_BYTE).count() as u64;
        }
        self.bad_write_bytes.fetch_add(bad, Ordering::Relaxed);
        self.write_bytes
            .fetch_add(op.data.len() as u64, Ordering::Relaxed);
        reply.written(op.data.len() as u64)
    }

    fn statfs(&self, _: &Request, _: StatFs, reply: ReplyStatfs<'_>) -> Replied {
        reply.statfs(&Statfs {
            blocks: 1000,
            bfree: 500,
            bavail: 500,
            files: 100,
            ffree: 50,
            bsize: 4096,
            namelen: 255,
            frsize: 4096,
        })
    }

    fn release(&self, _: &Request, _: Release, reply: ReplyEmpty<'_>) -> Replied {
        reply.ok()
    }

    fn fsync(&self, _: &Request, _: Fsync, reply: ReplyEmpty<'_>) -> Replied {
        reply.ok()
    }

    fn setxattr(&self, _: &Request, op: SetXattr<'_>, reply: ReplyEmpty<'_>) -> Replied {
        if op.flags & xattr_flags::XATTR_REPLACE != 0 {
            return reply.error(Errno::NODATA);
        }
        reply.ok()
    }

    fn getxattr(&self, _: &Request, op: GetXattr<'_>, reply: ReplyXattr<'_>) -> Replied {
        match xattr_len(op.name) {
            Some(n) => reply.value(&X_BYTES[..n]),
            None => reply.error(Errno::NODATA),
        }
    }

    fn listxattr(&self, _: &Request, _: ListXattr, reply: ReplyXattr<'_>) -> Replied {
        reply.names([&b"user.s1"[..], b"user.s100", b"user.s4000"].into_iter())
    }

    fn removexattr(&self, _: &Request, _: RemoveXattr<'_>, reply: ReplyEmpty<'_>) -> Replied {
        reply.ok()
    }

    fn flush(&self, _: &Request, _: Flush, reply: ReplyEmpty<'_>) -> Replied {
        reply.ok()
    }

    fn readdir(&self, _: &Request, op: ReadDir, mut reply: ReplyDirectory<'_>) -> Replied {
        let total = self.dir_entries.load(Ordering::Relaxed);
        let mut name = [0u8; 32];
        for i in op.offset as usize..total {
            let len = entry_name(i, &mut name);
            if !reply.add(
                10_000 + i as u64,
                i as u64 + 1,
                FileType::RegularFile,
                &name[..len],
            ) {
                break;
            }
        }
        reply.ok()
    }

    fn readdirplus(&self, _: &Request, op: ReadDir, mut reply: ReplyDirectoryPlus<'_>) -> Replied {
        let total = self.dir_entries.load(Ordering::Relaxed);
        let mut name = [0u8; 32];
        for i in op.offset as usize..total {
            let len = entry_name(i, &mut name);
            let e = entry(NodeId(10_000 + i as u64));
            if !reply.add(&e, i as u64 + 1, FileType::RegularFile, &name[..len]) {
                break;
            }
        }
        reply.ok()
    }

    fn fsyncdir(&self, _: &Request, _: FsyncDir, reply: ReplyEmpty<'_>) -> Replied {
        reply.ok()
    }

    fn access(&self, _: &Request, _: Access, reply: ReplyEmpty<'_>) -> Replied {
        reply.ok()
    }

    fn create(&self, _: &Request, _: Create<'_>, reply: ReplyCreate<'_>) -> Replied {
        reply.created(&entry(NodeId(22)), FileHandle(8), 0)
    }

    fn fallocate(&self, _: &Request, _: Fallocate, reply: ReplyEmpty<'_>) -> Replied {
        reply.ok()
    }

    fn lseek(&self, _: &Request, op: Lseek, reply: ReplyLseek<'_>) -> Replied {
        if op.offset >= FILE_SIZE {
            return reply.error(Errno::NXIO);
        }
        reply.offset(if op.whence == whence::SEEK_HOLE {
            FILE_SIZE
        } else {
            op.offset
        })
    }

    fn copy_file_range(&self, _: &Request, op: CopyFileRange, reply: ReplyWrite<'_>) -> Replied {
        reply.written(op.len.min(FILE_SIZE))
    }

    fn tmpfile(&self, _: &Request, _: TmpFile, reply: ReplyCreate<'_>) -> Replied {
        reply.created(&entry(NodeId(23)), FileHandle(9), 0)
    }

    fn syncfs(&self, _: &Request, _: StatFs, reply: ReplyEmpty<'_>) -> Replied {
        reply.ok()
    }
}
