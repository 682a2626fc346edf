//! Load-time set-up: a constructor in `.init_array` reads `KILN_STATS` and registers the exit
//! report and the `fork` handlers. It runs after libc is initialised and before `main`; any
//! allocation before it is already served by kiln (kiln sets itself up lazily on first use).
use core::ffi::c_int;
use core::sync::atomic::Ordering::Relaxed;

use crate::report;

extern "C" {
    fn pthread_atfork(
        prepare: Option<extern "C" fn()>,
        parent: Option<extern "C" fn()>,
        child: Option<extern "C" fn()>,
    ) -> c_int;
}

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
    }
    // SAFETY: the handlers are plain functions that stay valid for the life of the process.
    unsafe { pthread_atfork(Some(before_fork), Some(after_fork_in_parent), Some(after_fork_in_child)) };
}

/// Runs in the forking thread before `fork`: takes kiln's global locks so that the child never
/// inherits one held by a thread that does not exist in it.
extern "C" fn before_fork() {
    kiln_std::fork::prepare();
}

/// Runs in the parent after `fork`: releases what `before_fork` took.
extern "C" fn after_fork_in_parent() {
    kiln_std::fork::parent();
}

/// Runs in the child after `fork`: releases (or re-initialises) what `before_fork` took.
extern "C" fn after_fork_in_child() {
    kiln_std::fork::child();
}
