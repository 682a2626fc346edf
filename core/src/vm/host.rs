//! Embedding: host functions and lent byte buffers.
//!
//! A host (a kernel, a firmware, a test) registers named functions with fixed, typed parameters
//! and declares named byte buffers on a [`Host`], compiles `.kl` source against it
//! ([`compile_with`](super::compile_with)), and runs the program with [`Vm::run_with`](super::Vm::run_with), lending
//! the buffers' bytes (`&mut [u8]`: a packet, a sensor frame) for the duration of that one run.
//!
//! ```
//! use kiln::vm::{compile_with, Host, HostError, Ty};
//! use kiln::vm::{Value, Vm, VmConfig};
//!
//! let mut seen = 0;
//! let mut host = Host::new();
//! host.register("threshold", &[], |_ctx, _args| Ok(Value::Int(100)))?;
//! host.register("report", &[Ty::Int, Ty::Int], |_ctx, args| {
//!     seen += 1;
//!     if args.int(1) > 250 { return Err(HostError::new("reading out of scale")); }
//!     Ok(Value::Nil)
//! })?;
//! host.buffer("frame")?;
//! let prog = compile_with(&host, "
//!     let i = 0;
//!     while i < len(frame) {
//!         if frame[i] > threshold() { report(i, frame[i]); frame[i] = 0; }
//!         i = i + 1;
//!     }
//! ")?;
//! let mut frame = [7u8, 180, 3, 220];
//! let mut vm = Vm::new(&prog, VmConfig::default())?;
//! vm.run_with(&mut host, &mut [&mut frame], &mut String::new(), None)?;
//! drop(host);
//! assert_eq!(frame, [7, 0, 3, 0]);
//! assert_eq!(seen, 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The language side
//!
//! - A host function is called like any function: `report(i, x)`. The compiler resolves the
//!   name against the host (after the program's own functions and the builtins) and checks the
//!   argument count; the call compiles to `callh`, whose operand indexes the program's import
//!   table ([`Program::imports`]). The verifier checks every `callh` against that table.
//! - A host buffer is a name, not a value: `buf[i]` reads byte `i` (an int `0..=255`),
//!   `buf[i] = v` writes it (`v` must be an int in `0..=255`), `len(buf)` is its length, and a
//!   host function with a [`Ty::Buffer`] parameter takes the name as that argument. Any other
//!   use (`let b = buf;`, `return buf;`, storing it in an array) is a compile error, so no
//!   value a program holds can refer to a buffer after the run; an index out of range is a
//!   runtime error with the buffer's name, the index and the length.
//!
//! # Lifetimes
//!
//! [`Host<'h>`] may borrow from its environment for `'h` (closures need not be `'static`).
//! [`Vm::run_with`](super::Vm::run_with) borrows the host and the buffers only for the call;
//! nothing of either is kept by the VM afterwards. Host functions see the buffers through
//! [`Ctx`], which lives for one host call.
//!
//! # Cost and errors
//!
//! Each host call costs [`HOST_CALL_FUEL`] fuel on top of the instruction itself; a host
//! function may charge more with [`Ctx::charge`] (e.g. per byte it processes). Strings it
//! returns are charged to the memory cap through [`Ctx::new_str`]. A [`HostError`] becomes a
//! runtime error naming the function, with the pc and source line of the call; an argument of
//! the wrong type is reported the same way before the function runs.
//!
//! # The JIT
//!
//! In a loop trace, buffer accesses are runtime calls from native code
//! (`crate::jit::hostbuf`), and so are host calls whose arguments are ints and whose previous
//! result was an int or a bool (`crate::jit::hostcall`): the trace calls the host function directly,
//! charging fuel as `callh` does. Each call's outcome is guarded: a failing buffer access exits
//! to the instruction, where the interpreter reports the error; a host error, or a result of
//! another type, is parked and the trace exits to the `callh`, which takes the parked value
//! instead of calling again. Any other host call ends the trace with an exit to it (a *host
//! stop*): the JIT driver performs the call itself through
//! [`LoopHook::enter_hosted`](super::LoopHook::enter_hosted) (no interpreter dispatch) and
//! continues with the trace compiled from the next instruction. Host instructions never abort
//! a trace or blacklist a loop. Function traces (the function JIT) do not record host
//! instructions: a function that contains one runs in the interpreter, its loops in loop
//! traces.
use core::fmt;
use core::ptr::NonNull;

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use super::builtins::Builtin;
use super::error::RuntimeErrorKind as E;
use super::program::{Const, Program};
use super::value::{Meter, Value};

/// Fuel one host call costs on top of its instruction.
pub const HOST_CALL_FUEL: u64 = 1;

/// Most host functions one host may register (the `callh` operand is 8 bits).
pub const MAX_HOST_FUNCS: usize = 256;

/// Most buffers one host may declare (the buffer operand is 8 bits).
pub const MAX_BUFFERS: usize = 256;

/// The type of a host function's parameter, checked by the VM before the function runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    /// An int ([`Args::int`]).
    Int,
    /// A float or an int ([`Args::float`] converts an int).
    Float,
    /// `true` or `false` ([`Args::bool`]).
    Bool,
    /// Any value, unchecked.
    Any,
    /// A host buffer's name; the function reaches its bytes with [`Ctx::buffer`].
    Buffer,
}

impl Ty {
    /// The name used in error messages.
    pub fn name(self) -> &'static str {
        match self {
            Ty::Int => "int",
            Ty::Float => "float",
            Ty::Bool => "bool",
            Ty::Any => "any",
            Ty::Buffer => "buffer",
        }
    }

    fn accepts(self, v: &Value) -> bool {
        match self {
            Ty::Int | Ty::Buffer => matches!(v, Value::Int(_)),
            Ty::Float => matches!(v, Value::Int(_) | Value::Float(_)),
            Ty::Bool => matches!(v, Value::Bool(_)),
            Ty::Any => true,
        }
    }
}

/// Why a host function failed; the VM reports it as a runtime error at the call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostError {
    /// The function's own failure, with a message for the error.
    Failed(String),
    /// [`Ctx::charge`] ran out of fuel: reported as the VM's out-of-fuel error.
    OutOfFuel,
    /// An allocation would pass the memory cap: reported as the VM's out-of-memory error.
    OutOfMemory,
}

impl HostError {
    /// A failure with a message.
    pub fn new(msg: &str) -> HostError {
        HostError::Failed(msg.into())
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::Failed(m) => f.write_str(m),
            HostError::OutOfFuel => f.write_str("out of fuel"),
            HostError::OutOfMemory => f.write_str("out of memory"),
        }
    }
}

/// Why [`Host::register`] or [`Host::buffer`] refused a name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisterError {
    /// The name is already a host function or buffer.
    Duplicate(String),
    /// The name is a builtin (`print`, `len`, ...).
    Builtin(String),
    /// The name is not an identifier (`[A-Za-z_][A-Za-z0-9_]*`).
    BadName(String),
    /// More than [`MAX_HOST_FUNCS`] functions, [`MAX_BUFFERS`] buffers or 255 parameters.
    TooMany(&'static str),
}

impl fmt::Display for RegisterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegisterError::Duplicate(n) => write!(f, "`{n}` is already registered"),
            RegisterError::Builtin(n) => write!(f, "`{n}` is a builtin"),
            RegisterError::BadName(n) => write!(f, "`{n}` is not an identifier"),
            RegisterError::TooMany(what) => write!(f, "too many {what}"),
        }
    }
}

impl core::error::Error for RegisterError {}

/// A host function's arguments, already checked against its parameter types.
#[derive(Clone, Copy)]
pub struct Args<'a>(&'a [Value]);

impl<'a> Args<'a> {
    /// All arguments.
    pub fn values(&self) -> &'a [Value] {
        self.0
    }
    /// Argument `i` as an int (0 when it is not one; a [`Ty::Int`] parameter always is).
    pub fn int(&self, i: usize) -> i64 {
        match self.0.get(i) {
            Some(Value::Int(x)) => *x,
            _ => 0,
        }
    }
    /// Argument `i` as a float, converting an int (NaN when it is neither).
    pub fn float(&self, i: usize) -> f64 {
        match self.0.get(i) {
            Some(Value::Int(x)) => *x as f64,
            Some(Value::Float(x)) => *x,
            _ => f64::NAN,
        }
    }
    /// Argument `i` as a bool (its truthiness).
    pub fn bool(&self, i: usize) -> bool {
        self.0.get(i).is_some_and(Value::truthy)
    }
}

/// What a host function may touch besides its arguments, for the duration of one call.
pub struct Ctx<'r, 'b> {
    bufs: &'r mut [&'b mut [u8]],
    fuel: &'r mut u64,
    meter: &'r Meter,
}

impl Ctx<'_, '_> {
    /// The bytes of the buffer passed as argument `i` (a [`Ty::Buffer`] parameter).
    pub fn buffer(&mut self, args: Args<'_>, i: usize) -> Result<&mut [u8], HostError> {
        let n = args.int(i);
        let n = usize::try_from(n).map_err(|_| HostError::new("not a buffer"))?;
        match self.bufs.get_mut(n) {
            Some(b) => Ok(b),
            None => Err(HostError::new("not a buffer")),
        }
    }
    /// Charges `fuel` more to the running program (on top of [`HOST_CALL_FUEL`]).
    pub fn charge(&mut self, fuel: u64) -> Result<(), HostError> {
        *self.fuel = self.fuel.checked_sub(fuel).ok_or(HostError::OutOfFuel)?;
        Ok(())
    }
    /// Fuel left.
    pub fn fuel_left(&self) -> u64 {
        *self.fuel
    }
    /// A new string value, charged to the VM's memory cap.
    pub fn new_str(&self, s: &str) -> Result<Value, HostError> {
        Value::new_str(self.meter, s).map_err(|_| HostError::OutOfMemory)
    }
}

/// The closure type of a host function.
pub type HostFn<'h> = dyn FnMut(&mut Ctx<'_, '_>, Args<'_>) -> Result<Value, HostError> + 'h;

struct Func<'h> {
    name: Box<str>,
    params: Box<[Ty]>,
    f: Box<HostFn<'h>>,
}

/// The functions and buffers a host offers to programs (see the module doc).
#[derive(Default)]
pub struct Host<'h> {
    funcs: Vec<Func<'h>>,
    buffers: Vec<Box<str>>,
}

impl<'h> Host<'h> {
    /// A host with nothing registered.
    pub fn new() -> Host<'h> {
        Host {
            funcs: Vec::new(),
            buffers: Vec::new(),
        }
    }

    /// Registers `name` with parameter types `params`; returns its index. Programs compiled
    /// after this can call `name(..)` with exactly `params.len()` arguments.
    pub fn register<F>(&mut self, name: &str, params: &[Ty], f: F) -> Result<usize, RegisterError>
    where
        F: FnMut(&mut Ctx<'_, '_>, Args<'_>) -> Result<Value, HostError> + 'h,
    {
        self.check_name(name)?;
        if self.funcs.len() >= MAX_HOST_FUNCS {
            return Err(RegisterError::TooMany("host functions"));
        }
        if params.len() > 255 {
            return Err(RegisterError::TooMany("parameters"));
        }
        self.funcs.push(Func {
            name: name.into(),
            params: params.into(),
            f: Box::new(f),
        });
        Ok(self.funcs.len() - 1)
    }

    /// Declares a buffer called `name`; returns its position: the slice of buffers passed to
    /// [`Vm::run_with`](super::Vm::run_with) lends the bytes of buffer `i` at index `i`.
    pub fn buffer(&mut self, name: &str) -> Result<usize, RegisterError> {
        self.check_name(name)?;
        if self.buffers.len() >= MAX_BUFFERS {
            return Err(RegisterError::TooMany("buffers"));
        }
        self.buffers.push(name.into());
        Ok(self.buffers.len() - 1)
    }

    fn check_name(&self, name: &str) -> Result<(), RegisterError> {
        let mut chars = name.chars();
        let ident = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        const KEYWORDS: &[&str] = &[
            "fn", "let", "if", "else", "while", "break", "return", "true", "false", "nil",
        ];
        if !ident || KEYWORDS.contains(&name) {
            return Err(RegisterError::BadName(name.into()));
        }
        if Builtin::from_name(name).is_some() {
            return Err(RegisterError::Builtin(name.into()));
        }
        if self.function(name).is_some() || self.buffer_index(name).is_some() {
            return Err(RegisterError::Duplicate(name.into()));
        }
        Ok(())
    }

    /// The parameter types of host function `name`.
    pub fn function(&self, name: &str) -> Option<&[Ty]> {
        self.funcs
            .iter()
            .find(|f| &*f.name == name)
            .map(|f| &*f.params)
    }

    /// The position of buffer `name`.
    pub fn buffer_index(&self, name: &str) -> Option<usize> {
        self.buffers.iter().position(|b| &**b == name)
    }

    /// The declared buffers' names, in lending order.
    pub fn buffer_names(&self) -> impl Iterator<Item = &str> {
        self.buffers.iter().map(|b| &**b)
    }

    /// Resolves `prog`'s imports against this host and borrows `bufs` for one run; `track`
    /// keeps each import's last int result (for the JIT).
    pub(crate) fn link<'r, 'b>(
        &'r mut self,
        prog: &Program,
        bufs: &'r mut [&'b mut [u8]],
        track: bool,
    ) -> Result<Linked<'r, 'h, 'b>, E> {
        let name_of = |k: u32| match prog.consts.get(k as usize) {
            Some(Const::Str(s)) => Ok(&**s),
            _ => Err(E::Link(String::from(
                "import name is not a string constant",
            ))),
        };
        let mut map = Vec::with_capacity(prog.imports.len());
        for imp in &prog.imports {
            let name = name_of(imp.name)?;
            let Some(i) = self.funcs.iter().position(|f| &*f.name == name) else {
                return Err(E::Link(alloc::format!("the host has no function `{name}`")));
            };
            if self.funcs[i].params.len() != imp.arity as usize {
                return Err(E::Link(alloc::format!(
                    "host function `{name}` takes {} arguments, the program passes {}",
                    self.funcs[i].params.len(),
                    imp.arity
                )));
            }
            map.push(i);
        }
        if prog.buffers.len() != self.buffers.len()
            || prog
                .buffers
                .iter()
                .zip(&self.buffers)
                .any(|(&k, b)| name_of(k).ok() != Some(&**b))
        {
            return Err(E::Link(String::from(
                "the program was compiled against other host buffers",
            )));
        }
        if bufs.len() != self.buffers.len() {
            return Err(E::Link(alloc::format!(
                "the host declares {} buffers, {} were lent",
                self.buffers.len(),
                bufs.len()
            )));
        }
        Ok(Linked {
            host: self,
            last: alloc::vec![None; if track { map.len() } else { 0 }],
            map,
            bufs,
        })
    }
}

/// A host function's last result, which the JIT's recorder predicts for the next call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Predicted {
    /// An int (native code gets the real value; the prediction only picks branch directions).
    Int(i64),
    /// A bool (native code checks the call returned exactly this value).
    Bool(bool),
}

/// A host linked to one program for one run: import `i` is host function `map[i]`.
pub(crate) struct Linked<'r, 'h, 'b> {
    host: &'r mut Host<'h>,
    map: Vec<usize>,
    bufs: &'r mut [&'b mut [u8]],
    /// Per import: its last result, when that was an int (what the JIT's recorder predicts);
    /// empty when the run has no JIT.
    last: Vec<Option<Predicted>>,
}

/// The interpreter's view of a [`Linked`] host, with its lifetimes erased (see
/// [`super::Vm::run_with`] for why that is sound).
pub(crate) trait HostLink {
    /// Calls import `import` with `args`; charges [`HOST_CALL_FUEL`] and what the host charges.
    fn call(
        &mut self,
        import: usize,
        args: &[Value],
        fuel: &mut u64,
        meter: &Meter,
    ) -> Result<Value, E>;
    /// The bytes of buffer `b`.
    fn buf(&mut self, b: usize) -> Option<&mut [u8]>;
    /// The last result of import `import`, when it was an int.
    fn last_result(&self, import: usize) -> Option<Predicted>;
}

impl HostLink for Linked<'_, '_, '_> {
    fn call(
        &mut self,
        import: usize,
        args: &[Value],
        fuel: &mut u64,
        meter: &Meter,
    ) -> Result<Value, E> {
        *fuel = fuel.checked_sub(HOST_CALL_FUEL).ok_or(E::OutOfFuel)?;
        let Some(f) = self
            .map
            .get(import)
            .and_then(|&i| self.host.funcs.get_mut(i))
        else {
            return Err(E::Link(String::from("host function index out of range")));
        };
        for (i, (ty, v)) in f.params.iter().zip(args).enumerate() {
            let in_range = *ty != Ty::Buffer
                || matches!(v, Value::Int(n) if usize::try_from(*n).is_ok_and(|n| n < self.bufs.len()));
            if !ty.accepts(v) || !in_range {
                return Err(E::HostArg {
                    name: String::from(&*f.name),
                    arg: i + 1,
                    want: ty.name(),
                    got: v.type_name(),
                });
            }
        }
        let mut ctx = Ctx {
            bufs: self.bufs,
            fuel,
            meter,
        };
        let result = (f.f)(&mut ctx, Args(args)).map_err(|e| match e {
            HostError::OutOfFuel => E::OutOfFuel,
            HostError::OutOfMemory => E::OutOfMemory,
            HostError::Failed(msg) => E::Host {
                name: String::from(&*f.name),
                msg,
            },
        });
        if let Some(last) = self.last.get_mut(import) {
            *last = match result {
                Ok(Value::Int(x)) => Some(Predicted::Int(x)),
                Ok(Value::Bool(x)) => Some(Predicted::Bool(x)),
                _ => None,
            };
        }
        result
    }

    fn last_result(&self, import: usize) -> Option<Predicted> {
        self.last.get(import).copied().flatten()
    }

    fn buf(&mut self, b: usize) -> Option<&mut [u8]> {
        self.bufs.get_mut(b).map(|b| &mut **b)
    }
}

/// A pointer to the linked host of the run in progress, lifetimes erased.
pub(crate) type HostPtr = NonNull<dyn HostLink>;

/// Erases the lifetimes of `link` for [`super::Vm`]'s run field.
///
/// # Safety
///
/// The pointer must not be dereferenced after `link`'s borrow ends.
pub(crate) unsafe fn erase<'a>(link: &'a mut (dyn HostLink + 'a)) -> HostPtr {
    let p: NonNull<dyn HostLink + 'a> = NonNull::from(link);
    // SAFETY: the two types differ only in the trait object's lifetime bound, which does not
    // change the layout of a fat pointer; the caller promises not to use it past `'a`.
    unsafe { core::mem::transmute::<NonNull<dyn HostLink + 'a>, HostPtr>(p) }
}

/// Names the compiler resolves against: host functions and buffers.
pub trait Imports {
    /// Parameter types of host function `name`, if there is one.
    fn function(&self, name: &str) -> Option<&[Ty]>;
    /// Position of buffer `name`, if there is one.
    fn buffer(&self, name: &str) -> Option<usize>;
    /// Every buffer's name, in lending order.
    fn buffers(&self) -> Vec<&str>;
}

impl Imports for Host<'_> {
    fn function(&self, name: &str) -> Option<&[Ty]> {
        Host::function(self, name)
    }
    fn buffer(&self, name: &str) -> Option<usize> {
        self.buffer_index(name)
    }
    fn buffers(&self) -> Vec<&str> {
        self.buffer_names().collect()
    }
}

/// No host: what [`super::lang::compile`] resolves against.
pub struct NoHost;

impl Imports for NoHost {
    fn function(&self, _: &str) -> Option<&[Ty]> {
        None
    }
    fn buffer(&self, _: &str) -> Option<usize> {
        None
    }
    fn buffers(&self) -> Vec<&str> {
        Vec::new()
    }
}

fn buffer_name(prog: &Program, b: usize) -> String {
    match prog
        .buffers
        .get(b)
        .and_then(|&k| prog.consts.get(k as usize))
    {
        Some(Const::Str(s)) => String::from(&**s),
        _ => String::from("?"),
    }
}

/// Byte slot `idx` of buffer `b`, or the error the program gets.
fn byte_at<'a>(
    link: &'a mut dyn HostLink,
    prog: &Program,
    b: usize,
    idx: &Value,
) -> Result<&'a mut u8, E> {
    let Value::Int(i) = *idx else {
        return Err(E::Type {
            op: "index a buffer with",
            lhs: idx.type_name(),
            rhs: "",
        });
    };
    let Some(buf) = link.buf(b) else {
        return Err(E::Link(String::from("host buffer index out of range")));
    };
    let len = buf.len();
    match usize::try_from(i).ok().filter(|&u| u < len) {
        Some(u) => Ok(&mut buf[u]),
        None => Err(E::BufferIndex {
            buffer: buffer_name(prog, b),
            index: i,
            len,
        }),
    }
}

/// `bget`: byte `idx` of buffer `b` as an int.
pub(crate) fn buf_get(
    link: &mut dyn HostLink,
    prog: &Program,
    b: usize,
    idx: &Value,
) -> Result<Value, E> {
    byte_at(link, prog, b, idx).map(|x| Value::Int(*x as i64))
}

/// `bset`: byte `idx` of buffer `b` = `v` (an int in `0..=255`).
pub(crate) fn buf_set(
    link: &mut dyn HostLink,
    prog: &Program,
    b: usize,
    idx: &Value,
    v: &Value,
) -> Result<(), E> {
    let byte = match *v {
        Value::Int(x) => u8::try_from(x)
            .map_err(|_| E::BadArgument("a buffer byte must be an int in 0..=255"))?,
        _ => {
            return Err(E::Type {
                op: "store into a buffer",
                lhs: v.type_name(),
                rhs: "",
            })
        }
    };
    *byte_at(link, prog, b, idx)? = byte;
    Ok(())
}

/// `blen`: the length of buffer `b`.
pub(crate) fn buf_len(link: &mut dyn HostLink, b: usize) -> Result<Value, E> {
    match link.buf(b) {
        Some(buf) => Ok(Value::Int(buf.len() as i64)),
        None => Err(E::Link(String::from("host buffer index out of range"))),
    }
}
