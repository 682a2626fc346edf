//! The console: the serial port behind one lock, `print!`/`println!`, and kiln's
//! [`Console`](kiln::platform::Console) for `[JIT]` traces and reports.
use core::fmt::{self, Write};

use crate::serial;
use crate::sync::IrqMutex;

/// The lock that keeps lines from different CPUs apart.
static LOCK: IrqMutex<()> = IrqMutex::new(());

/// kiln's console on this machine: the serial port.
pub struct SerialConsole;

// SAFETY: write_bytes takes an IrqMutex (callable from any CPU, with interrupts masked while held)
// and never allocates.
unsafe impl kiln::platform::Console for SerialConsole {
    fn write_bytes(&self, bytes: &[u8]) {
        let _held = LOCK.lock();
        write_raw(bytes);
    }
}

fn write_raw(bytes: &[u8]) {
    for &b in bytes {
        if b == b'\n' {
            serial::write_byte(b'\r');
        }
        serial::write_byte(b);
    }
}

struct Raw;

impl Write for Raw {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_raw(s.as_bytes());
        Ok(())
    }
}

/// Formats to the serial port under the console lock (used by `print!`).
#[doc(hidden)]
pub fn _print(args: fmt::Arguments) {
    let _held = LOCK.lock();
    let _ = Raw.write_fmt(args);
}

/// Formats to the serial port without the lock: for the panic and exception paths, where the
/// lock may be held by the code that failed.
#[doc(hidden)]
pub fn _print_unlocked(args: fmt::Arguments) {
    let _ = Raw.write_fmt(args);
}

/// Prints to the serial console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::_print(format_args!($($arg)*)) };
}

/// Prints a line to the serial console.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::console::_print(format_args!("{}\n", format_args!($($arg)*))) };
}
