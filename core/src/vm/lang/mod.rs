//! The `.kl` language: lexer, parser and compiler to bytecode.
//!
//! ```text
//! fn fib(n) { if n < 2 { return n; } return fib(n - 1) + fib(n - 2); }
//! let xs = [1, 2, 3];
//! push(xs, fib(20));
//! print("fib(20) =", xs[3], len(xs));
//! ```
//! Values: ints, floats, `true`/`false`, `nil`, strings (`"..."` with `\n \t \" \\`), arrays.
//! Statements: `let`, assignment (to variables and array elements), `if`/`else`, `while`,
//! `break`, `return`, expression statements. Operators: `+ - * / %`, `== != < <= > >=`,
//! `&& || !` (short-circuit; the result is one of the operands). Builtins: `print(..)`,
//! `len(x)`, `args()`, `int(x)`, `float(x)`, `str(x)`, `push(a, v)`, `array(n, v)`, `sqrt(x)`.
//! A host may add functions and byte buffers (`buf[i]`, `buf[i] = v`, `len(buf)`); see
//! [`crate::vm::host`].
//!
//! The lexer and the parser take all their memory from one allocator handed to them (an
//! `allocator_api2` allocator, see [`compile_in`]); [`compile`] gives them a fresh one per compilation and drops it all at once.
pub(crate) mod ast;
pub(crate) mod avec;
pub(crate) mod compiler;
pub(crate) mod lexer;
pub(crate) mod parser;

use crate::vm::error::SyntaxError;
use crate::vm::host::Imports;
use crate::vm::program::Program;

/// Source text to a program (not yet verified). Tokens and the syntax tree live in one
/// [`Arena`](crate::allocator::arena::Arena) that is dropped, all at once, when compilation ends.
pub fn compile(src: &str) -> Result<Program, SyntaxError> {
    let arena = crate::allocator::arena::Arena::new();
    compile_in(src, &arena)
}

/// Compiles `src` against `host`'s functions and buffers (not yet verified: [`Vm::new`]
/// verifies).
///
/// [`Vm::new`]: crate::vm::Vm::new
pub fn compile_with(host: &dyn Imports, src: &str) -> Result<Program, SyntaxError> {
    let arena = crate::allocator::arena::Arena::new();
    compile_in_with(src, &arena, host)
}

/// [`compile`] with the front end's memory taken from `alloc`.
pub fn compile_in<A: avec::Allocator + Copy>(src: &str, alloc: A) -> Result<Program, SyntaxError> {
    compile_in_with(src, alloc, &crate::vm::host::NoHost)
}

/// [`compile_in`] resolving names against a host's functions and buffers (see
/// [`crate::vm::host`]).
pub fn compile_in_with<A: avec::Allocator + Copy>(
    src: &str,
    alloc: A,
    host: &dyn Imports,
) -> Result<Program, SyntaxError> {
    let tokens = lexer::lex(src, alloc)?;
    let ast = parser::parse(&tokens, alloc)?;
    compiler::compile_with(&ast, host)
}
