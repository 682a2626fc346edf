//! x86_64 instruction fetch is coherent with data writes; serialise this CPU so it refetches.

/// Makes the code written to `ptr..ptr + len` visible to instruction fetch.
pub fn sync_icache(_ptr: *const u8, _len: usize) {
    // Stores to code are snooped by the instruction fetcher; a serialising instruction is all
    // cross-modifying code needs on the writing CPU (the page-permission flip's `invlpg` is one
    // as well).
    // cpuid only reads identification registers (and serialises); safe in this Rust version.
    let _ = core::arch::x86_64::__cpuid(0);
}

/// Serialises this CPU (`cpuid`), as the SDM asks of a CPU about to run code another CPU wrote.
#[inline]
pub fn sync_core() {
    // cpuid only reads identification registers (and serialises); safe in this Rust version.
    let _ = core::arch::x86_64::__cpuid(0);
}
