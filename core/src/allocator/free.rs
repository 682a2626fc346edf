//! Freeing: classify the pointer, then push the block on the heap's hot stack or its page's
//! `local_free` (owner), or into the freeing heap's batch for the page, which reaches the page's
//! `thread_free` atomically (any other thread).
//!
//! ```text
//!   p ──mask──> segment ── verified by this heap before (Heap::knows, one compare)? else
//!                  │        another heap's, verified before (Heap::knows_foreign, while no
//!                  │        segment was unregistered since)? else
//!                  │        map bit + cookie? no: FreeError::Foreign (nothing read outside kiln)
//!                  └ page_of(p) ─> block start of a carved block? (exact-division test; fails on
//!                       │            pages not in use and on huge segments)
//!                       ├ yes, owner == heap: double-free filter, push on the heap's hot
//!                       │   stack (or the page's local_free)                           (inline)
//!                       ├ yes, another owner: Heap::free_remote, onto this heap's hot stack
//!                       │   (reused by its next allocation; inline in the unknown-segment
//!                       │   path), else into its batch for the page (one CAS on thread_free
//!                       │   per batch)                                             (out of line)
//!                       └ otherwise, #[cold] free_not_local: huge block back to the pool,
//!                         interior aligned pointer, or an error
//! ```
//!
//! A free that misses the verified-segment table (mostly a remote free: another core wrote the
//! block last) first asks for the block's line with intent to write
//! ([`prefetch_for_write`]), since the filter reads the block and the push then writes it.
//!
//! Double frees: a freed block's first word is an encoded list link. When a block about to be
//! freed already holds a word that decodes to a plausible link, the owner walks the page's lists
//! to confirm (rare: user data seldom decodes to an in-page address), and reports
//! `FreeError::DoubleFree` instead of corrupting the list. A double free by a thread other than
//! the owner is confirmed only while the block still waits on that thread's hot stack or in its
//! batch (the owner's lists cannot be walked from outside); a block waiting on another heap's
//! hot stack or in its batch is invisible to the owner's walk.

use super::error::FreeError;
use super::heap::Heap;
use super::huge;
use super::page::{prefetch_for_write, Page, HAS_ALIGNED};
use super::segment::{segment_of, Segment, SegmentKind};

/// A classified pointer.
pub(crate) enum Owner {
    /// A page-backed block: its page and the block's start (differs from `p` for interior
    /// aligned allocations).
    Page {
        seg: *mut Segment,
        page: *mut Page,
        block: *mut u8,
    },
    /// A huge block.
    Huge { seg: *mut Segment },
}

/// Classifies `p` in O(1): which segment, page and block, or why it is not a block of ours.
///
/// Fast path: the segment map and cookie, the span's head page, and the exact-division
/// block-start test, which also fails on a page not in use (capacity 0) and on every page of a
/// huge segment. Everything else (huge blocks, interior aligned pointers, errors) is decided in
/// [`classify_slow`].
#[inline(always)]
pub(crate) fn classify(p: *const u8) -> Result<Owner, FreeError> {
    let seg = segment_of(p);
    if !Segment::is_ours(seg) {
        return match huge::aligned_header_of(p) {
            Some(seg) => Ok(Owner::Huge { seg }),
            None => Err(FreeError::Foreign),
        };
    }
    // SAFETY: the segment map and cookie prove `seg` is a live header of ours.
    unsafe {
        let page = (*seg).page_of(p);
        if (*page).is_block_start(p) {
            return Ok(Owner::Page {
                seg,
                page,
                block: p.cast_mut(),
            });
        }
        classify_slow(seg, page, p)
    }
}

/// The rest of [`classify`]: huge blocks, interior aligned pointers, and the errors.
///
/// # Safety
/// `seg` is a live segment header of ours and `page` is `page_of(p)` in it.
#[cold]
#[inline(never)]
unsafe fn classify_slow(
    seg: *mut Segment,
    page: *mut Page,
    p: *const u8,
) -> Result<Owner, FreeError> {
    // SAFETY: live header (caller).
    unsafe {
        if (*seg).kind == SegmentKind::Huge {
            return if huge::is_block(seg, p) {
                Ok(Owner::Huge { seg })
            } else {
                Err(FreeError::NotABlock)
            };
        }
        if !(*page).in_use() || (*page).flags & HAS_ALIGNED == 0 {
            return Err(FreeError::NotABlock);
        }
        let idx = (*page).block_index(p).ok_or(FreeError::NotABlock)?;
        Ok(Owner::Page {
            seg,
            page,
            block: (*page).block_start(idx),
        })
    }
}

/// Frees `p` through `heap` (the caller's local heap). Null is accepted and does nothing.
///
/// The inline part is the owner's free of a block start in a segment the heap has verified
/// before ([`Heap::knows`]: one compare replaces the segment map, cookie and owner tests), then
/// the head page, block-start test, double-free filter and push. A pointer into any other
/// segment goes through [`free_unknown`] (the full tests; it records the segment when the heap
/// owns it); every other case leaves through a tail call to a cold function.
///
/// # Safety
/// `p` is null, or not used by the caller after this call. A foreign pointer is detected and
/// reported (never written); a block of kiln's that is still in use by someone else is not.
#[inline(always)]
pub unsafe fn free(heap: &mut Heap, p: *mut u8) -> Result<(), FreeError> {
    let seg = segment_of(p);
    if !heap.knows(seg) {
        // SAFETY: forwarded (caller).
        return unsafe { free_unknown(heap, p) };
    }
    // SAFETY: `knows` proves `seg` is a live segment header this heap owns; `page_of` is the
    // head page of the span holding `p`.
    unsafe {
        let page = (*seg).page_of(p);
        if !(*page).is_block_start(p) {
            return free_not_local(heap, seg, page, p);
        }
        if (*page).looks_free(p) {
            return free_local_suspect(heap, page, p);
        }
        push_local::<true>(heap, page, p);
    }
    Ok(())
}

/// [`free`] of a pointer outside the segments the heap has verified: segment map and cookie,
/// head page, block-start test, owner test; the owner's free of a block start records the
/// segment ([`Heap::remember`]).
///
/// # Safety
/// As for [`free`].
#[inline(never)]
unsafe fn free_unknown(heap: &mut Heap, p: *mut u8) -> Result<(), FreeError> {
    prefetch_for_write(p);
    let seg = segment_of(p);
    let known_foreign = heap.knows_foreign(seg);
    if !known_foreign && !Segment::is_ours(seg) {
        // SAFETY: forwarded (caller).
        return unsafe { not_ours(p) };
    }
    // SAFETY: the segment map and cookie prove `seg` is a live header of ours; `page_of` is
    // the head page of the span holding `p`.
    unsafe {
        let page = (*seg).page_of(p);
        if !(*page).is_block_start(p) {
            return free_not_local(heap, seg, page, p);
        }
        if !heap.owns(seg) {
            if !known_foreign {
                // SAFETY: the map and cookie proved `seg` is kiln's.
                heap.remember_foreign(seg);
            }
            return heap.free_remote(page, p);
        }
        heap.remember(seg);
        if (*page).looks_free(p) {
            return free_local_suspect(heap, page, p);
        }
        push_local::<true>(heap, page, p);
    }
    Ok(())
}

/// Like [`free`], but an invalid free is handed to `report` (which may abort) instead of being
/// returned. Every path of the inline part then ends in a tail call, so a caller such as C
/// `free` needs no stack frame for it.
///
/// # Safety
/// As for [`free`].
#[inline(always)]
pub unsafe fn free_or_report(heap: &mut Heap, p: *mut u8, report: fn(*mut u8, FreeError)) {
    // SAFETY: forwarded (caller).
    unsafe { free_or_report_counting::<true>(heap, p, report) }
}

/// [`free_or_report`] whose inline hot-stack push skips the per-call statistics and the load of
/// their run-time switch: for a caller that has just found [`stats::counting`](super::stats::counting)
/// off (libkiln.so's `free`). The out-of-line paths count as usual.
///
/// # Safety
/// As for [`free`].
#[inline(always)]
pub unsafe fn free_or_report_uncounted(
    heap: &mut Heap,
    p: *mut u8,
    report: fn(*mut u8, FreeError),
) {
    // SAFETY: forwarded (caller).
    unsafe { free_or_report_counting::<false>(heap, p, report) }
}

/// [`free_or_report`]; `COUNT`: whether the inline push counts.
///
/// # Safety
/// As for [`free`].
#[inline(always)]
unsafe fn free_or_report_counting<const COUNT: bool>(
    heap: &mut Heap,
    p: *mut u8,
    report: fn(*mut u8, FreeError),
) {
    let seg = segment_of(p);
    if !heap.knows(seg) {
        // SAFETY: forwarded (caller).
        return unsafe { unknown_or_report(heap, p, report) };
    }
    // SAFETY: as in `free`.
    unsafe {
        let page = (*seg).page_of(p);
        if !(*page).is_block_start(p) {
            return not_local_or_report(heap, seg, page, p, report);
        }
        if (*page).looks_free(p) {
            return suspect_or_report(heap, page, p, report);
        }
        push_local::<COUNT>(heap, page, p);
    }
}

/// [`free_unknown`], errors to `report`: the segment map's home slot first (a pointer whose
/// window needs the probe takes the whole cold path).
///
/// # Safety
/// As for [`free`].
#[inline(never)]
// `extern "C"` only so that it cannot unwind: the inline free reaches it by a tail call then
// (no landing pad, no stack frame). It is never called from outside Rust.
#[allow(improper_ctypes_definitions)]
unsafe extern "C" fn unknown_or_report(
    heap: &mut Heap,
    p: *mut u8,
    report: fn(*mut u8, FreeError),
) {
    prefetch_for_write(p);
    let seg = segment_of(p);
    let known_foreign = heap.knows_foreign(seg);
    if !known_foreign {
        let ours = match super::segment_map::contains_at_home(seg as usize) {
            Some(mapped) => mapped && Segment::cookie_matches(seg),
            // SAFETY: forwarded (caller).
            None => return unsafe { free_probed_or_report(heap, p, report) },
        };
        if !ours {
            // SAFETY: forwarded (caller).
            return unsafe { not_ours_or_report(p, report) };
        }
    }
    // SAFETY: as in `free_unknown`.
    unsafe {
        let page = (*seg).page_of(p);
        if !(*page).is_block_start(p) {
            return not_local_or_report(heap, seg, page, p, report);
        }
        if !heap.owns(seg) {
            if !known_foreign {
                // SAFETY: the map and cookie proved `seg` is kiln's.
                heap.remember_foreign(seg);
            }
            if let Err(e) = heap.free_remote(page, p) {
                report(p, e);
            }
            return;
        }
        heap.remember(seg);
        if (*page).looks_free(p) {
            return suspect_or_report(heap, page, p, report);
        }
        push_local::<true>(heap, page, p);
    }
}

/// [`free`] (with the segment map's full probe), errors to `report`.
///
/// # Safety
/// As for [`free`].
#[cold]
#[inline(never)]
unsafe fn free_probed_or_report(heap: &mut Heap, p: *mut u8, report: fn(*mut u8, FreeError)) {
    // SAFETY: forwarded (caller).
    if let Err(e) = unsafe { free(heap, p) } {
        report(p, e);
    }
}

/// [`not_ours`], errors to `report`.
///
/// # Safety
/// As for [`free`].
#[cold]
#[inline(never)]
unsafe fn not_ours_or_report(p: *mut u8, report: fn(*mut u8, FreeError)) {
    // SAFETY: forwarded (caller).
    if let Err(e) = unsafe { not_ours(p) } {
        report(p, e);
    }
}

/// [`free_not_local`], errors to `report`.
///
/// # Safety
/// As for [`free_not_local`].
#[cold]
#[inline(never)]
// `extern "C"` only so that it cannot unwind: the inline free reaches it by a tail call then
// (no landing pad, no stack frame). It is never called from outside Rust.
#[allow(improper_ctypes_definitions)]
unsafe extern "C" fn not_local_or_report(
    heap: &mut Heap,
    seg: *mut Segment,
    page: *mut Page,
    p: *mut u8,
    report: fn(*mut u8, FreeError),
) {
    // SAFETY: forwarded (caller).
    if let Err(e) = unsafe { free_not_local(heap, seg, page, p) } {
        report(p, e);
    }
}

/// [`free_local_suspect`], errors to `report`.
///
/// # Safety
/// As for [`free_local_suspect`].
#[cold]
#[inline(never)]
// `extern "C"` only so that it cannot unwind: the inline free reaches it by a tail call then
// (no landing pad, no stack frame). It is never called from outside Rust.
#[allow(improper_ctypes_definitions)]
unsafe extern "C" fn suspect_or_report(
    heap: &mut Heap,
    page: *mut Page,
    p: *mut u8,
    report: fn(*mut u8, FreeError),
) {
    // SAFETY: forwarded (caller).
    if let Err(e) = unsafe { free_local_suspect(heap, page, p) } {
        report(p, e);
    }
}

/// The owner's free: onto the heap's hot stack or the page's `local_free`
/// ([`Heap::free_local`]).
///
/// # Safety
/// `heap` owns `page`; `block` is one of its blocks, allocated and not free.
#[inline(always)]
unsafe fn push_local<const COUNT: bool>(heap: &mut Heap, page: *mut Page, block: *mut u8) {
    // SAFETY: forwarded (caller).
    unsafe { heap.free_local::<COUNT>(page, block) }
}

/// A pointer whose segment is not a header of ours: fine if null, a huge block aligned to a
/// segment or more (its header is one segment back), else foreign.
///
/// # Safety
/// As for [`free`].
#[cold]
#[inline(never)]
unsafe fn not_ours(p: *mut u8) -> Result<(), FreeError> {
    if p.is_null() {
        return Ok(());
    }
    match huge::aligned_header_of(p) {
        // SAFETY: classified as a live over-aligned huge block; the caller gives it up.
        Some(seg) => unsafe { huge::free(seg, p) },
        None => Err(FreeError::Foreign),
    }
}

/// Everything but the owner's free of a block start: remote frees, huge blocks, interior
/// aligned pointers, and the errors.
///
/// # Safety
/// As for [`free`]; `seg` is a live segment of ours and `page` is `page_of(p)` in it.
#[cold]
#[inline(never)]
unsafe fn free_not_local(
    heap: &mut Heap,
    seg: *mut Segment,
    page: *mut Page,
    p: *mut u8,
) -> Result<(), FreeError> {
    // SAFETY: `page` is a page header of a live segment of ours (caller).
    let owner = if unsafe { (*page).is_block_start(p) } {
        Owner::Page {
            seg,
            page,
            block: p,
        }
    } else {
        // SAFETY: forwarded (caller).
        unsafe { classify_slow(seg, page, p) }?
    };
    match owner {
        Owner::Page { seg, page, block } => {
            if heap.owns(seg) {
                // SAFETY: the heap owns the page; `block` is an allocated block (checked).
                unsafe {
                    if (*page).looks_free(block) {
                        return free_local_suspect(heap, page, block);
                    }
                    push_local::<true>(heap, page, block);
                }
                Ok(())
            } else {
                // SAFETY: `block` is a live block start of `page` (caller).
                unsafe { heap.free_remote(page, block) }
            }
        }
        // SAFETY: classified as a live huge block.
        Owner::Huge { seg } => unsafe { huge::free(seg, p) },
    }
}

/// The owner's free of a block whose first word looks like a free-list link: walk the page's
/// lists to tell a double free from user data that happens to look like a link.
///
/// # Safety
/// `heap` owns `page`; `block` is one of its blocks.
#[cold]
#[inline(never)]
unsafe fn free_local_suspect(
    heap: &mut Heap,
    page: *mut Page,
    block: *mut u8,
) -> Result<(), FreeError> {
    // SAFETY: owner access (caller).
    unsafe {
        if (*page).is_on_a_free_list(block, true) || heap.hot_holds((*page).class as usize, block) {
            return Err(FreeError::DoubleFree);
        }
        push_local::<true>(heap, page, block);
    }
    Ok(())
}

/// The block size of `p` when it is a block start in a segment `heap` owns and has verified
/// ([`Heap::knows`]); `None` for anything else (which [`usable_size`] then classifies).
#[inline(always)]
pub(crate) fn owned_block_size(heap: &Heap, p: *const u8) -> Option<usize> {
    let seg = segment_of(p);
    if !heap.knows(seg) {
        return None;
    }
    // SAFETY: `knows` proves `seg` is a live segment header this heap owns; `page_of` is the
    // head page of the span holding `p`.
    unsafe {
        let page = (*seg).page_of(p);
        (*page).is_block_start(p).then(|| (*page).block_size)
    }
}

/// Bytes usable at `p` (which must be a block kiln allocated), or `None` if it is not one.
pub fn usable_size(p: *const u8) -> Option<usize> {
    match classify(p).ok()? {
        // SAFETY: classified live block.
        Owner::Page { page, block, .. } => unsafe {
            Some((*page).block_size - (p as usize - block as usize))
        },
        // SAFETY: classified live huge block.
        Owner::Huge { seg } => unsafe { Some(huge::usable_size(seg)) },
    }
}
