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

use slabfuse_memfs::options::{self, ProgramOptions, SHARED_VALUED_LONG, ServeOptions};

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

/// Everything `Run` needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Options {
    /// SOURCE: shown as the mount's "device" unless `fsname=` says otherwise.
    pub(crate) source: Option<OsString>,
    /// MOUNTPOINT, as given.
    pub(crate) mountpoint: OsString,
    /// `-f`: stay in the foreground.
    pub(crate) foreground: bool,
    /// The settings the appliance image shares.
    pub(crate) serve: ServeOptions,
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
            serve: ServeOptions::default(),
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
                _ => {
                    let Some(&(_, key)) = SHARED_VALUED_LONG.iter().find(|(n, _)| *n == name)
                    else {
                        return Err(UsageError(format!("unknown option '--{name}'")));
                    };
                    let value = match inline {
                        Some(v) => v,
                        None => next_value(&mut args, &format!("--{name}"))?,
                    };
                    options::setting(&mut b, key, &value)
                        .map_err(|e| UsageError(format!("--{name} {value}: {e}")))?;
                }
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
                options::option_list(&mut b, &list).map_err(UsageError)?;
            }
            _ if text.starts_with("-o") => {
                options::option_list(&mut b, &text[2..]).map_err(UsageError)?
            }
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

impl ProgramOptions for Builder {
    fn serve(&mut self) -> &mut ServeOptions {
        &mut self.options.serve
    }

    /// The daemon's own keys: memfs's caching choices.
    fn extra(&mut self, key: &str, value: Option<&str>) -> Option<Result<(), String>> {
        let c = &mut self.options.cache;
        Some(match (key, value) {
            ("direct_io" | "kernel_cache" | "keep_cache", Some(_)) => {
                Err(format!("'{key}' takes no value"))
            }
            ("direct_io", None) => {
                c.direct_io = Some(true);
                Ok(())
            }
            ("kernel_cache" | "keep_cache", None) => {
                c.keep_cache = Some(true);
                Ok(())
            }
            ("entry_timeout" | "attr_timeout", None) => {
                Err(format!("'{key}' needs a value ({key}=...)"))
            }
            ("entry_timeout", Some(v)) => parse_seconds_ms(v).map(|ms| c.entry_ttl_ms = Some(ms)),
            ("attr_timeout", Some(v)) => parse_seconds_ms(v).map(|ms| c.attr_ttl_ms = Some(ms)),
            _ => return None,
        })
    }
}

impl Builder {
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

#[cfg(test)]
mod tests {
    use super::*;
    use slabfuse_memfs::options::{Hugepages, MountChoices};

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
        assert_eq!(o.serve.size_bytes, 64 << 20);
        assert_eq!(o.serve.max_message_bytes, 16 << 20);
        assert_eq!(
            (o.serve.workers, o.serve.inodes, o.serve.block_size_bytes),
            (None, None, None)
        );
        assert_eq!(o.serve.hugepages, Hugepages::Auto);
        assert_eq!(o.serve.mount, MountChoices::default());
        assert!(o.serve.mount.default_permissions);
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
        assert_eq!(o.serve.size_bytes, 8 << 20);
        assert_eq!(o.serve.inodes, Some(1000));
        assert_eq!(o.serve.max_message_bytes, 1 << 20);
        assert_eq!(o.serve.workers, Some(3));
        assert_eq!(o.serve.block_size_bytes, Some(256 << 10));
        assert_eq!(o.serve.hugepages, Hugepages::Off);
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
        assert_eq!(o.serve.size_bytes, 32 << 20);
        assert_eq!(o.serve.inodes, Some(4096));
        assert_eq!(o.serve.workers, Some(1));
        assert!(o.serve.mount.dev && o.serve.mount.suid && !o.serve.mount.read_only);
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
        assert_eq!(o.serve.size_bytes, 2 << 30);
        assert_eq!(o.serve.max_message_bytes, 4 << 20);
        assert_eq!(o.serve.block_size_bytes, Some(1 << 20));
        assert_eq!(o.serve.workers, Some(2));
        assert_eq!(o.serve.hugepages, Hugepages::Auto);
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
        let m = &o.serve.mount;
        assert!(m.allow_other && !m.default_permissions && m.read_only && m.noexec);
        assert!(!m.suid && !m.dev);
        assert_eq!(m.fsname.as_deref(), Some("my,fs"));
        assert_eq!(m.subtype.as_deref(), Some("memfs2"));
        assert_eq!(m.max_read, Some(128 << 10));
        assert_eq!(
            (o.serve.root_uid, o.serve.root_gid, o.serve.root_mode),
            (Some(1000), Some(100), Some(0o755))
        );
        let o = run(&["/mnt", "-o", "ro,rw,noexec,exec,default_permissions"]).unwrap();
        assert!(
            !o.serve.mount.read_only && !o.serve.mount.noexec && o.serve.mount.default_permissions
        );
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
}
