//! PL011 UART of QEMU `virt` at 0x0900_0000, polled.
use core::ptr::{read_volatile, write_volatile};

const BASE: usize = 0x0900_0000;
const DR: usize = BASE;
const FR: usize = BASE + 0x18;
const FR_TXFF: u32 = 1 << 5;

/// QEMU's PL011 needs no set-up to transmit.
pub(crate) fn init() {}

/// Sends one byte once the transmit FIFO has room.
pub(crate) fn write_byte(byte: u8) {
    // SAFETY: FR and DR are the PL011's registers, identity-mapped as Device memory (or
    // reached with the MMU off); polling FR and writing DR has no other effect.
    unsafe {
        while read_volatile(FR as *const u32) & FR_TXFF != 0 {
            core::hint::spin_loop();
        }
        write_volatile(DR as *mut u32, u32::from(byte));
    }
}
