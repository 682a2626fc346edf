//! `KILN_STATS=1`: counters per entry point and a report on stderr at exit.
//!
//! The counters are touched only when the report was asked for (one relaxed load otherwise); the
//! allocator's own counters (paths, classes, live and peak bytes, segments) come from
//! `kiln::alloc::stats`.
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use kiln_core::alloc::size_class::{class_size, CLASS_COUNT};
use kiln_core::alloc::stats::snapshot;

use crate::fail::Line;
use crate::reentry::BOOTSTRAP_ALLOCS;

/// The exported C functions, as counted.
#[derive(Clone, Copy)]
pub(crate) enum Entry {
    Malloc,
    Free,
    Calloc,
    Realloc,
    Reallocarray,
    PosixMemalign,
    AlignedAlloc,
    Memalign,
    Valloc,
    Pvalloc,
    MallocUsableSize,
}

const ENTRY_NAMES: [&str; 11] = [
    "malloc",
    "free",
    "calloc",
    "realloc",
    "reallocarray",
    "posix_memalign",
    "aligned_alloc",
    "memalign",
    "valloc",
    "pvalloc",
    "malloc_usable_size",
];

/// Set at load time when `KILN_STATS=1`.
pub(crate) static ENABLED: AtomicBool = AtomicBool::new(false);
static CALLS: [AtomicU64; 11] = [const { AtomicU64::new(0) }; 11];
static BYTES_REQUESTED: AtomicU64 = AtomicU64::new(0);
/// Calls answered by kiln's allocator (not by the bootstrap area).
static SERVED: AtomicU64 = AtomicU64::new(0);
/// Frees that arrived while the thread was inside kiln; their blocks are leaked, not freed.
pub(crate) static REENTRANT_FREES: AtomicU64 = AtomicU64::new(0);

/// Counts one call of `entry` asking for `bytes`.
#[inline]
pub(crate) fn count(entry: Entry, bytes: usize) {
    if ENABLED.load(Relaxed) {
        CALLS[entry as usize].fetch_add(1, Relaxed);
        BYTES_REQUESTED.fetch_add(bytes as u64, Relaxed);
    }
}

/// Counts one call that kiln's allocator answered.
#[inline]
pub(crate) fn served() {
    if ENABLED.load(Relaxed) {
        SERVED.fetch_add(1, Relaxed);
    }
}

/// Prints the report; registered with `atexit` when `KILN_STATS=1`.
pub(crate) extern "C" fn print_at_exit() {
    let mut line = Line::new();
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let calls: u64 = CALLS.iter().map(|c| c.load(Relaxed)).sum();
    let _ = writeln!(line, "kiln: KILN_STATS report for pid {pid} (libkiln.so)");
    line.flush_to_stderr();
    let _ = writeln!(
        line,
        "kiln: served {} of {} calls; {} re-entrant calls from the bootstrap area; {} re-entrant frees leaked",
        SERVED.load(Relaxed),
        calls,
        BOOTSTRAP_ALLOCS.load(Relaxed),
        REENTRANT_FREES.load(Relaxed)
    );
    line.flush_to_stderr();
    let _ = write!(line, "kiln: calls:");
    for (name, c) in ENTRY_NAMES.iter().zip(&CALLS) {
        let n = c.load(Relaxed);
        if n > 0 {
            let _ = write!(line, " {name}={n}");
        }
    }
    let _ = writeln!(line);
    line.flush_to_stderr();

    let s = snapshot();
    let _ = writeln!(
        line,
        "kiln: bytes requested {}; live {} bytes; peak live {} bytes",
        BYTES_REQUESTED.load(Relaxed),
        s.live_bytes,
        s.peak_bytes
    );
    line.flush_to_stderr();
    let _ = writeln!(
        line,
        "kiln: paths: fast {} slow {} huge {}; frees: local {} remote {} huge {}",
        s.fast_alloc, s.slow_alloc, s.huge_alloc, s.local_free, s.remote_free, s.huge_free
    );
    line.flush_to_stderr();
    let _ = writeln!(
        line,
        "kiln: segments in use {} (peak {}); pages retired {}",
        s.segments_in_use, s.peak_segments, s.pages_retired
    );
    line.flush_to_stderr();
    let _ = writeln!(line, "kiln: size classes (bytes: allocs/frees):");
    line.flush_to_stderr();
    for class in 0..CLASS_COUNT {
        let (a, f) = (s.class_alloc[class], s.class_free[class]);
        if a > 0 || f > 0 {
            let _ = writeln!(line, "kiln:   {:>8}: {a}/{f}", class_size(class));
            line.flush_to_stderr();
        }
    }
    glibc_heap_line(&mut line);
}

/// glibc's own heap, through `mallinfo2` (not replaced by kiln): zero when glibc's allocator was
/// never used.
fn glibc_heap_line(line: &mut Line) {
    // SAFETY: mallinfo2 only reads glibc's allocator state; it takes no pointer.
    let info = unsafe { libc::mallinfo2() };
    let _ = writeln!(
        line,
        "kiln: glibc malloc heap: {} bytes from sbrk, {} bytes mmapped ({})",
        info.arena,
        info.hblkhd,
        if info.arena == 0 && info.hblkhd == 0 {
            "glibc's allocator was not used"
        } else {
            "GLIBC'S ALLOCATOR WAS USED"
        }
    );
    line.flush_to_stderr();
}

/// Calls kiln has served so far (counted only when the report is enabled).
pub(crate) fn served_calls() -> u64 {
    SERVED.load(Relaxed)
}
