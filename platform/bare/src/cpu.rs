//! The CPU: interrupt masking, the CPU index, halting.
//!
//! The architecture half (`_arch/<arch>/cpu.rs`) provides `irq_save`/`irq_restore`,
//! `set_cpu_index`/`cpu_index` and `wait_forever`; this file gives them one interface.

#[cfg(target_arch = "aarch64")]
#[path = "_arch/aarch64/cpu.rs"]
mod arch;
#[cfg(target_arch = "x86_64")]
#[path = "_arch/x86_64/cpu.rs"]
mod arch;

pub(crate) use arch::set_cpu_index;
pub use arch::{cpu_index, enable_interrupts, interrupts_enabled, park, wait_forever};

/// Most CPUs the per-CPU tables have room for.
pub const MAX_CPUS: usize = 8;

/// The interrupt mask as it was before [`IrqGuard::new`].
pub struct IrqGuard {
    saved: usize,
}

impl IrqGuard {
    /// Masks interrupts on this CPU until the guard is dropped (then restores the previous mask,
    /// so guards nest).
    #[inline]
    pub fn new() -> Self {
        IrqGuard {
            saved: arch::irq_save(),
        }
    }
}

impl Default for IrqGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for IrqGuard {
    #[inline]
    fn drop(&mut self) {
        arch::irq_restore(self.saved);
    }
}
