//! Huge objects: blocks larger than the largest size class, each in its own span of segments
//! straight from the platform, freed straight back to it.
//!
//! ```text
//!   +--------+----------------------------------------------------------+
//!   | header | block (huge_size bytes) at huge_offset ...  (span_segments * 2 MiB)
//!   +--------+----------------------------------------------------------+
//!   huge_offset = max(HEADER_SIZE, align)  <  SEGMENT_SIZE, so segment_of(block) is the header
//! ```

use core::ptr;

use super::free::FreeError;
use super::segment::{Pool, Segment, HEADER_SIZE, SEGMENT_SIZE};
use super::stats;

/// Largest alignment a huge block can have: the block must start inside its first segment.
pub const MAX_HUGE_ALIGN: usize = SEGMENT_SIZE / 2;

/// Allocates a huge block; null when out of memory or the request cannot be met.
pub(crate) fn alloc(pool: &Pool, size: usize, align: usize) -> *mut u8 {
    if align > MAX_HUGE_ALIGN {
        return ptr::null_mut();
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

/// Whether `p` (a block just allocated from `pool`) is a huge block in a multi-segment span on a
/// platform whose fresh memory reads as zero: such spans come straight from the platform.
pub(crate) fn is_fresh_zeroed(pool: &Pool, p: *const u8) -> bool {
    let seg = super::segment::segment_of(p);
    // SAFETY: `p` is a live block of ours, so its segment header is valid.
    pool.huge_blocks_are_zeroed()
        && unsafe { (*seg).kind == super::segment::SegmentKind::Huge && (*seg).span_segments > 1 }
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
    p as usize == seg as usize + unsafe { (*seg).huge_offset }
}

/// Frees the huge block `p` of segment `seg`.
///
/// # Safety
/// `seg` is a live huge segment of ours, and `p` nobody's any more.
pub(crate) unsafe fn free(pool: &Pool, seg: *mut Segment, p: *mut u8) -> Result<(), FreeError> {
    // SAFETY: caller.
    if !unsafe { is_block(seg, p) } {
        return Err(FreeError::NotABlock);
    }
    // SAFETY: live header.
    stats::huge_free(unsafe { (*seg).huge_size });
    // SAFETY: the block was its only content.
    unsafe { pool.free_huge(seg) };
    Ok(())
}
