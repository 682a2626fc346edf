//! The local APIC (xAPIC, memory-mapped at its reset address), as far as kiln-bare uses it:
//! software enable, inter-processor interrupts, end of interrupt.
//!
//! ```text
//!   0xFEE0_0000 + 0x0B0  EOI            write 0 when a fixed interrupt's handler is done
//!               + 0x0F0  spurious vector bit 8 = APIC software enable, bits 0-7 = vector
//!               + 0x300  ICR low        vector, delivery mode, level; bit 12 = send pending
//!               + 0x310  ICR high       destination APIC ID in bits 24-31
//! ```
//! QEMU numbers local APIC IDs 0, 1, ... in CPU order, and kiln-bare starts CPU index i on APIC
//! ID i, so a CPU index is its APIC ID.

const BASE: usize = 0xFEE0_0000;
const EOI: usize = 0xB0;
const SVR: usize = 0xF0;
const ICR_LOW: usize = 0x300;
const ICR_HIGH: usize = 0x310;
const SVR_ENABLE: u32 = 1 << 8;
const ICR_PENDING: u32 = 1 << 12;
/// ICR: level "assert" (required for everything but INIT de-assert), fixed delivery.
const ICR_FIXED_ASSERT: u32 = 1 << 14;

/// Vector of the spurious interrupt (its handler only returns: no EOI for spurious ones).
pub(crate) const SPURIOUS_VECTOR: u8 = 0xFF;

fn write(reg: usize, value: u32) {
    // SAFETY: the local APIC's registers are identity-mapped (uncached, see `enable`) MMIO.
    unsafe { core::ptr::write_volatile((BASE + reg) as *mut u32, value) };
}

fn read(reg: usize) -> u32 {
    // SAFETY: as for `write`.
    unsafe { core::ptr::read_volatile((BASE + reg) as *const u32) }
}

/// Software-enables this CPU's local APIC (needed to receive fixed IPIs) with the spurious
/// vector [`SPURIOUS_VECTOR`].
pub(crate) fn enable() {
    // SAFETY: the APIC's 2 MiB page holds only device registers; marking it uncached again on
    // a later CPU is harmless.
    unsafe { crate::paging::make_uncached(BASE) };
    write(SVR, read(SVR) | SVR_ENABLE | u32::from(SPURIOUS_VECTOR));
}

/// Sends one inter-processor interrupt (`command` = ICR low bits) to `apic_id` and waits until
/// this APIC has delivered it.
pub(crate) fn send_ipi(apic_id: u32, command: u32) {
    write(ICR_HIGH, apic_id << 24);
    write(ICR_LOW, command);
    while read(ICR_LOW) & ICR_PENDING != 0 {
        core::hint::spin_loop();
    }
}

/// Sends the fixed interrupt `vector` to `apic_id`.
pub(crate) fn send_fixed(apic_id: u32, vector: u8) {
    send_ipi(apic_id, ICR_FIXED_ASSERT | u32::from(vector));
}

/// Signals the end of the fixed interrupt being handled on this CPU.
pub(crate) fn end_of_interrupt() {
    write(EOI, 0);
}
