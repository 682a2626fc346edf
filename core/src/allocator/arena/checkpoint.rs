//! Checkpoints: `mark` / `rollback`, and `reset`. Both frees are O(chunks) and take `&mut self`,
//! so no reference into the arena survives them.
use core::ptr;

use super::chunk::{chunk_end, fresh_chunk_id, payload_start, ChunkHeader};
use super::{Allocator, Arena, ArenaError};

/// A saved allocation position of an arena; see [`Arena::mark`].
///
/// A mark stays usable while its chunk exists: rolling back to an older mark, or resetting,
/// frees newer chunks and makes marks into them stale ([`ArenaError::StaleMark`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark {
    /// The chunk that was current (null: the arena had no chunk).
    chunk: *const ChunkHeader,
    /// That chunk's id, so that a new chunk at a recycled address is not mistaken for it.
    chunk_id: usize,
    /// Bump position as an offset from the chunk's start.
    offset: usize,
}

impl<A: Allocator> Arena<A> {
    /// Saves the current allocation position; [`Arena::rollback`] frees everything allocated
    /// after it.
    pub fn mark(&self) -> Mark {
        let chunk = self.current.get();
        if chunk.is_null() {
            return Mark {
                chunk,
                chunk_id: 0,
                offset: 0,
            };
        }
        Mark {
            chunk,
            // SAFETY: `chunk` is the live current chunk.
            chunk_id: unsafe { (*chunk).id },
            offset: self.bump.get().addr() - chunk.addr(),
        }
    }

    /// Frees everything allocated since `mark` was taken: chunks taken since then go back to the
    /// backing allocator and the bump pointer returns to the mark. A mark taken while the arena
    /// had no chunk rolls back like [`Arena::reset`] (the largest chunk is kept for reuse).
    ///
    /// Rolling back to a mark, then to a later mark in a chunk that still exists, is allowed: it
    /// only moves the bump pointer (no reference survives `&mut self`, so nothing can observe the
    /// bytes in between).
    ///
    /// # Errors
    ///
    /// [`ArenaError::StaleMark`] (and nothing changes) if the mark's chunk has been freed by a
    /// `reset` or an earlier `rollback`, or the mark comes from another arena.
    pub fn rollback(&mut self, mark: Mark) -> Result<(), ArenaError> {
        if mark.chunk.is_null() {
            self.reset();
            return Ok(());
        }
        let target = self.find_chunk(mark).ok_or(ArenaError::StaleMark)?;
        self.counters.sample_peak(self.bytes_in_use());
        self.free_chunks_newer_than(target);
        self.bump.set(target.cast::<u8>().wrapping_add(mark.offset));
        // SAFETY: `target` is the live current chunk now.
        unsafe { (*target).used.set(0) };
        self.counters.set_retired(self.used_below(target));
        self.counters.count_rollback();
        Ok(())
    }

    /// Forgets every allocation. Keeps the largest chunk (so a steady workload stops calling the
    /// backing allocator after its first round) and frees the others: O(chunks). Marks taken
    /// before become stale.
    pub fn reset(&mut self) {
        self.counters.sample_peak(self.bytes_in_use());
        self.counters.count_reset();
        let largest = self.largest_chunk();
        if largest.is_null() {
            return;
        }
        let mut chunk = self.current.get();
        while !chunk.is_null() {
            // SAFETY: `chunk` is on this arena's list, hence live.
            let prev = unsafe { (*chunk).prev };
            if chunk != largest {
                // SAFETY: we hold `&mut self`, so nothing points into the chunk, and the walk has
                // already read its `prev`; the list is rebuilt from `largest` alone below.
                unsafe { self.free_unlinked_chunk(chunk) };
            }
            chunk = prev;
        }
        // SAFETY: `largest` is live (it was skipped above); it becomes the only chunk, with a new
        // id so that every older mark is recognised as stale.
        unsafe {
            (*largest).prev = ptr::null_mut();
            (*largest).id = fresh_chunk_id();
            (*largest).used.set(0);
            self.end.set(chunk_end(largest));
        }
        self.current.set(largest);
        self.bump.set(payload_start(largest));
        self.counters.set_retired(0);
    }

    /// The chunk `mark` names, if it is still on this arena's list.
    fn find_chunk(&self, mark: Mark) -> Option<*mut ChunkHeader> {
        let mut chunk = self.current.get();
        while !chunk.is_null() {
            // SAFETY: chunks on the list are live.
            let (id, prev) = unsafe { ((*chunk).id, (*chunk).prev) };
            if ptr::eq(chunk, mark.chunk) && id == mark.chunk_id {
                return Some(chunk);
            }
            chunk = prev;
        }
        None
    }

    /// The largest chunk on the list (the newest of equals), or null.
    fn largest_chunk(&self) -> *mut ChunkHeader {
        let mut best: *mut ChunkHeader = ptr::null_mut();
        let mut best_size = 0;
        let mut chunk = self.current.get();
        while !chunk.is_null() {
            // SAFETY: chunks on the list are live.
            let (size, prev) = unsafe { ((*chunk).size, (*chunk).prev) };
            if size > best_size {
                best = chunk;
                best_size = size;
            }
            chunk = prev;
        }
        best
    }

    /// Payload bytes in use in the chunks older than `chunk`.
    fn used_below(&self, chunk: *mut ChunkHeader) -> usize {
        let mut total = 0;
        // SAFETY: `chunk` and its predecessors are live.
        let mut older = unsafe { (*chunk).prev };
        while !older.is_null() {
            // SAFETY: as above.
            unsafe {
                total += (*older).used.get();
                older = (*older).prev;
            }
        }
        total
    }

    /// Payload bytes in use now (padding included).
    pub(super) fn bytes_in_use(&self) -> usize {
        let current = self.current.get();
        if current.is_null() {
            return 0;
        }
        self.counters.retired() + (self.bump.get().addr() - payload_start(current).addr())
    }
}
