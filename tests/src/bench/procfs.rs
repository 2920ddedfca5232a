//! What the harness reads from `/proc` and `/sys`: load average, CPU time
//! (a process's and the whole machine's), a process's peak memory, who holds
//! `/dev/fuse`, mounts, and a description of the machine.
//!
//! Every reader returns `None` (or an empty value) when the file is missing
//! or does not parse: a number the harness cannot read is reported as
//! missing, never invented.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Value, json};

/// `/proc/loadavg`'s three averages.
pub(crate) fn loadavg() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut v = text
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(f64::NAN));
    [
        v.next().unwrap_or(f64::NAN),
        v.next().unwrap_or(f64::NAN),
        v.next().unwrap_or(f64::NAN),
    ]
}

/// Clock ticks per second (`USER_HZ`), the unit of `/proc` CPU times.
pub(crate) fn ticks_per_second() -> f64 {
    rustix::param::clock_ticks_per_second() as f64
}

/// CPU time of the whole machine that was not idle (user, nice, system,
/// irq, softirq, steal), in ticks, from the `cpu` line of `/proc/stat`.
pub(crate) fn system_busy_ticks() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest is in user).
    let get = |i: usize| f.get(i).copied().unwrap_or(0);
    Some(get(0) + get(1) + get(2) + get(5) + get(6) + get(7))
}

/// A process's user + system CPU time in ticks, all its threads (live and
/// exited) included: fields 14 and 15 of `/proc/PID/stat`.
pub(crate) fn process_cpu_ticks(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses: fields start
    // after the last ')'. There, index 0 is field 3 (state).
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// A process's CPU time at one moment, two ways.
#[derive(Clone, Debug, Default)]
pub(crate) struct CpuSample {
    /// utime + stime of the whole process (exited threads included), ticks.
    ticks: Option<u64>,
    /// Sum of the live threads' run time (`/proc/PID/task/*/schedstat`,
    /// nanoseconds).
    exec_ns: Option<u64>,
    /// The live threads.
    tids: Vec<i32>,
}

/// Samples `pid`'s CPU time.
pub(crate) fn process_cpu(pid: i32) -> CpuSample {
    let mut s = CpuSample {
        ticks: process_cpu_ticks(pid),
        ..CpuSample::default()
    };
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return s;
    };
    let mut total = 0u64;
    for e in dir.flatten() {
        let Some(tid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let ns = std::fs::read_to_string(e.path().join("schedstat"))
            .ok()
            .and_then(|t| t.split_whitespace().next()?.parse::<u64>().ok());
        match ns {
            Some(ns) => total += ns,
            None => return s,
        }
        s.tids.push(tid);
    }
    s.tids.sort_unstable();
    s.exec_ns = Some(total);
    s
}

/// CPU seconds between two samples: from the threads' run times (exact)
/// when the same threads lived at both ends, else from utime + stime
/// (which keeps exited threads' time, in whole ticks).
pub(crate) fn cpu_between(a: &CpuSample, b: &CpuSample) -> Option<f64> {
    if let (Some(x), Some(y)) = (a.exec_ns, b.exec_ns)
        && a.tids == b.tids
        && y >= x
    {
        return Some((y - x) as f64 / 1e9);
    }
    Some(b.ticks?.saturating_sub(a.ticks?) as f64 / ticks_per_second())
}

/// A process's parent, from `/proc/PID/stat` (field 4).
fn parent_of(pid: i32) -> Option<i32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Memory of a process from `/proc/PID/status`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Status {
    /// Peak resident set (`VmHWM`), KiB.
    pub(crate) vmhwm_kib: Option<u64>,
    /// Resident set now (`VmRSS`), KiB.
    pub(crate) vmrss_kib: Option<u64>,
    /// Threads.
    pub(crate) threads: Option<u64>,
}

/// Reads `VmHWM`, `VmRSS` and `Threads` of `pid`.
pub(crate) fn status(pid: i32) -> Option<Status> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let mut s = Status::default();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let n = value
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok());
        match key {
            "VmHWM" => s.vmhwm_kib = n,
            "VmRSS" => s.vmrss_kib = n,
            "Threads" => s.threads = n,
            _ => {}
        }
    }
    Some(s)
}

/// A process's command name (`/proc/PID/comm`).
pub(crate) fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Whether `pid` has `/dev/fuse` open.
pub(crate) fn holds_dev_fuse(pid: i32) -> bool {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    dir.flatten().any(|e| {
        std::fs::read_link(e.path())
            .map(|t| t == Path::new("/dev/fuse"))
            .unwrap_or(false)
    })
}

/// `pid` and all its descendants, parents before children.
pub(crate) fn with_descendants(pid: i32) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            if let Some(pp) = parent_of(p) {
                children.entry(pp).or_default().push(p);
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        if let Some(c) = children.get(&out[i]) {
            out.extend(c);
        }
        i += 1;
    }
    out
}

/// One line of `/proc/self/mountinfo`, the parts the harness uses.
#[derive(Clone, Debug)]
pub(crate) struct MountEntry {
    /// Filesystem type (`fuse.slabfuse-memfs`, `tmpfs`, …).
    pub(crate) fstype: String,
    /// The device's minor number; for FUSE, the connection number used by
    /// `/sys/fs/fuse/connections` and the tracepoints.
    pub(crate) minor: u32,
    /// The device's major number (0 for FUSE and tmpfs).
    pub(crate) major: u32,
}

/// The mount at exactly `path` (the last one, if stacked).
pub(crate) fn mount_entry(path: &Path) -> Option<MountEntry> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    let want = path.to_string_lossy();
    let mut found = None;
    for line in text.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        if f.len() < 5 || unescape(f[4]) != want {
            continue;
        }
        let (major, minor) = f[2].split_once(':')?;
        // Optional fields end with "-"; the type follows it.
        let dash = f.iter().position(|x| *x == "-")?;
        found = Some(MountEntry {
            fstype: f.get(dash + 1)?.to_string(),
            major: major.parse().ok()?,
            minor: minor.parse().ok()?,
        });
    }
    found
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// A trimmed one-line file, or `None`.
pub(crate) fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// CPU caches of CPU 0: `[(level, type, bytes)]`.
pub(crate) fn caches() -> Vec<(u32, String, u64)> {
    let mut out = Vec::new();
    for i in 0..8 {
        let base = format!("/sys/devices/system/cpu/cpu0/cache/index{i}");
        let (Some(level), Some(kind), Some(size)) = (
            read_trimmed(&format!("{base}/level")),
            read_trimmed(&format!("{base}/type")),
            read_trimmed(&format!("{base}/size")),
        ) else {
            continue;
        };
        let bytes = crate::cli::parse_size(&size).unwrap_or(0);
        if let Ok(level) = level.parse() {
            out.push((level, kind, bytes));
        }
    }
    out
}

/// The machine, for the results: kernel, CPU, memory, caches, page sizes.
pub(crate) fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_total_kib = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok());
    let thp = read_trimmed("/sys/kernel/mm/transparent_hugepage/enabled");
    json!({
        "kernel": read_trimmed("/proc/sys/kernel/osrelease"),
        "cpu_model": model,
        "cpus": std::thread::available_parallelism().map(|n| n.get()).ok(),
        "mem_total_kib": mem_total_kib,
        "caches": caches()
            .iter()
            .map(|(l, t, b)| json!({"level": l, "type": t, "bytes": b}))
            .collect::<Vec<_>>(),
        "transparent_hugepage": thp,
        "nr_hugepages": read_trimmed("/proc/sys/vm/nr_hugepages"),
        "cpuidle_driver": read_trimmed("/sys/devices/system/cpu/cpuidle/current_driver"),
    })
}
