//! The AArch64 backend.
pub mod emit;
pub mod isel;
pub mod target;

pub use isel::A64;
