//! Retiring empty pages, and the delayed purge of the free pages a heap holds resident.
//!
//! Delayed purge. Retired spans stay resident (a span retired and soon reused costs no
//! `decommit` and no page faults); their pages are marked `dirty` in their segment. Every
//! [`PURGE_TICK_BYTES`] of retired spans the heap looks at how many bytes of free pages it
//! holds resident. Above [`PURGE_ABOVE_BYTES`] it runs a purge tick: each segment whose `stale`
//! pages (free since the previous tick) add up to [`PURGE_MIN_BYTES`] decommits them, and every
//! segment's `dirty` pages become `stale`. So a span is decommitted only after at least one more
//! tick's worth of spans was retired after it and it was not reused meanwhile.
use super::*;

/// Bytes of spans a heap retires between two looks at what it holds resident but free
/// (4 MiB; 128 KiB in the small geometry). 8 MiB halved glibc-thread's page faults through
/// LD_PRELOAD and made it 7% faster, but raised its peak above mimalloc's (docs/perf.md).
pub const PURGE_TICK_BYTES: usize = 2 * SEGMENT_SIZE;
/// A purge tick runs when the heap's segments hold more than this many bytes of free pages
/// still resident (1 MiB; 32 KiB in the small geometry).
pub const PURGE_ABOVE_BYTES: usize = SEGMENT_SIZE / 2;
/// A segment with fewer stale bytes than this (512 KiB; 16 KiB in the small geometry) keeps
/// them for a later tick: a `decommit` call for a few pages costs more than it returns.
pub const PURGE_MIN_BYTES: usize = SEGMENT_SIZE / 4;

impl Heap {
    /// Gives an empty page back to its segment, and the segment to the pool if it empties.
    ///
    /// # Safety
    /// `page` is owned, on `queues[class]`, and has no block in use.
    pub(super) unsafe fn retire(&mut self, page: *mut Page) {
        // SAFETY: owned page and segment.
        unsafe {
            let class = (*page).class as usize;
            self.queues[class].remove(page);
            self.sync_direct(class);
            #[cfg(feature = "stats")]
            stats::page_retired((*page).lifetime_allocs, (*page).peak_used, (*page).reserved);
            let seg = segment_of(page.cast());
            let span = (*page).span.max(1) as usize;
            (*seg).release_span((*seg).index_of(page));
            self.segments.remove(seg);
            if (*seg).is_empty() {
                self.forget(seg);
                self.pool.free_segment(seg);
            } else {
                self.insert_segment(seg);
                self.retired_since_tick += span * PAGE_SIZE;
                if self.retired_since_tick >= PURGE_TICK_BYTES {
                    self.purge_tick();
                }
            }
            // A retired page means frees of this class outpace its allocations: let the class
            // drain straight into its pages until it allocates from a page again.
            if is_hot(class) {
                self.hot_stop(class);
                self.hot_flush_class(class);
            }
        }
    }

    /// Looks at the free pages the heap holds resident and, above [`PURGE_ABOVE_BYTES`], runs a
    /// purge tick (see [`PURGE_TICK_BYTES`]). Nothing when the platform cannot decommit.
    #[cold]
    #[inline(never)]
    pub(super) fn purge_tick(&mut self) {
        self.retired_since_tick = 0;
        let Some(source) = self.pool.decommit_source() else {
            return;
        };
        // Segments with a free page come first on the list: stop at the first full one.
        let mut held = 0;
        let mut seg = self.segments.head;
        // SAFETY: segments on the list are owned by this heap.
        unsafe {
            while !seg.is_null() && (*seg).has_free_page() {
                held += (*seg).purgeable_bytes();
                seg = (*seg).next;
            }
        }
        if held <= PURGE_ABOVE_BYTES {
            return;
        }
        seg = self.segments.head;
        // SAFETY: segments on the list are owned by this heap (no free page holds live data)
        // and were reserved by its pool, whose source this is.
        unsafe {
            while !seg.is_null() && (*seg).has_free_page() {
                if (*seg).stale_bytes() >= PURGE_MIN_BYTES {
                    (*seg).purge_stale(source);
                } else {
                    (*seg).age();
                }
                seg = (*seg).next;
            }
        }
    }
}
