//! The bytecode VM: opcode table, verifier, interpreter, and the `.kl` language.
//!
//! # Glossary
//!
//! | term | meaning |
//! |---|---|
//! | value | a [`Value`]: nil, bool, int (i64), float (f64), or a reference to a heap string/array |
//! | register / slot | one `Value` in the VM's register stack; a frame's register `r` is slot `base + r` |
//! | frame | one active call: function, `base`, return PC; the entry function's base is 0 |
//! | PC | index of a 32-bit code word within a function's code; instructions are 1 or 2 words |
//! | loop header | the target of a backward jump (a jump to a lower or equal PC) |
//! | arrival | control reaching a loop header: a taken backward jump to it, or falling into the loop through the `loop` marker right before it |
//! | constant pool | every literal and identifier of a program, interned once ([`Program::consts`]) |
//! | fuel | prepaid instruction budget; see [`Vm`] |
//!
//! # Value representation
//!
//! A [`Value`] is a `#[repr(u64)]` enum of 16 bytes, so its layout is fixed (RFC 2195): bytes
//! 0..8 are the tag word ([`value::TAG_NIL`] ..), bytes 8..16 the payload; there is no padding.
//! Native code may read and write the scalar variants directly (store the tag word and the
//! payload word).
//! Heap variants hold an `Rc` pointer in the payload; overwriting a slot that holds one must drop
//! that reference (decrement, maybe free), so a JIT either leaves such slots to the interpreter
//! or calls back into Rust to drop them.
//!
//! ```text
//!   Value (16 bytes)
//!   +----------------+----------------------------------------------+
//!   | tag (u64)      | payload (8 bytes, offset 8)                  |
//!   +----------------+----------------------------------------------+
//!     0 Nil            unused
//!     1 Bool           0 / 1 in the first payload byte
//!     2 Int            i64
//!     3 Float          f64 bits
//!     4 Str, 5 Array   pointer into the Rc allocation (the object; counts precede it)
//! ```
//!
//! An array ([`value::ArrayObj`], `repr(C)`) keeps its elements in one buffer of `Value`s with no
//! borrow flag: native code finds the element pointer and the length at
//! `value::ARRAY_PTR_OFFSET` and `value::ARRAY_LEN_OFFSET` from the payload pointer (a test
//! checks both against the real layout).
//!
//! A string ([`value::StrObj`]) of at most 40 bytes is interned per VM (`intern.rs`): equal
//! short strings are one object. Texts of at most 22 bytes live inside the object. Native code
//! reads no `StrObj` field; it makes and compares strings through `Value::new_str`,
//! `Value::concat`, `Value::equals`.
//!
//! # Register stack and frames
//!
//! All frames share one `Vec<Value>`. A call `call A, C, f` places the callee's frame at the
//! caller's register `A`: the arguments the caller left in `A .. A+C` are the callee's
//! parameters `0 .. C`, and the callee's result comes back in the caller's `A`. The verifier
//! ensures the caller keeps nothing live above `A` across the call.
//!
//! ```text
//!  slot:  0                 base_g           base_g + A_g = base_f
//!         |<-- main frame ----------------->|
//!         | r0 | r1 | ... | r(A_g-1)        | r(A_g) .. (args, then callee temps)
//!                           |<-- g's frame (base_g) ---------------------->|
//!                                             |<-- f's frame (base_f) --------->|
//!         the stack grows to the right; frames overlap exactly at the argument window
//! ```
//!
//! # Where heap values are reclaimed (collection points)
//!
//! Heap objects are reference counted; an object is freed when its last reference is dropped,
//! which happens only (1) when an instruction overwrites a register (`A = ...` of any op), (2) in
//! `setidx` when an array element is replaced, (3) at `ret`/`retnil`, which clears every
//! register of the returning frame that holds a heap value (the interpreter skips the scan of a
//! frame that starts above its heap watermark, where no register holds one), (4) when [`Vm::run`] finishes and clears the stack. Pure
//! numeric instructions on numeric registers never free anything. Cycles (an array inside itself)
//! are not reclaimed; they stay charged to the memory cap.
//!
//! # JIT hooks
//!
//! [`VmConfig::jit_threshold`] turns on counting of arrivals per loop-header PC (a countdown
//! word per PC: one decrement and one branch per backward jump or `loop` marker);
//! [`LoopHook::hot_loop`] is called when a header's count reaches the threshold, with the
//! frame's registers, and [`LoopHook::enter`] whenever the countdown runs out; its [`Reply`]
//! resumes after native code or sets the next countdown, so a loop the JIT gave up on is never
//! asked about again. Calls are counted the same way per function.
//! [`Vm::slot`]/[`Vm::slot_mut`] access slots by index.
//!
//! The compiler emits `while` loops inverted: an entry test, a `loop` marker, the body starting
//! at the loop header (the word after the marker), and at the bottom one backward branch — a
//! compare-and-branch (`jlt`, `jltk`, ...), an unconditional `jmp` (`while true`), or the fused
//! step-and-test `forlt`/`forltk` (`i = i + 1; i < n`). Every backward branch goes through the
//! same counting hook in `interp.rs` (`back_edge`), whichever op takes it, and the marker
//! counts the arrival of control falling into the loop the same way (`loop_entry`, no fuel), so
//! a loop's native code runs from the first iteration of every entry into the loop. A trace
//! runs from the header to the backward branch that targets it.
pub(crate) mod arith;
pub(crate) mod builtins;
pub mod bytecode;
pub(crate) mod error;
pub mod host;
pub(crate) mod interp;
pub mod lang;
pub(crate) mod program;
pub mod value;
pub(crate) mod verify;

pub use error::{Error, RuntimeError, RuntimeErrorKind, SyntaxError, VerifyError};
pub use host::{Host, HostError, Ty};
pub use interp::native;
pub use interp::{HostStep, HotLoop, LoopHook, Reply, Vm, VmConfig};
pub use lang::compile_with;
pub use program::{Const, Function, Import, LoadError, Program};
pub use value::Value;
pub use verify::verify;

use core::fmt::Write;

/// Compiles, verifies and runs `src` with `config`; `print` writes to `out`.
pub fn run_source(
    src: &str,
    args: &[&str],
    config: VmConfig,
    out: &mut dyn Write,
) -> Result<Value, Error> {
    let prog = lang::compile(src)?;
    let mut vm = Vm::new(&prog, config)?;
    vm.set_args(args)?;
    Ok(vm.run(out, None)?)
}
