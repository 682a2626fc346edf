//! Heaps: the per-thread (std) or per-CPU (kernel) owners of pages.
//!
//! ```text
//!   Heap
//!   hot[class]:     [b0 b1 ... top]             blocks this heap freed last, newest on top
//!   direct[class] ──> the page allocation pops from (EMPTY_PAGE when there is none)
//!   queues[class]:  page <-> page <-> page      pages that may have free blocks; head == direct
//!   full[class]:    page <-> page               pages that had none when last looked at
//!   segments:       seg <-> seg <-> seg         segments this heap owns; those with a free page first
//!   known[n & 63]:  seg                         owned segments a free has verified (map, cookie, owner)
//!   foreign[n & 63]: seg                        other heaps' segments a free has verified (map, cookie)
//!   remote[slot]:   page, head -> .. -> tail    this heap's frees into other heaps' pages, per page
//! ```
//!
//! Hot stacks (classes up to `HOT_MAX_SIZE`, at most `HOT_DEPTH` blocks and `HOT_STACK_BYTES`
//! of them each: 128 blocks up to 2 KiB, 8 of 32 KiB, 1 of 256 KiB; none in the small geometry): the owner's free of a block pushes the block's address here instead of linking it
//! into its page, and allocation pops from here before it looks at a page. So the block reused
//! first is the one freed last, whose cache line the free just touched (LIFO, as a per-thread
//! cache), and neither path writes page metadata. When a stack is full, a free goes to the
//! page's `local_free` as it would without stacks (cheaper than moving older entries out: bulk
//! frees, such as dropping a large map, cost what they cost before). A retired page drains its
//! class's stack (see `HotStack::cap`). A cached block is still counted in its page's `used`; its
//! first word holds the page's encoding of a null link, so a second free of it looks free and is
//! confirmed against the stack.
//!
//! Invariants (checked by [`Heap::check`]):
//! - every block on `hot[c]` is a block start of a page of class `c` this heap owns, on no free
//!   list and on the stack once, and its first word is its page's `key`;
//! - while no segment was unregistered since `foreign_removals`, every segment in `foreign` is
//!   registered in the segment map with a valid cookie (a free into it skips those two tests);
//! - every segment in `known` is one this heap owns and lists (an entry is cleared before its
//!   segment goes back to the pool or is abandoned), so the owner's free of a pointer into a
//!   known segment skips the segment map, cookie and owner tests;
//! - `direct[c]` is `queues[c].head`, or `EMPTY_PAGE` when the queue is empty;
//! - a page is on `full[c]` iff it has the `IN_FULL` flag, and on `queues[c]` otherwise;
//! - every page on a queue is in use, of class `c`, in a segment whose `owner` is this heap's id;
//! - a heap's id is unique for the life of the program (taken from a counter when the heap
//!   first takes a segment; never reused), so a heap may move, and a heap created where a
//!   dropped one lived does not inherit its segments: segments name their owner by id, never by
//!   address, and nothing points into a heap;
//! - dropping a heap abandons its segments (another heap adopts them), so no safe sequence of
//!   calls leaves a segment owned by a heap that no longer exists.
//!
//! The fast path ([`Heap::alloc`]) is size -> class -> pop `hot[class]`, else `direct[class]` ->
//! pop `free`; everything else is in `#[cold]` functions.

use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};

use super::geometry::KEEP_LAST_PAGE;
use super::page::{Page, HAS_ALIGNED, IN_FULL, KEPT, PAGE_SIZE};
use super::segment::{
    segment_of, Pool, Segment, SegmentList, PAGES_PER_SEGMENT, PAGE_START_ALIGN, SEGMENT_SIZE,
};
use super::size_class::{
    class_of, class_size, small_class_at, small_index, span_pages, CLASS_COUNT, MAX_CLASS_SIZE,
    SMALL_LOOKUP_MAX,
};
use super::{huge, stats};

// Hot stacks: per class, the blocks this heap freed last.
mod hot;
// The table of segments a free has verified.
mod known;
// Doubly linked lists of pages.
mod queue;
// Batches of frees into other heaps' pages.
mod remote;
// Empty pages back to their segment; the delayed purge.
mod retire;
// Segments between heaps: collect, abandon, adopt.
mod abandon;

pub(crate) use hot::HOT_STACK_OF;
pub(crate) use hot::{is_hot, HotStack, HOT_CLASSES};
use hot::{HotArea, HOT_AREA_EMPTY, HOT_STACK_BY_INDEX, HOT_STACK_BY_INDEX_LEN};
use known::{KNOWN_SEGMENTS, NOT_A_SEGMENT};
pub(crate) use queue::PageQueue;
use remote::RemoteFrees;
#[cfg(test)]
pub(crate) use remote::BATCH_MAX_SIZE;
pub(crate) use remote::REMOTE_MAX;

/// Alignment every block has without asking: blocks of class sizes that are multiples of 16 start
/// at 16-byte aligned addresses.
pub const NATURAL_ALIGN: usize = 16;

/// The page `direct` points at when a class has no page: its `free` list is always empty, so
/// the fast path needs no null check. Never written.
static EMPTY_PAGE: Page = Page::empty();

fn empty_page() -> *mut Page {
    ptr::addr_of!(EMPTY_PAGE).cast_mut()
}

/// The id a heap has before it takes its first segment: no segment ever names it.
const NO_ID: usize = usize::MAX;

/// The next heap id (0 means "no owner" in a segment, `NO_ID` "not assigned yet").
static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

/// A fresh heap id, or `None` once every id was handed out (a 32-bit target creating four
/// billion heaps): that heap then gets no memory rather than a reused id.
#[cold]
fn fresh_id() -> Option<usize> {
    NEXT_ID
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n < NO_ID - 1).then_some(n + 1)
        })
        .ok()
}

/// How many full pages one slow path looks at for blocks freed by other threads.
const FULL_SCAN_LIMIT: usize = 32;
/// Blocks a page must hold for a free that nearly empties it to shrink its class's full hot
/// stack ([`Heap::hot_shrink`]).
const SHRINK_MIN_BLOCKS: usize = 64;
/// Bytes of dense pages (see [`Segment::dense`]) a heap holds before its new segments ask the
/// platform for large pages ([`MemorySource::advise_large_pages`]): four segments' worth.
/// Such a heap touches every OS page of the segments it fills with small blocks, so a large
/// page costs little memory and saves TLB misses (random-mixed at 100 000 live blocks: about
/// +10%, in process and through libkiln.so). What it does cost: a large page is resident whole
/// from the first touch, so the newest segment and the untouched tails of partly carved pages
/// count in full (about 0.8 MiB more at 30 MiB of blocks). Below the threshold, and for heaps
/// of large blocks touched sparsely, segments keep small pages: a heap of 3 MiB does not grow
/// to 4.
///
/// [`MemorySource::advise_large_pages`]: crate::platform::MemorySource::advise_large_pages
pub(crate) const LARGE_PAGES_AFTER_BYTES: usize = 4 * SEGMENT_SIZE;
/// A heap: owns pages and the segments they live in. Only its owner thread or CPU touches it
/// (`&mut self`). A heap may be moved and dropped freely: segments name their heap by a unique
/// id, and dropping a heap abandons what it still owns to the pool for other heaps to adopt.
pub struct Heap {
    /// Owner id written into the segments this heap owns (`NO_ID` until the first one).
    id: usize,
    /// Segments this heap owns that a free has verified (segment map, cookie, owner), indexed
    /// by segment number ([`known_slot`]); `NOT_A_SEGMENT` where none. An entry is cleared
    /// before its segment leaves this heap (back to the pool, or abandoned), so a hit proves
    /// what the map, cookie and owner tests prove, with one compare.
    known: [usize; KNOWN_SEGMENTS],
    /// Other heaps' segments a free into them has verified (segment map and cookie), indexed
    /// like `known`; `NOT_A_SEGMENT` where none. Valid while no segment has been unregistered
    /// since `foreign_removals` ([`segment_map::removals`]): then a hit proves what the map and
    /// cookie tests prove (the owner test is made on every free).
    foreign: [usize; KNOWN_SEGMENTS],
    /// [`segment_map::removals`] when `foreign` was last found stale and emptied.
    foreign_removals: usize,
    pool: &'static Pool,
    /// The hot stacks, headers and slots, laid out by class (see [`hot::HotArea`]).
    hot: HotArea,
    /// Where the free of a class without a hot stack looks for one ([`hot::HOT_STACK_OF`]): a
    /// header with `len == cap == 0` and no slots.
    no_stack: HotStack,
    direct: [*mut Page; CLASS_COUNT],
    queues: [PageQueue; CLASS_COUNT],
    full: [PageQueue; CLASS_COUNT],
    segments: SegmentList,
    /// Bytes of spans retired since the last purge tick ([`retire::PURGE_TICK_BYTES`]).
    retired_since_tick: usize,
    /// Frees of blocks in other heaps' pages, batched per page (`heap/remote.rs`).
    remote: RemoteFrees,
    /// This heap's statistics slot (zero-sized without the `stats` feature).
    pub(crate) stats: stats::HeapStats,
}

// SAFETY: a heap is used by one thread at a time (the `LocalSlot` contract); handing it to another
// thread (e.g. a static heap behind a lock) is sound because every access is exclusive.
unsafe impl Send for Heap {}

impl Heap {
    /// An empty heap drawing segments from `pool`. Const, so it can live in a `static` or a
    /// `const`-initialised thread-local.
    pub const fn new(pool: &'static Pool) -> Heap {
        Heap {
            id: NO_ID,
            known: [NOT_A_SEGMENT; KNOWN_SEGMENTS],
            foreign: [NOT_A_SEGMENT; KNOWN_SEGMENTS],
            foreign_removals: 0,
            pool,
            hot: HOT_AREA_EMPTY,
            no_stack: HotStack::NONE,
            direct: [ptr::addr_of!(EMPTY_PAGE).cast_mut(); CLASS_COUNT],
            queues: [PageQueue::EMPTY; CLASS_COUNT],
            full: [PageQueue::EMPTY; CLASS_COUNT],
            segments: SegmentList::new(),
            retired_since_tick: 0,
            remote: RemoteFrees::EMPTY,
            stats: stats::HeapStats::new(),
        }
    }

    /// The pool this heap draws from.
    pub fn pool(&self) -> &'static Pool {
        self.pool
    }

    /// Allocates `size` bytes aligned to `align` (a power of two). Null when out of memory or
    /// when the request cannot be met (alignment not a power of two or above
    /// [`huge::MAX_ALIGN`], size overflow).
    #[inline(always)]
    pub fn alloc(&mut self, size: usize, align: usize) -> *mut u8 {
        self.alloc_counting::<true, false>(size, align)
    }

    /// The inline fast paths of [`alloc`](Self::alloc) alone (a hot-stack or page pop), with
    /// no call: null when the request needs anything else (a slow path, a large or
    /// over-aligned block, or memory is out), and then the caller calls [`alloc`](Self::alloc).
    /// A caller whose fast path ends there needs no stack frame (kiln's `GlobalAlloc`s).
    #[inline(always)]
    pub fn alloc_fast(&mut self, size: usize, align: usize) -> *mut u8 {
        self.alloc_counting::<true, true>(size, align)
    }

    /// [`alloc`](Self::alloc) whose inline fast paths (hot-stack and page pops) skip the
    /// per-call statistics and the load of their run-time switch: for a caller that has just
    /// found [`stats::counting`] off (libkiln.so's `malloc`). Slow paths count as usual.
    #[inline(always)]
    pub fn alloc_uncounted(&mut self, size: usize, align: usize) -> *mut u8 {
        self.alloc_counting::<false, false>(size, align)
    }

    /// The hot-stack pop of [`alloc_uncounted`](Self::alloc_uncounted) alone, for a caller
    /// that wants no other path inline: a block of at most `SMALL_LOOKUP_MAX` bytes aligned to
    /// 16 from its class's hot stack when it holds one, uncounted; every other request
    /// is `refill(self, size, align)`, which must serve it (by `alloc_uncounted`, say). With
    /// `refill` a call to a function that cannot unwind, the caller's inline part ends in a tail
    /// call on every path and needs no stack frame (libkiln.so's `malloc`).
    #[inline(always)]
    pub fn alloc_hot_or<F: FnOnce(&mut Heap, usize, usize) -> *mut u8>(
        &mut self,
        size: usize,
        align: usize,
        refill: F,
    ) -> *mut u8 {
        if HOT_STACK_BY_INDEX_LEN != 0 && align == NATURAL_ALIGN && size <= SMALL_LOOKUP_MAX {
            // SAFETY: `size <= SMALL_LOOKUP_MAX`, so the index (`small_index(size, 16)`: the
            // count of 16-byte units, doubled) is at most the table's last; the entry is the
            // byte offset in `Heap` of the stack header of the request's class.
            let popped = unsafe {
                let at = *HOT_STACK_BY_INDEX.get_unchecked(((size + 15) >> 4) << 1) as usize;
                self.pop_hot_at(at)
            };
            if let Some(b) = popped {
                return b;
            }
        }
        refill(self, size, align)
    }

    /// The newest block of the hot stack at byte offset `at` in this heap, its marker cleared
    /// (a handed-out block must not look free to the double-free filter); `None` when empty.
    ///
    /// # Safety
    /// `at` is the offset of one of this heap's `HotStack`s (an entry of `HOT_STACK_BY_INDEX`,
    /// or of `HOT_STACK_OF` for a hot class).
    #[inline(always)]
    unsafe fn pop_hot_at(&mut self, at: usize) -> Option<*mut u8> {
        // SAFETY: the place is a stack header in this heap's `hot` (caller); its slots follow
        // it, and entries below `len` are free blocks this heap holds, at least one word long
        // (module invariant).
        unsafe {
            let stack = ptr::from_mut(self).byte_add(at).cast::<HotStack>();
            let len = (*stack).len;
            if len == 0 {
                return None;
            }
            (*stack).len = len - 1;
            let b = *HotStack::slots(stack).add(len - 1);
            b.cast::<usize>().write(0);
            Some(b)
        }
    }

    /// [`alloc`](Self::alloc); `COUNT`: whether the fast paths count; `FAST`: null instead of
    /// any path that is not inline (see [`alloc_fast`](Self::alloc_fast)).
    #[inline(always)]
    fn alloc_counting<const COUNT: bool, const FAST: bool>(
        &mut self,
        size: usize,
        align: usize,
    ) -> *mut u8 {
        // `align & (align - 1)`: a non-power-of-two alignment takes the checked path below.
        if align <= NATURAL_ALIGN && align & align.wrapping_sub(1) == 0 && size <= SMALL_LOOKUP_MAX
        {
            let idx = small_index(size, align);
            if HOT_STACK_BY_INDEX_LEN == 0 {
                return self.alloc_class_or::<COUNT, FAST>(small_class_at(idx));
            }
            // SAFETY: `idx < SMALL_INDEX_LEN` (`small_index`), the table's length here; the
            // entry is the byte offset in `Heap` of the stack header of `small_class_at(idx)`.
            let popped = unsafe {
                let at = *HOT_STACK_BY_INDEX.get_unchecked(idx) as usize;
                self.pop_hot_at(at)
            };
            match popped {
                Some(b) => {
                    if COUNT {
                        self.stats.hot_alloc(small_class_at(idx));
                    }
                    b
                }
                None => self.alloc_class_from_pages::<COUNT, FAST>(small_class_at(idx)),
            }
        } else if align <= NATURAL_ALIGN
            && align & align.wrapping_sub(1) == 0
            && size <= MAX_CLASS_SIZE
        {
            // Rounding to the alignment (at least one unit of it, for size 0) keeps 16-aligned
            // requests in classes whose sizes are multiples of 16.
            let rounded = ((size + align - 1) & !(align - 1)).max(align);
            const { assert!(MAX_CLASS_SIZE.is_multiple_of(NATURAL_ALIGN)) };
            // Said here, the class indexes below need no bounds check (whose panic path would
            // sit inside every `GlobalAlloc::alloc`).
            // SAFETY: `size <= MAX_CLASS_SIZE`, and `align` (a power of two up to
            // `NATURAL_ALIGN`) divides `MAX_CLASS_SIZE` (asserted above): rounding stays within.
            unsafe { core::hint::assert_unchecked(rounded <= MAX_CLASS_SIZE) };
            self.alloc_class_or::<COUNT, FAST>(class_of(rounded))
        } else if FAST {
            ptr::null_mut()
        } else {
            self.alloc_large_or_aligned(size, align)
        }
    }

    /// Like [`alloc`](Self::alloc), zero-filled. A huge block in a span fresh from the platform
    /// is not cleared again when the platform says fresh memory reads as zero.
    pub fn alloc_zeroed(&mut self, size: usize, align: usize) -> *mut u8 {
        let p = self.alloc(size, align);
        if !p.is_null() && !huge::is_fresh_zeroed(p) {
            // SAFETY: `p` is a fresh block of at least `size` bytes.
            unsafe { ptr::write_bytes(p, 0, size) };
        }
        p
    }

    /// Allocates one block of `class`: the fast path. `COUNT`: whether it counts (see
    /// [`alloc_uncounted`](Self::alloc_uncounted)).
    #[inline(always)]
    pub(crate) fn alloc_class<const COUNT: bool>(&mut self, class: usize) -> *mut u8 {
        self.alloc_class_or::<COUNT, false>(class)
    }

    /// [`alloc_class`](Self::alloc_class); with `FAST`, null instead of the slow path.
    #[inline(always)]
    fn alloc_class_or<const COUNT: bool, const FAST: bool>(&mut self, class: usize) -> *mut u8 {
        if is_hot(class) {
            // SAFETY: a hot class's stack header is at this offset in `self.hot`.
            let popped = unsafe { self.pop_hot_at(HOT_STACK_OF[class] as usize) };
            if let Some(b) = popped {
                if COUNT {
                    self.stats.hot_alloc(class);
                }
                return b;
            }
        }
        self.alloc_class_from_pages::<COUNT, FAST>(class)
    }

    /// [`alloc_class_or`](Self::alloc_class_or) past the hot stack (empty, or none): the
    /// page's free list, else the slow path (or null with `FAST`).
    #[inline(always)]
    fn alloc_class_from_pages<const COUNT: bool, const FAST: bool>(
        &mut self,
        class: usize,
    ) -> *mut u8 {
        if is_hot(class) {
            // Allocating from pages again: frees may stack (see `HotStack::cap`).
            self.hot_refill_cap(class);
        }
        let page = self.direct[class];
        // SAFETY: `direct` holds EMPTY_PAGE or a page this heap owns. The raw place read creates
        // no reference to the sentinel; a non-empty list means `page` is a real owned page.
        unsafe {
            if !(*page).free.is_null() {
                if COUNT {
                    self.stats.fast_alloc(class, (*page).block_size);
                }
                return (*page).pop_free();
            }
        }
        if FAST {
            return ptr::null_mut();
        }
        self.alloc_slow(class)
    }

    #[cold]
    #[inline(never)]
    fn alloc_slow(&mut self, class: usize) -> *mut u8 {
        self.stats.register();
        // Publish this heap's remote-free batches on its own slow path, so a heap that keeps
        // allocating delivers them within one page's worth of allocations.
        self.flush_remote();
        let page = self.find_page(class);
        if page.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: `find_page` returns an owned page.
        self.stats.slow_alloc(class, unsafe { (*page).block_size });
        // SAFETY: `find_page` returns an owned page with a non-empty `free` list.
        unsafe { (*page).pop_free() }
    }

    #[cold]
    #[inline(never)]
    fn alloc_large_or_aligned(&mut self, size: usize, align: usize) -> *mut u8 {
        if !align.is_power_of_two() {
            return ptr::null_mut();
        }
        if align <= NATURAL_ALIGN {
            return huge::alloc(self.pool, size, align);
        }
        let Some(rounded) = size.checked_add(align - 1).map(|s| s & !(align - 1)) else {
            return ptr::null_mut();
        };
        if rounded <= MAX_CLASS_SIZE && align <= PAGE_START_ALIGN {
            // Blocks of a class whose size is a multiple of `align` are aligned: every page
            // area starts at a multiple of PAGE_START_ALIGN.
            let class = class_of(rounded.max(1));
            if class_size(class).is_multiple_of(align) {
                return self.alloc_class::<true>(class);
            }
        }
        match size.checked_add(align - 1) {
            Some(padded) if padded <= MAX_CLASS_SIZE => self.alloc_interior_aligned(padded, align),
            _ => huge::alloc(self.pool, size, align),
        }
    }

    /// Over-allocates and returns an aligned address inside the block; the page is flagged so
    /// `free` maps such addresses back to their block.
    fn alloc_interior_aligned(&mut self, padded: usize, align: usize) -> *mut u8 {
        let p = self.alloc_class::<true>(class_of(padded));
        if p.is_null() {
            return p;
        }
        let aligned = ((p as usize + align - 1) & !(align - 1)) as *mut u8;
        if aligned != p {
            let seg = segment_of(p);
            // SAFETY: `p` is a block this heap just allocated; its page is owned by this heap.
            unsafe { (*(*seg).page_of(p)).flags |= HAS_ALIGNED };
        }
        aligned
    }

    /// Carves more blocks of `page` ([`Page::extend`]); a page that this carves to the end
    /// with blocks of at most 4 KiB counts in its segment's `dense` pages.
    ///
    /// # Safety
    /// `page` is an owned page in use.
    unsafe fn extend_page(&mut self, page: *mut Page) {
        // SAFETY: an owned page in use (caller), in an owned segment.
        unsafe {
            (*page).extend();
            if (*page).touches_every_os_page() {
                let seg = segment_of(page.cast::<u8>());
                (*seg).note_dense((*seg).index_of(page));
            }
        }
    }

    /// Finds a page of `class` with a free block and makes it `direct`; null when out of memory.
    fn find_page(&mut self, class: usize) -> *mut Page {
        // SAFETY: all pages on this heap's queues are owned by it.
        unsafe {
            let mut page = self.queues[class].head;
            while !page.is_null() {
                let next = (*page).next;
                (*page).collect();
                if (*page).free.is_null() {
                    self.extend_page(page);
                }
                if !(*page).free.is_null() {
                    self.make_direct(class, page);
                    return page;
                }
                self.move_to_full(class, page);
                page = next;
            }
            let page = self.reclaim_full_page(class);
            if !page.is_null() {
                return page;
            }
        }
        self.fresh_page(class)
    }

    /// # Safety
    /// `page` is on `queues[class]`.
    unsafe fn make_direct(&mut self, class: usize, page: *mut Page) {
        if self.queues[class].head != page {
            // SAFETY: on this queue (caller).
            unsafe {
                self.queues[class].remove(page);
                self.queues[class].push_front(page);
            }
        }
        self.direct[class] = page;
    }

    fn sync_direct(&mut self, class: usize) {
        let head = self.queues[class].head;
        self.direct[class] = if head.is_null() { empty_page() } else { head };
    }

    /// # Safety
    /// `page` is on `queues[class]`.
    unsafe fn move_to_full(&mut self, class: usize, page: *mut Page) {
        // SAFETY: on the queue (caller); owned.
        unsafe {
            self.queues[class].remove(page);
            (*page).flags = ((*page).flags | IN_FULL) & !KEPT;
            self.full[class].push_back(page);
        }
        self.sync_direct(class);
    }

    /// Looks at a bounded number of full pages for blocks other threads freed; rotates the ones
    /// it looked at to the back so later scans see the others.
    ///
    /// # Safety
    /// Caller owns the heap.
    unsafe fn reclaim_full_page(&mut self, class: usize) -> *mut Page {
        for _ in 0..FULL_SCAN_LIMIT {
            let page = self.full[class].head;
            if page.is_null() {
                break;
            }
            // SAFETY: pages on the full queue are owned by this heap.
            unsafe {
                self.full[class].remove(page);
                if (*page).has_remote_frees() {
                    (*page).collect();
                    (*page).flags &= !IN_FULL;
                    self.queues[class].push_front(page);
                    self.direct[class] = page;
                    return page;
                }
                self.full[class].push_back(page);
            }
        }
        ptr::null_mut()
    }

    /// A never-used page of `class`, from an owned segment, an adopted one, or a new one.
    fn fresh_page(&mut self, class: usize) -> *mut Page {
        let span = span_pages(class);
        if let Some(page) = self.claim_in_owned_segments(class, span) {
            return page;
        }
        // Adopt abandoned segments first: they may hold pages of this class with free blocks.
        while self.has_id() {
            let seg = self.pool.take_abandoned();
            if seg.is_null() {
                break;
            }
            // SAFETY: a segment taken off the abandoned list belongs to nobody.
            unsafe { self.adopt(seg) };
            let head = self.queues[class].head;
            // SAFETY: queue pages are owned.
            if !head.is_null() && unsafe { !(*head).free.is_null() } {
                self.direct[class] = head;
                return head;
            }
            if let Some(page) = self.claim_in_owned_segments(class, span) {
                return page;
            }
        }
        if !self.has_id() {
            return ptr::null_mut();
        }
        let seg = self
            .pool
            .new_segment(self.holds_dense_bytes(LARGE_PAGES_AFTER_BYTES));
        if seg.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: a new segment is empty and ours.
        unsafe {
            (*seg).owner.store(self.id, Ordering::Relaxed);
            self.segments.push(seg);
        }
        self.claim_in_owned_segments(class, span)
            .unwrap_or(ptr::null_mut())
    }

    /// Whether the heap's segments hold at least `bytes` of dense pages. A walk of the owned
    /// segments, taken only when a new segment is needed (a system call follows anyway).
    fn holds_dense_bytes(&self, bytes: usize) -> bool {
        let mut held = 0;
        let mut seg = self.segments.head;
        // SAFETY: segments on the list are owned by this heap.
        unsafe {
            while !seg.is_null() && held < bytes {
                held += (*seg).dense.count_ones() as usize * PAGE_SIZE;
                seg = (*seg).next;
            }
        }
        held >= bytes
    }

    fn claim_in_owned_segments(&mut self, class: usize, span: usize) -> Option<*mut Page> {
        let mut seg = self.segments.head;
        // Segments with a free page come first, so stop at the first full one.
        // SAFETY: segments on the list are owned by this heap.
        unsafe {
            while !seg.is_null() && (*seg).has_free_page() {
                if let Some(i) = (*seg).claim_span(span) {
                    if !(*seg).has_free_page() {
                        self.segments.remove(seg);
                        self.push_segment_back(seg);
                    }
                    return Some(self.init_page(class, seg, i, span));
                }
                seg = (*seg).next;
            }
        }
        None
    }

    /// # Safety
    /// `seg` is owned by this heap and on no list.
    unsafe fn push_segment_back(&mut self, seg: *mut Segment) {
        // Walk to the tail: segment lists are short and this runs once per filled segment.
        let mut tail = self.segments.head;
        // SAFETY: owned segments.
        unsafe {
            if tail.is_null() {
                self.segments.push(seg);
                return;
            }
            while !(*tail).next.is_null() {
                tail = (*tail).next;
            }
            (*tail).next = seg;
            (*seg).prev = tail;
            (*seg).next = ptr::null_mut();
        }
        self.segments.len += 1;
    }

    /// # Safety
    /// Page `i` of `seg` starts a span of `span` pages just claimed.
    unsafe fn init_page(
        &mut self,
        class: usize,
        seg: *mut Segment,
        i: usize,
        span: usize,
    ) -> *mut Page {
        // SAFETY: the span is ours (caller).
        unsafe {
            let (start, len) = (*seg).span_area(i, span);
            let page: *mut Page = &mut (*seg).pages[i];
            (*page).init(class, HOT_STACK_OF[class], class_size(class), start, len);
            (*page).span = span as u8;
            self.extend_page(page);
            self.queues[class].push_front(page);
            self.direct[class] = page;
            page
        }
    }

    /// The owner's free of `block` (a block start of `page`, in use): onto the hot stack of its
    /// class when it has one, else onto the page's `local_free`. `COUNT`: whether the hot-stack
    /// push counts (see [`Heap::alloc_uncounted`]).
    ///
    /// # Safety
    /// This heap owns `page`; `block` is one of its blocks, allocated and not free.
    #[inline(always)]
    pub(crate) unsafe fn free_local<const COUNT: bool>(&mut self, page: *mut Page, block: *mut u8) {
        // SAFETY: owner access (caller).
        unsafe {
            let class = (*page).class as usize;
            let size = (*page).block_size;
            if HOT_CLASSES != 0 {
                // The class's hot stack, or the `no_stack` (len 0, cap 0, no slots) of a class
                // without one: raw places only, the stacks differ in length. A page in
                // use holds its class's `HOT_STACK_OF` entry in `hot_at` (set with the class;
                // `check` verifies it), so no table is read here.
                let at = (*page).hot_at as usize;
                let stack = ptr::from_mut(self).byte_add(at).cast::<HotStack>();
                let len = (*stack).len;
                if len < (*stack).cap {
                    // A real stack (`no_stack` never passes), with room at `len`.
                    HotStack::push_marked(stack, len, page, block);
                    // Counted last, so a counter flush is a tail call.
                    if COUNT {
                        self.stats.local_free(class, size);
                    }
                    return;
                }
                // Full (or draining), or no stack: the block goes to its page, whose metadata
                // this free has just read; the stack keeps what it holds.
                // Out of line when there are hot stacks, so the inline part ends in a tail
                // call on every path and keeps no registers (no stack frame).
                return self.free_local_page(page, block);
            }
            self.stats.local_free(class, size);
            self.free_to_page(page, block);
        }
    }

    /// The owner's free of a block that does not go on a hot stack: onto its page's
    /// `local_free`, counted.
    ///
    /// # Safety
    /// As for [`free_local`](Self::free_local).
    #[inline(never)]
    // `extern "C"` only so that it cannot unwind: `free_local` reaches it by a tail call then.
    unsafe extern "C" fn free_local_page(&mut self, page: *mut Page, block: *mut u8) {
        // SAFETY: owner access (caller).
        unsafe {
            let class = (*page).class as usize;
            self.stats.local_free(class, (*page).block_size);
            // A full stack (not draining) sends this free to a page of many blocks that it
            // leaves at most an eighth in use: frees are giving a burst back (see
            // `Heap::hot_shrink`). Pages of a few large blocks pass that mark in steady churn
            // too, and their classes stack only a few blocks: they keep their stacks.
            let capacity = (*page).capacity as usize;
            if HOT_CLASSES != 0
                && ((*page).used as usize - 1) * 8 <= capacity
                && capacity >= SHRINK_MIN_BLOCKS
            {
                let stack = ptr::from_mut(self)
                    .byte_add((*page).hot_at as usize)
                    .cast::<HotStack>();
                if (*stack).cap != 0 {
                    // A tail call, so that this path saves no registers.
                    return self.free_local_shrinking(page, block, stack);
                }
            }
            self.free_to_page(page, block);
        }
    }

    /// [`free_local_page`](Self::free_local_page) of a free that shrinks its class's stack
    /// first ([`Heap::hot_shrink`]).
    ///
    /// # Safety
    /// As for [`free_local`](Self::free_local); `stack` is this heap's stack header of the
    /// page's class, with `cap > 0`.
    #[cold]
    #[inline(never)]
    // `extern "C"` only so that it cannot unwind: `free_local_page` reaches it by a tail call.
    unsafe extern "C" fn free_local_shrinking(
        &mut self,
        page: *mut Page,
        block: *mut u8,
        stack: *mut HotStack,
    ) {
        // SAFETY: owner access and this class's stack header (caller).
        unsafe {
            self.hot_shrink((*page).class as usize, stack);
            self.free_to_page(page, block);
        }
    }

    /// Links `block` into `page`'s `local_free`; an emptied or previously full page takes the
    /// cold path.
    ///
    /// # Safety
    /// As for [`free_local`](Self::free_local).
    #[inline(always)]
    unsafe fn free_to_page(&mut self, page: *mut Page, block: *mut u8) {
        // SAFETY: owner access (caller).
        unsafe {
            (*page).push_local(block);
            if (*page).used == 0 || (*page).flags & IN_FULL != 0 {
                self.page_event(page);
            }
        }
    }

    /// Called by the local free path when a page became empty or was full.
    ///
    /// # Safety
    /// `page` is owned by this heap and in use.
    #[cold]
    #[inline(never)]
    // `extern "C"` only so that it cannot unwind: `free_local_page` reaches it by a tail call.
    pub(crate) unsafe extern "C" fn page_event(&mut self, page: *mut Page) {
        // SAFETY: owned page (caller).
        unsafe {
            // An empty page already kept as the last page of its class (`KEPT`, not full) needs
            // no second look (tested here, not on the free path, which stays two tests long).
            if (*page).flags & (KEPT | IN_FULL) == KEPT {
                return;
            }
            let class = (*page).class as usize;
            if (*page).flags & IN_FULL != 0 {
                self.full[class].remove(page);
                (*page).flags &= !IN_FULL;
                self.queues[class].push_back(page);
                self.sync_direct(class);
            }
            // Keep the last page of a class, so alloc/free of one block at a page boundary does
            // not get and retire a page every time -- unless it is all that keeps its segment
            // from going back to the pool: then memory return after a burst wins. The small
            // geometry keeps none: 16 pages cannot hold an empty page for every class touched.
            if (*page).used == 0 {
                let seg = segment_of(page.cast());
                if !KEEP_LAST_PAGE
                    || !self.queues[class].is_single()
                    || (*seg).is_only_span((*seg).index_of(page))
                {
                    self.retire(page);
                } else {
                    // Kept: later frees that empty it again skip this call until a page joins
                    // the queue or another span of the segment is released (see `KEPT`).
                    (*page).flags |= KEPT;
                }
            }
        }
    }

    /// Lists an owned segment: at the front if it has a free page, else at the back, so the
    /// search for a free page can stop at the first full segment.
    ///
    /// # Safety
    /// `seg` is owned by this heap and on no list.
    unsafe fn insert_segment(&mut self, seg: *mut Segment) {
        // SAFETY: owned segment (caller).
        unsafe {
            if (*seg).has_free_page() {
                self.segments.push(seg);
            } else {
                self.push_segment_back(seg);
            }
        }
    }

    /// Gives this heap an id if it has none; false when ids ran out (then it owns nothing).
    #[inline]
    fn has_id(&mut self) -> bool {
        if self.id == NO_ID {
            match fresh_id() {
                Some(id) => self.id = id,
                None => return false,
            }
        }
        true
    }

    /// Whether this heap owns `seg`.
    #[inline(always)]
    pub(crate) fn owns(&self, seg: *const Segment) -> bool {
        // SAFETY: `seg` was classified as ours by the caller.
        unsafe { (*seg).owner.load(Ordering::Relaxed) == self.id }
    }

    /// Segments this heap owns.
    pub fn segment_count(&self) -> usize {
        self.segments.len
    }

    pub(crate) fn segments_head(&self) -> *mut Segment {
        self.segments.head
    }

    pub(crate) fn queue(&self, class: usize, full: bool) -> PageQueue {
        if full {
            self.full[class]
        } else {
            self.queues[class]
        }
    }

    pub(crate) fn direct_page(&self, class: usize) -> *mut Page {
        self.direct[class]
    }

    pub(crate) fn is_empty_page(page: *const Page) -> bool {
        ptr::eq(page, &EMPTY_PAGE)
    }
}

impl Drop for Heap {
    /// Abandons what the heap still owns: empty pages go back to the pool, the rest waits there
    /// for another heap to adopt it (blocks still live elsewhere stay valid).
    fn drop(&mut self) {
        if self.segments.len > 0 {
            self.abandon();
        } else {
            // Foreign blocks may wait on the hot stacks of a heap that owns no segment.
            self.hot_flush();
            self.flush_remote();
            self.stats.release();
        }
    }
}
