//! `isa-debug-exit` at I/O port 0xF4 (4 bytes): QEMU exits with `(value << 1) | 1`.
use crate::port::outl;

const DEBUG_EXIT_PORT: u16 = 0xF4;

/// Exits QEMU with status `code` (must be odd: the device can only produce odd statuses).
pub(super) fn exit(code: u8) -> ! {
    debug_assert!(code & 1 == 1);
    outl(DEBUG_EXIT_PORT, u32::from(code >> 1));
    // Without the device (a run without `-device isa-debug-exit`), stop here: the runner's
    // timeout turns this into a failure.
    crate::cpu::wait_forever()
}
