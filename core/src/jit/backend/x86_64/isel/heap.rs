//! x86-64 selection of heap accesses and float builtins: `SLoadT`, `LdI`/`LdF`/`LdB`,
//! `StI`/`StF`/`StB`, `SqrtF`, `ToInt`.
use super::{e, Cond, Isel, FS0, S0, S1};
use crate::jit::backend::CompileError;
use crate::jit::ir::{Op, Ref};

/// A load/store displacement (`imm`), if it fits an `i32`.
fn disp(imm: i64) -> Result<i32, CompileError> {
    i32::try_from(imm).map_err(|_| CompileError::SlotTooFar)
}

impl Isel<'_> {
    /// Emits one heap or builtin op.
    pub(super) fn heap_op(&mut self, r: Ref) -> Result<(), CompileError> {
        let inst = *self.t.inst(r);
        match inst.op {
            Op::SLoadT => return self.sload_tagged(r),
            Op::LdI | Op::LdF | Op::LdB => {
                let d = disp(inst.imm)?;
                let base = self.int_in(inst.a, S1);
                if inst.op == Op::LdF {
                    let fd = self.out(r, FS0);
                    e::load_rm_f(&mut self.b, fd, base, d);
                    self.store_result(r, fd);
                } else {
                    let rd = self.out(r, S0);
                    if inst.op == Op::LdB {
                        e::load_rm_u8(&mut self.b, rd, base, d);
                    } else {
                        e::load_rm(&mut self.b, rd, base, d);
                    }
                    self.store_result(r, rd);
                }
            }
            Op::StI | Op::StB => {
                let d = disp(inst.imm)?;
                let base = self.int_in(inst.a, S1);
                let v = self.int_in(inst.b, S0);
                if inst.op == Op::StB {
                    e::store_mr_u8(&mut self.b, base, d, v);
                } else {
                    e::store_mr(&mut self.b, base, d, v);
                }
            }
            Op::StF => {
                let d = disp(inst.imm)?;
                let base = self.int_in(inst.a, S1);
                let v = self.float_in(inst.b, FS0);
                e::store_mr_f(&mut self.b, base, d, v);
            }
            Op::SqrtF => {
                let fa = self.float_in(inst.a, FS0);
                let fd = self.out(r, FS0);
                e::sqrtsd(&mut self.b, fd, fa);
                self.store_result(r, fd);
            }
            _ => {
                // `ToInt`.
                let fa = self.float_in(inst.a, FS0);
                let rd = self.out(r, S0);
                e::cvttsd2si(&mut self.b, rd, fa);
                self.store_result(r, rd);
            }
        }
        Ok(())
    }

    /// `SLoadT`: compare the slot's tag with `imm >> 32`, exit if it differs, load the payload.
    fn sload_tagged(&mut self, r: Ref) -> Result<(), CompileError> {
        let inst = *self.t.inst(r);
        let slot = inst.op.slot_of(inst.imm).unwrap_or(0);
        let tag = ((inst.imm as u64) >> 32) as i64;
        let tag_disp = self.layout.tag_disp(slot).ok_or(CompileError::SlotTooFar)?;
        let pay = self
            .layout
            .payload_disp(slot)
            .ok_or(CompileError::SlotTooFar)?;
        match self.layout.tag_size {
            1 => e::cmp_tag8(&mut self.b, tag_disp, tag as u8 as i8),
            4 => e::cmp_tag32(&mut self.b, tag_disp, tag as u32 as i32),
            _ => {
                self.mov_imm(S0, tag);
                e::cmp_tag64_r(&mut self.b, tag_disp, S0);
            }
        }
        e::jcc(&mut self.b, Cond::Ne, self.exits[inst.snap as usize]);
        let rd = self.out(r, S0);
        e::load_slot(&mut self.b, rd, pay);
        self.store_result(r, rd);
        Ok(())
    }
}
