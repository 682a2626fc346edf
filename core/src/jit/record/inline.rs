//! Calls followed into loop traces: the loop recorder inlines a `call` it meets, records the
//! callee's bytecode as part of the trace, and comes back at its `ret`, up to
//! [`MAX_INLINE_DEPTH`] calls inside each other. Callees are static (`call` names its function),
//! so no guard on the callee is needed.
//!
//! Glossary
//! - *inline frame*: a callee being recorded. Its register `r` is trace slot `base + r`, where
//!   `base` is the caller's base plus the call's window register: exactly where the
//!   interpreter's frame would put it. Its bytecode words are *relocated* (every register
//!   operand plus `base`) and recorded by the loop recorder's own `step`, so every bytecode the
//!   loop recorder handles is handled in callees the same way.
//! - *call region*: the stretch of the trace from the outermost followed `call` to its `ret`.
//!   The snapshot taken at that `call` is *pinned* ([`TraceBuilder::pin`](crate::jit::ir::TraceBuilder::pin)): every guard inside
//!   the region exits through it, so a failing guard anywhere inside a callee (a branch, a
//!   type, a zero divisor, the depth or fuel check) resumes the interpreter *at the call*, in
//!   the caller's frame, with the caller's registers as they were before it. The interpreter
//!   then makes the call itself. No interpreter frame is ever rebuilt from a trace.
//! - *rewind*: a callee the recorder cannot follow (a loop, recursion, a bytecode it does not
//!   record, a `retnil`, a value type it does not handle, more than [`MAX_INLINE_DEPTH`] calls
//!   deep) makes the recording drop the whole region and end the trace with an exit to the
//!   outermost call: a call that cannot be compiled costs one exit, not the loop (unless the
//!   loop does too little before the call to pay for entering a trace at all: see the
//!   recorder's *followed call*).
//!
//! Why an exit may redo a callee's first part: a region contains only bytecodes without side
//! effects (arithmetic, comparisons, moves, forward branches, calls, `ret`; the allowlist is
//! `follows`), so running its prefix twice (natively, then again in the interpreter) is not
//! observable.
//!
//! Fuel and depth, exactly as the interpreter: the interpreter charges a callee's length at
//! the `call` and the caller's rest at the `ret`; the region charges their sum with one `Fuel`
//! at its end, whose exit is the pinned snapshot (nothing charged yet: the interpreter redoes
//! the calls and runs out, if it does, where it would have). The interpreter refuses a call
//! when the frames on its stack reach `max_depth`; a trace with calls `d` deep runs only where
//! `d` more frames fit (the driver checks [`CallLog::frames`] against
//! [`LoopHook::call_room`](crate::vm::interp::LoopHook::call_room) before running any trace of
//! the function).
//!
//! A followed call does not grow the VM's register stack, as the interpreter's `call` would;
//! under a memory cap the stack's share of it may therefore differ from an interpreted run (as
//! with the function JIT's direct calls).
use alloc::vec::Vec;

use super::{Next, Num, Recorder};
use crate::jit::ir::Mark;
use crate::jit::trace::Abort;
use crate::vm::bytecode::{byte, field_a, field_b, field_c, Kind, Op, Slot};
use crate::vm::program::Program;

/// Most calls one loop trace follows inside each other.
pub const MAX_INLINE_DEPTH: usize = 6;

/// One call a trace met.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallNote {
    /// The function that makes the call.
    pub caller: usize,
    /// PC of the `call` in the caller.
    pub pc: usize,
    /// The callee.
    pub callee: usize,
    /// Calls inside each other up to and including this one (1: called by the loop's function).
    pub depth: u32,
    /// `None`: followed (inlined). `Some(why)`: not followed; the trace exits at the outermost
    /// call of its region (`pc` of the depth-1 call) and the interpreter makes it.
    pub stop: Option<Abort>,
}

/// What a recording did with the calls it met.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CallLog {
    /// Calls met, in recording order (a call inside a region that was rewound is not listed;
    /// the region's outermost call is, with the reason).
    pub notes: Vec<CallNote>,
    /// Most calls inside each other the trace performs (0: none): it may run only where that
    /// many more frames fit under the VM's depth limit.
    pub frames: u32,
}

/// An inline frame's caller, to return to.
struct Caller<'p> {
    func: usize,
    code: &'p [u32],
    base: usize,
    ret_pc: usize,
}

/// The open call region.
struct Region {
    /// PC of the outermost call (in the loop's function).
    call_pc: usize,
    /// The recording before that call.
    mark: Mark,
    shadow: Vec<Option<Num>>,
    written: usize,
    /// The pinned snapshot (resumes at the call).
    snap: u32,
    /// Fuel the interpreter would charge from the call to the current point.
    fuel: u64,
    /// Notes of the calls in the region so far.
    notes: usize,
}

/// The recorder's call state.
pub(super) struct Calls<'p> {
    /// The function being recorded now (the loop's function outside a region).
    func: usize,
    /// Trace slot of the current frame's register 0.
    base: usize,
    frames: Vec<Caller<'p>>,
    region: Option<Region>,
    pub(super) log: CallLog,
}

impl Calls<'_> {
    pub(super) fn new(func: usize) -> Self {
        Self {
            func,
            base: 0,
            frames: Vec::new(),
            region: None,
            log: CallLog::default(),
        }
    }

    /// Whether the recorder is inside a callee.
    pub(super) fn inside(&self) -> bool {
        !self.frames.is_empty()
    }
}

/// Whether the recorder follows bytecode `op` inside a callee: no side effects (see the module
/// doc), no loops (`for` steps jump backwards). `call`, `ret` and `retnil` are handled apart.
pub(super) fn follows(op: u8) -> bool {
    matches!(
        op,
        byte::Move
            | byte::LoadK
            | byte::LoadInt
            | byte::LoadBool
            | byte::Add
            | byte::Sub
            | byte::Mul
            | byte::Div
            | byte::Mod
            | byte::AddK
            | byte::SubK
            | byte::MulK
            | byte::DivK
            | byte::ModK
            | byte::MulAdd
            | byte::Neg
            | byte::Not
            | byte::Eq
            | byte::Lt
            | byte::Le
            | byte::Jmp
            | byte::Loop
            | byte::JmpIf
            | byte::JLt
            | byte::JLe
            | byte::JEq
            | byte::JLtK
            | byte::JLeK
            | byte::JGtK
            | byte::JGeK
            | byte::JEqK
    )
}

/// `w` with `base` added to every register operand; `None` if one would not fit 8 bits.
pub(super) fn relocate(w: u32, base: usize) -> Option<u32> {
    let op = Op::from_byte(w as u8)?;
    let mut fields = [field_a(w), field_b(w), field_c(w)];
    for &(slot, kind) in op.operands() {
        let i = match slot {
            Slot::A => 0,
            Slot::B => 1,
            Slot::C => 2,
            Slot::Bx | Slot::Ext => continue,
        };
        if matches!(
            kind,
            Kind::Read | Kind::Write | Kind::ReadWrite | Kind::Window
        ) {
            fields[i] += base;
            if fields[i] > 0xff {
                return None;
            }
        }
    }
    Some((w & 0xff) | (fields[0] as u32) << 8 | (fields[1] as u32) << 16 | (fields[2] as u32) << 24)
}

impl<'p> Recorder<'p> {
    /// Records the instruction `w` at `pc` of the function being recorded now: a `call` is
    /// followed, and inside a callee every instruction is checked and relocated first (see the
    /// module doc); anything else is [`Recorder::step`].
    pub(super) fn step_or_follow(&mut self, pc: usize, w: u32) -> Result<Next, Abort> {
        let op = w as u8;
        if op == byte::Call {
            return match self.enter_call(pc, w) {
                Ok(n) => Ok(n),
                Err(why) => self.give_up(pc, why),
            };
        }
        if !self.calls.inside() {
            return self.step(pc, w);
        }
        let r = match op {
            byte::Ret => self.leave_call(field_a(w)),
            byte::RetNil => Err(Abort::UnsupportedType),
            _ if follows(op) => match relocate(w, self.calls.base) {
                Some(w) => self.step(pc, w),
                None => Err(Abort::WideFrames),
            },
            other => Err(Abort::Unsupported(other)),
        };
        match r {
            Ok(n) => Ok(n),
            Err(why) => self.give_up(pc, why),
        }
    }

    /// A jump from `pc` to `target` inside a callee: forward only (a backward jump is a loop).
    pub(super) fn callee_jump(&self, pc: usize, target: usize) -> Result<Next, Abort> {
        if target > pc {
            Ok(Next::Pc(target))
        } else {
            Err(Abort::FuncLoop)
        }
    }

    /// Follows `call A, C, f` at `pc`.
    fn enter_call(&mut self, pc: usize, w: u32) -> Result<Next, Abort> {
        let (window, argc, callee) = (field_a(w), field_c(w), self.ext(pc)?);
        let prog: &'p Program = self.prog;
        let f = prog.funcs.get(callee).ok_or(Abort::Malformed)?;
        if self.calls.frames.len() >= MAX_INLINE_DEPTH {
            return Err(Abort::InlineDepth);
        }
        if callee == self.calls.func || self.calls.frames.iter().any(|fr| fr.func == callee) {
            return Err(Abort::Recursive);
        }
        let base = self.calls.base + window;
        let nregs = f.nregs as usize;
        // Relocated register operands must fit their 8 bits.
        if base + nregs > 256 {
            return Err(Abort::WideFrames);
        }
        if self.calls.region.is_none() {
            let mark = self.tb.mark();
            self.tb.at_pc(pc as u32);
            let snap = self.tb.snapshot();
            self.tb.pin(Some(snap));
            self.calls.region = Some(Region {
                call_pc: pc,
                mark,
                shadow: self.shadow.clone(),
                written: self.written.len(),
                snap,
                fuel: 0,
                notes: self.calls.log.notes.len(),
            });
        }
        if let Some(r) = self.calls.region.as_mut() {
            r.fuel += f.code.len() as u64;
        }
        self.calls.frames.push(Caller {
            func: self.calls.func,
            code: self.code,
            base: self.calls.base,
            ret_pc: pc + 2,
        });
        let depth = self.calls.frames.len() as u32;
        self.calls.log.notes.push(CallNote {
            caller: self.calls.func,
            pc,
            callee,
            depth,
            stop: None,
        });
        self.calls.log.frames = self.calls.log.frames.max(depth);
        self.calls.func = callee;
        self.calls.base = base;
        self.code = &f.code;
        // The callee's registers past its arguments are its own: nothing is known of them.
        if self.shadow.len() < base + nregs {
            self.shadow.resize(base + nregs, None);
        }
        for s in &mut self.shadow[base + argc..] {
            *s = None;
        }
        // Nor is any of them an array register (array tracking is by absolute register).
        for r in base + argc..base + nregs {
            self.forget_array(r);
        }
        self.tb.forget_from((base + argc) as u32);
        Ok(Next::Pc(0))
    }

    /// `ret r` inside a callee: the value goes to the caller's window register; the caller's
    /// registers above it are dead (the verifier proves they are written before being read).
    /// At the end of the region, its fuel is charged and the pin released.
    fn leave_call(&mut self, r: usize) -> Result<Next, Abort> {
        let v = self.reg(self.calls.base + r)?;
        let at = self.calls.base;
        let caller = self.calls.frames.pop().ok_or(Abort::Malformed)?;
        self.calls.func = caller.func;
        self.calls.base = caller.base;
        self.code = caller.code;
        for s in self.shadow.iter_mut().skip(at + 1) {
            *s = None;
        }
        self.tb.forget_from((at + 1) as u32);
        self.set(at, v)?;
        let rest = self.code.len().saturating_sub(caller.ret_pc) as u64;
        if let Some(region) = self.calls.region.as_mut() {
            region.fuel += rest;
        }
        if !self.calls.inside() {
            let region = self.calls.region.take().ok_or(Abort::Malformed)?;
            self.tb.pin(None);
            self.tb.at_pc(caller.ret_pc as u32);
            self.tb.fuel(region.fuel as i64, region.snap);
        }
        Ok(Next::Pc(caller.ret_pc))
    }

    /// The call at `pc` of the function being recorded, or an instruction inside a
    /// callee, cannot be followed (`why`): the recording drops the open region, if any, and
    /// ends with an exit to its outermost call. At the start of the recording that would be an
    /// empty trace: an abort.
    fn give_up(&mut self, pc: usize, why: Abort) -> Result<Next, Abort> {
        let (call_pc, notes) = match self.calls.region.take() {
            Some(r) => {
                self.tb.rewind(r.mark);
                self.shadow = r.shadow;
                self.written.truncate(r.written);
                (r.call_pc, r.notes)
            }
            None => (pc, self.calls.log.notes.len()),
        };
        if let Some(root) = self.calls.frames.first() {
            self.code = root.code;
            self.calls.func = root.func;
        }
        self.calls.frames.clear();
        self.calls.base = 0;
        self.calls.log.notes.truncate(notes);
        let callee = self.code.get(call_pc + 1).map_or(0, |&f| f as usize);
        self.calls.log.notes.push(CallNote {
            caller: self.calls.func,
            pc: call_pc,
            callee,
            depth: 1,
            stop: Some(why),
        });
        self.calls.log.frames = self
            .calls
            .log
            .notes
            .iter()
            .filter(|n| n.stop.is_none())
            .map(|n| n.depth)
            .max()
            .unwrap_or(0);
        if call_pc == self.header {
            return Err(Abort::CallAtStart);
        }
        Ok(Next::StopAt(call_pc))
    }
}
