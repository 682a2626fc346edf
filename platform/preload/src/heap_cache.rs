//! The per-thread heap cache: one pointer per thread, in initial-exec TLS, to the thread's kiln
//! heap, so the fast path of `malloc`/`free` reads it with one `fs`-relative load instead of a
//! call to `__tls_get_addr`.
//!
//! # Glossary
//!
//! | term | meaning |
//! |---|---|
//! | cached heap | this thread's `kiln_std` heap, copied here once `kiln_std` reports it active |
//! | initial-exec TLS | a thread-local at a fixed offset from the thread pointer, known at load time |
//!
//! # Invariants
//!
//! - The slot is null, or holds the heap `kiln_std::active_heap` returned on this thread; it is
//!   cleared by the thread-exit notification (`kiln_std::on_thread_exit`) before that heap is
//!   abandoned, so a late allocation of a dying thread takes the slow path (kiln-std's fallback
//!   heap) again.
//! - The slot is only filled after a call that went through the slow path, which carries the
//!   re-entry guard; a heap's own code never calls `malloc`, so the fast path needs no guard.
//! - The slot is null while kiln's per-call counters are on (`stats::counting()`): it is only
//!   filled while they are off, they start on and go off at most once (libkiln.so's
//!   constructor, without `KILN_STATS=1`), and nothing in libkiln.so turns them on again. So
//!   `malloc` and `free` test the counters only on the way to their slow paths.
//! - Why initial-exec is sound here: a library loaded with `LD_PRELOAD` is part of the initial
//!   set of modules, whose TLS lives in the static TLS block of every thread (the model's one
//!   requirement). Rust has no stable way to ask for the model, so on x86_64 Linux the slot is
//!   declared in `.tbss` with `global_asm!` and reached through a `@GOTTPOFF` relocation; the
//!   linker marks the library `STATIC_TLS`. Elsewhere the slot is an ordinary `thread_local!`.
use kiln_core::allocator::Heap;

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod slot {
    use super::Heap;

    core::arch::global_asm!(
        ".pushsection .tbss,\"awT\",@nobits",
        ".p2align 3",
        ".type kiln_preload_heap_cache, @object",
        ".size kiln_preload_heap_cache, 8",
        "kiln_preload_heap_cache:",
        ".zero 8",
        ".popsection",
    );

    /// This thread's slot value.
    #[inline(always)]
    pub(super) fn get() -> *mut Heap {
        let value: *mut Heap;
        // SAFETY: reads this thread's 8-byte TLS slot declared above: the GOT entry holds its
        // offset from the thread pointer (`fs`), fixed when the library was loaded.
        unsafe {
            core::arch::asm!(
                "mov {off}, qword ptr [rip + kiln_preload_heap_cache@GOTTPOFF]",
                "mov {val}, qword ptr fs:[{off}]",
                off = out(reg) _,
                val = out(reg) value,
                options(nostack, readonly, preserves_flags),
            );
        }
        value
    }

    /// Sets this thread's slot.
    #[inline]
    pub(super) fn set(heap: *mut Heap) {
        // SAFETY: writes this thread's TLS slot (see `get`); nothing else aliases it.
        unsafe {
            core::arch::asm!(
                "mov {off}, qword ptr [rip + kiln_preload_heap_cache@GOTTPOFF]",
                "mov qword ptr fs:[{off}], {val}",
                off = out(reg) _,
                val = in(reg) heap,
                options(nostack, preserves_flags),
            );
        }
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
mod slot {
    use super::Heap;
    use core::cell::Cell;

    thread_local! {
        static CACHE: Cell<*mut Heap> = const { Cell::new(core::ptr::null_mut()) };
    }

    #[inline(always)]
    pub(super) fn get() -> *mut Heap {
        CACHE.with(|c| c.get())
    }

    #[inline]
    pub(super) fn set(heap: *mut Heap) {
        CACHE.with(|c| c.set(heap));
    }
}

/// This thread's heap if it is cached (the fast path), else `None`.
#[inline(always)]
pub(crate) fn heap() -> Option<&'static mut Heap> {
    let h = slot::get();
    // SAFETY: a non-null slot holds this thread's active kiln-std heap (module invariant), which
    // lives as long as the thread and is only used by it; the entry points do not nest.
    (!h.is_null()).then(|| unsafe { &mut *h })
}

/// After a slow-path call: caches the thread's heap if kiln-std now serves it and kiln's
/// per-call counters are off (with them on, `malloc` and `free` must take their counted twins,
/// which they find by the empty cache: see the module invariants).
#[cold]
pub(crate) fn fill() {
    if kiln_core::allocator::stats::counting() {
        return;
    }
    if let Some(h) = kiln_std::active_heap() {
        // Registered here rather than only at load time, so no cache is ever filled without
        // the exit notification in place.
        kiln_std::on_thread_exit(clear);
        slot::set(h);
    }
}

/// Registered with `kiln_std::on_thread_exit`: the thread's heap stops serving it.
fn clear() {
    slot::set(core::ptr::null_mut());
}
