//! The command line: `slabfuse-memfs [OPTIONS] [SOURCE] MOUNTPOINT`.
//!
//! Hand-written, because FUSE daemons have conventions a general parser does
//! not know: `mount.fuse3` runs us as `slabfuse-memfs SOURCE MOUNTPOINT -o
//! rw,nodev,size=64M` (options after the positionals), `-o` lists mix mount
//! options with the daemon's own and with keywords only `mount(8)` cares
//! about (`_netdev`, `nofail`, `noauto`, ...), which must be accepted, not
//! rejected. Every daemon setting has both spellings: `--max-message 16M`
//! and `-o max_message=16M`; the last one given wins.
//!
//! Parsing is pure (no system calls), so all of it is unit-tested here; the
//! defaults that depend on the machine (`--workers`, the root directory's
//! owner) are left as `None` and filled in by `main`.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use crate::size::{parse_bytes, parse_count};

/// Default data budget (`--size`).
pub(crate) const DEFAULT_SIZE_BYTES: u64 = 64 << 20;
/// Default maximum message (`--max-message`): what large-I/O users want;
/// the kernel's `max_pages_limit` usually negotiates it down.
pub(crate) const DEFAULT_MAX_MESSAGE_BYTES: u64 = 16 << 20;
/// Most worker threads accepted: each owns a receive buffer of up to
/// `--max-message` bytes, so a typo like `--workers 10000` would otherwise
/// try to map gigabytes.
pub(crate) const WORKERS_MAX: usize = 1024;
/// How long the first worker polls after a request by default: measured
/// here, it lifts 4k random IOPS from ~40k to ~65k, metadata from ~23k to
/// ~42k ops/s and 16 MiB reads by a third, for one core busy only while
/// requests keep coming.
pub(crate) const POLL_US_DEFAULT: u64 = 50;
/// Longest polling budget accepted: beyond a second it is a spinning core,
/// not a latency trade.
const POLL_US_MAX: u64 = 1_000_000;
/// The permission bits `mode=` may set.
pub(crate) const MODE_MASK: u32 = 0o7777;

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Command {
    /// `--help`.
    Help,
    /// `--version`.
    Version,
    /// Mount and serve.
    Run(Box<Options>),
}

/// `--hugepages`: how the slabs are backed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hugepages {
    /// hugetlb pages, else transparent huge pages, else normal pages.
    Auto,
    /// hugetlb pages or fail.
    Require,
    /// Normal pages only.
    Off,
}

/// Mount options (`-o`), in the runtime's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MountChoices {
    /// `allow_other`.
    pub(crate) allow_other: bool,
    /// `default_permissions` (on) / `no_default_permissions`.
    pub(crate) default_permissions: bool,
    /// `ro` / `rw`.
    pub(crate) read_only: bool,
    /// `suid` / `nosuid`.
    pub(crate) suid: bool,
    /// `dev` / `nodev`.
    pub(crate) dev: bool,
    /// `noexec` / `exec`.
    pub(crate) noexec: bool,
    /// `fsname=`; `None`: SOURCE, else the program name.
    pub(crate) fsname: Option<String>,
    /// `subtype=`; `None`: the program name.
    pub(crate) subtype: Option<String>,
    /// `max_read=`.
    pub(crate) max_read: Option<u32>,
}

impl Default for MountChoices {
    fn default() -> MountChoices {
        MountChoices {
            allow_other: false,
            default_permissions: true,
            read_only: false,
            // As fusermount3 mounts for users: no set-user-id, no devices,
            // unless asked (mount.fuse3 asks for both unless told not to).
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Options {
    /// SOURCE: shown as the mount's "device" unless `fsname=` says otherwise.
    pub(crate) source: Option<OsString>,
    /// MOUNTPOINT, as given.
    pub(crate) mountpoint: OsString,
    /// `-f`: stay in the foreground.
    pub(crate) foreground: bool,
    /// `--size`: data budget, bytes.
    pub(crate) size_bytes: u64,
    /// `--inodes`; `None`: memfs's default.
    pub(crate) inodes: Option<u32>,
    /// `--max-message`, bytes.
    pub(crate) max_message_bytes: u64,
    /// `--workers`; `None`: one per CPU.
    pub(crate) workers: Option<usize>,
    /// `--poll-us`: how long the first worker polls after a request, µs
    /// (0: never).
    pub(crate) poll_us: u64,
    /// `--block-size`; `None`: the runtime picks.
    pub(crate) block_size_bytes: Option<u64>,
    /// `--hugepages`.
    pub(crate) hugepages: Hugepages,
    /// `-o` mount options.
    pub(crate) mount: MountChoices,
    /// `uid=`: the root directory's owner; `None`: whoever runs the daemon.
    pub(crate) root_uid: Option<u32>,
    /// `gid=`: the root directory's group; `None`: the daemon's group.
    pub(crate) root_gid: Option<u32>,
    /// `mode=`: the root directory's permission bits; `None`: memfs's default.
    pub(crate) root_mode: Option<u32>,
    /// memfs's caching choices (`None`: memfs's defaults).
    pub(crate) cache: CacheChoices,
}

/// How memfs lets the kernel cache (`-o entry_timeout=`, `attr_timeout=`,
/// `direct_io`, `kernel_cache`); `None` leaves memfs's default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct CacheChoices {
    /// `entry_timeout=SECONDS`, in milliseconds.
    pub(crate) entry_ttl_ms: Option<u32>,
    /// `attr_timeout=SECONDS`, in milliseconds.
    pub(crate) attr_ttl_ms: Option<u32>,
    /// `direct_io`.
    pub(crate) direct_io: Option<bool>,
    /// `kernel_cache` (or `keep_cache`).
    pub(crate) keep_cache: Option<bool>,
}

/// A command line that cannot be run: the message says why (exit code 2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct UsageError(pub(crate) String);

/// Keywords `mount(8)`, `/etc/fstab` and `mount.fuse3` pass that mean
/// nothing to this daemon: accepted and ignored. (The atime family is
/// accepted for fstab compatibility: FUSE leaves atime to the filesystem.)
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

/// Settings accumulated while parsing; turned into [`Options`] at the end.
struct Builder {
    positionals: Vec<OsString>,
    options: Options,
}

/// Parses the arguments after the program name.
pub(crate) fn parse<I>(args: I) -> Result<Command, UsageError>
where
    I: IntoIterator<Item = OsString>,
{
    let mut b = Builder {
        positionals: Vec::new(),
        options: Options {
            source: None,
            mountpoint: OsString::new(),
            foreground: false,
            size_bytes: DEFAULT_SIZE_BYTES,
            inodes: None,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            workers: None,
            poll_us: POLL_US_DEFAULT,
            block_size_bytes: None,
            hugepages: Hugepages::Auto,
            mount: MountChoices::default(),
            root_uid: None,
            root_gid: None,
            root_mode: None,
            cache: CacheChoices::default(),
        },
    };
    let mut args = args.into_iter();
    let mut only_positionals = false;
    while let Some(arg) = args.next() {
        let bytes = arg.as_bytes();
        if only_positionals || bytes == b"-" || !bytes.starts_with(b"-") {
            b.positionals.push(arg);
            continue;
        }
        if bytes == b"--" {
            only_positionals = true;
            continue;
        }
        let text = arg
            .to_str()
            .ok_or_else(|| UsageError(format!("option {arg:?} is not valid UTF-8")))?;
        if let Some(long) = text.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
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
                        _ => b.options.foreground = true,
                    }
                }
                "size" | "inodes" | "max-message" | "workers" | "block-size" | "hugepages"
                | "poll-us" => {
                    let value = match inline {
                        Some(v) => v,
                        None => next_value(&mut args, &format!("--{name}"))?,
                    };
                    let key = name.replace('-', "_");
                    b.setting(&key, &value)
                        .map_err(|e| UsageError(format!("--{name} {value}: {e}")))?;
                }
                _ => return Err(UsageError(format!("unknown option '--{name}'"))),
            }
            continue;
        }
        // Short options: `-f`, `-h`, `-V`, `-o OPTS` / `-oOPTS`.
        match text {
            "-f" => b.options.foreground = true,
            "-h" => return Ok(Command::Help),
            "-V" => return Ok(Command::Version),
            "-o" => {
                let list = next_value(&mut args, "-o")?;
                b.option_list(&list)?;
            }
            _ if text.starts_with("-o") => b.option_list(&text[2..])?,
            _ => return Err(UsageError(format!("unknown option '{text}'"))),
        }
    }
    b.finish()
}

/// The value of an option given as the next argument.
fn next_value(
    args: &mut impl Iterator<Item = OsString>,
    option: &str,
) -> Result<String, UsageError> {
    let value = args
        .next()
        .ok_or_else(|| UsageError(format!("option '{option}' needs a value")))?;
    value
        .into_string()
        .map_err(|v| UsageError(format!("the value {v:?} of '{option}' is not valid UTF-8")))
}

/// Splits an `-o` list at commas; `\,` is a comma inside a value and `\\`
/// a backslash (fusermount3's escaping).
fn split_option_list(list: &str) -> Vec<String> {
    let mut items = Vec::new();
    let mut current = String::new();
    let mut chars = list.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped) => current.push(escaped),
                None => current.push('\\'),
            },
            ',' => items.push(core::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    items.push(current);
    items
}

impl Builder {
    /// One `-o` list.
    fn option_list(&mut self, list: &str) -> Result<(), UsageError> {
        for item in split_option_list(list) {
            self.option(&item)
                .map_err(|e| UsageError(format!("-o {item}: {e}")))?;
        }
        Ok(())
    }

    /// One `-o` item: `key` or `key=value`.
    fn option(&mut self, item: &str) -> Result<(), String> {
        if item.is_empty() || item.starts_with("x-") || item.starts_with("comment=") {
            return Ok(());
        }
        let (key, value) = match item.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (item, None),
        };
        let m = &mut self.options.mount;
        let flag: Option<&mut bool> = match key {
            "allow_other" => Some(&mut m.allow_other),
            "default_permissions" => Some(&mut m.default_permissions),
            "ro" => Some(&mut m.read_only),
            "suid" => Some(&mut m.suid),
            "dev" => Some(&mut m.dev),
            "noexec" => Some(&mut m.noexec),
            "no_default_permissions" => {
                m.default_permissions = false;
                None
            }
            "rw" => {
                m.read_only = false;
                None
            }
            "nosuid" => {
                m.suid = false;
                None
            }
            "nodev" => {
                m.dev = false;
                None
            }
            "exec" => {
                m.noexec = false;
                None
            }
            "direct_io" | "kernel_cache" | "keep_cache" => {
                if value.is_some() {
                    return Err(format!("'{key}' takes no value"));
                }
                let c = &mut self.options.cache;
                match key {
                    "direct_io" => c.direct_io = Some(true),
                    _ => c.keep_cache = Some(true),
                }
                return Ok(());
            }
            k if IGNORED_KEYWORDS.contains(&k) => None,
            _ => {
                let Some(value) = value else {
                    return Err(match key {
                        "size" | "inodes" | "max_message" | "workers" | "block_size"
                        | "hugepages" | "poll_us" | "uid" | "gid" | "mode" | "fsname"
                        | "subtype" | "max_read" | "entry_timeout" | "attr_timeout" => {
                            format!("'{key}' needs a value ({key}=...)")
                        }
                        _ => format!("unknown mount option '{key}'"),
                    });
                };
                return self.setting(key, value);
            }
        };
        if value.is_some() {
            return Err(format!("'{key}' takes no value"));
        }
        if let Some(f) = flag {
            *f = true;
        }
        Ok(())
    }

    /// A `key=value` setting, from `-o` or from a long option.
    fn setting(&mut self, key: &str, value: &str) -> Result<(), String> {
        let o = &mut self.options;
        match key {
            "size" => o.size_bytes = parse_bytes(value)?,
            "inodes" => {
                let n = parse_bytes(value)?;
                if n == 0 {
                    return Err("memfs needs at least one inode (its root)".into());
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
                o.workers = Some(n as usize);
            }
            "block_size" => o.block_size_bytes = Some(parse_bytes(value)?),
            "poll_us" => {
                let n = parse_count(value)?;
                if n > POLL_US_MAX {
                    return Err(format!("poll_us must be at most {POLL_US_MAX} (1 s)"));
                }
                o.poll_us = n;
            }
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
                    o.mount.fsname = Some(value.to_string());
                } else {
                    o.mount.subtype = Some(value.to_string());
                }
            }
            "max_read" => {
                let n = parse_bytes(value)?;
                o.mount.max_read =
                    Some(u32::try_from(n).map_err(|_| "max_read must be below 4G".to_string())?);
            }
            "entry_timeout" => o.cache.entry_ttl_ms = Some(parse_seconds_ms(value)?),
            "attr_timeout" => o.cache.attr_ttl_ms = Some(parse_seconds_ms(value)?),
            _ => return Err(format!("unknown mount option '{key}'")),
        }
        Ok(())
    }

    /// Checks the positionals and returns the result.
    fn finish(mut self) -> Result<Command, UsageError> {
        let mut positionals = self.positionals.into_iter();
        let (source, mountpoint) = match (positionals.next(), positionals.next()) {
            (None, _) => return Err(UsageError("missing MOUNTPOINT".into())),
            (Some(mp), None) => (None, mp),
            (Some(src), Some(mp)) => (Some(src), mp),
        };
        if let Some(extra) = positionals.next() {
            return Err(UsageError(format!(
                "unexpected argument {extra:?}: only [SOURCE] MOUNTPOINT are taken"
            )));
        }
        if mountpoint.is_empty() {
            return Err(UsageError("MOUNTPOINT is empty".into()));
        }
        if mountpoint.as_bytes().contains(&0) {
            return Err(UsageError("MOUNTPOINT contains a NUL byte".into()));
        }
        if source
            .as_deref()
            .is_some_and(|s: &OsStr| s.as_bytes().contains(&0))
        {
            return Err(UsageError("SOURCE contains a NUL byte".into()));
        }
        self.options.source = source.filter(|s| !s.is_empty());
        self.options.mountpoint = mountpoint;
        Ok(Command::Run(Box::new(self.options)))
    }
}

/// Seconds with up to three decimals (`1`, `0.5`, `2.125`), as
/// milliseconds.
fn parse_seconds_ms(value: &str) -> Result<u32, String> {
    let bad = || format!("'{value}' is not a number of seconds like 1 or 0.25");
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    if whole.is_empty() && fraction.is_empty() {
        return Err(bad());
    }
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !digits(fraction) {
        return Err(bad());
    }
    if fraction.len() > 3 {
        return Err(format!("'{value}': at most millisecond precision"));
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let fraction_ms: u64 = format!("{fraction:0<3}").parse().map_err(|_| bad())?;
    whole
        .checked_mul(1000)
        .and_then(|ms| ms.checked_add(fraction_ms))
        .and_then(|ms| u32::try_from(ms).ok())
        .ok_or_else(|| format!("'{value}' is too long"))
}

/// A numeric user or group id.
fn parse_id(value: &str) -> Result<u32, String> {
    let n = parse_count(value)?;
    u32::try_from(n)
        .ok()
        .filter(|id| *id != u32::MAX)
        .ok_or_else(|| format!("'{value}' is not a valid id"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Options, String> {
        match parse(args.iter().map(OsString::from)) {
            Ok(Command::Run(o)) => Ok(*o),
            Ok(other) => Err(format!("not a run: {other:?}")),
            Err(UsageError(e)) => Err(e),
        }
    }

    #[test]
    fn defaults_with_just_a_mountpoint() {
        let o = run(&["/mnt"]).unwrap();
        assert_eq!(o.mountpoint, "/mnt");
        assert_eq!(o.source, None);
        assert!(!o.foreground);
        assert_eq!(o.size_bytes, 64 << 20);
        assert_eq!(o.max_message_bytes, 16 << 20);
        assert_eq!(
            (o.workers, o.inodes, o.block_size_bytes),
            (None, None, None)
        );
        assert_eq!(o.hugepages, Hugepages::Auto);
        assert_eq!(o.mount, MountChoices::default());
        assert!(o.mount.default_permissions);
    }

    #[test]
    fn long_options_in_both_spellings_before_and_after_positionals() {
        let o = run(&[
            "--size",
            "8M",
            "memfs",
            "--inodes=1000",
            "/mnt",
            "--max-message",
            "1M",
            "--workers=3",
            "--block-size",
            "256K",
            "--hugepages=off",
            "--foreground",
        ])
        .unwrap();
        assert_eq!(o.source.as_deref(), Some(OsStr::new("memfs")));
        assert_eq!(o.mountpoint, "/mnt");
        assert_eq!(o.size_bytes, 8 << 20);
        assert_eq!(o.inodes, Some(1000));
        assert_eq!(o.max_message_bytes, 1 << 20);
        assert_eq!(o.workers, Some(3));
        assert_eq!(o.block_size_bytes, Some(256 << 10));
        assert_eq!(o.hugepages, Hugepages::Off);
        assert!(o.foreground);
    }

    #[test]
    fn mount_fuse3_style_command_line() {
        // What mount.fuse3 runs for `mount -t fuse.slabfuse-memfs memfs /mnt
        // -o size=64M` from fstab with `defaults,nofail,_netdev`.
        let o = run(&[
            "memfs",
            "/mnt",
            "-o",
            "rw,nofail,_netdev,defaults,relatime,size=32M,inodes=4K,workers=1,dev,suid",
        ])
        .unwrap();
        assert_eq!(o.source.as_deref(), Some(OsStr::new("memfs")));
        assert_eq!(o.size_bytes, 32 << 20);
        assert_eq!(o.inodes, Some(4096));
        assert_eq!(o.workers, Some(1));
        assert!(o.mount.dev && o.mount.suid && !o.mount.read_only);
    }

    #[test]
    fn daemon_settings_as_mount_options_and_the_last_one_wins() {
        let o = run(&[
            "-o",
            "size=1G,max_message=4M,block_size=1M,hugepages=require",
            "/mnt",
            "--size",
            "2G",
            "-oworkers=2,hugepages=auto",
        ])
        .unwrap();
        assert_eq!(o.size_bytes, 2 << 30);
        assert_eq!(o.max_message_bytes, 4 << 20);
        assert_eq!(o.block_size_bytes, Some(1 << 20));
        assert_eq!(o.workers, Some(2));
        assert_eq!(o.hugepages, Hugepages::Auto);
    }

    #[test]
    fn mount_options_map_to_the_runtime() {
        let o = run(&[
            "/mnt",
            "-o",
            "allow_other,no_default_permissions,ro,nosuid,nodev,noexec,uid=1000,gid=100,\
             mode=0755,fsname=my\\,fs,subtype=memfs2,max_read=128K,x-systemd.automount,\
             comment=hi",
        ])
        .unwrap();
        let m = &o.mount;
        assert!(m.allow_other && !m.default_permissions && m.read_only && m.noexec);
        assert!(!m.suid && !m.dev);
        assert_eq!(m.fsname.as_deref(), Some("my,fs"));
        assert_eq!(m.subtype.as_deref(), Some("memfs2"));
        assert_eq!(m.max_read, Some(128 << 10));
        assert_eq!(
            (o.root_uid, o.root_gid, o.root_mode),
            (Some(1000), Some(100), Some(0o755))
        );
        let o = run(&["/mnt", "-o", "ro,rw,noexec,exec,default_permissions"]).unwrap();
        assert!(!o.mount.read_only && !o.mount.noexec && o.mount.default_permissions);
    }

    #[test]
    fn cache_options_map_to_memfs() {
        let o = run(&[
            "/mnt",
            "-o",
            "entry_timeout=2.5,attr_timeout=0,direct_io,kernel_cache",
        ])
        .unwrap();
        assert_eq!(
            o.cache,
            CacheChoices {
                entry_ttl_ms: Some(2500),
                attr_ttl_ms: Some(0),
                direct_io: Some(true),
                keep_cache: Some(true),
            }
        );
        assert_eq!(run(&["/mnt"]).unwrap().cache, CacheChoices::default());
        assert_eq!(parse_seconds_ms("1"), Ok(1000));
        assert_eq!(parse_seconds_ms(".25"), Ok(250));
        assert_eq!(parse_seconds_ms("3."), Ok(3000));
        assert!(
            parse_seconds_ms("0.0001")
                .unwrap_err()
                .contains("millisecond")
        );
        assert!(parse_seconds_ms(".").is_err());
        assert!(parse_seconds_ms("-1").is_err());
        assert!(parse_seconds_ms("1e3").is_err());
        assert!(
            parse_seconds_ms("5000000")
                .unwrap_err()
                .contains("too long")
        );
    }

    #[test]
    fn help_and_version_win() {
        let p = |a: &[&str]| parse(a.iter().map(OsString::from));
        assert_eq!(p(&["--help"]), Ok(Command::Help));
        assert_eq!(p(&["/mnt", "-h"]), Ok(Command::Help));
        assert_eq!(p(&["--version"]), Ok(Command::Version));
        assert_eq!(p(&["-V"]), Ok(Command::Version));
    }

    #[test]
    fn double_dash_ends_options() {
        let o = run(&["-f", "--", "-weird-dir"]).unwrap();
        assert_eq!(o.mountpoint, "-weird-dir");
        assert!(o.foreground);
    }

    #[test]
    fn usage_errors_say_what_is_wrong() {
        for (args, needle) in [
            (&[][..], "missing MOUNTPOINT"),
            (&["a", "b", "c"][..], "unexpected argument \"c\""),
            (
                &["--frobnicate", "/mnt"][..],
                "unknown option '--frobnicate'",
            ),
            (&["-x", "/mnt"][..], "unknown option '-x'"),
            (&["/mnt", "--size"][..], "'--size' needs a value"),
            (&["/mnt", "-o"][..], "'-o' needs a value"),
            (
                &["/mnt", "--size", "lots"][..],
                "--size lots: 'lots' is not a size",
            ),
            (&["/mnt", "--size=12Q"][..], "unknown size suffix"),
            (&["/mnt", "--workers", "0"][..], "between 1 and 1024"),
            (&["/mnt", "--workers", "2K"][..], "'2K' is not a number"),
            (&["/mnt", "--inodes", "0"][..], "at least one inode"),
            (&["/mnt", "--inodes", "8G"][..], "at most 4294967295 inodes"),
            (
                &["/mnt", "--hugepages", "yes"][..],
                "not one of auto, require, off",
            ),
            (&["/mnt", "--help=1"][..], "takes no value"),
            (
                &["/mnt", "-o", "bogus"][..],
                "-o bogus: unknown mount option 'bogus'",
            ),
            (
                &["/mnt", "-o", "bogus=1"][..],
                "unknown mount option 'bogus'",
            ),
            (&["/mnt", "-o", "size"][..], "'size' needs a value"),
            (&["/mnt", "-o", "ro=1"][..], "'ro' takes no value"),
            (&["/mnt", "-o", "mode=999"][..], "not an octal mode"),
            (&["/mnt", "-o", "mode=17777"][..], "not an octal mode"),
            (&["/mnt", "-o", "uid=-1"][..], "not a number"),
            (&["/mnt", "-o", "fsname="][..], "must not be empty"),
            (&["/mnt", "-o", "max_read=8G"][..], "below 4G"),
            (&[""][..], "MOUNTPOINT is empty"),
        ] {
            let e = run(args).unwrap_err();
            assert!(e.contains(needle), "{args:?}: {e:?} lacks {needle:?}");
        }
    }

    #[test]
    fn option_lists_split_at_unescaped_commas() {
        assert_eq!(split_option_list("a,b\\,c,,d\\\\"), ["a", "b,c", "", "d\\"]);
        assert_eq!(split_option_list(""), [""]);
    }
}
