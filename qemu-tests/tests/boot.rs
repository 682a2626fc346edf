//! Boot smoke test: the kernel boots, prints over serial, sees RAM, and exits with the success
//! code. Fails if the segment pool is empty or the early heap cannot allocate.
#![no_std]
#![no_main]

use core::alloc::Layout;

use kiln_bare::{boot::Verdict, early_heap, memory, println};
use kiln_qemu_tests::{check, ARCH};

kiln_bare::entry!(main);

fn main() -> Verdict {
    println!(
        "hello from kiln-bare on {ARCH}, CPU {}",
        kiln_bare::cpu::cpu_index()
    );
    let total = memory::total_segments();
    let free = memory::free_segments();
    println!("segment pool: {free} of {total} segments free");
    check(
        total >= 64,
        "expected at least 128 MiB of segments under -m 256M",
    )?;
    check(free == total, "segments in use before anything allocated")?;
    let layout = Layout::from_size_align(1000, 64).unwrap();
    let p = early_heap::alloc(layout);
    check(
        !p.is_null() && (p as usize).is_multiple_of(64),
        "early heap allocation",
    )?;
    check(
        early_heap::contains(p),
        "early heap pointer outside its region",
    )?;
    // SAFETY: p came from early_heap::alloc with this layout and is not used afterwards.
    unsafe { early_heap::dealloc(p, layout) };
    Ok(())
}
