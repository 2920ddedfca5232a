//! Proof: **hostile input is survived** — random and mutated messages
//! through the simulated kernel, a few hundred thousand per run (seeded,
//! replayable with `SLABFUSE_SEED`): no panic, no out-of-bounds access,
//! every message that the kernel would wait on gets exactly one answer (an
//! errno for the malformed ones), every malformed one is counted, and the
//! session keeps serving valid requests between them.
//!
//! `SLABFUSE_HOSTILE_MESSAGES` sets the count (default 300 000).

// Test code: a panic here is a failed test, not a crashed daemon.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use slabfuse::abi::{self, Opcode};
use slabfuse::parse::wants_reply;
use slabfuse::pool::BackingRequest;
use slabfuse::{Config, Session, WorkerExit};
use slabfuse_tests::sim::{self, cstr};
use slabfuse_tests::testfs::StaticFs;
use slabfuse_tests::{Rng, seed};
use zerocopy::IntoBytes;

/// Valid messages of many kinds (header unique and len filled in later).
fn templates() -> Vec<Vec<u8>> {
    let h = |opcode: Opcode, nodeid: u64| abi::fuse_in_header {
        opcode: opcode as u32,
        nodeid,
        uid: 1000,
        gid: 1000,
        pid: 7,
        ..Default::default()
    };
    let msg = |h: abi::fuse_in_header, parts: &[&[u8]]| {
        let mut v = h.as_bytes().to_vec();
        for p in parts {
            v.extend_from_slice(p);
        }
        v
    };
    let read = abi::fuse_read_in {
        offset: 4096,
        size: 8192,
        ..Default::default()
    };
    let write = abi::fuse_write_in {
        offset: 0,
        size: 300,
        ..Default::default()
    };
    let sx = abi::fuse_setxattr_in {
        size: 5,
        ..Default::default()
    };
    let gx = abi::fuse_getxattr_in {
        size: 200,
        padding: 0,
    };
    let sa = abi::fuse_setattr_in {
        valid: abi::FATTR_MODE | abi::FATTR_SIZE | abi::FATTR_ATIME,
        ..Default::default()
    };
    let mut batch = abi::fuse_batch_forget_in { count: 2, dummy: 0 }
        .as_bytes()
        .to_vec();
    batch.extend_from_slice(
        abi::fuse_forget_one {
            nodeid: 2,
            nlookup: 1,
        }
        .as_bytes(),
    );
    batch.extend_from_slice(
        abi::fuse_forget_one {
            nodeid: 3,
            nlookup: 1,
        }
        .as_bytes(),
    );
    vec![
        msg(h(Opcode::FUSE_LOOKUP, 1), &[&cstr(b"a")]),
        msg(h(Opcode::FUSE_LOOKUP, 1), &[&cstr(&[b'n'; 120])]),
        msg(
            h(Opcode::FUSE_GETATTR, 2),
            &[abi::fuse_getattr_in::default().as_bytes()],
        ),
        msg(h(Opcode::FUSE_SETATTR, 2), &[sa.as_bytes()]),
        msg(h(Opcode::FUSE_READ, 2), &[read.as_bytes()]),
        msg(h(Opcode::FUSE_READ, 3), &[read.as_bytes()]),
        msg(h(Opcode::FUSE_WRITE, 2), &[write.as_bytes(), &[b'W'; 300]]),
        msg(h(Opcode::FUSE_READDIR, 1), &[read.as_bytes()]),
        msg(h(Opcode::FUSE_READDIRPLUS, 1), &[read.as_bytes()]),
        msg(
            h(Opcode::FUSE_RENAME2, 1),
            &[
                abi::fuse_rename2_in {
                    newdir: 1,
                    flags: 0,
                    padding: 0,
                }
                .as_bytes(),
                &cstr(b"a"),
                &cstr(b"bb"),
            ],
        ),
        msg(h(Opcode::FUSE_SYMLINK, 1), &[&cstr(b"l"), &cstr(b"target")]),
        msg(
            h(Opcode::FUSE_MKDIR, 1),
            &[abi::fuse_mkdir_in::default().as_bytes(), &cstr(b"d")],
        ),
        msg(
            h(Opcode::FUSE_CREATE, 1),
            &[abi::fuse_create_in::default().as_bytes(), &cstr(b"c")],
        ),
        msg(
            h(Opcode::FUSE_SETXATTR, 2),
            &[sx.as_bytes(), &cstr(b"user.k"), b"value"],
        ),
        msg(
            h(Opcode::FUSE_GETXATTR, 2),
            &[gx.as_bytes(), &cstr(b"user.s77")],
        ),
        msg(h(Opcode::FUSE_LISTXATTR, 2), &[gx.as_bytes()]),
        msg(
            h(Opcode::FUSE_FORGET, 2),
            &[abi::fuse_forget_in { nlookup: 1 }.as_bytes()],
        ),
        msg(h(Opcode::FUSE_BATCH_FORGET, 0), &[&batch]),
        msg(
            h(Opcode::FUSE_INTERRUPT, 0),
            &[abi::fuse_interrupt_in { unique: 2 }.as_bytes()],
        ),
        msg(
            h(Opcode::FUSE_FALLOCATE, 2),
            &[abi::fuse_fallocate_in::default().as_bytes()],
        ),
        msg(
            h(Opcode::FUSE_COPY_FILE_RANGE, 2),
            &[abi::fuse_copy_file_range_in::default().as_bytes()],
        ),
        msg(h(Opcode::FUSE_STATFS, 1), &[]),
        msg(
            h(Opcode::FUSE_OPEN, 2),
            &[abi::fuse_open_in::default().as_bytes()],
        ),
    ]
}

/// One hostile message from the generator.
fn hostile(rng: &mut Rng, templates: &[Vec<u8>]) -> Vec<u8> {
    let mut m = match rng.below(10) {
        // Pure noise of any length up to 300 bytes.
        0 => {
            let mut m = vec![0u8; rng.below(300) as usize];
            rng.fill(&mut m);
            m
        }
        // A random header over a template's arguments.
        1 => {
            let t = &templates[rng.below(templates.len() as u64) as usize];
            let mut m = t.clone();
            let opcode = rng.below(60) as u32;
            m[4..8].copy_from_slice(&opcode.to_le_bytes());
            m
        }
        // A template with a few mutated bytes, maybe cut or extended.
        _ => {
            let t = &templates[rng.below(templates.len() as u64) as usize];
            let mut m = t.clone();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(m.len() as u64) as usize;
                m[i] = rng.next_u64() as u8;
            }
            match rng.below(6) {
                0 => m.truncate(rng.below(m.len() as u64) as usize),
                1 => {
                    let mut extra = vec![0u8; 1 + rng.below(64) as usize];
                    rng.fill(&mut extra);
                    m.extend_from_slice(&extra);
                }
                _ => {}
            }
            m
        }
    };
    // Most messages keep a truthful len so that the parsers behind the
    // length check are reached; some lie.
    if m.len() >= 4 && rng.below(8) != 0 {
        let len = m.len() as u32;
        m[0..4].copy_from_slice(&len.to_le_bytes());
    }
    // Deferrals are driven elsewhere; keep READs off the deferring node.
    if m.len() >= 24 && m[16..24] == 4u64.to_le_bytes() {
        m[16] = 5;
    }
    m
}

#[test]
fn malformed_messages_are_answered() {
    let total: u64 = std::env::var("SLABFUSE_HOSTILE_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300_000);
    let mut rng = Rng::new(seed(0xB0_05));
    let (channel, mut k) = sim::pair();
    let config = Config {
        workers: 2,
        max_message: 1 << 20,
        max_pages_limit: Some(256),
        backing: BackingRequest::Thp,
        lock_memory: false,
        ..Config::default()
    };
    let session = Session::new(config, StaticFs::default(), Box::new(channel)).unwrap();
    let workers: Vec<_> = session
        .workers()
        .into_iter()
        .map(|mut w| std::thread::spawn(move || w.run()))
        .collect();
    k.init(sim::KERNEL_FLAGS);
    let templates = templates();

    let started = Instant::now();
    let mut sent = 0u64;
    let mut answered = 0u64;
    let mut unique = 1u64 << 32;
    let mut probes = 0u64;
    while sent < total {
        let mut waiting = HashSet::new();
        for _ in 0..200 {
            let mut m = hostile(&mut rng, &templates);
            if m.len() >= 16 {
                unique += 2;
                m[8..16].copy_from_slice(&unique.to_le_bytes());
            }
            let expects_reply = m.len() >= 40 && {
                let opcode = u32::from_le_bytes([m[4], m[5], m[6], m[7]]);
                wants_reply(opcode)
            };
            if expects_reply {
                waiting.insert(unique);
            }
            if m.is_empty() {
                m.push(0);
            }
            k.send_raw(&m);
            sent += 1;
        }
        // A valid request after every batch must be answered correctly.
        let probe = k.request(Opcode::FUSE_LOOKUP, 1, &[&cstr(b"b")]);
        waiting.insert(probe);
        probes += 1;
        let deadline = Instant::now() + Duration::from_secs(20);
        while !waiting.is_empty() {
            let r = k
                .next_reply(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|| {
                    panic!("{} messages never answered: {waiting:?}", waiting.len())
                });
            assert!(
                waiting.remove(&r.unique),
                "reply to {} was not expected",
                r.unique
            );
            assert!(r.error <= 0 && r.error > -4096);
            if r.unique == probe {
                assert_eq!(r.error, 0, "the probe after a hostile batch failed");
                assert_eq!(r.parse::<abi::fuse_entry_out>().nodeid, 3);
            } else {
                answered += 1;
            }
        }
        // Nothing else may come (no reply to messages that want none).
        if probes.is_multiple_of(100) {
            k.expect_silence(Duration::from_millis(5));
        }
    }
    let stats = session.stats();
    eprintln!(
        "{sent} hostile messages in {:.1} s: {answered} answered, {} malformed (counted), \
         {} unknown opcodes, {probes} probes all answered",
        started.elapsed().as_secs_f64(),
        stats.malformed,
        stats.unknown_opcodes
    );
    assert!(
        stats.malformed > sent / 4,
        "the generator must mostly produce malformed input"
    );
    assert!(answered > sent / 2);
    k.hang_up();
    for w in workers {
        assert_eq!(
            w.join().unwrap(),
            Ok(WorkerExit::Unmounted),
            "a worker died"
        );
    }
}
