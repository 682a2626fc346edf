//! The segment map: which segment-aligned addresses are kiln segments, for any address in the
//! pointer-sized address space (a higher-half kernel's heap at `0xffff_8000_0000_0000` included),
//! with a static footprint that does not depend on where the segments are.
//!
//! ```text
//!   addr:  | window (addr >> WINDOW_SHIFT) | segment in window (LEAF_BITS) | offset (SEGMENT_SHIFT) |
//!
//!   ROOTS (ROOT_COUNT entries, open addressing, probed from window % ROOT_COUNT)
//!   +-------------+-------------+-----+
//!   | key, leaf * | key, leaf * | ... |      key = window + 1 (0: empty slot, ends a probe)
//!   +-------------+------|------+-----+
//!                        v
//!        leaf: 2^LEAF_BITS bits, one per segment of the window
//!        (the first STATIC_LEAVES leaves are static; further ones are carved out of a segment
//!        reserved from the memory source, never given back)
//! ```
//!
//! Invariants:
//! - a root is never removed or re-keyed once published (key written last, with Release), so a
//!   probe that meets an empty slot proves the window has no segment;
//! - a bit is set only while its segment is reserved and its header initialised;
//! - classification reads only kiln's own statics and leaves, never the address asked about.
//!
//! Lookups are O(1): one probe in the common case (a process or kernel uses a handful of
//! windows), at most `ROOT_COUNT` when the table is crowded.

use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

use super::geometry::{SEGMENT_SHIFT, SEGMENT_SIZE};
use crate::platform::MemorySource;

/// Segments per window, log2: a leaf of `2^LEAF_BITS` bits covers `2^(LEAF_BITS +
/// SEGMENT_SHIFT)` bytes of address space (64-bit: 8 KiB leaves, 128 GiB windows; small
/// geometry: 128-byte leaves, 64 MiB windows), capped at the whole address space.
pub const LEAF_BITS: usize = {
    let want = super::geometry::MAP_LEAF_BITS;
    let all = usize::BITS as usize - SEGMENT_SHIFT;
    if want < all {
        want
    } else {
        all
    }
};
/// log2 of the bytes a window (one leaf) covers.
pub const WINDOW_SHIFT: usize = LEAF_BITS + SEGMENT_SHIFT;
/// Root slots: at most this many windows hold segments at once.
pub const ROOT_COUNT: usize = 64;
/// Leaves that live in static memory; leaf number `STATIC_LEAVES` and on come from the source.
pub const STATIC_LEAVES: usize = 8;

const WORD_BITS: usize = usize::BITS as usize;
const LEAF_WORDS: usize = (1usize << LEAF_BITS).div_ceil(WORD_BITS);
const LEAF_BYTES: usize = LEAF_WORDS * core::mem::size_of::<usize>();

type Leaf = [AtomicUsize; LEAF_WORDS];

struct Root {
    /// `window + 1`, or 0 while the slot is free.
    key: AtomicUsize,
    leaf: AtomicPtr<Leaf>,
}

static ROOTS: [Root; ROOT_COUNT] = [const {
    Root {
        key: AtomicUsize::new(0),
        leaf: AtomicPtr::new(ptr::null_mut()),
    }
}; ROOT_COUNT];

static STATIC_LEAF_STORE: [Leaf; STATIC_LEAVES] =
    [const { [const { AtomicUsize::new(0) }; LEAF_WORDS] }; STATIC_LEAVES];

/// Leaf allocation state, only touched under its lock (root installation is rare: once per
/// window).
struct Grow {
    static_used: usize,
    /// Unused part of the last segment reserved for leaves.
    slab: *mut u8,
    slab_left: usize,
}

// SAFETY: the slab pointer is only used under the lock.
unsafe impl Send for Grow {}

static GROW: spin::Mutex<Grow> = spin::Mutex::new(Grow {
    static_used: 0,
    slab: ptr::null_mut(),
    slab_left: 0,
});

#[inline(always)]
fn split(addr: usize) -> (usize, usize, usize) {
    let window = if WINDOW_SHIFT >= WORD_BITS {
        0
    } else {
        addr >> WINDOW_SHIFT
    };
    let idx = (addr >> SEGMENT_SHIFT) & ((1 << LEAF_BITS) - 1);
    (window, idx / WORD_BITS, 1 << (idx % WORD_BITS))
}

/// The leaf of `window`, if some segment of it was ever registered: the window's home slot
/// inline, the rest of the probe sequence out of line.
#[inline(always)]
fn leaf_of(window: usize) -> Option<&'static Leaf> {
    let root = &ROOTS[window % ROOT_COUNT];
    if root.key.load(Ordering::Acquire) == window + 1 {
        // SAFETY: a published leaf is never freed and was fully initialised (zeroed) before its
        // key was stored with Release (Acquire above).
        return Some(unsafe { &*root.leaf.load(Ordering::Relaxed) });
    }
    probe(window)
}

/// The probe sequence after the home slot.
#[cold]
#[inline(never)]
fn probe(window: usize) -> Option<&'static Leaf> {
    let key = window + 1;
    let mut slot = window % ROOT_COUNT;
    for _ in 0..ROOT_COUNT {
        let root = &ROOTS[slot];
        let k = root.key.load(Ordering::Acquire);
        if k == key {
            // SAFETY: as in `leaf_of`.
            return Some(unsafe { &*root.leaf.load(Ordering::Relaxed) });
        }
        if k == 0 {
            return None;
        }
        slot = (slot + 1) % ROOT_COUNT;
    }
    None
}

/// Whether the segment-aligned address `addr` is registered.
#[inline(always)]
pub(crate) fn contains(addr: usize) -> bool {
    let (window, word, bit) = split(addr);
    let root = &ROOTS[window % ROOT_COUNT];
    let leaf: *const Leaf = if root.key.load(Ordering::Acquire) == window + 1 {
        root.leaf.load(Ordering::Relaxed)
    } else {
        match probe(window) {
            Some(leaf) => leaf,
            None => return false,
        }
    };
    // SAFETY: a published leaf is never freed and was fully initialised (zeroed) before its key
    // was stored with Release (Acquire above); `word < LEAF_WORDS` by construction.
    unsafe { (*leaf).get_unchecked(word).load(Ordering::Acquire) & bit != 0 }
}

/// [`contains`] when the window's home root slot answers, `None` when the probe would have to
/// look further (the caller then takes its own cold path, so its fast path makes no call that
/// returns into it).
#[inline(always)]
pub(crate) fn contains_at_home(addr: usize) -> Option<bool> {
    let (window, word, bit) = split(addr);
    let root = &ROOTS[window % ROOT_COUNT];
    if root.key.load(Ordering::Acquire) != window + 1 {
        return None;
    }
    let leaf: *const Leaf = root.leaf.load(Ordering::Relaxed);
    // SAFETY: as in `contains`.
    Some(unsafe { (*leaf).get_unchecked(word).load(Ordering::Acquire) & bit != 0 })
}

/// Registers the segment at `addr`. Fails (false) only when a new window needs a leaf and
/// neither a root slot nor leaf memory is available; `source` provides leaf memory once the
/// static leaves are used up.
pub(crate) fn insert(addr: usize, source: &dyn MemorySource) -> bool {
    let (window, word, bit) = split(addr);
    let leaf = match leaf_of(window) {
        Some(leaf) => leaf,
        None => match install(window, source) {
            Some(leaf) => leaf,
            None => return false,
        },
    };
    leaf[word].fetch_or(bit, Ordering::Release);
    true
}

/// Segments unregistered so far: a heap's table of other heaps' segments it has verified
/// (`Heap::knows_foreign`) holds only while this has not changed since.
static REMOVALS: AtomicUsize = AtomicUsize::new(0);

/// How many segments have been unregistered so far (see [`REMOVALS`]).
#[inline(always)]
pub(crate) fn removals() -> usize {
    REMOVALS.load(Ordering::Acquire)
}

/// Unregisters the segment at `addr` (its window's leaf stays). The count of removals goes up
/// first, so whoever sees the segment gone from the map also sees the count changed.
pub(crate) fn remove(addr: usize) {
    REMOVALS.fetch_add(1, Ordering::Release);
    let (window, word, bit) = split(addr);
    if let Some(leaf) = leaf_of(window) {
        leaf[word].fetch_and(!bit, Ordering::Release);
    }
}

/// Publishes a zeroed leaf for `window`.
#[cold]
#[inline(never)]
fn install(window: usize, source: &dyn MemorySource) -> Option<&'static Leaf> {
    let mut grow = GROW.lock();
    // Another thread may have installed it while we waited.
    if let Some(leaf) = leaf_of(window) {
        return Some(leaf);
    }
    let mut slot = window % ROOT_COUNT;
    let mut free = None;
    for _ in 0..ROOT_COUNT {
        if ROOTS[slot].key.load(Ordering::Relaxed) == 0 {
            free = Some(slot);
            break;
        }
        slot = (slot + 1) % ROOT_COUNT;
    }
    let slot = free?;
    let leaf: *mut Leaf = if grow.static_used < STATIC_LEAVES {
        grow.static_used += 1;
        // Statics start zeroed; this leaf was never handed out.
        ptr::from_ref(&STATIC_LEAF_STORE[grow.static_used - 1]).cast_mut()
    } else {
        if grow.slab_left < LEAF_BYTES {
            let seg = source.reserve(1);
            if seg.is_null() {
                return None;
            }
            grow.slab = seg;
            grow.slab_left = SEGMENT_SIZE;
        }
        let leaf = grow.slab.cast::<Leaf>();
        // SAFETY: `LEAF_BYTES` of the reserved, never released slab segment are ours alone;
        // zeroing them initialises every atomic word of the leaf. The slab is segment-aligned
        // and leaves are a multiple of the word size, so the leaf is aligned.
        unsafe { leaf.cast::<u8>().write_bytes(0, LEAF_BYTES) };
        grow.slab = grow.slab.wrapping_add(LEAF_BYTES);
        grow.slab_left -= LEAF_BYTES;
        leaf
    };
    ROOTS[slot].leaf.store(leaf, Ordering::Relaxed);
    ROOTS[slot].key.store(window + 1, Ordering::Release);
    // SAFETY: just published; never freed.
    Some(unsafe { &*leaf })
}

/// Windows with a leaf, and how many of those leaves came from a memory source (for tests and
/// reports).
#[cfg(test)]
pub fn windows() -> (usize, usize) {
    let n = ROOTS
        .iter()
        .filter(|r| r.key.load(Ordering::Relaxed) != 0)
        .count();
    (n, n.saturating_sub(STATIC_LEAVES))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source for leaf slabs: host memory, counting reservations.
    struct SlabSource(AtomicUsize);

    // SAFETY: hands out distinct, segment-aligned host allocations that are never freed.
    unsafe impl MemorySource for SlabSource {
        fn reserve(&self, count: usize) -> *mut u8 {
            self.0.fetch_add(count, Ordering::SeqCst);
            let layout =
                std::alloc::Layout::from_size_align(count * SEGMENT_SIZE, SEGMENT_SIZE).unwrap();
            // SAFETY: non-zero size.
            unsafe { std::alloc::alloc(layout) }
        }
        unsafe fn release(&self, _: *mut u8, _: usize) {
            unreachable!("leaf slabs are never released")
        }
    }

    /// Addresses all over the 64-bit space (the map never reads them): the lowest segment, above
    /// 1 TiB, the top of the lower half, the higher half and the last segment. Each is found
    /// after insertion, its neighbours and the same offset in other windows are not, and removal
    /// is exact. More windows than static leaves makes the map take leaves from the source.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn any_address_in_the_64_bit_space() {
        let source = SlabSource(AtomicUsize::new(0));
        let top = usize::MAX & !(SEGMENT_SIZE - 1);
        let addrs: std::vec::Vec<usize> = [
            0x5a5a_0000_0000_0000usize, // a window no other test uses
            0x5a5a_0000_0000_0000 + (1 << WINDOW_SHIFT) - SEGMENT_SIZE,
            0x0000_7fff_ffe0_0000 & !(SEGMENT_SIZE - 1),
            0xffff_8000_0000_0000,
            0xffff_ffff_8000_0000,
            top,
        ]
        .into_iter()
        .chain((1..=STATIC_LEAVES + 2).map(|i| 0x1234_0000_0000_0000 + (i << WINDOW_SHIFT)))
        .collect();
        for &a in &addrs {
            assert!(!contains(a), "{a:#x} before insert");
        }
        for &a in &addrs {
            assert!(insert(a, &source), "{a:#x}");
            assert!(contains(a), "{a:#x}");
        }
        for &a in &addrs {
            assert!(contains(a));
            for other in [
                a.wrapping_add(SEGMENT_SIZE),
                a.wrapping_sub(SEGMENT_SIZE),
                a ^ (1 << (WINDOW_SHIFT + 3)),
                a ^ (1 << 63),
            ] {
                if !addrs.contains(&other) {
                    assert!(!contains(other), "{other:#x} (next to {a:#x})");
                }
            }
        }
        // More windows than static leaves (other tests share the map, so at least the excess).
        let mut distinct: std::vec::Vec<usize> = addrs.iter().map(|a| a >> WINDOW_SHIFT).collect();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(distinct.len() > STATIC_LEAVES);
        assert!(windows().0 >= distinct.len());
        assert!(windows().1 >= 1, "no leaf came from a memory source");
        for &a in &addrs {
            remove(a);
            assert!(!contains(a), "{a:#x} after remove");
        }
    }
}
