//! kiln: a `no_std` memory allocator and a tracing-JIT bytecode VM for kernels and embedded hosts.
//!
//! # kiln as your kernel's global allocator
//!
//! Three lines, plus the kernel's [`MemorySource`] (where 2 MiB
//! segments come from):
//!
//! ```no_run
//! # struct Ram;
//! # // SAFETY: never hands out memory (the example only has to compile).
//! # unsafe impl kiln::platform::MemorySource for Ram {
//! #     fn reserve(&self, _count: usize) -> *mut u8 { core::ptr::null_mut() }
//! #     unsafe fn release(&self, _base: *mut u8, _count: usize) {}
//! # }
//! # static MY_MEMORY: Ram = Ram;
//! static POOL: kiln::allocator::Pool = kiln::allocator::Pool::new(&MY_MEMORY); // your MemorySource
//! #[global_allocator]
//! static ALLOC: kiln::global::LockedHeap = kiln::global::LockedHeap::new(&POOL);
//! # fn main() {}
//! ```
//!
//! - Several CPUs: [`global::PerCpuHeaps`] (one heap per CPU, remote frees, a [`global::CpuPin`]
//!   from the kernel naming the CPU with interrupts masked). No memory map yet:
//!   [`global::StaticRegion`] (a static array) or [`global::Region`] (a range found at boot) is
//!   the `MemorySource`.
//! - Out of memory returns null; `.with_oom_handler(f)` lets the kernel add memory and have the
//!   allocation retried. A refused free (foreign pointer, double free) changes nothing and goes
//!   to `.with_invalid_free(f)`.
//! - Every power-of-two alignment up to [`allocator::MAX_ALIGN`] (1 GiB and beyond).
//!
//! # What a kernel provides
//!
//! | to use | it implements | kiln never calls |
//! |---|---|---|
//! | the allocator | [`platform::MemorySource`] (`reserve(n)`: `n` contiguous segments aligned to their size, or null; `release`) | `LocalSlot`, `ExecMemory`, `Console` |
//! | per-CPU heaps | also [`global::CpuPin`]: the CPU index, with the CPU pinned while kiln runs | |
//! | the interpreter ([`vm`]) | a global allocator | any platform trait |
//! | the JIT ([`jit`]) | [`platform::ExecMemory`] (W^X; what may be skipped without NX is in its docs), SSE2 / FP enabled and FP state saved across interrupts and context switches, `VmConfig::native_stack` + [`vm::native::JIT_STACK_HEADROOM`] bytes of stack | `MemorySource` |
//!
//! The full list with the reasons: the [`platform`] module.
//!
//! The allocator ([`allocator`]) does not depend on the `alloc` crate. The VM and JIT use `alloc`
//! collections on top of it.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(missing_docs)]

#[cfg(test)]
extern crate std;

// The `alloc` crate is renamed because `kiln::allocator` is the allocator itself.
#[cfg(feature = "alloc")]
extern crate alloc;

pub mod allocator;
pub mod global;
#[cfg(feature = "jit")]
pub mod jit;
pub mod platform;
#[cfg(feature = "vm")]
pub mod vm;

// The entry types, one `use kiln::...` away.
#[cfg(feature = "alloc")]
pub use allocator::arena::Arena;
pub use allocator::{Heap, Pool};
pub use global::{LockedHeap, PerCpuHeaps};
#[cfg(all(feature = "jit", any(target_arch = "x86_64", target_arch = "aarch64")))]
pub use jit::Jit;
pub use platform::MemorySource;
#[cfg(feature = "vm")]
pub use vm::{Host, Program, Value, Vm, VmConfig};
