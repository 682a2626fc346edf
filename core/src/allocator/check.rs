//! The invariant walker: checks every segment, page and list a heap owns against the invariants
//! stated in `segment.rs`, `page.rs` and `heap.rs`. Tests run it after every step.
//!
//! Call it only while no other thread frees into the heap's pages (remote frees may be collected
//! concurrently, and then `thread_free` changes under the walk).

use core::fmt;
use core::sync::atomic::Ordering;

use super::heap::{is_hot, Heap, HOT_STACK_OF, REMOTE_MAX};
use super::page::{Page, IN_FULL, KEPT, PAGE_SIZE};
use super::segment::{Segment, FIRST_PAGE, PAGES_PER_SEGMENT};
use super::size_class::{class_size, span_pages, CLASS_COUNT};

/// A broken invariant: what and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckError {
    /// Which invariant.
    pub what: &'static str,
    /// The segment, page or block address involved.
    pub addr: usize,
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "heap invariant broken: {} (at {:#x})",
            self.what, self.addr
        )
    }
}

fn fail<T>(what: &'static str, addr: usize) -> Result<T, CheckError> {
    Err(CheckError { what, addr })
}

/// Blocks a span can hold at most (8-byte blocks in one page).
const MAX_BLOCKS: usize = PAGE_SIZE / 8;

impl Heap {
    /// Walks everything this heap owns; the first broken invariant is returned.
    pub fn check(&self) -> Result<(), CheckError> {
        let mut pages_in_segments = 0usize;
        let mut seg = self.segments_head();
        let mut seen_full_segment = false;
        let mut count = 0;
        while !seg.is_null() {
            count += 1;
            if count > self.segment_count() {
                return fail("segment list longer than its length (cycle?)", seg as usize);
            }
            // SAFETY: segments on the heap's list are live and owned.
            let s = unsafe { &*seg };
            if !Segment::is_ours(seg) {
                return fail("owned segment not in the segment map", seg as usize);
            }
            if !self.owns(seg) {
                return fail("segment on heap list has another owner", seg as usize);
            }
            if s.has_free_page() && seen_full_segment {
                return fail("segment with free pages after a full one", seg as usize);
            }
            seen_full_segment |= !s.has_free_page();
            pages_in_segments += check_segment(s)?;
            seg = s.next;
        }
        if count != self.segment_count() {
            return fail("segment list length mismatch", 0);
        }
        let mut pages_in_queues = 0;
        for class in 0..CLASS_COUNT {
            pages_in_queues += self.check_queue(class, false)?;
            pages_in_queues += self.check_queue(class, true)?;
            let head = self.queue(class, false).head;
            let direct = self.direct_page(class);
            if !(direct == head || (head.is_null() && Heap::is_empty_page(direct))) {
                return fail("direct page is not the queue head", direct as usize);
            }
        }
        if pages_in_queues != pages_in_segments {
            return fail("pages in use and pages on queues differ", pages_in_queues);
        }
        for class in (0..CLASS_COUNT).filter(|&c| is_hot(c)) {
            self.check_hot(class)?;
        }
        self.check_remote()?;
        self.check_known()
    }

    /// Every segment the free path trusts without the map ([`Heap::knows`]) is one this heap
    /// owns and lists.
    fn check_known(&self) -> Result<(), CheckError> {
        for seg in self.known_segments() {
            let mut s = self.segments_head();
            while !s.is_null() && s != seg {
                // SAFETY: segments on the heap's list are live and owned.
                s = unsafe { (*s).next };
            }
            if s.is_null() || !Segment::is_ours(seg) || !self.owns(seg) {
                return fail("known segment is not one this heap owns", seg as usize);
            }
        }
        for seg in self.foreign_segments() {
            // A segment unregistered while the walk runs (by its owner, on another thread) has
            // made the table stale first: only a valid table's entries must be kiln's.
            if !Segment::is_ours(seg) && self.foreign_segments().next().is_some() {
                return fail(
                    "verified segment of another heap is not kiln's",
                    seg as usize,
                );
            }
        }
        Ok(())
    }

    /// Every batch of remote frees is a non-empty list of distinct block starts of a page in
    /// use, of a class with a hot stack, ending in the page's encoding of null at `tail`; the
    /// batches hold `pending` blocks in all. Reads of another heap's page use only what stays
    /// fixed while the page is in use (its blocks are counted in `used`, so it stays in use).
    fn check_remote(&self) -> Result<(), CheckError> {
        let (batches, pending) = self.remote_batches();
        let mut total = 0u32;
        for batch in batches {
            if batch.page.is_null() {
                if !batch.head.is_null() || !batch.tail.is_null() {
                    return fail("free batch slot holds blocks", batch.head as usize);
                }
                continue;
            }
            // SAFETY: a batch's page stays in use while the batch holds blocks of it.
            let page = unsafe { &*batch.page };
            if !page.in_use() || !is_hot(page.class as usize) {
                return fail("remote batch of a page not in use", batch.page as usize);
            }
            let mut b = batch.head;
            let mut last = b;
            let mut seen: heapless::Vec<*mut u8, { REMOTE_MAX as usize }> = heapless::Vec::new();
            while !b.is_null() {
                let p = b.cast::<u8>();
                let off = (p as usize).wrapping_sub(page.start as usize);
                if !off.is_multiple_of(page.block_size)
                    || off / page.block_size >= page.reserved as usize
                {
                    return fail("remote batch entry is not a block of its page", p as usize);
                }
                if seen.contains(&p) || seen.push(p).is_err() {
                    return fail("remote batch holds a block twice (cycle?)", p as usize);
                }
                last = b;
                // SAFETY: `b` was just proven to be a block of the page.
                b = page.decode(unsafe { b.cast::<usize>().read() });
            }
            if seen.is_empty() || last != batch.tail || seen.len() != batch.len as usize {
                return fail(
                    "remote batch empty, tail not its last block, or length wrong",
                    batch.page as usize,
                );
            }
            total += seen.len() as u32;
        }
        if total != pending {
            return fail(
                "remote batches do not hold `pending` blocks",
                total as usize,
            );
        }
        Ok(())
    }

    /// Every block on the hot stack of `class` is a block start of a page in use of that class,
    /// stacked once, and still holds its marker (a write after free shows); a block of an owned
    /// page is on none of its free lists (a foreign page's lists belong to its owner's thread).
    fn check_hot(&self, class: usize) -> Result<(), CheckError> {
        let stack = self.hot_stack(class);
        for (i, &b) in stack.iter().enumerate() {
            let seg = super::segment::segment_of(b);
            if !Segment::is_ours(seg) {
                return fail("hot block not in a segment of kiln's", b as usize);
            }
            // SAFETY: the segment is a live header of ours (just checked).
            let page = unsafe { &*(*seg).page_of(b) };
            if !page.in_use() || page.class as usize != class || !page.is_block_start(b) {
                return fail("hot block is not a block of its class", b as usize);
            }
            if stack[..i].contains(&b) {
                return fail("block twice on a hot stack", b as usize);
            }
            // SAFETY: the heap owns the page; no other thread changes its owner lists.
            if self.owns(seg) && unsafe { page.is_on_a_free_list(b, true) } {
                return fail("hot block also on a free list", b as usize);
            }
            // SAFETY: a block of the page, at least one word long.
            if unsafe { b.cast::<usize>().read() } != page.key {
                return fail("hot block written after it was freed", b as usize);
            }
        }
        Ok(())
    }

    fn check_queue(&self, class: usize, full: bool) -> Result<usize, CheckError> {
        let q = self.queue(class, full);
        let mut n = 0;
        let mut prev: *mut Page = core::ptr::null_mut();
        let mut page = q.head;
        while !page.is_null() {
            // SAFETY: queue pages are owned pages.
            let p = unsafe { &*page };
            if p.prev != prev {
                return fail("queue back link broken", page as usize);
            }
            if p.class as usize != class || !p.in_use() {
                return fail("page on the wrong queue or not in use", page as usize);
            }
            if p.hot_at != HOT_STACK_OF[class] {
                return fail("page names another class's hot stack", page as usize);
            }
            if (p.flags & IN_FULL != 0) != full {
                return fail("IN_FULL flag disagrees with the queue", page as usize);
            }
            if p.flags & KEPT != 0 && (full || !q.is_single()) {
                return fail(
                    "page kept as the last of its class is not alone on its queue",
                    page as usize,
                );
            }
            if !self.owns(super::segment::segment_of(page.cast())) {
                return fail(
                    "queued page in a segment owned by another heap",
                    page as usize,
                );
            }
            n += 1;
            prev = page;
            page = p.next;
        }
        if q.tail != prev {
            return fail("queue tail wrong", q.tail as usize);
        }
        Ok(n)
    }
}

/// Checks one segment's pages; returns how many spans are in use.
fn check_segment(s: &Segment) -> Result<usize, CheckError> {
    let mut in_use = 0;
    let mut i = FIRST_PAGE;
    // The mask is zero in the default geometry (no header page).
    #[allow(clippy::bad_bit_mask)]
    if s.free_pages & ((1 << FIRST_PAGE) - 1) != 0 {
        return fail("a header page is marked free", s as *const Segment as usize);
    }
    // Only free pages wait for a purge (a reused span must never be decommitted), and a page
    // waits in one generation at a time.
    if (s.dirty | s.stale) & !s.free_pages != 0 || s.dirty & s.stale != 0 {
        return fail(
            "a page in use or in two generations is marked for purge",
            s as *const Segment as usize,
        );
    }
    // Only pages of spans in use count as dense (the large-page policy's measure).
    if s.dense & s.free_pages != 0 {
        return fail("a free page is counted dense", s as *const Segment as usize);
    }
    while i < PAGES_PER_SEGMENT {
        let page = &s.pages[i];
        let free_bit = s.free_pages & (1 << i) != 0;
        if !page.in_use() {
            if !free_bit {
                return fail("page neither free nor in use", page as *const Page as usize);
            }
            i += 1;
            continue;
        }
        let span = page.span as usize;
        if span != span_pages(page.class as usize)
            || page.block_size != class_size(page.class as usize)
        {
            return fail(
                "page span or block size does not match its class",
                page as *const Page as usize,
            );
        }
        for d in 0..span {
            if s.free_pages & (1 << (i + d)) != 0 {
                return fail(
                    "page of a span in use marked free",
                    page as *const Page as usize,
                );
            }
            let head_off = s.page_off[i + d] as usize;
            let page_at_off = (s as *const Segment as usize + head_off) as *const Page;
            if s.span_head[i + d] as usize != i
                || !core::ptr::eq(page_at_off, page)
                || (d > 0 && s.pages[i + d].head_delta as usize != d)
            {
                return fail(
                    "span continuation page has a wrong head offset",
                    page as *const Page as usize,
                );
            }
        }
        let span_mask = Segment::pages_mask(i, span);
        let dense = s.dense & span_mask;
        if dense != 0 && (dense != span_mask || !page.touches_every_os_page()) {
            return fail(
                "page counted dense but not fully carved into small blocks",
                page as *const Page as usize,
            );
        }
        check_page(page)?;
        in_use += 1;
        i += span;
    }
    Ok(in_use)
}

/// `used == capacity - |free| - |local_free|`, lists well formed and disjoint.
fn check_page(page: &Page) -> Result<(), CheckError> {
    let addr = page as *const Page as usize;
    if page.capacity > page.reserved || page.reserved as usize > MAX_BLOCKS {
        return fail("capacity beyond reserved", addr);
    }
    let mut seen = [0u64; MAX_BLOCKS / 64];
    // `thread_free` is read once: other threads may push onto it while the owner checks, so
    // a second read could count a block the walk did not see.
    let mut owner_lists = 0u32;
    let (remote, remote_len) = page.remote_list(page.thread_free.load(Ordering::Acquire));
    for (head, owner_list) in [(page.free, true), (page.local_free, true), (remote, false)] {
        let Some(n) = page.list_len(head, page.capacity) else {
            return fail(
                "free list link outside the page, misaligned, or cyclic",
                addr,
            );
        };
        let mut b = head;
        for _ in 0..n {
            let Some(idx) = page.block_index(b.cast()) else {
                return fail("free block outside the page", b as usize);
            };
            let (w, bit) = (idx as usize / 64, 1u64 << (idx % 64));
            if seen[w] & bit != 0 {
                return fail("block on two free lists (or twice on one)", b as usize);
            }
            seen[w] |= bit;
            b = next_of(page, b);
        }
        if owner_list {
            owner_lists += n;
        } else if n != remote_len {
            return fail("thread_free's length differs from its list", addr);
        }
    }
    if page.used + owner_lists != page.capacity {
        return fail("used != capacity - |free| - |local_free|", addr);
    }
    Ok(())
}

fn next_of(page: &Page, b: *mut super::page::Block) -> *mut super::page::Block {
    // SAFETY: `b` was validated as a carved block of `page` by `list_len`.
    let word = unsafe { b.cast::<usize>().read() };
    (word ^ page.key) as *mut super::page::Block
}
