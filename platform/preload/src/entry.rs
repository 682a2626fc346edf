//! The exported C entry points. Each one counts itself (when `KILN_STATS=1`), handles the C corner
//! cases (null, zero sizes, overflow, alignment rules, `errno`), and hands the rest to kiln.
use core::ffi::{c_int, c_void};
use core::ptr;

use crate::fail::misuse;
use crate::heap_cache;
use crate::reentry::{self, enter};
use crate::report::{count, outcome, Entry, Outcome};
use kiln_core::allocator::Heap;

/// Alignment of every `malloc`/`calloc`/`realloc` block (glibc's on x86_64 and aarch64).
pub const MALLOC_ALIGN: usize = 16;

fn set_errno(code: c_int) {
    // SAFETY: __errno_location returns this thread's errno slot, always valid.
    unsafe { *libc::__errno_location() = code };
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 {
        n as usize
    } else {
        4096
    }
}

/// Allocates `size` bytes aligned to `align` (a power of two >= 16) from kiln, or from the
/// bootstrap area on re-entry; null with `errno = ENOMEM` on failure. Inlined into each entry
/// point so `malloc` is one function with no call on its fast path but the thread-local lookup.
/// `COUNT`: record the outcome for the `KILN_STATS` report and count in kiln's statistics (the
/// entry points that found counting off pass `false` and skip both loads).
#[inline(always)]
fn allocate<const COUNT: bool>(size: usize, align: usize, zeroed: bool) -> *mut c_void {
    let Some(heap) = heap_cache::heap() else {
        if !COUNT && counting() {
            // `malloc` with the counters on: the cache is empty then (see `heap_cache`).
            return malloc_counted(size);
        }
        // Every call gets a distinct block, as glibc does for malloc(0). (kiln's heap serves
        // size 0 with a block of its smallest 16-aligned class by itself.)
        return allocate_uncached(size.max(1), align, zeroed);
    };
    if !COUNT && !zeroed {
        // SAFETY: `heap` is this thread's cached heap, used by nothing else during the call.
        return heap
            .alloc_hot_or(size, align, |heap, size, align| unsafe {
                allocate_refill(heap, size, align)
            })
            .cast();
    }
    let block = if zeroed {
        heap.alloc_zeroed(size, align)
    } else {
        heap.alloc(size, align)
    };
    if COUNT {
        outcome(Outcome::Served);
    }
    if block.is_null() {
        set_errno(libc::ENOMEM);
    }
    block.cast()
}

/// [`allocate`] (uncounted) past the hot stacks: kiln's allocation with the `errno` of a
/// failure. `extern "C"`, so it cannot unwind and `malloc` reaches it by a tail call, with no
/// stack frame of its own.
///
/// # Safety
///
/// `heap` is this thread's cached heap, used by nothing else during the call.
#[inline(never)]
unsafe extern "C" fn allocate_refill(heap: &mut Heap, size: usize, align: usize) -> *mut u8 {
    let block = heap.alloc_uncounted(size, align);
    if block.is_null() {
        set_errno(libc::ENOMEM);
    }
    block
}

/// [`allocate`] before this thread's heap is cached (its first call, a re-entrant call during
/// kiln's thread set-up, or a call while the thread exits): through kiln-std with the re-entry
/// guard, then the heap is cached if kiln-std now serves this thread.
#[cold]
#[inline(never)]
extern "C" fn allocate_uncached(size: usize, align: usize, zeroed: bool) -> *mut c_void {
    let Some(_inside) = enter() else {
        return allocate_reentrant(size, align);
    };
    let block = if zeroed {
        kiln_std::alloc_zeroed(size, align)
    } else {
        kiln_std::alloc(size, align)
    };
    outcome(Outcome::Served);
    heap_cache::fill();
    if block.is_null() {
        set_errno(libc::ENOMEM);
    }
    block.cast()
}

/// A re-entrant allocation: served by the bootstrap area.
#[cold]
#[inline(never)]
fn allocate_reentrant(size: usize, align: usize) -> *mut c_void {
    outcome(Outcome::Bootstrap);
    let block = reentry::alloc(size, align);
    if block.is_null() {
        set_errno(libc::ENOMEM);
    }
    block.cast()
}

/// A call refused for its arguments (overflowing size, bad alignment): null with `errno = code`.
#[cold]
fn refuse(code: c_int) -> *mut c_void {
    outcome(Outcome::Refused);
    set_errno(code);
    ptr::null_mut()
}

/// Frees a block of kiln or of the bootstrap area; aborts on anything else.
///
/// # Safety
///
/// `ptr` is non-null; the caller no longer uses the block.
#[inline(always)]
unsafe fn release(entry: &str, ptr: *mut c_void) {
    if reentry::owns(ptr.cast()) {
        outcome(Outcome::Bootstrap); // bootstrap blocks are never reused
        return;
    }
    let Some(heap) = heap_cache::heap() else {
        // SAFETY: forwarded (caller).
        return unsafe { release_uncached(entry, ptr) };
    };
    // SAFETY: the C caller hands over `ptr`; kiln checks that it is a live block of its own.
    if let Err(e) = unsafe { kiln_core::allocator::free(heap, ptr.cast()) } {
        misuse(entry, ptr.cast(), format_args!("invalid free: {e}"));
    }
    outcome(Outcome::Served);
}

/// C `free` when the report is off: [`release`] without the outcome counts, and every invalid
/// free reported from kiln's cold paths, so the fast path needs no stack frame. Null and
/// bootstrap blocks are not tested for up front: kiln's free takes null, and classifies a
/// bootstrap block as foreign on its cold path, where [`invalid_free`] lets it pass.
///
/// # Safety
///
/// `ptr` is null, or as for [`release`].
#[inline(always)]
unsafe fn release_uncounted(ptr: *mut c_void) {
    let Some(heap) = heap_cache::heap() else {
        // SAFETY: forwarded (caller).
        return unsafe { free_uncached(ptr) };
    };
    // SAFETY: the C caller hands over `ptr`; kiln checks that it is a live block of its own.
    unsafe { kiln_core::allocator::free_or_report_uncounted(heap, ptr.cast(), invalid_free) }
}

/// [`release_uncounted`] before this thread's heap is cached. `extern "C"` (it cannot unwind),
/// like every function C `free` calls, so `free` reaches it by a tail call and needs no stack
/// frame.
///
/// # Safety
///
/// As for [`release_uncounted`].
#[cold]
#[inline(never)]
unsafe extern "C" fn free_uncached(ptr: *mut c_void) {
    if counting() {
        // `free` with the counters on: the cache is empty then (see `heap_cache`).
        // SAFETY: forwarded (caller).
        return unsafe { free_counted(ptr) };
    }
    if ptr.is_null() || reentry::owns(ptr.cast()) {
        return; // bootstrap blocks are never reused
    }
    // SAFETY: forwarded (caller).
    unsafe { release_uncached("free", ptr) }
}

/// An invalid `free` found by kiln: abort with the reason; a block of the bootstrap area (not
/// kiln's, so foreign to it) is fine and stays where it is.
fn invalid_free(ptr: *mut u8, e: kiln_core::allocator::FreeError) {
    if e == kiln_core::allocator::FreeError::Foreign && reentry::owns(ptr) {
        return; // bootstrap blocks are never reused
    }
    misuse("free", ptr, format_args!("invalid free: {e}"));
}

/// [`release`] before this thread's heap is cached: through kiln-std with the re-entry guard.
///
/// # Safety
///
/// As for [`release`].
#[cold]
#[inline(never)]
unsafe fn release_uncached(entry: &str, ptr: *mut c_void) {
    let Some(_inside) = enter() else {
        // Freeing from inside kiln's own set-up: leak rather than re-enter it.
        outcome(Outcome::LeakedFree);
        return;
    };
    // SAFETY: the C caller hands over `ptr`; kiln checks that it is a live block of its own.
    if let Err(e) = unsafe { kiln_std::free(ptr.cast()) } {
        misuse(entry, ptr.cast(), format_args!("invalid free: {e}"));
    }
    outcome(Outcome::Served);
    heap_cache::fill();
}

/// The usable size of a live block (kiln's or the bootstrap area's), or `None`.
///
/// # Safety
///
/// `ptr` is non-null.
unsafe fn usable(ptr: *mut c_void) -> Option<usize> {
    if reentry::owns(ptr.cast()) {
        // SAFETY: pointers into the bootstrap area that C code holds are its blocks.
        return Some(unsafe { reentry::size_of(ptr.cast()) });
    }
    kiln_std::usable_size(ptr.cast())
}

/// Whether `malloc` and `free` take their counted twins: kiln's per-call statistics switch,
/// which libkiln.so's constructor turns off unless `KILN_STATS=1` (see `init.rs`). It is on
/// whenever the `KILN_STATS` report is (and before the constructor runs), so one load serves
/// both: off means neither the report nor kiln counts this call. `malloc` and `free` test it
/// only when the thread's heap cache is empty: the cache is filled only while it is off
/// (`heap_cache`), and nothing in libkiln.so turns it on again.
#[inline(always)]
fn counting() -> bool {
    kiln_core::allocator::stats::counting()
}

/// `malloc(3)`: `size` bytes aligned to 16, or null with `errno = ENOMEM`.
#[no_mangle]
pub extern "C" fn malloc(size: usize) -> *mut c_void {
    allocate::<false>(size, MALLOC_ALIGN, false)
}

#[cold]
#[inline(never)]
extern "C" fn malloc_counted(size: usize) -> *mut c_void {
    count(Entry::Malloc, size);
    allocate::<true>(size, MALLOC_ALIGN, false)
}

/// `free(3)`: null is a no-op; a pointer that is not a live block aborts with a message.
///
/// # Safety
///
/// `ptr` is null or came from this library's allocation functions and is not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn free(ptr: *mut c_void) {
    // SAFETY: handed over by the caller.
    unsafe { release_uncounted(ptr) };
}

/// [`free`] with the `KILN_STATS` counts.
///
/// # Safety
///
/// As for [`free`].
#[cold]
#[inline(never)]
unsafe extern "C" fn free_counted(ptr: *mut c_void) {
    count(Entry::Free, 0);
    if ptr.is_null() {
        outcome(Outcome::Null);
    } else {
        // SAFETY: non-null, handed over by the caller.
        unsafe { release("free", ptr) };
    }
}

/// `calloc(3)`: `n * size` zeroed bytes; overflow of the product gives null with `ENOMEM`.
#[no_mangle]
pub extern "C" fn calloc(n: usize, size: usize) -> *mut c_void {
    count(Entry::Calloc, n.saturating_mul(size));
    match n.checked_mul(size) {
        Some(total) => allocate::<true>(total, MALLOC_ALIGN, true),
        None => refuse(libc::ENOMEM),
    }
}

/// `realloc(3)` with glibc's semantics: `realloc(NULL, n)` is `malloc(n)`; `realloc(p, 0)` frees
/// `p` and returns null; on failure `p` is untouched and `errno = ENOMEM`.
///
/// # Safety
///
/// `ptr` is null or a live block of this library; on success it must not be used again.
#[no_mangle]
pub unsafe extern "C" fn realloc(ptr: *mut c_void, size: usize) -> *mut c_void {
    count(Entry::Realloc, size);
    // SAFETY: the caller's contract.
    unsafe { resize("realloc", ptr, size) }
}

/// `reallocarray(3)`: `realloc(ptr, n * size)`, but an overflowing product fails with `ENOMEM`
/// and leaves `ptr` untouched.
///
/// # Safety
///
/// As for [`realloc`].
#[no_mangle]
pub unsafe extern "C" fn reallocarray(ptr: *mut c_void, n: usize, size: usize) -> *mut c_void {
    count(Entry::Reallocarray, n.saturating_mul(size));
    match n.checked_mul(size) {
        // SAFETY: the caller's contract.
        Some(total) => unsafe { resize("reallocarray", ptr, total) },
        None => refuse(libc::ENOMEM),
    }
}

/// The shared body of `realloc` and `reallocarray`.
///
/// # Safety
///
/// As for [`realloc`].
unsafe fn resize(entry: &str, ptr: *mut c_void, size: usize) -> *mut c_void {
    if ptr.is_null() {
        return allocate::<true>(size, MALLOC_ALIGN, false);
    }
    if size == 0 {
        // SAFETY: non-null, handed over by the caller.
        unsafe { release(entry, ptr) };
        return ptr::null_mut();
    }
    if let Some(heap) = heap_cache::heap() {
        if !reentry::owns(ptr.cast()) {
            // The thread's cached heap, as `malloc`'s fast path uses it: kiln's `realloc`
            // classifies the pointer (an owned block from its page, anything else through the
            // segment map) and refuses what is not a live block.
            // SAFETY: the C caller hands over `ptr`; kiln checks that it is a live block.
            return match unsafe {
                kiln_core::allocator::realloc(heap, ptr.cast(), size, MALLOC_ALIGN)
            } {
                Ok(block) => {
                    outcome(Outcome::Served);
                    if block.is_null() {
                        set_errno(libc::ENOMEM);
                    }
                    block.cast()
                }
                Err(e) => misuse(entry, ptr.cast(), format_args!("not a live block: {e}")),
            };
        }
    }
    // SAFETY: non-null.
    let Some(old_size) = (unsafe { usable(ptr) }) else {
        misuse(entry, ptr.cast(), format_args!("not a live block"));
    };
    if reentry::owns(ptr.cast()) {
        return move_out_of_bootstrap(ptr, old_size, size);
    }
    let Some(_inside) = enter() else {
        // Re-entry: a fresh bootstrap block and a copy; the old block is leaked.
        outcome(Outcome::Bootstrap);
        return copy_into(
            reentry::alloc(size, MALLOC_ALIGN).cast(),
            ptr,
            old_size.min(size),
        );
    };
    // SAFETY: `ptr` is a live kiln block (usable_size recognised it).
    let block =
        unsafe { kiln_std::realloc(ptr.cast(), size, MALLOC_ALIGN) }.unwrap_or(ptr::null_mut());
    outcome(Outcome::Served);
    if block.is_null() {
        set_errno(libc::ENOMEM);
    }
    block.cast()
}

/// Moves a bootstrap block into kiln (bootstrap blocks are not resized in place).
fn move_out_of_bootstrap(ptr: *mut c_void, old_size: usize, size: usize) -> *mut c_void {
    copy_into(
        allocate::<true>(size, MALLOC_ALIGN, false),
        ptr,
        old_size.min(size),
    )
}

/// Copies `n` bytes from `src` to the fresh block `dst` (if not null) and returns `dst`.
fn copy_into(dst: *mut c_void, src: *mut c_void, n: usize) -> *mut c_void {
    if !dst.is_null() {
        // SAFETY: `src` is a live block of at least `n` bytes; `dst` a fresh one of at least `n`.
        unsafe { ptr::copy_nonoverlapping(src.cast::<u8>(), dst.cast::<u8>(), n) };
    } else {
        set_errno(libc::ENOMEM);
    }
    dst
}

/// `posix_memalign(3)`: `EINVAL` unless `align` is a power of two multiple of the pointer size,
/// `ENOMEM` when out of memory (and `*out` untouched); `errno` is preserved.
///
/// # Safety
///
/// `out` must be valid for a pointer write.
#[no_mangle]
pub unsafe extern "C" fn posix_memalign(out: *mut *mut c_void, align: usize, size: usize) -> c_int {
    count(Entry::PosixMemalign, size);
    if !align.is_power_of_two() || !align.is_multiple_of(core::mem::size_of::<*mut c_void>()) {
        outcome(Outcome::Refused);
        return libc::EINVAL;
    }
    // SAFETY: __errno_location is always valid for this thread.
    let saved = unsafe { *libc::__errno_location() };
    let block = allocate::<true>(size, align.max(MALLOC_ALIGN), false);
    set_errno(saved);
    if block.is_null() {
        return libc::ENOMEM;
    }
    // SAFETY: the caller guarantees `out` is writable.
    unsafe { out.write(block) };
    0
}

/// `aligned_alloc(3)`: null with `EINVAL` unless `align` is a power of two (glibc >= 2.38).
#[no_mangle]
pub extern "C" fn aligned_alloc(align: usize, size: usize) -> *mut c_void {
    count(Entry::AlignedAlloc, size);
    if !align.is_power_of_two() {
        return refuse(libc::EINVAL);
    }
    allocate::<true>(size, align.max(MALLOC_ALIGN), false)
}

/// `memalign(3)` like glibc: an alignment that is not a power of two is rounded up to one.
#[no_mangle]
pub extern "C" fn memalign(align: usize, size: usize) -> *mut c_void {
    count(Entry::Memalign, size);
    aligned(align, size)
}

fn aligned(align: usize, size: usize) -> *mut c_void {
    match align.max(MALLOC_ALIGN).checked_next_power_of_two() {
        Some(align) => allocate::<true>(size, align, false),
        None => refuse(libc::EINVAL),
    }
}

/// `valloc(3)`: page-aligned `size` bytes.
#[no_mangle]
pub extern "C" fn valloc(size: usize) -> *mut c_void {
    count(Entry::Valloc, size);
    aligned(page_size(), size)
}

/// `pvalloc(3)`: page-aligned, `size` rounded up to whole pages (one page for 0).
#[no_mangle]
pub extern "C" fn pvalloc(size: usize) -> *mut c_void {
    count(Entry::Pvalloc, size);
    let page = page_size();
    match size.max(1).checked_next_multiple_of(page) {
        Some(rounded) => aligned(page, rounded),
        None => refuse(libc::ENOMEM),
    }
}

/// `malloc_usable_size(3)`: the block's usable bytes; 0 for null or a pointer kiln does not own.
///
/// # Safety
///
/// `ptr` is null or a live block of this library.
#[no_mangle]
pub unsafe extern "C" fn malloc_usable_size(ptr: *mut c_void) -> usize {
    count(Entry::MallocUsableSize, 0);
    if ptr.is_null() {
        outcome(Outcome::Null);
        return 0;
    }
    outcome(if reentry::owns(ptr.cast()) {
        Outcome::Bootstrap
    } else {
        Outcome::Served
    });
    // SAFETY: non-null.
    unsafe { usable(ptr) }.unwrap_or(0)
}

/// Calls served by kiln so far when `KILN_STATS=1` (0 otherwise); lets a test confirm that the
/// library is loaded and in use.
#[no_mangle]
pub extern "C" fn kiln_preload_served_calls() -> u64 {
    crate::report::served_calls()
}
