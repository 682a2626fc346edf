//! # kiln-bare: kiln's QEMU harness for bare metal (x86_64 and aarch64 `virt`)
//!
//! This crate boots kiln's test kernels under QEMU: its boot code, linker scripts
//! (`link/<arch>.ld`), Multiboot `mem_upper` probing, 8-CPU tables and QEMU exit devices are
//! made for that and nothing else. A kernel of your own does not need it: kiln's allocator
//! needs only a `MemorySource` (and [`kiln::global`] provides the global allocator), the JIT an
//! `ExecMemory`. What is worth taking from here into a kernel:
//!
//! | part | what it is | depends on |
//! |---|---|---|
//! | [`segments::SegmentBitmap`] | free/used bitmap of 2 MiB segments over a RAM range; the core of a `MemorySource` (`memory.rs` wraps it in a lock) | `bitvec`; builds and is unit-tested on the host |
//! | `heap::BareCpus` + `heap::HEAPS` | a `kiln::global::CpuPin` (interrupts masked, CPU index) and the per-CPU global allocator over it | the CPU index and interrupt masking of `cpu.rs` |
//! | `sync::IrqMutex` | a spin lock held with interrupts masked | `cpu.rs` |
//! | `exec::EXEC`, `paging.rs`, `tlb.rs`, `cache.rs` | an `ExecMemory`: a window of 4 KiB pages flipped between RW+NX and RX, with TLB shoot-down and icache maintenance | this crate's page tables |
//!
//! The `#[panic_handler]` (prints and fails the QEMU run) is behind the `panic-handler`
//! feature, off by default, so linking kiln-bare never clashes with a kernel's own.
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
#[cfg(all(target_os = "none", feature = "panic-handler"))]
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
