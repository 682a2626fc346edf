//! Unit tests and the model-based property test of the allocator core.
//!
//! Every test gets its own pool over a counting test source (memory from the host's `System`
//! allocator, 2 MiB aligned), optionally limited to a number of segments to provoke OOM.

use std::alloc::{GlobalAlloc, Layout, System};
use std::boxed::Box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::vec::Vec;

use proptest::prelude::*;

use super::segment::{Pool, HEADER_SIZE, SEGMENT_SHIFT, SEGMENT_SIZE};
use super::size_class::{class_size, CLASS_COUNT, MAX_CLASS_SIZE, MAX_SMALL_SIZE};
use super::{free, realloc, usable_size, FreeError, Heap};
use crate::platform::MemorySource;

struct TestSource {
    limit: usize,
    reserved: AtomicUsize,
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

fn heap(limit: usize) -> Box<Heap> {
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

#[test]
fn memory_goes_back_to_the_platform_after_a_burst() {
    let p = pool(1000);
    let mut h = Box::new(Heap::new(p));
    let mut live = Vec::new();
    // About 50 segments' worth of blocks of 16 to 1015 bytes.
    for i in 0..50 * SEGMENT_SIZE / 520 {
        live.push(h.alloc(16 + (i * 7) % 1000, 8));
    }
    let peak = p.segments_in_use();
    assert!(peak >= 40, "burst should use many segments, used {peak}");
    for q in live {
        // SAFETY: allocated above, freed once.
        unsafe { free(&mut h, q) }.unwrap();
    }
    h.check().unwrap();
    // The cache, plus segments holding the one empty page kept per class.
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

#[test]
fn remote_frees_abandonment_and_adoption() {
    let p = pool(100);
    let mut owner = Box::new(Heap::new(p));
    let mut other = Box::new(Heap::new(p));
    let blocks: Vec<*mut u8> = (0..5000).map(|i| owner.alloc(48 + i % 3 * 16, 8)).collect();
    for (i, &b) in blocks.iter().enumerate() {
        fill(b, 48, i as u8);
    }
    // `other` does not own the pages: these go to thread_free.
    for &b in blocks.iter().step_by(2) {
        // SAFETY: live, freed once.
        unsafe { free(&mut other, b) }.unwrap();
    }
    owner.check().unwrap();
    owner.abandon();
    assert_eq!(owner.segment_count(), 0);
    assert!(p.abandoned() > 0);
    for (i, &b) in blocks.iter().enumerate().skip(1).step_by(2) {
        assert!(holds(b, 48, i as u8));
        // SAFETY: live, freed once; the segment is abandoned, so this is a remote free too.
        unsafe { free(&mut other, b) }.unwrap();
    }
    other.collect();
    other.check().unwrap();
    assert_eq!(p.abandoned(), 0);
    p.trim();
    assert_eq!(
        p.segments_in_use(),
        0,
        "adopted empty segments were given back"
    );
}

// ---------------------------------------------------------------------------------------------
// Model-based property test: random alloc/free/realloc/aligned alloc against a shadow model,
// with `check()` after every step and every live block's contents verified.

#[derive(Clone, Debug)]
enum Op {
    Alloc { size: usize, align_shift: u8 },
    Free { pick: usize },
    FreeRemote { pick: usize },
    Realloc { pick: usize, size: usize },
    Collect,
}

fn size_strategy() -> impl Strategy<Value = usize> {
    prop_oneof![
        8 => 0usize..=256,
        4 => 257usize..=8192,
        1 => MAX_SMALL_SIZE + 1..=MAX_CLASS_SIZE,
        1 => MAX_CLASS_SIZE + 1..4 * MAX_CLASS_SIZE,
    ]
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (size_strategy(), prop_oneof![4 => 0u8..=4, 1 => 5u8..=(SEGMENT_SHIFT - 1) as u8]).prop_map(|(size, align_shift)| Op::Alloc { size, align_shift }),
        4 => any::<usize>().prop_map(|pick| Op::Free { pick }),
        2 => any::<usize>().prop_map(|pick| Op::FreeRemote { pick }),
        2 => (any::<usize>(), size_strategy()).prop_map(|(pick, size)| Op::Realloc { pick, size }),
        1 => Just(Op::Collect),
    ]
}

struct Live {
    ptr: *mut u8,
    size: usize,
    align: usize,
    tag: u8,
}

fn verify(live: &[Live]) {
    for (i, l) in live.iter().enumerate() {
        assert!(
            holds(l.ptr, l.size, l.tag),
            "block {i} ({:p}, {} bytes) corrupted",
            l.ptr,
            l.size
        );
        assert_eq!(l.ptr as usize % l.align, 0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn allocator_matches_the_shadow_model(ops in proptest::collection::vec(op_strategy(), 1..300)) {
        let p = pool(256);
        let mut h = Box::new(Heap::new(p));
        let mut remote = Box::new(Heap::new(p));
        let mut live: Vec<Live> = Vec::new();
        let mut tag = 0u8;
        for op in ops {
            tag = tag.wrapping_add(1);
            match op {
                Op::Alloc { size, align_shift } => {
                    let align = 1usize << align_shift;
                    let ptr = h.alloc(size, align);
                    prop_assert!(!ptr.is_null());
                    fill(ptr, size, tag);
                    live.push(Live { ptr, size, align, tag });
                }
                Op::Free { pick } | Op::FreeRemote { pick } if !live.is_empty() => {
                    let l = live.swap_remove(pick % live.len());
                    let via = if matches!(op, Op::Free { .. }) { &mut h } else { &mut remote };
                    // SAFETY: live block, freed once.
                    prop_assert_eq!(unsafe { free(via, l.ptr) }, Ok(()));
                }
                Op::Realloc { pick, size } if !live.is_empty() => {
                    let i = pick % live.len();
                    let l = &mut live[i];
                    // SAFETY: live block allocated with `l.align`.
                    let q = unsafe { realloc(&mut h, l.ptr, size, l.align) };
                    let q = q.unwrap();
                    prop_assert!(!q.is_null());
                    prop_assert!(holds(q, l.size.min(size), l.tag));
                    l.ptr = q;
                    l.size = size;
                    fill(q, size, l.tag);
                }
                Op::Collect => h.collect(),
                _ => {}
            }
            if let Err(e) = h.check() {
                prop_assert!(false, "{}", e);
            }
            verify(&live);
        }
        for l in live.drain(..) {
            // SAFETY: live block, freed once.
            prop_assert_eq!(unsafe { free(&mut h, l.ptr) }, Ok(()));
        }
        h.collect();
        h.check().unwrap();
        p.trim();
        prop_assert_eq!(p.segments_in_use(), 0, "everything freed and collected: no segment left");
    }
}

/// A source that maps each reservation at a chosen address far from the host's own mappings:
/// from 16 TiB up, each one [`WINDOW_SHIFT`](super::segment_map::WINDOW_SHIFT) apart, so every
/// segment lands in its own window of the segment map.
#[cfg(all(unix, target_pointer_width = "64"))]
struct HighSource {
    next: AtomicUsize,
    mapped: AtomicUsize,
}

#[cfg(all(unix, target_pointer_width = "64"))]
// SAFETY: hands out fresh anonymous mappings of the requested size at segment-aligned addresses
// (MAP_FIXED_NOREPLACE never replaces an existing mapping), unmapped on release.
unsafe impl MemorySource for HighSource {
    fn reserve(&self, count: usize) -> *mut u8 {
        let step = 1usize << super::segment_map::WINDOW_SHIFT;
        for _ in 0..16 {
            let hint = self.next.fetch_add(step, Ordering::SeqCst);
            // SAFETY: an anonymous mapping at a free address (NOREPLACE); no memory is touched.
            let p = unsafe {
                libc::mmap(
                    hint as *mut libc::c_void,
                    count * SEGMENT_SIZE,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                continue;
            }
            if p as usize != hint {
                // An old kernel that took the flag as a hint only.
                // SAFETY: just mapped, unused.
                unsafe { libc::munmap(p, count * SEGMENT_SIZE) };
                continue;
            }
            self.mapped.fetch_add(count, Ordering::SeqCst);
            return p.cast();
        }
        core::ptr::null_mut()
    }

    unsafe fn release(&self, base: *mut u8, count: usize) {
        self.mapped.fetch_sub(count, Ordering::SeqCst);
        // SAFETY: `base` and `count` come from one `reserve` (caller).
        unsafe { libc::munmap(base.cast(), count * SEGMENT_SIZE) };
    }

    fn zeroed(&self) -> bool {
        true
    }
}

/// Segments above 1 TiB, each in a window of its own (more windows than the map's static
/// leaves): blocks of every kind allocate, hold their contents and free; the invariant walker
/// passes; an address in a window kiln never used and the same offset in a neighbouring window
/// are refused as foreign; everything goes back to the source.
#[test]
#[cfg(all(unix, target_pointer_width = "64"))]
fn segments_above_one_tib_in_many_windows() {
    use super::segment_map::{STATIC_LEAVES, WINDOW_SHIFT};
    let source: &'static HighSource = Box::leak(Box::new(HighSource {
        next: AtomicUsize::new(0x1000_0000_0000 + (3 << WINDOW_SHIFT)),
        mapped: AtomicUsize::new(0),
    }));
    let pool: &'static Pool = Box::leak(Box::new(Pool::new(source)));
    let mut h = Box::new(Heap::new(pool));
    let sizes = [
        8,
        100,
        3000,
        MAX_SMALL_SIZE,
        MAX_CLASS_SIZE,
        MAX_CLASS_SIZE * 3,
    ];
    let mut live = Vec::new();
    let mut i = 0usize;
    while pool.segments_in_use() < STATIC_LEAVES + 4 {
        let size = sizes[i % sizes.len()];
        let p = h.alloc(size, 16);
        assert!(!p.is_null(), "allocation {i} of {size}");
        assert!(p as usize >= 1 << 40, "{p:p} below 1 TiB");
        fill(p, size, i as u8);
        live.push((p, size, i as u8));
        i += 1;
    }
    h.check().unwrap();
    let windows: std::collections::BTreeSet<usize> = live
        .iter()
        .map(|&(p, _, _)| p as usize >> WINDOW_SHIFT)
        .collect();
    assert!(windows.len() > STATIC_LEAVES, "{} windows", windows.len());
    for &(p, size, tag) in &live {
        assert!(holds(p, size, tag));
        // The same offset one window up is not ours (nothing is mapped there; never read).
        let other = (p as usize + (1 << (WINDOW_SHIFT + 1))) as *mut u8;
        if !live
            .iter()
            .any(|&(q, _, _)| q as usize >> WINDOW_SHIFT == other as usize >> WINDOW_SHIFT)
        {
            // SAFETY: a foreign pointer; kiln must refuse it without reading it.
            assert_eq!(unsafe { free(&mut h, other) }, Err(FreeError::Foreign));
        }
    }
    let high = 0xffff_8000_0010_0000usize as *mut u8;
    // SAFETY: an unmapped address in the higher half: refused without being read.
    assert_eq!(unsafe { free(&mut h, high) }, Err(FreeError::Foreign));
    for (p, _, _) in live {
        // SAFETY: allocated above, freed once.
        unsafe { free(&mut h, p) }.unwrap();
    }
    h.check().unwrap();
    h.collect();
    pool.trim();
    assert_eq!(pool.segments_in_use(), 0);
    // All but (at most) the one segment the map carved leaves from, which it keeps.
    assert!(source.mapped.load(Ordering::SeqCst) <= 1);
}
