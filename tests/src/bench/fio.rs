//! Running one fio job and reading its JSON, with the daemon's and the
//! machine's CPU time measured around it.
//!
//! Every job shares the peers' options (`--direct=1 --ioengine=psync
//! --iodepth=1 --fallocate=none --invalidate=0`), so every I/O is one
//! synchronous `pread`/`pwrite` with `O_DIRECT`, which reaches the daemon
//! whatever its caching. fio writes its JSON straight to the raw directory
//! (`--output`); that file is the source of every number, and stays there.
//! Latency jobs use `json+`, whose `clat_ns.bins` (fio's full latency
//! histogram) feed the CDF chart.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};
use serde_json::{Value, json};

use crate::procfs;
use crate::{Error, Res, Stop};

/// Options every job shares (the peers' kit uses the same).
const COMMON: &[&str] = &[
    "--direct=1",
    "--ioengine=psync",
    "--iodepth=1",
    "--fallocate=none",
    "--invalidate=0",
    "--eta=never",
];

/// Percentiles asked of fio, and their names in the results.
pub(crate) const PERCENTILES: [(&str, &str); 4] = [
    ("p50", "50.000000"),
    ("p99", "99.000000"),
    ("p99.9", "99.900000"),
    ("p99.99", "99.990000"),
];

/// One job to run.
pub(crate) struct Job {
    /// Name, also the raw file's stem (`seqwrite-1m`).
    pub(crate) name: String,
    /// `read` or `write`: the part of fio's output that holds the numbers.
    pub(crate) direction: &'static str,
    /// fio arguments beyond [`COMMON`] (rw, bs, size, filename, …).
    pub(crate) args: Vec<String>,
    /// `json+` (latency histogram) instead of `json`.
    pub(crate) histogram: bool,
}

/// Optional tools attached to the daemon for the length of each job.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Attach {
    /// `perf stat -p PID`.
    pub(crate) perf: bool,
    /// `strace -c -f -p PID`.
    pub(crate) strace: bool,
}

/// Where and around what a job runs.
pub(crate) struct Context<'a> {
    /// Raw output directory of this target and repetition.
    pub(crate) raw: &'a Path,
    /// The daemon whose CPU time is measured (`None`: tmpfs).
    pub(crate) daemon: Option<i32>,
    /// Tools to attach.
    pub(crate) attach: Attach,
    /// Ctrl-C.
    pub(crate) stop: &'a Stop,
}

/// Latency percentiles and maximum, microseconds.
#[derive(Clone, Debug, Default)]
pub(crate) struct Latency {
    /// (name, value) in [`PERCENTILES`] order.
    pub(crate) percentiles: Vec<(String, f64)>,
    /// Largest, µs.
    pub(crate) max: f64,
    /// Mean, µs.
    pub(crate) mean: f64,
    /// I/Os measured.
    pub(crate) samples: u64,
}

/// What one job measured.
#[derive(Clone, Debug, Default)]
pub(crate) struct JobResult {
    /// The job's name.
    pub(crate) name: String,
    /// Bytes transferred.
    pub(crate) bytes: u64,
    /// fio's runtime of the job, seconds.
    pub(crate) runtime_s: f64,
    /// Bandwidth, MiB/s (2^20 bytes).
    pub(crate) mib_s: f64,
    /// I/O operations per second.
    pub(crate) iops: f64,
    /// Completion latency (with psync: the whole `pread`/`pwrite`).
    pub(crate) clat: Latency,
    /// fio's latency histogram: (ns, count), ascending (json+ jobs only).
    pub(crate) bins: Vec<(u64, u64)>,
    /// Daemon CPU (user + system) during the job, seconds: the threads' run
    /// time from `schedstat` (ns), or utime + stime when threads came or
    /// went during the job (see `procfs::cpu_between`).
    pub(crate) daemon_cpu_s: Option<f64>,
    /// fio's own CPU during the job, seconds (the client side, which
    /// includes the kernel's copies into and out of FUSE requests).
    pub(crate) fio_cpu_s: f64,
    /// Non-idle CPU of the whole machine during the job, seconds (includes
    /// whatever else runs on a shared machine).
    pub(crate) system_cpu_s: Option<f64>,
    /// Wall-clock time around the fio process, seconds.
    pub(crate) wall_s: f64,
    /// The raw JSON file.
    pub(crate) raw: PathBuf,
}

impl JobResult {
    /// `seconds` of CPU per GiB transferred, in milliseconds.
    pub(crate) fn ms_per_gib(&self, seconds: Option<f64>) -> Option<f64> {
        let gib = self.bytes as f64 / (1u64 << 30) as f64;
        seconds.filter(|_| gib > 0.0).map(|s| s * 1000.0 / gib)
    }

    /// As JSON (without the histogram, which is summarized elsewhere).
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "bytes": self.bytes,
            "runtime_s": self.runtime_s,
            "mib_s": self.mib_s,
            "iops": self.iops,
            "clat_us": if self.clat.samples > 0 {
                let mut m = serde_json::Map::new();
                for (k, v) in &self.clat.percentiles {
                    m.insert(k.clone(), json!(v));
                }
                m.insert("max".into(), json!(self.clat.max));
                m.insert("mean".into(), json!(self.clat.mean));
                m.insert("samples".into(), json!(self.clat.samples));
                Value::Object(m)
            } else {
                Value::Null
            },
            "daemon_cpu_s": self.daemon_cpu_s,
            "fio_cpu_s": self.fio_cpu_s,
            "system_cpu_s": self.system_cpu_s,
            "daemon_cpu_ms_per_gib": self.ms_per_gib(self.daemon_cpu_s),
            "fio_cpu_ms_per_gib": self.ms_per_gib(Some(self.fio_cpu_s)),
            "system_cpu_ms_per_gib": self.ms_per_gib(self.system_cpu_s),
            "wall_s": self.wall_s,
            "raw": self.raw.display().to_string(),
        })
    }
}

/// fio's version string, or why it cannot run.
pub(crate) fn version() -> Result<String, String> {
    let out = Command::new("fio")
        .arg("--version")
        .output()
        .map_err(|e| format!("cannot run fio ({e}): apt-get install -y fio"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Runs `job`; its JSON goes to `<raw>/<name>.json`, its stderr next to it.
pub(crate) fn run(job: &Job, cx: &Context<'_>) -> Res<JobResult> {
    cx.stop.check()?;
    let json_path = cx.raw.join(format!("{}.json", job.name));
    let err_path = cx.raw.join(format!("{}.stderr", job.name));
    let err = std::fs::File::create(&err_path)
        .map_err(|e| Error::Failed(format!("create {}: {e}", err_path.display())))?;
    let mut cmd = Command::new("fio");
    cmd.arg(format!("--name={}", job.name))
        .arg(if job.histogram {
            "--output-format=json+"
        } else {
            "--output-format=json"
        })
        .arg(format!("--output={}", json_path.display()))
        .args(COMMON)
        .args(&job.args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(err));

    let tools = attach(job, cx);
    let ticks = procfs::ticks_per_second();
    let daemon_before = cx.daemon.map(procfs::process_cpu);
    let system_before = procfs::system_busy_ticks();
    let started = Instant::now();
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::Failed(format!("cannot run fio: {e}")))?;
    let status = wait_or_stop(&mut child, cx.stop);
    let wall_s = started.elapsed().as_secs_f64();
    let daemon_after = cx.daemon.map(procfs::process_cpu);
    let system_after = procfs::system_busy_ticks();
    detach(tools);
    let status = status?;
    if !status.success() {
        let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
        return Err(Error::Failed(format!(
            "fio {} failed ({status}): {}",
            job.name,
            stderr.trim()
        )));
    }
    let delta = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / ticks),
        _ => None,
    };
    let mut r = parse(&json_path, job.direction)
        .map_err(|e| Error::Failed(format!("fio {}: {e}", job.name)))?;
    r.name = job.name.clone();
    r.daemon_cpu_s = match (&daemon_before, &daemon_after) {
        (Some(a), Some(b)) => procfs::cpu_between(a, b),
        _ => None,
    };
    r.system_cpu_s = delta(system_before, system_after);
    r.wall_s = wall_s;
    r.raw = json_path;
    Ok(r)
}

/// Waits for fio; on Ctrl-C makes sure it ends (SIGINT, then SIGKILL).
fn wait_or_stop(child: &mut Child, stop: &Stop) -> Res<std::process::ExitStatus> {
    let pid = Pid::from_raw(child.id() as i32);
    let mut stopping_since: Option<Instant> = None;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                // The terminal's Ctrl-C reaches fio too: it may end first.
                return if stopping_since.is_some() || stop.is_set() {
                    Err(Error::Interrupted)
                } else {
                    Ok(status)
                };
            }
            Ok(None) => {}
            Err(e) => return Err(Error::Failed(format!("waiting for fio: {e}"))),
        }
        if stop.is_set() {
            match stopping_since {
                None => {
                    if let Some(p) = pid {
                        let _ = kill_process(p, Signal::INT);
                    }
                    stopping_since = Some(Instant::now());
                }
                Some(t) if t.elapsed() > Duration::from_secs(5) => {
                    if let Some(p) = pid {
                        let _ = kill_process(p, Signal::KILL);
                    }
                }
                Some(_) => {}
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts the tools asked for on the daemon; they write next to the JSON.
fn attach(job: &Job, cx: &Context<'_>) -> Vec<Child> {
    let Some(pid) = cx.daemon else {
        return Vec::new();
    };
    let mut tools = Vec::new();
    let mut start = |program: &str, args: Vec<String>| match Command::new(program)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => tools.push(c),
        Err(e) => crate::log(format_args!("cannot start {program}: {e}")),
    };
    if cx.attach.perf {
        let out = cx.raw.join(format!("{}.perf.txt", job.name));
        start(
            "perf",
            vec![
                "stat".into(),
                "-p".into(),
                pid.to_string(),
                "-o".into(),
                out.display().to_string(),
            ],
        );
    }
    if cx.attach.strace {
        let out = cx.raw.join(format!("{}.strace.txt", job.name));
        start(
            "strace",
            vec![
                "-c".into(),
                "-f".into(),
                "-p".into(),
                pid.to_string(),
                "-o".into(),
                out.display().to_string(),
            ],
        );
    }
    if !tools.is_empty() {
        // Let them attach before the job starts.
        std::thread::sleep(Duration::from_millis(300));
    }
    tools
}

/// Stops the attached tools (SIGINT: they write their report and detach).
fn detach(tools: Vec<Child>) {
    for mut t in tools {
        if let Some(p) = Pid::from_raw(t.id() as i32) {
            let _ = kill_process(p, Signal::INT);
        }
        let _ = t.wait();
    }
}

/// Reads one fio JSON file: the first job's `direction` part.
pub(crate) fn parse(path: &Path, direction: &str) -> Result<JobResult, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // fio may print warnings before the document.
    let start = text
        .find('{')
        .ok_or_else(|| format!("{}: no JSON in fio's output", path.display()))?;
    let doc: Value =
        serde_json::from_str(&text[start..]).map_err(|e| format!("{}: {e}", path.display()))?;
    let job = doc
        .get("jobs")
        .and_then(|j| j.get(0))
        .ok_or_else(|| format!("{}: no jobs", path.display()))?;
    let part = job
        .get(direction)
        .ok_or_else(|| format!("{}: no {direction} part", path.display()))?;
    let num = |v: &Value, k: &str| v.get(k).and_then(Value::as_f64).unwrap_or(0.0);
    let runtime_ms = num(part, "runtime");
    let mut r = JobResult {
        bytes: num(part, "io_bytes") as u64,
        runtime_s: runtime_ms / 1000.0,
        mib_s: num(part, "bw_bytes") / (1u64 << 20) as f64,
        iops: num(part, "iops"),
        ..JobResult::default()
    };
    if r.bytes == 0 {
        return Err(format!("{}: no bytes transferred", path.display()));
    }
    // usr_cpu / sys_cpu are percentages of the job's runtime.
    let job_runtime_s = num(job, "job_runtime") / 1000.0;
    r.fio_cpu_s = (num(job, "usr_cpu") + num(job, "sys_cpu")) / 100.0 * job_runtime_s;
    if let Some(clat) = part.get("clat_ns") {
        let pct = clat.get("percentile");
        r.clat = Latency {
            percentiles: PERCENTILES
                .iter()
                .map(|(name, key)| {
                    let v = pct
                        .and_then(|p| p.get(*key))
                        .and_then(Value::as_f64)
                        .unwrap_or(f64::NAN);
                    (name.to_string(), v / 1000.0)
                })
                .collect(),
            max: num(clat, "max") / 1000.0,
            mean: num(clat, "mean") / 1000.0,
            samples: num(clat, "N") as u64,
        };
        if let Some(bins) = clat.get("bins").and_then(Value::as_object) {
            let mut v: Vec<(u64, u64)> = bins
                .iter()
                .filter_map(|(k, c)| Some((k.parse().ok()?, c.as_u64()?)))
                .collect();
            v.sort_unstable();
            r.bins = v;
        }
    }
    Ok(r)
}
