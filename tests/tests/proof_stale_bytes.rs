//! Proof: **no stale bytes in replies** — blocks are reused across requests
//! and workers, yet no reply ever carries a byte its request did not
//! produce: neither the canary every unused byte of the slab starts with,
//! nor the data of an earlier request.
//!
//! The slab is filled with [`CANARY`] before serving; then 16 MiB WRITEs of
//! `'W'` fill the workers' blocks with old data; then READs shorter than
//! asked, at and past EOF, through the zero-copy path (`'A'`) and through
//! the worker's blocks (`'B'`), deferred READs completed in pool blocks,
//! READDIR/READDIRPLUS and GETXATTR/LISTXATTR replies of every size are
//! checked byte by byte.

// Test code: a panic here is a failed test, not a crashed daemon.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use slabfuse::abi::{self, Opcode};
use slabfuse::pool::BackingRequest;
use slabfuse::{Config, Session, WorkerExit};
use slabfuse_tests::sim::{self, SimKernel, cstr};
use slabfuse_tests::testfs::{self, CANARY, FILE_SIZE, StaticFs};
use zerocopy::{FromBytes, IntoBytes};

fn read(k: &mut SimKernel, node: u64, offset: u64, size: u32) -> Vec<u8> {
    let arg = abi::fuse_read_in {
        offset,
        size,
        ..Default::default()
    };
    let u = k.request(Opcode::FUSE_READ, node, &[arg.as_bytes()]);
    let r = k.expect_reply(u);
    assert_eq!(r.error, 0);
    r.payload
}

fn fill_workers_with_old_data(k: &mut SimKernel) {
    let data = vec![testfs::WRITE_BYTE; 16 << 20];
    for _ in 0..4 {
        let wr = abi::fuse_write_in {
            size: 16 << 20,
            ..Default::default()
        };
        let u = k.request(Opcode::FUSE_WRITE, 2, &[wr.as_bytes(), &data]);
        assert_eq!(k.expect_reply(u).error, 0);
    }
}

/// The bytes the READ must consist of: `fill` for its whole length, which
/// is what StaticFs serves (shorter at EOF, halved when offset % 3 == 1).
fn expect_read(payload: &[u8], fill: u8, offset: u64, size: u32) {
    let mut n = (size as u64).min(FILE_SIZE.saturating_sub(offset)) as usize;
    if offset % 3 == 1 {
        n /= 2;
    }
    assert_eq!(payload.len(), n, "read of {size} at {offset}");
    if let Some(i) = payload.iter().position(|&b| b != fill) {
        panic!(
            "read of {size} at {offset}: byte {i} is {:#x}, not {fill:#x} ({})",
            payload[i],
            if payload[i] == CANARY {
                "the canary"
            } else {
                "another request's data"
            }
        );
    }
}

fn check_dirents(payload: &[u8], plus: bool) -> u64 {
    let fixed = if plus { 152 } else { 24 };
    let mut at = 0;
    let mut last = 0;
    while at < payload.len() {
        let (d, _) = abi::fuse_dirent::read_from_prefix(&payload[at + fixed - 24..]).unwrap();
        let name = &payload[at + fixed..at + fixed + d.namelen as usize];
        assert!(name.starts_with(b"entry-") && name[6..].iter().all(u8::is_ascii_digit));
        let rec = abi::fuse_rec_align(fixed + d.namelen as usize);
        let pad = &payload[at + fixed + d.namelen as usize..at + rec];
        assert!(
            pad.iter().all(|&b| b == 0),
            "dirent padding {pad:?} is not zeros"
        );
        last = d.off;
        at += rec;
    }
    assert_eq!(at, payload.len(), "records fill the reply exactly");
    last
}

#[test]
fn no_stale_bytes_in_replies() {
    let (channel, mut k) = sim::pair();
    let config = Config {
        workers: 2,
        max_message: 16 << 20,
        max_pages_limit: Some(4096),
        block_size: Some(1 << 20),
        spare_blocks: Some(32),
        backing: BackingRequest::Thp,
        lock_memory: false,
        ..Config::default()
    };
    let session = Session::new(config, StaticFs::default(), Box::new(channel)).unwrap();
    session.fill_unused_memory(CANARY);
    let workers: Vec<_> = session
        .workers()
        .into_iter()
        .map(|mut w| std::thread::spawn(move || w.run()))
        .collect();
    let fs = std::sync::Arc::clone(session.filesystem());
    k.init(sim::KERNEL_FLAGS);

    // Reads of many sizes and offsets, both paths, with old data around.
    let mut rng = slabfuse_tests::Rng::new(slabfuse_tests::seed(5));
    let mut checked = 0u64;
    for round in 0..6 {
        fill_workers_with_old_data(&mut k);
        for i in 0..60u64 {
            let size = match i % 4 {
                0 => 1 + rng.below(4096) as u32,
                1 => 1 + rng.below(1 << 20) as u32,
                2 => (16 << 20) - rng.below(4096) as u32,
                _ => 1 + rng.below(16 << 20) as u32,
            };
            let offset = match i % 5 {
                0 => FILE_SIZE - rng.below(8192),
                1 => FILE_SIZE + rng.below(4096),
                _ => rng.below(FILE_SIZE),
            };
            let node = if (i + round) % 2 == 0 { 2 } else { 3 };
            let fill = if node == 2 { b'A' } else { b'B' };
            let payload = read(&mut k, node, offset, size);
            expect_read(&payload, fill, offset, size);
            checked += payload.len() as u64;
        }
    }

    // Deferred reads answered in pool blocks that held only the canary.
    for size in [1u32, 100, 4095, 65536, 1 << 20, 3 << 20] {
        let arg = abi::fuse_read_in {
            size,
            ..Default::default()
        };
        let u = k.request(Opcode::FUSE_READ, testfs::SLOW.0, &[arg.as_bytes()]);
        while fs.deferred_count() == 0 {
            std::thread::yield_now();
        }
        // Answer with fewer bytes than the blocks hold.
        fs.complete_deferred(size as usize / 2);
        let r = k.expect_reply(u);
        assert_eq!(r.payload.len(), size as usize / 2);
        assert!(
            r.payload.iter().all(|&b| b == b'A'),
            "deferred reply of {size}"
        );
    }

    // Directory listings of every reply size.
    fs.dir_entries
        .store(3000, std::sync::atomic::Ordering::Relaxed);
    for plus in [false, true] {
        let opcode = if plus {
            Opcode::FUSE_READDIRPLUS
        } else {
            Opcode::FUSE_READDIR
        };
        for size in (40..4200u32).step_by(37) {
            let arg = abi::fuse_read_in {
                offset: u64::from(size) % 2000,
                size,
                ..Default::default()
            };
            let u = k.request(opcode, 1, &[arg.as_bytes()]);
            let r = k.expect_reply(u);
            assert!(r.payload.len() <= size as usize);
            check_dirents(&r.payload, plus);
        }
        fill_workers_with_old_data(&mut k);
    }

    // Xattr values and lists of every size.
    for n in (0..=8192usize).step_by(61).chain([65535, 65536]) {
        let name = format!("user.s{n}");
        for size in [0u32, n as u32, n as u32 + 100] {
            let g = abi::fuse_getxattr_in { size, padding: 0 };
            let u = k.request(
                Opcode::FUSE_GETXATTR,
                2,
                &[g.as_bytes(), &cstr(name.as_bytes())],
            );
            let r = k.expect_reply(u);
            if size == 0 {
                assert_eq!(r.parse::<abi::fuse_getxattr_out>().size as usize, n);
            } else {
                assert_eq!(r.payload.len(), n);
                assert!(r.payload.iter().all(|&b| b == b'X'), "xattr of {n}");
            }
        }
    }
    for size in [0u32, 28, 29, 1000] {
        let g = abi::fuse_getxattr_in { size, padding: 0 };
        let u = k.request(Opcode::FUSE_LISTXATTR, 2, &[g.as_bytes()]);
        let r = k.expect_reply(u);
        match size {
            0 => assert_eq!(r.parse::<abi::fuse_getxattr_out>().size, 29),
            28 => assert_eq!(r.error, -libc::ERANGE),
            _ => assert_eq!(r.payload, b"user.s1\0user.s100\0user.s4000\0"),
        }
    }
    eprintln!("checked {checked} bytes of READ replies, every dirent and xattr reply size");

    k.hang_up();
    for w in workers {
        assert_eq!(w.join().unwrap(), Ok(WorkerExit::Unmounted));
    }
    let _ = Duration::ZERO;
}

/// The same promise through a real mount of memfs: the runtime's slab starts
/// full of the canary, files hold distinct bytes, and every READ (short,
/// at and past EOF, after other files' data passed through the same
/// blocks), every listing and every xattr value the client sees holds only
/// what was written there.
#[test]
fn no_stale_bytes_through_memfs() {
    use slabfuse::mount::MountOptions;
    use slabfuse_memfs::{MemFs, MemFsConfig};
    use slabfuse_tests::{AlignedBuf, Mounted, open_direct};
    use std::os::unix::fs::FileExt;
    slabfuse_tests::require_mounts!();
    let memfs = MemFs::new(&MemFsConfig {
        size_bytes: 128 << 20,
        inodes: 5000,
        backing: BackingRequest::Thp,
        lock: false,
        ..MemFsConfig::default()
    })
    .unwrap();
    let config = Config {
        workers: 2,
        backing: BackingRequest::Thp,
        lock_memory: false,
        ..Config::default()
    };
    let options = MountOptions {
        fsname: "slabfuse-stale".into(),
        ..MountOptions::default()
    };
    let m = Mounted::new_filled(memfs, config, options, Some(CANARY));
    let mut rng = slabfuse_tests::Rng::new(slabfuse_tests::seed(77));
    // Files of odd sizes, each one byte value, written with O_DIRECT.
    let sizes = [1usize, 4095, 4097, 100_000, (1 << 20) + 3, 5 << 20];
    for (i, &size) in sizes.iter().enumerate() {
        let byte = b'a' + i as u8;
        std::fs::write(m.path().join(format!("f{i}")), vec![byte; size]).unwrap();
    }
    let mut checked = 0usize;
    for _ in 0..300 {
        let i = rng.below(sizes.len() as u64) as usize;
        let size = sizes[i];
        let byte = b'a' + i as u8;
        // Another file's data through the workers' blocks first.
        let other =
            open_direct(&m.path().join(format!("f{}", (i + 1) % sizes.len())), 0, 0).unwrap();
        let mut junk = AlignedBuf::zeroed(1 << 20);
        let _ = other.read_at(&mut junk, 0).unwrap();
        // Then a read of random length at a random (aligned) offset,
        // often past the end.
        let len = 4096 * (1 + rng.below(256) as usize);
        let offset = 4096 * rng.below((size as u64 + 8192) / 4096 + 1);
        let f = open_direct(&m.path().join(format!("f{i}")), 0, 0).unwrap();
        let mut buf = AlignedBuf::zeroed(len);
        buf.fill(CANARY.wrapping_add(1));
        let n = f.read_at(&mut buf, offset).unwrap();
        let expect = (size as u64).saturating_sub(offset).min(len as u64) as usize;
        assert_eq!(
            n, expect,
            "read of {len} at {offset} from a {size}-byte file"
        );
        if let Some(j) = buf[..n].iter().position(|&b| b != byte) {
            panic!("byte {j} of a read of f{i} is {:#x}, not {byte:#x}", buf[j]);
        }
        checked += n;
    }
    // Listings of every length: names only, exactly as created.
    let dir = m.path().join("dir");
    std::fs::create_dir(&dir).unwrap();
    for count in [1usize, 7, 60, 333, 2000] {
        for k in 0..count {
            let _ = std::fs::File::create(dir.join(format!("n{k:04}-{}", "x".repeat(k % 40))));
        }
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names.len(), count);
        for (k, name) in names.iter().enumerate() {
            assert_eq!(name, &format!("n{k:04}-{}", "x".repeat(k % 40)));
        }
    }
    // xattr values of every size class read back exactly.
    let path =
        std::ffi::CString::new(m.path().join("f0").into_os_string().into_encoded_bytes()).unwrap();
    for n in [0usize, 1, 100, 4095, 4096, 4097, 65536] {
        let name = std::ffi::CString::new(format!("user.v{n}")).unwrap();
        let value = vec![b'v'; n];
        // SAFETY: valid NUL-terminated path and name; `value` is live.
        let rc =
            unsafe { libc::setxattr(path.as_ptr(), name.as_ptr(), value.as_ptr().cast(), n, 0) };
        assert_eq!(rc, 0, "setxattr of {n} bytes");
        let mut back = vec![CANARY; n + 64];
        // SAFETY: as above; `back` is writable for its whole length.
        let got = unsafe {
            libc::getxattr(
                path.as_ptr(),
                name.as_ptr(),
                back.as_mut_ptr().cast(),
                back.len(),
            )
        };
        assert_eq!(got, n as isize);
        assert!(back[..n].iter().all(|&b| b == b'v'), "xattr of {n} bytes");
    }
    eprintln!("checked {checked} bytes of O_DIRECT reads through memfs");
}
