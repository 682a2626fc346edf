//! TLB shoot-down: after the exec window flips page permissions, no CPU may keep a stale
//! translation (a page still executable after it became writable again, or still writable
//! after it became executable would break W^X on that CPU).
//!
//! ```text
//!   initiator (holds the exec window's lock)      every other online CPU
//!   page-table entries updated (paging::set_perm)
//!   invalidate_range(start, len):
//!     aarch64: dsb ishst; tlbi vaae1is per page;   (the broadcast reaches every CPU of the
//!              dsb ish; isb                         inner-shareable domain in hardware)
//!     x86_64:  invlpg per page (this CPU);
//!              PENDING = online & !me; IPI each -->  vector 0xF0: invlpg per page,
//!              spin until PENDING == 0      <------  clear own PENDING bit, EOI, iretq
//! ```
//! Invariants (x86_64)
//! - one shoot-down at a time: only the holder of the exec window's lock starts one;
//! - a CPU is *online* (a target) from the moment its local APIC, IDT and `sti` are set up
//!   ([`smp`](crate::smp) does it for every CPU once a second one starts); before that it runs
//!   no code that reads the window. A parked CPU keeps taking the IPI (`sti; hlt`);
//! - a CPU spinning for the window lock serves a pending shoot-down itself
//!   ([`serve_pending`]), so an initiator never waits for a CPU that waits for it, even one
//!   with interrupts masked.
//!
//! aarch64 needs no IPI. A CPU that runs code another CPU installed must still pass a context
//! synchronisation event first ([`cache::sync_core`](crate::cache::sync_core)).

#[cfg(target_arch = "aarch64")]
#[path = "_arch/aarch64/tlb.rs"]
mod arch;
#[cfg(target_arch = "x86_64")]
#[path = "_arch/x86_64/tlb.rs"]
mod arch;

#[cfg(target_arch = "x86_64")]
pub(crate) use arch::{boot_cpu_online, this_cpu_online, SHOOTDOWN_VECTOR};
pub(crate) use arch::{invalidate_range, serve_pending};

/// Shoot-downs since boot that reached other running CPUs (x86_64: IPI rounds; aarch64:
/// broadcast invalidations made while a second CPU ran). For tests and reports.
pub fn remote_shootdowns() -> usize {
    arch::remote_shootdowns()
}
