//! A thread that fills segments with small blocks gets its later segments on transparent huge
//! pages (`MADV_HUGEPAGE`, visible as the `hg` flag of their mapping in `/proc/self/smaps`),
//! unless `kiln_std::set_large_pages(false)` turned them off; a thread of a few blocks does not.
//! (Its own test binary: no other test allocates meanwhile.)

use std::thread;

#[path = "support/huge_pages.rs"]
mod huge_pages;

use huge_pages::{advice_is_visible, advised_huge};

/// In a new thread (a new heap): 16 MiB of 64-byte blocks, each written; whether the mapping
/// holding the last one is advised huge, then everything freed.
fn advised_after_a_dense_heap() -> bool {
    thread::spawn(|| {
        let blocks: Vec<usize> = (0..262_144)
            .map(|i| {
                let p = kiln_std::alloc(64, 8);
                assert!(!p.is_null());
                // SAFETY: a fresh 64-byte block.
                unsafe { p.write_bytes(i as u8, 64) };
                p as usize
            })
            .collect();
        let advised = advised_huge(*blocks.last().unwrap()).expect("the block's mapping");
        for p in blocks {
            // SAFETY: live, freed once.
            unsafe { kiln_std::free(p as *mut u8) }.unwrap();
        }
        advised
    })
    .join()
    .unwrap()
}

#[test]
fn a_heap_dense_in_small_blocks_gets_huge_pages_unless_they_are_off_and_a_small_one_does_not() {
    if !advice_is_visible() {
        eprintln!("huge-page advice does not show in /proc/self/smaps here: nothing to check");
        return;
    }
    thread::spawn(|| {
        let small: Vec<usize> = (0..100).map(|_| kiln_std::alloc(64, 8) as usize).collect();
        let advised = advised_huge(small[99]).expect("the block's mapping");
        assert!(!advised, "a small heap advised");
        for p in small {
            // SAFETY: live, freed once.
            unsafe { kiln_std::free(p as *mut u8) }.unwrap();
        }
    })
    .join()
    .unwrap();
    assert!(advised_after_a_dense_heap(), "a dense heap not advised");
    // Off: the dense heap's newest segment (fresh from mmap: the pool caches at most four)
    // keeps small pages.
    kiln_std::set_large_pages(false);
    let advised = advised_after_a_dense_heap();
    kiln_std::set_large_pages(true);
    assert!(!advised, "advised with large pages off");
}
