//! The verifier: rejects malformed programs before anything runs.
//!
//! For every function it checks, in this order:
//! 1. the header: `1 <= nregs <= 256`, `arity <= nregs`, one line per code word, function 0 has
//!    arity 0, code is non-empty;
//! 2. decoding: every opcode byte is known and its extension word is present;
//! 3. operands: registers below `nregs`, register windows inside the frame, constant indices in
//!    the pool (numeric where the op needs a number), flags 0/1, jump targets in range *and on
//!    the first word of an instruction*, call targets existing with the call's argument count
//!    equal to the callee's arity, builtins existing with a matching argument count, host
//!    imports (`callh`) existing with the call's argument count equal to the import's arity,
//!    host buffer operands below the program's buffer count (imports and buffers name string
//!    constants);
//! 4. control flow: no instruction falls off the end of the code; a `loop` marker is followed by
//!    a loop header (an instruction some backward jump targets);
//! 5. register use: a forward dataflow pass proves every register read was written on every path
//!    (parameters count as written; a `call` at window `A` leaves registers above `A` unwritten,
//!    because the callee's frame overlaps them).
//!
//! A program that passes can still fail at run time (types, indices, fuel), but only with a
//! [`super::error::RuntimeError`]; the interpreter relies on 1–4 for its register and code
//! indexing.
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use super::builtins::Builtin;
use super::bytecode::{operand, Kind, Op, Slot};
use super::error::VerifyError;
use super::program::{Const, Function, Program};

/// Largest function accepted, in code words (jump targets must fit the code comfortably).
pub const MAX_CODE_WORDS: usize = 1 << 24;

/// Checks the whole program; the first problem found is the error.
pub fn verify(prog: &Program) -> Result<(), VerifyError> {
    if prog.funcs.is_empty() {
        return Err(VerifyError {
            func: 0,
            pc: 0,
            reason: "program has no functions".into(),
        });
    }
    let names = prog
        .imports
        .iter()
        .map(|i| i.name)
        .chain(prog.buffers.iter().copied());
    for k in names {
        if !matches!(prog.consts.get(k as usize), Some(Const::Str(_))) {
            return Err(VerifyError {
                func: 0,
                pc: 0,
                reason: format!("host import or buffer name k{k} is not a string constant"),
            });
        }
    }
    for (fi, f) in prog.funcs.iter().enumerate() {
        FnCheck { prog, fi, f }.run()?;
    }
    Ok(())
}

/// A set of registers (a frame has at most 256).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Regs([u64; 4]);

impl Regs {
    fn first(n: usize) -> Regs {
        let mut r = Regs([0; 4]);
        (0..n).for_each(|i| r.set(i));
        r
    }
    fn has(&self, i: usize) -> bool {
        self.0[i / 64] >> (i % 64) & 1 == 1
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn keep_below(&mut self, n: usize) {
        (n..256).for_each(|i| self.0[i / 64] &= !(1 << (i % 64)));
    }
    fn meet(&self, o: &Regs) -> Regs {
        Regs([
            self.0[0] & o.0[0],
            self.0[1] & o.0[1],
            self.0[2] & o.0[2],
            self.0[3] & o.0[3],
        ])
    }
}

struct FnCheck<'p> {
    prog: &'p Program,
    fi: usize,
    f: &'p Function,
}

impl FnCheck<'_> {
    fn err(&self, pc: usize, reason: String) -> VerifyError {
        VerifyError {
            func: self.fi,
            pc,
            reason,
        }
    }

    fn run(&self) -> Result<(), VerifyError> {
        self.header()?;
        let starts = self.decode()?;
        let mut pc = 0;
        while pc < self.f.code.len() {
            let op = self.op_at(pc);
            self.operands(pc, op, &starts)?;
            if !op.is_terminator() && pc + op.width() == self.f.code.len() {
                return Err(self.err(
                    pc,
                    format!("`{}` falls off the end of the code", op.mnemonic()),
                ));
            }
            pc += op.width();
        }
        self.loop_markers()?;
        self.register_flow()
    }

    /// Every `loop` marker precedes a loop header: the target of a jump at or after it.
    /// (Step 4; operands and ends are checked, so every target is an instruction start.)
    fn loop_markers(&self) -> Result<(), VerifyError> {
        let code = &self.f.code;
        let mut header = vec![false; code.len()];
        let mut any = false;
        let mut pc = 0;
        while pc < code.len() {
            let op = self.op_at(pc);
            any |= op == Op::Loop;
            if op.operands().iter().any(|(_, k)| *k == Kind::Target) {
                let t = operand(code, pc, Slot::Ext, Kind::Target) as usize;
                if t <= pc {
                    header[t] = true;
                }
            }
            pc += op.width();
        }
        if !any {
            return Ok(());
        }
        let mut pc = 0;
        while pc < code.len() {
            let op = self.op_at(pc);
            if op == Op::Loop && !header[pc + 1] {
                return Err(self.err(
                    pc,
                    format!(
                        "`loop` is not followed by a loop header (no backward jump targets {})",
                        pc + 1
                    ),
                ));
            }
            pc += op.width();
        }
        Ok(())
    }

    fn header(&self) -> Result<(), VerifyError> {
        let f = self.f;
        let bad = |r: String| Err(self.err(0, r));
        if f.nregs == 0 || f.nregs > 256 {
            return bad(format!("frame size {} is not in 1..=256", f.nregs));
        }
        if f.arity as u16 > f.nregs {
            return bad(format!("arity {} exceeds frame size {}", f.arity, f.nregs));
        }
        if self.fi == 0 && f.arity != 0 {
            return bad("entry function f0 must take no parameters".into());
        }
        if f.code.is_empty() || f.code.len() > MAX_CODE_WORDS {
            return bad(format!(
                "code length {} is not in 1..={MAX_CODE_WORDS}",
                f.code.len()
            ));
        }
        if f.lines.len() != f.code.len() {
            return bad(format!(
                "{} line entries for {} code words",
                f.lines.len(),
                f.code.len()
            ));
        }
        Ok(())
    }

    fn op_at(&self, pc: usize) -> Op {
        // `decode` proved every instruction start holds a known opcode.
        Op::from_byte(self.f.code[pc] as u8).unwrap_or(Op::RetNil)
    }

    /// Marks instruction starts; rejects unknown opcodes and missing extension words.
    fn decode(&self) -> Result<Vec<bool>, VerifyError> {
        let code = &self.f.code;
        let mut starts = vec![false; code.len()];
        let mut pc = 0;
        while pc < code.len() {
            let byte = code[pc] as u8;
            let op = Op::from_byte(byte)
                .ok_or_else(|| self.err(pc, format!("unknown opcode {byte:#04x}")))?;
            if pc + op.width() > code.len() {
                return Err(self.err(
                    pc,
                    format!("`{}` is missing its extension word", op.mnemonic()),
                ));
            }
            starts[pc] = true;
            pc += op.width();
        }
        Ok(starts)
    }

    fn operands(&self, pc: usize, op: Op, starts: &[bool]) -> Result<(), VerifyError> {
        let code = &self.f.code;
        let nregs = self.f.nregs as usize;
        let count = || operand(code, pc, Slot::C, Kind::Count) as usize;
        for &(slot, kind) in op.operands() {
            let v = operand(code, pc, slot, kind);
            let u = v as usize;
            let what = op.mnemonic();
            match kind {
                Kind::Read | Kind::Write | Kind::ReadWrite if u >= nregs => {
                    return Err(self.err(
                        pc,
                        format!("`{what}` register r{u} out of range (frame has {nregs})"),
                    ));
                }
                Kind::Window if u + count().max(1) > nregs => {
                    let n = count();
                    return Err(self.err(
                        pc,
                        format!("`{what}` window r{u}..r{} exceeds frame of {nregs}", u + n),
                    ));
                }
                Kind::Const | Kind::NumConst if u >= self.prog.consts.len() => {
                    return Err(self.err(
                        pc,
                        format!(
                            "`{what}` constant k{u} out of range (pool has {})",
                            self.prog.consts.len()
                        ),
                    ));
                }
                Kind::NumConst if matches!(self.prog.consts[u], Const::Str(_)) => {
                    return Err(self.err(
                        pc,
                        format!("`{what}` needs a numeric constant, k{u} is a string"),
                    ));
                }
                Kind::Flag if v > 1 => {
                    return Err(self.err(pc, format!("`{what}` flag {v} is not 0 or 1")));
                }
                Kind::Target if u >= code.len() => {
                    return Err(self.err(
                        pc,
                        format!(
                            "jump target {u} out of range (code has {} words)",
                            code.len()
                        ),
                    ));
                }
                Kind::Target if !starts[u] => {
                    return Err(self.err(pc, format!("jump target {u} is inside an instruction")));
                }
                Kind::Func => self.check_call(pc, u, count())?,
                Kind::Builtin => self.check_builtin(pc, u, count())?,
                Kind::HostFn => self.check_host(pc, u, count())?,
                Kind::Buffer if u >= self.prog.buffers.len() => {
                    return Err(self.err(
                        pc,
                        format!(
                            "`{what}` host buffer {u} out of range (program has {})",
                            self.prog.buffers.len()
                        ),
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn check_call(&self, pc: usize, callee: usize, nargs: usize) -> Result<(), VerifyError> {
        let Some(f) = self.prog.funcs.get(callee) else {
            return Err(self.err(pc, format!("call to f{callee}, which does not exist")));
        };
        if f.arity as usize != nargs {
            return Err(self.err(
                pc,
                format!(
                    "call to f{callee} with {nargs} arguments, it takes {}",
                    f.arity
                ),
            ));
        }
        Ok(())
    }

    fn check_builtin(&self, pc: usize, id: usize, nargs: usize) -> Result<(), VerifyError> {
        let Some(b) = Builtin::from_index(id) else {
            return Err(self.err(pc, format!("builtin b{id} does not exist")));
        };
        match b.arity() {
            Some(n) if n != nargs => Err(self.err(
                pc,
                format!(
                    "builtin {} called with {nargs} arguments, it takes {n}",
                    b.name()
                ),
            )),
            _ => Ok(()),
        }
    }

    fn check_host(&self, pc: usize, id: usize, nargs: usize) -> Result<(), VerifyError> {
        let Some(imp) = self.prog.imports.get(id) else {
            return Err(self.err(
                pc,
                format!(
                    "host function h{id} does not exist (program imports {})",
                    self.prog.imports.len()
                ),
            ));
        };
        if imp.arity as usize != nargs {
            return Err(self.err(
                pc,
                format!(
                    "host function h{id} called with {nargs} arguments, it takes {}",
                    imp.arity
                ),
            ));
        }
        Ok(())
    }

    /// Step 5: every register read is preceded by a write on every path.
    fn register_flow(&self) -> Result<(), VerifyError> {
        let code = &self.f.code;
        let mut state: Vec<Option<Regs>> = vec![None; code.len()];
        let mut work = VecDeque::new();
        state[0] = Some(Regs::first(self.f.arity as usize));
        work.push_back(0usize);
        while let Some(pc) = work.pop_front() {
            let Some(mut regs) = state[pc] else { continue };
            let op = self.op_at(pc);
            self.transfer(pc, op, &mut regs)?;
            for succ in successors(code, pc, op).into_iter().flatten() {
                let merged = match state[succ] {
                    None => regs,
                    Some(old) => old.meet(&regs),
                };
                if state[succ] != Some(merged) {
                    state[succ] = Some(merged);
                    work.push_back(succ);
                }
            }
        }
        Ok(())
    }

    fn transfer(&self, pc: usize, op: Op, regs: &mut Regs) -> Result<(), VerifyError> {
        let code = &self.f.code;
        let count = operand(code, pc, Slot::C, Kind::Count) as usize;
        let need = |r: usize, regs: &Regs| {
            if regs.has(r) {
                Ok(())
            } else {
                Err(self.err(
                    pc,
                    format!("`{}` reads r{r} before it is written", op.mnemonic()),
                ))
            }
        };
        for &(slot, kind) in op.operands() {
            let r = operand(code, pc, slot, kind) as usize;
            match kind {
                Kind::Read | Kind::ReadWrite => need(r, regs)?,
                Kind::Window => (r..r + count).try_for_each(|i| need(i, regs))?,
                _ => {}
            }
        }
        for &(slot, kind) in op.operands() {
            let r = operand(code, pc, slot, kind) as usize;
            match (op, kind) {
                (_, Kind::Write) => regs.set(r),
                (Op::Call, Kind::Window) => {
                    regs.keep_below(r);
                    regs.set(r);
                }
                (Op::CallB | Op::CallH, Kind::Window) => regs.set(r),
                _ => {}
            }
        }
        Ok(())
    }
}

/// Where control can go after the instruction at `pc`.
pub(crate) fn successors(code: &[u32], pc: usize, op: Op) -> [Option<usize>; 2] {
    let next = Some(pc + op.width());
    let target = || Some(code[pc + 1] as usize);
    match op {
        Op::Ret | Op::RetNil => [None, None],
        Op::Jmp => [target(), None],
        _ if op.operands().iter().any(|(_, k)| *k == Kind::Target) => [target(), next],
        _ => [next, None],
    }
}
