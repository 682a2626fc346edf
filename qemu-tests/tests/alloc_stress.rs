//! Allocator stress kernel: kiln is the `#[global_allocator]`, over the machine's RAM.
//!
//! Checks:
//! - churn (then kiln's heap invariant walker): 100k random alloc / free / realloc operations (sizes 1 B .. 64 KiB, now and then a
//!   3 MiB huge block; alignments up to 4 KiB) on up to 2048 live blocks, each filled with a
//!   pattern unique to it and verified before every free and after every realloc;
//! - memory goes back: after the burst is freed and the heap collected, every segment is free
//!   in the segment bitmap again (and the burst did take segments from it);
//! - out of memory gives null: a block larger than RAM, then 1 MiB blocks until RAM runs out
//!   (null, no panic), after which freeing them makes allocation work again;
//! - bad frees are refused: a pointer kiln never handed out comes back as an error.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::alloc::{alloc, dealloc, realloc, Layout};
use alloc::vec;
use alloc::vec::Vec;

use kiln_bare::heap;
use kiln_bare::{boot::Verdict, memory, println};
use kiln_qemu_tests::{check, fill, holds, Rng, ARCH};

kiln_bare::entry!(main);

const SLOTS: usize = 2048;
const OPS: usize = 100_000;

#[derive(Clone, Copy)]
struct Block {
    ptr: *mut u8,
    layout: Layout,
    tag: u64,
}

fn random_layout(rng: &mut Rng) -> Layout {
    let size = match rng.below(1000) {
        0 => 3 << 20,                       // huge: its own segments
        1..=40 => 4096 + rng.below(60_000), // medium
        41..=300 => 256 + rng.below(3840),  // small-medium
        _ => 1 + rng.below(255),            // small
    };
    let align = match rng.below(20) {
        0 => 4096,
        1 | 2 => 64,
        _ => 8,
    };
    Layout::from_size_align(size, align).unwrap()
}

/// Frees `b` after checking its contents.
fn release(b: Block) -> Result<(), &'static str> {
    // SAFETY: `b` is live and `layout.size()` bytes long.
    let intact = unsafe { holds(b.ptr, b.layout.size(), b.tag) };
    check(intact, "block contents changed while live")?;
    // SAFETY: allocated with this layout, not used again.
    unsafe { dealloc(b.ptr, b.layout) };
    Ok(())
}

fn churn(rng: &mut Rng) -> Result<usize, &'static str> {
    // The slot table itself lives on kiln too (freed before the segment count is checked).
    let mut live: Vec<Option<Block>> = vec![None; SLOTS];
    let mut peak_used = 0;
    for op in 0..OPS {
        let slot = rng.below(SLOTS);
        let tag = op as u64;
        match (live[slot], rng.below(4)) {
            (None, _) => {
                let layout = random_layout(rng);
                // SAFETY: non-zero size.
                let ptr = unsafe { alloc(layout) };
                check(!ptr.is_null(), "allocation failed with RAM to spare")?;
                check(
                    (ptr as usize).is_multiple_of(layout.align()),
                    "misaligned block",
                )?;
                // SAFETY: fresh block of layout.size() bytes.
                unsafe { fill(ptr, layout.size(), tag) };
                live[slot] = Some(Block { ptr, layout, tag });
            }
            (Some(b), 0) => {
                let new_size = 1 + rng.below(8192);
                // SAFETY: `b` is live with this layout; new_size is non-zero.
                let ptr = unsafe { realloc(b.ptr, b.layout, new_size) };
                check(!ptr.is_null(), "realloc failed with RAM to spare")?;
                let kept = b.layout.size().min(new_size);
                // SAFETY: the new block holds at least `kept` bytes of the old contents.
                let kept_intact = unsafe { holds(ptr, kept, b.tag) };
                check(kept_intact, "realloc lost the contents")?;
                let layout = Layout::from_size_align(new_size, b.layout.align()).unwrap();
                // SAFETY: the block is new_size bytes.
                unsafe { fill(ptr, new_size, tag) };
                live[slot] = Some(Block { ptr, layout, tag });
            }
            (Some(b), _) => {
                release(b)?;
                live[slot] = None;
            }
        }
        peak_used = peak_used.max(memory::total_segments() - memory::free_segments());
    }
    for slot in live.iter_mut() {
        if let Some(b) = slot.take() {
            release(b)?;
        }
    }
    Ok(peak_used)
}

fn out_of_memory() -> Result<(), &'static str> {
    let too_big = Layout::from_size_align(1 << 30, 8).unwrap();
    // black_box: the compiler may assume an allocation whose result is only tested succeeds.
    // SAFETY: non-zero size.
    let p = core::hint::black_box(unsafe { alloc(too_big) });
    check(p.is_null(), "1 GiB block from 256 MiB of RAM")?;
    let mib = Layout::from_size_align(1 << 20, 8).unwrap();
    let mut got: [*mut u8; 512] = [core::ptr::null_mut(); 512];
    let mut n = 0;
    loop {
        check(n < got.len(), "512 MiB handed out from 256 MiB of RAM")?;
        // SAFETY: non-zero size.
        let p = core::hint::black_box(unsafe { alloc(mib) });
        if p.is_null() {
            break;
        }
        // SAFETY: fresh 1 MiB block; touch both ends.
        unsafe {
            p.write(1);
            p.add((1 << 20) - 1).write(2);
        }
        got[n] = p;
        n += 1;
    }
    println!("{ARCH}: out of memory after {n} MiB in 1 MiB blocks: null, as it should be");
    check(n >= 64, "ran out of memory far too early")?;
    for &p in &got[..n] {
        // SAFETY: each is a live 1 MiB block.
        unsafe { dealloc(p, mib) };
    }
    heap::collect();
    // SAFETY: non-zero size.
    let p = unsafe { alloc(mib) };
    check(
        !p.is_null(),
        "allocation still fails after freeing everything",
    )?;
    // SAFETY: just allocated with this layout.
    unsafe { dealloc(p, mib) };
    Ok(())
}

fn main() -> Verdict {
    let total = memory::total_segments();
    let free_before = memory::free_segments();
    println!("{ARCH}: {free_before} of {total} segments free; churning");
    let mut rng = Rng::new(0x5eed_1234_abcd);
    let peak = churn(&mut rng)?;
    if let Err(e) = heap::check() {
        println!("{ARCH}: heap check after the churn: {e}");
        return Err("heap invariants broken after the churn");
    }
    heap::collect();
    let free_after = memory::free_segments();
    println!(
        "{ARCH}: {OPS} ops, peak {peak} of {total} segments in use; free segments before {free_before}, after burst {free_after}"
    );
    check(peak >= 4, "the burst never took segments from the bitmap")?;
    check(
        free_after == free_before,
        "segments not returned to the bitmap after the burst",
    )?;

    out_of_memory()?;
    heap::collect();
    check(
        memory::free_segments() == free_before,
        "segments lost after the out-of-memory run",
    )?;

    static NOT_OURS: u64 = 0;
    // SAFETY: kiln must refuse this pointer without touching it.
    let refused = unsafe { heap::HEAPS.free(&NOT_OURS as *const u64 as *mut u8) };
    println!("{ARCH}: free of a foreign pointer: {refused:?}");
    check(
        refused.is_err(),
        "free of a pointer kiln never handed out was accepted",
    )
}
