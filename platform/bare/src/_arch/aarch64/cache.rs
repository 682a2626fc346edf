//! aarch64 cache maintenance by virtual address, line sizes from CTR_EL0.
use core::arch::asm;

/// (data line, instruction line) sizes in bytes: CTR_EL0.DminLine [19:16] and IminLine [3:0]
/// are log2 of the line size in 4-byte words.
fn line_sizes() -> (usize, usize) {
    let ctr: usize;
    // SAFETY: reading CTR_EL0 has no effect.
    unsafe { asm!("mrs {}, ctr_el0", out(reg) ctr, options(nomem, nostack)) };
    (4 << ((ctr >> 16) & 0xF), 4 << (ctr & 0xF))
}

/// Makes the code written to `ptr..ptr + len` visible to instruction fetch on every CPU.
pub fn sync_icache(ptr: *const u8, len: usize) {
    let (dline, iline) = line_sizes();
    let start = ptr as usize;
    let end = start + len;
    let mut a = start & !(dline - 1);
    while a < end {
        // SAFETY: cleaning a mapped, readable line to the point of unification changes no data.
        unsafe { asm!("dc cvau, {}", in(reg) a, options(nostack)) };
        a += dline;
    }
    // SAFETY: barrier only.
    unsafe { asm!("dsb ish", options(nostack)) };
    let mut a = start & !(iline - 1);
    while a < end {
        // SAFETY: invalidating instruction-cache lines of mapped memory changes no data.
        unsafe { asm!("ic ivau, {}", in(reg) a, options(nostack)) };
        a += iline;
    }
    // SAFETY: barriers only.
    unsafe { asm!("dsb ish", "isb", options(nostack)) };
}

/// A context synchronisation event on this CPU (`isb`): instructions after it are fetched anew,
/// so code another CPU installed and synchronised is seen.
#[inline]
pub fn sync_core() {
    // SAFETY: barrier only.
    unsafe { asm!("isb", options(nostack)) };
}
