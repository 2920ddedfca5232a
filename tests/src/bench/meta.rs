//! The metadata rate: create, stat and unlink of many empty files.
//!
//! Three timed phases over `n` files in one directory, each a plain loop of
//! system calls from this process (paths built before the clock starts):
//!
//! 1. create: `open(O_CREAT|O_EXCL|O_WRONLY)` + `close`;
//! 2. stat: `stat` (`newfstatat`) of each;
//! 3. unlink: `unlink` of each.
//!
//! Between phases it sleeps (1.2 s by default) so that the kernel's entry
//! and attribute caches, 1 s in every memfs compared here, have expired:
//! every `stat` and `unlink` then walks the path through the daemon
//! (LOOKUP), instead of being answered from the dentry cache. fio's
//! filecreate/filestat/filedelete engines are not used: with thousands of
//! files fio's own bookkeeping dominates.

use std::ffi::CString;
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::fs::{Mode, OFlags};
use serde_json::{Value, json};

use crate::{Error, Res, Stop};

/// Operations per second of each phase.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct MetaResult {
    /// Files.
    pub(crate) files: usize,
    /// Seconds of each phase: create, stat, unlink.
    pub(crate) seconds: [f64; 3],
    /// Daemon CPU over the three phases (pauses included), seconds.
    pub(crate) daemon_cpu_s: Option<f64>,
}

impl MetaResult {
    /// create, stat, unlink, total operations per second (total: 3n over
    /// the sum of the three phases, pauses excluded).
    pub(crate) fn ops_s(&self) -> [f64; 4] {
        let n = self.files as f64;
        let [c, s, u] = self.seconds;
        [n / c, n / s, n / u, 3.0 * n / (c + s + u)]
    }

    /// As JSON.
    pub(crate) fn to_json(self) -> Value {
        let [c, s, u, t] = self.ops_s();
        json!({
            "files": self.files,
            "create_ops_s": c, "stat_ops_s": s, "unlink_ops_s": u, "total_ops_s": t,
            "seconds": self.seconds,
            "daemon_cpu_s": self.daemon_cpu_s,
        })
    }
}

/// Runs the three phases in `dir` (which must exist and be empty).
pub(crate) fn run(dir: &Path, n: usize, pause: Duration, stop: &Stop) -> Res<MetaResult> {
    let paths: Vec<CString> = (0..n)
        .map(|i| {
            CString::new(format!("{}/f.{i}", dir.display()))
                .map_err(|_| Error::Failed("path with a NUL byte".into()))
        })
        .collect::<Res<_>>()?;
    let mut r = MetaResult {
        files: n,
        ..MetaResult::default()
    };
    let result = phases(&paths, pause, stop, &mut r);
    if result.is_err() {
        // Leave the directory empty for whoever removes it.
        for p in &paths {
            let _ = rustix::fs::unlink(p.as_c_str());
        }
    }
    result.map(|()| r)
}

fn phases(paths: &[CString], pause: Duration, stop: &Stop, r: &mut MetaResult) -> Res<()> {
    let op_error = |what: &str, p: &CString, e: rustix::io::Errno| {
        Error::Failed(format!("metadata {what} {}: {e}", p.to_string_lossy()))
    };

    let t = Instant::now();
    for (i, p) in paths.iter().enumerate() {
        let fd = rustix::fs::open(
            p.as_c_str(),
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o644),
        )
        .map_err(|e| op_error("create", p, e))?;
        drop(fd);
        if i % 1024 == 0 {
            stop.check()?;
        }
    }
    r.seconds[0] = t.elapsed().as_secs_f64();
    crate::sleep(pause, stop)?;

    let t = Instant::now();
    for (i, p) in paths.iter().enumerate() {
        rustix::fs::stat(p.as_c_str()).map_err(|e| op_error("stat", p, e))?;
        if i % 1024 == 0 {
            stop.check()?;
        }
    }
    r.seconds[1] = t.elapsed().as_secs_f64();
    crate::sleep(pause, stop)?;

    let t = Instant::now();
    for (i, p) in paths.iter().enumerate() {
        rustix::fs::unlink(p.as_c_str()).map_err(|e| op_error("unlink", p, e))?;
        if i % 1024 == 0 {
            stop.check()?;
        }
    }
    r.seconds[2] = t.elapsed().as_secs_f64();
    Ok(())
}
