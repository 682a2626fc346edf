//! The platform contract: everything kiln needs from the host it runs on.
//!
//! A port (the std shim, a kernel) implements these narrow `unsafe trait`s and nothing else.
//! Every method states what it requires of its caller and what it promises; none of them may
//! allocate through kiln (they are called from inside the allocator's slow paths, where a
//! re-entrant allocation would deadlock or corrupt the heap).
//!
//! What each part of kiln calls:
//!
//! | part of kiln | needs | never calls |
//! |---|---|---|
//! | allocator ([`crate::allocator`], [`crate::global`]) | [`MemorySource`] only; [`crate::global::PerCpuHeaps`] also a [`CpuPin`](crate::global::CpuPin) | [`ExecMemory`], [`Console`] |
//! | interpreter ([`crate::vm`]) | a global allocator (the `alloc` crate) | any trait here |
//! | JIT ([`crate::jit`]) | [`ExecMemory`], optionally a [`Console`] for `[JIT]` lines, and the CPU state below | [`MemorySource`] |
//!
//! The JIT also needs from the CPU and the kernel:
//! - x86_64: SSE2 (every x86_64 CPU has it) enabled for the code that runs traces
//!   (`CR4.OSFXSR`, `CR0.EM` clear). aarch64: FP/SIMD enabled (`CPACR_EL1.FPEN = 0b11`).
//! - FP state saved across interrupts and context switches: native code keeps floats and
//!   spilled values in `xmm0..xmm15` (x86_64) / `v0..v31`, `FPCR`, `FPSR` (aarch64) for its
//!   whole run; a handler or another thread that uses those registers must find them saved
//!   (FXSAVE/XSAVE, or the Q registers) and restore them. An `x86_64-unknown-none` kernel is
//!   soft-float, so its own handlers do not touch them; a context switch to another thread that
//!   runs JIT code still must save them.
//! - Machine stack: `VmConfig::native_stack` plus
//!   [`JIT_STACK_HEADROOM`](crate::vm::native::JIT_STACK_HEADROOM) free where `Vm::run` is
//!   called (see [`NATIVE_FRAME_BYTES`](crate::vm::native::NATIVE_FRAME_BYTES)).
//!
//! ```text
//!   trait            std shim (kiln-std)                 bare metal (kiln-bare)
//!   ---------------  ----------------------------------  ----------------------------------
//!   MemorySource     mmap, munmap, madvise(DONTNEED,      bitmap of free RAM segments
//!                    HUGEPAGE / NOHUGEPAGE)
//!   ExecMemory       mmap RW -> mprotect RX               page-table permission flips
//!   Console          stderr                               16550 / PL011 UART
//! ```
//!
//! The allocator's own extension points live with the global allocators, above the allocator
//! core: [`LocalSlot`](crate::global::LocalSlot) (how a global allocator reaches the calling
//! thread's or CPU's heap; kiln-std: a thread-local heap with an exit hook) and
//! [`CpuPin`](crate::global::CpuPin).

use core::ptr::NonNull;

/// Where segments come from.
///
/// # Safety
/// For implementors: `reserve(n)` must return either null or the start of `n * SEGMENT_SIZE` bytes of readable and
/// writable memory, aligned to [`SEGMENT_SIZE`](crate::allocator::SEGMENT_SIZE), that
/// nothing else uses until it is handed back with `release`. The source must be usable from
/// several threads (or CPUs) at once.
pub unsafe trait MemorySource: Sync {
    /// Reserves `count >= 1` contiguous segments. Returns null when out of memory; never panics.
    /// Must not allocate through kiln.
    fn reserve(&self, count: usize) -> *mut u8;

    /// Gives segments back to the platform.
    ///
    /// # Safety
    /// `base` and `count` come from one earlier `reserve` call (or, when
    /// [`can_release_parts`](Self::can_release_parts) says so, name a run of segments inside one
    /// reservation not released yet), and no byte of the region is used afterwards. Must not
    /// allocate through kiln.
    unsafe fn release(&self, base: *mut u8, count: usize);

    /// Whether freshly reserved memory reads as zero (capability; default no). Lets `calloc` of a
    /// huge block skip clearing memory the platform already cleared.
    fn zeroed(&self) -> bool {
        false
    }

    /// Whether [`release`](Self::release) also accepts any run of whole segments inside one
    /// reservation (capability; default no: only exactly what one `reserve` returned). With it,
    /// a huge block aligned to more than a segment gives the over-reserved head and tail back at
    /// once; without it they stay reserved until the block is freed.
    fn can_release_parts(&self) -> bool {
        false
    }

    /// Whether [`decommit`](Self::decommit) returns physical memory (capability; default no).
    fn can_decommit(&self) -> bool {
        false
    }

    /// Tells the platform the range holds nothing worth keeping; it may take the physical memory
    /// back. The range stays reserved and reads as zero (or stale bytes) when touched again.
    ///
    /// # Safety
    /// The range lies inside a reserved region, is aligned to 4 KiB at both ends, and holds no
    /// live data. Must not allocate through kiln.
    unsafe fn decommit(&self, _addr: *mut u8, _len: usize) {}

    /// A hint about the page size backing one segment; the default ignores it.
    ///
    /// `large = true` comes for a segment fresh from [`reserve`](Self::reserve), before kiln
    /// writes any byte of it, when the heap taking it already holds four segments' worth of
    /// pages it touches throughout: the platform may back the segment with large pages (2 MiB),
    /// which save TLB misses and cost little memory there (the segment is resident whole while
    /// it fills), or decline (kiln-std does after `set_large_pages(false)`). `large = false`
    /// comes before the first [`decommit`](Self::decommit) of a range in a segment advised
    /// `true`: the platform should not fill the holes kiln gives back with large pages again.
    ///
    /// # Safety
    /// `segment` is the start of a segment this source reserved and has not released. The
    /// method must not change a byte of the segment and must not allocate through kiln.
    unsafe fn advise_large_pages(&self, _segment: *mut u8, _large: bool) {}
}

/// A region of memory for generated code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodeRegion {
    /// Start of the region; aligned to the platform's page size.
    pub ptr: NonNull<u8>,
    /// Length in bytes; a multiple of the platform's page size.
    pub len: usize,
}

/// Executable memory for the JIT: write while not executable, then flip to read+execute.
/// A region is never writable and executable at the same time.
///
/// What may be skipped: on a CPU or page-table format without a no-execute bit, memory cannot
/// be writable-but-not-executable; `map_writable` may then return memory that is also
/// executable, and if `make_executable` cannot remove write permission either, permissions
/// never change and no TLB shoot-down is needed (W^X is then not enforced: only the
/// platform's protection is lost, not kiln's correctness). Never skippable: the instruction
/// cache synchronisation on aarch64 (`dc cvau` / `ic ivau` / `dsb` / `isb`), and on every
/// architecture a context-synchronising event on any *other* CPU before it first runs code
/// this CPU wrote (aarch64 `isb`, x86_64 `cpuid` or an interrupt return).
///
/// # Safety
/// For implementors: `map_writable` returns memory nothing else uses; after `make_executable` returns true the
/// region's bytes are what was written and can be executed by the calling CPU. With several
/// CPUs, when `make_executable` or `unmap` returns no CPU still holds a translation with the
/// region's old permissions (a TLB shoot-down where invalidation is per-CPU, e.g. x86_64).
pub unsafe trait ExecMemory: Sync {
    /// Maps at least `len` bytes readable and writable, not executable. `None` when out of memory
    /// or over the platform's cap on JIT memory. Must not allocate through kiln.
    fn map_writable(&self, len: usize) -> Option<CodeRegion>;

    /// Makes `region` read+execute (and not writable), after synchronising the instruction cache
    /// for it (mandatory on aarch64). Returns false if the platform refused.
    ///
    /// # Safety
    /// `region` comes from `map_writable` and is not being executed or written concurrently.
    unsafe fn make_executable(&self, region: CodeRegion) -> bool;

    /// Unmaps a region.
    ///
    /// # Safety
    /// `region` comes from `map_writable`, and no code in it runs now or will run again.
    unsafe fn unmap(&self, region: CodeRegion);
}

/// A byte sink for `[JIT]` traces and reports.
///
/// # Safety
/// For implementors: `write_bytes` must be callable from any thread or CPU at any time (including from inside the
/// allocator's slow path) and must not allocate through kiln.
pub unsafe trait Console: Sync {
    /// Writes all of `bytes`.
    fn write_bytes(&self, bytes: &[u8]);
}
