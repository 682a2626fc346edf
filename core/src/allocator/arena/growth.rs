//! Growing arrays whose final length can be estimated from their input.
//!
//! # Glossary
//!
//! | term | meaning |
//! |---|---|
//! | input | what the items are produced from, measured in units (bytes of source text) |
//! | total | units in the whole input, known up front (the file's length) |
//! | consumed | units read so far when an item is pushed |
//! | hint | expected units per item (average line length: 40 bytes) |
//! | projection | `len * total / consumed`: the final length if the rest of the input looks like what was read |
//!
//! The line-offset table of a source file is the model case: its final length is about
//! `input length / average line length`. Plain doubling from an empty vector reallocates
//! `log2(lines)` times (and copies every offset that many times over); [`EstimatedVec`] reserves
//! `total / hint` up front and, if that was short, jumps straight to the projection:
//!
//! ```text
//!  capacity
//!     ^            plain doubling: 4, 8, 16, ... one reallocation per step
//!     |                                   ____________ EstimatedVec: reserve total/hint,
//!     |                         ______|---             then one jump to the projection
//!     |               ______|---
//!     |     ____|----
//!     +----------------------------------------------> items pushed
//! ```
//!
//! # Invariants
//!
//! - Growth is geometric even when the projection is off: each reallocation multiplies the
//!   capacity by at least [`MIN_GROWTH_NUM`]`/`[`MIN_GROWTH_DEN`] (5/4), so pushes stay amortised
//!   O(1).
//! - The projection is padded by 1/8 so that a slightly uneven input does not cost one more
//!   reallocation at the very end.
use allocator_api2::alloc::{Allocator, Global};
use allocator_api2::collections::TryReserveError;
use allocator_api2::vec::Vec;

/// Smallest growth factor per reallocation, as a fraction (5/4).
pub const MIN_GROWTH_NUM: usize = 5;
/// See [`MIN_GROWTH_NUM`].
pub const MIN_GROWTH_DEN: usize = 4;

/// Initial capacity for `total` units of input at about `hint` units per item (at least 1).
pub fn estimate_capacity(total: usize, hint: usize) -> usize {
    (total / hint.max(1)).saturating_add(1)
}

/// The capacity to grow to when `len == capacity` and `consumed` of `total` input units have
/// been read: the padded projection, but at least `capacity * 5/4` (and doubling when nothing has
/// been consumed, since then there is nothing to project from).
pub fn next_capacity(len: usize, capacity: usize, consumed: usize, total: usize) -> usize {
    let geometric_floor = (capacity.saturating_mul(MIN_GROWTH_NUM) / MIN_GROWTH_DEN)
        .max(capacity.saturating_add(1))
        .max(4);
    if consumed == 0 || consumed >= total {
        return capacity.saturating_mul(2).max(geometric_floor);
    }
    let projected = (len as u128 * total as u128).div_ceil(consumed as u128);
    let padded = projected + projected / 8 + 1;
    let padded = usize::try_from(padded).unwrap_or(usize::MAX);
    padded.max(geometric_floor)
}

/// A vector that reserves from an estimate of its final length and corrects the estimate with
/// the input consumed so far. Works in any [`Allocator`], including an [`Arena`](super::Arena).
pub struct EstimatedVec<T, A: Allocator = Global> {
    items: Vec<T, A>,
    total: usize,
    reallocations: usize,
}

impl<T> EstimatedVec<T, Global> {
    /// A vector for `total` units of input at about `hint` units per item, in the global heap.
    pub fn with_estimate(total: usize, hint: usize) -> Self {
        Self::with_estimate_in(total, hint, Global)
    }
}

impl<T, A: Allocator> EstimatedVec<T, A> {
    /// A vector for `total` units of input at about `hint` units per item, in `alloc`.
    ///
    /// # Panics
    ///
    /// If the initial reservation fails (like `Vec::with_capacity_in`); see
    /// [`EstimatedVec::try_with_estimate_in`].
    pub fn with_estimate_in(total: usize, hint: usize, alloc: A) -> Self {
        EstimatedVec {
            items: Vec::with_capacity_in(estimate_capacity(total, hint), alloc),
            total,
            reallocations: 0,
        }
    }

    /// Like [`EstimatedVec::with_estimate_in`], but an allocation failure is an error.
    ///
    /// # Errors
    ///
    /// The allocator's refusal of the initial reservation.
    pub fn try_with_estimate_in(
        total: usize,
        hint: usize,
        alloc: A,
    ) -> Result<Self, TryReserveError> {
        let mut items = Vec::new_in(alloc);
        items.try_reserve_exact(estimate_capacity(total, hint))?;
        Ok(EstimatedVec {
            items,
            total,
            reallocations: 0,
        })
    }

    /// Appends `value`, produced after reading `consumed` units of the input.
    ///
    /// # Panics
    ///
    /// If growing fails; see [`EstimatedVec::try_push`].
    #[inline]
    pub fn push(&mut self, value: T, consumed: usize) {
        if self.items.len() == self.items.capacity() {
            self.grow(consumed);
        }
        self.items.push(value);
    }

    /// Appends `value`, or reports that the vector could not grow (`value` is dropped then).
    ///
    /// # Errors
    ///
    /// The allocator's refusal to grow.
    #[inline]
    pub fn try_push(&mut self, value: T, consumed: usize) -> Result<(), TryReserveError> {
        if self.items.len() == self.items.capacity() {
            self.try_grow(consumed)?;
        }
        self.items.push(value);
        Ok(())
    }

    #[cold]
    #[inline(never)]
    fn grow(&mut self, consumed: usize) {
        let target = next_capacity(
            self.items.len(),
            self.items.capacity(),
            consumed,
            self.total,
        );
        self.items.reserve_exact(target - self.items.len());
        self.reallocations += 1;
    }

    #[cold]
    #[inline(never)]
    fn try_grow(&mut self, consumed: usize) -> Result<(), TryReserveError> {
        let target = next_capacity(
            self.items.len(),
            self.items.capacity(),
            consumed,
            self.total,
        );
        self.items.try_reserve_exact(target - self.items.len())?;
        self.reallocations += 1;
        Ok(())
    }

    /// Reallocations after the initial reservation.
    pub fn reallocations(&self) -> usize {
        self.reallocations
    }

    /// The items.
    pub fn as_slice(&self) -> &[T] {
        &self.items
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether there are no items.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Current capacity.
    pub fn capacity(&self) -> usize {
        self.items.capacity()
    }

    /// The underlying vector.
    pub fn into_vec(self) -> Vec<T, A> {
        self.items
    }
}

#[cfg(test)]
mod tests {
    use core::alloc::Layout;
    use core::cell::Cell;
    use core::ptr::NonNull;

    use allocator_api2::alloc::{AllocError, Allocator, Global};
    use allocator_api2::vec::Vec;
    use proptest::prelude::*;

    use super::{next_capacity, EstimatedVec};
    use crate::allocator::arena::Arena;

    /// Counts the calls that (re)allocate.
    #[derive(Default)]
    struct Counting {
        allocations: Cell<usize>,
        reallocations: Cell<usize>,
    }

    // SAFETY: forwards every call to `Global`; only counts.
    unsafe impl Allocator for &Counting {
        fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
            self.allocations.set(self.allocations.get() + 1);
            Global.allocate(layout)
        }
        unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
            // SAFETY: `ptr` came from `Global` with `layout`.
            unsafe { Global.deallocate(ptr, layout) }
        }
        unsafe fn grow(
            &self,
            ptr: NonNull<u8>,
            old: Layout,
            new: Layout,
        ) -> Result<NonNull<[u8]>, AllocError> {
            self.reallocations.set(self.reallocations.get() + 1);
            // SAFETY: the caller's contract, forwarded.
            unsafe { Global.grow(ptr, old, new) }
        }
    }

    /// A source text of `lines` lines whose lengths vary between 1 and 80 bytes (average about
    /// 33, so an estimate of 40 bytes per line is short by a fifth).
    fn source(lines: usize) -> std::string::String {
        let mut s = std::string::String::new();
        let mut seed = 0x2545_f491_u32;
        for _ in 0..lines {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let len = (seed % 64) as usize + (seed % 3) as usize;
            s.extend(core::iter::repeat_n('x', len));
            s.push('\n');
        }
        s
    }

    fn line_offsets_plain<'a>(text: &str, alloc: &'a Counting) -> Vec<u32, &'a Counting> {
        let mut offsets = Vec::new_in(alloc);
        offsets.push(0);
        for (i, b) in text.bytes().enumerate() {
            if b == b'\n' {
                offsets.push(i as u32 + 1);
            }
        }
        offsets
    }

    fn line_offsets_estimated<'a>(
        text: &str,
        alloc: &'a Counting,
    ) -> EstimatedVec<u32, &'a Counting> {
        let mut offsets = EstimatedVec::with_estimate_in(text.len(), 40, alloc);
        offsets.push(0, 0);
        for (i, b) in text.bytes().enumerate() {
            if b == b'\n' {
                offsets.push(i as u32 + 1, i + 1);
            }
        }
        offsets
    }

    #[test]
    fn estimated_line_offsets_save_most_reallocations() {
        let text = source(100_000);
        let plain_alloc = Counting::default();
        let plain = line_offsets_plain(&text, &plain_alloc);
        let estimated_alloc = Counting::default();
        let estimated = line_offsets_estimated(&text, &estimated_alloc);
        assert_eq!(&plain[..], estimated.as_slice());
        let plain_calls = plain_alloc.allocations.get() + plain_alloc.reallocations.get();
        let estimated_calls =
            estimated_alloc.allocations.get() + estimated_alloc.reallocations.get();
        std::println!(
            "line offsets of {} lines: plain Vec {} allocation calls ({} reallocations), \
             EstimatedVec {} ({} reallocations), final capacity {} for {} items",
            plain.len() - 1,
            plain_calls,
            plain_alloc.reallocations.get(),
            estimated_calls,
            estimated_alloc.reallocations.get(),
            estimated.capacity(),
            estimated.len()
        );
        // Doubling from 4 to 100 001 items: 15 reallocations. The estimate is 20% short, so one
        // correction.
        assert!(plain_alloc.reallocations.get() >= 14);
        assert_eq!(estimated_alloc.reallocations.get(), 1);
        assert_eq!(estimated.reallocations(), 1);
        assert!(
            estimated.capacity() < estimated.len() * 5 / 4,
            "no large overshoot"
        );
    }

    #[test]
    fn an_accurate_estimate_needs_no_reallocation_in_an_arena() {
        let text = source(10_000);
        let arena = Arena::new();
        let mut offsets = EstimatedVec::with_estimate_in(text.len(), 20, &arena);
        for (i, b) in text.bytes().enumerate() {
            if b == b'\n' {
                offsets.push(i as u32, i + 1);
            }
        }
        assert_eq!(offsets.len(), 10_000);
        assert_eq!(offsets.reallocations(), 0);
        assert_eq!(arena.stats().allocations, 1);
    }

    #[test]
    fn try_push_reports_allocation_failure() {
        let backing = OneChunk::default();
        let arena = Arena::with_options_in(
            crate::allocator::arena::ArenaOptions {
                first_chunk: 256,
                max_chunk: 256,
            },
            &backing,
        );
        let mut v = EstimatedVec::<u64, _>::try_with_estimate_in(0, 1, &arena).unwrap();
        let mut pushed = 0;
        while v.try_push(pushed, 0).is_ok() {
            pushed += 1;
            assert!(pushed < 1000, "a 256-byte chunk cannot hold 1000 u64");
        }
        assert!(pushed >= 16, "the first chunk was used: {pushed}");
        assert!(v.as_slice().iter().copied().eq(0..pushed));
        assert!(EstimatedVec::<u64, _>::try_with_estimate_in(1 << 20, 1, &arena).is_err());
    }

    /// A backing allocator that hands out one block, then refuses.
    #[derive(Default)]
    struct OneChunk {
        given: Cell<bool>,
    }

    // SAFETY: forwards to `Global`, refusing all but the first request.
    unsafe impl Allocator for &OneChunk {
        fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
            if self.given.replace(true) {
                return Err(AllocError);
            }
            Global.allocate(layout)
        }
        unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
            // SAFETY: `ptr` came from `Global` with `layout`.
            unsafe { Global.deallocate(ptr, layout) }
        }
    }

    proptest! {
        #[test]
        fn growth_is_geometric_whatever_the_projection(
            len in 0usize..1_000_000,
            consumed in 0usize..10_000_000,
            total in 0usize..10_000_000,
        ) {
            let next = next_capacity(len, len, consumed, total);
            prop_assert!(next > len);
            prop_assert!(next >= len * 5 / 4);
            if consumed > 0 && consumed < total {
                prop_assert!(next as u128 * consumed as u128 >= len as u128 * total as u128);
            }
        }
    }
}
