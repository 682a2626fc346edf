//! # kiln-bare: kiln on bare metal (QEMU x86_64 and aarch64 `virt`)
//!
//! ## Glossary
//! - **image**: the kernel's loaded bytes, `__image_start..__image_end` (linker script in `link/`).
//! - **segment pool**: the RAM above the image, cut into 2 MiB segments (`SEGMENT_SIZE`); a
//!   bitmap with one bit per segment says which are free ([`segments`]).
//! - **early heap**: a fixed region served by `linked_list_allocator`, for the few allocations
//!   made before kiln's heaps are up (the segment bitmap itself lives there).
//! - **CPU index**: 0 for the boot CPU, 1.. for the others in start order; it indexes every
//!   per-CPU table. x86_64 keeps it at `gs:0`, aarch64 in `TPIDR_EL1`.
//! - **exec window**: one segment mapped with 4 KiB pages, where JIT code lives; each page is
//!   either writable+no-execute or read+execute, never both.
//! - **shoot-down**: dropping stale translations of window pages on every CPU after a flip.
//!
//! ## Boot, one file per stage
//! ```text
//!   _arch/<arch>/boot.rs  asm entry: stack, FP/SSE on, long mode (x86_64), vectors (aarch64)
//!   boot.rs               start(): console, per-CPU index, MMU (aarch64), memory, exec window
//!   (kernel)              the function named by `entry!`, then exit with its verdict
//!   exit.rs               QEMU exit code: 33 = success, 35 = failure (anything else: failure)
//! ```
//!
//! ## kiln's platform contract, here
//! ```text
//!   MemorySource  memory::MEMORY     segment bitmap over RAM (segments.rs), early-heap storage
//!   (per-CPU)     heap::HEAPS        kiln::global::PerCpuHeaps, CPUs named by heap::BareCpus
//!                                    with interrupts masked while in use
//!   ExecMemory    exec::EXEC         exec window, 4 KiB pages RW+NX <-> RX (paging.rs, cache.rs),
//!                                    TLB shoot-down on every flip (tlb.rs)
//!   Console       console::SerialConsole
//!   GlobalAlloc   heap::KilnAlloc    early heap until boot is done, then this CPU's kiln heap
//! ```
//! Secondary CPUs: [`smp::start_secondary`] (x86_64 INIT-SIPI-SIPI, aarch64 PSCI `CPU_ON`).
//! Once a second CPU starts, x86_64 CPUs run with interrupts enabled: the only interrupt is the
//! TLB shoot-down IPI (the legacy PICs are masked). [`guard::call_guarded`] runs a function with
//! page faults turned into errors (tests probe page permissions with it).
//! Every generic module with an architecture half names it `_arch/<arch>/<module>.rs`.
//!
//! ## Invariants
//! - Every lock a handler or the allocator could take is an [`sync::IrqMutex`]: interrupts are
//!   off while it is held, so a CPU never spins on a lock it holds itself.
//! - Only an explicit success exit (33) means a test passed: a triple fault, a hang (killed by
//!   the runner's timeout) or a panic all end with another code.
//!
//! On a hosted target only the architecture-free parts build ([`segments`], with unit tests);
//! everything else exists for `target_os = "none"`.
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod segments;

#[cfg(target_os = "none")]
pub mod boot;
#[cfg(target_os = "none")]
pub mod cache;
#[cfg(target_os = "none")]
pub mod console;
#[cfg(target_os = "none")]
pub mod cpu;
#[cfg(target_os = "none")]
pub mod early_heap;
#[cfg(target_os = "none")]
pub mod exec;
#[cfg(target_os = "none")]
pub mod exit;
#[cfg(target_os = "none")]
pub mod guard;
#[cfg(target_os = "none")]
pub mod heap;
#[cfg(all(target_os = "none", target_arch = "x86_64"))]
#[path = "_arch/x86_64/lapic.rs"]
mod lapic;
#[cfg(target_os = "none")]
pub mod memory;
#[cfg(target_os = "none")]
pub mod paging;
#[cfg(target_os = "none")]
mod panic;
#[cfg(all(target_os = "none", target_arch = "x86_64"))]
#[path = "_arch/x86_64/port.rs"]
mod port;
#[cfg(target_os = "none")]
pub mod serial;
#[cfg(target_os = "none")]
pub mod smp;
#[cfg(target_os = "none")]
pub mod sync;
#[cfg(target_os = "none")]
pub mod tlb;
