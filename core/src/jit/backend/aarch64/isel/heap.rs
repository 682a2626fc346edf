//! AArch64 selection of heap accesses and float builtins: `SLoadT`, `LdI`/`LdF`/`LdB`,
//! `StI`/`StF`/`StB`, `SqrtF`, `ToInt`, and the inline runtime calls
//! ([`InlineCall`]).
use super::emit::{self, Cond, Imm12, Off1, Off8};
use super::{mov_imm, target, Isel, Mem, ADDR, BASE, FS0, S0, S1, X0, X1};
use crate::jit::backend::{CompileError, InlineCall, Kept, StrRelation};
use crate::jit::backend::{DUMP_FLOAT, DUMP_INT};
use crate::jit::buffer::DynamicLabel;
use crate::jit::callframe::FIRST_HEAP_TAG;
use crate::jit::ir::{Op, Ref};
use crate::vm::value::{
    ARRAY_CAP_OFFSET, ARRAY_LEN_OFFSET, ARRAY_PTR_OFFSET, INLINE_TEXT, PAYLOAD_OFFSET,
    RC_STRONG_OFFSET, STR_TEXT_OFFSET, TAG_ARRAY, TAG_INT, TAG_STR, TEXT_INSIDE, TEXT_LEN_OFFSET,
    TEXT_ROOM_OFFSET,
};

impl Isel<'_> {
    /// A memory operand for `width` (1 or 8) bytes at `base + disp`; offsets the load/store
    /// immediates cannot hold are added into `x15` first.
    fn heap_mem(&mut self, base: u8, disp: i64, width: u8) -> Mem {
        let direct = match width {
            1 => Off1::new(disp).map(|o| Mem::B(base, o)),
            _ => Off8::new(disp).map(|o| Mem::X(base, o)),
        };
        if let Some(m) = direct {
            return m;
        }
        mov_imm(&mut self.b, ADDR, disp);
        emit::add_rr(&mut self.b, ADDR, base, ADDR);
        match width {
            1 => Mem::B(ADDR, Off1::ZERO),
            _ => Mem::X(ADDR, Off8::ZERO),
        }
    }

    /// Emits one heap or builtin op.
    pub(super) fn heap_op(&mut self, r: Ref) -> Result<(), CompileError> {
        let inst = *self.t.inst(r);
        let width = if matches!(inst.op, Op::LdB | Op::StB) {
            1
        } else {
            8
        };
        match inst.op {
            Op::SLoadT => return self.sload_tagged(r),
            Op::LdI | Op::LdF | Op::LdB | Op::LdH => {
                let base = self.int_in(inst.a, S1)?;
                let m = self.heap_mem(base, inst.imm, width);
                match (inst.op, m) {
                    (Op::LdF, Mem::X(n, o)) => {
                        let fd = self.out(r, FS0);
                        emit::ldr_d(&mut self.b, fd, n, o);
                        self.store_result(r, fd)?;
                    }
                    (Op::LdB, Mem::B(n, o)) => {
                        let rd = self.out(r, S0);
                        emit::ldrb(&mut self.b, rd, n, o);
                        self.store_result(r, rd)?;
                    }
                    (_, Mem::X(n, o)) => {
                        let rd = self.out(r, S0);
                        emit::ldr_x(&mut self.b, rd, n, o);
                        self.store_result(r, rd)?;
                    }
                    _ => return Err(CompileError::SlotTooFar),
                }
            }
            Op::StI | Op::StB | Op::StF => {
                let base = self.int_in(inst.a, S1)?;
                let m = self.heap_mem(base, inst.imm, width);
                match (inst.op, m) {
                    (Op::StF, Mem::X(n, o)) => {
                        let v = self.float_in(inst.b, FS0)?;
                        emit::str_d(&mut self.b, v, n, o);
                    }
                    (Op::StB, Mem::B(n, o)) => {
                        let v = self.int_in(inst.b, S0)?;
                        emit::strb(&mut self.b, v, n, o);
                    }
                    (_, Mem::X(n, o)) => {
                        let v = self.int_in(inst.b, S0)?;
                        emit::str_x(&mut self.b, v, n, o);
                    }
                    _ => return Err(CompileError::SlotTooFar),
                }
            }
            Op::SAddr => {
                let slot = u32::try_from(inst.imm).map_err(|_| CompileError::SlotTooFar)?;
                let d = self.layout.tag_disp(slot).ok_or(CompileError::SlotTooFar)?
                    - self.layout.tag_offset as i32;
                let rd = self.out(r, S0);
                match Imm12::new(d as i64) {
                    Some(k) => emit::add_ri(&mut self.b, rd, BASE, k),
                    None => {
                        mov_imm(&mut self.b, rd, d as i64);
                        emit::add_rr(&mut self.b, rd, BASE, rd);
                    }
                }
                self.store_result(r, rd)?;
            }
            Op::SqrtF => {
                let fa = self.float_in(inst.a, FS0)?;
                let fd = self.out(r, FS0);
                emit::fsqrt(&mut self.b, fd, fa);
                self.store_result(r, fd)?;
            }
            _ => {
                // `ToInt`: `fcvtzs` saturates and maps NaN to 0, as Rust's `as` does.
                let fa = self.float_in(inst.a, FS0)?;
                let rd = self.out(r, S0);
                emit::fcvtzs(&mut self.b, rd, fa);
                self.store_result(r, rd)?;
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
        match self.slot_mem(tag_disp, self.layout.tag_size) {
            Mem::B(n, o) => emit::ldrb(&mut self.b, S0, n, o),
            Mem::W(n, o) => emit::ldr_w(&mut self.b, S0, n, o),
            Mem::X(n, o) => emit::ldr_x(&mut self.b, S0, n, o),
        }
        match Imm12::new(tag) {
            Some(k) => emit::cmp_ri(&mut self.b, S0, k),
            None => {
                mov_imm(&mut self.b, S1, tag);
                emit::cmp_rr(&mut self.b, S0, S1);
            }
        }
        emit::b_cond(&mut self.b, Cond::Ne, self.exits[inst.snap as usize]);
        let Mem::X(n, o) = self.slot_mem(pay, 8) else {
            return Err(CompileError::SlotTooFar);
        };
        let rd = self.out(r, S0);
        emit::ldr_x(&mut self.b, rd, n, o);
        self.store_result(r, rd)
    }
}

impl Isel<'_> {
    /// The registers the path of an inline runtime call that calls Rust must save.
    pub(super) fn keep_across_call(&self) -> Kept {
        Kept::of(self.t, self.alloc, &target::POOL)
    }

    /// Stores (`save`) or reloads the kept registers in the exit frame's register dump, which
    /// nothing reads while the trace runs (exits write it afresh).
    pub(super) fn save_regs(&mut self, kept: &Kept, save: bool) -> Result<(), CompileError> {
        let off = |w: usize| target::ctx_off(w).ok_or(CompileError::TooManySpills);
        for &x in &kept.ints {
            let o = off(DUMP_INT + x as usize)?;
            match save {
                true => emit::str_x(&mut self.b, x, target::CTX, o),
                false => emit::ldr_x(&mut self.b, x, target::CTX, o),
            }
        }
        for &x in &kept.floats {
            let o = off(DUMP_FLOAT + x as usize)?;
            match save {
                true => emit::str_d(&mut self.b, x, target::CTX, o),
                false => emit::ldr_d(&mut self.b, x, target::CTX, o),
            }
        }
        Ok(())
    }

    /// The inline part of a runtime copy (see [`InlineCall`]), with the call's arguments
    /// already in `x0` (destination) and `x1` (source): on success `x0` = 0 and a branch to
    /// the returned label, which the caller binds after its call; otherwise it falls through
    /// to the call with both arguments as they were. Uses only `x15`, `x16` and `x17`.
    pub(super) fn inline_copy(&mut self, kind: InlineCall) -> Result<DynamicLabel, CompileError> {
        const TAG: u8 = S0; // x16
        const PAY: u8 = S1; // x17
        const COUNT: u8 = ADDR; // x15
                                // Constants that always fit (checked here rather than assumed).
        let enc = || CompileError::SlotTooFar;
        let payload = Off8::new(PAYLOAD_OFFSET as i64).ok_or_else(enc)?;
        let strong = Off8::new(RC_STRONG_OFFSET as i64).ok_or_else(enc)?;
        let heap = Imm12::new(FIRST_HEAP_TAG as i64).ok_or_else(enc)?;
        let one = Imm12::new(1).ok_or_else(enc)?;
        let b = &mut self.b;
        let [call, old_plain, store, done] = [(); 4].map(|()| b.new_dynamic_label());
        match kind {
            InlineCall::StrStore => {
                emit::ldr_x(b, TAG, X1, Off8::ZERO);
                emit::cmp_ri(b, TAG, Imm12::new(TAG_STR as i64).ok_or_else(enc)?);
                emit::b_cond(b, Cond::Ne, call);
            }
            InlineCall::MoveHeap => {
                emit::ldr_x(b, TAG, X1, Off8::ZERO);
                emit::cmp_ri(b, TAG, heap);
                emit::b_cond(b, Cond::Lo, call);
            }
            _ => {}
        }
        emit::ldr_x(b, TAG, X0, Off8::ZERO);
        emit::cmp_ri(b, TAG, heap);
        emit::b_cond(b, Cond::Lo, old_plain);
        emit::ldr_x(b, PAY, X0, payload);
        emit::ldr_x(b, COUNT, PAY, strong);
        emit::cmp_ri(b, COUNT, one);
        emit::b_cond(b, Cond::Eq, call);
        emit::sub_ri(b, COUNT, COUNT, one);
        emit::str_x(b, COUNT, PAY, strong);
        emit::bind(b, old_plain);
        emit::ldr_x(b, TAG, X1, Off8::ZERO);
        emit::ldr_x(b, PAY, X1, payload);
        emit::cmp_ri(b, TAG, heap);
        emit::b_cond(b, Cond::Lo, store);
        emit::ldr_x(b, COUNT, PAY, strong);
        emit::add_ri(b, COUNT, COUNT, one);
        emit::str_x(b, COUNT, PAY, strong);
        emit::bind(b, store);
        emit::str_x(b, TAG, X0, Off8::ZERO);
        emit::str_x(b, PAY, X0, payload);
        emit::movz(b, X0, emit::Imm16::new(0), 0);
        emit::b(b, done);
        emit::bind(b, call);
        Ok(done)
    }

    /// The inline part of `push_int` (see [`InlineCall`]), with the register's address in
    /// `x0` and the int in `x1`: on success `x0` = 0 and a branch to the returned label,
    /// which the caller binds after its call; otherwise it falls through to the call with both
    /// arguments as they were. Uses only `x15`, `x16` and `x17`.
    pub(super) fn inline_push(&mut self) -> Result<DynamicLabel, CompileError> {
        const ARR: u8 = S0; // x16
        const LEN: u8 = S1; // x17
        const T: u8 = ADDR; // x15: the capacity, then the new element's address
                            // Constants that always fit (checked here rather than assumed).
        let enc = || CompileError::SlotTooFar;
        let off = |v: usize| Off8::new(v as i64).ok_or_else(enc);
        let (payload, len, cap, ptr) = (
            off(PAYLOAD_OFFSET)?,
            off(ARRAY_LEN_OFFSET)?,
            off(ARRAY_CAP_OFFSET)?,
            off(ARRAY_PTR_OFFSET)?,
        );
        let tag_array = Imm12::new(TAG_ARRAY as i64).ok_or_else(enc)?;
        let one = Imm12::new(1).ok_or_else(enc)?;
        const _: () = assert!(core::mem::size_of::<crate::vm::value::Value>() == 16);
        let b = &mut self.b;
        let [call, done] = [(); 2].map(|()| b.new_dynamic_label());
        emit::ldr_x(b, ARR, X0, Off8::ZERO);
        emit::cmp_ri(b, ARR, tag_array);
        emit::b_cond(b, Cond::Ne, call);
        emit::ldr_x(b, ARR, X0, payload);
        emit::ldr_x(b, LEN, ARR, len);
        emit::ldr_x(b, T, ARR, cap);
        emit::cmp_rr(b, LEN, T);
        emit::b_cond(b, Cond::Hs, call);
        emit::ldr_x(b, T, ARR, ptr);
        emit::add_lsl4(b, T, T, LEN);
        emit::add_ri(b, LEN, LEN, one);
        emit::str_x(b, LEN, ARR, len);
        emit::movz(b, LEN, emit::Imm16::new(TAG_INT as u16), 0);
        emit::str_x(b, LEN, T, Off8::ZERO);
        emit::str_x(b, X1, T, payload);
        emit::movz(b, X0, emit::Imm16::new(0), 0);
        emit::b(b, done);
        emit::bind(b, call);
        Ok(done)
    }

    /// The inline part of `str_rel` (see [`InlineCall`]) for `rel`, with slot 0's address in
    /// `x0`: on success `x0` = 1 or 0 and a branch to the returned label, which the caller
    /// binds after its call; otherwise it falls through to the call, `x1` overwritten (the
    /// caller loads the constant again). `None` (nothing emitted) when a slot lies too far
    /// for a load's immediate. Uses only `x15`, `x16`, `x17` and `x1`.
    pub(super) fn inline_str_rel(
        &mut self,
        rel: StrRelation,
    ) -> Result<Option<DynamicLabel>, CompileError> {
        const PX: u8 = S0; // x16: x's tag, then its payload
        const PY: u8 = S1; // x17: the same for y
        const WX: u8 = ADDR; // x15
        const WY: u8 = X1;
        let off8 = |v: u32| Off8::new(v as i64);
        let (Some(tx), Some(ty), Some(vx), Some(vy)) = (
            off8(rel.x * 16),
            off8(rel.y * 16),
            off8(rel.x * 16 + PAYLOAD_OFFSET as u32),
            off8(rel.y * 16 + PAYLOAD_OFFSET as u32),
        ) else {
            return Ok(None);
        };
        // Constants that always fit (checked here rather than assumed).
        let enc = || CompileError::SlotTooFar;
        let tag_str = Imm12::new(TAG_STR as i64).ok_or_else(enc)?;
        let inside = Imm12::new(TEXT_INSIDE as i64).ok_or_else(enc)?;
        let text = Off1::new(STR_TEXT_OFFSET as i64).ok_or_else(enc)?;
        let len = Off1::new((STR_TEXT_OFFSET + TEXT_LEN_OFFSET) as i64).ok_or_else(enc)?;
        let room = STR_TEXT_OFFSET + TEXT_ROOM_OFFSET;
        let words = [room, room + 8, room + INLINE_TEXT - 8].map(|w| Imm12::new(w as i64));
        let [Some(w0), Some(w1), Some(w2)] = words else {
            return Err(enc());
        };
        let b = &mut self.b;
        let [call, equal, less, greater, differ, done] = [(); 6].map(|()| b.new_dynamic_label());
        emit::ldr_x(b, PX, X0, tx);
        emit::cmp_ri(b, PX, tag_str);
        emit::b_cond(b, Cond::Ne, call);
        emit::ldr_x(b, PY, X0, ty);
        emit::cmp_ri(b, PY, tag_str);
        emit::b_cond(b, Cond::Ne, call);
        emit::ldr_x(b, PX, X0, vx);
        emit::ldr_x(b, PY, X0, vy);
        emit::cmp_rr(b, PX, PY);
        emit::b_cond(b, Cond::Eq, equal);
        for p in [PX, PY] {
            emit::ldrb(b, WX, p, text);
            emit::cmp_ri(b, WX, inside);
            emit::b_cond(b, Cond::Ne, call);
        }
        // The room in three words, the last overlapping the second (see `InlineCall`): the
        // room is not 8-byte aligned, so each word's address is formed first.
        for w in [w0, w1, w2] {
            emit::add_ri(b, WX, PX, w);
            emit::ldr_x(b, WX, WX, Off8::ZERO);
            emit::add_ri(b, WY, PY, w);
            emit::ldr_x(b, WY, WY, Off8::ZERO);
            emit::cmp_rr(b, WX, WY);
            emit::b_cond(b, Cond::Ne, differ);
        }
        emit::ldrb(b, WX, PX, len);
        emit::ldrb(b, WY, PY, len);
        emit::cmp_rr(b, WX, WY);
        emit::b_cond(b, Cond::Eq, equal);
        emit::b_cond(b, Cond::Lo, less);
        emit::b(b, greater);
        emit::bind(b, differ);
        emit::rev(b, WX, WX);
        emit::rev(b, WY, WY);
        emit::cmp_rr(b, WX, WY);
        emit::b_cond(b, Cond::Lo, less);
        emit::bind(b, greater);
        emit::movz(b, X0, emit::Imm16::new(0), 0);
        emit::b(b, done);
        emit::bind(b, less);
        emit::movz(b, X0, emit::Imm16::new(rel.holds_if_less as u16), 0);
        emit::b(b, done);
        emit::bind(b, equal);
        emit::movz(b, X0, emit::Imm16::new(rel.holds_if_equal as u16), 0);
        emit::b(b, done);
        emit::bind(b, call);
        Ok(Some(done))
    }
}
