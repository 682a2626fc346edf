//! Leaving QEMU with an exit code the runner can check.
//!
//! Only [`SUCCESS`] counts as a pass. x86_64 writes to `isa-debug-exit` (QEMU exits with
//! `(value << 1) | 1`); aarch64 calls semihosting `SYS_EXIT` (QEMU exits with the value).

#[cfg(target_arch = "aarch64")]
#[path = "_arch/aarch64/exit.rs"]
mod arch;
#[cfg(target_arch = "x86_64")]
#[path = "_arch/x86_64/exit.rs"]
mod arch;

/// QEMU's exit status for a passed test.
pub const SUCCESS: u8 = 33;
/// QEMU's exit status for a failed test (panic, exception, failed check).
pub const FAILURE: u8 = 35;

/// Ends the run: the test passed.
pub fn success() -> ! {
    arch::exit(SUCCESS)
}

/// Ends the run: the test failed.
pub fn failure() -> ! {
    arch::exit(FAILURE)
}
