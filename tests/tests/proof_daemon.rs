//! Proofs on the real daemon, `slabfuse-memfs`:
//!
//! - **no heap allocation while serving**: after a mixed workload (16 MiB
//!   `O_DIRECT` writes and reads, a 2000-entry directory listed with and
//!   without attributes, xattrs, renames, links, symlinks, truncates,
//!   unlinks) the summary line says `heap_allocs_after_start=0`;
//! - **no page faults while serving**: the daemon's minor and major fault
//!   counts (`/proc/PID/stat`) do not move across a steady-state workload
//!   after warm-up, and the summary says `page_faults_after_start=0`;
//! - **the daemon killed mid-write**: with SIGKILL during 16 MiB writes the
//!   write in flight fails (`ECONNABORTED`: the kernel aborts requests the
//!   dead daemon held), every later call gets `ENOTCONN`, nothing hangs,
//!   and `umount -l` cleans up.

// Test code: a panic here is a failed test, not a crashed daemon.
#![allow(clippy::unwrap_used)]

#[path = "daemon_support/mod.rs"]
mod daemon_support;

use std::ffi::CString;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use daemon_support::{Daemon, check_summary_line, field, mount_dir, number};
use slabfuse_tests::{AlignedBuf, Rng, open_direct};

/// Minor and major faults of `pid` so far (fields 10 and 12 of stat).
fn faults(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name may hold spaces; fields count from after its ')'.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    (f[7].parse().unwrap(), f[9].parse().unwrap())
}

/// A workload that touches every path the daemon serves; `round` varies
/// names so that repeated rounds create and delete, not just overwrite.
fn mixed_workload(mnt: &Path, round: u32, rng: &mut Rng) {
    let dir = mnt.join(format!("d{round}"));
    std::fs::create_dir(&dir).unwrap();
    // Big direct I/O (the kernel splits it by max_pages).
    let mut big = AlignedBuf::zeroed(16 << 20);
    rng.fill(&mut big);
    let f = open_direct(&dir.join("big"), libc::O_CREAT, 0o644).unwrap();
    f.write_at(&big, 0).unwrap();
    f.write_at(&big, 8 << 20).unwrap();
    let mut back = AlignedBuf::zeroed(16 << 20);
    assert_eq!(f.read_at(&mut back, 8 << 20).unwrap(), 16 << 20);
    assert!(back[..] == big[..]);
    drop(f);
    // Buffered I/O, truncate, sparse regions.
    std::fs::write(dir.join("small"), b"hello world").unwrap();
    let s = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("small"))
        .unwrap();
    s.set_len(1 << 20).unwrap();
    s.write_at(b"tail", (3 << 20) + 17).unwrap();
    s.set_len(100).unwrap();
    drop(s);
    assert_eq!(
        &std::fs::read(dir.join("small")).unwrap()[..11],
        b"hello world"
    );
    // A large directory, listed plain and with attributes.
    let many = dir.join("many");
    std::fs::create_dir(&many).unwrap();
    for i in 0..2000 {
        std::fs::File::create(many.join(format!("entry-{i:05}"))).unwrap();
    }
    let names: Vec<_> = std::fs::read_dir(&many)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2000);
    for e in std::fs::read_dir(&many).unwrap() {
        let _ = e.unwrap().metadata().unwrap();
    }
    // Names: rename, link, symlink, readlink, unlink.
    std::fs::rename(dir.join("small"), dir.join("renamed")).unwrap();
    std::fs::hard_link(dir.join("renamed"), dir.join("linked")).unwrap();
    std::os::unix::fs::symlink("renamed", dir.join("sym")).unwrap();
    assert_eq!(
        std::fs::read_link(dir.join("sym")).unwrap(),
        Path::new("renamed")
    );
    // Extended attributes.
    let c = CString::new(dir.join("renamed").into_os_string().into_encoded_bytes()).unwrap();
    let value = [7u8; 3000];
    // SAFETY: valid NUL-terminated path and name, a live buffer of its length.
    let rc = unsafe {
        libc::setxattr(
            c.as_ptr(),
            c"user.big".as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(rc, 0);
    let mut got = [0u8; 4000];
    // SAFETY: as above, `got` is writable for its whole length.
    let n = unsafe {
        libc::getxattr(
            c.as_ptr(),
            c"user.big".as_ptr(),
            got.as_mut_ptr().cast(),
            got.len(),
        )
    };
    assert_eq!(n, 3000);
    // Tear it all down again.
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn no_heap_alloc_and_no_page_faults_while_serving() {
    slabfuse_tests::require_mounts!();
    let (_tmp, mnt) = mount_dir("proof-daemon");
    let mut d = Daemon::foreground(&mnt, &["--size", "256M", "--inodes", "20000"]);
    let pid = d.pid();
    let mut rng = Rng::new(slabfuse_tests::seed(42));

    // Warm up: every path once (the daemon itself is pre-faulted and
    // locked; the kernel's first use of a path is what warms here).
    mixed_workload(&mnt, 0, &mut rng);
    let before = faults(pid);
    for round in 1..=2 {
        mixed_workload(&mnt, round, &mut rng);
    }
    let after = faults(pid);
    eprintln!("daemon faults before {before:?}, after {after:?} (minor, major)");

    d.signal(libc::SIGTERM);
    assert!(d.wait_exit().success());
    let stderr = d.wait_stderr_eof();
    let plan = daemon_support::fields(&stderr, "plan");
    if field(&plan, "locked") != "all" {
        eprintln!(
            "note: memory not locked ({}): faults may follow reclaim",
            field(&plan, "locked")
        );
    }
    let summary = check_summary_line(&stderr);
    eprintln!("{}", stderr.lines().last().unwrap_or_default());
    assert!(number(&summary, "requests") > 10_000);
    assert_eq!(number(&summary, "heap_allocs_after_start"), 0, "{stderr}");
    assert_eq!(number(&summary, "page_faults_after_start"), 0, "{stderr}");
    assert_eq!(
        after, before,
        "the daemon faulted while serving a steady workload"
    );
}

#[test]
fn daemon_killed_mid_write() {
    slabfuse_tests::require_mounts!();
    let (_tmp, mnt) = mount_dir("proof-kill");
    let d = Daemon::foreground(&mnt, &["--size", "512M"]);
    let pid = d.pid();
    let path = mnt.join("victim");
    let (started_tx, started) = mpsc::channel();
    let (done_tx, done) = mpsc::channel();
    std::thread::spawn(move || {
        let f = open_direct(&path, libc::O_CREAT, 0o644).unwrap();
        let buf = AlignedBuf::zeroed(16 << 20);
        let mut offset = 0u64;
        let result = loop {
            match f.write_at(&buf, offset % (256 << 20)) {
                Ok(_) => {
                    let _ = started_tx.send(());
                    offset += 16 << 20;
                }
                Err(e) => break e.raw_os_error(),
            }
        };
        let _ = done_tx.send(result);
    });
    started
        .recv_timeout(Duration::from_secs(20))
        .expect("writes are flowing");
    std::thread::sleep(Duration::from_millis(50));
    d.signal(libc::SIGKILL);
    let t = Instant::now();
    let err = done
        .recv_timeout(Duration::from_secs(20))
        .expect("the writer does not hang");
    eprintln!("writer stopped after {:?} with errno {err:?}", t.elapsed());
    assert!(
        matches!(err, Some(libc::ECONNABORTED | libc::ENOTCONN)),
        "the write in flight fails as aborted or not connected: {err:?}"
    );
    // Every later call gets ENOTCONN, and none hangs.
    let e = std::fs::metadata(mnt.join("victim")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOTCONN));
    // The dead mount is cleaned up with `umount -l`.
    let status = std::process::Command::new("umount")
        .arg("-l")
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(!slabfuse_tests::is_mounted(&mnt));
    let _ = pid;
}
