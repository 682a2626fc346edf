//! kiln: a `no_std` memory allocator and a tracing-JIT bytecode VM for kernels and embedded hosts.
//!
//! The allocator ([`alloc`]) needs nothing but the [`platform`] contract; it does not depend on
//! the `alloc` crate. The VM and JIT (later modules) use `alloc` collections on top of it.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

#[cfg(test)]
extern crate std;

// The `alloc` crate is renamed because `kiln::alloc` is the allocator itself.
#[cfg(feature = "alloc")]
extern crate alloc as liballoc;

pub mod alloc;
pub mod global;
#[cfg(feature = "vm")]
pub mod jit;
pub mod platform;
#[cfg(feature = "vm")]
pub mod vm;
