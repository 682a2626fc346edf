//! AArch64 selection of the VM-call ops of function traces (`CArgI`, `CArgF`, `CallV`,
//! `CResI`, `CResF`, `Exit`); the call area is described in [`crate::jit::callframe`].
use super::e::{self, Imm12, Off8};
use super::{mov_imm, tg, Isel, BASE, CTX, FS0, S0, X0, X1};
use crate::jit::backend::{CompileError, SPILL_BASE};
use crate::jit::callframe as cf;
use crate::jit::ir::{IrError, Op, Ref};
use crate::jit::opt::OptError;

impl Isel<'_> {
    /// Offset of call-area word `w` from the exit frame register, if a scaled immediate holds it.
    fn call_word(&self, w: usize) -> Result<Off8, CompileError> {
        tg::ctx_off(SPILL_BASE + self.alloc.spill_slots as usize + w)
            .ok_or(CompileError::TooManySpills)
    }

    /// Emits one VM-call op.
    pub(super) fn vm_call(&mut self, r: Ref) -> Result<(), CompileError> {
        let inst = *self.t.inst(r);
        match inst.op {
            Op::CArgI => {
                let ra = self.int_in(inst.a, S0)?;
                let off = self.call_word(cf::ARGS + inst.imm as usize)?;
                e::str_x(&mut self.b, ra, CTX, off);
            }
            Op::CArgF => {
                let fa = self.float_in(inst.a, FS0)?;
                let off = self.call_word(cf::ARGS + inst.imm as usize)?;
                e::str_d(&mut self.b, fa, CTX, off);
            }
            Op::CallV => {
                let helper = *self.t.calls.first().ok_or(CompileError::Opt(OptError::Ir(
                    IrError::BadImmediate { at: r },
                )))?;
                let area = self.call_word(0)?.get() as i64;
                match Imm12::new(area) {
                    Some(k) => e::add_ri(&mut self.b, X0, CTX, k),
                    None => {
                        mov_imm(&mut self.b, X0, area);
                        e::add_rr(&mut self.b, X0, CTX, X0);
                    }
                }
                mov_imm(&mut self.b, X1, inst.imm);
                mov_imm(&mut self.b, S0, helper as usize as i64);
                e::blr(&mut self.b, S0);
                // The register stack may have moved: the helper returns our slot base.
                e::mov_rr(&mut self.b, BASE, X0);
                let rd = self.out(r, S0);
                let off = self.call_word(cf::STATUS)?;
                e::ldr_x(&mut self.b, rd, CTX, off);
                self.store_result(r, rd)?;
            }
            Op::CResI => {
                let rd = self.out(r, S0);
                let off = self.call_word(cf::RESULT)?;
                e::ldr_x(&mut self.b, rd, CTX, off);
                self.store_result(r, rd)?;
            }
            Op::CResF => {
                let fd = self.out(r, FS0);
                let off = self.call_word(cf::RESULT)?;
                e::ldr_d(&mut self.b, fd, CTX, off);
                self.store_result(r, fd)?;
            }
            Op::Exit => e::b(&mut self.b, self.exits[inst.snap as usize]),
            _ => {}
        }
        Ok(())
    }
}
