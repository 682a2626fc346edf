//! aarch64 CPU primitives: DAIF, the CPU index in `TPIDR_EL1`, `wfe`.
use core::arch::asm;

use super::MAX_CPUS;

/// Saves DAIF and masks IRQ and FIQ.
#[inline]
pub(super) fn irq_save() -> usize {
    let daif: usize;
    // SAFETY: reads DAIF and masks IRQ/FIQ on this CPU only.
    unsafe { asm!("mrs {}, daif", "msr daifset, #3", out(reg) daif, options(nomem, nostack)) };
    daif
}

/// Puts DAIF back as [`irq_save`] found it.
#[inline]
pub(super) fn irq_restore(saved: usize) {
    // SAFETY: restores this CPU's own earlier mask.
    unsafe { asm!("msr daif, {}", in(reg) saved, options(nomem, nostack)) };
}

/// Whether this CPU takes IRQs now (DAIF.I clear).
pub fn interrupts_enabled() -> bool {
    let daif: usize;
    // SAFETY: reads DAIF; no other effect.
    unsafe { asm!("mrs {}, daif", out(reg) daif, options(nomem, nostack, preserves_flags)) };
    daif & (1 << 7) == 0
}

/// Unmasks IRQ and FIQ on this CPU.
///
/// # Safety
/// Every interrupt that can arrive has a handler (kiln-bare configures no interrupt controller,
/// so none is delivered; an unexpected one lands in the reporting vectors).
pub unsafe fn enable_interrupts() {
    // SAFETY: the caller vouches for the handlers.
    unsafe { asm!("msr daifclr, #3", options(nomem, nostack)) };
}

/// Records `index` in `TPIDR_EL1`.
///
/// # Safety
/// Called once per CPU, before anything reads [`cpu_index`], with a distinct `index < MAX_CPUS`.
pub(crate) unsafe fn set_cpu_index(index: usize) {
    assert!(index < MAX_CPUS);
    // SAFETY: TPIDR_EL1 is a scratch register kiln-bare owns.
    unsafe { asm!("msr tpidr_el1, {}", in(reg) index, options(nomem, nostack)) };
}

/// This CPU's index (0 = the boot CPU).
#[inline]
pub fn cpu_index() -> usize {
    let index: usize;
    // SAFETY: reads TPIDR_EL1, set by `set_cpu_index`.
    unsafe { asm!("mrs {}, tpidr_el1", out(reg) index, options(nomem, nostack, preserves_flags)) };
    index
}

/// Stops this CPU for good.
pub fn wait_forever() -> ! {
    loop {
        // SAFETY: masks interrupts and waits; only this CPU is affected.
        unsafe { asm!("msr daifset, #3", "wfe", options(nomem, nostack)) };
    }
}

/// Idles this CPU for good (aarch64 shoot-downs are broadcast in hardware; nothing to take).
pub fn park() -> ! {
    wait_forever()
}
