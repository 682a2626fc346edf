//! Boot, after the architecture's assembly entry: bring up the console, the per-CPU index,
//! memory, then run the kernel's `main` (named by [`entry!`](crate::entry)) and exit with its
//! verdict.
//!
//! ```text
//!   _arch/<arch>/boot.rs   asm: stack, FP/SSE, long mode / vectors; Rust: RAM size, MMU
//!   start()                serial, early heap, segment pool
//!   kiln_bare_main()       the kernel (Ok -> exit 33, Err -> message, exit 35)
//! ```
use core::ops::Range;

#[cfg(target_arch = "aarch64")]
#[path = "_arch/aarch64/boot.rs"]
pub(crate) mod arch;
#[cfg(target_arch = "x86_64")]
#[path = "_arch/x86_64/boot.rs"]
pub(crate) mod arch;
#[cfg(target_arch = "x86_64")]
#[path = "_arch/x86_64/idt.rs"]
pub(crate) mod idt;

use crate::{early_heap, exit, memory, println, serial};

/// Bytes of stack the boot CPU runs on (secondary CPUs get as much, [`crate::smp::STACK_SIZE`]):
/// room for kiln's JIT with the default budget (`VmConfig::native_stack`, 128 KiB, plus
/// `JIT_STACK_HEADROOM`, 96 KiB) and the kernel's own frames. A kernel that runs `.kl` code on
/// a smaller stack lowers `VmConfig::native_stack` to `stack - JIT_STACK_HEADROOM - its own use`.
pub const STACK_SIZE: usize = 256 * 1024;

core::arch::global_asm!(
    ".pushsection .bss.kiln_bare_stack, \"aw\", @nobits",
    ".balign 16",
    ".skip {size}",
    ".global kiln_bare_boot_stack_top",
    "kiln_bare_boot_stack_top:",
    ".popsection",
    size = const STACK_SIZE,
);

/// A kernel's verdict: `Err` carries the reason, printed before the failure exit.
pub type Verdict = Result<(), &'static str>;

extern "Rust" {
    /// The kernel's main, defined by [`entry!`](crate::entry).
    fn kiln_bare_main() -> Verdict;
}

extern "C" {
    static __image_end: u8;
}

/// End of the kernel image (everything the loader placed, `.bss` included).
pub fn image_end() -> usize {
    // Only the address is taken (no unsafe needed); the linker script defines the symbol.
    &raw const __image_end as usize
}

/// The generic part of boot, on the boot CPU with the CPU index set, FP/SSE on and (aarch64)
/// the MMU on. `ram` is the RAM the kernel may use, the image inside it.
fn start(ram: Range<usize>) -> ! {
    serial::init();
    early_heap::init();
    memory::init(ram, image_end());
    crate::heap::mark_ready();
    // SAFETY: defined by the kernel through `entry!` with exactly this signature.
    match unsafe { kiln_bare_main() } {
        Ok(()) => exit::success(),
        Err(reason) => {
            println!("[kiln-bare] FAILED: {reason}");
            exit::failure()
        }
    }
}

/// Names the kernel's main function: `fn() -> kiln_bare::boot::Verdict`. Boot calls it once on
/// the boot CPU; `Ok` exits QEMU with [`exit::SUCCESS`], `Err` prints the reason and exits with
/// [`exit::FAILURE`].
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[no_mangle]
        fn kiln_bare_main() -> $crate::boot::Verdict {
            let main: fn() -> $crate::boot::Verdict = $main;
            main()
        }
    };
}
