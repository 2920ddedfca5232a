//! `memcpy`, `memmove`, `memset`, `memcmp`, `bcmp` and `strlen`: the
//! functions the compiler and `core` call, which libc provides everywhere
//! else.
//!
//! Copies and fills are single `rep movsb` / `rep stosb` instructions: on
//! every x86_64 CPU with ERMS (Intel since Ivy Bridge, AMD since Zen 3) the
//! microcode moves whole cache lines, which is what a 16 MiB WRITE copied
//! into memfs storage needs. Comparisons are short (names, keys) and byte
//! loops suffice; LLVM does not turn a compare loop back into a `memcmp`
//! call, so the loop cannot recurse into itself.
//!
//! # Safety
//!
//! One of the image's few files with `unsafe`. Each function has the C
//! library's contract, which its callers (compiler-generated code, `core`)
//! uphold: the pointers are valid for `n` bytes, and for `memcpy` the ranges
//! do not overlap. The direction flag is clear on entry and exit of every
//! function (System V ABI), as `rep` forwards copies assume.

use core::arch::asm;
use core::ffi::c_int;

/// Copies `n` bytes from `src` to `dest` (no overlap).
///
/// # Safety
///
/// C's `memcpy` contract.
#[unsafe(no_mangle)]
unsafe extern "C" fn memcpy(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: `rep movsb` copies rcx bytes from [rsi] to [rdi] forwards;
    // the caller guarantees both ranges are valid and disjoint.
    unsafe {
        asm!(
            "rep movsb",
            inout("rcx") n => _,
            inout("rdi") dest => _,
            inout("rsi") src => _,
            options(nostack, preserves_flags),
        );
    }
    dest
}

/// Copies `n` bytes from `src` to `dest`; the ranges may overlap.
///
/// # Safety
///
/// C's `memmove` contract.
#[unsafe(no_mangle)]
unsafe extern "C" fn memmove(dest: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dest as usize).wrapping_sub(src as usize) >= n {
        // `dest` is below `src`, or past the end of it: a forward copy never
        // overwrites a byte before reading it.
        // SAFETY: as in `memcpy`; forwards is safe for this overlap.
        unsafe {
            asm!(
                "rep movsb",
                inout("rcx") n => _,
                inout("rdi") dest => _,
                inout("rsi") src => _,
                options(nostack, preserves_flags),
            );
        }
    } else {
        // `dest` overlaps the end of `src`: copy backwards from the last
        // byte (direction flag set for the copy, cleared again).
        // SAFETY: rsi/rdi start at the last byte of each valid range and
        // `rep movsb` with DF=1 walks down rcx bytes, staying inside both;
        // `cld` restores the ABI's clear direction flag.
        unsafe {
            asm!(
                "std",
                "rep movsb",
                "cld",
                inout("rcx") n => _,
                inout("rdi") dest.wrapping_add(n).wrapping_sub(1) => _,
                inout("rsi") src.wrapping_add(n).wrapping_sub(1) => _,
                options(nostack),
            );
        }
    }
    dest
}

/// Sets `n` bytes at `dest` to `c as u8`.
///
/// # Safety
///
/// C's `memset` contract.
#[unsafe(no_mangle)]
unsafe extern "C" fn memset(dest: *mut u8, c: c_int, n: usize) -> *mut u8 {
    #[allow(
        clippy::cast_possible_truncation,
        reason = "C's memset stores (unsigned char)c"
    )]
    let byte = c as u8;
    // SAFETY: `rep stosb` stores al to rcx bytes from [rdi] forwards; the
    // caller guarantees the range is valid.
    unsafe {
        asm!(
            "rep stosb",
            inout("rcx") n => _,
            inout("rdi") dest => _,
            in("al") byte,
            options(nostack, preserves_flags),
        );
    }
    dest
}

/// Compares `n` bytes: negative, zero or positive as `a` sorts before,
/// equal to or after `b` (bytes compared unsigned).
///
/// # Safety
///
/// C's `memcmp` contract.
#[unsafe(no_mangle)]
unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> c_int {
    let mut i = 0;
    while i < n {
        // SAFETY: `i < n` and the caller guarantees `a` is valid for `n`.
        let x = unsafe { a.wrapping_add(i).read() };
        // SAFETY: likewise for `b`.
        let y = unsafe { b.wrapping_add(i).read() };
        if x != y {
            return c_int::from(x) - c_int::from(y);
        }
        i += 1;
    }
    0
}

/// The length of the NUL-terminated string at `s` (`repne scasb`: LLVM
/// would turn a byte loop into a call to `strlen` itself).
///
/// # Safety
///
/// C's `strlen` contract: `s` points to a NUL-terminated string.
#[unsafe(no_mangle)]
unsafe extern "C" fn strlen(s: *const u8) -> usize {
    let left: usize;
    // SAFETY: `repne scasb` reads bytes from [rdi] up to and including the
    // first one equal to al (0), which the caller guarantees exists; rcx
    // starts at usize::MAX and counts down once per byte read.
    unsafe {
        asm!(
            "repne scasb",
            inout("rcx") usize::MAX => left,
            inout("rdi") s => _,
            in("al") 0u8,
            options(nostack, readonly),
        );
    }
    // `!left` bytes were read, the NUL included.
    !left - 1
}

/// Zero when the `n` bytes are equal, non-zero otherwise.
///
/// # Safety
///
/// C's `bcmp` contract (that of `memcmp`).
#[unsafe(no_mangle)]
unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> c_int {
    // SAFETY: the same contract, passed on.
    unsafe { memcmp(a, b, n) }
}
