//! Recording of array accesses and numeric builtins inside loop traces (part of the recorder,
//! [`crate::jit::record`]).
//!
//! Glossary
//! - *array register*: a register that held a `Value::Array` when the recording started and
//!   that the iteration has not overwritten since, or one a runtime call of the trace filled
//!   with an array (`put_element`, `move_heap`). The trace reads its payload (the array
//!   object's address) once, with `SLoadT`, which guards the slot's tag; the slot itself is
//!   never written by the trace (the optimiser refuses a loop whose tail writes it).
//! - *element access*: `getidx`/`getidxi` and `setidx`/`setidxi` on an array register with an
//!   int index. The array is read only through `vm::value::ARRAY_PTR_OFFSET` (element 0) and
//!   `ARRAY_LEN_OFFSET` (count); elements are `Value`s, `size_of::<Value>()` bytes apart, with
//!   the tag word at 0 and the payload at `PAYLOAD_OFFSET`.
//!
//! Every access guards, in this order and resuming at the bytecode itself (the interpreter
//! redoes it, raising its error if there is one): `0 <= index < len`; for a read, that the
//! element's tag is the one the recorder saw (int, float or bool: type feedback); for a write,
//! that the element it replaces owns nothing (a tag below `TAG_STR`), then the new tag and
//! payload are stored. So no reference count changes in native code outside the runtime calls,
//! exactly as the interpreter's inline paths (`ArrayObj::get` of a number,
//! `ArrayObj::set_inline`) behave; storing an array or nil, or reading nil, aborts the
//! recording.
//!
//! `move t, a` of an array register (`let b = a`, an array argument of a call) is a runtime
//! call, [`move_heap`], that clones the reference into `t`'s slot (the interpreter's reference
//! counting, the old value of `t` dropped); `t` then is an array register for the same object,
//! written only by native code (see [`Recorder::copy_array`]).
//!
//! Builtins: `sqrt` is `SqrtF` (the machine instruction, correctly rounded like the
//! interpreter's), `float` of an int is `ToFloat`, `int` of a float is `ToInt` behind guards
//! that the float lies strictly inside (-2^63, 2^63) (NaN fails them), the identity
//! conversions are free, and `len` of an array register (compiled as `move t, a; callb t, len,
//! 1`) loads the count, both bytecodes as one step whose guards resume at the `move`.
//! `push(a, v)` of an int (`move t, a; X; callb t, push, 2`) is a runtime call of
//! `ArrayObj::push` through the array register's slot (`SAddr`), recorded when its result
//! register `t` is nil and the iteration never writes it (see [`Recorder::push`]).
//!
//! An array or string element read into a register (`let row = m[i]`) is a runtime call,
//! `put_element`, that stores the clone into the register itself (see
//! [`Recorder::get_heap_element`]).
//!
//! Alias rules (the optimiser's): element loads CSE only in traces without stores and calls;
//! length and element-pointer loads (`LdH`) in traces without calls (only `push`, a call,
//! changes them). A store to an element the iteration read or stored before skips the old-tag
//! check unless a call came in between (element stores store numbers only), and skips the tag
//! store when the type stays and nothing wrote memory in between.
use alloc::rc::Rc;

use super::{Next, Num, Recorder, Val};
use crate::jit::ir::{Op, Ref, NONE};
use crate::jit::trace::Abort;
use crate::vm::builtins::Builtin;
use crate::vm::bytecode::{byte, field_a, field_b, field_c};
use crate::vm::value::{
    ArrayObj, Value, ARRAY_LEN_OFFSET, ARRAY_PTR_OFFSET, PAYLOAD_OFFSET, TAG_ARRAY, TAG_BOOL,
    TAG_FLOAT, TAG_INT, TAG_NIL, TAG_STR,
};

/// `*slot = elem.clone()`: a heap element (an array or a string) copied into the VM register
/// at address `slot` with the interpreter's reference counting (the old value is dropped).
/// Returns 0.
pub(crate) extern "C" fn put_element(slot: i64, elem: i64) -> i64 {
    // `elem` is the address of an element of a live array (bounds-checked by the trace), and
    // `slot` of a VM register of the running frame (`SAddr`) that the trace never writes
    // otherwise; the interpreter is suspended while native code runs.
    // SAFETY: so both are valid; the clone is made before the assignment drops the old
    // register value, and nothing else holds a reference into either buffer across the call.
    unsafe {
        let v = (*(elem as usize as *const Value)).clone();
        *(slot as usize as *mut Value) = v;
    }
    0
}

/// `*dst = (*src).clone()` for a heap value (an array or a string) in VM register `src`,
/// with the interpreter's reference counting (the clone is made before the assignment drops
/// `dst`'s old value): 0, or -1 with nothing changed when `src` holds no heap value.
pub(crate) extern "C" fn move_heap(dst: i64, src: i64) -> i64 {
    // SAFETY: `dst` and `src` are addresses of VM registers of the running frame (`SAddr`);
    // the interpreter is suspended while native code runs, and the clone is an owned value
    // before `dst` is assigned, so `dst == src` would also be sound.
    unsafe {
        let v = (*(src as usize as *const Value)).clone();
        if v.tag() < TAG_STR {
            return -1;
        }
        *(dst as usize as *mut Value) = v;
    }
    0
}

/// `push` of int `x` onto the array in the VM register at address `slot`: 0, or -1 when the
/// register holds no array or the VM's memory cap refuses the growth (nothing changed; the
/// trace exits and the interpreter's `push` reports it).
pub(crate) extern "C" fn push_int(slot: i64, x: i64) -> i64 {
    // SAFETY: `slot` is the address of a VM register of the running frame (`SAddr`) that the
    // trace guarded to hold an array (`SLoadT`) and never writes; the interpreter is suspended
    // while native code runs, so nothing else touches the register or the array now.
    let v = unsafe { &*(slot as usize as *const Value) };
    match v {
        Value::Array(arr) if arr.push(Value::Int(x)).is_ok() => 0,
        _ => -1,
    }
}

/// Whether `move t, a` at `pc` (word `w`) is the argument move of `len(a)`: `move t, a;
/// callb t, len, 1` (both recorders record the pair as one length load).
pub(crate) fn is_len_call(code: &[u32], pc: usize, w: u32) -> bool {
    let next = code.get(pc + 1).copied().unwrap_or(0);
    next as u8 == byte::CallB
        && field_a(next) == field_a(w)
        && field_c(next) == 1
        && Builtin::from_index(field_b(next)) == Some(Builtin::Len)
}

/// Whether `move t, a` at `pc` (word `w`) is the argument move of `push(a, v)`: `move t, a;
/// X; callb t, push, 2` (see `Recorder::push`).
fn is_push_call(code: &[u32], pc: usize, w: u32) -> bool {
    let call = code.get(pc + 2).copied().unwrap_or(0);
    call as u8 == byte::CallB
        && field_a(call) == field_a(w)
        && field_c(call) == 2
        && Builtin::from_index(field_b(call)) == Some(Builtin::Push)
}

/// The IR-building operations the array recording needs, so loop traces
/// ([`crate::jit::ir::TraceBuilder`]) and function traces ([`crate::jit::frecord`]) share one
/// recording of element accesses.
pub(crate) trait ArrayIr {
    /// An int constant.
    fn kint(&mut self, v: i64) -> Ref;
    /// A pure operation.
    fn op(&mut self, op: Op, a: Ref, b: Ref) -> Ref;
    /// A guard that leaves at the current bytecode when `a op b` fails.
    fn guard(&mut self, op: Op, a: Ref, b: Ref);
    /// A load from address `base + disp`.
    fn load(&mut self, op: Op, base: Ref, disp: i64) -> Ref;
}

impl ArrayIr for crate::jit::ir::TraceBuilder {
    fn kint(&mut self, v: i64) -> Ref {
        crate::jit::ir::TraceBuilder::kint(self, v)
    }
    fn op(&mut self, op: Op, a: Ref, b: Ref) -> Ref {
        crate::jit::ir::TraceBuilder::op(self, op, a, b)
    }
    fn guard(&mut self, op: Op, a: Ref, b: Ref) {
        crate::jit::ir::TraceBuilder::guard(self, op, a, b)
    }
    fn load(&mut self, op: Op, base: Ref, disp: i64) -> Ref {
        crate::jit::ir::TraceBuilder::load(self, op, base, disp)
    }
}

/// The guarded address of element `iref` of the array at `aref`: `0 <= index < len` in one
/// unsigned compare, then the element pointer plus the index times the element size.
pub(crate) fn element_addr(ir: &mut impl ArrayIr, aref: Ref, iref: Ref) -> Ref {
    let len = ir.load(Op::LdH, aref, ARRAY_LEN_OFFSET as i64);
    ir.guard(Op::ULt, iref, len);
    let data = ir.load(Op::LdH, aref, ARRAY_PTR_OFFSET as i64);
    let size = ir.kint(ELEM_SIZE);
    let off = ir.op(Op::MulI, iref, size);
    ir.op(Op::AddI, data, off)
}

/// Element `iref` of the array at `aref`, guarded to have tag `tag` (a number), loaded with
/// `load` (`LdI`, `LdF`, `LdB`); also its address.
pub(crate) fn number_element(
    ir: &mut impl ArrayIr,
    aref: Ref,
    iref: Ref,
    tag: u64,
    load: Op,
) -> (Ref, Ref) {
    let addr = element_addr(ir, aref, iref);
    let t = ir.load(Op::LdI, addr, TAG_OFFSET);
    let want = ir.kint(tag as i64);
    ir.guard(Op::Eq, t, want);
    (ir.load(load, addr, PAYLOAD_OFFSET as i64), addr)
}

/// The address of element `iref` of the array at `aref`, guarded to have tag `tag` (an array
/// or a string, for [`put_element`]).
pub(crate) fn heap_element(ir: &mut impl ArrayIr, aref: Ref, iref: Ref, tag: u64) -> Ref {
    let addr = element_addr(ir, aref, iref);
    let t = ir.load(Op::LdI, addr, TAG_OFFSET);
    let want = ir.kint(tag as i64);
    ir.guard(Op::Eq, t, want);
    addr
}

/// Bytes between two elements.
const ELEM_SIZE: i64 = core::mem::size_of::<Value>() as i64;
/// 2^63: the floats `int` converts natively lie strictly between minus this and this.
const TWO_63: f64 = 9_223_372_036_854_775_808.0;
/// Offset of an element's tag word (`Value` is `repr(u64)`: the tag comes first).
const TAG_OFFSET: i64 = 0;

/// An array register: the object (kept alive for the recording's reads) and the ref of its
/// address once the trace has loaded it ([`NONE`] before).
pub(super) struct ArrayReg {
    obj: Rc<ArrayObj>,
    r: Ref,
    /// Stored into the register by native code (`put_element`), not read from it.
    native: bool,
}

/// The array registers of a frame as the interpreter holds it.
pub(super) fn array_regs(regs: &[Value]) -> alloc::vec::Vec<Option<ArrayReg>> {
    regs.iter()
        .map(|v| match v {
            Value::Array(obj) => Some(ArrayReg {
                obj: Rc::clone(obj),
                r: NONE,
                native: false,
            }),
            _ => None,
        })
        .collect()
}

/// An element whose tag the trace has guarded or stored: element `index` (a ref) of the array
/// at `array` (a ref) has tag `tag` for as long as nothing writes memory after `mark` (a
/// [`crate::jit::ir::TraceBuilder::recorded`]).
pub(super) struct KnownTag {
    array: Ref,
    index: Ref,
    tag: u64,
    mark: usize,
}

/// Register `reg` holds a copy of element `index` (a ref) of the array at `array` (a ref),
/// stored by `put_element` when the trace had recorded `mark` instructions
/// ([`crate::jit::ir::TraceBuilder::recorded`]). Dropped when anything writes the register
/// ([`Recorder::forget_copy`]); it stands while nothing since `mark` may have written an
/// array element ([`REGISTER_WRITERS`]).
pub(super) struct ElementCopy {
    reg: usize,
    array: Ref,
    index: Ref,
    mark: usize,
}

/// Runtime calls of loop traces that write VM registers or make strings but never change an
/// array's elements or length (they may drop a register's old value, but an array an array
/// register still names stays alive).
const REGISTER_WRITERS: &[super::HostFn] = &[
    put_element,
    move_heap,
    super::strs::str_rel,
    super::strs::str_move,
    super::strs::str_len,
    super::strs::str_add,
];

/// Registers the slot map must never name: which registers held nil when the recording
/// started, and the slots native code fills itself (`kept`): a recorded `push`'s result
/// register (guarded nil and never written, so every exit leaves it nil, as the interpreter's
/// `push` does) and registers a heap element was copied into (`put_element`).
pub(super) struct Nils {
    at_start: alloc::vec::Vec<bool>,
    /// (slot, the bytecode that relies on it).
    kept: alloc::vec::Vec<(u32, u8)>,
}

impl Nils {
    pub(super) fn new(regs: &[Value]) -> Nils {
        Nils {
            at_start: regs.iter().map(|v| matches!(v, Value::Nil)).collect(),
            kept: alloc::vec::Vec::new(),
        }
    }
}

/// An element index: a register or a literal (`getidxi`, `setidxi`).
#[derive(Clone, Copy)]
enum Index {
    Reg(usize),
    Imm(usize),
}

/// The IR tag of a number kind.
fn tag_of(n: Num) -> u64 {
    match n {
        Num::Int(_) => TAG_INT,
        Num::Float(_) => TAG_FLOAT,
        Num::Bool(_) => TAG_BOOL,
    }
}

impl Recorder<'_> {
    /// Records the array bytecodes and numeric builtins; `None` for any other bytecode.
    pub(super) fn array_step(&mut self, pc: usize, w: u32) -> Result<Option<Next>, Abort> {
        let op = w as u8;
        match op {
            byte::GetIdx => self.get_index(op, field_a(w), field_b(w), Index::Reg(field_c(w)))?,
            byte::GetIdxI => self.get_index(op, field_a(w), field_b(w), Index::Imm(field_c(w)))?,
            byte::SetIdx => self.set_index(op, field_a(w), Index::Reg(field_b(w)), field_c(w))?,
            byte::SetIdxI => self.set_index(op, field_a(w), Index::Imm(field_b(w)), field_c(w))?,
            byte::CallB => self.builtin(w)?,
            byte::Move if self.is_array(field_b(w)) => return self.array_move(pc, w).map(Some),
            _ => return Ok(None),
        }
        Ok(Some(Next::Pc(pc + 1)))
    }

    pub(super) fn is_array(&self, r: usize) -> bool {
        matches!(self.arrays.get(r), Some(Some(_)))
    }

    /// Forgets that register `r` holds an array (it is being overwritten).
    pub(super) fn forget_array(&mut self, r: usize) {
        if let Some(slot) = self.arrays.get_mut(r) {
            *slot = None;
        }
    }

    /// The array in register `r` and the ref of its address (loaded on first use).
    fn array(&mut self, op: u8, r: usize) -> Result<(Rc<ArrayObj>, Ref), Abort> {
        let Some(Some(arr)) = self.arrays.get(r) else {
            return Err(Abort::UnsupportedOperand(op));
        };
        let (obj, mut aref) = (Rc::clone(&arr.obj), arr.r);
        if aref == NONE {
            aref = self.tb.slot_tagged(r as u32, TAG_ARRAY as u32);
            if let Some(Some(arr)) = self.arrays.get_mut(r) {
                arr.r = aref;
            }
        }
        Ok((obj, aref))
    }

    /// The index now and its ref.
    fn index(&mut self, op: u8, idx: Index) -> Result<(i64, Ref), Abort> {
        match idx {
            Index::Imm(k) => Ok((k as i64, self.tb.kint(k as i64))),
            Index::Reg(r) => match self.shadow.get(r).copied().flatten() {
                Some(Num::Int(i)) => Ok((i, self.reg(r)?.r)),
                _ => Err(Abort::UnsupportedOperand(op)),
            },
        }
    }

    /// Element `i` of `obj` as the iteration has left it so far: a number, or `None` for nil
    /// and heap values (`Err` past the end).
    fn element(&self, obj: &Rc<ArrayObj>, i: i64) -> Result<Option<Num>, Abort> {
        let key = (Rc::as_ptr(obj) as usize, i);
        if let Some(&(_, _, n)) = self.stores.iter().rev().find(|s| (s.0, s.1) == key) {
            return Ok(Some(n));
        }
        let v = usize::try_from(i)
            .ok()
            .and_then(|i| obj.get(i))
            .ok_or(Abort::IndexOutOfRange)?;
        Ok(match v {
            Value::Int(x) => Some(Num::Int(x)),
            Value::Float(x) => Some(Num::Float(x)),
            Value::Bool(x) => Some(Num::Bool(x)),
            _ => None,
        })
    }

    /// The array ref and index ref of `setidx`/`setidxi` `w` (an array register, an int index
    /// inside the array now).
    pub(super) fn element_ref(&mut self, op: u8, arr: usize, w: u32) -> Result<(Ref, Ref), Abort> {
        let idx = if op == byte::SetIdxI {
            Index::Imm(field_b(w))
        } else {
            Index::Reg(field_b(w))
        };
        let (obj, aref) = self.array(op, arr)?;
        let (i, iref) = self.index(op, idx)?;
        if usize::try_from(i).map_or(true, |i| i >= obj.len()) {
            return Err(Abort::IndexOutOfRange);
        }
        Ok((aref, iref))
    }

    /// The guarded address of element `iref` of the array at `aref`.
    pub(super) fn element_addr(&mut self, aref: Ref, iref: Ref) -> Ref {
        element_addr(&mut self.tb, aref, iref)
    }

    /// `dst = arr[idx]` for a number element.
    fn get_index(&mut self, op: u8, dst: usize, arr: usize, idx: Index) -> Result<(), Abort> {
        let (obj, aref) = self.array(op, arr)?;
        let (i, iref) = self.index(op, idx)?;
        let Some(num) = self.element(&obj, i)? else {
            return self.get_heap_element(op, dst, &obj, aref, i, iref);
        };
        let load = match num {
            Num::Int(_) => Op::LdI,
            Num::Float(_) => Op::LdF,
            Num::Bool(_) => Op::LdB,
        };
        let (r, _) = number_element(&mut self.tb, aref, iref, tag_of(num), load);
        self.know_tag(aref, iref, tag_of(num));
        self.set(dst, Val { num, r })
    }

    /// `dst = arr[idx]` for an array or string element: a runtime call (`put_element`) stores a
    /// clone into the register itself, after a guard on the element's tag. The register leaves
    /// the slot map (exits must not overwrite it), so in a looping trace the iteration must
    /// not have read it before (the loop body would reuse that stale read; see
    /// `Recorder::native_write`) nor write it after (the tail would name the written value
    /// for exits where the element belongs); an array becomes an array register whose address
    /// is the element's payload, a string a string register.
    fn get_heap_element(
        &mut self,
        op: u8,
        dst: usize,
        obj: &Rc<ArrayObj>,
        aref: Ref,
        i: i64,
        iref: Ref,
    ) -> Result<(), Abort> {
        let unsupported = Abort::UnsupportedOperand(op);
        let value = usize::try_from(i).ok().and_then(|i| obj.get(i));
        let tag = match &value {
            Some(Value::Array(_)) => TAG_ARRAY,
            Some(Value::Str(_)) => TAG_STR,
            _ => return Err(unsupported),
        };
        if self.holds_copy(dst, aref, iref) {
            // `dst` holds this very element already: the interpreter's clone and assignment
            // leave everything as it is.
            return Ok(());
        }
        let read_before = matches!(self.arrays.get(dst), Some(Some(a)) if a.r != NONE && !a.native);
        if read_before || self.stores.iter().any(|s| s.0 == Rc::as_ptr(obj) as usize) {
            return Err(unsupported);
        }
        self.native_write(dst, op);
        let addr = heap_element(&mut self.tb, aref, iref, tag);
        let slot = self.tb.slot_addr(dst as u32);
        self.tb.call(put_element, slot, addr);
        let mark = self.tb.recorded();
        self.copies.push(ElementCopy {
            reg: dst,
            array: aref,
            index: iref,
            mark,
        });
        self.tb.forget_slot(dst as u32);
        *self.shadow.get_mut(dst).ok_or(Abort::Malformed)? = None;
        self.forget_array(dst);
        self.forget_str(dst);
        if let Some(Value::Str(s)) = &value {
            if let Some(reg) = self.strs.get_mut(dst) {
                *reg = Some(alloc::string::String::from(s.as_str()));
            }
            self.str_slots.push(dst as u32);
        }
        if let Some(Value::Array(elem)) = value {
            let r = self.tb.load(Op::LdI, addr, PAYLOAD_OFFSET as i64);
            if let Some(reg) = self.arrays.get_mut(dst) {
                *reg = Some(ArrayReg {
                    obj: elem,
                    r,
                    native: true,
                });
            }
        }
        self.nils.kept.push((dst as u32, op));
        Ok(())
    }

    /// Forgets the element copy register `r` holds, if any (it is being written).
    pub(super) fn forget_copy(&mut self, r: usize) {
        self.copies.retain(|c| c.reg != r);
    }

    /// Whether register `r` holds a copy of element `iref` of `aref` that is still the
    /// element's value: nothing wrote the register since the copy (see
    /// [`forget_copy`](Self::forget_copy)) and nothing that may change an array ran.
    fn holds_copy(&self, r: usize, aref: Ref, iref: Ref) -> bool {
        self.copies.iter().any(|c| {
            (c.reg, c.array, c.index) == (r, aref, iref)
                && self.tb.writes_only_through(c.mark, REGISTER_WRITERS)
        })
    }

    /// Records that element `iref` of `aref` has tag `tag` now.
    fn know_tag(&mut self, aref: Ref, iref: Ref, tag: u64) {
        let mark = self.tb.recorded();
        self.known_tags
            .retain(|k| (k.array, k.index) != (aref, iref));
        self.known_tags.push(KnownTag {
            array: aref,
            index: iref,
            tag,
            mark,
        });
    }

    /// The tag of element `iref` of `aref`, if the trace checked or stored it and nothing has
    /// written memory since.
    fn known_tag(&self, aref: Ref, iref: Ref) -> Option<u64> {
        let k = self
            .known_tags
            .iter()
            .find(|k| (k.array, k.index) == (aref, iref))?;
        (!self.tb.wrote_memory_since(k.mark)).then_some(k.tag)
    }

    /// Whether element `iref` of `aref` is known to own nothing: the trace checked or stored a
    /// number there and has made no call since (element stores store numbers only, so
    /// whatever they hit still owns nothing).
    fn known_scalar(&self, aref: Ref, iref: Ref) -> bool {
        self.known_tags.iter().any(|k| {
            (k.array, k.index) == (aref, iref) && k.tag < TAG_STR && !self.tb.called_since(k.mark)
        })
    }

    /// `arr[idx] = src` for a number replacing an element that owns nothing.
    fn set_index(&mut self, op: u8, arr: usize, idx: Index, src: usize) -> Result<(), Abort> {
        let (obj, aref) = self.array(op, arr)?;
        let (i, iref) = self.index(op, idx)?;
        if self.shadow.get(src).copied().flatten().is_none() {
            return Err(Abort::UnsupportedOperand(op));
        }
        // The element replaced now must own nothing (nil or a number); a heap element would
        // need its reference dropped.
        let owns_nothing = match self.element(&obj, i)? {
            Some(_) => true,
            None => usize::try_from(i)
                .ok()
                .and_then(|i| obj.get(i))
                .is_some_and(|v| v.tag() < TAG_STR),
        };
        if !owns_nothing {
            return Err(Abort::UnsupportedOperand(op));
        }
        let v = self.reg(src)?;
        let addr = self.element_addr(aref, iref);
        // `a[i] = a[i] + 1`: the read just guarded the element's tag (a number): no second
        // check unless a call came since, and no tag store when the type stays and nothing
        // wrote memory since.
        let known = self.known_tag(aref, iref);
        if !self.known_scalar(aref, iref) {
            let old = self.tb.load(Op::LdI, addr, TAG_OFFSET);
            let heap = self.tb.kint(TAG_STR as i64);
            self.tb.guard(Op::Lt, old, heap);
        }
        if known != Some(tag_of(v.num)) {
            let tag = self.tb.kint(tag_of(v.num) as i64);
            self.tb.store(Op::StI, addr, TAG_OFFSET, tag);
        }
        let store = match v.num {
            Num::Int(_) => Op::StI,
            Num::Float(_) => Op::StF,
            Num::Bool(_) => Op::StB,
        };
        self.tb.store(store, addr, PAYLOAD_OFFSET as i64, v.r);
        self.stores.push((Rc::as_ptr(&obj) as usize, i, v.num));
        self.know_tag(aref, iref, tag_of(v.num));
        Ok(())
    }

    /// `callb` of `sqrt`, `int` or `float` on a number (others abort as unsupported).
    fn builtin(&mut self, w: u32) -> Result<(), Abort> {
        let (first, n) = (field_a(w), field_c(w));
        let unsupported = Abort::Unsupported(byte::CallB);
        let which = Builtin::from_index(field_b(w)).ok_or(unsupported)?;
        if n != 1 || !matches!(which, Builtin::Sqrt | Builtin::Int | Builtin::Float) {
            return Err(unsupported);
        }
        let x = match self.shadow.get(first).copied().flatten() {
            Some(Num::Int(_) | Num::Float(_)) => self.reg(first)?,
            _ => return Err(Abort::UnsupportedOperand(byte::CallB)),
        };
        let v = match (which, x.num) {
            (Builtin::Sqrt, _) => {
                let xf = self.float_of(x);
                Val {
                    num: Num::Float(crate::vm::builtins::sqrt(xf.num.as_f64())),
                    r: self.tb.op(Op::SqrtF, xf.r, NONE),
                }
            }
            (Builtin::Int, Num::Float(f)) => {
                // Inside (-2^63, 2^63) truncation is exact on every target; NaN and the rest
                // (saturated by the interpreter) fail a guard and are redone there.
                let (lo, hi) = (self.tb.kfloat(-TWO_63), self.tb.kfloat(TWO_63));
                self.tb.guard(Op::Gt, x.r, lo);
                self.tb.guard(Op::Lt, x.r, hi);
                let r = self.tb.op(Op::ToInt, x.r, NONE);
                Val {
                    num: Num::Int(f as i64),
                    r,
                }
            }
            (Builtin::Float, Num::Int(_)) => self.float_of(x),
            // `int` of an int, `float` of a float.
            _ => x,
        };
        self.set(first, v)
    }

    /// `move t, arr` (an array register): the argument move of `len(arr)` or `push(arr, v)`,
    /// recorded together with the instructions up to the `callb`, or else a copy of the
    /// reference ([`Recorder::copy_array`]).
    fn array_move(&mut self, pc: usize, w: u32) -> Result<Next, Abort> {
        if is_push_call(self.code, pc, w) {
            return self.push(pc, w);
        }
        if !is_len_call(self.code, pc, w) {
            return self.copy_array(pc, w);
        }
        let (obj, aref) = self.array(byte::Move, field_b(w))?;
        let len = self.tb.load(Op::LdH, aref, ARRAY_LEN_OFFSET as i64);
        let v = Val {
            num: Num::Int(obj.len() as i64 + self.pushed(&obj)),
            r: len,
        };
        self.set(field_a(w), v)?;
        Ok(Next::Pc(pc + 2))
    }

    /// `move t, arr` of an array register `arr` (`let b = a`, an array argument of a call): a
    /// runtime call, [`move_heap`], stores a clone of the reference into `t` itself (the old
    /// value of `t` dropped, as the interpreter's assignment does), behind a guard on its
    /// status that resumes at the `move`. `t` becomes an array register holding the same
    /// object (its address is `arr`'s) that only native code writes: it leaves the slot map,
    /// so in a looping trace the iteration must not have read it before (the loop body would
    /// reuse that stale read) and neither slot may end the iteration in the slot map (the
    /// next iteration's call reads the VM slots; see `Recorder::check_str_slots`).
    fn copy_array(&mut self, pc: usize, w: u32) -> Result<Next, Abort> {
        let op = byte::Move;
        let (t, arr) = (field_a(w), field_b(w));
        if t == arr {
            // The interpreter's `move r, r` leaves the register as it is.
            return Ok(Next::Pc(pc + 1));
        }
        let read_before = matches!(self.arrays.get(t), Some(Some(a)) if a.r != NONE && !a.native);
        // Inside a followed call the region must stay free of side effects (an exit there
        // redoes the call in the interpreter; see `inline`): the trace exits at the call.
        if read_before || self.calls.inside() {
            return Err(Abort::UnsupportedOperand(op));
        }
        let (obj, aref) = self.array(op, arr)?;
        self.native_write(t, op);
        let dst = self.tb.slot_addr(t as u32);
        let src = self.tb.slot_addr(arr as u32);
        let status = self.tb.call(move_heap, dst, src);
        let zero = self.tb.kint(0);
        self.tb.guard(Op::Eq, status, zero);
        self.tb.forget_slot(t as u32);
        *self.shadow.get_mut(t).ok_or(Abort::Malformed)? = None;
        self.forget_str(t);
        *self.arrays.get_mut(t).ok_or(Abort::Malformed)? = Some(ArrayReg {
            obj,
            r: aref,
            native: true,
        });
        self.str_slots.push(t as u32);
        self.str_slots.push(arr as u32);
        Ok(Next::Pc(pc + 1))
    }

    /// Elements the recorded iteration appended to `obj`.
    fn pushed(&self, obj: &Rc<ArrayObj>) -> i64 {
        let (addr, len) = (Rc::as_ptr(obj) as usize, obj.len() as i64);
        self.stores
            .iter()
            .filter(|s| s.0 == addr && s.1 >= len)
            .count() as i64
    }

    /// `push(arr, v)` of an int: `move t, arr; X; callb t, push, 2` where `X` is one
    /// instruction computing `v` into `t + 1`. A runtime call (`ArrayObj::push`, which grows
    /// the buffer and charges the meter) through the array register's slot; its failure (out of
    /// memory) is guarded. Every guard of the three resumes at the `move`, whose register `t`
    /// the trace never fills: it must be nil when the push is reached and stays nil (what
    /// the interpreter's `push` leaves there), so the recording aborts if the iteration writes
    /// it anywhere.
    fn push(&mut self, pc: usize, w: u32) -> Result<Next, Abort> {
        let unsupported = Abort::UnsupportedOperand(byte::Move);
        let (t, arr) = (field_a(w), field_b(w));
        let x = self.code.get(pc + 1).copied().unwrap_or(0);
        let call = self.code.get(pc + 2).copied().unwrap_or(0);
        let computes_arg = matches!(
            x as u8,
            byte::Move
                | byte::LoadK
                | byte::LoadInt
                | byte::GetIdx
                | byte::GetIdxI
                | byte::Add
                | byte::Sub
                | byte::Mul
                | byte::AddK
                | byte::SubK
                | byte::MulK
        ) && field_a(x) == t + 1;
        let is_push = call as u8 == byte::CallB
            && field_a(call) == t
            && field_c(call) == 2
            && Builtin::from_index(field_b(call)) == Some(Builtin::Push);
        let t_nil = self.nils.at_start.get(t) == Some(&true)
            && !self.tb.is_written(t as u32)
            && !self.is_array(t);
        if !computes_arg || !is_push || !t_nil {
            return Err(unsupported);
        }
        let (obj, _) = self.array(byte::Move, arr)?;
        // `X` records with this pc: its guards resume at the `move`.
        match self.step(pc + 1, x)? {
            Next::Pc(p) if p == pc + 2 => {}
            _ => return Err(unsupported),
        }
        let Some(Num::Int(v)) = self.shadow.get(t + 1).copied().flatten() else {
            return Err(unsupported);
        };
        let val = self.reg(t + 1)?;
        self.tb.slot_tagged(t as u32, TAG_NIL as u32);
        let slot = self.tb.slot_addr(arr as u32);
        let status = self.tb.call(push_int, slot, val.r);
        let zero = self.tb.kint(0);
        self.tb.guard(Op::Eq, status, zero);
        let index = obj.len() as i64 + self.pushed(&obj);
        self.stores
            .push((Rc::as_ptr(&obj) as usize, index, Num::Int(v)));
        self.nils.kept.push((t as u32, byte::CallB));
        Ok(Next::Pc(pc + 3))
    }

    /// A recorded `push` relies on its result register staying nil, a copied heap element on
    /// its register keeping it: the iteration must not write them (an exit would store the
    /// written value there).
    pub(super) fn check_nil_slots(&self) -> Result<(), Abort> {
        match self.nils.kept.iter().find(|&&(s, _)| self.tb.is_written(s)) {
            Some(&(_, op)) => Err(Abort::UnsupportedOperand(op)),
            None => Ok(()),
        }
    }
}
