//! AArch64 target description: register roles and the AAPCS64 calling convention.
//!
//! ```text
//!   x19        VM slot base (callee-saved; set from x0 in the prologue)
//!   x16, x17   int scratch (IP0/IP1: never allocated)
//!   x15        address scratch (slot offsets too large for an immediate)
//!   d31, d30   float scratch
//!   x20        the exit frame (2nd argument): register dump and spill slots, see
//!              [`ExitFrame`](crate::jit::backend::ExitFrame)
//!   x0-x14     allocatable, clobbered by calls      x21-x28  allocatable, preserved
//!              (an inline runtime call, `backend::InlineCall`, clobbers only x0 and x1)
//!                                                   (x28 holds the fuel left instead in
//!                                                   loop traces without calls: `FUEL_REG`)
//!   d0-d7, d16-d29  allocatable, clobbered          d8-d15   allocatable, preserved
//!   x18 (platform), x29 (frame), x30 (link) are never touched except in prologue/epilogue
//! ```
use super::emit::Off8;
use crate::jit::regalloc::RegPool;

/// x19: the slot base.
pub const BASE: u8 = 19;
/// x20: the exit frame.
pub const CTX: u8 = 20;
/// x0: first argument and return value.
pub const X0: u8 = 0;
/// x1: second argument.
pub const X1: u8 = 1;
/// x2: a returning function trace's result bits (also in its RESULT word).
pub const X2: u8 = 2;
/// First int scratch (x16).
pub const S0: u8 = 16;
/// Second int scratch (x17).
pub const S1: u8 = 17;
/// Address scratch (x15).
pub const ADDR: u8 = 15;
/// First float scratch (d31).
pub const FS0: u8 = 31;
/// Second float scratch (d30).
pub const FS1: u8 = 30;

/// The allocatable registers.
pub const POOL: RegPool = RegPool {
    int_caller: &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14],
    int_callee: &[21, 22, 23, 24, 25, 26, 27, 28],
    float_caller: &[
        0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29,
    ],
    float_callee: &[8, 9, 10, 11, 12, 13, 14, 15],
    int_args: &[0, 1],
};

/// x28: the fuel left, in loop traces that keep it in a register
/// (`backend::fuel_in_register`).
pub const FUEL_REG: u8 = 28;

/// [`POOL`] without [`FUEL_REG`].
pub const FUEL_POOL: RegPool = RegPool {
    int_caller: POOL.int_caller,
    int_callee: &[21, 22, 23, 24, 25, 26, 27],
    float_caller: POOL.float_caller,
    float_callee: POOL.float_callee,
    int_args: POOL.int_args,
};

/// The allocatable registers of function traces: of the callee-saved ones only x21 and x22,
/// which the function-trace prologue saves (`emit_call::func_prologue`).
pub const FUNC_POOL: RegPool = RegPool {
    int_caller: POOL.int_caller,
    int_callee: &[21, 22],
    float_caller: POOL.float_caller,
    float_callee: &[],
    int_args: POOL.int_args,
};

/// Offset of exit-frame word `w` from `x20`, if a scaled load/store immediate can hold it
/// (words below 4096: the dumps and about 4000 spill slots).
pub fn ctx_off(w: usize) -> Option<Off8> {
    Off8::new(i64::try_from(w).ok()?.checked_mul(8)?)
}
