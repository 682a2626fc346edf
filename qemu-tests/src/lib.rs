//! Helpers shared by the QEMU test kernels in `tests/` (each kernel is a `harness = false` test).
//!
//! Every kernel that links this crate has kiln as its `#[global_allocator]` (per-CPU kiln heaps
//! over the machine's RAM, see `kiln_bare::heap`).
#![no_std]

/// kiln, the allocator of every test kernel.
#[global_allocator]
static KILN: kiln_bare::heap::KilnAlloc = kiln_bare::heap::KilnAlloc;

/// The architecture this kernel was built for, for messages.
pub const ARCH: &str = if cfg!(target_arch = "x86_64") {
    "x86_64"
} else {
    "aarch64"
};

/// Turns a failed condition into the kernel's `Err` verdict.
pub fn check(ok: bool, what: &'static str) -> Result<(), &'static str> {
    if ok {
        Ok(())
    } else {
        Err(what)
    }
}

/// xorshift64*: a small deterministic generator for the stress kernels.
pub struct Rng(u64);

impl Rng {
    /// A generator from a non-zero seed.
    pub const fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// The byte at offset `i` of a block filled for `tag`: differs per block and per offset, so a
/// block overlapping another or moved without its contents is caught.
#[inline]
pub fn pattern(tag: u64, i: usize) -> u8 {
    (tag.wrapping_mul(31).wrapping_add(i as u64 * 7) >> 3) as u8 ^ (i as u8)
}

/// Fills `len` bytes at `p` with [`pattern`] for `tag`.
///
/// # Safety
/// `p` is valid for writes of `len` bytes.
pub unsafe fn fill(p: *mut u8, len: usize, tag: u64) {
    for i in 0..len {
        // SAFETY: in bounds (caller).
        unsafe { p.add(i).write(pattern(tag, i)) };
    }
}

/// Whether the first `len` bytes at `p` still hold [`pattern`] for `tag`.
///
/// # Safety
/// `p` is valid for reads of `len` bytes.
pub unsafe fn holds(p: *const u8, len: usize, tag: u64) -> bool {
    // SAFETY: in bounds (caller).
    (0..len).all(|i| unsafe { p.add(i).read() } == pattern(tag, i))
}
