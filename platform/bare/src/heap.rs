//! kiln as the kernel's allocator: one kiln heap per CPU ([`LocalSlot`]), all drawing segments
//! from one [`Pool`] over the machine's RAM ([`crate::memory::MEMORY`]), and [`KilnAlloc`], a
//! `GlobalAlloc` on top.
//!
//! ```text
//!   KilnAlloc::alloc(layout)
//!     before boot set up memory  -> early heap (linked_list_allocator)
//!     after                      -> SLOT.with_heap(|h| h.alloc(size, align))
//!                                     interrupts masked, HEAPS[cpu_index()]
//!   KilnAlloc::dealloc(p)
//!     p in the early heap        -> early heap
//!     else                       -> kiln free: local list if this CPU's heap owns the page,
//!                                   else the owner's atomic thread_free list (a remote free)
//! ```
//! Invariants: a CPU only ever touches `HEAPS[its index]` (with interrupts masked, so no
//! handler on the same CPU can enter the heap half-way through an operation); heaps live for
//! the whole run (CPUs never go away), so no segment is ever abandoned.
use core::alloc::{GlobalAlloc, Layout};
use core::cell::UnsafeCell;
use core::ptr;
use core::sync::atomic::{AtomicBool, Ordering};

use kiln::alloc::heap::Heap;
use kiln::alloc::{FreeError, Pool};
use kiln::platform::LocalSlot;

use crate::cpu::{cpu_index, IrqGuard, MAX_CPUS};
use crate::{early_heap, exit, memory};

/// The pool every CPU's heap draws segments from.
pub static POOL: Pool = Pool::new(&memory::MEMORY);

struct CpuHeap(UnsafeCell<Heap>);

// SAFETY: each heap is only touched by the CPU whose index it has (see `CpuSlot`).
unsafe impl Sync for CpuHeap {}

static HEAPS: [CpuHeap; MAX_CPUS] =
    [const { CpuHeap(UnsafeCell::new(Heap::new(&POOL))) }; MAX_CPUS];

/// Set by boot once the segment pool exists; until then [`KilnAlloc`] serves the early heap.
static READY: AtomicBool = AtomicBool::new(false);

/// Called by boot after `memory::init`.
pub(crate) fn mark_ready() {
    READY.store(true, Ordering::Release);
}

/// The per-CPU [`LocalSlot`]: the heap of the calling CPU, with interrupts masked while it is
/// in use (the CPU is "pinned" to its heap: nothing else on this CPU can run in between).
pub struct CpuSlot;

/// The one slot (hand `&SLOT` to kiln).
pub static SLOT: CpuSlot = CpuSlot;

// SAFETY: `with_heap` hands out HEAPS[cpu_index()], the same heap every time on one CPU and a
// different one on every other CPU; interrupts are masked for the duration, so no handler on
// this CPU can reach the heap concurrently. It allocates nothing before `f` runs.
unsafe impl LocalSlot for CpuSlot {
    #[inline(always)]
    fn with_heap<R>(&self, f: impl FnOnce(&mut Heap) -> R) -> R {
        let _pinned = IrqGuard::new();
        // SAFETY: only this CPU uses its heap, and interrupts are off until `_pinned` drops.
        let heap = unsafe { &mut *HEAPS[cpu_index()].0.get() };
        f(heap)
    }
}

/// Allocates `size` bytes aligned to `align` on this CPU's heap; null when out of memory.
#[inline]
pub fn alloc(size: usize, align: usize) -> *mut u8 {
    SLOT.with_heap(|h| h.alloc(size, align))
}

/// Frees `p` (null is fine). A pointer kiln did not hand out, or a double free it can prove,
/// comes back as an error and changes nothing.
///
/// # Safety
/// If `p` is a live kiln block, nobody uses it after this call.
#[inline]
pub unsafe fn free(p: *mut u8) -> Result<(), FreeError> {
    // SAFETY: forwarded (caller).
    SLOT.with_heap(|h| unsafe { kiln::alloc::free(h, p) })
}

/// Resizes `p` (see [`kiln::alloc::realloc`]); null on out of memory, old block untouched.
///
/// # Safety
/// `p` is null or a live kiln block allocated with `align`; afterwards only the result is used.
pub unsafe fn realloc(p: *mut u8, new_size: usize, align: usize) -> Result<*mut u8, FreeError> {
    // SAFETY: forwarded (caller).
    SLOT.with_heap(|h| unsafe { kiln::alloc::realloc(h, p, new_size, align) })
}

/// Bytes usable at `p`, or `None` when `p` is not a live kiln block.
pub fn usable_size(p: *const u8) -> Option<usize> {
    kiln::alloc::usable_size(p)
}

/// Collects this CPU's heap (remote frees, empty pages) and returns cached empty segments to
/// the segment bitmap.
pub fn collect() {
    SLOT.with_heap(|h| h.collect());
    // The pool's own lock is a plain spin lock: hold it with interrupts masked too, so a handler
    // that allocates on this CPU cannot spin on it while we hold it.
    let _masked = IrqGuard::new();
    POOL.trim();
}

/// Walks this CPU's heap and checks kiln's invariants (every segment, page and free list).
pub fn check() -> Result<(), kiln::alloc::check::CheckError> {
    SLOT.with_heap(|h| h.check())
}

/// Reports a free kiln refused and fails the run: the kernel's view of memory is already wrong.
#[cold]
#[inline(never)]
fn invalid_free(p: *mut u8, e: FreeError) -> ! {
    crate::println!("[kiln-bare] invalid free of {p:p}: {e}");
    exit::failure()
}

/// kiln as the kernel's `#[global_allocator]`. Out of memory returns null (never panics inside
/// `GlobalAlloc`); an invalid free prints and fails the run.
pub struct KilnAlloc;

// SAFETY: blocks are at least `layout.size()` bytes aligned to `layout.align()` and not handed
// out again until freed, from the early heap or this CPU's kiln heap; both are CPU-safe.
unsafe impl GlobalAlloc for KilnAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !READY.load(Ordering::Acquire) {
            return early_heap::alloc(layout);
        }
        alloc(layout.size(), layout.align())
    }

    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        if early_heap::contains(p) {
            // SAFETY: an early-heap block with this layout (GlobalAlloc contract).
            unsafe { early_heap::dealloc(p, layout) };
            return;
        }
        // SAFETY: `p` is a block of ours no longer used (GlobalAlloc contract).
        if let Err(e) = unsafe { free(p) } {
            invalid_free(p, e);
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded.
        let p = unsafe { self.alloc(layout) };
        if !p.is_null() {
            // SAFETY: a fresh block of at least `layout.size()` bytes (segments are reused, so
            // it may hold old bytes).
            unsafe { ptr::write_bytes(p, 0, layout.size()) };
        }
        p
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if early_heap::contains(p) {
            // SAFETY: GlobalAlloc contract; moving out of the early heap into kiln (or the early
            // heap again before boot finished).
            return unsafe { move_block(self, p, layout, new_size) };
        }
        // SAFETY: GlobalAlloc contract: `p` is ours with `layout`.
        match unsafe { realloc(p, new_size, layout.align()) } {
            Ok(q) => q,
            Err(e) => invalid_free(p, e),
        }
    }
}

/// Reallocation by copy (for early-heap blocks).
///
/// # Safety
/// `p` is a live block of `a` with `layout`; `new_size` is non-zero and fits `layout.align()`.
unsafe fn move_block(a: &KilnAlloc, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
    // SAFETY: the caller guarantees the new layout is valid.
    let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
    // SAFETY: non-zero size (caller).
    let q = unsafe { a.alloc(new_layout) };
    if !q.is_null() {
        // SAFETY: distinct live blocks, both at least min(old, new) bytes.
        unsafe {
            ptr::copy_nonoverlapping(p, q, layout.size().min(new_size));
            a.dealloc(p, layout);
        }
    }
    q
}
