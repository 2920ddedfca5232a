//! The request-size probe: the largest WRITE request and READ reply the
//! kernel really exchanged with a daemon, from the `fuse:fuse_request_send`
//! and `fuse:fuse_request_end` tracepoints (kernel 6.15+), independent of
//! what the daemon says about itself.
//!
//! A 64 MiB write and read at 16 MiB blocks run while a private trace
//! instance (`instances/slabfuse-bench-PID`, so other tracing users are not
//! disturbed) records WRITE requests (opcode 16) and large replies of this
//! connection only. WRITE payload = len − 80 (`fuse_in_header` +
//! `fuse_write_in`); READ payload = reply len − 16 (`fuse_out_header`).
//! tracefs is mounted at `/sys/kernel/tracing` for the probe if it is not
//! there, and unmounted after; the instance is always removed.

use std::path::{Path, PathBuf};

use crate::fio::{self, Context, Job};
use crate::{Error, Res};

const TRACEFS: &str = "/sys/kernel/tracing";

/// What the probe saw, bytes.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Observed {
    /// Largest WRITE request payload.
    pub(crate) max_write: Option<u64>,
    /// Largest READ reply payload.
    pub(crate) max_read: Option<u64>,
}

/// Removes the trace instance (and tracefs, if we mounted it) on drop.
struct Instance {
    dir: PathBuf,
    mounted_tracefs: bool,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = std::fs::write(self.dir.join("events/fuse/enable"), "0");
        let _ = std::fs::remove_dir(&self.dir);
        if self.mounted_tracefs {
            let _ = rustix::mount::unmount(TRACEFS, rustix::mount::UnmountFlags::empty());
        }
    }
}

/// Runs the probe on the FUSE mount at `mnt` (connection `conn`). `Ok(None)`
/// when tracing is not available here (the reason is logged).
pub(crate) fn probe(mnt: &Path, conn: u32, cx: &Context<'_>) -> Res<Option<Observed>> {
    let events = Path::new(TRACEFS).join("events");
    let mut mounted_tracefs = false;
    if !events.is_dir() {
        if rustix::mount::mount(
            c"nodev",
            TRACEFS,
            c"tracefs",
            rustix::mount::MountFlags::empty(),
            None,
        )
        .is_err()
        {
            crate::log(format_args!(
                "tracefs unavailable: request sizes not probed"
            ));
            return Ok(None);
        }
        mounted_tracefs = true;
    }
    let dir = Path::new(TRACEFS)
        .join("instances")
        .join(format!("slabfuse-bench-{}", std::process::id()));
    if !events.join("fuse/fuse_request_send").is_dir() || std::fs::create_dir(&dir).is_err() {
        if mounted_tracefs {
            let _ = rustix::mount::unmount(TRACEFS, rustix::mount::UnmountFlags::empty());
        }
        crate::log(format_args!(
            "no fuse tracepoints (kernel 6.15+): request sizes not probed"
        ));
        return Ok(None);
    }
    let inst = Instance {
        dir,
        mounted_tracefs,
    };
    let set = |file: &str, value: String| -> Res<()> {
        std::fs::write(inst.dir.join(file), value)
            .map_err(|e| Error::Failed(format!("tracefs {file}: {e}")))
    };
    set("buffer_size_kb", "4096".into())?;
    set(
        "events/fuse/fuse_request_send/filter",
        format!("connection == {conn} && opcode == 16"),
    )?;
    set(
        "events/fuse/fuse_request_end/filter",
        format!("connection == {conn} && len > 4096"),
    )?;
    set("events/fuse/fuse_request_send/enable", "1".into())?;
    set("events/fuse/fuse_request_end/enable", "1".into())?;
    let file = mnt.join("probe").display().to_string();
    for (rw, direction) in [("write", "write"), ("read", "read")] {
        let job = Job {
            name: format!("probe-{rw}"),
            direction,
            args: vec![
                format!("--filename={file}"),
                format!("--rw={rw}"),
                "--bs=16m".into(),
                "--size=64m".into(),
            ],
            histogram: false,
        };
        fio::run(&job, cx)?;
    }
    set("events/fuse/enable", "0".into())?;
    let text = std::fs::read_to_string(inst.dir.join("trace"))
        .map_err(|e| Error::Failed(format!("tracefs trace: {e}")))?;
    let _ = std::fs::write(cx.raw.join("trace.txt"), &text);
    let _ = std::fs::remove_file(mnt.join("probe"));
    drop(inst);
    Ok(Some(parse(&text)))
}

/// Largest payloads in a trace.
fn parse(text: &str) -> Observed {
    let len_of = |line: &str| -> Option<u64> {
        let rest = &line[line.find(" len ")? + 5..];
        rest.split_whitespace().next()?.parse().ok()
    };
    let mut o = Observed::default();
    for line in text.lines() {
        if line.contains("fuse_request_send:") && line.contains("opcode 16 ") {
            if let Some(l) = len_of(line) {
                o.max_write = o.max_write.max(Some(l.saturating_sub(80)));
            }
        } else if line.contains("fuse_request_end:")
            && line.contains(" error 0")
            && let Some(l) = len_of(line)
        {
            o.max_read = o.max_read.max(Some(l.saturating_sub(16)));
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_trace_lines() {
        let t = "fio-1 [000] ..... 1.0: fuse_request_send: connection 57 req 8 opcode 16 (FUSE_WRITE) len 16777296\n\
                 fio-1 [000] ..... 1.1: fuse_request_end: connection 57 req 9 len 16777232 error 0\n";
        let o = parse(t);
        assert_eq!(o.max_write, Some(16 << 20));
        assert_eq!(o.max_read, Some(16 << 20));
    }
}
