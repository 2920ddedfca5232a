//! The results: `results.json` (everything, machine-readable), `results.md`
//! (the side-by-side table, printed at the end) and the charts.
//!
//! Every figure is the median over the repetitions; the ratio columns are
//! slabfuse-memfs's median divided by that target's median. Metric keys
//! (in `RepResult::metrics` and `results.json`):
//!
//! | key | what |
//! |---|---|
//! | `seq_write/<bs>`, `seq_read/<bs>` | fio bandwidth, MiB/s |
//! | `cpu_write/<bs>`, `cpu_read/<bs>` | daemon CPU (utime+stime) per GiB moved, ms |
//! | `randread/<p>`, `randwrite/<p>` | 4k completion latency, µs: p50, p99, p99.9, p99.99, max |
//! | `randread/iops`, `randwrite/iops` | the same jobs' IOPS |
//! | `par_write`, `par_read` | `--parallel` jobs together, MiB/s |
//! | `meta/<phase>` | create, stat, unlink, total operations per second |
//! | `vmhwm_mib` | daemon's peak RSS before it was stopped, MiB |
//! | `rss_over_plan_pct` | slabfuse-memfs: peak RSS over its plan line's `mapped_total`, % |
//! | `heap_allocs`, `page_faults`, `eagain` | slabfuse-memfs's summary line |

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::cli::{Options, fio_size, human};
use crate::run::{Run, SLABFUSE, SweepPoint, TargetResult, is_quick};
use crate::stats::Summary;
use crate::{Error, Res, log};

/// One row of the table.
pub(crate) struct Metric {
    /// Key in the repetitions' metric maps.
    pub(crate) key: String,
    /// Shown name.
    pub(crate) name: String,
    /// Decimals shown.
    pub(crate) digits: usize,
    /// Higher is better.
    pub(crate) higher: bool,
}

/// The rows, in order.
pub(crate) fn catalog(o: &Options) -> Vec<Metric> {
    let mut v = Vec::new();
    let mut add = |key: String, name: String, digits: usize, higher: bool| {
        v.push(Metric {
            key,
            name,
            digits,
            higher,
        })
    };
    for (dir, word) in [("write", "write"), ("read", "read")] {
        for &bs in &o.bss {
            let b = fio_size(bs);
            add(
                format!("seq_{dir}/{b}"),
                format!("seq {word} {b} MiB/s"),
                0,
                true,
            );
        }
    }
    for rw in ["randread", "randwrite"] {
        for p in ["p50", "p99", "p99.9", "p99.99", "max"] {
            add(format!("{rw}/{p}"), format!("4k {rw} {p} µs"), 1, false);
        }
        add(format!("{rw}/iops"), format!("4k {rw} IOPS"), 0, true);
    }
    let par = format!("{}×{}", o.parallel_jobs, fio_size(o.parallel_bs));
    add(
        "par_write".into(),
        format!("{par} parallel write MiB/s"),
        0,
        true,
    );
    add(
        "par_read".into(),
        format!("{par} parallel read MiB/s"),
        0,
        true,
    );
    for phase in ["create", "stat", "unlink", "total"] {
        add(
            format!("meta/{phase}"),
            format!("metadata {phase} ops/s"),
            0,
            true,
        );
    }
    for (dir, word) in [("write", "write"), ("read", "read")] {
        for &bs in &o.bss {
            let b = fio_size(bs);
            add(
                format!("cpu_{dir}/{b}"),
                format!("daemon CPU seq {word} {b} ms/GiB"),
                0,
                false,
            );
        }
    }
    add(
        "vmhwm_mib".into(),
        "daemon peak RSS (VmHWM) MiB".into(),
        0,
        false,
    );
    add(
        "rss_over_plan_pct".into(),
        "peak RSS above the printed plan (mapped_total), %".into(),
        2,
        false,
    );
    v
}

/// The summary of `key` over a target's repetitions.
pub(crate) fn summary(t: &TargetResult, key: &str) -> Option<Summary> {
    let values: Vec<f64> = t
        .reps
        .iter()
        .filter_map(|r| r.metrics.get(key).copied())
        .collect();
    Summary::of(&values)
}

/// fio's latency histogram of job `name`, merged over the repetitions:
/// (ns, count), ascending.
pub(crate) fn merged_bins(t: &TargetResult, name: &str) -> Vec<(u64, u64)> {
    let mut m: BTreeMap<u64, u64> = BTreeMap::new();
    for r in &t.reps {
        if let Some(j) = r.job(name) {
            for &(ns, c) in &j.bins {
                *m.entry(ns).or_default() += c;
            }
        }
    }
    m.into_iter().collect()
}

/// CDF points (µs, fraction of I/Os at or below) of a histogram.
pub(crate) fn cdf(bins: &[(u64, u64)]) -> Vec<(f64, f64)> {
    let total: u64 = bins.iter().map(|b| b.1).sum();
    if total == 0 {
        return Vec::new();
    }
    let mut cum = 0u64;
    bins.iter()
        .map(|&(ns, c)| {
            cum += c;
            (ns as f64 / 1000.0, cum as f64 / total as f64)
        })
        .collect()
}

/// The sweep point's (write, read) summaries of `f` over its repetitions.
pub(crate) fn sweep_stat(
    p: &SweepPoint,
    f: impl Fn(&crate::fio::JobResult) -> Option<f64>,
) -> (Option<Summary>, Option<Summary>) {
    let w: Vec<f64> = p.reps.iter().filter_map(|(w, _)| f(w)).collect();
    let r: Vec<f64> = p.reps.iter().filter_map(|(_, r)| f(r)).collect();
    (Summary::of(&w), Summary::of(&r))
}

/// Writes results.json, results.md and the charts; prints the table.
pub(crate) fn write(run: &Run) -> Res<()> {
    let charts = crate::plot::draw(run);
    let json = to_json(run, &charts);
    let json_path = run.out.join("results.json");
    let text = serde_json::to_string_pretty(&json)
        .map_err(|e| Error::Failed(format!("results.json: {e}")))?;
    std::fs::write(&json_path, text)
        .map_err(|e| Error::Failed(format!("{}: {e}", json_path.display())))?;
    let md = markdown(run, &charts);
    let md_path = run.out.join("results.md");
    let mut file_md = md.clone();
    for m in &run.micro {
        let _ = write!(
            file_md,
            "\n### Microbenchmark `{}` ({:.1} s{})\n\n```text\n{}```\n",
            m.command,
            m.seconds,
            if m.ok { "" } else { ", FAILED" },
            m.output
        );
    }
    std::fs::write(&md_path, file_md)
        .map_err(|e| Error::Failed(format!("{}: {e}", md_path.display())))?;
    log(format_args!(
        "wrote {}, {} and {} chart(s)",
        json_path.display(),
        md_path.display(),
        charts.len()
    ));
    println!("\n{md}");
    Ok(())
}

/// Thousands separators and `digits` decimals.
pub(crate) fn fmt_num(v: f64, digits: usize) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    let s = format!("{:.*}", digits, v.abs());
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i.to_string(), format!(".{f}")),
        None => (s.clone(), String::new()),
    };
    let mut out = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    format!("{}{out}{frac}", if v < 0.0 { "-" } else { "" })
}

fn fmt_bytes(b: Option<u64>) -> String {
    match b {
        None => "-".into(),
        Some(0) => "0".into(),
        Some(b) => {
            let h = human(b);
            match h.char_indices().last() {
                Some((i, c)) if c.is_ascii_alphabetic() => format!("{} {c}iB", &h[..i]),
                _ => format!("{b} B"),
            }
        }
    }
}

/// `YYYY-MM-DD HH:MM UTC` of a Unix time.
fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

fn load_str(l: [f64; 3]) -> String {
    format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2])
}

/// The reference target (slabfuse-memfs) and the others, in run order.
fn split(run: &Run) -> (Option<&TargetResult>, Vec<&TargetResult>) {
    let reference = run.targets.iter().find(|t| t.target.label == SLABFUSE);
    let others = run
        .targets
        .iter()
        .filter(|t| t.target.label != SLABFUSE)
        .collect();
    (reference, others)
}

/// A table cell: median, and the spread when there are repetitions.
fn cell(s: &Option<Summary>, digits: usize) -> String {
    match s {
        None => "-".into(),
        Some(s) if s.all.len() > 1 && s.median != 0.0 => {
            let spread = (s.max - s.min) / 2.0 / s.median.abs() * 100.0;
            format!("{} ±{:.0}%", fmt_num(s.median, digits), spread)
        }
        Some(s) => fmt_num(s.median, digits),
    }
}

fn ratio(a: &Option<Summary>, b: &Option<Summary>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b.median != 0.0 => format!("×{:.2}", a.median / b.median),
        _ => "-".into(),
    }
}

/// The markdown report.
pub(crate) fn markdown(run: &Run, charts: &[String]) -> String {
    let o = &run.options;
    let machine = crate::procfs::machine();
    let mut md = String::new();
    let _ = writeln!(md, "## slabfuse benchmarks ({} run)\n", o.mode.name());
    let _ = writeln!(
        md,
        "{} · kernel {} · {} × {} CPUs · {} · fs.fuse.max_pages_limit {} during the run ({} before) · \
         {} repetition(s), targets interleaved (order rotated each repetition) · load average \
         {} at start, {} at end · measuring took {:.0} s ({:.0} s in all, {:.0} s of it \
         building peers and microbenchmarks{})\n",
        utc(run.started_unix),
        machine["kernel"].as_str().unwrap_or("?"),
        machine["cpu_model"].as_str().unwrap_or("?"),
        machine["cpus"].as_u64().unwrap_or(0),
        run.fio_version,
        run.max_pages.1,
        run.max_pages.0,
        o.reps,
        load_str(run.load.0),
        load_str(run.load.1),
        run.seconds.1,
        run.seconds.2,
        run.seconds.0,
        if run.lock_wait_s > 1.0 {
            format!(
                ", {:.0} s waiting for tests to release fs.fuse.max_pages_limit",
                run.lock_wait_s
            )
        } else {
            String::new()
        },
    );
    let (reference, others) = split(run);
    let _ = writeln!(
        md,
        "Cells: median of the repetitions{}.{}\n",
        if o.reps > 1 {
            ", ± half the min–max range in % of the median"
        } else {
            ""
        },
        if reference.is_some() {
            format!(
                " × = {SLABFUSE} ÷ that target. ↑ higher is better (× > 1: {SLABFUSE} ahead); \
                 ↓ lower is better (× < 1: {SLABFUSE} ahead)."
            )
        } else {
            String::new()
        }
    );
    if o.poll_idle {
        let _ = writeln!(
            md,
            "Measured with `--poll-idle`: /dev/cpu_dma_latency held at 0, idle CPUs polled \
             instead of sleeping.\n"
        );
    }
    if o.perf || o.strace {
        let _ = writeln!(
            md,
            "**Instrumented run** ({}attached to every daemon during every job): the numbers \
             are for finding out why, not for comparing.\n",
            match (o.perf, o.strace) {
                (true, true) => "perf stat and strace -c ",
                (true, false) => "perf stat ",
                _ => "strace -c ",
            }
        );
    }
    // Header.
    let mut head = String::from("| metric |");
    let mut rule = String::from("|---|");
    if reference.is_some() {
        head.push_str(&format!(" {SLABFUSE} |"));
        rule.push_str("---:|");
    }
    for t in &others {
        head.push_str(&format!(" {} |", t.target.label));
        rule.push_str("---:|");
        if reference.is_some() {
            head.push_str(&format!(" × {} |", short(&t.target.label)));
            rule.push_str("---:|");
        }
    }
    let _ = writeln!(md, "{head}\n{rule}");
    for m in catalog(o) {
        let rs = reference.and_then(|r| summary(r, &m.key));
        let os: Vec<Option<Summary>> = others.iter().map(|t| summary(t, &m.key)).collect();
        if rs.is_none() && os.iter().all(Option::is_none) {
            continue;
        }
        let arrow = if m.higher { "↑" } else { "↓" };
        let mut row = format!("| {} {arrow} |", m.name);
        if reference.is_some() {
            row.push_str(&format!(" {} |", cell(&rs, m.digits)));
        }
        for s in &os {
            row.push_str(&format!(" {} |", cell(s, m.digits)));
            if reference.is_some() {
                row.push_str(&format!(" {} |", ratio(&rs, s)));
            }
        }
        let _ = writeln!(md, "{row}");
    }
    // Rows that are facts, not ratios.
    let fact_row = |name: &str, f: &dyn Fn(&TargetResult) -> String| -> String {
        let mut row = format!("| {name} |");
        if let Some(r) = reference {
            row.push_str(&format!(" {} |", f(r)));
        }
        for t in &others {
            row.push_str(&format!(" {} |", f(t)));
            if reference.is_some() {
                row.push_str(" |");
            }
        }
        row
    };
    let max_of = |key: &'static str| {
        move |t: &TargetResult| match summary(t, key) {
            Some(s) => fmt_num(s.max, 0),
            None => "-".into(),
        }
    };
    let largest = |write: bool| {
        move |t: &TargetResult| {
            let said = t
                .reps
                .iter()
                .filter_map(|r| r.daemon.as_ref())
                .filter_map(|d| if write { d.largest().0 } else { d.largest().1 })
                .max();
            let traced = t
                .reps
                .iter()
                .filter_map(|r| r.observed)
                .filter_map(|o| if write { o.max_write } else { o.max_read })
                .max();
            match (said, traced) {
                (None, None) => "-".into(),
                (s, None) => fmt_bytes(s),
                (s, t) => format!("{} (traced {})", fmt_bytes(s), fmt_bytes(t)),
            }
        }
    };
    let rows = [
        fact_row(
            "heap allocations after start (max over reps)",
            &max_of("heap_allocs"),
        ),
        fact_row(
            "page faults after start (max over reps)",
            &max_of("page_faults"),
        ),
        fact_row("EAGAIN replies (max over reps)", &max_of("eagain")),
        fact_row("largest WRITE request", &largest(true)),
        fact_row("largest READ reply", &largest(false)),
        fact_row("daemon threads", &|t: &TargetResult| {
            t.reps
                .iter()
                .filter_map(|r| r.daemon.as_ref()?.status?.threads)
                .max()
                .map(|n| n.to_string())
                .unwrap_or_else(|| "-".into())
        }),
        fact_row(
            "load average (1 min) at end, median",
            &|t: &TargetResult| {
                let v: Vec<f64> = t.reps.iter().map(|r| r.load.1[0]).collect();
                Summary::of(&v)
                    .map(|s| format!("{:.2}", s.median))
                    .unwrap_or_else(|| "-".into())
            },
        ),
        fact_row("failed repetitions", &|t: &TargetResult| {
            let n = t.reps.iter().filter(|r| r.error.is_some()).count();
            format!("{n}/{}", t.reps.len())
        }),
    ];
    for r in rows {
        let _ = writeln!(md, "{r}");
    }

    // Sweep.
    if !run.sweep.is_empty() {
        let _ = writeln!(
            md,
            "\n### Message-size sweep ({SLABFUSE}, `--max-message`; {} written then read at {} \
             blocks, {} rep(s) per point on one mount)\n",
            fio_size(o.sweep_size),
            fio_size(o.sweep_bs),
            o.reps
        );
        let _ = writeln!(
            md,
            "CPU per GiB moved, write / read: daemon = the daemon's CPU time; fio = the \
             client's, which includes the kernel's copies into and out of FUSE requests. (The \
             whole machine's non-idle CPU per GiB is in results.json; on a shared machine it \
             mostly measures the neighbours.)\n"
        );
        let _ = writeln!(
            md,
            "| max message | largest WRITE seen | pool | write MiB/s ↑ | read MiB/s ↑ | daemon \
             ms/GiB ↓ | fio ms/GiB ↓ |\n|---|---:|---|---:|---:|---:|---:|"
        );
        for p in &run.sweep {
            let (w, r) = sweep_stat(p, |j| Some(j.mib_s));
            let (dw, dr) = sweep_stat(p, |j| j.ms_per_gib(j.daemon_cpu_s));
            let (fw, fr) = sweep_stat(p, |j| j.ms_per_gib(Some(j.fio_cpu_s)));
            let pair = |a: &Option<Summary>, b: &Option<Summary>| {
                format!(
                    "{} / {}",
                    a.as_ref()
                        .map(|s| fmt_num(s.median, 0))
                        .unwrap_or("-".into()),
                    b.as_ref()
                        .map(|s| fmt_num(s.median, 0))
                        .unwrap_or("-".into())
                )
            };
            let seen = p.daemon.as_ref().and_then(|d| d.largest().0);
            let pool = p
                .daemon
                .as_ref()
                .and_then(|d| d.plan.as_ref())
                .map(|plan| {
                    format!(
                        "{} × {}",
                        plan.get("pool_blocks").map(String::as_str).unwrap_or("?"),
                        plan.get("block_size").map(String::as_str).unwrap_or("?")
                    )
                })
                .unwrap_or_else(|| "-".into());
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} |{}",
                human(p.max_message),
                fmt_bytes(seen),
                pool,
                cell(&w, 0),
                cell(&r, 0),
                pair(&dw, &dr),
                pair(&fw, &fr),
                p.error
                    .as_ref()
                    .map(|e| format!(" error: {}", e.lines().next().unwrap_or("")))
                    .unwrap_or_default()
            );
        }
    }

    // How.
    let _ = writeln!(md, "\n### How\n");
    let _ = writeln!(
        md,
        "- fio (`--direct=1 --ioengine=psync --iodepth=1`, so every I/O is one synchronous \
         O_DIRECT call that reaches the daemon): sequential write of a fresh {} file (capped \
         at {} s), then reads of it {}, per block size; 4k random read and write over it for {} s \
         each (completion latency, fio's percentiles); {} jobs × {} files of {} written then \
         read in parallel (sum of the jobs).",
        fio_size(o.size),
        o.seq_runtime_s,
        if o.seq_read_s > 0 {
            format!("for {} s (the file again as often as fits)", o.seq_read_s)
        } else {
            "in one pass".to_string()
        },
        o.rand_runtime_s,
        o.parallel_jobs,
        fio_size(o.parallel_bs),
        fio_size(o.parallel_size)
    );
    let _ = writeln!(
        md,
        "- metadata: {} × create (open O_CREAT|O_EXCL + close), then stat, then unlink, with a \
         {} ms pause between phases so that 1 s entry/attribute caches expire.",
        o.meta_files, o.meta_pause_ms
    );
    let _ = writeln!(
        md,
        "- daemon CPU around each job: the run time of its threads (/proc/PID/task/*/schedstat, \
         ns), or utime+stime from /proc/PID/stat when threads came or went during the job; peak \
         RSS: VmHWM from /proc/PID/status before stopping (for {SLABFUSE} it is its planned, pre-faulted, \
         locked budget; the peers' grows with the data they hold). {SLABFUSE} is stopped with \
         SIGTERM and its summary line read; the peers by unmounting."
    );
    let _ = writeln!(md, "- targets:");
    for t in &run.targets {
        let _ = writeln!(
            md,
            "  - `{}`: `{}`",
            t.target.label,
            t.target.command_line()
        );
    }
    for (label, why) in &run.skipped {
        let _ = writeln!(md, "  - `{label}`: skipped: {why}");
    }
    if is_quick(o) {
        let _ = writeln!(
            md,
            "- quick run: one block size, one repetition, short jobs. For a look, not for \
             conclusions."
        );
    }
    let errors: Vec<String> = run
        .targets
        .iter()
        .flat_map(|t| {
            t.reps.iter().filter_map(move |r| {
                r.error.as_ref().map(|e| {
                    format!(
                        "  - {} rep {}: {}",
                        t.target.label,
                        r.rep + 1,
                        e.lines().next().unwrap_or("")
                    )
                })
            })
        })
        .collect();
    if !errors.is_empty() {
        let _ = writeln!(md, "- errors:\n{}", errors.join("\n"));
    }
    let _ = writeln!(
        md,
        "- files: `{}` (everything), charts {}, raw fio JSON and daemon logs under `{}`{}.",
        run.out.join("results.json").display(),
        charts
            .iter()
            .map(|c| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(", "),
        run.raw.display(),
        if run.micro.is_empty() {
            String::new()
        } else {
            format!(
                "; microbenchmark output in `{}`",
                run.out.join("results.md").display()
            )
        }
    );
    md
}

/// A short column name for ratio headers.
fn short(label: &str) -> &str {
    label.strip_suffix("-memfs").unwrap_or(label)
}

/// `results.json`.
pub(crate) fn to_json(run: &Run, charts: &[String]) -> Value {
    let o = &run.options;
    let (reference, _) = split(run);
    let metrics: Vec<Value> = catalog(o)
        .iter()
        .map(|m| {
            let rs = reference.and_then(|r| summary(r, &m.key));
            let mut values = serde_json::Map::new();
            let mut ratios = serde_json::Map::new();
            for t in &run.targets {
                let s = summary(t, &m.key);
                values.insert(
                    t.target.label.clone(),
                    s.as_ref().map(Summary::to_json).unwrap_or(Value::Null),
                );
                if t.target.label != SLABFUSE
                    && let (Some(a), Some(b)) = (&rs, &s)
                    && b.median != 0.0
                {
                    ratios.insert(t.target.label.clone(), json!(a.median / b.median));
                }
            }
            json!({
                "key": m.key, "name": m.name, "better": if m.higher { "higher" } else { "lower" },
                "median": values, "ratio_slabfuse_to": ratios,
            })
        })
        .collect();
    let targets: Vec<Value> = run
        .targets
        .iter()
        .map(|t| {
            json!({
                "label": t.target.label,
                "kind": format!("{:?}", t.target.kind),
                "command": t.target.command_line(),
                "reps": t.reps.iter().map(|r| json!({
                    "rep": r.rep + 1,
                    "position": r.position + 1,
                    "fstype": r.fstype,
                    "load_average_start": r.load.0,
                    "load_average_end": r.load.1,
                    "seconds": r.seconds,
                    "error": r.error,
                    "metrics": r.metrics,
                    "jobs": r.jobs.iter().map(|j| j.to_json()).collect::<Vec<_>>(),
                    "metadata": r.meta.map(|m| m.to_json()),
                    "daemon": r.daemon.as_ref().map(|d| d.to_json()),
                    "traced": r.observed.map(|o| json!({
                        "max_write_request_bytes": o.max_write,
                        "max_read_reply_bytes": o.max_read,
                    })),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut latency = serde_json::Map::new();
    for t in &run.targets {
        let mut per = serde_json::Map::new();
        for job in ["randread", "randwrite"] {
            let bins = merged_bins(t, job);
            let samples: u64 = bins.iter().map(|b| b.1).sum();
            per.insert(
                job.into(),
                json!({
                    "samples": samples,
                    "cdf_us": cdf(&bins)
                        .iter()
                        .map(|(us, f)| json!([us, f]))
                        .collect::<Vec<_>>(),
                }),
            );
        }
        latency.insert(t.target.label.clone(), Value::Object(per));
    }
    let sweep: Vec<Value> = run
        .sweep
        .iter()
        .map(|p| {
            let js = |s: Option<Summary>| s.map(|s| s.to_json()).unwrap_or(Value::Null);
            let (w, r) = sweep_stat(p, |j| Some(j.mib_s));
            let (dw, dr) = sweep_stat(p, |j| j.ms_per_gib(j.daemon_cpu_s));
            let (fw, fr) = sweep_stat(p, |j| j.ms_per_gib(Some(j.fio_cpu_s)));
            let (sw, sr) = sweep_stat(p, |j| j.ms_per_gib(j.system_cpu_s));
            json!({
                "max_message_bytes": p.max_message,
                "write_mib_s": js(w), "read_mib_s": js(r),
                "daemon_cpu_ms_per_gib": {"write": js(dw), "read": js(dr)},
                "fio_cpu_ms_per_gib": {"write": js(fw), "read": js(fr)},
                "machine_cpu_ms_per_gib": {"write": js(sw), "read": js(sr)},
                "jobs": p.reps.iter().flat_map(|(w, r)| [w.to_json(), r.to_json()]).collect::<Vec<_>>(),
                "daemon": p.daemon.as_ref().map(|d| d.to_json()),
                "error": p.error,
            })
        })
        .collect();
    json!({
        "schema": "slabfuse-bench/1",
        "mode": o.mode.name(),
        "started_unix": run.started_unix,
        "started_utc": utc(run.started_unix),
        "seconds": {
            "prepare": run.seconds.0, "measure": run.seconds.1, "total": run.seconds.2,
            "waiting_for_max_pages_lock": run.lock_wait_s,
        },
        "machine": crate::procfs::machine(),
        "fio": run.fio_version,
        "max_pages_limit": {"before": run.max_pages.0, "during": run.max_pages.1},
        "load_average": {"start": run.load.0, "end": run.load.1},
        "options": {
            "reps": o.reps, "size_bytes": o.size, "block_sizes": o.bss,
            "seq_runtime_s": o.seq_runtime_s, "seq_read_s": o.seq_read_s,
            "rand_runtime_s": o.rand_runtime_s,
            "meta_files": o.meta_files, "meta_pause_ms": o.meta_pause_ms,
            "parallel_jobs": o.parallel_jobs, "parallel_bs": o.parallel_bs,
            "parallel_size_bytes": o.parallel_size, "sweep_max_message_bytes": o.sweep,
            "sweep_size_bytes": o.sweep_size, "sweep_bs": o.sweep_bs, "trace": o.trace,
            "perf": o.perf, "strace": o.strace, "poll_idle": o.poll_idle,
        },
        "reference": SLABFUSE,
        "metrics": metrics,
        "targets": targets,
        "skipped": run.skipped.iter().map(|(l, r)| json!({"label": l, "reason": r})).collect::<Vec<_>>(),
        "latency": latency,
        "sweep": sweep,
        "micro": run.micro.iter().map(|m| m.to_json(&run.raw)).collect::<Vec<_>>(),
        "charts": charts,
        "raw": run.raw.display().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(fmt_num(1234567.891, 1), "1,234,567.9");
        assert_eq!(fmt_num(999.0, 0), "999");
        assert_eq!(fmt_num(-1000.0, 0), "-1,000");
        assert_eq!(fmt_bytes(Some(16 << 20)), "16 MiB");
        assert_eq!(fmt_bytes(Some(1000)), "1000 B");
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(1_795_000_000), "2026-11-18 11:06 UTC");
    }

    #[test]
    fn cdf_ends_at_one() {
        let c = cdf(&[(1000, 1), (2000, 3)]);
        assert_eq!(c, vec![(1.0, 0.25), (2.0, 1.0)]);
    }
}
