//! Statistics with per-heap slots (`--features stats`): counts made by several threads, each on
//! its own slot, add up in `snapshot` while the threads run and after they exit (their slots
//! merged into the process-wide totals); remote frees are counted; the peak covers what the
//! threads held at once.
#![cfg(feature = "stats")]

use std::sync::{Arc, Barrier};

use kiln::allocator::size_class::class_of;
use kiln::allocator::stats::snapshot;

const THREADS: usize = 4;
const BLOCKS: usize = 10_000;
const SIZE: usize = 64;

struct Block(*mut u8);
// SAFETY: a block is plain memory; whoever holds the `Block` owns it.
unsafe impl Send for Block {}

#[test]
fn per_thread_counts_add_up_and_the_peak_covers_what_was_held_at_once() {
    let class = class_of(SIZE);
    let before = snapshot();
    let held = Arc::new(Barrier::new(THREADS + 1));
    let release = Arc::new(Barrier::new(THREADS + 1));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (held, release) = (held.clone(), release.clone());
            std::thread::spawn(move || {
                let blocks: Vec<Block> = (0..BLOCKS)
                    .map(|_| Block(kiln_std::alloc(SIZE, 8)))
                    .collect();
                assert!(blocks.iter().all(|b| !b.0.is_null()));
                held.wait();
                release.wait();
                for b in blocks {
                    // SAFETY: allocated above, freed once.
                    unsafe { kiln_std::free(b.0) }.unwrap();
                }
            })
        })
        .collect();
    held.wait();
    // All threads hold their blocks now and are still running: their slots are live.
    let during = snapshot();
    let allocated = during.class_alloc[class] - before.class_alloc[class];
    assert!(
        allocated >= (THREADS * BLOCKS) as u64,
        "{allocated} allocations counted while the threads run"
    );
    let bytes_held = (THREADS * BLOCKS * SIZE) as u64;
    // Each thread's slot may not have flushed its last 64 KiB into the peak yet.
    assert!(
        during.peak_bytes >= bytes_held - (THREADS as u64) * 64 * 1024,
        "peak {} below the {bytes_held} bytes held at once",
        during.peak_bytes
    );
    assert!(during.live_bytes >= bytes_held);
    release.wait();
    for t in threads {
        t.join().unwrap();
    }
    let after = snapshot();
    let freed = after.class_free[class] - before.class_free[class];
    assert!(
        freed >= (THREADS * BLOCKS) as u64,
        "{freed} frees counted after the threads exited (their slots merged)"
    );
    assert!(after.class_alloc[class] - before.class_alloc[class] >= (THREADS * BLOCKS) as u64);
}

#[test]
fn frees_by_another_thread_count_as_remote() {
    let before = snapshot();
    let blocks: Vec<Block> = (0..1000).map(|_| Block(kiln_std::alloc(48, 8))).collect();
    std::thread::spawn(move || {
        for b in blocks {
            // SAFETY: allocated by the parent thread, handed over, freed once.
            unsafe { kiln_std::free(b.0) }.unwrap();
        }
    })
    .join()
    .unwrap();
    let after = snapshot();
    assert!(after.remote_free - before.remote_free >= 1000);
    assert!(after.fast_alloc + after.slow_alloc - before.fast_alloc - before.slow_alloc >= 1000);
}
