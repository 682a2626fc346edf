//! The tracing JIT: hot-loop counting, recording, IR, optimisation, backends.
pub mod backend;
pub mod buffer;
pub mod install;
pub mod ir;
pub mod irinterp;
pub mod opt;
pub mod regalloc;
pub mod slots;
pub mod snapshot;
pub mod trace;
