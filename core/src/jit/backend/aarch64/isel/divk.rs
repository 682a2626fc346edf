//! AArch64 selection of `DivIK` and `ModIK`: int `/` and `%` by a constant that is neither 0
//! nor -1, with the interpreter's truncating semantics (`sdiv`; `msub` for the remainder;
//! shifts for a power of two).
use super::super::emit;
use super::super::emit_div as ed;
use super::{Isel, ADDR, S0, S1};
use crate::jit::backend::CompileError;
use crate::jit::ir::{Op, Ref};

impl Isel<'_> {
    /// `d := a / k`, or `q := a / k; d := a - q * k` with the quotient in the address scratch
    /// (free until the result is stored).
    pub(super) fn int_div_k(&mut self, r: Ref) -> Result<(), CompileError> {
        let inst = *self.t.inst(r);
        if let Some(s) = self.konst(inst.b).and_then(pow2_shift) {
            return self.int_div_pow2(r, s);
        }
        let rd = self.out(r, S0);
        let ra = self.int_in(inst.a, S0)?;
        let rb = self.int_in(inst.b, S1)?;
        if inst.op == Op::DivIK {
            ed::sdiv(&mut self.b, rd, ra, rb);
        } else {
            ed::sdiv(&mut self.b, ADDR, ra, rb);
            ed::msub(&mut self.b, rd, ADDR, rb, ra);
        }
        self.store_result(r, rd)
    }
}

/// `s` when `k` is `2^s` with `s` in 1..63 (a divisor the shifts handle).
fn pow2_shift(k: i64) -> Option<u32> {
    (k > 1 && k.count_ones() == 1).then(|| k.trailing_zeros())
}

impl Isel<'_> {
    /// `a / 2^s` truncated toward zero without `sdiv`: a negative `a` is first biased by
    /// `2^s - 1` (the sign mask shifted right logically), then shifted right arithmetically:
    /// `q = (a + ((a >> 63) >>> (64 - s))) >> s`, built in the address scratch. `a % 2^s` is
    /// `a - (q << s)` (the sign of `a`, as the interpreter's `%`).
    fn int_div_pow2(&mut self, r: Ref, s: u32) -> Result<(), CompileError> {
        let inst = *self.t.inst(r);
        let rd = self.out(r, S0);
        let ra = self.int_in(inst.a, S0)?;
        ed::asr_ri(&mut self.b, ADDR, ra, 63);
        ed::lsr_ri(&mut self.b, ADDR, ADDR, 64 - s);
        emit::add_rr(&mut self.b, ADDR, ADDR, ra);
        if inst.op == Op::DivIK {
            ed::asr_ri(&mut self.b, rd, ADDR, s);
        } else {
            ed::asr_ri(&mut self.b, ADDR, ADDR, s);
            ed::lsl_ri(&mut self.b, ADDR, ADDR, s);
            emit::sub_rr(&mut self.b, rd, ra, ADDR);
        }
        self.store_result(r, rd)
    }
}
