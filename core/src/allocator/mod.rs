//! The segment/page allocator.
//!
//! Glossary and invariants:
//!
//! | term       | here                     | invariant |
//! |------------|--------------------------|-----------|
//! | segment    | `segment.rs` `Segment` | `segment_of(p) = p & !(SEGMENT_SIZE-1)` for every block `p` |
//! | page       | `page.rs` `Page`       | metadata out of band, in the segment header; blocks have no header |
//! | block      | one allocation           | `page_of(p) = pages[(p - segment) >> PAGE_SHIFT]` (back to the span head) |
//! | size class | [`size_class`]           | size -> class is arithmetic on a leading-zero count, no loop |
//! | heap       | [`Heap`]                 | only its owner touches its non-atomic lists |
//! | hot stack  | `Heap::hot[class]`       | the owner's last frees of a class (at most 128 blocks, 256 KiB), reused newest first; counted as used by their pages |
//! | known segments | `Heap::known`        | segments this heap owns that a free verified; a hit replaces segment map, cookie and owner tests |
//! | free lists | `free`, `local_free`, `thread_free` | `used == capacity - |free| - |local_free|`; live = used - |thread_free| |
//! | huge       | `huge.rs`                | its own segment span; freed straight back to the platform |
//! | pool       | [`Pool`]                 | shared: memory source, empty-segment cache, abandoned segments |
//!
//! ```text
//!  alloc(size, align)                              free(p)
//!    │ class_of(size)                                │ segment_of(p) in heap.known, else segment map + cookie
//!    ▼                                               ▼
//!  heap.hot[class] ── pop ──> block                owner == heap ? push hot[class]
//!    │ empty                                         (full: the page's local_free)
//!    ▼                                               : push hot[class] (room, heap owns a
//!                                                      segment), else batch -> thread_free
//!  heap.direct[class] ── pop free ──> block          │
//!    │ empty: #[cold] alloc_slow                     │ page empty / was full: #[cold] page_event
//!    ▼                                               │
//!  collect local_free + thread_free, next page,      ▼
//!  fresh page from a segment, adopt abandoned,     retire page -> segment -> pool -> platform
//!  new segment from the pool / platform
//! ```
//!
//! Nothing here uses the `alloc` crate; everything the allocator needs comes from a
//! [`MemorySource`](crate::platform::MemorySource).

#[cfg(feature = "alloc")]
pub mod arena;
pub(crate) mod check;
pub(crate) mod error;
pub(crate) mod free;
pub(crate) mod geometry;
pub(crate) mod heap;
pub(crate) mod huge;
pub(crate) mod page;
pub(crate) mod segment;
pub(crate) mod segment_map;
pub mod size_class;
pub mod stats;

pub use check::CheckError;
pub use error::FreeError;
pub use free::usable_size;
pub use geometry::{PAGE_SIZE, SEGMENT_SIZE};
pub use heap::Heap;
pub use huge::MAX_ALIGN;
pub use segment::Pool;

/// Frees `p` through the local heap `heap` (null is accepted). A pointer kiln did not hand
/// out, an interior pointer, or a double free it can prove is an error and changes nothing.
///
/// # Safety
/// `p` is null, or not used by the caller after this call. A foreign pointer is detected and
/// reported (never written); a block of kiln's that is still in use by someone else is not.
#[inline(always)]
pub unsafe fn free(heap: &mut Heap, p: *mut u8) -> Result<(), FreeError> {
    // SAFETY: forwarded.
    unsafe { free::free(heap, p) }
}

/// Frees `p` through the local heap `heap`; an invalid free (see [`free`]) goes to `report`
/// instead of being returned, so the caller's fast path has no result to test (C `free`).
///
/// # Safety
/// As for [`free`]: `p` is null, or not used by the caller after this call.
#[inline(always)]
pub unsafe fn free_or_report(heap: &mut Heap, p: *mut u8, report: fn(*mut u8, FreeError)) {
    // SAFETY: forwarded.
    unsafe { free::free_or_report(heap, p, report) }
}

/// [`free_or_report`] whose inline push skips the per-call statistics and the load of their
/// run-time switch (out-of-line paths count as usual): for a caller that has just found
/// [`stats::counting`] off, such as libkiln.so's `free`. Also see [`Heap::alloc_uncounted`].
///
/// # Safety
/// As for [`free`].
#[inline(always)]
pub unsafe fn free_or_report_uncounted(
    heap: &mut Heap,
    p: *mut u8,
    report: fn(*mut u8, FreeError),
) {
    // SAFETY: forwarded.
    unsafe { free::free_or_report_uncounted(heap, p, report) }
}

/// Resizes the block at `p` to `new_size` bytes aligned to `align`: in place when the block's
/// class still fits (grows into the slack, or shrinks by at most half), else by moving. On
/// `Ok(null)` (out of memory) the old block is untouched.
///
/// # Safety
/// `p` was allocated by kiln with alignment `align` and is not used by anyone else; after a
/// non-null `Ok` only the returned pointer may be used.
pub unsafe fn realloc(
    heap: &mut Heap,
    p: *mut u8,
    new_size: usize,
    align: usize,
) -> Result<*mut u8, FreeError> {
    if p.is_null() {
        return Ok(heap.alloc(new_size, align));
    }
    // A block start in a segment the heap verified (its own) needs no segment map, cookie or
    // classification: its page's block size is what it can hold.
    let usable = match free::owned_block_size(heap, p) {
        Some(size) => size,
        None => {
            usable_size(p).ok_or_else(|| free::classify(p).err().unwrap_or(FreeError::NotABlock))?
        }
    };
    if new_size <= usable && new_size >= usable / 2 && (p as usize).is_multiple_of(align) {
        return Ok(p);
    }
    let q = heap.alloc(new_size, align);
    if q.is_null() {
        return Ok(q);
    }
    // SAFETY: both blocks are ours and at least `min(usable, new_size)` bytes long; distinct.
    unsafe { core::ptr::copy_nonoverlapping(p, q, usable.min(new_size)) };
    // SAFETY: `p` is ours and no longer used (caller).
    unsafe { free::free(heap, p) }?;
    Ok(q)
}

#[cfg(test)]
mod tests;
