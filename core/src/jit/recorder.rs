//! The per-bytecode recording both recorders share: moves, constants, arithmetic (int, float,
//! mixed), negation, jumps and compare-and-branches.
//!
//! The loop recorder ([`crate::jit::record`]) and the function recorder
//! ([`crate::jit::frecord`]) keep their own shadow values (the loop recorder knows every
//! payload; the function recorder does not know a call result's) and their own IR buffers, so
//! each implements [`BytecodeRecorder`] over its state: register reads and writes,
//! constants, the arithmetic and negation of its values, where a jump leads and how a
//! compare-and-branch is guarded. [`record_shared`] decodes the shared bytecodes and drives
//! those operations in the one order both recorders emit IR in. What is a recorder's own stays
//! in it: back edges, fuel, links and loop markers' meaning (the loop recorder's `jump`), calls
//! and returns (the function recorder), heap values, strings, buffers and host calls.
//!
//! The operation tables ([`int_op`], [`float_op`], [`int_div_op`]) and the guard that keeps a
//! comparison's outcome ([`kept_outcome_guard`]) are shared too, so the two recorders cannot
//! drift apart on them.
use crate::jit::ir::{HostFn, Op};
use crate::jit::record::{host_div, host_rem};
use crate::jit::trace::Abort;
use crate::vm::bytecode::{byte, field_a, field_b, field_bx, field_c, field_sbx};

/// A recorder's state as the shared bytecode arms see it.
pub(crate) trait BytecodeRecorder {
    /// A register's shadow value and its IR ref.
    type Val: Copy;
    /// Where the recording goes after an instruction.
    type Next;

    /// Register `r`'s value (its slot loaded, and its type guarded, on first use).
    fn read_reg(&mut self, r: usize) -> Result<Self::Val, Abort>;
    /// Writes `v` into register `r`.
    fn write_reg(&mut self, r: usize, v: Self::Val) -> Result<(), Abort>;
    /// Constant `k` of the program (numbers only).
    fn load_const(&mut self, k: usize) -> Result<Self::Val, Abort>;
    /// The int constant `i`.
    fn int_const(&mut self, i: i64) -> Self::Val;
    /// `x op y` for an arithmetic opcode (`add` .. `mod`, `addk` .. `modk`), typed as the
    /// interpreter types it.
    fn arith(&mut self, opcode: u8, x: Self::Val, y: Self::Val) -> Result<Self::Val, Abort>;
    /// `-x`.
    fn negate(&mut self, x: Self::Val) -> Result<Self::Val, Abort>;
    /// The word after the instruction at `pc` (a jump's target).
    fn ext_word(&self, pc: usize) -> Result<usize, Abort>;
    /// Where control goes after the taken jump at `pc` to `target`.
    fn jump_to(&mut self, pc: usize, target: usize) -> Result<Self::Next, Abort>;
    /// A compare-and-branch at `pc` (word `w`), `x cmp y`, taken when the outcome equals the
    /// C flag.
    fn compare_branch(
        &mut self,
        pc: usize,
        w: u32,
        cmp: Op,
        x: Self::Val,
        y: Self::Val,
    ) -> Result<Self::Next, Abort>;
    /// Control goes on at `pc`.
    fn go_to(&self, pc: usize) -> Self::Next;
}

/// Records instruction `w` at `pc` when it is one of the shared bytecodes; `None` when it is
/// not (the caller records it itself).
pub(crate) fn record_shared<R: BytecodeRecorder>(
    rec: &mut R,
    pc: usize,
    w: u32,
) -> Result<Option<R::Next>, Abort> {
    let op = w as u8;
    match op {
        byte::Move => {
            let v = rec.read_reg(field_b(w))?;
            rec.write_reg(field_a(w), v)?;
        }
        byte::LoadK => {
            let v = rec.load_const(field_bx(w))?;
            rec.write_reg(field_a(w), v)?;
        }
        byte::LoadInt => {
            let v = rec.int_const(field_sbx(w));
            rec.write_reg(field_a(w), v)?;
        }
        byte::Add | byte::Sub | byte::Mul | byte::Div | byte::Mod => {
            let (x, y) = (rec.read_reg(field_b(w))?, rec.read_reg(field_c(w))?);
            let v = rec.arith(op, x, y)?;
            rec.write_reg(field_a(w), v)?;
        }
        byte::MulAdd => {
            // `A + B * C` as the interpreter does it: a `mul`, then an `add`.
            let (acc, y, z) = (
                rec.read_reg(field_a(w))?,
                rec.read_reg(field_b(w))?,
                rec.read_reg(field_c(w))?,
            );
            let t = rec.arith(byte::Mul, y, z)?;
            let v = rec.arith(byte::Add, acc, t)?;
            rec.write_reg(field_a(w), v)?;
        }
        byte::AddK | byte::SubK | byte::MulK | byte::DivK | byte::ModK => {
            let (x, y) = (rec.read_reg(field_b(w))?, rec.load_const(field_c(w))?);
            let v = rec.arith(op, x, y)?;
            rec.write_reg(field_a(w), v)?;
        }
        byte::Neg => {
            let x = rec.read_reg(field_b(w))?;
            let v = rec.negate(x)?;
            rec.write_reg(field_a(w), v)?;
        }
        byte::Jmp => {
            let target = rec.ext_word(pc)?;
            return rec.jump_to(pc, target).map(Some);
        }
        // Falling into a loop: nothing to record (the loop recorder links to a header with a
        // trace when it reaches it; a function trace ends at the loop's backward jump).
        byte::Loop => {}
        byte::JLt | byte::JLe | byte::JEq => {
            let (x, y) = (rec.read_reg(field_a(w))?, rec.read_reg(field_b(w))?);
            let cmp = [Op::Lt, Op::Le, Op::Eq][(op - byte::JLt) as usize];
            return rec.compare_branch(pc, w, cmp, x, y).map(Some);
        }
        byte::JLtK | byte::JLeK | byte::JEqK => {
            let (x, y) = (rec.read_reg(field_a(w))?, rec.load_const(field_b(w))?);
            let cmp = match op {
                byte::JLtK => Op::Lt,
                byte::JLeK => Op::Le,
                _ => Op::Eq,
            };
            return rec.compare_branch(pc, w, cmp, x, y).map(Some);
        }
        byte::JGtK | byte::JGeK => {
            // `K < R` and `K <= R`.
            let (x, y) = (rec.load_const(field_b(w))?, rec.read_reg(field_a(w))?);
            let cmp = if op == byte::JGtK { Op::Lt } else { Op::Le };
            return rec.compare_branch(pc, w, cmp, x, y).map(Some);
        }
        _ => return Ok(None),
    }
    Ok(Some(rec.go_to(pc + 1)))
}

/// An int operation as the interpreter evaluates it (wrapping).
pub(crate) type IntEval = fn(i64, i64) -> i64;
/// A float operation as the interpreter evaluates it.
pub(crate) type FloatEval = fn(f64, f64) -> f64;

/// The IR op and the wrapping evaluation of an int `add`, `sub` or `mul` (register or
/// constant operand); `None` for any other opcode.
pub(crate) fn int_op(opcode: u8) -> Option<(Op, IntEval)> {
    let op: (Op, IntEval) = match opcode {
        byte::Add | byte::AddK => (Op::AddI, i64::wrapping_add),
        byte::Sub | byte::SubK => (Op::SubI, i64::wrapping_sub),
        byte::Mul | byte::MulK => (Op::MulI, i64::wrapping_mul),
        _ => return None,
    };
    Some(op)
}

/// The IR op and the evaluation of a float `add`, `sub`, `mul` or `/` (register or constant
/// operand); `None` for any other opcode (float `%` is a recorder's own business).
pub(crate) fn float_op(opcode: u8) -> Option<(Op, FloatEval)> {
    let op: (Op, FloatEval) = match opcode {
        byte::Add | byte::AddK => (Op::AddF, |p, q| p + q),
        byte::Sub | byte::SubK => (Op::SubF, |p, q| p - q),
        byte::Mul | byte::MulK => (Op::MulF, |p, q| p * q),
        byte::Div | byte::DivK => (Op::DivF, |p, q| p / q),
        _ => return None,
    };
    Some(op)
}

/// Whether an int `opcode` is a division or remainder (a host call behind a divisor guard).
pub(crate) fn is_int_div(opcode: u8) -> bool {
    matches!(opcode, byte::Div | byte::DivK | byte::Mod | byte::ModK)
}

/// The host function and the wrapping evaluation of an int `/` or `%` (`opcode` one of
/// [`is_int_div`]'s): the interpreter's semantics, `i64::MIN / -1` wraps and `% -1` is 0.
pub(crate) fn int_div_op(opcode: u8) -> (HostFn, IntEval) {
    match opcode {
        byte::Div | byte::DivK => (host_div, i64::wrapping_div),
        _ => (host_rem, i64::wrapping_rem),
    }
}

/// The guard that holds when `cmp` (`Lt`, `Le` or `Eq`) comes out as `holds` did now.
pub(crate) fn kept_outcome_guard(cmp: Op, holds: bool) -> Op {
    match (cmp, holds) {
        (op, true) => op,
        (Op::Lt, false) => Op::Ge,
        (Op::Le, false) => Op::Gt,
        _ => Op::Ne,
    }
}
