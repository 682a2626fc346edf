//! Hot stacks: per class of blocks up to `HOT_MAX_SIZE` bytes, the blocks this heap freed last,
//! reused first (LIFO, cache-warm); a stack full or draining sends frees to their page.
//!
//! A stacked block stays counted in its page's `used`: for the page it is still allocated, so
//! pushing and popping never touch page metadata. That also holds for a block of a page another
//! heap owns (a *foreign* block, freed here by another thread than its owner's): it waits on
//! this heap's stack and this heap's next allocation of the class hands it out again, as
//! jemalloc's thread caches do, instead of sending it back to its owner, so blocks that travel
//! between two threads (producer and consumer) cost no atomic operation and no trip of their
//! page's metadata between cores. A flush (collect, thread exit, a page of the class retired)
//! sends own blocks to their page's `local_free` and foreign ones to their page's
//! `thread_free`, where the owner collects them.
use core::ptr;

use super::Heap;
use crate::allocator::geometry::{HOT_DEPTH, HOT_MAX_SIZE, HOT_STACK_BYTES};
use crate::allocator::segment::segment_of;
use crate::allocator::size_class::{
    class_of, class_size, small_class_at_const, CLASS_COUNT, SMALL_INDEX_LEN, SMALL_LOOKUP_MAX,
};

/// Classes with a hot stack: those of blocks up to `HOT_MAX_SIZE` bytes.
pub(crate) const HOT_CLASSES: usize = if HOT_MAX_SIZE == 0 {
    0
} else {
    class_of(HOT_MAX_SIZE) + 1
};

/// `HOT_CAP[class]`: how many blocks the hot stack of `class` holds, `HOT_DEPTH` or
/// `HOT_STACK_BYTES` of blocks, whichever is fewer (at least one): a class of 32 KiB blocks
/// stacks 8, so a heap holds at most `HOT_STACK_BYTES` per class on its stacks.
#[allow(clippy::absurd_extreme_comparisons)] // no hot classes in the small geometry
pub(crate) static HOT_CAP: [u16; HOT_CLASSES] = {
    let mut t = [0u16; HOT_CLASSES];
    let mut class = 0;
    while class < HOT_CLASSES {
        let by_bytes = HOT_STACK_BYTES / class_size(class);
        let cap = if by_bytes < HOT_DEPTH {
            by_bytes
        } else {
            HOT_DEPTH
        };
        t[class] = if cap == 0 { 1 } else { cap as u16 };
        class += 1;
    }
    t
};

/// Every hot stack empty, each with its class's [`HOT_CAP`] (a new heap's stacks).
#[allow(clippy::absurd_extreme_comparisons)] // no hot classes in the small geometry
pub(crate) const HOT_STACKS_EMPTY: [HotStack; HOT_CLASSES] = {
    let mut t = [HotStack::EMPTY; HOT_CLASSES];
    let mut class = 0;
    while class < HOT_CLASSES {
        t[class].cap = HOT_CAP[class] as usize;
        class += 1;
    }
    t
};

/// `HOT_STACK_BY_INDEX[small_index(size, align)]`: the byte offset in a [`Heap`] of the hot
/// stack of a request of `size <= SMALL_LOOKUP_MAX` bytes aligned to `align <= 16`, the stack of
/// `small_class_at` of that index. One load from size to stack, no class number and no
/// multiply (kiln's `GlobalAlloc`s and libkiln.so's inline `malloc`). Empty (never read) without
/// hot stacks for every class of that range.
pub(crate) static HOT_STACK_BY_INDEX: [u16; HOT_STACK_BY_INDEX_LEN] = {
    let mut t = [0u16; HOT_STACK_BY_INDEX_LEN];
    let mut i = 0;
    while i < t.len() {
        let class = small_class_at_const(i);
        let at = core::mem::offset_of!(Heap, hot) + class * core::mem::size_of::<HotStack>();
        assert!(is_hot(class) && at <= u16::MAX as usize);
        t[i] = at as u16;
        i += 1;
    }
    t
};

/// Entries of [`HOT_STACK_BY_INDEX`]: every small index when every class up to
/// `SMALL_LOOKUP_MAX` has a hot stack, none otherwise. (`HOT_MAX_SIZE` is 0 in the small
/// geometry.)
#[allow(clippy::absurd_extreme_comparisons)]
pub(crate) const HOT_STACK_BY_INDEX_LEN: usize = if HOT_MAX_SIZE >= SMALL_LOOKUP_MAX {
    SMALL_INDEX_LEN
} else {
    0
};

/// `HOT_STACK_OF[class]`: the byte offset in a [`Heap`] of the hot stack of `class`, or for a
/// class without one, of the heap's [`NoStack`], whose `len` is never below its `cap`. The
/// owner's free reads `len` and `cap` there and pushes when `len < cap`, with no separate test
/// for the class and no multiply.
pub(crate) static HOT_STACK_OF: [u16; CLASS_COUNT] = {
    let mut t = [0u16; CLASS_COUNT];
    let mut class = 0;
    while class < CLASS_COUNT {
        let at = if is_hot(class) {
            core::mem::offset_of!(Heap, hot) + class * core::mem::size_of::<HotStack>()
        } else {
            core::mem::offset_of!(Heap, no_stack)
        };
        assert!(at <= u16::MAX as usize);
        t[class] = at as u16;
        class += 1;
    }
    t
};

/// The `len` and `cap` of a [`HotStack`] that never takes a block (both 0): where
/// [`HOT_STACK_OF`] sends the classes without a hot stack.
#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) struct NoStack {
    len: usize,
    cap: usize,
}

impl NoStack {
    pub(super) const EMPTY: NoStack = NoStack { len: 0, cap: 0 };
}

/// Whether `class` has a hot stack. (The small geometry has none, so the comparison is with 0
/// there: always false, which is the point.)
#[inline(always)]
#[allow(clippy::absurd_extreme_comparisons)]
pub(crate) const fn is_hot(class: usize) -> bool {
    class < HOT_CLASSES
}

/// One class's hot stack: the addresses of blocks this heap freed last, newest at `len - 1`.
/// `repr(C)`: `len` and `cap` first, as [`NoStack`] has them.
#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) struct HotStack {
    pub(crate) len: usize,
    /// How many blocks frees may stack: the class's [`HOT_CAP`], or 0 while the class drains (a page of
    /// the class was retired, so frees outpace allocations: a burst is being given back, and
    /// stacked blocks would keep pages, and with them segments, from going back). The next
    /// allocation of the class from a page sets it back.
    pub(crate) cap: usize,
    pub(crate) blocks: [*mut u8; HOT_DEPTH],
}

impl HotStack {
    pub(super) const EMPTY: HotStack = HotStack {
        len: 0,
        cap: HOT_DEPTH,
        blocks: [ptr::null_mut(); HOT_DEPTH],
    };
}

impl Heap {
    /// Sends every block on every hot stack to its page (before collecting or abandoning).
    pub(super) fn hot_flush(&mut self) {
        for class in (0..CLASS_COUNT).filter(|&c| is_hot(c)) {
            self.hot_flush_class(class);
        }
    }

    /// Sends every block on the hot stack of `class` to its page: an own block to the page's
    /// `local_free`, a foreign one to its `thread_free`. A page that empties on the way may be
    /// retired, which flushes this same stack again (nested, shorter): fine, each level pops
    /// before it frees.
    pub(super) fn hot_flush_class(&mut self, class: usize) {
        while self.hot[class].len > 0 {
            let stack = &mut self.hot[class];
            stack.len -= 1;
            let b = stack.blocks[stack.len];
            // SAFETY: stacked blocks are blocks of pages in use, counted in their `used`
            // (module invariant); a foreign page is only reached through its atomic list.
            unsafe {
                let seg = segment_of(b);
                let p = (*seg).page_of(b);
                if self.owns(seg) {
                    self.free_to_page(p, b);
                } else {
                    (*p).push_remote(b);
                }
            }
        }
    }

    /// Lets frees stack blocks of `class` again (its [`HOT_CAP`]) after the class drained.
    #[inline(always)]
    pub(super) fn hot_refill_cap(&mut self, class: usize) {
        self.hot[class].cap = HOT_CAP[class] as usize;
    }

    /// Whether `block` is on the hot stack of `class` (confirms a suspected double free).
    pub(crate) fn hot_holds(&self, class: usize, block: *mut u8) -> bool {
        is_hot(class) && {
            let stack = &self.hot[class];
            stack.blocks[..stack.len].contains(&block)
        }
    }

    /// The hot stack of `class` (for `check`).
    pub(crate) fn hot_stack(&self, class: usize) -> &[*mut u8] {
        let stack = &self.hot[class];
        &stack.blocks[..stack.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocator::size_class::small_class_of;

    /// The per-class table names each hot class's stack and the stackless classes' `NoStack`,
    /// whose `len` and `cap` lie where a `HotStack`'s do.
    #[test]
    fn hot_stack_of_every_class() {
        assert_eq!(core::mem::offset_of!(HotStack, len), 0);
        assert_eq!(core::mem::offset_of!(HotStack, cap), 8);
        assert_eq!(core::mem::offset_of!(NoStack, len), 0);
        assert_eq!(core::mem::offset_of!(NoStack, cap), 8);
        assert_eq!(NoStack::EMPTY.len, NoStack::EMPTY.cap);
        for (class, &at) in HOT_STACK_OF.iter().enumerate() {
            let want = if is_hot(class) {
                core::mem::offset_of!(Heap, hot) + class * core::mem::size_of::<HotStack>()
            } else {
                core::mem::offset_of!(Heap, no_stack)
            };
            assert_eq!(at as usize, want, "class {class}");
        }
    }

    /// A stack holds at most `HOT_DEPTH` blocks and at most `HOT_STACK_BYTES` of them (one at
    /// least), and a new heap's stacks start at their cap.
    #[test]
    #[allow(clippy::absurd_extreme_comparisons)] // no hot classes in the small geometry
    fn hot_caps_bound_blocks_and_bytes() {
        for class in (0..CLASS_COUNT).filter(|&c| is_hot(c)) {
            let cap = HOT_CAP[class] as usize;
            assert!(cap >= 1, "class {class}");
            assert!(cap <= HOT_DEPTH, "class {class}");
            assert!(
                cap == 1 || cap * class_size(class) <= HOT_STACK_BYTES,
                "class {class}"
            );
            assert!(
                cap == HOT_DEPTH || (cap + 1) * class_size(class) > HOT_STACK_BYTES,
                "class {class}: a deeper stack would fit"
            );
            assert_eq!(HOT_STACKS_EMPTY[class].cap, cap);
            assert_eq!(HOT_STACKS_EMPTY[class].len, 0);
        }
    }

    /// The index table names, for every small size and alignment, the stack of a class whose
    /// blocks hold the size at the alignment.
    #[test]
    fn hot_stacks_by_index_match_the_size_classes() {
        use crate::allocator::size_class::{class_size, small_index};
        if HOT_STACK_BY_INDEX_LEN == 0 {
            return; // no table in this geometry
        }
        for align in [1, 2, 4, 8, 16] {
            for size in 0..=SMALL_LOOKUP_MAX {
                let class = small_class_of(size, align);
                if align == 16 {
                    // The form `Heap::alloc_hot_or` (libkiln.so's `malloc`) computes.
                    assert_eq!(((size + 15) >> 4) << 1, small_index(size, align), "{size}");
                }
                let block = class_size(class);
                assert!(
                    block >= size.max(1) && block.is_multiple_of(align.max(8)),
                    "{size} {align}"
                );
                assert_eq!(
                    HOT_STACK_BY_INDEX[small_index(size, align)] as usize,
                    core::mem::offset_of!(Heap, hot) + class * core::mem::size_of::<HotStack>(),
                    "size {size} align {align}"
                );
            }
        }
    }
}
