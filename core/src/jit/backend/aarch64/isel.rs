//! AArch64 instruction selection: walks an optimised, allocated trace and emits templates.
//!
//! Same code layout as x86-64 (prologue, pre-roll, LOOP, body, PHI moves, branch back, one
//! two-instruction exit stub per snapshot, one handler that dumps the registers). Three-address instructions need no copies; every
//! immediate goes through a checked-immediate constructor and falls back to `movz`/`movk` (or
//! address arithmetic in `x15`) when it does not fit, so no template can hit dynasm's
//! out-of-range panic.
use alloc::vec::Vec;

mod calls;
mod divk;
mod heap;

use super::emit::{self, Cond, Imm12, Imm16, Off1, Off4, Off8};
use super::emit_call;
use super::target::{self, ADDR, BASE, CTX, FS0, FS1, S0, S1, X0, X1, X2};
use crate::jit::backend::link::{EntryChecks, ExitPlan, RegLinks, WRITTEN};
use crate::jit::backend::{
    fuel_in_register, fuel_refunds, sequentialize, Assembled, Backend, CompileError, ExitLinks,
    InlineCall, Src, StrRelation, DUMP_FLOAT, DUMP_INT, FUEL, SPILL_BASE,
};
use crate::jit::buffer::{Arch, CodeBuffer, DynamicLabel};
use crate::jit::callframe;
use crate::jit::ir::{Op, Ref, Trace, Ty};
use crate::jit::regalloc::{Allocation, Loc, RegPool};
use crate::jit::slots::SlotLayout;

/// The AArch64 backend.
#[derive(Clone, Copy, Debug)]
pub struct A64;

impl Backend for A64 {
    const POOL: RegPool = target::POOL;
    const FUNC_POOL: RegPool = target::FUNC_POOL;
    const FUEL_POOL: RegPool = target::FUEL_POOL;
    const FUEL_REG: u8 = target::FUEL_REG;
    fn assemble(
        t: &Trace,
        alloc: &Allocation,
        layout: &SlotLayout,
        links: &ExitLinks,
        entry: &EntryChecks,
        plans: Option<&[ExitPlan]>,
        reg: &RegLinks<'_>,
    ) -> Result<Assembled, CompileError> {
        if target::ctx_off(SPILL_BASE + alloc.spill_slots as usize).is_none() {
            return Err(CompileError::TooManySpills);
        }
        if t.snaps.len() > u16::MAX as usize {
            return Err(CompileError::TooManyExits);
        }
        let mut b = CodeBuffer::new(Arch::Aarch64);
        let exits = (0..t.snaps.len()).map(|_| b.new_dynamic_label()).collect();
        let epilogue = b.new_dynamic_label();
        let mut isel = Isel {
            b,
            t,
            alloc,
            layout,
            exits,
            epilogue,
            links: *links,
            plans,
            entry,
            reg,
            fast_entry: 0,
            reg_entry: 0,
            done_guard: None,
            done_result: None,
            link_table: t.insts.iter().find(|i| i.op == Op::Links).map(|i| i.imm),
            refunds: fuel_refunds(t),
            fuel_reg: fuel_in_register(t).then_some(target::FUEL_REG),
        };
        isel.trace()?;
        let (fast_entry, reg_entry) = (isel.fast_entry, isel.reg_entry);
        Ok(Assembled {
            code: isel.b.finish()?,
            fast_entry,
            reg_entry,
        })
    }

    fn entry_offset() -> usize {
        let mut b = CodeBuffer::new(Arch::Aarch64);
        emit::prologue(&mut b);
        b.offset()
    }

    fn func_entry_offset() -> usize {
        let mut b = CodeBuffer::new(Arch::Aarch64);
        emit_call::func_prologue(&mut b);
        b.offset()
    }
}

/// Loads `v` into `d` with the shortest `movz`/`movn`/`movk` sequence.
pub(super) fn mov_imm(b: &mut CodeBuffer, d: u8, v: i64) {
    let u = v as u64;
    if u <= 0xffff {
        return emit::movz(b, d, Imm16::new(u as u16), 0);
    }
    if !u <= 0xffff {
        return emit::movn(b, d, Imm16::new(!u as u16));
    }
    let mut first = true;
    for sh in 0..4u8 {
        let chunk = (u >> (16 * sh)) as u16;
        if chunk != 0 {
            if first {
                emit::movz(b, d, Imm16::new(chunk), sh);
            } else {
                emit::movk(b, d, Imm16::new(chunk), sh);
            }
            first = false;
        }
    }
}

/// A memory operand for a slot field: base register and checked offset.
pub(super) enum Mem {
    X(u8, Off8),
    W(u8, Off4),
    B(u8, Off1),
}

pub(super) struct Isel<'a> {
    pub(super) b: CodeBuffer,
    t: &'a Trace,
    alloc: &'a Allocation,
    pub(super) layout: &'a SlotLayout,
    exits: Vec<DynamicLabel>,
    epilogue: DynamicLabel,
    pub(super) links: ExitLinks,
    /// Each exit's write-back plan (`backend::link::exit_plans`), if its stubs link.
    plans: Option<&'a [ExitPlan]>,
    /// The checked entry's checks (see `backend::link`).
    entry: &'a EntryChecks,
    /// The exits that jump into the register entry of the trace they resume in.
    pub(super) reg: &'a RegLinks<'a>,
    /// Where the fast entry is (set by [`Isel::entry_checks`]).
    fast_entry: usize,
    /// Where the register entry is: past the leading `SLoad`s.
    reg_entry: usize,
    /// A `CallD`'s status guard that the call's code already emitted (see `calls.rs`).
    pub(super) done_guard: Option<Ref>,
    /// A `CallD`'s result op that the call's code already emitted (see `calls.rs`).
    pub(super) done_result: Option<Ref>,
    /// The exit link table of a function trace (its `Links` instruction's `imm`), found once:
    /// every exit stub asks for it.
    pub(super) link_table: Option<i64>,
    /// Per snapshot: the fuel its exit stub gives back first ([`fuel_refunds`]).
    refunds: Vec<Option<i32>>,
    /// The register holding the fuel left, when the trace keeps it there
    /// ([`fuel_in_register`]).
    fuel_reg: Option<u8>,
}

impl Isel<'_> {
    /// Whether this is a function trace (it ends in a return; see `Backend::FUNC_POOL`).
    pub(super) fn is_func(&self) -> bool {
        matches!(
            self.t.insts.last().map(|i| i.op),
            Some(Op::RetI | Op::RetF | Op::RetN)
        )
    }

    /// The prologue, or a function trace's smaller one.
    fn prologue(&mut self) {
        if self.is_func() {
            emit_call::func_prologue(&mut self.b);
        } else {
            emit::prologue(&mut self.b);
        }
    }

    /// The epilogue matching `prologue`.
    pub(super) fn epilogue(&mut self) {
        if self.is_func() {
            emit_call::func_epilogue(&mut self.b);
        } else {
            emit::epilogue(&mut self.b);
        }
    }

    fn trace(&mut self) -> Result<(), CompileError> {
        self.prologue();
        let failed = self.entry_checks()?;
        // The leading `SLoad`s, then the register entry (see `backend::link`).
        for r in 0..self.entry.loads {
            self.inst(r as Ref)?;
        }
        self.reg_entry = self.b.offset();
        if let Some(f) = self.fuel_reg {
            // Linked exits of other traces enter before this too.
            let off = target::ctx_off(FUEL).ok_or(CompileError::TooManySpills)?;
            emit::ldr_x(&mut self.b, f, CTX, off);
        }
        let mut loop_label = None;
        for r in self.entry.loads..self.t.insts.len() {
            if self.t.insts[r].op == Op::Loop {
                let l = self.b.new_dynamic_label();
                emit::bind(&mut self.b, l);
                loop_label = Some(l);
            } else {
                self.inst(r as Ref)?;
            }
        }
        if let Some(l) = loop_label {
            self.phi_moves()?;
            emit::b(&mut self.b, l);
        }
        if let Some(l) = failed {
            // The start exit: nothing charged, nothing written, the fuel word untouched.
            emit::bind(&mut self.b, l);
            self.exit_with(self.links.exit_id(self.entry.snap as usize));
        }
        let exited = self.t.exited_snapshots();
        for n in (0..self.t.snaps.len()).filter(|&n| exited[n]) {
            emit::bind(&mut self.b, self.exits[n]);
            if let Some(f) = self.fuel_reg {
                let off = target::ctx_off(FUEL).ok_or(CompileError::TooManySpills)?;
                emit::str_x(&mut self.b, f, CTX, off);
            }
            if let Some(k) = self.refunds[n] {
                self.refund(k.into())?;
            }
            self.exit_link(n)?;
            if let Some(plan) = self.plans.map(|p| &p[n]) {
                let (slow, written) = (self.b.new_dynamic_label(), self.b.new_dynamic_label());
                self.write_back_and_link(n, plan, slow, written)?;
                emit::bind(&mut self.b, written);
                mov_imm(&mut self.b, S0, (self.links.exit_id(n) | WRITTEN) as i64);
                emit::b(&mut self.b, self.epilogue);
                emit::bind(&mut self.b, slow);
            }
            self.exit_with(self.links.exit_id(n));
        }
        self.exit_handler()
    }

    /// Exit id `id` into the return register, then to the handler.
    fn exit_with(&mut self, id: u32) {
        match u16::try_from(id) {
            Ok(id) => emit::exit_to(&mut self.b, Imm16::new(id), self.epilogue),
            Err(_) => {
                mov_imm(&mut self.b, S0, id as i64);
                emit::b(&mut self.b, self.epilogue);
            }
        }
    }

    /// The checked entry's tag checks (a failure branches to the returned label, the start
    /// exit), then the fast entry.
    fn entry_checks(&mut self) -> Result<Option<DynamicLabel>, CompileError> {
        let entry = self.entry;
        let failed = (!entry.checks.is_empty()).then(|| self.b.new_dynamic_label());
        if let Some(fail) = failed {
            for (slot, tag, exact) in entry.compares(self.layout) {
                let disp = self.layout.tag_disp(slot).ok_or(CompileError::SlotTooFar)?;
                self.cmp_tag(disp, tag)?;
                emit::b_cond(&mut self.b, if exact { Cond::Ne } else { Cond::Hi }, fail);
            }
        }
        self.fast_entry = self.b.offset();
        Ok(failed)
    }

    /// Compares the tag at `disp` with `tag` (the tag in `S0`).
    pub(super) fn cmp_tag(&mut self, disp: i32, tag: u64) -> Result<(), CompileError> {
        match self.slot_mem(disp, self.layout.tag_size) {
            Mem::B(n, o) => emit::ldrb(&mut self.b, S0, n, o),
            Mem::W(n, o) => emit::ldr_w(&mut self.b, S0, n, o),
            Mem::X(n, o) => emit::ldr_x(&mut self.b, S0, n, o),
        }
        match Imm12::new(tag as i64).filter(|_| tag < 4096) {
            Some(k) => emit::cmp_ri(&mut self.b, S0, k),
            None => {
                mov_imm(&mut self.b, S1, tag as i64);
                emit::cmp_rr(&mut self.b, S0, S1);
            }
        }
        Ok(())
    }

    /// Dumps every allocatable register into the exit frame, then returns.
    fn exit_handler(&mut self) -> Result<(), CompileError> {
        emit::bind(&mut self.b, self.epilogue);
        if self.is_func() {
            // The slot base, current at every exit (see `callframe::SLOTS`).
            let slots = target::ctx_off(callframe::AREA + callframe::SLOTS)
                .ok_or(CompileError::TooManySpills)?;
            emit::str_x(&mut self.b, BASE, CTX, slots);
        }
        let pool = target::POOL;
        for &r in pool.int_caller.iter().chain(pool.int_callee) {
            let off = target::ctx_off(DUMP_INT + r as usize).ok_or(CompileError::TooManySpills)?;
            emit::str_x(&mut self.b, r, CTX, off);
        }
        for &x in pool.float_caller.iter().chain(pool.float_callee) {
            let off =
                target::ctx_off(DUMP_FLOAT + x as usize).ok_or(CompileError::TooManySpills)?;
            emit::str_d(&mut self.b, x, CTX, off);
        }
        emit::mov_rr(&mut self.b, X0, S0);
        self.epilogue();
        Ok(())
    }

    fn inst(&mut self, r: Ref) -> Result<(), CompileError> {
        let inst = *self.t.inst(r);
        if self.done_guard == Some(r) || self.done_result == Some(r) {
            return Ok(());
        }
        match inst.op {
            Op::Nop | Op::KInt | Op::KBool | Op::Loop | Op::Phi => {}
            Op::KFloat => {
                // A hoisted constant: built once, here (see regalloc).
                if let Loc::Reg(x) = self.alloc.locs[r as usize] {
                    mov_imm(&mut self.b, S0, inst.imm);
                    emit::fmov_dx(&mut self.b, x, S0);
                }
            }
            Op::NotB => self.not_bool(r)?,
            Op::Exit => emit::b(&mut self.b, self.exits[inst.snap as usize]),
            Op::SLoad => self.sload(r)?,
            Op::AddI | Op::SubI | Op::MulI => self.int_arith(r)?,
            Op::DivIK | Op::ModIK => self.int_div_k(r)?,
            Op::AddF | Op::SubF | Op::MulF | Op::DivF => self.float_arith(r)?,
            Op::ToFloat => {
                let ra = self.int_in(inst.a, S0)?;
                let fd = self.out(r, FS0);
                emit::scvtf(&mut self.b, fd, ra);
                self.store_result(r, fd)?;
            }
            Op::FBits => {
                let fa = self.float_in(inst.a, FS0)?;
                let rd = self.out(r, S0);
                emit::fmov_xd(&mut self.b, rd, fa);
                self.store_result(r, rd)?;
            }
            Op::BitsF => {
                let ra = self.int_in(inst.a, S0)?;
                let fd = self.out(r, FS0);
                emit::fmov_dx(&mut self.b, fd, ra);
                self.store_result(r, fd)?;
            }
            Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Eq | Op::Ne | Op::ULt | Op::FNLt | Op::FNLe => {
                self.guard(r)?
            }
            Op::Call => self.call(r)?,
            Op::Fuel => self.fuel(r)?,
            Op::CArgI
            | Op::CArgF
            | Op::CallV
            | Op::CResI
            | Op::CResF
            | Op::RetI
            | Op::RetF
            | Op::RetN
            | Op::CallD
            | Op::Links => self.vm_call(r)?,
            Op::SLoadT
            | Op::LdI
            | Op::LdF
            | Op::LdB
            | Op::LdH
            | Op::StI
            | Op::StF
            | Op::StB
            | Op::SqrtF
            | Op::SAddr
            | Op::ToInt => self.heap_op(r)?,
        }
        Ok(())
    }

    // ---- operands ----------------------------------------------------------------------------

    fn konst(&self, r: Ref) -> Option<i64> {
        let i = self.t.inst(r);
        i.op.is_const().then_some(i.imm)
    }

    pub(super) fn spill(n: u32) -> Result<Off8, CompileError> {
        target::ctx_off(SPILL_BASE + n as usize).ok_or(CompileError::TooManySpills)
    }

    fn int_in(&mut self, r: Ref, scratch: u8) -> Result<u8, CompileError> {
        if let Some(k) = self.konst(r) {
            mov_imm(&mut self.b, scratch, k);
            return Ok(scratch);
        }
        Ok(match self.alloc.locs[r as usize] {
            Loc::Reg(x) => x,
            Loc::Spill(n) => {
                emit::ldr_x(&mut self.b, scratch, CTX, Self::spill(n)?);
                scratch
            }
            Loc::None => scratch,
        })
    }

    fn float_in(&mut self, r: Ref, scratch: u8) -> Result<u8, CompileError> {
        if let Loc::Reg(x) = self.alloc.locs[r as usize] {
            return Ok(x);
        }
        if let Some(k) = self.konst(r) {
            mov_imm(&mut self.b, S0, k);
            emit::fmov_dx(&mut self.b, scratch, S0);
            return Ok(scratch);
        }
        Ok(match self.alloc.locs[r as usize] {
            Loc::Reg(x) => x,
            Loc::Spill(n) => {
                emit::ldr_d(&mut self.b, scratch, CTX, Self::spill(n)?);
                scratch
            }
            Loc::None => scratch,
        })
    }

    fn out(&self, r: Ref, scratch: u8) -> u8 {
        match self.alloc.locs[r as usize] {
            Loc::Reg(x) => x,
            _ => scratch,
        }
    }

    fn store_result(&mut self, r: Ref, reg: u8) -> Result<(), CompileError> {
        if let Loc::Spill(n) = self.alloc.locs[r as usize] {
            let off = Self::spill(n)?;
            match self.t.ty(r) {
                Ty::Float => emit::str_d(&mut self.b, reg, CTX, off),
                _ => emit::str_x(&mut self.b, reg, CTX, off),
            }
        }
        Ok(())
    }

    /// A memory operand for `width` bytes at `disp` from the slot base; offsets the load/store
    /// immediates cannot hold are added into `x15` first.
    pub(super) fn slot_mem(&mut self, disp: i32, width: u8) -> Mem {
        let d = disp as i64;
        let direct = match width {
            1 => Off1::new(d).map(|o| Mem::B(BASE, o)),
            4 => Off4::new(d).map(|o| Mem::W(BASE, o)),
            _ => Off8::new(d).map(|o| Mem::X(BASE, o)),
        };
        if let Some(m) = direct {
            return m;
        }
        mov_imm(&mut self.b, ADDR, d);
        emit::add_rr(&mut self.b, ADDR, BASE, ADDR);
        match width {
            1 => Mem::B(ADDR, Off1::ZERO),
            4 => Mem::W(ADDR, Off4::ZERO),
            _ => Mem::X(ADDR, Off8::ZERO),
        }
    }

    // ---- instructions ------------------------------------------------------------------------

    fn sload(&mut self, r: Ref) -> Result<(), CompileError> {
        let inst = *self.t.inst(r);
        let slot = inst.imm as u32;
        let tag_disp = self.layout.tag_disp(slot).ok_or(CompileError::SlotTooFar)?;
        let pay = self
            .layout
            .payload_disp(slot)
            .ok_or(CompileError::SlotTooFar)?;
        let tag = self.layout.tag_of(inst.ty).unwrap_or(0);
        // The checked entry verified it (see `backend::link`).
        if !self.entry.covers(r as usize, slot, tag) {
            self.cmp_tag(tag_disp, tag)?;
            emit::b_cond(&mut self.b, Cond::Ne, self.exits[inst.snap as usize]);
        }
        if inst.ty == Ty::Bool {
            // One byte: the rest of a bool's payload is unspecified.
            let Mem::B(n, o) = self.slot_mem(pay, 1) else {
                return Err(CompileError::SlotTooFar);
            };
            let rd = self.out(r, S0);
            emit::ldrb(&mut self.b, rd, n, o);
            return self.store_result(r, rd);
        }
        let Mem::X(n, o) = self.slot_mem(pay, 8) else {
            return Err(CompileError::SlotTooFar);
        };
        if inst.ty == Ty::Float {
            let fd = self.out(r, FS0);
            emit::ldr_d(&mut self.b, fd, n, o);
            self.store_result(r, fd)
        } else {
            let rd = self.out(r, S0);
            emit::ldr_x(&mut self.b, rd, n, o);
            self.store_result(r, rd)
        }
    }

    fn int_arith(&mut self, r: Ref) -> Result<(), CompileError> {
        let inst = *self.t.inst(r);
        let rd = self.out(r, S0);
        let ra = self.int_in(inst.a, S0)?;
        // add/sub of a small constant (either sign) use the immediate forms.
        let neg = |v: i64| v.checked_neg().and_then(Imm12::new);
        let imm_form = match (inst.op, self.konst(inst.b)) {
            (Op::AddI, Some(v)) => Imm12::new(v)
                .map(|i| (true, i))
                .or_else(|| neg(v).map(|i| (false, i))),
            (Op::SubI, Some(v)) => Imm12::new(v)
                .map(|i| (false, i))
                .or_else(|| neg(v).map(|i| (true, i))),
            _ => None,
        };
        match imm_form {
            Some((true, i)) => emit::add_ri(&mut self.b, rd, ra, i),
            Some((false, i)) => emit::sub_ri(&mut self.b, rd, ra, i),
            None => {
                let rb = self.int_in(inst.b, S1)?;
                match inst.op {
                    Op::AddI => emit::add_rr(&mut self.b, rd, ra, rb),
                    Op::SubI => emit::sub_rr(&mut self.b, rd, ra, rb),
                    _ => emit::mul_rr(&mut self.b, rd, ra, rb),
                }
            }
        }
        self.store_result(r, rd)
    }

    /// `1 - a` (a bool is 0 or 1).
    fn not_bool(&mut self, r: Ref) -> Result<(), CompileError> {
        let inst = *self.t.inst(r);
        let rd = self.out(r, S0);
        let ra = self.int_in(inst.a, S1)?;
        mov_imm(&mut self.b, S0, 1);
        emit::sub_rr(&mut self.b, rd, S0, ra);
        self.store_result(r, rd)
    }

    fn float_arith(&mut self, r: Ref) -> Result<(), CompileError> {
        let inst = *self.t.inst(r);
        let fd = self.out(r, FS0);
        let fa = self.float_in(inst.a, FS0)?;
        let fb = self.float_in(inst.b, FS1)?;
        match inst.op {
            Op::AddF => emit::fadd(&mut self.b, fd, fa, fb),
            Op::SubF => emit::fsub(&mut self.b, fd, fa, fb),
            Op::MulF => emit::fmul(&mut self.b, fd, fa, fb),
            _ => emit::fdiv(&mut self.b, fd, fa, fb),
        }
        self.store_result(r, fd)
    }

    fn guard(&mut self, r: Ref) -> Result<(), CompileError> {
        let inst = *self.t.inst(r);
        let exit = self.exits[inst.snap as usize];
        let fail = if self.t.ty(inst.a) == Ty::Float {
            let fa = self.float_in(inst.a, FS0)?;
            let fb = self.float_in(inst.b, FS1)?;
            emit::fcmp(&mut self.b, fa, fb);
            // After fcmp, "unordered" sets C and V: each failing condition includes it,
            // except `FNLt` and `FNLe`'s, which fail on an ordered `a < b` (N) or `a <= b`
            // (C clear or Z set) only.
            match inst.op {
                Op::Lt => Cond::Pl,
                Op::Le => Cond::Hi,
                Op::Gt => Cond::Le,
                Op::Ge => Cond::Lt,
                Op::Eq => Cond::Ne,
                Op::FNLt => Cond::Mi,
                Op::FNLe => Cond::Ls,
                _ => Cond::Eq,
            }
        } else {
            let ra = self.int_in(inst.a, S0)?;
            match self.konst(inst.b).and_then(Imm12::new) {
                Some(k) => emit::cmp_ri(&mut self.b, ra, k),
                None => {
                    let rb = self.int_in(inst.b, S1)?;
                    emit::cmp_rr(&mut self.b, ra, rb);
                }
            }
            match inst.op {
                Op::ULt => Cond::Hs,
                Op::Lt => Cond::Ge,
                Op::Le => Cond::Gt,
                Op::Gt => Cond::Le,
                Op::Ge => Cond::Lt,
                Op::Eq => Cond::Ne,
                // Float-only guards (the recorder emits them for floats); as ints, no NaN.
                Op::FNLt => Cond::Lt,
                Op::FNLe => Cond::Le,
                _ => Cond::Eq,
            }
        };
        emit::b_cond(&mut self.b, fail, exit);
        Ok(())
    }

    /// `fuel += k` on the frame's fuel word: a refunding guard's exit (see
    /// [`crate::jit::ir`]).
    fn refund(&mut self, k: i64) -> Result<(), CompileError> {
        let off = target::ctx_off(FUEL).ok_or(CompileError::TooManySpills)?;
        emit::ldr_x(&mut self.b, S0, CTX, off);
        mov_imm(&mut self.b, S1, k);
        emit::add_rr(&mut self.b, S0, S0, S1);
        emit::str_x(&mut self.b, S0, CTX, off);
        Ok(())
    }

    /// `if cost > fuel { exit } fuel -= cost` on the frame's fuel word, or on the fuel register
    /// in a trace that keeps it there ([`fuel_in_register`]: no load or store). When the exit refunds
    /// the charge ([`fuel_refunds`]), `subs` charges first and a borrow (carry clear) takes the
    /// exit, whose stub gives the charge back: `ldr`, `subs`, `str`, `b.lo`. Otherwise the charge
    /// is compared first (unsigned: `hi`) and stored only when it holds.
    fn fuel(&mut self, r: Ref) -> Result<(), CompileError> {
        let inst = *self.t.inst(r);
        let off = target::ctx_off(FUEL).ok_or(CompileError::TooManySpills)?;
        let exit = self.exits[inst.snap as usize];
        // The count: in the fuel register (the exit stubs store it), or the frame's word
        // loaded into S0 and stored back.
        let (v, in_memory) = match self.fuel_reg {
            Some(f) => (f, false),
            None => {
                emit::ldr_x(&mut self.b, S0, CTX, off);
                (S0, true)
            }
        };
        if self.refunds[inst.snap as usize].is_some() {
            match Imm12::new(inst.imm) {
                Some(k) => emit::subs_ri(&mut self.b, v, v, k),
                None => {
                    mov_imm(&mut self.b, S1, inst.imm);
                    emit::subs_rr(&mut self.b, v, v, S1);
                }
            }
            if in_memory {
                emit::str_x(&mut self.b, v, CTX, off);
            }
            emit::b_cond(&mut self.b, Cond::Lo, exit);
            return Ok(());
        }
        mov_imm(&mut self.b, S1, inst.imm);
        emit::cmp_rr(&mut self.b, S1, v);
        emit::b_cond(&mut self.b, Cond::Hi, exit);
        emit::sub_rr(&mut self.b, v, v, S1);
        if in_memory {
            emit::str_x(&mut self.b, v, CTX, off);
        }
        Ok(())
    }

    fn call(&mut self, r: Ref) -> Result<(), CompileError> {
        let inst = *self.t.inst(r);
        let ra = self.int_in(inst.a, S0)?;
        if ra != S0 {
            emit::mov_rr(&mut self.b, S0, ra);
        }
        let rb = self.int_in(inst.b, S1)?;
        if rb != S1 {
            emit::mov_rr(&mut self.b, S1, rb);
        }
        emit::mov_rr(&mut self.b, X0, S0);
        emit::mov_rr(&mut self.b, X1, S1);
        let f = self.t.calls[inst.imm as usize];
        let inline = InlineCall::at(self.t, r as usize);
        let packed = self.konst(inst.b);
        let done = match inline {
            Some(InlineCall::StrRel) => match packed.and_then(StrRelation::unpack) {
                Some(rel) => self.inline_str_rel(rel)?,
                None => None,
            },
            Some(InlineCall::PushInt) => Some(self.inline_push()?),
            Some(kind) => Some(self.inline_copy(kind)?),
            None => None,
        };
        if inline == Some(InlineCall::StrRel) && done.is_some() {
            // The inline compare used `x1`; the call wants its constant back.
            if let Some(k) = packed {
                mov_imm(&mut self.b, X1, k);
            }
        }
        let kept = inline.map(|_| self.keep_across_call());
        if let Some(kept) = &kept {
            self.save_regs(kept, true)?;
        }
        mov_imm(&mut self.b, S0, f as usize as i64);
        emit::blr(&mut self.b, S0);
        if let Some(kept) = &kept {
            self.save_regs(kept, false)?;
        }
        if let Some(done) = done {
            emit::bind(&mut self.b, done);
        }
        let rd = self.out(r, S0);
        if rd != X0 {
            emit::mov_rr(&mut self.b, rd, X0);
        }
        self.store_result(r, rd)
    }

    // ---- back edge and exits -----------------------------------------------------------------

    fn src(&self, r: Ref) -> Src {
        match self.konst(r) {
            Some(k) => Src::Const(k),
            None => Src::Loc(self.alloc.locs[r as usize]),
        }
    }

    fn phi_moves(&mut self) -> Result<(), CompileError> {
        for float in [false, true] {
            let moves: Vec<(Loc, Src)> = self
                .t
                .insts
                .iter()
                .filter(|i| i.op == Op::Phi && (self.t.ty(i.a) == Ty::Float) == float)
                .map(|i| (self.alloc.locs[i.a as usize], self.src(i.b)))
                .collect();
            let temp = Loc::Reg(if float { FS1 } else { S1 });
            self.parallel_move(moves, temp, float)?;
        }
        Ok(())
    }

    /// A parallel move of one register class (`float`), cycles broken through `temp`.
    pub(super) fn parallel_move(
        &mut self,
        moves: Vec<(Loc, Src)>,
        temp: Loc,
        float: bool,
    ) -> Result<(), CompileError> {
        let b = &mut self.b;
        let mut result = Ok(());
        sequentialize(moves, temp, |d, s| {
            if let Err(err) = move_value(b, float, d, s) {
                result = Err(err);
            }
        });
        result
    }
}

/// One move of the PHI resolution; memory-to-memory and constants go through `x16`.
fn move_value(b: &mut CodeBuffer, float: bool, d: Loc, s: Src) -> Result<(), CompileError> {
    let sp = |n: u32| target::ctx_off(SPILL_BASE + n as usize).ok_or(CompileError::TooManySpills);
    match (d, s, float) {
        (Loc::Reg(d), Src::Loc(Loc::Reg(s)), false) => emit::mov_rr(b, d, s),
        (Loc::Reg(d), Src::Loc(Loc::Reg(s)), true) => emit::fmov_dd(b, d, s),
        (Loc::Reg(d), Src::Loc(Loc::Spill(n)), false) => emit::ldr_x(b, d, CTX, sp(n)?),
        (Loc::Reg(d), Src::Loc(Loc::Spill(n)), true) => emit::ldr_d(b, d, CTX, sp(n)?),
        (Loc::Reg(d), Src::Const(k), false) => mov_imm(b, d, k),
        (Loc::Reg(d), Src::Const(k), true) => {
            mov_imm(b, S0, k);
            emit::fmov_dx(b, d, S0);
        }
        (Loc::Spill(n), Src::Loc(Loc::Reg(s)), false) => emit::str_x(b, s, CTX, sp(n)?),
        (Loc::Spill(n), Src::Loc(Loc::Reg(s)), true) => emit::str_d(b, s, CTX, sp(n)?),
        (Loc::Spill(n), Src::Loc(Loc::Spill(m)), _) => {
            emit::ldr_x(b, S0, CTX, sp(m)?);
            emit::str_x(b, S0, CTX, sp(n)?);
        }
        (Loc::Spill(n), Src::Const(k), _) => {
            mov_imm(b, S0, k);
            emit::str_x(b, S0, CTX, sp(n)?);
        }
        // Values always have a location; nothing to move otherwise.
        _ => {}
    }
    Ok(())
}
