//! aarch64: PSCI `CPU_ON` through the conduit the device tree names (`hvc` when the kernel
//! runs at EL1 under QEMU's built-in PSCI, `smc` with `virtualization=on`).
//!
//! The new CPU starts at `kiln_bare_secondary_entry` with the MMU off and `x0` = its
//! [`Context`]; that context is cleaned to the point of coherency first, so the CPU reads it
//! correctly with its caches still off.
use core::arch::{asm, global_asm};

use super::{secondary_main, Context, SmpError};
use crate::boot::arch::device_tree;

const PSCI_CPU_ON_64: u64 = 0xC400_0003;

global_asm!(
    r#"
    .section .text, "ax"
    .global kiln_bare_secondary_entry
kiln_bare_secondary_entry:
    mov x19, x0                      /* context: stack_top at offset 0 */
    bl kiln_bare_enter_el1
    ldr x1, [x19]
    mov sp, x1
    mov x0, x19
    bl kiln_bare_aarch64_secondary
1:  wfe
    b 1b
    "#
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

/// A secondary CPU's first Rust code: CPU index, MMU on with the boot CPU's tables, then the
/// generic secondary main.
#[no_mangle]
extern "C" fn kiln_bare_aarch64_secondary(ctx: &Context) -> ! {
    // SAFETY: each secondary gets a distinct index from `start_secondary`, set once here.
    unsafe { crate::cpu::set_cpu_index(ctx.index) };
    // SAFETY: the boot CPU's tables identity-map everything this CPU touches.
    unsafe { crate::paging::enable_secondary() };
    secondary_main(ctx)
}
