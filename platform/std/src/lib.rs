//! kiln on a hosted OS: the platform contract implemented with mmap and thread-locals, and
//! [`KilnAlloc`], the `GlobalAlloc`: kiln's own [`SlotHeaps`] over [`ThreadSlot`] (one heap per
//! thread), with an invalid free aborting the process.
//!
//! ```text
//!   thread-local LOCAL { heap, state }       state: Fresh -> Active -> Exited
//!       Fresh:  first use registers EXIT_HOOK (a thread-local with Drop) then becomes Active
//!       Active: the heap serves the thread
//!       Exited: EXIT_HOOK ran (the heap was abandoned); late allocations of a dying thread go
//!               to FALLBACK, one heap shared behind a spin lock
//! ```
//!
//! ```
//! #[global_allocator]
//! static A: kiln_std::KilnAlloc = kiln_std::KilnAlloc;
//! ```
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod exec;

use core::alloc::{GlobalAlloc, Layout};
use core::cell::{Cell, UnsafeCell};
use core::mem::ManuallyDrop;
use core::ptr;

use kiln::allocator::{FreeError, Heap, Pool, SEGMENT_SIZE};
use kiln::global::{LocalSlot, SlotHeaps};
use kiln::platform::{Console, MemorySource};

/// Segments from `mmap`: over-map by one segment, trim to alignment.
pub struct MmapSource;

// SAFETY: mmap returns fresh private anonymous memory; `release` unmaps exactly what `reserve`
// returned. No method allocates.
unsafe impl MemorySource for MmapSource {
    fn reserve(&self, count: usize) -> *mut u8 {
        let Some(len) = count.checked_mul(SEGMENT_SIZE) else {
            return ptr::null_mut();
        };
        let Some(map_len) = len.checked_add(SEGMENT_SIZE) else {
            return ptr::null_mut();
        };
        // SAFETY: anonymous private mapping; no existing memory is affected.
        let raw = unsafe {
            libc::mmap(
                ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return ptr::null_mut();
        }
        let start = raw as usize;
        let aligned = (start + SEGMENT_SIZE - 1) & !(SEGMENT_SIZE - 1);
        let head = aligned - start;
        let tail = map_len - head - len;
        // SAFETY: trimming the unaligned head and tail of our own fresh mapping.
        unsafe {
            if head > 0 {
                libc::munmap(raw, head);
            }
            if tail > 0 {
                libc::munmap((aligned + len) as *mut libc::c_void, tail);
            }
        }
        aligned as *mut u8
    }

    unsafe fn release(&self, base: *mut u8, count: usize) {
        // SAFETY: `base`/`count` describe one earlier reservation (caller).
        unsafe { libc::munmap(base.cast(), count * SEGMENT_SIZE) };
    }

    fn zeroed(&self) -> bool {
        true // fresh anonymous mappings are zero-filled
    }

    fn can_release_parts(&self) -> bool {
        true // munmap takes any page-aligned part of a mapping
    }

    fn can_decommit(&self) -> bool {
        true
    }

    unsafe fn decommit(&self, addr: *mut u8, len: usize) {
        // SAFETY: the range is ours and holds nothing live (caller).
        unsafe { libc::madvise(addr.cast(), len, libc::MADV_DONTNEED) };
    }

    unsafe fn advise_large_pages(&self, segment: *mut u8, large: bool) {
        // Transparent huge pages: with `MADV_HUGEPAGE` the first touch of the segment faults in
        // one 2 MiB page (when the kernel has one); `MADV_NOHUGEPAGE` keeps khugepaged from
        // collapsing it again once kiln has decommitted parts of it. With large pages turned
        // off (`set_large_pages`) the request is declined; the withdrawal is still passed on.
        let advice = if !large {
            libc::MADV_NOHUGEPAGE
        } else if LARGE_PAGES.load(core::sync::atomic::Ordering::Relaxed) {
            libc::MADV_HUGEPAGE
        } else {
            return;
        };
        // SAFETY: a segment we reserved (caller); the advice changes no byte of it.
        unsafe { libc::madvise(segment.cast(), SEGMENT_SIZE, advice) };
    }
}

/// Writes to standard error with `write(2)`: no allocation, no lock.
pub struct StdConsole;

// SAFETY: write(2) on fd 2 is thread-safe and allocates nothing.
unsafe impl Console for StdConsole {
    fn write_bytes(&self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            // SAFETY: the buffer is valid for its length.
            let n = unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
            if n <= 0 {
                return;
            }
            bytes = &bytes[n as usize..];
        }
    }
}

/// Whether [`MmapSource`] takes kiln's advice to back a segment with transparent huge pages.
static LARGE_PAGES: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(true);

/// Turns transparent huge pages for kiln's segments on (the default) or off, for the segments
/// reserved from now on.
///
/// kiln asks for them only for the new segments of a heap that already holds 8 MiB of pages
/// carved throughout into blocks of at most 4 KiB, where they cost little memory and save TLB
/// misses (4-10% faster at 100 000 live blocks of 16-1040 bytes, `docs/perf.md`). What they cost: a huge page is
/// resident whole from its first touch, so the heap's newest segment counts in full while it
/// fills (up to 2 MiB per thread's heap). Turn them off where peak memory matters more than
/// that speed; `libkiln.so` does so when started with `KILN_LARGE_PAGES=0`. The kernel's own
/// setting still applies: with `transparent_hugepage/enabled = always` it uses huge pages
/// wherever it can, with `never` nowhere.
pub fn set_large_pages(on: bool) {
    LARGE_PAGES.store(on, core::sync::atomic::Ordering::Relaxed);
}

static SOURCE: MmapSource = MmapSource;
/// The process-wide pool every thread's heap draws from.
pub static POOL: Pool = Pool::new(&SOURCE);

#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Fresh,
    Active,
    Exited,
}

struct Local {
    // Never dropped: the exit hook abandons the heap, and `LOCAL` must have no destructor so it
    // stays reachable for a dying thread's late allocations.
    heap: ManuallyDrop<UnsafeCell<Heap>>,
    state: Cell<State>,
}

/// Abandons the thread's heap when the thread exits.
struct ExitHook;

impl Drop for ExitHook {
    fn drop(&mut self) {
        let _ = LOCAL.try_with(|local| {
            local.state.set(State::Exited);
            let notify = ON_THREAD_EXIT.load(core::sync::atomic::Ordering::Acquire);
            if !notify.is_null() {
                // SAFETY: only `on_thread_exit` stores here, and it stores an `fn()`.
                let notify: fn() = unsafe { core::mem::transmute::<*mut (), fn()>(notify) };
                notify();
            }
            // SAFETY: the thread is exiting; nothing else uses its heap now (the state change
            // above routes any later allocation of this thread to FALLBACK).
            unsafe { (*local.heap.get()).abandon() };
        });
    }
}

thread_local! {
    static LOCAL: Local = const {
        Local {
            heap: ManuallyDrop::new(UnsafeCell::new(Heap::new(&POOL))),
            state: Cell::new(State::Fresh),
        }
    };
    static EXIT_HOOK: ExitHook = const { ExitHook };
}

static FALLBACK: spin::Mutex<Heap> = spin::Mutex::new(Heap::new(&POOL));

/// Called on an exiting thread right after its heap stopped serving it (see [`on_thread_exit`]).
static ON_THREAD_EXIT: core::sync::atomic::AtomicPtr<()> =
    core::sync::atomic::AtomicPtr::new(ptr::null_mut());

/// Registers `f` to run on every exiting thread at the moment its heap stops serving it (before
/// the heap is abandoned). A layer that caches [`active_heap`]'s result per thread (libkiln.so
/// does) clears its cache there. One function per process; a later call replaces it.
pub fn on_thread_exit(f: fn()) {
    ON_THREAD_EXIT.store(f as *mut (), core::sync::atomic::Ordering::Release);
}

/// The calling thread's heap, when it is set up and serving this thread; `None` before its
/// first allocation and once the thread is exiting. The pointer stays valid for the life of the
/// thread; using it is only allowed on this thread and only until [`on_thread_exit`]'s function
/// runs.
#[inline]
pub fn active_heap() -> Option<*mut Heap> {
    active_heap_of(local())
}

/// The std `LocalSlot`: the thread's own heap, or the shared fallback heap while the thread is
/// being torn down.
pub struct ThreadSlot;

// SAFETY: each thread gets its own `LOCAL` heap, never moved (thread-local storage); the fallback
// heap is only handed out under its lock.
unsafe impl LocalSlot for ThreadSlot {
    #[inline(always)]
    fn with_heap<R>(&self, f: impl FnOnce(&mut Heap) -> R) -> R {
        let local = local();
        match active_heap_of(local) {
            // SAFETY: only this thread uses its heap, and `with_heap` is not re-entered from `f`
            // (kiln's heap calls no platform method that allocates).
            Some(heap) => f(unsafe { &mut *heap }),
            None => with_heap_cold(local, f),
        }
    }

    #[inline(always)]
    fn with_ready_heap<R>(&self, f: impl FnOnce(&mut Heap) -> R) -> Option<R> {
        // SAFETY: as in `with_heap`.
        active_heap_of(local()).map(|heap| f(unsafe { &mut *heap }))
    }
}

/// This thread's `LOCAL` (one thread-local address computation).
#[inline(always)]
fn local() -> &'static Local {
    let local = LOCAL.with(|l| l as *const Local);
    // SAFETY: `LOCAL` has no destructor, so it lives as long as the thread; it is only used by
    // this thread.
    unsafe { &*local }
}

/// The thread's heap when it is set up and not torn down (the fast paths), else `None`.
#[inline(always)]
fn active_heap_of(local: &Local) -> Option<*mut Heap> {
    (local.state.get() == State::Active).then(|| local.heap.get())
}

#[cold]
#[inline(never)]
fn with_heap_cold<R>(local: &Local, f: impl FnOnce(&mut Heap) -> R) -> R {
    match local.state.get() {
        State::Fresh => {
            // Active first: registering the hook may allocate, and that allocation must find
            // a usable heap rather than recurse here.
            local.state.set(State::Active);
            if EXIT_HOOK.try_with(|_| {}).is_err() {
                // First allocation during this thread's teardown: no exit hook can be registered
                // any more, so the heap would never be abandoned. Use the shared one.
                local.state.set(State::Exited);
                return f(&mut FALLBACK.lock());
            }
            register_fork_handlers();
            // SAFETY: as in `with_heap`.
            f(unsafe { &mut *local.heap.get() })
        }
        State::Active => {
            // SAFETY: as in `with_heap`.
            f(unsafe { &mut *local.heap.get() })
        }
        State::Exited => f(&mut FALLBACK.lock()),
    }
}

static FORK_HANDLERS: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Registers `pthread_atfork` handlers once per process, so a child never inherits a kiln lock
/// that another thread of the parent held at the moment of `fork`. Lock order: the fallback heap,
/// then the pool (the order in which kiln's own paths nest them).
fn register_fork_handlers() {
    if FORK_HANDLERS.swap(true, core::sync::atomic::Ordering::AcqRel) {
        return;
    }
    extern "C" fn prepare() {
        core::mem::forget(FALLBACK.lock());
        POOL.lock_for_fork();
    }
    extern "C" fn release() {
        // SAFETY: `prepare` ran on this thread (parent) or on the thread that became the child's
        // only thread, and took exactly these locks.
        unsafe {
            POOL.unlock_after_fork();
            FALLBACK.force_unlock();
        }
    }
    // SAFETY: plain functions valid for the life of the process. Registration may allocate;
    // the flag above stops a re-entrant call from registering twice.
    unsafe { libc::pthread_atfork(Some(prepare), Some(release), Some(release)) };
}

/// Every thread's heap, with kiln's one copy of the allocation protocol on top; an invalid
/// free through `GlobalAlloc` aborts ([`invalid_free`]).
pub static HEAPS: SlotHeaps<ThreadSlot> =
    SlotHeaps::new(ThreadSlot).with_invalid_free(invalid_free);

/// Allocates `size` bytes aligned to `align` from the calling thread's heap; null when out of
/// memory or when `align` is not a power of two.
#[inline(always)]
pub fn alloc(size: usize, align: usize) -> *mut u8 {
    HEAPS.alloc(size, align)
}

/// Like [`alloc`], zero-filled (see [`Heap::alloc_zeroed`]).
pub fn alloc_zeroed(size: usize, align: usize) -> *mut u8 {
    HEAPS.alloc_zeroed(size, align)
}

/// Frees `p` (null is fine). A pointer kiln did not allocate, an interior pointer and (when the
/// owner frees it) a double free are reported as errors and change nothing.
///
/// # Safety
/// If `p` is a live kiln block, nobody uses it after this call.
#[inline(always)]
pub unsafe fn free(p: *mut u8) -> Result<(), FreeError> {
    // SAFETY: forwarded (caller).
    unsafe { HEAPS.free(p) }
}

/// Resizes `p` to `new_size` bytes aligned to `align` (see [`kiln::allocator::realloc`]):
/// `Ok(null)` on out of memory (the old block stays valid), an error (and nothing changed) when
/// `p` is not a live kiln block.
///
/// # Safety
/// `p` is null or a live kiln block allocated with `align`; afterwards only the result is used.
pub unsafe fn realloc(p: *mut u8, new_size: usize, align: usize) -> Result<*mut u8, FreeError> {
    // SAFETY: forwarded (caller).
    unsafe { HEAPS.realloc(p, new_size, align) }
}

/// Bytes usable at `p`, or `None` when `p` is not a live kiln block.
pub fn usable_size(p: *const u8) -> Option<usize> {
    HEAPS.usable_size(p)
}

/// Collects the calling thread's heap (publishes its own remote-free batches, gathers remote
/// frees, empty pages), adopts every abandoned segment, and returns cached empty segments to
/// the platform.
pub fn collect() {
    HEAPS.collect()
}

/// Segments currently reserved from the OS.
pub fn segments_in_use() -> usize {
    POOL.segments_in_use()
}

/// Checks the calling thread's heap invariants.
pub fn check() -> Result<(), kiln::allocator::CheckError> {
    HEAPS.check()
}

/// Reports an invalid free and aborts: the program has already corrupted its view of memory, and
/// carrying on would hide the bug. Allocates nothing.
#[cold]
#[inline(never)]
pub fn invalid_free(p: *mut u8, e: FreeError) {
    let mut buf = [0u8; 160];
    let msg = format_into(&mut buf, p, e);
    StdConsole.write_bytes(msg);
    std::process::abort()
}

fn format_into(buf: &mut [u8], p: *mut u8, e: FreeError) -> &[u8] {
    use std::io::Write;
    let mut cur = std::io::Cursor::new(&mut buf[..]);
    let _ = writeln!(cur, "kiln: invalid free of {p:p}: {e}");
    let n = cur.position() as usize;
    &buf[..n]
}

/// `KilnAlloc::dealloc` while the thread has no heap ready (its first call, or its teardown):
/// out of line, so the inline part keeps nothing across a call.
///
/// # Safety
/// As for `GlobalAlloc::dealloc`.
#[cold]
#[inline(never)]
unsafe fn dealloc_cold(p: *mut u8, layout: Layout) {
    // SAFETY: forwarded (caller).
    unsafe { GlobalAlloc::dealloc(&HEAPS, p, layout) }
}

/// kiln as the global allocator: [`HEAPS`] (kiln's [`SlotHeaps`] over the thread's heap). Out
/// of memory returns null; it never panics inside `GlobalAlloc`. Freeing a pointer kiln did not
/// allocate aborts with a `kiln: ...` message.
pub struct KilnAlloc;

// SAFETY: forwards every call to `HEAPS`, a `GlobalAlloc` with the same contract.
unsafe impl GlobalAlloc for KilnAlloc {
    #[inline(always)]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded (caller).
        unsafe { GlobalAlloc::alloc(&HEAPS, layout) }
    }

    #[inline(always)]
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        match active_heap() {
            // The thread's heap directly, as libkiln.so's `free` does: every path of the inline
            // free then ends in a tail call, so this needs no stack frame. A refused pointer goes
            // to `invalid_free` (HEAPS's handler), which allocates nothing and aborts, so it
            // never re-enters the heap it is called from.
            // SAFETY: only this thread uses its heap, for the duration of the call; `p` as the
            // caller guarantees.
            Some(heap) => unsafe { kiln::allocator::free_or_report(&mut *heap, p, invalid_free) },
            // SAFETY: forwarded (caller).
            None => unsafe { dealloc_cold(p, layout) },
        }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded (caller).
        unsafe { GlobalAlloc::alloc_zeroed(&HEAPS, layout) }
    }

    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded (caller).
        unsafe { GlobalAlloc::realloc(&HEAPS, p, layout, new_size) }
    }
}
