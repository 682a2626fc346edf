//! The `no_std` peers (talc, linked_list_allocator, buddy_system_allocator, rlsf) on a fixed arena.
//!
//! Glossary:
//! - arena: one anonymous `mmap` of [`ARENA_BYTES`] (`MAP_NORESERVE`), handed whole to the
//!   allocator at creation and unmapped when the [`ArenaAlloc`] is dropped. Pages the allocator
//!   never touches cost no memory, so the peak-RSS measurement sees only what it really uses.
//! - [`ArenaHeap`]: the three operations the harness needs from a `no_std` heap, implemented by a
//!   thin adapter per crate (each uses the crate's own realloc when it has one).
//! - [`ArenaAlloc`]: the heap behind a `spin::Mutex`, exposed as `GlobalAlloc` so every peer runs
//!   through the same `&dyn GlobalAlloc` code path as the hosted allocators.
//!
//! Invariant: a heap never hands out memory outside its arena, and the arena outlives the heap
//! (the heap is dropped before the mapping is released, see [`ArenaAlloc`]'s `Drop`).
use std::alloc::{GlobalAlloc, Layout};
use std::ptr::{self, NonNull};

/// Arena size for every `no_std` peer: large enough for the biggest workload (mid-large keeps up
/// to ~80 MiB live; buddy rounds every block up to a power of two).
pub const ARENA_BYTES: usize = 1 << 30;

/// What the harness needs from a `no_std` heap that manages one arena.
pub trait ArenaHeap: Send {
    /// A fresh heap owning `[base, base + size)`.
    ///
    /// # Safety
    /// The range must be writable, unused by anything else, and outlive the heap.
    unsafe fn create(base: *mut u8, size: usize) -> Self
    where
        Self: Sized;
    /// Allocates a block for `layout` (size > 0), or returns null when the arena is exhausted.
    fn alloc(&mut self, layout: Layout) -> *mut u8;
    /// Frees a block.
    ///
    /// # Safety
    /// `ptr` came from `alloc`/`realloc` of this heap with this `layout` and is not freed yet.
    unsafe fn dealloc(&mut self, ptr: *mut u8, layout: Layout);
    /// Resizes a block; the default allocates, copies and frees (what a heap without its own
    /// realloc would make its users do).
    ///
    /// # Safety
    /// As for `dealloc`; `new_size` > 0.
    unsafe fn realloc(&mut self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return ptr::null_mut();
        };
        let new = self.alloc(new_layout);
        if !new.is_null() {
            // SAFETY: both blocks are live, distinct, and at least `min(old, new)` bytes long.
            unsafe { ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
            // SAFETY: forwarded from the caller's contract.
            unsafe { self.dealloc(ptr, layout) };
        }
        new
    }
}

/// A `no_std` heap on its own mmap'd arena, behind a spin lock.
pub struct ArenaAlloc<H: ArenaHeap> {
    heap: Option<spin::Mutex<H>>,
    base: *mut u8,
}

// SAFETY: the arena is only reached through the heap, and the heap only through the mutex.
unsafe impl<H: ArenaHeap> Sync for ArenaAlloc<H> {}
// SAFETY: as above; the raw base pointer is only used again to unmap the arena in `drop`.
unsafe impl<H: ArenaHeap> Send for ArenaAlloc<H> {}

impl<H: ArenaHeap> ArenaAlloc<H> {
    /// Maps a fresh arena and builds the heap on it; an error if the mapping fails.
    pub fn new() -> Result<Self, String> {
        // SAFETY: an anonymous private mapping with no address hint has no preconditions.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                ARENA_BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(format!(
                "mmap of a {ARENA_BYTES}-byte arena failed: {}",
                std::io::Error::last_os_error()
            ));
        }
        let base = base.cast::<u8>();
        // SAFETY: the mapping is fresh, writable, private to this heap and lives until `drop`.
        let heap = unsafe { H::create(base, ARENA_BYTES) };
        Ok(Self {
            heap: Some(spin::Mutex::new(heap)),
            base,
        })
    }

    fn heap(&self) -> spin::MutexGuard<'_, H> {
        self.heap.as_ref().expect("heap lives until drop").lock()
    }
}

impl<H: ArenaHeap> Drop for ArenaAlloc<H> {
    fn drop(&mut self) {
        drop(self.heap.take());
        // SAFETY: `base` is the mapping made in `new`, and the heap that used it is gone.
        unsafe { libc::munmap(self.base.cast(), ARENA_BYTES) };
    }
}

// SAFETY: every method forwards to a heap that owns a private arena, under the lock.
unsafe impl<H: ArenaHeap> GlobalAlloc for ArenaAlloc<H> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        self.heap().alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: GlobalAlloc's contract is ArenaHeap::dealloc's.
        unsafe { self.heap().dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: GlobalAlloc's contract is ArenaHeap::realloc's.
        unsafe { self.heap().realloc(ptr, layout, new_size) }
    }
}

/// talc 5 with a manually claimed arena.
pub struct Talc(talc::base::Talc<talc::source::Manual, talc::DefaultBinning>);

impl ArenaHeap for Talc {
    unsafe fn create(base: *mut u8, size: usize) -> Self {
        let mut t = talc::base::Talc::new(talc::source::Manual);
        // SAFETY: forwarded from the caller: the range is ours alone for the heap's life.
        let claimed = unsafe { t.claim(base, size) };
        assert!(claimed.is_some(), "talc refused a {size}-byte arena");
        Self(t)
    }
    fn alloc(&mut self, layout: Layout) -> *mut u8 {
        // SAFETY: the harness never asks for zero bytes.
        unsafe { self.0.allocate(layout) }.map_or(ptr::null_mut(), NonNull::as_ptr)
    }
    unsafe fn dealloc(&mut self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded from the caller.
        unsafe { self.0.deallocate(ptr, layout) }
    }
    unsafe fn realloc(&mut self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded from the caller; talc grows or shrinks in place when it can.
        if unsafe { self.0.try_realloc_in_place(ptr, layout, new_size) } {
            return ptr;
        }
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return ptr::null_mut();
        };
        let new = self.alloc(new_layout);
        if !new.is_null() {
            // SAFETY: distinct live blocks, the new one larger (in-place shrink never fails).
            unsafe { ptr::copy_nonoverlapping(ptr, new, layout.size()) };
            // SAFETY: forwarded from the caller.
            unsafe { self.0.deallocate(ptr, layout) };
        }
        new
    }
}

/// linked_list_allocator's first-fit heap (no realloc of its own).
pub struct LinkedList(linked_list_allocator::Heap);

impl ArenaHeap for LinkedList {
    unsafe fn create(base: *mut u8, size: usize) -> Self {
        // SAFETY: forwarded from the caller.
        Self(unsafe { linked_list_allocator::Heap::new(base, size) })
    }
    fn alloc(&mut self, layout: Layout) -> *mut u8 {
        self.0
            .allocate_first_fit(layout)
            .map_or(ptr::null_mut(), NonNull::as_ptr)
    }
    unsafe fn dealloc(&mut self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded from the caller; `ptr` is non-null because it came from `alloc`.
        unsafe { self.0.deallocate(NonNull::new_unchecked(ptr), layout) }
    }
}

/// buddy_system_allocator with orders up to 2^32 bytes (no realloc of its own).
pub struct Buddy(buddy_system_allocator::Heap<33>);

impl ArenaHeap for Buddy {
    unsafe fn create(base: *mut u8, size: usize) -> Self {
        let mut h = buddy_system_allocator::Heap::<33>::new();
        // SAFETY: forwarded from the caller.
        unsafe { h.init(base as usize, size) };
        Self(h)
    }
    fn alloc(&mut self, layout: Layout) -> *mut u8 {
        self.0
            .alloc(layout)
            .map_or(ptr::null_mut(), NonNull::as_ptr)
    }
    unsafe fn dealloc(&mut self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded from the caller; `ptr` is non-null because it came from `alloc`.
        unsafe { self.0.dealloc(NonNull::new_unchecked(ptr), layout) }
    }
}

/// rlsf's TLSF: 28 first-level classes (blocks up to 8 GiB), 16 second-level classes each.
pub struct Rlsf(rlsf::Tlsf<'static, u32, u16, 28, 16>);

impl ArenaHeap for Rlsf {
    unsafe fn create(base: *mut u8, size: usize) -> Self {
        let mut t = rlsf::Tlsf::new();
        let block = NonNull::slice_from_raw_parts(
            NonNull::new(base).expect("mmap never returns null"),
            size,
        );
        // SAFETY: forwarded from the caller: the block is ours alone for the heap's life.
        let taken = unsafe { t.insert_free_block_ptr(block) };
        assert!(taken.is_some(), "rlsf refused a {size}-byte arena");
        Self(t)
    }
    fn alloc(&mut self, layout: Layout) -> *mut u8 {
        self.0
            .allocate(layout)
            .map_or(ptr::null_mut(), NonNull::as_ptr)
    }
    unsafe fn dealloc(&mut self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded from the caller; `ptr` is non-null because it came from `alloc`.
        unsafe {
            self.0
                .deallocate(NonNull::new_unchecked(ptr), layout.align())
        }
    }
    unsafe fn realloc(&mut self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return ptr::null_mut();
        };
        // SAFETY: forwarded from the caller; same alignment as the original allocation.
        unsafe {
            self.0
                .reallocate(NonNull::new_unchecked(ptr), new_layout)
                .map_or(ptr::null_mut(), NonNull::as_ptr)
        }
    }
}
