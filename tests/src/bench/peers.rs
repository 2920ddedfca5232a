//! The peers: copies `fuser-memfs` and `libfuse-memfs` from the peers kit
//! (read-only, outside this repository) to `target/bench/peers/`, builds
//! them there (`cargo build --release` with its own target directory,
//! `make`) and returns them as targets. The copy of fuser-memfs gets an
//! empty `[workspace]` table appended to its `Cargo.toml`, because
//! `target/bench/` is inside slabfuse's workspace; its code is untouched. Files already identical in the copy
//! are not rewritten, so a second run rebuilds nothing. Nothing of the
//! peers is ever written into the repository's tracked tree.
//!
//! A peer that is missing or does not build is skipped with the reason,
//! which the results record; the other targets still run.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::target::{Kind, Target};

/// Appended to the copied `Cargo.toml` of fuser-memfs.
const WORKSPACE_TABLE: &str = "\n# Added by slabfuse-bench: this copy builds on its own, outside slabfuse's workspace.\n[workspace]\n";

/// A peer that could not be prepared.
pub(crate) struct Skipped {
    /// Its label.
    pub(crate) label: String,
    /// Why.
    pub(crate) reason: String,
}

/// Builds the peers found in `kit` under `dest`; returns the ready ones and
/// the skipped ones.
pub(crate) fn prepare(
    kit: &Path,
    dest: &Path,
    wanted: &dyn Fn(&str) -> bool,
) -> (Vec<Target>, Vec<Skipped>) {
    let mut ready = Vec::new();
    let mut skipped = Vec::new();
    if !kit.is_dir() {
        for label in ["fuser-memfs", "libfuse-memfs"] {
            if wanted(label) {
                skipped.push(Skipped {
                    label: label.into(),
                    reason: format!("{} not found", kit.display()),
                });
            }
        }
        return (ready, skipped);
    }
    if wanted("fuser-memfs") {
        match build_fuser(kit, dest) {
            Ok(t) => ready.push(t),
            Err(reason) => skipped.push(Skipped {
                label: "fuser-memfs".into(),
                reason,
            }),
        }
    }
    if wanted("libfuse-memfs") {
        match build_libfuse(kit, dest) {
            Ok(t) => ready.push(t),
            Err(reason) => skipped.push(Skipped {
                label: "libfuse-memfs".into(),
                reason,
            }),
        }
    }
    (ready, skipped)
}

fn build_fuser(kit: &Path, dest: &Path) -> Result<Target, String> {
    let src = kit.join("fuser-memfs");
    let dir = dest.join("fuser-memfs");
    copy_tree(&src, &dir)?;
    crate::log(format_args!("building fuser-memfs in {}", dir.display()));
    let target_dir = dir.join("target");
    let status = Command::new("cargo")
        .args(["build", "--release", "--quiet"])
        .current_dir(&dir)
        // Its own target directory, whatever the caller's environment says.
        .env("CARGO_TARGET_DIR", &target_dir)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!("cargo build failed ({status})"));
    }
    let bin = target_dir.join("release/fuser-memfs");
    Ok(peer("fuser-memfs", bin))
}

fn build_libfuse(kit: &Path, dest: &Path) -> Result<Target, String> {
    let src = kit.join("libfuse-memfs");
    let dir = dest.join("libfuse-memfs");
    copy_tree(&src, &dir)?;
    crate::log(format_args!("building libfuse-memfs in {}", dir.display()));
    let status = Command::new("make")
        .arg("-s")
        .arg("-C")
        .arg(&dir)
        .status()
        .map_err(|e| format!("cannot run make: {e}"))?;
    if !status.success() {
        return Err(format!(
            "make failed ({status}); needs: apt-get install -y libfuse3-dev pkg-config"
        ));
    }
    Ok(peer("libfuse-memfs", dir.join("libfuse-memfs")))
}

fn peer(label: &str, bin: PathBuf) -> Target {
    Target {
        label: label.into(),
        kind: Kind::Peer,
        command: vec![bin.display().to_string(), "{mnt}".into()],
    }
}

/// Copies the regular files of `src` into `dst` recursively, leaving out
/// build outputs (`target/`, `.build/`, objects and the built binary);
/// files whose content is already there are left untouched.
fn copy_tree(src: &Path, dst: &Path) -> Result<(), String> {
    if !src.is_dir() {
        return Err(format!("{} not found", src.display()));
    }
    std::fs::create_dir_all(dst).map_err(|e| format!("mkdir {}: {e}", dst.display()))?;
    let entries = std::fs::read_dir(src).map_err(|e| format!("{}: {e}", src.display()))?;
    for e in entries.flatten() {
        let name = e.file_name();
        let name_str = name.to_string_lossy();
        let from = e.path();
        let to = dst.join(&name);
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            if name_str == "target" || name_str == ".build" {
                continue;
            }
            copy_tree(&from, &to)?;
        } else if ft.is_file() {
            let is_output = name_str.ends_with(".o")
                || (name_str == "libfuse-memfs" && !name_str.contains('.'));
            if is_output {
                continue;
            }
            let mut data = std::fs::read(&from).map_err(|e| format!("{}: {e}", from.display()))?;
            if name_str == "Cargo.toml" && !String::from_utf8_lossy(&data).contains("[workspace]") {
                // The copy lives under slabfuse's workspace (target/bench/):
                // an empty workspace table makes it a project of its own.
                data.extend_from_slice(WORKSPACE_TABLE.as_bytes());
            }
            if std::fs::read(&to).ok().as_deref() == Some(&data[..]) {
                continue;
            }
            std::fs::write(&to, &data).map_err(|e| format!("{}: {e}", to.display()))?;
        }
    }
    Ok(())
}
