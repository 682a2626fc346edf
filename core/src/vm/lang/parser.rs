//! The parser: tokens to [`Ast`], by recursive descent.
//!
//! ```text
//! program  := (fn_decl | stmt)*
//! fn_decl  := "fn" IDENT "(" (IDENT ("," IDENT)*)? ")" block
//! block    := "{" stmt* "}"
//! stmt     := "let" IDENT "=" expr ";" | "if" expr block ("else" (block | if_stmt))?
//!           | "while" expr block | "return" expr? ";" | "break" ";"
//!           | expr ("=" expr)? ";"                  (assignment target: IDENT or e[i])
//! expr     := or;  or := and ("||" and)*;  and := cmp ("&&" cmp)*
//! cmp      := sum (("=="|"!="|"<"|"<="|">"|">=") sum)*
//! sum      := term (("+"|"-") term)*;  term := unary (("*"|"/"|"%") unary)*
//! unary    := ("-"|"!") unary | postfix;  postfix := primary ("[" expr "]")*
//! primary  := INT | FLOAT | STRING | "true" | "false" | "nil" | IDENT | IDENT "(" args ")"
//!           | "(" expr ")" | "[" args "]"
//! ```
//! Nesting deeper than [`MAX_DEPTH`] is a syntax error, so hostile input cannot overflow the
//! native stack here or in the compiler.
use alloc::format;
use alloc::string::String;

use super::ast::*;
use super::avec::{new_vec, AVec, Allocator};
use super::lexer::{Tok, Token};
use crate::vm::error::SyntaxError;

/// Deepest nesting of expressions and blocks accepted.
pub const MAX_DEPTH: u32 = 200;

/// Parses a token stream (ending in [`Tok::Eof`]).
pub fn parse<'s, A: Allocator + Copy>(
    tokens: &[Token<'s>],
    alloc: A,
) -> Result<Ast<'s, A>, SyntaxError> {
    let mut p = Parser {
        toks: tokens,
        pos: 0,
        ast: Ast::new_in(alloc),
        alloc,
        depth: 0,
    };
    let mut top = new_vec(alloc);
    while p.peek().tok != Tok::Eof {
        if p.at("fn") {
            let f = p.fn_decl()?;
            p.ast.fns.push(f);
        } else {
            top.push(p.stmt()?);
        }
    }
    p.ast.main = p.stmt_list(&top);
    Ok(p.ast)
}

struct Parser<'t, 's, A: Allocator + Copy> {
    toks: &'t [Token<'s>],
    pos: usize,
    ast: Ast<'s, A>,
    alloc: A,
    depth: u32,
}

impl<'s, A: Allocator + Copy> Parser<'_, 's, A> {
    fn peek(&self) -> Token<'s> {
        self.toks[self.pos.min(self.toks.len() - 1)]
    }
    fn bump(&mut self) -> Token<'s> {
        let t = self.peek();
        if self.pos < self.toks.len() - 1 {
            self.pos += 1;
        }
        t
    }
    fn at(&self, sym: &str) -> bool {
        matches!(self.peek().tok, Tok::Sym(s) if s == sym)
    }
    fn eat(&mut self, sym: &str) -> bool {
        let hit = self.at(sym);
        if hit {
            self.bump();
        }
        hit
    }
    fn error_at(&self, t: Token<'s>, msg: String) -> SyntaxError {
        SyntaxError {
            line: t.line,
            col: t.col,
            msg,
            phase: "syntax error",
        }
    }
    fn expect(&mut self, sym: &str) -> Result<Token<'s>, SyntaxError> {
        if self.at(sym) {
            return Ok(self.bump());
        }
        let t = self.peek();
        Err(self.error_at(t, format!("expected `{sym}`, found {}", describe(t.tok))))
    }
    fn ident(&mut self) -> Result<&'s str, SyntaxError> {
        match self.peek().tok {
            Tok::Ident(name) => {
                self.bump();
                Ok(name)
            }
            other => Err(self.error_at(
                self.peek(),
                format!("expected a name, found {}", describe(other)),
            )),
        }
    }
    fn enter(&mut self) -> Result<(), SyntaxError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error_at(
                self.peek(),
                format!("nesting deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    fn push_expr(&mut self, kind: ExprKind<'s>, at: Token<'s>) -> ExprId {
        self.ast.exprs.push(Expr {
            kind,
            line: at.line,
            col: at.col,
        });
        (self.ast.exprs.len() - 1) as ExprId
    }
    fn push_stmt(&mut self, kind: StmtKind<'s>, at: Token<'s>) -> StmtId {
        self.ast.stmts.push(Stmt {
            kind,
            line: at.line,
            col: at.col,
        });
        (self.ast.stmts.len() - 1) as StmtId
    }
    fn stmt_list(&mut self, items: &[StmtId]) -> List {
        let start = self.ast.stmt_lists.len() as u32;
        self.ast.stmt_lists.extend_from_slice(items);
        List {
            start,
            len: items.len() as u32,
        }
    }
    fn expr_list(&mut self, items: &[ExprId]) -> List {
        let start = self.ast.expr_lists.len() as u32;
        self.ast.expr_lists.extend_from_slice(items);
        List {
            start,
            len: items.len() as u32,
        }
    }

    fn fn_decl(&mut self) -> Result<FnDecl<'s>, SyntaxError> {
        let at = self.expect("fn")?;
        let name = self.ident()?;
        self.expect("(")?;
        let start = self.ast.names.len() as u32;
        if !self.at(")") {
            loop {
                let p = self.ident()?;
                self.ast.names.push(p);
                if !self.eat(",") {
                    break;
                }
            }
        }
        self.expect(")")?;
        let params = List {
            start,
            len: self.ast.names.len() as u32 - start,
        };
        let body = self.block()?;
        Ok(FnDecl {
            name,
            params,
            body,
            line: at.line,
            col: at.col,
        })
    }

    fn block(&mut self) -> Result<List, SyntaxError> {
        self.enter()?;
        self.expect("{")?;
        let mut items: AVec<StmtId, A> = new_vec(self.alloc);
        while !self.at("}") {
            if self.peek().tok == Tok::Eof {
                let t = self.peek();
                return Err(self.error_at(t, "expected `}` before the end of the file".into()));
            }
            items.push(self.stmt()?);
        }
        self.bump();
        self.depth -= 1;
        Ok(self.stmt_list(&items))
    }

    fn stmt(&mut self) -> Result<StmtId, SyntaxError> {
        let at = self.peek();
        let kind = match at.tok {
            Tok::Sym("let") => {
                self.bump();
                let name = self.ident()?;
                self.expect("=")?;
                let e = self.expr()?;
                self.expect(";")?;
                StmtKind::Let(name, e)
            }
            Tok::Sym("if") => return self.if_stmt(),
            Tok::Sym("while") => {
                self.bump();
                let cond = self.expr()?;
                StmtKind::While(cond, self.block()?)
            }
            Tok::Sym("return") => {
                self.bump();
                let e = if self.at(";") {
                    None
                } else {
                    Some(self.expr()?)
                };
                self.expect(";")?;
                StmtKind::Return(e)
            }
            Tok::Sym("break") => {
                self.bump();
                self.expect(";")?;
                StmtKind::Break
            }
            Tok::Sym("fn") => {
                return Err(
                    self.error_at(at, "functions can only be declared at the top level".into())
                )
            }
            _ => self.expr_stmt(at)?,
        };
        Ok(self.push_stmt(kind, at))
    }

    fn if_stmt(&mut self) -> Result<StmtId, SyntaxError> {
        self.enter()?;
        let at = self.expect("if")?;
        let cond = self.expr()?;
        let then = self.block()?;
        let other = if self.eat("else") {
            if self.at("if") {
                let nested = self.if_stmt()?;
                Some(self.stmt_list(&[nested]))
            } else {
                Some(self.block()?)
            }
        } else {
            None
        };
        self.depth -= 1;
        Ok(self.push_stmt(StmtKind::If(cond, then, other), at))
    }

    fn expr_stmt(&mut self, at: Token<'s>) -> Result<StmtKind<'s>, SyntaxError> {
        let target = self.expr()?;
        if !self.eat("=") {
            self.expect(";")?;
            return Ok(StmtKind::Expr(target));
        }
        let value = self.expr()?;
        self.expect(";")?;
        match self.ast.expr(target).kind {
            ExprKind::Var(name) => Ok(StmtKind::Assign(name, value)),
            ExprKind::Index(obj, idx) => Ok(StmtKind::SetIndex(obj, idx, value)),
            _ => Err(self.error_at(
                at,
                "can only assign to a variable or an array element".into(),
            )),
        }
    }

    fn expr(&mut self) -> Result<ExprId, SyntaxError> {
        self.enter()?;
        let e = self.or();
        self.depth -= 1;
        e
    }

    fn or(&mut self) -> Result<ExprId, SyntaxError> {
        let mut l = self.and()?;
        while self.at("||") {
            let at = self.bump();
            let r = self.and()?;
            l = self.push_expr(ExprKind::Or(l, r), at);
        }
        Ok(l)
    }

    fn and(&mut self) -> Result<ExprId, SyntaxError> {
        let mut l = self.binary(0)?;
        while self.at("&&") {
            let at = self.bump();
            let r = self.binary(0)?;
            l = self.push_expr(ExprKind::And(l, r), at);
        }
        Ok(l)
    }

    /// Levels 0 (comparisons), 1 (sums), 2 (products), left-associative.
    fn binary(&mut self, level: usize) -> Result<ExprId, SyntaxError> {
        const LEVELS: [&[(&str, BinOp)]; 3] = [
            &[
                ("==", BinOp::Eq),
                ("!=", BinOp::Ne),
                ("<", BinOp::Lt),
                ("<=", BinOp::Le),
                (">", BinOp::Gt),
                (">=", BinOp::Ge),
            ],
            &[("+", BinOp::Add), ("-", BinOp::Sub)],
            &[("*", BinOp::Mul), ("/", BinOp::Div), ("%", BinOp::Mod)],
        ];
        let next = |p: &mut Self| {
            if level + 1 < LEVELS.len() {
                p.binary(level + 1)
            } else {
                p.unary()
            }
        };
        let mut l = next(self)?;
        loop {
            let Some(&(_, op)) = LEVELS[level].iter().find(|(s, _)| self.at(s)) else {
                return Ok(l);
            };
            let at = self.bump();
            let r = next(self)?;
            l = self.push_expr(ExprKind::Binary(op, l, r), at);
        }
    }

    fn unary(&mut self) -> Result<ExprId, SyntaxError> {
        let at = self.peek();
        if self.eat("-") || self.eat("!") {
            self.enter()?;
            let e = self.unary()?;
            self.depth -= 1;
            let kind = if at.tok == Tok::Sym("-") {
                ExprKind::Neg(e)
            } else {
                ExprKind::Not(e)
            };
            return Ok(self.push_expr(kind, at));
        }
        let mut e = self.primary()?;
        while self.at("[") {
            let at = self.bump();
            let idx = self.expr()?;
            self.expect("]")?;
            e = self.push_expr(ExprKind::Index(e, idx), at);
        }
        Ok(e)
    }

    fn args(&mut self, close: &str) -> Result<List, SyntaxError> {
        let mut items: AVec<ExprId, A> = new_vec(self.alloc);
        if !self.at(close) {
            loop {
                items.push(self.expr()?);
                if !self.eat(",") {
                    break;
                }
            }
        }
        self.expect(close)?;
        Ok(self.expr_list(&items))
    }

    fn primary(&mut self) -> Result<ExprId, SyntaxError> {
        let at = self.bump();
        let kind = match at.tok {
            Tok::Int(i) => ExprKind::Int(i),
            Tok::Float(x) => ExprKind::Float(x),
            Tok::Str(s) => ExprKind::Str(s),
            Tok::Sym("true") => ExprKind::Bool(true),
            Tok::Sym("false") => ExprKind::Bool(false),
            Tok::Sym("nil") => ExprKind::Nil,
            Tok::Ident(name) if self.at("(") => {
                self.bump();
                ExprKind::Call(name, self.args(")")?)
            }
            Tok::Ident(name) => ExprKind::Var(name),
            Tok::Sym("(") => {
                let e = self.expr()?;
                self.expect(")")?;
                return Ok(e);
            }
            Tok::Sym("[") => ExprKind::Array(self.args("]")?),
            other => {
                return Err(self.error_at(
                    at,
                    format!("expected an expression, found {}", describe(other)),
                ))
            }
        };
        Ok(self.push_expr(kind, at))
    }
}

fn describe(t: Tok<'_>) -> String {
    match t {
        Tok::Int(i) => format!("`{i}`"),
        Tok::Float(x) => format!("`{x:?}`"),
        Tok::Str(s) => format!("string \"{s}\""),
        Tok::Ident(n) => format!("`{n}`"),
        Tok::Sym(s) => format!("`{s}`"),
        Tok::Eof => "end of file".into(),
    }
}
