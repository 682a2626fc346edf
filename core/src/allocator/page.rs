//! Pages: `PAGE_SIZE` (64 KiB; 4 KiB in the small geometry) slices of a segment (or spans of several) holding blocks of one size class.
//!
//! ```text
//!   page area (span of `span` pages)
//!   +-------+-------+-------+-------+---------------------------+
//!   | blk 0 | blk 1 | blk 2 |  ...  | not yet carved (capacity..reserved)
//!   +-------+-------+-------+-------+---------------------------+
//!   ^ start                          ^ start + capacity * block_size
//!
//!   a free block's first word is the encoded next pointer:  word = next ^ key
//! ```
//!
//! Three free lists per page:
//! - `free`: the allocation fast path pops from it;
//! - `local_free`: the owner heap's frees push here, so `free` is never written by the free
//!   path and the fast path stays a pop;
//! - `thread_free`: other threads push here atomically; the owner takes the whole list at once.
//!   Its word holds the list's length beside its head, so taking it never walks the list:
//!
//! ```text
//!   thread_free word:  [ length of the list | index of its head block + 1 (0: empty) ]
//!                        bits 16..            bits 0..16
//! ```
//!
//!   (A remote-freed block's line was last written by the freeing core; walking a list of them
//!   to count it costs one dependent cache miss per block on the owner.)
//!
//! Invariants (owner's view, checked by `check`):
//! - `used == capacity - |free| - |local_free|`; blocks in `thread_free` are counted in `used`
//!   until the owner collects them, so live blocks `= used - |thread_free|`;
//! - every list entry is `start + i * block_size` for some `i < capacity`, on at most one list;
//! - `capacity <= reserved`, `reserved * block_size <= span area`.

use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};

pub use super::geometry::{PAGE_SHIFT, PAGE_SIZE};

/// Bytes of blocks `Page::extend` carves at a time: one OS page, so a class with a handful of
/// live blocks touches 4 KiB of its page, not more.
const EXTEND_BYTES: usize = if PAGE_SIZE < 4096 { PAGE_SIZE } else { 4096 };

/// Bits of the `thread_free` word that hold the head's block index + 1; the list's length is
/// above them.
const REMOTE_INDEX_BITS: u32 = 16;
const REMOTE_INDEX_MASK: usize = (1 << REMOTE_INDEX_BITS) - 1;
// Every block index + 1 and every list length (at most the blocks of a page, 8 bytes or more
// each) fit their fields, also in a 32-bit word.
const _: () = assert!(PAGE_SIZE / 8 < REMOTE_INDEX_MASK);

/// A free block: only its first word is used, to link it into a list.
#[repr(C)]
pub struct Block {
    next: usize,
}

/// Flag: the page is allocated to a size class (not a free page of its segment).
pub(crate) const IN_USE: u8 = 1;
/// Flag: the page sits in its heap's full queue (no free block when last looked at).
pub(crate) const IN_FULL: u8 = 2;
/// Flag: some block of the page was handed out at an interior, aligned address.
pub(crate) const HAS_ALIGNED: u8 = 4;
/// Flag: the page is empty and was kept as the only page of its class queue (see
/// `Heap::page_event`), so the free path need not ask again each time it empties. Cleared when
/// another page joins the queue, when the page goes to the full queue, and when another span of
/// its segment is released (it may now be all that keeps the segment from the pool).
pub(crate) const KEPT: u8 = 8;

/// Zero-sized; in the default geometry aligned to a cache line, so the field after a field of
/// this type starts a new line (in the small geometry it takes no room and aligns nothing).
#[cfg_attr(not(feature = "small-geometry"), repr(align(64)))]
#[derive(Clone, Copy)]
pub(crate) struct LineBreak;

/// Page metadata, kept out of band in the segment header, in three cache lines by who writes
/// them (one line in the small geometry, a single-core target's):
///
/// ```text
///   line 0  start key inv block_size capacity reserved flags shift class span head_delta hot_at
///           set when the page takes a class; read by every free, also other threads'
///   line 1  free local_free used next prev             the owner's, written on every alloc
///   line 2  thread_free                                other threads' compare-and-swap
/// ```
///
/// A thread that frees into the page reads line 0 only, and its compare-and-swap takes line 2
/// only, so neither takes the line the owner's allocations write away from the owner.
#[repr(C)]
pub struct Page {
    /// First block.
    pub(crate) start: *mut u8,
    /// Key the list links are encoded with (`word = next ^ key`).
    pub(crate) key: usize,
    /// Inverse of the odd part of `block_size` modulo 2^64: `(p - start) * inv`, rotated right by
    /// `shift`, is the block index when `p` is a block start and a huge number otherwise (exact
    /// division test, no divide and no second multiply).
    pub(crate) inv: u64,
    /// Bytes per block.
    pub(crate) block_size: usize,
    /// Blocks carved so far (owner only). 0 for a page not in use, so no pointer passes the
    /// block-start test on it.
    pub(crate) capacity: u32,
    /// Blocks that fit in the span.
    pub(crate) reserved: u32,
    /// `IN_USE | IN_FULL | HAS_ALIGNED | KEPT`.
    pub(crate) flags: u8,
    /// Trailing zero bits of `block_size`.
    pub(crate) shift: u8,
    /// Size class.
    pub(crate) class: u8,
    /// Pages in the span (head page only).
    pub(crate) span: u8,
    /// For the pages of a span after the first: distance back to the head page.
    pub(crate) head_delta: u8,
    /// Where the owner's free finds the hot stack of `class` in a heap: its byte offset there
    /// (the same in every heap; `heap::hot::HOT_STACK_OF[class]`), given with the class, so the
    /// free needs no table lookup. Meaningless while the page is not in use.
    pub(crate) hot_at: u16,
    _owner_line: LineBreak,
    /// Allocation list (owner only).
    pub(crate) free: *mut Block,
    /// Owner's frees (owner only).
    pub(crate) local_free: *mut Block,
    /// Blocks handed out and not on `free`/`local_free` (owner only).
    pub(crate) used: u32,
    /// Heap queue links (owner only).
    pub(crate) next: *mut Page,
    pub(crate) prev: *mut Page,
    /// Lifetime counters for the retired-page totals of the stats.
    #[cfg(feature = "stats")]
    pub(crate) lifetime_allocs: u64,
    #[cfg(feature = "stats")]
    pub(crate) peak_used: u32,
    _remote_line: LineBreak,
    /// Frees from other threads (any thread, atomically): the list's length and its head's
    /// block index + 1 (module doc); 0 is the empty list.
    pub(crate) thread_free: AtomicUsize,
}

// SAFETY: a `Page` is only mutated by its owner heap (its non-atomic fields) or through
// `thread_free` (atomic); sharing the sentinel `EMPTY_PAGE` is sound because it is never written.
unsafe impl Sync for Page {}

impl Page {
    /// A page that is not in use.
    pub const fn empty() -> Page {
        Page {
            free: ptr::null_mut(),
            local_free: ptr::null_mut(),
            start: ptr::null_mut(),
            key: 0,
            inv: 0,
            used: 0,
            capacity: 0,
            flags: 0,
            shift: 0,
            class: 0,
            hot_at: 0,
            span: 0,
            reserved: 0,
            block_size: 0,
            head_delta: 0,
            _owner_line: LineBreak,
            _remote_line: LineBreak,
            thread_free: AtomicUsize::new(0),
            next: ptr::null_mut(),
            prev: ptr::null_mut(),
            #[cfg(feature = "stats")]
            lifetime_allocs: 0,
            #[cfg(feature = "stats")]
            peak_used: 0,
        }
    }

    /// Turns a free page into an empty page of `class` covering `area_len` bytes at `start`;
    /// `hot_at` is the class's hot-stack offset in a heap (see the field).
    pub(crate) fn init(
        &mut self,
        class: usize,
        hot_at: u16,
        block_size: usize,
        start: *mut u8,
        area_len: usize,
    ) {
        *self = Page::empty();
        self.class = class as u8;
        self.hot_at = hot_at;
        self.block_size = block_size;
        self.start = start;
        self.reserved = (area_len / block_size) as u32;
        self.shift = block_size.trailing_zeros() as u8;
        self.inv = odd_inverse((block_size >> self.shift) as u64);
        self.key = encode_key(start as usize);
        self.flags = IN_USE;
    }

    #[inline(always)]
    pub(crate) fn in_use(&self) -> bool {
        self.flags & IN_USE != 0
    }

    #[inline(always)]
    fn encode(&self, next: *mut Block) -> usize {
        next as usize ^ self.key
    }

    #[inline(always)]
    pub(crate) fn decode(&self, word: usize) -> *mut Block {
        (word ^ self.key) as *mut Block
    }

    /// Pops a block from `free`, the allocation fast path.
    ///
    /// # Safety
    /// Caller is the owner heap.
    #[inline(always)]
    pub(crate) unsafe fn pop_free(&mut self) -> *mut u8 {
        let b = self.free;
        if b.is_null() {
            return ptr::null_mut();
        }
        // SAFETY: `b` is a free block of this page, so its first word is an encoded link.
        self.free = self.decode(unsafe { (*b).next });
        // Clear the link: a block handed out must not look free to the double-free filter even
        // if its user never overwrites the first word (the line is in cache: one store).
        // SAFETY: as above; the block is now ours to hand out.
        unsafe { (*b).next = 0 };
        self.used += 1;
        #[cfg(feature = "stats")]
        if super::stats::page_counting() {
            self.lifetime_allocs += 1;
            self.peak_used = self.peak_used.max(self.used);
        }
        b.cast()
    }

    /// Pushes a block the owner freed onto `local_free`.
    ///
    /// # Safety
    /// Caller is the owner heap; `p` is a block of this page that is in use.
    #[inline(always)]
    pub(crate) unsafe fn push_local(&mut self, p: *mut u8) {
        let b = p.cast::<Block>();
        // SAFETY: the block is ours and at least one word long.
        unsafe { (*b).next = self.encode(self.local_free) };
        self.local_free = b;
        self.used -= 1;
    }

    /// Pushes a block freed by another thread onto `thread_free`.
    ///
    /// # Safety
    /// `p` is a block of this page that is in use (so the page cannot be retired meanwhile).
    #[inline]
    pub(crate) unsafe fn push_remote(&self, p: *mut u8) {
        let b = p.cast::<Block>();
        // SAFETY: a one-block list (caller).
        unsafe { self.push_remote_list(b, b, 1) }
    }

    /// Links the block at `p` in front of `head`, a list of this page's blocks the caller
    /// holds (null: none), with this page's encoding; returns the new head. For batches of
    /// remote frees ([`push_remote_list`](Self::push_remote_list) publishes them).
    ///
    /// # Safety
    /// `p` is a block of this page that is in use and on no list.
    #[inline(always)]
    pub(crate) unsafe fn link_before(&self, p: *mut u8, head: *mut Block) -> *mut Block {
        let b = p.cast::<Block>();
        // SAFETY: the caller holds the block.
        unsafe { (*b).next = self.encode(head) };
        b
    }

    /// Publishes a list of `len` blocks freed by other threads, `head` .. `tail` (linked with
    /// this page's encoding; `tail`'s link is overwritten), onto `thread_free` with one
    /// compare-and-swap (more only when another thread pushes at the same time).
    ///
    /// # Safety
    /// Every block of the list is a block of this page that is counted in `used`, and the
    /// caller holds them all (so the page cannot be retired meanwhile).
    pub(crate) unsafe fn push_remote_list(&self, head: *mut Block, tail: *mut Block, len: u32) {
        let index = self.exact_block_index(head.cast());
        debug_assert!(index < self.capacity as u64);
        let mut now = self.thread_free.load(Ordering::Relaxed);
        loop {
            let (below, below_len) = self.remote_list(now);
            // SAFETY: the caller holds `tail`; `below` is this page's list (or null).
            unsafe { (*tail).next = self.encode(below) };
            let word = ((below_len + len) as usize) << REMOTE_INDEX_BITS | (index as usize + 1);
            match self.thread_free.compare_exchange_weak(
                now,
                word,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(seen) => now = seen,
            }
        }
    }

    /// The head and length of the `thread_free` list a word of `thread_free` describes.
    #[inline(always)]
    pub(crate) fn remote_list(&self, word: usize) -> (*mut Block, u32) {
        let index = word & REMOTE_INDEX_MASK;
        if index == 0 {
            return (ptr::null_mut(), 0);
        }
        (
            self.block_start(index as u32 - 1).cast(),
            (word >> REMOTE_INDEX_BITS) as u32,
        )
    }

    /// Whether other threads have freed blocks of this page the owner has not collected.
    #[inline(always)]
    pub(crate) fn has_remote_frees(&self) -> bool {
        self.thread_free.load(Ordering::Relaxed) != 0
    }

    /// Moves `local_free` and `thread_free` onto `free` (owner's slow path).
    ///
    /// # Safety
    /// Caller is the owner heap.
    pub(crate) unsafe fn collect(&mut self) {
        let (remote, n) = self.remote_list(self.thread_free.swap(0, Ordering::Acquire));
        if !remote.is_null() {
            // The word carries the list's length: no walk over lines other threads wrote last,
            // unless `free` must be appended (then to the list's tail).
            // SAFETY: every block on `thread_free` belongs to this page and holds an encoded
            // link; the list ends in the encoding of null.
            unsafe { self.put_in_front_of_free(remote) };
            self.used -= n;
        }
        if !self.local_free.is_null() {
            // SAFETY: blocks on `local_free` are ours and hold encoded links (slow path; lists
            // are short).
            unsafe { self.put_in_front_of_free(self.local_free) };
            self.local_free = ptr::null_mut();
        }
    }

    /// Makes the list at `head` the front of `free`: walks it to its tail only when `free` is
    /// not empty.
    ///
    /// # Safety
    /// Caller is the owner heap; `head` is a non-empty list of this page's blocks, on no other
    /// list, linked with this page's encoding and ending in the encoding of null.
    unsafe fn put_in_front_of_free(&mut self, head: *mut Block) {
        if !self.free.is_null() {
            let mut tail = head;
            // SAFETY: list blocks hold encoded links (caller).
            unsafe {
                loop {
                    let next = self.decode((*tail).next);
                    if next.is_null() {
                        break;
                    }
                    tail = next;
                }
                (*tail).next = self.encode(self.free);
            }
        }
        self.free = head;
    }

    /// Carves more never-used blocks onto `free`. Touches at most about `EXTEND_BYTES` (one
    /// block if it is larger) at a time, so a fresh page does not fault in all its memory at once.
    ///
    /// # Safety
    /// Caller is the owner heap; `free` is empty.
    pub(crate) unsafe fn extend(&mut self) {
        let left = self.reserved - self.capacity;
        if left == 0 {
            return;
        }
        let batch = ((EXTEND_BYTES / self.block_size) as u32).clamp(1, left);
        let first = self.capacity;
        let mut next: *mut Block = ptr::null_mut();
        for i in (first..first + batch).rev() {
            // SAFETY: block `i < reserved` lies inside the span.
            let b = unsafe { self.start.add(i as usize * self.block_size) }.cast::<Block>();
            // SAFETY: as above; the block is not in use.
            unsafe { (*b).next = self.encode(next) };
            next = b;
        }
        self.free = next;
        self.capacity += batch;
    }

    /// Whether the page is fully carved into blocks no larger than an OS page (4 KiB), so that
    /// carving wrote into every OS page of its span (a block's first word holds its link).
    pub(crate) fn touches_every_os_page(&self) -> bool {
        self.capacity == self.reserved && self.block_size <= 4096
    }

    /// Index of the block starting at `p` if `p` is the start of a carved block; otherwise a
    /// number `>= capacity` (always so on a page not in use, whose capacity is 0).
    ///
    /// Exact division test: with `block_size = odd << shift` and `inv * odd == 1 (mod 2^64)`,
    /// `rotr(off * inv, shift)` equals `off / block_size` when `block_size` divides `off`, and is
    /// above `2^64 / block_size` (far above any capacity) when it does not: a misaligned `off`
    /// leaves low bits that the rotation moves to the top, and a multiple of `2^shift` that is not
    /// a multiple of `odd` maps above `(2^(64-shift) - 1) / odd`. An address below `start` wraps
    /// to an offset whose quotient is at least `(2^64 - 2^21) / block_size`, also out of range.
    #[inline(always)]
    pub(crate) fn exact_block_index(&self, p: *const u8) -> u64 {
        let off = (p as usize).wrapping_sub(self.start as usize) as u64;
        off.wrapping_mul(self.inv).rotate_right(self.shift as u32)
    }

    /// Whether `p` is the start of a carved block of this page.
    #[inline(always)]
    pub(crate) fn is_block_start(&self, p: *const u8) -> bool {
        self.exact_block_index(p) < self.capacity as u64
    }

    /// Index of the block containing `p`, or `None` outside the carved blocks. Divides: for the
    /// cold paths (interior aligned pointers, `check`).
    pub(crate) fn block_index(&self, p: *const u8) -> Option<u32> {
        if self.block_size == 0 {
            return None;
        }
        let off = (p as usize).checked_sub(self.start as usize)?;
        let idx = off / self.block_size;
        (idx < self.capacity as usize).then_some(idx as u32)
    }

    /// Start of block `idx`.
    #[inline(always)]
    pub(crate) fn block_start(&self, idx: u32) -> *mut u8 {
        self.start.wrapping_add(idx as usize * self.block_size)
    }

    /// Whether `p` (a block of this page) is on `free` or `local_free` — or, when `remote` is
    /// set, on `thread_free`. Used to confirm a suspected double free; O(capacity).
    ///
    /// # Safety
    /// Caller is the owner heap, or `remote` is false and the page cannot change meanwhile.
    pub(crate) unsafe fn is_on_a_free_list(&self, p: *mut u8, include_thread_free: bool) -> bool {
        let lists = [
            self.free,
            self.local_free,
            if include_thread_free {
                self.remote_list(self.thread_free.load(Ordering::Acquire)).0
            } else {
                ptr::null_mut()
            },
        ];
        for head in lists {
            let mut b = head;
            let mut steps = 0;
            while !b.is_null() && steps <= self.capacity {
                if b.cast::<u8>() == p {
                    return true;
                }
                // SAFETY: list entries are blocks of this page holding encoded links.
                b = self.decode(unsafe { (*b).next });
                steps += 1;
            }
        }
        false
    }

    /// Whether the word a freed block would hold decodes to a plausible list link (null, or an
    /// address in the same segment): a cheap filter, so a double free is confirmed by walking
    /// the lists only for the rare live block whose first word happens to pass it.
    #[inline(always)]
    pub(crate) fn looks_free(&self, p: *mut u8) -> bool {
        // SAFETY: `p` is a block of this page, at least one word long.
        let word = unsafe { p.cast::<usize>().read() };
        let next = self.decode(word) as usize;
        next == 0 || (next ^ p as usize) < super::segment::SEGMENT_SIZE
    }

    /// Number of blocks on a list (for `check`).
    pub(crate) fn list_len(&self, head: *mut Block, limit: u32) -> Option<u32> {
        let mut n = 0;
        let mut b = head;
        while !b.is_null() {
            if n > limit {
                return None;
            }
            let idx = self.block_index(b.cast())?;
            if self.block_start(idx) != b.cast() {
                return None;
            }
            n += 1;
            // SAFETY: `b` was just proven to be a carved block of this page.
            b = self.decode(unsafe { (*b).next });
        }
        Some(n)
    }
}

/// The inverse of odd `d` modulo 2^64, by Newton's iteration (each step doubles the correct low
/// bits; `d` itself is correct to 3 bits since `d * d == 1 (mod 8)` for odd `d`).
const fn odd_inverse(d: u64) -> u64 {
    let mut x = d;
    let mut i = 0;
    while i < 5 {
        x = x.wrapping_mul(2u64.wrapping_sub(d.wrapping_mul(x)));
        i += 1;
    }
    x
}

/// A per-page key for encoding list links: mixes the page address with a per-process seed so a
/// stray write or a user's data rarely decodes to a valid link.
fn encode_key(start: usize) -> usize {
    let seed = &KEY_SEED as *const u8 as usize; // differs per process under ASLR
    let x = (start ^ seed.rotate_left(17)).wrapping_mul(0x9E37_79B9_7F4A_7C15u64 as usize);
    x | 1 // never 0, so a zeroed word never decodes to null
}

static KEY_SEED: u8 = 0;

/// Asks the core for the line holding `p` with the intent to write it: the free reads the
/// block's first word (the double-free filter) and then writes it (the free marker). A line
/// another core wrote last then moves once, in the state the store needs, instead of being
/// shared for the read and upgraded for the store (two transfers). A hint only: it never
/// faults, so any address is fine.
///
/// Issued by the frees of blocks in segments the heap has not verified, which are mostly
/// remote frees (another core wrote the block last); the owner's inline free does without it,
/// because there the line is usually this core's already and the hint cost about 3% on
/// glibc-simple (`docs/perf.md`).
#[inline(always)]
pub(crate) fn prefetch_for_write(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetchw` reads and writes nothing architecturally and never faults.
    unsafe {
        core::arch::asm!("prefetchw [{0}]", in(reg) p, options(readonly, nostack, preserves_flags));
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: `prfm` reads and writes nothing architecturally and never faults.
    unsafe {
        core::arch::asm!("prfm pstl1keep, [{0}]", in(reg) p, options(readonly, nostack, preserves_flags));
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocator::size_class::{class_size, CLASS_COUNT};

    const SEGMENT_SIZE_FOR_TEST: usize = crate::allocator::segment::SEGMENT_SIZE;

    /// The remote free issues the write prefetch before it knows the pointer is kiln's: it must
    /// not fault on null, on an unmapped address or on a non-canonical one, and it changes
    /// nothing it points at.
    #[test]
    fn the_write_prefetch_never_faults_and_writes_nothing() {
        let word = 0x5a5a_5a5a_usize;
        prefetch_for_write(ptr::from_ref(&word).cast());
        assert_eq!(word, 0x5a5a_5a5a);
        for addr in [0usize, 8, 0x1000, usize::MAX - 63, usize::MAX / 2 + 1] {
            prefetch_for_write(ptr::without_provenance(addr));
        }
    }

    #[test]
    fn odd_inverse_inverts() {
        for d in [1u64, 3, 5, 7, 9, 15, 17, 1001, 65535, (1 << 20) + 1] {
            assert_eq!(d.wrapping_mul(odd_inverse(d)), 1, "d = {d}");
        }
    }

    /// The exact-division test against plain division, for every class, over a whole segment's
    /// worth of offsets around the carved range (including addresses below `start`).
    #[test]
    fn exact_block_index_matches_division() {
        let start = 0x4000_0000usize as *mut u8;
        for class in 0..CLASS_COUNT {
            let size = class_size(class);
            let mut page = Page::empty();
            page.init(class, 0, size, start, 16 * PAGE_SIZE);
            page.capacity = page.reserved;
            let check = |off: isize| {
                let p = start.wrapping_offset(off);
                let expect = off >= 0
                    && (off as usize).is_multiple_of(size)
                    && (off as usize / size) < page.capacity as usize;
                assert_eq!(page.is_block_start(p), expect, "class {class} off {off}");
                if expect {
                    assert_eq!(page.exact_block_index(p), (off as usize / size) as u64);
                }
            };
            // Every offset near the start, then around every block boundary.
            for off in -(4096 + 3)..(4 * size as isize).min(20_000) {
                check(off);
            }
            for k in 0..=page.capacity as isize + 2 {
                let base = k * size as isize;
                for d in [-16, -8, -1, 0, 1, 8, 16, size as isize / 2] {
                    check(base + d);
                }
            }
            check(-(SEGMENT_SIZE_FOR_TEST as isize));
        }
        assert!(!Page::empty().is_block_start(start));
    }
}
