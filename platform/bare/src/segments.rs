//! The segment bitmap: which 2 MiB segments of the machine's RAM are free.
//!
//! ```text
//!   base                                   base + n * SEGMENT_SIZE
//!   |  seg 0  |  seg 1  |  seg 2  |  ...  |  seg n-1  |
//!   bit 0 = 1  bit 1 = 0 ...                            1 = free, 0 = handed out
//! ```
//!
//! Invariants: `base` is aligned to [`SEGMENT_SIZE`]; `free_count` equals the number of set bits;
//! a run handed out by [`SegmentBitmap::reserve`] has all its bits clear until
//! [`SegmentBitmap::release`] sets them again. The bitmap never touches the memory it describes,
//! so it is plain data that host unit tests can drive.
use bitvec::prelude::*;

/// Size of one segment (2 MiB), the unit the memory source hands out: kiln's own.
pub use kiln::allocator::SEGMENT_SIZE;

/// Why a release was refused (the bitmap is left unchanged).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReleaseError {
    /// The address is not aligned to a segment.
    Misaligned,
    /// The run is not inside the pool.
    OutOfRange,
    /// Some segment of the run is already free (double release or a wrong count).
    NotReserved,
}

/// Free/used state of every segment in one contiguous stretch of RAM.
pub struct SegmentBitmap<'a> {
    base: usize,
    free: &'a mut BitSlice<usize, Lsb0>,
    free_count: usize,
}

impl<'a> SegmentBitmap<'a> {
    /// Words of storage needed for `segments` bits.
    pub const fn words_for(segments: usize) -> usize {
        segments.div_ceil(usize::BITS as usize)
    }

    /// A pool of `segments` free segments starting at `base` (aligned to [`SEGMENT_SIZE`]),
    /// with its bits kept in `storage` (at least [`Self::words_for`] words).
    pub fn new(base: usize, segments: usize, storage: &'a mut [usize]) -> Self {
        assert!(
            base.is_multiple_of(SEGMENT_SIZE),
            "pool base must be segment-aligned"
        );
        assert!(
            storage.len() >= Self::words_for(segments),
            "bitmap storage too small"
        );
        let free = &mut storage.view_bits_mut::<Lsb0>()[..segments];
        free.fill(true);
        SegmentBitmap {
            base,
            free,
            free_count: segments,
        }
    }

    /// Hands out `count >= 1` contiguous free segments (lowest address first), or `None`.
    pub fn reserve(&mut self, count: usize) -> Option<usize> {
        if count == 0 || count > self.free_count {
            return None;
        }
        let start = self.find_run(count)?;
        self.free[start..start + count].fill(false);
        self.free_count -= count;
        Some(self.base + start * SEGMENT_SIZE)
    }

    /// First index of `count` consecutive set bits.
    fn find_run(&self, count: usize) -> Option<usize> {
        let len = self.free.len();
        let mut start = self.free.first_one()?;
        loop {
            if start + count > len {
                return None;
            }
            match self.free[start..start + count].last_zero() {
                None => return Some(start),
                // No run can start at or before the last used bit of this window.
                Some(zero) => {
                    let after = start + zero + 1;
                    start = after + self.free[after..].first_one()?;
                }
            }
        }
    }

    /// Takes back `count` segments starting at `addr`, which must have come from one
    /// [`reserve`](Self::reserve) (or be a sub-run of one). Refuses anything else unchanged.
    pub fn release(&mut self, addr: usize, count: usize) -> Result<(), ReleaseError> {
        if !addr.is_multiple_of(SEGMENT_SIZE) {
            return Err(ReleaseError::Misaligned);
        }
        let start = addr
            .checked_sub(self.base)
            .ok_or(ReleaseError::OutOfRange)?
            / SEGMENT_SIZE;
        let end = start.checked_add(count).ok_or(ReleaseError::OutOfRange)?;
        if count == 0 || end > self.free.len() {
            return Err(ReleaseError::OutOfRange);
        }
        if self.free[start..end].any() {
            return Err(ReleaseError::NotReserved);
        }
        self.free[start..end].fill(true);
        self.free_count += count;
        Ok(())
    }

    /// Segments free now.
    pub fn free_segments(&self) -> usize {
        self.free_count
    }

    /// Segments in the pool.
    pub fn total_segments(&self) -> usize {
        self.free.len()
    }

    /// Whether `addr` lies inside the pool.
    pub fn contains(&self, addr: usize) -> bool {
        addr >= self.base && (addr - self.base) / SEGMENT_SIZE < self.free.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: usize = 0x4000_0000;

    fn with_pool(segments: usize, f: impl FnOnce(&mut SegmentBitmap)) {
        let mut storage = vec![0usize; SegmentBitmap::words_for(segments)];
        let mut pool = SegmentBitmap::new(BASE, segments, &mut storage);
        f(&mut pool);
    }

    #[test]
    fn reserves_lowest_first_and_runs_out() {
        with_pool(3, |p| {
            assert_eq!(p.reserve(1), Some(BASE));
            assert_eq!(p.reserve(1), Some(BASE + SEGMENT_SIZE));
            assert_eq!(p.reserve(1), Some(BASE + 2 * SEGMENT_SIZE));
            assert_eq!(p.reserve(1), None);
            assert_eq!(p.free_segments(), 0);
        });
    }

    #[test]
    fn contiguous_run_skips_holes() {
        with_pool(130, |p| {
            let a = p.reserve(1).unwrap();
            let b = p.reserve(1).unwrap();
            p.release(a, 1).unwrap();
            // Segment 0 is free but segment 1 is not: a 2-run starts at 2.
            assert_eq!(p.reserve(2), Some(BASE + 2 * SEGMENT_SIZE));
            // Runs crossing a word boundary (64 bits) work.
            let big = p.reserve(100).unwrap();
            assert_eq!(big, BASE + 4 * SEGMENT_SIZE);
            assert_eq!(
                p.reserve(27),
                None,
                "only 26 segments after the big run, plus one hole"
            );
            p.release(b, 1).unwrap();
            assert_eq!(p.reserve(2), Some(BASE));
        });
    }

    #[test]
    fn release_refuses_bad_input_unchanged() {
        with_pool(4, |p| {
            let a = p.reserve(2).unwrap();
            assert_eq!(p.release(a + 4096, 1), Err(ReleaseError::Misaligned));
            assert_eq!(
                p.release(BASE - SEGMENT_SIZE, 1),
                Err(ReleaseError::OutOfRange)
            );
            assert_eq!(p.release(a, 5), Err(ReleaseError::OutOfRange));
            assert_eq!(p.release(a, 0), Err(ReleaseError::OutOfRange));
            assert_eq!(p.release(a, 3), Err(ReleaseError::NotReserved));
            assert_eq!(p.free_segments(), 2);
            p.release(a, 2).unwrap();
            assert_eq!(
                p.release(a, 2),
                Err(ReleaseError::NotReserved),
                "double release"
            );
            assert_eq!(p.free_segments(), 4);
        });
    }

    #[test]
    fn memory_returns_after_a_burst() {
        with_pool(64, |p| {
            let got: Vec<usize> = (0..64).map(|_| p.reserve(1).unwrap()).collect();
            assert_eq!(p.reserve(1), None);
            for a in got {
                p.release(a, 1).unwrap();
            }
            assert_eq!(p.free_segments(), 64);
            assert_eq!(p.reserve(64), Some(BASE));
        });
    }
}
