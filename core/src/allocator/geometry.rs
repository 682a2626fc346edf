//! The allocator's geometry, chosen at compile time: segment and page sizes, the size-class
//! range and the segment map's leaf size. Every other module takes its sizes from here.
//!
//! | geometry | segment | page | pages | largest class | single-page classes up to | map leaf (window) | hot stacks |
//! |---|---|---|---|---|---|---|---|
//! | default | 2 MiB | 64 KiB | 32 | 256 KiB (56 classes) | 8 KiB | 8 KiB (128 GiB) | every class: 128 blocks, at most 256 KiB of them (8 of 32 KiB, 1 of 256 KiB) |
//! | `small-geometry` | 64 KiB | 2 KiB | 32 (the first two hold the header) | 8 KiB (36 classes) | 256 B | 128 B (64 MiB) | none |
//!
//! Medium spans hold about eight blocks, capped at half a segment (16 pages; 4 blocks of the
//! largest class) by default; in the small geometry about two, capped at four pages (one block
//! of 8 KiB), and an empty page is not kept for its class: 64 KiB must serve many classes at
//! once, so pages are small (2 KiB) and many (30 usable).
//!
//! The small geometry serves a heap of one 64 KiB segment (a microcontroller's RAM) with the same
//! API; blocks above the largest class are huge objects on their own segment span either way.

#[cfg(not(feature = "small-geometry"))]
mod chosen {
    pub const SEGMENT_SHIFT: usize = 21;
    pub const PAGE_SHIFT: usize = 16;
    pub const MAX_CLASS_SIZE: usize = 256 * 1024;
    pub const MAP_LEAF_BITS: usize = 16;
    pub const SPAN_BLOCKS: usize = 8;
    pub const MAX_SPAN_PAGES: usize = 16;
    pub const KEEP_LAST_PAGE: bool = true;
    pub const HOT_MAX_SIZE: usize = 256 * 1024;
    pub const HOT_DEPTH: usize = 128;
    pub const HOT_STACK_BYTES: usize = 256 * 1024;
}

#[cfg(feature = "small-geometry")]
mod chosen {
    pub const SEGMENT_SHIFT: usize = 16;
    pub const PAGE_SHIFT: usize = 11;
    pub const MAX_CLASS_SIZE: usize = 8 * 1024;
    pub const MAP_LEAF_BITS: usize = 10;
    pub const SPAN_BLOCKS: usize = 2;
    pub const MAX_SPAN_PAGES: usize = 4;
    pub const KEEP_LAST_PAGE: bool = false;
    pub const HOT_MAX_SIZE: usize = 0;
    pub const HOT_DEPTH: usize = 0;
    pub const HOT_STACK_BYTES: usize = 0;
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
/// Blocks a medium span is sized for (its pages: `ceil(size * SPAN_BLOCKS / PAGE_SIZE)`, capped
/// at [`MAX_SPAN_PAGES`]).
pub const SPAN_BLOCKS: usize = chosen::SPAN_BLOCKS;
/// Pages per span are capped: half a segment by default; four pages in the small geometry, where
/// 64 KiB must serve many classes at once.
pub const MAX_SPAN_PAGES: usize = chosen::MAX_SPAN_PAGES;
/// Blocks of the largest class in one span of `MAX_SPAN_PAGES` pages.
pub const MIN_SPAN_BLOCKS: usize = MAX_SPAN_PAGES * PAGE_SIZE / MAX_CLASS_SIZE;
/// Whether a heap keeps the last, empty page of a class instead of retiring it (saves a page
/// round trip when one block is allocated and freed at a page boundary; off in the small
/// geometry, whose 30 pages cannot hold an empty page for every class in use).
pub const KEEP_LAST_PAGE: bool = chosen::KEEP_LAST_PAGE;
/// Blocks up to this size go through a heap's hot stacks (0: no hot stacks; the small geometry
/// cannot afford pages pinned by cached blocks, nor the stacks' room in the heap).
pub const HOT_MAX_SIZE: usize = chosen::HOT_MAX_SIZE;
/// Blocks one hot stack holds at most (per class, per heap).
pub const HOT_DEPTH: usize = chosen::HOT_DEPTH;
/// Bytes of blocks one hot stack holds at most: a class of blocks larger than
/// `HOT_STACK_BYTES / HOT_DEPTH` (2 KiB) stacks fewer than `HOT_DEPTH` of them (8 of 32 KiB,
/// one of 256 KiB), and takes that many slots in the heap (see `heap::hot::HotArea`).
pub const HOT_STACK_BYTES: usize = chosen::HOT_STACK_BYTES;
/// log2 of the segments one leaf of the segment map covers.
pub const MAP_LEAF_BITS: usize = chosen::MAP_LEAF_BITS;

const _: () = assert!(PAGES_PER_SEGMENT <= 32 && PAGES_PER_SEGMENT >= 8);
const _: () = assert!(MAX_CLASS_SIZE.is_power_of_two() && MAX_CLASS_SIZE > MAX_SMALL_SIZE);
const _: () = assert!(MIN_SPAN_BLOCKS >= 1 && MAX_SPAN_PAGES <= PAGES_PER_SEGMENT / 2);
