//! Unit tests and the model-based property test of the allocator core.
//!
//! Every test gets its own pool over a counting test source (memory from the host's `System`
//! allocator, 2 MiB aligned), optionally limited to a number of segments to provoke OOM.

use std::alloc::{GlobalAlloc, Layout, System};
use std::boxed::Box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::vec::Vec;

use proptest::prelude::*;

use super::geometry::SEGMENT_SHIFT;
use super::heap::is_hot;
use super::page::PAGE_SIZE;
use super::segment::{segment_of, Pool, HEADER_SIZE, SEGMENT_SIZE};
use super::size_class::{class_of, class_size, CLASS_COUNT, MAX_CLASS_SIZE, MAX_SMALL_SIZE};
use super::{free, realloc, usable_size, FreeError, Heap};
use crate::platform::MemorySource;

struct TestSource {
    limit: usize,
    reserved: AtomicUsize,
}

/// A source over `mmap` that also takes back parts of a reservation (like kiln-std's): address
/// space only, so reservations of several GiB cost nothing.
struct PartsSource {
    reserved: AtomicUsize,
    /// Single-segment reservations: the segment map's leaf slabs when the tests using this
    /// source only make spans of two segments or more. They are never given back.
    single: AtomicUsize,
}

// SAFETY: fresh private anonymous mappings, aligned by trimming; `release` unmaps exactly the
// segments it is given, which lie inside one reservation.
unsafe impl MemorySource for PartsSource {
    fn reserve(&self, count: usize) -> *mut u8 {
        let len = count * SEGMENT_SIZE;
        // SAFETY: anonymous private mapping; no existing memory is affected.
        let raw = unsafe { libc_mmap(len + SEGMENT_SIZE) };
        if raw.is_null() {
            return core::ptr::null_mut();
        }
        let aligned = (raw as usize).next_multiple_of(SEGMENT_SIZE);
        let head = aligned - raw as usize;
        // SAFETY: trimming our own fresh mapping.
        unsafe {
            if head > 0 {
                libc_munmap(raw, head);
            }
            libc_munmap((aligned + len) as *mut u8, SEGMENT_SIZE - head);
        }
        self.reserved.fetch_add(count, Ordering::SeqCst);
        if count == 1 {
            self.single.fetch_add(1, Ordering::SeqCst);
        }
        aligned as *mut u8
    }

    unsafe fn release(&self, base: *mut u8, count: usize) {
        self.reserved.fetch_sub(count, Ordering::SeqCst);
        // SAFETY: segments of one of our reservations (caller).
        unsafe { libc_munmap(base, count * SEGMENT_SIZE) };
    }

    fn can_release_parts(&self) -> bool {
        true
    }
}

extern "C" {
    fn mmap(addr: *mut u8, len: usize, prot: i32, flags: i32, fd: i32, off: i64) -> *mut u8;
    fn munmap(addr: *mut u8, len: usize) -> i32;
}

/// `mmap` of `len` bytes read/write, private, anonymous, no swap reservation; null on failure.
///
/// # Safety
/// Creates a fresh mapping; always safe to call, `unsafe` for the FFI.
unsafe fn libc_mmap(len: usize) -> *mut u8 {
    const PROT_RW: i32 = 3;
    const MAP_PRIVATE_ANON_NORESERVE: i32 = 0x02 | 0x20 | 0x4000;
    // SAFETY: see the function's contract.
    let p = unsafe {
        mmap(
            core::ptr::null_mut(),
            len,
            PROT_RW,
            MAP_PRIVATE_ANON_NORESERVE,
            -1,
            0,
        )
    };
    if p as isize == -1 {
        core::ptr::null_mut()
    } else {
        p
    }
}

/// # Safety
/// `addr..addr + len` is part of a mapping of ours that nothing uses any more.
unsafe fn libc_munmap(addr: *mut u8, len: usize) {
    // SAFETY: caller.
    unsafe { munmap(addr, len) };
}

// SAFETY: System returns distinct, 2 MiB-aligned regions of the requested size.
unsafe impl MemorySource for TestSource {
    fn reserve(&self, count: usize) -> *mut u8 {
        if self.reserved.fetch_add(count, Ordering::SeqCst) + count > self.limit {
            self.reserved.fetch_sub(count, Ordering::SeqCst);
            return core::ptr::null_mut();
        }
        // SAFETY: non-zero size, valid alignment.
        unsafe {
            System.alloc(Layout::from_size_align(count * SEGMENT_SIZE, SEGMENT_SIZE).unwrap())
        }
    }

    unsafe fn release(&self, base: *mut u8, count: usize) {
        self.reserved.fetch_sub(count, Ordering::SeqCst);
        // SAFETY: same layout as in `reserve` (caller passes the same count).
        unsafe {
            System.dealloc(
                base,
                Layout::from_size_align(count * SEGMENT_SIZE, SEGMENT_SIZE).unwrap(),
            )
        }
    }
}

fn pool(limit: usize) -> &'static Pool {
    let source: &'static TestSource = Box::leak(Box::new(TestSource {
        limit,
        reserved: AtomicUsize::new(0),
    }));
    Box::leak(Box::new(Pool::new(source)))
}

pub(crate) fn heap(limit: usize) -> Box<Heap> {
    Box::new(Heap::new(pool(limit)))
}

fn fill(p: *mut u8, len: usize, tag: u8) {
    // SAFETY: `p` is a live block of at least `len` bytes (callers).
    unsafe { core::ptr::write_bytes(p, tag, len) };
}

fn holds(p: *const u8, len: usize, tag: u8) -> bool {
    // SAFETY: as in `fill`.
    unsafe { core::slice::from_raw_parts(p, len) }
        .iter()
        .all(|&b| b == tag)
}

#[test]
fn every_class_allocates_distinct_aligned_blocks() {
    let mut h = heap(64);
    for class in 0..CLASS_COUNT {
        let size = class_size(class);
        let blocks: Vec<*mut u8> = (0..20).map(|_| h.alloc(size, 8)).collect();
        for (i, &p) in blocks.iter().enumerate() {
            assert!(!p.is_null());
            assert!(usable_size(p).unwrap() >= size);
            fill(p, size, i as u8);
        }
        for (i, &p) in blocks.iter().enumerate() {
            assert!(
                holds(p, size, i as u8),
                "class {class} block {i} overwritten"
            );
        }
        if let Err(e) = h.check() {
            panic!("class {class}: {e}");
        }
        for p in blocks {
            // SAFETY: allocated above, freed once.
            unsafe { free(&mut h, p) }.unwrap();
        }
        h.check().unwrap();
    }
}

#[test]
fn foreign_interior_and_double_frees_are_reported_and_change_nothing() {
    let mut h = heap(8);
    let on_stack = 0u64;
    let boxed = Box::new(7u64);
    // SAFETY: the pointers are foreign; `free` must only report them.
    unsafe {
        assert_eq!(
            free(&mut h, &on_stack as *const u64 as *mut u8),
            Err(FreeError::Foreign)
        );
        assert_eq!(
            free(&mut h, &*boxed as *const u64 as *mut u8),
            Err(FreeError::Foreign)
        );
        assert_eq!(free(&mut h, core::ptr::null_mut()), Ok(()));
    }
    let p = h.alloc(100, 8);
    let q = h.alloc(100, 8);
    fill(q, 100, 0xAB);
    // SAFETY: interior pointer and double free must be reported, not performed.
    unsafe {
        assert_eq!(free(&mut h, p.add(8)), Err(FreeError::NotABlock));
        free(&mut h, p).unwrap();
        assert_eq!(free(&mut h, p), Err(FreeError::DoubleFree));
    }
    h.check().unwrap();
    assert!(holds(q, 100, 0xAB));
    // The block is handed out once, not twice.
    let a = h.alloc(100, 8);
    let b = h.alloc(100, 8);
    assert_ne!(a, b);
}

/// The hot stacks: the block freed last is the one reused first; a second free of a stacked
/// block is refused; a write into a stacked block shows in `check`; a burst of frees drains the
/// stacks into the pages instead of pinning them.
#[test]
fn hot_stacks_reuse_the_last_freed_block_and_stay_checked() {
    if super::geometry::HOT_MAX_SIZE == 0 {
        return; // no hot stacks in this geometry
    }
    let mut h = heap(8);
    let blocks: Vec<*mut u8> = (0..64).map(|_| h.alloc(48, 8)).collect();
    // SAFETY: live blocks, freed once each.
    unsafe {
        free(&mut h, blocks[10]).unwrap();
        free(&mut h, blocks[20]).unwrap();
        assert_eq!(free(&mut h, blocks[10]), Err(FreeError::DoubleFree));
    }
    h.check().unwrap();
    assert_eq!(h.alloc(48, 8), blocks[20], "newest first");
    // The hot-stack pop alone: a stacked block without the refill, else the refill.
    let no_refill = |_: &mut Heap, _, _| -> *mut u8 { panic!("a stacked block was there") };
    let refilled = |h: &mut Heap, size, align| {
        let p = h.alloc_uncounted(size, align);
        assert!(!p.is_null() && !blocks.contains(&p), "a fresh block");
        p
    };
    assert_eq!(h.alloc_hot_or(40, 16, no_refill), blocks[10]);
    let fresh = h.alloc_hot_or(48, 16, refilled);
    // SAFETY: live blocks, each freed once (the first back onto the stack).
    unsafe {
        free(&mut h, blocks[10]).unwrap();
        free(&mut h, fresh).unwrap();
    }
    assert_eq!(h.alloc_hot_or(48, 16, no_refill), fresh);
    // SAFETY: a live block, freed once.
    unsafe { free(&mut h, fresh) }.unwrap();
    h.check().unwrap();
    assert_eq!(h.alloc(48, 8), fresh);
    assert_eq!(h.alloc(48, 8), blocks[10]);
    // SAFETY: a live block, freed once.
    unsafe { free(&mut h, fresh) }.unwrap();
    // SAFETY: freed once; then a write after free, which `check` must see.
    unsafe {
        free(&mut h, blocks[30]).unwrap();
        blocks[30].cast::<u64>().write(0x1234_5678);
    }
    assert_eq!(
        h.check().map_err(|e| e.what),
        Err("hot block written after it was freed")
    );
    // SAFETY: restore the marker the free wrote (the page's key), as if nothing happened.
    unsafe {
        let seg = super::segment::segment_of(blocks[30]);
        let key = (*(*seg).page_of(blocks[30])).key;
        blocks[30].cast::<usize>().write(key);
    }
    h.check().unwrap();
    for (i, &b) in blocks.iter().enumerate() {
        if i != 30 {
            // SAFETY: live, freed once.
            unsafe { free(&mut h, b) }.unwrap();
        }
    }
    h.check().unwrap();
    h.collect();
    h.check().unwrap();
    h.pool().trim();
    assert_eq!(h.pool().segments_in_use(), 0);
}

/// A block freed into its page (its class's hot stack full) and then freed again while the
/// stack has room is refused: the free reads the block first, and its first word is a link of
/// the page's list. A free that wrote into the block without that read (to save the read's
/// cache miss) would overwrite the link and break the page's list (docs/perf.md, 2026-12-06:
/// the freed block's read).
#[test]
fn a_block_freed_into_its_page_and_freed_again_is_refused() {
    let depth = super::geometry::HOT_DEPTH;
    let mut h = heap(8);
    let blocks: Vec<*mut u8> = (0..depth + 2).map(|_| h.alloc(32, 8)).collect();
    let late = blocks[depth];
    // SAFETY: the first `depth` fill the stack (if the geometry has one); `late` goes to its
    // page.
    unsafe {
        for &b in &blocks[..=depth] {
            free(&mut h, b).unwrap();
        }
    }
    let top = h.alloc(32, 8);
    // SAFETY: a second free of `late`, on purpose.
    assert_eq!(unsafe { free(&mut h, late) }, Err(FreeError::DoubleFree));
    h.check().unwrap();
    // Past every block the page holds free: `late` comes back once, and no block twice.
    let handed: Vec<*mut u8> = (0..3000).map(|_| h.alloc(32, 8)).collect();
    let mut all: Vec<*mut u8> = handed.iter().chain([&top]).copied().collect();
    assert!(all.iter().all(|p| !p.is_null()));
    assert_eq!(
        all.iter().filter(|&&p| p == late).count(),
        1,
        "handed out once"
    );
    all.sort();
    all.dedup();
    assert_eq!(all.len(), handed.len() + 1, "no block handed out twice");
    // SAFETY: live, freed once each.
    unsafe {
        for &p in handed.iter().chain([&top, &blocks[depth + 1]]) {
            free(&mut h, p).unwrap();
        }
    }
    h.collect();
    h.check().unwrap();
}

/// A freed huge span of several segments is kept for the next huge block of about its size
/// (no new mapping), comes back zeroed from `alloc_zeroed` although it is not fresh, refuses a
/// second free, and goes back to the platform on `trim`.
#[test]
fn huge_spans_are_reused_and_trimmed() {
    let mut h = heap(64);
    let size = 3 * SEGMENT_SIZE / 2;
    let p = h.alloc(size, 8);
    assert!(!p.is_null());
    fill(p, size, 0x5A);
    let held = h.pool().segments_in_use();
    // SAFETY: live, freed once; the second free must be refused.
    unsafe {
        free(&mut h, p).unwrap();
        assert_eq!(free(&mut h, p), Err(FreeError::NotABlock));
    }
    assert_eq!(h.pool().segments_in_use(), held, "the span is cached");
    let q = h.alloc_zeroed(size - 4096, 8);
    assert_eq!(q, p, "the cached span is reused");
    assert!(holds(q, size - 4096, 0), "a reused span is cleared");
    assert_eq!(h.pool().segments_in_use(), held);
    // SAFETY: live, freed once.
    unsafe { free(&mut h, q) }.unwrap();
    h.collect();
    h.pool().trim();
    assert_eq!(h.pool().segments_in_use(), 0);
}

#[test]
fn out_of_memory_returns_null_and_the_heap_stays_usable() {
    let mut h = heap(2);
    let mut live = Vec::new();
    loop {
        let p = h.alloc(4000, 8);
        if p.is_null() {
            break;
        }
        live.push(p);
        assert!(
            live.len() < 2 * SEGMENT_SIZE / 4000,
            "more blocks than two segments hold"
        );
    }
    assert!(
        h.alloc(10 * SEGMENT_SIZE, 8).is_null(),
        "huge beyond the limit"
    );
    assert!(h.alloc(usize::MAX - 100, 8).is_null(), "overflowing size");
    assert!(h.alloc(64, 3).is_null(), "alignment not a power of two");
    h.check().unwrap();
    // SAFETY: each freed once.
    unsafe { free(&mut h, live.pop().unwrap()) }.unwrap();
    assert!(
        !h.alloc(4000, 8).is_null(),
        "a freed block is reusable after OOM"
    );
}

/// Frees a burst's blocks (each once) and checks the heap; returns the segments in use at the
/// burst's peak, checked to be many.
fn free_burst(h: &mut Heap, p: &Pool, live: Vec<*mut u8>) -> usize {
    let peak = p.segments_in_use();
    assert!(peak >= 40, "burst should use many segments, used {peak}");
    for q in live {
        // SAFETY: allocated by the caller, freed once.
        unsafe { free(h, q) }.unwrap();
    }
    h.check().unwrap();
    peak
}

/// After a burst freed: at most the cache and segments holding the one empty page kept per
/// class stay; `collect` and `trim` give back the rest.
fn assert_burst_went_back(h: &mut Heap, p: &Pool, peak: usize) {
    assert!(
        p.segments_in_use() <= 8.max(peak / 5),
        "after the burst {} of {peak} segments remain",
        p.segments_in_use()
    );
    h.collect();
    p.trim();
    assert_eq!(p.segments_in_use(), 0);
    h.check().unwrap();
}

#[test]
fn memory_goes_back_to_the_platform_after_a_burst() {
    let p = pool(1000);
    let mut h = Box::new(Heap::new(p));
    // About 50 segments' worth of blocks of 16 to 1015 bytes.
    let live = (0..50 * SEGMENT_SIZE / 520)
        .map(|i| h.alloc(16 + (i * 7) % 1000, 8))
        .collect();
    let peak = free_burst(&mut h, p, live);
    assert_burst_went_back(&mut h, p, peak);
}

/// The same with the blocks freed in random order, as a program drops a table of objects: the
/// first frees of each class fill its hot stack with blocks spread over all of the class's
/// pages, so no page could empty (and drain the stack) if a full stack kept what it held.
#[test]
fn memory_goes_back_after_a_burst_freed_in_random_order() {
    let p = pool(1000);
    let mut h = Box::new(Heap::new(p));
    let mut live: Vec<*mut u8> = (0..50 * SEGMENT_SIZE / 520)
        .map(|i| h.alloc(16 + (i * 7) % 1000, 8))
        .collect();
    let mut x: u32 = 2_463_534_242;
    for i in (1..live.len()).rev() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        live.swap(i, x as usize % (i + 1));
    }
    let peak = free_burst(&mut h, p, live);
    assert_burst_went_back(&mut h, p, peak);
}

/// The same for blocks of 2 KiB to 256 KiB, whose classes have hot stacks of a few blocks each
/// (`HOT_CAP`): the stacks must not keep a burst's pages, and with them its segments.
#[test]
fn memory_goes_back_after_a_burst_of_large_blocks() {
    let p = pool(1000);
    let mut h = Box::new(Heap::new(p));
    let mut live = Vec::new();
    // About 50 segments' worth of blocks of 2 KiB to 250 KiB (every class above 2 KiB).
    let mut bytes = 0;
    let mut i = 0usize;
    while bytes < 50 * SEGMENT_SIZE {
        let size = (2048 + (i * 7919) % (250 * 1024)).min(MAX_CLASS_SIZE);
        let q = h.alloc(size, 8);
        assert!(!q.is_null());
        live.push(q);
        bytes += size;
        i += 1;
    }
    let peak = free_burst(&mut h, p, live);
    // A class that retired pages while it was freed drained its stack; what stays is the
    // blocks of classes that never emptied a page here (one span of the largest classes: about
    // 0.9 MiB in all), not up to 256 KiB for each of the 44 classes (4 MiB without the drain).
    let stacked: usize = (0..CLASS_COUNT)
        .filter(|&c| class_size(c) > 2048 && is_hot(c))
        .map(|c| h.hot_stack(c).len() * class_size(c))
        .sum();
    assert!(
        stacked <= SEGMENT_SIZE,
        "{stacked} bytes stay on hot stacks"
    );
    assert_burst_went_back(&mut h, p, peak);
}

#[test]
fn aligned_requests_up_to_half_a_segment() {
    let mut h = heap(64);
    let mut shift = 3;
    while shift < SEGMENT_SHIFT {
        let align = 1usize << shift;
        for size in [1, 24, 100, 5000, 70_000, 300_000] {
            let p = h.alloc(size, align);
            assert!(!p.is_null(), "size {size} align {align}");
            assert_eq!(p as usize % align, 0, "size {size} align {align}");
            assert!(usable_size(p).unwrap() >= size);
            fill(p, size, 0x5A);
            h.check().unwrap();
            // SAFETY: allocated above.
            unsafe { free(&mut h, p) }.unwrap();
        }
        shift += 1;
    }
    h.check().unwrap();
}

/// Every power-of-two alignment from 2 MiB to 1 GiB (4 GiB on 64-bit), through a source that
/// takes parts back (head and tail trimmed) and one that does not (kept until the free).
#[test]
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
fn aligned_requests_up_to_gigabytes() {
    let parts: &'static PartsSource = Box::leak(Box::new(PartsSource {
        reserved: AtomicUsize::new(0),
        single: AtomicUsize::new(0),
    }));
    // Every span here is at least two segments, so a single-segment reservation is a leaf of
    // the segment map for a new address window (carved from a segment of the source, kept for
    // good): seen with the small geometry, whose windows are 64 MiB.
    let held = || parts.reserved.load(Ordering::SeqCst) - parts.single.load(Ordering::SeqCst);
    let parts_pool: &'static Pool = Box::leak(Box::new(Pool::new(parts)));
    let mut trimmed = Heap::new(parts_pool);
    for shift in 21..=32 {
        let align = 1usize << shift;
        for size in [1, 5 << 20, align + 1] {
            let p = trimmed.alloc(size, align);
            assert!(!p.is_null(), "size {size} align {align}");
            assert_eq!(p as usize % align, 0, "size {size} align {align}");
            assert!(usable_size(p).unwrap() >= size);
            // Segments held: the block's own plus the header's, nothing of the over-reservation.
            assert_eq!(
                held(),
                size.div_ceil(SEGMENT_SIZE) + 1,
                "size {size} align {align}"
            );
            fill(p, size.min(1 << 20), 0xA5);
            // SAFETY: first and last byte of the block.
            unsafe { *p.add(size - 1) = 7 };
            // The block is aligned to its segment: its own segment is no header of ours.
            assert!(free::classify(p).is_ok());
            // SAFETY: allocated above.
            unsafe { free(&mut trimmed, p) }.unwrap();
            assert_eq!(held(), 0, "all given back");
            // No second free of `p` here: its range went back to the platform, and a test
            // running beside this one may already have a segment there (a free of `p` would
            // then free that test's block; seen once as a failure of this test). A second free
            // of a huge block is tested where its span stays cached
            // (`huge_spans_are_reused_and_trimmed`).
        }
    }
    trimmed.check().unwrap();

    // A source that only takes whole reservations back keeps the slack until the free.
    let mut h = heap(usize::MAX);
    for shift in 21..=30 {
        let align = 1usize << shift;
        let p = h.alloc(5 << 20, align);
        assert!(
            !p.is_null() && (p as usize).is_multiple_of(align),
            "align {align}"
        );
        fill(p, 5 << 20, 0x3C);
        // SAFETY: allocated above; realloc keeps the alignment and the contents.
        let q = unsafe { realloc(&mut h, p, 7 << 20, align) }.unwrap();
        assert!(!q.is_null() && (q as usize).is_multiple_of(align));
        // SAFETY: 5 MiB were copied.
        assert_eq!(unsafe { *q.add((5 << 20) - 1) }, 0x3C);
        // SAFETY: allocated above.
        unsafe { free(&mut h, q) }.unwrap();
    }
    assert_eq!(h.pool().segments_in_use(), 0);
    // Not a power of two, or above the largest alignment: null.
    assert!(h.alloc(64, 3 << 21).is_null());
    assert!(h.alloc(64, super::huge::MAX_ALIGN << 1).is_null());
    // Out of memory: null, and the heap stays usable.
    let mut small = heap(4);
    assert!(small.alloc(1, 16 << 20).is_null());
    assert!(!small.alloc(1, 4 << 20).is_null() || small.pool().segments_in_use() == 0);
    small.check().unwrap();
}

/// The sequences that corrupted a heap when segments named their owner by address: a heap
/// recreated where a dead one lived, a heap that moved after allocating, a huge block freed
/// through a heap of another pool. Each must leave every heap checkable and every block
/// usable.
#[test]
fn no_safe_sequence_corrupts_a_heap() {
    let p = pool(64);
    // 1. A heap dies with live blocks, and a new one takes its place (same address).
    let mut slot = Heap::new(p);
    let blocks: Vec<*mut u8> = (0..200).map(|i| slot.alloc(64 + i % 4 * 16, 8)).collect();
    for &b in &blocks {
        fill(b, 64, 1);
    }
    slot = Heap::new(p); // the old heap is dropped here; its segments are abandoned
    for &b in &blocks {
        // SAFETY: live blocks of the old heap, freed once each.
        unsafe { free(&mut slot, b) }.unwrap();
    }
    slot.check().unwrap();
    assert!(
        slot.segment_count() <= 64,
        "segment count {}",
        slot.segment_count()
    );
    slot.collect();
    slot.check().unwrap();
    let q = slot.alloc(64, 8);
    fill(q, 64, 2);
    // SAFETY: allocated above.
    unsafe { free(&mut slot, q) }.unwrap();
    slot.check().unwrap();

    // 2. A heap moves (into a box, then a vector) between allocating and freeing.
    let mut h = Heap::new(p);
    let a: Vec<*mut u8> = (0..300).map(|i| h.alloc(16 + i % 7 * 8, 8)).collect();
    let mut boxed = Box::new(h);
    let b: Vec<*mut u8> = (0..300).map(|_| boxed.alloc(200, 8)).collect();
    let mut v = std::vec![*boxed];
    let moved = &mut v[0];
    for x in a.into_iter().chain(b) {
        // SAFETY: live blocks of this heap.
        unsafe { free(moved, x) }.unwrap();
    }
    moved.check().unwrap();

    // 3. Heaps of two pools free each other's blocks, huge ones included.
    let other = pool(64);
    let mut h1 = Heap::new(p);
    let mut h2 = Heap::new(other);
    let big = h1.alloc(3 * SEGMENT_SIZE / 2, 8);
    let small = h1.alloc(40, 8);
    let huge_aligned = h1.alloc(10, 2 * SEGMENT_SIZE);
    assert!(!big.is_null() && !small.is_null() && !huge_aligned.is_null());
    let in_use = other.segments_in_use();
    // SAFETY: live blocks, each freed once.
    unsafe {
        free(&mut h2, big).unwrap();
        free(&mut h2, small).unwrap();
        free(&mut h2, huge_aligned).unwrap();
    }
    assert_eq!(
        other.segments_in_use(),
        in_use,
        "the other pool's source got nothing back"
    );
    h1.collect();
    h1.check().unwrap();
    h2.check().unwrap();
    drop(h1);
    drop(h2);
    drop(v);
    drop(slot);
    // Every heap is gone: what they held was abandoned; a new heap adopts and empties it all.
    let mut last = Heap::new(p);
    last.collect();
    last.check().unwrap();
    p.trim();
    assert_eq!(p.segments_in_use(), 0, "nothing leaked");
}

#[test]
fn realloc_stays_in_place_while_the_class_fits() {
    let mut h = heap(64);
    let p = h.alloc(100, 8); // class 112
    fill(p, 100, 3);
    // SAFETY: `p` is live; only results are used afterwards.
    unsafe {
        assert_eq!(realloc(&mut h, p, 112, 8), Ok(p), "grow into the slack");
        assert_eq!(realloc(&mut h, p, 60, 8), Ok(p), "shrink by less than half");
        let q = realloc(&mut h, p, 5000, 8).unwrap();
        assert_ne!(q, p);
        assert!(holds(q, 60, 3));
        let r = realloc(&mut h, q, SEGMENT_SIZE - 2 * HEADER_SIZE, 8).unwrap();
        assert!(holds(r, 60, 3));
        let s = realloc(&mut h, r, (SEGMENT_SIZE - 2 * HEADER_SIZE) / 10 * 9, 8).unwrap();
        assert_eq!(s, r, "huge shrink in place");
        free(&mut h, s).unwrap();
    }
    h.check().unwrap();
}

mod between_heaps;
mod model;
mod platform;
