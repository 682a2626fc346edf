//! x86 I/O port access.
use core::arch::asm;

/// Writes a byte to an I/O port.
pub(crate) fn outb(port: u16, value: u8) {
    // SAFETY: kiln-bare only names ports of devices it owns (COM1, isa-debug-exit).
    unsafe {
        asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
    };
}

/// Writes a 32-bit word to an I/O port.
pub(crate) fn outl(port: u16, value: u32) {
    // SAFETY: as for outb.
    unsafe {
        asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags))
    };
}

/// Reads a byte from an I/O port.
pub(crate) fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: as for outb; reading the UART's status register has no side effect.
    unsafe {
        asm!("in al, dx", out("al") value, in("dx") port, options(nomem, nostack, preserves_flags))
    };
    value
}

/// Writes a 16-bit word to an I/O port.
pub(crate) fn outw(port: u16, value: u16) {
    // SAFETY: as for outb (used for QEMU's fw_cfg selector).
    unsafe {
        asm!("out dx, ax", in("dx") port, in("ax") value, options(nomem, nostack, preserves_flags))
    };
}
