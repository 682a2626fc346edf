//! Instruction-cache maintenance after writing code.
//!
//! aarch64 caches are not coherent between data writes and instruction fetch: new code must be
//! cleaned from the data cache to the point of unification, then invalidated from the
//! instruction cache, per line (`dc cvau`, `dsb ish`, `ic ivau`, `dsb ish`, `isb`; line sizes
//! from CTR_EL0). x86_64 keeps them coherent; a serialising instruction suffices.
//!
//! That makes the code visible to instruction fetch everywhere; a CPU *other* than the writer
//! may still hold older instructions in its pipeline, so before it first runs code another CPU
//! installed it calls [`sync_core`] (aarch64 `isb`, x86_64 a serialising `cpuid`).

#[cfg(target_arch = "aarch64")]
#[path = "_arch/aarch64/cache.rs"]
mod arch;
#[cfg(target_arch = "x86_64")]
#[path = "_arch/x86_64/cache.rs"]
mod arch;

pub use arch::{sync_core, sync_icache};
