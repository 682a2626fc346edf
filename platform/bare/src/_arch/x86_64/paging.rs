//! x86_64 page tables: the boot assembly identity-maps 0..4 GiB with 2 MiB pages
//! (`kiln_bare_boot_pml4` -> one PDPT -> four page directories, `kiln_bare_boot_pd`).
//!
//! The exec window's 2 MiB directory entry is replaced by one page table of 512 x 4 KiB pages,
//! each either `present|writable|no-execute` or `present` (read + execute). CR0.WP is on, so
//! supervisor writes honour the read-only bit.
use core::arch::asm;
use core::cell::UnsafeCell;

use super::{PagePerm, EXEC_WINDOW_PAGES, SMALL_PAGE};

const PRESENT: u64 = 1 << 0;
const WRITABLE: u64 = 1 << 1;
const NO_EXECUTE: u64 = 1 << 63;
const ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;

extern "C" {
    /// 2048 page-directory entries covering 0..4 GiB (boot assembly).
    static mut kiln_bare_boot_pd: [u64; 2048];
    /// The boot PML4; entry 0 covers the identity map (boot assembly).
    static mut kiln_bare_boot_pml4: [u64; 512];
}

/// Maps the identity-mapped first 4 GiB a second time at `virt`, a multiple of 512 GiB in the
/// canonical lower (`< 2^47`) or higher (`>= 0xffff_8000_0000_0000`) half, by pointing its PML4
/// entry at the identity map's page-directory-pointer table.
///
/// # Safety
/// Nothing uses `virt .. virt + 512 GiB` yet; the caller accepts that memory is reachable under
/// both addresses.
pub(crate) unsafe fn alias_identity_map(virt: usize) -> Result<(), &'static str> {
    const SPAN: usize = 1 << 39;
    let canonical = !(1 << 47..0xffff_8000_0000_0000).contains(&virt);
    if virt == 0 || !virt.is_multiple_of(SPAN) || !canonical {
        return Err("alias must be a non-zero, canonical multiple of 512 GiB");
    }
    let i = (virt >> 39) & 511;
    // SAFETY: the boot PML4 is ours; entry `i` was not present (checked), so no TLB holds a
    // translation through it; reloading CR3 is still done for good measure.
    unsafe {
        let pml4 = &raw mut kiln_bare_boot_pml4;
        if (*pml4)[i] != 0 {
            return Err("alias slot already mapped");
        }
        core::ptr::write_volatile(&raw mut (*pml4)[i], (*pml4)[0]);
        asm!("mov {0}, cr3", "mov cr3, {0}", out(reg) _, options(nostack));
    }
    Ok(())
}

#[repr(C, align(4096))]
struct Table(UnsafeCell<[u64; EXEC_WINDOW_PAGES]>);

// SAFETY: written once by `map_exec_window`, then only under the exec window's lock.
unsafe impl Sync for Table {}

static EXEC_PT: Table = Table(UnsafeCell::new([0; EXEC_WINDOW_PAGES]));

/// Replaces the 2 MiB mapping at `base` by 4 KiB pages, all writable and not executable.
///
/// # Safety
/// Called once, with `base` a 2 MiB-aligned address below 4 GiB that nothing uses yet.
pub(crate) unsafe fn map_exec_window(base: usize) {
    assert!(base < 1 << 32 && base.is_multiple_of(2 << 20));
    // SAFETY: called once (caller); nothing else reads EXEC_PT before the PD entry points at it.
    let pt = unsafe { &mut *EXEC_PT.0.get() };
    for (i, entry) in pt.iter_mut().enumerate() {
        *entry = (base + i * SMALL_PAGE) as u64 | PRESENT | WRITABLE | NO_EXECUTE;
    }
    // SAFETY: the boot page directory is ours; this entry covers only the unused window.
    unsafe {
        let pd = &raw mut kiln_bare_boot_pd;
        (*pd)[base >> 21] = EXEC_PT.0.get() as u64 | PRESENT | WRITABLE;
        asm!("mov {0}, cr3", "mov cr3, {0}", out(reg) _, options(nostack));
    }
}

/// Sets the permission of the window page at `va` in the page table. Translations cached
/// before stay until [`crate::tlb::invalidate_range`], which the caller runs next.
///
/// # Safety
/// `va` is a page of the window; the caller holds the window's lock and nothing executes (for
/// `Writable`) or writes (for `Executable`) the page meanwhile.
pub(crate) unsafe fn set_perm(window: usize, va: usize, perm: PagePerm) {
    let bits = match perm {
        PagePerm::Writable => PRESENT | WRITABLE | NO_EXECUTE,
        PagePerm::Executable => PRESENT,
    };
    // SAFETY: the caller holds the lock that serialises writers of EXEC_PT.
    let pt = unsafe { &mut *EXEC_PT.0.get() };
    let i = (va - window) / SMALL_PAGE;
    // A volatile store: page walkers of other CPUs read this entry concurrently.
    // SAFETY: an aligned entry of the table borrowed above.
    unsafe { core::ptr::write_volatile(&raw mut pt[i], (pt[i] & ADDR_MASK) | bits) };
}

/// The permission the page table gives the window page at `va`.
pub(crate) fn perm(window: usize, va: usize) -> PagePerm {
    // SAFETY: a plain read of one table entry; writers hold the window's lock, and entries are
    // written whole (aligned u64).
    let entry = unsafe { (*EXEC_PT.0.get())[(va - window) / SMALL_PAGE] };
    if entry & WRITABLE != 0 && entry & NO_EXECUTE != 0 {
        PagePerm::Writable
    } else {
        PagePerm::Executable
    }
}

/// Makes the 2 MiB page holding `addr` (MMIO, e.g. the local APIC) uncached.
///
/// # Safety
/// `addr` is below 4 GiB and the 2 MiB around it holds only device registers.
pub(crate) unsafe fn make_uncached(addr: usize) {
    const WRITE_THROUGH: u64 = 1 << 3;
    const CACHE_DISABLE: u64 = 1 << 4;
    // SAFETY: the boot page directory is ours; only this entry's caching bits change.
    unsafe {
        let pd = &raw mut kiln_bare_boot_pd;
        (*pd)[addr >> 21] |= WRITE_THROUGH | CACHE_DISABLE;
        asm!("invlpg [{}]", in(reg) addr, options(nostack));
    }
}
