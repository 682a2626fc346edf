//! AArch64 selection of the call ops of function traces (`CArgI`, `CArgF`, `CallV`, `CallD`,
//! `CResI`, `CResF`, `RetI`, `RetF`, `RetN`); frame and protocol in [`crate::jit::callframe`].
//! The stack pointer is register 31 in the `XSP` forms of `add`/`sub` immediate.
use super::super::emit_call;
use super::emit::{self, Cond, Imm12, Off8};
use super::{mov_imm, target, Isel, Mem, ADDR, BASE, CTX, FS0, S0, S1, X0, X1, X2};
use crate::jit::backend::link::exit_plan;
use crate::jit::backend::{CompileError, FUEL};
use crate::jit::callframe;
use crate::jit::ir::{IrError, Op, Ref};
use crate::jit::opt::OptError;

/// The stack pointer in `add`/`sub` immediate forms.
const SP: u8 = 31;

fn area(w: usize) -> Result<Off8, CompileError> {
    target::ctx_off(callframe::AREA + w).ok_or(CompileError::TooManySpills)
}

fn imm12(v: usize) -> Result<Imm12, CompileError> {
    Imm12::new(v as i64).ok_or(CompileError::SlotTooFar)
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
                let ra = self.int_in(inst.a, S0)?;
                emit::str_x(
                    &mut self.b,
                    ra,
                    CTX,
                    area(callframe::ARGS + inst.imm as usize)?,
                );
            }
            Op::CArgF => {
                let fa = self.float_in(inst.a, FS0)?;
                emit::str_d(
                    &mut self.b,
                    fa,
                    CTX,
                    area(callframe::ARGS + inst.imm as usize)?,
                );
            }
            Op::CallV => {
                self.helper_call(r, inst.imm)?;
                self.status(r)?;
            }
            Op::CallD => self.direct_call(r)?,
            Op::CResI => {
                let rd = self.out(r, S0);
                emit::ldr_x(&mut self.b, rd, CTX, area(callframe::RESULT)?);
                self.store_result(r, rd)?;
            }
            Op::CResF => {
                let fd = self.out(r, FS0);
                emit::ldr_d(&mut self.b, fd, CTX, area(callframe::RESULT)?);
                self.store_result(r, fd)?;
            }
            Op::RetI | Op::RetF | Op::RetN => {
                // The result also in x2, where a direct caller takes it from.
                if inst.op == Op::RetI {
                    let ra = self.int_in(inst.a, S0)?;
                    emit::str_x(&mut self.b, ra, CTX, area(callframe::RESULT)?);
                    if ra != X2 {
                        emit::mov_rr(&mut self.b, X2, ra);
                    }
                } else if inst.op == Op::RetF {
                    let fa = self.float_in(inst.a, FS0)?;
                    emit::str_d(&mut self.b, fa, CTX, area(callframe::RESULT)?);
                    emit::fmov_xd(&mut self.b, X2, fa);
                }
                emit::mov_rr(&mut self.b, X1, BASE);
                mov_imm(&mut self.b, X0, callframe::RET_CODE as i64);
                self.epilogue();
            }
            _ => {}
        }
        Ok(())
    }

    /// Before exit stub `n` of a function trace: if the exit restores nothing and the trace's
    /// link table has a side trace for it, continue there (same frame, same slots, same saved
    /// registers): a branch past the side trace's prologue; its return goes straight to our
    /// caller.
    pub(super) fn exit_link(&mut self, n: usize) -> Result<(), CompileError> {
        let Some(table) = self.link_table else {
            return Ok(());
        };
        let no_link = self.b.new_dynamic_label();
        mov_imm(&mut self.b, S0, table + 8 * n as i64);
        emit::ldr_x(&mut self.b, S0, S0, Off8::ZERO);
        emit::cmp_ri(&mut self.b, S0, imm12(0)?);
        emit::b_cond(&mut self.b, Cond::Eq, no_link);
        if !self.t.resolved(n as u32).entries.is_empty() {
            // The side trace reads the snapshot from the VM slots: store it there (the host's
            // restore would write the same values if a tag check sends us to the exit).
            if self.layout.scalar_tags_max.is_none() {
                emit::bind(&mut self.b, no_link);
                return Ok(());
            }
            let plan = exit_plan(self.t, self.alloc, self.layout, n);
            self.write_back(&plan, no_link)?;
            mov_imm(&mut self.b, S0, table + 8 * n as i64);
            emit::ldr_x(&mut self.b, S0, S0, Off8::ZERO);
        }
        emit::str_x(&mut self.b, S0, CTX, area(callframe::META)?);
        let body = Off8::new(callframe::BODY_OFFSET as i64).ok_or(CompileError::SlotTooFar)?;
        emit::ldr_x(&mut self.b, S1, S0, body);
        emit_call::br(&mut self.b, S1);
        emit::bind(&mut self.b, no_link);
        Ok(())
    }

    /// The arguments `args` into ARGS (for the helper).
    fn store_args(&mut self, args: &[callframe::DirectArg]) -> Result<(), CompileError> {
        for a in args {
            let disp = area(callframe::ARGS + a.index)?;
            if a.float {
                let fa = self.float_in(a.val, FS0)?;
                emit::str_d(&mut self.b, fa, CTX, disp);
            } else {
                let ra = self.int_in(a.val, S0)?;
                emit::str_x(&mut self.b, ra, CTX, disp);
            }
        }
        Ok(())
    }

    /// Adds a direct call's fuel to the ROOT frame's FUEL word (x16 keeps the ROOT frame).
    fn charge_call(&mut self, fuel: i64) -> Result<(), CompileError> {
        let fuel_word = target::ctx_off(FUEL).ok_or(CompileError::TooManySpills)?;
        emit::ldr_x(&mut self.b, S0, CTX, area(callframe::ROOT)?);
        emit::ldr_x(&mut self.b, S1, S0, fuel_word);
        match (Imm12::new(fuel), Imm12::new(fuel.wrapping_neg())) {
            (Some(k), _) => emit::add_ri(&mut self.b, S1, S1, k),
            (None, Some(k)) => emit::sub_ri(&mut self.b, S1, S1, k),
            (None, None) => {
                mov_imm(&mut self.b, ADDR, fuel);
                emit::add_rr(&mut self.b, S1, S1, ADDR);
            }
        }
        emit::str_x(&mut self.b, S1, S0, fuel_word);
        Ok(())
    }

    /// `helper(&area, site)`; the helper returns our slot base.
    fn helper_call(&mut self, r: Ref, site: i64) -> Result<(), CompileError> {
        let helper = self.host_fn(r, 0)?;
        emit::str_x(&mut self.b, BASE, CTX, area(callframe::SLOTS)?);
        emit::add_ri(&mut self.b, X0, CTX, imm12(callframe::AREA * 8)?);
        mov_imm(&mut self.b, X1, site);
        mov_imm(&mut self.b, S0, helper);
        emit::blr(&mut self.b, S0);
        // The register stack may have moved.
        emit::mov_rr(&mut self.b, BASE, X0);
        Ok(())
    }

    /// The call's status into the op's location.
    fn status(&mut self, r: Ref) -> Result<(), CompileError> {
        let rd = self.out(r, S0);
        emit::ldr_x(&mut self.b, rd, CTX, area(callframe::STATUS)?);
        self.store_result(r, rd)
    }

    /// Loads or stores 8 bytes at `disp` from the slot base (through `x15` if far).
    fn slot_word(&mut self, disp: i32, reg: u8, store: bool) -> Result<(), CompileError> {
        let Mem::X(n, o) = self.slot_mem(disp, 8) else {
            return Err(CompileError::SlotTooFar);
        };
        if store {
            emit::str_x(&mut self.b, reg, n, o);
        } else {
            emit::ldr_x(&mut self.b, reg, n, o);
        }
        Ok(())
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
            (packed >> 32) & 0xffff,
        );
        let rest = (packed >> 48) & 0xffff;
        // Site index, and the arguments that are heap values already in the callee's
        // registers (neither checked nor stored).
        let (site, heap_args) = (inst.imm & 0xffff_ffff, (inst.imm >> 32) as u32);
        // The arguments, from where their values are, unless their `CArg` ops stored them.
        let args = callframe::direct_args_at(self.t, &self.alloc.locs, r).map(|(a, _)| a);
        let l = *self.layout;
        if l.tag_size != 8 {
            // Direct calls store whole tag words; other layouts take the helper.
            if let Some(a) = &args {
                self.store_args(a)?;
            }
            self.helper_call(r, site)?;
            return self.status(r);
        }
        let slow = self.b.new_dynamic_label();
        let exited = self.b.new_dynamic_label();
        let done = self.b.new_dynamic_label();
        let returned = self.b.new_dynamic_label();
        // The status guard, if it can be emitted here: the return path then skips it, and
        // an int result right after it.
        let guard = callframe::status_guard(self.t, r);
        let result = guard.and_then(|g| callframe::int_result_after(self.t, g));
        let disp = |slot: usize| -> Result<(i32, i32), CompileError> {
            let s = slot as u32;
            Ok((
                l.tag_disp(s).ok_or(CompileError::SlotTooFar)?,
                l.payload_disp(s).ok_or(CompileError::SlotTooFar)?,
            ))
        };
        // Budget left (which also guarantees the callee's whole window inside the register
        // stack, see `NativeEnv::direct_room`), and no heap value in the argument registers:
        // else the helper.
        emit::ldr_x(&mut self.b, S0, CTX, area(callframe::BUDGET)?);
        emit::cmp_ri(&mut self.b, S0, imm12(0)?);
        emit::b_cond(&mut self.b, Cond::Le, slow);
        let checked: alloc::vec::Vec<usize> =
            (0..argc).filter(|i| heap_args & (1 << i) == 0).collect();
        if let [first, rest @ ..] = checked.as_slice() {
            // One test for all the tags (see `callframe::FIRST_HEAP_TAG`).
            self.slot_word(disp(window + first)?.0, S0, false)?;
            for &i in rest {
                self.slot_word(disp(window + i)?.0, S1, false)?;
                emit_call::orr_rr(&mut self.b, S0, S0, S1);
            }
            emit::cmp_ri(
                &mut self.b,
                S0,
                imm12(callframe::FIRST_HEAP_TAG as usize - 1)?,
            );
            emit::b_cond(&mut self.b, Cond::Hi, slow);
        }
        match &args {
            Some(args) => {
                for a in args {
                    let (tag, pay) = disp(window + a.index)?;
                    let t = if a.float {
                        let fa = self.float_in(a.val, FS0)?;
                        emit::fmov_xd(&mut self.b, S0, fa);
                        self.slot_word(pay, S0, true)?;
                        l.float_tag
                    } else {
                        let ra = self.int_in(a.val, S0)?;
                        self.slot_word(pay, ra, true)?;
                        l.int_tag
                    };
                    mov_imm(&mut self.b, S1, t as i64);
                    self.slot_word(tag, S1, true)?;
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
                    emit::ldr_x(&mut self.b, S0, CTX, area(callframe::ARGS + i)?);
                    self.slot_word(pay, S0, true)?;
                    mov_imm(&mut self.b, S1, t as i64);
                    self.slot_word(tag, S1, true)?;
                }
            }
        }
        // The interpreter charges the callee's length at the call and the rest of the caller
        // when the callee returns: both at once here (x15 is still free; an exit takes the
        // rest back below).
        self.charge_call(fuel + rest)?;
        // The callee's frame on the machine stack, addressed through x15.
        let frame = imm12(callframe::FRAME_WORDS * 8)?;
        emit::sub_ri(&mut self.b, SP, SP, frame);
        emit::add_ri(&mut self.b, ADDR, SP, imm12(0)?);
        let copy = |isel: &mut Self, w: usize| -> Result<(), CompileError> {
            emit::ldr_x(&mut isel.b, S0, CTX, area(w)?);
            Ok(())
        };
        // x16 still holds the ROOT frame (`charge_call`).
        emit::str_x(&mut self.b, S0, ADDR, area(callframe::ROOT)?);
        copy(self, callframe::BUDGET)?;
        emit::sub_ri(&mut self.b, S0, S0, imm12(1)?);
        emit::str_x(&mut self.b, S0, ADDR, area(callframe::BUDGET)?);
        let win_bytes = imm12(window * l.size as usize)?;
        emit::add_ri(&mut self.b, X0, BASE, win_bytes);
        emit::mov_rr(&mut self.b, X1, ADDR);
        // META last: x16 then holds the callee's `FuncCode`, whose word 0 is the entry.
        if meta == 0 {
            copy(self, callframe::META)?;
        } else {
            mov_imm(&mut self.b, S0, meta);
        }
        emit::str_x(&mut self.b, S0, ADDR, area(callframe::META)?);
        emit::ldr_x(&mut self.b, S0, S0, Off8::ZERO);
        emit::blr(&mut self.b, S0);
        mov_imm(&mut self.b, S1, callframe::RET_CODE as i64);
        emit::cmp_rr(&mut self.b, X0, S1);
        emit::b_cond(&mut self.b, Cond::Ne, exited);
        // Returned: its value into our RESULT, our slot base from its own, and status 0
        // straight into the op's location, or past the status guard (STATUS is not written:
        // only the helpers' answers go through it).
        emit::sub_ri(&mut self.b, BASE, X1, win_bytes);
        match result {
            Some(c) => {
                // Straight from the callee's x2 (after x1 was read: it may be `rd`).
                let rd = self.out(c, S0);
                if rd != X2 {
                    emit::mov_rr(&mut self.b, rd, X2);
                }
                self.store_result(c, rd)?;
            }
            None => {
                emit::add_ri(&mut self.b, ADDR, SP, imm12(0)?);
                emit::ldr_x(&mut self.b, S0, ADDR, area(callframe::RESULT)?);
                emit::str_x(&mut self.b, S0, CTX, area(callframe::RESULT)?);
            }
        }
        emit::add_ri(&mut self.b, SP, SP, frame);
        if guard.is_none() {
            let rd = self.out(r, S0);
            mov_imm(&mut self.b, rd, 0);
            self.store_result(r, rd)?;
        }
        emit::b(&mut self.b, returned);
        // The callee left its trace: the rest of the caller was charged above, but the exit
        // helper charges it itself when the call returns; then it finishes the callee's frame
        // (exit number and site travel in the dead frame's STATUS and RESULT words).
        emit::bind(&mut self.b, exited);
        self.charge_call(-rest)?;
        emit::add_ri(&mut self.b, ADDR, SP, imm12(0)?);
        emit::str_x(&mut self.b, X0, ADDR, area(callframe::STATUS)?);
        mov_imm(&mut self.b, S0, site);
        emit::str_x(&mut self.b, S0, ADDR, area(callframe::RESULT)?);
        emit::mov_rr(&mut self.b, X0, ADDR);
        emit::add_ri(&mut self.b, X1, CTX, imm12(callframe::AREA * 8)?);
        let exit_helper = self.host_fn(r, 1)?;
        mov_imm(&mut self.b, S0, exit_helper);
        emit::blr(&mut self.b, S0);
        emit::mov_rr(&mut self.b, BASE, X0);
        emit::add_ri(&mut self.b, SP, SP, frame);
        emit::b(&mut self.b, done);
        emit::bind(&mut self.b, slow);
        if let Some(a) = &args {
            self.store_args(a)?;
        }
        self.helper_call(r, site)?;
        emit::bind(&mut self.b, done);
        self.status(r)?;
        if let Some(g) = guard {
            self.guard(g)?;
            self.done_guard = Some(g);
        }
        if let Some(c) = result {
            // The helper paths' result, from RESULT as usual.
            let rd = self.out(c, S0);
            emit::ldr_x(&mut self.b, rd, CTX, area(callframe::RESULT)?);
            self.store_result(c, rd)?;
            self.done_result = Some(c);
        }
        emit::bind(&mut self.b, returned);
        Ok(())
    }
}
