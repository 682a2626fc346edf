//! Realloc-heavy workloads on `allocator_api2` / `hashbrown` collections whose allocator is the
//! one under test (a [`DynAlloc`] wrapping the `&dyn GlobalAlloc`).
//!
//! - realloc-churn: [`BUFFERS`] growing byte buffers (a `Vec<u8>` grown like a `String` built by
//!   appends, with `reserve_exact`, so every append is a `realloc`); each op picks a buffer and
//!   appends 1..=64 bytes; a buffer past [`BUFFER_MAX`] bytes is dropped and starts again.
//!   Ops = appends (each one realloc, plus an alloc/free when a buffer starts/ends).
//! - hashmap-churn: rounds of "build a map of 64..=32768 entries, each value a small byte vector,
//!   remove every other key, drop the map": table growth (alloc of a doubled table + free of
//!   the old one) plus one small alloc per insert and one free per remove.
//!   Ops = inserts + removes.
use super::{Budget, Outcome, Probe, XorShift32, CHECK_EVERY};
use crate::allocators::Instance;
use allocator_api2::alloc::{AllocError, Allocator};
use allocator_api2::vec::Vec as AVec;
use std::alloc::{GlobalAlloc, Layout};
use std::ptr::{self, NonNull};
use std::time::Instant;

/// An `allocator_api2` allocator that forwards to a `GlobalAlloc` (grow/shrink use its
/// `realloc`, so allocators with in-place realloc get credit for it).
#[derive(Clone, Copy)]
pub struct DynAlloc<'a>(pub &'a (dyn GlobalAlloc + Send + Sync));

fn block(p: *mut u8, len: usize) -> Result<NonNull<[u8]>, AllocError> {
    NonNull::new(p)
        .map(|p| NonNull::slice_from_raw_parts(p, len))
        .ok_or(AllocError)
}

// SAFETY: blocks come from the wrapped GlobalAlloc, which keeps them valid until freed; zero-size
// requests get a dangling aligned pointer and are never passed on.
unsafe impl Allocator for DynAlloc<'_> {
    fn allocate(&self, layout: Layout) -> Result<NonNull<[u8]>, AllocError> {
        if layout.size() == 0 {
            return block(ptr::without_provenance_mut(layout.align()), 0);
        }
        // SAFETY: non-zero size.
        block(unsafe { self.0.alloc(layout) }, layout.size())
    }
    unsafe fn deallocate(&self, ptr: NonNull<u8>, layout: Layout) {
        if layout.size() != 0 {
            // SAFETY: forwarded from the caller: a live block of this layout from `self.0`.
            unsafe { self.0.dealloc(ptr.as_ptr(), layout) }
        }
    }
    unsafe fn grow(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded from the caller.
        unsafe { self.resize(ptr, old, new) }
    }
    unsafe fn shrink(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        // SAFETY: forwarded from the caller.
        unsafe { self.resize(ptr, old, new) }
    }
}

impl DynAlloc<'_> {
    /// realloc when the alignment stays and neither size is zero; alloc+copy+free otherwise.
    ///
    /// # Safety
    /// `ptr` is a live block of layout `old` from this allocator.
    unsafe fn resize(
        &self,
        ptr: NonNull<u8>,
        old: Layout,
        new: Layout,
    ) -> Result<NonNull<[u8]>, AllocError> {
        if old.align() == new.align() && old.size() != 0 && new.size() != 0 {
            // SAFETY: forwarded from the caller; realloc keeps the alignment.
            return block(
                unsafe { self.0.realloc(ptr.as_ptr(), old, new.size()) },
                new.size(),
            );
        }
        let fresh = self.allocate(new)?;
        // SAFETY: distinct live blocks; copy what fits in both.
        unsafe {
            ptr::copy_nonoverlapping(
                ptr.as_ptr(),
                fresh.cast::<u8>().as_ptr(),
                old.size().min(new.size()),
            );
            self.deallocate(ptr, old);
        }
        Ok(fresh)
    }
}

/// Growing buffers in realloc-churn.
pub const BUFFERS: usize = 64;
/// A buffer restarts once it is longer than this.
pub const BUFFER_MAX: usize = 16 << 10;

pub fn realloc_churn(a: &Instance, budget: Budget, probe: Probe) -> Result<Outcome, String> {
    let alloc = DynAlloc(&**a);
    let mut bufs: std::vec::Vec<AVec<u8, DynAlloc>> =
        (0..BUFFERS).map(|_| AVec::new_in(alloc)).collect();
    let chunk = [0x5au8; 64];
    let mut rng = XorShift32::new();
    probe();
    let start = Instant::now();
    let mut done = 0;
    while done < budget.ops {
        if done.is_multiple_of(CHECK_EVERY) && budget.expired() {
            break;
        }
        let r = rng.next_u32();
        let buf = &mut bufs[r as usize % BUFFERS];
        let add = 1 + (r >> 8) as usize % chunk.len();
        if buf.len() + add > BUFFER_MAX {
            *buf = AVec::new_in(alloc);
        }
        buf.try_reserve_exact(add)
            .map_err(|_| super::out_of_memory(buf.len() + add, done))?;
        buf.extend_from_slice(&chunk[..add]);
        done += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    drop(bufs);
    Ok(Outcome { ops: done, secs })
}

pub fn hashmap_churn(a: &Instance, budget: Budget, probe: Probe) -> Result<Outcome, String> {
    let alloc = DynAlloc(&**a);
    let mut rng = XorShift32::new();
    probe();
    let start = Instant::now();
    let mut done = 0u64;
    while done < budget.ops && !budget.expired() {
        done += map_round(alloc, &mut rng, &budget, budget.ops - done)?;
    }
    Ok(Outcome {
        ops: done,
        secs: start.elapsed().as_secs_f64(),
    })
}

/// One map's life; returns the ops done (at most `limit`).
fn map_round(
    alloc: DynAlloc,
    rng: &mut XorShift32,
    budget: &Budget,
    limit: u64,
) -> Result<u64, String> {
    let entries = 64u64 << (rng.next_u32() % 10);
    let mut map = hashbrown::HashMap::new_in(alloc);
    let keys_from = *rng;
    let mut done = 0u64;
    for _ in 0..entries.min(limit) {
        if done.is_multiple_of(CHECK_EVERY) && budget.expired() {
            return Ok(done);
        }
        let k = rng.next_u32();
        let mut v = AVec::new_in(alloc);
        let len = 8 + (k & 63) as usize;
        v.try_reserve_exact(len)
            .map_err(|_| super::out_of_memory(len, done))?;
        v.resize(len, k as u8);
        map.try_reserve(1)
            .map_err(|_| super::out_of_memory(map.len() * 16, done))?;
        map.insert(k, v);
        done += 1;
    }
    let mut keys = keys_from;
    for _ in 0..(done / 2).min(limit - done) {
        keys.next_u32();
        map.remove(&keys.next_u32());
        done += 1;
    }
    Ok(done)
}
