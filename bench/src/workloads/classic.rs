//! The classic multi-threaded allocator benchmarks, written anew for this harness (same idea as
//! the originals, not their code). `bench/c/classic.c` runs the same loops through `malloc`/`free`
//! for the LD_PRELOAD rows.
//!
//! - xmalloc: [`THREADS`] threads in a ring of producer/consumer chains: each allocates batches of
//!   [`XM_BATCH`] blocks of 16..=271 bytes, hands each batch to the next thread and frees the
//!   batches the previous thread handed it, so every block is freed by a thread that did not
//!   allocate it (after Lever and Boreham's xmalloc-test). A thread waits while its successor
//!   has [`XM_QUEUE`] batches pending. Ops = allocs + frees.
//! - cache-scratch: passive false sharing (after Hoard's cache-scratch). One thread allocates an
//!   8-byte object per worker, back to back, and hands them out; each worker frees its object,
//!   then repeats "allocate 8 bytes, write them [`WRITES`] times, free". An allocator that gives a
//!   worker the block another worker freed puts both threads' writes on one cache line.
//!   Ops = allocs + frees.
//! - cache-thrash: active false sharing (after Hoard's cache-thrash): each worker repeats
//!   "allocate 8 bytes, write them [`WRITES`] times, free". An allocator that serves two threads
//!   from one cache line makes them fight over it. Ops = allocs + frees.
//! - mstress: bursts with migration (after mimalloc-bench's mstress): each worker, per round,
//!   allocates a burst of [`MS_BURST`] blocks (mostly 16..=1024 bytes in powers of two, one in 32
//!   up to 64 KiB), frees most of them at once, swaps one in eight into a shared transfer table
//!   (freeing the block it displaces, often another thread's), and keeps one in sixteen alive
//!   across rounds until its list is full. Memory should go back after each burst. The table is
//!   emptied at the end, inside the timed part. Ops = allocs + frees.
//! - glibc-simple: glibc's bench-malloc-simple loop: allocate [`GS_COUNT`] blocks of one size,
//!   free them all in order; the size cycles 16, 32, ..., 1024. Ops = allocs + frees.
//! - glibc-thread: glibc's bench-malloc-thread loop on every worker: a private table of
//!   [`GT_SLOTS`] slots, per op pick a random slot and free its block or allocate one (7 in 8 of
//!   16..=271 bytes, the rest up to 32 KiB). Ops = allocs + frees.
//!
//! Every queue, table and list lives in the harness's own memory (`System`).
use super::{layout, out_of_memory, Budget, Outcome, Probe, XorShift32, CHECK_EVERY};
use crate::allocators::Instance;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::Instant;

pub use super::threads::THREADS;

/// Blocks per xmalloc batch.
pub const XM_BATCH: usize = 64;
/// Batches a thread may have pending from its predecessor before the predecessor waits.
pub const XM_QUEUE: usize = 16;
/// Writes per object in cache-scratch and cache-thrash.
pub const WRITES: u32 = 64;
/// Blocks per mstress burst.
pub const MS_BURST: usize = 512;
/// Slots of the mstress transfer table.
pub const MS_TRANSFER: usize = 1024;
/// Blocks an mstress worker keeps alive across rounds.
pub const MS_KEEP: usize = 2048;
/// Blocks per glibc-simple round.
pub const GS_COUNT: usize = 100;
/// Slots per glibc-thread worker.
pub const GT_SLOTS: usize = 1024;

type Block = (usize, usize);

/// Runs `work(id)` on every worker at once (after a barrier) and sums what they return; the
/// first error wins. Returns the summed ops and the seconds from the barrier to the last join.
fn on_workers(work: &(dyn Fn(usize) -> Result<u64, String> + Sync)) -> Result<(u64, f64), String> {
    let barrier = Barrier::new(THREADS + 1);
    let (total, failure) = (AtomicU64::new(0), Mutex::new(None));
    let start = std::thread::scope(|s| {
        for id in 0..THREADS {
            let (barrier, total, failure) = (&barrier, &total, &failure);
            s.spawn(move || {
                barrier.wait();
                match work(id) {
                    Ok(n) => {
                        total.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(e) => *failure.lock().expect("no panic") = Some(e),
                }
            });
        }
        barrier.wait();
        Instant::now()
    });
    let secs = start.elapsed().as_secs_f64();
    match failure.into_inner().expect("no panic") {
        Some(e) => Err(e),
        None => Ok((total.into_inner(), secs)),
    }
}

/// Allocates `n` bytes and writes the first byte; `Err` on null.
#[inline(always)]
fn alloc_touch(a: &Instance, n: usize, tag: u8, done: u64) -> Result<*mut u8, String> {
    // SAFETY: n > 0.
    let p = unsafe { a.alloc(layout(n)) };
    if p.is_null() {
        return Err(out_of_memory(n, done));
    }
    // SAFETY: fresh block of n >= 1 bytes.
    unsafe { p.write_volatile(tag) };
    Ok(p)
}

/// # Safety
/// `b` is a live block of `a` with its size.
#[inline(always)]
unsafe fn free_block(a: &Instance, b: Block) {
    // SAFETY: the caller's.
    unsafe { a.dealloc(b.0 as *mut u8, layout(b.1)) };
}

// ---------------------------------------------------------------------------------------------

pub fn xmalloc(a: &Instance, budget: Budget, probe: Probe) -> Result<Outcome, String> {
    let queues: Vec<Mutex<VecDeque<Vec<Block>>>> =
        (0..THREADS).map(|_| Mutex::new(VecDeque::new())).collect();
    let producing = AtomicUsize::new(THREADS);
    let quota = (budget.ops / (2 * THREADS as u64)).max(1);
    probe();
    let budget = budget.restart();
    let result = on_workers(&|id| xmalloc_worker(a, &budget, id, quota, &queues, &producing));
    // Nothing is left after a clean run; after an error, free what is still queued.
    for q in &queues {
        for batch in q.lock().expect("no panic").drain(..) {
            for b in batch {
                // SAFETY: queued blocks are live.
                unsafe { free_block(a, b) };
            }
        }
    }
    result.map(|(ops, secs)| Outcome { ops, secs })
}

fn xmalloc_worker(
    a: &Instance,
    budget: &Budget,
    id: usize,
    quota: u64,
    queues: &[Mutex<VecDeque<Vec<Block>>>],
    producing: &AtomicUsize,
) -> Result<u64, String> {
    let mut rng = XorShift32::new();
    for _ in 0..id * 13 + 1 {
        rng.next_u32();
    }
    let next = &queues[(id + 1) % THREADS];
    let mine = &queues[id];
    let (mut made, mut freed, mut spins) = (0u64, 0u64, 0u32);
    let mut done_producing = false;
    let mut result = Ok(());
    loop {
        if !done_producing && (made >= quota || budget.expired() || result.is_err()) {
            done_producing = true;
            producing.fetch_sub(1, Ordering::AcqRel);
        }
        let mut progressed = false;
        if !done_producing && next.lock().expect("no panic").len() < XM_QUEUE {
            let n = (quota - made).min(XM_BATCH as u64) as usize;
            let mut batch = Vec::with_capacity(n);
            for _ in 0..n {
                let r = rng.next_u32();
                let size = 16 + (r & 255) as usize;
                match alloc_touch(a, size, r as u8, made + freed) {
                    Ok(p) => batch.push((p as usize, size)),
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            made += batch.len() as u64;
            next.lock().expect("no panic").push_back(batch);
            progressed = true;
        }
        let got = mine.lock().expect("no panic").pop_front();
        if let Some(batch) = got {
            for &b in &batch {
                // SAFETY: the predecessor handed these live blocks over.
                unsafe { free_block(a, b) };
            }
            freed += batch.len() as u64;
            progressed = true;
        } else if done_producing && producing.load(Ordering::Acquire) == 0 {
            // Nobody produces any more and my queue is empty: it stays empty.
            if mine.lock().expect("no panic").is_empty() {
                break;
            }
        }
        if progressed {
            spins = 0;
        } else {
            spins += 1;
            if spins < 64 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
    result.map(|()| made + freed)
}

// ---------------------------------------------------------------------------------------------

/// One object's life in cache-scratch/thrash: allocate 8 bytes, write them `WRITES` times, free.
#[inline(always)]
fn scratch_object(a: &Instance, i: u64) -> Result<(), String> {
    // SAFETY: non-zero size.
    let p = unsafe { a.alloc(layout(8)) }.cast::<u64>();
    if p.is_null() {
        return Err(out_of_memory(8, i));
    }
    for w in 0..WRITES {
        // SAFETY: a live 8-byte, 8-aligned block.
        unsafe { p.write_volatile(i ^ w as u64) };
    }
    // SAFETY: allocated above.
    unsafe { a.dealloc(p.cast(), layout(8)) };
    Ok(())
}

fn scratch_loop(a: &Instance, budget: &Budget, objects: u64) -> Result<u64, String> {
    for i in 0..objects {
        if i.is_multiple_of(CHECK_EVERY / 16) && budget.expired() {
            return Ok(2 * i);
        }
        scratch_object(a, i)?;
    }
    Ok(2 * objects)
}

pub fn cache_scratch(a: &Instance, budget: Budget, probe: Probe) -> Result<Outcome, String> {
    probe();
    let mut handed = Vec::with_capacity(THREADS);
    for _ in 0..THREADS {
        match alloc_touch(a, 8, 1, 0) {
            Ok(p) => handed.push(p as usize),
            Err(e) => {
                for &p in &handed {
                    // SAFETY: allocated just above.
                    unsafe { free_block(a, (p, 8)) };
                }
                return Err(e);
            }
        }
    }
    let objects = (budget.ops / (2 * THREADS as u64)).max(1);
    let budget = budget.restart();
    let (ops, secs) = on_workers(&|id| {
        // SAFETY: this worker's handed-out object, freed once, here.
        unsafe { free_block(a, (handed[id], 8)) };
        scratch_loop(a, &budget, objects)
    })?;
    Ok(Outcome { ops, secs })
}

pub fn cache_thrash(a: &Instance, budget: Budget, probe: Probe) -> Result<Outcome, String> {
    probe();
    let objects = (budget.ops / (2 * THREADS as u64)).max(1);
    let budget = budget.restart();
    let (ops, secs) = on_workers(&|_| scratch_loop(a, &budget, objects))?;
    Ok(Outcome { ops, secs })
}

// ---------------------------------------------------------------------------------------------

/// An mstress block size: 16 << (0..=6), one in 32 of 1 KiB << (1..=6) instead.
fn mstress_size(r: u32) -> usize {
    if r.is_multiple_of(32) {
        1024 << (1 + (r >> 5) % 6)
    } else {
        16 << ((r >> 5) % 7)
    }
}

pub fn mstress(a: &Instance, budget: Budget, probe: Probe) -> Result<Outcome, String> {
    let transfer: Vec<AtomicU64> = (0..MS_TRANSFER).map(|_| AtomicU64::new(0)).collect();
    let quota = (budget.ops / (2 * THREADS as u64)).max(1);
    probe();
    let budget = budget.restart();
    let result = on_workers(&|id| mstress_worker(a, &budget, id, quota, &transfer));
    // Emptying the transfer table is part of the workload (timed and counted), so that every
    // block allocated is freed within the ops: ops = 2 * allocs.
    let start = Instant::now();
    let mut freed = 0u64;
    for slot in &transfer {
        let b = unpack(slot.swap(0, Ordering::AcqRel));
        if b.0 != 0 {
            // SAFETY: blocks in the transfer table are live.
            unsafe { free_block(a, b) };
            freed += 1;
        }
    }
    let tail = start.elapsed().as_secs_f64();
    result.map(|(ops, secs)| Outcome {
        ops: ops + freed,
        secs: secs + tail,
    })
}

/// A transfer-table entry in one word (0 = empty): the address shifted up by 8 (user addresses
/// are below 2^56), log2 of the size (a power of two) in the low byte.
fn pack(b: Block) -> u64 {
    ((b.0 as u64) << 8) | b.1.trailing_zeros() as u64
}

fn unpack(v: u64) -> Block {
    if v == 0 {
        (0, 0)
    } else {
        ((v >> 8) as usize, 1 << (v & 0xff))
    }
}

fn mstress_worker(
    a: &Instance,
    budget: &Budget,
    id: usize,
    quota: u64,
    transfer: &[AtomicU64],
) -> Result<u64, String> {
    let mut rng = XorShift32::new();
    for _ in 0..id * 31 + 3 {
        rng.next_u32();
    }
    let mut keep: Vec<Block> = Vec::with_capacity(MS_KEEP);
    let mut burst: Vec<Block> = Vec::with_capacity(MS_BURST);
    let (mut made, mut freed) = (0u64, 0u64);
    let mut result = Ok(());
    while made < quota && result.is_ok() && !budget.expired() {
        let n = (quota - made).min(MS_BURST as u64);
        for _ in 0..n {
            let r = rng.next_u32();
            let size = mstress_size(r);
            match alloc_touch(a, size, r as u8, made + freed) {
                Ok(p) => burst.push((p as usize, size)),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        made += burst.len() as u64;
        for b in burst.drain(..) {
            let r = rng.next_u32();
            if r.is_multiple_of(8) {
                let old = unpack(
                    transfer[(r >> 3) as usize % MS_TRANSFER].swap(pack(b), Ordering::AcqRel),
                );
                if old.0 != 0 {
                    // SAFETY: a live block taken out of the table: ours to free now.
                    unsafe { free_block(a, old) };
                    freed += 1;
                }
            } else if r % 16 == 1 && keep.len() < MS_KEEP {
                keep.push(b);
            } else {
                // SAFETY: allocated in this burst, freed once.
                unsafe { free_block(a, b) };
                freed += 1;
            }
        }
    }
    freed += keep.len() as u64;
    for b in keep {
        // SAFETY: kept alive until now.
        unsafe { free_block(a, b) };
    }
    result.map(|()| made + freed)
}

// ---------------------------------------------------------------------------------------------

pub fn glibc_simple(a: &Instance, budget: Budget, probe: Probe) -> Result<Outcome, String> {
    let mut blocks = Vec::with_capacity(GS_COUNT);
    probe();
    let start = Instant::now();
    let mut done = 0u64;
    let mut round = 0u32;
    while done < budget.ops && !(done > 0 && budget.expired()) {
        let size = 16usize << (round % 7);
        round += 1;
        let count = ((budget.ops - done) / 2).clamp(1, GS_COUNT as u64);
        let mut failed = None;
        for _ in 0..count {
            match alloc_touch(a, size, round as u8, done) {
                Ok(p) => blocks.push((p as usize, size)),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        done += 2 * blocks.len() as u64;
        for b in blocks.drain(..) {
            // SAFETY: allocated in this round, freed once.
            unsafe { free_block(a, b) };
        }
        if let Some(e) = failed {
            return Err(e);
        }
    }
    Ok(Outcome {
        ops: done,
        secs: start.elapsed().as_secs_f64(),
    })
}

/// glibc-thread sizes: 7 in 8 of 16..=271 bytes, else 16..=32 KiB.
fn glibc_thread_size(r: u32) -> usize {
    if !r.is_multiple_of(8) {
        16 + ((r >> 3) & 255) as usize
    } else {
        16 + ((r >> 3) & 0x7fff) as usize
    }
}

pub fn glibc_thread(a: &Instance, budget: Budget, probe: Probe) -> Result<Outcome, String> {
    let per_thread = (budget.ops / THREADS as u64).max(1);
    let stop = AtomicBool::new(false);
    probe();
    let budget = budget.restart();
    let (ops, secs) = on_workers(&|id| {
        let mut slots = vec![(0usize, 0usize); GT_SLOTS];
        let mut rng = XorShift32::new();
        for _ in 0..id * 5 + 1 {
            rng.next_u32();
        }
        let mut result = Ok(per_thread);
        for done in 0..per_thread {
            if done.is_multiple_of(CHECK_EVERY)
                && (budget.expired() || stop.load(Ordering::Relaxed))
            {
                result = Ok(done);
                break;
            }
            let r = rng.next_u32();
            let slot = &mut slots[(r >> 16) as usize % GT_SLOTS];
            if slot.0 != 0 {
                // SAFETY: a live block of this worker's table.
                unsafe { free_block(a, *slot) };
                *slot = (0, 0);
            } else {
                let size = glibc_thread_size(r);
                match alloc_touch(a, size, r as u8, done) {
                    Ok(p) => *slot = (p as usize, size),
                    Err(e) => {
                        stop.store(true, Ordering::Relaxed);
                        result = Err(e);
                        break;
                    }
                }
            }
        }
        for &b in slots.iter().filter(|b| b.0 != 0) {
            // SAFETY: live blocks of this worker's table.
            unsafe { free_block(a, b) };
        }
        result
    })?;
    Ok(Outcome { ops, secs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_entries_round_trip() {
        for (addr, size) in [
            (0x7f12_3456_7890usize, 16usize),
            (0x10, 65536),
            (0xfff0, 1024),
        ] {
            assert_eq!(unpack(pack((addr, size))), (addr, size));
        }
        assert_eq!(unpack(0), (0, 0));
    }

    #[test]
    fn sizes_stay_in_their_ranges() {
        let mut r = XorShift32::new();
        for _ in 0..10_000 {
            let x = r.next_u32();
            let m = mstress_size(x);
            assert!(m.is_power_of_two() && (16..=65536).contains(&m));
            assert!((16..=16 + 0x7fff).contains(&glibc_thread_size(x)));
        }
    }
}
