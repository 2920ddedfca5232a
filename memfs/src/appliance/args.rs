//! The command line: `slabfuse-memfs [OPTIONS] [SOURCE] MOUNTPOINT`, with
//! the std daemon's options where they make sense in an appliance.
//!
//! The same conventions as the daemon (`src/bin/slabfuse-memfs/args.rs`):
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

/// Default data budget (`--size`), as the daemon's.
pub(crate) const DEFAULT_SIZE_BYTES: u64 = 64 << 20;
/// Default maximum message (`--max-message`), as the daemon's.
pub(crate) const DEFAULT_MAX_MESSAGE_BYTES: u64 = 16 << 20;
/// Most workers accepted (each owns a receive buffer of up to
/// `--max-message`).
pub(crate) const WORKERS_MAX: usize = 1024;
/// The permission bits `mode=` may set.
pub(crate) const MODE_MASK: u32 = 0o7777;

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

/// `--hugepages`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, defmt::Format)]
pub(crate) enum Hugepages {
    /// hugetlb pages, else transparent huge pages, else normal pages.
    Auto,
    /// hugetlb pages or fail.
    Require,
    /// Normal pages only.
    Off,
}

/// Mount options (`-o`).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct MountChoices {
    pub(crate) allow_other: bool,
    pub(crate) default_permissions: bool,
    pub(crate) read_only: bool,
    pub(crate) suid: bool,
    pub(crate) dev: bool,
    pub(crate) noexec: bool,
    /// `fsname=`; `None`: SOURCE, else the program name.
    pub(crate) fsname: Option<String>,
    /// `subtype=`; `None`: the program name.
    pub(crate) subtype: Option<String>,
    pub(crate) max_read: Option<u32>,
}

impl Default for MountChoices {
    fn default() -> MountChoices {
        MountChoices {
            allow_other: false,
            default_permissions: true,
            read_only: false,
            suid: false,
            dev: false,
            noexec: false,
            fsname: None,
            subtype: None,
            max_read: None,
        }
    }
}

/// Everything `Run` needs.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Options {
    /// SOURCE, when given and not empty.
    pub(crate) source: Option<&'static CStr>,
    /// MOUNTPOINT.
    pub(crate) mountpoint: &'static CStr,
    pub(crate) size_bytes: u64,
    pub(crate) inodes: Option<u32>,
    pub(crate) max_message_bytes: u64,
    pub(crate) workers: Option<usize>,
    /// `--poll-us`: how long the first worker polls after a request.
    pub(crate) poll_us: u64,
    pub(crate) block_size_bytes: Option<u64>,
    pub(crate) hugepages: Hugepages,
    pub(crate) mount: MountChoices,
    pub(crate) root_uid: Option<u32>,
    pub(crate) root_gid: Option<u32>,
    pub(crate) root_mode: Option<u32>,
    /// `--budget`: ceiling on pool + storage bytes.
    pub(crate) budget_bytes: Option<u64>,
    /// `--log-fd`.
    pub(crate) log_fd: Option<i32>,
}

/// A command line that cannot be run: the message says why (exit code 2).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct UsageError(pub(crate) String);

/// Keywords `mount(8)`, fstab and `mount.fuse3` pass that mean nothing
/// here (the daemon's list).
const IGNORED_KEYWORDS: &[&str] = &[
    "defaults",
    "auto",
    "noauto",
    "user",
    "nouser",
    "users",
    "owner",
    "group",
    "_netdev",
    "nofail",
    "atime",
    "noatime",
    "relatime",
    "norelatime",
    "strictatime",
    "nostrictatime",
    "lazytime",
    "nolazytime",
    "diratime",
    "nodiratime",
    "sync",
    "async",
    "dirsync",
    "loud",
    "silent",
];

/// Long options that take a value, with their `-o` key.
const VALUED_LONG: &[(&str, &str)] = &[
    ("size", "size"),
    ("inodes", "inodes"),
    ("max-message", "max_message"),
    ("workers", "workers"),
    ("poll-us", "poll_us"),
    ("block-size", "block_size"),
    ("hugepages", "hugepages"),
    ("budget", "budget"),
    ("log-fd", "log_fd"),
];

/// Parses the arguments after the program name.
pub(crate) fn parse<I>(args: I) -> Result<Command, UsageError>
where
    I: IntoIterator<Item = &'static CStr>,
{
    let mut o = Options {
        source: None,
        mountpoint: c"",
        size_bytes: DEFAULT_SIZE_BYTES,
        inodes: None,
        max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        workers: None,
        poll_us: 50,
        block_size_bytes: None,
        hugepages: Hugepages::Auto,
        mount: MountChoices::default(),
        root_uid: None,
        root_gid: None,
        root_mode: None,
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
                    let Some(&(_, key)) = VALUED_LONG.iter().find(|(n, _)| *n == name) else {
                        return Err(UsageError(format!("unknown option '--{name}'")));
                    };
                    let value = match inline {
                        Some(v) => v,
                        None => next_value(&mut args, name)?,
                    };
                    setting(&mut o, key, value)
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
                option_list(&mut o, list)?;
            }
            _ if text.starts_with("-o") => option_list(&mut o, &text[2..])?,
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

/// One `-o` list: items split at unescaped commas (`\,` is a comma inside
/// a value, `\\` a backslash, as fusermount3 escapes them).
fn option_list(o: &mut Options, list: &str) -> Result<(), UsageError> {
    let mut item = String::new();
    let mut chars = list.chars();
    loop {
        let c = chars.next();
        match c {
            Some('\\') => match chars.next() {
                Some(escaped) => item.push(escaped),
                None => item.push('\\'),
            },
            Some(',') | None => {
                option(o, &item).map_err(|e| UsageError(format!("-o {item}: {e}")))?;
                item.clear();
                if c.is_none() {
                    return Ok(());
                }
            }
            Some(c) => item.push(c),
        }
    }
}

/// One `-o` item: `key` or `key=value`.
fn option(o: &mut Options, item: &str) -> Result<(), String> {
    if item.is_empty() || item.starts_with("x-") || item.starts_with("comment=") {
        return Ok(());
    }
    let (key, value) = match item.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (item, None),
    };
    let m = &mut o.mount;
    let flag: Option<(&mut bool, bool)> = match key {
        "allow_other" => Some((&mut m.allow_other, true)),
        "default_permissions" => Some((&mut m.default_permissions, true)),
        "no_default_permissions" => Some((&mut m.default_permissions, false)),
        "ro" => Some((&mut m.read_only, true)),
        "rw" => Some((&mut m.read_only, false)),
        "suid" => Some((&mut m.suid, true)),
        "nosuid" => Some((&mut m.suid, false)),
        "dev" => Some((&mut m.dev, true)),
        "nodev" => Some((&mut m.dev, false)),
        "noexec" => Some((&mut m.noexec, true)),
        "exec" => Some((&mut m.noexec, false)),
        k if IGNORED_KEYWORDS.contains(&k) => None,
        _ => {
            let Some(value) = value else {
                return Err(match key {
                    "size" | "inodes" | "max_message" | "workers" | "poll_us" | "block_size"
                    | "hugepages" | "uid" | "gid" | "mode" | "fsname" | "subtype" | "max_read"
                    | "budget" | "log_fd" => format!("'{key}' needs a value ({key}=...)"),
                    _ => format!("unknown mount option '{key}'"),
                });
            };
            return setting(o, key, value);
        }
    };
    if value.is_some() {
        return Err(format!("'{key}' takes no value"));
    }
    if let Some((field, on)) = flag {
        *field = on;
    }
    Ok(())
}

/// A `key=value` setting, from `-o` or a long option.
fn setting(o: &mut Options, key: &str, value: &str) -> Result<(), String> {
    match key {
        "size" => o.size_bytes = parse_bytes(value)?,
        "inodes" => {
            let n = parse_bytes(value)?;
            if n == 0 {
                return Err("memfs needs at least one inode (its root)".to_owned());
            }
            o.inodes = Some(
                u32::try_from(n)
                    .map_err(|_| format!("at most {} inodes are possible", u32::MAX))?,
            );
        }
        "max_message" => o.max_message_bytes = parse_bytes(value)?,
        "workers" => {
            let n = parse_count(value)?;
            if n == 0 || n > WORKERS_MAX as u64 {
                return Err(format!("workers must be between 1 and {WORKERS_MAX}"));
            }
            o.workers = usize::try_from(n).ok();
        }
        "poll_us" => {
            let n = parse_count(value)?;
            if n > 1_000_000 {
                return Err("poll_us must be at most 1000000 (1 s)".to_owned());
            }
            o.poll_us = n;
        }
        "block_size" => o.block_size_bytes = Some(parse_bytes(value)?),
        "hugepages" => {
            o.hugepages = match value {
                "auto" => Hugepages::Auto,
                "require" => Hugepages::Require,
                "off" => Hugepages::Off,
                _ => return Err(format!("'{value}' is not one of auto, require, off")),
            }
        }
        "uid" => o.root_uid = Some(parse_id(value)?),
        "gid" => o.root_gid = Some(parse_id(value)?),
        "mode" => {
            let mode = u32::from_str_radix(value, 8)
                .ok()
                .filter(|m| *m <= MODE_MASK)
                .ok_or_else(|| format!("'{value}' is not an octal mode like 1777 or 0755"))?;
            o.root_mode = Some(mode);
        }
        "fsname" | "subtype" => {
            if value.is_empty() {
                return Err(format!("{key} must not be empty"));
            }
            if value.contains('\0') {
                return Err(format!("{key} must not contain a NUL byte"));
            }
            if key == "fsname" {
                o.mount.fsname = Some(value.to_owned());
            } else {
                o.mount.subtype = Some(value.to_owned());
            }
        }
        "max_read" => {
            let n = parse_bytes(value)?;
            o.mount.max_read =
                Some(u32::try_from(n).map_err(|_| "max_read must be below 4G".to_owned())?);
        }
        "budget" => {
            let n = parse_bytes(value)?;
            if n == 0 {
                return Err("the budget must be more than 0".to_owned());
            }
            o.budget_bytes = Some(n);
        }
        "log_fd" => {
            let n = parse_count(value)?;
            o.log_fd =
                Some(i32::try_from(n).map_err(|_| format!("'{value}' is not a file descriptor"))?);
        }
        _ => return Err(format!("unknown mount option '{key}'")),
    }
    Ok(())
}

/// `SIZE`: digits, then an optional `K`/`M`/`G`/`T` (powers of 1024),
/// optionally followed by `B` or `iB`; any case.
pub(crate) fn parse_bytes(text: &str) -> Result<u64, String> {
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, suffix) = text.split_at(digits_end);
    if digits.is_empty() {
        return Err(format!(
            "'{text}' is not a size: expected a number with an optional K, M, G or T suffix"
        ));
    }
    let shift = match suffix.to_ascii_lowercase().as_str() {
        "" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => {
            return Err(format!(
                "'{text}' has an unknown size suffix '{suffix}': use K, M, G or T"
            ));
        }
    };
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("'{text}' is too large"))?;
    number
        .checked_mul(1u64 << shift)
        .ok_or_else(|| format!("'{text}' is too large"))
}

/// A plain decimal count (no suffix).
fn parse_count(text: &str) -> Result<u64, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{text}' is not a number"));
    }
    text.parse().map_err(|_| format!("'{text}' is too large"))
}

/// A numeric user or group id.
fn parse_id(value: &str) -> Result<u32, String> {
    let n = parse_count(value)?;
    u32::try_from(n)
        .ok()
        .filter(|id| *id != u32::MAX)
        .ok_or_else(|| format!("'{value}' is not a valid id"))
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
