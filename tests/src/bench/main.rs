//! `slabfuse-bench`: what users of a FUSE filesystem care about, measured
//! on slabfuse-memfs next to what they would use instead (tmpfs, the
//! ceiling; fuser-memfs and libfuse-memfs, the peers), in one run.
//!
//! `just bench` (full) and `just bench quick` run it; `--help` lists the
//! options. Per target and repetition it mounts a fresh filesystem and runs
//! fio with `direct=1` (sequential write and read by block size, 4k random
//! read and write latency at iodepth 1, parallel jobs), a metadata test of
//! its own (create, stat, unlink), and records the daemon's peak RSS, CPU
//! and exit summary. Then a message-size sweep of slabfuse-memfs alone, then
//! `target/bench/results.json`, `results.md` (also printed) and SVG charts.
//! Raw fio JSON and daemon logs stay under `target/bench/raw/`.
//!
//! The modules:
//!
//! - `cli`: options and the two modes' defaults.
//! - `run`: the order of things; `target`: mounts and daemons; `fio`,
//!   `meta`, `trace`: the measurements; `peers`: building the peers;
//!   `micro`: the divan microbenchmarks; `procfs`: `/proc` readers.
//! - `stats`, `report`, `plot`: medians, JSON and markdown, charts.
//!
//! Clean-up is guards all the way: `fs.fuse.max_pages_limit` is restored,
//! every mount removed and every daemon this program started stopped (by
//! its PID), on success, on error and on Ctrl-C (SIGINT, SIGTERM and SIGHUP
//! only set a flag that every wait checks).

#![deny(unsafe_code)]

mod cli;
mod fio;
mod meta;
mod micro;
mod peers;
mod plot;
mod procfs;
mod report;
mod run;
mod stats;
mod target;
mod trace;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Why a step did not finish.
#[derive(Debug)]
pub(crate) enum Error {
    /// Ctrl-C (or SIGTERM/SIGHUP).
    Interrupted,
    /// Anything else, with a message for a person.
    Failed(String),
}

/// A step's result.
pub(crate) type Res<T> = Result<T, Error>;

/// The stop flag set by the signal handlers.
#[derive(Clone)]
pub(crate) struct Stop(Arc<AtomicBool>);

impl Stop {
    /// Whether a stop was asked for.
    pub(crate) fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// `Err(Interrupted)` once a stop was asked for.
    pub(crate) fn check(&self) -> Res<()> {
        if self.is_set() {
            Err(Error::Interrupted)
        } else {
            Ok(())
        }
    }
}

/// Sleeps `d`, waking early (with `Err(Interrupted)`) on a stop.
pub(crate) fn sleep(d: Duration, stop: &Stop) -> Res<()> {
    let end = Instant::now() + d;
    loop {
        stop.check()?;
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        std::thread::sleep((end - now).min(Duration::from_millis(50)));
    }
}

/// Progress on stderr, with the seconds since start.
pub(crate) fn log(args: std::fmt::Arguments<'_>) {
    static START: OnceLock<Instant> = OnceLock::new();
    let t = START.get_or_init(Instant::now).elapsed().as_secs_f64();
    eprintln!("[{t:6.1}s] {args}");
}

fn main() -> ExitCode {
    let options = match cli::parse(std::env::args().skip(1)) {
        Ok(cli::Command::Help) => {
            print!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Ok(cli::Command::Run(o)) => o,
        Err(e) => {
            eprintln!("slabfuse-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        if let Err(e) = signal_hook::flag::register(sig, Arc::clone(&flag)) {
            eprintln!("slabfuse-bench: cannot handle signal {sig}: {e}");
            return ExitCode::FAILURE;
        }
    }
    let stop = Stop(flag);
    log(format_args!("slabfuse-bench {}", options.mode.name()));
    let result = run::run(&options, &stop);
    target::remove_mount_base();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::Interrupted) => {
            log(format_args!(
                "interrupted: daemons stopped, mounts removed, max_pages_limit restored; \
                 no results written (the raw files so far are kept)"
            ));
            ExitCode::from(130)
        }
        Err(Error::Failed(e)) => {
            eprintln!("slabfuse-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
