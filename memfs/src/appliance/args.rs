//! The command line: `slabfuse-memfs [OPTIONS] [SOURCE] MOUNTPOINT`, with
//! the std daemon's options where they make sense in an appliance.
//!
//! The settings and their checks are the daemon's, from one place
//! ([`slabfuse_memfs::options`]), and so are the conventions:
//! options may come before or after the positionals (`mount.fuse3` puts
//! `-o` last); every daemon setting has a long option and an `-o` spelling
//! (`--max-message 16M`, `-o max_message=16M`) and the last one wins;
//! `-o` lists take fusermount3's `\,` escapes; keywords that only
//! `mount(8)` and fstab care about are accepted and ignored.
//!
//! What differs: the image always runs in the foreground (`-f` is accepted
//! and changes nothing: an appliance's init or supervisor keeps it), it
//! mounts only with `mount(2)` (no `fusermount3`), and it has two settings
//! of its own: `--budget SIZE` (start-up fails unless the pool and memfs
//! storage fit in it) and `--log-fd N` (where defmt frames go; stderr by
//! default).
//!
//! Parsing is pure: no system calls; the defaults that depend on the
//! machine (workers = CPUs in the affinity mask, the root directory's owner)
//! are filled in by `main`. Strings are allocated (in the start-up arena)
//! only for option values that had to be unescaped.

use alloc::borrow::ToOwned;
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use core::ffi::CStr;

use slabfuse_memfs::options::{
    self, ProgramOptions, SHARED_VALUED_LONG, ServeOptions, parse_bytes, parse_count,
};

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Command {
    /// `--help`.
    Help,
    /// `--version`.
    Version,
    /// Mount and serve.
    Run(Box<Options>),
}

/// Everything `Run` needs.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Options {
    /// SOURCE, when given and not empty.
    pub(crate) source: Option<&'static CStr>,
    /// MOUNTPOINT.
    pub(crate) mountpoint: &'static CStr,
    /// The settings the std daemon shares.
    pub(crate) serve: ServeOptions,
    /// `--budget`: ceiling on pool + storage bytes.
    pub(crate) budget_bytes: Option<u64>,
    /// `--log-fd`.
    pub(crate) log_fd: Option<i32>,
}

/// A command line that cannot be run: the message says why (exit code 2).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct UsageError(pub(crate) String);

/// Long options that take a value and are the image's own, with their
/// `-o` key.
const OWN_VALUED_LONG: &[(&str, &str)] = &[("budget", "budget"), ("log-fd", "log_fd")];

/// Parses the arguments after the program name.
pub(crate) fn parse<I>(args: I) -> Result<Command, UsageError>
where
    I: IntoIterator<Item = &'static CStr>,
{
    let mut o = Options {
        source: None,
        mountpoint: c"",
        serve: ServeOptions::default(),
        budget_bytes: None,
        log_fd: None,
    };
    let mut positionals: [Option<&'static CStr>; 3] = [None; 3];
    let mut npos = 0;
    let mut args = args.into_iter();
    let mut only_positionals = false;
    while let Some(arg) = args.next() {
        let bytes = arg.to_bytes();
        if only_positionals || bytes == b"-" || !bytes.starts_with(b"-") {
            if npos < positionals.len() {
                positionals[npos] = Some(arg);
            }
            npos += 1;
            continue;
        }
        if bytes == b"--" {
            only_positionals = true;
            continue;
        }
        let text = arg
            .to_str()
            .map_err(|_| UsageError(format!("option {arg:?} is not valid UTF-8")))?;
        if let Some(long) = text.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            };
            match name {
                "help" | "version" | "foreground" => {
                    if inline.is_some() {
                        return Err(UsageError(format!("option '--{name}' takes no value")));
                    }
                    match name {
                        "help" => return Ok(Command::Help),
                        "version" => return Ok(Command::Version),
                        _ => {}
                    }
                }
                _ => {
                    let Some(&(_, key)) = SHARED_VALUED_LONG
                        .iter()
                        .chain(OWN_VALUED_LONG)
                        .find(|(n, _)| *n == name)
                    else {
                        return Err(UsageError(format!("unknown option '--{name}'")));
                    };
                    let value = match inline {
                        Some(v) => v,
                        None => next_value(&mut args, name)?,
                    };
                    options::setting(&mut o, key, value)
                        .map_err(|e| UsageError(format!("--{name} {value}: {e}")))?;
                }
            }
            continue;
        }
        match text {
            "-f" => {}
            "-h" => return Ok(Command::Help),
            "-V" => return Ok(Command::Version),
            "-o" => {
                let list = next_value(&mut args, "-o")?;
                options::option_list(&mut o, list).map_err(UsageError)?;
            }
            _ if text.starts_with("-o") => {
                options::option_list(&mut o, &text[2..]).map_err(UsageError)?
            }
            _ => return Err(UsageError(format!("unknown option '{text}'"))),
        }
    }
    let (source, mountpoint) = match (npos, positionals) {
        (0, _) => return Err(UsageError("missing MOUNTPOINT".to_owned())),
        (1, [Some(mp), ..]) => (None, mp),
        (2, [Some(src), Some(mp), _]) => (Some(src), mp),
        (_, [_, _, Some(extra)]) => {
            return Err(UsageError(format!(
                "unexpected argument {extra:?}: only [SOURCE] MOUNTPOINT are taken"
            )));
        }
        _ => return Err(UsageError("bad positional arguments".to_owned())),
    };
    if mountpoint.is_empty() {
        return Err(UsageError("MOUNTPOINT is empty".to_owned()));
    }
    o.source = source.filter(|s| !s.is_empty());
    o.mountpoint = mountpoint;
    Ok(Command::Run(Box::new(o)))
}

/// The value of an option given as the next argument.
fn next_value(
    args: &mut impl Iterator<Item = &'static CStr>,
    option: &str,
) -> Result<&'static str, UsageError> {
    let dashes = if option.starts_with('-') { "" } else { "--" };
    let value = args
        .next()
        .ok_or_else(|| UsageError(format!("option '{dashes}{option}' needs a value")))?;
    value.to_str().map_err(|_| {
        UsageError(format!(
            "the value {value:?} of '{dashes}{option}' is not valid UTF-8"
        ))
    })
}

impl ProgramOptions for Options {
    fn serve(&mut self) -> &mut ServeOptions {
        &mut self.serve
    }

    /// The image's own keys: the budget and the log's descriptor.
    fn extra(&mut self, key: &str, value: Option<&str>) -> Option<Result<(), String>> {
        match key {
            "budget" | "log_fd" => {}
            _ => return None,
        }
        let Some(value) = value else {
            return Some(Err(format!("'{key}' needs a value ({key}=...)")));
        };
        Some(if key == "budget" {
            parse_bytes(value).and_then(|n| {
                if n == 0 {
                    return Err("the budget must be more than 0".to_owned());
                }
                self.budget_bytes = Some(n);
                Ok(())
            })
        } else {
            parse_count(value).and_then(|n| {
                self.log_fd = Some(
                    i32::try_from(n).map_err(|_| format!("'{value}' is not a file descriptor"))?,
                );
                Ok(())
            })
        })
    }
}

/// `--help`.
pub(crate) const HELP: &str = "\
Usage: slabfuse-memfs [OPTIONS] [SOURCE] MOUNTPOINT

A fixed-budget in-memory filesystem: the static appliance image (no libc).
Mounts with mount(2) (needs CAP_SYS_ADMIN), serves in the foreground with one
worker per CPU, unmounts on SIGTERM or SIGINT. Logs are defmt frames on
stderr: decode them with `defmt-print -e slabfuse-memfs.elf`.

Options (each also as -o key=value, with '_' for '-'):
  --size SIZE           file data budget (default 64M)
  --inodes N            inodes, root included (default: memfs's)
  --max-message SIZE    largest WRITE to ask the kernel for (default 16M)
  --workers N           worker threads (default: CPUs in the affinity mask)
  --poll-us N           the first worker keeps reading without sleeping this
                        long after a request (default 50; 0: never)
  --block-size SIZE     pool block size (default: the runtime picks)
  --hugepages MODE      auto | require | off (default auto)
  --budget SIZE         refuse to start unless pool + storage fit in SIZE
  --log-fd N            write log frames to fd N (default 2)
  -o OPTS               mount options: allow_other, default_permissions,
                        no_default_permissions, ro, rw, suid, nosuid, dev,
                        nodev, exec, noexec, uid=, gid=, mode=, fsname=,
                        subtype=, max_read=, and the settings above
  -f, --foreground      accepted (the image never forks)
  -h, --help            this text
  -V, --version         the version
";
