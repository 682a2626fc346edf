//! Semihosting `SYS_EXIT` (`hlt #0xf000`): QEMU exits with the given status.
use core::arch::asm;

const SYS_EXIT: usize = 0x18;
const ADP_STOPPED_APPLICATION_EXIT: u64 = 0x20026;

/// Exits QEMU with status `code` (needs `-semihosting-config enable=on,target=native`).
pub(super) fn exit(code: u8) -> ! {
    let block: [u64; 2] = [ADP_STOPPED_APPLICATION_EXIT, u64::from(code)];
    // SAFETY: the semihosting call reads the two-word block and ends the VM; if semihosting is
    // off, `hlt` traps into our vectors, which report and stop.
    unsafe {
        asm!("hlt #0xf000", in("x0") SYS_EXIT, in("x1") block.as_ptr(), options(nostack));
    }
    crate::cpu::wait_forever()
}
