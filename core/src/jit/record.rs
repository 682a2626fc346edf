//! The recorder: turns one iteration of a hot VM loop into a recorded IR trace.
//!
//! Glossary
//! - *shadow registers*: the recorder replays the iteration itself, on a copy of the frame's
//!   numbers, so it knows every branch direction without the interpreter's help and without
//!   side effects on the VM. Each register maps to an IR ref through the [`TraceBuilder`]'s slot
//!   map (VM register `r` is JIT slot `r`).
//! - *guard resume pc*: a branch guard resumes at the branch instruction itself (the interpreter
//!   re-evaluates it), so a guard that fails "too often" (NaN operands) is merely slow, never
//!   wrong. `forlt`/`forltk` update their counter first; their guard is exact and resumes after
//!   the instruction.
//!
//! - *fuel*: the interpreter charges `pc + 2 - header` fuel at the backward jump at `pc`; the
//!   recorder emits a `Fuel` instruction of that cost for the jump back to the header, whose
//!   snapshot resumes at the jump itself with the state before it: when the budget would run
//!   out, the interpreter re-executes the jump and raises `OutOfFuel` exactly as without JIT.
//!
//! Invariants
//! - recording starts at the loop header with the registers the interpreter holds there and
//!   ends at the first jump back to the header; any other backward jump (an inner loop), any
//!   bytecode or value type the JIT does not handle, or more than [`MAX_RECORD_OPS`] bytecodes
//!   abort with a reason from the one [`Abort`] table;
//! - ints and floats only; int `/` and `%` abort (division by zero is an error the trace cannot
//!   raise); mixed arithmetic converts the int side with `ToFloat`, as the interpreter does.
use liballoc::vec::Vec;

use crate::jit::ir::{Op, Ref, Trace, TraceBuilder, Ty, NONE};
use crate::jit::trace::Abort;
use crate::vm::bytecode::{a, b, bx, byte, c, sbx};
use crate::vm::program::{Const, Program};
use crate::vm::value::Value;

/// Most bytecodes one recording may execute.
pub const MAX_RECORD_OPS: usize = 1000;

/// A number the recorder knows the value of.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    fn ty(self) -> Ty {
        match self {
            Num::Int(_) => Ty::Int,
            Num::Float(_) => Ty::Float,
        }
    }
    fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
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
}

/// Records one iteration of the loop whose header is `header_pc` in function `func`, starting
/// from the frame registers `regs` (as the interpreter holds them at the header).
pub fn record(
    prog: &Program,
    func: usize,
    header_pc: usize,
    regs: &[Value],
) -> Result<Trace, Abort> {
    let code = &prog.funcs.get(func).ok_or(Abort::Malformed)?.code;
    let shadow = regs
        .iter()
        .map(|v| match v {
            Value::Int(i) => Some(Num::Int(*i)),
            Value::Float(f) => Some(Num::Float(*f)),
            _ => None,
        })
        .collect();
    let mut rec = Recorder {
        prog,
        code,
        header: header_pc,
        shadow,
        tb: TraceBuilder::new(header_pc as u32),
    };
    rec.run()?;
    rec.tb
        .finish(header_pc as u32)
        .map_err(|_| Abort::Malformed)
}

impl Recorder<'_> {
    fn run(&mut self) -> Result<(), Abort> {
        let mut pc = self.header;
        for _ in 0..MAX_RECORD_OPS {
            let w = *self.code.get(pc).ok_or(Abort::Malformed)?;
            self.tb.at_pc(pc as u32);
            match self.step(pc, w)? {
                Next::Pc(next) => pc = next,
                Next::Done => return Ok(()),
            }
        }
        Err(Abort::TooLong)
    }

    fn ext(&self, pc: usize) -> Result<usize, Abort> {
        self.code
            .get(pc + 1)
            .map(|&x| x as usize)
            .ok_or(Abort::Malformed)
    }

    /// Where control goes after a jump to `target` from `pc`.
    fn jump(&self, pc: usize, target: usize) -> Result<Next, Abort> {
        if target == self.header {
            Ok(Next::Done)
        } else if target <= pc {
            Err(Abort::LeftLoop)
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
            _ => Err(Abort::UnsupportedType),
        }
    }

    fn set(&mut self, r: usize, v: Val) -> Result<(), Abort> {
        *self.shadow.get_mut(r).ok_or(Abort::Malformed)? = Some(v.num);
        self.tb.set_slot(r as u32, v.r);
        Ok(())
    }

    fn float_of(&mut self, v: Val) -> Val {
        match v.num {
            Num::Float(_) => v,
            Num::Int(i) => Val {
                num: Num::Float(i as f64),
                r: self.tb.op(Op::ToFloat, v.r, NONE),
            },
        }
    }

    /// `x op y` with the interpreter's typing: int with int stays int (wrapping), anything
    /// else is float.
    fn arith(&mut self, opcode: u8, x: Val, y: Val) -> Result<Val, Abort> {
        if let (Num::Int(p), Num::Int(q)) = (x.num, y.num) {
            let (op, v) = match opcode {
                byte::Add | byte::AddK => (Op::AddI, p.wrapping_add(q)),
                byte::Sub | byte::SubK => (Op::SubI, p.wrapping_sub(q)),
                byte::Mul | byte::MulK => (Op::MulI, p.wrapping_mul(q)),
                other => return Err(Abort::Unsupported(other)),
            };
            return Ok(Val {
                num: Num::Int(v),
                r: self.tb.op(op, x.r, y.r),
            });
        }
        let (x, y) = (self.float_of(x), self.float_of(y));
        let (p, q) = (x.num.as_f64(), y.num.as_f64());
        let (op, v) = match opcode {
            byte::Add | byte::AddK => (Op::AddF, p + q),
            byte::Sub | byte::SubK => (Op::SubF, p - q),
            byte::Mul | byte::MulK => (Op::MulF, p * q),
            byte::Div | byte::DivK => (Op::DivF, p / q),
            other => return Err(Abort::Unsupported(other)),
        };
        Ok(Val {
            num: Num::Float(v),
            r: self.tb.op(op, x.r, y.r),
        })
    }

    /// Guards that `x cmp y` comes out as it did now (`cmp` is `Lt`, `Le` or `Eq`); returns the
    /// outcome.
    fn compare(&mut self, cmp: Op, x: Val, y: Val) -> bool {
        let (x, y) = match (x.num, y.num) {
            (Num::Int(_), Num::Int(_)) => (x, y),
            _ => (self.float_of(x), self.float_of(y)),
        };
        let ord = match (x.num, y.num) {
            (Num::Int(p), Num::Int(q)) => Some(p.cmp(&q)),
            (p, q) => p.as_f64().partial_cmp(&q.as_f64()),
        };
        let holds = cmp.compare_holds(ord);
        let guard = match (cmp, holds) {
            (op, true) => op,
            (Op::Lt, false) => Op::Ge,
            (Op::Le, false) => Op::Gt,
            _ => Op::Ne,
        };
        self.tb.guard(guard, x.r, y.r);
        holds
    }

    // ---- bytecode ----------------------------------------------------------------------------

    fn step(&mut self, pc: usize, w: u32) -> Result<Next, Abort> {
        let op = w as u8;
        match op {
            byte::Move => {
                let v = self.reg(b(w))?;
                self.set(a(w), v)?;
            }
            byte::LoadK => {
                let v = self.konst(bx(w))?;
                self.set(a(w), v)?;
            }
            byte::LoadInt => {
                let v = Val {
                    num: Num::Int(sbx(w)),
                    r: self.tb.kint(sbx(w)),
                };
                self.set(a(w), v)?;
            }
            byte::Add | byte::Sub | byte::Mul | byte::Div => {
                let (x, y) = (self.reg(b(w))?, self.reg(c(w))?);
                let v = self.arith(op, x, y)?;
                self.set(a(w), v)?;
            }
            byte::AddK | byte::SubK | byte::MulK | byte::DivK => {
                let (x, y) = (self.reg(b(w))?, self.konst(c(w))?);
                let v = self.arith(op, x, y)?;
                self.set(a(w), v)?;
            }
            byte::Neg => {
                let x = self.reg(b(w))?;
                let v = match x.num {
                    Num::Int(i) => {
                        let zero = self.tb.kint(0);
                        Val {
                            num: Num::Int(i.wrapping_neg()),
                            r: self.tb.op(Op::SubI, zero, x.r),
                        }
                    }
                    Num::Float(f) => {
                        let m1 = self.tb.kfloat(-1.0);
                        Val {
                            num: Num::Float(-f),
                            r: self.tb.op(Op::MulF, x.r, m1),
                        }
                    }
                };
                self.set(a(w), v)?;
            }
            byte::Jmp => {
                let target = self.ext(pc)?;
                self.charge_back_edge(pc, target, None);
                return self.jump(pc, target);
            }
            byte::JLt | byte::JLe | byte::JEq => {
                let (x, y) = (self.reg(a(w))?, self.reg(b(w))?);
                let cmp = [Op::Lt, Op::Le, Op::Eq][(op - byte::JLt) as usize];
                return self.branch(pc, w, cmp, x, y);
            }
            byte::JLtK | byte::JLeK | byte::JEqK => {
                let (x, y) = (self.reg(a(w))?, self.konst(b(w))?);
                let cmp = match op {
                    byte::JLtK => Op::Lt,
                    byte::JLeK => Op::Le,
                    _ => Op::Eq,
                };
                return self.branch(pc, w, cmp, x, y);
            }
            byte::JGtK | byte::JGeK => {
                // `K < R` and `K <= R`.
                let (x, y) = (self.konst(b(w))?, self.reg(a(w))?);
                let cmp = if op == byte::JGtK { Op::Lt } else { Op::Le };
                return self.branch(pc, w, cmp, x, y);
            }
            byte::ForLt | byte::ForLtK => return self.for_loop(pc, w),
            other => return Err(Abort::Unsupported(other)),
        }
        Ok(Next::Pc(pc + 1))
    }

    /// A compare-and-branch: taken when the comparison equals the C flag.
    fn branch(&mut self, pc: usize, w: u32, cmp: Op, x: Val, y: Val) -> Result<Next, Abort> {
        if cmp == Op::Eq && x.num.ty() != y.num.ty() {
            return Err(Abort::UnsupportedType);
        }
        let holds = self.compare(cmp, x, y);
        if holds == (c(w) != 0) {
            let target = self.ext(pc)?;
            self.charge_back_edge(pc, target, None);
            self.jump(pc, target)
        } else {
            Ok(Next::Pc(pc + 2))
        }
    }

    /// `A += K[B]; if A < limit goto target`: the guard checks the direction taken now, after
    /// the add, and resumes after the instruction.
    fn for_loop(&mut self, pc: usize, w: u32) -> Result<Next, Abort> {
        let target = self.ext(pc)?;
        // The fuel exit needs the state before the step (the interpreter redoes it).
        let before_step = self.tb.snapshot();
        let x = self.reg(a(w))?;
        let step = self.konst(b(w))?;
        // Load the limit before the counter's slot changes: a failing tag guard on the limit
        // resumes at this instruction, which must find the counter not yet stepped.
        let limit = if w as u8 == byte::ForLtK {
            self.konst(c(w))?
        } else {
            self.reg(c(w))?
        };
        let v = self.arith(byte::Add, x, step)?;
        self.set(a(w), v)?;
        // `forlt r, k, r` compares the stepped counter with itself.
        let limit = if w as u8 == byte::ForLt && c(w) == a(w) {
            v
        } else {
            limit
        };
        let ord = match (v.num, limit.num) {
            (Num::Int(p), Num::Int(q)) => Some(p.cmp(&q)),
            (p, q) => p.as_f64().partial_cmp(&q.as_f64()),
        };
        if !Op::Lt.compare_holds(ord) {
            // The recorded iteration is the loop's last one.
            return Err(Abort::LeftLoop);
        }
        // Failing `v < limit` means exactly "not taken" (NaN included): resume after this
        // instruction, whose add is already in the snapshot.
        self.tb.at_pc((pc + 2) as u32);
        let (vf, lf) = match (v.num, limit.num) {
            (Num::Int(_), Num::Int(_)) => (v, limit),
            _ => (self.float_of(v), self.float_of(limit)),
        };
        self.tb.guard(Op::Lt, vf.r, lf.r);
        self.charge_back_edge(pc, target, Some(before_step));
        self.jump(pc, target)
    }

    /// Emits the fuel charge of the jump at `pc` to `target` if it closes the loop. `snap`
    /// resumes at the jump with the state before it (taken now when `None`: the jump has not
    /// changed any slot yet).
    fn charge_back_edge(&mut self, pc: usize, target: usize, snap: Option<u32>) {
        if target != self.header {
            return;
        }
        self.tb.at_pc(pc as u32);
        let snap = snap.unwrap_or_else(|| self.tb.snapshot());
        self.tb.fuel((pc + 2 - self.header) as i64, snap);
    }
}

/// Where the recording goes next.
enum Next {
    Pc(usize),
    Done,
}
