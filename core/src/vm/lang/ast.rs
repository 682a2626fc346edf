//! The syntax tree, stored in flat pools: nodes refer to each other by index, and lists
//! (block statements, call arguments, parameters) are contiguous ranges of an index pool.
//! Every pool is an [`AVec`] in the front end's allocator.
use super::avec::{new_vec, AVec, Allocator};

/// Index into [`Ast::exprs`].
pub type ExprId = u32;
/// Index into [`Ast::stmts`].
pub type StmtId = u32;

/// A contiguous range of an index pool.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct List {
    /// First index.
    pub start: u32,
    /// Number of entries.
    pub len: u32,
}

/// Binary operators (short-circuit `&&`/`||` are separate nodes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Mod,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// Expression kinds; `'s` is the source's lifetime.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ExprKind<'s> {
    /// Integer literal.
    Int(i64),
    /// Float literal.
    Float(f64),
    /// String literal (raw, escapes undecoded).
    Str(&'s str),
    /// `true` / `false`.
    Bool(bool),
    /// `nil`.
    Nil,
    /// A variable.
    Var(&'s str),
    /// `-e`
    Neg(ExprId),
    /// `!e`
    Not(ExprId),
    /// `l op r`
    Binary(BinOp, ExprId, ExprId),
    /// `l && r`
    And(ExprId, ExprId),
    /// `l || r`
    Or(ExprId, ExprId),
    /// `name(args)`, arguments in [`Ast::expr_lists`].
    Call(&'s str, List),
    /// `e[i]`
    Index(ExprId, ExprId),
    /// `[a, b, ...]`, elements in [`Ast::expr_lists`].
    Array(List),
}

/// An expression and its position.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Expr<'s> {
    /// What it is.
    pub kind: ExprKind<'s>,
    /// Line of its first token.
    pub line: u32,
    /// Column of its first token.
    pub col: u32,
}

/// Statement kinds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum StmtKind<'s> {
    /// `let name = e;`
    Let(&'s str, ExprId),
    /// `name = e;`
    Assign(&'s str, ExprId),
    /// `e[i] = v;`
    SetIndex(ExprId, ExprId, ExprId),
    /// `e;`
    Expr(ExprId),
    /// `if c { .. } else { .. }`; statements in [`Ast::stmt_lists`].
    If(ExprId, List, Option<List>),
    /// `while c { .. }`
    While(ExprId, List),
    /// `return e;` / `return;`
    Return(Option<ExprId>),
    /// `break;`
    Break,
}

/// A statement and its position.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stmt<'s> {
    /// What it is.
    pub kind: StmtKind<'s>,
    /// Line of its first token.
    pub line: u32,
    /// Column of its first token.
    pub col: u32,
}

/// `fn name(params) { body }`
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FnDecl<'s> {
    /// The name.
    pub name: &'s str,
    /// Parameter names, in [`Ast::names`].
    pub params: List,
    /// The body, in [`Ast::stmt_lists`].
    pub body: List,
    /// Line of `fn`.
    pub line: u32,
    /// Column of `fn`.
    pub col: u32,
}

/// A parsed source file: its functions and its top-level statements.
pub struct Ast<'s, A: Allocator + Copy> {
    /// Expression nodes.
    pub exprs: AVec<Expr<'s>, A>,
    /// Statement nodes.
    pub stmts: AVec<Stmt<'s>, A>,
    /// Argument and element lists.
    pub expr_lists: AVec<ExprId, A>,
    /// Block bodies.
    pub stmt_lists: AVec<StmtId, A>,
    /// Parameter names.
    pub names: AVec<&'s str, A>,
    /// Function declarations, in source order.
    pub fns: AVec<FnDecl<'s>, A>,
    /// Top-level statements (the entry function's body).
    pub main: List,
}

impl<'s, A: Allocator + Copy> Ast<'s, A> {
    /// An empty tree whose pools allocate from `alloc`.
    pub fn new_in(alloc: A) -> Self {
        Ast {
            exprs: new_vec(alloc),
            stmts: new_vec(alloc),
            expr_lists: new_vec(alloc),
            stmt_lists: new_vec(alloc),
            names: new_vec(alloc),
            fns: new_vec(alloc),
            main: List::default(),
        }
    }
    /// Expression `id`.
    pub fn expr(&self, id: ExprId) -> &Expr<'s> {
        &self.exprs[id as usize]
    }
    /// Statement `id`.
    pub fn stmt(&self, id: StmtId) -> &Stmt<'s> {
        &self.stmts[id as usize]
    }
    /// The expressions of a list.
    pub fn expr_list(&self, l: List) -> &[ExprId] {
        &self.expr_lists[l.start as usize..(l.start + l.len) as usize]
    }
    /// The statements of a block.
    pub fn block(&self, l: List) -> &[StmtId] {
        &self.stmt_lists[l.start as usize..(l.start + l.len) as usize]
    }
    /// The names of a parameter list.
    pub fn name_list(&self, l: List) -> &[&'s str] {
        &self.names[l.start as usize..(l.start + l.len) as usize]
    }
}
