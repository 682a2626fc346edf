//! The x86-64 backend.
pub mod emit;
pub mod isel;
mod link;
pub mod target;

pub use isel::X64;
