//! `&Arena` as an [`Allocator`], so `allocator_api2` collections and `hashbrown` can live in an
//! arena. Freeing gives bytes back only for the most recent allocation; growing the most recent
//! allocation happens in place when the chunk has room.
use core::alloc::Layout;
use core::ptr::{self, NonNull};

use allocator_api2::alloc::AllocError;

use super::{Allocator, Arena};

impl<A: Allocator> Arena<A> {
    /// Grows or shrinks the most recent allocation in place, if `ptr` is it, is aligned for
    /// `new`, and the chunk has room. Returns whether it did.
    fn resize_last_in_place(&self, ptr: NonNull<u8>, old: Layout, new: Layout) -> bool {
        if !self.is_last(ptr, old.size()) || ptr.as_ptr().addr() & (new.align() - 1) != 0 {
            return false;
        }
        match ptr.as_ptr().addr().checked_add(new.size()) {
            Some(new_bump) if new_bump <= self.end.get().addr() => {
                if new.size() < old.size() {
                    self.counters.sample_peak(self.bytes_in_use());
                }
                self.bump.set(self.bump.get().with_addr(new_bump));
                true
            }
            _ => false,
        }
    }
}

// SAFETY: blocks stay valid until `reset`/`rollback`/drop, which need `&mut Arena` and so cannot
// happen while a `&Arena` (this allocator) exists; copies of `&Arena` are the same arena; every
// block is fresh, aligned and sized as asked (`try_alloc_layout`), and `deallocate`/`shrink` only
// ever give back the bytes at the very end of the current chunk.
unsafe impl<A: Allocator> Allocator for &Arena<A> {
    #[inline]
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        let ptr = self.try_alloc_layout(layout).map_err(|_| AllocError)?;
        Ok(NonNull::slice_from_raw_parts(ptr, layout.size()))
    }

    #[inline]
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        if self.is_last(ptr, layout.size()) {
            self.counters.sample_peak(self.bytes_in_use());
            self.bump
                .set(self.bump.get().with_addr(ptr.as_ptr().addr()));
        }
    }

    unsafe fn grow(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        if self.resize_last_in_place(ptr, old, new) {
            self.counters.count_grow_in_place();
            return Ok(NonNull::slice_from_raw_parts(ptr, new.size()));
        }
        let fresh = self.allocate(new)?;
        // SAFETY: `ptr` holds `old.size() <= new.size()` readable bytes (the caller's contract);
        // `fresh` is a new block of `new.size()` bytes, so the two do not overlap.
        unsafe { ptr::copy_nonoverlapping(ptr.as_ptr(), fresh.cast::<u8>().as_ptr(), old.size()) };
        Ok(fresh)
    }

    unsafe fn grow_zeroed(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: the caller's contract is `grow`'s.
        let block = unsafe { self.grow(ptr, old, new)? };
        // SAFETY: the block holds `new.size() >= old.size()` bytes; the tail is ours to write.
        unsafe {
            block
                .cast::<u8>()
                .as_ptr()
                .add(old.size())
                .write_bytes(0, new.size() - old.size());
        }
        Ok(block)
    }

    unsafe fn shrink(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        let aligned = ptr.as_ptr().addr() & (new.align() - 1) == 0;
        if self.resize_last_in_place(ptr, old, new) || aligned {
            return Ok(NonNull::slice_from_raw_parts(ptr, new.size()));
        }
        let fresh = self.allocate(new)?;
        // SAFETY: `ptr` holds at least `new.size()` bytes; `fresh` is a new, disjoint block.
        unsafe { ptr::copy_nonoverlapping(ptr.as_ptr(), fresh.cast::<u8>().as_ptr(), new.size()) };
        Ok(fresh)
    }
}
