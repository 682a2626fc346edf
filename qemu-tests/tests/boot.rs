//! Boot smoke test: the kernel boots, prints over serial, sees RAM, and exits with the success
//! code. Fails if the segment pool is empty, the early heap cannot allocate, or a lock / the
//! pinned heap leaves interrupts enabled while held (or disabled afterwards).
#![no_std]
#![no_main]

use core::alloc::Layout;

use kiln_bare::console::SerialConsole;
use kiln_bare::sync::IrqMutex;
use kiln_bare::{boot::Verdict, cpu, early_heap, heap, memory, println};
use kiln_qemu_tests::{check, ARCH};

kiln_bare::entry!(main);

fn main() -> Verdict {
    println!(
        "hello from kiln-bare on {ARCH}, CPU {}",
        kiln_bare::cpu::cpu_index()
    );
    // kiln's own console (where `[JIT]` traces go) is the same serial port.
    kiln::platform::Console::write_bytes(&SerialConsole, b"[kiln] console: serial\n");
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
    interrupt_masking()
}

/// Locks and the per-CPU heap slot must mask interrupts while held and restore them after.
fn interrupt_masking() -> Verdict {
    use kiln::global::LocalSlot;
    check(!cpu::interrupts_enabled(), "boot left interrupts enabled")?;
    // SAFETY: no interrupt source is programmed (the x86 PICs are masked at boot, aarch64 has no
    // interrupt controller set up), and the vectors report anything unexpected.
    unsafe { cpu::enable_interrupts() };
    check(cpu::interrupts_enabled(), "interrupts did not turn on")?;
    let lock = IrqMutex::new(0u32);
    {
        let mut held = lock.lock();
        *held += 1;
        check(
            !cpu::interrupts_enabled(),
            "interrupts on while an IrqMutex is held",
        )?;
        let nested = IrqMutex::new(());
        drop(nested.lock());
        check(
            !cpu::interrupts_enabled(),
            "inner guard re-enabled interrupts under the outer one",
        )?;
    }
    check(
        cpu::interrupts_enabled(),
        "interrupts stayed off after the lock was released",
    )?;
    let masked_in_heap = heap::HEAPS.with_heap(|_| !cpu::interrupts_enabled());
    check(
        masked_in_heap,
        "interrupts on while pinned to the CPU's heap",
    )?;
    check(
        cpu::interrupts_enabled(),
        "interrupts stayed off after with_heap",
    )?;
    // A moment with interrupts on: nothing may arrive (nothing is programmed).
    for _ in 0..100_000 {
        core::hint::spin_loop();
    }
    println!("interrupt masking: locks and the pinned heap mask, release restores");
    Ok(())
}
