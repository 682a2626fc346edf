//! Every error the VM reports: where it happened and why, never a panic.
//!
//! - [`SyntaxError`]: line and column in the `.kl` source;
//! - [`VerifyError`]: function and PC (word index) of the rejected instruction, and the reason;
//! - [`RuntimeError`]: function, PC and source line of the failing instruction.
use core::fmt;

use alloc::string::String;

use super::program::LoadError;

/// The source does not parse or compile; `line:col` points at the offending token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    /// 1-based line.
    pub line: u32,
    /// 1-based column (in bytes).
    pub col: u32,
    /// What was expected or what is wrong.
    pub msg: String,
    /// `"syntax error"` from the lexer and parser, `"compile error"` from the compiler (unknown
    /// names, wrong argument counts, too many registers).
    pub phase: &'static str,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at {}:{}: {}",
            self.phase, self.line, self.col, self.msg
        )
    }
}

/// The verifier rejected a program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyError {
    /// Index of the function.
    pub func: usize,
    /// Word index of the offending instruction (0 for function-level problems).
    pub pc: usize,
    /// Why.
    pub reason: String,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "verify error in f{} at pc {}: {}",
            self.func, self.pc, self.reason
        )
    }
}

/// What went wrong at run time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuntimeErrorKind {
    /// An operator applied to values it does not accept.
    Type {
        /// The operation, as a verb phrase (`add`, `index`, `compare`).
        op: &'static str,
        /// Type of the first operand.
        lhs: &'static str,
        /// Type of the second operand (empty for unary operations).
        rhs: &'static str,
    },
    /// Integer division or remainder by zero.
    DivisionByZero,
    /// An index outside `0 .. len`.
    IndexOutOfRange {
        /// The index used.
        index: i64,
        /// The length of the array or string.
        len: usize,
    },
    /// A builtin got an argument it cannot use.
    BadArgument(&'static str),
    /// The instruction fuel ran out.
    OutOfFuel,
    /// A heap allocation would pass the memory cap.
    OutOfMemory,
    /// Calls nested deeper than the configured limit.
    StackOverflow,
    /// The output sink refused a write.
    Output,
    /// A host function failed ([`crate::vm::host::HostError::Failed`]).
    Host {
        /// The host function's name.
        name: String,
        /// Its message.
        msg: String,
    },
    /// A host function got an argument of the wrong type.
    HostArg {
        /// The host function's name.
        name: String,
        /// 1-based position of the argument.
        arg: usize,
        /// The parameter's type.
        want: &'static str,
        /// The argument's type.
        got: &'static str,
    },
    /// A host buffer index outside `0 .. len`.
    BufferIndex {
        /// The buffer's name.
        buffer: String,
        /// The index used.
        index: i64,
        /// The buffer's length.
        len: usize,
    },
    /// The program's host imports do not match the host it runs with (or it needs a host and
    /// ran without one).
    Link(String),
}

impl fmt::Display for RuntimeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuntimeErrorKind::Type { op, lhs, rhs: "" } => {
                write!(f, "type error: cannot {op} {lhs}")
            }
            RuntimeErrorKind::Type { op, lhs, rhs } => {
                write!(f, "type error: cannot {op} {lhs} and {rhs}")
            }
            RuntimeErrorKind::DivisionByZero => f.write_str("division by zero"),
            RuntimeErrorKind::IndexOutOfRange { index, len } => {
                write!(f, "index out of range: index {index}, length {len}")
            }
            RuntimeErrorKind::BadArgument(why) => write!(f, "bad argument: {why}"),
            RuntimeErrorKind::OutOfFuel => f.write_str("out of fuel"),
            RuntimeErrorKind::OutOfMemory => f.write_str("out of memory (memory cap reached)"),
            RuntimeErrorKind::StackOverflow => f.write_str("stack overflow (call depth limit)"),
            RuntimeErrorKind::Output => f.write_str("output error"),
            RuntimeErrorKind::Host { name, msg } => {
                write!(f, "host function `{name}` failed: {msg}")
            }
            RuntimeErrorKind::HostArg {
                name,
                arg,
                want,
                got,
            } => write!(
                f,
                "type error: argument {arg} of host function `{name}` must be {want}, got {got}"
            ),
            RuntimeErrorKind::BufferIndex { buffer, index, len } => write!(
                f,
                "buffer index out of range: `{buffer}[{index}]`, length {len}"
            ),
            RuntimeErrorKind::Link(why) => write!(f, "cannot link the host: {why}"),
        }
    }
}

/// A runtime error with its location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeError {
    /// What went wrong.
    pub kind: RuntimeErrorKind,
    /// Name of the function executing.
    pub func: String,
    /// Word index of the failing instruction.
    pub pc: usize,
    /// Source line of that instruction (0 when unknown).
    pub line: u32,
}

impl fmt::Display for RuntimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "runtime error at line {} (fn {}, pc {}): {}",
            self.line, self.func, self.pc, self.kind
        )
    }
}

/// Any error from loading, compiling, verifying or running a program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// See [`SyntaxError`].
    Syntax(SyntaxError),
    /// See [`LoadError`].
    Load(LoadError),
    /// See [`VerifyError`].
    Verify(VerifyError),
    /// See [`RuntimeError`].
    Runtime(RuntimeError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Syntax(e) => e.fmt(f),
            Error::Load(e) => e.fmt(f),
            Error::Verify(e) => e.fmt(f),
            Error::Runtime(e) => e.fmt(f),
        }
    }
}

macro_rules! from_error {
    ($($t:ident => $v:ident),*) => {$(
        impl From<$t> for Error {
            fn from(e: $t) -> Error {
                Error::$v(e)
            }
        }
    )*};
}
from_error!(SyntaxError => Syntax, VerifyError => Verify, RuntimeError => Runtime);

impl From<LoadError> for Error {
    fn from(e: LoadError) -> Error {
        Error::Load(e)
    }
}

impl core::error::Error for SyntaxError {}
impl core::error::Error for VerifyError {}
impl core::error::Error for RuntimeError {}
impl core::error::Error for Error {}
