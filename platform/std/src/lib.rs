//! kiln on a hosted OS (placeholder until the allocator core lands).
#![deny(unsafe_op_in_unsafe_fn)]
pub mod exec;
