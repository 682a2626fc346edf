//! Moving segments between heaps: `collect` (publish, gather, retire, adopt), `abandon` (a
//! heap's owner goes away: its segments go to the pool's abandoned list) and `adopt` (another
//! heap takes an abandoned segment over).
use super::*;

impl Heap {
    /// Takes over an abandoned segment: collects its pages, retires the empty ones, queues the
    /// rest; returns the segment to the pool if nothing in it is used any more.
    ///
    /// # Safety
    /// `seg` was taken off the pool's abandoned list.
    pub(super) unsafe fn adopt(&mut self, seg: *mut Segment) {
        self.stats.register();
        // SAFETY: nobody else owns the segment now; the pool lock ordered us after the abandoner.
        unsafe {
            (*seg).owner.store(self.id, Ordering::Release);
            let mut i = 0;
            while i < PAGES_PER_SEGMENT {
                let page: *mut Page = &mut (*seg).pages[i];
                if !(*page).in_use() {
                    i += 1;
                    continue;
                }
                let span = (*page).span as usize;
                let class = (*page).class as usize;
                (*page).collect();
                (*page).flags &= !(IN_FULL | KEPT);
                if (*page).used == 0 {
                    #[cfg(feature = "stats")]
                    stats::page_retired(
                        (*page).lifetime_allocs,
                        (*page).peak_used,
                        (*page).reserved,
                    );
                    (*seg).release_span(i);
                } else if (*page).free.is_null() && (*page).capacity == (*page).reserved {
                    (*page).flags |= IN_FULL;
                    self.full[class].push_back(page);
                } else {
                    self.queues[class].push_back(page);
                    self.sync_direct(class);
                }
                i += span;
            }
            if (*seg).is_empty() {
                self.forget(seg);
                self.pool.free_segment(seg);
            } else {
                self.insert_segment(seg);
            }
        }
    }

    /// Publishes this heap's batches of remote frees, collects every page's remote and local
    /// frees, retires every empty page (the last page of a class included), and adopts all
    /// abandoned segments. Memory goes back to the pool.
    pub fn collect(&mut self) {
        self.flush_remote();
        while self.has_id() {
            let seg = self.pool.take_abandoned();
            if seg.is_null() {
                break;
            }
            // SAFETY: taken off the abandoned list.
            unsafe { self.adopt(seg) };
        }
        self.collect_own();
    }

    /// The part of [`collect`](Self::collect) that touches only this heap's own pages.
    pub(super) fn collect_own(&mut self) {
        self.hot_flush();
        for class in 0..CLASS_COUNT {
            // Bring full pages back so their remote frees are seen.
            // SAFETY: pages on this heap's queues are owned.
            unsafe {
                loop {
                    let page = self.full[class].head;
                    if page.is_null() {
                        break;
                    }
                    self.full[class].remove(page);
                    (*page).flags &= !IN_FULL;
                    self.queues[class].push_back(page);
                }
                let mut page = self.queues[class].head;
                while !page.is_null() {
                    let next = (*page).next;
                    (*page).collect();
                    if (*page).used == 0 {
                        self.retire(page);
                    } else if (*page).free.is_null() && (*page).capacity == (*page).reserved {
                        self.move_to_full(class, page);
                    }
                    page = next;
                }
            }
            self.sync_direct(class);
        }
    }

    /// Gives up all pages: empty ones go back to the pool, the rest are abandoned for another
    /// heap to adopt. Called when the owning thread exits. The heap is empty afterwards and may
    /// be used again.
    pub fn abandon(&mut self) {
        self.flush_remote();
        self.collect_own();
        loop {
            let seg = self.segments.pop();
            if seg.is_null() {
                break;
            }
            // SAFETY: owned segment, now unlisted; we never touch it again.
            unsafe { self.pool.abandon(seg) };
        }
        self.known = [NOT_A_SEGMENT; KNOWN_SEGMENTS];
        debug_assert!((0..CLASS_COUNT)
            .filter(|&c| is_hot(c))
            .all(|c| self.hot_stack(c).is_empty()));
        self.direct = [empty_page(); CLASS_COUNT];
        self.queues = [PageQueue::EMPTY; CLASS_COUNT];
        self.full = [PageQueue::EMPTY; CLASS_COUNT];
        self.stats.release();
    }
}
