//! First light: memfs mounts, creates, writes, reads, lists and unmounts.

mod memfs_util;

use std::io::{Read, Write};

#[test]
fn create_write_read_list() {
    slabfuse_tests::require_mounts!();
    let m = memfs_util::memfs_default();
    let p = m.path().join("a");
    std::fs::File::create(&p)
        .unwrap()
        .write_all(b"hello")
        .unwrap();
    let mut s = String::new();
    std::fs::File::open(&p)
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    assert_eq!(s, "hello");
    std::fs::create_dir(m.path().join("d")).unwrap();
    let mut names: Vec<_> = std::fs::read_dir(m.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["a", "d"]);
    let md = std::fs::metadata(&p).unwrap();
    assert_eq!(md.len(), 5);
    std::fs::remove_file(&p).unwrap();
    std::fs::remove_dir(m.path().join("d")).unwrap();
    // The kernel forgets the unlinked inodes (FORGET) once it drops them.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while m.fs().inodes_used() != 1 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(m.fs().inodes_used(), 1);
}
