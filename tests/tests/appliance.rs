//! The static appliance image, end to end.
//!
//! Builds the image with `just appliance` (the recipe prints the image's
//! path last), checks that it is a static executable with no dynamic
//! section and within its size target, mounts it with a 16 MiB budget
//! (pool + storage), runs a write / read / rename / readdir workload with
//! one 4 MiB write, holds its resident memory against the plan it logged,
//! unmounts it with SIGTERM and decodes its defmt log with `defmt-print`:
//! the start-up plan record, INIT, the exit record with zero heap
//! allocations after start.
//!
//! Needs root (it mounts with `mount(2)`) and the build prerequisites:
//! `just`, `cc`, `strip`, `readelf`, `file` and `defmt-print`
//! (`cargo install defmt-print --locked`). Without them it prints why and
//! skips.

// Test code: a panic here is a failed test, not a crashed daemon.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use slabfuse_tests::{
    KnobLock, MAX_PAGES_LIMIT, Rng, TempDir, force_unmount, is_mounted, knob_name,
};

/// The targets.
const IMAGE_BYTES_MAX: u64 = 256 << 10;
const BUDGET_BYTES: u64 = 16 << 20;
/// Resident memory must be the plan within 2%: 200 basis points.
const RSS_DEVIATION_MAX_BASIS_POINTS: i64 = 200;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Whether `tool` runs (`tool --version` or `tool --help` exits at all).
fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Why the image cannot be built and its log decoded here, or `None`.
fn build_skip_reason() -> Option<String> {
    for tool in ["just", "cc", "strip", "readelf", "file", "defmt-print"] {
        if !have(tool) {
            return Some(format!(
                "`{tool}` is missing (the image's build and log decoding need it{})",
                if tool == "defmt-print" {
                    ": cargo install defmt-print --locked"
                } else {
                    ""
                }
            ));
        }
    }
    None
}

/// The running image: SIGTERM (then SIGKILL) and a lazy unmount on drop, so
/// a failed assertion leaves nothing mounted or running.
struct Image {
    child: Option<Child>,
    mountpoint: PathBuf,
}

impl Image {
    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Sends SIGTERM and waits (at most `timeout`) for the exit status.
    fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        force_unmount(&self.mountpoint);
    }
}

/// Builds the image (once per test process); its path and that of its
/// unstripped twin.
fn build() -> (PathBuf, PathBuf) {
    static BUILT: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let out = Command::new("just")
                .arg("appliance")
                .current_dir(workspace_root())
                // The recipe sets its own flags; an outer encoded set would win.
                .env_remove("CARGO_ENCODED_RUSTFLAGS")
                .stderr(Stdio::inherit())
                .output()
                .expect("run just appliance");
            assert!(
                out.status.success(),
                "just appliance failed: {}",
                out.status
            );
            let stdout = String::from_utf8(out.stdout).unwrap();
            let last = stdout.lines().rev().find(|l| !l.trim().is_empty()).unwrap();
            let image = PathBuf::from(last.trim());
            assert!(
                image.is_file(),
                "the recipe's last line is not the image: {image:?}"
            );
            let elf = image.with_extension("elf");
            assert!(elf.is_file(), "no unstripped twin at {elf:?}");
            (image, elf)
        })
        .clone()
}

fn output_of(cmd: &str, arg: &Path) -> String {
    let out = Command::new(cmd).arg(arg).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// `defmt-print -e ELF < LOG`.
fn decode(elf: &Path, log: &Path) -> String {
    let out = Command::new("defmt-print")
        .arg("-e")
        .arg(elf)
        .stdin(File::open(log).unwrap())
        .output()
        .expect("run defmt-print");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Resident bytes of `pid`: VmRSS + HugetlbPages.
fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib = |name: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (kib("VmRSS:") + kib("HugetlbPages:")) * 1024
}

/// The number after `key` in `line` (digits only).
fn number_after(line: &str, key: &str) -> Option<u64> {
    let rest = &line[line.find(key)? + key.len()..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

#[test]
fn the_static_image_serves_memfs_within_its_plan() {
    if let Some(reason) = slabfuse_tests::privileged_skip_reason().or_else(build_skip_reason) {
        eprintln!("SKIPPED appliance: {reason}");
        return;
    }
    // The image reads fs.fuse.max_pages_limit for its plan: hold it still.
    let _knob = KnobLock::shared(&knob_name(MAX_PAGES_LIMIT));

    // Build, and check what kind of file came out.
    let (image_path, elf) = build();
    let readelf_d = {
        let out = Command::new("readelf")
            .arg("-d")
            .arg(&image_path)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(
        readelf_d.contains("There is no dynamic section in this file"),
        "readelf -d: {readelf_d}"
    );
    let file = output_of("file", &image_path);
    assert!(file.contains("statically linked"), "file: {file}");
    let image_bytes = std::fs::metadata(&image_path).unwrap().len();
    eprintln!(
        "image: {} ({image_bytes} bytes stripped)",
        image_path.display()
    );
    assert!(
        image_bytes <= IMAGE_BYTES_MAX,
        "stripped image is {image_bytes} bytes, over {IMAGE_BYTES_MAX}"
    );

    // Mount it: 2 workers, 1 MiB messages (3 MiB of pool), 10 MiB of data,
    // 4096 inodes; the budget makes start-up fail if pool + storage > 16 MiB.
    let dir = TempDir::new("appliance");
    let mountpoint = dir.path().join("mnt");
    std::fs::create_dir(&mountpoint).unwrap();
    let log = dir.path().join("appliance.defmt");
    let child = Command::new(&image_path)
        .args([
            "--size",
            "10M",
            "--inodes",
            "4096",
            "--max-message",
            "1M",
            "--workers",
            "2",
            "--budget",
            "16M",
            "appliance-test",
        ])
        .arg(&mountpoint)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&log).unwrap())
        .spawn()
        .expect("start the image");
    let mut running = Image {
        child: Some(child),
        mountpoint: mountpoint.clone(),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !is_mounted(&mountpoint) {
        if let Ok(Some(status)) = running.child.as_mut().unwrap().try_wait() {
            panic!(
                "the image exited ({status}) before mounting; its log:\n{}",
                decode(&elf, &log)
            );
        }
        assert!(Instant::now() < deadline, "not mounted after 20 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let root_meta = std::fs::metadata(&mountpoint).unwrap();
    assert!(root_meta.is_dir());

    // The workload: write, read back, one 4 MiB write, rename, readdir.
    let small = mountpoint.join("a.txt");
    std::fs::write(&small, b"hello, appliance\n").unwrap();
    assert_eq!(std::fs::read(&small).unwrap(), b"hello, appliance\n");
    let mut big = vec![0u8; 4 << 20];
    Rng::new(7).fill(&mut big);
    let big_path = mountpoint.join("big.bin");
    {
        let mut f = File::create(&big_path).unwrap();
        f.write_all(&big).unwrap();
        f.sync_all().unwrap();
    }
    assert_eq!(std::fs::metadata(&big_path).unwrap().size(), 4 << 20);
    let mut back = Vec::new();
    File::open(&big_path)
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert!(back == big, "the 4 MiB file reads back different");
    std::fs::create_dir(mountpoint.join("d")).unwrap();
    std::fs::rename(&small, mountpoint.join("d/b.txt")).unwrap();
    assert!(!small.exists());
    assert_eq!(
        names(&mountpoint),
        BTreeSet::from(["big.bin".to_string(), "d".to_string()])
    );
    assert_eq!(
        names(&mountpoint.join("d")),
        BTreeSet::from(["b.txt".to_string()])
    );
    assert_eq!(
        std::fs::read(mountpoint.join("d/b.txt")).unwrap(),
        b"hello, appliance\n"
    );
    let resident = resident_bytes(running.pid());

    // Unmount with SIGTERM; the image exits 0 and leaves nothing mounted.
    let status = running
        .terminate(Duration::from_secs(20))
        .expect("the image did not exit within 20 s of SIGTERM");
    assert!(!is_mounted(&mountpoint), "still mounted after exit");
    let text = decode(&elf, &log);
    eprintln!("--- decoded log ---\n{text}--- end ---");
    assert!(status.success(), "exit status {status}");

    // The start-up plan record: the runtime's plan, as configured.
    let plan = text
        .lines()
        .find(|l| l.contains("INFO  plan: Plan {"))
        .expect("no start-up plan record");
    for field in [
        "workers: 2",
        "max_write: 1048576",
        "block_size: 1048576",
        "pool_blocks: 3",
        "pool_bytes: 3145728",
    ] {
        assert!(plan.contains(field), "plan record lacks {field}: {plan}");
    }
    assert!(text.contains("INIT agreed: ConnInfo"), "no INIT record");

    // The budget: pool + storage within 16 MiB.
    let budget = text
        .lines()
        .find(|l| l.contains("budget: pool + storage ="))
        .expect("no budget record");
    let budgeted = number_after(budget, "pool + storage =").unwrap();
    assert!(budgeted <= BUDGET_BYTES, "{budget}");

    // Resident memory after the workload against the printed plan.
    let memory = text
        .lines()
        .find(|l| l.contains("memory plan:"))
        .expect("no memory plan record");
    let planned = number_after(memory, "=").unwrap();
    let deviation = (resident as i64 - planned as i64) * 10_000 / planned as i64;
    eprintln!(
        "resident after the workload: {resident} bytes; plan: {planned} bytes; {deviation} basis points"
    );
    assert!(
        deviation.abs() <= RSS_DEVIATION_MAX_BASIS_POINTS,
        "resident {resident} vs plan {planned}: {deviation} basis points"
    );

    // Zero heap allocations after start, and the 4 MiB went through.
    let heap = text
        .lines()
        .find(|l| l.contains("heap allocations after serving began:"))
        .expect("no heap record");
    assert_eq!(
        number_after(heap, "heap allocations after serving began:"),
        Some(0),
        "{heap}"
    );
    let exit = text
        .lines()
        .find(|l| l.contains("INFO  exit:"))
        .expect("no exit record");
    let written = number_after(exit, "requests,").unwrap();
    assert!(written >= 4 << 20, "{exit}");
    assert_eq!(number_after(exit, "largest write"), Some(1 << 20), "{exit}");
}

#[test]
fn the_image_parses_its_own_command_line() {
    if let Some(reason) = build_skip_reason() {
        eprintln!("SKIPPED appliance: {reason}");
        return;
    }
    let (image, elf) = build();
    let help = Command::new(&image).arg("--help").output().unwrap();
    assert!(help.status.success());
    let help = String::from_utf8(help.stdout).unwrap();
    for option in [
        "--size",
        "--inodes",
        "--max-message",
        "--workers",
        "--block-size",
        "--hugepages",
        "--budget",
        "-o OPTS",
    ] {
        assert!(help.contains(option), "--help lacks {option}");
    }
    let dir = TempDir::new("appliance-usage");
    for (args, reason) in [
        (&[][..], "missing MOUNTPOINT"),
        (
            &["--frobnicate", "/mnt"][..],
            "unknown option '--frobnicate'",
        ),
        (
            &["/mnt", "--workers", "0"][..],
            "workers must be between 1 and 1024",
        ),
        (&["/mnt", "-o", "ro=1"][..], "'ro' takes no value"),
        (&["/mnt", "-o", "mode=999"][..], "not an octal mode"),
        (
            &["/mnt", "--hugepages", "yes"][..],
            "not one of auto, require, off",
        ),
        (&["/mnt", "--size", "12Q"][..], "unknown size suffix"),
        (&["a", "b", "c"][..], "unexpected argument"),
    ] {
        let log = dir.path().join("usage.defmt");
        let status = Command::new(&image)
            .args(args)
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(2), "{args:?}");
        let text = decode(&elf, &log);
        assert!(
            text.contains("ERROR usage: ") && text.contains(reason),
            "{args:?}: {text:?} lacks {reason:?}"
        );
    }
}
