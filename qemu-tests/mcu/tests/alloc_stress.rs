//! Allocator stress on the Cortex-M4 image: kiln's small geometry in a 64 KiB heap (one
//! segment), through the global allocator.
//!
//! Checks:
//! - churn: 20k random alloc / free / realloc operations (1 B .. 8 KiB, alignments 1 .. 1 KiB)
//!   on up to 24 live blocks, each filled with a pattern unique to it and verified before every
//!   free and after every realloc; out of memory (frequent in 64 KiB) returns null and leaves a
//!   realloc's old block intact; kiln's invariant walker passes every 1000 operations;
//! - memory goes back: after the churn the segment returns to the region;
//! - out of memory gives null: 1 KiB blocks until none is left (most of the 64 KiB is usable),
//!   a block larger than the heap, then freeing makes allocation work again;
//! - a pointer kiln never handed out is refused as a foreign free.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::alloc::{alloc, dealloc, realloc, Layout};

use cortex_m_rt::entry;
use kiln::allocator::FreeError;
use kiln_mcu_tests::{check, fill, finish, holds, println, Rng, Verdict, KILN, POOL};

const SLOTS: usize = 24;
const OPS: usize = 20_000;

#[derive(Clone, Copy)]
struct Block {
    ptr: *mut u8,
    layout: Layout,
    tag: u32,
}

#[entry]
fn main() -> ! {
    finish(run())
}

fn random_layout(rng: &mut Rng) -> Layout {
    let size = match rng.below(100) {
        0..=4 => 2048 + rng.below(6145), // up to the largest class, 8 KiB
        5..=24 => 256 + rng.below(1792), // medium-ish
        _ => 1 + rng.below(255),         // small
    };
    let align = match rng.below(40) {
        0 => 1024,
        1..=3 => 64,
        4..=10 => 16,
        11..=15 => 1,
        _ => 8,
    };
    Layout::from_size_align(size, align).unwrap()
}

fn release(b: Block) -> Verdict {
    // SAFETY: `b` is live and `layout.size()` bytes long.
    let intact = unsafe { holds(b.ptr, b.layout.size(), b.tag) };
    check(intact, "block contents changed")?;
    // SAFETY: allocated with this layout, not used again.
    unsafe { dealloc(b.ptr, b.layout) };
    Ok(())
}

fn run() -> Verdict {
    let mut rng = Rng::new(0x6b69_6c6e);
    let mut slots: [Option<Block>; SLOTS] = [None; SLOTS];
    let (mut ooms, mut peak_bytes, mut live_bytes) = (0usize, 0usize, 0usize);
    for op in 0..OPS {
        let i = rng.below(SLOTS);
        match slots[i] {
            None => {
                let layout = random_layout(&mut rng);
                // SAFETY: non-zero size.
                let p = unsafe { alloc(layout) };
                if p.is_null() {
                    ooms += 1;
                    continue;
                }
                check(
                    (p as usize).is_multiple_of(layout.align()),
                    "misaligned block",
                )?;
                // SAFETY: a fresh block of `layout.size()` bytes.
                unsafe { fill(p, layout.size(), op as u32) };
                slots[i] = Some(Block {
                    ptr: p,
                    layout,
                    tag: op as u32,
                });
                live_bytes += layout.size();
                peak_bytes = peak_bytes.max(live_bytes);
            }
            Some(b) if rng.below(3) == 0 => {
                let new = random_layout(&mut rng).size();
                // SAFETY: `b` is live with `b.layout`; `new` is non-zero.
                let q = unsafe { realloc(b.ptr, b.layout, new) };
                if q.is_null() {
                    ooms += 1;
                    // SAFETY: a failed realloc leaves the old block live and unchanged.
                    let intact = unsafe { holds(b.ptr, b.layout.size(), b.tag) };
                    check(intact, "failed realloc changed the block")?;
                    continue;
                }
                let kept = b.layout.size().min(new);
                // SAFETY: `q` is live with at least `kept` bytes.
                let intact = unsafe { holds(q, kept, b.tag) };
                check(intact, "realloc lost the contents")?;
                let layout = Layout::from_size_align(new, b.layout.align()).unwrap();
                // SAFETY: `q` is `new` bytes long.
                unsafe { fill(q, new, op as u32) };
                live_bytes = live_bytes - b.layout.size() + new;
                peak_bytes = peak_bytes.max(live_bytes);
                slots[i] = Some(Block {
                    ptr: q,
                    layout,
                    tag: op as u32,
                });
            }
            Some(b) => {
                release(b)?;
                live_bytes -= b.layout.size();
                slots[i] = None;
            }
        }
        if op % 1000 == 999 {
            check(KILN.check().is_ok(), "invariant walker failed")?;
        }
    }
    println!("churn: {OPS} operations, {ooms} out of memory, peak {peak_bytes} live bytes in the 64 KiB heap");
    for b in slots.iter_mut().filter_map(Option::take) {
        release(b)?;
    }
    check(KILN.check().is_ok(), "invariant walker failed")?;
    KILN.collect();
    check(
        POOL.segments_in_use() == 0,
        "the segment did not go back to the region",
    )?;

    // Out of memory: 1 KiB blocks until none is left.
    let kib = Layout::from_size_align(1024, 8).unwrap();
    let mut blocks: [*mut u8; 64] = [core::ptr::null_mut(); 64];
    let mut n = 0;
    while n < blocks.len() {
        // SAFETY: non-zero size.
        let p = unsafe { alloc(kib) };
        if p.is_null() {
            break;
        }
        blocks[n] = p;
        n += 1;
    }
    println!("out of memory after {n} blocks of 1 KiB");
    check(
        (48..64).contains(&n),
        "1 KiB blocks: expected 48 to 63 in a 64 KiB heap",
    )?;
    // Straight to the heap: through `alloc` the compiler may drop an unused allocation and
    // assume it succeeded.
    let big = KILN.alloc(80 * 1024, 8);
    check(big.is_null(), "a block larger than the heap")?;
    for &p in &blocks[..n] {
        // SAFETY: allocated above with `kib`, freed once.
        unsafe { dealloc(p, kib) };
    }
    // SAFETY: non-zero size.
    let again = unsafe { alloc(kib) };
    check(!again.is_null(), "no allocation after freeing")?;
    // SAFETY: allocated just above.
    unsafe { dealloc(again, kib) };

    // A foreign pointer: refused, nothing changes.
    static NOT_KILNS: [u8; 16] = [0; 16];
    let foreign = NOT_KILNS.as_ptr().cast_mut();
    // SAFETY: kiln must classify the pointer without freeing it.
    let refused = unsafe { KILN.free(foreign) };
    check(
        refused == Err(FreeError::Foreign),
        "a foreign free was not refused",
    )?;
    check(KILN.check().is_ok(), "invariant walker failed")?;
    Ok(())
}
