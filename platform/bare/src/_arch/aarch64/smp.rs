//! aarch64: PSCI `CPU_ON` through the conduit the device tree names (`hvc` when the kernel
//! runs at EL1 under QEMU's built-in PSCI, `smc` with `virtualization=on`).
//!
//! The new CPU starts at `kiln_bare_secondary_entry` with the MMU off and `x0` = its
//! [`Context`]; that context is cleaned to the point of coherency first, so the CPU reads it
//! correctly with its caches still off. The entry code turns the MMU on with the boot CPU's
//! registers ([`BootRegs`]) before the first Rust instruction.
use core::arch::{asm, global_asm};

use super::{secondary_main, Context, SmpError};
use crate::boot::arch::device_tree;

const PSCI_CPU_ON_64: u64 = 0xC400_0003;

/// The boot CPU's translation registers, loaded by a secondary before it runs any Rust: with
/// the MMU on from the first Rust instruction, its stack is cacheable Normal memory throughout
/// (no mix of uncached and cached accesses to the same lines).
#[repr(C)]
pub(crate) struct BootRegs {
    mair: u64,
    tcr: u64,
    ttbr0: u64,
    sctlr: u64,
}

impl BootRegs {
    pub(super) const ZERO: BootRegs = BootRegs {
        mair: 0,
        tcr: 0,
        ttbr0: 0,
        sctlr: 0,
    };

    /// This CPU's (the boot CPU's) values, MMU already on.
    pub(super) fn of_this_cpu() -> BootRegs {
        let (mair, tcr, ttbr0, sctlr): (u64, u64, u64, u64);
        // SAFETY: reading system registers has no effect.
        unsafe {
            asm!("mrs {}, mair_el1", "mrs {}, tcr_el1", "mrs {}, ttbr0_el1", "mrs {}, sctlr_el1",
                 out(reg) mair, out(reg) tcr, out(reg) ttbr0, out(reg) sctlr, options(nomem, nostack));
        }
        BootRegs {
            mair,
            tcr,
            ttbr0,
            sctlr,
        }
    }
}

global_asm!(
    r#"
    .section .text, "ax"
    .global kiln_bare_secondary_entry
kiln_bare_secondary_entry:
    mov x19, x0                      /* the Context */
    bl kiln_bare_enter_el1
    add x20, x19, #{regs}
    ldp x1, x2, [x20]                /* MAIR, TCR */
    ldp x3, x4, [x20, #16]           /* TTBR0, SCTLR */
    msr mair_el1, x1
    msr tcr_el1, x2
    msr ttbr0_el1, x3
    dsb ish
    isb
    tlbi vmalle1
    dsb ish
    isb
    msr sctlr_el1, x4
    isb
    ldr x1, [x19, #{stack_top}]
    mov sp, x1
    mov x0, x19
    bl kiln_bare_aarch64_secondary
1:  wfe
    b 1b
    "#,
    regs = const core::mem::offset_of!(Context, regs),
    stack_top = const core::mem::offset_of!(Context, stack_top),
);

extern "C" {
    fn kiln_bare_secondary_entry();
}

/// CPUs listed in the device tree.
pub(super) fn possible_cpus() -> usize {
    device_tree().map_or(1, |fdt| fdt.cpus().count())
}

/// The MPIDR of the `index`-th CPU node and whether PSCI uses `smc` (else `hvc`).
fn target(index: usize) -> Result<(u64, bool), SmpError> {
    let fdt = device_tree().ok_or(SmpError::Unsupported)?;
    let cpu = fdt.cpus().nth(index).ok_or(SmpError::NoMoreCpus)?;
    let mpidr = cpu.ids().first() as u64;
    let method = fdt
        .find_node("/psci")
        .and_then(|n| n.property("method"))
        .and_then(|p| p.as_str())
        .ok_or(SmpError::Unsupported)?;
    Ok((mpidr, method == "smc"))
}

/// Asks the firmware to start CPU `index` at the secondary entry with `ctx`.
pub(super) fn power_on(index: usize, ctx: &Context) -> Result<(), SmpError> {
    let (mpidr, smc) = target(index)?;
    let ctx_addr = ctx as *const Context as usize;
    clean_to_poc(ctx_addr, core::mem::size_of::<Context>());
    let entry = kiln_bare_secondary_entry as *const () as u64;
    let ret: i64;
    // SAFETY: PSCI CPU_ON starts another CPU at our entry code with its own stack (in ctx);
    // it touches no memory of this CPU. The conduit is the one the firmware advertises.
    unsafe {
        if smc {
            asm!("smc #0", inout("x0") PSCI_CPU_ON_64 => ret, in("x1") mpidr, in("x2") entry,
                 in("x3") ctx_addr, options(nostack));
        } else {
            asm!("hvc #0", inout("x0") PSCI_CPU_ON_64 => ret, in("x1") mpidr, in("x2") entry,
                 in("x3") ctx_addr, options(nostack));
        }
    }
    if ret == 0 {
        Ok(())
    } else {
        Err(SmpError::Firmware(ret))
    }
}

/// Writes the cache lines of `addr..addr + len` back to memory (for a CPU whose caches are off).
fn clean_to_poc(addr: usize, len: usize) {
    let ctr: usize;
    // SAFETY: reading CTR_EL0 has no effect.
    unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack)) };
    let line = 4usize << ((ctr >> 16) & 0xF);
    let mut a = addr & !(line - 1);
    while a < addr + len {
        // SAFETY: cleaning a mapped line changes no data.
        unsafe { asm!("dc cvac, {}", in(reg) a, options(nostack)) };
        a += line;
    }
    // SAFETY: barrier only.
    unsafe { asm!("dsb ish", options(nostack)) };
}

/// A secondary CPU's first Rust code (its MMU is already on): CPU index, then the generic
/// secondary main.
#[no_mangle]
extern "C" fn kiln_bare_aarch64_secondary(ctx: &Context) -> ! {
    // SAFETY: each secondary gets a distinct index from `start_secondary`, set once here.
    unsafe { crate::cpu::set_cpu_index(ctx.index) };
    secondary_main(ctx)
}
