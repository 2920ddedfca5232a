//! The defmt global logger: frames into a fixed ring, written out to a file
//! descriptor by the main thread.
//!
//! A worker that logs (rarely: INIT, its own exit) never waits on the
//! output: it encodes its frame into [`RING`] under a short spin lock (a
//! memory copy of a few dozen bytes) and, when it is not the main thread,
//! sends the process `SIGUSR1` so that the main thread, asleep in
//! `rt_sigtimedwait`, wakes up and writes the ring to the log fd. A slow
//! reader of that fd (a full pipe) therefore stalls only the main thread,
//! never a worker. When the ring is full the frame is dropped whole (never
//! half a frame: the stream stays decodable) and counted; the count is
//! logged at the next drain.
//!
//! The main thread, and any thread while the image is single-threaded or
//! shutting down, writes its own frames out at once.
//!
//! Nothing here allocates. Frames are defmt's rzCOBS encoding, zero-byte
//! delimited: `defmt-print -e <unstripped image>` decodes them.
//!
//! # Safety
//!
//! One of the image's few files with `unsafe`. The ring is a
//! single-producer (whoever holds [`OWNER`]), single-consumer (whoever holds
//! [`DRAINING`]) byte queue: the producer writes only bytes at positions
//! `tail..head + RING_BYTES` (free space, which the consumer does not read)
//! and publishes them by storing `TAIL` (Release); the consumer reads only
//! `head..tail` (after an Acquire load of `TAIL`) and frees them by storing
//! `HEAD` (Release), which the producer loads (Acquire) before reusing them.
//! The encoder and its sink are touched only by the [`OWNER`] thread, and
//! are two cells so that the sink's `&mut` never overlaps the encoder's.

use core::cell::UnsafeCell;
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicUsize};

use rustix::fd::BorrowedFd;

/// Ring capacity: many start-up records' worth (each is tens of bytes).
const RING_BYTES: usize = 16 << 10;
const _: () = assert!(RING_BYTES.is_power_of_two());

/// The ring's bytes.
struct Ring(UnsafeCell<[u8; RING_BYTES]>);
// SAFETY: access follows the module's single-producer/single-consumer
// protocol; no `&` or `&mut` to the whole array is ever made.
unsafe impl Sync for Ring {}
static RING: Ring = Ring(UnsafeCell::new([0; RING_BYTES]));

/// Bytes written out so far (positions grow forever; index = pos % size).
static HEAD: AtomicUsize = AtomicUsize::new(0);
/// Bytes published so far.
static TAIL: AtomicUsize = AtomicUsize::new(0);

/// Where the frame being written goes. Kept apart from the encoder: the
/// encoder calls [`emit`] while it is itself mutably borrowed, so the two
/// must not share a cell.
struct Sink {
    /// Where the next byte of the current frame goes.
    cursor: usize,
    /// The current frame did not fit: drop it at release.
    overflow: bool,
}

/// A cell only the thread holding [`OWNER`] touches.
struct OwnedCell<T>(UnsafeCell<T>);
// SAFETY: only the thread holding `OWNER` touches the contents (the
// module's protocol), one access at a time.
unsafe impl<T> Sync for OwnedCell<T> {}

static ENCODER: OwnedCell<defmt::Encoder> = OwnedCell(UnsafeCell::new(defmt::Encoder::new()));
static SINK: OwnedCell<Sink> = OwnedCell(UnsafeCell::new(Sink {
    cursor: 0,
    overflow: false,
}));

/// The tid of the thread writing a frame; 0 when none.
static OWNER: AtomicU32 = AtomicU32::new(0);
/// Someone is writing the ring out.
static DRAINING: AtomicBool = AtomicBool::new(false);
/// Frames dropped for lack of room since the last report.
static DROPPED: AtomicU32 = AtomicU32::new(0);
/// The fd frames go to.
static LOG_FD: AtomicI32 = AtomicI32::new(2);
/// The main thread's tid: it writes its frames out at once, and is the one
/// the others wake.
static MAIN_TID: AtomicU32 = AtomicU32::new(0);
/// Workers are running: frames of other threads wait for the main thread.
static DEFERRED: AtomicBool = AtomicBool::new(false);

fn tid() -> u32 {
    rustix::thread::gettid()
        .as_raw_nonzero()
        .get()
        .cast_unsigned()
}

/// Records the calling thread as the main thread.
pub(crate) fn init_main_thread() {
    MAIN_TID.store(tid(), Relaxed);
}

/// Sends frames to `fd` from now on.
pub(crate) fn set_fd(fd: i32) {
    LOG_FD.store(fd, Relaxed);
}

/// Workers are about to run (`true`) or have all ended (`false`).
pub(crate) fn set_deferred(deferred: bool) {
    DEFERRED.store(deferred, Release);
}

/// Appends encoded bytes to the current frame (the encoder's sink).
fn emit(bytes: &[u8]) {
    // SAFETY: called only from the encoder, which only the OWNER thread
    // drives (see `Logger`); no other reference to SINK is live meanwhile.
    let sink = unsafe { &mut *SINK.0.get() };
    if sink.overflow {
        return;
    }
    // Acquire: pairs with the consumer's Release of HEAD, so bytes it has
    // finished writing out are not overwritten before it read them.
    let head = HEAD.load(Acquire);
    if sink.cursor + bytes.len() - head > RING_BYTES {
        sink.overflow = true;
        return;
    }
    let base = RING.0.get().cast::<u8>();
    for &b in bytes {
        // SAFETY: `cursor % RING_BYTES` is in bounds, and position `cursor`
        // is free space (cursor < head + RING_BYTES, checked above), which
        // the consumer does not read.
        unsafe { base.wrapping_add(sink.cursor % RING_BYTES).write(b) };
        sink.cursor += 1;
    }
}

#[defmt::global_logger]
struct Logger;

// SAFETY: `acquire` takes OWNER (a lock keyed by thread id, so that a
// thread never re-enters it) before touching the producer, `release` gives
// it up last; defmt calls `write` and `flush` only between the two.
unsafe impl defmt::Logger for Logger {
    fn acquire() {
        let me = tid();
        // Acquire: pairs with the Release in `release`, so the previous
        // owner's producer updates are visible.
        while OWNER.compare_exchange(0, me, Acquire, Relaxed).is_err() {
            core::hint::spin_loop();
        }
        {
            // SAFETY: this thread holds OWNER; the reference ends here.
            let sink = unsafe { &mut *SINK.0.get() };
            sink.cursor = TAIL.load(Relaxed);
            sink.overflow = false;
        }
        // SAFETY: this thread holds OWNER; `emit` touches SINK only.
        let encoder = unsafe { &mut *ENCODER.0.get() };
        encoder.start_frame(emit);
    }

    unsafe fn flush() {}

    unsafe fn release() {
        {
            // SAFETY: the caller (defmt) holds the logger: this thread owns
            // OWNER; `emit` touches SINK only.
            let encoder = unsafe { &mut *ENCODER.0.get() };
            encoder.end_frame(emit);
        }
        // SAFETY: this thread owns OWNER and the encoder is done with SINK.
        let sink = unsafe { &*SINK.0.get() };
        let published = !sink.overflow;
        if published {
            // Release: the frame's bytes before the new tail.
            TAIL.store(sink.cursor, Release);
        } else {
            DROPPED.fetch_add(1, Relaxed);
        }
        OWNER.store(0, Release);
        let me = tid();
        if me == MAIN_TID.load(Relaxed) || !DEFERRED.load(Acquire) {
            drain();
        } else if published {
            // Wake the main thread; it takes SIGUSR1 synchronously.
            let _ = rustix::process::kill_process(
                rustix::process::getpid(),
                rustix::process::Signal::USR1,
            );
        }
    }

    unsafe fn write(bytes: &[u8]) {
        // SAFETY: between acquire and release: this thread owns OWNER;
        // `emit` touches SINK only.
        let encoder = unsafe { &mut *ENCODER.0.get() };
        encoder.write(bytes, emit);
    }
}

/// Writes every published frame to the log fd. Returns at once when another
/// thread is already at it.
pub(crate) fn drain() {
    if DRAINING.swap(true, Acquire) {
        return;
    }
    write_out();
    DRAINING.store(false, Release);
    let dropped = DROPPED.swap(0, Relaxed);
    if dropped > 0 {
        defmt::warn!(
            "log: {=u32} frames dropped (the log ring was full)",
            dropped
        );
    }
}

/// The consumer: writes `head..tail` out. The caller holds DRAINING.
fn write_out() {
    // SAFETY: the fd is the log fd the image was told to use (stderr by
    // default): open for the life of the process; a bad number only makes
    // `write` fail with EBADF.
    let fd = unsafe { BorrowedFd::borrow_raw(LOG_FD.load(Relaxed)) };
    let base = RING.0.get().cast::<u8>();
    loop {
        let head = HEAD.load(Relaxed);
        // Acquire: pairs with the producer's Release; the bytes are there.
        let tail = TAIL.load(Acquire);
        if head == tail {
            return;
        }
        let start = head % RING_BYTES;
        let len = (tail - head).min(RING_BYTES - start);
        // SAFETY: `start..start + len` is inside the ring and within
        // `head..tail`, published bytes the producer does not touch until
        // HEAD passes them.
        let bytes = unsafe { core::slice::from_raw_parts(base.wrapping_add(start), len) };
        match rustix::io::write(fd, bytes) {
            // Release: the producer may reuse these bytes now.
            Ok(n) if n > 0 => HEAD.store(head + n, Release),
            Err(rustix::io::Errno::INTR) => {}
            // Nowhere to write (closed fd, EPIPE, ...): drop what is there,
            // the daemon goes on.
            _ => HEAD.store(tail, Release),
        }
    }
}

/// The panic handler's record. If the panicking thread was in the middle
/// of a frame, that frame is abandoned first (the logger is not
/// re-entrant), so the record still goes out.
pub(crate) fn log_panic(info: &core::panic::PanicInfo<'_>) {
    let me = tid();
    if OWNER.load(Relaxed) == me {
        // The abandoned frame was never published; the encoder's run state
        // is mid-frame, so it starts over (with a fresh frame separator).
        // SAFETY: this thread holds OWNER, so this is the one access.
        let encoder = unsafe { &mut *ENCODER.0.get() };
        *encoder = defmt::Encoder::new();
        OWNER.store(0, Release);
    }
    let (file, line) = info.location().map_or(("?", 0), |l| (l.file(), l.line()));
    defmt::error!(
        "panic at {=str}:{=u32}: {}",
        file,
        line,
        defmt::Display2Format(&info.message())
    );
}

/// Writes everything out before the process ends, waiting for a drain in
/// progress on another thread to finish.
pub(crate) fn drain_for_exit() {
    DEFERRED.store(false, Release);
    while DRAINING.swap(true, Acquire) {
        core::hint::spin_loop();
    }
    write_out();
    DRAINING.store(false, Release);
}

defmt::timestamp!("{=u64:us}", {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    let secs = u64::try_from(t.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(t.tv_nsec).unwrap_or(0);
    secs * 1_000_000 + nanos / 1000
});
