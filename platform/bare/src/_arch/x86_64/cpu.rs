//! x86_64 CPU primitives: RFLAGS.IF, the per-CPU block at `gs:0`, `hlt`.
use core::arch::asm;

use super::MAX_CPUS;

const IA32_GS_BASE: u32 = 0xC000_0101;
const RFLAGS_IF: usize = 1 << 9;

/// The block `gs` points at; its first word is the CPU index.
#[repr(C, align(64))]
struct PerCpuBlock {
    index: usize,
}

static mut BLOCKS: [PerCpuBlock; MAX_CPUS] = [const { PerCpuBlock { index: 0 } }; MAX_CPUS];

/// Saves RFLAGS and clears IF.
#[inline]
pub(super) fn irq_save() -> usize {
    let flags: usize;
    // SAFETY: reads RFLAGS and clears IF; touches only the stack slot pushfq uses.
    unsafe { asm!("pushfq", "pop {}", "cli", out(reg) flags, options(nomem, preserves_flags)) };
    flags
}

/// Sets IF again if it was set in `saved`.
#[inline]
pub(super) fn irq_restore(saved: usize) {
    if saved & RFLAGS_IF != 0 {
        // SAFETY: re-enables interrupts that were enabled before the matching irq_save.
        unsafe { asm!("sti", options(nomem, nostack)) };
    }
}

/// Whether this CPU takes interrupts now (RFLAGS.IF).
pub fn interrupts_enabled() -> bool {
    let flags: usize;
    // SAFETY: reads RFLAGS through the stack; no other effect.
    unsafe { asm!("pushfq", "pop {}", out(reg) flags, options(nomem, preserves_flags)) };
    flags & RFLAGS_IF != 0
}

/// Lets this CPU take interrupts (`sti`).
///
/// # Safety
/// Every interrupt that can arrive has a handler (boot masks the legacy PICs; kiln-bare programs
/// no other interrupt source).
pub unsafe fn enable_interrupts() {
    // SAFETY: the caller vouches for the handlers.
    unsafe { asm!("sti", options(nomem, nostack)) };
}

/// Points `gs` at this CPU's block and records `index` there.
///
/// # Safety
/// Called once per CPU, before anything reads [`cpu_index`], with a distinct `index < MAX_CPUS`.
pub(crate) unsafe fn set_cpu_index(index: usize) {
    assert!(index < MAX_CPUS);
    // SAFETY: each CPU writes only its own block, once, before anyone reads it.
    let block = unsafe { &raw mut BLOCKS[index] };
    // SAFETY: as above; `block` is valid and unshared.
    unsafe { (*block).index = index };
    let addr = block as usize;
    // SAFETY: writing IA32_GS_BASE only changes where `gs:` operands point.
    unsafe {
        asm!("wrmsr", in("ecx") IA32_GS_BASE, in("eax") addr as u32, in("edx") (addr >> 32) as u32,
             options(nostack, preserves_flags));
    }
}

/// This CPU's index (0 = the boot CPU).
#[inline]
pub fn cpu_index() -> usize {
    let index: usize;
    // SAFETY: `gs` points at this CPU's block since `set_cpu_index`; reads its first word.
    unsafe {
        asm!("mov {}, qword ptr gs:[0]", out(reg) index, options(readonly, nostack, preserves_flags))
    };
    index
}

/// Stops this CPU for good (interrupts off, `hlt` in a loop).
pub fn wait_forever() -> ! {
    loop {
        // SAFETY: cli; hlt only stops this CPU.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

/// Idles this CPU for good while it keeps taking interrupts (the TLB shoot-down IPI): a parked
/// CPU must still acknowledge shoot-downs, or their initiator would wait forever.
pub fn park() -> ! {
    loop {
        // SAFETY: sti; hlt waits for the next interrupt; handlers return here.
        unsafe { asm!("sti", "hlt", options(nomem, nostack)) };
    }
}
