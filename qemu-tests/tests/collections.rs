//! Collections kernel: `alloc` collections on kiln (`#[global_allocator]`) on bare metal.
//!
//! Checks: `Vec` growth and sorting (200k pushes, a 50k-element sort keeps every element),
//! `BTreeMap` with 20k random keys whose values are pattern-filled byte vectors (half removed,
//! the rest still in key order with intact contents), `String`s built with `format!`, boxed
//! slices of 1 MiB and 5 MiB (a huge block); when everything is dropped and the heap collected,
//! all segments are back in the bitmap.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use kiln_bare::heap;
use kiln_bare::{boot::Verdict, memory, println};
use kiln_qemu_tests::{check, pattern, Rng, ARCH};

kiln_bare::entry!(main);

fn vectors(rng: &mut Rng) -> Result<(), &'static str> {
    let mut squares = Vec::new();
    for i in 0..200_000u64 {
        squares.push(i * i);
    }
    let n = 200_000u64 - 1;
    check(
        squares.iter().sum::<u64>() == n * (n + 1) * (2 * n + 1) / 6,
        "Vec lost or changed elements while growing",
    )?;
    squares.truncate(10);
    squares.shrink_to_fit();
    check(
        squares.capacity() >= 10 && squares[9] == 81,
        "shrink_to_fit",
    )?;

    let mut v: Vec<u32> = (0..50_000).map(|_| rng.next_u64() as u32).collect();
    let (sum, xor) = v
        .iter()
        .fold((0u64, 0u32), |(s, x), &e| (s + u64::from(e), x ^ e));
    v.sort_unstable();
    check(
        v.windows(2).all(|w| w[0] <= w[1]),
        "sort left elements out of order",
    )?;
    let (sum2, xor2) = v
        .iter()
        .fold((0u64, 0u32), |(s, x), &e| (s + u64::from(e), x ^ e));
    check(sum == sum2 && xor == xor2, "sort changed the elements")
}

fn maps(rng: &mut Rng) -> Result<(), &'static str> {
    let mut map: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
    for _ in 0..20_000 {
        let key = rng.next_u64() % 1_000_000;
        let len = rng.below(200);
        map.insert(key, (0..len).map(|i| pattern(key, i)).collect());
    }
    let keys: Vec<u64> = map.keys().copied().collect();
    for k in keys.iter().step_by(2) {
        check(map.remove(k).is_some(), "BTreeMap lost a key")?;
    }
    check(
        map.len() == keys.len() / 2,
        "BTreeMap length after removals",
    )?;
    let mut last = None;
    for (k, v) in &map {
        check(last < Some(*k), "BTreeMap iteration out of order")?;
        check(
            v.iter().enumerate().all(|(i, &b)| b == pattern(*k, i)),
            "BTreeMap value corrupted",
        )?;
        last = Some(*k);
    }
    Ok(())
}

fn strings() -> Result<(), &'static str> {
    let mut all = String::new();
    for i in 0..10_000 {
        all.push_str(&format!("{i:05},"));
    }
    check(all.len() == 60_000, "format!/push_str length")?;
    check(&all[6 * 1234..6 * 1235] == "01234,", "String contents")
}

fn big_blocks() -> Result<(), &'static str> {
    let one: Box<[u8]> = vec![0xA5; 1 << 20].into_boxed_slice();
    let five: Box<[u8]> = vec![0x5A; 5 << 20].into_boxed_slice();
    check(one.iter().all(|&b| b == 0xA5), "1 MiB box contents")?;
    check(five.iter().all(|&b| b == 0x5A), "5 MiB box contents")?;
    check(
        heap::HEAPS
            .usable_size(five.as_ptr())
            .is_some_and(|n| n >= 5 << 20),
        "usable_size of a huge block",
    )
}

fn main() -> Verdict {
    let free_before = memory::free_segments();
    let mut rng = Rng::new(0xC011_EC71);
    vectors(&mut rng)?;
    maps(&mut rng)?;
    strings()?;
    big_blocks()?;
    heap::collect();
    let free_after = memory::free_segments();
    let stats = kiln::allocator::stats::snapshot();
    println!(
        "{ARCH}: collections on kiln: {} fast + {} slow + {} huge allocations; free segments before {free_before}, after {free_after}",
        stats.fast_alloc, stats.slow_alloc, stats.huge_alloc
    );
    check(
        stats.huge_alloc >= 1,
        "the 5 MiB box did not take the huge path",
    )?;
    check(
        free_after == free_before,
        "segments not returned after dropping everything",
    )
}
