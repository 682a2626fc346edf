//! Multi-threaded workloads: frees on a thread other than the allocating one.
//!
//! - producer-consumer: one thread allocates blocks of 16..=1039 bytes, writes their first byte
//!   and passes them through a bounded single-producer/single-consumer ring (`heapless::spsc`,
//!   1023 entries) to a second thread, which reads the byte and frees them. Ops = allocs + frees.
//! - larson: each of [`THREADS`] threads owns a table of [`LARSON_SLOTS`] live blocks and, per op,
//!   frees a random one and allocates a replacement (16..=1039 bytes). After every round the
//!   tables rotate between the threads, so most blocks are freed by a thread that did not
//!   allocate them (as in Larson & Krishnan's server benchmark). Ops = frees + allocs.
//!
//! The ring and the tables live in the harness's own memory (`System`), never in the allocator
//! under test.
//!
//! producer-consumer runs its two threads pinned to different CPUs (see [`super::pin_to_cpu`]).
use super::{layout, out_of_memory, Budget, Outcome, Probe, XorShift32, CHECK_EVERY};
use crate::allocators::Instance;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::Instant;

/// Worker threads (the bench machine has two cores).
pub const THREADS: usize = 2;
/// Live blocks per larson table.
pub const LARSON_SLOTS: usize = 4096;
/// Rounds of a full larson run (tables rotate after each).
const LARSON_ROUNDS: u64 = 40;

const RING: usize = 1024;
/// A block in flight: address and size (0 means "no more blocks").
type Block = (usize, usize);

/// Waits a little: spin briefly, then give the core away (the machine may be oversubscribed).
fn backoff(spins: &mut u32) {
    *spins += 1;
    if *spins < 64 {
        std::hint::spin_loop();
    } else {
        std::thread::yield_now();
    }
}

pub fn producer_consumer(a: &Instance, budget: Budget, probe: Probe) -> Result<Outcome, String> {
    let own = super::pin_to_cpu(0);
    let result = producer_consumer_on(a, budget, probe);
    if let Some(own) = &own {
        super::set_affinity(own);
    }
    result
}

fn producer_consumer_on(a: &Instance, budget: Budget, probe: Probe) -> Result<Outcome, String> {
    let blocks = budget.ops / 2;
    let mut ring: Box<heapless::spsc::Queue<Block, RING>> = Box::new(heapless::spsc::Queue::new());
    let (mut tx, mut rx) = ring.split();
    probe();
    let start = Instant::now();
    let (produced, consumed) = std::thread::scope(|s| {
        let consumer = s.spawn(move || {
            super::pin_to_cpu(1);
            let mut freed = 0u64;
            let mut spins = 0;
            loop {
                let Some((addr, size)) = rx.dequeue() else {
                    backoff(&mut spins);
                    continue;
                };
                spins = 0;
                if size == 0 {
                    return freed;
                }
                let p = addr as *mut u8;
                // SAFETY: the producer wrote this live block's first byte before sending it.
                std::hint::black_box(unsafe { p.read_volatile() });
                // SAFETY: a live block of `size` bytes from `a`, handed over by the producer.
                unsafe { a.dealloc(p, layout(size)) };
                freed += 1;
            }
        });
        let produced = produce(a, &budget, blocks, &mut tx);
        let mut spins = 0;
        while tx.enqueue((0, 0)).is_err() {
            backoff(&mut spins);
        }
        (produced, consumer.join().expect("consumer thread panicked"))
    });
    let secs = start.elapsed().as_secs_f64();
    let produced = produced?;
    debug_assert_eq!(produced, consumed);
    Ok(Outcome {
        ops: produced + consumed,
        secs,
    })
}

fn produce(
    a: &Instance,
    budget: &Budget,
    blocks: u64,
    tx: &mut heapless::spsc::Producer<'_, Block, RING>,
) -> Result<u64, String> {
    let mut rng = XorShift32::new();
    for done in 0..blocks {
        if done.is_multiple_of(CHECK_EVERY) && budget.expired() {
            return Ok(done);
        }
        let r = rng.next_u32();
        let n = super::random_mixed::small_size(r);
        // SAFETY: n > 0.
        let p = unsafe { a.alloc(layout(n)) };
        if p.is_null() {
            return Err(out_of_memory(n, done * 2));
        }
        // SAFETY: p is a fresh block of n >= 1 bytes.
        unsafe { p.write_volatile(r as u8) };
        let mut block = (p as usize, n);
        let mut spins = 0;
        while let Err(back) = tx.enqueue(block) {
            block = back;
            backoff(&mut spins);
        }
    }
    Ok(blocks)
}

/// One larson table: live blocks as (address, size); address 0 is an empty slot.
type Table = Vec<Block>;

pub fn larson(a: &Instance, budget: Budget, probe: Probe) -> Result<Outcome, String> {
    let tables: Vec<Mutex<Table>> = (0..THREADS)
        .map(|_| Mutex::new(vec![(0, 0); LARSON_SLOTS]))
        .collect();
    let result = fill_then_rotate(a, budget, probe, &tables);
    for t in &tables {
        for &(addr, size) in t.lock().expect("no worker panicked").iter() {
            if addr != 0 {
                // SAFETY: a non-empty slot holds a live block of `size` bytes from `a`.
                unsafe { a.dealloc(addr as *mut u8, layout(size)) };
            }
        }
    }
    result
}

fn fill_then_rotate(
    a: &Instance,
    budget: Budget,
    probe: Probe,
    tables: &[Mutex<Table>],
) -> Result<Outcome, String> {
    let mut rng = XorShift32::new();
    probe();
    for t in tables {
        for slot in t.lock().expect("not poisoned yet").iter_mut() {
            let n = super::random_mixed::small_size(rng.next_u32());
            // SAFETY: n > 0.
            let p = unsafe { a.alloc(layout(n)) };
            if p.is_null() {
                return Err(out_of_memory(n, 0));
            }
            *slot = (p as usize, n);
        }
    }
    let per_round = (budget.ops / (2 * THREADS as u64 * LARSON_ROUNDS)).max(1);
    let barrier = Barrier::new(THREADS);
    // The first round in which some thread stopped early (deadline or error); all threads
    // leave after that round's barrier. A round number, not a flag, so that a thread already
    // in the next round cannot make a slower one leave a round early.
    let stop = AtomicUsize::new(usize::MAX);
    let ops = AtomicU64::new(0);
    let failure = Mutex::new(None);
    let budget = budget.restart();
    let start = Instant::now();
    std::thread::scope(|s| {
        for id in 0..THREADS {
            let (barrier, stop, ops, failure) = (&barrier, &stop, &ops, &failure);
            s.spawn(move || {
                let mut rng = XorShift32::new();
                for _ in 0..id * 7 + 1 {
                    rng.next_u32();
                }
                for round in 0..LARSON_ROUNDS as usize {
                    let mut table = tables[(id + round) % THREADS].lock().expect("no panic");
                    match larson_round(a, &budget, per_round, &mut table, &mut rng) {
                        Ok((done, expired)) => {
                            ops.fetch_add(done, Ordering::Relaxed);
                            if expired {
                                stop.fetch_min(round, Ordering::Relaxed);
                            }
                        }
                        Err(e) => {
                            *failure.lock().expect("no panic") = Some(e);
                            stop.fetch_min(round, Ordering::Relaxed);
                        }
                    }
                    drop(table);
                    barrier.wait();
                    if stop.load(Ordering::Relaxed) <= round {
                        break;
                    }
                }
            });
        }
    });
    let secs = start.elapsed().as_secs_f64();
    if let Some(e) = failure.into_inner().expect("no panic") {
        return Err(e);
    }
    Ok(Outcome {
        ops: ops.into_inner(),
        secs,
    })
}

/// `iters` free+alloc pairs on one table; returns (ops done, whether the deadline passed).
fn larson_round(
    a: &Instance,
    budget: &Budget,
    iters: u64,
    table: &mut Table,
    rng: &mut XorShift32,
) -> Result<(u64, bool), String> {
    for i in 0..iters {
        if i.is_multiple_of(CHECK_EVERY) && budget.expired() {
            return Ok((2 * i, true));
        }
        let r = rng.next_u32();
        let slot = &mut table[r as usize % LARSON_SLOTS];
        // SAFETY: every slot of a table holds a live block from `a` (filled before the rounds).
        unsafe { a.dealloc(slot.0 as *mut u8, layout(slot.1)) };
        let n = super::random_mixed::small_size(r.rotate_left(7));
        // SAFETY: n > 0.
        let p = unsafe { a.alloc(layout(n)) };
        if p.is_null() {
            *slot = (0, 0);
            return Err(out_of_memory(n, 2 * i));
        }
        // SAFETY: p is a fresh block of n >= 1 bytes.
        unsafe { p.write_volatile(r as u8) };
        *slot = (p as usize, n);
    }
    Ok((2 * iters, false))
}
