//! Recording of string operations inside loop traces (part of the recorder,
//! [`crate::jit::record`]).
//!
//! Glossary
//! - *string register*: a register the recorder knows to hold a string (it did when the
//!   recording started, or a runtime call of the trace put one there). Its value lives only in
//!   the VM slot: the trace never loads it into a machine register and the slot map never
//!   names it, so exits leave it as native code left it.
//! - *string call*: a runtime call that works on VM slots directly, given the address of slot 0
//!   (`SAddr 0`) and the slot numbers packed into one word. It checks its operands' types
//!   itself and returns -1, having changed nothing, when they are not what the recorder saw;
//!   a guard on the status then exits to the bytecode, which the interpreter redoes (raising
//!   its error if there is one). Strings are made only by the interpreter's own functions
//!   (`vm::arith::add`, `Value::clone`), charged to the string's meter, so memory accounting
//!   and any interning are exactly the interpreter's.
//!
//! Recorded: `add` of two strings (concatenation, result into a register), `eq`/`lt`/`le`
//! and `jeq`/`jlt`/`jle` on two strings (a call returning the outcome, guarded to be the one
//! seen now), `move` of a string (a clone), `loadk` of a short string constant into a
//! register (a clone of the interned constant, [`Recorder::load_str_const`]), `len` of a string (`move t, s; callb t, len, 1`,
//! one step), `setidx`/`setidxi` of a string into an array element (the old element dropped
//! as the interpreter drops it). Reading a string element is `put_element`
//! ([`crate::jit::record::array`]). The backends emit the common case of `str_rel`,
//! `str_store` and `put_element` inline in front of the call
//! ([`InlineCall`](crate::jit::backend::InlineCall)); the call stays for the rest.
//!
//! Invariants (checked when the recording ends, [`Recorder::check_str_slots`]): in a trace that
//! loops, a slot native code wrote must not have been read by an `SLoad` before in the
//! iteration (the loop body would reuse that stale read; a trace ending in a link runs once),
//! and no slot a string call reads or writes may end the
//! iteration in the slot map (the next iteration's call would read the VM slot, not the value
//! the map names).
use alloc::string::String;

use super::{Next, Num, Recorder, Val};
use crate::jit::ir::{Op, Ref};
use crate::jit::trace::Abort;
use crate::vm::builtins::Builtin;
use crate::vm::bytecode::{byte, field_a, field_b, field_bx, field_c};
use crate::vm::program::Const;
use crate::vm::value::{StrObj, Value};
use core::cmp::Ordering;

/// Slot numbers a string call packs into its second argument (16 bits each).
const SLOT_BITS: u32 = 16;
/// Relations [`str_rel`] evaluates (bits 32.. of its packed argument).
const REL_EQ: i64 = 0;
const REL_LT: i64 = 1;
const REL_LE: i64 = 2;

/// The VM slot `i` of the frame whose slot 0 is at `base`.
///
/// # Safety
/// `base` is the address of slot 0 of the running frame (`SAddr 0`) and `i` one of its slots
/// the recorder named (below the frame's register count); the interpreter is suspended while
/// native code runs.
unsafe fn slot(base: i64, i: i64) -> *mut Value {
    (base as usize as *mut Value).wrapping_add(i as usize & 0xffff)
}

/// `slot[a] = slot[b] + slot[c]` for two strings (`packed` = `a | b << 16 | c << 32`), with
/// the interpreter's `add`: 0, or -1 (nothing changed) when an operand is not a string or the
/// meter refuses the bytes.
pub(crate) extern "C" fn str_add(base: i64, packed: i64) -> i64 {
    // SAFETY: the three slots are registers of the running frame (see `slot`); the new value
    // is made from shared references that end before the destination is assigned (which
    // drops the old value, possibly one of the operands: the result owns its own text).
    unsafe {
        let (x, y) = (&*slot(base, packed >> 16), &*slot(base, packed >> 32));
        let (Value::Str(a), Value::Str(_)) = (x, y) else {
            return -1;
        };
        let Ok(v) = crate::vm::arith::add(x, y, a.meter()) else {
            return -1;
        };
        *slot(base, packed) = v;
    }
    0
}

/// `slot[a] relation slot[b]` for two strings (`packed` = `a | b << 16 | relation << 32`):
/// 1 or 0 as the interpreter decides (`equal`/`lt`/`le` on two strings: the same object or
/// the hashes first for `==`, the bytes otherwise), -1 when an operand is not a string.
/// The string case directly, as the interpreter's inline compare-and-branch does: the
/// generic `arith` entry points reach strings only through their cold out-of-line path.
pub(crate) extern "C" fn str_rel(base: i64, packed: i64) -> i64 {
    // SAFETY: both slots are registers of the running frame (see `slot`); only read.
    let (x, y) = unsafe { (&*slot(base, packed), &*slot(base, packed >> 16)) };
    let (Value::Str(a), Value::Str(b)) = (x, y) else {
        return -1;
    };
    let holds = match packed >> 32 {
        REL_EQ => StrObj::same_text(a, b),
        REL_LT => StrObj::cmp_text(a, b) == Ordering::Less,
        _ => StrObj::cmp_text(a, b) != Ordering::Greater,
    };
    holds as i64
}

/// For relation code `rel` of [`str_rel`]: whether it holds for equal strings and whether it
/// holds when the left one orders first (the backends' inline compare).
pub(crate) fn relation_truths(rel: i64) -> Option<(bool, bool)> {
    match rel {
        REL_EQ => Some((true, false)),
        REL_LT => Some((false, true)),
        REL_LE => Some((true, true)),
        _ => None,
    }
}

/// `slot[a] = slot[b].clone()` for a string (`packed` = `a | b << 16`): 0, or -1 when
/// `slot[b]` holds no string.
pub(crate) extern "C" fn str_move(base: i64, packed: i64) -> i64 {
    // SAFETY: both slots are registers of the running frame (see `slot`); the clone is made
    // before the assignment drops the destination's old value.
    unsafe {
        let v = (*slot(base, packed >> 16)).clone();
        if !matches!(v, Value::Str(_)) {
            return -1;
        }
        *slot(base, packed) = v;
    }
    0
}

/// The byte length of the string in `slot[i]`, or -1 when it holds no string.
pub(crate) extern "C" fn str_len(base: i64, i: i64) -> i64 {
    // SAFETY: the slot is a register of the running frame (see `slot`); only read.
    match unsafe { &*slot(base, i) } {
        Value::Str(s) => s.as_str().len() as i64,
        _ => -1,
    }
}

/// Stores a clone of the string in the VM slot at address `src` into the array element at
/// address `elem`, dropping the element's old value afterwards (as the interpreter's
/// `setidx`): 0, or -1 (nothing changed) when the slot holds no string.
pub(crate) extern "C" fn str_store(elem: i64, src: i64) -> i64 {
    // `elem` is an element of a live array, bounds-checked by the trace, and `src` a
    // register of the running frame (`SAddr`). The old element is dropped after the store, so
    // a drop that frees the array's last other reference cannot touch the buffer written.
    // SAFETY: both are valid, and the clone is made before the old element is replaced.
    unsafe {
        let v = (*(src as usize as *const Value)).clone();
        if !matches!(v, Value::Str(_)) {
            return -1;
        }
        let old = core::ptr::replace(elem as usize as *mut Value, v);
        drop(old);
    }
    0
}

/// Packs slot numbers for a string call.
fn pack(slots: &[usize]) -> Result<i64, Abort> {
    let mut p = 0i64;
    for (i, &s) in slots.iter().enumerate() {
        if s >= 1 << SLOT_BITS {
            return Err(Abort::Malformed);
        }
        p |= (s as i64) << (SLOT_BITS * i as u32);
    }
    Ok(p)
}

impl Recorder<'_> {
    /// Records the string bytecodes; `None` for any other bytecode or operand types.
    pub(super) fn str_step(&mut self, pc: usize, w: u32) -> Result<Option<Next>, Abort> {
        let op = w as u8;
        let (a, b, c) = (field_a(w), field_b(w), field_c(w));
        if self.calls.inside() && self.str_writes(pc, w) {
            // A runtime call that stores into a VM register is a side effect, which a call
            // region must not have (an exit inside it redoes the call in the interpreter; see
            // `inline`): the trace exits at the call instead.
            return Err(Abort::UnsupportedOperand(op));
        }
        match op {
            byte::Add if self.is_str(b) && self.is_str(c) => self.concat(a, b, c)?,
            byte::Eq | byte::Lt | byte::Le if self.is_str(b) && self.is_str(c) => {
                let rel = [REL_EQ, REL_LT, REL_LE][(op - byte::Eq) as usize];
                let holds = self.str_relation(rel, b, c)?;
                let v = self.bool_const(holds);
                self.set(a, v)?;
            }
            byte::JLt | byte::JLe | byte::JEq if self.is_str(a) && self.is_str(b) => {
                let rel = [REL_LT, REL_LE, REL_EQ][(op - byte::JLt) as usize];
                let holds = self.str_relation(rel, a, b)?;
                return if holds == (c != 0) {
                    self.take_jump(pc, self.ext(pc)?, None).map(Some)
                } else {
                    Ok(Some(Next::Pc(pc + 2)))
                };
            }
            byte::Move if self.is_str(b) => return self.str_move_or_len(pc, w).map(Some),
            byte::LoadK => match self.prog.consts.get(field_bx(w)) {
                Some(Const::Str(text)) => self.load_str_const(a, text)?,
                _ => return Ok(None),
            },
            byte::SetIdx | byte::SetIdxI if self.is_str(c) => self.str_set_index(w)?,
            _ => return Ok(None),
        }
        Ok(Some(Next::Pc(pc + 1)))
    }

    /// Whether `w` at `pc` is a string bytecode whose runtime call stores into a VM register
    /// or an element (a concatenation, a string `move` other than `len`'s, a string `loadk`,
    /// a string element store); comparisons and `len` only read.
    fn str_writes(&self, pc: usize, w: u32) -> bool {
        let (b, c) = (field_b(w), field_c(w));
        match w as u8 {
            byte::Add => self.is_str(b) && self.is_str(c),
            byte::Move => self.is_str(b) && !self.len_follows(pc, field_a(w)),
            byte::LoadK => matches!(self.prog.consts.get(field_bx(w)), Some(Const::Str(_))),
            byte::SetIdx | byte::SetIdxI => self.is_str(c),
            _ => false,
        }
    }

    /// Whether the instruction after `pc` is `callb t, len, 1` (the `move` at `pc` is the
    /// argument move of `len`).
    fn len_follows(&self, pc: usize, t: usize) -> bool {
        let next = self.code.get(pc + 1).copied().unwrap_or(0);
        next as u8 == byte::CallB
            && field_a(next) == t
            && field_c(next) == 1
            && Builtin::from_index(field_b(next)) == Some(Builtin::Len)
    }

    pub(super) fn is_str(&self, r: usize) -> bool {
        matches!(self.strs.get(r), Some(Some(_)))
    }

    fn text(&self, r: usize) -> Result<String, Abort> {
        self.strs
            .get(r)
            .cloned()
            .flatten()
            .ok_or(Abort::UnsupportedType)
    }

    /// Forgets that register `r` holds a string (it is being overwritten).
    pub(super) fn forget_str(&mut self, r: usize) {
        if let Some(s) = self.strs.get_mut(r) {
            *s = None;
        }
    }

    /// A string call `f(SAddr 0, packed)` whose status must be `want`, guarded (exit to the
    /// bytecode being recorded). The slots it reads stay out of the slot map (see the module
    /// doc).
    fn str_call(&mut self, f: super::HostFn, packed: i64, read: &[usize], want: i64) -> Ref {
        self.str_slots.extend(read.iter().map(|&s| s as u32));
        let base = self.tb.slot_addr(0);
        let k = self.tb.kint(packed);
        let r = self.tb.call(f, base, k);
        let want = self.tb.kint(want);
        self.tb.guard(Op::Eq, r, want);
        r
    }

    /// Register `dst` now holds `text`, stored by native code: exits must leave the slot
    /// alone, and the iteration must not have read it with an `SLoad` before.
    fn str_written(&mut self, op: u8, dst: usize, text: String) -> Result<(), Abort> {
        if self.is_array(dst) {
            return Err(Abort::UnsupportedOperand(op));
        }
        self.native_write(dst, op);
        self.tb.forget_slot(dst as u32);
        *self.shadow.get_mut(dst).ok_or(Abort::Malformed)? = None;
        *self.strs.get_mut(dst).ok_or(Abort::Malformed)? = Some(text);
        self.str_slots.push(dst as u32);
        Ok(())
    }

    /// `dst = x + y` for two strings.
    fn concat(&mut self, dst: usize, x: usize, y: usize) -> Result<(), Abort> {
        let mut text = self.text(x)?;
        text.push_str(&self.text(y)?);
        self.str_call(str_add, pack(&[dst, x, y])?, &[x, y], 0);
        self.str_written(byte::Add, dst, text)
    }

    /// The outcome of `x rel y` for two strings now, guarded.
    fn str_relation(&mut self, rel: i64, x: usize, y: usize) -> Result<bool, Abort> {
        let (p, q) = (self.text(x)?, self.text(y)?);
        let holds = match rel {
            REL_EQ => p == q,
            REL_LT => p.as_bytes() < q.as_bytes(),
            _ => p.as_bytes() <= q.as_bytes(),
        };
        let packed = pack(&[x, y])? | rel << 32;
        self.str_call(str_rel, packed, &[x, y], holds as i64);
        Ok(holds)
    }

    /// `move t, s` of a string: `len(s)` when a `callb t, len, 1` follows (both as one step,
    /// the guard resuming at the `move`), else a clone into `t`.
    fn str_move_or_len(&mut self, pc: usize, w: u32) -> Result<Next, Abort> {
        let (t, s) = (field_a(w), field_b(w));
        let is_len = self.len_follows(pc, t);
        let text = self.text(s)?;
        if !is_len {
            self.str_call(str_move, pack(&[t, s])?, &[s], 0);
            self.str_written(byte::Move, t, text)?;
            return Ok(Next::Pc(pc + 1));
        }
        self.str_slots.push(s as u32);
        let base = self.tb.slot_addr(0);
        let k = self.tb.kint(s as i64);
        let r = self.tb.call(str_len, base, k);
        let zero = self.tb.kint(0);
        self.tb.guard(Op::Ge, r, zero);
        let v = Val {
            num: Num::Int(text.len() as i64),
            r,
        };
        self.set(t, v)?;
        Ok(Next::Pc(pc + 2))
    }

    /// `loadk dst, K` of a string constant: the interpreter's constant is the object entered
    /// with `K`'s text in the VM's short-string table; the trace keeps a clone of it and
    /// stores clones of that into the register ([`str_store`]: the old value dropped, nothing
    /// charged, as the interpreter's `loadk`). Aborts when no such object is entered (a long
    /// constant, or a table that could not grow) or no value of the frame reaches the table.
    fn load_str_const(&mut self, dst: usize, text: &str) -> Result<(), Abort> {
        let k = self
            .meter
            .as_ref()
            .and_then(|m| Value::find_short(m, text))
            .ok_or(Abort::UnsupportedType)?;
        if self.is_array(dst) {
            return Err(Abort::UnsupportedOperand(byte::LoadK));
        }
        let kaddr = self.tb.keep(k);
        let kaddr = self.tb.kint(kaddr);
        let slot = self.tb.slot_addr(dst as u32);
        let status = self.tb.call(str_store, slot, kaddr);
        let zero = self.tb.kint(0);
        self.tb.guard(Op::Eq, status, zero);
        self.str_written(byte::LoadK, dst, String::from(text))
    }

    /// `arr[idx] = s` for a string `s`: a runtime call stores a clone and drops the old
    /// element, after the bounds guard.
    fn str_set_index(&mut self, w: u32) -> Result<(), Abort> {
        let op = w as u8;
        let (arr, src) = (field_a(w), field_c(w));
        let (aref, iref) = self.element_ref(op, arr, w)?;
        self.str_slots.push(src as u32);
        let addr = self.element_addr(aref, iref);
        let slot = self.tb.slot_addr(src as u32);
        let status = self.tb.call(str_store, addr, slot);
        let zero = self.tb.kint(0);
        self.tb.guard(Op::Eq, status, zero);
        Ok(())
    }

    /// Native code is about to store into register `dst` (for bytecode `op`). If the
    /// iteration has read it with an `SLoad` already, a looping trace's body would reuse that
    /// stale read: remembered, and refused when the recording ends in a loop
    /// ([`check_str_slots`](Self::check_str_slots)); a trace that ends in a link runs once.
    pub(super) fn native_write(&mut self, dst: usize, op: u8) {
        self.forget_copy(dst);
        if self.tb.was_loaded(dst as u32) {
            self.stale_reads.push(op);
        }
    }

    /// String calls read and write VM slots directly: none of those slots may end the
    /// iteration in the slot map (see the module doc).
    /// `looping`: the trace ends with the jump back to its start (see
    /// [`native_write`](Self::native_write)).
    pub(super) fn check_str_slots(&self, looping: bool) -> Result<(), Abort> {
        if let (true, Some(&op)) = (looping, self.stale_reads.first()) {
            return Err(Abort::UnsupportedOperand(op));
        }
        match self.str_slots.iter().any(|&s| self.tb.is_written(s)) {
            true => Err(Abort::UnsupportedType),
            false => Ok(()),
        }
    }
}

/// The string registers of a frame as the interpreter holds it.
pub(super) fn str_regs(regs: &[Value]) -> alloc::vec::Vec<Option<String>> {
    regs.iter()
        .map(|v| match v {
            Value::Str(s) => Some(String::from(s.as_str())),
            _ => None,
        })
        .collect()
}

/// The memory meter of the first string or array in `regs` (every heap value of a VM holds
/// the VM's meter, which owns its short-string table).
pub(super) fn meter_of(regs: &[Value]) -> Option<crate::vm::value::Meter> {
    regs.iter().find_map(|v| match v {
        Value::Str(s) => Some(s.meter().clone()),
        Value::Array(a) => Some(a.meter().clone()),
        _ => None,
    })
}
