//! Guarded calls: run a function and turn a page fault inside it into an error instead of a
//! failed run. Tests use them to probe page permissions (does a write to this page fault? does
//! calling into it?) from any CPU.
//!
//! ```text
//!   call_guarded(f, arg)                      asm (_arch/<arch>/guard.rs)
//!     save callee-saved registers; SLOTS[cpu] = sp; r = f(arg); SLOTS[cpu] = 0  -> Ok(r)
//!   page fault while SLOTS[cpu] != 0          exception handler
//!     FAULTS[cpu] = faulting address; resume at `recover` with sp = SLOTS[cpu]
//!   recover: SLOTS[cpu] = 0; restore callee-saved registers                    -> Err(fault)
//! ```
//! Invariants: a slot is non-zero only while its CPU is inside `call_guarded` (guarded calls do
//! not nest); only page faults (x86_64 #PF; aarch64 instruction or data abort at EL1) are
//! recovered, anything else still fails the run.
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::cpu::{cpu_index, MAX_CPUS};

#[cfg(target_arch = "aarch64")]
#[path = "_arch/aarch64/guard.rs"]
mod arch;
#[cfg(target_arch = "x86_64")]
#[path = "_arch/x86_64/guard.rs"]
mod arch;

/// A page fault a guarded call ran into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageFault {
    /// The address whose access faulted (x86_64 CR2, aarch64 FAR_EL1).
    pub addr: usize,
}

/// What the assembly returns (two registers).
#[repr(C)]
struct Outcome {
    value: u64,
    faulted: u64,
}

/// Stack pointer to resume at, per CPU (0: no guarded call running).
static SLOTS: [AtomicUsize; MAX_CPUS] = [const { AtomicUsize::new(0) }; MAX_CPUS];
/// The address of the last recovered fault, per CPU.
static FAULTS: [AtomicUsize; MAX_CPUS] = [const { AtomicUsize::new(0) }; MAX_CPUS];

/// Calls the C-ABI function `fn(u64) -> u64` at `f` with `arg`; a page fault anywhere inside it
/// ends the call with `Err` (the function is abandoned at the faulting instruction).
///
/// # Safety
/// `f` is the address of a function with that signature (or a page whose execution faults),
/// and abandoning it at any faulting access is harmless: it holds no lock, owns nothing that
/// needs dropping and leaves no data half-updated that anyone reads later. Not re-entrant.
pub unsafe fn call_guarded(f: usize, arg: u64) -> Result<u64, PageFault> {
    let cpu = cpu_index();
    // SAFETY: the caller vouches for `f`; the slot is this CPU's own, the assembly keeps every
    // callee-saved register, and a recovered fault resumes it with the stack pointer it saved.
    let out = unsafe { arch::kiln_bare_guarded_call(f, arg, &SLOTS[cpu]) };
    if out.faulted == 0 {
        Ok(out.value)
    } else {
        Err(PageFault {
            addr: FAULTS[cpu].load(Ordering::Relaxed),
        })
    }
}

/// For the exception handlers: if this CPU is inside a guarded call, records the fault at
/// `addr` and returns `(resume pc, resume sp)`; `None` otherwise (the fault is fatal).
pub(crate) fn recover(addr: usize) -> Option<(usize, usize)> {
    let cpu = cpu_index();
    let sp = SLOTS[cpu].load(Ordering::Relaxed);
    if sp == 0 {
        return None;
    }
    FAULTS[cpu].store(addr, Ordering::Relaxed);
    Some((arch::recover_entry(), sp))
}
