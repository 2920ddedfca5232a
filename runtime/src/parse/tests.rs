//! Parser tests from byte fixtures, annotated field by field, and a
//! seeded sweep of random and mutated messages.

// Fixtures build wire values from small, known sizes.
#![allow(clippy::cast_possible_truncation)]

use alloc::vec::Vec;

use super::*;

/// Splits `msg` the way a receive buffer does: the 80-byte head, then
/// blocks of `block` bytes.
fn segments(msg: &[u8], block: usize) -> Vec<&[u8]> {
    let mut v = Vec::new();
    let head = msg.len().min(80);
    v.push(&msg[..head]);
    let mut rest = &msg[head..];
    while !rest.is_empty() {
        let n = rest.len().min(block);
        v.push(&rest[..n]);
        rest = &rest[n..];
    }
    v
}

fn parse_with<'a>(
    segs: &'a [&'a [u8]],
    len: usize,
    scratch: &'a mut [u8],
) -> Result<(abi::fuse_in_header, Operation<'a>), ParseFailure> {
    parse(segs, len, &ParseContext::default(), scratch)
}

#[rustfmt::skip]
const LOOKUP_FOO: [u8; 44] = [
    44, 0, 0, 0,            // len = 44
    1, 0, 0, 0,             // opcode = FUSE_LOOKUP
    0x10, 0, 0, 0, 0, 0, 0, 0, // unique = 16
    1, 0, 0, 0, 0, 0, 0, 0, // nodeid = 1 (root)
    0xe8, 3, 0, 0,          // uid = 1000
    0xe9, 3, 0, 0,          // gid = 1001
    0x39, 0x30, 0, 0,       // pid = 12345
    0, 0,                   // total_extlen = 0
    0, 0,                   // padding
    b'f', b'o', b'o', 0,    // name "foo\0"
];

#[test]
fn lookup_fixture_parses_field_by_field() {
    let segs = segments(&LOOKUP_FOO, 4096);
    let mut scratch = [0u8; NAME_SCRATCH_BYTES];
    let (h, op) = parse_with(&segs, LOOKUP_FOO.len(), &mut scratch).unwrap();
    assert_eq!((h.len, h.opcode, h.unique, h.nodeid), (44, 1, 16, 1));
    assert_eq!(
        (h.uid, h.gid, h.pid, h.total_extlen),
        (1000, 1001, 12345, 0)
    );
    let Operation::Lookup(l) = op else {
        panic!("{op:?}")
    };
    assert_eq!(l.parent, NodeId::ROOT);
    assert_eq!(l.name, b"foo");
}

#[rustfmt::skip]
fn write_fixture(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&((80 + payload.len()) as u32).to_le_bytes()); // len
    v.extend_from_slice(&16u32.to_le_bytes());        // opcode = FUSE_WRITE
    v.extend_from_slice(&2u64.to_le_bytes());         // unique
    v.extend_from_slice(&5u64.to_le_bytes());         // nodeid
    v.extend_from_slice(&[0; 12]);                    // uid, gid, pid
    v.extend_from_slice(&[0; 4]);                     // total_extlen, padding
    v.extend_from_slice(&9u64.to_le_bytes());         // fh
    v.extend_from_slice(&4096u64.to_le_bytes());      // offset
    v.extend_from_slice(&(payload.len() as u32).to_le_bytes()); // size
    v.extend_from_slice(&abi::FUSE_WRITE_LOCKOWNER.to_le_bytes()); // write_flags
    v.extend_from_slice(&77u64.to_le_bytes());        // lock_owner
    v.extend_from_slice(&0o2u32.to_le_bytes());       // flags = O_RDWR
    v.extend_from_slice(&[0; 4]);                     // padding
    v.extend_from_slice(payload);
    v
}

#[test]
fn write_payload_starts_after_the_head_and_spans_blocks() {
    let payload: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
    let msg = write_fixture(&payload);
    let segs = segments(&msg, 4096);
    let mut scratch = [0u8; NAME_SCRATCH_BYTES];
    let (_, op) = parse_with(&segs, msg.len(), &mut scratch).unwrap();
    let Operation::Write(w) = op else {
        panic!("{op:?}")
    };
    assert_eq!((w.node, w.fh, w.offset), (NodeId(5), FileHandle(9), 4096));
    assert_eq!(w.lock_owner, Some(77));
    assert_eq!(w.flags, 2);
    let slices: Vec<&[u8]> = w.data.slices().collect();
    // Exactly the blocks: 4096 + 4096 + 1808, no copy, block-aligned start.
    assert_eq!(slices.len(), 3);
    assert_eq!(slices[0].as_ptr(), segs[1].as_ptr());
    assert_eq!(slices.concat(), payload);
}

#[test]
fn names_straddling_segments_are_assembled_in_scratch() {
    // RENAME: header (40) + rename_in (8) + "aaaa…\0" + "bbbb…\0", with
    // tiny blocks so both names cross boundaries.
    let old = [b'a'; 100];
    let new = [b'b'; 200];
    let mut msg = Vec::new();
    let len = 40 + 8 + 101 + 201;
    let h = abi::fuse_in_header {
        len: len as u32,
        opcode: Opcode::FUSE_RENAME as u32,
        unique: 4,
        nodeid: 3,
        ..Default::default()
    };
    msg.extend_from_slice(h.as_bytes());
    msg.extend_from_slice(&7u64.to_le_bytes());
    msg.extend_from_slice(&old);
    msg.push(0);
    msg.extend_from_slice(&new);
    msg.push(0);
    let segs = segments(&msg, 64);
    let mut scratch = [0u8; NAME_SCRATCH_BYTES];
    let (_, op) = parse_with(&segs, msg.len(), &mut scratch).unwrap();
    let Operation::Rename(r) = op else {
        panic!("{op:?}")
    };
    assert_eq!((r.parent, r.new_parent, r.flags), (NodeId(3), NodeId(7), 0));
    assert_eq!(r.name, &old[..]);
    assert_eq!(r.new_name, &new[..]);
}

#[test]
fn setxattr_follows_the_negotiated_struct_size() {
    let mut msg = Vec::new();
    let value = b"value-bytes";
    let name = b"user.k\0";
    for ext in [false, true] {
        msg.clear();
        let arg_len = if ext { 16 } else { 8 };
        let h = abi::fuse_in_header {
            len: (40 + arg_len + name.len() + value.len()) as u32,
            opcode: Opcode::FUSE_SETXATTR as u32,
            unique: 2,
            nodeid: 9,
            ..Default::default()
        };
        msg.extend_from_slice(h.as_bytes());
        let a = abi::fuse_setxattr_in {
            size: value.len() as u32,
            flags: 1,
            setxattr_flags: 1,
            padding: 0,
        };
        msg.extend_from_slice(&a.as_bytes()[..arg_len]);
        msg.extend_from_slice(name);
        msg.extend_from_slice(value);
        let segs = segments(&msg, 4096);
        let ctx = ParseContext {
            setxattr_ext: ext,
            ..ParseContext::default()
        };
        let mut scratch = [0u8; NAME_SCRATCH_BYTES];
        let (_, op) = parse(&segs, msg.len(), &ctx, &mut scratch).unwrap();
        let Operation::SetXattr(s) = op else {
            panic!("{op:?}")
        };
        assert_eq!(s.name, b"user.k");
        assert_eq!(s.flags, 1);
        assert_eq!(s.setxattr_flags, u32::from(ext));
        let mut v = [0u8; 11];
        assert_eq!(s.value.copy_to(&mut v), 11);
        assert_eq!(&v, value);
    }
}

#[test]
fn init_accepts_the_old_sixteen_byte_form() {
    let h = abi::fuse_in_header {
        len: 56,
        opcode: Opcode::FUSE_INIT as u32,
        unique: 2,
        ..Default::default()
    };
    let i = abi::fuse_init_in {
        major: 7,
        minor: 26,
        max_readahead: 4096,
        flags: 3,
        flags2: 99,
        ..Default::default()
    };
    let mut msg = h.as_bytes().to_vec();
    msg.extend_from_slice(&i.as_bytes()[..16]);
    let segs = segments(&msg, 4096);
    let mut scratch = [0u8; NAME_SCRATCH_BYTES];
    let (_, op) = parse_with(&segs, msg.len(), &mut scratch).unwrap();
    let Operation::Init(got) = op else {
        panic!("{op:?}")
    };
    assert_eq!((got.major, got.minor, got.flags), (7, 26, 3));
    assert_eq!(got.flags2, 0, "fields the kernel did not send read as zero");
}

#[test]
fn setattr_maps_valid_bits_to_options() {
    let h = abi::fuse_in_header {
        len: 40 + 88,
        opcode: Opcode::FUSE_SETATTR as u32,
        unique: 2,
        nodeid: 4,
        ..Default::default()
    };
    let a = abi::fuse_setattr_in {
        valid: abi::FATTR_MODE | abi::FATTR_SIZE | abi::FATTR_ATIME_NOW | abi::FATTR_MTIME,
        mode: 0o644,
        size: 10,
        mtime: 5,
        mtimensec: 6,
        uid: 99,
        ..Default::default()
    };
    let mut msg = h.as_bytes().to_vec();
    msg.extend_from_slice(a.as_bytes());
    let segs = segments(&msg, 4096);
    let mut scratch = [0u8; NAME_SCRATCH_BYTES];
    let (_, op) = parse_with(&segs, msg.len(), &mut scratch).unwrap();
    let Operation::SetAttr(s) = op else {
        panic!("{op:?}")
    };
    assert_eq!(s.mode, Some(0o644));
    assert_eq!(s.size, Some(10));
    assert_eq!(s.uid, None, "uid without FATTR_UID is not a change");
    assert_eq!(s.atime, Some(TimeOrNow::Now));
    assert_eq!(s.mtime, Some(TimeOrNow::Specific(Timestamp::new(5, 6))));
    assert_eq!(s.ctime, None);
    assert_eq!(s.fh, None);
}

#[test]
fn malformed_inputs_map_to_their_errnos() {
    let mut scratch = [0u8; NAME_SCRATCH_BYTES];
    // Too short for a header.
    let short = [0u8; 39];
    let segs = segments(&short, 4096);
    let f = parse_with(&segs, 39, &mut scratch).unwrap_err();
    assert_eq!((f.header, f.reason), (None, Malformed::HeaderTruncated));
    assert!(!f.wants_reply());
    // len lies.
    let mut lie = LOOKUP_FOO;
    lie[0] = 45;
    let segs = segments(&lie, 4096);
    let f = parse_with(&segs, 44, &mut scratch).unwrap_err();
    assert_eq!(f.reason, Malformed::LengthMismatch);
    assert_eq!(f.reason.errno(), Errno::IO);
    assert!(f.wants_reply());
    // Missing NUL.
    let mut nonul = LOOKUP_FOO;
    nonul[43] = b'x';
    let segs = segments(&nonul, 4096);
    let f = parse_with(&segs, 44, &mut scratch).unwrap_err();
    assert_eq!(f.reason, Malformed::MissingNul);
    // Empty name.
    let mut empty = LOOKUP_FOO[..41].to_vec();
    empty[0] = 41;
    empty[40] = 0;
    let segs = segments(&empty, 4096);
    let f = parse_with(&segs, 41, &mut scratch).unwrap_err();
    assert_eq!(f.reason, Malformed::BadName);
}

#[test]
fn random_and_mutated_messages_never_panic() {
    // A seeded sweep: mutate valid fixtures and generate random headers with
    // every opcode; whatever comes back must be a value, and any payload a
    // parsed request borrows must lie inside the message.
    let mut state = 0x1234_5678_9abc_def0u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let fixtures: [Vec<u8>; 2] = [LOOKUP_FOO.to_vec(), write_fixture(&[7u8; 300])];
    let mut scratch = [0u8; NAME_SCRATCH_BYTES];
    let mut parsed = 0;
    for round in 0..60_000u64 {
        let mut msg = if round % 3 == 0 {
            let len = (next() % 400) as usize;
            let mut m: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if m.len() >= 40 {
                let opcode = (next() % 56) as u32;
                m[4..8].copy_from_slice(&opcode.to_le_bytes());
                let l = m.len() as u32;
                m[0..4].copy_from_slice(&l.to_le_bytes());
                m[36..38].copy_from_slice(&[0, 0]);
            }
            m
        } else {
            let mut m = fixtures[(round % 2) as usize].clone();
            for _ in 0..1 + next() % 4 {
                let i = (next() as usize) % m.len();
                m[i] = next() as u8;
            }
            if next() % 4 == 0 {
                let cut = (next() as usize) % m.len();
                m.truncate(cut);
            }
            m
        };
        if msg.is_empty() {
            msg.push(0);
        }
        let block = [64usize, 4096][(round % 2) as usize];
        let segs = segments(&msg, block);
        let range = msg.as_ptr_range();
        if let Ok((_, op)) = parse(&segs, msg.len(), &ParseContext::default(), &mut scratch) {
            parsed += 1;
            if let Operation::Write(w) = op {
                for s in w.data.slices() {
                    assert!(range.contains(&s.as_ptr()));
                }
            }
        }
    }
    assert!(parsed > 1000, "the sweep must reach the parsers ({parsed})");
}

#[rustfmt::skip]
const TMPFILE_SLASH: [u8; 58] = [
    58, 0, 0, 0,            // len = 58
    51, 0, 0, 0,            // opcode = FUSE_TMPFILE
    0x12, 0, 0, 0, 0, 0, 0, 0, // unique = 18
    1, 0, 0, 0, 0, 0, 0, 0, // nodeid = 1 (root)
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // uid, gid, pid
    0, 0, 0, 0,             // total_extlen, padding
    2, 0, 0x41, 0,          // flags = O_RDWR | O_TMPFILE (0x410002)
    0x80, 0x81, 0, 0,       // mode = 0o100600
    0x12, 0, 0, 0,          // umask = 0o022
    0, 0, 0, 0,             // open_flags
    b'/', 0,                // the unnamed dentry's name, "/\0"
];

#[test]
fn tmpfile_with_the_kernels_slash_name_parses() {
    let segs = segments(&TMPFILE_SLASH, 4096);
    let mut scratch = [0u8; NAME_SCRATCH_BYTES];
    let (_, op) = parse_with(&segs, TMPFILE_SLASH.len(), &mut scratch).unwrap();
    let Operation::TmpFile(t) = op else {
        panic!("{op:?}")
    };
    assert_eq!((t.parent, t.mode, t.umask), (NodeId::ROOT, 0o100600, 0o22));
}
