//! aarch64 entry on QEMU `virt` (`-kernel`, ELF linked at 0x4020_0000): EL1 (or EL2, which we
//! leave for EL1), MMU off, device tree at the start of RAM.
//!
//! The assembly parks every CPU but the first, drops to EL1 if entered at EL2, enables FP/SIMD
//! (CPACR_EL1.FPEN = 0b11: aarch64-unknown-none code uses FP registers), sets the stack, zeroes
//! `.bss`, installs the exception vectors and calls [`kiln_bare_aarch64_start`], which reads the
//! RAM size from the device tree, turns the MMU on and runs the generic boot.
//!
//! Vector table: 16 entries of 128 bytes (current EL with SP0 / SPx, lower EL 64 / 32 bit; each
//! sync, IRQ, FIQ, SError). Every entry reports and exits (kiln-bare takes no interrupts), except
//! a page fault inside a guarded call ([`crate::guard`]), which resumes at its recovery point.
use core::arch::global_asm;

use crate::{exit, println};

/// Where QEMU `virt` puts the device tree for a bare ELF kernel.
const DTB_ADDR: usize = 0x4000_0000;

global_asm!(
    r#"
    .section .text.boot, "ax"
    .global _start
_start:
    mrs x1, mpidr_el1
    and x1, x1, #0xff
    cbz x1, 1f
0:  wfe                              /* a secondary CPU: PSCI CPU_ON starts it elsewhere */
    b 0b
1:  bl kiln_bare_enter_el1
    ldr x1, =kiln_bare_boot_stack_top
    mov sp, x1
    ldr x1, =__bss_start
    ldr x2, =__bss_end
2:  cmp x1, x2
    b.hs 3f
    stp xzr, xzr, [x1], #16
    b 2b
3:  bl kiln_bare_aarch64_start
4:  wfe
    b 4b

    /* Leaves EL2 for EL1 (if at EL2), turns FP/SIMD on, installs the vectors. Uses x1, x2. */
    .global kiln_bare_enter_el1
kiln_bare_enter_el1:
    mrs x1, CurrentEL
    cmp x1, #(2 << 2)
    b.ne 5f
    mov x1, #(1 << 31)               /* HCR_EL2.RW: EL1 is AArch64 */
    msr hcr_el2, x1
    mov x1, #3                       /* CNTHCTL_EL2: EL1 may use the physical timer */
    msr cnthctl_el2, x1
    mov x1, #0x3c5                   /* EL1h, DAIF masked */
    msr spsr_el2, x1
    msr elr_el2, x30
    mov x2, sp
    msr sp_el1, x2
    mov x1, #(3 << 20)
    msr cpacr_el1, x1
    adr x1, kiln_bare_vectors
    msr vbar_el1, x1
    isb
    eret
5:  mov x1, #(3 << 20)               /* CPACR_EL1.FPEN = 0b11 */
    msr cpacr_el1, x1
    adr x1, kiln_bare_vectors
    msr vbar_el1, x1
    isb
    ret

    .macro VECTOR kind
    .balign 128
    mov x0, #\kind
    b vector_common
    .endm

    .section .text.vectors, "ax"
    .balign 2048
kiln_bare_vectors:
    VECTOR 0
    VECTOR 1
    VECTOR 2
    VECTOR 3
    VECTOR 4
    VECTOR 5
    VECTOR 6
    VECTOR 7
    VECTOR 8
    VECTOR 9
    VECTOR 10
    VECTOR 11
    VECTOR 12
    VECTOR 13
    VECTOR 14
    VECTOR 15
vector_common:
    mrs x1, esr_el1
    mrs x2, elr_el1
    mrs x3, far_el1
    bl kiln_bare_exception           /* returns only to resume a guarded call */
    msr elr_el1, x0
    mov sp, x1
    eret

    "#
);

/// The first Rust code on the boot CPU: RAM from the device tree, MMU on, generic boot.
#[no_mangle]
extern "C" fn kiln_bare_aarch64_start() -> ! {
    // SAFETY: the boot CPU is index 0, set once before anything reads it.
    unsafe { crate::cpu::set_cpu_index(0) };
    let ram = match ram_from_device_tree() {
        Ok(ram) => ram,
        Err(why) => {
            println!("[kiln-bare] cannot find RAM: {why}");
            exit::failure()
        }
    };
    crate::paging::init(ram.clone());
    super::start(ram)
}

/// The device tree QEMU left at [`DTB_ADDR`] (it stays there: the segment pool starts above the
/// kernel image), or `None` if there is none.
pub(crate) fn device_tree() -> Option<fdt::Fdt<'static>> {
    // SAFETY: QEMU `virt` places a device tree blob at the start of RAM, below the image, and
    // nothing writes there; `from_ptr` checks the magic and size before reading further.
    unsafe { fdt::Fdt::from_ptr(DTB_ADDR as *const u8) }.ok()
}

/// The first `/memory` region of the device tree.
fn ram_from_device_tree() -> Result<core::ops::Range<usize>, &'static str> {
    let fdt = device_tree().ok_or("no valid device tree at 0x40000000")?;
    let region = fdt
        .memory()
        .regions()
        .next()
        .ok_or("device tree has no memory region")?;
    let start = region.starting_address as usize;
    let size = region.size.ok_or("memory region without a size")?;
    Ok(start..start + size)
}

/// Names of the 16 vector entries (by group of four: sync, IRQ, FIQ, SError).
const VECTOR_GROUPS: [&str; 4] = [
    "current EL, SP0",
    "current EL, SPx",
    "lower EL, AArch64",
    "lower EL, AArch32",
];
const VECTOR_KINDS: [&str; 4] = ["synchronous", "IRQ", "FIQ", "SError"];

static IN_EXCEPTION: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

/// Where a recovered exception resumes (`eret` to `pc` with `sp`).
#[repr(C)]
struct Resume {
    pc: usize,
    sp: usize,
}

/// Vector entry 4: synchronous, current EL with SP_EL1 (kiln-bare runs at EL1h).
const SYNC_CURRENT_EL_SPX: u64 = 4;
/// ESR_EL1.EC: instruction abort and data abort taken without a change of EL.
const EC_INSTRUCTION_ABORT_SAME_EL: u64 = 0x21;
const EC_DATA_ABORT_SAME_EL: u64 = 0x25;

/// Every exception ends here: a page fault inside a guarded call resumes at its recovery point;
/// anything else is reported and fails the run.
#[no_mangle]
extern "C" fn kiln_bare_exception(kind: u64, esr: u64, elr: u64, far: u64) -> Resume {
    let ec = esr >> 26;
    if kind == SYNC_CURRENT_EL_SPX
        && (ec == EC_INSTRUCTION_ABORT_SAME_EL || ec == EC_DATA_ABORT_SAME_EL)
    {
        if let Some((pc, sp)) = crate::guard::recover(far as usize) {
            return Resume { pc, sp };
        }
    }
    report(kind, esr, elr, far)
}

#[cold]
#[inline(never)]
fn report(kind: u64, esr: u64, elr: u64, far: u64) -> ! {
    if IN_EXCEPTION.swap(true, core::sync::atomic::Ordering::SeqCst) {
        // A fault while reporting a fault (or semihosting is off): stop; the timeout fails it.
        crate::cpu::wait_forever();
    }
    let kind = kind as usize % 16;
    crate::console::_print_unlocked(format_args!(
        "\n[kiln-bare] EXCEPTION {} ({}) on CPU {}: ESR_EL1={esr:#x} (EC {:#x}) ELR_EL1={elr:#x} FAR_EL1={far:#x}\n",
        VECTOR_KINDS[kind % 4],
        VECTOR_GROUPS[kind / 4],
        crate::cpu::cpu_index(),
        esr >> 26
    ));
    exit::failure()
}
