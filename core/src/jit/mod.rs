//! The tracing JIT: hot-loop counting, recording, IR, optimisation, backends.
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
