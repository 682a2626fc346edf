//! The serial port: a 16550 on COM1 (x86_64) or the PL011 of QEMU `virt` (aarch64).
//!
//! Raw byte output only; [`crate::console`] adds the lock and formatting.

#[cfg(target_arch = "aarch64")]
#[path = "_arch/aarch64/serial.rs"]
mod arch;
#[cfg(target_arch = "x86_64")]
#[path = "_arch/x86_64/serial.rs"]
mod arch;

pub(crate) use arch::{init, write_byte};
