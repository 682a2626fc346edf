//! Unit tests and a shadow-model property test of the arena.
use core::alloc::Layout;
use core::cell::Cell;
use core::ptr::NonNull;
use std::vec::Vec as StdVec;

use allocator_api2::alloc::{AllocError, Allocator, Global};
use allocator_api2::vec::Vec;
use proptest::prelude::*;

use super::chunk::PAYLOAD_OFFSET;
use super::{Arena, ArenaError, ArenaOptions};

/// A backing allocator that counts chunks in and out and can be told to refuse.
#[derive(Default)]
struct Tracking {
    live: Cell<usize>,
    taken: Cell<usize>,
    /// Refuse once this many chunks are live.
    limit: Cell<Option<usize>>,
}

// SAFETY: forwards to `Global`, which upholds the contract; only counts around it.
unsafe impl Allocator for &Tracking {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if self.limit.get().is_some_and(|l| self.live.get() >= l) {
            return Err(AllocError);
        }
        let block = Global.allocate(layout)?;
        self.live.set(self.live.get() + 1);
        self.taken.set(self.taken.get() + 1);
        Ok(block)
    }

    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        self.live.set(self.live.get() - 1);
        // SAFETY: `ptr` came from `Global.allocate(layout)` above.
        unsafe { Global.deallocate(ptr, layout) }
    }
}

fn small(first: usize, max: usize) -> ArenaOptions {
    ArenaOptions {
        first_chunk: first,
        max_chunk: max,
    }
}

fn addr<T: ?Sized>(r: &T) -> usize {
    (r as *const T).cast::<u8>() as usize
}

#[test]
fn values_keep_their_contents_and_alignment() {
    #[repr(align(64))]
    #[derive(Debug, PartialEq)]
    struct Line([u8; 64]);
    let arena = Arena::new();
    let a = arena.alloc(7u8);
    let b = arena.alloc(0x1122_3344_5566_7788u64);
    let c = arena.alloc(Line([9; 64]));
    let d = arena.alloc(());
    let e = arena.alloc([1u16, 2, 3]);
    *a += 1;
    assert_eq!(*a, 8);
    assert_eq!(*b, 0x1122_3344_5566_7788);
    assert_eq!(*c, Line([9; 64]));
    assert_eq!(*d, ());
    assert_eq!(*e, [1, 2, 3]);
    assert_eq!(addr(b) % 8, 0);
    assert_eq!(addr(c) % 64, 0);
    assert_eq!(addr(e) % 2, 0);
    assert_eq!(arena.stats().allocations, 5);
}

#[test]
fn strings_and_slices_are_copied() {
    let arena = Arena::new();
    let mut source = std::string::String::from("let x = 1;");
    let s = arena.alloc_str(&source);
    let n = arena.alloc_slice_copy(&[1u32, 2, 3, 4]);
    let empty = arena.alloc_slice_copy::<u64>(&[]);
    source.clear();
    assert_eq!(s, "let x = 1;");
    assert_eq!(n, &[1, 2, 3, 4]);
    assert!(empty.is_empty());
    assert_eq!(addr(n) % 4, 0);
    assert_eq!(arena.try_alloc_str("ok"), Ok("ok"));
    assert_eq!(arena.try_alloc_slice_copy(&[5u8]), Ok(&[5u8][..]));
    assert_eq!(arena.try_alloc(3i32).map(|v| *v), Ok(3));
}

#[test]
fn no_memory_is_taken_until_the_first_allocation() {
    let backing = Tracking::default();
    let arena = Arena::new_in(&backing);
    assert_eq!(backing.taken.get(), 0);
    assert_eq!(arena.stats().chunks, 0);
    arena.alloc(1u8);
    assert_eq!(backing.taken.get(), 1);
}

#[test]
fn with_capacity_takes_one_chunk_big_enough() {
    let arena = Arena::with_capacity(100_000);
    let s = arena.stats();
    assert_eq!(s.chunks, 1);
    assert!(s.chunk_bytes >= 100_000 + PAYLOAD_OFFSET);
    for i in 0..100_000u32 / 4 {
        arena.alloc(i);
    }
    assert_eq!(arena.stats().chunk_allocations, 1, "capacity was honoured");
}

#[test]
fn chunks_double_up_to_the_cap() {
    let backing = Tracking::default();
    let arena = Arena::with_options_in(small(256, 1024), &backing);
    let mut sizes = StdVec::new();
    let mut last = 0;
    for _ in 0..200 {
        arena.alloc([0u8; 48]);
        let held = arena.stats().chunk_bytes;
        if held != last {
            sizes.push(held - last);
            last = held;
        }
    }
    assert_eq!(&sizes[..4], &[256, 512, 1024, 1024]);
    assert!(sizes.iter().all(|&s| s <= 1024));
}

#[test]
fn an_oversized_request_gets_its_own_chunk_and_does_not_raise_the_cap() {
    let arena = Arena::with_options_in(small(256, 1024), Global);
    arena.alloc(0u8);
    let big = arena.alloc_slice_copy(&[7u8; 10_000]);
    assert!(big.iter().all(|&b| b == 7));
    let before = arena.stats();
    for _ in 0..100 {
        arena.alloc([0u8; 100]);
    }
    let s = arena.stats();
    let added = s.chunks - before.chunks;
    assert!(added >= 10, "{s:?}");
    assert!(s.chunk_bytes - before.chunk_bytes <= added * 1024, "{s:?}");
}

#[test]
fn large_alignments_are_honoured() {
    let arena = Arena::with_options_in(small(256, 4096), Global);
    for shift in [0, 3, 4, 5, 7, 12, 16, 20] {
        let layout = Layout::from_size_align(24, 1 << shift).unwrap();
        arena.alloc(1u8); // misalign the bump pointer
        let p = arena.alloc_layout(layout);
        assert_eq!(
            p.as_ptr() as usize % (1 << shift),
            0,
            "align {}",
            1 << shift
        );
    }
}

#[test]
fn rollback_frees_what_came_after_the_mark() {
    let backing = Tracking::default();
    let mut arena = Arena::with_options_in(small(256, 256), &backing);
    let keep = addr(arena.alloc(5u64));
    let mark = arena.mark();
    let in_use = arena.stats().bytes_in_use;
    let first_after = addr(arena.alloc(6u64));
    for _ in 0..50 {
        arena.alloc([0u8; 64]);
    }
    assert!(backing.live.get() > 1);
    arena.rollback(mark).unwrap();
    assert_eq!(backing.live.get(), 1, "chunks after the mark went back");
    let s = arena.stats();
    assert_eq!(s.bytes_in_use, in_use);
    assert_eq!(s.chunks, 1);
    assert!(s.peak_bytes_in_use >= 50 * 64);
    assert_eq!(addr(arena.alloc(6u64)), first_after, "the bytes are reused");
    // SAFETY: `keep` was allocated before the mark and stays valid.
    assert_eq!(unsafe { *(keep as *const u64) }, 5);
}

#[test]
fn nested_marks_roll_back_in_any_order_while_their_chunks_live() {
    let mut arena = Arena::with_options_in(small(256, 256), Global);
    arena.alloc(0u8);
    let outer = arena.mark();
    arena.alloc(1u32);
    let inner = arena.mark();
    arena.alloc(2u32);
    arena.rollback(inner).unwrap();
    arena.rollback(outer).unwrap();
    // `inner` is in the same chunk as `outer`: rolling forward to it is allowed and harmless.
    assert_eq!(arena.rollback(inner), Ok(()));
    assert_eq!(arena.stats().rollbacks, 3);
}

#[test]
fn a_mark_into_a_freed_chunk_is_stale() {
    let mut arena = Arena::with_options_in(small(256, 256), Global);
    arena.alloc(1u8);
    let outer = arena.mark();
    for _ in 0..20 {
        arena.alloc([0u8; 64]);
    }
    let later = arena.mark();
    arena.rollback(outer).unwrap();
    let stats = arena.stats();
    assert_eq!(arena.rollback(later), Err(ArenaError::StaleMark));
    assert_eq!(arena.stats(), stats, "a refused rollback changes nothing");

    let before_reset = arena.mark();
    arena.reset();
    assert_eq!(arena.rollback(before_reset), Err(ArenaError::StaleMark));

    let other = Arena::new();
    other.alloc(1u8);
    assert_eq!(arena.rollback(other.mark()), Err(ArenaError::StaleMark));
}

#[test]
fn a_mark_of_an_empty_arena_rolls_back_like_reset() {
    let backing = Tracking::default();
    let mut arena = Arena::with_options_in(small(256, 1024), &backing);
    let empty = arena.mark();
    for _ in 0..100 {
        arena.alloc([0u8; 64]);
    }
    arena.rollback(empty).unwrap();
    assert_eq!(arena.stats().chunks, 1);
    assert_eq!(arena.stats().bytes_in_use, 0);
}

#[test]
fn reset_keeps_only_the_largest_chunk() {
    let backing = Tracking::default();
    let mut arena = Arena::with_options_in(small(256, 4096), &backing);
    for _ in 0..200 {
        arena.alloc([0u8; 64]);
    }
    let largest = 4096;
    arena.reset();
    let s = arena.stats();
    assert_eq!((s.chunks, s.chunk_bytes, s.bytes_in_use), (1, largest, 0));
    assert_eq!(backing.live.get(), 1);
    assert!(s.peak_bytes_in_use >= 200 * 64);
    let taken = backing.taken.get();
    for _ in 0..(largest - PAYLOAD_OFFSET) / 64 {
        arena.alloc([0u8; 64]);
    }
    assert_eq!(backing.taken.get(), taken, "the kept chunk is reused");
    arena.reset();
    arena.reset();
    assert_eq!(arena.stats().resets, 3);
}

#[test]
fn out_of_memory_is_an_error_and_the_arena_stays_usable() {
    let backing = Tracking::default();
    backing.limit.set(Some(1));
    let arena = Arena::with_options_in(small(256, 256), &backing);
    arena.alloc(1u8);
    let err = arena.try_alloc_slice_copy(&[0u8; 1000]).unwrap_err();
    assert_eq!(
        err,
        ArenaError::OutOfMemory {
            size: 1000,
            align: 1
        }
    );
    assert!(std::format!("{err}").contains("out of memory"));
    assert_eq!(arena.try_alloc(2u8).map(|v| *v), Ok(2));
    let huge = Layout::from_size_align(isize::MAX as usize - 8, 8).unwrap();
    assert!(matches!(
        arena.try_alloc_layout(huge),
        Err(ArenaError::TooLarge { .. } | ArenaError::OutOfMemory { .. })
    ));
    assert!(Arena::try_with_capacity_in(1 << 20, &backing).is_err());
}

#[test]
fn every_chunk_goes_back_when_the_arena_drops() {
    let backing = Tracking::default();
    {
        let arena = Arena::with_options_in(small(256, 1024), &backing);
        for i in 0..1000u64 {
            arena.alloc(i);
        }
        assert!(backing.live.get() > 3);
    }
    assert_eq!(backing.live.get(), 0);
}

#[test]
fn drop_is_never_run_for_arena_values() {
    struct Loud<'a>(&'a Cell<u32>);
    impl Drop for Loud<'_> {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    let drops = Cell::new(0);
    {
        let mut arena = Arena::new();
        arena.alloc(Loud(&drops));
        arena.reset();
        arena.alloc(Loud(&drops));
    }
    assert_eq!(drops.get(), 0);
}

#[test]
fn a_vec_in_the_arena_grows_in_place_while_it_is_last() {
    let arena = Arena::with_options_in(small(1024, 1 << 16), Global);
    let mut v: Vec<u32, &Arena> = Vec::new_in(&arena);
    for i in 0..100 {
        v.push(i);
    }
    assert!(v.iter().copied().eq(0..100));
    let s = arena.stats();
    assert!(s.grows_in_place >= 3, "{s:?}");
    // Another allocation after it: the next grow has to move (and copy).
    let other = arena.alloc(99u8);
    for i in 100..1000 {
        v.push(i);
    }
    assert!(v.iter().copied().eq(0..1000));
    assert_eq!(*other, 99);
}

#[test]
fn freeing_the_last_allocation_gives_its_bytes_back() {
    let arena = Arena::new();
    arena.alloc(1u64);
    let before = arena.stats().bytes_in_use;
    let v: Vec<u64, &Arena> = Vec::with_capacity_in(32, &arena);
    assert!(arena.stats().bytes_in_use >= before + 256);
    drop(v);
    assert_eq!(arena.stats().bytes_in_use, before);
}

#[test]
fn hashbrown_maps_live_in_the_arena() {
    let arena = Arena::new();
    let mut map = hashbrown::HashMap::new_in(&arena);
    for i in 0..500u32 {
        map.insert(i, arena.alloc_str(&std::format!("v{i}")));
    }
    assert_eq!(map.len(), 500);
    assert_eq!(map[&321], "v321");
    assert!(arena.stats().allocations > 500);
}

#[test]
fn stats_count_calls_bytes_and_peak() {
    let mut arena = Arena::new();
    arena.alloc_slice_copy(&[0u8; 100]);
    arena.alloc(0u32);
    let s = arena.stats();
    assert_eq!((s.allocations, s.bytes_allocated), (2, 104));
    assert_eq!(s.bytes_in_use, 104);
    arena.reset();
    arena.alloc(0u8);
    let s = arena.stats();
    assert_eq!((s.bytes_in_use, s.peak_bytes_in_use), (1, 104));
}

/// One step of the model test.
#[derive(Clone, Debug)]
enum Op {
    Alloc {
        size: usize,
        align_shift: u32,
        fill: u8,
    },
    Str(std::string::String),
    VecPush {
        n: usize,
        fill: u8,
    },
    Mark,
    /// Roll back to the mark at this index (mod the number of marks) of the mark stack.
    Rollback(usize),
    Reset,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0usize..300, 0u32..8, any::<u8>())
            .prop_map(|(size, align_shift, fill)| Op::Alloc { size, align_shift, fill }),
        1 => (0usize..2000, 12u32..13, any::<u8>())
            .prop_map(|(size, align_shift, fill)| Op::Alloc { size, align_shift, fill }),
        2 => "[a-z]{0,40}".prop_map(Op::Str),
        2 => (1usize..200, any::<u8>()).prop_map(|(n, fill)| Op::VecPush { n, fill }),
        2 => Just(Op::Mark),
        2 => any::<usize>().prop_map(Op::Rollback),
        1 => Just(Op::Reset),
    ]
}

/// What the model expects at one address.
struct Live {
    ptr: usize,
    bytes: StdVec<u8>,
    align: usize,
    /// Number of marks on the model's stack when it was made.
    depth: usize,
}

fn check(live: &[Live]) -> Result<(), TestCaseError> {
    for l in live {
        prop_assert_eq!(l.ptr % l.align, 0);
        // SAFETY: the model only keeps allocations that the arena has not freed.
        let now = unsafe { core::slice::from_raw_parts(l.ptr as *const u8, l.bytes.len()) };
        prop_assert_eq!(now, &l.bytes[..]);
    }
    let mut ranges: StdVec<(usize, usize)> = live
        .iter()
        .map(|l| (l.ptr, l.ptr + l.bytes.len()))
        .collect();
    ranges.sort();
    for w in ranges.windows(2) {
        prop_assert!(w[0].1 <= w[1].0, "allocations overlap: {:?}", w);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arena_matches_a_shadow_model(ops in proptest::collection::vec(op(), 1..120)) {
        let backing = Tracking::default();
        let mut arena = Arena::with_options_in(small(512, 8192), &backing);
        let mut live: StdVec<Live> = StdVec::new();
        let mut marks = StdVec::new();
        for op in ops {
            match op {
                Op::Alloc { size, align_shift, fill } => {
                    let layout = Layout::from_size_align(size, 1 << align_shift).unwrap();
                    let p = arena.alloc_layout(layout).as_ptr();
                    // SAFETY: fresh allocation of `size` bytes.
                    unsafe { p.write_bytes(fill, size) };
                    live.push(Live { ptr: p as usize, bytes: std::vec![fill; size], align: layout.align(), depth: marks.len() });
                }
                Op::Str(s) => {
                    let a = arena.alloc_str(&s);
                    live.push(Live { ptr: addr(a), bytes: s.into_bytes(), align: 1, depth: marks.len() });
                }
                Op::VecPush { n, fill } => {
                    let mut v: Vec<u16, &Arena<&Tracking>> = Vec::new_in(&arena);
                    for i in 0..n {
                        v.push(u16::from(fill) ^ i as u16);
                    }
                    let bytes: StdVec<u8> = v.iter().flat_map(|x| x.to_ne_bytes()).collect();
                    let (p, _, _) = v.into_raw_parts();
                    live.push(Live { ptr: p as usize, bytes, align: 2, depth: marks.len() });
                }
                Op::Mark => marks.push((arena.mark(), arena.stats().bytes_in_use)),
                Op::Rollback(i) => {
                    if !marks.is_empty() {
                        let i = i % marks.len();
                        let (mark, in_use) = marks[i];
                        prop_assert_eq!(arena.rollback(mark), Ok(()));
                        marks.truncate(i + 1);
                        live.retain(|l| l.depth <= i);
                        prop_assert_eq!(arena.stats().bytes_in_use, in_use);
                    }
                }
                Op::Reset => {
                    arena.reset();
                    live.clear();
                    marks.clear();
                    prop_assert!(arena.stats().chunks <= 1);
                    prop_assert_eq!(arena.stats().bytes_in_use, 0);
                }
            }
            check(&live)?;
            let s = arena.stats();
            prop_assert_eq!(s.chunks, backing.live.get());
            prop_assert!(s.bytes_in_use <= s.chunk_bytes);
            prop_assert!(s.peak_bytes_in_use >= s.bytes_in_use);
        }
        drop(arena);
        prop_assert_eq!(backing.live.get(), 0);
    }
}
