//! A full memfs: `ENOSPC` exactly where tmpfs gives it, nothing written
//! before is lost, it keeps serving, and freeing makes room again.
//!
//! Each test runs the same sequence on memfs and on a tmpfs of the same
//! size (8 MiB of data, or 64 inodes) and compares every result.

mod memfs_util;

use std::path::Path;

use memfs_util::*;
use slabfuse_memfs::MemFsConfig;

const MIB: usize = 1 << 20;

/// The byte at `offset` of file `n` (self-describing, to check later).
fn pattern(n: usize, offset: usize) -> u8 {
    (n.wrapping_mul(131) ^ offset.wrapping_mul(7) ^ (offset >> 12)) as u8
}

fn file_bytes(n: usize, len: usize) -> Vec<u8> {
    (0..len).map(|i| pattern(n, i)).collect()
}

/// Fills `root` with 1 MiB writes to files f0, f1, … until a write fails;
/// returns every write's result, then checks every byte written.
fn fill(root: &Path) -> Vec<R<usize>> {
    let mut results = Vec::new();
    let mut written = Vec::new();
    'files: for n in 0..64 {
        let fd = open(
            &root.join(format!("f{n}")),
            libc::O_CREAT | libc::O_WRONLY,
            0o644,
        )
        .expect("create");
        let data = file_bytes(n, 3 * MIB);
        let mut off = 0;
        while off < data.len() {
            let r = pwrite(&fd, &data[off..off + MIB], off as u64);
            results.push(r);
            match r {
                Ok(k) => off += k,
                Err(_) => {
                    written.push(off);
                    break 'files;
                }
            }
            if r != Ok(MIB) {
                // A short write: the next one finds no space at all.
                continue;
            }
        }
        written.push(off);
    }
    for (n, &len) in written.iter().enumerate() {
        let got = read_all(&root.join(format!("f{n}"))).expect("read back");
        assert_eq!(got.len(), len, "f{n} length");
        assert!(
            got == file_bytes(n, len),
            "f{n}: bytes written before ENOSPC changed"
        );
    }
    results
}

#[test]
fn data_budget_enospc_matches_tmpfs_and_loses_nothing() {
    slabfuse_tests::require_mounts!();
    let memfs = memfs(MemFsConfig {
        size_bytes: 8 << 20,
        inodes: 1024,
        ..MemFsConfig::default()
    });
    let tmpfs = Tmpfs::mount("size=8m,nr_inodes=1024");
    let mut outcomes = Vec::new();
    for root in [memfs.path(), tmpfs.path()] {
        let fills = fill(root);
        let full = statvfs(root);
        // Full: more writes fail, the filesystem still serves reads, lists
        // and metadata changes that need no data space.
        let extra =
            open(&root.join("extra"), libc::O_CREAT | libc::O_WRONLY, 0o644).expect("create");
        let w = pwrite(&extra, &[1u8; 4096], 0);
        let listing = list(root).expect("list");
        mkdir(&root.join("dir"), 0o755).expect("mkdir on a data-full fs");
        let fa = fallocate(&extra, 0, 0, 8192);
        // Freeing makes room: delete the first file and write again.
        unlink(&root.join("f0")).expect("unlink");
        let after = pwrite(&extra, &file_bytes(99, 2 * MIB), 0);
        let back = read_all(&root.join("extra")).expect("read");
        let partial = {
            // Leave exactly three chunks free, then ask for five.
            let free = statvfs(root).f_bfree as usize;
            let filler =
                open(&root.join("filler"), libc::O_CREAT | libc::O_WRONLY, 0o644).expect("create");
            let gap = free.saturating_sub(3) * 4096;
            let r1 = pwrite(&filler, &vec![5u8; gap], 0);
            let r2 = pwrite(&filler, &[6u8; 5 * 4096], gap as u64);
            let r3 = pwrite(&filler, &[7u8; 4096], (gap + 5 * 4096) as u64);
            (r1, r2, r3)
        };
        outcomes.push((
            fills,
            (full.f_blocks, full.f_bfree, full.f_bsize, full.f_namemax),
            w,
            listing,
            fa,
            after,
            back == file_bytes(99, 2 * MIB),
            partial,
        ));
    }
    assert_eq!(
        outcomes[0], outcomes[1],
        "memfs (left) and tmpfs (right) differ"
    );
    let (fills, (_, bfree, _, _), w, ..) = &outcomes[0];
    assert_eq!(*bfree, 0);
    assert_eq!(*w, Err(libc::ENOSPC));
    assert!(fills.iter().filter(|r| r.is_ok()).count() >= 8);
    assert_eq!(
        outcomes[0].7.1,
        Ok(3 * 4096),
        "a write that runs out part-way is short"
    );
}

#[test]
fn inode_table_enospc_matches_tmpfs_and_recovers() {
    slabfuse_tests::require_mounts!();
    let memfs = memfs(MemFsConfig {
        size_bytes: 8 << 20,
        inodes: 64,
        ..MemFsConfig::default()
    });
    let tmpfs = Tmpfs::mount("size=8m,nr_inodes=64");
    let mut outcomes = Vec::new();
    for root in [memfs.path(), tmpfs.path()] {
        let mut made = 0;
        let first_failure = loop {
            let p = root.join(format!("n{made}"));
            let r = match made % 4 {
                0 => mkdir(&p, 0o755),
                1 => symlink(b"target", &p),
                2 => mknod(&p, libc::S_IFIFO | 0o644, 0),
                _ => open(&p, libc::O_CREAT | libc::O_WRONLY, 0o644).map(drop),
            };
            match r {
                Ok(()) => made += 1,
                Err(e) => break e,
            }
            assert!(made < 1000, "no inode limit");
        };
        let st = statvfs(root);
        // Every kind of creation fails now; renames and links need no inode.
        let more = (
            mkdir(&root.join("x"), 0o755),
            symlink(b"t", &root.join("y")),
            open(&root.join("z"), libc::O_CREAT | libc::O_WRONLY, 0o644).map(drop),
            rename2(&root.join("n0"), &root.join("renamed"), 0),
            link(&root.join("n3"), &root.join("hard")),
        );
        // Freeing one inode makes room for one more, at once.
        rmdir(&root.join("renamed")).expect("rmdir");
        let again = mkdir(&root.join("again"), 0o755);
        let full_again = mkdir(&root.join("again2"), 0o755);
        outcomes.push((
            made,
            first_failure,
            st.f_files,
            st.f_ffree,
            more,
            again,
            full_again,
        ));
    }
    assert_eq!(
        outcomes[0], outcomes[1],
        "memfs (left) and tmpfs (right) differ"
    );
    assert_eq!(outcomes[0].1, libc::ENOSPC);
}
