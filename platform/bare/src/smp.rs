//! Starting the other CPUs.
//!
//! ```text
//!   boot CPU                              secondary CPU (index i)
//!   start_secondary(entry)
//!     i = NEXT++ ; CONTEXTS[i] = {stack, i, entry}
//!     arch::power_on(i, &CONTEXTS[i])  -->  asm entry: EL1, FP on, vectors, MMU on with the
//!                                           boot CPU's registers (aarch64), sp = stack
//!                                           Rust: cpu index = i
//!     wait for CONTEXTS[i].started  <----   started = true; entry(); park forever
//! ```
//! aarch64 uses PSCI `CPU_ON` (conduit `hvc` or `smc`, as the device tree's `/psci` node says);
//! x86_64 sends INIT-SIPI-SIPI to a real-mode trampoline at 0x8000.
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::cpu::MAX_CPUS;

#[cfg(target_arch = "aarch64")]
#[path = "_arch/aarch64/smp.rs"]
mod arch;
#[cfg(target_arch = "x86_64")]
#[path = "_arch/x86_64/smp.rs"]
mod arch;

/// Bytes of stack each secondary CPU gets: as much as the boot CPU's.
pub const STACK_SIZE: usize = crate::boot::STACK_SIZE;

/// Why a CPU did not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmpError {
    /// This architecture port cannot start CPUs (yet).
    Unsupported,
    /// The machine has no further CPU (or the per-CPU tables are full).
    NoMoreCpus,
    /// The firmware refused (PSCI return code).
    Firmware(i64),
    /// The CPU was powered on but never reported in.
    Timeout,
}

#[repr(C, align(16))]
struct Stack([u8; STACK_SIZE]);

/// What a starting CPU needs; read by its assembly entry (`stack_top` first).
#[repr(C)]
pub(crate) struct Context {
    stack_top: usize,
    index: usize,
    entry: Option<fn()>,
    started: AtomicBool,
    /// What the architecture's entry code loads before any Rust runs.
    regs: arch::BootRegs,
}

static mut STACKS: [Stack; MAX_CPUS] = [const { Stack([0; STACK_SIZE]) }; MAX_CPUS];
static mut CONTEXTS: [Context; MAX_CPUS] = [const {
    Context {
        stack_top: 0,
        index: 0,
        entry: None,
        started: AtomicBool::new(false),
        regs: arch::BootRegs::ZERO,
    }
}; MAX_CPUS];
static NEXT: AtomicUsize = AtomicUsize::new(1);

/// CPUs the machine has (1 when it cannot tell).
pub fn possible_cpus() -> usize {
    arch::possible_cpus().clamp(1, MAX_CPUS)
}

/// CPUs running now (the boot CPU plus every started secondary).
pub fn running_cpus() -> usize {
    NEXT.load(Ordering::Acquire)
}

/// Starts the next CPU, which runs `entry` on its own stack and then parks. Returns its CPU
/// index once it is running. Call from the boot CPU only.
pub fn start_secondary(entry: fn()) -> Result<usize, SmpError> {
    let index = NEXT.load(Ordering::Acquire);
    if index >= possible_cpus() {
        return Err(SmpError::NoMoreCpus);
    }
    // SAFETY: only the boot CPU runs this, and CPU `index` has not started: nothing else
    // touches its stack or context.
    let ctx = unsafe {
        let stack = &raw mut STACKS[index];
        let ctx = &raw mut CONTEXTS[index];
        (*ctx).stack_top = stack as usize + STACK_SIZE;
        (*ctx).index = index;
        (*ctx).entry = Some(entry);
        (*ctx).regs = arch::BootRegs::of_this_cpu();
        &*ctx
    };
    arch::power_on(index, ctx)?;
    for _ in 0..100_000_000u64 {
        if ctx.started.load(Ordering::Acquire) {
            NEXT.store(index + 1, Ordering::Release);
            return Ok(index);
        }
        core::hint::spin_loop();
    }
    Err(SmpError::Timeout)
}

/// A secondary CPU's first Rust code after its architecture set-up: announce, run, park
/// (parked, it still takes TLB shoot-downs).
fn secondary_main(ctx: &Context) -> ! {
    ctx.started.store(true, Ordering::Release);
    if let Some(entry) = ctx.entry {
        entry();
    }
    crate::cpu::park()
}
