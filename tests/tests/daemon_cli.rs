//! The daemon's command line, without mounting anything (no privileges
//! needed): `--help`, `--version`, bad command lines (exit code 2) and mount
//! points that cannot be used (exit code 1), in the foreground and through
//! the background daemon's readiness pipe.

// Test code: a panic here is a failed test, not a crashed daemon.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod daemon_support;

use std::ffi::OsStr;

use daemon_support::*;

fn os<'a>(args: &[&'a str]) -> Vec<&'a OsStr> {
    args.iter().map(|s| OsStr::new(*s)).collect()
}

#[test]
fn help_prints_the_manual_on_stdout_and_exits_0() {
    for flag in ["--help", "-h"] {
        let (status, out, err) = run_daemon(&os(&[flag]));
        assert_eq!(status.code(), Some(0), "{flag}: {err}");
        assert!(err.is_empty(), "{flag} wrote to stderr: {err}");
        for needle in [
            "slabfuse-memfs [OPTIONS] [SOURCE] MOUNTPOINT",
            "--size SIZE",
            "--inodes N",
            "--max-message SIZE",
            "--workers N",
            "--block-size SIZE",
            "--hugepages MODE",
            "-f, --foreground",
            "no_default_permissions",
            "fuse.slabfuse-memfs",
            "EXIT STATUS",
        ] {
            assert!(out.contains(needle), "{flag}: the help lacks {needle:?}");
        }
    }
}

#[test]
fn version_prints_name_and_version_and_exits_0() {
    for flag in ["--version", "-V"] {
        let (status, out, _) = run_daemon(&os(&[flag]));
        assert_eq!(status.code(), Some(0));
        assert!(
            out.starts_with(&format!("slabfuse-memfs {}", env!("CARGO_PKG_VERSION"))),
            "{out}"
        );
    }
}

#[test]
fn bad_command_lines_exit_2_with_a_message_and_a_pointer_to_help() {
    for (args, message) in [
        (&[][..], "missing MOUNTPOINT"),
        (&["/mnt", "/a", "/b"][..], "unexpected argument"),
        (
            &["--frobnicate", "/mnt"][..],
            "unknown option '--frobnicate'",
        ),
        (&["-x", "/mnt"][..], "unknown option '-x'"),
        (&["/mnt", "-o", "bogus"][..], "unknown mount option 'bogus'"),
        (&["/mnt", "-o", "ro=yes"][..], "'ro' takes no value"),
        (&["/mnt", "--size"][..], "'--size' needs a value"),
        (&["/mnt", "--size", "12Q"][..], "unknown size suffix"),
        (&["/mnt", "-o", "size=lots"][..], "'lots' is not a size"),
        (&["/mnt", "--workers", "0"][..], "between 1 and 1024"),
        (&["/mnt", "--inodes", "0"][..], "at least one inode"),
        (
            &["/mnt", "--hugepages", "maybe"][..],
            "not one of auto, require, off",
        ),
        (&["/mnt", "-o", "mode=9"][..], "not an octal mode"),
        // Values the memory plan cannot work with are bad command lines too.
        (
            &["/mnt", "--block-size", "3000"][..],
            "must be a power of two",
        ),
        (&["/mnt", "--max-message", "1K"][..], "out of range"),
    ] {
        for foreground in [true, false] {
            let mut all = os(args);
            if foreground {
                all.insert(0, OsStr::new("-f"));
            }
            let (status, out, err) = run_daemon(&all);
            assert_eq!(
                status.code(),
                Some(2),
                "{all:?}: {}\n{err}",
                describe(status)
            );
            assert!(err.contains(message), "{all:?}: {err:?} lacks {message:?}");
            assert!(
                err.contains("try 'slabfuse-memfs --help'"),
                "{all:?}: no pointer to --help in {err:?}"
            );
            assert!(err.starts_with("slabfuse-memfs: "), "{err:?}");
            assert!(out.is_empty(), "{all:?}: stdout {out:?}");
            assert!(
                !err.contains(" plan ") && !err.contains(" summary "),
                "{err}"
            );
        }
    }
}

#[test]
fn a_mount_point_that_does_not_exist_exits_1_in_both_modes() {
    let dir = TempDir::new("daemon-cli");
    let missing = dir.path().join("no-such-dir");
    for foreground in [true, false] {
        let mut args = vec![missing.as_os_str()];
        if foreground {
            args.push(OsStr::new("-f"));
        }
        let (status, _, err) = run_daemon(&args);
        // In the background the parent exits with the code its child sent
        // through the readiness pipe, after the child printed why.
        assert_eq!(status.code(), Some(1), "{}: {err}", describe(status));
        assert!(
            err.contains(&format!(
                "{}: mount point does not exist",
                missing.display()
            )),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "one clear line: {err}");
    }
}

#[test]
fn a_file_as_mount_point_exits_1() {
    let dir = TempDir::new("daemon-cli");
    let file = dir.path().join("file");
    std::fs::write(&file, b"").unwrap();
    let (status, _, err) = run_daemon(&[file.as_os_str(), OsStr::new("-f")]);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("mount point is not a directory"), "{err}");
}

#[test]
fn support_recognizes_sizes() {
    assert!(is_size("16M") && is_size("4096") && is_size("0") && is_size("3G"));
    assert!(!is_size("") && !is_size("M") && !is_size("16MM") && !is_size("1.5M"));
}
