//! The tracing JIT: hot-loop counting, recording, IR, optimisation, backends.
