//! Size classes: the rounded block sizes pages are carved into.
//!
//! ```text
//!   class   0..=7   sizes 8, 16, ..., 64           (step 8)
//!   class   8..     4 classes per doubling: 80 96 112 128 | 160 192 224 256 | 320 ...
//!   class  35       8 KiB    <- last SMALL class: one 64 KiB page per page-run
//!   class  36..=55  10 KiB .. 256 KiB  MEDIUM classes: spans of several pages
//!   > 256 KiB       huge: a span of whole segments straight from the platform
//! ```
//!
//! Invariants:
//! - `class_size(class_of(n)) >= n` and `class_size(class_of(n)) <= n * 1.25` for `n > 64`
//!   (at most 8 bytes of waste below that);
//! - `class_of` is straight-line arithmetic (a leading-zero count), never a loop;
//! - every class size above 64 is a multiple of 16, so such blocks are 16-byte aligned when the
//!   page start is.

pub use super::geometry::{MAX_CLASS_SIZE, MAX_SMALL_SIZE};
use super::geometry::{MAX_SPAN_PAGES, PAGE_SIZE, SPAN_BLOCKS};

/// Number of page-backed size classes (small + medium): 56 (36 in the small geometry).
pub const CLASS_COUNT: usize = class_of(MAX_CLASS_SIZE) + 1;

/// The class of a block of `size` bytes (`1 <= size <= MAX_CLASS_SIZE`).
#[inline(always)]
pub const fn class_of(size: usize) -> usize {
    if size <= 64 {
        // sizes 0..=8 -> 0, 9..=16 -> 1, ...
        (size.saturating_sub(1)) >> 3
    } else {
        let n = size - 1;
        let bit = (usize::BITS - 1 - n.leading_zeros()) as usize; // floor(log2(n)), >= 6
        let group = bit - 6;
        let step = (n >> (bit - 2)) & 3;
        8 + group * 4 + step
    }
}

/// Sizes up to this are classed by a table lookup ([`small_index`], [`small_class_at`]).
pub(crate) const SMALL_LOOKUP_MAX: usize = 1024;

/// `SMALL_CLASS[i]`: the class of a block of `8 * i` bytes (`i = 0`: 16 bytes, so a zero-size
/// request with 16-byte alignment gets a 16-byte block too).
static SMALL_CLASS: [u8; SMALL_INDEX_LEN] = {
    let mut t = [0u8; SMALL_INDEX_LEN];
    t[0] = class_of(16) as u8;
    let mut i = 1;
    while i < t.len() {
        t[i] = class_of(i * 8) as u8;
        i += 1;
    }
    t
};

/// The class of a block of `size <= SMALL_LOOKUP_MAX` bytes aligned to `align <= 16` (both
/// checked by the caller; out of range is a logic error caught by `debug_assert`): one table
/// load. The size is rounded up to the alignment (at least 8) first, so a 16-aligned request gets
/// a class whose size is a multiple of 16.
#[cfg(test)]
pub(crate) fn small_class_of(size: usize, align: usize) -> usize {
    small_class_at(small_index(size, align))
}

/// Entries of the tables indexed by [`small_index`] (`SMALL_LOOKUP_MAX / 8 + 1`).
pub(crate) const SMALL_INDEX_LEN: usize = SMALL_LOOKUP_MAX / 8 + 1;

/// The index of a block of `size <= SMALL_LOOKUP_MAX` bytes aligned to `align <= 16` in the
/// tables of small requests ([`small_class_at`], the heap's hot-stack table): the size rounded up
/// to the alignment (at least 8), in units of 8. At most `SMALL_INDEX_LEN - 1`.
#[inline(always)]
pub(crate) fn small_index(size: usize, align: usize) -> usize {
    debug_assert!(size <= SMALL_LOOKUP_MAX && align <= 16 && align.is_power_of_two());
    // Units of 8 bytes, rounded up; a 16-aligned request rounds up to an even count (`align >>
    // 4` is 1 for 16 and 0 below). `size <= 1024`, a multiple of 16, so the index is at most 128.
    let idx = (size + 7) >> 3;
    idx + ((align >> 4) & idx & 1)
}

/// The class at a [`small_index`].
#[inline(always)]
pub(crate) fn small_class_at(idx: usize) -> usize {
    debug_assert!(idx < SMALL_CLASS.len());
    // SAFETY: `idx < SMALL_INDEX_LEN` (`small_index`), the table's length.
    unsafe { *SMALL_CLASS.get_unchecked(idx) as usize }
}

/// [`small_class_at`] in const context (for the tables built from it).
pub(crate) const fn small_class_at_const(idx: usize) -> usize {
    SMALL_CLASS[idx] as usize
}

/// The block size of `class` (`class < CLASS_COUNT`).
#[inline(always)]
pub const fn class_size(class: usize) -> usize {
    if class < 8 {
        (class + 1) * 8
    } else {
        let group = (class - 8) / 4;
        let step = (class - 8) % 4;
        let base = 64 << group;
        base + (step + 1) * (base / 4)
    }
}

/// Whether `class` is served from single-page spans.
#[inline(always)]
#[cfg(test)]
pub(crate) const fn is_small(class: usize) -> bool {
    class_size(class) <= MAX_SMALL_SIZE
}

/// Pages in one span of `class`: one for small classes; for medium classes enough pages that a
/// span holds about `SPAN_BLOCKS` blocks (eight; two in the small geometry), capped at
/// `MAX_SPAN_PAGES`.
pub(crate) const fn span_pages(class: usize) -> usize {
    let size = class_size(class);
    if size <= MAX_SMALL_SIZE {
        return 1;
    }
    let pages = (size * SPAN_BLOCKS).div_ceil(PAGE_SIZE);
    if pages > MAX_SPAN_PAGES {
        MAX_SPAN_PAGES
    } else {
        pages
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_cover_every_size_with_bounded_waste() {
        for n in 1..=MAX_CLASS_SIZE {
            let c = class_of(n);
            assert!(c < CLASS_COUNT, "size {n} -> class {c}");
            let s = class_size(c);
            assert!(s >= n, "size {n} -> class {c} of {s}");
            if n > 64 {
                assert!(
                    s * 4 <= n * 5,
                    "size {n} wastes too much in class {c} ({s})"
                );
            } else {
                assert!(s - n < 8);
            }
            if c > 0 {
                assert!(class_size(c - 1) < n, "size {n} should use class {}", c - 1);
            }
        }
        assert_eq!(class_size(CLASS_COUNT - 1), MAX_CLASS_SIZE);
    }

    #[test]
    fn the_small_table_agrees_with_class_of() {
        for align in [1, 2, 4, 8, 16] {
            for size in 0..=SMALL_LOOKUP_MAX {
                let rounded = ((size + align - 1) & !(align - 1)).max(align);
                let want = class_of(rounded);
                let got = small_class_of(size, align);
                assert!(class_size(got) >= size.max(1), "size {size} align {align}");
                if align == 16 || size > 0 {
                    assert_eq!(
                        got,
                        want.max(class_of(align.max(8))),
                        "size {size} align {align}"
                    );
                }
                assert!(
                    class_size(got).is_multiple_of(align.min(16)),
                    "size {size} align {align}"
                );
            }
        }
    }

    #[test]
    fn small_classes_reach_max_small_size_and_sizes_above_64_are_16_aligned() {
        assert!(is_small(class_of(MAX_SMALL_SIZE)));
        assert!(!is_small(class_of(MAX_SMALL_SIZE + 1)));
        for c in 8..CLASS_COUNT {
            assert_eq!(class_size(c) % 16, 0, "class {c}");
        }
    }

    #[test]
    fn medium_spans_hold_several_blocks_and_fit_half_a_segment() {
        for c in 0..CLASS_COUNT {
            let span = span_pages(c) * PAGE_SIZE;
            assert!(
                span / class_size(c) >= super::super::geometry::MIN_SPAN_BLOCKS,
                "class {c}"
            );
            assert!(span_pages(c) <= MAX_SPAN_PAGES);
        }
    }
}
