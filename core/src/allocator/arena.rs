//! Arena: bump allocation for short-lived objects that die together.
//!
//! # Glossary
//!
//! | term | meaning |
//! |---|---|
//! | backing allocator | where chunks come from: the global allocator ([`Global`], i.e. `alloc::alloc`) by default, or any [`Allocator`] given to [`Arena::new_in`] |
//! | chunk | one block taken from the backing allocator; a `ChunkHeader` at its start, payload after it |
//! | current chunk | the newest chunk; the only one allocations are bumped from |
//! | bump pointer | the next free byte of the current chunk; an allocation aligns it up and moves it forward |
//! | mark | a saved bump position ([`Mark`]); [`Arena::rollback`] returns to it |
//! | reset | [`Arena::reset`]: forget every allocation, keep only the largest chunk |
//! | in use | bytes between each chunk's payload start and its fill level (alignment padding included) |
//!
//! # Layout
//!
//! ```text
//!  chunks, newest first (singly linked through `prev`):
//!
//!  current ──► ┌──────────────┬───────────┬───────────┬─────────────────────┐
//!              │ ChunkHeader  │ alloc #7  │pad│ #8    │      free           │
//!              │ prev,size,id │           │   │       │                     │
//!              └──────┬───────┴───────────┴───┴───────┴─────────────────────┘
//!                     │        ▲ payload start           ▲ bump          ▲ end
//!                     ▼
//!              ┌──────────────┬──────────────────────────────────────┬──────┐
//!              │ ChunkHeader  │ allocs #1..#6 (used recorded in hdr) │waste │
//!              └──────┬───────┴──────────────────────────────────────┴──────┘
//!                     ▼
//!                   null
//! ```
//!
//! Chunk sizes double (starting at [`ArenaOptions::first_chunk`]) up to
//! [`ArenaOptions::max_chunk`]; a request that does not fit such a chunk gets a chunk of its own
//! size. The tail of a chunk that could not hold the next request is wasted, never revisited.
//!
//! # Invariants
//!
//! - `payload_start(current) <= bump <= end == chunk_end(current)`; with no chunk, `bump` is the
//!   address 1 and `end` is null, so every request misses the fast path.
//! - Every pointer handed out lies inside a chunk that is on the list; a chunk leaves the list
//!   only through `&mut self` ([`Arena::rollback`], [`Arena::reset`], drop), so no reference into
//!   it can still be alive.
//! - Chunk ids are unique for the life of the program, so a [`Mark`] whose chunk has been freed
//!   (or one from another arena) is recognised and refused instead of being followed.
//! - `reset` and `rollback` are O(chunks): they walk the list once and free what they drop.
//!
//! # Drop is never run
//!
//! Like `bumpalo`, the arena never runs destructors: a value moved in with [`Arena::alloc`] is
//! forgotten when the arena is reset, rolled back or dropped. This is deliberate: running drops
//! would need a per-value record (time and space on every allocation) and an order. There is no
//! `alloc_with_drop`; a value that owns resources (a `Vec`, a file) should be dropped by its user
//! with [`core::ptr::drop_in_place`] before the arena forgets it, or live in an
//! `allocator_api2` collection that is itself dropped normally.
//!
//! # Collections in an arena
//!
//! `&Arena` implements [`Allocator`], so `allocator_api2::vec::Vec::new_in(&arena)` and
//! `hashbrown::HashMap::new_in(&arena)` work. Freeing is a no-op except for the most recent
//! allocation, which gives its bytes back; growing the most recent allocation happens in place, so
//! a vector that is the last thing allocated doubles without copying.
//!
//! # Sizing arrays from an estimate
//!
//! [`growth`] reserves arrays from a size estimate (such as line offsets from the input length) and
//! corrects the estimate as input is consumed, which saves most of the reallocations of plain
//! doubling.
mod allocator;
mod checkpoint;
mod chunk;
pub mod growth;
mod stats;
#[cfg(test)]
mod tests;

use core::alloc::Layout;
use core::cell::Cell;
use core::fmt;
use core::ptr::{self, NonNull};

pub use allocator_api2::alloc::{Allocator, Global};
pub use checkpoint::Mark;
pub use stats::ArenaStats;

use chunk::ChunkHeader;
use stats::Counters;

/// How chunk sizes grow. Sizes count the whole chunk, header included.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArenaOptions {
    /// Size of the first chunk (and the smallest one).
    pub first_chunk: usize,
    /// Chunk sizes double up to this cap; bigger requests get a chunk of exactly their size.
    pub max_chunk: usize,
}

impl ArenaOptions {
    /// 4 KiB first chunk, doubling up to 1 MiB.
    pub const DEFAULT: ArenaOptions = ArenaOptions {
        first_chunk: 4096,
        max_chunk: 1 << 20,
    };
}

impl Default for ArenaOptions {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Why an arena request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArenaError {
    /// The backing allocator refused a chunk big enough for `size` bytes aligned to `align`.
    OutOfMemory {
        /// Bytes requested.
        size: usize,
        /// Alignment requested.
        align: usize,
    },
    /// The request's size cannot be represented (it overflows the address space).
    TooLarge {
        /// Bytes requested (saturated).
        size: usize,
        /// Alignment requested.
        align: usize,
    },
    /// The mark's chunk has been freed by a `reset` or an earlier `rollback`, or the mark belongs
    /// to another arena.
    StaleMark,
}

impl fmt::Display for ArenaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArenaError::OutOfMemory { size, align } => write!(
                f,
                "arena: out of memory (no chunk for {size} bytes aligned to {align})"
            ),
            ArenaError::TooLarge { size, align } => write!(
                f,
                "arena: request of {size} bytes aligned to {align} overflows the address space"
            ),
            ArenaError::StaleMark => f.write_str(
                "arena: stale mark (its chunk was freed by reset/rollback, or it is another arena's)",
            ),
        }
    }
}

/// A bump allocator over chunks from a backing allocator. See the [module docs](self).
///
/// Allocation takes `&self` and hands out references that live as long as that borrow; freeing
/// takes `&mut self`, so no reference can outlive the memory it points to.
pub struct Arena<A: Allocator = Global> {
    /// Next free byte of the current chunk (address 1 when there is no chunk).
    bump: Cell<*mut u8>,
    /// One past the current chunk's last byte (null when there is no chunk).
    end: Cell<*mut u8>,
    /// The newest chunk (head of the list), or null.
    current: Cell<*mut ChunkHeader>,
    /// Size of the next chunk to take (before any oversized request).
    next_chunk: Cell<usize>,
    options: ArenaOptions,
    counters: Counters,
    backing: A,
}

// SAFETY: the arena exclusively owns its chunks (nothing else points into them while the arena
// may be moved to another thread, since references into it borrow the arena), and every field is
// plain data. `Arena` stays `!Sync` through its `Cell`s.
unsafe impl<A: Allocator + Send> Send for Arena<A> {}

impl Arena<Global> {
    /// An empty arena over the global allocator; takes no memory until the first allocation.
    pub const fn new() -> Self {
        Self::with_options_in(ArenaOptions::DEFAULT, Global)
    }

    /// An arena whose first chunk holds at least `bytes` bytes, taken now.
    ///
    /// # Panics
    ///
    /// Through [`handle_alloc_error`](alloc::alloc::handle_alloc_error) if the global allocator
    /// refuses the chunk; [`Arena::try_with_capacity_in`] returns an error instead.
    pub fn with_capacity(bytes: usize) -> Self {
        match Self::try_with_capacity_in(bytes, Global) {
            Ok(arena) => arena,
            Err(_) => {
                out_of_memory(Layout::from_size_align(bytes, 1).unwrap_or(Layout::new::<u8>()))
            }
        }
    }
}

impl Default for Arena<Global> {
    fn default() -> Self {
        Self::new()
    }
}

impl<A: Allocator> Arena<A> {
    /// An empty arena over `backing`.
    pub const fn new_in(backing: A) -> Self {
        Self::with_options_in(ArenaOptions::DEFAULT, backing)
    }

    /// An empty arena over `backing` with the given chunk growth.
    pub const fn with_options_in(options: ArenaOptions, backing: A) -> Self {
        Arena {
            bump: Cell::new(ptr::without_provenance_mut(1)),
            end: Cell::new(ptr::null_mut()),
            current: Cell::new(ptr::null_mut()),
            next_chunk: Cell::new(options.first_chunk),
            options,
            counters: Counters::new(),
            backing,
        }
    }

    /// An arena over `backing` whose first chunk (taken now) holds at least `bytes` bytes.
    ///
    /// # Errors
    ///
    /// [`ArenaError::OutOfMemory`] or [`ArenaError::TooLarge`] if that chunk cannot be had.
    pub fn try_with_capacity_in(bytes: usize, backing: A) -> Result<Self, ArenaError> {
        let arena = Self::new_in(backing);
        if bytes > 0 {
            let layout = Layout::from_size_align(bytes, 1).map_err(|_| ArenaError::TooLarge {
                size: bytes,
                align: 1,
            })?;
            arena.push_chunk_for(layout)?;
        }
        Ok(arena)
    }

    /// The backing allocator.
    pub fn backing(&self) -> &A {
        &self.backing
    }

    /// Moves `value` into the arena. Its `Drop` will never run (see the module docs).
    ///
    /// # Panics
    ///
    /// Through `handle_alloc_error` if the backing allocator is out of memory; see
    /// [`Arena::try_alloc`].
    #[inline]
    #[allow(clippy::mut_from_ref)] // each call hands out a fresh, disjoint allocation
    pub fn alloc<T>(&self, value: T) -> &mut T {
        let layout = Layout::new::<T>();
        let ptr = self.alloc_layout(layout).cast::<T>();
        // SAFETY: `ptr` is fresh memory of `T`'s size and alignment, disjoint from every other
        // allocation, valid for as long as `self` is borrowed (chunks leave only via `&mut self`).
        unsafe {
            ptr.as_ptr().write(value);
            &mut *ptr.as_ptr()
        }
    }

    /// Like [`Arena::alloc`], but returns an error instead of panicking when out of memory
    /// (`value` is dropped then).
    ///
    /// # Errors
    ///
    /// [`ArenaError::OutOfMemory`] if no chunk can be had.
    #[inline]
    #[allow(clippy::mut_from_ref)] // each call hands out a fresh, disjoint allocation
    pub fn try_alloc<T>(&self, value: T) -> Result<&mut T, ArenaError> {
        let ptr = self.try_alloc_layout(Layout::new::<T>())?.cast::<T>();
        // SAFETY: as in `alloc`.
        unsafe {
            ptr.as_ptr().write(value);
            Ok(&mut *ptr.as_ptr())
        }
    }

    /// Copies `s` into the arena.
    ///
    /// # Panics
    ///
    /// When out of memory, like [`Arena::alloc`].
    #[inline]
    pub fn alloc_str(&self, s: &str) -> &str {
        let bytes = self.alloc_slice_copy(s.as_bytes());
        // SAFETY: `bytes` is a byte-for-byte copy of a `str`, so it is UTF-8.
        unsafe { core::str::from_utf8_unchecked(bytes) }
    }

    /// Copies `s` into the arena, or says why it could not.
    ///
    /// # Errors
    ///
    /// [`ArenaError::OutOfMemory`] if no chunk can be had.
    #[inline]
    pub fn try_alloc_str(&self, s: &str) -> Result<&str, ArenaError> {
        let bytes = self.try_alloc_slice_copy(s.as_bytes())?;
        // SAFETY: `bytes` is a byte-for-byte copy of a `str`, so it is UTF-8.
        Ok(unsafe { core::str::from_utf8_unchecked(bytes) })
    }

    /// Copies `src` into the arena.
    ///
    /// # Panics
    ///
    /// When out of memory, like [`Arena::alloc`].
    #[inline]
    pub fn alloc_slice_copy<T: Copy>(&self, src: &[T]) -> &[T] {
        let layout = Layout::for_value(src);
        let dst = self.alloc_layout(layout).cast::<T>();
        // SAFETY: `dst` is fresh memory for `src.len()` values of `T`, disjoint from `src`
        // (which is borrowed, so not in memory we just handed out).
        unsafe { copy_slice(src, dst) }
    }

    /// Copies `src` into the arena, or says why it could not.
    ///
    /// # Errors
    ///
    /// [`ArenaError::OutOfMemory`] if no chunk can be had.
    #[inline]
    pub fn try_alloc_slice_copy<T: Copy>(&self, src: &[T]) -> Result<&[T], ArenaError> {
        let dst = self.try_alloc_layout(Layout::for_value(src))?.cast::<T>();
        // SAFETY: as in `alloc_slice_copy`.
        Ok(unsafe { copy_slice(src, dst) })
    }

    /// Raw allocation of `layout`: uninitialised bytes, valid until `reset`/`rollback`/drop.
    ///
    /// # Panics
    ///
    /// When out of memory, like [`Arena::alloc`].
    #[inline]
    pub fn alloc_layout(&self, layout: Layout) -> NonNull<u8> {
        match self.try_alloc_layout(layout) {
            Ok(ptr) => ptr,
            Err(_) => out_of_memory(layout),
        }
    }

    /// Raw allocation of `layout`, or why it failed. The fast path: align the bump pointer, check
    /// it against the chunk end, move it.
    ///
    /// # Errors
    ///
    /// [`ArenaError::OutOfMemory`] / [`ArenaError::TooLarge`] when no chunk can hold it.
    #[inline]
    pub fn try_alloc_layout(&self, layout: Layout) -> Result<NonNull<u8>, ArenaError> {
        let bump = self.bump.get();
        let mask = layout.align() - 1;
        if let Some(start) = bump.addr().checked_add(mask).map(|a| a & !mask) {
            if let Some(new_bump) = start.checked_add(layout.size()) {
                if new_bump <= self.end.get().addr() {
                    self.bump.set(bump.with_addr(new_bump));
                    self.counters.count_alloc(layout.size());
                    // SAFETY: `start` lies in `[bump, end]` inside the current chunk, whose
                    // address is not 0; `bump`'s provenance is the chunk's.
                    return Ok(unsafe { NonNull::new_unchecked(bump.with_addr(start)) });
                }
            }
        }
        self.alloc_in_new_chunk(layout)
    }

    /// Slow path: the current chunk is full (or there is none): take a new one and bump in it.
    #[cold]
    #[inline(never)]
    fn alloc_in_new_chunk(&self, layout: Layout) -> Result<NonNull<u8>, ArenaError> {
        self.push_chunk_for(layout)?;
        let bump = self.bump.get();
        let start = align_up(bump.addr(), layout.align());
        let new_bump = start + layout.size();
        debug_assert!(new_bump <= self.end.get().addr());
        self.bump.set(bump.with_addr(new_bump));
        self.counters.count_alloc(layout.size());
        // SAFETY: `push_chunk_for` sized the chunk so that `start..new_bump` fits in it; the
        // chunk's address is not 0.
        Ok(unsafe { NonNull::new_unchecked(bump.with_addr(start)) })
    }

    /// Is `[ptr, ptr+size)` the most recent allocation (it ends at the bump pointer)?
    #[inline]
    fn is_last(&self, ptr: NonNull<u8>, size: usize) -> bool {
        ptr.as_ptr().addr().wrapping_add(size) == self.bump.get().addr()
    }
}

impl<A: Allocator> Drop for Arena<A> {
    fn drop(&mut self) {
        self.free_chunks_newer_than(ptr::null_mut());
    }
}

impl<A: Allocator> fmt::Debug for Arena<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Arena")
            .field("options", &self.options)
            .field("stats", &self.stats())
            .finish()
    }
}

/// Copies `src` to `dst` and returns the copy.
///
/// # Safety
///
/// `dst` must be valid for writes of `src.len()` values of `T`, aligned, disjoint from `src`, and
/// stay valid and unaliased for `'a`.
#[inline]
unsafe fn copy_slice<'a, T: Copy>(src: &[T], dst: NonNull<T>) -> &'a [T] {
    // SAFETY: the caller's contract.
    unsafe {
        ptr::copy_nonoverlapping(src.as_ptr(), dst.as_ptr(), src.len());
        core::slice::from_raw_parts(dst.as_ptr(), src.len())
    }
}

/// Rounds `addr` up to a multiple of `align` (a power of two); the caller ensures no overflow.
#[inline]
fn align_up(addr: usize, align: usize) -> usize {
    (addr + align - 1) & !(align - 1)
}

#[cold]
#[inline(never)]
fn out_of_memory(layout: Layout) -> ! {
    alloc::alloc::handle_alloc_error(layout)
}
