//! kiln as the kernel's allocator: kiln's own [`PerCpuHeaps`] (one heap per CPU, named by
//! [`BareCpus`] with interrupts masked), all drawing segments from one [`Pool`] over the
//! machine's RAM ([`crate::memory::MEMORY`]), and [`KilnAlloc`], which adds the early heap in
//! front for the allocations made before boot set the pool up.
//!
//! ```text
//!   KilnAlloc::alloc(layout)
//!     before boot set up memory  -> early heap (linked_list_allocator)
//!     after                      -> HEAPS (kiln::global::PerCpuHeaps): interrupts masked,
//!                                   this CPU's heap
//!   KilnAlloc::dealloc(p)
//!     p in the early heap        -> early heap
//!     else                       -> HEAPS: local list if this CPU's heap owns the page, else
//!                                   the owner's atomic thread_free list (a remote free)
//! ```
//! Invariants: a CPU only ever touches its own heap (with interrupts masked, so no handler on
//! the same CPU can enter the heap half-way through an operation); heaps live for the whole run
//! (CPUs never go away), so no segment is ever abandoned.
use core::alloc::{GlobalAlloc, Layout};
use core::ptr;
use core::sync::atomic::{AtomicBool, Ordering};

use kiln::allocator::{FreeError, Pool};
use kiln::global::{CpuPin, PerCpuHeaps};

use crate::cpu::{cpu_index, IrqGuard, MAX_CPUS};
use crate::{early_heap, exit, memory};

/// The pool every CPU's heap draws segments from.
pub static POOL: Pool = Pool::new(&memory::MEMORY);

/// Names the calling CPU with interrupts masked: the pinning [`PerCpuHeaps`] asks for.
pub struct BareCpus;

// SAFETY: interrupts stay masked while `f` runs, so nothing else on this CPU can enter the
// allocator, and `cpu_index()` is this CPU's own index (distinct on every CPU).
unsafe impl CpuPin for BareCpus {
    #[inline(always)]
    fn pinned<R>(&self, f: impl FnOnce(usize) -> R) -> R {
        let _masked = IrqGuard::new();
        f(cpu_index())
    }
}

/// Every CPU's heap; a refused free prints and fails the run.
pub static HEAPS: PerCpuHeaps<BareCpus, MAX_CPUS> =
    PerCpuHeaps::new(&POOL, BareCpus).with_invalid_free(invalid_free);

/// Set by boot once the segment pool exists; until then [`KilnAlloc`] serves the early heap.
static READY: AtomicBool = AtomicBool::new(false);

/// Called by boot after `memory::init`.
pub(crate) fn mark_ready() {
    READY.store(true, Ordering::Release);
}

/// Collects this CPU's heap (remote frees, empty pages) and returns cached empty segments to
/// the segment bitmap.
pub fn collect() {
    // The pool's own lock is a plain spin lock: hold it with interrupts masked too, so a handler
    // that allocates on this CPU cannot spin on it while we hold it.
    let _masked = IrqGuard::new();
    HEAPS.collect();
}

/// Walks this CPU's heap and checks kiln's invariants (every segment, page and free list).
pub fn check() -> Result<(), kiln::allocator::CheckError> {
    HEAPS.check()
}

/// Reports a free kiln refused and fails the run: the kernel's view of memory is already wrong.
#[cold]
#[inline(never)]
fn invalid_free(p: *mut u8, e: FreeError) {
    crate::println!("[kiln-bare] invalid free of {p:p}: {e}");
    exit::failure()
}

/// kiln as the kernel's `#[global_allocator]`: the early heap until boot set up the segment
/// pool, then [`HEAPS`]. Out of memory returns null (never panics inside `GlobalAlloc`); an
/// invalid free prints and fails the run.
pub struct KilnAlloc;

// SAFETY: blocks come from the early heap (before boot finished) or from `HEAPS`, both
// `GlobalAlloc`s with this contract; each block is freed by the one it came from.
unsafe impl GlobalAlloc for KilnAlloc {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if !READY.load(Ordering::Acquire) {
            return early_heap::alloc(layout);
        }
        // SAFETY: forwarded (caller).
        unsafe { GlobalAlloc::alloc(&HEAPS, layout) }
    }

    #[inline]
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        if early_heap::contains(p) {
            // SAFETY: an early-heap block with this layout (GlobalAlloc contract).
            unsafe { early_heap::dealloc(p, layout) };
            return;
        }
        // SAFETY: forwarded (caller).
        unsafe { GlobalAlloc::dealloc(&HEAPS, p, layout) }
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
        // SAFETY: forwarded (caller).
        unsafe { GlobalAlloc::realloc(&HEAPS, p, layout, new_size) }
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
