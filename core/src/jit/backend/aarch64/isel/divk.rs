//! AArch64 selection of `DivIK` and `ModIK`: int `/` and `%` by a constant that is neither 0
//! nor -1, with the interpreter's truncating semantics (`sdiv`; `msub` for the remainder).
use super::super::emit_div as ed;
use super::{Isel, ADDR, S0, S1};
use crate::jit::backend::CompileError;
use crate::jit::ir::{Op, Ref};

impl Isel<'_> {
    /// `d := a / k`, or `q := a / k; d := a - q * k` with the quotient in the address scratch
    /// (free until the result is stored).
    pub(super) fn int_div_k(&mut self, r: Ref) -> Result<(), CompileError> {
        let inst = *self.t.inst(r);
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
