//! The x86-64 backend.
pub mod emit;
pub mod emit_call;
pub mod emit_div;
pub mod isel;
mod link;
pub mod target;

pub use isel::X64;
