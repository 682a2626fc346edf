//! x86-64 selection of the call ops of function traces (`CArgI`, `CArgF`, `CallV`, `CallD`,
//! `CResI`, `CResF`, `RetI`, `RetF`, `RetN`); frame and protocol in [`crate::jit::callframe`].
use super::super::emit_call;
use super::{emit, target, word, Cond, Isel, ARG0, ARG1, FS0, S0, S1};
use crate::jit::backend::link::exit_plan;
use crate::jit::backend::{CompileError, FUEL};
use crate::jit::callframe;
use crate::jit::ir::{IrError, Op, Ref};
use crate::jit::opt::OptError;

/// rdx: the second return register (a returning trace's slot base).
const RDX: u8 = 2;
/// rcx: a returning trace's int result (also in its RESULT word).
const RCX: u8 = 1;

fn area(w: usize) -> i32 {
    callframe::area_disp(w) as i32
}

impl Isel<'_> {
    fn host_fn(&self, r: Ref, n: usize) -> Result<i64, CompileError> {
        let f =
            self.t
                .calls
                .get(n)
                .ok_or(CompileError::Opt(OptError::Ir(IrError::BadImmediate {
                    at: r,
                })))?;
        Ok(*f as usize as i64)
    }

    /// Emits one call op.
    pub(super) fn vm_call(&mut self, r: Ref) -> Result<(), CompileError> {
        let inst = *self.t.inst(r);
        match inst.op {
            Op::CArgI | Op::CArgF if callframe::stored_by_call(self.t, &self.alloc.locs, r) => {}
            Op::CArgI => {
                let ra = self.int_in(inst.a, S0);
                emit::store_ctx(&mut self.b, area(callframe::ARGS + inst.imm as usize), ra);
            }
            Op::CArgF => {
                let fa = self.float_in(inst.a, FS0);
                emit::store_ctx_f(&mut self.b, area(callframe::ARGS + inst.imm as usize), fa);
            }
            Op::CallV => {
                self.helper_call(r, inst.imm)?;
                self.status(r);
            }
            Op::CallD => self.direct_call(r)?,
            Op::CResI => {
                let rd = self.out(r, S0);
                emit::load_ctx(&mut self.b, rd, area(callframe::RESULT));
                self.store_result(r, rd);
            }
            Op::CResF => {
                let fd = self.out(r, FS0);
                emit::load_ctx_f(&mut self.b, fd, area(callframe::RESULT));
                self.store_result(r, fd);
            }
            Op::RetI | Op::RetF | Op::RetN => {
                if inst.op == Op::RetI {
                    let ra = self.int_in(inst.a, S0);
                    emit::store_ctx(&mut self.b, area(callframe::RESULT), ra);
                    if ra != RCX {
                        emit::mov_rr(&mut self.b, RCX, ra);
                    }
                } else if inst.op == Op::RetF {
                    let fa = self.float_in(inst.a, FS0);
                    emit::store_ctx_f(&mut self.b, area(callframe::RESULT), fa);
                    emit::movq_rx(&mut self.b, RCX, fa);
                }
                emit::mov_rr(&mut self.b, RDX, target::BASE);
                emit::mov_ri32(&mut self.b, target::RAX, callframe::RET_CODE as i32);
                self.epilogue();
            }
            _ => {}
        }
        Ok(())
    }

    /// Before exit stub `n` of a function trace: if the exit restores nothing and the trace's
    /// link table has a side trace for it, continue there (same frame, same slots, same saved
    /// registers): a jump past the side trace's prologue; its return goes straight to our
    /// caller.
    pub(super) fn exit_link(&mut self, n: usize) -> Result<(), CompileError> {
        let Some(table) = self.link_table else {
            return Ok(());
        };
        let no_link = self.b.new_dynamic_label();
        emit::mov_ri64(&mut self.b, S0, table + 8 * n as i64);
        emit_call::load_rax_rax(&mut self.b, 0);
        emit::cmp_ri(&mut self.b, target::RAX, 0);
        emit::jcc(&mut self.b, Cond::E, no_link);
        if !self.t.resolved(n as u32).entries.is_empty() {
            // The side trace reads the snapshot from the VM slots: store it there (the host's
            // restore would write the same values if a tag check sends us to the exit).
            if self.layout.scalar_tags_max.is_none() {
                emit::bind(&mut self.b, no_link);
                return Ok(());
            }
            let plan = exit_plan(self.t, self.alloc, self.layout, n);
            self.write_back(&plan, no_link)?;
            emit::mov_ri64(&mut self.b, S0, table + 8 * n as i64);
            emit_call::load_rax_rax(&mut self.b, 0);
        }
        emit::mov_rr(&mut self.b, S1, target::RAX);
        emit::store_ctx(&mut self.b, area(callframe::META), S1);
        emit_call::jmp_at_r11(&mut self.b, callframe::BODY_OFFSET);
        emit::bind(&mut self.b, no_link);
        Ok(())
    }

    /// The arguments `args` into ARGS (for the helper).
    fn store_args(&mut self, args: &[callframe::DirectArg]) {
        for a in args {
            let disp = area(callframe::ARGS + a.index);
            if a.float {
                let fa = self.float_in(a.val, FS0);
                emit::store_ctx_f(&mut self.b, disp, fa);
            } else {
                let ra = self.int_in(a.val, S0);
                emit::store_ctx(&mut self.b, disp, ra);
            }
        }
    }

    /// Adds a direct call's fuel to the ROOT frame's FUEL word (rax keeps the ROOT frame).
    fn charge_call(&mut self, fuel: i32) {
        emit::load_ctx(&mut self.b, S0, area(callframe::ROOT));
        emit_call::add_at_rax(&mut self.b, word(FUEL), fuel);
    }

    /// `helper(&area, site)`; the helper returns our slot base.
    fn helper_call(&mut self, r: Ref, site: i64) -> Result<(), CompileError> {
        let helper = self.host_fn(r, 0)?;
        emit::store_ctx(&mut self.b, area(callframe::SLOTS), target::BASE);
        emit::mov_rr(&mut self.b, ARG0, target::CTX);
        emit::add_ri(&mut self.b, ARG0, word(callframe::AREA));
        self.mov_imm(ARG1, site);
        emit::mov_ri64(&mut self.b, S0, helper);
        emit::call_r(&mut self.b, S0);
        // The register stack may have moved.
        emit::mov_rr(&mut self.b, target::BASE, target::RAX);
        Ok(())
    }

    /// The call's status into the op's location.
    fn status(&mut self, r: Ref) {
        let rd = self.out(r, S0);
        emit::load_ctx(&mut self.b, rd, area(callframe::STATUS));
        self.store_result(r, rd);
    }

    /// `CallD`: a direct call of a compiled callee, falling back to the helper.
    fn direct_call(&mut self, r: Ref) -> Result<(), CompileError> {
        let inst = *self.t.inst(r);
        let meta = self.konst(inst.a).unwrap_or(0);
        let packed = self.konst(inst.b).unwrap_or(0);
        let (window, argc, floats, fuel) = (
            (packed & 0xff) as usize,
            ((packed >> 8) & 0xff) as usize,
            ((packed >> 16) & 0xffff) as u32,
            ((packed >> 32) & 0xffff) as i32,
        );
        let rest = ((packed >> 48) & 0xffff) as i32;
        // Site index, and the arguments that are heap values already in the callee's
        // registers (neither checked nor stored).
        let (site, heap_args) = (inst.imm & 0xffff_ffff, (inst.imm >> 32) as u32);
        let slow = self.b.new_dynamic_label();
        let exited = self.b.new_dynamic_label();
        let done = self.b.new_dynamic_label();
        let returned = self.b.new_dynamic_label();
        // The status guard, if it can be emitted here: the return path then skips it, and
        // an int result right after it.
        let guard = callframe::status_guard(self.t, r);
        let result = guard.and_then(|g| callframe::int_result_after(self.t, g));
        // The arguments, from where their values are, unless their `CArg` ops stored them.
        let args = callframe::direct_args_at(self.t, &self.alloc.locs, r).map(|(a, _)| a);
        let l = *self.layout;
        if l.tag_size != 8 {
            // Direct calls store whole tag words; other layouts take the helper.
            if let Some(a) = &args {
                self.store_args(a);
            }
            self.helper_call(r, site)?;
            self.status(r);
            return Ok(());
        }
        let disp = |slot: usize| -> Result<(i32, i32), CompileError> {
            let s = slot as u32;
            Ok((
                l.tag_disp(s).ok_or(CompileError::SlotTooFar)?,
                l.payload_disp(s).ok_or(CompileError::SlotTooFar)?,
            ))
        };
        // Budget left (which also guarantees the callee's whole window inside the register
        // stack, see `NativeEnv::direct_room`), and no heap value in the argument registers
        // (storing over one would leak it): else the helper.
        emit_call::cmp_ctx_i(&mut self.b, area(callframe::BUDGET), 0);
        emit::jcc(&mut self.b, Cond::Le, slow);
        let checked: alloc::vec::Vec<usize> =
            (0..argc).filter(|i| heap_args & (1 << i) == 0).collect();
        if let [first, rest @ ..] = checked.as_slice() {
            // One test for all the tags (see `callframe::FIRST_HEAP_TAG`).
            let (tag, _) = disp(window + first)?;
            if rest.is_empty() {
                emit::cmp_tag64(&mut self.b, tag, callframe::FIRST_HEAP_TAG as i32);
            } else {
                emit::load_slot(&mut self.b, S0, tag);
                for &i in rest {
                    emit_call::or_slot(&mut self.b, S0, disp(window + i)?.0);
                }
                emit::cmp_ri(&mut self.b, S0, callframe::FIRST_HEAP_TAG as i32);
            }
            emit::jcc(&mut self.b, Cond::Ae, slow);
        }
        match &args {
            Some(args) => {
                for a in args {
                    let (tag, pay) = disp(window + a.index)?;
                    if a.float {
                        let fa = self.float_in(a.val, FS0);
                        emit::store_slot_f(&mut self.b, pay, fa);
                        emit::store_tag64(&mut self.b, tag, l.float_tag as i32);
                    } else {
                        let ra = self.int_in(a.val, S0);
                        emit::store_slot(&mut self.b, pay, ra);
                        emit::store_tag64(&mut self.b, tag, l.int_tag as i32);
                    }
                }
            }
            None => {
                for i in (0..argc).filter(|i| heap_args & (1 << i) == 0) {
                    let (tag, pay) = disp(window + i)?;
                    let t = if floats & (1 << i) != 0 {
                        l.float_tag
                    } else {
                        l.int_tag
                    };
                    emit::load_ctx(&mut self.b, S0, area(callframe::ARGS + i));
                    emit::store_slot(&mut self.b, pay, S0);
                    emit::store_tag64(&mut self.b, tag, t as i32);
                }
            }
        }
        // The interpreter charges the callee's length at the call and the rest of the caller
        // when the callee returns: both at once here (an exit takes the rest back below).
        self.charge_call(fuel + rest);
        // The callee's frame on the machine stack.
        let frame = (callframe::FRAME_WORDS * 8) as i32;
        emit_call::sub_rsp(&mut self.b, frame);
        emit_call::mov_from_rsp(&mut self.b, S1);
        // rax still holds the ROOT frame (`charge_call`).
        emit_call::store_r11(&mut self.b, area(callframe::ROOT), S0);
        emit::load_ctx(&mut self.b, S0, area(callframe::BUDGET));
        emit::sub_ri(&mut self.b, S0, 1);
        emit_call::store_r11(&mut self.b, area(callframe::BUDGET), S0);
        let win_bytes = (window as u32 * l.size) as i32;
        emit::lea_ri(&mut self.b, ARG0, target::BASE, win_bytes);
        emit::mov_rr(&mut self.b, ARG1, S1);
        // META last: rax then holds the callee's `FuncCode`, whose word 0 is the entry.
        if meta == 0 {
            emit::load_ctx(&mut self.b, S0, area(callframe::META));
        } else {
            emit::mov_ri64(&mut self.b, S0, meta);
        }
        emit_call::store_r11(&mut self.b, area(callframe::META), S0);
        emit_call::call_at_rax(&mut self.b);
        emit::cmp_ri(&mut self.b, target::RAX, callframe::RET_CODE as i32);
        emit::jcc(&mut self.b, Cond::Ne, exited);
        // Returned: its value into our RESULT, our slot base from its own, and status 0
        // straight into the op's location, or past the status guard (STATUS is not written:
        // only the helpers' answers go through it).
        match result {
            Some(c) => {
                // Straight from the callee's return register (rcx is never the slot base).
                emit::lea_ri(&mut self.b, target::BASE, RDX, -win_bytes);
                let rd = self.out(c, S0);
                if rd != RCX {
                    emit::mov_rr(&mut self.b, rd, RCX);
                }
                self.store_result(c, rd);
            }
            None => {
                emit_call::load_rax_rsp(&mut self.b, area(callframe::RESULT));
                emit::store_ctx(&mut self.b, area(callframe::RESULT), S0);
                emit::lea_ri(&mut self.b, target::BASE, RDX, -win_bytes);
            }
        }
        emit_call::add_rsp(&mut self.b, frame);
        if guard.is_none() {
            let rd = self.out(r, S0);
            emit::mov_ri32(&mut self.b, rd, 0);
            self.store_result(r, rd);
        }
        emit::jmp(&mut self.b, returned);
        // The callee left its trace: the rest of the caller was charged above, but the exit
        // helper charges it itself when the call returns; then it finishes the callee's frame
        // (exit number and site travel in the dead frame's STATUS and RESULT words).
        emit::bind(&mut self.b, exited);
        emit_call::mov_from_rsp(&mut self.b, S1);
        emit_call::store_r11(&mut self.b, area(callframe::STATUS), target::RAX);
        self.charge_call(-rest);
        self.mov_imm(S0, site);
        emit_call::store_r11(&mut self.b, area(callframe::RESULT), S0);
        emit::mov_rr(&mut self.b, ARG0, S1);
        emit::mov_rr(&mut self.b, ARG1, target::CTX);
        emit::add_ri(&mut self.b, ARG1, word(callframe::AREA));
        let exit_helper = self.host_fn(r, 1)?;
        emit::mov_ri64(&mut self.b, S0, exit_helper);
        emit::call_r(&mut self.b, S0);
        emit::mov_rr(&mut self.b, target::BASE, target::RAX);
        emit_call::add_rsp(&mut self.b, frame);
        emit::jmp(&mut self.b, done);
        emit::bind(&mut self.b, slow);
        if let Some(a) = &args {
            self.store_args(a);
        }
        self.helper_call(r, site)?;
        emit::bind(&mut self.b, done);
        self.status(r);
        if let Some(g) = guard {
            self.guard(g);
            self.done_guard = Some(g);
        }
        if let Some(c) = result {
            // The helper paths' result, from RESULT as usual.
            let rd = self.out(c, S0);
            emit::load_ctx(&mut self.b, rd, area(callframe::RESULT));
            self.store_result(c, rd);
            self.done_result = Some(c);
        }
        emit::bind(&mut self.b, returned);
        Ok(())
    }
}
