//! Ready-made global allocators: kiln as a program's or kernel's `#[global_allocator]` with one
//! `static` and no glue of your own.
//!
//! | type | heaps | what the host provides |
//! |---|---|---|
//! | [`LockedHeap`] | one heap behind a `spin` lock | a [`Pool`] over any [`MemorySource`] (or a [`StaticRegion`] / [`Region`]) |
//! | [`PerCpuHeaps`] | one heap per CPU, lock-free, frees from other CPUs are remote frees | the pool, and a [`CpuPin`] that names the calling CPU with the CPU pinned |
//! | [`SlotHeaps`] | whatever a [`LocalSlot`] hands out (kiln-std: one heap per thread) | the pool and the slot |
//!
//! ```text
//!   GlobalAlloc::alloc(layout) -> with the heap (lock / pinned CPU / slot): heap.alloc
//!                                  null? -> OOM handler(layout) -> true: try again
//!                                                                  false: null
//!   GlobalAlloc::dealloc(p)    -> with the heap: kiln::allocator::free (local or remote push)
//!                                  refused (foreign / double free)? -> invalid-free handler
//! ```
//!
//! All three share one implementation of the allocation protocol (`alloc`, `alloc_zeroed`,
//! `realloc`, `free`, `usable_size`, `collect`, `check`), here:
//! - out of memory returns null, never panics; with an OOM handler
//!   ([`with_oom_handler`](LockedHeap::with_oom_handler)) the handler runs with no kiln lock
//!   held, may give the memory source more memory, and returns `true` to have the allocation
//!   tried again (`false`: null);
//! - a free kiln refuses (a pointer it did not hand out, an interior pointer, a double free it
//!   can prove) changes nothing and goes to the invalid-free handler
//!   ([`with_invalid_free`](LockedHeap::with_invalid_free)); without one it is counted
//!   ([`invalid_frees`](LockedHeap::invalid_frees)) and ignored, because a `GlobalAlloc` must
//!   not unwind;
//! - alignment: any power of two up to [`MAX_ALIGN`](crate::allocator::MAX_ALIGN).
//!
//! Pinning is the host's part: [`PerCpuHeaps`] hands CPU `i` its heap without a lock, so the
//! kernel's [`CpuPin::pinned`] must keep the caller on that CPU and keep every other user of
//! the heap out (interrupts masked, or preemption off and no allocating interrupt handler)
//! until it returns.

use core::alloc::{GlobalAlloc, Layout};
use core::mem::MaybeUninit;
use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::allocator::{CheckError, FreeError, Heap, Pool, SEGMENT_SIZE};
use crate::platform::MemorySource;

/// Called when an allocation found no memory: may add memory to the source, returns `true` to
/// have the allocation tried again. Runs with no kiln lock held and must not allocate through
/// the allocator that called it.
pub type OomHandler = fn(Layout) -> bool;

/// Called with a pointer whose free kiln refused (nothing was changed).
pub type InvalidFreeHandler = fn(*mut u8, FreeError);

/// The error policy every global allocator type carries.
struct Hooks {
    oom: Option<OomHandler>,
    invalid_free: Option<InvalidFreeHandler>,
    refused: AtomicUsize,
}

impl Hooks {
    const fn new() -> Hooks {
        Hooks {
            oom: None,
            invalid_free: None,
            refused: AtomicUsize::new(0),
        }
    }

    #[cold]
    #[inline(never)]
    fn refused(&self, p: *mut u8, e: FreeError) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        if let Some(f) = self.invalid_free {
            f(p, e);
        }
    }
}

/// The allocation protocol on top of any way of reaching a heap. One copy for every type here.
mod glue {
    use super::*;

    #[inline(always)]
    pub(super) fn alloc<S: LocalSlot>(
        slot: &S,
        hooks: &Hooks,
        size: usize,
        align: usize,
    ) -> *mut u8 {
        // The closure has more than one call site in a slot's `with_heap` (its own heap, a
        // shared fallback), so without the attribute it stays an out-of-line call per
        // allocation (docs/perf.md, 2026-12-04: cheaper malloc and free fast paths).
        let p = slot.with_ready_heap(
            #[inline(always)]
            |h| h.alloc_fast(size, align),
        );
        if let Some(p) = p.filter(|p| !p.is_null()) {
            return p;
        }
        // Everything but a pop, out of line: the inline part keeps no registers across a call,
        // so it needs no stack frame.
        alloc_slow(slot, hooks, size, align)
    }

    /// [`alloc`] past the inline pops: the heap's slow paths, then the OOM handler.
    #[cold]
    #[inline(never)]
    fn alloc_slow<S: LocalSlot>(slot: &S, hooks: &Hooks, size: usize, align: usize) -> *mut u8 {
        let p = slot.with_heap(|h| h.alloc(size, align));
        if p.is_null() {
            return retry(slot, hooks, size, align, false);
        }
        p
    }

    pub(super) fn alloc_zeroed<S: LocalSlot>(
        slot: &S,
        hooks: &Hooks,
        size: usize,
        align: usize,
    ) -> *mut u8 {
        let p = slot.with_heap(|h| h.alloc_zeroed(size, align));
        if p.is_null() {
            return retry(slot, hooks, size, align, true);
        }
        p
    }

    /// Out of memory: ask the OOM handler (no lock held) and try again while it says so.
    #[cold]
    #[inline(never)]
    fn retry<S: LocalSlot>(
        slot: &S,
        hooks: &Hooks,
        size: usize,
        align: usize,
        zero: bool,
    ) -> *mut u8 {
        let Some(oom) = hooks.oom else {
            return ptr::null_mut();
        };
        let Ok(layout) = Layout::from_size_align(size, align) else {
            return ptr::null_mut();
        };
        while oom(layout) {
            let p = slot.with_heap(|h| {
                if zero {
                    h.alloc_zeroed(size, align)
                } else {
                    h.alloc(size, align)
                }
            });
            if !p.is_null() {
                return p;
            }
        }
        ptr::null_mut()
    }

    /// # Safety
    /// `p` is null or not used after this call.
    #[inline(always)]
    pub(super) unsafe fn free<S: LocalSlot>(slot: &S, p: *mut u8) -> Result<(), FreeError> {
        // SAFETY: forwarded (caller).
        slot.with_heap(|h| unsafe { crate::allocator::free(h, p) })
    }

    /// # Safety
    /// As [`crate::allocator::realloc`].
    pub(super) unsafe fn realloc<S: LocalSlot>(
        slot: &S,
        hooks: &Hooks,
        p: *mut u8,
        new_size: usize,
        align: usize,
    ) -> Result<*mut u8, FreeError> {
        // SAFETY: forwarded (caller).
        let q = slot.with_heap(|h| unsafe { crate::allocator::realloc(h, p, new_size, align) })?;
        if !q.is_null() || hooks.oom.is_none() {
            return Ok(q);
        }
        // Out of memory with the old block untouched: allocate through the OOM path, then move.
        let q = retry(slot, hooks, new_size, align, false);
        if q.is_null() {
            return Ok(q);
        }
        let old = crate::allocator::usable_size(p).unwrap_or(0).min(new_size);
        // SAFETY: distinct live blocks, both at least `old` bytes.
        unsafe { ptr::copy_nonoverlapping(p, q, old) };
        // SAFETY: `p` is live and given up (caller).
        unsafe { free(slot, p) }.map(|()| q)
    }

    pub(super) fn collect<S: LocalSlot>(slot: &S) {
        let pool = slot.with_heap(|h| {
            h.collect();
            h.pool()
        });
        pool.trim();
    }

    pub(super) fn check<S: LocalSlot>(slot: &S) -> Result<(), CheckError> {
        slot.with_heap(|h| h.check())
    }
}

/// The inherent methods and the `GlobalAlloc` impl every type here has, written once.
macro_rules! global_alloc_type {
    ($ty:ident $(<$($p:ident $(: $b:path)?),* $(; const $n:ident: usize)?>)?) => {
        impl $(<$($p $(: $b)?),* $(, const $n: usize)?>)? $ty $(<$($p),* $(, $n)?>)? {
            /// Runs `f` when an allocation finds no memory; it may add memory to the source
            /// and return `true` to have the allocation tried again (see the module docs).
            pub const fn with_oom_handler(mut self, f: OomHandler) -> Self {
                self.hooks.oom = Some(f);
                self
            }

            /// Runs `f` when a free is refused (foreign pointer, interior pointer, proven
            /// double free); nothing was changed. Without it such frees are counted and ignored.
            pub const fn with_invalid_free(mut self, f: InvalidFreeHandler) -> Self {
                self.hooks.invalid_free = Some(f);
                self
            }

            /// Allocates `size` bytes aligned to `align` (a power of two); null when out of
            /// memory (after the OOM handler gave up) or for an alignment kiln cannot serve.
            #[inline]
            pub fn alloc(&self, size: usize, align: usize) -> *mut u8 {
                glue::alloc(self, &self.hooks, size, align)
            }

            /// Like [`alloc`](Self::alloc), zero-filled.
            pub fn alloc_zeroed(&self, size: usize, align: usize) -> *mut u8 {
                glue::alloc_zeroed(self, &self.hooks, size, align)
            }

            /// Frees `p` (null is fine). A pointer kiln did not hand out, an interior pointer or
            /// a double free it can prove is returned as an error and changes nothing.
            ///
            /// # Safety
            /// If `p` is a live kiln block, nobody uses it after this call.
            #[inline]
            pub unsafe fn free(&self, p: *mut u8) -> Result<(), FreeError> {
                // SAFETY: forwarded (caller).
                unsafe { glue::free(self, p) }
            }

            /// Resizes `p` (see [`crate::allocator::realloc`]): `Ok(null)` when out of memory, the
            /// old block untouched.
            ///
            /// # Safety
            /// `p` is null or a live kiln block allocated with `align`; afterwards only the
            /// result is used.
            pub unsafe fn realloc(
                &self,
                p: *mut u8,
                new_size: usize,
                align: usize,
            ) -> Result<*mut u8, FreeError> {
                // SAFETY: forwarded (caller).
                unsafe { glue::realloc(self, &self.hooks, p, new_size, align) }
            }

            /// Bytes usable at `p`, or `None` when `p` is not a live kiln block.
            pub fn usable_size(&self, p: *const u8) -> Option<usize> {
                crate::allocator::usable_size(p)
            }

            /// Collects the calling context's heap (publishes its own remote-free batches,
            /// gathers remote frees, empty pages, abandoned segments) and gives cached empty
            /// segments back to the memory source.
            pub fn collect(&self) {
                glue::collect(self)
            }

            /// Walks the calling context's heap and checks kiln's invariants.
            pub fn check(&self) -> Result<(), CheckError> {
                glue::check(self)
            }

            /// Frees refused so far (see [`with_invalid_free`](Self::with_invalid_free)).
            pub fn invalid_frees(&self) -> usize {
                self.hooks.refused.load(Ordering::Relaxed)
            }
        }

        // SAFETY: blocks come from kiln heaps reached through this type's `LocalSlot`, which
        // gives exclusive access; they are at least `layout.size()` bytes, aligned to
        // `layout.align()`, and not handed out again until freed. Nothing here unwinds.
        unsafe impl $(<$($p $(: $b)?),* $(, const $n: usize)?>)? GlobalAlloc
            for $ty $(<$($p),* $(, $n)?>)?
        {
            #[inline]
            unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
                let align = layout.align();
                // SAFETY: a `Layout`'s alignment is a power of two; said here, the inline path
                // tests only its size.
                unsafe { core::hint::assert_unchecked(align.is_power_of_two()) };
                glue::alloc(self, &self.hooks, layout.size(), align)
            }

            #[inline]
            unsafe fn dealloc(&self, p: *mut u8, _layout: Layout) {
                // SAFETY: `p` was allocated here and is no longer used (GlobalAlloc contract).
                if let Err(e) = unsafe { glue::free(self, p) } {
                    self.hooks.refused(p, e);
                }
            }

            unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
                glue::alloc_zeroed(self, &self.hooks, layout.size(), layout.align())
            }

            unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
                // SAFETY: GlobalAlloc contract: `p` is ours with `layout`.
                match unsafe { glue::realloc(self, &self.hooks, p, new_size, layout.align()) } {
                    Ok(q) => q,
                    Err(e) => {
                        self.hooks.refused(p, e);
                        ptr::null_mut()
                    }
                }
            }
        }
    };
}

// The global allocator types, written with the macro above.
mod heaps;
// Memory sources over fixed memory.
mod region;

pub use heaps::{CpuPin, LocalSlot, LockedHeap, PerCpuHeaps, SlotHeaps};
pub use region::{Region, StaticRegion, REGION_MAX_SEGMENTS};

#[cfg(test)]
mod tests {
    use super::*;
    use std::boxed::Box;
    use std::cell::Cell;
    use std::sync::atomic::AtomicBool;
    use std::vec::Vec;

    fn leak<T>(v: T) -> &'static T {
        Box::leak(Box::new(v))
    }

    /// Segments from the host allocator, at most `limit` at a time (the limit can be raised,
    /// as a kernel's OOM handler would map more memory).
    struct Limited {
        limit: AtomicUsize,
        held: AtomicUsize,
    }

    // SAFETY: `System` hands out distinct 2 MiB-aligned regions of the requested size.
    unsafe impl MemorySource for Limited {
        fn reserve(&self, count: usize) -> *mut u8 {
            use std::alloc::{GlobalAlloc, System};
            if self.held.fetch_add(count, Ordering::SeqCst) + count
                > self.limit.load(Ordering::SeqCst)
            {
                self.held.fetch_sub(count, Ordering::SeqCst);
                return ptr::null_mut();
            }
            // SAFETY: non-zero size, valid alignment.
            unsafe {
                System.alloc(Layout::from_size_align(count * SEGMENT_SIZE, SEGMENT_SIZE).unwrap())
            }
        }

        unsafe fn release(&self, base: *mut u8, count: usize) {
            use std::alloc::{GlobalAlloc, System};
            self.held.fetch_sub(count, Ordering::SeqCst);
            // SAFETY: the layout `reserve` used (caller passes the same count).
            unsafe {
                System.dealloc(
                    base,
                    Layout::from_size_align(count * SEGMENT_SIZE, SEGMENT_SIZE).unwrap(),
                )
            }
        }
    }

    #[test]
    fn locked_heap_over_a_static_region_runs_out_cleanly_and_recovers() {
        static REGION: StaticRegion<{ 4 * SEGMENT_SIZE }> = StaticRegion::new();
        static POOL: Pool = Pool::new(&REGION);
        static ALLOC: LockedHeap = LockedHeap::new(&POOL);
        // Four segments' worth of array hold 3 or 4 aligned segments, depending on where the
        // array landed.
        let segs = REGION.segments();
        assert!((3..=4).contains(&segs), "{segs} segments");
        let layout = Layout::from_size_align(1000, 8).unwrap();
        let mut blocks = Vec::new();
        loop {
            // SAFETY: non-zero size.
            let p = unsafe { GlobalAlloc::alloc(&ALLOC, layout) };
            if p.is_null() {
                break;
            }
            // SAFETY: a fresh block of 1000 bytes.
            unsafe { p.write_bytes(blocks.len() as u8, 1000) };
            blocks.push(p);
        }
        assert!(
            blocks.len() > segs * SEGMENT_SIZE / 2000,
            "{} blocks before OOM",
            blocks.len()
        );
        assert_eq!(POOL.segments_in_use(), segs, "every segment in use at OOM");
        ALLOC.check().unwrap();
        for (i, &p) in blocks.iter().enumerate() {
            // SAFETY: live blocks, each checked then freed once.
            unsafe {
                assert_eq!(*p.add(999), i as u8);
                GlobalAlloc::dealloc(&ALLOC, p, layout);
            }
        }
        ALLOC.collect();
        ALLOC.check().unwrap();
        assert_eq!(POOL.segments_in_use(), 0, "all memory back in the region");
        // A huge block the size of the whole region works again.
        let big = ALLOC.alloc((segs - 1) * SEGMENT_SIZE, 16);
        assert!(!big.is_null());
        // SAFETY: allocated above.
        unsafe { ALLOC.free(big) }.unwrap();
        assert_eq!(ALLOC.invalid_frees(), 0);
    }

    #[test]
    fn oom_handler_adds_memory_and_the_allocation_is_retried() {
        static CALLS: AtomicUsize = AtomicUsize::new(0);
        static SOURCE: Limited = Limited {
            limit: AtomicUsize::new(1),
            held: AtomicUsize::new(0),
        };
        fn grow(layout: Layout) -> bool {
            CALLS.fetch_add(1, Ordering::SeqCst);
            // Up to 8 segments in all, one more per call; then give up.
            let limit = SOURCE.limit.load(Ordering::SeqCst);
            assert!(layout.size() > 0);
            limit < 8 && SOURCE.limit.fetch_add(1, Ordering::SeqCst) < 8
        }
        let pool = leak(Pool::new(&SOURCE));
        let alloc = leak(LockedHeap::new(pool).with_oom_handler(grow));
        // 3 segments' worth: needs the handler twice or more.
        let p = alloc.alloc(5 * SEGMENT_SIZE / 2, 16);
        assert!(!p.is_null());
        let after_first = CALLS.load(Ordering::SeqCst);
        assert!(after_first >= 2, "handler ran {after_first} times");
        // Beyond what the handler will ever give: it is asked until it says no, then null.
        let q = alloc.alloc(32 * SEGMENT_SIZE, 16);
        assert!(q.is_null());
        assert!(CALLS.load(Ordering::SeqCst) > after_first);
        // realloc out of memory keeps the old block.
        // SAFETY: `p` is live; only the result is used afterwards.
        let r = unsafe { alloc.realloc(p, 32 * SEGMENT_SIZE, 16) }.unwrap();
        assert!(r.is_null());
        // SAFETY: still live.
        unsafe { alloc.free(p) }.unwrap();
        // Without a handler: plain null.
        let plain = leak(LockedHeap::new(leak(Pool::new(leak(Limited {
            limit: AtomicUsize::new(0),
            held: AtomicUsize::new(0),
        })))));
        assert!(plain.alloc(16, 8).is_null());
    }

    #[test]
    fn refused_frees_go_to_the_handler_and_change_nothing() {
        static SEEN: AtomicUsize = AtomicUsize::new(0);
        fn seen(_p: *mut u8, e: FreeError) {
            assert_eq!(e, FreeError::Foreign);
            SEEN.fetch_add(1, Ordering::SeqCst);
        }
        let src = leak(Limited {
            limit: AtomicUsize::new(8),
            held: AtomicUsize::new(0),
        });
        let alloc = leak(LockedHeap::new(leak(Pool::new(src))).with_invalid_free(seen));
        let mut local = 5u64;
        let layout = Layout::new::<u64>();
        // SAFETY: a foreign pointer: refused without touching it (the contract violation is
        // the test's point; kiln never writes to memory it does not own).
        unsafe { GlobalAlloc::dealloc(alloc, (&mut local as *mut u64).cast(), layout) };
        assert_eq!(
            (SEEN.load(Ordering::SeqCst), alloc.invalid_frees(), local),
            (1, 1, 5)
        );
        let quiet = leak(LockedHeap::new(leak(Pool::new(src))));
        // SAFETY: as above.
        unsafe { GlobalAlloc::dealloc(quiet, (&mut local as *mut u64).cast(), layout) };
        assert_eq!(quiet.invalid_frees(), 1);
        quiet.check().unwrap();
    }

    std::thread_local! {
        static CPU: Cell<usize> = const { Cell::new(usize::MAX) };
    }

    /// Each test thread is a "CPU" with its own index (the exclusivity the contract asks for).
    struct ThreadCpus;

    // SAFETY: every thread has a distinct index for its whole life, so no two threads run `f`
    // with the same index; indexes >= N go to the locked spare heap.
    unsafe impl CpuPin for ThreadCpus {
        fn pinned<R>(&self, f: impl FnOnce(usize) -> R) -> R {
            f(CPU.with(|c| c.get()))
        }
    }

    #[test]
    fn per_cpu_heaps_stress_with_remote_frees() {
        const CPUS: usize = 4;
        let src = leak(Limited {
            limit: AtomicUsize::new(usize::MAX),
            held: AtomicUsize::new(0),
        });
        let pool = leak(Pool::new(src));
        let alloc: &'static PerCpuHeaps<ThreadCpus, CPUS> =
            leak(PerCpuHeaps::new(pool, ThreadCpus));
        let done = leak(AtomicBool::new(false));
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..CPUS + 1)
            .map(|_| std::sync::mpsc::channel::<(usize, usize)>())
            .unzip();
        let mut handles = Vec::new();
        // CPUs 0..4 and one more thread beyond N (index 4: the spare heap).
        for (cpu, rx) in rxs.into_iter().enumerate() {
            let txs = txs.clone();
            handles.push(std::thread::spawn(move || {
                CPU.with(|c| c.set(cpu));
                let mut seed = cpu as u64 * 7919 + 1;
                let mut mine: Vec<(usize, usize)> = Vec::new();
                for i in 0..20_000usize {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let size = 1 + (seed % 3000) as usize;
                    let align = 1usize << (seed % 7);
                    let layout = Layout::from_size_align(size, align).unwrap();
                    // SAFETY: non-zero size.
                    let p = unsafe { GlobalAlloc::alloc(alloc, layout) };
                    assert!(!p.is_null() && (p as usize).is_multiple_of(align));
                    // SAFETY: fresh block of `size` bytes.
                    unsafe { p.write_bytes((size % 251) as u8, size) };
                    if i % 3 == 0 {
                        // Freed by another CPU: a remote free.
                        let _ = txs[(cpu + 1 + i % CPUS) % (CPUS + 1)].send((p as usize, size));
                    } else {
                        mine.push((p as usize, size));
                    }
                    if mine.len() > 200 {
                        let (q, n) = mine.swap_remove((seed % 200) as usize);
                        free_checked(alloc, q, n);
                    }
                    while let Ok((q, n)) = rx.try_recv() {
                        free_checked(alloc, q, n);
                    }
                }
                for (q, n) in mine {
                    free_checked(alloc, q, n);
                }
                alloc.check().unwrap();
                rx
            }));
        }
        drop(txs);
        let rxs: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        done.store(true, Ordering::SeqCst);
        // Blocks still in flight are freed by the test thread (a thread without a CPU of its
        // own: the spare heap).
        CPU.with(|c| c.set(CPUS));
        for rx in rxs {
            while let Ok((q, n)) = rx.try_recv() {
                free_checked(alloc, q, n);
            }
        }
        // A CPU's frees into other CPUs' pages wait in its batches until it collects: every
        // CPU collects once (publishing its batches), then once more (gathering what the others
        // published); then nothing is live anywhere.
        for _ in 0..2 {
            for cpu in 0..=CPUS {
                CPU.with(|c| c.set(cpu));
                alloc.collect();
                alloc.check().unwrap();
            }
        }
        assert_eq!(
            pool.segments_in_use(),
            0,
            "every block freed, every segment returned"
        );
        assert_eq!(alloc.invalid_frees(), 0);
    }

    fn free_checked<A: GlobalAlloc>(alloc: &A, p: usize, size: usize) {
        let p = p as *mut u8;
        // SAFETY: a live block of `size` bytes filled with `size % 251`, freed once.
        unsafe {
            assert_eq!(*p.add(size - 1), (size % 251) as u8);
            GlobalAlloc::dealloc(alloc, p, Layout::from_size_align_unchecked(size, 1));
        }
    }
}
