//! random-mixed and mid-large: one slot table, one random stream, alloc-or-free per op.
//!
//! Each op draws `r`, picks slot `r % ws`, frees the block there if the slot is occupied and
//! otherwise allocates `size(r)` bytes and writes its first byte. An untimed prefault pass of
//! `ops / 10` ops first brings the table to its steady state (about half the slots live) and
//! lets the allocator map its memory. The C loop in `bench/c/random_mixed.c` is the same loop
//! over `malloc`/`free`.
use super::{layout, out_of_memory, Budget, Outcome, Probe, XorShift32, CHECK_EVERY};
use crate::allocators::Instance;
use std::ptr;
use std::time::Instant;

/// random-mixed sizes: 16 + (r & 1023) bytes, i.e. 16..=1039.
pub fn small_size(r: u32) -> usize {
    16 + (r & 1023) as usize
}

/// mid-large sizes: 8, 16 or 32 KiB (picked by bits 11.. of r) + (r & 2047) bytes.
pub fn mid_large_size(r: u32) -> usize {
    const BASES: [usize; 3] = [8 << 10, 16 << 10, 32 << 10];
    BASES[((r >> 11) % 3) as usize] + (r & 2047) as usize
}

/// A live block and its size (the size is needed to free it through `GlobalAlloc`).
#[derive(Clone, Copy)]
struct Slot {
    ptr: *mut u8,
    size: usize,
}

const EMPTY: Slot = Slot {
    ptr: ptr::null_mut(),
    size: 0,
};

pub fn run(
    a: &Instance,
    budget: Budget,
    probe: Probe,
    ws: usize,
    size: fn(u32) -> usize,
) -> Result<Outcome, String> {
    let mut slots = vec![EMPTY; ws];
    let mut rng = XorShift32::new();
    let result = prefault_then_time(a, budget, probe, &mut slots, &mut rng, size);
    for s in slots.iter().filter(|s| !s.ptr.is_null()) {
        // SAFETY: a non-null slot holds a live block of `s.size` bytes from `a`.
        unsafe { a.dealloc(s.ptr, layout(s.size)) };
    }
    result
}

fn prefault_then_time(
    a: &Instance,
    budget: Budget,
    probe: Probe,
    slots: &mut [Slot],
    rng: &mut XorShift32,
    size: fn(u32) -> usize,
) -> Result<Outcome, String> {
    probe();
    churn(a, &budget.warm_up(), budget.ops / 10, slots, rng, size)?;
    let timed = budget.restart();
    let start = Instant::now();
    let ops = churn(a, &timed, budget.ops, slots, rng, size)?;
    Ok(Outcome {
        ops,
        secs: start.elapsed().as_secs_f64(),
    })
}

/// The loop itself; returns the ops done (fewer than `ops` if the deadline passed).
#[inline(never)]
fn churn(
    a: &Instance,
    budget: &Budget,
    ops: u64,
    slots: &mut [Slot],
    rng: &mut XorShift32,
    size: fn(u32) -> usize,
) -> Result<u64, String> {
    let ws = slots.len() as u32;
    for done in 0..ops {
        if done.is_multiple_of(CHECK_EVERY) && budget.expired() {
            return Ok(done);
        }
        let r = rng.next_u32();
        let slot = &mut slots[(r % ws) as usize];
        if slot.ptr.is_null() {
            let n = size(r);
            // SAFETY: n > 0.
            let p = unsafe { a.alloc(layout(n)) };
            if p.is_null() {
                return Err(out_of_memory(n, done));
            }
            // SAFETY: p is a fresh block of n >= 1 bytes.
            unsafe { p.write_volatile(r as u8) };
            *slot = Slot { ptr: p, size: n };
        } else {
            // SAFETY: the slot holds a live block of `slot.size` bytes from `a`.
            unsafe { a.dealloc(slot.ptr, layout(slot.size)) };
            *slot = EMPTY;
        }
    }
    Ok(ops)
}
