//! x86_64 interrupt descriptor table: 32 exception gates that report (or, inside a guarded
//! call, recover from a page fault), the TLB shoot-down IPI and the APIC's spurious vector.
//!
//! ```text
//!   exception stub n: [push 0 if the CPU pushes no error code]; push n; jmp isr_common
//!   isr_common: push the 9 caller-saved registers -> kiln_bare_x86_exception(&mut frame);
//!               returns only for a recovered fault (frame.rip/rsp rewritten) -> pop, iretq
//!   vector 0xF0 (tlb::SHOOTDOWN_VECTOR): save caller-saved registers, kiln_bare_x86_tlb_ipi
//!   vector 0xFF (lapic::SPURIOUS_VECTOR): iretq
//!   IDT entry (16 bytes): offset 0..16 | selector 0x08 | type 0x8E (interrupt gate) |
//!                         offset 16..32 | offset 32..64 | 0
//! ```
//! All other vectors have no gate (a stray interrupt raises #NP, which reports). Handlers are
//! Rust compiled for x86_64-unknown-none: soft-float (no SSE register is touched, so JIT code's
//! xmm registers survive) and no red zone (an interrupt cannot clobber the stack below rsp).
use core::arch::{asm, global_asm};
use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

const EXCEPTIONS: usize = 32;
const VECTORS: usize = 256;

global_asm!(
    r#"
    .macro ISR_NOERR n
    .balign 16
    isr\n: push $0
    push $\n
    jmp isr_common
    .endm
    .macro ISR_ERR n
    .balign 16
    isr\n: push $\n
    jmp isr_common
    .endm

    .section .text, "ax"
    ISR_NOERR 0
    ISR_NOERR 1
    ISR_NOERR 2
    ISR_NOERR 3
    ISR_NOERR 4
    ISR_NOERR 5
    ISR_NOERR 6
    ISR_NOERR 7
    ISR_ERR 8
    ISR_NOERR 9
    ISR_ERR 10
    ISR_ERR 11
    ISR_ERR 12
    ISR_ERR 13
    ISR_ERR 14
    ISR_NOERR 15
    ISR_NOERR 16
    ISR_ERR 17
    ISR_NOERR 18
    ISR_NOERR 19
    ISR_NOERR 20
    ISR_ERR 21
    ISR_NOERR 22
    ISR_NOERR 23
    ISR_NOERR 24
    ISR_NOERR 25
    ISR_NOERR 26
    ISR_NOERR 27
    ISR_NOERR 28
    ISR_ERR 29
    ISR_ERR 30
    ISR_NOERR 31
isr_common:                         /* 7 words pushed: 9 more keep rsp 16-byte aligned */
    push %rax
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %r8
    push %r9
    push %r10
    push %r11
    mov %rsp, %rdi
    call kiln_bare_x86_exception
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rax
    add $16, %rsp
    iretq

    .balign 16
    .global kiln_bare_isr_tlb
kiln_bare_isr_tlb:                   /* 5 words pushed: 9 more keep rsp 16-byte aligned */
    push %rax
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %r8
    push %r9
    push %r10
    push %r11
    call kiln_bare_x86_tlb_ipi
    pop %r11
    pop %r10
    pop %r9
    pop %r8
    pop %rdi
    pop %rsi
    pop %rdx
    pop %rcx
    pop %rax
    iretq

    .balign 16
    .global kiln_bare_isr_spurious
kiln_bare_isr_spurious:
    iretq

    .section .rodata, "a"
    .balign 8
kiln_bare_isr_table:
    .quad isr0, isr1, isr2, isr3, isr4, isr5, isr6, isr7
    .quad isr8, isr9, isr10, isr11, isr12, isr13, isr14, isr15
    .quad isr16, isr17, isr18, isr19, isr20, isr21, isr22, isr23
    .quad isr24, isr25, isr26, isr27, isr28, isr29, isr30, isr31
    "#,
    options(att_syntax)
);

extern "C" {
    static kiln_bare_isr_table: [u64; EXCEPTIONS];
    static kiln_bare_isr_tlb: u8;
    static kiln_bare_isr_spurious: u8;
}

/// What `isr_common` leaves on the stack, lowest address first.
#[repr(C)]
struct ExceptionFrame {
    saved: [u64; 9],
    vector: u64,
    error: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

/// An interrupt gate to `handler` in the kernel code segment.
fn gate(handler: u64) -> [u64; 2] {
    let low = (handler & 0xFFFF) | (0x08 << 16) | (0x8E << 40) | ((handler >> 16) & 0xFFFF) << 48;
    [low, handler >> 32]
}

#[repr(C, align(16))]
struct Idt(UnsafeCell<[[u64; 2]; VECTORS]>);

// SAFETY: written once by the boot CPU in `init`, before any CPU loads it; read-only after.
unsafe impl Sync for Idt {}

static IDT: Idt = Idt(UnsafeCell::new([[0; 2]; VECTORS]));

/// Fills the IDT (boot CPU, once) and loads it.
pub(crate) fn init() {
    // SAFETY: runs once on the boot CPU before any other CPU exists or any exception is taken.
    let idt = unsafe { &mut *IDT.0.get() };
    for (entry, &handler) in idt.iter_mut().zip(
        // SAFETY: the table is a constant in the image.
        unsafe { kiln_bare_isr_table }.iter(),
    ) {
        *entry = gate(handler);
    }
    idt[usize::from(crate::tlb::SHOOTDOWN_VECTOR)] = gate(&raw const kiln_bare_isr_tlb as u64);
    idt[usize::from(crate::lapic::SPURIOUS_VECTOR)] =
        gate(&raw const kiln_bare_isr_spurious as u64);
    load();
}

/// Loads the IDT on this CPU.
pub(crate) fn load() {
    let pointer: [u16; 5] = {
        let base = IDT.0.get() as u64;
        let limit = (core::mem::size_of::<[[u64; 2]; VECTORS]>() - 1) as u16;
        [
            limit,
            base as u16,
            (base >> 16) as u16,
            (base >> 32) as u16,
            (base >> 48) as u16,
        ]
    };
    // SAFETY: the pointer names the static IDT, filled by `init`.
    unsafe { asm!("lidt [{}]", in(reg) pointer.as_ptr(), options(readonly, nostack)) };
}

const NAMES: [&str; 22] = [
    "divide error",
    "debug",
    "NMI",
    "breakpoint",
    "overflow",
    "bound range",
    "invalid opcode",
    "device not available",
    "double fault",
    "coprocessor overrun",
    "invalid TSS",
    "segment not present",
    "stack fault",
    "general protection",
    "page fault",
    "reserved",
    "x87 FP",
    "alignment check",
    "machine check",
    "SIMD FP",
    "virtualization",
    "control protection",
];

static IN_EXCEPTION: AtomicBool = AtomicBool::new(false);

const PAGE_FAULT: u64 = 14;

/// Every exception ends here: a page fault inside a guarded call resumes at its recovery point;
/// anything else is reported and fails the run.
#[no_mangle]
extern "C" fn kiln_bare_x86_exception(frame: &mut ExceptionFrame) {
    let cr2: u64;
    // SAFETY: reading CR2 has no effect.
    unsafe { asm!("mov {}, cr2", out(reg) cr2, options(nomem, nostack, preserves_flags)) };
    if frame.vector == PAGE_FAULT {
        if let Some((pc, sp)) = crate::guard::recover(cr2 as usize) {
            frame.rip = pc as u64;
            frame.rsp = sp as u64;
            return;
        }
    }
    report(frame.vector, frame.error, frame.rip, cr2)
}

#[cold]
#[inline(never)]
fn report(vector: u64, error: u64, rip: u64, cr2: u64) -> ! {
    if IN_EXCEPTION.swap(true, Ordering::SeqCst) {
        crate::cpu::wait_forever();
    }
    let name = NAMES.get(vector as usize).copied().unwrap_or("reserved");
    crate::console::_print_unlocked(format_args!(
        "\n[kiln-bare] EXCEPTION {vector} ({name}) on CPU {}: error={error:#x} RIP={rip:#x} CR2={cr2:#x}\n",
        crate::cpu::cpu_index()
    ));
    crate::exit::failure()
}
