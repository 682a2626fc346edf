//! The heap's table of verified segments: a segment this heap owns whose free passed the
//! segment map, cookie and owner checks, so later frees into it skip them. An entry is cleared
//! before its segment leaves the heap; only the owning heap reads or writes the table.
use super::Heap;
use crate::allocator::geometry::SEGMENT_SHIFT;
use crate::allocator::segment::Segment;
use crate::allocator::segment_map;

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

    /// Whether a free into `seg` verified it as a registered segment of kiln's (segment map and
    /// cookie), and no segment has been unregistered since: then those two tests may be skipped
    /// (the owner test may not: `seg` may belong to any heap).
    #[inline(always)]
    pub(crate) fn knows_foreign(&self, seg: *const Segment) -> bool {
        // SAFETY: the index is masked to the array's length.
        let entry = unsafe { *self.foreign.get_unchecked(known_slot(seg)) };
        entry == seg as usize && segment_map::removals() == self.foreign_removals
    }

    /// Records `seg` for [`knows_foreign`](Self::knows_foreign), emptying the table first if a
    /// segment was unregistered since it was last emptied.
    ///
    /// # Safety
    /// `seg` is a live segment of kiln's (segment map and cookie checked).
    #[inline(always)]
    pub(crate) unsafe fn remember_foreign(&mut self, seg: *const Segment) {
        let removals = segment_map::removals();
        if removals != self.foreign_removals {
            self.foreign = [NOT_A_SEGMENT; KNOWN_SEGMENTS];
            self.foreign_removals = removals;
        }
        // SAFETY: the index is masked to the array's length.
        unsafe { *self.foreign.get_unchecked_mut(known_slot(seg)) = seg as usize };
    }

    /// The segments [`knows_foreign`](Self::knows_foreign) holds while they are valid (for
    /// `check`).
    pub(crate) fn foreign_segments(&self) -> impl Iterator<Item = *mut Segment> + '_ {
        let valid = segment_map::removals() == self.foreign_removals;
        self.foreign
            .iter()
            .filter(move |&&s| valid && s != NOT_A_SEGMENT)
            .map(|&s| s as *mut Segment)
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
