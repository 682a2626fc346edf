//! The allocator's geometry, chosen at compile time: segment and page sizes, the size-class
//! range and the segment map's leaf size. Every other module takes its sizes from here.
//!
//! | geometry | segment | page | pages | largest class | single-page classes up to | map leaf (window) |
//! |---|---|---|---|---|---|---|
//! | default | 2 MiB | 64 KiB | 32 | 256 KiB (56 classes) | 8 KiB | 8 KiB (128 GiB) |
//! | `small-geometry` | 64 KiB | 4 KiB | 16 | 8 KiB (36 classes) | 512 B | 128 B (64 MiB) |
//!
//! The small geometry serves a heap of one 64 KiB segment (a microcontroller's RAM) with the same
//! API; blocks above the largest class are huge objects on their own segment span either way.

#[cfg(not(feature = "small-geometry"))]
mod chosen {
    pub const SEGMENT_SHIFT: usize = 21;
    pub const PAGE_SHIFT: usize = 16;
    pub const MAX_CLASS_SIZE: usize = 256 * 1024;
    pub const MAP_LEAF_BITS: usize = 16;
}

#[cfg(feature = "small-geometry")]
mod chosen {
    pub const SEGMENT_SHIFT: usize = 16;
    pub const PAGE_SHIFT: usize = 12;
    pub const MAX_CLASS_SIZE: usize = 8 * 1024;
    pub const MAP_LEAF_BITS: usize = 10;
}

/// log2 of [`SEGMENT_SIZE`].
pub const SEGMENT_SHIFT: usize = chosen::SEGMENT_SHIFT;
/// Size (and alignment) of a segment.
pub const SEGMENT_SIZE: usize = 1 << SEGMENT_SHIFT;
/// log2 of [`PAGE_SIZE`].
pub const PAGE_SHIFT: usize = chosen::PAGE_SHIFT;
/// Size of a page: the unit segments are split into.
pub const PAGE_SIZE: usize = 1 << PAGE_SHIFT;
/// Pages per segment (at most 32: a segment's free pages are one `u32`).
pub const PAGES_PER_SEGMENT: usize = SEGMENT_SIZE / PAGE_SIZE;
/// Largest block size served from pages; anything larger is a huge object.
pub const MAX_CLASS_SIZE: usize = chosen::MAX_CLASS_SIZE;
/// Largest block size served from single-page spans (eight blocks per page at least).
pub const MAX_SMALL_SIZE: usize = PAGE_SIZE / 8;
/// Pages per span are capped so a medium span never needs more than half a segment.
pub const MAX_SPAN_PAGES: usize = PAGES_PER_SEGMENT / 2;
/// log2 of the segments one leaf of the segment map covers.
pub const MAP_LEAF_BITS: usize = chosen::MAP_LEAF_BITS;

const _: () = assert!(PAGES_PER_SEGMENT <= 32 && PAGES_PER_SEGMENT >= 8);
const _: () = assert!(MAX_CLASS_SIZE.is_power_of_two() && MAX_CLASS_SIZE > MAX_SMALL_SIZE);
const _: () = assert!(MAX_CLASS_SIZE * 4 <= MAX_SPAN_PAGES * PAGE_SIZE);
