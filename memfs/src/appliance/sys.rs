//! The system calls rustix does not offer publicly, and threads.
//!
//! rustix covers files, memory, mounts, futexes and process ids; what an
//! image without libc needs beyond that is small: `exit_group` and `exit`
//! (ending the process or one thread), `rt_sigprocmask` and
//! `rt_sigtimedwait` (signals are blocked everywhere and taken by the main
//! thread synchronously: no handler, nothing async-signal-unsafe), and
//! `clone` for threads.
//!
//! A thread ([`spawn`]) is a `clone` sharing everything a POSIX thread
//! shares, on a stack mapped here (guard page below, locked and pre-faulted
//! so that serving takes no page fault on it). It has no TLS block: nothing
//! in the image uses thread-locals (the linker script refuses `.tdata`).
//! [`Thread::join`] waits on the thread-id word the kernel clears, and
//! futex-wakes, when the thread exits (`CLONE_CHILD_CLEARTID`), as
//! `pthread_join` does.
//!
//! # Safety
//!
//! One of the image's few files with `unsafe`. Every raw system call here
//! passes either plain integers or pointers to live, properly typed memory
//! owned by the caller for the length of the call; the one call with a
//! wider contract is `clone`, whose child runs on the stack mapping made in
//! [`spawn`] (kept mapped for the life of the process, never reused) and
//! starts in [`trampoline`] with the job pointer `spawn` handed over.

use core::ffi::c_void;
use core::sync::atomic::AtomicU32;
use core::sync::atomic::Ordering::Acquire;

use rustix::io::Errno;
use rustix::mm::{MapFlags, MprotectFlags, ProtFlags};

const SYS_RT_SIGPROCMASK: usize = 14;
const SYS_CLONE: usize = 56;
const SYS_EXIT: usize = 60;
const SYS_RT_SIGTIMEDWAIT: usize = 128;
const SYS_EXIT_GROUP: usize = 231;

/// `sizeof(sigset_t)` as the kernel counts it (64 signals on x86_64).
const KERNEL_SIGSET_BYTES: usize = 8;
/// `SIG_BLOCK`.
const SIG_BLOCK: usize = 0;

/// A raw system call with up to four arguments; the kernel's `-errno` or
/// result.
///
/// # Safety
///
/// The arguments must be what system call `nr` expects: any pointer among
/// them must be valid for what the kernel does with it.
unsafe fn syscall4(nr: usize, a0: usize, a1: usize, a2: usize, a3: usize) -> isize {
    let ret: isize;
    // SAFETY: the x86_64 system call convention (number in rax, arguments
    // in rdi, rsi, rdx, r10, result in rax, rcx and r11 clobbered); the
    // caller vouches for the arguments.
    unsafe {
        core::arch::asm!(
            "syscall",
            inlateout("rax") nr as isize => ret,
            in("rdi") a0,
            in("rsi") a1,
            in("rdx") a2,
            in("r10") a3,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// Turns a raw `-errno`-or-value return into a `Result`.
fn check(ret: isize) -> Result<usize, Errno> {
    if (-4095..0).contains(&ret) {
        #[allow(clippy::cast_possible_truncation, reason = "-4095..0 fits an i32")]
        Err(Errno::from_raw_os_error(-ret as i32))
    } else {
        Ok(ret.cast_unsigned())
    }
}

/// Ends the process, all threads, with `code`.
pub(crate) fn exit_group(code: i32) -> ! {
    loop {
        // SAFETY: exit_group takes an integer and does not return; the loop
        // only satisfies the type checker.
        unsafe { syscall4(SYS_EXIT_GROUP, code.cast_unsigned() as usize, 0, 0, 0) };
    }
}

/// Ends the calling thread (only). Its stack stays mapped.
fn exit_thread() -> ! {
    loop {
        // SAFETY: exit takes an integer and does not return. Nothing on
        // this thread's stack is borrowed by another thread (the job it ran
        // lives elsewhere), so ending it here leaves no dangling reference.
        unsafe { syscall4(SYS_EXIT, 0, 0, 0, 0) };
    }
}

/// A set of signals, as the kernel's 64-bit `sigset_t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SignalSet(u64);

impl SignalSet {
    /// The set of `signals` (numbers 1..=64).
    pub(crate) fn of(signals: &[rustix::process::Signal]) -> SignalSet {
        let mut bits = 0u64;
        for s in signals {
            let n = s.as_raw();
            debug_assert!((1..=64).contains(&n));
            bits |= 1u64 << ((n - 1) & 63);
        }
        SignalSet(bits)
    }

    /// Blocks these signals in the calling thread. Threads it creates later
    /// inherit its mask, so blocking them first thing in the main thread
    /// blocks them everywhere: then only [`SignalSet::wait`] takes them.
    pub(crate) fn block(&self) -> Result<(), Errno> {
        let set = self.0;
        // SAFETY: rt_sigprocmask reads `KERNEL_SIGSET_BYTES` bytes at `&set`
        // (a live u64 local) and writes nothing (null old set).
        let ret = unsafe {
            syscall4(
                SYS_RT_SIGPROCMASK,
                SIG_BLOCK,
                (&raw const set) as usize,
                0,
                KERNEL_SIGSET_BYTES,
            )
        };
        check(ret).map(|_| ())
    }

    /// Waits (at most `timeout_ms`, or forever) for one of these blocked
    /// signals and takes it off the pending set; `None` on timeout or when
    /// interrupted. Allocates nothing.
    pub(crate) fn wait(&self, timeout_ms: Option<u64>) -> Option<i32> {
        let set = self.0;
        let ts = timeout_ms.map(|ms| rustix::time::Timespec {
            tv_sec: i64::try_from(ms / 1000).unwrap_or(i64::MAX),
            tv_nsec: i64::try_from((ms % 1000) * 1_000_000).unwrap_or(0),
        });
        let ts_ptr = match &ts {
            Some(t) => core::ptr::from_ref(t) as usize,
            None => 0,
        };
        // SAFETY: rt_sigtimedwait reads the set at `&set` (a live u64) and,
        // when not null, a `struct timespec` at `ts_ptr` (rustix's Timespec
        // is that struct, alive in `ts`); the siginfo pointer is null.
        let ret = unsafe {
            syscall4(
                SYS_RT_SIGTIMEDWAIT,
                (&raw const set) as usize,
                0,
                ts_ptr,
                KERNEL_SIGSET_BYTES,
            )
        };
        check(ret).ok().and_then(|n| i32::try_from(n).ok())
    }
}

// `clone` for a thread: the child starts on `stack` with four words there:
// the function to call, its argument and two words of padding (see `spawn`).
//
// Arguments (System V): rdi = flags, rsi = child stack pointer, rdx =
// parent tid pointer, rcx = child tid pointer. The system call wants the
// fourth argument in r10 and the TLS pointer in r8 (unused: no CLONE_SETTLS).
core::arch::global_asm!(
    ".pushsection .text.slabfuse_clone_thread,\"ax\",@progbits",
    ".globl slabfuse_clone_thread",
    ".hidden slabfuse_clone_thread",
    ".type slabfuse_clone_thread,@function",
    "slabfuse_clone_thread:",
    "mov r10, rcx",
    "xor r8d, r8d",
    "mov eax, {nr}",
    "syscall",
    "test rax, rax",
    "jnz 2f",
    // The child: a fresh stack holding [function, argument, 0, 0].
    "xor ebp, ebp",
    "pop rax",
    "pop rdi",
    "pop rsi",
    "pop rsi",
    // rsp is 16-byte aligned again here: the call pushes the (null) return.
    "call rax",
    "ud2",
    "2:",
    "ret",
    ".size slabfuse_clone_thread, . - slabfuse_clone_thread",
    ".popsection",
    nr = const SYS_CLONE,
);

unsafe extern "C" {
    /// See the `global_asm!` above: the parent gets the child's tid or
    /// `-errno`; the child never returns from it.
    fn slabfuse_clone_thread(
        flags: usize,
        child_stack: *mut usize,
        parent_tid: *mut u32,
        child_tid: *mut u32,
    ) -> isize;
}

/// What a POSIX thread shares with its creator, plus: the kernel writes the
/// child's tid to the tid word before either side runs on
/// (`CLONE_PARENT_SETTID`), and clears it and futex-wakes it when the child
/// exits (`CLONE_CHILD_CLEARTID`).
const THREAD_CLONE_FLAGS: usize = 0x100 // CLONE_VM
    | 0x200 // CLONE_FS
    | 0x400 // CLONE_FILES
    | 0x800 // CLONE_SIGHAND
    | 0x10000 // CLONE_THREAD
    | 0x40000 // CLONE_SYSVSEM
    | 0x100000 // CLONE_PARENT_SETTID
    | 0x200000; // CLONE_CHILD_CLEARTID

/// The byte an unused stack holds, so that its high-water mark can be read
/// after the thread ends.
const STACK_FILL: u8 = 0xa5;
/// Bytes at the top of a thread's mapping for its tid word (a cache line of
/// its own).
const CONTROL_BYTES: usize = 64;

/// A thread made by [`spawn`].
pub(crate) struct Thread {
    /// The whole mapping: guard page, stack, control words.
    map: *mut u8,
    map_bytes: usize,
    guard_bytes: usize,
    /// The tid word (inside the mapping, at its top).
    tid: *const AtomicU32,
}

/// What a thread made by [`spawn`] runs.
pub(crate) trait ThreadMain: Send + 'static {
    /// The thread's body; the thread ends when it returns.
    fn run(&mut self);
}

/// Starts `job.run()` on a new thread with `stack_bytes` of stack (rounded
/// up to pages), locked in memory or at least pre-faulted.
///
/// `job` is handed over for good: the caller leaks it (it lives in the
/// start-up arena) and never touches it again until [`Thread::join`]
/// returned, which is what the `&'static mut` says.
pub(crate) fn spawn<T: ThreadMain>(
    job: &'static mut T,
    stack_bytes: usize,
) -> Result<Thread, Errno> {
    let page = rustix::param::page_size();
    let guard_bytes = page;
    let stack_bytes = stack_bytes.next_multiple_of(page);
    let map_bytes = guard_bytes + stack_bytes;
    // SAFETY: a fresh anonymous mapping at an address the kernel picks: it
    // cannot alias any Rust object.
    let map = unsafe {
        rustix::mm::mmap_anonymous(
            core::ptr::null_mut(),
            map_bytes,
            ProtFlags::READ | ProtFlags::WRITE,
            MapFlags::PRIVATE | MapFlags::STACK,
        )
    }?
    .cast::<u8>();
    // SAFETY: the first page of the mapping just made, which nothing uses:
    // making it inaccessible turns a stack overflow into a fault.
    unsafe { rustix::mm::mprotect(map.cast(), guard_bytes, MprotectFlags::empty()) }?;
    // SAFETY: `guard_bytes..map_bytes` lies inside the mapping.
    let stack = unsafe { map.add(guard_bytes) };
    lock_or_populate(stack, stack_bytes);
    // SAFETY: `stack..stack + stack_bytes` is inside the fresh, writable
    // mapping that no one else knows of yet.
    unsafe { core::ptr::write_bytes(stack, STACK_FILL, stack_bytes) };

    // SAFETY: the control words are the mapping's last CONTROL_BYTES.
    let top = unsafe { map.add(map_bytes - CONTROL_BYTES) };
    let tid = top.cast::<AtomicU32>();
    // SAFETY: `tid` is in bounds, 64-byte aligned (the mapping is
    // page-aligned and CONTROL_BYTES divides a page) and not yet shared.
    unsafe { tid.write(AtomicU32::new(0)) };
    // The child's initial stack: [trampoline, job, padding, padding],
    // 16-byte aligned, right below the control words.
    let sp = top.cast::<usize>().wrapping_sub(4);
    let words = [
        trampoline::<T> as *const () as usize,
        core::ptr::from_mut(job).cast::<c_void>() as usize,
        0,
        0,
    ];
    for (i, w) in words.into_iter().enumerate() {
        // SAFETY: `sp..top` is inside the stack area, aligned for usize, and
        // not yet in use by any thread.
        unsafe { sp.wrapping_add(i).write(w) };
    }
    // SAFETY: the flags make a thread of this process; its stack is `sp`
    // in the mapping above, which stays mapped for the life of the process;
    // both tid pointers point to the live AtomicU32 in that mapping; the
    // child starts in `trampoline::<T>` with the exclusive `job` pointer.
    let ret = unsafe {
        slabfuse_clone_thread(THREAD_CLONE_FLAGS, sp, tid.cast::<u32>(), tid.cast::<u32>())
    };
    if let Err(e) = check(ret) {
        // SAFETY: the mapping made above; no thread was created on it.
        let _ = unsafe { rustix::mm::munmap(map.cast(), map_bytes) };
        return Err(e);
    }
    Ok(Thread {
        map,
        map_bytes,
        guard_bytes,
        tid,
    })
}

/// Where a thread from [`spawn`] starts: runs the job, ends the thread.
///
/// # Safety
///
/// Only `slabfuse_clone_thread`'s child calls it, with the words [`spawn`]
/// put on its stack: `job` is the `&'static mut T` spawn was given.
unsafe extern "C" fn trampoline<T: ThreadMain>(job: *mut T) -> ! {
    // SAFETY: `spawn` took `job` as an exclusive `&'static mut T` and
    // handed it to this thread only.
    let job = unsafe { &mut *job };
    job.run();
    exit_thread()
}

impl Thread {
    /// Waits until the thread has exited.
    pub(crate) fn join(&self) {
        // SAFETY: the tid word lives in the thread's mapping, which is never
        // unmapped while `self` exists.
        let tid = unsafe { &*self.tid };
        loop {
            let t = tid.load(Acquire);
            if t == 0 {
                return;
            }
            // Not FUTEX_PRIVATE: the kernel's wake on thread exit is a
            // shared one (`mm_release`). EAGAIN (the word changed) and EINTR
            // just mean: look again.
            let _ =
                rustix::thread::futex::wait(tid, rustix::thread::futex::Flags::empty(), t, None);
        }
    }

    /// Stack bytes the thread ever used (the deepest byte that lost its
    /// fill). Meaningful after [`join`](Self::join).
    pub(crate) fn stack_high_water(&self) -> usize {
        let stack_bytes = self.map_bytes - self.guard_bytes - CONTROL_BYTES;
        // SAFETY: the stack area of the mapping: in bounds, initialized (the
        // fill) and, after join, written by no one.
        let stack = unsafe {
            core::slice::from_raw_parts(self.map.wrapping_add(self.guard_bytes), stack_bytes)
        };
        let untouched = stack.iter().take_while(|b| **b == STACK_FILL).count();
        stack_bytes - untouched
    }

    /// Resident bytes of the thread's mapping (all but the guard page).
    pub(crate) fn resident_bytes(&self) -> usize {
        self.map_bytes - self.guard_bytes
    }
}

/// Locks `len` bytes at `addr` in memory (which also faults them in); when
/// locking is refused (`RLIMIT_MEMLOCK`), pre-faults them for writing
/// instead. Either way they are resident before anyone serves.
pub(crate) fn lock_or_populate(addr: *mut u8, len: usize) {
    // SAFETY: mlock changes residency only, never contents.
    if unsafe { rustix::mm::mlock(addr.cast(), len) }.is_ok() {
        return;
    }
    // SAFETY: MADV_POPULATE_WRITE faults the pages in as if written, without
    // changing their contents (Linux 5.14+; refused earlier, then the pages
    // fault in on first use).
    let _ =
        unsafe { rustix::mm::madvise(addr.cast(), len, rustix::mm::Advice::LinuxPopulateWrite) };
}

/// Writes all of `bytes` to stdout; false when that fails.
pub(crate) fn write_stdout(mut bytes: &[u8]) -> bool {
    // SAFETY: fd 1 is only borrowed for the writes below; if it is not
    // open, `write` fails with EBADF.
    let fd = unsafe { rustix::fd::BorrowedFd::borrow_raw(1) };
    while !bytes.is_empty() {
        match rustix::io::write(fd, bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::INTR) => {}
            Err(_) => return false,
        }
    }
    true
}

unsafe extern "C" {
    /// First byte of the image (linker/appliance.ld).
    static __slabfuse_image_start: u8;
    /// First byte of the writable part, page-aligned.
    static __slabfuse_rw_start: u8;
    /// End of the image in memory (after `.bss`), page-aligned.
    static __slabfuse_image_end: u8;
}

/// Bytes the image occupies in memory: its segments, page-rounded.
pub(crate) fn image_bytes() -> usize {
    let start = (&raw const __slabfuse_image_start) as usize;
    let end = (&raw const __slabfuse_image_end) as usize;
    end - start
}

/// Locks the whole image in memory (or pre-faults it): code, read-only
/// data, data and `.bss`, so that its pages count in the plan from the start
/// and serving never faults on them.
pub(crate) fn lock_image() {
    let start = (&raw const __slabfuse_image_start) as usize;
    let rw = (&raw const __slabfuse_rw_start) as usize;
    let end = (&raw const __slabfuse_image_end) as usize;
    // SAFETY: mlock changes residency only.
    if unsafe { rustix::mm::mlock(start as *mut c_void, end - start) }.is_ok() {
        return;
    }
    // SAFETY: populating changes residency only; the ranges are the image's
    // own mapped segments (read-only, then writable).
    let _ = unsafe {
        rustix::mm::madvise(
            start as *mut c_void,
            rw - start,
            rustix::mm::Advice::LinuxPopulateRead,
        )
    };
    // SAFETY: as above, for the writable segment (private, so populating
    // for write gives it its own pages without changing their contents).
    let _ = unsafe {
        rustix::mm::madvise(
            rw as *mut c_void,
            end - rw,
            rustix::mm::Advice::LinuxPopulateWrite,
        )
    };
}
