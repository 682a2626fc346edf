//! Helpers shared by the QEMU test kernels in `tests/` (each kernel is a `harness = false` test).
#![no_std]

/// The architecture this kernel was built for, for messages.
pub const ARCH: &str = if cfg!(target_arch = "x86_64") {
    "x86_64"
} else {
    "aarch64"
};

/// Turns a failed condition into the kernel's `Err` verdict.
pub fn check(ok: bool, what: &'static str) -> Result<(), &'static str> {
    if ok {
        Ok(())
    } else {
        Err(what)
    }
}
