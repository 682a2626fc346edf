//! x86-64 target description: register roles and the System V calling convention.
//!
//! ```text
//!   rbx        VM slot base (callee-saved; set from rdi in the prologue)
//!   rax, r11   int scratch (never allocated; rax also carries the exit number)
//!   xmm15,14   float scratch
//!   rcx rdx rsi rdi r8 r9 r10     allocatable, clobbered by calls (an inline runtime call,
//!                                 `backend::InlineCall`, clobbers only rdi and rsi)
//!   rbp r13 r14 r15               allocatable, preserved by calls (r15 holds the fuel left
//!                                 instead in loop traces without calls: `FUEL_REG`)
//!   xmm0-13                       allocatable, clobbered by calls (SysV has no callee-saved xmm)
//!   r12        the exit frame (2nd argument): register dump and spill slots, see
//!              [`ExitFrame`](crate::jit::backend::ExitFrame)
//! ```
use crate::jit::regalloc::RegPool;

/// rax
pub const RAX: u8 = 0;
/// rbx: the slot base.
pub const BASE: u8 = 3;
/// r12: the exit frame.
pub const CTX: u8 = 12;
/// rdi: first argument.
pub const ARG0: u8 = 7;
/// rsi: second argument.
pub const ARG1: u8 = 6;
/// First int scratch (rax).
pub const S0: u8 = RAX;
/// Second int scratch (r11).
pub const S1: u8 = 11;
/// First float scratch (xmm15).
pub const FS0: u8 = 15;
/// Second float scratch (xmm14).
pub const FS1: u8 = 14;

/// The allocatable registers.
pub const POOL: RegPool = RegPool {
    int_caller: &[1, 2, 6, 7, 8, 9, 10],
    int_callee: &[5, 13, 14, 15],
    float_caller: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13],
    float_callee: &[],
    int_args: &[6, 7],
};

/// r15: the fuel left, in loop traces that keep it in a register
/// (`backend::fuel_in_register`).
pub const FUEL_REG: u8 = 15;

/// [`POOL`] without [`FUEL_REG`].
pub const FUEL_POOL: RegPool = RegPool {
    int_caller: POOL.int_caller,
    int_callee: &[5, 13, 14],
    float_caller: POOL.float_caller,
    float_callee: &[],
    int_args: POOL.int_args,
};

/// The allocatable registers of function traces: of the callee-saved ones only rbp and r13,
/// which the function-trace prologue saves (`emit_call::func_prologue`).
pub const FUNC_POOL: RegPool = RegPool {
    int_caller: POOL.int_caller,
    int_callee: &[5, 13],
    float_caller: POOL.float_caller,
    float_callee: &[],
    int_args: POOL.int_args,
};

/// Most spill slots a trace may have (keeps every displacement far inside an `i32`).
pub const MAX_SPILLS: u32 = 1 << 20;
