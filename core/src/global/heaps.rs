//! The global allocator types: [`LockedHeap`] (one heap behind a lock), [`PerCpuHeaps`] (one
//! heap per CPU, reached through the kernel's [`CpuPin`]) and [`SlotHeaps`] (whatever a
//! [`LocalSlot`] hands out), each with the allocation protocol of [`super`].
use core::cell::UnsafeCell;
use core::mem::MaybeUninit;

use super::*;
/// One kiln heap behind a `spin` lock: the simplest global allocator (a uniprocessor kernel,
/// firmware, or any host where allocation is not hot on several CPUs at once).
///
/// ```no_run
/// # struct MySource;
/// # unsafe impl kiln::platform::MemorySource for MySource {
/// #     fn reserve(&self, _: usize) -> *mut u8 { core::ptr::null_mut() }
/// #     unsafe fn release(&self, _: *mut u8, _: usize) {}
/// # }
/// static SOURCE: MySource = MySource; // the kernel's MemorySource
/// static POOL: kiln::allocator::Pool = kiln::allocator::Pool::new(&SOURCE);
/// #[global_allocator]
/// static ALLOC: kiln::global::LockedHeap = kiln::global::LockedHeap::new(&POOL);
/// # fn main() {}
/// ```
///
/// The lock is a plain spin lock: a kernel whose interrupt handlers allocate must mask
/// interrupts around allocations (or use [`PerCpuHeaps`] with a [`CpuPin`] that does).
pub struct LockedHeap {
    heap: spin::Mutex<Heap>,
    hooks: Hooks,
}

impl LockedHeap {
    /// A locked heap drawing segments from `pool`.
    pub const fn new(pool: &'static Pool) -> LockedHeap {
        LockedHeap {
            heap: spin::Mutex::new(Heap::new(pool)),
            hooks: Hooks::new(),
        }
    }
}

// SAFETY: the heap is handed out only under its lock, so every use is exclusive; the same heap
// every time.
unsafe impl LocalSlot for LockedHeap {
    #[inline(always)]
    fn with_heap<R>(&self, f: impl FnOnce(&mut Heap) -> R) -> R {
        f(&mut self.heap.lock())
    }
}

global_alloc_type!(LockedHeap);

// ---------------------------------------------------------------------------------------------

/// The current thread's (std) or CPU's (kernel) heap: how [`SlotHeaps`] reaches a
/// heap, and what every global allocator type here implements. The
/// allocator core never calls it; a kernel implements it only to use `SlotHeaps`.
///
/// # Safety
/// For implementors: `with_heap` must hand `f` a heap that nothing else uses for the duration
/// of the call (in a kernel: with preemption or interrupts disabled, or under a lock).
pub unsafe trait LocalSlot: Sync {
    /// Runs `f` with exclusive access to the local heap. Must not allocate through kiln before
    /// `f` runs (the allocator calls this on every allocation).
    fn with_heap<R>(&self, f: impl FnOnce(&mut Heap) -> R) -> R;

    /// Like [`with_heap`](Self::with_heap), but `None` (without running `f`) when the slot
    /// would have to do anything but hand over a heap that is ready: set one up, take a lock.
    /// The allocator's inline fast path uses it so that it makes no call; `None` sends the
    /// request to `with_heap`. The default runs `with_heap`.
    #[inline(always)]
    fn with_ready_heap<R>(&self, f: impl FnOnce(&mut Heap) -> R) -> Option<R> {
        Some(self.with_heap(f))
    }
}

// ---------------------------------------------------------------------------------------------

/// How a kernel names the calling CPU for [`PerCpuHeaps`], with the CPU pinned.
///
/// # Safety
/// `pinned(f)` calls `f` exactly once with the calling CPU's index, and until `f` returns no
/// other code (another CPU, a preempting thread, an interrupt handler on this CPU) runs `f` of
/// the same [`PerCpuHeaps`] with that index. Typically: mask interrupts, read the CPU index,
/// call `f`, restore the mask. Indexes at or above the `PerCpuHeaps`' `N` are served by its
/// shared spare heap behind a lock, so they need not be exclusive.
pub unsafe trait CpuPin: Sync {
    /// Runs `f` with the calling CPU's index, the CPU pinned (see the trait's contract).
    fn pinned<R>(&self, f: impl FnOnce(usize) -> R) -> R;
}

struct CpuHeap(UnsafeCell<Heap>);

// SAFETY: a CPU's heap is only reached inside `CpuPin::pinned` with that CPU's index, which
// the trait's contract makes exclusive.
unsafe impl Sync for CpuHeap {}

/// One kiln heap per CPU (`N` of them), no lock on the fast path; a block freed on another CPU
/// goes to its page's atomic remote-free list and its owner collects it. CPUs with an index of
/// `N` or more share a spare heap behind a lock.
///
/// ```no_run
/// # struct MySource;
/// # unsafe impl kiln::platform::MemorySource for MySource {
/// #     fn reserve(&self, _: usize) -> *mut u8 { core::ptr::null_mut() }
/// #     unsafe fn release(&self, _: *mut u8, _: usize) {}
/// # }
/// # fn cpu_index() -> usize { 0 }
/// # fn without_interrupts<R>(f: impl FnOnce() -> R) -> R { f() }
/// struct Cpus;
/// // SAFETY: interrupts are masked while `f` runs, and `cpu_index` is this CPU's.
/// unsafe impl kiln::global::CpuPin for Cpus {
///     fn pinned<R>(&self, f: impl FnOnce(usize) -> R) -> R {
///         without_interrupts(|| f(cpu_index()))
///     }
/// }
/// static SOURCE: MySource = MySource;
/// static POOL: kiln::allocator::Pool = kiln::allocator::Pool::new(&SOURCE);
/// #[global_allocator]
/// static ALLOC: kiln::global::PerCpuHeaps<Cpus, 8> = kiln::global::PerCpuHeaps::new(&POOL, Cpus);
/// # fn main() {}
/// ```
///
/// CPUs are assumed to live as long as the allocator: a CPU's heap is never abandoned. A kernel
/// that takes a CPU offline calls [`abandon_cpu`](Self::abandon_cpu) from it first.
pub struct PerCpuHeaps<C, const N: usize> {
    cpu: C,
    heaps: [CpuHeap; N],
    spare: spin::Mutex<Heap>,
    hooks: Hooks,
}

impl<C: CpuPin, const N: usize> PerCpuHeaps<C, N> {
    /// `N` heaps drawing segments from `pool`; `cpu` names the calling CPU.
    pub const fn new(pool: &'static Pool, cpu: C) -> Self {
        let mut heaps: [MaybeUninit<CpuHeap>; N] = [const { MaybeUninit::uninit() }; N];
        let mut i = 0;
        while i < N {
            heaps[i] = MaybeUninit::new(CpuHeap(UnsafeCell::new(Heap::new(pool))));
            i += 1;
        }
        PerCpuHeaps {
            cpu,
            // SAFETY: every element was initialised above; `[MaybeUninit<T>; N]` and `[T; N]`
            // have the same layout.
            heaps: unsafe { ptr::read(heaps.as_ptr().cast::<[CpuHeap; N]>()) },
            spare: spin::Mutex::new(Heap::new(pool)),
            hooks: Hooks::new(),
        }
    }

    /// The calling CPU gives up its heap's pages (empty ones to the pool, the rest for other
    /// heaps to adopt), e.g. before the CPU goes offline. The heap stays usable.
    pub fn abandon_cpu(&self) {
        self.with_heap(|h| h.abandon());
    }
}

// SAFETY: CPU `i < N` gets `heaps[i]` only inside `CpuPin::pinned` with index `i`, exclusive by
// that trait's contract, and always the same heap; other indexes share `spare` under its lock.
unsafe impl<C: CpuPin, const N: usize> LocalSlot for PerCpuHeaps<C, N> {
    #[inline(always)]
    fn with_heap<R>(&self, f: impl FnOnce(&mut Heap) -> R) -> R {
        self.cpu.pinned(|i| match self.heaps.get(i) {
            // SAFETY: CPU `i` is pinned and alone with its heap (CpuPin contract).
            Some(h) => f(unsafe { &mut *h.0.get() }),
            None => f(&mut self.spare.lock()),
        })
    }
}

global_alloc_type!(PerCpuHeaps<C: CpuPin; const N: usize>);

// ---------------------------------------------------------------------------------------------

/// Heaps reached through a host's own [`LocalSlot`] (kiln-std: one heap per thread, in
/// thread-local storage).
pub struct SlotHeaps<S> {
    slot: S,
    hooks: Hooks,
}

impl<S: LocalSlot> SlotHeaps<S> {
    /// Heaps handed out by `slot`.
    pub const fn new(slot: S) -> Self {
        SlotHeaps {
            slot,
            hooks: Hooks::new(),
        }
    }

    /// The slot.
    pub fn slot(&self) -> &S {
        &self.slot
    }
}

// SAFETY: forwards to the inner slot, which keeps the contract.
unsafe impl<S: LocalSlot> LocalSlot for SlotHeaps<S> {
    #[inline(always)]
    fn with_heap<R>(&self, f: impl FnOnce(&mut Heap) -> R) -> R {
        self.slot.with_heap(f)
    }

    #[inline(always)]
    fn with_ready_heap<R>(&self, f: impl FnOnce(&mut Heap) -> R) -> Option<R> {
        self.slot.with_ready_heap(f)
    }
}

global_alloc_type!(SlotHeaps<S: LocalSlot>);
