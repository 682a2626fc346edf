//! The recorder: turns one iteration of a hot VM loop into a recorded IR trace.
//!
//! Glossary
//! - *shadow registers*: the recorder replays the iteration itself, on a copy of the frame's
//!   numbers, so it knows every branch direction without the interpreter's help and without
//!   side effects on the VM. Each register maps to an IR ref through the [`TraceBuilder`]'s slot
//!   map (VM register `r` is JIT slot `r`).
//! - *guard resume pc*: a compare-and-branch's guard is exact (it fails exactly when the
//!   comparison comes out the other way; a float "not less" that NaN passes is `FNLt`/`FNLe`),
//!   so a float comparison's exit resumes where the other way goes, when that is forward and
//!   outside followed calls and the compared registers held numbers when the recording
//!   started; otherwise at the branch itself (the interpreter re-evaluates it). `jmpif`
//!   guards resume at the `jmpif`. `forlt`/`forltk` update their counter first; their guard
//!   is exact and resumes after the instruction.
//!
//! - *root* / *side* recording: a root recording starts at a hot loop header; a side recording
//!   starts at the resume pc of a hot side exit, with the registers the exit restored.
//! - *link*: reaching (by a jump or by falling through, usually through the header's `loop`
//!   marker, which records nothing) a loop header that has an installed trace ends the
//!   recording with an `Exit` to that header; the driver enters that trace next. An outer
//!   loop's trace thus links into its inner loop's trace at the inner loop's entry, and the
//!   inner trace's exit (a side trace) records the rest of the outer iteration and links back.
//!   A side recording of an inner loop's exit goes on through the outer header when the outer
//!   loop's trace runs straight back into that inner loop's trace, and links there itself
//!   ([`Start::passes`]); if what follows cannot be recorded, it records again and links at
//!   the header.
//! - *fuel*: the interpreter charges `pc + 2 - target` fuel at a taken backward jump at `pc`;
//!   the recorder emits a `Fuel` instruction of that cost for every backward jump it records
//!   (back to the start, or to a linked header), whose snapshot resumes at the jump itself with
//!   the state before it: when the budget would run out, the interpreter re-executes the jump
//!   and raises `OutOfFuel` exactly as without the JIT. No exit resumes at a jump's target as
//!   if the jump had been taken, so no jump goes uncharged. A `for` step that jumps back (outside
//!   followed calls) charges before its add instead, and its loop guard is a refunding guard
//!   ([`crate::jit::ir`]): when it fails the jump was not taken, and the exit gives the charge
//!   back. So the exits after the step name only the stepped counter, and the loop's back edge
//!   can be the guard's own branch.
//!
//! - *host stop*: a host call (`callh`), or a buffer access the recorder cannot record, ends
//!   the recording with an `Exit` to it, like a link; the driver performs it and runs on
//!   natively after it. Buffer accesses (`bget`, `bset`, `blen`) on a filled view are runtime
//!   calls ([`crate::jit::hostbuf`]) whose failure (-1) is guarded: the guard exits to the
//!   instruction and the interpreter reports the error there.
//!
//! - *followed call*: a `call` is recorded into the trace, the callee's bytecode included, up
//!   to its `ret` ([`inline`]); every exit inside a callee resumes the interpreter at the call.
//!   A callee the recorder cannot follow ends the trace with an exit to the call instead: a
//!   *call stop*. The driver hands the call to the VM, which makes it as the interpreter's
//!   `call` would (the callee native or interpreted) and asks for native code after it
//!   ([`crate::vm::interp::Reply::Call`]); a side trace from the instruction after the call
//!   records the rest of the iteration, so the loop stays native around the call.
//!
//! - *shared arms*: moves, constants, arithmetic, negation, `jmp`, `loop` and the
//!   compare-and-branches are decoded by `recorder.rs`, which both recorders share;
//!   this recorder supplies its values (`Val`), its arithmetic and where a jump leads
//!   (`take_jump`: back edges, fuel, links).
//!
//! Invariants
//! - recording starts with the registers the interpreter holds at the start pc and ends at the
//!   first jump back to it (a looping trace) or at a linked header (a linked trace); a backward
//!   jump to any other pc ([`Abort::InnerLoop`]), any bytecode or value type the JIT does not
//!   handle, or more than [`MAX_RECORD_OPS`] bytecodes abort with a reason from the one
//!   [`Abort`] table;
//! - ints, floats and bools; a bool register is `Ty::Bool`, `jmpif` on it guards its value,
//!   `not` is `NotB`; value-producing comparisons (`eq`, `lt`, `le`) guard their outcome and
//!   yield a bool constant; numbers are always truthy;
//! - int `/` and `%` guard `divisor != 0` at the instruction's own pc (so the interpreter
//!   raises the error there) and call a host function with the interpreter's wrapping
//!   semantics; float `%` is a host call on the operands' bits (`FBits`, `BitsF`); mixed
//!   arithmetic converts the int side with `ToFloat`, as the interpreter does.
use alloc::vec::Vec;

#[path = "record_array.rs"]
pub(crate) mod array;
#[path = "record_str.rs"]
pub(crate) mod strs;

use crate::jit::hostbuf::BufView;
use crate::jit::hostcall::HostCtx;
use crate::jit::ir::{HostFn, Op, Ref, Trace, TraceBuilder, Ty, NONE};
use crate::jit::recorder::{
    float_op, int_div_op, int_op, is_int_div, kept_outcome_guard, record_shared, BytecodeRecorder,
};
use crate::jit::trace::Abort;
use crate::vm::bytecode::{byte, field_a, field_b, field_c};
use crate::vm::program::{Const, Program};
use crate::vm::value::Value;

pub mod inline;
// `for` steps: the stepped counter, its fuel and the loop guard.
mod for_loop;
// Ends of linked recordings: dead strings released, exits at returns and builtins.
mod link_end;
// Host stops: `callh` and buffer accesses as runtime calls, or an exit to the instruction.
mod host_stop;
pub use inline::{CallLog, CallNote};

/// Most bytecodes one recording may execute.
pub const MAX_RECORD_OPS: usize = 1000;

/// A number the recorder knows the value of.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Num {
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Num {
    fn ty(self) -> Ty {
        match self {
            Num::Int(_) => Ty::Int,
            Num::Float(_) => Ty::Float,
            Num::Bool(_) => Ty::Bool,
        }
    }
    fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
            Num::Bool(b) => b as u8 as f64,
        }
    }
    fn is_number(self) -> bool {
        !matches!(self, Num::Bool(_))
    }
}

/// A register's value and IR ref.
#[derive(Clone, Copy, Debug)]
struct Val {
    num: Num,
    r: Ref,
}

struct Recorder<'p> {
    prog: &'p Program,
    code: &'p [u32],
    header: usize,
    shadow: Vec<Option<Num>>,
    tb: TraceBuilder,
    /// A side trace (started at a side exit, not at a hot loop header).
    side: bool,
    /// Whether a pc of this function is a loop header with an installed trace.
    links: &'p dyn Fn(usize) -> bool,
    /// Whether a side recording may record on through a linked header (see [`Start`]).
    passes: &'p dyn Fn(usize) -> bool,
    /// The linked header this side recording recorded on through, if any.
    passed: Option<usize>,
    /// The host buffers' views (see [`crate::jit::hostbuf`]).
    bufs: &'p [BufView],
    /// The VM's host, when recording for a hosted run (see [`crate::jit::hostcall`]).
    host: Option<&'p HostCtx>,
    /// Bytes the recorded iteration stored into host buffers (buffer, index, byte): the
    /// recorder does not write the buffers itself.
    written: Vec<(usize, i64, u8)>,
    /// Registers holding an array (see [`array`]).
    arrays: Vec<Option<array::ArrayReg>>,
    /// Elements the recorded iteration stored (array address, index, value): the recorder
    /// does not write the arrays itself.
    stores: Vec<(usize, i64, Num)>,
    /// Element tags the trace has checked (see [`array`]).
    known_tags: Vec<array::KnownTag>,
    /// Registers holding a copy of a heap element (see [`array`]).
    copies: Vec<array::ElementCopy>,
    /// Registers nil when the recording started, and the slots a `push` leaves nil (see
    /// [`array`]).
    nils: array::Nils,
    /// Calls followed into the trace (see [`inline`]).
    calls: inline::Calls<'p>,
    /// What each string register holds (see [`strs`]).
    strs: Vec<Option<alloc::string::String>>,
    /// Slots string runtime calls read or write (see [`strs`]).
    str_slots: Vec<u32>,
    /// Bytecodes whose native stores hit a register the iteration had loaded (see [`strs`]).
    stale_reads: Vec<u8>,
    /// The VM's memory meter, when a value of the frame holds it (see [`strs`]).
    meter: Option<crate::vm::value::Meter>,
    /// Registers that held a number at some point of the recording (see [`link_end`]).
    numeric: Vec<bool>,
    /// Registers that held a number (or a bool) when the recording started.
    numbers_at_start: Vec<bool>,
}

/// How a recording starts and where it may end.
#[derive(Clone, Copy)]
pub struct Start<'a> {
    /// The function.
    pub func: usize,
    /// Where recording starts: a hot loop header, or a side exit's resume pc.
    pub pc: usize,
    /// Started at a side exit: control may leave the loop the recording started in (a `forlt`
    /// that falls through is recorded, guarded, not an abort).
    pub side: bool,
    /// Loop headers of `func` that have an installed trace: reaching one (other than `pc`)
    /// ends the recording with a link to it.
    pub links: &'a dyn Fn(usize) -> bool,
    /// Linked headers a side recording records on through instead of linking there (once per
    /// recording): those whose trace does not loop but runs straight to a link back into the
    /// loop trace whose exit the side trace continues (an outer loop's trace that links into
    /// the inner loop the side trace left). The side trace then runs that path itself and
    /// links where it ends: one trace entry (slots loaded and type-checked, values stored back)
    /// less per trip. Reaching such a header again, or the recording's own start, after that
    /// ends or aborts the recording as usual; a recording that fails after passing one is
    /// made again without passing.
    pub passes: &'a dyn Fn(usize) -> bool,
    /// The host buffers' views: buffer accesses in range of a filled view are recorded as
    /// runtime calls; any other host instruction ends the trace with an exit to it.
    pub bufs: &'a [BufView],
    /// The VM's host, when recording for a hosted run: `callh` with int arguments, of a
    /// function whose last result was an int, becomes a runtime call.
    pub host: Option<&'a HostCtx>,
}

/// Records one iteration of the loop whose header is `header_pc` in function `func`, starting
/// from the frame registers `regs` (as the interpreter holds them at the header). Nothing is
/// linked: the recording must come back to the header.
pub fn record(
    prog: &Program,
    func: usize,
    header_pc: usize,
    regs: &[Value],
) -> Result<Trace, Abort> {
    let start = Start {
        func,
        pc: header_pc,
        side: false,
        links: &|_| false,
        passes: &|_| false,
        bufs: &[],
        host: None,
    };
    record_from(prog, start, regs)
}

/// Records from `start.pc` with the frame registers `regs` (as the interpreter holds them
/// there) until control comes back to `start.pc` (a looping trace) or reaches a linked loop
/// header (a linked trace, ending in `Exit` to that header).
pub fn record_from(prog: &Program, start: Start<'_>, regs: &[Value]) -> Result<Trace, Abort> {
    record_with_calls(prog, start, regs).map(|(t, _)| t)
}

/// [`record_from`], also saying which calls the trace follows ([`inline`]). A trace whose
/// [`CallLog::frames`] is not 0 may run only where that many more frames fit under the VM's
/// call-depth limit.
pub fn record_with_calls(
    prog: &Program,
    start: Start<'_>,
    regs: &[Value],
) -> Result<(Trace, CallLog), Abort> {
    let mut passed = false;
    match record_once(prog, start, regs, &mut passed) {
        // Recording on through a linked header ([`Start::passes`]) can meet what the path
        // after it cannot record (a register the next iteration reuses for another type):
        // then the recording that links at the header, as without passing.
        Err(_) if passed => record_once(
            prog,
            Start {
                passes: &|_| false,
                ..start
            },
            regs,
            &mut passed,
        ),
        done => done,
    }
}

/// One recording attempt of [`record_with_calls`]; `passed` says whether it recorded on
/// through a linked header (also when it failed).
fn record_once(
    prog: &Program,
    start: Start<'_>,
    regs: &[Value],
    passed: &mut bool,
) -> Result<(Trace, CallLog), Abort> {
    let code = &prog.funcs.get(start.func).ok_or(Abort::Malformed)?.code;
    let shadow: Vec<Option<Num>> = regs
        .iter()
        .map(|v| match v {
            Value::Int(i) => Some(Num::Int(*i)),
            Value::Float(f) => Some(Num::Float(*f)),
            Value::Bool(b) => Some(Num::Bool(*b)),
            _ => None,
        })
        .collect();
    let numeric: Vec<bool> = shadow.iter().map(Option::is_some).collect();
    let numbers_at_start = numeric.clone();
    let mut rec = Recorder {
        prog,
        code,
        header: start.pc,
        shadow,
        tb: TraceBuilder::new(start.pc as u32),
        side: start.side,
        links: start.links,
        passes: start.passes,
        passed: None,
        bufs: start.bufs,
        host: start.host,
        written: Vec::new(),
        arrays: array::array_regs(regs),
        stores: Vec::new(),
        known_tags: Vec::new(),
        copies: Vec::new(),
        nils: array::Nils::new(regs),
        calls: inline::Calls::new(start.func),
        strs: strs::str_regs(regs),
        str_slots: Vec::new(),
        stale_reads: Vec::new(),
        meter: strs::meter_of(regs),
        numeric,
        numbers_at_start,
    };
    let end = rec.run();
    *passed = rec.passed.is_some();
    let end = end?;
    rec.check_nil_slots()?;
    rec.check_str_slots(matches!(end, End::Loop))?;
    let log = core::mem::take(&mut rec.calls.log);
    let built = match end {
        End::Loop => {
            rec.release_dead_heap(start.func, start.pc);
            rec.tb.finish(start.pc as u32)
        }
        End::Link(pc) => {
            rec.release_dead_heap(start.func, pc);
            rec.tb.finish_exit(pc as u32)
        }
    };
    built.map(|t| (t, log)).map_err(|_| Abort::Malformed)
}

/// How a recording ended.
enum End {
    /// Back at the start pc: the trace loops.
    Loop,
    /// At another loop header that has a trace: the trace exits to it.
    Link(usize),
}

impl Recorder<'_> {
    fn run(&mut self) -> Result<End, Abort> {
        let mut pc = self.header;
        for _ in 0..MAX_RECORD_OPS {
            let w = *self.code.get(pc).ok_or(Abort::Malformed)?;
            self.tb.at_pc(pc as u32);
            // A side recording may end at this instruction (see `link_end`): the point to
            // rewind to, taken only where that can happen (a `move` may record a `callb` with it).
            let may_end = matches!(w as u8, byte::CallB | byte::Ret | byte::RetNil | byte::Move);
            let mark = (may_end && self.side && !self.calls.inside()).then(|| self.tb.mark());
            let next = match self.step_or_follow(pc, w) {
                Ok(next) => next,
                Err(why) => match mark {
                    Some(m) if self.exits_at(pc, why)? => {
                        self.tb.rewind(m);
                        return Ok(End::Link(pc));
                    }
                    _ => return Err(why),
                },
            };
            match next {
                Next::Pc(next)
                    if !self.calls.inside() && next != self.header && (self.links)(next) =>
                {
                    if !self.passes_through(next) {
                        return Ok(End::Link(next));
                    }
                    self.passed = Some(next);
                    pc = next;
                }
                Next::Pc(next) => pc = next,
                Next::Done => return Ok(End::Loop),
                // A host stop: the trace exits to the instruction; the driver performs it
                // (`LoopHook::enter_hosted`) and continues with the trace that starts after it.
                Next::Stop => return Ok(End::Link(pc)),
                // A call the trace cannot follow: it exits there (see `inline`), a call stop:
                // the VM makes the call and native code goes on after it.
                Next::StopAt(call) => return Ok(End::Link(call)),
            }
        }
        Err(Abort::TooLong)
    }

    /// Whether the recording goes on through the linked header `pc` instead of linking there:
    /// a side recording, outside followed calls, that has not passed one yet.
    fn passes_through(&self, pc: usize) -> bool {
        self.side && self.passed.is_none() && (self.passes)(pc)
    }

    fn ext(&self, pc: usize) -> Result<usize, Abort> {
        self.code
            .get(pc + 1)
            .map(|&x| x as usize)
            .ok_or(Abort::Malformed)
    }

    /// Where control goes after a jump to `target` from `pc`.
    fn jump(&self, pc: usize, target: usize) -> Result<Next, Abort> {
        if self.calls.inside() {
            return self.callee_jump(pc, target);
        }
        if target == self.header {
            if self.passed.is_some() {
                // Back at the start only through a header recorded on through: not a loop
                // of this trace's own.
                return Err(Abort::InnerLoop);
            }
            Ok(Next::Done)
        } else if target <= pc && !(self.links)(target) {
            // An inner (or outer) loop without a trace of its own yet.
            Err(Abort::InnerLoop)
        } else {
            Ok(Next::Pc(target))
        }
    }

    // ---- values ------------------------------------------------------------------------------

    fn reg(&mut self, r: usize) -> Result<Val, Abort> {
        let num = self
            .shadow
            .get(r)
            .copied()
            .flatten()
            .ok_or(Abort::UnsupportedType)?;
        let r = self.tb.slot(r as u32, num.ty());
        Ok(Val { num, r })
    }

    fn konst(&mut self, k: usize) -> Result<Val, Abort> {
        match self.prog.consts.get(k) {
            Some(Const::Int(i)) => Ok(Val {
                num: Num::Int(*i),
                r: self.tb.kint(*i),
            }),
            Some(Const::Float(f)) => Ok(Val {
                num: Num::Float(*f),
                r: self.tb.kfloat(*f),
            }),
            // Only numbers reach here from the bytecodes the recorder handles.
            _ => Err(Abort::UnsupportedType),
        }
    }

    fn set(&mut self, r: usize, v: Val) -> Result<(), Abort> {
        *self.shadow.get_mut(r).ok_or(Abort::Malformed)? = Some(v.num);
        if let Some(n) = self.numeric.get_mut(r) {
            *n = true;
        }
        self.forget_copy(r);
        self.forget_array(r);
        self.forget_str(r);
        self.tb.set_slot(r as u32, v.r);
        Ok(())
    }

    fn float_of(&mut self, v: Val) -> Val {
        match v.num {
            Num::Float(_) | Num::Bool(_) => v,
            Num::Int(i) => Val {
                num: Num::Float(i as f64),
                r: self.tb.op(Op::ToFloat, v.r, NONE),
            },
        }
    }

    /// `x op y` with the interpreter's typing: int with int stays int (wrapping), anything
    /// else is float.
    fn arith(&mut self, opcode: u8, x: Val, y: Val) -> Result<Val, Abort> {
        if !x.num.is_number() || !y.num.is_number() {
            // A type error: the interpreter raises it.
            return Err(Abort::UnsupportedType);
        }
        if let (Num::Int(p), Num::Int(q)) = (x.num, y.num) {
            if is_int_div(opcode) {
                return self.int_div(opcode, x, y, p, q);
            }
            let (op, f) = int_op(opcode).ok_or(Abort::Unsupported(opcode))?;
            return Ok(Val {
                num: Num::Int(f(p, q)),
                r: self.tb.op(op, x.r, y.r),
            });
        }
        let (x, y) = (self.float_of(x), self.float_of(y));
        let (p, q) = (x.num.as_f64(), y.num.as_f64());
        if matches!(opcode, byte::Mod | byte::ModK) {
            // The interpreter's float `%` (Rust's, truncated like C's `fmod`), a runtime
            // call on the operands' bits.
            let (xb, yb) = (
                self.tb.op(Op::FBits, x.r, NONE),
                self.tb.op(Op::FBits, y.r, NONE),
            );
            let bits = self.tb.call(host_fmod, xb, yb);
            return Ok(Val {
                num: Num::Float(p % q),
                r: self.tb.op(Op::BitsF, bits, NONE),
            });
        }
        let (op, f) = float_op(opcode).ok_or(Abort::Unsupported(opcode))?;
        let v = f(p, q);
        Ok(Val {
            num: Num::Float(v),
            r: self.tb.op(op, x.r, y.r),
        })
    }

    /// Int `/` or `%` (`p`, `q` the values now): a guard exits before a zero divisor, so the
    /// interpreter raises the error at this pc; the operation itself is a host call with the
    /// interpreter's wrapping semantics (`i64::MIN / -1` wraps, `% -1` is 0).
    fn int_div(&mut self, opcode: u8, x: Val, y: Val, p: i64, q: i64) -> Result<Val, Abort> {
        if q == 0 {
            return Err(Abort::DivisionByZero);
        }
        if matches!(opcode, byte::DivK | byte::ModK) && q != -1 {
            // A constant divisor that cannot trap: native code divides inline.
            let op = if opcode == byte::DivK {
                Op::DivIK
            } else {
                Op::ModIK
            };
            let v = if op == Op::DivIK {
                p.wrapping_div(q)
            } else {
                p.wrapping_rem(q)
            };
            return Ok(Val {
                num: Num::Int(v),
                r: self.tb.op(op, x.r, y.r),
            });
        }
        let zero = self.tb.kint(0);
        self.tb.guard(Op::Ne, y.r, zero);
        let (f, eval) = int_div_op(opcode);
        let v = eval(p, q);
        Ok(Val {
            num: Num::Int(v),
            r: self.tb.call(f, x.r, y.r),
        })
    }

    /// Guards that `x cmp y` comes out as it did now (`cmp` is `Lt`, `Le` or `Eq`); returns the
    /// outcome. Two bools compare as ints; callers never pass a bool with a number. The guard
    /// fails exactly when the outcome is the other one (a float `<` or `<=` that does not
    /// hold keeps "not less" with `FNLt`/`FNLe`, which NaN passes, where `Ge`/`Gt` would exit
    /// on it). With `other_way` (where control goes when the comparison holds, where it goes
    /// when not), the guard's exit resumes where the other outcome leads instead of at the
    /// comparison itself (see [`branch`](Self::branch)).
    fn compare_exact(&mut self, cmp: Op, x: Val, y: Val, other_way: Option<[usize; 2]>) -> bool {
        let (x, y) = match (x.num, y.num) {
            (Num::Int(_), Num::Int(_)) | (Num::Bool(_), Num::Bool(_)) => (x, y),
            _ => (self.float_of(x), self.float_of(y)),
        };
        let ord = match (x.num, y.num) {
            (Num::Int(p), Num::Int(q)) => Some(p.cmp(&q)),
            (Num::Bool(p), Num::Bool(q)) => Some(p.cmp(&q)),
            (p, q) => p.as_f64().partial_cmp(&q.as_f64()),
        };
        let holds = cmp.compare_holds(ord);
        let guard = match (x.num, cmp, holds) {
            (Num::Float(_), Op::Lt, false) => Op::FNLt,
            (Num::Float(_), Op::Le, false) => Op::FNLe,
            _ => kept_outcome_guard(cmp, holds),
        };
        match other_way {
            Some(ways) => {
                // The outcome now is `holds`; the guard fails exactly on the other one.
                let resume = if holds { ways[1] } else { ways[0] };
                let here = self.tb.pc();
                self.tb.at_pc(resume as u32);
                self.tb.guard(guard, x.r, y.r);
                self.tb.at_pc(here);
            }
            None => self.tb.guard(guard, x.r, y.r),
        }
        holds
    }

    // ---- bytecode ----------------------------------------------------------------------------

    fn step(&mut self, pc: usize, w: u32) -> Result<Next, Abort> {
        if let Some(next) = self.str_step(pc, w)? {
            return Ok(next);
        }
        if let Some(next) = self.array_step(pc, w)? {
            return Ok(next);
        }
        if let Some(next) = record_shared(self, pc, w)? {
            return Ok(next);
        }
        let op = w as u8;
        match op {
            byte::LoadBool => {
                let v = self.bool_const(field_b(w) != 0);
                self.set(field_a(w), v)?;
            }
            byte::Not => {
                let x = self.reg(field_b(w))?;
                let v = match x.num {
                    Num::Bool(v) => Val {
                        num: Num::Bool(!v),
                        r: self.tb.op(Op::NotB, x.r, NONE),
                    },
                    // Numbers are truthy (their type is guarded by the slot load).
                    _ => self.bool_const(false),
                };
                self.set(field_a(w), v)?;
            }
            byte::Eq | byte::Lt | byte::Le => {
                let (x, y) = (self.reg(field_b(w))?, self.reg(field_c(w))?);
                let cmp = [Op::Eq, Op::Lt, Op::Le][(op - byte::Eq) as usize];
                let holds = self.test(cmp, x, y)?;
                let v = self.bool_const(holds);
                self.set(field_a(w), v)?;
            }
            byte::JmpIf => {
                let x = self.reg(field_a(w))?;
                let truthy = match x.num {
                    Num::Bool(v) => {
                        let k = self.tb.kbool(v);
                        self.tb.guard(Op::Eq, x.r, k);
                        v
                    }
                    _ => true,
                };
                return if truthy == (field_b(w) != 0) {
                    self.take_jump(pc, self.ext(pc)?, None)
                } else {
                    Ok(Next::Pc(pc + 2))
                };
            }
            byte::ForLt
            | byte::ForLtK
            | byte::ForLe
            | byte::ForLeK
            | byte::ForLtR
            | byte::ForLeR => return self.for_loop(pc, w),
            byte::CallH => return self.host_call(pc, w),
            byte::BGet | byte::BSet | byte::BLen => return self.buffer_op(pc, w),
            other => return Err(Abort::Unsupported(other)),
        }
        Ok(Next::Pc(pc + 1))
    }

    fn bool_const(&mut self, v: bool) -> Val {
        Val {
            num: Num::Bool(v),
            r: self.tb.kbool(v),
        }
    }

    /// The outcome of `x cmp y` with the interpreter's typing, guarded: `<`/`<=` on numbers;
    /// `==` on two numbers of one type or two bools (a bool never equals a number: no guard
    /// needed, the slot loads already guard the types).
    fn test(&mut self, cmp: Op, x: Val, y: Val) -> Result<bool, Abort> {
        self.test_exact(cmp, x, y, None)
    }

    /// [`test`](Self::test), with [`compare_exact`](Self::compare_exact)'s `other_way`. A
    /// bool compared with a number is not equal without a guard: nothing exits there.
    fn test_exact(
        &mut self,
        cmp: Op,
        x: Val,
        y: Val,
        other_way: Option<[usize; 2]>,
    ) -> Result<bool, Abort> {
        let bools = (!x.num.is_number(), !y.num.is_number());
        match (cmp, bools) {
            (Op::Eq, (true, false) | (false, true)) => Ok(false),
            (Op::Eq, _) if x.num.ty() != y.num.ty() => Err(Abort::UnsupportedType),
            (Op::Lt | Op::Le, (true, _) | (_, true)) => Err(Abort::UnsupportedType),
            _ => Ok(self.compare_exact(cmp, x, y, other_way)),
        }
    }

    /// A compare-and-branch: taken when the comparison equals the C flag.
    ///
    /// A float comparison outside followed calls, when both ways go forward: the guard's exit
    /// resumes where the other way goes (its guard is exact:
    /// [`compare_exact`](Self::compare_exact)), so the interpreter, or a side trace, does not
    /// test the comparison again: a side trace starts on the other way's first instruction,
    /// needing none of the registers only the compare reads. A backward way keeps the exit at
    /// the branch (the interpreter charges that jump's fuel when it takes it).
    ///
    /// Not when a compared register held no number when the recording started (nil, or a
    /// string it held in an earlier iteration): resuming at the branch, the exit writes the
    /// number the trace compared into it, and the side trace from there, reading it as a
    /// number, drops the string it leaves there at its end ([`link_end`]); resuming past the
    /// branch, the register may be dead there, and the string would stay in it for every
    /// later exit to find (each one then going through the host). Int comparisons keep their
    /// exits at the branch: measured, they gained nothing in time (fasta lost 2.5% with its
    /// `k < last` exit resuming past the search loop, with 0.1% fewer instructions).
    fn branch(&mut self, pc: usize, w: u32, cmp: Op, x: Val, y: Val) -> Result<Next, Abort> {
        let target = self.ext(pc)?;
        let if_holds = field_c(w) != 0;
        let regs = match w as u8 {
            byte::JLt | byte::JLe | byte::JEq => [field_a(w), field_b(w)],
            _ => [field_a(w), field_a(w)],
        };
        let numbers = regs
            .iter()
            .all(|&r| self.numbers_at_start.get(r) == Some(&true));
        let float = matches!(x.num, Num::Float(_)) || matches!(y.num, Num::Float(_));
        let ways = (target > pc && float && numbers && !self.calls.inside()).then(|| {
            let (taken, fall) = (target, pc + 2);
            if if_holds {
                [taken, fall]
            } else {
                [fall, taken]
            }
        });
        let holds = self.test_exact(cmp, x, y, ways)?;
        if holds == if_holds {
            self.take_jump(pc, target, None)
        } else {
            Ok(Next::Pc(pc + 2))
        }
    }

    /// Records the taken jump at `pc` to `target`. A backward jump first charges its fuel
    /// (`pc + 2 - target`, as the interpreter's back edge does) through a `Fuel` whose snapshot
    /// `snap` resumes at the jump with the state before it (taken now when `None`: the jump
    /// has changed no slot).
    fn take_jump(&mut self, pc: usize, target: usize, snap: Option<u32>) -> Result<Next, Abort> {
        let next = self.jump(pc, target)?;
        if target <= pc {
            self.tb.at_pc(pc as u32);
            let snap = snap.unwrap_or_else(|| self.tb.snapshot());
            self.tb.fuel((pc + 2 - target) as i64, snap);
        }
        Ok(next)
    }
}

impl BytecodeRecorder for Recorder<'_> {
    type Val = Val;
    type Next = Next;

    fn read_reg(&mut self, r: usize) -> Result<Val, Abort> {
        self.reg(r)
    }
    fn write_reg(&mut self, r: usize, v: Val) -> Result<(), Abort> {
        self.set(r, v)
    }
    fn load_const(&mut self, k: usize) -> Result<Val, Abort> {
        self.konst(k)
    }
    fn int_const(&mut self, i: i64) -> Val {
        Val {
            num: Num::Int(i),
            r: self.tb.kint(i),
        }
    }
    fn arith(&mut self, opcode: u8, x: Val, y: Val) -> Result<Val, Abort> {
        Recorder::arith(self, opcode, x, y)
    }
    fn negate(&mut self, x: Val) -> Result<Val, Abort> {
        match x.num {
            Num::Int(i) => {
                let zero = self.tb.kint(0);
                Ok(Val {
                    num: Num::Int(i.wrapping_neg()),
                    r: self.tb.op(Op::SubI, zero, x.r),
                })
            }
            Num::Float(f) => {
                let m1 = self.tb.kfloat(-1.0);
                Ok(Val {
                    num: Num::Float(-f),
                    r: self.tb.op(Op::MulF, x.r, m1),
                })
            }
            Num::Bool(_) => Err(Abort::UnsupportedType),
        }
    }
    fn ext_word(&self, pc: usize) -> Result<usize, Abort> {
        self.ext(pc)
    }
    fn jump_to(&mut self, pc: usize, target: usize) -> Result<Next, Abort> {
        self.take_jump(pc, target, None)
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

/// Int `/` with the interpreter's wrapping semantics (the divisor is guarded non-zero).
pub(crate) extern "C" fn host_div(a: i64, b: i64) -> i64 {
    // `b != 0` is guarded before the call; the check keeps a broken guard from trapping.
    if b == 0 {
        0
    } else {
        a.wrapping_div(b)
    }
}

/// Float `%` as the interpreter computes it, on the operands' bits.
pub(crate) extern "C" fn host_fmod(a: i64, b: i64) -> i64 {
    (f64::from_bits(a as u64) % f64::from_bits(b as u64)).to_bits() as i64
}

/// Int `%` with the interpreter's wrapping semantics (the divisor is guarded non-zero).
pub(crate) extern "C" fn host_rem(a: i64, b: i64) -> i64 {
    if b == 0 {
        0
    } else {
        a.wrapping_rem(b)
    }
}

/// Where the recording goes next.
enum Next {
    Pc(usize),
    Done,
    /// A host instruction the trace does not perform: it exits there.
    Stop,
    /// A call the trace cannot follow: it exits at the call at this pc.
    StopAt(usize),
}
