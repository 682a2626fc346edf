//! x86-64 exit stubs of linked traces: native write-back, then a jump through the link table
//! (the plan and its invariants: [`crate::jit::backend::link`]).
use super::emit::{self, Cond};
use super::isel::{move_value, spill_disp, Isel};
use super::target::{FS1, S0, S1};
use crate::jit::backend::link::{ExitPlan, Store};
use crate::jit::backend::{sequentialize, CompileError, Src};
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
                let b = &mut self.b;
                sequentialize(target.moves(plan, float), temp, |d, s| {
                    move_value(b, float, d, s)
                });
            }
            for (slot, ty, d) in target.loads(plan) {
                let pay = self
                    .layout
                    .payload_disp(slot)
                    .ok_or(CompileError::SlotTooFar)?;
                match ty {
                    Ty::Float => emit::load_slot_f(&mut self.b, d, pay),
                    Ty::Bool => emit::load_slot_u8(&mut self.b, d, pay),
                    _ => emit::load_slot(&mut self.b, d, pay),
                }
            }
            self.mov_imm(S0, target.addr as i64);
            emit::jmp_r(&mut self.b, S0);
            return Ok(());
        }
        let table = self.links_table_entry(n);
        self.mov_imm(S0, table);
        emit::load_rm(&mut self.b, S0, S0, 0);
        emit::cmp_ri(&mut self.b, S0, 0);
        emit::jcc(&mut self.b, Cond::E, written);
        emit::jmp_r(&mut self.b, S0);
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
            self.cmp_tag(disp, max);
            // Unsigned: a tag above the scalar ones may own heap memory.
            emit::jcc(&mut self.b, Cond::A, slow);
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
        match self.layout.tag_size {
            _ if !st.tag => {}
            1 => emit::store_tag8(&mut self.b, tag_disp, tag as u8 as i8),
            4 => emit::store_tag32(&mut self.b, tag_disp, tag as u32 as i32),
            _ => match i32::try_from(tag as i64) {
                Ok(k) => emit::store_tag64(&mut self.b, tag_disp, k),
                Err(_) => {
                    self.mov_imm(S0, tag as i64);
                    emit::store_tag64_r(&mut self.b, tag_disp, S0);
                }
            },
        }
        match st.src {
            // `mov qword [slot], imm32` (sign-extended).
            Src::Const(k) if i32::try_from(k).is_ok() => {
                emit::store_tag64(&mut self.b, pay, k as i32)
            }
            Src::Const(k) => {
                self.mov_imm(S0, k);
                emit::store_slot(&mut self.b, pay, S0);
            }
            Src::Loc(Loc::Reg(x)) if st.ty == Ty::Float => emit::store_slot_f(&mut self.b, pay, x),
            Src::Loc(Loc::Reg(x)) => emit::store_slot(&mut self.b, pay, x),
            Src::Loc(Loc::Spill(m)) => {
                emit::load_ctx(&mut self.b, S0, spill_disp(m));
                emit::store_slot(&mut self.b, pay, S0);
            }
            // Every snapshot value has a location or is a constant.
            Src::Loc(Loc::None) => return Err(CompileError::SlotTooFar),
        }
        Ok(())
    }

    /// The address of link-table entry `n`.
    fn links_table_entry(&self, n: usize) -> i64 {
        self.links.table.wrapping_add(8 * n as u64) as i64
    }
}
