//! Host buffers in traces: `bget`, `bset` and `blen` become runtime calls from native code.
//!
//! The driver owns one [`BufView`] per host buffer of the program (boxed: its address is baked
//! into traces as a constant). While the VM is inside the driver for a hosted run (entering
//! native code, recording), the views hold the lent buffers' pointers and lengths; otherwise
//! they are empty, and every call below fails (returns -1), which the trace guards: the guard
//! exits to the instruction and the interpreter performs it (or reports its error).
//!
//! | call | arguments | result |
//! |---|---|---|
//! | [`buf_get`] | view address, index | the byte, or -1 (index out of range, no view) |
//! | [`buf_set`] | view address, `index * 256 + byte` (the trace guards `0 <= byte <= 255` and `0 <= index < 2^40`) | 0, or -1 with nothing written |
//! | [`buf_len`] | view address, unused | the length, or -1 (no view) |
use core::cell::Cell;
use core::ptr;

/// Largest index a trace packs into a [`buf_set`] argument (guarded before the call).
pub const MAX_PACKED_INDEX: i64 = 1 << 40;

/// Where one host buffer is during a hosted stretch of the driver; empty otherwise.
#[repr(C)]
pub struct BufView {
    ptr: Cell<*mut u8>,
    len: Cell<usize>,
}

impl Default for BufView {
    fn default() -> Self {
        BufView {
            ptr: Cell::new(ptr::null_mut()),
            len: Cell::new(0),
        }
    }
}

impl BufView {
    /// Points the view at `len` bytes at `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must be valid for reads and writes of `len` bytes, and nothing else may access
    /// them, until [`BufView::clear`] (or the next `set`).
    pub unsafe fn set(&self, ptr: *mut u8, len: usize) {
        self.ptr.set(ptr);
        self.len.set(len);
    }

    /// Empties the view.
    pub fn clear(&self) {
        self.ptr.set(ptr::null_mut());
        self.len.set(0);
    }

    /// The view's length, or `None` when it is empty.
    pub fn filled_len(&self) -> Option<usize> {
        (!self.ptr.get().is_null()).then(|| self.len.get())
    }

    /// Byte `idx`, or `None` when it is out of range or the view is empty.
    pub fn read(&self, idx: i64) -> Option<u8> {
        let p = self.ptr.get();
        let i = usize::try_from(idx).ok().filter(|&i| i < self.len.get())?;
        if p.is_null() {
            return None;
        }
        // SAFETY: a non-null view points at `len` valid bytes nobody else is using (`set`'s
        // contract), and `i < len`.
        Some(unsafe { p.add(i).read() })
    }

    fn write(&self, idx: i64, byte: u8) -> bool {
        let p = self.ptr.get();
        let Some(i) = usize::try_from(idx).ok().filter(|&i| i < self.len.get()) else {
            return false;
        };
        if p.is_null() {
            return false;
        }
        // SAFETY: as in `read`.
        unsafe { p.add(i).write(byte) };
        true
    }

    /// The address traces pass to the calls below.
    pub fn addr(&self) -> i64 {
        self as *const BufView as i64
    }
}

/// The view at `addr`.
///
/// # Safety
///
/// `addr` must be [`BufView::addr`] of a live view.
unsafe fn view<'a>(addr: i64) -> &'a BufView {
    // SAFETY: the caller's contract.
    unsafe { &*(addr as *const BufView) }
}

/// `bget` for native code: byte `idx` of the buffer, or -1.
pub extern "C" fn buf_get(addr: i64, idx: i64) -> i64 {
    // SAFETY: traces pass the address of one of their driver's views, which lives as long as
    // the driver and so as long as the trace's code.
    let v = unsafe { view(addr) };
    v.read(idx).map_or(-1, i64::from)
}

/// `bset` for native code: `packed = index * 256 + byte`; 0, or -1 with nothing written.
pub extern "C" fn buf_set(addr: i64, packed: i64) -> i64 {
    // SAFETY: as in `buf_get`.
    let v = unsafe { view(addr) };
    if v.write(packed >> 8, packed as u8) {
        0
    } else {
        -1
    }
}

/// `blen` for native code: the buffer's length, or -1.
pub extern "C" fn buf_len(addr: i64, _: i64) -> i64 {
    // SAFETY: as in `buf_get`.
    let v = unsafe { view(addr) };
    v.filled_len().map_or(-1, |n| n as i64)
}
