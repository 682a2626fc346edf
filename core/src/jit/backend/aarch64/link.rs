//! AArch64 exit stubs of linked traces: native write-back, then a jump through the link table
//! (the plan and its invariants: [`crate::jit::backend::link`]).
use super::emit::{self, Cond, Imm12, Off8};
use super::isel::{mov_imm, Isel, Mem};
use super::target::{CTX, FS1, S0, S1};
use crate::jit::backend::link::{ExitPlan, Store};
use crate::jit::backend::{CompileError, Src};
use crate::jit::buffer::DynamicLabel;
use crate::jit::ir::Ty;
use crate::jit::regalloc::Loc;

impl Isel<'_> {
    /// Exit stub `n`: check the unchecked tags (else `slow`), store the snapshot, then jump to
    /// `table[n]` unless it is 0 (then to `written`, the host exit without a restore).
    pub(super) fn write_back_and_link(
        &mut self,
        n: usize,
        plan: &ExitPlan,
        slow: DynamicLabel,
        written: DynamicLabel,
    ) -> Result<(), CompileError> {
        self.write_back(plan, slow)?;
        if let Some(target) = self.reg.at(n) {
            // Into the trace this exit resumes in, past its slot loads: their values go
            // straight into the registers it loads them into.
            for float in [false, true] {
                let temp = Loc::Reg(if float { FS1 } else { S1 });
                self.parallel_move(target.moves(plan, float), temp, float)?;
            }
            for (slot, ty, d) in target.loads(plan) {
                let pay = self
                    .layout
                    .payload_disp(slot)
                    .ok_or(CompileError::SlotTooFar)?;
                if ty == Ty::Bool {
                    let Mem::B(b, o) = self.slot_mem(pay, 1) else {
                        return Err(CompileError::SlotTooFar);
                    };
                    emit::ldrb(&mut self.b, d, b, o);
                    continue;
                }
                let Mem::X(b, o) = self.slot_mem(pay, 8) else {
                    return Err(CompileError::SlotTooFar);
                };
                match ty {
                    Ty::Float => emit::ldr_d(&mut self.b, d, b, o),
                    _ => emit::ldr_x(&mut self.b, d, b, o),
                }
            }
            mov_imm(&mut self.b, S0, target.addr as i64);
            emit::br(&mut self.b, S0);
            return Ok(());
        }
        let entry = self.links.table.wrapping_add(8 * n as u64);
        mov_imm(&mut self.b, S0, entry as i64);
        emit::ldr_x(&mut self.b, S0, S0, Off8::ZERO);
        let zero = Imm12::new(0).ok_or(CompileError::SlotTooFar)?;
        emit::cmp_ri(&mut self.b, S0, zero);
        emit::b_cond(&mut self.b, Cond::Eq, written);
        emit::br(&mut self.b, S0);
        Ok(())
    }

    /// The write-back of an exit stub: check the unchecked tags (else `slow`), then store the
    /// snapshot into the VM slots (loop traces before their link, function traces before a
    /// linked side trace).
    pub(super) fn write_back(
        &mut self,
        plan: &ExitPlan,
        slow: DynamicLabel,
    ) -> Result<(), CompileError> {
        let max = self.layout.scalar_tags_max.unwrap_or(0);
        for &slot in &plan.checks {
            let disp = self.layout.tag_disp(slot).ok_or(CompileError::SlotTooFar)?;
            self.cmp_tag(disp, max)?;
            // Unsigned: a tag above the scalar ones may own heap memory.
            emit::b_cond(&mut self.b, Cond::Hi, slow);
        }
        for st in &plan.stores {
            self.store_slot(st)?;
        }
        Ok(())
    }

    /// One typed store of a write-back: tag (unless the slot holds it already), then payload.
    fn store_slot(&mut self, st: &Store) -> Result<(), CompileError> {
        let tag_disp = self
            .layout
            .tag_disp(st.slot)
            .ok_or(CompileError::SlotTooFar)?;
        let pay = self
            .layout
            .payload_disp(st.slot)
            .ok_or(CompileError::SlotTooFar)?;
        let tag = self.layout.tag_of(st.ty).unwrap_or(0);
        if st.tag {
            mov_imm(&mut self.b, S0, tag as i64);
            match self.slot_mem(tag_disp, self.layout.tag_size) {
                Mem::B(n, o) => emit::strb(&mut self.b, S0, n, o),
                Mem::W(n, o) => emit::str_w(&mut self.b, S0, n, o),
                Mem::X(n, o) => emit::str_x(&mut self.b, S0, n, o),
            }
        }
        // The value first (into S1 if it is not in a register), then the address (x15).
        let (reg, float) = match st.src {
            Src::Const(k) => {
                mov_imm(&mut self.b, S1, k);
                (S1, false)
            }
            Src::Loc(Loc::Reg(x)) => (x, st.ty == Ty::Float),
            Src::Loc(Loc::Spill(m)) => {
                emit::ldr_x(&mut self.b, S1, CTX, Self::spill(m)?);
                (S1, false)
            }
            // Every snapshot value has a location or is a constant.
            Src::Loc(Loc::None) => return Err(CompileError::SlotTooFar),
        };
        let Mem::X(n, o) = self.slot_mem(pay, 8) else {
            return Err(CompileError::SlotTooFar);
        };
        if float {
            emit::str_d(&mut self.b, reg, n, o);
        } else {
            emit::str_x(&mut self.b, reg, n, o);
        }
        Ok(())
    }
}
