//! The function recorder: turns one path through a hot function, from its entry (or from a
//! side exit) to a `ret`, into a linear IR trace (a *function trace*).
//!
//! Glossary
//! - *shadow registers*: as in the loop recorder ([`crate::jit::record`]), the recorder replays
//!   the function on a copy of its registers, without side effects, so it knows the direction
//!   of every branch. A register written by a call holds a value of a known type but an
//!   *unknown* payload (the recorder does not run callees).
//! - *call site*: a `call` on the path, recorded as `CArgI`/`CArgF` per argument, the call
//!   (`CallD` to a compiled callee or to the function itself from its entry trace, else
//!   `CallV` through the VM), a guard `status == 0` and `CResI`/`CResF` (the result). Its
//!   [`CallSite`] says which function, where the callee's frame starts, the argument types and
//!   the result type the trace expects.
//! - *expected result type*: the return type of the callee's entry trace ([`Callees`]), else
//!   int; a call returning another type leaves the trace right after the call, with the value
//!   in the caller's register.
//! - *shared arms*: moves, constants, arithmetic, negation, `jmp`, `loop` and the
//!   compare-and-branches are decoded by `recorder.rs`, as for the loop recorder;
//!   this recorder supplies its values (`Val`, payload possibly unknown), its arithmetic and
//!   its branch guards (a branch on a call result falls through).
//!
//! Invariants
//! - guards resume in this function's frame: branch guards at the branch itself, a call's
//!   status guard right after the call with every register below the call window restored and
//!   the callee's result already in the window's first register (the snapshot does not name
//!   registers at or above the window, which the callee owns);
//! - the trace ends in `RetI`/`RetF`/`RetN`, which hands the value to the caller without a
//!   snapshot (see [`crate::jit::callframe`]); an entry trace whose recursive calls expected
//!   another type than it returns is refused (`TypeUnstable`);
//! - numbers in the trace's own values (int `/` and `%` behind a non-zero-divisor guard, as
//!   host calls after the two helpers); arrays and other heap values stay in their VM
//!   registers. `len` and `getidx` on an array the recorder knows are recorded by the loop
//!   recorder's element code (`record_array.rs`: native loads behind bounds and
//!   tag guards, `put_element` copying a heap element into its register); the drop of an
//!   overwritten heap register and the frame's release at `ret` are runtime calls
//!   (`drop_slot`, `release_frame`); `newarr` (which needs the VM's meter) is a helper site
//!   ([`SiteOp`]) that does what the interpreter does or refuses (the trace then leaves at the
//!   bytecode);
//! - a branch on a call result (no payload known) is recorded as falling through, behind a
//!   guard;
//! - a backward jump (a loop, also a backward branch on a call result), any other bytecode, a
//!   call with more than [`MAX_ARGS`] arguments, or more than [`MAX_RECORD_OPS`] bytecodes
//!   abort with a reason from [`Abort`].
mod heap;

use alloc::rc::Rc;
use alloc::vec::Vec;

use crate::jit::callframe::{pack_direct, MAX_ARGS};
use crate::jit::ir::{HostFn, Inst, Op, Ref, Trace, Ty, NONE};
use crate::jit::record::{array, MAX_RECORD_OPS};
use crate::jit::recorder::{
    float_op, int_div_op, int_op, is_int_div, kept_outcome_guard, record_shared, BytecodeRecorder,
};
use crate::jit::snapshot::Snapshot;
use crate::jit::trace::Abort;
use crate::vm::bytecode::{byte, field_a, field_b, field_c};
use crate::vm::program::{Const, Program};
use crate::vm::value::{Meter, Value, TAG_STR};
pub use heap::NewArr;
use heap::{drop_slot, HeapReg};

/// What a site of the helper (host function 0) does: a call, or a bytecode on heap values
/// that native code leaves to Rust. A heap-value site answers STATUS 0 when it did what the
/// interpreter does, else 1 having changed nothing (the trace then leaves at the bytecode,
/// and the interpreter redoes it, raising its error if there is one).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SiteOp {
    /// A `call` of [`CallSite::callee`].
    Call,
    /// `dst = [first, .., first + n - 1]`: heap items ([`CallSite::heap_args`]) from their
    /// registers, numbers from the argument words.
    NewArr {
        /// Destination register.
        dst: usize,
        /// First item register.
        first: usize,
        /// Item count.
        n: usize,
    },
}

/// One `call` on the recorded path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallSite {
    /// The callee's function index.
    pub callee: usize,
    /// PC of the `call` instruction.
    pub pc: usize,
    /// The caller register where the callee's frame starts.
    pub window: usize,
    /// Argument types, in order.
    pub args: Vec<Ty>,
    /// The result type the trace continues with.
    pub ret: Ty,
    /// Arguments that are heap values: they stay in their registers (the callee's), the
    /// argument words do not carry them.
    pub heap_args: u32,
    /// The result is an array, left in the window's first register (`ret` is `Void`).
    pub ret_heap: bool,
    /// What the site does.
    pub op: SiteOp,
}

/// A recorded function trace.
#[derive(Clone, Debug)]
pub struct FuncTrace {
    /// The IR (no LOOP; ends in `RetI`/`RetF`/`RetN`); `calls` is empty, the driver adds the
    /// helpers.
    pub trace: Trace,
    /// Call sites, indexed by `CallV`'s and `CallD`'s `imm`.
    pub sites: Vec<CallSite>,
    /// Type of the returned value (`Void` for nil or an array).
    pub ret_ty: Ty,
    /// The trace returns an array (in slot 0, see `release_frame`).
    pub ret_heap: bool,
    /// The native `newarr`s' descriptions (their addresses are in the IR).
    pub arrays: Vec<Rc<NewArr>>,
}

/// What the recorder knows about callees.
pub struct Callees<'a> {
    /// For a compiled function: its return type, whether it returns an array, and the
    /// address of its entry trace's `FuncCode` (the target of direct calls).
    pub compiled: &'a dyn Fn(usize) -> Option<(Ty, bool, i64)>,
    /// Whether this recording is `func`'s entry trace: its calls of `func` call itself
    /// directly (expecting int, or an array if the first recording returned one, which its
    /// own return must then be).
    pub is_entry: bool,
    /// Host functions 0 and 1 of the trace: the call helper and the exit helper (see
    /// [`crate::jit::callframe`]).
    pub helpers: [HostFn; 2],
    /// The VM's memory meter, if known: `newarr` of heap items is then a direct runtime call.
    pub meter: Option<&'a Meter>,
}

/// A shadow register: type, the payload when known, and its IR ref.
#[derive(Clone, Copy, Debug)]
struct Val {
    ty: Ty,
    /// Int value or float bits; `None` for a call result.
    bits: Option<i64>,
    r: Ref,
}

impl Val {
    fn int(&self) -> Option<i64> {
        self.bits.filter(|_| self.ty == Ty::Int)
    }
    fn float(&self) -> Option<f64> {
        match self.ty {
            Ty::Float => self.bits.map(|b| f64::from_bits(b as u64)),
            _ => self.bits.map(|i| i as f64),
        }
    }
}

/// Records the path `func` takes from `start_pc` to its `ret`, with the frame's registers
/// holding `regs` there (the arguments at entry, the whole frame for a side trace).
pub fn record_func(
    prog: &Program,
    func: usize,
    start_pc: usize,
    regs: &[Value],
    callees: &Callees<'_>,
) -> Result<FuncTrace, Abort> {
    match record_expecting(prog, func, start_pc, regs, callees, (Ty::Int, false)) {
        // The entry trace's own calls expected an int; record again expecting what it returns.
        Err((Abort::TypeUnstable, Some(ret))) if callees.is_entry && ret != (Ty::Int, false) => {
            record_expecting(prog, func, start_pc, regs, callees, ret).map_err(|(a, _)| a)
        }
        r => r.map_err(|(a, _)| a),
    }
}

/// [`record_func`] with the entry trace's recursive calls expecting `self_ret` (type, array);
/// an error carries the return the path reached, if any.
fn record_expecting(
    prog: &Program,
    func: usize,
    start_pc: usize,
    regs: &[Value],
    callees: &Callees<'_>,
    self_ret: (Ty, bool),
) -> Result<FuncTrace, (Abort, Option<(Ty, bool)>)> {
    let f = prog.funcs.get(func).ok_or((Abort::Malformed, None))?;
    let mut rec = FuncRecorder {
        prog,
        func,
        code: &f.code,
        shadow: alloc::vec![None; f.nregs as usize],
        trace: Trace {
            calls: callees.helpers.to_vec(),
            ..Trace::default()
        },
        slots: Snapshot::default(),
        loaded: Snapshot::default(),
        sites: Vec::new(),
        callees,
        heap: alloc::vec![None; f.nregs as usize],
        self_ret,
        reached: None,
        epoch: NONE,
        arrays: Vec::new(),
    };
    for (i, v) in regs.iter().enumerate() {
        let shadow = match v {
            Value::Int(x) => Some((Ty::Int, Some(*x))),
            Value::Float(x) => Some((Ty::Float, Some(x.to_bits() as i64))),
            // Registers of other types abort the recording if the path reads them as numbers.
            _ => None,
        };
        let heap = match v {
            Value::Array(a) => Some(HeapReg::array(Some(Rc::clone(a)))),
            v if v.tag() >= TAG_STR => Some(HeapReg::other()),
            _ => None,
        };
        let malformed = (Abort::Malformed, None);
        *rec.shadow.get_mut(i).ok_or(malformed)? = shadow;
        *rec.heap.get_mut(i).ok_or(malformed)? = heap;
    }
    let (ret_ty, ret_heap) = match rec.run(start_pc) {
        Ok(r) => r,
        Err(a) => return Err((a, rec.reached)),
    };
    rec.trace.validate().map_err(|_| (Abort::Malformed, None))?;
    Ok(FuncTrace {
        trace: rec.trace,
        sites: rec.sites,
        ret_ty,
        ret_heap,
        arrays: rec.arrays,
    })
}

struct FuncRecorder<'p, 'c> {
    prog: &'p Program,
    func: usize,
    code: &'p [u32],
    /// Per register: type and known payload (`None` payload: a call result); `None`: not a
    /// number the trace can use.
    shadow: Vec<Option<(Ty, Option<i64>)>>,
    trace: Trace,
    /// Registers the path wrote: the entries of every snapshot taken now.
    slots: Snapshot,
    /// Registers read from memory (`SLoad`) and not written since.
    loaded: Snapshot,
    sites: Vec<CallSite>,
    callees: &'c Callees<'c>,
    /// Per register: the heap value its VM slot holds, if any.
    heap: Vec<Option<HeapReg>>,
    /// What this function's own calls expect it to return (entry traces).
    self_ret: (Ty, bool),
    /// The return the path reached (type, array), for a second recording.
    reached: Option<(Ty, bool)>,
    /// The status of the last call recorded (after which the register stack may have moved):
    /// the operand that keeps slot addresses (`SAddr`) taken after it from being merged with
    /// ones taken before.
    epoch: Ref,
    /// Native `newarr`s (see [`NewArr`]).
    arrays: Vec<Rc<NewArr>>,
}

impl array::ArrayIr for FuncRecorder<'_, '_> {
    fn kint(&mut self, v: i64) -> Ref {
        self.konst(Op::KInt, Ty::Int, v)
    }
    fn op(&mut self, op: Op, a: Ref, b: Ref) -> Ref {
        FuncRecorder::op(self, op, a, b)
    }
    fn guard(&mut self, op: Op, a: Ref, b: Ref) {
        FuncRecorder::guard(self, op, a, b)
    }
    fn load(&mut self, op: Op, base: Ref, disp: i64) -> Ref {
        let mut i = Inst::new(op, op.result(), base, NONE);
        i.imm = disp;
        self.push(i)
    }
}

impl BytecodeRecorder for FuncRecorder<'_, '_> {
    type Val = Val;
    type Next = Next;

    fn read_reg(&mut self, r: usize) -> Result<Val, Abort> {
        self.reg(r)
    }
    fn write_reg(&mut self, r: usize, v: Val) -> Result<(), Abort> {
        self.set(r, v)
    }
    fn load_const(&mut self, k: usize) -> Result<Val, Abort> {
        self.kval(k)
    }
    fn int_const(&mut self, i: i64) -> Val {
        Val {
            ty: Ty::Int,
            bits: Some(i),
            r: self.konst(Op::KInt, Ty::Int, i),
        }
    }
    fn arith(&mut self, opcode: u8, x: Val, y: Val) -> Result<Val, Abort> {
        FuncRecorder::arith(self, opcode, x, y)
    }
    fn negate(&mut self, x: Val) -> Result<Val, Abort> {
        if x.ty == Ty::Int {
            let zero = self.konst(Op::KInt, Ty::Int, 0);
            Ok(Val {
                ty: Ty::Int,
                bits: x.int().map(i64::wrapping_neg),
                r: self.op(Op::SubI, zero, x.r),
            })
        } else {
            let m1 = self.konst(Op::KFloat, Ty::Float, (-1.0f64).to_bits() as i64);
            Ok(Val {
                ty: Ty::Float,
                bits: x.float().map(|f| (-f).to_bits() as i64),
                r: self.op(Op::MulF, x.r, m1),
            })
        }
    }
    fn ext_word(&self, pc: usize) -> Result<usize, Abort> {
        self.ext(pc)
    }
    fn jump_to(&mut self, _pc: usize, target: usize) -> Result<Next, Abort> {
        Ok(Next::Pc(target))
    }
    fn compare_branch(
        &mut self,
        pc: usize,
        w: u32,
        cmp: Op,
        x: Val,
        y: Val,
    ) -> Result<Next, Abort> {
        self.branch(pc, w, cmp, x, y)
    }
    fn go_to(&self, pc: usize) -> Next {
        Next::Pc(pc)
    }
}

/// Where the recording goes next.
enum Next {
    Pc(usize),
    Ret(Option<usize>),
}

impl FuncRecorder<'_, '_> {
    fn run(&mut self, start_pc: usize) -> Result<(Ty, bool), Abort> {
        let mut pc = start_pc;
        for _ in 0..MAX_RECORD_OPS {
            self.slots.pc = pc as u32;
            let w = *self.code.get(pc).ok_or(Abort::Malformed)?;
            match self.step(pc, w)? {
                Next::Pc(next) if next <= pc => return Err(Abort::FuncLoop),
                Next::Pc(next) => pc = next,
                Next::Ret(reg) => return self.ret(reg),
            }
        }
        Err(Abort::TooLong)
    }

    // ---- IR ----------------------------------------------------------------------------------

    fn push(&mut self, inst: Inst) -> Ref {
        self.trace.insts.push(inst);
        (self.trace.insts.len() - 1) as Ref
    }

    fn snapshot(&mut self, s: Snapshot) -> u32 {
        self.trace.snaps.push(s);
        (self.trace.snaps.len() - 1) as u32
    }

    fn konst(&mut self, op: Op, ty: Ty, bits: i64) -> Ref {
        let mut i = Inst::new(op, ty, NONE, NONE);
        i.imm = bits;
        self.push(i)
    }

    fn op(&mut self, op: Op, x: Ref, y: Ref) -> Ref {
        self.push(Inst::new(op, op.result(), x, y))
    }

    fn guard(&mut self, op: Op, x: Ref, y: Ref) {
        let snap = self.snapshot(self.slots.clone());
        let mut i = Inst::new(op, Ty::Void, x, y);
        i.snap = snap;
        self.push(i);
    }

    // ---- registers ---------------------------------------------------------------------------

    fn reg(&mut self, r: usize) -> Result<Val, Abort> {
        let (ty, bits) = self
            .shadow
            .get(r)
            .copied()
            .flatten()
            .ok_or(Abort::UnsupportedType)?;
        let slot = r as u32;
        let r = match self.slots.get(slot).or_else(|| self.loaded.get(slot)) {
            Some(r) => r,
            None => {
                let snap = self.snapshot(self.slots.clone());
                let mut i = Inst::new(Op::SLoad, ty, NONE, NONE);
                i.imm = slot as i64;
                i.snap = snap;
                let r = self.push(i);
                self.loaded.set(slot, r);
                r
            }
        };
        Ok(Val { ty, bits, r })
    }

    fn set(&mut self, r: usize, v: Val) -> Result<(), Abort> {
        if self.is_heap(r) {
            // The interpreter drops the heap value the register held right here.
            let slot = self.slot_addr(r);
            let zero = self.konst(Op::KInt, Ty::Int, 0);
            self.host_call(drop_slot, slot, zero);
            self.heap[r] = None;
        }
        *self.shadow.get_mut(r).ok_or(Abort::Malformed)? = Some((v.ty, v.bits));
        self.slots.set(r as u32, v.r);
        Ok(())
    }

    fn kval(&mut self, k: usize) -> Result<Val, Abort> {
        match self.prog.consts.get(k) {
            Some(Const::Int(i)) => Ok(Val {
                ty: Ty::Int,
                bits: Some(*i),
                r: self.konst(Op::KInt, Ty::Int, *i),
            }),
            Some(Const::Float(f)) => {
                let bits = f.to_bits() as i64;
                Ok(Val {
                    ty: Ty::Float,
                    bits: Some(bits),
                    r: self.konst(Op::KFloat, Ty::Float, bits),
                })
            }
            _ => Err(Abort::UnsupportedType),
        }
    }

    fn float_of(&mut self, v: Val) -> Val {
        if v.ty == Ty::Float {
            return v;
        }
        Val {
            ty: Ty::Float,
            bits: v.int().map(|i| (i as f64).to_bits() as i64),
            r: self.op(Op::ToFloat, v.r, NONE),
        }
    }

    // ---- bytecode ----------------------------------------------------------------------------

    fn step(&mut self, pc: usize, w: u32) -> Result<Next, Abort> {
        let op = w as u8;
        match op {
            byte::Move if self.is_heap(field_b(w)) => return self.heap_move(pc, w),
            byte::GetIdx | byte::GetIdxI => self.get_index(w)?,
            byte::NewArr => self.new_array(w)?,
            byte::Call => return self.call(pc, w),
            byte::Ret => return Ok(Next::Ret(Some(field_a(w)))),
            byte::RetNil => return Ok(Next::Ret(None)),
            // A counted loop's step-and-branch: the loop JIT's business.
            byte::ForLt
            | byte::ForLtK
            | byte::ForLe
            | byte::ForLeK
            | byte::ForLtR
            | byte::ForLeR => return Err(Abort::FuncLoop),
            _ => return record_shared(self, pc, w)?.ok_or(Abort::Unsupported(op)),
        }
        Ok(Next::Pc(pc + 1))
    }

    fn ext(&self, pc: usize) -> Result<usize, Abort> {
        self.code
            .get(pc + 1)
            .map(|&x| x as usize)
            .ok_or(Abort::Malformed)
    }

    /// `x op y` typed as the interpreter types it (int with int wraps, else float).
    fn arith(&mut self, opcode: u8, x: Val, y: Val) -> Result<Val, Abort> {
        if x.ty == Ty::Int && y.ty == Ty::Int {
            if is_int_div(opcode) {
                return self.int_div(opcode, x, y);
            }
            let (op, f) = int_op(opcode).ok_or(Abort::Unsupported(opcode))?;
            let bits = x.bits.zip(y.bits).map(|(p, q)| f(p, q));
            return Ok(Val {
                ty: Ty::Int,
                bits,
                r: self.op(op, x.r, y.r),
            });
        }
        let (x, y) = (self.float_of(x), self.float_of(y));
        let (op, f) = float_op(opcode).ok_or(Abort::Unsupported(opcode))?;
        let bits = x
            .float()
            .zip(y.float())
            .map(|(p, q)| f(p, q).to_bits() as i64);
        Ok(Val {
            ty: Ty::Float,
            bits,
            r: self.op(op, x.r, y.r),
        })
    }

    /// Int `/` or `%`: a guard leaves before a zero divisor (the interpreter then raises the
    /// error at this pc); the operation is a host call with the interpreter's semantics.
    fn int_div(&mut self, opcode: u8, x: Val, y: Val) -> Result<Val, Abort> {
        if y.int() == Some(0) {
            return Err(Abort::DivisionByZero);
        }
        let zero = self.konst(Op::KInt, Ty::Int, 0);
        self.guard(Op::Ne, y.r, zero);
        let (f, g) = int_div_op(opcode);
        Ok(Val {
            ty: Ty::Int,
            bits: x.bits.zip(y.bits).map(|(p, q)| g(p, q)),
            r: self.host_call(f, x.r, y.r),
        })
    }

    /// `f(a, b)`, a host function of the trace (listed once).
    fn host_call(&mut self, f: HostFn, a: Ref, b: Ref) -> Ref {
        let index = match self
            .trace
            .calls
            .iter()
            .position(|&h| h as usize == f as usize)
        {
            Some(i) => i,
            None => {
                self.trace.calls.push(f);
                self.trace.calls.len() - 1
            }
        };
        let mut call = Inst::new(Op::Call, Ty::Int, a, b);
        call.imm = index as i64;
        self.push(call)
    }

    /// A compare-and-branch, guarded to go the way it goes now; the guard resumes at the
    /// branch, which the interpreter then evaluates itself.
    fn branch(&mut self, pc: usize, w: u32, cmp: Op, x: Val, y: Val) -> Result<Next, Abort> {
        if cmp == Op::Eq && x.ty != y.ty {
            return Err(Abort::UnsupportedType);
        }
        let (x, y) = if x.ty == Ty::Int && y.ty == Ty::Int {
            (x, y)
        } else {
            (self.float_of(x), self.float_of(y))
        };
        let ord = match (x.ty, x.int().zip(y.int())) {
            (Ty::Int, Some((p, q))) => Some(Some(p.cmp(&q))),
            (Ty::Int, None) => None,
            _ => x.float().zip(y.float()).map(|(p, q)| p.partial_cmp(&q)),
        };
        let (target, jump_if) = (self.ext(pc)?, field_c(w) != 0);
        let holds = match ord {
            Some(ord) => cmp.compare_holds(ord),
            // A call result (the recorder does not run callees): the trace guesses the fall
            // through, and the guard's side trace takes the other way when it is hot. A
            // backward jump is a loop, which function traces do not hold.
            None if target > pc => !jump_if,
            None => return Err(Abort::CallResultBranch),
        };
        self.guard(kept_outcome_guard(cmp, holds), x.r, y.r);
        if holds == jump_if {
            Ok(Next::Pc(target))
        } else {
            Ok(Next::Pc(pc + 2))
        }
    }

    /// `call A, C, f`: arguments into the call area, the call, the status guard (resuming
    /// after the call) and the result into register A.
    fn call(&mut self, pc: usize, w: u32) -> Result<Next, Abort> {
        let (window, argc, callee) = (field_a(w), field_c(w), self.ext(pc)?);
        if argc > MAX_ARGS {
            return Err(Abort::TooManyArgs);
        }
        let mut args = Vec::with_capacity(argc);
        let mut heap_args = 0u32;
        // Heap values above the arguments would be the callee's registers, which the
        // interpreter releases when the callee returns.
        if (window + argc..self.heap.len()).any(|r| self.is_heap(r)) {
            return Err(Abort::UnsupportedOperand(byte::Call));
        }
        for i in 0..argc {
            if self.is_heap(window + i) {
                // Stays in its register, which becomes the callee's.
                heap_args |= 1 << i;
                args.push(Ty::Void);
                continue;
            }
            let v = self.reg(window + i)?;
            self.site_arg(i, v);
            args.push(v.ty);
        }
        let target = if callee == self.func && self.callees.is_entry {
            Some((self.self_ret.0, self.self_ret.1, 0))
        } else {
            (self.callees.compiled)(callee)
        };
        let (ret, ret_heap) = target.map_or((Ty::Int, false), |(ty, heap, _)| (ty, heap));
        let floats = args
            .iter()
            .enumerate()
            .filter(|(_, t)| **t == Ty::Float)
            .fold(0u32, |m, (i, _)| m | 1 << i);
        self.sites.push(CallSite {
            callee,
            pc,
            window,
            args,
            ret,
            heap_args,
            ret_heap,
            op: SiteOp::Call,
        });
        let site = (self.sites.len() - 1) as i64;
        let mut call = match target {
            Some((_, _, meta)) => {
                let meta = self.konst(Op::KInt, Ty::Int, meta);
                let fuel = self.call_fuel(callee, pc)?;
                let packed = self.konst(Op::KInt, Ty::Int, pack_direct(window, argc, floats, fuel));
                Inst::new(Op::CallD, Ty::Int, meta, packed)
            }
            None => Inst::new(Op::CallV, Ty::Int, NONE, NONE),
        };
        call.imm = site;
        if call.op == Op::CallD {
            // Direct calls leave these argument registers alone.
            call.imm |= (heap_args as i64) << 32;
        }
        let status = self.push(call);
        self.epoch = status;
        // The callee owns the window and everything above it from now on.
        self.slots.entries.retain(|e| (e.slot as usize) < window);
        self.loaded.entries.retain(|e| (e.slot as usize) < window);
        for s in self.shadow.iter_mut().skip(window) {
            *s = None;
        }
        for h in self.heap.iter_mut().skip(window) {
            *h = None;
        }
        self.slots.pc = (pc + 2) as u32;
        let zero = self.konst(Op::KInt, Ty::Int, 0);
        self.guard(Op::Eq, status, zero);
        if ret_heap {
            // The callee left its array in the window's first register.
            *self.heap.get_mut(window).ok_or(Abort::Malformed)? = Some(HeapReg::array(None));
            return Ok(Next::Pc(pc + 2));
        }
        let res = if ret == Ty::Float {
            Op::CResF
        } else {
            Op::CResI
        };
        let r = self.op(res, status, NONE);
        self.set(
            window,
            Val {
                ty: ret,
                bits: None,
                r,
            },
        )?;
        Ok(Next::Pc(pc + 2))
    }

    /// Fuel the interpreter charges for the `call` at `pc`: the callee's length at the call,
    /// and the rest of this function after the call when it returns.
    fn call_fuel(&self, callee: usize, pc: usize) -> Result<(u16, u16), Abort> {
        let callee = self.prog.funcs.get(callee).ok_or(Abort::Malformed)?;
        let rest = self.code.len().saturating_sub(pc + 2);
        let fit = |n: usize| u16::try_from(n).map_err(|_| Abort::TooLong);
        Ok((fit(callee.code.len())?, fit(rest)?))
    }

    /// `ret`: the trace ends in `RetI`/`RetF`/`RetN`.
    fn ret(&mut self, reg: Option<usize>) -> Result<(Ty, bool), Abort> {
        if let Some(r) = reg.filter(|&r| self.is_heap(r)) {
            if !matches!(self.heap.get(r), Some(Some(HeapReg { array: Some(_), .. }))) {
                return Err(Abort::UnsupportedOperand(byte::Ret));
            }
            self.check_self_ret((Ty::Void, true))?;
            self.release_frame(Some(r));
            self.push(Inst::new(Op::RetN, Ty::Void, NONE, NONE));
            return Ok((Ty::Void, true));
        }
        let (op, v) = match reg {
            Some(r) => {
                let v = self.reg(r)?;
                (
                    if v.ty == Ty::Float {
                        Op::RetF
                    } else {
                        Op::RetI
                    },
                    Some(v),
                )
            }
            None => (Op::RetN, None),
        };
        let ty = v.map_or(Ty::Void, |v| v.ty);
        self.check_self_ret((ty, false))?;
        if self.heap.iter().any(Option::is_some) {
            // The interpreter's `ret` releases the frame's heap values.
            self.release_frame(None);
        }
        self.push(Inst::new(op, Ty::Void, v.map_or(NONE, |v| v.r), NONE));
        Ok((ty, false))
    }

    /// Recursive calls were recorded expecting a return (type, array); the function must
    /// return it.
    fn check_self_ret(&mut self, ret: (Ty, bool)) -> Result<(), Abort> {
        self.reached = Some(ret);
        let recursive = |s: &CallSite| s.op == SiteOp::Call && s.callee == self.func;
        if self
            .sites
            .iter()
            .any(|s| recursive(s) && (s.ret, s.ret_heap) != ret)
        {
            return Err(Abort::TypeUnstable);
        }
        Ok(())
    }
}
