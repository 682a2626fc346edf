//! aarch64: broadcast invalidation by virtual address (`tlbi vaae1is`) reaches every CPU in the
//! inner-shareable domain; the `dsb ish` after it waits until all of them have completed it.
use core::arch::asm;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::paging::SMALL_PAGE;

/// Broadcast invalidations since boot (each reaches every CPU).
static BROADCASTS: AtomicUsize = AtomicUsize::new(0);

/// Broadcast invalidations since boot, made while a second CPU runs.
pub(crate) fn remote_shootdowns() -> usize {
    BROADCASTS.load(Ordering::Relaxed)
}

/// Drops every CPU's translations for the window pages `start..start + len`.
///
/// The caller updated their page-table entries before (the leading `dsb ishst` makes those
/// stores visible to the table walkers first).
pub(crate) fn invalidate_range(start: usize, len: usize) {
    // SAFETY: barrier only.
    unsafe { asm!("dsb ishst", options(nostack)) };
    for va in (start..start + len).step_by(SMALL_PAGE) {
        invalidate_page(va);
    }
    // SAFETY: barriers only: wait for the broadcast to complete, then resynchronise this CPU.
    unsafe { asm!("dsb ish", "isb", options(nostack)) };
    if crate::smp::running_cpus() > 1 {
        BROADCASTS.fetch_add(1, Ordering::Relaxed);
    }
}

/// Queues the invalidation of `va`'s translation on every CPU (completed by the next `dsb ish`).
#[cfg(not(feature = "test-sabotage-tlb"))]
#[inline]
fn invalidate_page(va: usize) {
    // SAFETY: invalidating translations has no effect beyond later table walks.
    unsafe { asm!("tlbi vaae1is, {}", in(reg) va >> 12, options(nostack)) };
}

/// The lane's deliberately broken build: this CPU only.
#[cfg(feature = "test-sabotage-tlb")]
#[inline]
fn invalidate_page(va: usize) {
    // SAFETY: as above.
    unsafe { asm!("tlbi vaae1, {}", in(reg) va >> 12, options(nostack)) };
}

/// Nothing to serve: aarch64 shoot-downs need no cooperation from the other CPUs.
#[inline]
pub(crate) fn serve_pending() {}
