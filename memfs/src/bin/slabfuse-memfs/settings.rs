//! From [`Options`] to what the runtime, memfs and the mount take, with the
//! machine's defaults filled in, and checked before anything is mapped.
//!
//! The memory plan ([`Plan::compute`]) is pure, so it is computed here, in
//! the process that was started, before going to the background: a plan
//! that cannot work (a block size that is not a power of two, a message
//! size out of range) is a bad command line, exit code 2.

use std::path::PathBuf;

use slabfuse::mount::MountOptions;
use slabfuse::plan::{Plan, read_max_pages_limit};
use slabfuse_memfs::MemFsConfig;

use crate::Failure;
use crate::args::Options;
use crate::report::PROGRAM;

/// Everything the serving process needs.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// The mount point as an absolute path (not yet resolved or checked).
    pub(crate) mountpoint: PathBuf,
    /// Stay in the foreground.
    pub(crate) foreground: bool,
    /// The runtime's configuration.
    pub(crate) runtime: slabfuse::Config,
    /// memfs's budget.
    pub(crate) memfs: MemFsConfig,
    /// The mount's options.
    pub(crate) mount: MountOptions,
}

/// Builds and checks the settings.
pub(crate) fn build(options: &Options) -> Result<Settings, Failure> {
    let usage = |what: &str, e: &dyn std::fmt::Display| Failure::Usage(format!("{what}: {e}"));
    // Absolute (the background daemon runs in /) and without `.` parts or
    // a trailing slash, so that it compares equal to /proc/self/mountinfo's
    // entries; symlinks are resolved later, by `mountpoint::claim`.
    let mountpoint: PathBuf = std::path::absolute(&options.mountpoint)
        .map_err(|e| Failure::Runtime(format!("{:?}: {e}", options.mountpoint)))?
        .components()
        .collect();
    let serve = &options.serve;
    let backing = serve.hugepages.backing();

    let workers = serve.workers.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let max_message = usize::try_from(serve.max_message_bytes)
        .map_err(|_| usage("--max-message", &"too large for this machine"))?;
    let block_size = serve
        .block_size_bytes
        .map(usize::try_from)
        .transpose()
        .map_err(|_| usage("--block-size", &"too large for this machine"))?;
    let runtime = slabfuse::Config {
        workers,
        max_message,
        block_size,
        backing,
        lock_memory: true,
        max_pages_limit: read_max_pages_limit(),
        poll_ns: serve.poll_us.saturating_mul(1000),
        ..slabfuse::Config::default()
    };
    Plan::compute(&runtime).map_err(|e| usage("memory plan", &e))?;

    let mount_defaults = MountOptions::default();
    let fsname = match (&serve.mount.fsname, &options.source) {
        (Some(name), _) => name.clone(),
        (None, Some(source)) => source.to_string_lossy().into_owned(),
        (None, None) => PROGRAM.to_string(),
    };
    let mount = MountOptions {
        fsname,
        subtype: Some(
            serve
                .mount
                .subtype
                .clone()
                .unwrap_or_else(|| PROGRAM.to_string()),
        ),
        allow_other: serve.mount.allow_other,
        default_permissions: serve.mount.default_permissions,
        read_only: serve.mount.read_only,
        max_read: serve.mount.max_read,
        suid: serve.mount.suid,
        dev: serve.mount.dev,
        noexec: serve.mount.noexec,
        ..mount_defaults.clone()
    };

    let memfs_defaults = MemFsConfig::default();
    let cache = &options.cache;
    #[allow(
        clippy::needless_update,
        reason = "fields memfs adds later keep their defaults"
    )]
    let memfs = MemFsConfig {
        size_bytes: serve.size_bytes,
        inodes: serve.inodes.unwrap_or(memfs_defaults.inodes),
        backing,
        lock: true,
        root_mode: serve.root_mode.unwrap_or(memfs_defaults.root_mode),
        // As tmpfs: the root belongs to whoever mounts it.
        root_uid: serve.root_uid.unwrap_or(mount_defaults.user_id),
        root_gid: serve.root_gid.unwrap_or(mount_defaults.group_id),
        entry_ttl_ms: cache.entry_ttl_ms.unwrap_or(memfs_defaults.entry_ttl_ms),
        attr_ttl_ms: cache.attr_ttl_ms.unwrap_or(memfs_defaults.attr_ttl_ms),
        direct_io: cache.direct_io.unwrap_or(memfs_defaults.direct_io),
        keep_cache: cache.keep_cache.unwrap_or(memfs_defaults.keep_cache),
        // ACLs make the kernel check permissions: only where it is asked to.
        posix_acl: serve.mount.default_permissions,
        ..memfs_defaults
    };

    Ok(Settings {
        mountpoint,
        foreground: options.foreground,
        runtime,
        memfs,
        mount,
    })
}

/// Whether this process may open `/dev/fuse` for reading and writing.
pub(crate) fn can_open_dev_fuse() -> bool {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
    {
        Ok(_) => true,
        // Missing altogether: the mount fails later with its own message.
        Err(e) => e.kind() != std::io::ErrorKind::PermissionDenied,
    }
}
