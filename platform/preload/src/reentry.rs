//! Re-entry guard and bootstrap area.
//!
//! kiln's per-thread set-up may call back into `malloc`/`calloc` through libc (registering a
//! thread-exit destructor allocates, for instance). Such a nested call must not enter kiln again
//! half-initialised, so each thread carries a flag: set while inside kiln, and a call that finds
//! it set is served from the bootstrap area instead.
//!
//! ```text
//!  BOOTSTRAP (static, BOOTSTRAP_SIZE bytes, bumped upward by an atomic counter)
//!  ┌────────┬──────────┬────────┬──────────────┬──────────────── ─ ─
//!  │ size   │ block    │ size   │ block        │  free
//!  └────────┴──────────┴────────┴──────────────┴──────────────── ─ ─
//!   header: the block's size in the 8 bytes just below it; blocks are never reused.
//! ```
use core::cell::{Cell, UnsafeCell};
use core::sync::atomic::{AtomicUsize, Ordering::Relaxed};

thread_local! {
    /// Whether this thread is inside kiln now. Constant-initialised and without `Drop`, so
    /// touching it never allocates nor registers a destructor.
    static INSIDE: Cell<bool> = const { Cell::new(false) };
}

/// Proof that this thread has entered kiln; leaving clears the flag.
pub(crate) struct Inside(());

impl Drop for Inside {
    #[inline]
    fn drop(&mut self) {
        INSIDE.with(|f| f.set(false));
    }
}

/// Enters kiln, or returns `None` when this call is a re-entry.
#[inline]
pub(crate) fn enter() -> Option<Inside> {
    INSIDE.with(|f| {
        if f.get() {
            None
        } else {
            f.set(true);
            Some(Inside(()))
        }
    })
}

const BOOTSTRAP_SIZE: usize = 1 << 20;

#[repr(C, align(4096))]
struct Area(UnsafeCell<[u8; BOOTSTRAP_SIZE]>);

// SAFETY: blocks are carved out by an atomic bump (`NEXT`), so no two threads get the same bytes.
unsafe impl Sync for Area {}

static AREA: Area = Area(UnsafeCell::new([0; BOOTSTRAP_SIZE]));
static NEXT: AtomicUsize = AtomicUsize::new(0);

fn area_start() -> usize {
    AREA.0.get().addr()
}

/// A zeroed bootstrap block of `size` bytes aligned to `align` (a power of two), or null when the
/// area is exhausted. The memory is zero because it is static and never reused.
pub(crate) fn alloc(size: usize, align: usize) -> *mut u8 {
    let align = align.max(16);
    let mut offset = NEXT.load(Relaxed);
    loop {
        // Room for the 8-byte size header below the aligned block.
        let Some(block) = (area_start() + offset + 8)
            .checked_next_multiple_of(align)
            .map(|a| a - area_start())
        else {
            return core::ptr::null_mut();
        };
        let Some(end) = block.checked_add(size).filter(|&e| e <= BOOTSTRAP_SIZE) else {
            return core::ptr::null_mut();
        };
        match NEXT.compare_exchange_weak(offset, end, Relaxed, Relaxed) {
            Ok(_) => {
                let base = AREA.0.get().cast::<u8>();
                // SAFETY: `block - 8 .. end` lies inside AREA and was reserved for this call
                // alone by the successful compare-exchange; the header is 8-aligned because
                // `block` is 16-aligned.
                unsafe {
                    base.add(block - 8).cast::<usize>().write(size);
                    return base.add(block);
                }
            }
            Err(now) => offset = now,
        }
    }
}

/// Whether `ptr` points into the bootstrap area.
#[inline]
pub(crate) fn owns(ptr: *const u8) -> bool {
    ptr.addr().wrapping_sub(area_start()) < BOOTSTRAP_SIZE
}

/// The size a bootstrap block was allocated with.
///
/// # Safety
///
/// `ptr` must be a block returned by [`alloc`].
pub(crate) unsafe fn size_of(ptr: *const u8) -> usize {
    // SAFETY: `alloc` wrote the size in the 8 bytes below every block.
    unsafe { ptr.sub(8).cast::<usize>().read() }
}
