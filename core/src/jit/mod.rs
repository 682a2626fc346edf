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
//!        \______ IR + snapshots (ir.rs, snapshot.rs) ______/
//!                          |
//!                 opt.rs   (loop: pre-roll, LOOP, body, PHIs; CSE, folding, hoisting)
//!                          |
//!                 regalloc.rs  (linear scan; unboxed ints and floats)
//!                          |
//!                 backend/<arch>  (isel + dynasm! templates -> buffer.rs CodeBuffer)
//!                          |
//!                 install.rs  (platform ExecMemory, W^X, icache)
//!        /                                                   \
//!   driver.rs: enter(slots, exit frame) -> exit id ->      func.rs FuncCode::run: frame in
//!   restore the snapshot, link table to the next trace     memory (callframe.rs), helpers
//!                                                          for VM calls, side traces
//! ```
//!
//! `irinterp.rs` is the reference for the optimiser and the backends; `slots.rs` is all the JIT
//! knows about VM values.
pub mod backend;
pub mod buffer;
pub mod callframe;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub mod driver;
pub mod frecord;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub mod func;
pub mod hostbuf;
pub mod hostcall;
pub mod install;
pub mod ir;
pub mod irinterp;
pub mod opt;
pub mod record;
pub mod regalloc;
pub mod slots;
pub mod snapshot;
pub mod trace;
