//! Load-time set-up: a constructor in `.init_array` reads `KILN_STATS`: with `1` it registers the
//! exit report, otherwise it turns kiln's per-call counters off (`stats::set_counting(false)`:
//! they would cost every `malloc`/`free` about a third of its instructions for a report nobody
//! asked for). `KILN_LARGE_PAGES=0` turns transparent huge pages for kiln's segments off
//! (`kiln_std::set_large_pages`). It runs after libc is initialised and before `main`; any
//! allocation before it is already served by kiln (kiln sets itself up lazily on first use).
//!
//! `fork`: kiln-std registers `pthread_atfork` handlers on the first allocation of the process
//! (`kiln_std::register_fork_handlers`): the prepare handler takes kiln's locks (the fallback
//! heap's, the segment pool's) and the parent/child handlers release them, so a
//! child never inherits a lock another thread held. `platform/std/tests/fork.rs` proves it with a
//! thread holding the pool lock across `fork`.
use core::sync::atomic::Ordering::Relaxed;

use crate::report;

#[used]
#[link_section = ".init_array"]
static CONSTRUCTOR: extern "C" fn() = load;

extern "C" fn load() {
    // SAFETY: the name is a NUL-terminated literal; getenv does not allocate.
    let value = unsafe { libc::getenv(c"KILN_STATS".as_ptr()) };
    // SAFETY: a non-null getenv result is a NUL-terminated string, so its first byte is readable.
    if !value.is_null() && unsafe { *value } == b'1' as core::ffi::c_char {
        // SAFETY: F_DUPFD_CLOEXEC on fd 2 only creates a new descriptor (or fails with -1).
        let fd = unsafe { libc::fcntl(2, libc::F_DUPFD_CLOEXEC, 100) };
        if fd >= 0 {
            report::REPORT_FD.store(fd, Relaxed);
        }
        report::ENABLED.store(true, Relaxed);
        // SAFETY: `print_at_exit` is a plain function valid for the life of the process (this
        // library is never unloaded: it is preloaded).
        unsafe { libc::atexit(report::print_at_exit) };
    } else {
        kiln_core::allocator::stats::set_counting(false);
    }
    // SAFETY: as above.
    let value = unsafe { libc::getenv(c"KILN_LARGE_PAGES".as_ptr()) };
    // SAFETY: as above, a non-null result's first byte is readable.
    if !value.is_null() && unsafe { *value } == b'0' as core::ffi::c_char {
        kiln_std::set_large_pages(false);
    }
}
