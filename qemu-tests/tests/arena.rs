//! Arena kernel: `kiln::allocator::arena::Arena` on bare metal, its chunks from kiln (the
//! `#[global_allocator]`).
//!
//! Checks: 50k linked nodes bumped into the arena keep their contents and links; 10k strings
//! copied in read back intact; an `allocator_api2` `Vec` in the arena grows to 100k elements;
//! all of that costs few chunk allocations (bump allocation); `rollback` to a mark gives the
//! bytes back, `reset` keeps one chunk and makes older marks stale (refused, not followed);
//! once the arena is dropped and the heap collected, every segment is back in the bitmap.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;

use allocator_api2::vec::Vec as ArenaVec;
use kiln::allocator::arena::Arena;
use kiln_bare::heap;
use kiln_bare::{boot::Verdict, memory, println};
use kiln_qemu_tests::{check, ARCH};

kiln_bare::entry!(main);

struct Node<'a> {
    id: u64,
    next: Option<&'a Node<'a>>,
}

fn nodes_and_strings(arena: &Arena) -> Result<(), &'static str> {
    let mut head: Option<&Node> = None;
    for id in 0..50_000u64 {
        head = Some(arena.alloc(Node { id, next: head }));
    }
    let (mut count, mut expect, mut node) = (0u64, 50_000u64, head);
    while let Some(n) = node {
        expect -= 1;
        check(n.id == expect, "arena node changed")?;
        count += 1;
        node = n.next;
    }
    check(count == 50_000, "arena list lost nodes")?;

    let strings: ArenaVec<&str, &Arena> = {
        let mut v = ArenaVec::new_in(arena);
        for i in 0..10_000 {
            v.push(arena.alloc_str(&format!("token-{i}")));
        }
        v
    };
    for (i, s) in strings.iter().enumerate() {
        check(*s == format!("token-{i}"), "arena string changed")?;
    }

    let mut numbers: ArenaVec<u32, &Arena> = ArenaVec::new_in(arena);
    for i in 0..100_000 {
        numbers.push(i * 3);
    }
    check(
        numbers.iter().enumerate().all(|(i, &x)| x == i as u32 * 3),
        "arena Vec contents",
    )
}

fn marks_and_reset(arena: &mut Arena) -> Result<(), &'static str> {
    let before = arena.stats().bytes_in_use;
    let mark = arena.mark();
    for i in 0..10_000u64 {
        arena.alloc(i);
    }
    check(
        arena.stats().bytes_in_use > before,
        "allocations not counted",
    )?;
    arena
        .rollback(mark)
        .map_err(|_| "rollback to a fresh mark refused")?;
    check(arena.stats().bytes_in_use == before, "rollback kept bytes")?;
    let old = arena.mark();
    arena.alloc_str("spills into a later chunk? no matter");
    arena.reset();
    check(arena.stats().chunks <= 1, "reset kept more than one chunk")?;
    arena.alloc(7u64);
    let stale = arena.rollback(old);
    println!("{ARCH}: rollback to a mark from before reset: {stale:?}");
    check(stale.is_err(), "a mark from before reset was followed")
}

fn main() -> Verdict {
    let free_before = memory::free_segments();
    {
        let mut arena = Arena::new();
        nodes_and_strings(&arena)?;
        let stats = arena.stats();
        println!(
            "{ARCH}: arena: {} allocations in {} chunk allocations ({} chunks, {} bytes in use, {} grown in place)",
            stats.allocations,
            stats.chunk_allocations,
            stats.chunks,
            stats.bytes_in_use,
            stats.grows_in_place
        );
        check(stats.allocations >= 60_000, "arena allocations not counted")?;
        check(
            stats.chunk_allocations <= 64,
            "arena took a chunk per few objects",
        )?;
        marks_and_reset(&mut arena)?;
    }
    heap::collect();
    let free_after = memory::free_segments();
    println!(
        "{ARCH}: free segments before {free_before}, after the arena was dropped {free_after}"
    );
    check(free_after == free_before, "arena chunks not returned")
}
