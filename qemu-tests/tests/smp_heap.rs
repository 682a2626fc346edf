//! SMP heap kernel (run with `-smp 2`): per-CPU kiln heaps and remote frees.
//!
//! Both CPUs allocate blocks on their own heap (kiln is the `#[global_allocator]`), fill them
//! with a pattern unique to each block, and post them to the other CPU, which checks the
//! contents and frees them: every such free is a remote free (the block's page belongs to the
//! other CPU's heap). Some blocks are also freed locally.
//!
//! Checks: no block is corrupted in transit; kiln's counters saw the remote frees; both heaps
//! pass kiln's invariant walker; once both CPUs collected their heaps, every segment is back in
//! the segment bitmap.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::alloc::{alloc, dealloc, Layout};
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use kiln_bare::heap;
use kiln_bare::sync::IrqMutex;
use kiln_bare::{boot::Verdict, cpu, memory, println, smp};
use kiln_qemu_tests::{check, fill, holds, Rng, ARCH};

kiln_bare::entry!(main);

const OPS: usize = 40_000;
const RING: usize = 256;

#[derive(Clone, Copy)]
struct Block {
    ptr: usize,
    size: usize,
    tag: u64,
}

/// Blocks posted to one CPU, oldest first.
struct Mailbox {
    slots: [Block; RING],
    head: usize,
    len: usize,
}

impl Mailbox {
    const fn new() -> Self {
        Mailbox {
            slots: [Block {
                ptr: 0,
                size: 0,
                tag: 0,
            }; RING],
            head: 0,
            len: 0,
        }
    }

    fn push(&mut self, b: Block) -> bool {
        if self.len == RING {
            return false;
        }
        self.slots[(self.head + self.len) % RING] = b;
        self.len += 1;
        true
    }

    fn pop(&mut self) -> Option<Block> {
        if self.len == 0 {
            return None;
        }
        let b = self.slots[self.head];
        self.head = (self.head + 1) % RING;
        self.len -= 1;
        Some(b)
    }
}

static MAILBOX: [IrqMutex<Mailbox>; 2] =
    [IrqMutex::new(Mailbox::new()), IrqMutex::new(Mailbox::new())];
static SENT_DONE: [AtomicBool; 2] = [AtomicBool::new(false), AtomicBool::new(false)];
static DRAINED: AtomicBool = AtomicBool::new(false);
static COLLECTED: AtomicBool = AtomicBool::new(false);
static HEAP_OK: [AtomicBool; 2] = [AtomicBool::new(false), AtomicBool::new(false)];
static CORRUPT: AtomicUsize = AtomicUsize::new(0);
static RECEIVED: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];
static LOCAL_FREED: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];
static FAILED_ALLOC: AtomicBool = AtomicBool::new(false);

fn layout(size: usize) -> Layout {
    Layout::from_size_align(size, 8).unwrap()
}

/// Checks and frees every block waiting for CPU `me`; returns how many.
fn drain(me: usize) -> usize {
    let mut n = 0;
    while let Some(b) = MAILBOX[me].lock().pop() {
        // SAFETY: the sender handed the block over whole; nobody else uses it.
        if !unsafe { holds(b.ptr as *const u8, b.size, b.tag) } {
            CORRUPT.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: allocated by the other CPU with this layout; ours to free now.
        unsafe { dealloc(b.ptr as *mut u8, layout(b.size)) };
        n += 1;
    }
    RECEIVED[me].fetch_add(n, Ordering::Relaxed);
    n
}

/// One CPU's share: allocate, post to the other CPU or free locally, drain own mailbox.
fn work(me: usize) {
    let other = 1 - me;
    let mut rng = Rng::new(0x1234_5678 + me as u64);
    for op in 0..OPS {
        let size = 1 + rng.below(2048);
        // SAFETY: non-zero size.
        let ptr = unsafe { alloc(layout(size)) };
        if ptr.is_null() {
            FAILED_ALLOC.store(true, Ordering::Relaxed);
            break;
        }
        let tag = ((me as u64) << 32) | op as u64;
        // SAFETY: fresh block of `size` bytes.
        unsafe { fill(ptr, size, tag) };
        if rng.below(8) == 0 {
            // SAFETY: ours, with this layout.
            unsafe { dealloc(ptr, layout(size)) };
            LOCAL_FREED[me].fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let b = Block {
            ptr: ptr as usize,
            size,
            tag,
        };
        while !MAILBOX[other].lock().push(b) {
            drain(me);
            core::hint::spin_loop();
        }
        if op % 16 == 0 {
            drain(me);
        }
    }
    SENT_DONE[me].store(true, Ordering::Release);
    while !SENT_DONE[other].load(Ordering::Acquire) {
        drain(me);
    }
    drain(me);
}

fn secondary() {
    work(1);
    // The boot CPU frees our blocks until it has drained its mailbox for the last time; only
    // then can collecting our heap see every remote free.
    while !DRAINED.load(Ordering::Acquire) {
        core::hint::spin_loop();
    }
    heap::collect();
    HEAP_OK[1].store(heap::check().is_ok(), Ordering::Relaxed);
    COLLECTED.store(true, Ordering::Release);
}

fn main() -> Verdict {
    check(smp::possible_cpus() >= 2, "run this kernel with -smp 2")?;
    let free_before = memory::free_segments();
    let stats_before = kiln::allocator::stats::snapshot();
    smp::start_secondary(secondary).map_err(|_| "secondary CPU did not start")?;
    work(0);
    // work() returned after the secondary stopped sending and our mailbox was drained: we
    // free none of its blocks any more. Our frees of its blocks may still wait in our heap's
    // remote-free batches: collecting publishes them before the secondary collects.
    heap::collect();
    DRAINED.store(true, Ordering::Release);
    while !COLLECTED.load(Ordering::Acquire) {
        core::hint::spin_loop();
    }
    heap::collect();
    HEAP_OK[0].store(heap::check().is_ok(), Ordering::Relaxed);
    let stats = kiln::allocator::stats::snapshot();
    let remote = stats.remote_free - stats_before.remote_free;
    let received = RECEIVED[0].load(Ordering::Relaxed) + RECEIVED[1].load(Ordering::Relaxed);
    let local = LOCAL_FREED[0].load(Ordering::Relaxed) + LOCAL_FREED[1].load(Ordering::Relaxed);
    println!(
        "{ARCH} on CPU {}: {received} blocks crossed CPUs ({remote} remote frees counted), {local} freed locally, corrupt {}",
        cpu::cpu_index(),
        CORRUPT.load(Ordering::Relaxed)
    );
    check(
        !FAILED_ALLOC.load(Ordering::Relaxed),
        "allocation failed with RAM to spare",
    )?;
    check(
        CORRUPT.load(Ordering::Relaxed) == 0,
        "blocks corrupted between CPUs",
    )?;
    check(
        HEAP_OK.iter().all(|ok| ok.load(Ordering::Relaxed)),
        "a CPU's heap failed kiln's invariant check",
    )?;
    check(received + local == 2 * OPS, "blocks went missing")?;
    check(
        remote as usize >= received / 2,
        "kiln counted too few remote frees",
    )?;
    let free_after = memory::free_segments();
    println!("{ARCH}: free segments before {free_before}, after both heaps collected {free_after}");
    check(
        free_after == free_before,
        "segments not returned to the bitmap",
    )
}
