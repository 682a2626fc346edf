//! Platform shapes of the allocator: segments far above the host's mappings (many windows of
//! the segment map), and a memory source that can decommit (the delayed purge).
use super::*;
use crate::allocator::heap::LARGE_PAGES_AFTER_BYTES;
use crate::allocator::segment::{FIRST_PAGE, PAGES_PER_SEGMENT};

/// A source that maps each reservation at a chosen address far from the host's own mappings:
/// from 16 TiB up, each one [`WINDOW_SHIFT`](crate::allocator::segment_map::WINDOW_SHIFT) apart, so every
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
        let step = 1usize << crate::allocator::segment_map::WINDOW_SHIFT;
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
    use crate::allocator::segment_map::{STATIC_LEAVES, WINDOW_SHIFT};
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

/// A source that can decommit: `decommit` counts its calls and scribbles over the range (the
/// contract allows stale bytes), so a purge of anything still in use shows up as a broken tag.
/// It logs reservations, large-page advice and decommits in the order they come.
struct ScribbleSource {
    decommits: AtomicUsize,
    log: std::sync::Mutex<Vec<SourceEvent>>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum SourceEvent {
    Reserve(usize),
    Advise(usize, bool),
    Decommit(usize),
}

impl ScribbleSource {
    fn leaked() -> &'static ScribbleSource {
        Box::leak(Box::new(ScribbleSource {
            decommits: AtomicUsize::new(0),
            log: std::sync::Mutex::new(Vec::new()),
        }))
    }

    fn events(&self) -> Vec<SourceEvent> {
        self.log.lock().unwrap().clone()
    }
}

// SAFETY: as `TestSource`, without a limit.
unsafe impl MemorySource for ScribbleSource {
    fn reserve(&self, count: usize) -> *mut u8 {
        // SAFETY: non-zero size, valid alignment.
        let p = unsafe {
            System.alloc(Layout::from_size_align(count * SEGMENT_SIZE, SEGMENT_SIZE).unwrap())
        };
        self.log
            .lock()
            .unwrap()
            .push(SourceEvent::Reserve(p as usize));
        p
    }

    unsafe fn release(&self, base: *mut u8, count: usize) {
        // SAFETY: same layout as in `reserve` (caller passes the same count).
        unsafe {
            System.dealloc(
                base,
                Layout::from_size_align(count * SEGMENT_SIZE, SEGMENT_SIZE).unwrap(),
            )
        }
    }

    fn can_decommit(&self) -> bool {
        true
    }

    unsafe fn advise_large_pages(&self, segment: *mut u8, large: bool) {
        assert!((segment as usize).is_multiple_of(SEGMENT_SIZE));
        let mut log = self.log.lock().unwrap();
        if large {
            // Only a segment just reserved, before any decommit or other advice.
            assert_eq!(log.last(), Some(&SourceEvent::Reserve(segment as usize)));
        }
        log.push(SourceEvent::Advise(segment as usize, large));
    }

    unsafe fn decommit(&self, addr: *mut u8, len: usize) {
        assert!((addr as usize).is_multiple_of(4096) && len.is_multiple_of(4096) && len > 0);
        self.decommits.fetch_add(1, Ordering::SeqCst);
        self.log
            .lock()
            .unwrap()
            .push(SourceEvent::Decommit(addr as usize & !(SEGMENT_SIZE - 1)));
        // SAFETY: the range is reserved and holds nothing live (caller).
        unsafe { core::ptr::write_bytes(addr, 0xdb, len) };
    }
}

#[test]
fn delayed_purge_decommits_only_free_pages() {
    let source = ScribbleSource::leaked();
    let mut h = Box::new(Heap::new(Box::leak(Box::new(Pool::new(source)))));
    let size = PAGE_SIZE * 3 / 8; // two blocks a page: 24 KiB, or 768 bytes in the small geometry
    let mut kept: Vec<(*mut u8, u8)> = Vec::new();
    for round in 0..12u8 {
        let count = 384usize >> (round % 3);
        let blocks: Vec<*mut u8> = (0..count).map(|_| h.alloc(size, 8)).collect();
        for (i, &p) in blocks.iter().enumerate() {
            assert!(!p.is_null());
            fill(p, size, round.wrapping_mul(31).wrapping_add(i as u8));
        }
        for (i, &p) in blocks.iter().enumerate() {
            let tag = round.wrapping_mul(31).wrapping_add(i as u8);
            if (i / 8) % 4 == 0 {
                kept.push((p, tag));
            } else {
                // SAFETY: allocated above, freed once.
                unsafe { free(&mut h, p) }.unwrap();
            }
        }
        for &(p, tag) in &kept {
            assert!(
                holds(p, size, tag),
                "round {round}: a live block was decommitted"
            );
        }
        h.check().unwrap();
    }
    assert!(source.decommits.load(Ordering::SeqCst) > 0, "no purge ran");
    for (p, tag) in kept {
        assert!(holds(p, size, tag));
        // SAFETY: allocated above, freed once.
        unsafe { free(&mut h, p) }.unwrap();
    }
    h.check().unwrap();
}

/// The large-page policy: a heap asks for large pages for its new segments only once it holds
/// `LARGE_PAGES_AFTER_BYTES` of pages it has touched throughout (small blocks, fully carved),
/// never for a heap of large blocks it touches sparsely; and a purge withdraws the advice from a segment
/// before its first decommit there.
#[test]
fn large_pages_only_for_heaps_dense_in_small_blocks_and_withdrawn_before_a_purge() {
    // Sparse: 8 KiB blocks, first byte written, over several segments: no advice at all.
    let sparse = ScribbleSource::leaked();
    let mut h = Box::new(Heap::new(Box::leak(Box::new(Pool::new(sparse)))));
    let big = 8 << 10;
    let blocks: Vec<*mut u8> = (0..6 * SEGMENT_SIZE / big)
        .map(|_| h.alloc(big, 8))
        .collect();
    for &p in &blocks {
        assert!(!p.is_null());
        fill(p, 1, 1);
    }
    h.check().unwrap();
    let reserved = sparse.events().len();
    assert!(
        reserved >= 6,
        "{reserved} reservations for 12 MiB of 8 KiB blocks"
    );
    assert!(
        sparse
            .events()
            .iter()
            .all(|e| matches!(e, SourceEvent::Reserve(_))),
        "a heap of large blocks asked for large pages: {:?}",
        sparse.events()
    );
    for p in blocks {
        // SAFETY: allocated above, freed once.
        unsafe { free(&mut h, p) }.unwrap();
    }

    // Dense: 256-byte blocks over the threshold and four segments more, each written whole.
    let source = ScribbleSource::leaked();
    let mut h = Box::new(Heap::new(Box::leak(Box::new(Pool::new(source)))));
    let size = 256;
    // Segments the heap fills before it holds the threshold's worth of dense pages.
    let usable = (PAGES_PER_SEGMENT - FIRST_PAGE) * PAGE_SIZE;
    let before = LARGE_PAGES_AFTER_BYTES.div_ceil(usable);
    let count = (before + 4) * SEGMENT_SIZE / size;
    let blocks: Vec<*mut u8> = (0..count).map(|_| h.alloc(size, 8)).collect();
    for (i, &p) in blocks.iter().enumerate() {
        assert!(!p.is_null());
        fill(p, size, i as u8);
    }
    h.check().unwrap();
    let events = source.events();
    let reserves: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            SourceEvent::Reserve(a) => Some(*a),
            _ => None,
        })
        .collect();
    let advised: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            SourceEvent::Advise(a, true) => Some(*a),
            _ => None,
        })
        .collect();
    assert!(reserves.len() >= before + 4, "{reserves:?}");
    // The segments taken before the heap holds the threshold's worth of dense pages keep small
    // pages; every one after a full threshold's worth is advised.
    for (i, seg) in reserves.iter().enumerate() {
        assert_eq!(
            advised.contains(seg),
            i >= before,
            "segment {i} of {}: {events:?}",
            reserves.len()
        );
    }

    // Free three pages' worth of blocks in every four, keep the rest: retired pages in every
    // segment, purge ticks, decommits in advised segments.
    let per_page = PAGE_SIZE / size;
    let mut kept = Vec::new();
    for (i, p) in blocks.into_iter().enumerate() {
        if (i / per_page).is_multiple_of(4) {
            kept.push((p, i as u8));
        } else {
            // SAFETY: allocated above, freed once.
            unsafe { free(&mut h, p) }.unwrap();
        }
    }
    // More churn of a second class retires more spans, so the purge ticks run twice over the
    // first retirements (pages go stale, then are decommitted).
    for _ in 0..8 {
        let churn: Vec<*mut u8> = (0..SEGMENT_SIZE / 512).map(|_| h.alloc(512, 8)).collect();
        for p in churn {
            assert!(!p.is_null());
            // SAFETY: allocated just above, freed once.
            unsafe { free(&mut h, p) }.unwrap();
        }
    }
    h.collect();
    h.check().unwrap();
    for &(p, tag) in &kept {
        assert!(holds(p, size, tag), "a live block was decommitted");
    }
    let events = source.events();
    let mut withdrawn = std::collections::HashSet::new();
    let mut purged_advised = 0;
    for e in &events {
        match *e {
            SourceEvent::Advise(a, false) => {
                assert!(
                    advised.contains(&a),
                    "advice withdrawn from {a:#x}, never given"
                );
                withdrawn.insert(a);
            }
            SourceEvent::Decommit(a) if advised.contains(&a) => {
                assert!(
                    withdrawn.contains(&a),
                    "{a:#x} decommitted under large-page advice"
                );
                purged_advised += 1;
            }
            _ => {}
        }
    }
    assert!(
        purged_advised > 0,
        "no advised segment was purged: {events:?}"
    );
    for (p, _) in kept {
        // SAFETY: allocated above, freed once.
        unsafe { free(&mut h, p) }.unwrap();
    }
    h.check().unwrap();
}
