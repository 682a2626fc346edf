//! x86_64: application processors started with INIT-SIPI-SIPI through the local APIC.
//!
//! ```text
//!   0x8000  trampoline (copied from the image): real mode -> 32-bit protected mode (own GDT)
//!           -> CR3 = boot tables, PAE|OSFXSR, EFER.LME|NXE, CR0.PG|WP|MP -> kernel GDT
//!   kiln_bare_ap_start64: rsp = context.stack_top -> kiln_bare_x86_64_secondary(context)
//! ```
//! One CPU starts at a time: [`KILN_BARE_AP_CONTEXT`] holds the context of the CPU being
//! started. QEMU numbers local APIC IDs 0, 1, ... in CPU order, and reports the CPU count
//! through fw_cfg (`FW_CFG_NB_CPUS`).
use core::arch::global_asm;
use core::sync::atomic::{AtomicUsize, Ordering};

use super::{secondary_main, Context, SmpError};
use crate::lapic::send_ipi;
use crate::port::{inb, outw};

/// Physical address the trampoline runs at (SIPI vector 0x08).
const TRAMPOLINE: usize = 0x8000;
const ICR_INIT: u32 = 0x0000_4500;
const ICR_STARTUP: u32 = 0x0000_4600;
const FW_CFG_SELECTOR: u16 = 0x510;
const FW_CFG_DATA: u16 = 0x511;
const FW_CFG_SIGNATURE: u16 = 0x0000;
const FW_CFG_NB_CPUS: u16 = 0x0005;

/// Address of the [`Context`] of the CPU being started (read by the AP's 64-bit entry).
#[no_mangle]
static KILN_BARE_AP_CONTEXT: AtomicUsize = AtomicUsize::new(0);

global_asm!(
    r#"
    .section .text, "ax"
    .code16
    .global kiln_bare_ap_trampoline
kiln_bare_ap_trampoline:
    cli
    cld
    mov %cs, %ax
    mov %ax, %ds
    lgdtl ap_gdt_ptr - kiln_bare_ap_trampoline
    mov %cr0, %eax
    or $1, %eax
    mov %eax, %cr0
    ljmpl $0x08, $(0x8000 + ap_protected - kiln_bare_ap_trampoline)
    .code32
ap_protected:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov $kiln_bare_boot_pml4, %eax
    mov %eax, %cr3
    mov %cr4, %eax
    or $((1 << 5) | (1 << 9) | (1 << 10)), %eax
    mov %eax, %cr4
    mov $0xC0000080, %ecx
    rdmsr
    or $((1 << 8) | (1 << 11)), %eax
    wrmsr
    mov %cr0, %eax
    and $~(1 << 2), %eax
    or $((1 << 31) | (1 << 16) | (1 << 1) | 1), %eax
    mov %eax, %cr0
    lgdt kiln_bare_boot_gdt_ptr
    ljmp $0x08, $kiln_bare_ap_start64
    .balign 8
ap_gdt:
    .quad 0
    .quad 0x00CF9A000000FFFF         /* 0x08: 32-bit code */
    .quad 0x00CF92000000FFFF         /* 0x10: data */
ap_gdt_ptr:
    .word ap_gdt_ptr - ap_gdt - 1
    .long 0x8000 + ap_gdt - kiln_bare_ap_trampoline
    .global kiln_bare_ap_trampoline_end
kiln_bare_ap_trampoline_end:

    .code64
kiln_bare_ap_start64:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov KILN_BARE_AP_CONTEXT(%rip), %rdi
    mov (%rdi), %rsp
    xor %ebp, %ebp
    call kiln_bare_x86_64_secondary
1:  cli
    hlt
    jmp 1b
    "#,
    options(att_syntax)
);

extern "C" {
    static kiln_bare_ap_trampoline: u8;
    static kiln_bare_ap_trampoline_end: u8;
}

/// Nothing extra: the trampoline loads the boot page tables itself.
pub(crate) struct BootRegs;

impl BootRegs {
    pub(super) const ZERO: BootRegs = BootRegs;

    pub(super) fn of_this_cpu() -> BootRegs {
        BootRegs
    }
}

/// CPUs QEMU reports through fw_cfg (1 without fw_cfg).
pub(super) fn possible_cpus() -> usize {
    outw(FW_CFG_SELECTOR, FW_CFG_SIGNATURE);
    let signature = [
        inb(FW_CFG_DATA),
        inb(FW_CFG_DATA),
        inb(FW_CFG_DATA),
        inb(FW_CFG_DATA),
    ];
    if &signature != b"QEMU" {
        return 1;
    }
    outw(FW_CFG_SELECTOR, FW_CFG_NB_CPUS);
    let low = inb(FW_CFG_DATA);
    let high = inb(FW_CFG_DATA);
    usize::from(u16::from_le_bytes([low, high]))
}

fn pause(iterations: u32) {
    for _ in 0..iterations {
        core::hint::spin_loop();
    }
}

/// Starts CPU `index` (local APIC ID `index`) with INIT-SIPI-SIPI.
pub(super) fn power_on(index: usize, ctx: &Context) -> Result<(), SmpError> {
    crate::tlb::boot_cpu_online();
    let start = &raw const kiln_bare_ap_trampoline as usize;
    let len = &raw const kiln_bare_ap_trampoline_end as usize - start;
    // SAFETY: conventional memory at 0x8000 (below the image at 1 MiB) is unused by kiln-bare
    // and identity-mapped writable; the trampoline is position-independent apart from its own
    // 0x8000-based addresses.
    unsafe { core::ptr::copy_nonoverlapping(start as *const u8, TRAMPOLINE as *mut u8, len) };
    KILN_BARE_AP_CONTEXT.store(ctx as *const Context as usize, Ordering::Release);
    let apic_id = index as u32;
    send_ipi(apic_id, ICR_INIT);
    pause(100_000);
    for _ in 0..2 {
        send_ipi(apic_id, ICR_STARTUP | (TRAMPOLINE >> 12) as u32);
        pause(10_000);
    }
    Ok(())
}

/// An application processor's first Rust code: CPU index, exception vectors, generic main.
#[no_mangle]
extern "C" fn kiln_bare_x86_64_secondary(ctx: &Context) -> ! {
    // SAFETY: each AP gets a distinct index from `start_secondary`, set once here.
    unsafe { crate::cpu::set_cpu_index(ctx.index) };
    crate::boot::idt::load();
    crate::tlb::this_cpu_online();
    secondary_main(ctx)
}
