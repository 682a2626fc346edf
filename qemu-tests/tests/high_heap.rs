//! kiln with its heap above 1 TiB and (x86_64) in the higher half: the identity map of RAM is
//! mapped a second time at `ALIAS` (`kiln_bare::paging::alias_identity_map`), and a memory
//! source hands out `phys + ALIAS` for segments it takes from the machine's RAM. A pool and a
//! heap over it must work exactly as over identity-mapped memory.
//!
//! Checks, for each alias (x86_64: 1 TiB and `0xffff_8000_0000_0000`; aarch64, whose map has 48
//! bits: 1 TiB and 128 TiB):
//! - 20k random alloc / free operations (8 B .. 64 KiB, some 3 MiB huge blocks, alignments up
//!   to 4 KiB) on up to 512 live blocks, every block at or above the alias, filled with a
//!   pattern and verified before it is freed; kiln's invariant walker passes;
//! - the same memory seen through its identity address, and an address in the alias range
//!   kiln never used, are refused as foreign frees (not read, not freed);
//! - everything goes back: the heap's segments return to the pool, the pool's to RAM.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec::Vec;

use kiln::allocator::{FreeError, Heap, Pool};
use kiln::platform::MemorySource;
use kiln_bare::{boot::Verdict, memory, println};
use kiln_qemu_tests::{check, fill, holds, Rng, ARCH};

kiln_bare::entry!(main);

/// RAM segments from `kiln_bare::memory::MEMORY`, seen at `offset` above their identity address.
struct Aliased {
    offset: usize,
}

// SAFETY: `MEMORY` hands out segment-aligned, unused RAM; the alias maps it read/write at
// `phys + offset` (a multiple of 512 GiB, so alignment is kept); release undoes the offset.
unsafe impl MemorySource for Aliased {
    fn reserve(&self, count: usize) -> *mut u8 {
        let p = memory::MEMORY.reserve(count);
        if p.is_null() {
            return p;
        }
        (p as usize + self.offset) as *mut u8
    }

    unsafe fn release(&self, base: *mut u8, count: usize) {
        // SAFETY: `base - offset` is what `MEMORY.reserve` returned for this count (caller).
        unsafe { memory::MEMORY.release((base as usize - self.offset) as *mut u8, count) }
    }
}

const TIB: usize = 1 << 40;
#[cfg(target_arch = "x86_64")]
const ALIASES: [usize; 2] = [TIB, 0xffff_8000_0000_0000];
#[cfg(target_arch = "aarch64")]
const ALIASES: [usize; 2] = [TIB, 128 * TIB];

static SOURCES: [Aliased; 2] = [
    Aliased { offset: ALIASES[0] },
    Aliased { offset: ALIASES[1] },
];
static POOLS: [Pool; 2] = [Pool::new(&SOURCES[0]), Pool::new(&SOURCES[1])];

fn main() -> Verdict {
    for (i, &alias) in ALIASES.iter().enumerate() {
        // SAFETY: nothing in this kernel uses the alias range; blocks are used only through
        // their alias address (the identity address is only handed to kiln's free, which must
        // refuse it without touching it).
        unsafe { kiln_bare::paging::alias_identity_map(alias) }?;
        run(&POOLS[i], alias)?;
        println!("{ARCH} heap at {alias:#x}: ok");
    }
    Ok(())
}

fn run(pool: &'static Pool, alias: usize) -> Result<(), &'static str> {
    let mut heap = Box::new(Heap::new(pool));
    let mut rng = Rng::new(alias as u64 ^ 0x4b49_4c4e);
    let mut live: Vec<(*mut u8, usize, u64)> = Vec::with_capacity(512);
    // After the kernel's own allocations above (the global heap keeps its segments).
    let free_before = memory::free_segments();
    let mut lowest = usize::MAX;
    for op in 0..20_000u64 {
        if live.len() < 512 && (live.is_empty() || rng.below(3) != 0) {
            let size = match rng.below(400) {
                0 => 3 << 20,
                1..=30 => 4096 + rng.below(60_000),
                _ => 1 + rng.below(2000),
            };
            let align = [8, 16, 64, 4096][rng.below(4)];
            let p = heap.alloc(size, align);
            check(!p.is_null(), "allocation failed")?;
            check((p as usize).is_multiple_of(align), "misaligned block")?;
            lowest = lowest.min(p as usize);
            // SAFETY: a fresh block of `size` bytes.
            unsafe { fill(p, size, op) };
            live.push((p, size, op));
        } else {
            let (p, size, tag) = live.swap_remove(rng.below(live.len()));
            // SAFETY: live, `size` bytes.
            check(unsafe { holds(p, size, tag) }, "block contents changed")?;
            // SAFETY: allocated by `heap`, freed once.
            let freed = unsafe { kiln::allocator::free(&mut heap, p) };
            check(freed.is_ok(), "free refused")?;
        }
    }
    check(lowest >= alias, "a block below the alias")?;
    heap.check().map_err(|_| "invariant walker failed")?;
    let (p, _, _) = live[0];
    let identity = (p as usize - alias) as *mut u8;
    // SAFETY: kiln must classify these without reading or changing them.
    let refused = unsafe {
        kiln::allocator::free(&mut heap, identity) == Err(FreeError::Foreign)
            && kiln::allocator::free(&mut heap, (alias + 300 * (1 << 30)) as *mut u8)
                == Err(FreeError::Foreign)
    };
    check(refused, "a foreign pointer was not refused")?;
    for (p, size, tag) in live.drain(..) {
        // SAFETY: live, `size` bytes.
        check(unsafe { holds(p, size, tag) }, "block contents changed")?;
        // SAFETY: allocated by `heap`, freed once.
        let freed = unsafe { kiln::allocator::free(&mut heap, p) };
        check(freed.is_ok(), "free refused")?;
    }
    heap.collect();
    heap.check().map_err(|_| "invariant walker failed")?;
    pool.trim();
    check(pool.segments_in_use() == 0, "segments still in use")?;
    check(
        memory::free_segments() == free_before,
        "segments not back in RAM",
    )?;
    drop(live);
    drop(heap);
    Ok(())
}
