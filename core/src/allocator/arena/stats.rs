//! Allocation statistics of one arena. Counting costs two additions on the fast path; the peak is
//! sampled only where the bytes in use can drop (rollback, reset, freeing or shrinking the last
//! allocation) and when asked, which is exact because use only grows in between.
use core::cell::Cell;

use super::{Allocator, Arena};

/// A snapshot of an arena's counters ([`Arena::stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArenaStats {
    /// Allocations served since the arena was made (`Allocator::allocate` and relocating grows
    /// included).
    pub allocations: u64,
    /// Bytes those allocations asked for.
    pub bytes_allocated: u64,
    /// Payload bytes in use now, alignment padding included.
    pub bytes_in_use: usize,
    /// Most payload bytes ever in use at once.
    pub peak_bytes_in_use: usize,
    /// Chunks held now.
    pub chunks: usize,
    /// Bytes of those chunks (headers included): what the arena holds from its backing allocator.
    pub chunk_bytes: usize,
    /// Most chunk bytes ever held at once.
    pub peak_chunk_bytes: usize,
    /// Chunks taken from the backing allocator since the arena was made.
    pub chunk_allocations: u64,
    /// Grows of the last allocation done in place (no copy).
    pub grows_in_place: u64,
    /// Successful `rollback` calls.
    pub rollbacks: u64,
    /// `reset` calls.
    pub resets: u64,
}

/// The live counters behind [`ArenaStats`].
pub(super) struct Counters {
    allocations: Cell<u64>,
    bytes_allocated: Cell<u64>,
    /// Payload bytes used in the chunks older than the current one.
    retired: Cell<usize>,
    peak_in_use: Cell<usize>,
    chunks: Cell<usize>,
    chunk_bytes: Cell<usize>,
    peak_chunk_bytes: Cell<usize>,
    chunk_allocations: Cell<u64>,
    grows_in_place: Cell<u64>,
    rollbacks: Cell<u64>,
    resets: Cell<u64>,
}

fn bump(c: &Cell<u64>) {
    c.set(c.get() + 1);
}

impl Counters {
    pub(super) const fn new() -> Self {
        Counters {
            allocations: Cell::new(0),
            bytes_allocated: Cell::new(0),
            retired: Cell::new(0),
            peak_in_use: Cell::new(0),
            chunks: Cell::new(0),
            chunk_bytes: Cell::new(0),
            peak_chunk_bytes: Cell::new(0),
            chunk_allocations: Cell::new(0),
            grows_in_place: Cell::new(0),
            rollbacks: Cell::new(0),
            resets: Cell::new(0),
        }
    }

    #[inline]
    pub(super) fn count_alloc(&self, size: usize) {
        bump(&self.allocations);
        self.bytes_allocated
            .set(self.bytes_allocated.get() + size as u64);
    }

    pub(super) fn count_grow_in_place(&self) {
        bump(&self.grows_in_place);
    }

    pub(super) fn count_chunk(&self, size: usize) {
        bump(&self.chunk_allocations);
        self.chunks.set(self.chunks.get() + 1);
        let held = self.chunk_bytes.get() + size;
        self.chunk_bytes.set(held);
        self.peak_chunk_bytes
            .set(self.peak_chunk_bytes.get().max(held));
    }

    pub(super) fn uncount_chunk(&self, size: usize) {
        self.chunks.set(self.chunks.get() - 1);
        self.chunk_bytes.set(self.chunk_bytes.get() - size);
    }

    pub(super) fn add_retired(&self, used: usize) {
        self.retired.set(self.retired.get() + used);
    }

    pub(super) fn set_retired(&self, used: usize) {
        self.retired.set(used);
    }

    pub(super) fn retired(&self) -> usize {
        self.retired.get()
    }

    pub(super) fn sample_peak(&self, in_use: usize) {
        self.peak_in_use.set(self.peak_in_use.get().max(in_use));
    }

    pub(super) fn count_rollback(&self) {
        bump(&self.rollbacks);
    }

    pub(super) fn count_reset(&self) {
        bump(&self.resets);
    }
}

impl<A: Allocator> Arena<A> {
    /// The arena's counters now.
    pub fn stats(&self) -> ArenaStats {
        let in_use = self.bytes_in_use();
        let c = &self.counters;
        c.sample_peak(in_use);
        ArenaStats {
            allocations: c.allocations.get(),
            bytes_allocated: c.bytes_allocated.get(),
            bytes_in_use: in_use,
            peak_bytes_in_use: c.peak_in_use.get(),
            chunks: c.chunks.get(),
            chunk_bytes: c.chunk_bytes.get(),
            peak_chunk_bytes: c.peak_chunk_bytes.get(),
            chunk_allocations: c.chunk_allocations.get(),
            grows_in_place: c.grows_in_place.get(),
            rollbacks: c.rollbacks.get(),
            resets: c.resets.get(),
        }
    }
}
