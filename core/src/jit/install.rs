//! Installing compiled code: copy into platform executable memory, flip it to read+execute.
//!
//! Invariants
//! - the region is written only while it is not executable; [`ExecMemory::make_executable`]
//!   (which synchronises the instruction cache) runs once per installed trace, before any entry;
//! - an [`InstalledTrace`] is entered only with a slot array at least as long as the trace
//!   needs ([`InstalledTrace::min_slots`]); it is released back to the same memory source.
use core::ptr::NonNull;

use crate::platform::{CodeRegion, ExecMemory};

/// Why code could not be installed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstallError {
    /// The platform has no executable memory left (or the JIT's cap is reached).
    NoMemory,
    /// The platform refused to make the region executable (the region was released).
    Protect,
    /// Nothing to install.
    Empty,
}

/// A trace in executable memory.
#[derive(Debug)]
pub struct InstalledTrace {
    region: CodeRegion,
    len: usize,
    min_slots: u32,
}

impl InstalledTrace {
    /// Copies `code` into fresh executable memory from `mem`. `min_slots` is the slot count a
    /// caller must provide (highest slot index the trace touches, plus one).
    pub fn install<M: ExecMemory + ?Sized>(
        mem: &M,
        code: &[u8],
        min_slots: u32,
    ) -> Result<Self, InstallError> {
        if code.is_empty() {
            return Err(InstallError::Empty);
        }
        let region = mem.map_writable(code.len()).ok_or(InstallError::NoMemory)?;
        if region.len < code.len() {
            // SAFETY: the region came from `map_writable` and nothing runs in it.
            unsafe { mem.unmap(region) };
            return Err(InstallError::NoMemory);
        }
        // SAFETY: the region is writable, at least `code.len()` bytes, and nobody else uses it.
        unsafe { core::ptr::copy_nonoverlapping(code.as_ptr(), region.ptr.as_ptr(), code.len()) };
        // SAFETY: the region came from `map_writable`; nothing executes or writes it now.
        if !unsafe { mem.make_executable(region) } {
            // SAFETY: as above; it never became executable.
            unsafe { mem.unmap(region) };
            return Err(InstallError::Protect);
        }
        Ok(Self {
            region,
            len: code.len(),
            min_slots,
        })
    }

    /// Code size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the code is empty (never: installing empty code is refused).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The number of slots [`enter`](Self::enter) requires.
    pub fn min_slots(&self) -> u32 {
        self.min_slots
    }

    /// Start of the code.
    pub fn entry(&self) -> NonNull<u8> {
        self.region.ptr
    }

    /// Runs the trace until a side exit; returns the exit number. The exit's slot values are
    /// then in `frame`; [`Compiled::restore`](crate::jit::backend::Compiled::restore) writes
    /// them back.
    ///
    /// # Safety
    /// `slots` points at a writable array of at least [`min_slots`](Self::min_slots) VM slots
    /// laid out as the trace was compiled for, and no other thread touches it meanwhile;
    /// `frame` is the trace's own [`ExitFrame`](crate::jit::backend::ExitFrame) (made by
    /// `Compiled::frame`); the code was compiled for this CPU's architecture; the memory source
    /// has not released it.
    pub unsafe fn enter(&self, slots: *mut u8, frame: *mut u64) -> u32 {
        // SAFETY: the region holds a complete function with this signature (the backend's
        // calling convention), made executable in `install`.
        let f: unsafe extern "C" fn(*mut u8, *mut u64) -> u32 =
            unsafe { core::mem::transmute(self.region.ptr.as_ptr()) };
        // SAFETY: the caller guarantees the slot array and the frame.
        unsafe { f(slots, frame) }
    }

    /// Gives the memory back.
    ///
    /// # Safety
    /// `mem` is the source it was installed from, and the code is not running.
    pub unsafe fn release<M: ExecMemory + ?Sized>(self, mem: &M) {
        // SAFETY: per the caller's guarantee.
        unsafe { mem.unmap(self.region) };
    }
}
