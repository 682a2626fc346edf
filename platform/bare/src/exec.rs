//! kiln's [`ExecMemory`] on bare metal: the exec window.
//!
//! ```text
//!   exec window = one segment from the pool (taken on first use), 512 small pages of 4 KiB
//!   | page 0 | page 1 | ... | page 511 |      used: one bit per page (a region = a run of bits)
//!   each page: Writable (RW, no-execute)  --make_executable-->  Executable (RX, read-only)
//!              <-------------------------- unmap -------------------------
//! ```
//! A region is never writable and executable at once: `make_executable` synchronises the
//! instruction cache, then drops write permission and grants execute in one entry update per
//! page, and `unmap` does the reverse. Either ends with a TLB shoot-down ([`crate::tlb`]): when
//! it returns, no CPU holds a translation with the old permission. All state is behind one
//! [`IrqMutex`]; a CPU spinning for it serves pending shoot-downs (the holder may be waiting
//! for exactly that).
//!
//! Code made executable by one CPU and run by another: that CPU must pass a context
//! synchronisation event after it learns of the code ([`crate::cache::sync_core`]; on x86_64
//! the shoot-down IPI's `iretq` already is one).
use core::ptr::NonNull;

use bitvec::prelude::*;
use kiln::platform::{CodeRegion, ExecMemory, MemorySource};

use crate::memory::MEMORY;
use crate::paging::{self, PagePerm, EXEC_WINDOW_PAGES, SMALL_PAGE};
use crate::sync::{IrqMutex, IrqMutexGuard};

struct Window {
    base: usize,
    used: BitArr!(for EXEC_WINDOW_PAGES, in usize, Lsb0),
}

static WINDOW: IrqMutex<Option<Window>> = IrqMutex::new(None);

/// Executable memory for kiln's JIT.
pub struct BareExec;

/// The one exec-memory provider (hand `&EXEC` to kiln).
pub static EXEC: BareExec = BareExec;

/// Takes the window lock; while another CPU holds it, serves the shoot-downs it may be waiting
/// for (this CPU's interrupts may be masked).
fn lock_window() -> IrqMutexGuard<'static, Option<Window>> {
    loop {
        if let Some(guard) = WINDOW.try_lock() {
            return guard;
        }
        crate::tlb::serve_pending();
        core::hint::spin_loop();
    }
}

/// Takes a segment for the window and maps it with small pages; `None` when RAM is exhausted.
#[cold]
#[inline(never)]
fn open_window() -> Option<Window> {
    let base = MEMORY.reserve(1);
    if base.is_null() {
        return None;
    }
    // SAFETY: called once (WINDOW is None and locked); the segment is fresh and ours.
    unsafe { paging::map_exec_window(base as usize) };
    Some(Window {
        base: base as usize,
        used: BitArray::ZERO,
    })
}

/// First run of `pages` free pages.
fn find_run(used: &BitSlice<usize, Lsb0>, pages: usize) -> Option<usize> {
    let mut start = 0;
    while start + pages <= used.len() {
        match used[start..start + pages].last_one() {
            None => return Some(start),
            Some(last) => start += last + 1,
        }
    }
    None
}

/// The window page permission at `addr` (for tests and assertions); `None` outside the window.
pub fn page_perm(addr: *const u8) -> Option<PagePerm> {
    let window = lock_window();
    let w = window.as_ref()?;
    let a = addr as usize;
    (w.base..w.base + EXEC_WINDOW_PAGES * SMALL_PAGE)
        .contains(&a)
        .then(|| paging::perm(w.base, a & !(SMALL_PAGE - 1)))
}

fn region_pages(region: &CodeRegion) -> impl Iterator<Item = usize> {
    let start = region.ptr.as_ptr() as usize;
    (start..start + region.len).step_by(SMALL_PAGE)
}

/// Checks `region` is a page-aligned run inside the window.
fn in_window(w: &Window, region: &CodeRegion) -> bool {
    let start = region.ptr.as_ptr() as usize;
    start >= w.base
        && start.is_multiple_of(SMALL_PAGE)
        && region.len.is_multiple_of(SMALL_PAGE)
        && start + region.len <= w.base + EXEC_WINDOW_PAGES * SMALL_PAGE
}

// SAFETY: map_writable hands out page runs marked used until unmap, writable and not executable;
// make_executable synchronises the icache before granting execute and never leaves a page
// writable and executable, on any CPU (TLB shoot-down before returning); everything is behind
// the window lock, so any CPU may call in.
unsafe impl ExecMemory for BareExec {
    fn map_writable(&self, len: usize) -> Option<CodeRegion> {
        let pages = len.div_ceil(SMALL_PAGE).max(1);
        if pages > EXEC_WINDOW_PAGES {
            return None;
        }
        let mut window = lock_window();
        if window.is_none() {
            *window = Some(open_window()?);
        }
        let w = window.as_mut()?;
        let first = find_run(&w.used, pages)?;
        w.used[first..first + pages].fill(true);
        let ptr = (w.base + first * SMALL_PAGE) as *mut u8;
        Some(CodeRegion {
            ptr: NonNull::new(ptr)?,
            len: pages * SMALL_PAGE,
        })
    }

    unsafe fn make_executable(&self, region: CodeRegion) -> bool {
        let window = lock_window();
        let Some(w) = window.as_ref() else {
            return false;
        };
        if !in_window(w, &region) {
            return false;
        }
        crate::cache::sync_icache(region.ptr.as_ptr(), region.len);
        for va in region_pages(&region) {
            // SAFETY: the page is in the window, we hold its lock, and (caller) nobody writes it.
            unsafe { paging::set_perm(w.base, va, PagePerm::Executable) };
        }
        crate::tlb::invalidate_range(region.ptr.as_ptr() as usize, region.len);
        true
    }

    unsafe fn unmap(&self, region: CodeRegion) {
        let mut window = lock_window();
        let Some(w) = window.as_mut() else {
            return;
        };
        if !in_window(w, &region) {
            return;
        }
        for va in region_pages(&region) {
            // SAFETY: the page is in the window, we hold its lock, and (caller) no code in it
            // runs any more.
            unsafe { paging::set_perm(w.base, va, PagePerm::Writable) };
        }
        crate::tlb::invalidate_range(region.ptr.as_ptr() as usize, region.len);
        let first = (region.ptr.as_ptr() as usize - w.base) / SMALL_PAGE;
        w.used[first..first + region.len / SMALL_PAGE].fill(false);
    }
}
