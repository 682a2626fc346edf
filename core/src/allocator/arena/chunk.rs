//! Chunks: taking them from the backing allocator, linking them, giving them back.
//!
//! ```text
//!  chunk (CHUNK_ALIGN-aligned, `size` bytes):
//!  ┌──────────────────────┬─────────────────────────────────────────┐
//!  │ ChunkHeader          │ payload (allocations, bumped upward)    │
//!  └──────────────────────┴─────────────────────────────────────────┘
//!  ^ chunk                ^ chunk + PAYLOAD_OFFSET                  ^ chunk + size
//! ```
use core::alloc::Layout;
use core::cell::Cell;
use core::ptr::{self, NonNull};
use core::sync::atomic::{AtomicUsize, Ordering};

use super::{Allocator, Arena, ArenaError};

/// Alignment of every chunk, so requests up to this alignment never need padding at the start.
pub(super) const CHUNK_ALIGN: usize = 16;

/// Bytes from a chunk's start to its payload.
pub(super) const PAYLOAD_OFFSET: usize =
    (core::mem::size_of::<ChunkHeader>() + CHUNK_ALIGN - 1) & !(CHUNK_ALIGN - 1);

/// Source of chunk ids, unique across all arenas for the life of the program, so that a mark
/// naming a freed chunk can never match a new chunk that happens to reuse its address.
static NEXT_CHUNK_ID: AtomicUsize = AtomicUsize::new(1);

/// Metadata at the start of every chunk.
#[repr(C)]
pub(super) struct ChunkHeader {
    /// The next older chunk, or null.
    pub(super) prev: *mut ChunkHeader,
    /// Bytes of the whole chunk (the layout it was allocated with).
    pub(super) size: usize,
    /// Unique id (see `NEXT_CHUNK_ID`); renewed when `reset` recycles the chunk.
    pub(super) id: usize,
    /// Payload bytes in use when the chunk stopped being current (0 while current).
    pub(super) used: Cell<usize>,
}

pub(super) fn fresh_chunk_id() -> usize {
    NEXT_CHUNK_ID.fetch_add(1, Ordering::Relaxed)
}

/// The layout a chunk of `size` bytes was allocated with.
fn chunk_layout(size: usize) -> Layout {
    // `size` was checked when the chunk was made (see `Arena::push_chunk_for`).
    Layout::from_size_align(size, CHUNK_ALIGN).expect("chunk layout was valid when allocated")
}

/// First payload byte of `chunk`.
pub(super) fn payload_start(chunk: *mut ChunkHeader) -> *mut u8 {
    chunk.cast::<u8>().wrapping_add(PAYLOAD_OFFSET)
}

/// One past the last byte of `chunk`.
///
/// # Safety
///
/// `chunk` must be a live chunk of some arena.
pub(super) unsafe fn chunk_end(chunk: *mut ChunkHeader) -> *mut u8 {
    // SAFETY: the caller guarantees the header is live and initialised.
    let size = unsafe { (*chunk).size };
    chunk.cast::<u8>().wrapping_add(size)
}

impl<A: Allocator> Arena<A> {
    /// Takes a chunk big enough for `layout` from the backing allocator and makes it current.
    pub(super) fn push_chunk_for(&self, layout: Layout) -> Result<(), ArenaError> {
        let too_large = ArenaError::TooLarge {
            size: layout.size(),
            align: layout.align(),
        };
        // Worst-case padding: the payload start is CHUNK_ALIGN-aligned, the request may need more.
        let padding = layout.align().saturating_sub(CHUNK_ALIGN);
        let needed = PAYLOAD_OFFSET
            .checked_add(padding)
            .and_then(|n| n.checked_add(layout.size()))
            .and_then(|n| n.checked_add(CHUNK_ALIGN - 1))
            .map(|n| n & !(CHUNK_ALIGN - 1))
            .ok_or(too_large)?;
        let oom = ArenaError::OutOfMemory {
            size: layout.size(),
            align: layout.align(),
        };
        let mut size = needed.max(self.next_chunk.get());
        let mut fell_back = false;
        let chunk_layout = Layout::from_size_align(size, CHUNK_ALIGN).map_err(|_| too_large)?;
        let block = match self.backing.allocate(chunk_layout) {
            Ok(block) => block,
            // The grown chunk is more than this request needs; when memory is short (a small
            // heap) a chunk just large enough may still fit.
            Err(_) if size > needed => {
                size = needed;
                fell_back = true;
                let fit = Layout::from_size_align(size, CHUNK_ALIGN).map_err(|_| too_large)?;
                self.backing.allocate(fit).map_err(|_| oom)?
            }
            Err(_) => return Err(oom),
        };
        // Growth: double what we just took, within the cap (an oversized chunk does not push the
        // next one past the cap).
        // After a fallback, growth restarts from the chunk that fitted.
        let doubled = size.saturating_mul(2).min(self.options.max_chunk);
        let floor = if fell_back { 0 } else { self.next_chunk.get() };
        self.next_chunk
            .set(doubled.max(self.options.first_chunk).max(floor));
        let chunk = block.cast::<ChunkHeader>().as_ptr();
        // SAFETY: `block` is fresh memory of `size >= PAYLOAD_OFFSET` bytes, aligned to
        // CHUNK_ALIGN >= align_of::<ChunkHeader>().
        unsafe {
            chunk.write(ChunkHeader {
                prev: self.current.get(),
                size,
                id: fresh_chunk_id(),
                used: Cell::new(0),
            });
        }
        self.retire_current();
        self.current.set(chunk);
        self.bump.set(payload_start(chunk));
        // SAFETY: `chunk` was initialised just above.
        self.end.set(unsafe { chunk_end(chunk) });
        self.counters.count_chunk(size);
        Ok(())
    }

    /// Records how much of the current chunk is used, before a newer chunk replaces it.
    fn retire_current(&self) {
        let current = self.current.get();
        if current.is_null() {
            return;
        }
        let used = self.bump.get().addr() - payload_start(current).addr();
        // SAFETY: `current` is a live chunk of this arena.
        unsafe { (*current).used.set(used) };
        self.counters.add_retired(used);
    }

    /// Frees every chunk newer than `keep` (all of them if `keep` is null) and makes `keep`
    /// current (with its bump position still to be set by the caller).
    ///
    /// Callers hold `&mut self` (or are dropping), so no reference into a freed chunk survives.
    pub(super) fn free_chunks_newer_than(&self, keep: *mut ChunkHeader) {
        let mut chunk = self.current.get();
        while !chunk.is_null() && chunk != keep {
            // SAFETY: `chunk` is a live chunk of this arena, taken from `backing` with the layout
            // its header records; it is unlinked (we move past it) before being freed.
            unsafe {
                let prev = (*chunk).prev;
                let size = (*chunk).size;
                self.backing
                    .deallocate(NonNull::new_unchecked(chunk.cast()), chunk_layout(size));
                self.counters.uncount_chunk(size);
                chunk = prev;
            }
        }
        self.current.set(keep);
        if keep.is_null() {
            self.bump.set(ptr::without_provenance_mut(1));
            self.end.set(ptr::null_mut());
        } else {
            // SAFETY: `keep` is a live chunk (the loop stopped at it).
            self.end.set(unsafe { chunk_end(keep) });
        }
    }

    /// Frees one chunk that is not on the list any more.
    ///
    /// # Safety
    ///
    /// `chunk` must be a live chunk taken from this arena's backing allocator, unlinked, with no
    /// reference into it alive.
    pub(super) unsafe fn free_unlinked_chunk(&self, chunk: *mut ChunkHeader) {
        // SAFETY: the caller's contract.
        unsafe {
            let size = (*chunk).size;
            self.backing
                .deallocate(NonNull::new_unchecked(chunk.cast()), chunk_layout(size));
            self.counters.uncount_chunk(size);
        }
    }
}
