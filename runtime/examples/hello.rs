//! The smallest slabfuse filesystem: one read-only file, `hello`.
//!
//! `cargo run -p slabfuse --features std --example hello -- MOUNTPOINT`
//! (as root, or with fusermount3); Ctrl-C or `umount MOUNTPOINT` ends it.

use std::ffi::CString;
use std::time::Duration;

use slabfuse::mount::{MountOptions, MountpointGuard};
use slabfuse::op::{GetAttr, Lookup, Open, Read, ReadDir};
use slabfuse::{
    Attr, Config, DevFuse, Entry, Errno, FileHandle, FileType, Filesystem, NodeId, Replied,
    ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry, ReplyOpen, Request, Session,
};

const TEXT: &[u8] = b"Hello from slabfuse!\n";
const FILE: NodeId = NodeId(2);

struct Hello;

fn attr(node: NodeId) -> Attr {
    let (mode, size, nlink) = if node == NodeId::ROOT {
        (0o40755, 0, 2)
    } else {
        (0o100444, TEXT.len() as u64, 1)
    };
    Attr {
        ino: node.0,
        size,
        blocks: size.div_ceil(512),
        mode,
        nlink,
        ..Attr::default()
    }
}

impl Filesystem for Hello {
    fn lookup(&self, _: &Request, op: Lookup<'_>, reply: ReplyEntry<'_>) -> Replied {
        if op.parent != NodeId::ROOT || op.name != b"hello" {
            return reply.error(Errno::NOENT);
        }
        reply.entry(&Entry {
            node: FILE,
            generation: 1,
            attr: attr(FILE),
            entry_ttl: Duration::from_secs(1),
            attr_ttl: Duration::from_secs(1),
        })
    }

    fn getattr(&self, _: &Request, op: GetAttr, reply: ReplyAttr<'_>) -> Replied {
        match op.node {
            NodeId::ROOT | FILE => reply.attr(&attr(op.node), Duration::from_secs(1)),
            _ => reply.error(Errno::NOENT),
        }
    }

    fn open(&self, _: &Request, op: Open, reply: ReplyOpen<'_>) -> Replied {
        if op.flags & libc::O_ACCMODE != libc::O_RDONLY {
            return reply.error(Errno::ACCESS);
        }
        reply.opened(FileHandle(0), 0)
    }

    fn read(&self, _: &Request, op: Read, reply: ReplyData<'_>) -> Replied {
        let start = (op.offset as usize).min(TEXT.len());
        reply.data(&TEXT[start..])
    }

    fn readdir(&self, _: &Request, op: ReadDir, mut reply: ReplyDirectory<'_>) -> Replied {
        let entries = [
            (1, FileType::Directory, &b"."[..]),
            (1, FileType::Directory, b".."),
            (2, FileType::RegularFile, b"hello"),
        ];
        for (i, (ino, kind, name)) in entries.iter().enumerate().skip(op.offset as usize) {
            if !reply.add(*ino, i as u64 + 1, *kind, name) {
                break;
            }
        }
        reply.ok()
    }
}

fn main() {
    let Some(mountpoint) = std::env::args().nth(1) else {
        eprintln!("usage: hello MOUNTPOINT");
        std::process::exit(2);
    };
    let path = CString::new(mountpoint).expect("no NUL in the path");
    let _claim = MountpointGuard::claim(&path).unwrap_or_else(|e| {
        eprintln!("hello: {e}");
        std::process::exit(1)
    });
    let options = MountOptions {
        fsname: "hello".into(),
        subtype: Some("hello".into()),
        ..MountOptions::default()
    };
    let (fd, method) = slabfuse::mount::mount(&path, &options).unwrap_or_else(|e| {
        eprintln!("hello: {e}");
        std::process::exit(1)
    });
    let config = Config {
        workers: 1,
        max_message: 1 << 20,
        max_pages_limit: slabfuse::plan::read_max_pages_limit(),
        ..Config::default()
    };
    let session = match Session::new(config, Hello, Box::new(DevFuse::new(fd))) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hello: {e}");
            let _ = slabfuse::mount::unmount(&path, method, true);
            std::process::exit(1);
        }
    };
    eprintln!("hello: {}", session.plan().negotiation());
    for mut w in session.workers() {
        match w.run() {
            Ok(exit) => eprintln!("hello: worker ended: {exit:?}"),
            Err(e) => eprintln!("hello: worker failed: {e}"),
        }
    }
    eprintln!("hello: {} requests", session.stats().requests);
}
