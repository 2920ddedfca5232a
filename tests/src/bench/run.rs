//! The run: prepare, then repetitions with the targets interleaved, then
//! the message-size sweep, then the report.
//!
//! Order of one repetition of one target (a fresh mount each time, so every
//! repetition has its own peak RSS and summary line):
//!
//! 1. mount; on the first repetition, the tracepoint probe (FUSE only);
//! 2. for each block size: sequential write of a freshly deleted file
//!    `seq`, then sequential read of it;
//! 3. 4k random read, then 4k random write, over `seq`, time-based;
//! 4. `--parallel` jobs writing, then reading, one file each;
//! 5. the metadata test in a fresh directory;
//! 6. VmHWM and CPU of the daemon, then stop it (slabfuse-memfs: SIGTERM,
//!    and its summary line is read; the peers: unmount).
//!
//! Within a repetition the targets run one after the other, their order
//! rotated by one each repetition, so that slow drifts of a shared machine
//! do not always hit the same target at the same point.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::cli::{Mode, Options, fio_size, human};
use crate::fio::{self, Attach, Context, Job, JobResult};
use crate::meta::{self, MetaResult};
use crate::micro::{self, Micro};
use crate::peers;
use crate::procfs;
use crate::target::{DaemonReport, Kind, Mount, Target};
use crate::trace::{self, Observed};
use crate::{Error, Res, Stop, log};

/// The slabfuse-memfs label.
pub(crate) const SLABFUSE: &str = "slabfuse-memfs";
/// Headroom of every data budget beyond the largest data set, bytes.
const BUDGET_HEADROOM: u64 = 64 << 20;

/// One repetition of one target.
#[derive(Debug, Default)]
pub(crate) struct RepResult {
    /// Repetition (0-based).
    pub(crate) rep: usize,
    /// Position in that repetition's order (0-based).
    pub(crate) position: usize,
    /// Load average before and after.
    pub(crate) load: ([f64; 3], [f64; 3]),
    /// Seconds from mount to stop.
    pub(crate) seconds: f64,
    /// Filesystem type.
    pub(crate) fstype: String,
    /// Every fio job.
    pub(crate) jobs: Vec<JobResult>,
    /// The metadata test.
    pub(crate) meta: Option<MetaResult>,
    /// The daemon (none for tmpfs).
    pub(crate) daemon: Option<DaemonReport>,
    /// The tracepoint probe.
    pub(crate) observed: Option<Observed>,
    /// Metric key → value (see `report` for the keys).
    pub(crate) metrics: BTreeMap<String, f64>,
    /// What went wrong, if something did.
    pub(crate) error: Option<String>,
}

impl RepResult {
    /// The job called `name`.
    pub(crate) fn job(&self, name: &str) -> Option<&JobResult> {
        self.jobs.iter().find(|j| j.name == name)
    }
}

/// One target over all repetitions.
pub(crate) struct TargetResult {
    /// The target.
    pub(crate) target: Target,
    /// Its repetitions.
    pub(crate) reps: Vec<RepResult>,
}

/// One `--max-message` value of the sweep.
#[derive(Default)]
pub(crate) struct SweepPoint {
    /// `--max-message`, bytes.
    pub(crate) max_message: u64,
    /// (write, read) per repetition.
    pub(crate) reps: Vec<(JobResult, JobResult)>,
    /// The daemon.
    pub(crate) daemon: Option<DaemonReport>,
    /// What went wrong.
    pub(crate) error: Option<String>,
}

/// Everything a run produced.
pub(crate) struct Run {
    /// The options.
    pub(crate) options: Options,
    /// Start, seconds since the epoch.
    pub(crate) started_unix: u64,
    /// fio's version.
    pub(crate) fio_version: String,
    /// `max_pages_limit` before the run and during it.
    pub(crate) max_pages: (String, String),
    /// Load average at start and end.
    pub(crate) load: ([f64; 3], [f64; 3]),
    /// The targets.
    pub(crate) targets: Vec<TargetResult>,
    /// Targets that could not run, and why.
    pub(crate) skipped: Vec<(String, String)>,
    /// The sweep.
    pub(crate) sweep: Vec<SweepPoint>,
    /// The microbenchmarks.
    pub(crate) micro: Vec<Micro>,
    /// Seconds: preparing (builds, microbenchmarks), measuring, in all.
    pub(crate) seconds: (f64, f64, f64),
    /// Seconds spent waiting for the `max_pages_limit` lock (tests).
    pub(crate) lock_wait_s: f64,
    /// Where the raw files are.
    pub(crate) raw: PathBuf,
    /// Where the results go.
    pub(crate) out: PathBuf,
}

/// The workspace root.
pub(crate) fn workspace_root(o: &Options) -> PathBuf {
    let root = o
        .root
        .clone()
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".."));
    std::fs::canonicalize(&root).unwrap_or(root)
}

/// Runs everything and writes the results.
pub(crate) fn run(o: &Options, stop: &Stop) -> Res<()> {
    let t0 = Instant::now();
    if !rustix::process::geteuid().is_root() {
        return Err(Error::Failed(
            "must run as root (mounts, fs.fuse.max_pages_limit, tracefs)".into(),
        ));
    }
    let fio_version = fio::version().map_err(Error::Failed)?;
    let root = workspace_root(o);
    let out = o.out.clone().unwrap_or_else(|| root.join("target/bench"));
    let raw = out.join("raw");
    if raw.exists() {
        std::fs::remove_dir_all(&raw)
            .map_err(|e| Error::Failed(format!("rm -r {}: {e}", raw.display())))?;
    }
    std::fs::create_dir_all(&raw)
        .map_err(|e| Error::Failed(format!("mkdir {}: {e}", raw.display())))?;
    let load_start = procfs::loadavg();
    let started_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    log(format_args!(
        "{} run: {} rep(s), load average {:.2} {:.2} {:.2}, results in {}",
        o.mode.name(),
        o.reps,
        load_start[0],
        load_start[1],
        load_start[2],
        out.display()
    ));

    // Targets.
    let wanted = |label: &str| {
        o.targets
            .as_ref()
            .is_none_or(|t| t.iter().any(|x| x == label))
    };
    let daemon = o.daemon.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("slabfuse-memfs")))
            .unwrap_or_else(|| PathBuf::from("slabfuse-memfs"))
    });
    let mut targets = Vec::new();
    let mut skipped = Vec::new();
    if wanted("tmpfs") {
        targets.push(Target {
            label: "tmpfs".into(),
            kind: Kind::Tmpfs,
            command: Vec::new(),
        });
    }
    if (wanted(SLABFUSE) || !o.sweep.is_empty()) && !daemon.is_file() {
        return Err(Error::Failed(format!(
            "{} not found: cargo build --release -p slabfuse-memfs (or --daemon PATH)",
            daemon.display()
        )));
    }
    let main_budget = o.size.max(o.parallel_size * o.parallel_jobs as u64) + BUDGET_HEADROOM;
    if wanted(SLABFUSE) {
        targets.push(slabfuse_target(
            &daemon,
            main_budget,
            16 << 20,
            &o.daemon_args,
        ));
    }
    let kit = o
        .peers
        .clone()
        .unwrap_or_else(|| root.join("../shared/peers"));
    let (ready, not_ready) = peers::prepare(&kit, &out.join("peers"), &wanted);
    targets.extend(ready);
    for s in not_ready {
        log(format_args!("skipping {}: {}", s.label, s.reason));
        skipped.push((s.label, s.reason));
    }
    for (label, cmd) in &o.extra {
        targets.push(Target {
            label: label.clone(),
            kind: Kind::Peer,
            command: vec![cmd.clone()],
        });
    }
    stop.check()?;

    let micro = if o.micro {
        micro::run(&root, &raw, stop)
    } else {
        Vec::new()
    };
    stop.check()?;
    let prepared = t0.elapsed().as_secs_f64();

    // Raised before any mount: the kernel reads it when a connection is
    // made. The guard holds the knob's lock (shared with the tests, which
    // rely on or change the value) for the whole run.
    let t_lock = Instant::now();
    if knob_is_busy() {
        log(format_args!(
            "waiting for other processes (tests) using fs.fuse.max_pages_limit to finish"
        ));
        // Polled, so that Ctrl-C still works while waiting.
        while knob_is_busy() {
            crate::sleep(Duration::from_millis(200), stop)?;
        }
    }
    let sysctl =
        slabfuse_tests::Sysctl::set(slabfuse_tests::MAX_PAGES_LIMIT, &o.max_pages.to_string())
            .map_err(|e| Error::Failed(format!("{}: {e}", slabfuse_tests::MAX_PAGES_LIMIT)))?;
    let max_pages = (
        sysctl.old().to_string(),
        procfs::read_trimmed(slabfuse_tests::MAX_PAGES_LIMIT).unwrap_or_default(),
    );
    let lock_wait = t_lock.elapsed().as_secs_f64();
    log(format_args!(
        "fs.fuse.max_pages_limit {} -> {} for the run{}",
        max_pages.0,
        max_pages.1,
        if lock_wait > 1.0 {
            format!(" (waited {lock_wait:.0} s for its lock)")
        } else {
            String::new()
        }
    ));
    // Held until the end of measuring; closing the file lifts the request.
    let idle_guard = if o.poll_idle {
        let f = poll_idle().map_err(Error::Failed)?;
        log(format_args!(
            "/dev/cpu_dma_latency held at 0: idle CPUs poll"
        ));
        Some(f)
    } else {
        None
    };
    let t_measure = Instant::now();
    let attach = Attach {
        perf: o.perf,
        strace: o.strace,
    };

    let mut results: Vec<TargetResult> = targets
        .iter()
        .map(|t| TargetResult {
            target: t.clone(),
            reps: Vec::new(),
        })
        .collect();
    for rep in 0..o.reps {
        let n = results.len();
        for position in 0..n {
            let i = (position + rep) % n;
            let target = results[i].target.clone();
            let budget = main_budget;
            let r = run_target(o, &target, rep, position, budget, &raw, attach, stop)?;
            results[i].reps.push(r);
        }
    }

    let mut sweep = Vec::new();
    for &size in &o.sweep {
        stop.check()?;
        sweep.push(run_sweep_point(o, &daemon, size, &raw, attach, stop)?);
    }
    let measured = t_measure.elapsed().as_secs_f64();
    drop(idle_guard);
    drop(sysctl);
    crate::target::remove_mount_base();
    log(format_args!(
        "fs.fuse.max_pages_limit restored to {}",
        max_pages.0
    ));

    let run = Run {
        options: o.clone(),
        started_unix,
        fio_version,
        max_pages,
        load: (load_start, procfs::loadavg()),
        targets: results,
        skipped,
        sweep,
        micro,
        seconds: (prepared, measured, t0.elapsed().as_secs_f64()),
        lock_wait_s: lock_wait,
        raw,
        out,
    };
    crate::report::write(&run)
}

/// Asks the kernel (PM QoS) for a CPU wake-up latency of 0 while the
/// returned file is open: cpuidle then only polls.
fn poll_idle() -> Result<std::fs::File, String> {
    use std::io::Write;
    let mut f = std::fs::File::options()
        .write(true)
        .open("/dev/cpu_dma_latency")
        .map_err(|e| format!("/dev/cpu_dma_latency: {e}"))?;
    f.write_all(&0i32.to_ne_bytes())
        .map_err(|e| format!("/dev/cpu_dma_latency: {e}"))?;
    Ok(f)
}

/// Whether another process holds the `max_pages_limit` knob's lock now
/// (the lock file of `slabfuse_tests::KnobLock`).
fn knob_is_busy() -> bool {
    let name = slabfuse_tests::knob_name(slabfuse_tests::MAX_PAGES_LIMIT);
    let path = std::env::temp_dir().join(format!("slabfuse-knob-{name}.lock"));
    let Ok(file) = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
    else {
        return false;
    };
    // Released when `file` closes, before the guard takes it for real.
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err()
}

/// slabfuse-memfs in the foreground with a data budget, a message size,
/// direct_io (as the peers), and the extra arguments.
fn slabfuse_target(daemon: &Path, budget: u64, max_message: u64, extra: &[String]) -> Target {
    let mut command = vec![
        daemon.display().to_string(),
        "-f".into(),
        "--size".into(),
        human(budget.div_ceil(1 << 20) << 20),
        "--max-message".into(),
        human(max_message),
        "-o".into(),
        "direct_io".into(),
    ];
    command.extend(extra.iter().cloned());
    command.push("{mnt}".into());
    Target {
        label: SLABFUSE.into(),
        kind: Kind::Slabfuse,
        command,
    }
}

/// One repetition of one target; a failure is recorded, not returned
/// (only Ctrl-C ends the run).
#[allow(clippy::too_many_arguments)]
fn run_target(
    o: &Options,
    target: &Target,
    rep: usize,
    position: usize,
    budget: u64,
    raw: &Path,
    attach: Attach,
    stop: &Stop,
) -> Res<RepResult> {
    stop.check()?;
    let dir = raw.join(format!("rep{}", rep + 1)).join(&target.label);
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::Failed(format!("mkdir {}: {e}", dir.display())))?;
    let mut r = RepResult {
        rep,
        position,
        ..RepResult::default()
    };
    r.load.0 = procfs::loadavg();
    let t = Instant::now();
    let log_path = dir.join("daemon.log");
    let mount = match Mount::start(target, budget, &log_path, stop) {
        Ok(m) => m,
        Err(Error::Interrupted) => return Err(Error::Interrupted),
        Err(Error::Failed(e)) => {
            log(format_args!("{}: {e}", target.label));
            r.error = Some(e);
            return Ok(r);
        }
    };
    r.fstype = mount.fstype();
    let cx = Context {
        raw: &dir,
        daemon: mount.daemon_pid(),
        attach,
        stop,
    };
    let tag = format!("rep {}/{} {}", rep + 1, o.reps, target.label);
    let outcome = jobs(o, &mount, &cx, &tag, rep, &mut r);
    let report = if target.kind == Kind::Tmpfs {
        mount.stop()?;
        None
    } else {
        Some(mount.stop()?)
    };
    r.load.1 = procfs::loadavg();
    r.seconds = t.elapsed().as_secs_f64();
    if let Some(d) = &report {
        if let Some(hwm) = d.status.and_then(|s| s.vmhwm_kib) {
            r.metrics.insert("vmhwm_mib".into(), hwm as f64 / 1024.0);
            // slabfuse-memfs prints what it maps; its peak RSS should be
            // that, plus the executable and the start-up heap.
            if let Some(planned) = d.plan_value("mapped_total") {
                r.metrics.insert(
                    "rss_over_plan_pct".into(),
                    (hwm as f64 * 1024.0 / planned - 1.0) * 100.0,
                );
            }
        }
        for (key, field) in [
            ("heap_allocs", "heap_allocs_after_start"),
            ("page_faults", "page_faults_after_start"),
            ("eagain", "eagain"),
        ] {
            if let Some(v) = d.summary_value(field) {
                r.metrics.insert(key.into(), v);
            }
        }
    }
    r.daemon = report;
    match outcome {
        Ok(()) => {}
        Err(Error::Interrupted) => return Err(Error::Interrupted),
        Err(Error::Failed(_)) if stop.is_set() => return Err(Error::Interrupted),
        Err(Error::Failed(e)) => {
            log(format_args!("{tag}: {e}"));
            r.error = Some(e);
        }
    }
    log(format_args!("{tag}: done in {:.1} s", r.seconds));
    Ok(r)
}

/// The jobs of one repetition on a mounted target.
fn jobs(
    o: &Options,
    mount: &Mount,
    cx: &Context<'_>,
    tag: &str,
    rep: usize,
    r: &mut RepResult,
) -> Res<()> {
    let mnt = mount.path();
    if rep == 0
        && o.trace
        && let Some(conn) = mount.fuse_connection()
    {
        r.observed = trace::probe(mnt, conn, cx)?;
    }
    let seq = mnt.join("seq").display().to_string();
    let size = fio_size(o.size);
    let runtime = format!("--runtime={}", o.seq_runtime_s);
    for &bs in &o.bss {
        let b = fio_size(bs);
        let _ = std::fs::remove_file(mnt.join("seq"));
        for (rw, direction, key, cpu_key) in [
            ("write", "write", "seq_write", "cpu_write"),
            ("read", "read", "seq_read", "cpu_read"),
        ] {
            let mut args = vec![
                format!("--filename={seq}"),
                format!("--rw={rw}"),
                format!("--bs={b}"),
                format!("--size={size}"),
            ];
            if rw == "read" && o.seq_read_s > 0 {
                // Long enough to measure: the file again and again.
                args.push("--time_based".into());
                args.push(format!("--runtime={}", o.seq_read_s));
            } else {
                args.push(runtime.clone());
            }
            let job = Job {
                name: format!("seq{rw}-{b}"),
                direction,
                args,
                histogram: false,
            };
            let j = fio::run(&job, cx)?;
            r.metrics.insert(format!("{key}/{b}"), j.mib_s);
            if let Some(ms) = j.ms_per_gib(j.daemon_cpu_s) {
                r.metrics.insert(format!("{cpu_key}/{b}"), ms);
            }
            log_job(tag, &j);
            r.jobs.push(j);
        }
    }
    for (rw, direction) in [("randread", "read"), ("randwrite", "write")] {
        let job = Job {
            name: rw.into(),
            direction,
            args: vec![
                format!("--filename={seq}"),
                format!("--rw={rw}"),
                "--bs=4k".into(),
                format!("--size={size}"),
                "--time_based".into(),
                format!("--runtime={}", o.rand_runtime_s),
                "--percentile_list=50:99:99.9:99.99".into(),
            ],
            histogram: true,
        };
        let j = fio::run(&job, cx)?;
        for (name, v) in &j.clat.percentiles {
            r.metrics.insert(format!("{rw}/{name}"), *v);
        }
        r.metrics.insert(format!("{rw}/max"), j.clat.max);
        r.metrics.insert(format!("{rw}/iops"), j.iops);
        log_job(tag, &j);
        r.jobs.push(j);
    }
    let _ = std::fs::remove_file(mnt.join("seq"));

    let par = mnt.join("par");
    std::fs::create_dir(&par)
        .map_err(|e| Error::Failed(format!("mkdir {}: {e}", par.display())))?;
    for (rw, direction, key) in [
        ("write", "write", "par_write"),
        ("read", "read", "par_read"),
    ] {
        let job = Job {
            name: format!("par{rw}"),
            direction,
            args: vec![
                format!("--directory={}", par.display()),
                "--filename_format=par.$jobnum".into(),
                format!("--numjobs={}", o.parallel_jobs),
                "--group_reporting".into(),
                format!("--rw={rw}"),
                format!("--bs={}", fio_size(o.parallel_bs)),
                format!("--size={}", fio_size(o.parallel_size)),
                runtime.clone(),
            ],
            histogram: false,
        };
        let j = fio::run(&job, cx)?;
        r.metrics.insert(key.into(), j.mib_s);
        log_job(tag, &j);
        r.jobs.push(j);
    }
    for i in 0..o.parallel_jobs {
        let _ = std::fs::remove_file(par.join(format!("par.{i}")));
    }
    let _ = std::fs::remove_dir(&par);

    if o.meta_files > 0 {
        let dir = mnt.join("meta");
        std::fs::create_dir(&dir)
            .map_err(|e| Error::Failed(format!("mkdir {}: {e}", dir.display())))?;
        let before = cx.daemon.map(procfs::process_cpu);
        let mut m = meta::run(
            &dir,
            o.meta_files,
            Duration::from_millis(o.meta_pause_ms),
            cx.stop,
        )?;
        let after = cx.daemon.map(procfs::process_cpu);
        m.daemon_cpu_s = match (&before, &after) {
            (Some(b), Some(a)) => procfs::cpu_between(b, a),
            _ => None,
        };
        let _ = std::fs::remove_dir(&dir);
        let ops = m.ops_s();
        for (k, v) in ["create", "stat", "unlink", "total"].iter().zip(ops) {
            r.metrics.insert(format!("meta/{k}"), v);
        }
        log(format_args!(
            "{tag} metadata: create {:.0}/s, stat {:.0}/s, unlink {:.0}/s",
            ops[0], ops[1], ops[2]
        ));
        r.meta = Some(m);
    }
    Ok(())
}

fn log_job(tag: &str, j: &JobResult) {
    let cpu = j
        .ms_per_gib(j.daemon_cpu_s)
        .map(|ms| format!(", daemon CPU {ms:.0} ms/GiB"))
        .unwrap_or_default();
    if j.name.starts_with("rand") {
        log(format_args!(
            "{tag} {}: {:.0} IOPS, p50 {:.1} µs, p99 {:.1} µs, max {:.0} µs",
            j.name,
            j.iops,
            j.clat.percentiles.first().map(|p| p.1).unwrap_or(f64::NAN),
            j.clat.percentiles.get(1).map(|p| p.1).unwrap_or(f64::NAN),
            j.clat.max
        ));
    } else {
        log(format_args!("{tag} {}: {:.0} MiB/s{cpu}", j.name, j.mib_s));
    }
}

/// One sweep point: slabfuse-memfs with `--max-message size`, `reps` ×
/// (write, read) of `sweep_size` bytes at `sweep_bs` blocks on one mount.
fn run_sweep_point(
    o: &Options,
    daemon: &Path,
    size: u64,
    raw: &Path,
    attach: Attach,
    stop: &Stop,
) -> Res<SweepPoint> {
    let label = human(size);
    let dir = raw.join("sweep").join(&label);
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::Failed(format!("mkdir {}: {e}", dir.display())))?;
    let mut target = slabfuse_target(daemon, o.sweep_size + BUDGET_HEADROOM, size, &o.daemon_args);
    target.label = format!("sweep-{label}");
    let mut point = SweepPoint {
        max_message: size,
        ..SweepPoint::default()
    };
    let mount = match Mount::start(&target, 0, &dir.join("daemon.log"), stop) {
        Ok(m) => m,
        Err(Error::Interrupted) => return Err(Error::Interrupted),
        Err(Error::Failed(e)) => {
            log(format_args!("sweep {label}: {e}"));
            point.error = Some(e);
            return Ok(point);
        }
    };
    let cx = Context {
        raw: &dir,
        daemon: mount.daemon_pid(),
        attach,
        stop,
    };
    let file = mount.path().join("sweep");
    let outcome = (|| -> Res<()> {
        for rep in 0..o.reps {
            let _ = std::fs::remove_file(&file);
            let job = |rw: &str, direction: &'static str| Job {
                name: format!("{rw}-rep{}", rep + 1),
                direction,
                args: vec![
                    format!("--filename={}", file.display()),
                    format!("--rw={rw}"),
                    format!("--bs={}", fio_size(o.sweep_bs)),
                    format!("--size={}", fio_size(o.sweep_size)),
                    format!("--runtime={}", o.seq_runtime_s),
                ],
                histogram: false,
            };
            let write = fio::run(&job("write", "write"), &cx)?;
            let read = fio::run(&job("read", "read"), &cx)?;
            log(format_args!(
                "sweep max_message {label} rep {}: write {:.0} MiB/s ({:.0} ms/GiB daemon CPU), \
                 read {:.0} MiB/s ({:.0} ms/GiB)",
                rep + 1,
                write.mib_s,
                write.ms_per_gib(write.daemon_cpu_s).unwrap_or(f64::NAN),
                read.mib_s,
                read.ms_per_gib(read.daemon_cpu_s).unwrap_or(f64::NAN),
            ));
            point.reps.push((write, read));
        }
        Ok(())
    })();
    let _ = std::fs::remove_file(&file);
    point.daemon = Some(mount.stop()?);
    match outcome {
        Ok(()) => {}
        Err(Error::Interrupted) => return Err(Error::Interrupted),
        Err(Error::Failed(_)) if stop.is_set() => return Err(Error::Interrupted),
        Err(Error::Failed(e)) => {
            log(format_args!("sweep {label}: {e}"));
            point.error = Some(e);
        }
    }
    Ok(point)
}

/// Whether `mode` is the quick one (for the report's wording).
pub(crate) fn is_quick(o: &Options) -> bool {
    o.mode == Mode::Quick
}
