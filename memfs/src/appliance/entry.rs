//! The entry point: `_start`, the command line the kernel left on the
//! stack, and the panic handler.
//!
//! There is no C runtime: the kernel maps the image (see
//! `linker/appliance.ld`) and jumps to `_start` with the stack pointer at
//! `argc`, followed by the `argv` pointers, a null, the environment and the
//! aux vector. `_start` clears the frame pointer (the end of every
//! backtrace), aligns the stack as the System V ABI requires at a call and
//! calls [`start`], which never returns: it ends the process with
//! `exit_group` (all threads at once).
//!
//! rustix reads the aux vector on its own when it first needs it (with
//! `PR_GET_AUXV`), so nothing here has to hand it over.
//!
//! # Safety
//!
//! This file is one of the image's few with `unsafe` (with `sys.rs`,
//! `mem.rs`, `arena.rs` and `logger.rs`). What it relies on is the kernel's
//! process start-up contract (`fs/binfmt_elf.c`, `create_elf_tables`): at
//! entry, `[rsp]` is `argc`, `[rsp + 8 * (1 + i)]` for `i < argc` are
//! pointers to NUL-terminated strings that live, unmoved, for the whole life
//! of the process, and `[rsp + 8 * (1 + argc)]` is null.

use core::ffi::{CStr, c_char};

core::arch::global_asm!(
    ".pushsection .text._start,\"ax\",@progbits",
    ".globl _start",
    ".type _start,@function",
    "_start:",
    // The outermost frame: no caller, no frame pointer.
    "xor ebp, ebp",
    // The first argument of `start`: the initial stack pointer (at argc).
    "mov rdi, rsp",
    // The kernel gives a 16-byte aligned stack; make sure, as a call needs.
    "and rsp, -16",
    "call {start}",
    "ud2",
    ".size _start, . - _start",
    ".popsection",
    start = sym start,
);

/// Where `_start` goes: reads the command line, runs the daemon, exits.
///
/// # Safety
///
/// Only `_start` calls it, with the initial stack pointer the kernel gave
/// (see the module's `# Safety`).
unsafe extern "C" fn start(initial_sp: *const usize) -> ! {
    // SAFETY: the kernel put `argc` at the initial stack pointer.
    let argc = unsafe { initial_sp.read() };
    // SAFETY: `argv` starts one word after `argc`, inside the same stack
    // area the kernel filled.
    let argv = unsafe { initial_sp.add(1) }.cast::<*const c_char>();
    let args = Args {
        argv,
        argc,
        index: 0,
    };
    let code = crate::main(args);
    crate::sys::exit_group(code)
}

/// The command line: `argv[0..argc]` as C strings that live for the whole
/// process (the kernel never moves or frees them).
pub(crate) struct Args {
    argv: *const *const c_char,
    argc: usize,
    index: usize,
}

impl Iterator for Args {
    type Item = &'static CStr;

    fn next(&mut self) -> Option<&'static CStr> {
        if self.index >= self.argc {
            return None;
        }
        // SAFETY: `index < argc`, so this is one of the `argv` slots the
        // kernel filled (module `# Safety`).
        let arg = unsafe { self.argv.wrapping_add(self.index).read() };
        self.index += 1;
        // SAFETY: `arg` points to a NUL-terminated string that lives,
        // unchanged, for the rest of the process (module `# Safety`).
        Some(unsafe { CStr::from_ptr(arg) })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.argc.saturating_sub(self.index);
        (left, Some(left))
    }
}

/// Resuming an unwind: referenced by the precompiled `alloc` (built for
/// `panic = "unwind"`), never called here: the image panics with abort and
/// has no unwinder, so no unwind is ever started.
#[unsafe(no_mangle)]
extern "C" fn _Unwind_Resume() -> ! {
    crate::sys::exit_group(134)
}

/// The unwinding personality routine: named by the unwind tables of
/// precompiled `compiler_builtins` objects, never called for the same
/// reason as [`_Unwind_Resume`].
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() -> ! {
    crate::sys::exit_group(134)
}

/// A panic is a bug (outside input never panics the daemon): log where,
/// detach the mount so that the mount point does not stay behind as a dead
/// "transport endpoint", and end the process with Rust's panic exit code.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    crate::logger::log_panic(info);
    crate::detach_mount_after_panic();
    crate::logger::drain_for_exit();
    crate::sys::exit_group(101)
}
