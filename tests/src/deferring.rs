//! `Deferring<F>`: wraps a filesystem and holds back READs of one node in
//! deferred replies, as a slow backend would; everything else is the inner
//! filesystem's. Used to prove EAGAIN on pool exhaustion with real storage
//! (memfs) behind it: nothing written before or after may be lost.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use slabfuse::op::*;
use slabfuse::*;

/// The wrapper.
pub struct Deferring<F> {
    /// The filesystem that does the work.
    pub inner: F,
    /// READs of this node are deferred (0: none).
    pub slow_node: AtomicU64,
    held: Mutex<Vec<(Request, Read, ReplyData<'static>)>>,
}

impl<F> Deferring<F> {
    /// Wraps `inner`; no node is slow yet.
    pub fn new(inner: F) -> Deferring<F> {
        Deferring {
            inner,
            slow_node: AtomicU64::new(0),
            held: Mutex::new(Vec::new()),
        }
    }

    /// READs held now.
    pub fn held(&self) -> usize {
        self.held.lock().expect("lock").len()
    }
}

impl<F: Filesystem> Deferring<F> {
    /// Answers every held READ through the inner filesystem (from this
    /// thread, as a backend completing its work would).
    pub fn complete(&self) -> usize {
        let held: Vec<_> = std::mem::take(&mut *self.held.lock().expect("lock"));
        let n = held.len();
        for (req, op, reply) in held {
            let _ = self.inner.read(&req, op, reply);
        }
        n
    }
}

impl<F: Filesystem> Filesystem for Deferring<F> {
    fn init_flags(&self) -> u64 {
        self.inner.init_flags()
    }
    fn init(&self, conn: &ConnInfo) {
        self.inner.init(conn)
    }
    fn destroy(&self) {
        self.inner.destroy()
    }
    fn interrupt(&self, req: &Request, op: Interrupt) {
        self.inner.interrupt(req, op)
    }
    fn lookup(&self, req: &Request, op: Lookup<'_>, reply: ReplyEntry<'_>) -> Replied {
        self.inner.lookup(req, op, reply)
    }
    fn forget(&self, req: &Request, op: Forget) {
        self.inner.forget(req, op)
    }
    fn batch_forget(&self, req: &Request, op: BatchForget<'_>) {
        self.inner.batch_forget(req, op)
    }
    fn getattr(&self, req: &Request, op: GetAttr, reply: ReplyAttr<'_>) -> Replied {
        self.inner.getattr(req, op, reply)
    }
    fn setattr(&self, req: &Request, op: SetAttr, reply: ReplyAttr<'_>) -> Replied {
        self.inner.setattr(req, op, reply)
    }
    fn readlink(&self, req: &Request, op: ReadLink, reply: ReplyData<'_>) -> Replied {
        self.inner.readlink(req, op, reply)
    }
    fn symlink(&self, req: &Request, op: Symlink<'_>, reply: ReplyEntry<'_>) -> Replied {
        self.inner.symlink(req, op, reply)
    }
    fn mknod(&self, req: &Request, op: MkNod<'_>, reply: ReplyEntry<'_>) -> Replied {
        self.inner.mknod(req, op, reply)
    }
    fn mkdir(&self, req: &Request, op: MkDir<'_>, reply: ReplyEntry<'_>) -> Replied {
        self.inner.mkdir(req, op, reply)
    }
    fn unlink(&self, req: &Request, op: Unlink<'_>, reply: ReplyEmpty<'_>) -> Replied {
        self.inner.unlink(req, op, reply)
    }
    fn rmdir(&self, req: &Request, op: RmDir<'_>, reply: ReplyEmpty<'_>) -> Replied {
        self.inner.rmdir(req, op, reply)
    }
    fn rename(&self, req: &Request, op: Rename<'_>, reply: ReplyEmpty<'_>) -> Replied {
        self.inner.rename(req, op, reply)
    }
    fn link(&self, req: &Request, op: Link<'_>, reply: ReplyEntry<'_>) -> Replied {
        self.inner.link(req, op, reply)
    }
    fn open(&self, req: &Request, op: Open, reply: ReplyOpen<'_>) -> Replied {
        self.inner.open(req, op, reply)
    }
    fn read(&self, req: &Request, op: Read, reply: ReplyData<'_>) -> Replied {
        if op.node.0 != self.slow_node.load(Ordering::Relaxed) {
            return self.inner.read(req, op, reply);
        }
        match reply.defer() {
            Ok((deferred, replied)) => {
                self.held.lock().expect("lock").push((*req, op, deferred));
                replied
            }
            Err(replied) => replied,
        }
    }
    fn write(&self, req: &Request, op: Write<'_>, reply: ReplyWrite<'_>) -> Replied {
        self.inner.write(req, op, reply)
    }
    fn statfs(&self, req: &Request, op: StatFs, reply: ReplyStatfs<'_>) -> Replied {
        self.inner.statfs(req, op, reply)
    }
    fn release(&self, req: &Request, op: Release, reply: ReplyEmpty<'_>) -> Replied {
        self.inner.release(req, op, reply)
    }
    fn fsync(&self, req: &Request, op: Fsync, reply: ReplyEmpty<'_>) -> Replied {
        self.inner.fsync(req, op, reply)
    }
    fn setxattr(&self, req: &Request, op: SetXattr<'_>, reply: ReplyEmpty<'_>) -> Replied {
        self.inner.setxattr(req, op, reply)
    }
    fn getxattr(&self, req: &Request, op: GetXattr<'_>, reply: ReplyXattr<'_>) -> Replied {
        self.inner.getxattr(req, op, reply)
    }
    fn listxattr(&self, req: &Request, op: ListXattr, reply: ReplyXattr<'_>) -> Replied {
        self.inner.listxattr(req, op, reply)
    }
    fn removexattr(&self, req: &Request, op: RemoveXattr<'_>, reply: ReplyEmpty<'_>) -> Replied {
        self.inner.removexattr(req, op, reply)
    }
    fn flush(&self, req: &Request, op: Flush, reply: ReplyEmpty<'_>) -> Replied {
        self.inner.flush(req, op, reply)
    }
    fn opendir(&self, req: &Request, op: OpenDir, reply: ReplyOpen<'_>) -> Replied {
        self.inner.opendir(req, op, reply)
    }
    fn readdir(&self, req: &Request, op: ReadDir, reply: ReplyDirectory<'_>) -> Replied {
        self.inner.readdir(req, op, reply)
    }
    fn readdirplus(&self, req: &Request, op: ReadDir, reply: ReplyDirectoryPlus<'_>) -> Replied {
        self.inner.readdirplus(req, op, reply)
    }
    fn releasedir(&self, req: &Request, op: ReleaseDir, reply: ReplyEmpty<'_>) -> Replied {
        self.inner.releasedir(req, op, reply)
    }
    fn fsyncdir(&self, req: &Request, op: FsyncDir, reply: ReplyEmpty<'_>) -> Replied {
        self.inner.fsyncdir(req, op, reply)
    }
    fn access(&self, req: &Request, op: Access, reply: ReplyEmpty<'_>) -> Replied {
        self.inner.access(req, op, reply)
    }
    fn create(&self, req: &Request, op: Create<'_>, reply: ReplyCreate<'_>) -> Replied {
        self.inner.create(req, op, reply)
    }
    fn fallocate(&self, req: &Request, op: Fallocate, reply: ReplyEmpty<'_>) -> Replied {
        self.inner.fallocate(req, op, reply)
    }
    fn lseek(&self, req: &Request, op: Lseek, reply: ReplyLseek<'_>) -> Replied {
        self.inner.lseek(req, op, reply)
    }
    fn copy_file_range(&self, req: &Request, op: CopyFileRange, reply: ReplyWrite<'_>) -> Replied {
        self.inner.copy_file_range(req, op, reply)
    }
    fn tmpfile(&self, req: &Request, op: TmpFile, reply: ReplyCreate<'_>) -> Replied {
        self.inner.tmpfile(req, op, reply)
    }
    fn syncfs(&self, req: &Request, op: StatFs, reply: ReplyEmpty<'_>) -> Replied {
        self.inner.syncfs(req, op, reply)
    }
}
