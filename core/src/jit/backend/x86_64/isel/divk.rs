//! x86-64 selection of `DivIK` and `ModIK`: int `/` and `%` by a constant that is neither 0
//! nor -1 (so `idiv` cannot trap), with the interpreter's truncating semantics.
use super::super::emit_div as ed;
use super::{emit, target, Isel, S0, S1};
use crate::jit::ir::{Op, Ref};

/// rdx: `idiv`'s high dividend and remainder register (allocatable, so saved around it).
const RDX: u8 = 2;

impl Isel<'_> {
    /// `rax := a; rdx := sign; idiv r11 (the constant)`; the quotient or remainder goes to the
    /// result through r11, and `rdx` is restored from the machine stack before the result is
    /// written (the result may live in `rdx`).
    pub(super) fn int_div_k(&mut self, r: Ref) {
        let inst = *self.t.inst(r);
        if let Some(s) = self.konst(inst.b).and_then(pow2_shift) {
            return self.int_div_pow2(r, s);
        }
        let ra = self.int_in(inst.a, S0);
        let rb = self.int_in(inst.b, S1);
        ed::push_r(&mut self.b, RDX);
        if ra != target::RAX {
            emit::mov_rr(&mut self.b, target::RAX, ra);
        }
        ed::cqo(&mut self.b);
        ed::idiv_r(&mut self.b, rb);
        let result = if inst.op == Op::DivIK {
            target::RAX
        } else {
            RDX
        };
        emit::mov_rr(&mut self.b, S1, result);
        ed::pop_r(&mut self.b, RDX);
        let rd = self.out(r, S0);
        if rd != S1 {
            emit::mov_rr(&mut self.b, rd, S1);
        }
        self.store_result(r, rd);
    }
}

/// `s` when `k` is `2^s` with `s` in 1..63 (a divisor the shifts handle).
fn pow2_shift(k: i64) -> Option<i8> {
    (k > 1 && k.count_ones() == 1).then(|| k.trailing_zeros() as i8)
}

impl Isel<'_> {
    /// `a / 2^s` truncated toward zero without `idiv`: a negative `a` is first biased by
    /// `2^s - 1` (the sign mask shifted right logically), then shifted right arithmetically:
    /// `q = (a + ((a >> 63) >>> (64 - s))) >> s`. `a % 2^s` is `a - (q << s)` (the sign of
    /// `a`, as the interpreter's `%`).
    fn int_div_pow2(&mut self, r: Ref, s: i8) {
        let inst = *self.t.inst(r);
        let ra = self.int_in(inst.a, S1);
        emit::mov_rr(&mut self.b, S0, ra);
        ed::sar_ri(&mut self.b, S0, 63);
        ed::shr_ri(&mut self.b, S0, 64 - s);
        emit::add_rr(&mut self.b, S0, ra);
        ed::sar_ri(&mut self.b, S0, s);
        let rd = self.out(r, S0);
        let mut result = S0;
        if inst.op == Op::ModIK {
            // `a - (q << s)` in r11 (where `a` already is if it was spilled).
            ed::shl_ri(&mut self.b, S0, s);
            if ra != S1 {
                emit::mov_rr(&mut self.b, S1, ra);
            }
            emit::sub_rr(&mut self.b, S1, S0);
            result = S1;
        }
        if rd != result {
            emit::mov_rr(&mut self.b, rd, result);
        }
        self.store_result(r, rd);
    }
}
