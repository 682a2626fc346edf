//! The tracing JIT: hot-loop counting, recording, IR, optimisation, backends.
pub mod backend;
pub mod buffer;
