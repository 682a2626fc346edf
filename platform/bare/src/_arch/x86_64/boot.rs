//! x86_64 entry from a Multiboot v1 loader (QEMU `-kernel`): 32-bit protected mode, paging off.
//!
//! The assembly builds identity page tables for the first 4 GiB (2 MiB pages), turns on PAE,
//! SSE (CR4.OSFXSR|OSXMMEXCPT, CR0.MP, EM clear), long mode and no-execute (EFER.LME|NXE),
//! paging and supervisor write protection (CR0.PG|WP), loads a 64-bit GDT and jumps to 64-bit
//! code, which calls [`kiln_bare_x86_64_start`] with the Multiboot magic and info pointer.
//!
//! ```text
//!   Multiboot header (a.out kludge, flag bit 16): the loader copies the file from
//!   __image_start to __load_end and zeroes to __bss_end, then jumps to _start32.
//!   boot_pml4[0] -> boot_pdpt[0..4] -> boot_pd (4 x 512 entries of 2 MiB, 0..4 GiB)
//! ```
use core::arch::global_asm;

const MULTIBOOT_BOOTLOADER_MAGIC: u32 = 0x2BAD_B002;
const MULTIBOOT_INFO_MEMORY: u32 = 1 << 0;
const ONE_MIB: usize = 1 << 20;

global_asm!(
    r#"
    .set MB_MAGIC, 0x1BADB002
    .set MB_FLAGS, 0x00010002        /* bit 1: memory info; bit 16: addresses below are valid */

    .section .multiboot, "a"
    .balign 4
mb_header:
    .long MB_MAGIC
    .long MB_FLAGS
    .long -(MB_MAGIC + MB_FLAGS)
    .long mb_header
    .long __image_start
    .long __load_end
    .long __bss_end
    .long _start32

    .section .text.boot, "ax"
    .code32
    .global _start32
_start32:
    cli
    mov $kiln_bare_boot_stack_top, %esp
    mov %eax, %edi                   /* Multiboot magic -> first argument */
    mov %ebx, %esi                   /* Multiboot info  -> second argument */

    /* 2048 page-directory entries: entry i maps i * 2 MiB, present|writable|huge. */
    xor %ecx, %ecx
1:  mov %ecx, %eax
    shl $21, %eax
    or $0x83, %eax
    mov %eax, kiln_bare_boot_pd(,%ecx,8)
    inc %ecx
    cmp $2048, %ecx
    jb 1b

    mov $kiln_bare_boot_pd, %eax
    or $0x3, %eax
    mov %eax, boot_pdpt
    add $0x1000, %eax
    mov %eax, boot_pdpt + 8
    add $0x1000, %eax
    mov %eax, boot_pdpt + 16
    add $0x1000, %eax
    mov %eax, boot_pdpt + 24
    mov $boot_pdpt, %eax
    or $0x3, %eax
    mov %eax, kiln_bare_boot_pml4

    mov $kiln_bare_boot_pml4, %eax
    mov %eax, %cr3
    mov %cr4, %eax
    or $((1 << 5) | (1 << 9) | (1 << 10)), %eax     /* PAE | OSFXSR | OSXMMEXCPT */
    mov %eax, %cr4
    mov $0xC0000080, %ecx                           /* EFER */
    rdmsr
    or $((1 << 8) | (1 << 11)), %eax                /* LME | NXE */
    wrmsr
    mov %cr0, %eax
    and $~(1 << 2), %eax                            /* EM off: SSE executes */
    or $((1 << 31) | (1 << 16) | (1 << 1) | 1), %eax /* PG | WP | MP | PE */
    mov %eax, %cr0
    lgdt boot_gdt_ptr
    ljmp $0x08, $start64

    .code64
start64:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov $kiln_bare_boot_stack_top, %rsp
    xor %ebp, %ebp
    mov %edi, %edi
    mov %esi, %esi
    call kiln_bare_x86_64_start
2:  cli
    hlt
    jmp 2b

    .section .rodata.boot, "a"
    .balign 8
boot_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF         /* 0x08: 64-bit code */
    .quad 0x00CF92000000FFFF         /* 0x10: data */
    .global kiln_bare_boot_gdt_ptr
kiln_bare_boot_gdt_ptr:
boot_gdt_ptr:
    .word boot_gdt_ptr - boot_gdt - 1
    .quad boot_gdt

    .section .bss.boot, "aw", @nobits
    .balign 4096
    .global kiln_bare_boot_pml4
kiln_bare_boot_pml4:
    .skip 4096
boot_pdpt:
    .skip 4096
    .global kiln_bare_boot_pd
kiln_bare_boot_pd:
    .skip 4096 * 4
    "#,
    options(att_syntax)
);

/// Masks every line of the two 8259 PICs: the firmware left IRQ 0 (the timer) on vector 8,
/// which would look like a double fault the moment interrupts are enabled.
fn mask_legacy_pics() {
    crate::port::outb(0x21, 0xFF);
    crate::port::outb(0xA1, 0xFF);
}

/// The first Rust code: reads the RAM size out of the Multiboot info, then runs the generic
/// boot.
#[no_mangle]
extern "C" fn kiln_bare_x86_64_start(magic: u32, info: u32) -> ! {
    // SAFETY: the boot CPU is index 0, set once before anything reads it.
    unsafe { crate::cpu::set_cpu_index(0) };
    super::idt::init();
    mask_legacy_pics();
    if magic != MULTIBOOT_BOOTLOADER_MAGIC {
        crate::serial::init();
        crate::println!("[kiln-bare] not started by a Multiboot loader (eax = {magic:#x})");
        crate::exit::failure();
    }
    let info = info as usize as *const u32;
    // SAFETY: a Multiboot loader passes a valid info structure (flags, mem_lower, mem_upper)
    // that stays intact until the segment pool reuses its memory, after this read.
    let (flags, mem_upper_kib) = unsafe { (info.read(), info.add(2).read()) };
    if flags & MULTIBOOT_INFO_MEMORY == 0 {
        crate::serial::init();
        crate::println!("[kiln-bare] the Multiboot loader gave no memory size");
        crate::exit::failure();
    }
    let ram_end = ONE_MIB + mem_upper_kib as usize * 1024;
    super::start(ONE_MIB..ram_end)
}
