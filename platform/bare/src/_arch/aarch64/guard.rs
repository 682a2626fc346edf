//! aarch64 guarded call (AAPCS64: callee-saved x19-x29, x30, d8-d15; the result pair in x0:x1).
use core::arch::global_asm;
use core::sync::atomic::AtomicUsize;

use super::Outcome;

global_asm!(
    r#"
    .section .text, "ax"
    .global kiln_bare_guarded_call
kiln_bare_guarded_call:              /* x0 = f, x1 = arg, x2 = &slot */
    stp x29, x30, [sp, #-176]!
    stp x19, x20, [sp, #16]
    stp x21, x22, [sp, #32]
    stp x23, x24, [sp, #48]
    stp x25, x26, [sp, #64]
    stp x27, x28, [sp, #80]
    stp d8, d9, [sp, #96]
    stp d10, d11, [sp, #112]
    stp d12, d13, [sp, #128]
    stp d14, d15, [sp, #144]
    str x2, [sp, #160]
    mov x3, sp
    str x3, [x2]
    mov x9, x0
    mov x0, x1
    blr x9
    mov x1, #0
    b 1f
    .global kiln_bare_guard_recover
kiln_bare_guard_recover:             /* entered by eret with sp = the slot's value */
    mov x0, #0
    mov x1, #1
1:  ldr x2, [sp, #160]
    str xzr, [x2]
    ldp d14, d15, [sp, #144]
    ldp d12, d13, [sp, #128]
    ldp d10, d11, [sp, #112]
    ldp d8, d9, [sp, #96]
    ldp x27, x28, [sp, #80]
    ldp x25, x26, [sp, #64]
    ldp x23, x24, [sp, #48]
    ldp x21, x22, [sp, #32]
    ldp x19, x20, [sp, #16]
    ldp x29, x30, [sp], #176
    ret
    "#
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
