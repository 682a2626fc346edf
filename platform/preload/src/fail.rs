//! Fatal errors: a `kiln: ...` line on stderr, then `abort()`. Formatting happens in a stack
//! buffer so that reporting a broken heap does not allocate from it.
use core::fmt::{self, Write};

/// A fixed-size line buffer; text past its end is dropped.
pub(crate) struct Line {
    buf: [u8; 512],
    len: usize,
}

impl Line {
    pub(crate) const fn new() -> Self {
        Line {
            buf: [0; 512],
            len: 0,
        }
    }

    /// Writes the buffer to stderr (fd 2), ignoring errors: there is nobody left to tell.
    pub(crate) fn flush_to_stderr(&mut self) {
        self.flush_to(2);
    }

    /// Writes the buffer to the report's file descriptor (stderr as it was at load time).
    pub(crate) fn flush_to_report(&mut self) {
        self.flush_to(crate::report::REPORT_FD.load(core::sync::atomic::Ordering::Relaxed));
    }

    fn flush_to(&mut self, fd: core::ffi::c_int) {
        let mut done = 0;
        while done < self.len {
            // SAFETY: `buf[done..len]` is initialised memory we own; write(2) only reads it.
            let n = unsafe { libc::write(fd, self.buf[done..].as_ptr().cast(), self.len - done) };
            if n <= 0 {
                break;
            }
            done += n as usize;
        }
        self.len = 0;
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = self.buf.len() - self.len;
        let n = s.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Reports a misuse of the C API on `ptr` by `entry` and aborts the process.
#[cold]
#[inline(never)]
pub(crate) fn misuse(entry: &str, ptr: *const u8, why: fmt::Arguments<'_>) -> ! {
    let mut line = Line::new();
    let _ = writeln!(
        line,
        "kiln: {entry}({ptr:p}): {why}; aborting instead of corrupting the heap"
    );
    line.flush_to_stderr();
    // SAFETY: abort has no preconditions; it does not return.
    unsafe { libc::abort() }
}
