//! The panic handler: print where and why, then exit with [`crate::exit::FAILURE`].
use core::panic::PanicInfo;

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    // Unlocked: the panicking code may hold the console lock.
    crate::console::_print_unlocked(format_args!(
        "\n[kiln-bare] PANIC on CPU {}: {}\n",
        crate::cpu::cpu_index(),
        info
    ));
    crate::exit::failure()
}
