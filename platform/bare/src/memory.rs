//! kiln's [`MemorySource`] on bare metal: segments carved out of the RAM above the kernel image.
//!
//! ```text
//!   RAM start        image          pool base (2 MiB aligned)                 RAM end
//!   | firmware/DTB | kernel | pad | seg 0 | seg 1 | ...               | seg n-1 | tail |
//! ```
//! The pool's state is a [`SegmentBitmap`] whose storage comes from the early heap, behind an
//! [`IrqMutex`] (the allocator's slow path may run with interrupts on or off).
use core::alloc::Layout;
use core::ops::Range;

use kiln::platform::MemorySource;

use crate::segments::{SegmentBitmap, SEGMENT_SIZE};
use crate::sync::IrqMutex;
use crate::{early_heap, println};

static POOL: IrqMutex<Option<SegmentBitmap<'static>>> = IrqMutex::new(None);

/// The machine's RAM as a source of segments.
pub struct BareMemory;

/// The one memory source (hand `&MEMORY` to kiln).
pub static MEMORY: BareMemory = BareMemory;

/// Builds the pool from `ram`, leaving out everything below `reserved_end` (image, boot data).
pub(crate) fn init(ram: Range<usize>, reserved_end: usize) {
    let base = ram.start.max(reserved_end).next_multiple_of(SEGMENT_SIZE);
    let end = ram.end & !(SEGMENT_SIZE - 1);
    let segments = end.saturating_sub(base) / SEGMENT_SIZE;
    let words = SegmentBitmap::words_for(segments).max(1);
    let layout = Layout::array::<usize>(words).expect("bitmap layout");
    let storage = early_heap::alloc(layout).cast::<usize>();
    assert!(
        !storage.is_null(),
        "early heap too small for the segment bitmap"
    );
    // SAFETY: `storage` is a fresh, suitably aligned allocation of `words` words that is never
    // freed; zeroing it makes every word initialised before the slice is formed.
    let storage = unsafe {
        storage.write_bytes(0, words);
        core::slice::from_raw_parts_mut(storage, words)
    };
    let mut pool = POOL.lock();
    assert!(pool.is_none(), "memory initialised twice");
    *pool = Some(SegmentBitmap::new(base, segments, storage));
}

/// Segments free now (0 before boot set the pool up).
pub fn free_segments() -> usize {
    POOL.lock().as_ref().map_or(0, SegmentBitmap::free_segments)
}

/// Segments in the pool.
pub fn total_segments() -> usize {
    POOL.lock()
        .as_ref()
        .map_or(0, SegmentBitmap::total_segments)
}

// SAFETY: reserve hands out only pool segments that are marked used until released, aligned to
// SEGMENT_SIZE, identity-mapped read/write; the pool is behind a lock, so any CPU may call in.
unsafe impl MemorySource for BareMemory {
    fn reserve(&self, count: usize) -> *mut u8 {
        POOL.lock()
            .as_mut()
            .and_then(|pool| pool.reserve(count))
            .map_or(core::ptr::null_mut(), |addr| addr as *mut u8)
    }

    unsafe fn release(&self, base: *mut u8, count: usize) {
        let result = POOL
            .lock()
            .as_mut()
            .map(|pool| pool.release(base as usize, count));
        if let Some(Err(e)) = result {
            // Refused unchanged: a wrong release must not hand the same memory out twice.
            println!("[kiln-bare] segment release refused at {base:p} x{count}: {e:?}");
        }
    }
}
