//! A `Console` that collects the `[JIT]` log for the tests to read.
use std::sync::Mutex;

use kiln::platform::Console;

/// Collects the `[JIT]` log.
#[derive(Default)]
pub struct Log(pub Mutex<String>);

// SAFETY: `write_bytes` only appends to a mutex-protected string; it never allocates executable
// memory or re-enters the JIT.
unsafe impl Console for Log {
    fn write_bytes(&self, bytes: &[u8]) {
        self.0
            .lock()
            .unwrap()
            .push_str(&String::from_utf8_lossy(bytes));
    }
}
