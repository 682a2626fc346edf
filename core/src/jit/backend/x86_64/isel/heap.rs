//! x86-64 selection of heap accesses and float builtins: `SLoadT`, `LdI`/`LdF`/`LdB`,
//! `StI`/`StF`/`StB`, `SqrtF`, `ToInt`, and the inline runtime calls
//! ([`InlineCall`]).
use alloc::vec;
use alloc::vec::Vec;

use super::{emit, Cond, Isel, ARG0, ARG1, FS0, S0, S1};
use crate::jit::backend::{CompileError, InlineCall, Kept, StrRelation};
use crate::jit::backend::{DUMP_FLOAT, DUMP_INT};
use crate::jit::buffer::DynamicLabel;
use crate::jit::callframe::FIRST_HEAP_TAG;
use crate::jit::ir::{Op, Ref, Trace};
use crate::vm::value::{
    ARRAY_CAP_OFFSET, ARRAY_LEN_OFFSET, ARRAY_PTR_OFFSET, INLINE_TEXT, PAYLOAD_OFFSET,
    RC_STRONG_OFFSET, STR_TEXT_OFFSET, TAG_ARRAY, TAG_INT, TAG_STR, TEXT_INSIDE, TEXT_LEN_OFFSET,
    TEXT_ROOM_OFFSET,
};

/// Which `LdI`s the guard after them compares in memory (`cmp qword [base + disp], imm`): an
/// `LdI` whose one use is an `Eq`/`Ne` guard against an `i32` constant, with only int or bool
/// constants (no code, no register) between them, so the base register still holds the
/// address at the guard. Element tag checks take this shape.
pub(super) fn fused_loads(t: &Trace) -> Vec<bool> {
    let n = t.insts.len();
    let mut uses = vec![0u32; n];
    let count = |r: Ref, uses: &mut Vec<u32>| {
        if let Some(u) = uses.get_mut(r as usize) {
            *u += 1;
        }
    };
    for inst in &t.insts {
        count(inst.a, &mut uses);
        count(inst.b, &mut uses);
    }
    for s in t.snaps.iter().chain(core::iter::once(&t.tail)) {
        for e in &s.entries {
            count(e.val, &mut uses);
        }
    }
    let mut fused = vec![false; n];
    for (r, inst) in t.insts.iter().enumerate() {
        if !matches!(inst.op, Op::Eq | Op::Ne) || inst.a as usize >= r {
            continue;
        }
        let load = t.inst(inst.a);
        let k = t.inst(inst.b);
        let small = k.op == Op::KInt && i32::try_from(k.imm).is_ok();
        let between = t.insts[inst.a as usize + 1..r]
            .iter()
            .all(|i| matches!(i.op, Op::KInt | Op::KBool | Op::Nop));
        if load.op == Op::LdI && small && between && uses[inst.a as usize] == 1 {
            fused[inst.a as usize] = true;
        }
    }
    fused
}

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
            // Compared in memory by the guard after it.
            Op::LdI if self.fused.get(r as usize) == Some(&true) => {}
            Op::LdI | Op::LdF | Op::LdB | Op::LdH => {
                let d = disp(inst.imm)?;
                let base = self.int_in(inst.a, S1);
                if inst.op == Op::LdF {
                    let fd = self.out(r, FS0);
                    emit::load_rm_f(&mut self.b, fd, base, d);
                    self.store_result(r, fd);
                } else {
                    let rd = self.out(r, S0);
                    if inst.op == Op::LdB {
                        emit::load_rm_u8(&mut self.b, rd, base, d);
                    } else {
                        emit::load_rm(&mut self.b, rd, base, d);
                    }
                    self.store_result(r, rd);
                }
            }
            Op::StI | Op::StB => {
                let d = disp(inst.imm)?;
                let base = self.int_in(inst.a, S1);
                let v = self.int_in(inst.b, S0);
                if inst.op == Op::StB {
                    emit::store_mr_u8(&mut self.b, base, d, v);
                } else {
                    emit::store_mr(&mut self.b, base, d, v);
                }
            }
            Op::StF => {
                let d = disp(inst.imm)?;
                let base = self.int_in(inst.a, S1);
                let v = self.float_in(inst.b, FS0);
                emit::store_mr_f(&mut self.b, base, d, v);
            }
            Op::SAddr => {
                let slot = u32::try_from(inst.imm).map_err(|_| CompileError::SlotTooFar)?;
                let d = self.layout.tag_disp(slot).ok_or(CompileError::SlotTooFar)?
                    - self.layout.tag_offset as i32;
                let rd = self.out(r, S0);
                emit::lea_slot(&mut self.b, rd, d);
                self.store_result(r, rd);
            }
            Op::SqrtF => {
                let fa = self.float_in(inst.a, FS0);
                let fd = self.out(r, FS0);
                emit::sqrtsd(&mut self.b, fd, fa);
                self.store_result(r, fd);
            }
            _ => {
                // `ToInt`.
                let fa = self.float_in(inst.a, FS0);
                let rd = self.out(r, S0);
                emit::cvttsd2si(&mut self.b, rd, fa);
                self.store_result(r, rd);
            }
        }
        Ok(())
    }

    /// An `Eq`/`Ne` guard on a fused `LdI`: `cmp qword [base + disp], imm; jcc exit`.
    pub(super) fn fused_guard(&mut self, r: Ref) -> Result<(), CompileError> {
        let inst = *self.t.inst(r);
        let load = *self.t.inst(inst.a);
        let k = i32::try_from(self.t.inst(inst.b).imm).map_err(|_| CompileError::SlotTooFar)?;
        let base = self.int_in(load.a, S1);
        emit::cmp_mi(&mut self.b, base, disp(load.imm)?, k);
        let fail = if inst.op == Op::Eq { Cond::Ne } else { Cond::E };
        emit::jcc(&mut self.b, fail, self.exits[inst.snap as usize]);
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
            1 => emit::cmp_tag8(&mut self.b, tag_disp, tag as u8 as i8),
            4 => emit::cmp_tag32(&mut self.b, tag_disp, tag as u32 as i32),
            _ => {
                self.mov_imm(S0, tag);
                emit::cmp_tag64_r(&mut self.b, tag_disp, S0);
            }
        }
        emit::jcc(&mut self.b, Cond::Ne, self.exits[inst.snap as usize]);
        let rd = self.out(r, S0);
        emit::load_slot(&mut self.b, rd, pay);
        self.store_result(r, rd);
        Ok(())
    }
}

impl Isel<'_> {
    /// The registers the path of an inline runtime call that calls Rust must save.
    pub(super) fn keep_across_call(&self) -> Kept {
        Kept::of(self.t, self.alloc, &super::target::POOL)
    }

    /// Stores (`save`) or reloads the kept registers in the exit frame's register dump, which
    /// nothing reads while the trace runs (exits write it afresh).
    pub(super) fn save_regs(&mut self, kept: &Kept, save: bool) {
        for &x in &kept.ints {
            let d = super::word(DUMP_INT + x as usize);
            match save {
                true => emit::store_ctx(&mut self.b, d, x),
                false => emit::load_ctx(&mut self.b, x, d),
            }
        }
        for &x in &kept.floats {
            let d = super::word(DUMP_FLOAT + x as usize);
            match save {
                true => emit::store_ctx_f(&mut self.b, d, x),
                false => emit::load_ctx_f(&mut self.b, x, d),
            }
        }
    }

    /// The inline part of a runtime copy (see [`InlineCall`]), with the call's arguments
    /// already in `rdi` (destination) and `rsi` (source): on success `rax` = 0 and a jump to
    /// the returned label, which the caller binds after its call; otherwise it falls through
    /// to the call with both arguments as they were. Uses only `rax` and `r11`.
    pub(super) fn inline_copy(&mut self, kind: InlineCall) -> DynamicLabel {
        let strong = RC_STRONG_OFFSET as i32;
        let payload = PAYLOAD_OFFSET as i32;
        let heap = FIRST_HEAP_TAG as i32;
        let b = &mut self.b;
        let [call, old_plain, store, done] = [(); 4].map(|()| b.new_dynamic_label());
        match kind {
            InlineCall::StrStore => {
                emit::cmp_mi(b, ARG1, 0, TAG_STR as i32);
                emit::jcc(b, Cond::Ne, call);
            }
            InlineCall::MoveHeap => {
                emit::cmp_mi(b, ARG1, 0, heap);
                emit::jcc(b, Cond::B, call);
            }
            _ => {}
        }
        emit::cmp_mi(b, ARG0, 0, heap);
        emit::jcc(b, Cond::B, old_plain);
        emit::load_rm(b, S0, ARG0, payload);
        emit::cmp_mi(b, S0, strong, 1);
        emit::jcc(b, Cond::E, call);
        emit::add_mi(b, S0, strong, -1);
        emit::bind(b, old_plain);
        emit::load_rm(b, S0, ARG1, 0);
        emit::load_rm(b, S1, ARG1, payload);
        emit::cmp_ri(b, S0, heap);
        emit::jcc(b, Cond::B, store);
        emit::add_mi(b, S1, strong, 1);
        emit::bind(b, store);
        emit::store_mr(b, ARG0, 0, S0);
        emit::store_mr(b, ARG0, payload, S1);
        emit::mov_ri32(b, S0, 0);
        emit::jmp(b, done);
        emit::bind(b, call);
        done
    }

    /// The inline part of `push_int` (see [`InlineCall`]), with the register's address in
    /// `rdi` and the int in `rsi`: on success `rax` = 0 and a jump to the returned label,
    /// which the caller binds after its call; otherwise it falls through to the call with both
    /// arguments as they were. Uses only `rax` and `r11`.
    pub(super) fn inline_push(&mut self) -> DynamicLabel {
        const ARR: u8 = S0;
        const AT: u8 = S1; // the length, then the new element's address
        let (len, cap, ptr) = (
            ARRAY_LEN_OFFSET as i32,
            ARRAY_CAP_OFFSET as i32,
            ARRAY_PTR_OFFSET as i32,
        );
        let b = &mut self.b;
        let [call, done] = [(); 2].map(|()| b.new_dynamic_label());
        emit::cmp_mi(b, ARG0, 0, TAG_ARRAY as i32);
        emit::jcc(b, Cond::Ne, call);
        emit::load_rm(b, ARR, ARG0, PAYLOAD_OFFSET as i32);
        emit::load_rm(b, AT, ARR, len);
        emit::cmp_rm(b, AT, ARR, cap);
        emit::jcc(b, Cond::Ae, call);
        emit::imul_rri(
            b,
            AT,
            AT,
            core::mem::size_of::<crate::vm::value::Value>() as i32,
        );
        emit::add_rm(b, AT, ARR, ptr);
        emit::mov_mi(b, AT, 0, TAG_INT as i32);
        emit::store_mr(b, AT, PAYLOAD_OFFSET as i32, ARG1);
        emit::add_mi(b, ARR, len, 1);
        emit::mov_ri32(b, S0, 0);
        emit::jmp(b, done);
        emit::bind(b, call);
        done
    }

    /// The inline part of `str_rel` (see [`InlineCall`]) for `rel`, with slot 0's address in
    /// `rdi`: on success `rax` = 1 or 0 and a jump to the returned label, which the caller
    /// binds after its call; otherwise it falls through to the call, `rsi` overwritten (the
    /// caller loads the constant again). Uses only `rax`, `r11` and `rsi`.
    pub(super) fn inline_str_rel(&mut self, rel: StrRelation) -> DynamicLabel {
        const PX: u8 = S1; // x's payload
        const PY: u8 = ARG1; // y's payload
        let (dx, dy) = ((rel.x * 16) as i32, (rel.y * 16) as i32);
        let payload = PAYLOAD_OFFSET as i32;
        let text = STR_TEXT_OFFSET as i32;
        let room = text + TEXT_ROOM_OFFSET as i32;
        let len = text + TEXT_LEN_OFFSET as i32;
        let b = &mut self.b;
        let [call, equal, less, greater, differ, done] = [(); 6].map(|()| b.new_dynamic_label());
        emit::cmp_mi(b, ARG0, dx, TAG_STR as i32);
        emit::jcc(b, Cond::Ne, call);
        emit::cmp_mi(b, ARG0, dy, TAG_STR as i32);
        emit::jcc(b, Cond::Ne, call);
        emit::load_rm(b, PX, ARG0, dx + payload);
        emit::load_rm(b, PY, ARG0, dy + payload);
        emit::cmp_rr(b, PX, PY);
        emit::jcc(b, Cond::E, equal);
        for p in [PX, PY] {
            emit::cmp_mi8(b, p, text, TEXT_INSIDE as i8);
            emit::jcc(b, Cond::Ne, call);
        }
        // The room in three words, the last overlapping the second (see `InlineCall`); on the
        // first difference `rax` holds x's word and `r11` y's.
        for off in [0, 8, INLINE_TEXT as i32 - 8] {
            let same = b.new_dynamic_label();
            emit::load_rm(b, S0, PX, room + off);
            emit::cmp_rm(b, S0, PY, room + off);
            emit::jcc(b, Cond::E, same);
            emit::load_rm(b, S1, PY, room + off);
            emit::jmp(b, differ);
            emit::bind(b, same);
        }
        emit::load_rm_u8(b, S0, PX, len);
        emit::load_rm_u8(b, S1, PY, len);
        emit::cmp_rr(b, S0, S1);
        emit::jcc(b, Cond::E, equal);
        emit::jcc(b, Cond::B, less);
        emit::jmp(b, greater);
        emit::bind(b, differ);
        emit::bswap(b, S0);
        emit::bswap(b, S1);
        emit::cmp_rr(b, S0, S1);
        emit::jcc(b, Cond::B, less);
        emit::bind(b, greater);
        emit::mov_ri32(b, S0, 0);
        emit::jmp(b, done);
        emit::bind(b, less);
        emit::mov_ri32(b, S0, rel.holds_if_less as i32);
        emit::jmp(b, done);
        emit::bind(b, equal);
        emit::mov_ri32(b, S0, rel.holds_if_equal as i32);
        emit::jmp(b, done);
        emit::bind(b, call);
        done
    }
}
