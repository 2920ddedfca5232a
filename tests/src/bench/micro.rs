//! The divan microbenchmarks of the pool and the runtime's hot path, run
//! as they are (`cargo bench -p slabfuse-pool --bench pool`, `cargo bench
//! -p slabfuse --bench hot_path`; together under 5 s on 2 cores once
//! compiled). Their output is kept in `raw/micro-*.txt` and appended to
//! `results.md`; `just microbench` runs them alone.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use serde_json::{Value, json};

use crate::Stop;

/// The benchmarks: (name, cargo arguments).
const BENCHES: [(&str, &[&str]); 2] = [
    ("pool", &["bench", "-p", "slabfuse-pool", "--bench", "pool"]),
    (
        "hot_path",
        &["bench", "-p", "slabfuse", "--bench", "hot_path"],
    ),
];

/// One benchmark's outcome.
pub(crate) struct Micro {
    /// Its name.
    pub(crate) name: String,
    /// The command.
    pub(crate) command: String,
    /// Whether it succeeded.
    pub(crate) ok: bool,
    /// Seconds it took.
    pub(crate) seconds: f64,
    /// Its output (divan's table).
    pub(crate) output: String,
}

impl Micro {
    /// As JSON (the output itself is in the raw file).
    pub(crate) fn to_json(&self, raw: &Path) -> Value {
        json!({
            "name": self.name,
            "command": self.command,
            "ok": self.ok,
            "seconds": self.seconds,
            "raw": raw.join(format!("micro-{}.txt", self.name)).display().to_string(),
        })
    }
}

/// Runs the microbenchmarks in the workspace `root`; output to `raw`.
pub(crate) fn run(root: &Path, raw: &Path, stop: &Stop) -> Vec<Micro> {
    let mut out = Vec::new();
    for (name, args) in BENCHES {
        if stop.is_set() {
            break;
        }
        let command = format!("cargo {}", args.join(" "));
        crate::log(format_args!("microbenchmark: {command}"));
        let t = Instant::now();
        let result = Command::new("cargo").args(args).current_dir(root).output();
        let seconds = t.elapsed().as_secs_f64();
        let (ok, output) = match result {
            Ok(o) => (
                o.status.success(),
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&o.stdout),
                    // cargo's own lines ("Finished", "Running") go to stderr.
                    if o.status.success() {
                        String::new()
                    } else {
                        String::from_utf8_lossy(&o.stderr).into_owned()
                    }
                ),
            ),
            Err(e) => (false, format!("cannot run cargo: {e}")),
        };
        let _ = std::fs::write(raw.join(format!("micro-{name}.txt")), &output);
        eprint!("{output}");
        out.push(Micro {
            name: name.into(),
            command,
            ok,
            seconds,
            output,
        });
    }
    out
}
