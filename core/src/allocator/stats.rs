//! Allocation statistics (cargo feature `stats`): counters per path and per class, live and peak
//! bytes, segments in use, and totals over retired pages. With the feature off every
//! function here is an empty `#[inline(always)]` body: zero cost.
//!
//! Where the counts live:
//!
//! | counter | kept in | updated by |
//! |---|---|---|
//! | per-class allocs, slow allocs, owner's frees | the heap's slot in `SLOTS` | its owner alone: a relaxed load and store, no read-modify-write |
//! | live bytes | the slot's `pending`, folded into the global counter every `FLUSH_BYTES` | the owner |
//! | remote and huge frees, huge allocs, segments, retired pages | process-wide atomics | any thread (cold paths) |
//!
//! A heap claims a slot the first time it takes pages (its slow path or an adoption) and gives
//! it back when it is abandoned, merging its counts into the process-wide totals. `snapshot` sums
//! the totals and every slot. The fast paths of a `stats` build therefore pay no atomic
//! read-modify-write. Counts are exact once all threads are quiescent and approximate while they
//! run; the peak is sampled when a slot flushes, so it may miss up to `FLUSH_BYTES` per thread.
//! When all `SLOTS` are claimed, further heaps share one overflow slot, whose plain
//! load-and-store updates can lose counts under contention (it is still memory-safe).
//!
//! A `stats` build can also stop counting at run time ([`set_counting`]): then the per-call
//! counters (allocations and frees per class, live bytes, remote and huge frees, pages' lifetime
//! counts) cost one relaxed load and a branch per call and stay where they are; slow-path,
//! segment and retired-page counts go on. `libkiln.so` counts only under `KILN_STATS=1`.

use super::size_class::CLASS_COUNT;

/// A snapshot of the counters.
#[derive(Clone, Debug)]
pub struct Stats {
    /// Allocations served by the fast path (pop from the direct page).
    pub fast_alloc: u64,
    /// Allocations that went through the slow path.
    pub slow_alloc: u64,
    /// Huge allocations (own segment span).
    pub huge_alloc: u64,
    /// Frees by the owner heap.
    pub local_free: u64,
    /// Frees by another thread (atomic push).
    pub remote_free: u64,
    /// Huge frees.
    pub huge_free: u64,
    /// Allocations per size class.
    pub class_alloc: [u64; CLASS_COUNT],
    /// Frees per size class.
    pub class_free: [u64; CLASS_COUNT],
    /// Bytes in live blocks (class sizes; huge sizes as requested).
    pub live_bytes: u64,
    /// Highest `live_bytes` seen.
    pub peak_bytes: u64,
    /// Segments reserved from the platform and not given back.
    pub segments_in_use: u64,
    /// Highest `segments_in_use` seen.
    pub peak_segments: u64,
    /// Pages given back to their segment.
    pub pages_retired: u64,
    /// Over all retired pages: blocks they served in their lifetime.
    pub retired_lifetime_allocs: u64,
    /// Over all retired pages: the sum of their peak use as a fraction of capacity, in 1/1000.
    pub retired_peak_fill_permille_sum: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            fast_alloc: 0,
            slow_alloc: 0,
            huge_alloc: 0,
            local_free: 0,
            remote_free: 0,
            huge_free: 0,
            class_alloc: [0; CLASS_COUNT],
            class_free: [0; CLASS_COUNT],
            live_bytes: 0,
            peak_bytes: 0,
            segments_in_use: 0,
            peak_segments: 0,
            pages_retired: 0,
            retired_lifetime_allocs: 0,
            retired_peak_fill_permille_sum: 0,
        }
    }
}

#[cfg(feature = "stats")]
mod imp {
    use core::sync::atomic::{AtomicBool, Ordering::Relaxed};

    // 64-bit counters on every target: native where the target has them, else portable-atomic's
    // lock-based fallback (32-bit microcontrollers).
    use portable_atomic::{AtomicI64, AtomicU64};

    use super::*;

    /// Process-wide counters: the cold paths' own, plus what abandoned heaps merged in.
    pub(super) struct Counters {
        pub slow_alloc: AtomicU64,
        pub huge_alloc: AtomicU64,
        pub remote_free: AtomicU64,
        pub huge_free: AtomicU64,
        pub class_alloc: [AtomicU64; CLASS_COUNT],
        pub class_free: [AtomicU64; CLASS_COUNT],
        pub live_bytes: AtomicI64,
        pub peak_bytes: AtomicI64,
        pub segments: AtomicI64,
        pub peak_segments: AtomicI64,
        pub pages_retired: AtomicU64,
        pub retired_allocs: AtomicU64,
        pub retired_fill: AtomicU64,
    }

    pub(super) static C: Counters = Counters {
        slow_alloc: AtomicU64::new(0),
        huge_alloc: AtomicU64::new(0),
        remote_free: AtomicU64::new(0),
        huge_free: AtomicU64::new(0),
        class_alloc: [const { AtomicU64::new(0) }; CLASS_COUNT],
        class_free: [const { AtomicU64::new(0) }; CLASS_COUNT],
        live_bytes: AtomicI64::new(0),
        peak_bytes: AtomicI64::new(0),
        segments: AtomicI64::new(0),
        peak_segments: AtomicI64::new(0),
        pages_retired: AtomicU64::new(0),
        retired_allocs: AtomicU64::new(0),
        retired_fill: AtomicU64::new(0),
    };

    /// One heap's counters. Written by the owner heap only (relaxed load + store), read by
    /// `snapshot` from any thread.
    pub(crate) struct Slot {
        pub claimed: AtomicBool,
        pub slow_alloc: AtomicU64,
        pub class_alloc: [AtomicU64; CLASS_COUNT],
        pub class_free: [AtomicU64; CLASS_COUNT],
        /// Live-byte change not yet added to `C.live_bytes`.
        pub pending: AtomicI64,
    }

    impl Slot {
        const fn new() -> Slot {
            Slot {
                claimed: AtomicBool::new(false),
                slow_alloc: AtomicU64::new(0),
                class_alloc: [const { AtomicU64::new(0) }; CLASS_COUNT],
                class_free: [const { AtomicU64::new(0) }; CLASS_COUNT],
                pending: AtomicI64::new(0),
            }
        }
    }

    /// Heaps that can have their own slot at once.
    pub(super) const SLOT_COUNT: usize = 128;
    pub(super) static SLOTS: [Slot; SLOT_COUNT] = [const { Slot::new() }; SLOT_COUNT];
    /// Shared by heaps that found no free slot (and the target of heaps not yet registered,
    /// which have no pages and so count nothing).
    pub(super) static OVERFLOW: Slot = Slot::new();

    /// A live-byte change this large is folded into the global counter (and the peak).
    pub(super) const FLUSH_BYTES: i64 = 64 * 1024;

    pub(super) fn add_live(bytes: i64) {
        let now = C.live_bytes.fetch_add(bytes, Relaxed) + bytes;
        // A plain load first: the read-modify-write is only needed when a new peak is reached.
        if bytes > 0 && now > C.peak_bytes.load(Relaxed) {
            C.peak_bytes.fetch_max(now, Relaxed);
        }
    }

    /// The owner's increment: no read-modify-write, since nobody else writes the slot.
    #[inline(always)]
    pub(super) fn bump(a: &AtomicU64, n: u64) {
        a.store(a.load(Relaxed).wrapping_add(n), Relaxed);
    }

    /// The owner's live-byte change; folded into the global counter past `FLUSH_BYTES`.
    #[inline(always)]
    pub(super) fn live(slot: &Slot, bytes: i64) {
        let now = slot.pending.load(Relaxed) + bytes;
        if (now + FLUSH_BYTES) as u64 > (2 * FLUSH_BYTES) as u64 {
            flush(slot, now);
        } else {
            slot.pending.store(now, Relaxed);
        }
    }

    #[cold]
    #[inline(never)]
    fn flush(slot: &Slot, now: i64) {
        slot.pending.store(0, Relaxed);
        add_live(now);
    }

    /// Whether the per-call counters count (see [`super::set_counting`]).
    pub(crate) static COUNTING: AtomicBool = AtomicBool::new(true);

    #[inline(always)]
    pub(crate) fn counting() -> bool {
        COUNTING.load(Relaxed)
    }

    pub(super) fn load(a: &AtomicU64) -> u64 {
        a.load(Relaxed)
    }

    pub(super) fn inc(a: &AtomicU64) {
        a.fetch_add(1, Relaxed);
    }
}

/// A heap's handle on its statistics slot (zero-sized without the `stats` feature).
pub(crate) struct HeapStats {
    #[cfg(feature = "stats")]
    slot: *const imp::Slot,
}

impl HeapStats {
    /// Not registered yet: points at the overflow slot, which a heap without pages never writes.
    pub(crate) const fn new() -> HeapStats {
        HeapStats {
            #[cfg(feature = "stats")]
            slot: &imp::OVERFLOW,
        }
    }

    #[cfg(feature = "stats")]
    #[inline(always)]
    fn slot(&self) -> &imp::Slot {
        // SAFETY: `slot` points at an element of the static `SLOTS` or at `OVERFLOW`.
        unsafe { &*self.slot }
    }

    /// Claims a slot of its own for the heap, if it has none yet and one is free. Called where a
    /// heap takes pages (slow path, adoption), so every counted event finds it registered.
    #[inline(always)]
    pub(crate) fn register(&mut self) {
        #[cfg(feature = "stats")]
        if core::ptr::eq(self.slot, &imp::OVERFLOW) {
            self.claim();
        }
    }

    #[cfg(feature = "stats")]
    #[cold]
    #[inline(never)]
    fn claim(&mut self) {
        use core::sync::atomic::Ordering::{Acquire, Relaxed};
        for slot in &imp::SLOTS {
            if !slot.claimed.load(Relaxed)
                && slot
                    .claimed
                    .compare_exchange(false, true, Acquire, Relaxed)
                    .is_ok()
            {
                self.slot = slot;
                return;
            }
        }
    }

    /// The heap is abandoned: merge its counts into the process-wide totals, zero its slot and
    /// give it back.
    pub(crate) fn release(&mut self) {
        #[cfg(feature = "stats")]
        {
            use core::sync::atomic::Ordering::{Relaxed, Release};
            if core::ptr::eq(self.slot, &imp::OVERFLOW) {
                return;
            }
            let slot = self.slot();
            let take = |a: &portable_atomic::AtomicU64| a.swap(0, Relaxed);
            imp::C.slow_alloc.fetch_add(take(&slot.slow_alloc), Relaxed);
            for c in 0..CLASS_COUNT {
                imp::C.class_alloc[c].fetch_add(take(&slot.class_alloc[c]), Relaxed);
                imp::C.class_free[c].fetch_add(take(&slot.class_free[c]), Relaxed);
            }
            imp::add_live(slot.pending.swap(0, Relaxed));
            slot.claimed.store(false, Release);
            self.slot = &imp::OVERFLOW;
        }
    }

    /// Fast-path allocation. The fast-path total is derived in `snapshot` (class counts minus
    /// slow-path ones).
    #[inline(always)]
    pub(crate) fn fast_alloc(&self, _class: usize, _block_size: usize) {
        #[cfg(feature = "stats")]
        if imp::counting() {
            self.count_alloc(_class, _block_size);
        }
    }

    /// [`fast_alloc`](Self::fast_alloc) of a block of `class` from a hot stack: its size is
    /// looked up only when counting.
    #[inline(always)]
    pub(crate) fn hot_alloc(&self, _class: usize) {
        #[cfg(feature = "stats")]
        if imp::counting() {
            self.count_alloc(_class, super::size_class::class_size(_class));
        }
    }

    #[inline(always)]
    pub(crate) fn slow_alloc(&self, _class: usize, _block_size: usize) {
        #[cfg(feature = "stats")]
        {
            imp::bump(&self.slot().slow_alloc, 1);
            if imp::counting() {
                self.count_alloc(_class, _block_size);
            }
        }
    }

    #[cfg(feature = "stats")]
    #[inline(always)]
    fn count_alloc(&self, class: usize, block_size: usize) {
        let slot = self.slot();
        imp::bump(&slot.class_alloc[class], 1);
        imp::live(slot, block_size as i64);
    }

    /// Owner's free. The local total is derived in `snapshot` (class frees minus remote ones).
    #[inline(always)]
    pub(crate) fn local_free(&self, _class: usize, _block_size: usize) {
        #[cfg(feature = "stats")]
        if imp::counting() {
            let slot = self.slot();
            imp::bump(&slot.class_free[_class], 1);
            imp::live(slot, -(_block_size as i64));
        }
    }
}

#[inline(always)]
pub(crate) fn huge_alloc(_size: usize) {
    #[cfg(feature = "stats")]
    if imp::counting() {
        imp::inc(&imp::C.huge_alloc);
        imp::add_live(_size as i64);
    }
}

#[inline(always)]
pub(crate) fn huge_free(_size: usize) {
    #[cfg(feature = "stats")]
    if imp::counting() {
        imp::inc(&imp::C.huge_free);
        imp::add_live(-(_size as i64));
    }
}

/// A free by a thread that does not own the page: straight into the process-wide counters (the
/// remote path already does an atomic exchange on the page).
#[inline(always)]
pub(crate) fn remote_free(_class: usize, _block_size: usize) {
    #[cfg(feature = "stats")]
    if imp::counting() {
        imp::inc(&imp::C.remote_free);
        imp::inc(&imp::C.class_free[_class]);
        imp::add_live(-(_block_size as i64));
    }
}

#[inline(always)]
pub(crate) fn segment_delta(_n: i64) {
    #[cfg(feature = "stats")]
    {
        use core::sync::atomic::Ordering::Relaxed;
        let now = imp::C.segments.fetch_add(_n, Relaxed) + _n;
        imp::C.peak_segments.fetch_max(now, Relaxed);
    }
}

/// A page was retired: the blocks it handed out in its life and its peak fill (`peak_used`
/// of `reserved` blocks).
#[cfg(feature = "stats")]
#[inline(always)]
pub(crate) fn page_retired(lifetime_allocs: u64, peak_used: u32, reserved: u32) {
    use core::sync::atomic::Ordering::Relaxed;
    imp::inc(&imp::C.pages_retired);
    imp::C.retired_allocs.fetch_add(lifetime_allocs, Relaxed);
    let fill = peak_used as u64 * 1000 / reserved.max(1) as u64;
    imp::C.retired_fill.fetch_add(fill, Relaxed);
}

/// Whether statistics are compiled in.
pub const ENABLED: bool = cfg!(feature = "stats");

/// Turns the per-call counters of a `stats` build on or off for the whole process (on at
/// start; no effect without the feature). Off, they cost one relaxed load and a branch per call
/// and keep their values; slow-path, segment and retired-page counts go on. Counts taken while
/// some calls were not counted are not exact (live bytes may even be clamped at 0), so a program
/// that wants exact numbers leaves counting on from its first allocation.
pub fn set_counting(_on: bool) {
    #[cfg(feature = "stats")]
    imp::COUNTING.store(_on, core::sync::atomic::Ordering::Relaxed);
}

/// Whether the per-call counters count (false without the `stats` feature).
#[inline(always)]
pub fn counting() -> bool {
    #[cfg(feature = "stats")]
    return imp::counting();
    #[cfg(not(feature = "stats"))]
    false
}

/// Whether a page's lifetime counters should be bumped (a `stats` build that is counting).
#[cfg(feature = "stats")]
#[inline(always)]
pub(crate) fn page_counting() -> bool {
    imp::counting()
}

/// The counters now (all zero when the `stats` feature is off).
pub fn snapshot() -> Stats {
    #[cfg(feature = "stats")]
    {
        use core::sync::atomic::Ordering::Relaxed;
        let c = &imp::C;
        let mut s = Stats {
            slow_alloc: imp::load(&c.slow_alloc),
            huge_alloc: imp::load(&c.huge_alloc),
            remote_free: imp::load(&c.remote_free),
            huge_free: imp::load(&c.huge_free),
            live_bytes: c.live_bytes.load(Relaxed).max(0) as u64,
            peak_bytes: c.peak_bytes.load(Relaxed).max(0) as u64,
            segments_in_use: c.segments.load(Relaxed).max(0) as u64,
            peak_segments: c.peak_segments.load(Relaxed).max(0) as u64,
            pages_retired: imp::load(&c.pages_retired),
            retired_lifetime_allocs: imp::load(&c.retired_allocs),
            retired_peak_fill_permille_sum: imp::load(&c.retired_fill),
            ..Stats::default()
        };
        for i in 0..CLASS_COUNT {
            s.class_alloc[i] = imp::load(&c.class_alloc[i]);
            s.class_free[i] = imp::load(&c.class_free[i]);
        }
        let mut live = c.live_bytes.load(Relaxed);
        for slot in imp::SLOTS.iter().chain([&imp::OVERFLOW]) {
            s.slow_alloc += imp::load(&slot.slow_alloc);
            for i in 0..CLASS_COUNT {
                s.class_alloc[i] += imp::load(&slot.class_alloc[i]);
                s.class_free[i] += imp::load(&slot.class_free[i]);
            }
            live += slot.pending.load(Relaxed);
        }
        s.live_bytes = live.max(0) as u64;
        s.peak_bytes = s.peak_bytes.max(s.live_bytes);
        let class_allocs: u64 = s.class_alloc.iter().sum();
        let class_frees: u64 = s.class_free.iter().sum();
        s.fast_alloc = class_allocs.saturating_sub(s.slow_alloc);
        s.local_free = class_frees.saturating_sub(s.remote_free);
        s
    }
    #[cfg(not(feature = "stats"))]
    Stats::default()
}
