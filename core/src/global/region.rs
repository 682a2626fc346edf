//! Memory sources over fixed memory: [`Region`] (a range found at boot) and [`StaticRegion`]
//! (a static array), each a bitmap of the segments it handed out.
use core::cell::UnsafeCell;

use super::*;
/// Most segments a [`Region`] or [`StaticRegion`] can hold (one bit each).
pub const REGION_MAX_SEGMENTS: usize = REGION_WORDS * usize::BITS as usize;
const REGION_WORDS: usize = 8;

/// Which segments of a region are handed out.
struct RegionMap {
    base: usize,
    segments: usize,
    used: [usize; REGION_WORDS],
}

impl RegionMap {
    const fn empty() -> RegionMap {
        RegionMap {
            base: 0,
            segments: 0,
            used: [0; REGION_WORDS],
        }
    }

    fn set(&mut self, start: usize, count: usize, on: bool) {
        let bits = usize::BITS as usize;
        for i in start..start + count {
            if on {
                self.used[i / bits] |= 1 << (i % bits);
            } else {
                self.used[i / bits] &= !(1 << (i % bits));
            }
        }
    }

    fn is_used(&self, i: usize) -> bool {
        let bits = usize::BITS as usize;
        self.used[i / bits] & (1 << (i % bits)) != 0
    }

    fn reserve(&mut self, count: usize) -> *mut u8 {
        if count == 0 || count > self.segments {
            return ptr::null_mut();
        }
        let mut start = 0;
        while start + count <= self.segments {
            match (start..start + count).rev().find(|&i| self.is_used(i)) {
                Some(used) => start = used + 1,
                None => {
                    self.set(start, count, true);
                    return (self.base + start * SEGMENT_SIZE) as *mut u8;
                }
            }
        }
        ptr::null_mut()
    }

    fn release(&mut self, base: *mut u8, count: usize) {
        let Some(off) = (base as usize).checked_sub(self.base) else {
            return;
        };
        let start = off / SEGMENT_SIZE;
        if start.saturating_add(count) <= self.segments {
            self.set(start, count, false);
        }
    }

    /// The segment-aligned part of `start..start + len`, capped at the map's capacity.
    fn cover(&mut self, start: usize, len: usize) {
        let base = start.next_multiple_of(SEGMENT_SIZE);
        let end = (start + len) & !(SEGMENT_SIZE - 1);
        self.base = base;
        self.segments = (end.saturating_sub(base) / SEGMENT_SIZE).min(REGION_MAX_SEGMENTS);
    }
}

/// A [`MemorySource`] over one range of memory the host hands over at run time (RAM found at
/// boot, a reserved carve-out). Its segment-aligned part is used, at most
/// [`REGION_MAX_SEGMENTS`] segments.
///
/// ```no_run
/// static REGION: kiln::global::Region = kiln::global::Region::new();
/// static POOL: kiln::allocator::Pool = kiln::allocator::Pool::new(&REGION);
/// #[global_allocator]
/// static ALLOC: kiln::global::LockedHeap = kiln::global::LockedHeap::new(&POOL);
/// # let (ram_start, ram_len) = (0usize, 0usize);
/// // At boot, before the first allocation.
/// // SAFETY: the range is read/write RAM that nothing else uses for the rest of the program.
/// unsafe { REGION.init(ram_start as *mut u8, ram_len) };
/// ```
pub struct Region {
    map: spin::Mutex<RegionMap>,
}

impl Region {
    /// An empty region (every reservation fails until [`init`](Self::init)).
    pub const fn new() -> Region {
        Region {
            map: spin::Mutex::new(RegionMap::empty()),
        }
    }

    /// Hands `len` bytes at `start` to the region; true when taken. A second call replaces the
    /// range only while nothing was reserved from the first (else it returns false).
    ///
    /// # Safety
    /// The range is readable and writable memory that nothing else uses from now on, for the
    /// rest of the program.
    pub unsafe fn init(&self, start: *mut u8, len: usize) -> bool {
        let mut map = self.map.lock();
        if map.used.iter().any(|&w| w != 0) {
            return false;
        }
        map.cover(start as usize, len);
        true
    }

    /// Segments the region holds.
    pub fn segments(&self) -> usize {
        self.map.lock().segments
    }
}

impl Default for Region {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: hands out only segment-aligned runs inside the range given to `init` (memory the
// host gave up for good), each at most once until released; a lock guards the bitmap.
unsafe impl MemorySource for Region {
    fn reserve(&self, count: usize) -> *mut u8 {
        self.map.lock().reserve(count)
    }

    unsafe fn release(&self, base: *mut u8, count: usize) {
        self.map.lock().release(base, count);
    }

    fn can_release_parts(&self) -> bool {
        true
    }
}

/// A [`MemorySource`] over a static array of `N` bytes inside the program (firmware, a kernel
/// without a memory map yet, tests). The array's segment-aligned part is used: align the
/// static's placement to `SEGMENT_SIZE` to use all of it.
///
/// ```no_run
/// static REGION: kiln::global::StaticRegion<{ 8 << 20 }> = kiln::global::StaticRegion::new();
/// static POOL: kiln::allocator::Pool = kiln::allocator::Pool::new(&REGION);
/// #[global_allocator]
/// static ALLOC: kiln::global::LockedHeap = kiln::global::LockedHeap::new(&POOL);
/// # fn main() {}
/// ```
pub struct StaticRegion<const N: usize> {
    bytes: UnsafeCell<[MaybeUninit<u8>; N]>,
    map: spin::Mutex<RegionMap>,
}

// SAFETY: the bytes are only reached through segments handed out under the map's lock.
unsafe impl<const N: usize> Sync for StaticRegion<N> {}

impl<const N: usize> StaticRegion<N> {
    /// The region (its bytes are not touched until handed out).
    pub const fn new() -> Self {
        assert!(
            N / SEGMENT_SIZE <= REGION_MAX_SEGMENTS,
            "StaticRegion larger than REGION_MAX_SEGMENTS segments"
        );
        StaticRegion {
            bytes: UnsafeCell::new([const { MaybeUninit::uninit() }; N]),
            map: spin::Mutex::new(RegionMap::empty()),
        }
    }

    fn map(&self) -> spin::MutexGuard<'_, RegionMap> {
        let mut map = self.map.lock();
        if map.base == 0 {
            map.cover(self.bytes.get() as usize, N);
        }
        map
    }

    /// Segments the region holds (depends on where the array was placed).
    pub fn segments(&self) -> usize {
        self.map().segments
    }
}

impl<const N: usize> Default for StaticRegion<N> {
    fn default() -> Self {
        Self::new()
    }
}

// SAFETY: hands out only segment-aligned runs inside its own array, each at most once until
// released; a lock guards the bitmap.
unsafe impl<const N: usize> MemorySource for StaticRegion<N> {
    fn reserve(&self, count: usize) -> *mut u8 {
        self.map().reserve(count)
    }

    unsafe fn release(&self, base: *mut u8, count: usize) {
        self.map().release(base, count);
    }

    fn can_release_parts(&self) -> bool {
        true
    }
}
