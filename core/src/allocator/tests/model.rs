//! The model-based property test: random alloc/free/realloc/aligned alloc against a shadow
//! model, with `check()` after every step and every live block's contents verified.
use super::*;

#[derive(Clone, Debug)]
enum Op {
    /// `via`: 0 `alloc`, 1 `alloc_uncounted`, 2 `alloc_hot_or` (refilled by `alloc_uncounted`).
    Alloc {
        size: usize,
        align_shift: u8,
        via: u8,
    },
    /// `uncounted`: through `free_or_report_uncounted` instead of `free`.
    Free {
        pick: usize,
        uncounted: bool,
    },
    FreeRemote {
        pick: usize,
    },
    /// An allocation by the other heap: its blocks are then freed by either heap, and the
    /// blocks it frees for the first heap wait on its hot stacks for its own allocations.
    AllocRemote {
        size: usize,
    },
    FlushRemote,
    Realloc {
        pick: usize,
        size: usize,
    },
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
        6 => (size_strategy(), prop_oneof![4 => 0u8..=4, 1 => 5u8..=(SEGMENT_SHIFT - 1) as u8], 0u8..3).prop_map(|(size, align_shift, via)| Op::Alloc { size, align_shift, via }),
        4 => (any::<usize>(), any::<bool>()).prop_map(|(pick, uncounted)| Op::Free { pick, uncounted }),
        2 => any::<usize>().prop_map(|pick| Op::FreeRemote { pick }),
        2 => size_strategy().prop_map(|size| Op::AllocRemote { size }),
        2 => (any::<usize>(), size_strategy()).prop_map(|(pick, size)| Op::Realloc { pick, size }),
        1 => Just(Op::Collect),
        1 => Just(Op::FlushRemote),
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

std::thread_local! {
    /// What the report callback of `free_or_report_uncounted` was last given.
    static REPORTED: core::cell::Cell<Option<FreeError>> = const { core::cell::Cell::new(None) };
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
                Op::Alloc { size, align_shift, via } => {
                    let align = 1usize << align_shift;
                    let ptr = match via {
                        0 => h.alloc(size, align),
                        1 => h.alloc_uncounted(size, align),
                        _ => h.alloc_hot_or(size, align, |h, size, align| h.alloc_uncounted(size, align)),
                    };
                    prop_assert!(!ptr.is_null());
                    fill(ptr, size, tag);
                    live.push(Live { ptr, size, align, tag });
                }
                Op::AllocRemote { size } => {
                    let ptr = remote.alloc(size, 8);
                    prop_assert!(!ptr.is_null());
                    fill(ptr, size, tag);
                    live.push(Live { ptr, size, align: 8, tag });
                }
                Op::Free { pick, uncounted: true } if !live.is_empty() => {
                    let l = live.swap_remove(pick % live.len());
                    REPORTED.with(|r| r.set(None));
                    // SAFETY: live block, freed once.
                    unsafe {
                        crate::allocator::free_or_report_uncounted(&mut h, l.ptr, |_, e| {
                            REPORTED.with(|r| r.set(Some(e)));
                        })
                    };
                    prop_assert_eq!(REPORTED.with(|r| r.get()), None);
                }
                Op::Free { pick, .. } | Op::FreeRemote { pick } if !live.is_empty() => {
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
                Op::FlushRemote => remote.flush_remote(),
                _ => {}
            }
            if let Err(e) = h.check() {
                prop_assert!(false, "{}", e);
            }
            if let Err(e) = remote.check() {
                prop_assert!(false, "remote heap: {}", e);
            }
            verify(&live);
        }
        for l in live.drain(..) {
            // SAFETY: live block, freed once.
            prop_assert_eq!(unsafe { free(&mut h, l.ptr) }, Ok(()));
        }
        // Blocks waiting on either heap's hot stacks or in its batches for the other heap's
        // pages reach them when it collects (or is dropped); then their owner collects them.
        remote.collect();
        remote.check().unwrap();
        h.collect();
        h.check().unwrap();
        remote.collect();
        remote.check().unwrap();
        p.trim();
        prop_assert_eq!(p.segments_in_use(), 0, "everything freed and collected: no segment left");
    }
}
