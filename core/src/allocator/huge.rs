//! Huge objects: blocks larger than the largest size class, each in its own span of segments
//! straight from the platform, freed straight back to it.
//!
//! ```text
//!   +--------+----------------------------------------------------------+
//!   | header | block (huge_size bytes) at huge_offset ...  (span_segments * 2 MiB)
//!   +--------+----------------------------------------------------------+
//!   huge_offset = max(HEADER_SIZE, align)  <  SEGMENT_SIZE, so segment_of(block) is the header
//!
//!   over-aligned (align >= SEGMENT_SIZE): the header has a segment of its own, right in front
//!   +--------+---------------+-------------------------------------------+
//!   | header | (unused)      | block at huge_offset = SEGMENT_SIZE, aligned to `align`
//!   +--------+---------------+-------------------------------------------+
//!   segment_of(block) is the block's own first segment, whose map bit is clear: the cold path
//!   of `free` looks one segment back ([`aligned_header_of`])
//! ```

use core::ptr;

use super::error::FreeError;
use super::segment::{Pool, Segment, HEADER_SIZE, SEGMENT_SIZE};
use super::stats;

/// Largest alignment a huge block has with its header in its own first segment; above it the
/// header takes a segment of its own in front of the block.
pub const MAX_HUGE_ALIGN: usize = SEGMENT_SIZE / 2;

/// Largest alignment kiln serves: half the address space (1 GiB and far beyond on 64-bit
/// targets; 1 GiB on 32-bit ones).
pub const MAX_ALIGN: usize = 1 << (usize::BITS - 2);

/// Allocates a huge block; null when out of memory or the request cannot be met.
pub(crate) fn alloc(pool: &Pool, size: usize, align: usize) -> *mut u8 {
    if align > MAX_HUGE_ALIGN {
        return alloc_over_aligned(pool, size, align);
    }
    let offset = HEADER_SIZE.max(align);
    let Some(total) = size
        .checked_add(offset)
        .and_then(|t| t.checked_add(SEGMENT_SIZE - 1))
    else {
        return ptr::null_mut();
    };
    let span = total / SEGMENT_SIZE;
    let seg = pool.new_huge(span);
    if seg.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: a fresh huge segment is ours alone.
    unsafe {
        (*seg).huge_size = size;
        (*seg).huge_offset = offset;
    }
    stats::huge_alloc(size);
    seg.cast::<u8>().wrapping_add(offset)
}

/// A huge block aligned to `align > MAX_HUGE_ALIGN`: the header segment, then the block at
/// the next segment boundary, which is a multiple of `align`.
#[cold]
#[inline(never)]
fn alloc_over_aligned(pool: &Pool, size: usize, align: usize) -> *mut u8 {
    if !align.is_power_of_two() || align > MAX_ALIGN {
        return ptr::null_mut();
    }
    let align = align.max(SEGMENT_SIZE);
    let Some(span) = size
        .checked_add(2 * SEGMENT_SIZE - 1)
        .map(|t| (t / SEGMENT_SIZE).max(2))
    else {
        return ptr::null_mut();
    };
    let seg = pool.new_huge_aligned(span, align);
    if seg.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: a fresh huge segment is ours alone.
    unsafe {
        (*seg).huge_size = size;
        (*seg).huge_offset = SEGMENT_SIZE;
    }
    stats::huge_alloc(size);
    seg.cast::<u8>().wrapping_add(SEGMENT_SIZE)
}

/// The header of the over-aligned huge block `p`, if `p` is one of ours: `p` starts a segment,
/// and the segment in front of it is a live huge header whose block is at `p`.
pub(crate) fn aligned_header_of(p: *const u8) -> Option<*mut Segment> {
    let addr = p as usize;
    if addr < SEGMENT_SIZE || !addr.is_multiple_of(SEGMENT_SIZE) {
        return None;
    }
    let seg = (addr - SEGMENT_SIZE) as *mut Segment;
    // SAFETY: the header is read only after the map and cookie proved it live and ours.
    let is_block = Segment::is_ours(seg)
        && unsafe {
            (*seg).kind == super::segment::SegmentKind::Huge && (*seg).huge_offset == SEGMENT_SIZE
        };
    is_block.then_some(seg)
}

/// The header of a huge or page-backed block `p` just allocated (either kind).
fn header_of_fresh(p: *const u8) -> *mut Segment {
    aligned_header_of(p).unwrap_or_else(|| super::segment::segment_of(p))
}

/// Whether `p` (a block just allocated) is a huge block in a span fresh from a platform whose
/// fresh memory reads as zero (not one reused from the pool's caches).
pub(crate) fn is_fresh_zeroed(p: *const u8) -> bool {
    let seg = header_of_fresh(p);
    // SAFETY: `p` is a live block of ours, so its segment header is valid.
    unsafe { (*seg).kind == super::segment::SegmentKind::Huge && (*seg).fresh }
}

/// Bytes usable at `p`, the block of huge segment `seg`.
///
/// # Safety
/// `seg` is a live huge segment of ours.
pub(crate) unsafe fn usable_size(seg: *const Segment) -> usize {
    // SAFETY: live header (caller).
    unsafe { (*seg).span_segments * SEGMENT_SIZE - (*seg).huge_offset }
}

/// Whether `p` is the block of huge segment `seg`.
///
/// # Safety
/// `seg` is a live huge segment of ours.
pub(crate) unsafe fn is_block(seg: *const Segment, p: *const u8) -> bool {
    // SAFETY: live header (caller).
    // Wrapping: a span cached in the pool has an offset no address matches.
    p as usize == (seg as usize).wrapping_add(unsafe { (*seg).huge_offset })
}

/// Frees the huge block `p` of segment `seg`.
///
/// # Safety
/// `seg` is a live huge segment of ours, and `p` nobody's any more.
pub(crate) unsafe fn free(seg: *mut Segment, p: *mut u8) -> Result<(), FreeError> {
    // SAFETY: caller.
    if !unsafe { is_block(seg, p) } {
        return Err(FreeError::NotABlock);
    }
    // SAFETY: live header.
    stats::huge_free(unsafe { (*seg).huge_size });
    // SAFETY: the block was its only content; the span goes back to the pool that reserved it.
    unsafe { (*(*seg).pool).free_huge(seg) };
    Ok(())
}
