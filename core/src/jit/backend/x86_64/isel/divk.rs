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
