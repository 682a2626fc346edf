//! x86_64: `invlpg` only drops this CPU's translation, so the others are asked by a fixed IPI
//! ([`SHOOTDOWN_VECTOR`]) and acknowledge by clearing their bit in [`PENDING`].
use core::arch::asm;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::cpu::cpu_index;
use crate::lapic;
use crate::paging::SMALL_PAGE;

/// The IDT vector of the shoot-down IPI.
pub(crate) const SHOOTDOWN_VECTOR: u8 = 0xF0;

/// Spins before an initiator gives up on a CPU that never acknowledges (a bug: report it
/// instead of hanging until the runner's timeout).
const ACK_SPIN_LIMIT: u64 = 1 << 30;

/// Bit per CPU index: CPUs that take the shoot-down IPI.
static ONLINE: AtomicUsize = AtomicUsize::new(0);
/// Bit per CPU index: targets of the current shoot-down that have not acknowledged yet.
static PENDING: AtomicUsize = AtomicUsize::new(0);
/// The current shoot-down's range (first page, page count); written before `PENDING`.
static RANGE_START: AtomicUsize = AtomicUsize::new(0);
static RANGE_PAGES: AtomicUsize = AtomicUsize::new(0);
/// Shoot-downs that interrupted other CPUs, since boot.
static REMOTE: AtomicUsize = AtomicUsize::new(0);

/// Shoot-downs that had to interrupt other CPUs, since boot.
pub(crate) fn remote_shootdowns() -> usize {
    REMOTE.load(Ordering::Relaxed)
}

fn go_online() {
    lapic::enable();
    ONLINE.fetch_or(1 << cpu_index(), Ordering::AcqRel);
    // SAFETY: the IDT has gates for the shoot-down and spurious vectors, and the legacy PICs
    // are masked: those are the only interrupts that can arrive.
    unsafe { crate::cpu::enable_interrupts() };
}

/// Makes the boot CPU a shoot-down target (once, before the first secondary starts).
pub(crate) fn boot_cpu_online() {
    if ONLINE.load(Ordering::Acquire) & 1 == 0 {
        go_online();
    }
}

/// Makes this (secondary) CPU a shoot-down target.
pub(crate) fn this_cpu_online() {
    go_online();
}

fn invalidate_local(start: usize, pages: usize) {
    for i in 0..pages {
        // SAFETY: invlpg only drops a cached translation (and serialises this CPU).
        unsafe { asm!("invlpg [{}]", in(reg) start + i * SMALL_PAGE, options(nostack)) };
    }
}

/// Drops the translations of the window pages `start..start + len` on this CPU and on every
/// other online CPU, returning once all have done so.
///
/// The caller holds the exec window's lock (one shoot-down at a time) and has updated the
/// page-table entries.
pub(crate) fn invalidate_range(start: usize, len: usize) {
    let pages = len / SMALL_PAGE;
    invalidate_local(start, pages);
    let others = ONLINE.load(Ordering::Acquire) & !(1 << cpu_index());
    if others == 0 || cfg!(feature = "test-sabotage-tlb") {
        return;
    }
    RANGE_START.store(start, Ordering::Relaxed);
    RANGE_PAGES.store(pages, Ordering::Relaxed);
    PENDING.store(others, Ordering::Release);
    REMOTE.fetch_add(1, Ordering::Relaxed);
    for cpu in 0..usize::BITS {
        if others & (1 << cpu) != 0 {
            lapic::send_fixed(cpu, SHOOTDOWN_VECTOR);
        }
    }
    wait_for_acks();
}

fn wait_for_acks() {
    let mut spins = 0u64;
    while PENDING.load(Ordering::Acquire) != 0 {
        core::hint::spin_loop();
        spins += 1;
        if spins == ACK_SPIN_LIMIT {
            panic!(
                "TLB shoot-down: CPUs {:#b} never acknowledged",
                PENDING.load(Ordering::Acquire)
            );
        }
    }
}

/// Performs the current shoot-down on this CPU if it is one of its targets (from the IPI, or
/// from a CPU spinning for the exec window's lock).
pub(crate) fn serve_pending() {
    let bit = 1 << cpu_index();
    if PENDING.load(Ordering::Acquire) & bit == 0 {
        return;
    }
    invalidate_local(
        RANGE_START.load(Ordering::Relaxed),
        RANGE_PAGES.load(Ordering::Relaxed),
    );
    PENDING.fetch_and(!bit, Ordering::AcqRel);
}

/// The shoot-down IPI's handler (called by its IDT stub with interrupts off).
#[no_mangle]
extern "C" fn kiln_bare_x86_tlb_ipi() {
    serve_pending();
    lapic::end_of_interrupt();
}
