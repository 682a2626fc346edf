//! The tracing JIT: hot-loop counting, recording, IR, optimisation, backends.
//!
//! ```text
//!  VM (vm/interp.rs, vm/native.rs): a countdown word per loop-header PC and per function;
//!  only when it reaches 0 does the VM call the hook (LoopHook), whose Reply either resumes
//!  after native code or sets the next countdown (penalty after an abort, u32::MAX when
//!  blacklisted: trace.rs TraceState)
//!        |                                          |
//!   loop header / hot side exit                 hot function (call count)
//!   driver.rs Jit::enter                        func.rs FuncJit::native
//!        |                                          |
//!   record.rs  (one loop iteration, or          frecord.rs  (entry to `ret`, calls as
//!   a side path to a linked header)             helper calls or direct native calls)
//!        \                                          /
//!    recorder.rs  (the bytecode arms both share, over each recorder's own values:
//!                  moves, constants, arithmetic, negation, jumps, compare-and-branches)
//!                          |
//!                 IR + snapshots (ir.rs, ir/snapshot.rs)
//!                          |
//!                 opt.rs   (loop: pre-roll, LOOP, body, PHIs; CSE, folding, hoisting)
//!                          |
//!                 regalloc.rs  (linear scan; unboxed ints and floats)
//!                          |
//!                 backend/<arch>  (isel + dynasm! templates -> buffer.rs CodeBuffer)
//!                          |
//!                 install.rs  (platform ExecMemory, W^X, icache); a trace's ways in:
//!                 checked entry, fast entry, a loop trace's register entry (backend/link.rs)
//!        /                                                   \
//!   driver.rs: enter(slots, exit frame) -> exit id ->      func.rs FuncCode::run: frame in
//!   restore the snapshot, link table to the next trace     memory (callframe.rs), helpers
//!   (a call stop: Reply::Call, the VM makes the call,      for VM calls, side traces
//!    then after_call runs the trace after it)
//! ```
//!
//! `irinterp.rs` is the reference for the optimiser and the backends; `slots.rs` is all the JIT
//! knows about VM values.
//!
//! The public face is [`Jit`] (a [`LoopHook`](crate::vm::LoopHook) for [`Vm::run`](crate::vm::Vm::run))
//! and its statistics. The stages are internal; the ones the integration tests, the example
//! and the QEMU kernels drive directly (IR, optimiser, backends, installer) stay reachable
//! but undocumented.

// The stages are reachable but undocumented (`#[doc(hidden)]`): core/tests drive the IR, the
// optimiser and both backends directly, core/examples/jit_compile_time.rs times them, the QEMU
// kernels install traces themselves, and the stages' own docs link to each other. The API is
// the re-exports below.
#[doc(hidden)]
pub mod backend;
#[doc(hidden)]
pub mod buffer;
#[doc(hidden)]
pub mod callframe;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[doc(hidden)]
pub mod driver;
#[doc(hidden)]
pub mod frecord;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[doc(hidden)]
pub mod func;
#[doc(hidden)]
pub mod hostbuf;
#[doc(hidden)]
pub mod hostcall;
#[doc(hidden)]
pub mod install;
#[doc(hidden)]
pub mod ir;
#[doc(hidden)]
pub mod irinterp;
#[doc(hidden)]
pub mod live;
#[doc(hidden)]
pub mod opt;
// `record::record` (a loop recording without links) has no caller inside kiln any more.
#[doc(hidden)]
pub mod record;
// The per-bytecode recording the loop and function recorders share.
pub(crate) mod recorder;
pub(crate) mod regalloc;
#[doc(hidden)]
pub mod slots;
pub(crate) use ir::snapshot;
#[doc(hidden)]
pub mod trace;

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub use driver::{Jit, JitStats};
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub use func::FuncStats;
pub use trace::Abort;
