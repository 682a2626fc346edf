//! Heap values in function traces: the registers that hold arrays and strings, and the
//! runtime calls through which native code changes them.
//!
//! A heap value lives in its VM register, never in a trace value: snapshots do not name it,
//! and native code changes it only through a runtime call that does what the interpreter does,
//! reference counts included:
//!
//! ```text
//!   bytecode              recorded as                                           method
//!   move + len (array)    LdH [array + len offset]: the length, a number        heap_move
//!   getidx / getidxi      bounds + tag guards; number: native load,             get_index
//!                         array/string: put_element into the register's slot
//!   newarr                helper site NewArr -> new_array (may refuse: exit)    new_array
//!   heap reg overwritten  drop_slot(SAddr r)
//!   ret                   release_frame(SAddr 0, n | (ret reg + 1) << 32)       release_frame
//! ```
//!
//! Invariant: every `SAddr` is taken after the trace's last call (`epoch`), so the register
//! stack has not moved since.
use alloc::rc::Rc;
use alloc::vec::Vec;

use super::{CallSite, FuncRecorder, Next, SiteOp, Val};
use crate::jit::callframe::MAX_ARGS;
use crate::jit::ir::{Inst, Op, Ref, Ty, NONE};
use crate::jit::record::array;
use crate::jit::trace::Abort;
use crate::vm::bytecode::{byte, field_a, field_b, field_c};
use crate::vm::value::{
    ArrayObj, Meter, Value, ARRAY_LEN_OFFSET, TAG_ARRAY, TAG_FLOAT, TAG_INT, TAG_STR,
};

/// A `newarr` whose items are all heap values in their registers (or none): what the native
/// code's runtime call `new_array` builds and where.
pub struct NewArr {
    /// The VM's meter, charged as the interpreter's `newarr` charges it.
    meter: Meter,
    dst: usize,
    first: usize,
    n: usize,
}

impl core::fmt::Debug for NewArr {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "newarr r{}, r{}, {}", self.dst, self.first, self.n)
    }
}

/// `newarr` as the interpreter does it, on the frame whose slot 0 is at `frame`, as `desc` (a
/// [`NewArr`]) says: 0, or 1 with nothing changed when the memory cap refuses the array (the
/// trace then leaves at the `newarr`, which the interpreter redoes, raising its error).
extern "C" fn new_array(frame: i64, desc: i64) -> i64 {
    // SAFETY: `desc` points at a `NewArr` the trace's `FuncCode` keeps alive as long as its
    // code.
    let d = unsafe { &*(desc as usize as *const NewArr) };
    let len = d.dst.max(d.first + d.n) + 1;
    // `frame` is the address of slot 0 of the running frame (`SAddr` taken after the trace's
    // last call); every register the `newarr` names lies below the function's register count.
    // SAFETY: so the `len` registers are inside the register stack; the interpreter is
    // suspended while native code runs, and nothing holds a reference into the stack.
    let regs = unsafe { core::slice::from_raw_parts_mut(frame as usize as *mut Value, len) };
    let Some(items) = regs.get(d.first..d.first + d.n).map(<[Value]>::to_vec) else {
        return 1;
    };
    match (Value::new_array(&d.meter, items), regs.get_mut(d.dst)) {
        (Ok(v), Some(slot)) => {
            *slot = v;
            0
        }
        _ => 1,
    }
}

/// `*slot = nil`: a register holding a heap value is overwritten (the trace keeps the new
/// number itself); the old value is dropped now, where the interpreter drops it. Returns 0.
pub(super) extern "C" fn drop_slot(slot: i64, _: i64) -> i64 {
    // SAFETY: `slot` is the address of a register of the running frame (`SAddr` taken after
    // the trace's last call, so the register stack has not moved since); the interpreter is
    // suspended while native code runs, and nothing holds a reference into the stack.
    unsafe { *(slot as usize as *mut Value) = Value::Nil };
    0
}

/// The interpreter's `ret` release of a frame: the frame's registers from `frame` (slot 0's
/// address) on, `packed & 0xffff_ffff` of them, lose their heap values; with `packed >> 32`
/// = r + 1, register r's value (the returned array) is taken first and put in slot 0, the
/// frame's result. Returns 0.
extern "C" fn release_frame(frame: i64, packed: i64) -> i64 {
    let (n, ret) = ((packed & 0xffff_ffff) as usize, (packed >> 32) as usize);
    // `frame` is the address of slot 0 of the running frame (`SAddr` taken after the trace's
    // last call), and `n` is the function's register count.
    // SAFETY: so the `n` registers lie inside the register stack; the interpreter is
    // suspended while native code runs, and nothing holds a reference into the stack.
    let regs = unsafe { core::slice::from_raw_parts_mut(frame as usize as *mut Value, n) };
    let v = ret
        .checked_sub(1)
        .and_then(|r| regs.get_mut(r))
        .map(core::mem::take);
    for slot in regs.iter_mut() {
        if slot.tag() >= TAG_STR {
            *slot = Value::Nil;
        }
    }
    if let (Some(v), Some(slot)) = (v, regs.first_mut()) {
        *slot = v;
    }
    0
}

/// A register whose VM slot holds a heap value (the slot, not the trace, holds it: snapshots
/// never name it, and native code changes it only through helper sites).
#[derive(Clone)]
pub(super) struct HeapReg {
    /// The array, if the register holds one: the object when the recorder knows it (an
    /// argument or an element of a known array), `None` for a call's result.
    pub(super) array: Option<Option<Rc<ArrayObj>>>,
    /// The ref of the array's address (`SLoadT`), [`NONE`] before it is loaded.
    pub(super) addr: Ref,
}

impl HeapReg {
    pub(super) fn array(obj: Option<Rc<ArrayObj>>) -> Self {
        Self {
            array: Some(obj),
            addr: NONE,
        }
    }
    pub(super) fn other() -> Self {
        Self {
            array: None,
            addr: NONE,
        }
    }
}

impl FuncRecorder<'_, '_> {
    /// The address of register `r`'s slot, taken after the last call (see `epoch`).
    pub(super) fn slot_addr(&mut self, r: usize) -> Ref {
        let mut slot = Inst::new(Op::SAddr, Ty::Int, self.epoch, NONE);
        slot.imm = r as i64;
        self.push(slot)
    }

    /// A call of [`release_frame`], `value` the register of a returned array.
    pub(super) fn release_frame(&mut self, value: Option<usize>) {
        let n = self.heap.len() as i64;
        let packed = n | (value.map_or(0, |r| r as i64 + 1) << 32);
        let frame = self.slot_addr(0);
        let packed = self.konst(Op::KInt, Ty::Int, packed);
        self.host_call(release_frame, frame, packed);
    }

    pub(super) fn is_heap(&self, r: usize) -> bool {
        matches!(self.heap.get(r), Some(Some(_)))
    }

    /// Register `r` now holds heap value `h` in its VM slot (a helper site put it there): the
    /// trace's own value of it, if any, is gone.
    pub(super) fn set_heap(&mut self, r: usize, h: HeapReg) -> Result<(), Abort> {
        *self.heap.get_mut(r).ok_or(Abort::Malformed)? = Some(h);
        *self.shadow.get_mut(r).ok_or(Abort::Malformed)? = None;
        let slot = r as u32;
        self.slots.entries.retain(|e| e.slot != slot);
        self.loaded.entries.retain(|e| e.slot != slot);
        Ok(())
    }

    /// A helper site doing `op` (number operands in argument words, see [`SiteOp`]); its
    /// status.
    pub(super) fn heap_site(&mut self, op: SiteOp, args: Vec<Ty>, heap_args: u32) -> Ref {
        self.sites.push(CallSite {
            callee: usize::MAX,
            pc: self.slots.pc as usize,
            window: 0,
            args,
            ret: Ty::Void,
            heap_args,
            ret_heap: false,
            op,
        });
        let mut call = Inst::new(Op::CallV, Ty::Int, NONE, NONE);
        call.imm = (self.sites.len() - 1) as i64;
        let status = self.push(call);
        self.epoch = status;
        status
    }

    /// A helper site that may refuse (STATUS 1): guarded to have done its work; the guard
    /// resumes at the bytecode.
    pub(super) fn checked_site(&mut self, op: SiteOp, args: Vec<Ty>, heap_args: u32) -> Ref {
        let status = self.heap_site(op, args, heap_args);
        let zero = self.konst(Op::KInt, Ty::Int, 0);
        self.guard(Op::Eq, status, zero);
        status
    }

    /// Number `v` as argument word `i` of the next helper site or direct call.
    pub(super) fn site_arg(&mut self, i: usize, v: Val) {
        let op = if v.ty == Ty::Float {
            Op::CArgF
        } else {
            Op::CArgI
        };
        let mut inst = Inst::new(op, Ty::Void, v.r, NONE);
        inst.imm = i as i64;
        self.push(inst);
    }

    /// The array register `r` (as `op`'s operand): the object if known, and the ref of its
    /// address (loaded on first use behind a guard on the slot's tag).
    pub(super) fn array_of(
        &mut self,
        r: usize,
        op: u8,
    ) -> Result<(Option<Rc<ArrayObj>>, Ref), Abort> {
        let Some(Some(HeapReg {
            array: Some(obj),
            addr,
        })) = self.heap.get(r).cloned()
        else {
            return Err(Abort::UnsupportedOperand(op));
        };
        if addr != NONE {
            return Ok((obj, addr));
        }
        let snap = self.snapshot(self.slots.clone());
        let mut i = Inst::new(Op::SLoadT, Ty::Int, NONE, NONE);
        i.imm = r as i64 | (TAG_ARRAY as i64) << 32;
        i.snap = snap;
        let addr = self.push(i);
        if let Some(Some(h)) = self.heap.get_mut(r) {
            h.addr = addr;
        }
        Ok((obj, addr))
    }

    /// `move t, a` of an array register: only as the argument move of `len(a)` (`move t, a;
    /// callb t, len, 1`), recorded as one step loading the length.
    pub(super) fn heap_move(&mut self, pc: usize, w: u32) -> Result<Next, Abort> {
        if !crate::jit::record::array::is_len_call(self.code, pc, w) {
            return Err(Abort::UnsupportedOperand(byte::Move));
        }
        let (obj, addr) = self.array_of(field_b(w), byte::Move)?;
        let mut len = Inst::new(Op::LdH, Ty::Int, addr, NONE);
        len.imm = ARRAY_LEN_OFFSET as i64;
        let v = Val {
            ty: Ty::Int,
            bits: obj.map(|o| o.len() as i64),
            r: self.push(len),
        };
        self.set(field_a(w), v)?;
        Ok(Next::Pc(pc + 2))
    }

    /// `getidx`/`getidxi` on an array the recorder knows, recorded as loop traces record it
    /// ([`crate::jit::record::array`]): bounds and element-tag guards resuming at the
    /// bytecode; a number is loaded, an array or a string is copied into the register's slot
    /// by `put_element` (reference counted, the old value dropped, as the interpreter's
    /// assignment does).
    pub(super) fn get_index(&mut self, w: u32) -> Result<(), Abort> {
        let op = w as u8;
        let unsupported = Abort::UnsupportedOperand(op);
        let (dst, arr) = (field_a(w), field_b(w));
        let (Some(obj), aref) = self.array_of(arr, op)? else {
            return Err(unsupported);
        };
        let (i, iref) = if op == byte::GetIdxI {
            let k = field_c(w) as i64;
            (k, self.konst(Op::KInt, Ty::Int, k))
        } else {
            let v = self.reg(field_c(w))?;
            (v.int().ok_or(unsupported)?, v.r)
        };
        let elem = usize::try_from(i)
            .ok()
            .and_then(|i| obj.get(i))
            .ok_or(Abort::IndexOutOfRange)?;
        let (ty, bits, load) = match &elem {
            Value::Int(x) => (Ty::Int, *x, Op::LdI),
            Value::Float(x) => (Ty::Float, x.to_bits() as i64, Op::LdF),
            v if v.tag() >= TAG_STR => {
                let addr = array::heap_element(self, aref, iref, v.tag());
                let slot = self.slot_addr(dst);
                self.host_call(array::put_element, slot, addr);
                let h = match elem {
                    Value::Array(a) => HeapReg::array(Some(a)),
                    _ => HeapReg::other(),
                };
                return self.set_heap(dst, h);
            }
            _ => return Err(unsupported),
        };
        let tag = if ty == Ty::Int { TAG_INT } else { TAG_FLOAT };
        let (r, _) = array::number_element(self, aref, iref, tag, load);
        self.set(
            dst,
            Val {
                ty,
                bits: Some(bits),
                r,
            },
        )
    }

    /// `newarr A, B, C`: a helper site building the array as the interpreter does (the VM's
    /// meter charged; over the cap the trace leaves and the interpreter raises the error).
    pub(super) fn new_array(&mut self, w: u32) -> Result<(), Abort> {
        let (dst, first, n) = (field_a(w), field_b(w), field_c(w));
        if n > MAX_ARGS {
            return Err(Abort::TooManyArgs);
        }
        let (mut args, mut heap_args) = (Vec::with_capacity(n), 0u32);
        for i in 0..n {
            if self.is_heap(first + i) {
                heap_args |= 1 << i;
                args.push(Ty::Void);
                continue;
            }
            let v = self.reg(first + i)?;
            self.site_arg(i, v);
            args.push(v.ty);
        }
        if let (Some(meter), true) = (self.callees.meter, heap_args == (1u32 << n) - 1) {
            // Every item is in its register: a direct runtime call builds the array.
            let desc = Rc::new(NewArr {
                meter: meter.clone(),
                dst,
                first,
                n,
            });
            let addr = Rc::as_ptr(&desc) as usize as i64;
            self.arrays.push(desc);
            let frame = self.slot_addr(0);
            let desc = self.konst(Op::KInt, Ty::Int, addr);
            let status = self.host_call(new_array, frame, desc);
            let zero = self.konst(Op::KInt, Ty::Int, 0);
            self.guard(Op::Eq, status, zero);
        } else {
            self.checked_site(SiteOp::NewArr { dst, first, n }, args, heap_args);
        }
        self.set_heap(dst, HeapReg::array(None))
    }
}
