//! The command line: `slabfuse-bench [quick|full] [OPTIONS]`, parsed by hand
//! (a dozen flags do not need a parser crate), and the two modes' defaults.

use std::path::PathBuf;

/// The usage text (`--help`).
pub(crate) const USAGE: &str = "\
slabfuse-bench: fio and a metadata benchmark against slabfuse-memfs, tmpfs
and the peers (fuser-memfs, libfuse-memfs), side by side. Run as root.

USAGE
    slabfuse-bench [full|quick] [OPTIONS]

    full   (default) 4 block sizes, 3 repetitions, message-size sweep,
           tracepoint probe, microbenchmarks; under 10 minutes on 2 cores
    quick  one block size (1m), 1 repetition, short runs, a 3-point sweep;
           under a minute

OPTIONS (override the mode's defaults)
    --reps N              repetitions (targets interleaved, order rotated)
    --size SIZE           file size of the sequential and random jobs
    --bs LIST             sequential block sizes, e.g. 128k,1m,4m,16m
    --rand-runtime SECS   seconds of each 4k random job
    --read-seconds SECS   seconds each sequential read runs, reading the file
                          again from the start as often as fits (0: once)
    --meta-files N        files in the create/stat/unlink test
    --meta-pause-ms MS    pause between its phases (lets 1 s TTLs expire) [1200]
    --parallel N          parallel fio jobs, one file each [4]
    --sweep LIST          --max-message values for the sweep, e.g. 128k,1m,16m
    --no-sweep            skip the message-size sweep
    --sweep-size SIZE     bytes written and read per sweep point
    --targets LIST        run only these of tmpfs,slabfuse-memfs,fuser-memfs,
                          libfuse-memfs
    --extra LABEL=CMD     one more daemon: CMD contains {mnt} and stays in the
                          foreground (run with bash -c); repeatable
    --daemon PATH         the slabfuse-memfs binary [next to this program]
    --daemon-arg ARG      one more argument for slabfuse-memfs; repeatable
    --peers DIR           the peers kit [<workspace>/../shared/peers]
    --root DIR            the workspace [where this program was built from]
    --out DIR             results [<workspace>/target/bench]
    --trace, --no-trace   probe request sizes with the fuse tracepoints
    --micro, --no-micro   run the divan microbenchmarks first
    --perf                perf stat on each daemon during each fio job
    --strace              strace -c on each daemon during each fio job
                          (slows the daemon: the numbers are then not
                          comparable; the reports land next to the fio JSON)
    --max-pages N         fs.fuse.max_pages_limit during the run [4096]
    --poll-idle           hold /dev/cpu_dma_latency at 0 while measuring: idle
                          CPUs poll instead of sleeping, so waking the daemon
                          or fio costs the same whether the machine is busy
                          or not (on a VM, a sleeping vCPU is slow to wake);
                          less noise, but not the default configuration
    -h, --help            this text

SIZE: bytes with an optional k, m, g suffix (powers of 1024).
";

/// Which defaults.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// A fast look.
    Quick,
    /// Everything, with repetitions.
    Full,
}

impl Mode {
    /// `quick` / `full`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mode::Quick => "quick",
            Mode::Full => "full",
        }
    }
}

/// Everything a run needs.
#[derive(Clone, Debug)]
pub(crate) struct Options {
    /// The mode the defaults came from.
    pub(crate) mode: Mode,
    /// Repetitions.
    pub(crate) reps: usize,
    /// File size of the sequential and random jobs, bytes.
    pub(crate) size: u64,
    /// Sequential block sizes, bytes.
    pub(crate) bss: Vec<u64>,
    /// Cap per sequential job, seconds.
    pub(crate) seq_runtime_s: u32,
    /// Seconds of each random job.
    pub(crate) rand_runtime_s: u32,
    /// Seconds of each sequential read (time-based, the file read again as
    /// often as fits; one pass of 1 GiB at several GiB/s is too short to
    /// measure on a shared machine); 0: one pass.
    pub(crate) seq_read_s: u32,
    /// Files in the metadata test.
    pub(crate) meta_files: usize,
    /// Pause between metadata phases, milliseconds.
    pub(crate) meta_pause_ms: u64,
    /// Parallel fio jobs.
    pub(crate) parallel_jobs: usize,
    /// Block size of the parallel jobs, bytes.
    pub(crate) parallel_bs: u64,
    /// File size of each parallel job, bytes.
    pub(crate) parallel_size: u64,
    /// `--max-message` values of the sweep, bytes (empty: no sweep).
    pub(crate) sweep: Vec<u64>,
    /// Bytes written and read per sweep point.
    pub(crate) sweep_size: u64,
    /// Block size of the sweep's jobs, bytes.
    pub(crate) sweep_bs: u64,
    /// Only these targets (labels), or all.
    pub(crate) targets: Option<Vec<String>>,
    /// Extra daemons: (label, command with `{mnt}`).
    pub(crate) extra: Vec<(String, String)>,
    /// The slabfuse-memfs binary; `None`: next to this program.
    pub(crate) daemon: Option<PathBuf>,
    /// Extra arguments for slabfuse-memfs.
    pub(crate) daemon_args: Vec<String>,
    /// The peers kit; `None`: `<root>/../shared/peers`.
    pub(crate) peers: Option<PathBuf>,
    /// The workspace root; `None`: where this program was built from.
    pub(crate) root: Option<PathBuf>,
    /// Results directory; `None`: `<root>/target/bench`.
    pub(crate) out: Option<PathBuf>,
    /// Probe request sizes with tracepoints (first repetition).
    pub(crate) trace: bool,
    /// Run the microbenchmarks.
    pub(crate) micro: bool,
    /// `perf stat` the daemons during each job.
    pub(crate) perf: bool,
    /// `strace -c` the daemons during each job.
    pub(crate) strace: bool,
    /// `max_pages_limit` during the run.
    pub(crate) max_pages: u32,
    /// Hold `/dev/cpu_dma_latency` at 0 while measuring.
    pub(crate) poll_idle: bool,
}

impl Options {
    /// The defaults of `mode`.
    pub(crate) fn defaults(mode: Mode) -> Options {
        const K: u64 = 1 << 10;
        const M: u64 = 1 << 20;
        let full = mode == Mode::Full;
        Options {
            mode,
            reps: if full { 3 } else { 1 },
            size: if full { 1 << 30 } else { 128 * M },
            bss: if full {
                vec![128 * K, M, 4 * M, 16 * M]
            } else {
                vec![M]
            },
            seq_runtime_s: 15,
            rand_runtime_s: if full { 4 } else { 1 },
            seq_read_s: if full { 2 } else { 0 },
            meta_files: if full { 10_000 } else { 2_000 },
            meta_pause_ms: 1200,
            parallel_jobs: 4,
            parallel_bs: M,
            parallel_size: if full { 256 * M } else { 32 * M },
            sweep: if full {
                (0..8).map(|i| (128 * K) << i).collect()
            } else {
                vec![128 * K, M, 16 * M]
            },
            sweep_size: if full { 512 * M } else { 128 * M },
            sweep_bs: 16 * M,
            targets: None,
            extra: Vec::new(),
            daemon: None,
            daemon_args: Vec::new(),
            peers: None,
            root: None,
            out: None,
            trace: full,
            micro: full,
            perf: false,
            strace: false,
            max_pages: 4096,
            poll_idle: false,
        }
    }
}

/// What the command line asks for.
pub(crate) enum Command {
    /// `--help`.
    Help,
    /// Run.
    Run(Box<Options>),
}

/// Parses the arguments (without the program name).
pub(crate) fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Command, String> {
    let mut args: Vec<String> = args.into_iter().collect();
    let mode = match args.first().map(String::as_str) {
        Some("quick") => Mode::Quick,
        Some("full") => Mode::Full,
        _ => {
            args.insert(0, "full".into());
            Mode::Full
        }
    };
    let mut o = Options::defaults(mode);
    let mut it = args.into_iter().skip(1);
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.into())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => it.next().ok_or_else(|| format!("{name} needs a value")),
            }
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--reps" => o.reps = parse_count(&value(&flag)?, &flag)?.max(1),
            "--size" => o.size = parse_size(&value(&flag)?)?,
            "--bs" => o.bss = parse_list(&value(&flag)?)?,
            "--rand-runtime" => {
                o.rand_runtime_s = u32::try_from(parse_count(&value(&flag)?, &flag)?.max(1))
                    .map_err(|_| format!("{flag}: too large"))?
            }
            "--read-seconds" => {
                o.seq_read_s = u32::try_from(parse_count(&value(&flag)?, &flag)?)
                    .map_err(|_| format!("{flag}: too large"))?
            }
            "--meta-files" => o.meta_files = parse_count(&value(&flag)?, &flag)?,
            "--meta-pause-ms" => o.meta_pause_ms = parse_count(&value(&flag)?, &flag)? as u64,
            "--parallel" => o.parallel_jobs = parse_count(&value(&flag)?, &flag)?,
            "--sweep" => o.sweep = parse_list(&value(&flag)?)?,
            "--no-sweep" => o.sweep.clear(),
            "--sweep-size" => o.sweep_size = parse_size(&value(&flag)?)?,
            "--targets" => o.targets = Some(value(&flag)?.split(',').map(str::to_string).collect()),
            "--extra" => {
                let v = value(&flag)?;
                let (label, cmd) = v
                    .split_once('=')
                    .ok_or_else(|| format!("--extra: expected LABEL=CMD, got {v:?}"))?;
                if !cmd.contains("{mnt}") {
                    return Err(format!("--extra {label}: the command must contain {{mnt}}"));
                }
                o.extra.push((label.to_string(), cmd.to_string()));
            }
            "--daemon" => o.daemon = Some(value(&flag)?.into()),
            "--daemon-arg" => o.daemon_args.push(value(&flag)?),
            "--peers" => o.peers = Some(value(&flag)?.into()),
            "--root" => o.root = Some(value(&flag)?.into()),
            "--out" => o.out = Some(value(&flag)?.into()),
            "--trace" => o.trace = true,
            "--no-trace" => o.trace = false,
            "--micro" => o.micro = true,
            "--no-micro" => o.micro = false,
            "--perf" => o.perf = true,
            "--strace" => o.strace = true,
            "--poll-idle" => o.poll_idle = true,
            "--max-pages" => {
                o.max_pages = u32::try_from(parse_count(&value(&flag)?, &flag)?)
                    .map_err(|_| format!("{flag}: too large"))?
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    if o.bss.is_empty() {
        return Err("--bs: at least one block size".into());
    }
    if o.parallel_jobs == 0 {
        return Err("--parallel: at least one job".into());
    }
    Ok(Command::Run(Box::new(o)))
}

fn parse_count(s: &str, flag: &str) -> Result<usize, String> {
    s.parse()
        .map_err(|_| format!("{flag}: not a number: {s:?}"))
}

/// `65536`, `64k`, `16M`, `1g` (powers of 1024).
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (digits, shift) = match t.chars().last().map(|c| c.to_ascii_lowercase()) {
        Some('k') => (&t[..t.len() - 1], 10),
        Some('m') => (&t[..t.len() - 1], 20),
        Some('g') => (&t[..t.len() - 1], 30),
        _ => (t, 0),
    };
    let n: u64 = digits.parse().map_err(|_| format!("not a size: {s:?}"))?;
    n.checked_shl(shift)
        .filter(|v| v >> shift == n && *v > 0)
        .ok_or_else(|| format!("size out of range: {s:?}"))
}

fn parse_list(s: &str) -> Result<Vec<u64>, String> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(parse_size)
        .collect()
}

/// fio's spelling of a size: `128k`, `1m`, `1g`, or bytes.
pub(crate) fn fio_size(bytes: u64) -> String {
    for (shift, suffix) in [(30, "g"), (20, "m"), (10, "k")] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{suffix}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// The daemon's spelling of a size: `128K`, `16M`, `1G`, or bytes.
pub(crate) fn human(bytes: u64) -> String {
    fio_size(bytes).to_uppercase()
}
