//! The compiler: [`Ast`] to a [`Program`].
//!
//! Registers: a function's parameters are registers `0 .. arity`; each `let` takes the next free
//! register for the rest of its block; temporaries are taken above the locals and given back
//! after the instruction that consumes them, so the register file is a stack. A call's argument
//! window is always at the top of that stack (the callee's frame overlaps everything above it).
//!
//! Control flow: conditions compile to fused compare-and-branch instructions; `while` loops are
//! rotated (`jmp cond; body: ..; cond: if c goto body`), so each iteration costs one branch and
//! the loop header — the target of the backward branch — is the first instruction of the body.
//!
//! Scope: top-level statements form function 0 (`main`); functions see only their parameters
//! and their own locals (there are no globals).
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::ast::*;
use super::avec::Allocator;
use crate::vm::builtins::Builtin;
use crate::vm::bytecode::{encode_abc, encode_abx, Op};
use crate::vm::error::SyntaxError;
use crate::vm::host::{Imports, Ty};
use crate::vm::program::{Const, Function, Import, Program};

/// Compiles a parsed file; names that are neither the program's functions nor builtins are
/// resolved against `host` (host functions, host buffers).
pub fn compile_with<A: Allocator + Copy>(
    ast: &Ast<'_, A>,
    host: &dyn Imports,
) -> Result<Program, SyntaxError> {
    let mut prog = Program::default();
    for b in host.buffers() {
        let k = prog.intern(Const::Str(b.into()));
        prog.buffers.push(k as u32);
    }
    let mut sigs: Vec<(&str, usize)> = Vec::new();
    for f in ast.fns.iter() {
        let err = |msg: String| SyntaxError {
            line: f.line,
            col: f.col,
            msg,
            phase: "compile error",
        };
        if sigs.iter().any(|(n, _)| *n == f.name) {
            return Err(err(format!("function `{}` is defined twice", f.name)));
        }
        if Builtin::from_name(f.name).is_some() {
            return Err(err(format!(
                "`{}` is a builtin and cannot be redefined",
                f.name
            )));
        }
        if host.function(f.name).is_some() || host.buffer(f.name).is_some() {
            return Err(err(format!(
                "`{}` is provided by the host and cannot be redefined",
                f.name
            )));
        }
        if f.params.len > 255 {
            return Err(err(format!(
                "function `{}` has more than 255 parameters",
                f.name
            )));
        }
        sigs.push((f.name, f.params.len as usize));
    }
    let main = FnCompiler::new(ast, &mut prog, &sigs, host, "main", &[]).finish(ast.main)?;
    prog.funcs.push(main);
    for f in ast.fns.iter() {
        let params = ast.name_list(f.params);
        let func = FnCompiler::new(ast, &mut prog, &sigs, host, f.name, params).finish(f.body)?;
        prog.funcs.push(func);
    }
    Ok(prog)
}

type Patches = Vec<usize>;

struct FnCompiler<'c, 's, A: Allocator + Copy> {
    ast: &'c Ast<'s, A>,
    prog: &'c mut Program,
    sigs: &'c [(&'s str, usize)],
    host: &'c dyn Imports,
    func: Function,
    locals: Vec<(&'s str, u8)>,
    next_reg: usize,
    loops: Vec<Patches>,
    /// Set by [`Self::expr_fresh`]: the next `expr_to` target is a brand-new top register, so a
    /// call may put its argument window there and skip the result move.
    fresh_dst: bool,
    /// PC of the last instruction emitted (its first word).
    last_start: usize,
    /// The highest PC known to be a jump target (a patched forward jump's target or a loop's
    /// top): an instruction emitted there may be reached without the one before it.
    label: usize,
    line: u32,
    col: u32,
}

impl<'c, 's, A: Allocator + Copy> FnCompiler<'c, 's, A> {
    fn new(
        ast: &'c Ast<'s, A>,
        prog: &'c mut Program,
        sigs: &'c [(&'s str, usize)],
        host: &'c dyn Imports,
        name: &str,
        params: &[&'s str],
    ) -> Self {
        let name = prog.intern(Const::Str(name.into())) as u32;
        let arity = params.len() as u8;
        let locals = params
            .iter()
            .enumerate()
            .map(|(i, p)| (*p, i as u8))
            .collect();
        let func = Function {
            name,
            arity,
            nregs: arity.max(1) as u16,
            code: Vec::new(),
            lines: Vec::new(),
        };
        FnCompiler {
            ast,
            prog,
            sigs,
            host,
            func,
            locals,
            next_reg: params.len(),
            loops: Vec::new(),
            fresh_dst: false,
            last_start: 0,
            label: 0,
            line: 0,
            col: 0,
        }
    }

    fn finish(mut self, body: List) -> Result<Function, SyntaxError> {
        self.block(body)?;
        self.emit(Op::RetNil as u32);
        Ok(self.func)
    }

    fn err(&self, msg: String) -> SyntaxError {
        SyntaxError {
            line: self.line,
            col: self.col,
            msg,
            phase: "compile error",
        }
    }

    fn here(&self) -> usize {
        self.func.code.len()
    }
    /// Emits the first word of an instruction.
    fn emit(&mut self, word: u32) {
        self.last_start = self.here();
        self.emit_ext(word);
    }
    /// Emits an extension word.
    fn emit_ext(&mut self, word: u32) {
        self.func.code.push(word);
        self.func.lines.push(self.line);
    }
    fn emit_abc(&mut self, op: Op, a: u8, b: u8, c: u8) {
        self.emit(encode_abc(op, a, b, c));
    }
    /// `move dst, src`, left out right after `move src, dst` (`h = f(h); g(h)` copies the
    /// result into `h` and back into the call window): `dst` already holds `src`'s value,
    /// unless a jump lands between the two.
    fn emit_move(&mut self, dst: u8, src: u8) {
        let here = self.here();
        let undo = encode_abc(Op::Move, src, dst, 0);
        if here > 0
            && self.label != here
            && self.last_start + 1 == here
            && self.func.code[self.last_start] == undo
        {
            return;
        }
        self.emit_abc(Op::Move, dst, src, 0);
    }
    /// Emits a jump-carrying instruction with its target still open; returns the patch site.
    fn emit_jump(&mut self, word0: u32) -> usize {
        self.emit(word0);
        self.emit_ext(u32::MAX);
        self.here() - 1
    }
    fn patch(&mut self, sites: &[usize], target: usize) {
        if !sites.is_empty() {
            self.label = self.label.max(target);
        }
        sites
            .iter()
            .for_each(|&s| self.func.code[s] = target as u32);
    }

    fn alloc_reg(&mut self) -> Result<u8, SyntaxError> {
        let r = self.next_reg;
        if r > 255 {
            return Err(self.err("function needs more than 256 registers".into()));
        }
        self.next_reg += 1;
        self.func.nregs = self.func.nregs.max(self.next_reg as u16);
        Ok(r as u8)
    }
    fn lookup(&self, name: &str) -> Result<u8, SyntaxError> {
        match self.locals.iter().rev().find(|(n, _)| *n == name) {
            Some(&(_, r)) => Ok(r),
            None if self.host.buffer(name).is_some() => Err(self.err(format!(
                "host buffer `{name}` is not a value: index it (`{name}[i]`), take \
                 `len({name})` or pass it to a host function"
            ))),
            None => Err(self.err(format!("unknown variable `{name}`"))),
        }
    }
    /// The host buffer `e` names (a name that is not a local variable).
    fn buffer_named(&self, e: ExprId) -> Option<u8> {
        match self.ast.expr(e).kind {
            ExprKind::Var(name) if !self.locals.iter().any(|(n, _)| *n == name) => {
                self.host.buffer(name).and_then(|b| u8::try_from(b).ok())
            }
            _ => None,
        }
    }
    fn constant(&mut self, k: Const) -> Result<usize, SyntaxError> {
        let i = self.prog.intern(k);
        if i > u16::MAX as usize {
            return Err(self.err("more than 65536 constants".into()));
        }
        Ok(i)
    }
    /// A numeric literal's constant index, when it fits the 8-bit `K` operand.
    fn small_num_const(&mut self, e: ExprId) -> Option<u8> {
        let k = self.num_literal(e)?;
        u8::try_from(self.prog.intern(k)).ok()
    }
    /// The factors of `name = name + p * q` (neither a numeric literal, which `mulk` takes
    /// better), compiled as one `muladd`.
    fn mul_add_operands(&mut self, name: &str, e: ExprId) -> Option<(ExprId, ExprId)> {
        let ExprKind::Binary(BinOp::Add, l, r) = self.ast.expr(e).kind else {
            return None;
        };
        let ExprKind::Var(v) = self.ast.expr(l).kind else {
            return None;
        };
        let ExprKind::Binary(BinOp::Mul, p, q) = self.ast.expr(r).kind else {
            return None;
        };
        if v != name || self.num_literal(p).is_some() || self.num_literal(q).is_some() {
            return None;
        }
        Some((p, q))
    }
    /// An int literal index in `0..=255`, which `getidxi`/`setidxi` take as an immediate.
    fn small_index(&self, e: ExprId) -> Option<u8> {
        match self.ast.expr(e).kind {
            ExprKind::Int(i) => u8::try_from(i).ok(),
            _ => None,
        }
    }
    /// The value of a numeric literal, folding a leading minus (`-1`, `-2.5`).
    fn num_literal(&self, e: ExprId) -> Option<Const> {
        match self.ast.expr(e).kind {
            ExprKind::Int(i) => Some(Const::Int(i)),
            ExprKind::Float(x) => Some(Const::Float(x)),
            ExprKind::Neg(inner) => match self.num_literal(inner)? {
                Const::Int(i) => Some(Const::Int(i.wrapping_neg())),
                Const::Float(x) => Some(Const::Float(-x)),
                Const::Str(_) => None,
            },
            _ => None,
        }
    }
    fn at(&mut self, line: u32, col: u32) {
        self.line = line;
        self.col = col;
    }

    fn block(&mut self, body: List) -> Result<(), SyntaxError> {
        let (locals, next) = (self.locals.len(), self.next_reg);
        for &s in self.ast.block(body) {
            self.stmt(s)?;
        }
        self.locals.truncate(locals);
        self.next_reg = next;
        Ok(())
    }

    fn stmt(&mut self, id: StmtId) -> Result<(), SyntaxError> {
        let s = *self.ast.stmt(id);
        self.at(s.line, s.col);
        let temps = self.next_reg;
        match s.kind {
            StmtKind::Let(name, e) => {
                let r = self.expr_fresh(e)?;
                self.locals.push((name, r));
                return Ok(());
            }
            StmtKind::Assign(name, e) => {
                let r = self.lookup(name)?;
                // `&&`/`||` write their target before evaluating the right side, which may read
                // the variable: go through a temporary.
                if matches!(self.ast.expr(e).kind, ExprKind::And(..) | ExprKind::Or(..)) {
                    let t = self.expr_any(e)?;
                    self.emit_move(r, t);
                } else if let Some((p, q)) = self.mul_add_operands(name, e) {
                    let (y, z) = (self.expr_any(p)?, self.expr_any(q)?);
                    let ex = *self.ast.expr(e);
                    self.at(ex.line, ex.col);
                    self.emit_abc(Op::MulAdd, r, y, z);
                } else {
                    self.expr_to(e, r)?;
                }
            }
            StmtKind::SetIndex(obj, idx, v) if self.buffer_named(obj).is_some() => {
                let b = self.buffer_named(obj).unwrap_or(0);
                let (i, v) = (self.expr_any(idx)?, self.expr_any(v)?);
                self.at(s.line, s.col);
                self.emit_abc(Op::BSet, b, i, v);
            }
            StmtKind::SetIndex(obj, idx, v) => {
                let o = self.expr_any(obj)?;
                if let Some(k) = self.small_index(idx) {
                    let v = self.expr_any(v)?;
                    self.emit_abc(Op::SetIdxI, o, k, v);
                } else {
                    let (i, v) = (self.expr_any(idx)?, self.expr_any(v)?);
                    self.emit_abc(Op::SetIdx, o, i, v);
                }
            }
            StmtKind::Expr(e) => {
                self.expr_any(e)?;
            }
            StmtKind::If(cond, then, other) => self.if_stmt(cond, then, other)?,
            StmtKind::While(cond, body) => self.while_stmt(cond, body)?,
            StmtKind::Return(Some(e)) => {
                let r = self.expr_any(e)?;
                self.emit_abc(Op::Ret, r, 0, 0);
            }
            StmtKind::Return(None) => self.emit(Op::RetNil as u32),
            StmtKind::Break => {
                if self.loops.is_empty() {
                    return Err(self.err("`break` outside a loop".into()));
                }
                let site = self.emit_jump(Op::Jmp as u32);
                if let Some(l) = self.loops.last_mut() {
                    l.push(site);
                }
            }
        }
        self.next_reg = temps;
        Ok(())
    }

    fn if_stmt(
        &mut self,
        cond: ExprId,
        then: List,
        other: Option<List>,
    ) -> Result<(), SyntaxError> {
        let mut to_else = Patches::new();
        self.cond_jump(cond, false, &mut to_else)?;
        self.block(then)?;
        match other {
            Some(other) => {
                let to_end = self.emit_jump(Op::Jmp as u32);
                let else_pc = self.here();
                self.patch(&to_else, else_pc);
                self.block(other)?;
                let end = self.here();
                self.patch(&[to_end], end);
            }
            None => {
                let end = self.here();
                self.patch(&to_else, end);
            }
        }
        Ok(())
    }

    /// `while c { body }` compiles inverted: test once on entry, then test again at the bottom
    /// and branch back, so an iteration costs one branch. When the body ends with `v = v + K`
    /// and the condition is `v < limit`, the step and the test fuse into one `forlt`/`forltk`.
    /// A `loop` marker right before the header (after the entry test) is where control falls
    /// into the loop: the interpreter counts that arrival like a back edge, so compiled code
    /// for the loop runs from its first iteration.
    ///
    /// ```text
    ///         <test c, jump to end when false>
    ///         loop
    /// top:    <body>
    ///         <test c, jump to top when true>     (or one forlt/forltk/... step)
    /// end:
    /// ```
    fn while_stmt(&mut self, cond: ExprId, body: List) -> Result<(), SyntaxError> {
        let mut exits = Patches::new();
        self.cond_jump(cond, false, &mut exits)?;
        self.emit(Op::Loop as u32);
        let top = self.here();
        self.label = top;
        self.loops.push(Patches::new());
        self.block(body)?;
        let e = *self.ast.expr(cond);
        self.at(e.line, e.col);
        if !self.fuse_loop_step(cond, body, top)? {
            let mut to_top = Patches::new();
            self.cond_jump(cond, true, &mut to_top)?;
            self.patch(&to_top, top);
            if to_top.is_empty() {
                // No test jumps back: the condition is a constant false (the entry test then
                // always jumps to the end), so the marker is unreachable and `top` is no loop
                // header. The verifier accepts a `loop` only before a header; an unreachable
                // `retnil` keeps every PC where it is.
                self.func.code[top - 1] = Op::RetNil as u32;
            }
        }
        let breaks = self.loops.pop().unwrap_or_default();
        let end = self.here();
        self.patch(&breaks, end);
        self.patch(&exits, end);
        Ok(())
    }

    /// Rewrites a trailing `addk v, v, K` plus the test `v < limit` into one fused instruction.
    /// Only when the body's last statement is that assignment itself, so no jump inside the body
    /// can target the spot where the test would have started.
    fn fuse_loop_step(
        &mut self,
        cond: ExprId,
        body: List,
        top: usize,
    ) -> Result<bool, SyntaxError> {
        let Some(&last_stmt) = self.ast.block(body).last() else {
            return Ok(false);
        };
        let StmtKind::Assign(var, value) = self.ast.stmt(last_stmt).kind else {
            return Ok(false);
        };
        let ExprKind::Binary(BinOp::Add, _, _) = self.ast.expr(value).kind else {
            return Ok(false);
        };
        let last = self.last_start;
        if last < top || last + 1 != self.here() {
            return Ok(false);
        }
        // `addk A, A, K` (an in-place step by a constant) or `add A, A, R` (by a register).
        let w = self.func.code[last];
        let (a, b, k) = ((w >> 8) as u8, (w >> 16) as u8, (w >> 24) as u8);
        let step_reg = w as u8 == Op::Add as u8;
        // The body's scope is closed: a variable the body declared no longer resolves (it
        // cannot be the loop variable), so it is not fused rather than an error.
        if !(step_reg || w as u8 == Op::AddK as u8) || a != b || self.lookup(var).ok() != Some(a) {
            return Ok(false);
        }
        let (le, l, r) = match self.ast.expr(cond).kind {
            ExprKind::Binary(BinOp::Lt, l, r) => (false, l, r),
            ExprKind::Binary(BinOp::Le, l, r) => (true, l, r),
            _ => return Ok(false),
        };
        let ExprKind::Var(name) = self.ast.expr(l).kind else {
            return Ok(false);
        };
        if name != var {
            return Ok(false);
        }
        let const_limit = if step_reg {
            None
        } else {
            self.small_num_const(r)
        };
        let fused = if let Some(limit) = const_limit {
            let op = if le { Op::ForLeK } else { Op::ForLtK };
            encode_abc(op, a, k, limit)
        } else if let ExprKind::Var(limit) = self.ast.expr(r).kind {
            let op = match (step_reg, le) {
                (false, false) => Op::ForLt,
                (false, true) => Op::ForLe,
                (true, false) => Op::ForLtR,
                (true, true) => Op::ForLeR,
            };
            encode_abc(op, a, k, self.lookup(limit)?)
        } else {
            return Ok(false);
        };
        self.func.code[last] = fused;
        self.emit_ext(top as u32);
        Ok(true)
    }

    /// Emits code that jumps (via `patches`) when `truthy(e) == sense` and falls through otherwise.
    fn cond_jump(
        &mut self,
        e: ExprId,
        sense: bool,
        patches: &mut Patches,
    ) -> Result<(), SyntaxError> {
        let temps = self.next_reg;
        match self.ast.expr(e).kind {
            ExprKind::Not(x) => self.cond_jump(x, !sense, patches)?,
            ExprKind::Bool(b) => {
                if b == sense {
                    patches.push(self.emit_jump(Op::Jmp as u32));
                }
            }
            ExprKind::And(l, r) | ExprKind::Or(l, r) => {
                let is_and = matches!(self.ast.expr(e).kind, ExprKind::And(..));
                if is_and != sense {
                    // and/false: either side false jumps; or/true: either side true jumps.
                    self.cond_jump(l, sense, patches)?;
                    self.cond_jump(r, sense, patches)?;
                } else {
                    let mut skip = Patches::new();
                    self.cond_jump(l, !sense, &mut skip)?;
                    self.cond_jump(r, sense, patches)?;
                    let here = self.here();
                    self.patch(&skip, here);
                }
            }
            ExprKind::Binary(op, l, r) if is_comparison(op) => {
                self.compare_jump(op, l, r, sense, patches)?
            }
            _ => {
                let r = self.expr_any(e)?;
                patches.push(self.emit_jump(encode_abc(Op::JmpIf, r, sense as u8, 0)));
            }
        }
        self.next_reg = temps;
        Ok(())
    }

    fn compare_jump(
        &mut self,
        op: BinOp,
        l: ExprId,
        r: ExprId,
        sense: bool,
        patches: &mut Patches,
    ) -> Result<(), SyntaxError> {
        // Ne is Eq with the opposite sense.
        let (op, sense) = if op == BinOp::Ne {
            (BinOp::Eq, !sense)
        } else {
            (op, sense)
        };
        if let Some(k) = self.small_num_const(r) {
            let reg = self.expr_any(l)?;
            let kop = match op {
                BinOp::Lt => Op::JLtK,
                BinOp::Le => Op::JLeK,
                BinOp::Gt => Op::JGtK,
                BinOp::Ge => Op::JGeK,
                _ => Op::JEqK,
            };
            patches.push(self.emit_jump(encode_abc(kop, reg, k, sense as u8)));
            return Ok(());
        }
        if let Some(k) = self.small_num_const(l) {
            let reg = self.expr_any(r)?;
            let kop = match op {
                BinOp::Lt => Op::JGtK,
                BinOp::Le => Op::JGeK,
                BinOp::Gt => Op::JLtK,
                BinOp::Ge => Op::JLeK,
                _ => Op::JEqK,
            };
            patches.push(self.emit_jump(encode_abc(kop, reg, k, sense as u8)));
            return Ok(());
        }
        let (x, y) = (self.expr_any(l)?, self.expr_any(r)?);
        let (jop, x, y) = match op {
            BinOp::Lt => (Op::JLt, x, y),
            BinOp::Le => (Op::JLe, x, y),
            BinOp::Gt => (Op::JLt, y, x),
            BinOp::Ge => (Op::JLe, y, x),
            _ => (Op::JEq, x, y),
        };
        patches.push(self.emit_jump(encode_abc(jop, x, y, sense as u8)));
        Ok(())
    }

    /// The register holding `e`: a variable's own register, or a fresh temporary.
    fn expr_any(&mut self, e: ExprId) -> Result<u8, SyntaxError> {
        if let ExprKind::Var(name) = self.ast.expr(e).kind {
            let saved = (self.line, self.col);
            let ex = *self.ast.expr(e);
            self.at(ex.line, ex.col);
            let r = self.lookup(name);
            self.at(saved.0, saved.1);
            return r;
        }
        self.expr_fresh(e)
    }

    /// Evaluates `e` into a new register on top of the register stack.
    fn expr_fresh(&mut self, e: ExprId) -> Result<u8, SyntaxError> {
        let r = self.alloc_reg()?;
        self.fresh_dst = true;
        self.expr_to(e, r)?;
        Ok(r)
    }

    /// Emits code leaving the value of `e` in register `dst`.
    fn expr_to(&mut self, e: ExprId, dst: u8) -> Result<(), SyntaxError> {
        let ex = *self.ast.expr(e);
        self.at(ex.line, ex.col);
        let fresh = core::mem::take(&mut self.fresh_dst);
        let temps = self.next_reg;
        match ex.kind {
            ExprKind::Int(i) if i16::try_from(i).is_ok() => {
                self.emit(encode_abx(Op::LoadInt, dst, i as i16 as u16))
            }
            ExprKind::Int(i) => self.load_const(dst, Const::Int(i))?,
            ExprKind::Float(x) => self.load_const(dst, Const::Float(x))?,
            ExprKind::Str(raw) => self.load_const(dst, Const::Str(unescape(raw).into()))?,
            ExprKind::Bool(b) => self.emit_abc(Op::LoadBool, dst, b as u8, 0),
            ExprKind::Nil => self.emit_abc(Op::LoadNil, dst, 0, 0),
            ExprKind::Var(name) => {
                let r = self.lookup(name)?;
                if r != dst {
                    self.emit_move(dst, r);
                }
            }
            ExprKind::Neg(_) if self.num_literal(e).is_some() => match self.num_literal(e) {
                Some(Const::Int(i)) if i16::try_from(i).is_ok() => {
                    self.emit(encode_abx(Op::LoadInt, dst, i as i16 as u16))
                }
                Some(k) => self.load_const(dst, k)?,
                None => {}
            },
            ExprKind::Neg(x) => {
                let r = self.expr_any(x)?;
                self.emit_abc(Op::Neg, dst, r, 0);
            }
            ExprKind::Not(x) => {
                let r = self.expr_any(x)?;
                self.emit_abc(Op::Not, dst, r, 0);
            }
            ExprKind::Binary(op, l, r) => self.binary(op, l, r, dst)?,
            ExprKind::And(l, r) | ExprKind::Or(l, r) => {
                let is_and = matches!(ex.kind, ExprKind::And(..));
                self.expr_to(l, dst)?;
                // `a && b` is `a` when `a` is falsy, else `b`; `||` the other way round.
                let skip = self.emit_jump(encode_abc(Op::JmpIf, dst, !is_and as u8, 0));
                self.expr_to(r, dst)?;
                let end = self.here();
                self.patch(&[skip], end);
            }
            ExprKind::Call(name, args) => {
                if fresh && dst as usize + 1 == self.next_reg {
                    // Nothing lives in `dst` yet: the argument window may start there.
                    self.next_reg = dst as usize;
                }
                self.call(name, args, dst, ex)?;
            }
            ExprKind::Index(obj, idx) if self.buffer_named(obj).is_some() => {
                let b = self.buffer_named(obj).unwrap_or(0);
                let i = self.expr_any(idx)?;
                self.at(ex.line, ex.col);
                self.emit_abc(Op::BGet, dst, b, i);
            }
            ExprKind::Index(obj, idx) => {
                let o = self.expr_any(obj)?;
                if let Some(k) = self.small_index(idx) {
                    self.at(ex.line, ex.col);
                    self.emit_abc(Op::GetIdxI, dst, o, k);
                } else {
                    let i = self.expr_any(idx)?;
                    self.at(ex.line, ex.col);
                    self.emit_abc(Op::GetIdx, dst, o, i);
                }
            }
            ExprKind::Array(items) => {
                let (base, n) = self.window(items)?;
                self.at(ex.line, ex.col);
                self.emit_abc(Op::NewArr, dst, base, n);
            }
        }
        self.next_reg = temps;
        Ok(())
    }

    fn load_const(&mut self, dst: u8, k: Const) -> Result<(), SyntaxError> {
        let i = self.constant(k)?;
        self.emit(encode_abx(Op::LoadK, dst, i as u16));
        Ok(())
    }

    fn binary(&mut self, op: BinOp, l: ExprId, r: ExprId, dst: u8) -> Result<(), SyntaxError> {
        let line = (self.line, self.col);
        let (rr, kop) = match op {
            BinOp::Add => (Op::Add, Op::AddK),
            BinOp::Sub => (Op::Sub, Op::SubK),
            BinOp::Mul => (Op::Mul, Op::MulK),
            BinOp::Div => (Op::Div, Op::DivK),
            BinOp::Mod => (Op::Mod, Op::ModK),
            BinOp::Eq | BinOp::Ne => (Op::Eq, Op::Eq),
            BinOp::Lt | BinOp::Gt => (Op::Lt, Op::Lt),
            BinOp::Le | BinOp::Ge => (Op::Le, Op::Le),
        };
        if kop != rr {
            // `x op K`, and `K op x` for the commutative ops, use the constant operand directly.
            let commutes = matches!(op, BinOp::Add | BinOp::Mul);
            let swapped = if commutes {
                self.small_num_const(l).map(|k| (k, r))
            } else {
                None
            };
            if let Some((k, x)) = self.small_num_const(r).map(|k| (k, l)).or(swapped) {
                let x = self.expr_any(x)?;
                self.at(line.0, line.1);
                self.emit_abc(kop, dst, x, k);
                return Ok(());
            }
        }
        let (x, y) = (self.expr_any(l)?, self.expr_any(r)?);
        self.at(line.0, line.1);
        let (x, y) = if matches!(op, BinOp::Gt | BinOp::Ge) {
            (y, x)
        } else {
            (x, y)
        };
        self.emit_abc(rr, dst, x, y);
        if op == BinOp::Ne {
            self.emit_abc(Op::Not, dst, dst, 0);
        }
        Ok(())
    }

    /// Evaluates `items` into consecutive fresh registers; returns the first and the count.
    fn window(&mut self, items: List) -> Result<(u8, u8), SyntaxError> {
        let n = u8::try_from(items.len)
            .map_err(|_| self.err("more than 255 arguments or elements".into()))?;
        let base = self.next_reg as u8;
        for &item in self.ast.expr_list(items) {
            self.expr_fresh(item)?;
        }
        if n == 0 {
            // The window still holds the result.
            self.alloc_reg()?;
        }
        Ok((base, n))
    }

    fn call(&mut self, name: &str, args: List, dst: u8, ex: Expr<'_>) -> Result<(), SyntaxError> {
        let arg_list = self.ast.expr_list(args);
        if name == "len" && arg_list.len() == 1 && !self.sigs.iter().any(|(n, _)| *n == name) {
            if let Some(b) = self.buffer_named(arg_list[0]) {
                self.at(ex.line, ex.col);
                self.emit_abc(Op::BLen, dst, b, 0);
                return Ok(());
            }
        }
        if !self.sigs.iter().any(|(n, _)| *n == name) && Builtin::from_name(name).is_none() {
            if let Some(params) = self.host.function(name) {
                return self.host_call(name, params, args, dst, ex);
            }
        }
        let target = if let Some(i) = self.sigs.iter().position(|(n, _)| *n == name) {
            let want = self.sigs[i].1;
            if want != args.len as usize {
                return Err(self.err(format!("`{name}` takes {want} arguments, got {}", args.len)));
            }
            Ok(i + 1)
        } else if let Some(b) = Builtin::from_name(name) {
            if b.arity().is_some_and(|n| n != args.len as usize) {
                let want = b.arity().unwrap_or(0);
                return Err(self.err(format!("`{name}` takes {want} arguments, got {}", args.len)));
            }
            Err(b)
        } else {
            return Err(self.err(format!("unknown function `{name}`")));
        };
        let (base, n) = self.window(args)?;
        self.at(ex.line, ex.col);
        match target {
            Ok(fi) => {
                self.emit_abc(Op::Call, base, 0, n);
                self.emit_ext(fi as u32);
            }
            Err(b) => self.emit_abc(Op::CallB, base, b as u8, n),
        }
        if base != dst {
            self.emit_move(dst, base);
        }
        Ok(())
    }
}

impl<'c, 's, A: Allocator + Copy> FnCompiler<'c, 's, A> {
    /// A call of host function `name`: `callh` on the program's import of it, with buffer
    /// names passed as their positions.
    fn host_call(
        &mut self,
        name: &str,
        params: &[Ty],
        args: List,
        dst: u8,
        ex: Expr<'_>,
    ) -> Result<(), SyntaxError> {
        if params.len() != args.len as usize {
            let want = params.len();
            return Err(self.err(format!("`{name}` takes {want} arguments, got {}", args.len)));
        }
        let k = self.constant(Const::Str(name.into()))? as u32;
        let import = match self.prog.imports.iter().position(|i| i.name == k) {
            Some(i) => i,
            None => {
                self.prog.imports.push(Import {
                    name: k,
                    arity: params.len() as u8,
                });
                self.prog.imports.len() - 1
            }
        };
        let import = u8::try_from(import)
            .map_err(|_| self.err("more than 256 host functions called".into()))?;
        let base = self.next_reg as u8;
        let items = self.ast.expr_list(args);
        for (i, (&item, ty)) in items.iter().zip(params).enumerate() {
            if *ty == Ty::Buffer {
                let Some(b) = self.buffer_named(item) else {
                    let at = *self.ast.expr(item);
                    self.at(at.line, at.col);
                    return Err(self.err(format!(
                        "argument {} of `{name}` must be a host buffer",
                        i + 1
                    )));
                };
                let r = self.alloc_reg()?;
                self.emit(encode_abx(Op::LoadInt, r, b as u16));
            } else {
                self.expr_fresh(item)?;
            }
        }
        if params.is_empty() {
            // The window still holds the result.
            self.alloc_reg()?;
        }
        self.at(ex.line, ex.col);
        self.emit_abc(Op::CallH, base, import, params.len() as u8);
        if base != dst {
            self.emit_move(dst, base);
        }
        Ok(())
    }
}

fn is_comparison(op: BinOp) -> bool {
    matches!(
        op,
        BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge
    )
}

/// Decodes the escapes the lexer validated.
fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(ch) = chars.next() {
        if ch != '\\' {
            out.push(ch);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}
