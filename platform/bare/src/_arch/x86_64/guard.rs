//! x86_64 guarded call (System V ABI: callee-saved rbx, rbp, r12-r15; the result pair in
//! rax:rdx).
use core::arch::global_asm;
use core::sync::atomic::AtomicUsize;

use super::Outcome;

global_asm!(
    r#"
    .section .text, "ax"
    .global kiln_bare_guarded_call
kiln_bare_guarded_call:              /* rdi = f, rsi = arg, rdx = &slot */
    push %rbx
    push %rbp
    push %r12
    push %r13
    push %r14
    push %r15
    push %rdx                        /* 7 pushes: rsp is 16-byte aligned for the call */
    mov %rsp, (%rdx)
    mov %rdi, %rax
    mov %rsi, %rdi
    call *%rax
    xor %edx, %edx
    jmp 1f
    .global kiln_bare_guard_recover
kiln_bare_guard_recover:             /* entered by iretq with rsp = the slot's value */
    xor %eax, %eax
    mov $1, %edx
1:  pop %rcx
    movq $0, (%rcx)
    pop %r15
    pop %r14
    pop %r13
    pop %r12
    pop %rbp
    pop %rbx
    ret
    "#,
    options(att_syntax)
);

extern "C" {
    /// Calls `f(arg)` with `slot` armed; see [`super::call_guarded`].
    pub(super) fn kiln_bare_guarded_call(f: usize, arg: u64, slot: &AtomicUsize) -> Outcome;
    static kiln_bare_guard_recover: u8;
}

/// Where a recovered fault resumes.
pub(super) fn recover_entry() -> usize {
    &raw const kiln_bare_guard_recover as usize
}
