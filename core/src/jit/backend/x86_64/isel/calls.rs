//! x86-64 selection of the VM-call ops of function traces (`CArgI`, `CArgF`, `CallV`,
//! `CResI`, `CResF`, `Exit`); the call area is described in [`crate::jit::callframe`].
use super::{e, tg, word, Isel, ARG0, ARG1, FS0, S0};
use crate::jit::backend::{CompileError, SPILL_BASE};
use crate::jit::callframe as cf;
use crate::jit::ir::{IrError, Op, Ref};
use crate::jit::opt::OptError;

impl Isel<'_> {
    /// Displacement of call-area word `w` from the exit frame register.
    fn call_word(&self, w: usize) -> i32 {
        word(SPILL_BASE + self.alloc.spill_slots as usize + w)
    }

    /// Emits one VM-call op.
    pub(super) fn vm_call(&mut self, r: Ref) -> Result<(), CompileError> {
        let inst = *self.t.inst(r);
        match inst.op {
            Op::CArgI => {
                let ra = self.int_in(inst.a, S0);
                let d = self.call_word(cf::ARGS + inst.imm as usize);
                e::store_ctx(&mut self.b, d, ra);
            }
            Op::CArgF => {
                let fa = self.float_in(inst.a, FS0);
                let d = self.call_word(cf::ARGS + inst.imm as usize);
                e::store_ctx_f(&mut self.b, d, fa);
            }
            Op::CallV => {
                let helper = *self.t.calls.first().ok_or(CompileError::Opt(OptError::Ir(
                    IrError::BadImmediate { at: r },
                )))?;
                e::mov_rr(&mut self.b, ARG0, tg::CTX);
                let area = self.call_word(0);
                e::add_ri(&mut self.b, ARG0, area);
                self.mov_imm(ARG1, inst.imm);
                e::mov_ri64(&mut self.b, S0, helper as usize as i64);
                e::call_r(&mut self.b, S0);
                // The register stack may have moved: the helper returns our slot base.
                e::mov_rr(&mut self.b, tg::BASE, tg::RAX);
                let rd = self.out(r, S0);
                let d = self.call_word(cf::STATUS);
                e::load_ctx(&mut self.b, rd, d);
                self.store_result(r, rd);
            }
            Op::CResI => {
                let rd = self.out(r, S0);
                let d = self.call_word(cf::RESULT);
                e::load_ctx(&mut self.b, rd, d);
                self.store_result(r, rd);
            }
            Op::CResF => {
                let fd = self.out(r, FS0);
                let d = self.call_word(cf::RESULT);
                e::load_ctx_f(&mut self.b, fd, d);
                self.store_result(r, fd);
            }
            Op::Exit => e::jmp(&mut self.b, self.exits[inst.snap as usize]),
            _ => {}
        }
        Ok(())
    }
}
