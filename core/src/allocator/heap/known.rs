//! The heap's table of verified segments: a segment this heap owns whose free passed the
//! segment map, cookie and owner checks, so later frees into it skip them. An entry is cleared
//! before its segment leaves the heap; only the owning heap reads or writes the table.
use super::Heap;
use crate::allocator::geometry::SEGMENT_SHIFT;
use crate::allocator::segment::Segment;

/// Entries of [`Heap::known`]: a power of two.
pub(super) const KNOWN_SEGMENTS: usize = 64;

/// An empty [`Heap::known`] entry: not segment-aligned, so no segment address equals it.
pub(super) const NOT_A_SEGMENT: usize = 1;

/// The [`Heap::known`] entry for `seg`.
#[inline(always)]
pub(super) fn known_slot(seg: *const Segment) -> usize {
    (seg as usize >> SEGMENT_SHIFT) & (KNOWN_SEGMENTS - 1)
}

impl Heap {
    /// Whether a free has verified `seg` as a live segment this heap owns (and it still does):
    /// then the segment map, cookie and owner tests may be skipped.
    #[inline(always)]
    pub(crate) fn knows(&self, seg: *const Segment) -> bool {
        // SAFETY: the index is masked to the array's length.
        unsafe { *self.known.get_unchecked(known_slot(seg)) == seg as usize }
    }

    /// Records `seg` for [`knows`](Self::knows).
    ///
    /// # Safety
    /// `seg` is a live segment of kiln's (segment map and cookie checked) that this heap owns.
    #[inline(always)]
    pub(crate) unsafe fn remember(&mut self, seg: *const Segment) {
        // SAFETY: the index is masked to the array's length.
        unsafe { *self.known.get_unchecked_mut(known_slot(seg)) = seg as usize };
    }

    /// The segments [`knows`](Self::knows) holds (for `check`).
    pub(crate) fn known_segments(&self) -> impl Iterator<Item = *mut Segment> + '_ {
        self.known
            .iter()
            .filter(|&&s| s != NOT_A_SEGMENT)
            .map(|&s| s as *mut Segment)
    }

    /// Drops `seg` from [`knows`](Self::knows): before it leaves this heap.
    pub(super) fn forget(&mut self, seg: *const Segment) {
        if self.knows(seg) {
            self.known[known_slot(seg)] = NOT_A_SEGMENT;
        }
    }
}
