//! The x86-64 backend.
pub mod emit;
pub mod isel;
pub mod target;

pub use isel::X64;
