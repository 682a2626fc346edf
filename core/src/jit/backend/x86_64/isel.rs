//! x86-64 instruction selection: walks an optimised, allocated trace and emits templates.
//!
//! Layout of the generated code:
//! ```text
//!   prologue; pre-roll; LOOP: body; PHI moves; jmp LOOP
//!   exit n: [write-back; jmp linked trace]               (linked traces, see `link.rs`)
//!           mov eax, exit id; jmp handler                (one stub per snapshot)
//!   handler: dump allocatable registers into the exit frame; epilogue; ret
//! ```
//! Operands in spill slots or constants are brought into the scratch registers (`rax`, `r11`,
//! `xmm15`, `xmm14`) for the one instruction that needs them; results that live in a spill
//! slot are computed in a scratch register and stored.
use alloc::vec::Vec;

mod calls;
mod divk;
mod heap;

use super::emit::{self, Cond};
use super::emit_call;
use super::target::{self, ARG0, ARG1, FS0, FS1, S0, S1};
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

/// The x86-64 backend.
#[derive(Clone, Copy, Debug)]
pub struct X64;

impl Backend for X64 {
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
        if alloc.spill_slots > target::MAX_SPILLS {
            return Err(CompileError::TooManySpills);
        }
        if t.snaps.len() > 0xffff {
            return Err(CompileError::TooManyExits);
        }
        let mut b = CodeBuffer::new(Arch::X64);
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
            fused: heap::fused_loads(t),
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
        let mut b = CodeBuffer::new(Arch::X64);
        emit::prologue(&mut b);
        b.offset()
    }

    fn func_entry_offset() -> usize {
        let mut b = CodeBuffer::new(Arch::X64);
        emit_call::func_prologue(&mut b);
        b.offset()
    }
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
    /// `LdI`s compared in memory by the guard right after them (see `heap::fused_loads`).
    fused: Vec<bool>,
    /// A `CallD`'s status guard that the call's code already emitted (see `calls.rs`).
    pub(super) done_guard: Option<Ref>,
    /// A `CallD`'s result op that the call's code already emitted (see `calls.rs`).
    pub(super) done_result: Option<Ref>,
    /// The exit link table of a function trace (its `Links` instruction's `imm`), found once:
    /// every exit stub asks for it.
    pub(super) link_table: Option<i64>,
    /// Per snapshot: the charge its exit refunds, if it is a `Fuel`'s (see [`Isel::fuel`]).
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
            emit::load_ctx(&mut self.b, f, word(FUEL));
        }
        let mut loop_label = None;
        let rotated = self.rotatable_guard();
        for r in self.entry.loads..self.t.insts.len() {
            let inst = self.t.insts[r];
            match inst.op {
                Op::Loop => {
                    let l = self.b.new_dynamic_label();
                    emit::bind(&mut self.b, l);
                    loop_label = Some(l);
                }
                _ if Some(r as Ref) == rotated => {
                    if let Some(l) = loop_label {
                        self.guard_back_edge(r as Ref, l);
                    }
                }
                _ => self.inst(r as Ref)?,
            }
        }
        if let (Some(l), None) = (loop_label, rotated) {
            self.phi_moves();
            emit::jmp(&mut self.b, l);
        }
        if let Some(l) = failed {
            // The start exit: nothing charged, nothing written, the fuel word untouched.
            emit::bind(&mut self.b, l);
            let id = self.links.exit_id(self.entry.snap as usize);
            emit::exit_to(&mut self.b, id as i32, self.epilogue);
        }
        let exited = self.t.exited_snapshots();
        for n in (0..self.t.snaps.len()).filter(|&n| exited[n]) {
            emit::bind(&mut self.b, self.exits[n]);
            if let Some(f) = self.fuel_reg {
                emit::store_ctx(&mut self.b, word(FUEL), f);
            }
            if let Some(k) = self.refunds[n] {
                emit_call::add_ctx_i(&mut self.b, word(FUEL), k);
            }
            self.exit_link(n)?;
            if let Some(plan) = self.plans.map(|p| &p[n]) {
                let (slow, written) = (self.b.new_dynamic_label(), self.b.new_dynamic_label());
                self.write_back_and_link(n, plan, slow, written)?;
                emit::bind(&mut self.b, written);
                let id = self.links.exit_id(n) | WRITTEN;
                emit::exit_to(&mut self.b, id as i32, self.epilogue);
                emit::bind(&mut self.b, slow);
            }
            emit::exit_to(&mut self.b, self.links.exit_id(n) as i32, self.epilogue);
        }
        self.exit_handler();
        Ok(())
    }

    /// The checked entry's tag checks (a failure jumps to the returned label, the start
    /// exit), then the fast entry.
    fn entry_checks(&mut self) -> Result<Option<DynamicLabel>, CompileError> {
        let entry = self.entry;
        let failed = (!entry.checks.is_empty()).then(|| self.b.new_dynamic_label());
        if let Some(fail) = failed {
            for (slot, tag, exact) in entry.compares(self.layout) {
                let disp = self.layout.tag_disp(slot).ok_or(CompileError::SlotTooFar)?;
                self.cmp_tag(disp, tag);
                emit::jcc(&mut self.b, if exact { Cond::Ne } else { Cond::A }, fail);
            }
        }
        self.fast_entry = self.b.offset();
        Ok(failed)
    }

    /// `cmp` of the tag at `disp` with `tag`.
    pub(super) fn cmp_tag(&mut self, disp: i32, tag: u64) {
        match self.layout.tag_size {
            1 => emit::cmp_tag8(&mut self.b, disp, tag as u8 as i8),
            4 => emit::cmp_tag32(&mut self.b, disp, tag as u32 as i32),
            _ => match i32::try_from(tag as i64) {
                Ok(t32) => emit::cmp_tag64(&mut self.b, disp, t32),
                Err(_) => {
                    self.mov_imm(S0, tag as i64);
                    emit::cmp_tag64_r(&mut self.b, disp, S0);
                }
            },
        }
    }

    /// Dumps every allocatable register into the exit frame, then returns.
    fn exit_handler(&mut self) {
        emit::bind(&mut self.b, self.epilogue);
        if self.is_func() {
            // The slot base, current at every exit (see `callframe::SLOTS`).
            let slots = callframe::area_disp(callframe::SLOTS) as i32;
            emit::store_ctx(&mut self.b, slots, target::BASE);
        }
        let pool = target::POOL;
        for &r in pool.int_caller.iter().chain(pool.int_callee) {
            emit::store_ctx(&mut self.b, word(DUMP_INT + r as usize), r);
        }
        for &x in pool.float_caller.iter().chain(pool.float_callee) {
            emit::store_ctx_f(&mut self.b, word(DUMP_FLOAT + x as usize), x);
        }
        self.epilogue();
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
                    self.mov_imm(S0, inst.imm);
                    emit::movq_xr(&mut self.b, x, S0);
                }
            }
            Op::NotB => self.not_bool(r),
            Op::Exit => emit::jmp(&mut self.b, self.exits[inst.snap as usize]),
            Op::SLoad => self.sload(r)?,
            Op::AddI | Op::SubI | Op::MulI => self.int_arith(r),
            Op::DivIK | Op::ModIK => self.int_div_k(r),
            Op::AddF | Op::SubF | Op::MulF | Op::DivF => self.float_arith(r),
            Op::ToFloat => {
                let ra = self.int_in(inst.a, S0);
                let fd = self.out(r, FS0);
                emit::cvtsi2sd(&mut self.b, fd, ra);
                self.store_result(r, fd);
            }
            Op::FBits => {
                let fa = self.float_in(inst.a, FS0);
                let rd = self.out(r, S0);
                emit::movq_rx(&mut self.b, rd, fa);
                self.store_result(r, rd);
            }
            Op::BitsF => {
                let ra = self.int_in(inst.a, S0);
                let fd = self.out(r, FS0);
                emit::movq_xr(&mut self.b, fd, ra);
                self.store_result(r, fd);
            }
            Op::Eq | Op::Ne if self.fused.get(inst.a as usize) == Some(&true) => {
                self.fused_guard(r)?
            }
            Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Eq | Op::Ne | Op::ULt | Op::FNLt | Op::FNLe => {
                self.guard(r)
            }
            Op::Call => self.call(r),
            Op::Fuel => self.fuel(r),
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

    pub(super) fn mov_imm(&mut self, d: u8, v: i64) {
        match i32::try_from(v) {
            Ok(v32) => emit::mov_ri32(&mut self.b, d, v32),
            Err(_) => emit::mov_ri64(&mut self.b, d, v),
        }
    }

    /// The register holding int `r`, loading it into `scratch` if needed.
    fn int_in(&mut self, r: Ref, scratch: u8) -> u8 {
        if let Some(k) = self.konst(r) {
            self.mov_imm(scratch, k);
            return scratch;
        }
        match self.alloc.locs[r as usize] {
            Loc::Reg(x) => x,
            Loc::Spill(n) => {
                emit::load_ctx(&mut self.b, scratch, spill_disp(n));
                scratch
            }
            Loc::None => scratch,
        }
    }

    /// The register holding float `r`, loading it into `scratch` (via `rax`) if needed.
    fn float_in(&mut self, r: Ref, scratch: u8) -> u8 {
        if let Loc::Reg(x) = self.alloc.locs[r as usize] {
            return x;
        }
        if let Some(k) = self.konst(r) {
            self.mov_imm(S0, k);
            emit::movq_xr(&mut self.b, scratch, S0);
            return scratch;
        }
        match self.alloc.locs[r as usize] {
            Loc::Reg(x) => x,
            Loc::Spill(n) => {
                emit::load_ctx_f(&mut self.b, scratch, spill_disp(n));
                scratch
            }
            Loc::None => scratch,
        }
    }

    /// The register to compute `r` into: its own, or `scratch` if it lives in a spill slot.
    fn out(&self, r: Ref, scratch: u8) -> u8 {
        match self.alloc.locs[r as usize] {
            Loc::Reg(x) => x,
            _ => scratch,
        }
    }

    /// Stores a result computed in `reg` to its spill slot, if it has one.
    fn store_result(&mut self, r: Ref, reg: u8) {
        if let Loc::Spill(n) = self.alloc.locs[r as usize] {
            match self.t.ty(r) {
                Ty::Float => emit::store_ctx_f(&mut self.b, spill_disp(n), reg),
                _ => emit::store_ctx(&mut self.b, spill_disp(n), reg),
            }
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
            self.cmp_tag(tag_disp, tag);
            emit::jcc(&mut self.b, Cond::Ne, self.exits[inst.snap as usize]);
        }
        if inst.ty == Ty::Float {
            let fd = self.out(r, FS0);
            emit::load_slot_f(&mut self.b, fd, pay);
            self.store_result(r, fd);
        } else if inst.ty == Ty::Bool {
            let rd = self.out(r, S0);
            emit::load_slot_u8(&mut self.b, rd, pay);
            self.store_result(r, rd);
        } else {
            let rd = self.out(r, S0);
            emit::load_slot(&mut self.b, rd, pay);
            self.store_result(r, rd);
        }
        Ok(())
    }

    fn int_arith(&mut self, r: Ref) {
        let inst = *self.t.inst(r);
        let rd = self.out(r, S0);
        let imm = self
            .konst(inst.b)
            .and_then(|k| i32::try_from(k).ok())
            .filter(|_| matches!(inst.op, Op::AddI | Op::SubI));
        let mul_imm = self
            .konst(inst.b)
            .and_then(|k| i32::try_from(k).ok())
            .filter(|_| inst.op == Op::MulI);
        if let Some(k) = mul_imm {
            let ra = self.int_in(inst.a, S0);
            emit::imul_rri(&mut self.b, rd, ra, k);
            self.store_result(r, rd);
            return;
        }
        if let Some(k) = imm {
            let ra = self.int_in(inst.a, S0);
            if rd != ra && inst.op == Op::AddI {
                // Three-operand add: no copy.
                emit::lea_ri(&mut self.b, rd, ra, k);
                self.store_result(r, rd);
                return;
            }
            if rd != ra {
                emit::mov_rr(&mut self.b, rd, ra);
            }
            match inst.op {
                Op::AddI => emit::add_ri(&mut self.b, rd, k),
                _ => emit::sub_ri(&mut self.b, rd, k),
            }
            self.store_result(r, rd);
            return;
        }
        let ra = self.int_in(inst.a, S0);
        let rb = self.int_in(inst.b, S1);
        if inst.op == Op::AddI && rd != ra && rd != rb {
            // Three-operand add: no copy.
            emit::lea_rr(&mut self.b, rd, ra, rb);
            self.store_result(r, rd);
            return;
        }
        // `d = b op a` for a commutative op whose result register holds `b`: no copies.
        let (ra, rb) = if matches!(inst.op, Op::AddI | Op::MulI) && rd == rb && rd != ra {
            (rb, ra)
        } else {
            (ra, rb)
        };
        // Two-address form: never overwrite `b` before reading it.
        let acc = if rd == rb && rd != ra { S1 } else { rd };
        if acc != ra {
            emit::mov_rr(&mut self.b, acc, ra);
        }
        match inst.op {
            Op::AddI => emit::add_rr(&mut self.b, acc, rb),
            Op::SubI => emit::sub_rr(&mut self.b, acc, rb),
            _ => emit::imul_rr(&mut self.b, acc, rb),
        }
        if acc != rd {
            emit::mov_rr(&mut self.b, rd, acc);
        }
        self.store_result(r, rd);
    }

    /// `1 - a` (a bool is 0 or 1).
    fn not_bool(&mut self, r: Ref) {
        let inst = *self.t.inst(r);
        let rd = self.out(r, S0);
        let ra = self.int_in(inst.a, S1);
        let acc = if rd == ra { S0 } else { rd };
        emit::mov_ri32(&mut self.b, acc, 1);
        emit::sub_rr(&mut self.b, acc, ra);
        if acc != rd {
            emit::mov_rr(&mut self.b, rd, acc);
        }
        self.store_result(r, rd);
    }

    fn float_arith(&mut self, r: Ref) {
        let inst = *self.t.inst(r);
        let fd = self.out(r, FS0);
        let fa = self.float_in(inst.a, FS0);
        let fb = self.float_in(inst.b, FS1);
        // `d = b op a` for a commutative op whose result register holds `b`: no copies.
        let commutes = matches!(inst.op, Op::AddF | Op::MulF);
        let (fa, fb) = if commutes && fd == fb && fd != fa {
            (fb, fa)
        } else {
            (fa, fb)
        };
        let acc = if fd == fb && fd != fa { FS1 } else { fd };
        if acc != fa {
            emit::fmov_rr(&mut self.b, acc, fa);
        }
        match inst.op {
            Op::AddF => emit::addsd(&mut self.b, acc, fb),
            Op::SubF => emit::subsd(&mut self.b, acc, fb),
            Op::MulF => emit::mulsd(&mut self.b, acc, fb),
            _ => emit::divsd(&mut self.b, acc, fb),
        }
        if acc != fd {
            emit::fmov_rr(&mut self.b, fd, acc);
        }
        self.store_result(r, fd);
    }

    /// The body's last instruction, if it is an int guard or a refunding `Fuel` and the back
    /// edge moves nothing: it can branch back to LOOP when it holds and jump to its exit
    /// otherwise (one taken branch per iteration instead of a guard plus a `jmp`).
    fn rotatable_guard(&self) -> Option<Ref> {
        let l = self.t.loop_ref()?;
        let last = (l as usize + 1..self.t.insts.len()).rev().find(|&r| {
            !matches!(self.t.insts[r].op, Op::Phi | Op::Nop) && !self.t.insts[r].op.is_const()
        })?;
        let inst = self.t.insts[last];
        let int_guard = matches!(inst.op, Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Eq | Op::Ne)
            && self.t.ty(inst.a) != Ty::Float
            && self.fused.get(inst.a as usize) != Some(&true);
        let fuel = inst.op == Op::Fuel && self.refunds[inst.snap as usize].is_some();
        let moves_nothing = self
            .t
            .insts
            .iter()
            .filter(|i| i.op == Op::Phi)
            .all(|i| self.src(i.b) == Src::Loc(self.alloc.locs[i.a as usize]));
        ((int_guard || fuel) && moves_nothing).then_some(last as Ref)
    }

    /// The rotated form of guard `r`: `jcc holds, LOOP; jmp exit`.
    fn guard_back_edge(&mut self, r: Ref, loop_label: DynamicLabel) {
        let inst = *self.t.inst(r);
        let holds = match inst.op {
            Op::Fuel => {
                self.fuel_charge(inst.imm);
                Cond::Ae
            }
            op => {
                self.int_compare(inst.a, inst.b);
                match op {
                    Op::Lt => Cond::L,
                    Op::Le => Cond::Le,
                    Op::Gt => Cond::G,
                    Op::Ge => Cond::Ge,
                    Op::Eq => Cond::E,
                    _ => Cond::Ne,
                }
            }
        };
        emit::jcc(&mut self.b, holds, loop_label);
        emit::jmp(&mut self.b, self.exits[inst.snap as usize]);
    }

    /// `cmp a, b` for an int guard.
    fn int_compare(&mut self, a: Ref, b: Ref) {
        let ra = self.int_in(a, S0);
        match self.konst(b).and_then(|k| i32::try_from(k).ok()) {
            Some(k) => emit::cmp_ri(&mut self.b, ra, k),
            None => {
                let rb = self.int_in(b, S1);
                emit::cmp_rr(&mut self.b, ra, rb);
            }
        }
    }

    fn guard(&mut self, r: Ref) {
        let inst = *self.t.inst(r);
        let exit = self.exits[inst.snap as usize];
        if self.t.ty(inst.a) == Ty::Float {
            return self.float_guard(inst.op, inst.a, inst.b, exit);
        }
        self.int_compare(inst.a, inst.b);
        let fail = match inst.op {
            Op::ULt => Cond::Ae,
            Op::Lt => Cond::Ge,
            Op::Le => Cond::G,
            Op::Gt => Cond::Le,
            Op::Ge => Cond::L,
            Op::Eq => Cond::Ne,
            // Float-only guards (the recorder emits them for floats); as ints, no NaN.
            Op::FNLt => Cond::L,
            Op::FNLe => Cond::Le,
            _ => Cond::E,
        };
        emit::jcc(&mut self.b, fail, exit);
    }

    /// `ucomisd` sets CF for "below" and for unordered, so "a < b" is tested as "b above a":
    /// every failing case, NaN included, takes the exit. `FNLt` and `FNLe` fail only on an
    /// ordered "a < b" ("a <= b"), tested as "b above (or equal to) a": NaN stays.
    fn float_guard(&mut self, op: Op, a: Ref, b: Ref, exit: DynamicLabel) {
        let fa = self.float_in(a, FS0);
        let fb = self.float_in(b, FS1);
        match op {
            Op::Lt | Op::Le | Op::FNLt | Op::FNLe => emit::ucomisd(&mut self.b, fb, fa),
            _ => emit::ucomisd(&mut self.b, fa, fb),
        }
        match op {
            Op::Lt | Op::Gt => emit::jcc(&mut self.b, Cond::Be, exit),
            Op::Le | Op::Ge => emit::jcc(&mut self.b, Cond::B, exit),
            Op::FNLt => emit::jcc(&mut self.b, Cond::A, exit),
            Op::FNLe => emit::jcc(&mut self.b, Cond::Ae, exit),
            Op::Eq => {
                emit::jcc(&mut self.b, Cond::Ne, exit);
                emit::jcc(&mut self.b, Cond::P, exit);
            }
            _ => {
                let ok = self.b.new_dynamic_label();
                emit::jcc(&mut self.b, Cond::P, ok);
                emit::jcc(&mut self.b, Cond::E, exit);
                emit::bind(&mut self.b, ok);
            }
        }
    }

    /// `if fuel < cost { exit } fuel -= cost` on the frame's fuel word. A charge that fits an
    /// `imm32` is one `sub [fuel], cost` whose borrow (CF, unsigned) takes the exit, whose
    /// stub adds the charge back first (`refunds`): an exit charges nothing. Others go through
    /// a register and store only when the charge holds.
    fn fuel(&mut self, r: Ref) {
        let inst = *self.t.inst(r);
        let exit = self.exits[inst.snap as usize];
        if let Some(f) = self.fuel_reg {
            match (i32::try_from(inst.imm), self.refunds[inst.snap as usize]) {
                // The stub stores the charged register, then gives the charge back.
                (Ok(_), Some(_)) => {
                    self.fuel_charge(inst.imm);
                    emit::jcc(&mut self.b, Cond::B, exit);
                }
                (Ok(k), None) => {
                    emit::cmp_ri(&mut self.b, f, k);
                    emit::jcc(&mut self.b, Cond::B, exit);
                    emit::sub_ri(&mut self.b, f, k);
                }
                (Err(_), _) => {
                    self.mov_imm(S0, inst.imm);
                    emit::cmp_rr(&mut self.b, f, S0);
                    emit::jcc(&mut self.b, Cond::B, exit);
                    emit::sub_rr(&mut self.b, f, S0);
                }
            }
            return;
        }
        if self.refunds[inst.snap as usize].is_some() {
            self.fuel_charge(inst.imm);
            emit::jcc(&mut self.b, Cond::B, exit);
            return;
        }
        emit::load_ctx(&mut self.b, S0, word(FUEL));
        self.mov_imm(S1, inst.imm);
        emit::sub_rr(&mut self.b, S0, S1);
        emit::jcc(&mut self.b, Cond::B, exit);
        emit::store_ctx(&mut self.b, word(FUEL), S0);
    }

    /// `sub [fuel], k` (or `sub fuel_reg, k`) for a charge with a refunding exit.
    fn fuel_charge(&mut self, k: i64) {
        let k = i32::try_from(k).unwrap_or(i32::MAX);
        match self.fuel_reg {
            Some(f) => emit::sub_ri(&mut self.b, f, k),
            None => emit_call::sub_ctx_i(&mut self.b, word(FUEL), k),
        }
    }

    fn call(&mut self, r: Ref) {
        let inst = *self.t.inst(r);
        let ra = self.int_in(inst.a, S0);
        if ra != S0 {
            emit::mov_rr(&mut self.b, S0, ra);
        }
        let rb = self.int_in(inst.b, S1);
        if rb != S1 {
            emit::mov_rr(&mut self.b, S1, rb);
        }
        emit::mov_rr(&mut self.b, ARG0, S0);
        emit::mov_rr(&mut self.b, ARG1, S1);
        let f = self.t.calls[inst.imm as usize];
        let inline = InlineCall::at(self.t, r as usize);
        let packed = self.konst(inst.b);
        let done = match inline {
            Some(InlineCall::StrRel) => {
                let rel = packed.and_then(StrRelation::unpack);
                rel.map(|rel| self.inline_str_rel(rel))
            }
            Some(InlineCall::PushInt) => Some(self.inline_push()),
            Some(kind) => Some(self.inline_copy(kind)),
            None => None,
        };
        if inline == Some(InlineCall::StrRel) && done.is_some() {
            // The inline compare used `rsi`; the call wants its constant back.
            if let Some(k) = packed {
                emit::mov_ri64(&mut self.b, ARG1, k);
            }
        }
        let kept = inline.map(|_| self.keep_across_call());
        if let Some(kept) = &kept {
            self.save_regs(kept, true);
        }
        emit::mov_ri64(&mut self.b, S0, f as usize as i64);
        emit::call_r(&mut self.b, S0);
        if let Some(kept) = &kept {
            self.save_regs(kept, false);
        }
        if let Some(done) = done {
            emit::bind(&mut self.b, done);
        }
        let rd = self.out(r, S0);
        if rd != target::RAX {
            emit::mov_rr(&mut self.b, rd, target::RAX);
        }
        self.store_result(r, rd);
    }

    // ---- back edge and exits -----------------------------------------------------------------

    fn src(&self, r: Ref) -> Src {
        match self.konst(r) {
            Some(k) => Src::Const(k),
            None => Src::Loc(self.alloc.locs[r as usize]),
        }
    }

    fn phi_moves(&mut self) {
        for float in [false, true] {
            let moves: Vec<(Loc, Src)> = self
                .t
                .insts
                .iter()
                .filter(|i| i.op == Op::Phi && (self.t.ty(i.a) == Ty::Float) == float)
                .map(|i| (self.alloc.locs[i.a as usize], self.src(i.b)))
                .collect();
            let temp = Loc::Reg(if float { FS1 } else { S1 });
            let b = &mut self.b;
            sequentialize(moves, temp, |d, s| move_value(b, float, d, s));
        }
    }
}

/// Displacement of exit-frame word `w` from `r12` (bounded: registers < 64, spills checked
/// against `MAX_SPILLS` before assembling).
fn word(w: usize) -> i32 {
    (w * 8) as i32
}

/// Displacement of spill slot `n`.
pub(super) fn spill_disp(n: u32) -> i32 {
    word(SPILL_BASE + n as usize)
}

/// One move of the PHI resolution; memory-to-memory and constants go through `rax`.
pub(super) fn move_value(b: &mut CodeBuffer, float: bool, d: Loc, s: Src) {
    let imm = |b: &mut CodeBuffer, reg: u8, v: i64| match i32::try_from(v) {
        Ok(v32) => emit::mov_ri32(b, reg, v32),
        Err(_) => emit::mov_ri64(b, reg, v),
    };
    match (d, s, float) {
        (Loc::Reg(d), Src::Loc(Loc::Reg(s)), false) => emit::mov_rr(b, d, s),
        (Loc::Reg(d), Src::Loc(Loc::Reg(s)), true) => emit::fmov_rr(b, d, s),
        (Loc::Reg(d), Src::Loc(Loc::Spill(n)), false) => emit::load_ctx(b, d, spill_disp(n)),
        (Loc::Reg(d), Src::Loc(Loc::Spill(n)), true) => emit::load_ctx_f(b, d, spill_disp(n)),
        (Loc::Reg(d), Src::Const(k), false) => imm(b, d, k),
        (Loc::Reg(d), Src::Const(k), true) => {
            imm(b, S0, k);
            emit::movq_xr(b, d, S0);
        }
        (Loc::Spill(n), Src::Loc(Loc::Reg(s)), false) => emit::store_ctx(b, spill_disp(n), s),
        (Loc::Spill(n), Src::Loc(Loc::Reg(s)), true) => emit::store_ctx_f(b, spill_disp(n), s),
        (Loc::Spill(n), Src::Loc(Loc::Spill(m)), _) => {
            emit::load_ctx(b, S0, spill_disp(m));
            emit::store_ctx(b, spill_disp(n), S0);
        }
        (Loc::Spill(n), Src::Const(k), _) => {
            imm(b, S0, k);
            emit::store_ctx(b, spill_disp(n), S0);
        }
        // Values always have a location; nothing to move otherwise.
        _ => {}
    }
}
