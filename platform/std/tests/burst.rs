//! Memory goes back to the platform after a burst, including blocks freed by other threads and
//! segments of threads that exited. (Its own test binary, so no other test allocates meanwhile.)

use std::thread;

struct Block(*mut u8);
// SAFETY: handed over whole to the freeing thread.
unsafe impl Send for Block {}

#[test]
fn segments_drop_to_a_small_bound_after_a_burst() {
    let before = kiln_std::segments_in_use();
    // A thread allocates ~150 MB in small and medium blocks, frees half itself, hands the rest
    // to another thread, and exits.
    let handed = thread::spawn(|| {
        let mut blocks: Vec<Block> = (0..400_000)
            .map(|i| Block(kiln_std::alloc(16 + (i * 13) % 700, 8)))
            .collect();
        blocks.extend((0..1000).map(|i| Block(kiln_std::alloc(20_000 + i * 50, 8))));
        assert!(blocks.iter().all(|b| !b.0.is_null()));
        let rest = blocks.split_off(blocks.len() / 2);
        for b in blocks {
            // SAFETY: live, freed once.
            unsafe { kiln_std::free(b.0) }.unwrap();
        }
        rest
    })
    .join()
    .unwrap();
    let peak = kiln_std::segments_in_use();
    assert!(peak > before + 40, "the burst used {peak} segments");
    thread::spawn(move || {
        for b in handed {
            // SAFETY: live, freed once (remote: the allocating thread has exited).
            unsafe { kiln_std::free(b.0) }.unwrap();
        }
    })
    .join()
    .unwrap();
    // The freeing thread's exit hook and this collect adopt the abandoned segments.
    kiln_std::collect();
    let after = kiln_std::segments_in_use();
    assert!(
        after <= before + 4,
        "after the burst {after} segments remain (before {before}, peak {peak})"
    );
}
