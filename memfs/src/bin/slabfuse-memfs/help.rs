//! `--help` and `--version`.

/// The `--help` text: the command's README.
pub(crate) const HELP: &str = "\
slabfuse-memfs: a fixed-budget in-memory filesystem over FUSE

USAGE
    slabfuse-memfs [OPTIONS] [SOURCE] MOUNTPOINT

    Mounts memfs at MOUNTPOINT. All memory is laid out, pre-faulted and
    locked at start-up; serving is meant to allocate nothing and take no
    page faults, and the daemon counts both and reports them at exit. A
    full filesystem answers ENOSPC (data) or ENFILE (inodes).
    SOURCE is only a name: it is shown as the mount's device in /proc/mounts
    and df unless -o fsname= says otherwise. Options may come before or after
    SOURCE and MOUNTPOINT.

OPTIONS
    --size SIZE          data budget (file data, xattrs, long symlinks)  [64M]
    --inodes N           files, directories, symlinks, ... root included [65536]
    --max-message SIZE   largest READ/WRITE request to ask the kernel for [16M]
                         The kernel caps it at fs.fuse.max_pages_limit pages
                         (256 = 1M with 4K pages unless raised); the daemon
                         then says so and what to raise it to.
    --workers N          worker threads, each with its own /dev/fuse fd
                         [number of CPUs]
    --block-size SIZE    pool block size, a power of two  [chosen from the
                         message size, at most 2M]
    --hugepages MODE     auto: hugetlb pages, else transparent huge pages,
                         else normal pages; require: hugetlb pages or fail
                         (reserve them in vm.nr_hugepages); off: normal pages
                         [auto]. Applies to the request pool and to memfs's
                         data.
    --poll-us N          after each request the first worker keeps reading
                         without sleeping for N microseconds, so back-to-back
                         requests find it awake: lower latency for one busy
                         core while traffic lasts, none while idle; 0 turns
                         it off  [50]
    -o OPTS              comma-separated mount options, below
    -f, --foreground     stay in the foreground
    -h, --help           this text
    -V, --version        version

    SIZE is a number of bytes with an optional K, M, G or T suffix (powers
    of 1024): 65536, 64K, 16M, 1G.

MOUNT OPTIONS (-o)
    size=SIZE, inodes=N, max_message=SIZE, workers=N, block_size=SIZE,
    hugepages=MODE, poll_us=N
                         the options above, for fstab and mount(8)
    allow_other          let users other than the mounter in
    default_permissions  the kernel checks permissions from the mode bits:
                         on by default; turn it off with
                         no_default_permissions
    ro, rw               read-only / read-write (rw is the default)
    nosuid, suid         ignore / honour set-user-id bits (nosuid unless
                         mount.fuse3 runs us: it asks for suid)
    nodev, dev           forbid / allow device nodes (nodev unless
                         mount.fuse3 runs us: it asks for dev)
    noexec, exec         forbid / allow executing files (exec)
    uid=N, gid=N         owner and group of the root directory [ours]
    mode=OCTAL           permission bits of the root directory [1777]
    fsname=NAME          the device name in /proc/mounts [SOURCE, else
                         slabfuse-memfs]
    subtype=NAME         the type shows as fuse.NAME [slabfuse-memfs]
    max_read=SIZE        cap READ requests
    entry_timeout=SECS, attr_timeout=SECS
                         how long the kernel may cache names and attributes
                         (seconds, to the millisecond) [86400: every change
                         goes through this kernel, which drops what a
                         change makes stale]
    direct_io            bypass the page cache for regular files
    kernel_cache         keep cached file pages across opens (keep_cache)
    Accepted and ignored, for fstab and mount.fuse3: defaults, auto, noauto,
    user, nouser, users, owner, group, _netdev, nofail, sync, async, dirsync,
    the atime family (atime, noatime, relatime, strictatime, lazytime,
    diratime, and their no- forms), x-*, comment=*.

FSTAB AND MOUNT(8)
    mount.fuse3 (the fuse3 package) runs the daemon for mount(8):
        mount -t fuse.slabfuse-memfs memfs /mnt -o size=64M
    or, in /etc/fstab:
        memfs  /mnt  fuse.slabfuse-memfs  size=64M,inodes=100000,nofail  0 0
    It runs `slabfuse-memfs memfs /mnt -o rw,size=64M,...` through /bin/sh.
    mount(8) clears PATH before it runs mount.fuse3, so the shell searches
    only its default path: install slabfuse-memfs in /usr/local/bin,
    /usr/bin or /sbin (with PATH set, mount.fuse3 run by hand finds it
    anywhere in PATH). umount /mnt ends the daemon.

BACKGROUND AND EXIT
    Without -f the daemon forks; the command returns once the filesystem is
    mounted and answering (exit 0), or with the child's exit code once it
    has printed why it failed. The background daemon has no controlling
    terminal, runs in /, and has stdin and stdout on /dev/null; it keeps
    stderr, so its errors and its summary line still reach the journal or
    terminal that started it.

    At start it prints one line on stderr:
        slabfuse-memfs: plan workers=2 max_message=1M block_size=1M
          pool_blocks=3 backing=thp locked=all storage=64M inodes=65536
          mapped_total=...
    (backing: hugetlb-2M, hugetlb-1G, thp or normal, as verified; locked:
    all when mlockall(MCL_CURRENT|MCL_FUTURE) succeeded, else which slabs
    locked themselves, or no), and a sentence on the message size when the
    kernel capped it.

    SIGINT, SIGTERM or SIGHUP unmount it lazily (umount2 MNT_DETACH, or
    fusermount3 -u -z when it was mounted through fusermount3); umount or
    fusermount3 -u from outside ends it too. A second signal while open
    files keep a lazily unmounted filesystem alive gives up: the daemon
    exits and the kernel aborts the connection. At exit it prints one line:
        slabfuse-memfs: summary requests=... largest_write=...
          largest_read=... eagain=... malformed=...
          heap_allocs_after_start=... page_faults_after_start=...
          pool_high_water=USED/TOTAL
    The two *_after_start counts cover the time from serving (INIT
    answered, every worker running) until the last worker stopped, the
    daemon's own unmount call excepted.

    Privileges: as root the daemon mounts with mount(2); otherwise it falls
    back to fusermount3. Locking all memory needs CAP_IPC_LOCK or an
    unlimited `ulimit -l`; without it the daemon says so and runs unlocked.

EXIT STATUS
    0  the filesystem was unmounted cleanly (or --help, --version)
    1  it could not be mounted or served: the mount point does not exist,
       is not a directory, is already mounted, or another daemon holds it;
       memory could not be mapped; mounting failed; the connection was
       aborted; a worker failed
    2  bad command line: unknown option, bad value, a memory plan that
       cannot work (e.g. --block-size not a power of two)
";

/// The `--version` text.
pub(crate) fn version() -> String {
    format!(
        "slabfuse-memfs {} (slabfuse runtime, FUSE kernel ABI {}.{})\n",
        env!("CARGO_PKG_VERSION"),
        slabfuse::abi::FUSE_KERNEL_VERSION,
        slabfuse::abi::FUSE_KERNEL_MINOR_VERSION
    )
}
