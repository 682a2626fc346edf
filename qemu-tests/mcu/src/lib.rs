//! Support for kiln's microcontroller test images (QEMU `-M mps2-an386`, Cortex-M4):
//! the board's UART for output, semihosting for the exit status, a panic and fault handler that
//! report and fail, and kiln as the `#[global_allocator]` over one 64 KiB static region (one
//! segment of the small geometry).
//!
//! ```text
//!   0x0000_0000  vector table, code, rodata (cortex-m-rt's link.x, memory.x)
//!   0x2000_0000  the 64 KiB heap region (section .kiln_heap, first in RAM), data, bss, ...
//!                stack at the top
//!   0x4000_4000  CMSDK APB UART0: DATA +0, STATE +4 (bit 0: TX full), CTRL +8 (bit 0: TX on)
//! ```
#![no_std]

use core::alloc::Layout;
use core::cell::UnsafeCell;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

use cortex_m_rt::{exception, ExceptionFrame};
use cortex_m_semihosting::debug;
use kiln::allocator::{FreeError, Pool, SEGMENT_SIZE};
use kiln::global::LockedHeap;
use kiln::platform::MemorySource;

// ---------------------------------------------------------------------------------------------
// UART

const UART0: usize = 0x4000_4000;

/// The board's UART0 as a `fmt::Write` sink.
pub struct Uart;

impl Uart {
    fn reg(off: usize) -> *mut u32 {
        (UART0 + off) as *mut u32
    }

    fn put(b: u8) {
        // SAFETY: UART0's registers are device memory at a fixed address on this board; volatile
        // accesses of whole words are what the device expects.
        unsafe {
            let ctrl = Self::reg(8);
            if ctrl.read_volatile() & 1 == 0 {
                Self::reg(0x10).write_volatile(16); // BAUDDIV: the smallest legal divider
                ctrl.write_volatile(1); // TX enable
            }
            while Self::reg(4).read_volatile() & 1 != 0 {}
            Self::reg(0).write_volatile(b as u32);
        }
    }
}

impl Write for Uart {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.bytes() {
            if b == b'\n' {
                Self::put(b'\r');
            }
            Self::put(b);
        }
        Ok(())
    }
}

/// Prints to UART0.
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _ = writeln!($crate::Uart, $($arg)*);
    }};
}

// ---------------------------------------------------------------------------------------------
// Verdicts

/// What a test image's `run` returns: `Err(reason)` fails the run.
pub type Verdict = Result<(), &'static str>;

/// Reports the verdict (`[kiln-mcu] PASSED`, which the runner requires, or `FAILED: reason`) and
/// leaves QEMU through semihosting (status 0 only on success).
pub fn finish(v: Verdict) -> ! {
    match v {
        Ok(()) => {
            println!("[kiln-mcu] PASSED");
            debug::exit(debug::EXIT_SUCCESS);
        }
        Err(why) => {
            println!("[kiln-mcu] FAILED: {why}");
            debug::exit(debug::EXIT_FAILURE);
        }
    }
    loop {
        cortex_m::asm::bkpt();
    }
}

/// Turns a failed condition into the image's `Err` verdict.
pub fn check(ok: bool, what: &'static str) -> Verdict {
    if ok {
        Ok(())
    } else {
        Err(what)
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    println!("[kiln-mcu] PANIC: {info}");
    finish(Err("panic"))
}

#[exception]
unsafe fn HardFault(ef: &ExceptionFrame) -> ! {
    println!("[kiln-mcu] HARD FAULT: {ef:?}");
    finish(Err("hard fault"))
}

// ---------------------------------------------------------------------------------------------
// The heap: one 64 KiB segment, kiln's small geometry.

/// Bytes of RAM kiln manages.
pub const HEAP_BYTES: usize = 64 * 1024;
const _: () = assert!(
    HEAP_BYTES == SEGMENT_SIZE,
    "the image expects the small geometry"
);

#[repr(C, align(65536))]
struct Region(UnsafeCell<[u8; HEAP_BYTES]>);

// SAFETY: the region's bytes are only reached through the pointer `RegionSource` hands out, to
// one owner at a time.
unsafe impl Sync for Region {}

// In its own section, placed first in RAM by memory.x: no alignment padding before it.
#[link_section = ".kiln_heap"]
static REGION: Region = Region(UnsafeCell::new([0; HEAP_BYTES]));
static TAKEN: AtomicBool = AtomicBool::new(false);

/// The 64 KiB region as kiln's memory source: one segment, handed out while not taken.
pub struct RegionSource;

// SAFETY: the one segment is 64 KiB aligned, readable and writable, and handed out to one owner
// at a time (`TAKEN`); more than one segment is never available.
unsafe impl MemorySource for RegionSource {
    fn reserve(&self, count: usize) -> *mut u8 {
        if count == 1 && !TAKEN.swap(true, Ordering::AcqRel) {
            REGION.0.get().cast()
        } else {
            core::ptr::null_mut()
        }
    }

    unsafe fn release(&self, base: *mut u8, count: usize) {
        debug_assert!(count == 1 && base == REGION.0.get().cast());
        TAKEN.store(false, Ordering::Release);
    }
}

static SOURCE: RegionSource = RegionSource;
/// The pool over the region.
pub static POOL: Pool = Pool::new(&SOURCE);

/// kiln as the global allocator: kiln's own [`LockedHeap`] over the pool (one core, no
/// interrupt handler allocates, so the spin lock never waits). Out of memory returns null
/// (printed while [`REPORT_OOM`] is set); a free kiln refuses (foreign or double) fails the run
/// instead of corrupting the heap.
#[global_allocator]
pub static KILN: LockedHeap = LockedHeap::new(&POOL)
    .with_oom_handler(report_oom)
    .with_invalid_free(fail_on_invalid_free);

/// Whether the global allocator prints each request it cannot serve.
pub static REPORT_OOM: AtomicBool = AtomicBool::new(false);

fn report_oom(layout: Layout) -> bool {
    if REPORT_OOM.load(Ordering::Relaxed) {
        println!("[kiln-mcu] out of memory: {layout:?}");
    }
    false
}

fn fail_on_invalid_free(p: *mut u8, e: FreeError) {
    println!("[kiln-mcu] invalid free of {p:p}: {e}");
    finish(Err("invalid free"))
}

// ---------------------------------------------------------------------------------------------
// Test helpers

/// xorshift32: a small deterministic generator.
pub struct Rng(u32);

impl Rng {
    /// A generator from a seed.
    pub const fn new(seed: u32) -> Self {
        Rng(seed | 1)
    }

    /// A value in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x as usize % n
    }
}

/// The byte at offset `i` of a block filled for `tag`.
#[inline]
pub fn pattern(tag: u32, i: usize) -> u8 {
    (tag.wrapping_mul(31).wrapping_add(i as u32 * 7) >> 3) as u8 ^ (i as u8)
}

/// Fills `len` bytes at `p` with [`pattern`] for `tag`.
///
/// # Safety
/// `p` is valid for `len` bytes of writes.
pub unsafe fn fill(p: *mut u8, len: usize, tag: u32) {
    for i in 0..len {
        // SAFETY: in bounds (caller).
        unsafe { p.add(i).write(pattern(tag, i)) };
    }
}

/// Whether `len` bytes at `p` still hold [`pattern`] for `tag`.
///
/// # Safety
/// `p` is valid for `len` bytes of reads.
pub unsafe fn holds(p: *const u8, len: usize, tag: u32) -> bool {
    // SAFETY: in bounds (caller).
    (0..len).all(|i| unsafe { p.add(i).read() } == pattern(tag, i))
}
