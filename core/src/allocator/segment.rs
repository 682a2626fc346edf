//! Segments: `SEGMENT_SIZE`-aligned regions (2 MiB; 64 KiB in the small geometry) from the platform, split into pages, with all
//! page metadata in a header at the segment's start.
//!
//! ```text
//!   segment (2 MiB, aligned to 2 MiB)
//!   +--------+---------+---------+---------+-----+----------+
//!   | header | page 0  | page 1  | page 2  | ... | page 31  |
//!   | (meta) | (short) |  64 KiB |  64 KiB |     |  64 KiB  |
//!   +--------+---------+---------+---------+-----+----------+
//!   ^ segment_of(p) = p & !(SEGMENT_SIZE - 1)
//!   page_of(p) = segment + page_off[(p - segment) >> PAGE_SHIFT]   (the span's head `Page`)
//!
//!   huge segment: one block, in a span of `span_segments` segments
//!   +--------+----------------------------------------------+
//!   | header | block at `huge_offset` (< SEGMENT_SIZE)        |
//!   +--------+----------------------------------------------+
//! ```
//!
//! Invariants:
//! - `segment_of(p) == p & !(SEGMENT_SIZE-1)` for every block `p` (a huge block starts inside its
//!   first segment);
//! - a segment is ours iff its bit is set in the segment map *and* its cookie matches, so a foreign
//!   pointer is recognised without reading anything outside kiln's own memory;
//! - bit `i` of `free_pages` is set iff page `i` is not part of a span in use;
//! - `dirty` and `stale` (pages waiting for the owner heap's delayed purge) are disjoint subsets
//!   of `free_pages`: claiming a span clears its bits, so a reused span is never decommitted;
//! - `dense` (spans fully carved into blocks of at most 4 KiB, so every OS page of them is
//!   resident) is a subset of the pages in use, a whole span at a time; the heap counts it to
//!   decide whether its next fresh segment asks the platform for large pages;
//! - `large_pages`: the platform was asked to back the segment with large pages and has not
//!   been told otherwise; a purge withdraws the advice before its first decommit there.
//! - `owner` is the id of the heap allowed to touch the pages' non-atomic lists (a number no
//!   other heap ever gets, not an address a later heap could occupy); 0 while abandoned.
//! - `pool` is the pool that reserved the span: a huge block goes back to that pool's source
//!   whichever heap frees it.

use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};

use super::page::{Page, KEPT, PAGE_SHIFT, PAGE_SIZE};
use super::segment_map;
use crate::platform::MemorySource;

pub use super::geometry::{PAGES_PER_SEGMENT, SEGMENT_SIZE};
/// Bytes at the start of a segment holding its header, rounded up to a power of two: 8 KiB by
/// default (a `Page` takes three cache lines; page 0 is shorter by this much), 4 KiB in the
/// small geometry (the first two 2 KiB pages, which are never handed out).
pub const HEADER_SIZE: usize = core::mem::size_of::<Segment>().next_power_of_two();
/// Alignment [`MemorySource::decommit`] wants at both ends of a range.
const DECOMMIT_ALIGN: usize = 4096;
/// Empty segments kept for reuse before they go back to the platform.
pub const CACHE_MAX: usize = 4;
/// Segments that freed huge spans of more than one segment may hold in the pool for reuse
/// (16 MiB by default): a table or buffer that grows past a segment and is dropped and grown
/// again (a hash map rebuilt per request) reuses its span instead of an mmap, page faults on
/// every page and a munmap each time. [`Pool::trim`] gives them back.
pub const HUGE_CACHE_SEGMENTS: usize = 8;
/// The `huge_offset` of a cached huge span: no address is its block.
const NO_BLOCK: usize = usize::MAX;

/// `free_pages` of an empty segment: every page but those of the header.
const ALL_PAGES_FREE: u32 =
    ((((1u64 << PAGES_PER_SEGMENT) - 1) & !((1u64 << FIRST_PAGE) - 1)) & 0xffff_ffff) as u32;
const COOKIE_KEY: usize = 0x6b69_6c6e_5345_474d_u64 as usize; // "kilnSEGM" (truncated on 32-bit)

/// What a segment holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub enum SegmentKind {
    /// Pages of size-classed blocks.
    Pages,
    /// One huge block.
    Huge,
}

/// The segment header.
#[repr(C)]
pub struct Segment {
    cookie: usize,
    pub(crate) kind: SegmentKind,
    /// A huge span fresh from the platform (not reused from the pool's cache).
    pub(crate) fresh: bool,
    /// Bit `i` set: page `i` is free.
    pub(crate) free_pages: u32,
    /// Free pages still resident that were retired since the owner heap's last purge tick
    /// (see [`purge_stale`](Self::purge_stale)); a subset of `free_pages`.
    pub(crate) dirty: u32,
    /// Free pages still resident that stayed unused over a whole purge tick: the next tick
    /// decommits them. A subset of `free_pages`, disjoint from `dirty`.
    pub(crate) stale: u32,
    /// Bit `i` set: page `i` belongs to a span in use that is fully carved into blocks of at
    /// most 4 KiB, so every OS page of it is resident ([`Page::touches_every_os_page`]). A subset
    /// of the pages in use; the heap's large-page policy counts these.
    pub(crate) dense: u32,
    /// The platform was asked to back this segment with large pages
    /// ([`MemorySource::advise_large_pages`]) and not yet told otherwise.
    pub(crate) large_pages: bool,
    /// Id of the heap that owns the pages' lists ([`Heap::id`](super::heap::Heap)); 0 while
    /// abandoned (and always for huge segments).
    pub(crate) owner: AtomicUsize,
    /// The pool that reserved this span.
    pub(crate) pool: *const Pool,
    /// Segments in this span (1 unless huge), counted from the header.
    pub(crate) span_segments: usize,
    /// Segments reserved in front of the header that belong to the same reservation (an
    /// over-aligned huge block on a source that cannot give back parts of a reservation).
    pub(crate) lead_segments: usize,
    /// Huge: bytes requested and the block's offset from the segment start.
    pub(crate) huge_size: usize,
    pub(crate) huge_offset: usize,
    /// `span_head[i]`: index of the head page of the span page `i` belongs to (a byte table so
    /// `page_of` needs no multiply to find the head).
    pub(crate) span_head: [u8; PAGES_PER_SEGMENT],
    /// `page_off[i]`: byte offset from the segment start of the head `Page` of the span page `i`
    /// belongs to, so the free path finds it with one load and an add (no multiply by the size
    /// of a `Page`).
    pub(crate) page_off: [u16; PAGES_PER_SEGMENT],
    /// Links in the owner heap's segment list or in a pool list.
    pub(crate) next: *mut Segment,
    pub(crate) prev: *mut Segment,
    pub(crate) pages: [Page; PAGES_PER_SEGMENT],
}

const _: () = assert!(core::mem::size_of::<Segment>() <= HEADER_SIZE);
const _: () = assert!(HEADER_SIZE.is_power_of_two());
/// The first page that can hold blocks: 0 when the header fits in a short page 0, else the page
/// after the header.
pub const FIRST_PAGE: usize = HEADER_SIZE / PAGE_SIZE;
const _: () = assert!(FIRST_PAGE < PAGES_PER_SEGMENT / 4);
/// Every page (and span) start is aligned to this: the header size or the page size.
pub const PAGE_START_ALIGN: usize = if HEADER_SIZE < PAGE_SIZE {
    HEADER_SIZE
} else {
    PAGE_SIZE
};
const _: () = assert!(core::mem::size_of::<Segment>() <= u16::MAX as usize);

/// Byte offset of `pages[i]` from the start of its segment.
const fn page_offset(i: usize) -> u16 {
    (core::mem::offset_of!(Segment, pages) + i * core::mem::size_of::<Page>()) as u16
}

/// The segment containing address `p`.
#[inline(always)]
pub fn segment_of(p: *const u8) -> *mut Segment {
    ((p as usize) & !(SEGMENT_SIZE - 1)) as *mut Segment
}

impl Segment {
    /// Writes a fresh header at `base`.
    ///
    /// # Safety
    /// `base` is the start of `span` segments just reserved from the platform by `pool`.
    unsafe fn init(base: *mut u8, kind: SegmentKind, span: usize, pool: &Pool) -> *mut Segment {
        let seg = base.cast::<Segment>();
        // SAFETY: the header area is ours and large enough (asserted above); field-wise writes
        // avoid materialising a 4 KiB temporary on the stack.
        unsafe {
            ptr::addr_of_mut!((*seg).cookie).write(base as usize ^ COOKIE_KEY);
            ptr::addr_of_mut!((*seg).kind).write(kind);
            ptr::addr_of_mut!((*seg).fresh).write(false);
            ptr::addr_of_mut!((*seg).free_pages).write(ALL_PAGES_FREE);
            ptr::addr_of_mut!((*seg).dirty).write(0);
            ptr::addr_of_mut!((*seg).stale).write(0);
            ptr::addr_of_mut!((*seg).dense).write(0);
            ptr::addr_of_mut!((*seg).large_pages).write(false);
            ptr::addr_of_mut!((*seg).owner).write(AtomicUsize::new(0));
            ptr::addr_of_mut!((*seg).pool).write(pool);
            ptr::addr_of_mut!((*seg).span_segments).write(span);
            ptr::addr_of_mut!((*seg).lead_segments).write(0);
            ptr::addr_of_mut!((*seg).huge_size).write(0);
            ptr::addr_of_mut!((*seg).huge_offset).write(0);
            let heads = ptr::addr_of_mut!((*seg).span_head).cast::<u8>();
            let offs = ptr::addr_of_mut!((*seg).page_off).cast::<u16>();
            for i in 0..PAGES_PER_SEGMENT {
                heads.add(i).write(i as u8);
                offs.add(i).write(page_offset(i));
            }
            ptr::addr_of_mut!((*seg).next).write(ptr::null_mut());
            ptr::addr_of_mut!((*seg).prev).write(ptr::null_mut());
            let pages = ptr::addr_of_mut!((*seg).pages).cast::<Page>();
            for i in 0..PAGES_PER_SEGMENT {
                pages.add(i).write(Page::empty());
            }
        }
        seg
    }

    /// Whether the header at `seg` is one of ours (the map bit is set and the cookie matches).
    /// Reads nothing unless the map says kiln owns that address.
    #[inline(always)]
    pub(crate) fn is_ours(seg: *const Segment) -> bool {
        segment_map::contains(seg as usize) && Segment::cookie_matches(seg)
    }

    /// The cookie test of [`is_ours`](Self::is_ours); only for a segment the map holds.
    #[inline(always)]
    pub(crate) fn cookie_matches(seg: *const Segment) -> bool {
        // SAFETY: callers ask only after the map proved the segment is mapped and ours.
        unsafe { (*seg).cookie == seg as usize ^ COOKIE_KEY }
    }

    /// Index of the page holding `p`.
    #[inline(always)]
    pub(crate) fn page_index(&self, p: *const u8) -> usize {
        ((p as usize) - (self as *const Segment as usize)) >> PAGE_SHIFT
    }

    /// Index of the page whose metadata is `page` (an element of `pages`).
    #[inline]
    pub(crate) fn index_of(&self, page: *const Page) -> usize {
        (page as usize - self.pages.as_ptr() as usize) / core::mem::size_of::<Page>()
    }

    /// The head page of the span holding `p`.
    #[inline(always)]
    pub(crate) fn page_of(&mut self, p: *const u8) -> *mut Page {
        let off = self.page_off[self.page_index(p) & (PAGES_PER_SEGMENT - 1)] as usize;
        // `page_off` entries are offsets of elements of `pages` inside this header.
        (self as *mut Segment).cast::<u8>().wrapping_add(off).cast()
    }

    /// Start and length of the area of a span starting at page `i`.
    pub(crate) fn span_area(&self, i: usize, pages: usize) -> (*mut u8, usize) {
        let base = self as *const Segment as *mut u8;
        if i == 0 {
            (
                base.wrapping_add(HEADER_SIZE),
                pages * PAGE_SIZE - HEADER_SIZE,
            )
        } else {
            (base.wrapping_add(i * PAGE_SIZE), pages * PAGE_SIZE)
        }
    }

    /// The bits of pages `i .. i + n` in the segment's page masks.
    #[inline]
    pub(crate) const fn pages_mask(i: usize, n: usize) -> u32 {
        (((1u64 << n) - 1) << i) as u32
    }

    /// The bits of the span whose head page is `i`.
    #[inline]
    fn span_mask(&self, i: usize) -> u32 {
        Self::pages_mask(i, self.pages[i].span.max(1) as usize)
    }

    /// Finds and claims `n` contiguous free pages; returns the first page's index. Multi-page
    /// spans never use page 0 (it is shorter by the header).
    pub(crate) fn claim_span(&mut self, n: usize) -> Option<usize> {
        let i = if n == 1 {
            if self.free_pages == 0 {
                return None;
            }
            self.free_pages.trailing_zeros() as usize
        } else {
            let run = (1u32 << n) - 1;
            (1..=PAGES_PER_SEGMENT - n).find(|&i| (self.free_pages >> i) & run == run)?
        };
        let mask = Self::pages_mask(i, n);
        self.free_pages &= !mask;
        // Reused before its purge: nothing to decommit any more.
        self.dirty &= !mask;
        self.stale &= !mask;
        for d in 1..n {
            self.pages[i + d].head_delta = d as u8;
            self.span_head[i + d] = i as u8;
            self.page_off[i + d] = page_offset(i);
        }
        Some(i)
    }

    /// Gives the span whose head page is `i` back to the segment.
    pub(crate) fn release_span(&mut self, i: usize) {
        let n = self.pages[i].span.max(1) as usize;
        for d in 0..n {
            self.pages[i + d] = Page::empty();
            self.span_head[i + d] = (i + d) as u8;
            self.page_off[i + d] = page_offset(i + d);
        }
        let mask = Self::pages_mask(i, n);
        self.free_pages |= mask;
        self.dirty |= mask;
        self.dense &= !mask;
        // A kept empty page may now be the only span left: let the next free that empties it
        // decide again whether the segment should go back to the pool.
        for page in self.pages.iter_mut() {
            page.flags &= !KEPT;
        }
    }

    /// Bytes of free pages still resident that wait for a purge (`dirty` and `stale`).
    #[inline]
    pub(crate) fn purgeable_bytes(&self) -> usize {
        (self.dirty | self.stale).count_ones() as usize * PAGE_SIZE
    }

    /// Bytes of free pages that stayed unused over a whole purge tick.
    #[inline]
    pub(crate) fn stale_bytes(&self) -> usize {
        (self.stale & self.free_pages).count_ones() as usize * PAGE_SIZE
    }

    /// A purge tick that leaves this segment's memory alone: pages retired since the previous
    /// tick join the stale ones.
    #[inline]
    pub(crate) fn age(&mut self) {
        self.stale |= self.dirty;
        self.dirty = 0;
    }

    /// One purge tick of the owner heap: decommits the free pages that stayed unused since the
    /// previous tick (`stale`), and makes the pages retired since then stale. One call per run
    /// of free pages that are not `dirty` and hold a stale page (a run may take in free pages
    /// already decommitted or never touched, so a segment rarely needs more than one call).
    /// Returns the number of `decommit` calls made.
    ///
    /// # Safety
    /// `source` is the source that reserved this segment (and can decommit); the caller owns
    /// the segment, so no free page holds live data.
    pub(crate) unsafe fn purge_stale(&mut self, source: &dyn MemorySource) -> usize {
        let runs = self.free_pages & !self.dirty;
        let mut left = self.stale & self.free_pages;
        let mut calls = 0;
        while left != 0 {
            let i = left.trailing_zeros() as usize;
            let n = (!(runs >> i)).trailing_zeros() as usize;
            // Extend the run backwards over free, non-dirty pages too.
            let below = runs & ((1u32 << i) - 1);
            let first = if below == (1u32 << i) - 1 {
                0
            } else {
                32 - (!below & ((1u32 << i) - 1)).leading_zeros() as usize
            };
            let mask = (((1u64 << (i + n - first)) - 1) << first) as u32;
            left &= !mask;
            if self.large_pages {
                // A large page split by the decommit below must not be filled again behind
                // kiln's back (Linux's khugepaged collapses advised ranges with holes).
                self.large_pages = false;
                // SAFETY: this segment was reserved by `source` (caller).
                unsafe { source.advise_large_pages((self as *mut Segment).cast(), false) };
            }
            let (start, len) = self.span_area(first, i + n - first);
            // The contract wants whole 4 KiB pages at both ends (small-geometry pages are
            // 2 KiB): only the 4 KiB pages inside the run.
            let lo = (start as usize).next_multiple_of(DECOMMIT_ALIGN);
            let hi = (start as usize + len) & !(DECOMMIT_ALIGN - 1);
            if hi > lo {
                // SAFETY: free pages of an owned segment hold nothing live; the range is
                // inside the reservation and 4 KiB-aligned at both ends.
                unsafe { source.decommit(lo as *mut u8, hi - lo) };
                calls += 1;
            }
        }
        self.stale = self.dirty & self.free_pages;
        self.dirty = 0;
        calls
    }

    /// Notes that the span at page `i` is fully carved into blocks of at most 4 KiB.
    pub(crate) fn note_dense(&mut self, i: usize) {
        self.dense |= self.span_mask(i);
    }

    /// Whether the span at page `i` is the only one in use.
    #[inline]
    pub(crate) fn is_only_span(&self, i: usize) -> bool {
        self.free_pages | self.span_mask(i) == ALL_PAGES_FREE
    }

    /// Whether no page of the segment is in use.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.free_pages == ALL_PAGES_FREE
    }

    /// Whether some page is free.
    #[inline]
    pub(crate) fn has_free_page(&self) -> bool {
        self.free_pages != 0
    }
}

// ---------------------------------------------------------------------------------------------
// The pool: what all heaps of one allocator share.

/// A doubly linked list of segments through `next`/`prev`.
pub(crate) struct SegmentList {
    pub(crate) head: *mut Segment,
    pub(crate) len: usize,
}

impl SegmentList {
    pub(crate) const fn new() -> Self {
        SegmentList {
            head: ptr::null_mut(),
            len: 0,
        }
    }

    /// # Safety
    /// `seg` is a valid segment on no list.
    pub(crate) unsafe fn push(&mut self, seg: *mut Segment) {
        // SAFETY: `seg` and the current head are valid segments (caller and list invariant).
        unsafe {
            (*seg).prev = ptr::null_mut();
            (*seg).next = self.head;
            if !self.head.is_null() {
                (*self.head).prev = seg;
            }
        }
        self.head = seg;
        self.len += 1;
    }

    /// # Safety
    /// `seg` is on this list.
    pub(crate) unsafe fn remove(&mut self, seg: *mut Segment) {
        // SAFETY: `seg` and its neighbours are valid segments on this list.
        unsafe {
            let (prev, next) = ((*seg).prev, (*seg).next);
            if prev.is_null() {
                self.head = next;
            } else {
                (*prev).next = next;
            }
            if !next.is_null() {
                (*next).prev = prev;
            }
            (*seg).next = ptr::null_mut();
            (*seg).prev = ptr::null_mut();
        }
        self.len -= 1;
    }

    pub(crate) fn pop(&mut self) -> *mut Segment {
        let seg = self.head;
        if !seg.is_null() {
            // SAFETY: the head is on this list.
            unsafe { self.remove(seg) };
        }
        seg
    }
}

struct PoolLists {
    cache: SegmentList,
    /// Freed multi-segment huge spans (see [`HUGE_CACHE_SEGMENTS`]), and their segments.
    huge: SegmentList,
    huge_segments: usize,
    abandoned: SegmentList,
}

/// The shared side of an allocator: the memory source, a small cache of empty segments, and the
/// segments of heaps that went away (abandoned), waiting to be adopted.
pub struct Pool {
    source: &'static dyn MemorySource,
    lists: spin::Mutex<PoolLists>,
    segments_in_use: AtomicUsize,
    abandoned_len: AtomicUsize,
}

// SAFETY: the lists are only touched under the lock; segments on them belong to no heap.
unsafe impl Sync for Pool {}
// SAFETY: as above.
unsafe impl Send for Pool {}

impl Pool {
    /// A pool drawing segments from `source`.
    pub const fn new(source: &'static dyn MemorySource) -> Self {
        Pool {
            source,
            lists: spin::Mutex::new(PoolLists {
                cache: SegmentList::new(),
                huge: SegmentList::new(),
                huge_segments: 0,
                abandoned: SegmentList::new(),
            }),
            segments_in_use: AtomicUsize::new(0),
            abandoned_len: AtomicUsize::new(0),
        }
    }

    /// Whether fresh memory from this pool's platform reads as zero (a huge block in a span fresh
    /// from the platform is then not cleared again by `alloc_zeroed`).
    pub fn huge_blocks_are_zeroed(&self) -> bool {
        self.source.zeroed()
    }

    /// The source, when it can take physical memory back (for the heaps' delayed purge).
    pub(crate) fn decommit_source(&self) -> Option<&'static dyn MemorySource> {
        self.source.can_decommit().then_some(self.source)
    }

    /// Segments reserved from the platform and not yet given back (cached ones included).
    pub fn segments_in_use(&self) -> usize {
        self.segments_in_use.load(Ordering::Relaxed)
    }

    /// Reserves `span` segments from the platform and registers the first in the segment map.
    /// `large_pages`: the platform is asked to back the first segment with large pages before
    /// its header is written (the first touch decides the page size).
    fn reserve(&self, kind: SegmentKind, span: usize, large_pages: bool) -> *mut Segment {
        let base = self.source.reserve(span);
        if base.is_null() {
            return ptr::null_mut();
        }
        if large_pages {
            // SAFETY: reserved just now by this source, not yet touched.
            unsafe { self.source.advise_large_pages(base, true) };
        }
        // SAFETY: just reserved, `span` segments, nothing in front of the header.
        let seg = unsafe { self.register(base, kind, span, 0) };
        if !seg.is_null() {
            // SAFETY: the header was just written.
            unsafe { (*seg).large_pages = large_pages };
        }
        seg
    }

    /// Writes the header of a span at `base` and registers it in the segment map; null (and the
    /// whole reservation handed back) when the span is unusable.
    ///
    /// # Safety
    /// `base - lead * SEGMENT_SIZE` is the start of `lead + span` segments reserved by one
    /// `reserve` call of this pool's source and not used by anything.
    unsafe fn register(
        &self,
        base: *mut u8,
        kind: SegmentKind,
        span: usize,
        lead: usize,
    ) -> *mut Segment {
        if !(base as usize).is_multiple_of(SEGMENT_SIZE)
            || (base as usize)
                .checked_add(span * SEGMENT_SIZE - 1)
                .is_none()
        {
            // A broken source: unusable.
            // SAFETY: the whole reservation (caller), never used.
            unsafe {
                self.source
                    .release(base.wrapping_sub(lead * SEGMENT_SIZE), lead + span)
            };
            return ptr::null_mut();
        }
        // SAFETY: freshly reserved, `span` segments from `base` (caller).
        let seg = unsafe { Segment::init(base, kind, span, self) };
        // SAFETY: the header was just written.
        unsafe {
            (*seg).lead_segments = lead;
            (*seg).fresh = kind == SegmentKind::Huge && self.source.zeroed();
        }
        // The header is complete before the map says the segment is ours.
        if !segment_map::insert(base as usize, self.source) {
            // No memory for the map's leaf of a new address window: out of memory.
            // SAFETY: the header is ours and unpublished; the whole reservation (caller) is
            // handed back unused.
            unsafe {
                (*seg).cookie = 0;
                self.source
                    .release(base.wrapping_sub(lead * SEGMENT_SIZE), lead + span);
            }
            return ptr::null_mut();
        }
        self.segments_in_use
            .fetch_add(lead + span, Ordering::Relaxed);
        super::stats::segment_delta((lead + span) as i64);
        seg
    }

    /// A huge span of `span` segments (header segment included) whose *second* segment starts
    /// at a multiple of `align` (a power of two, at least `SEGMENT_SIZE`): the header segment
    /// sits right in front of the block. Over-reserves `align / SEGMENT_SIZE - 1` segments and
    /// gives the unused head and tail back when the source can take parts of a reservation
    /// ([`MemorySource::can_release_parts`]); otherwise they stay with the span.
    pub(crate) fn new_huge_aligned(&self, span: usize, align: usize) -> *mut Segment {
        let extra = align / SEGMENT_SIZE - 1;
        let Some(total) = span.checked_add(extra) else {
            return ptr::null_mut();
        };
        let base = self.source.reserve(total);
        if base.is_null() {
            return ptr::null_mut();
        }
        let Some(block) = (base as usize + SEGMENT_SIZE).checked_next_multiple_of(align) else {
            // The aligned address would wrap around (a 32-bit source near the top): unusable.
            // SAFETY: just reserved with this count and never used.
            unsafe { self.source.release(base, total) };
            return ptr::null_mut();
        };
        let head = block - SEGMENT_SIZE;
        let lead = (head - base as usize) / SEGMENT_SIZE;
        let tail = total - lead - span;
        let headp = base.wrapping_add(lead * SEGMENT_SIZE);
        if self.source.can_release_parts() {
            // SAFETY: sub-runs of the reservation just made, never used; the source accepts
            // parts (capability).
            unsafe {
                if lead > 0 {
                    self.source.release(base, lead);
                }
                if tail > 0 {
                    self.source
                        .release(headp.wrapping_add(span * SEGMENT_SIZE), tail);
                }
                self.register(headp, SegmentKind::Huge, span, 0)
            }
        } else {
            // SAFETY: the whole reservation, never used; the tail stays part of the span.
            unsafe { self.register(headp, SegmentKind::Huge, span + tail, lead) }
        }
    }

    /// Gives a span back to the platform.
    ///
    /// # Safety
    /// `seg` came from `reserve` and nothing in it is used any more.
    unsafe fn release(&self, seg: *mut Segment) {
        // SAFETY: the header is valid until released.
        let (span, lead) = unsafe { ((*seg).span_segments, (*seg).lead_segments) };
        segment_map::remove(seg as usize);
        // SAFETY: clear the cookie so a stale pointer into a reused mapping is not taken as ours.
        unsafe { (*seg).cookie = 0 };
        self.segments_in_use
            .fetch_sub(lead + span, Ordering::Relaxed);
        super::stats::segment_delta(-((lead + span) as i64));
        // SAFETY: caller guarantees the span is unused; base and count match the reservation.
        unsafe {
            self.source.release(
                seg.cast::<u8>().wrapping_sub(lead * SEGMENT_SIZE),
                lead + span,
            )
        };
    }

    /// An empty segment of pages (from the cache, or the platform); null when out of memory.
    /// `large_pages`: a segment fresh from the platform asks it for large pages first (a cached
    /// one keeps the pages it has).
    pub(crate) fn new_segment(&self, large_pages: bool) -> *mut Segment {
        let cached = self.lists.lock().cache.pop();
        if !cached.is_null() {
            return cached;
        }
        self.reserve(SegmentKind::Pages, 1, large_pages)
    }

    /// Takes back an empty single segment (of pages, or a huge span of one): cached, or returned
    /// to the platform. A cached segment's header is reset to an empty pages segment.
    ///
    /// # Safety
    /// `seg` is a single empty segment on no list; nothing in it is used any more.
    pub(crate) unsafe fn free_segment(&self, seg: *mut Segment) {
        // SAFETY: caller guarantees `seg` is one valid, unused segment; re-initialising its header
        // keeps the cookie and map bit (still ours) and makes it an empty pages segment.
        unsafe {
            let large_pages = (*seg).large_pages;
            Segment::init(seg.cast(), SegmentKind::Pages, 1, self);
            // The platform keeps its advice for the memory: a later purge must withdraw it.
            (*seg).large_pages = large_pages;
        }
        {
            let mut lists = self.lists.lock();
            if lists.cache.len < CACHE_MAX {
                // SAFETY: on no list.
                unsafe { lists.cache.push(seg) };
                return;
            }
        }
        // SAFETY: empty and unlisted.
        unsafe { self.release(seg) };
    }

    /// A huge span of `span` segments. A span of one reuses a cached segment when there is one,
    /// so a table or buffer that grows past the largest class and shrinks again does not cost an
    /// mmap/munmap pair each time.
    pub(crate) fn new_huge(&self, span: usize) -> *mut Segment {
        if span == 1 {
            let cached = self.lists.lock().cache.pop();
            if !cached.is_null() {
                // SAFETY: a cached segment is empty and ours alone now.
                unsafe { (*cached).kind = SegmentKind::Huge };
                return cached;
            }
        } else if let Some(seg) = self.take_cached_huge(span) {
            return seg;
        }
        self.reserve(SegmentKind::Huge, span, false)
    }

    /// A cached huge span of `span` to `1.5 * span` segments, if there is one.
    fn take_cached_huge(&self, span: usize) -> Option<*mut Segment> {
        let mut lists = self.lists.lock();
        let mut seg = lists.huge.head;
        // SAFETY: cached spans are valid headers owned by the pool (under its lock).
        unsafe {
            while !seg.is_null() {
                let n = (*seg).span_segments;
                if n >= span && n <= span + span / 2 {
                    lists.huge.remove(seg);
                    lists.huge_segments -= n;
                    return Some(seg);
                }
                seg = (*seg).next;
            }
        }
        None
    }

    /// Takes back a huge span: a span of one goes to the cache like an empty segment, larger
    /// ones straight back to the platform.
    ///
    /// # Safety
    /// `seg` is a huge segment whose block is no longer used.
    pub(crate) unsafe fn free_huge(&self, seg: *mut Segment) {
        // SAFETY: valid header (caller); either path takes the whole, unused span.
        unsafe {
            let span = (*seg).span_segments;
            if span == 1 && (*seg).lead_segments == 0 {
                self.free_segment(seg);
                return;
            }
            // Spans laid out for an alignment above a segment (`huge_offset` of a segment,
            // a lead) are not reused: they go back whole.
            if (*seg).lead_segments == 0 && (*seg).huge_offset < SEGMENT_SIZE {
                let mut lists = self.lists.lock();
                if lists.huge_segments + span <= HUGE_CACHE_SEGMENTS {
                    (*seg).huge_offset = NO_BLOCK;
                    (*seg).huge_size = 0;
                    (*seg).fresh = false;
                    lists.huge.push(seg);
                    lists.huge_segments += span;
                    return;
                }
            }
            self.release(seg);
        }
    }

    /// Parks a segment whose heap went away.
    ///
    /// # Safety
    /// `seg` is a pages segment on no list, and its old owner will not touch it again.
    pub(crate) unsafe fn abandon(&self, seg: *mut Segment) {
        // SAFETY: valid segment (caller). Release: the adopter must see all our list writes.
        unsafe { (*seg).owner.store(0, Ordering::Release) };
        let mut lists = self.lists.lock();
        // SAFETY: on no list.
        unsafe { lists.abandoned.push(seg) };
        self.abandoned_len
            .store(lists.abandoned.len, Ordering::Relaxed);
    }

    /// Takes one abandoned segment, or null. Cheap when there is none (no lock taken).
    pub(crate) fn take_abandoned(&self) -> *mut Segment {
        if self.abandoned_len.load(Ordering::Relaxed) == 0 {
            return ptr::null_mut();
        }
        let mut lists = self.lists.lock();
        let seg = lists.abandoned.pop();
        self.abandoned_len
            .store(lists.abandoned.len, Ordering::Relaxed);
        seg
    }

    /// Number of abandoned segments waiting for a heap.
    pub fn abandoned(&self) -> usize {
        self.abandoned_len.load(Ordering::Relaxed)
    }

    /// Returns every cached empty segment and cached huge span to the platform.
    pub fn trim(&self) {
        loop {
            let seg = {
                let mut lists = self.lists.lock();
                let seg = lists.cache.pop();
                if seg.is_null() {
                    let huge = lists.huge.pop();
                    if !huge.is_null() {
                        // SAFETY: a cached span's header is valid (under the lock).
                        lists.huge_segments -= unsafe { (*huge).span_segments };
                    }
                    huge
                } else {
                    seg
                }
            };
            if seg.is_null() {
                return;
            }
            // SAFETY: cached segments and spans are unused and now unlisted.
            unsafe { self.release(seg) };
        }
    }

    /// Takes the pool's lock and keeps it (for a port's `fork` prepare handler: the child must
    /// not inherit a lock some other thread held). Pair with [`unlock_after_fork`](Self::unlock_after_fork).
    pub fn lock_for_fork(&self) {
        core::mem::forget(self.lists.lock());
    }

    /// Releases the lock taken by [`lock_for_fork`](Self::lock_for_fork), in the parent and in
    /// the child after `fork`.
    ///
    /// # Safety
    /// The calling thread took the lock with `lock_for_fork` (in the child: the forking thread,
    /// which is the only thread there).
    pub unsafe fn unlock_after_fork(&self) {
        // SAFETY: held by `lock_for_fork` (caller), whose guard was forgotten.
        unsafe { self.lists.force_unlock() };
    }
}
