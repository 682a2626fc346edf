//! AArch64 selection of the call ops of function traces (`CArgI`, `CArgF`, `CallV`, `CallD`,
//! `CResI`, `CResF`, `RetI`, `RetF`, `RetN`); frame and protocol in [`crate::jit::callframe`].
//! The stack pointer is register 31 in the `XSP` forms of `add`/`sub` immediate.
use super::super::emit_call as ec;
use super::e::{self, Cond, Imm12, Off8};
use super::{mov_imm, tg, Isel, Mem, ADDR, BASE, CTX, FS0, S0, S1, X0, X1};
use crate::jit::backend::CompileError;
use crate::jit::callframe as cf;
use crate::jit::ir::{IrError, Op, Ref};
use crate::jit::opt::OptError;

/// The stack pointer in `add`/`sub` immediate forms.
const SP: u8 = 31;

fn area(w: usize) -> Result<Off8, CompileError> {
    tg::ctx_off(cf::AREA + w).ok_or(CompileError::TooManySpills)
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
            Op::CArgI => {
                let ra = self.int_in(inst.a, S0)?;
                e::str_x(&mut self.b, ra, CTX, area(cf::ARGS + inst.imm as usize)?);
            }
            Op::CArgF => {
                let fa = self.float_in(inst.a, FS0)?;
                e::str_d(&mut self.b, fa, CTX, area(cf::ARGS + inst.imm as usize)?);
            }
            Op::CallV => {
                self.helper_call(r, inst.imm)?;
                self.status(r)?;
            }
            Op::CallD => self.direct_call(r)?,
            Op::CResI => {
                let rd = self.out(r, S0);
                e::ldr_x(&mut self.b, rd, CTX, area(cf::RESULT)?);
                self.store_result(r, rd)?;
            }
            Op::CResF => {
                let fd = self.out(r, FS0);
                e::ldr_d(&mut self.b, fd, CTX, area(cf::RESULT)?);
                self.store_result(r, fd)?;
            }
            Op::RetI | Op::RetF | Op::RetN => {
                if inst.op == Op::RetI {
                    let ra = self.int_in(inst.a, S0)?;
                    e::str_x(&mut self.b, ra, CTX, area(cf::RESULT)?);
                } else if inst.op == Op::RetF {
                    let fa = self.float_in(inst.a, FS0)?;
                    e::str_d(&mut self.b, fa, CTX, area(cf::RESULT)?);
                }
                e::mov_rr(&mut self.b, X1, BASE);
                mov_imm(&mut self.b, X0, cf::RET_CODE as i64);
                e::epilogue(&mut self.b);
            }
            _ => {}
        }
        Ok(())
    }

    /// Before exit stub `n` of a function trace: if the exit restores nothing and the trace's
    /// link table has a side trace for it, continue there (same frame, same slots) as a tail
    /// call; its return goes straight to our caller.
    pub(super) fn exit_link(&mut self, n: usize) -> Result<(), CompileError> {
        let Some(table) = self
            .t
            .insts
            .iter()
            .find(|i| i.op == Op::Links)
            .map(|i| i.imm)
        else {
            return Ok(());
        };
        if !self.t.snaps[n].entries.is_empty() {
            return Ok(());
        }
        let no_link = self.b.new_dynamic_label();
        mov_imm(&mut self.b, S0, table + 8 * n as i64);
        e::ldr_x(&mut self.b, S0, S0, Off8::ZERO);
        e::cmp_ri(&mut self.b, S0, imm12(0)?);
        e::b_cond(&mut self.b, Cond::Eq, no_link);
        e::str_x(&mut self.b, S0, CTX, area(cf::META)?);
        e::mov_rr(&mut self.b, X0, BASE);
        e::mov_rr(&mut self.b, X1, CTX);
        ec::pop_frame(&mut self.b);
        e::ldr_x(&mut self.b, S1, S0, Off8::ZERO);
        ec::br(&mut self.b, S1);
        e::bind(&mut self.b, no_link);
        Ok(())
    }

    /// Adds a direct call's fuel to the counter FUELP points at.
    fn charge_call(&mut self, fuel: i64) -> Result<(), CompileError> {
        e::ldr_x(&mut self.b, S0, CTX, area(cf::FUELP)?);
        e::ldr_x(&mut self.b, S1, S0, Off8::ZERO);
        match Imm12::new(fuel) {
            Some(k) => e::add_ri(&mut self.b, S1, S1, k),
            None => {
                mov_imm(&mut self.b, ADDR, fuel);
                e::add_rr(&mut self.b, S1, S1, ADDR);
            }
        }
        e::str_x(&mut self.b, S1, S0, Off8::ZERO);
        Ok(())
    }

    /// `helper(&area, site)`; the helper returns our slot base.
    fn helper_call(&mut self, r: Ref, site: i64) -> Result<(), CompileError> {
        let helper = self.host_fn(r, 0)?;
        e::add_ri(&mut self.b, X0, CTX, imm12(cf::AREA * 8)?);
        mov_imm(&mut self.b, X1, site);
        mov_imm(&mut self.b, S0, helper);
        e::blr(&mut self.b, S0);
        // The register stack may have moved.
        e::mov_rr(&mut self.b, BASE, X0);
        Ok(())
    }

    /// The call's status into the op's location.
    fn status(&mut self, r: Ref) -> Result<(), CompileError> {
        let rd = self.out(r, S0);
        e::ldr_x(&mut self.b, rd, CTX, area(cf::STATUS)?);
        self.store_result(r, rd)
    }

    /// Loads or stores 8 bytes at `disp` from the slot base (through `x15` if far).
    fn slot_word(&mut self, disp: i32, reg: u8, store: bool) -> Result<(), CompileError> {
        let Mem::X(n, o) = self.slot_mem(disp, 8) else {
            return Err(CompileError::SlotTooFar);
        };
        if store {
            e::str_x(&mut self.b, reg, n, o);
        } else {
            e::ldr_x(&mut self.b, reg, n, o);
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
        let l = *self.layout;
        if l.tag_size != 8 {
            // Direct calls store whole tag words; other layouts take the helper.
            self.helper_call(r, inst.imm)?;
            return self.status(r);
        }
        let slow = self.b.new_dynamic_label();
        let exited = self.b.new_dynamic_label();
        let done = self.b.new_dynamic_label();
        let disp = |slot: usize| -> Result<(i32, i32), CompileError> {
            let s = slot as u32;
            Ok((
                l.tag_disp(s).ok_or(CompileError::SlotTooFar)?,
                l.payload_disp(s).ok_or(CompileError::SlotTooFar)?,
            ))
        };
        // Budget left, the callee's whole window inside the register stack, and no heap value
        // in the argument registers: else the helper.
        e::ldr_x(&mut self.b, S0, CTX, area(cf::BUDGET)?);
        e::cmp_ri(&mut self.b, S0, imm12(0)?);
        e::b_cond(&mut self.b, Cond::Le, slow);
        e::ldr_x(&mut self.b, S0, CTX, area(cf::LEFT)?);
        mov_imm(&mut self.b, S1, (window + cf::WINDOW) as i64);
        e::cmp_rr(&mut self.b, S0, S1);
        e::b_cond(&mut self.b, Cond::Lt, slow);
        for i in 0..argc {
            let (tag, _) = disp(window + i)?;
            self.slot_word(tag, S0, false)?;
            e::cmp_ri(&mut self.b, S0, imm12(cf::FIRST_HEAP_TAG as usize - 1)?);
            e::b_cond(&mut self.b, Cond::Hi, slow);
        }
        for i in 0..argc {
            let (tag, pay) = disp(window + i)?;
            let t = if floats & (1 << i) != 0 {
                l.float_tag
            } else {
                l.int_tag
            };
            e::ldr_x(&mut self.b, S0, CTX, area(cf::ARGS + i)?);
            self.slot_word(pay, S0, true)?;
            mov_imm(&mut self.b, S1, t as i64);
            self.slot_word(tag, S1, true)?;
        }
        // The interpreter charges the callee's length at the call (x15 is still free here).
        self.charge_call(fuel)?;
        // The callee's frame on the machine stack, addressed through x15.
        let frame = imm12(cf::FRAME_WORDS * 8)?;
        e::sub_ri(&mut self.b, SP, SP, frame);
        e::add_ri(&mut self.b, ADDR, SP, imm12(0)?);
        let copy = |isel: &mut Self, w: usize| -> Result<(), CompileError> {
            e::ldr_x(&mut isel.b, S0, CTX, area(w)?);
            Ok(())
        };
        copy(self, cf::ENV)?;
        e::str_x(&mut self.b, S0, ADDR, area(cf::ENV)?);
        copy(self, cf::BASE)?;
        e::add_ri(&mut self.b, S0, S0, imm12(window)?);
        e::str_x(&mut self.b, S0, ADDR, area(cf::BASE)?);
        if meta == 0 {
            copy(self, cf::META)?;
        } else {
            mov_imm(&mut self.b, S0, meta);
        }
        e::str_x(&mut self.b, S0, ADDR, area(cf::META)?);
        copy(self, cf::DDEPTH)?;
        e::add_ri(&mut self.b, S0, S0, imm12(1)?);
        e::str_x(&mut self.b, S0, ADDR, area(cf::DDEPTH)?);
        copy(self, cf::BUDGET)?;
        e::sub_ri(&mut self.b, S0, S0, imm12(1)?);
        e::str_x(&mut self.b, S0, ADDR, area(cf::BUDGET)?);
        copy(self, cf::LEFT)?;
        e::sub_ri(&mut self.b, S0, S0, imm12(window)?);
        e::str_x(&mut self.b, S0, ADDR, area(cf::LEFT)?);
        copy(self, cf::FUELP)?;
        e::str_x(&mut self.b, S0, ADDR, area(cf::FUELP)?);
        let win_bytes = imm12(window * l.size as usize)?;
        e::add_ri(&mut self.b, X0, BASE, win_bytes);
        e::mov_rr(&mut self.b, X1, ADDR);
        e::ldr_x(&mut self.b, S0, ADDR, area(cf::META)?);
        e::ldr_x(&mut self.b, S0, S0, Off8::ZERO);
        e::blr(&mut self.b, S0);
        mov_imm(&mut self.b, S1, cf::RET_CODE as i64);
        e::cmp_rr(&mut self.b, X0, S1);
        e::b_cond(&mut self.b, Cond::Ne, exited);
        // Returned: its value into our RESULT, status 0, our slot base from its own.
        e::add_ri(&mut self.b, ADDR, SP, imm12(0)?);
        e::ldr_x(&mut self.b, S0, ADDR, area(cf::RESULT)?);
        e::str_x(&mut self.b, S0, CTX, area(cf::RESULT)?);
        mov_imm(&mut self.b, S0, 0);
        e::str_x(&mut self.b, S0, CTX, area(cf::STATUS)?);
        e::sub_ri(&mut self.b, BASE, X1, win_bytes);
        // ... and the rest of the caller at the return.
        self.charge_call(rest)?;
        e::add_ri(&mut self.b, SP, SP, frame);
        e::b(&mut self.b, done);
        // The callee left its trace: the exit helper finishes its frame (exit number and
        // site travel in the dead frame's STATUS and RESULT words).
        e::bind(&mut self.b, exited);
        e::add_ri(&mut self.b, ADDR, SP, imm12(0)?);
        e::str_x(&mut self.b, X0, ADDR, area(cf::STATUS)?);
        mov_imm(&mut self.b, S0, inst.imm);
        e::str_x(&mut self.b, S0, ADDR, area(cf::RESULT)?);
        e::mov_rr(&mut self.b, X0, ADDR);
        e::add_ri(&mut self.b, X1, CTX, imm12(cf::AREA * 8)?);
        let exit_helper = self.host_fn(r, 1)?;
        mov_imm(&mut self.b, S0, exit_helper);
        e::blr(&mut self.b, S0);
        e::mov_rr(&mut self.b, BASE, X0);
        e::add_ri(&mut self.b, SP, SP, frame);
        e::b(&mut self.b, done);
        e::bind(&mut self.b, slow);
        self.helper_call(r, inst.imm)?;
        e::bind(&mut self.b, done);
        self.status(r)
    }
}
