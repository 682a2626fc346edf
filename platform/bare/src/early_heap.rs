//! The early heap: `linked_list_allocator` over a fixed region inside the image, for what must
//! be allocated before kiln's heaps exist (the segment bitmap, sized from the RAM found at boot;
//! a kernel's own allocations before it turns kiln on).
use core::alloc::Layout;
use core::cell::UnsafeCell;
use core::ptr::{self, NonNull};

use linked_list_allocator::Heap;

use crate::sync::IrqMutex;

/// Bytes in the early heap (inside `.bss`).
pub const EARLY_HEAP_SIZE: usize = 256 * 1024;

#[repr(C, align(4096))]
struct Region(UnsafeCell<[u8; EARLY_HEAP_SIZE]>);

// SAFETY: the bytes are only reached through HEAP, which is behind a lock.
unsafe impl Sync for Region {}

static REGION: Region = Region(UnsafeCell::new([0; EARLY_HEAP_SIZE]));
static HEAP: IrqMutex<Heap> = IrqMutex::new(Heap::empty());

/// Hands the region to the allocator. Called once by the boot CPU.
pub(crate) fn init() {
    let mut heap = HEAP.lock();
    assert_eq!(heap.size(), 0, "early heap initialised twice");
    // SAFETY: REGION is static, unused by anything else, and handed over exactly once.
    unsafe { heap.init(REGION.0.get().cast(), EARLY_HEAP_SIZE) };
}

/// Allocates from the early heap; null when it is exhausted.
pub fn alloc(layout: Layout) -> *mut u8 {
    HEAP.lock()
        .allocate_first_fit(layout)
        .map_or(ptr::null_mut(), NonNull::as_ptr)
}

/// Frees a block of the early heap.
///
/// # Safety
/// `ptr` came from [`alloc`] with this `layout` and is not used afterwards.
pub unsafe fn dealloc(ptr: *mut u8, layout: Layout) {
    if let Some(p) = NonNull::new(ptr) {
        // SAFETY: forwarded from the caller's contract.
        unsafe { HEAP.lock().deallocate(p, layout) };
    }
}

/// Whether `ptr` points into the early heap (so it must be freed here, not to kiln).
pub fn contains(ptr: *const u8) -> bool {
    let start = REGION.0.get() as usize;
    (start..start + EARLY_HEAP_SIZE).contains(&(ptr as usize))
}

/// Bytes in use in the early heap.
pub fn used() -> usize {
    HEAP.lock().used()
}
