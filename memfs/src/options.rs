//! The settings both front ends of memfs take: the std daemon
//! (`src/bin/slabfuse-memfs/`) and the appliance image (`src/appliance/`).
//!
//! One definition, so that `-o size=64M,workers=2,uid=0` means the same
//! thing, is checked the same way and fails with the same message whichever
//! binary reads it. Each front end keeps its own argv walking (the daemon
//! reads `OsString`s, the image `&'static CStr`s from its stack) and adds
//! its own keys through [`ProgramOptions::extra`]; everything else is here:
//! the values (`SIZE`, counts, ids, modes), the mount flags and their
//! negations, the keywords `mount(8)` passes that mean nothing to us, and
//! fusermount3's `\,` escaping in `-o` lists.
//!
//! Parsing is pure (no system calls) and allocates only the strings it
//! returns, which in the image come from the start-up arena: it runs before
//! serving, never after.

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::String;

use slabfuse::pool::BackingRequest;

/// Default data budget (`--size`).
pub const DEFAULT_SIZE_BYTES: u64 = 64 << 20;
/// Default maximum message (`--max-message`): the largest the kernel
/// accepts with `max_pages_limit` raised to 4096.
pub const DEFAULT_MAX_MESSAGE_BYTES: u64 = 16 << 20;
/// Most workers accepted (each owns a receive buffer of up to
/// `--max-message`).
pub const WORKERS_MAX: usize = 1024;
/// Default `--poll-us`: long enough to catch the next request of a
/// synchronous caller (a few µs away), short enough to cost little CPU.
pub const POLL_US_DEFAULT: u64 = 50;
/// Largest `--poll-us` (1 s): beyond that polling is just spinning.
pub const POLL_US_MAX: u64 = 1_000_000;
/// The permission bits `mode=` may set.
pub const MODE_MASK: u32 = 0o7777;

/// `--hugepages`: how the slabs are backed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Hugepages {
    /// hugetlb pages, else transparent huge pages, else normal pages.
    Auto,
    /// hugetlb pages or fail.
    Require,
    /// Normal pages only.
    Off,
}

impl Hugepages {
    /// What the pool is asked for.
    pub fn backing(self) -> BackingRequest {
        match self {
            Hugepages::Auto => BackingRequest::Auto,
            Hugepages::Require => BackingRequest::HugeTlb,
            Hugepages::Off => BackingRequest::Normal,
        }
    }
}

/// Mount options (`-o`), in the runtime's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountChoices {
    /// `allow_other`.
    pub allow_other: bool,
    /// `default_permissions` (on) / `no_default_permissions`.
    pub default_permissions: bool,
    /// `ro` / `rw`.
    pub read_only: bool,
    /// `suid` / `nosuid`.
    pub suid: bool,
    /// `dev` / `nodev`.
    pub dev: bool,
    /// `noexec` / `exec`.
    pub noexec: bool,
    /// `fsname=`; `None`: SOURCE, else the program name.
    pub fsname: Option<String>,
    /// `subtype=`; `None`: the program name.
    pub subtype: Option<String>,
    /// `max_read=`.
    pub max_read: Option<u32>,
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

/// The settings both front ends share.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServeOptions {
    /// `--size`: data budget, bytes.
    pub size_bytes: u64,
    /// `--inodes`; `None`: memfs's default.
    pub inodes: Option<u32>,
    /// `--max-message`, bytes.
    pub max_message_bytes: u64,
    /// `--workers`; `None`: one per CPU.
    pub workers: Option<usize>,
    /// `--poll-us`: how long the first worker polls after a request, µs
    /// (0: never).
    pub poll_us: u64,
    /// `--block-size`; `None`: the runtime picks.
    pub block_size_bytes: Option<u64>,
    /// `--hugepages`.
    pub hugepages: Hugepages,
    /// `-o` mount options.
    pub mount: MountChoices,
    /// `uid=`: the root directory's owner; `None`: whoever runs the daemon.
    pub root_uid: Option<u32>,
    /// `gid=`: the root directory's group; `None`: the daemon's group.
    pub root_gid: Option<u32>,
    /// `mode=`: the root directory's permission bits; `None`: memfs's
    /// default.
    pub root_mode: Option<u32>,
}

impl Default for ServeOptions {
    fn default() -> ServeOptions {
        ServeOptions {
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
        }
    }
}

/// Long options that take a value and are shared, with their `-o` key
/// (`--max-message 16M` is `-o max_message=16M`).
pub const SHARED_VALUED_LONG: &[(&str, &str)] = &[
    ("size", "size"),
    ("inodes", "inodes"),
    ("max-message", "max_message"),
    ("workers", "workers"),
    ("poll-us", "poll_us"),
    ("block-size", "block_size"),
    ("hugepages", "hugepages"),
];

/// `-o` keys of [`ServeOptions`] that need a value.
const SHARED_VALUED_KEYS: &[&str] = &[
    "size",
    "inodes",
    "max_message",
    "workers",
    "poll_us",
    "block_size",
    "hugepages",
    "uid",
    "gid",
    "mode",
    "fsname",
    "subtype",
    "max_read",
];

/// Keywords `mount(8)`, `/etc/fstab` and `mount.fuse3` pass that mean
/// nothing here: accepted and ignored. (The atime family is accepted for
/// fstab compatibility: FUSE leaves atime to the filesystem.)
pub const IGNORED_KEYWORDS: &[&str] = &[
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

/// A front end's options: the shared ones plus its own keys.
pub trait ProgramOptions {
    /// The shared settings.
    fn serve(&mut self) -> &mut ServeOptions;

    /// A `-o` key (bare, or with its value) this program adds beyond the
    /// shared ones: `Some(result)` when the key is one of them, `None` to
    /// let the shared keys decide. Asked first.
    fn extra(&mut self, key: &str, value: Option<&str>) -> Option<Result<(), String>>;
}

/// The key and value of a long option or `-o` setting, whichever front
/// end it came through.
pub fn setting(p: &mut impl ProgramOptions, key: &str, value: &str) -> Result<(), String> {
    if let Some(result) = p.extra(key, Some(value)) {
        return result;
    }
    p.serve().setting(key, value)
}

/// One `-o` list: items split at unescaped commas (`\,` is a comma inside
/// a value, `\\` a backslash, as fusermount3 escapes them). The error names
/// the item it is about: `-o size=12Q: ...`.
pub fn option_list(p: &mut impl ProgramOptions, list: &str) -> Result<(), String> {
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
                option(p, &item).map_err(|e| format!("-o {item}: {e}"))?;
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
fn option(p: &mut impl ProgramOptions, item: &str) -> Result<(), String> {
    if item.is_empty() || item.starts_with("x-") || item.starts_with("comment=") {
        return Ok(());
    }
    let (key, value) = match item.split_once('=') {
        Some((k, v)) => (k, Some(v)),
        None => (item, None),
    };
    if let Some(result) = p.extra(key, value) {
        return result;
    }
    let m = &mut p.serve().mount;
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
                return Err(if SHARED_VALUED_KEYS.contains(&key) {
                    format!("'{key}' needs a value ({key}=...)")
                } else {
                    format!("unknown mount option '{key}'")
                });
            };
            return p.serve().setting(key, value);
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

impl ServeOptions {
    /// A shared `key=value` setting; an unknown key is an error.
    pub fn setting(&mut self, key: &str, value: &str) -> Result<(), String> {
        match key {
            "size" => self.size_bytes = parse_bytes(value)?,
            "inodes" => {
                let n = parse_bytes(value)?;
                if n == 0 {
                    return Err("memfs needs at least one inode (its root)".to_owned());
                }
                self.inodes = Some(
                    u32::try_from(n)
                        .map_err(|_| format!("at most {} inodes are possible", u32::MAX))?,
                );
            }
            "max_message" => self.max_message_bytes = parse_bytes(value)?,
            "workers" => {
                let n = parse_count(value)?;
                self.workers = Some(
                    usize::try_from(n)
                        .ok()
                        .filter(|n| (1..=WORKERS_MAX).contains(n))
                        .ok_or_else(|| format!("workers must be between 1 and {WORKERS_MAX}"))?,
                );
            }
            "block_size" => self.block_size_bytes = Some(parse_bytes(value)?),
            "poll_us" => {
                let n = parse_count(value)?;
                if n > POLL_US_MAX {
                    return Err(format!("poll_us must be at most {POLL_US_MAX} (1 s)"));
                }
                self.poll_us = n;
            }
            "hugepages" => {
                self.hugepages = match value {
                    "auto" => Hugepages::Auto,
                    "require" => Hugepages::Require,
                    "off" => Hugepages::Off,
                    _ => return Err(format!("'{value}' is not one of auto, require, off")),
                }
            }
            "uid" => self.root_uid = Some(parse_id(value)?),
            "gid" => self.root_gid = Some(parse_id(value)?),
            "mode" => self.root_mode = Some(parse_mode(value)?),
            "fsname" | "subtype" => {
                if value.is_empty() {
                    return Err(format!("{key} must not be empty"));
                }
                if value.contains('\0') {
                    return Err(format!("{key} must not contain a NUL byte"));
                }
                let slot = if key == "fsname" {
                    &mut self.mount.fsname
                } else {
                    &mut self.mount.subtype
                };
                *slot = Some(value.to_owned());
            }
            "max_read" => {
                let n = parse_bytes(value)?;
                self.mount.max_read =
                    Some(u32::try_from(n).map_err(|_| "max_read must be below 4G".to_owned())?);
            }
            _ => return Err(format!("unknown mount option '{key}'")),
        }
        Ok(())
    }
}

/// `SIZE`: digits, then an optional `K`/`M`/`G`/`T` (powers of 1024),
/// optionally followed by `B` or `iB`; any case. As tmpfs and fusermount3
/// users write sizes: `65536`, `64K`, `16M`, `1G`.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
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

/// A plain decimal count (no suffix, no sign).
pub fn parse_count(text: &str) -> Result<u64, String> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("'{text}' is not a number"));
    }
    text.parse().map_err(|_| format!("'{text}' is too large"))
}

/// A numeric user or group id (`u32::MAX` is "no id" to the kernel).
pub fn parse_id(value: &str) -> Result<u32, String> {
    let n = parse_count(value)?;
    u32::try_from(n)
        .ok()
        .filter(|id| *id != u32::MAX)
        .ok_or_else(|| format!("'{value}' is not a valid id"))
}

/// Octal permission bits, at most [`MODE_MASK`].
pub fn parse_mode(value: &str) -> Result<u32, String> {
    u32::from_str_radix(value, 8)
        .ok()
        .filter(|m| *m <= MODE_MASK)
        .ok_or_else(|| format!("'{value}' is not an octal mode like 1777 or 0755"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A front end with one extra key of each kind.
    #[derive(Default)]
    struct Front {
        serve: ServeOptions,
        flag: bool,
        level: Option<u64>,
    }

    impl ProgramOptions for Front {
        fn serve(&mut self) -> &mut ServeOptions {
            &mut self.serve
        }

        fn extra(&mut self, key: &str, value: Option<&str>) -> Option<Result<(), String>> {
            Some(match (key, value) {
                ("flag", None) => {
                    self.flag = true;
                    Ok(())
                }
                ("flag", Some(_)) => Err("'flag' takes no value".to_owned()),
                ("level", Some(v)) => parse_count(v).map(|n| self.level = Some(n)),
                ("level", None) => Err("'level' needs a value".to_owned()),
                _ => return None,
            })
        }
    }

    #[test]
    fn suffixes_are_powers_of_1024_in_any_case_and_spelling() {
        assert_eq!(parse_bytes("0"), Ok(0));
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("64K"), Ok(64 << 10));
        assert_eq!(parse_bytes("64k"), Ok(64 << 10));
        assert_eq!(parse_bytes("16M"), Ok(16 << 20));
        assert_eq!(parse_bytes("16MiB"), Ok(16 << 20));
        assert_eq!(parse_bytes("16mb"), Ok(16 << 20));
        assert_eq!(parse_bytes("1G"), Ok(1 << 30));
        assert_eq!(parse_bytes("2T"), Ok(2 << 40));
    }

    #[test]
    fn bad_sizes_say_what_is_wrong() {
        let err = |text| parse_bytes(text).unwrap_err();
        assert!(err("").contains("not a size"));
        assert!(err("M").contains("not a size"));
        assert!(err("-1").contains("not a size"));
        assert!(err("1.5M").contains("unknown size suffix"));
        assert!(err("10X").contains("unknown size suffix"));
        assert!(err("16 M").contains("unknown size suffix"));
        assert!(err("99999999999999999999").contains("too large"));
        assert!(err("17179869184G").contains("too large"));
    }

    #[test]
    fn counts_ids_and_modes() {
        assert_eq!(parse_count("42"), Ok(42));
        assert!(parse_count("4K").is_err());
        assert!(parse_count("").is_err());
        assert!(parse_count("+1").is_err());
        assert_eq!(parse_id("0"), Ok(0));
        assert!(parse_id("4294967295").is_err());
        assert!(parse_id("4294967296").is_err());
        assert_eq!(parse_mode("1777"), Ok(0o1777));
        assert_eq!(parse_mode("0755"), Ok(0o755));
        assert!(parse_mode("10000").is_err());
        assert!(parse_mode("0789").is_err());
    }

    #[test]
    fn shared_keys_flags_and_negations() {
        let mut f = Front::default();
        option_list(
            &mut f,
            "size=1G,workers=3,allow_other,ro,rw,nodev,dev,uid=7,mode=700,_netdev,x-systemd.foo",
        )
        .unwrap();
        let s = &f.serve;
        assert_eq!(s.size_bytes, 1 << 30);
        assert_eq!(s.workers, Some(3));
        assert!(s.mount.allow_other);
        assert!(!s.mount.read_only, "the last of ro/rw wins");
        assert!(s.mount.dev);
        assert_eq!(s.root_uid, Some(7));
        assert_eq!(s.root_mode, Some(0o700));
    }

    #[test]
    fn extra_keys_are_asked_first() {
        let mut f = Front::default();
        option_list(&mut f, "flag,level=9,size=4M").unwrap();
        assert!(f.flag);
        assert_eq!(f.level, Some(9));
        assert_eq!(f.serve.size_bytes, 4 << 20);
        setting(&mut f, "level", "10").unwrap();
        assert_eq!(f.level, Some(10));
        setting(&mut f, "poll_us", "0").unwrap();
        assert_eq!(f.serve.poll_us, 0);
        assert_eq!(
            option_list(&mut f, "flag=1"),
            Err("-o flag=1: 'flag' takes no value".to_owned())
        );
    }

    #[test]
    fn errors_name_the_item() {
        let mut f = Front::default();
        let err = |f: &mut Front, list| option_list(f, list).unwrap_err();
        assert_eq!(
            err(&mut f, "bogus"),
            "-o bogus: unknown mount option 'bogus'"
        );
        assert_eq!(
            err(&mut f, "size"),
            "-o size: 'size' needs a value (size=...)"
        );
        assert_eq!(err(&mut f, "ro=1"), "-o ro=1: 'ro' takes no value");
        assert!(err(&mut f, "workers=0").contains("between 1 and 1024"));
        assert!(err(&mut f, "poll_us=1000001").contains("at most 1000000"));
        assert!(err(&mut f, "hugepages=maybe").contains("auto, require, off"));
        assert!(err(&mut f, "fsname=").contains("must not be empty"));
        assert!(err(&mut f, "max_read=4G").contains("below 4G"));
        assert!(err(&mut f, "inodes=0").contains("at least one inode"));
    }

    #[test]
    fn option_lists_split_at_unescaped_commas() {
        let mut f = Front::default();
        option_list(&mut f, r"fsname=a\,b\\c,subtype=x").unwrap();
        assert_eq!(f.serve.mount.fsname.as_deref(), Some(r"a,b\c"));
        assert_eq!(f.serve.mount.subtype.as_deref(), Some("x"));
        option_list(&mut f, "").unwrap();
        option_list(&mut f, ",,").unwrap();
    }
}
