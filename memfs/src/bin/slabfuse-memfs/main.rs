//! `slabfuse-memfs`: the memfs daemon.
//!
//! `slabfuse-memfs [OPTIONS] [SOURCE] MOUNTPOINT` mounts a fixed-budget
//! memfs and serves it until it is unmounted, following the conventions of
//! FUSE daemons (`-o` options, `-f`, going to the background once the mount
//! is ready, `mount.fuse3` and `/etc/fstab`). `--help` is its manual.
//!
//! The modules, in the order a run goes through them:
//!
//! - `args`, `size`: the command line, parsed by hand (pure, unit-tested).
//! - `settings`: the runtime, memfs and mount configurations, the memory
//!   plan checked before anything is mapped.
//! - `daemonize`: fork first, report readiness through a pipe.
//! - `serve`: the life of the mount (see its doc for the order of events),
//!   with `mountpoint` (checks and claims the directory), `workers` (the
//!   threads), `memory` (locking, pre-faulting, measuring) and `report`
//!   (the plan and summary lines).
//! - `counting_alloc`, `sys`: the only two modules with `unsafe`: the
//!   counting global allocator and the libc calls std lacks (signals,
//!   fork, mlockall, getrusage). `unsafe` is denied everywhere else.
//!
//! Exit codes: 0 after a clean unmount, 1 when the filesystem could not be
//! mounted or served, 2 for a bad command line.

#![deny(unsafe_code)]

mod args;
#[allow(unsafe_code)]
mod counting_alloc;
mod daemonize;
mod help;
mod memory;
mod mountpoint;
mod report;
mod serve;
mod settings;
mod size;
#[allow(unsafe_code)]
mod sys;
mod workers;

use core::fmt;

use crate::args::{Command, UsageError};
use crate::daemonize::Readiness;
pub(crate) use crate::report::say;

/// Every heap allocation of the process, counted for the summary line.
#[global_allocator]
static ALLOCATOR: counting_alloc::Counting = counting_alloc::Counting;

/// A clean unmount (or `--help`, `--version`).
pub(crate) const EXIT_OK: u8 = 0;
/// The filesystem could not be mounted or served.
pub(crate) const EXIT_FAILURE: u8 = 1;
/// A bad command line.
pub(crate) const EXIT_USAGE: u8 = 2;

/// Why the daemon stops before serving; the variant is the exit code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Failure {
    /// A bad command line or a value that cannot work (exit code 2).
    Usage(String),
    /// Anything else: the mount point, memory, the mount (exit code 1).
    Runtime(String),
}

impl Failure {
    /// The process exit code.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            Failure::Usage(_) => EXIT_USAGE,
            Failure::Runtime(_) => EXIT_FAILURE,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Usage(m) | Failure::Runtime(m) => f.write_str(m),
        }
    }
}

fn main() {
    std::process::exit(i32::from(run()));
}

/// The whole program; returns the exit code.
fn run() -> u8 {
    let options = match args::parse(std::env::args_os().skip(1)) {
        Ok(Command::Help) => {
            print!("{}", help::HELP);
            return EXIT_OK;
        }
        Ok(Command::Version) => {
            print!("{}", help::version());
            return EXIT_OK;
        }
        Ok(Command::Run(options)) => options,
        Err(UsageError(message)) => return usage_error(&message),
    };
    let settings = match settings::build(&options) {
        Ok(s) => s,
        Err(Failure::Usage(message)) => return usage_error(&message),
        Err(failure) => {
            say(format_args!("{failure}"));
            return failure.exit_code();
        }
    };
    let mut readiness = if settings.foreground {
        Readiness::foreground()
    } else {
        match daemonize::background() {
            Ok(r) => r,
            Err(failure) => {
                say(format_args!("{failure}"));
                return failure.exit_code();
            }
        }
    };
    match serve::serve(settings, &mut readiness) {
        Ok(code) => code,
        Err(failure) => {
            match &failure {
                Failure::Usage(message) => {
                    say(format_args!("{message}"));
                    hint_help();
                }
                Failure::Runtime(message) => say(format_args!("{message}")),
            }
            readiness.failed(failure.exit_code());
            failure.exit_code()
        }
    }
}

/// Reports a bad command line; exit code 2.
fn usage_error(message: &str) -> u8 {
    say(format_args!("{message}"));
    hint_help();
    EXIT_USAGE
}

/// The GNU-style pointer to `--help`.
fn hint_help() {
    say(format_args!(
        "try '{} --help' for more information",
        report::PROGRAM
    ));
}
