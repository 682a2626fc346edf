//! `KILN_STATS=1`: counters per entry point and a report on stderr at exit.
//!
//! The counters are touched only when the report was asked for (one relaxed load otherwise); the
//! allocator's own counters (paths, classes, live and peak bytes, segments) come from
//! `kiln::allocator::stats`.
use core::fmt::Write;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

use kiln_core::allocator::size_class::{class_size, CLASS_COUNT};
use kiln_core::allocator::stats::snapshot;

use crate::fail::Line;

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

/// How one call was answered; every counted call ends in exactly one outcome, so the report can
/// show that the outcomes add up to the calls.
#[derive(Clone, Copy)]
pub(crate) enum Outcome {
    /// kiln's allocator answered it.
    Served,
    /// A null pointer given to `free`/`malloc_usable_size`: nothing to do.
    Null,
    /// Refused for its arguments (overflowing size, bad alignment) before reaching kiln.
    Refused,
    /// Re-entry: answered by the bootstrap area (or a free/size query of a bootstrap block).
    Bootstrap,
    /// A free that arrived while this thread was inside kiln: the block is leaked.
    LeakedFree,
}

const OUTCOME_NAMES: [&str; 5] = ["served", "null", "refused", "bootstrap", "leaked-free"];
static OUTCOMES: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];
/// A duplicate of stderr taken at load time: programs such as `sort` close fd 2 in their own
/// exit handlers, which run before ours.
pub(crate) static REPORT_FD: core::sync::atomic::AtomicI32 = core::sync::atomic::AtomicI32::new(2);

/// Counts one call of `entry` asking for `bytes`.
#[inline]
pub(crate) fn count(entry: Entry, bytes: usize) {
    if ENABLED.load(Relaxed) {
        CALLS[entry as usize].fetch_add(1, Relaxed);
        BYTES_REQUESTED.fetch_add(bytes as u64, Relaxed);
    }
}

/// Counts how a call was answered.
#[inline]
pub(crate) fn outcome(o: Outcome) {
    if ENABLED.load(Relaxed) {
        OUTCOMES[o as usize].fetch_add(1, Relaxed);
    }
}

/// Prints the report; registered with `atexit` when `KILN_STATS=1`.
pub(crate) extern "C" fn print_at_exit() {
    let mut line = Line::new();
    // SAFETY: getpid has no preconditions.
    let pid = unsafe { libc::getpid() };
    let calls: u64 = CALLS.iter().map(|c| c.load(Relaxed)).sum();
    let _ = writeln!(line, "kiln: KILN_STATS report for pid {pid} (libkiln.so)");
    line.flush_to_report();
    let _ = write!(
        line,
        "kiln: served {} of {} calls; outcomes:",
        OUTCOMES[Outcome::Served as usize].load(Relaxed),
        calls
    );
    for (name, n) in OUTCOME_NAMES.iter().zip(&OUTCOMES) {
        let _ = write!(line, " {name}={}", n.load(Relaxed));
    }
    let _ = writeln!(line);
    line.flush_to_report();
    let _ = write!(line, "kiln: calls:");
    for (name, c) in ENTRY_NAMES.iter().zip(&CALLS) {
        let n = c.load(Relaxed);
        if n > 0 {
            let _ = write!(line, " {name}={n}");
        }
    }
    let _ = writeln!(line);
    line.flush_to_report();

    let s = snapshot();
    let _ = writeln!(
        line,
        "kiln: bytes requested {}; live {} bytes; peak live {} bytes",
        BYTES_REQUESTED.load(Relaxed),
        s.live_bytes,
        s.peak_bytes
    );
    line.flush_to_report();
    let _ = writeln!(
        line,
        "kiln: paths: fast {} slow {} huge {}; frees: local {} remote {} huge {}",
        s.fast_alloc, s.slow_alloc, s.huge_alloc, s.local_free, s.remote_free, s.huge_free
    );
    line.flush_to_report();
    let _ = writeln!(
        line,
        "kiln: segments in use {} (peak {}); pages retired {}",
        s.segments_in_use, s.peak_segments, s.pages_retired
    );
    line.flush_to_report();
    let _ = writeln!(line, "kiln: size classes (bytes: allocs/frees):");
    line.flush_to_report();
    for class in 0..CLASS_COUNT {
        let (a, f) = (s.class_alloc[class], s.class_free[class]);
        if a > 0 || f > 0 {
            let _ = writeln!(line, "kiln:   {:>8}: {a}/{f}", class_size(class));
            line.flush_to_report();
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
    line.flush_to_report();
}

/// Calls kiln has served so far (counted only when the report is enabled).
pub(crate) fn served_calls() -> u64 {
    OUTCOMES[Outcome::Served as usize].load(Relaxed)
}
