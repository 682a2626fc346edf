//! Frees between heaps: remote frees, their batches and the stacks that reuse them, abandoned
//! and adopted segments, and what a heap trusts after segments leave it.
use super::*;

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

/// A remote free of a block above `BATCH_MAX_SIZE` (by a heap with no room to keep it: it has
/// not allocated) reaches its page's `thread_free` at once instead of waiting in a batch, so
/// at most `REMOTE_MAX` small blocks ever wait, however large the blocks freed.
#[test]
fn large_remote_frees_do_not_wait_in_batches() {
    use crate::allocator::heap::BATCH_MAX_SIZE;
    if crate::allocator::geometry::HOT_MAX_SIZE == 0 {
        return; // no batches in this geometry
    }
    let p = pool(100);
    let mut owner = Box::new(Heap::new(p));
    let mut other = Box::new(Heap::new(p));
    let size = (BATCH_MAX_SIZE + 1).min(MAX_CLASS_SIZE);
    let blocks: Vec<*mut u8> = (0..16).map(|_| owner.alloc(size, 8)).collect();
    for &b in &blocks {
        // SAFETY: live, freed once, by a heap that does not own it.
        unsafe { free(&mut other, b) }.unwrap();
    }
    assert_eq!(other.remote_batches().1, 0, "no large block waits");
    other.check().unwrap();
    // The owner gets every block back without `other` publishing anything.
    owner.collect();
    owner.check().unwrap();
    p.trim();
    assert_eq!(p.segments_in_use(), 0);
    // A small one still waits.
    let small = owner.alloc(48, 8);
    // SAFETY: live, freed once, by a heap that does not own it.
    unsafe { free(&mut other, small) }.unwrap();
    assert_eq!(other.remote_batches().1, 1);
}

/// Frees into another heap's pages wait in per-page batches of the freeing heap: the owner does
/// not see them (the pages stay in use) until the batches are published, by the freeing heap's
/// `collect`, by reaching `REMOTE_MAX` blocks, or by dropping the freeing heap. A second free
/// of a waiting block is reported, and `check` walks the batches.
#[test]
fn remote_frees_wait_in_batches_until_published() {
    if crate::allocator::geometry::HOT_MAX_SIZE == 0 {
        return; // no batches in this geometry: every remote free goes straight to its page
    }
    let p = pool(100);
    let mut owner = Box::new(Heap::new(p));
    let mut other = Box::new(Heap::new(p));
    let blocks: Vec<*mut u8> = (0..8).map(|_| owner.alloc(48, 8)).collect();
    for &b in &blocks {
        // SAFETY: live, freed once, by a heap that does not own it.
        unsafe { free(&mut other, b) }.unwrap();
        other.check().unwrap();
    }
    // SAFETY: a second free of a block waiting in `other`'s batch: reported, nothing changed.
    let again = unsafe { free(&mut other, blocks[3]) };
    assert_eq!(again, Err(FreeError::DoubleFree));
    other.check().unwrap();
    owner.collect();
    owner.check().unwrap();
    p.trim();
    let held = p.segments_in_use();
    assert!(held > 0, "blocks waiting in a batch keep their page in use");
    // Once published (here by the freeing heap's drop), the owner gets every block back.
    drop(other);
    owner.collect();
    owner.check().unwrap();
    p.trim();
    assert_eq!(p.segments_in_use(), 0);

    // Many remote frees over many pages: never more than `REMOTE_MAX` blocks wait, and the
    // owner sees the published ones without the freeing heap's help.
    let mut other = Box::new(Heap::new(p));
    let blocks: Vec<*mut u8> = (0..4000)
        .map(|i| owner.alloc(16 + i % 24 * 40, 8))
        .collect();
    for (i, &b) in blocks.iter().enumerate() {
        // SAFETY: live, freed once, by a heap that does not own it.
        unsafe { free(&mut other, b) }.unwrap();
        if i % 97 == 0 {
            other.check().unwrap();
            owner.check().unwrap();
        }
    }
    other.check().unwrap();
    owner.collect();
    owner.check().unwrap();
    let waiting = p.segments_in_use();
    other.collect();
    owner.collect();
    p.trim();
    assert!(waiting >= p.segments_in_use());
    assert_eq!(p.segments_in_use(), 0);
}

/// A heap that allocates keeps the blocks it frees for another heap on its own hot stacks and
/// hands them out again (the newest first), still counted as allocated in their pages, which
/// therefore stay in use until the heap flushes them; `check` accepts them, a second free of
/// one is reported, and a flush sends them home. A heap that has not allocated yet sends them
/// home through its batches instead.
#[test]
fn a_heap_that_allocates_reuses_the_blocks_it_frees_for_other_heaps() {
    if crate::allocator::geometry::HOT_MAX_SIZE == 0 {
        return; // no hot stacks in this geometry
    }
    let p = pool(100);
    let mut owner = Box::new(Heap::new(p));
    let mut other = Box::new(Heap::new(p));
    let own = other.alloc(48, 8);
    let blocks: Vec<*mut u8> = (0..8).map(|_| owner.alloc(48, 8)).collect();
    for &b in &blocks {
        // SAFETY: live, freed once, by a heap that does not own it.
        unsafe { free(&mut other, b) }.unwrap();
        other.check().unwrap();
    }
    assert_eq!(
        other.hot_stack(class_of(48)).len(),
        8,
        "waiting on the freeing heap's stack"
    );
    // SAFETY: a second free of a block waiting on `other`'s stack: reported, nothing changed.
    let twice = unsafe { free(&mut other, blocks[5]) };
    assert_eq!(twice, Err(FreeError::DoubleFree));
    other.check().unwrap();
    // The next allocations of the class take them back, the newest first.
    let again = other.alloc(48, 8);
    assert_eq!(again, blocks[7]);
    fill(again, 48, 0x3C);
    other.check().unwrap();
    owner.collect();
    owner.check().unwrap();
    // Nothing came home: the pages are in use (7 blocks waiting, one reallocated).
    // SAFETY: live, freed once: by its owner's thread now.
    unsafe { free(&mut owner, again) }.unwrap();
    owner.collect();
    p.trim();
    assert!(p.segments_in_use() > 0);
    // A flush sends the waiting ones to their page's `thread_free`; the owner collects them.
    other.collect();
    other.check().unwrap();
    // SAFETY: live, freed once.
    unsafe { free(&mut other, own) }.unwrap();
    other.collect();
    owner.collect();
    owner.check().unwrap();
    p.trim();
    assert_eq!(p.segments_in_use(), 0);

    // A heap that has not allocated: its frees of another heap's blocks go home (batches).
    let mut fresh = Box::new(Heap::new(p));
    let b = owner.alloc(48, 8);
    // SAFETY: live, freed once, by a heap that does not own it.
    unsafe { free(&mut fresh, b) }.unwrap();
    assert!(fresh.hot_stack(class_of(48)).is_empty());
    drop(fresh);
    owner.collect();
    p.trim();
    assert_eq!(p.segments_in_use(), 0);
}

/// A heap trusts a segment its own frees verified only while it owns it: once the segment has
/// gone back to the pool and another heap allocates from it, a free of that heap's block through
/// the first heap is a remote free again (not a push onto the first heap's lists).
#[test]
fn a_released_segment_is_no_longer_trusted() {
    let p = pool(100);
    let mut first = Box::new(Heap::new(p));
    let mut second = Box::new(Heap::new(p));
    let size = 1024;
    let count = 3 * SEGMENT_SIZE / size;
    let blocks: Vec<*mut u8> = (0..count).map(|_| first.alloc(size, 8)).collect();
    let mut known: Vec<usize> = blocks.iter().map(|&b| segment_of(b) as usize).collect();
    known.dedup();
    for &b in &blocks {
        // SAFETY: live, freed once.
        unsafe { free(&mut first, b) }.unwrap();
        first.check().unwrap();
    }
    first.collect();
    first.check().unwrap();
    let taken: Vec<*mut u8> = (0..count).map(|_| second.alloc(size, 8)).collect();
    let reused: Vec<*mut u8> = taken
        .iter()
        .copied()
        .filter(|&b| known.contains(&(segment_of(b) as usize)) && !first.owns(segment_of(b)))
        .collect();
    assert!(
        !reused.is_empty(),
        "no segment went from one heap to the other"
    );
    for &b in &reused {
        fill(b, size, 0x5A);
        // SAFETY: live, freed once (by a thread that does not own it).
        unsafe { free(&mut first, b) }.unwrap();
    }
    first.check().unwrap();
    second.collect();
    second.check().unwrap();
    for &b in taken.iter().filter(|b| !reused.contains(b)) {
        // SAFETY: live, freed once.
        unsafe { free(&mut second, b) }.unwrap();
    }
    second.check().unwrap();
}

/// A heap trusts another heap's segment, which a free into it verified, only while no segment
/// has gone back to the platform since: a dangling pointer into a segment that was unmapped is
/// refused by the segment map, not taken for a block of a segment remembered before.
#[test]
fn a_segment_given_back_to_the_platform_is_not_trusted_by_other_heaps() {
    let p = pool(100);
    let mut owner = Box::new(Heap::new(p));
    let mut other = Box::new(Heap::new(p));
    let kept = owner.alloc(64, 8);
    let handed = owner.alloc(64, 8);
    let seg = segment_of(kept);
    // SAFETY: live, freed once, by a heap that does not own it.
    unsafe { free(&mut other, handed) }.unwrap();
    // (`other` now remembers the segment, unless a segment of another test went back to the
    // platform meanwhile: tests run in parallel and the count is global.)
    other.check().unwrap();
    other.collect();
    // SAFETY: live, freed once.
    unsafe { free(&mut owner, kept) }.unwrap();
    owner.collect();
    p.trim();
    assert!(
        !crate::allocator::segment::Segment::is_ours(seg),
        "the segment went back to the platform"
    );
    assert!(!other.knows_foreign(seg));
    other.check().unwrap();
    // SAFETY: a dangling pointer into unmapped memory: refused by the map, never read (the
    // misuse is the test's point).
    assert_eq!(unsafe { free(&mut other, kept) }, Err(FreeError::Foreign));
    other.check().unwrap();
}
