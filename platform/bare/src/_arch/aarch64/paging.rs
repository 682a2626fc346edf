//! aarch64 translation tables: 4 KiB granule, 48-bit virtual addresses (walk from level 0),
//! identity map of the first 512 GiB through `L0[0]`; [`alias_identity_map`] points another
//! level-0 entry at the same level-1 table (the same memory again, e.g. at 1 TiB).
//!
//! ```text
//!   L0[0] ---> L1
//!   L1[0]      0x0000_0000 - 0x3FFF_FFFF  1 GiB block, Device-nGnRnE, never executable (MMIO)
//!   L1[1] ---> L2: 512 x 2 MiB blocks     0x4000_0000 - 0x7FFF_FFFF  Normal write-back (RAM)
//!   L1[2..n]   further RAM gigabytes      1 GiB blocks, Normal write-back
//! ```
//! MAIR attr 0 = Device-nGnRnE, attr 1 = Normal inner/outer write-back, read/write-allocate.
//!
//! The exec window's 2 MiB block in L2 is replaced (break-before-make) by an L3 table of
//! 512 x 4 KiB pages, each either EL1 read/write + PXN (writable) or EL1 read-only without PXN
//! (executable). Permission changes are followed by a broadcast TLB invalidation (`tlb.rs`).
use core::arch::asm;
use core::cell::UnsafeCell;
use core::ops::Range;

use super::{PagePerm, SMALL_PAGE};

const GIB: usize = 1 << 30;
const MIB2: usize = 2 << 20;

const VALID: u64 = 1 << 0;
const TABLE: u64 = 1 << 1; // at levels 1-2: table (vs block); at level 3: must be set (page)
const ATTR_DEVICE: u64 = 0 << 2;
const ATTR_NORMAL: u64 = 1 << 2;
const INNER_SHAREABLE: u64 = 3 << 8;
const READ_ONLY: u64 = 1 << 7; // AP[2]: EL1 read-only
const ACCESS_FLAG: u64 = 1 << 10;
const ADDR_MASK: u64 = 0x0000_FFFF_FFFF_F000;
const PXN: u64 = 1 << 53;
const UXN: u64 = 1 << 54;

// attr 0 (bits 7:0) = 0x00 Device-nGnRnE; attr 1 (bits 15:8) = 0xFF Normal write-back.
const MAIR: u64 = 0xFF << 8;
const TCR_T0SZ_48: u64 = 16;
const TCR_IRGN0_WB: u64 = 1 << 8;
const TCR_ORGN0_WB: u64 = 1 << 10;
const TCR_SH0_INNER: u64 = 3 << 12;
const TCR_EPD1: u64 = 1 << 23;
const SCTLR_M: u64 = 1 << 0;
const SCTLR_A: u64 = 1 << 1;
const SCTLR_C: u64 = 1 << 2;
const SCTLR_I: u64 = 1 << 12;

#[repr(C, align(4096))]
pub(crate) struct Table(pub(crate) UnsafeCell<[u64; 512]>);

// SAFETY: tables are written by the boot CPU before other CPUs start, and later only under the
// exec window's lock.
unsafe impl Sync for Table {}

impl Table {
    const fn new() -> Self {
        Table(UnsafeCell::new([0; 512]))
    }
}

static L0: Table = Table::new();
static L1: Table = Table::new();
static L2_RAM: Table = Table::new();

/// Builds the identity map for MMIO and `ram`, then turns the MMU and caches on.
pub(crate) fn init(ram: Range<usize>) {
    assert!(ram.start == GIB, "QEMU virt RAM starts at 1 GiB");
    // SAFETY: runs once on the boot CPU with the MMU off, before anything else uses the tables.
    unsafe {
        let l0 = &mut *L0.0.get();
        let l1 = &mut *L1.0.get();
        let l2 = &mut *L2_RAM.0.get();
        l0[0] = L1.0.get() as u64 | VALID | TABLE;
        l1[0] = VALID | ATTR_DEVICE | ACCESS_FLAG | PXN | UXN;
        for (i, entry) in l2.iter_mut().enumerate() {
            *entry = (GIB + i * MIB2) as u64 | VALID | ATTR_NORMAL | INNER_SHAREABLE | ACCESS_FLAG;
        }
        l1[1] = L2_RAM.0.get() as u64 | VALID | TABLE;
        let gigabytes = ram.end.div_ceil(GIB).min(512);
        for (g, entry) in l1.iter_mut().enumerate().take(gigabytes).skip(2) {
            *entry = (g * GIB) as u64 | VALID | ATTR_NORMAL | INNER_SHAREABLE | ACCESS_FLAG;
        }
    }
    // SAFETY: L0 -> L1 describes an identity map of everything the kernel touches (its image,
    // stack, RAM, the UART), so turning translation on changes no address the code uses.
    unsafe { enable(L0.0.get() as u64) };
}

/// Maps the identity-mapped first 512 GiB (MMIO gigabyte and RAM, same attributes) a second
/// time at `virt`, a multiple of 512 GiB below 2^48.
///
/// # Safety
/// Nothing uses `virt .. virt + 512 GiB` yet; the caller accepts that memory is reachable
/// under both addresses.
pub(crate) unsafe fn alias_identity_map(virt: usize) -> Result<(), &'static str> {
    const SPAN: usize = 512 * GIB;
    if virt == 0 || !virt.is_multiple_of(SPAN) || virt >= 1 << 48 {
        return Err("alias must be a non-zero multiple of 512 GiB below 2^48");
    }
    // SAFETY: L0 is only written here and in `init`; the entry was invalid, so no TLB holds it
    // (a new valid entry needs only the barriers, no invalidation).
    unsafe {
        let l0 = &mut *L0.0.get();
        if l0[virt / SPAN] != 0 {
            return Err("alias slot already mapped");
        }
        core::ptr::write_volatile(&raw mut l0[virt / SPAN], l0[0]);
        asm!("dsb ishst", "isb", options(nostack));
    }
    Ok(())
}

/// Loads the translation registers and sets SCTLR_EL1.M|C|I (and clears A: unaligned normal
/// accesses are allowed; strict-align code does not make them anyway).
///
/// # Safety
/// `l1` is a level-1 table that identity-maps all memory in use.
pub(crate) unsafe fn enable(l1: u64) {
    let parange: u64;
    // SAFETY: reading the ID register has no effect.
    unsafe { asm!("mrs {}, id_aa64mmfr0_el1", out(reg) parange, options(nomem, nostack)) };
    let tcr = TCR_T0SZ_48
        | TCR_IRGN0_WB
        | TCR_ORGN0_WB
        | TCR_SH0_INNER
        | TCR_EPD1
        | ((parange & 0x7) << 32);
    // SAFETY: per the caller's contract the new map is an identity map of what is in use; the
    // barriers make the table writes and register changes visible before translation starts.
    unsafe {
        asm!(
            "msr mair_el1, {mair}",
            "msr tcr_el1, {tcr}",
            "msr ttbr0_el1, {l1}",
            "dsb ish",
            "isb",
            "tlbi vmalle1",
            "dsb ish",
            "isb",
            "mrs {tmp}, sctlr_el1",
            "orr {tmp}, {tmp}, {set}",
            "bic {tmp}, {tmp}, {clear}",
            "msr sctlr_el1, {tmp}",
            "isb",
            mair = in(reg) MAIR,
            tcr = in(reg) tcr,
            l1 = in(reg) l1,
            set = in(reg) SCTLR_M | SCTLR_C | SCTLR_I,
            clear = in(reg) SCTLR_A,
            tmp = out(reg) _,
            options(nostack),
        );
    }
}

static L3_EXEC: Table = Table::new();

const PAGE_NORMAL: u64 = VALID | TABLE | ATTR_NORMAL | INNER_SHAREABLE | ACCESS_FLAG | UXN;

/// Replaces the 2 MiB block at `base` by 4 KiB pages, all writable and not executable.
///
/// # Safety
/// Called once, with `base` a 2 MiB-aligned address in the first RAM gigabyte that nothing uses.
pub(crate) unsafe fn map_exec_window(base: usize) {
    assert!((GIB..2 * GIB).contains(&base) && base.is_multiple_of(MIB2));
    // SAFETY: called once (caller); L3_EXEC is unused until the L2 entry points at it.
    let l3 = unsafe { &mut *L3_EXEC.0.get() };
    for (i, entry) in l3.iter_mut().enumerate() {
        *entry = (base + i * SMALL_PAGE) as u64 | PAGE_NORMAL | PXN;
    }
    let index = (base - GIB) / MIB2;
    // SAFETY: break-before-make on an L2 entry that only maps the unused window: invalidate,
    // flush its translations, then install the table.
    unsafe {
        let l2 = L2_RAM.0.get();
        core::ptr::write_volatile(&raw mut (*l2)[index], 0);
        asm!("dsb ishst", "tlbi vaae1is, {}", "dsb ish", "isb", in(reg) base >> 12, options(nostack));
        core::ptr::write_volatile(
            &raw mut (*l2)[index],
            L3_EXEC.0.get() as u64 | VALID | TABLE,
        );
        asm!("dsb ishst", "isb", options(nostack));
    }
}

/// Sets the permission of the window page at `va` in the table. Translations cached before
/// stay until [`crate::tlb::invalidate_range`] (broadcast), which the caller runs next.
///
/// # Safety
/// `va` is a page of the window; the caller holds the window's lock and nothing executes (for
/// `Writable`) or writes (for `Executable`) the page meanwhile.
pub(crate) unsafe fn set_perm(window: usize, va: usize, perm: PagePerm) {
    let bits = match perm {
        PagePerm::Writable => PAGE_NORMAL | PXN,
        PagePerm::Executable => PAGE_NORMAL | READ_ONLY,
    };
    let i = (va - window) / SMALL_PAGE;
    // SAFETY: the caller holds the lock that serialises writers of L3_EXEC; the entry is
    // aligned and written whole (table walkers may read it at any time).
    unsafe {
        let l3 = L3_EXEC.0.get();
        let entry = core::ptr::read_volatile(&raw const (*l3)[i]);
        core::ptr::write_volatile(&raw mut (*l3)[i], (entry & ADDR_MASK) | bits);
    }
}

/// The permission the page table gives the window page at `va`.
pub(crate) fn perm(window: usize, va: usize) -> PagePerm {
    // SAFETY: a plain read of one aligned table entry; writers hold the window's lock.
    let entry = unsafe {
        core::ptr::read_volatile(&raw const (*L3_EXEC.0.get())[(va - window) / SMALL_PAGE])
    };
    if entry & READ_ONLY == 0 && entry & PXN != 0 {
        PagePerm::Writable
    } else {
        PagePerm::Executable
    }
}
