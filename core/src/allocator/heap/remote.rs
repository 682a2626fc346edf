//! Remote-free batches: a heap's frees of blocks whose page another heap owns (classes with a
//! hot stack) wait on this heap's hot stack of the class while it has room and the heap owns a
//! segment (see `hot`: this heap reuses them); the others up to `BATCH_MAX_SIZE` bytes are
//! linked per page here and handed to the page's `thread_free` with one compare-and-swap per
//! batch instead of one per block, and larger ones reach `thread_free` at once (one
//! compare-and-swap each is little next to their size, and their memory goes home sooner).
//!
//! ```text
//!   remote[slot(page)]:  page, head -> b -> b -> tail     links encoded with the page's key
//! ```
//!
//! A batch is published when its slot is wanted by another page, when the heap holds
//! `REMOTE_MAX` blocks in all (so at most `REMOTE_MAX` blocks of at most `BATCH_MAX_SIZE` bytes,
//! in at most `REMOTE_SLOTS` pages, wait), at the heap's next allocation slow path, and on
//! `collect`, `abandon` and drop. A waiting block stays counted in its page's
//! `used` (as on `thread_free`), so its page cannot be retired, and with it its segment cannot
//! leave the page's owner, until the batch is published. Invariants (checked by `check`): every
//! batch is a non-empty list of distinct block starts of its page, the last link is the page's
//! encoding of null, `tail` is the last block, and the batches hold `pending` blocks in all.
use core::ptr;

use super::{is_hot, Heap, HotStack, HOT_CLASSES};
use crate::allocator::error::FreeError;
use crate::allocator::geometry::{HOT_MAX_SIZE, SEGMENT_SHIFT};
use crate::allocator::page::{Block, Page};
use crate::allocator::stats;

/// Batches per heap (a power of two): one per page being freed into at a time.
pub(crate) const REMOTE_SLOTS: usize = if HOT_MAX_SIZE == 0 { 1 } else { 64 };

/// Blocks a heap holds back in all before it publishes every batch.
pub(crate) const REMOTE_MAX: u32 = 256;

/// Largest block a batch takes (2 KiB): with `REMOTE_MAX`, at most 512 KiB wait in a heap's
/// batches, whatever the sizes freed.
pub(crate) const BATCH_MAX_SIZE: usize = 2048;

/// One page's waiting remote frees.
#[derive(Clone, Copy)]
pub(crate) struct RemoteBatch {
    /// The page (null: the slot is free).
    pub(crate) page: *mut Page,
    pub(crate) head: *mut Block,
    pub(crate) tail: *mut Block,
    /// Blocks in the batch.
    pub(crate) len: u32,
}

impl RemoteBatch {
    const EMPTY: RemoteBatch = RemoteBatch {
        page: ptr::null_mut(),
        head: ptr::null_mut(),
        tail: ptr::null_mut(),
        len: 0,
    };
}

/// A heap's batches of remote frees.
pub(crate) struct RemoteFrees {
    pub(crate) batches: [RemoteBatch; REMOTE_SLOTS],
    /// Blocks in all batches.
    pub(crate) pending: u32,
}

impl RemoteFrees {
    pub(super) const EMPTY: RemoteFrees = RemoteFrees {
        batches: [RemoteBatch::EMPTY; REMOTE_SLOTS],
        pending: 0,
    };
}

/// The batch slot of `page`: page headers of one segment are consecutive (at least 64 bytes
/// apart), so neighbouring pages take different slots; the segment number spreads equal page
/// numbers of different segments.
#[inline(always)]
fn slot_of(page: *mut Page) -> usize {
    let a = page as usize;
    (a >> 5 ^ a >> SEGMENT_SHIFT) & (REMOTE_SLOTS - 1)
}

/// Publishes `batch` (one compare-and-swap), empties the slot and takes its blocks off
/// `pending`.
///
/// # Safety
/// `batch.page` is non-null and the batch holds its invariant (module doc).
#[inline(never)]
unsafe fn publish(batch: &mut RemoteBatch, pending: &mut u32) {
    // SAFETY: the blocks are counted in the page's `used` and held by this heap (caller).
    unsafe { (*batch.page).push_remote_list(batch.head, batch.tail, batch.len) };
    *pending -= batch.len;
    *batch = RemoteBatch::EMPTY;
}

impl Heap {
    /// A free of `block` (an allocated block start of `page`) by this heap, which does not own
    /// `page`: onto this heap's hot stack of the class, into the page's batch, or straight onto
    /// `thread_free`. A second free of a block still waiting on this heap's stack or in its
    /// batch is reported.
    ///
    /// The common case is inline: the class has a stack with room, this heap allocates, and the
    /// block does not look free. The page's `hot_at` is its class's stack offset in any heap's
    /// area (the layout is one table for all heaps), so it serves here as in the owner's free.
    ///
    /// # Safety
    /// `page` is a page in use of a live segment; `block` is one of its block starts, allocated
    /// (so the page stays in use until the block reaches its owner).
    #[inline(always)]
    pub(crate) unsafe fn free_remote(
        &mut self,
        page: *mut Page,
        block: *mut u8,
    ) -> Result<(), FreeError> {
        if HOT_CLASSES != 0 {
            // SAFETY: as stated (caller); `hot_at` of a page in use is its class's
            // `HOT_STACK_OF` entry (or `no_stack`'s, whose cap is 0).
            unsafe {
                let stack = ptr::from_mut(self)
                    .byte_add((*page).hot_at as usize)
                    .cast::<HotStack>();
                let len = (*stack).len;
                if len < (*stack).cap && self.segments.len > 0 && !(*page).looks_free(block) {
                    stats::remote_free((*page).class as usize, (*page).block_size);
                    HotStack::push_marked(stack, len, page, block);
                    return Ok(());
                }
            }
        }
        // SAFETY: forwarded (caller).
        unsafe { self.free_remote_slow(page, block) }
    }

    /// [`free_remote`](Self::free_remote) past its common case.
    ///
    /// # Safety
    /// As for [`free_remote`](Self::free_remote).
    #[inline(never)]
    unsafe fn free_remote_slow(
        &mut self,
        page: *mut Page,
        block: *mut u8,
    ) -> Result<(), FreeError> {
        // SAFETY: as stated (caller); `slot_of` masks the slot index to the array's length.
        unsafe {
            let class = (*page).class as usize;
            stats::remote_free(class, (*page).block_size);
            if !is_hot(class) {
                (*page).push_remote(block);
                return Ok(());
            }
            // Room on this heap's hot stack of the class, and the heap allocates itself (it
            // owns a segment): the block waits there and this heap's next allocation of the
            // class reuses it, still counted in its page's `used` (see `hot`). The block's line
            // is warm here, and its page's `thread_free` is not touched. A heap that has not
            // allocated yet sends the block home: a thread handed one object, which it frees
            // before it allocates, would otherwise keep reusing that object, on a line it
            // shares with the objects handed to other threads (passive false sharing, the
            // `cache-scratch` workload: 3.4x slower with that reuse).
            let stack = self.hot_stack_ptr(class);
            let len = (*stack).len;
            if len < (*stack).cap && self.segments.len > 0 {
                if (*page).looks_free(block) && self.hot_holds(class, block) {
                    return Err(FreeError::DoubleFree);
                }
                HotStack::push_marked(stack, len, page, block);
                return Ok(());
            }
            if (*page).block_size > BATCH_MAX_SIZE {
                (*page).push_remote(block);
                return Ok(());
            }
            let slot = slot_of(page);
            let remote = &mut self.remote;
            let batch = remote.batches.get_unchecked_mut(slot);
            if batch.page != page {
                return self.start_batch(slot, page, block);
            }
            if (*page).looks_free(block) && batch_holds(batch, block) {
                return Err(FreeError::DoubleFree);
            }
            batch.head = (*page).link_before(block, batch.head);
            batch.len += 1;
            remote.pending += 1;
            if remote.pending >= REMOTE_MAX {
                return self.publish_all();
            }
        }
        Ok(())
    }

    /// [`free_remote`](Self::free_remote) into a slot that holds another page's batch, or none:
    /// publishes that batch and starts one for `page` with `block`.
    ///
    /// # Safety
    /// As for [`free_remote`](Self::free_remote); `slot` is `slot_of(page)`.
    #[inline(never)]
    unsafe fn start_batch(
        &mut self,
        slot: usize,
        page: *mut Page,
        block: *mut u8,
    ) -> Result<(), FreeError> {
        let remote = &mut self.remote;
        let batch = &mut remote.batches[slot];
        // SAFETY: a non-empty batch (module invariant); `block` is held by the caller.
        unsafe {
            if !batch.page.is_null() {
                publish(batch, &mut remote.pending);
            }
            batch.page = page;
            batch.head = (*page).link_before(block, ptr::null_mut());
        }
        batch.tail = batch.head;
        batch.len = 1;
        remote.pending += 1;
        if remote.pending >= REMOTE_MAX {
            return self.publish_all();
        }
        Ok(())
    }

    /// [`flush_remote`](Self::flush_remote) for the free path (a tail call there).
    #[inline(never)]
    fn publish_all(&mut self) -> Result<(), FreeError> {
        self.flush_remote();
        Ok(())
    }

    /// Publishes every batch of remote frees this heap holds (their owners see them at their
    /// next collection).
    pub fn flush_remote(&mut self) {
        if self.remote.pending == 0 {
            return;
        }
        let remote = &mut self.remote;
        for batch in &mut remote.batches {
            if !batch.page.is_null() {
                // SAFETY: a non-empty batch (module invariant).
                unsafe { publish(batch, &mut remote.pending) };
            }
        }
        debug_assert_eq!(remote.pending, 0);
    }

    /// The batches of remote frees (for `check`).
    pub(crate) fn remote_batches(&self) -> (&[RemoteBatch], u32) {
        (&self.remote.batches, self.remote.pending)
    }
}

/// Whether `block` waits in `batch` (walks at most `REMOTE_MAX` links).
///
/// # Safety
/// `batch` holds its invariant (module doc).
unsafe fn batch_holds(batch: &RemoteBatch, block: *mut u8) -> bool {
    let mut b = batch.head;
    let mut steps = 0;
    while !b.is_null() && steps <= REMOTE_MAX {
        if b.cast::<u8>() == block {
            return true;
        }
        // SAFETY: batch entries are blocks of the page holding encoded links.
        b = unsafe { (*batch.page).decode(b.cast::<usize>().read()) };
        steps += 1;
    }
    false
}
