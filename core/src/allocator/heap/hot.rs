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
//! `thread_free`, where the owner collects them. Frees that find a stack full and empty their
//! pages shrink it to nothing in eight steps ([`Heap::hot_shrink`]), so a burst freed in any
//! order goes back.
use core::ptr;

use super::Heap;
use crate::allocator::geometry::{HOT_DEPTH, HOT_MAX_SIZE, HOT_STACK_BYTES};
use crate::allocator::page::Page;
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

/// `HOT_WORD_AT[class]`: where the stack of `class` starts in a heap's [`HotArea`], in words:
/// each stack is its [`HotStack`] header (two words) and [`HOT_CAP`] block slots, one after
/// the other, so a class of 32 KiB blocks takes 10 words and not `2 + HOT_DEPTH`.
///
/// ```text
///   HotArea: | len cap b0 .. b127 | len cap b0 .. b127 | ... | len cap b0 | len cap b0 |
///              class 0               class 1                   (256 KiB blocks: cap 1)
/// ```
#[allow(clippy::absurd_extreme_comparisons)] // no hot classes in the small geometry
const HOT_WORD_AT: [usize; HOT_CLASSES + 1] = {
    let mut t = [0usize; HOT_CLASSES + 1];
    let mut class = 0;
    while class < HOT_CLASSES {
        t[class + 1] = t[class] + HOT_HEADER_WORDS + HOT_CAP[class] as usize;
        class += 1;
    }
    t
};

/// Words of a [`HotStack`] header (`len`, `cap`) in the [`HotArea`].
const HOT_HEADER_WORDS: usize = core::mem::size_of::<HotStack>() / core::mem::size_of::<usize>();

/// Words in a heap's [`HotArea`]: every hot class's header and slots.
pub(crate) const HOT_AREA_WORDS: usize = HOT_WORD_AT[HOT_CLASSES];

/// A heap's hot stacks, laid out by [`HOT_WORD_AT`]: headers and block slots in one array of
/// words, reached through raw places only ([`Heap::hot_stack_ptr`]), since the stacks differ in
/// length.
pub(crate) type HotArea = [*mut u8; HOT_AREA_WORDS];

/// A new heap's [`HotArea`]: every stack empty, with its class's [`HOT_CAP`]. A `const`, not a
/// `static`: `Heap::new` is a `const fn` (heaps live in statics and `const`-initialised
/// thread-locals), and it is only ever copied into a heap being built.
#[allow(clippy::absurd_extreme_comparisons)] // no hot classes in the small geometry
#[allow(clippy::large_const_arrays)]
pub(crate) const HOT_AREA_EMPTY: HotArea = {
    let mut t = [ptr::null_mut(); HOT_AREA_WORDS];
    let mut class = 0;
    while class < HOT_CLASSES {
        // The `cap` word (the `len` word stays 0).
        t[HOT_WORD_AT[class] + 1] = ptr::without_provenance_mut(HOT_CAP[class] as usize);
        class += 1;
    }
    t
};

/// The byte offset in a [`Heap`] of the stack header of hot `class`.
const fn hot_at(class: usize) -> usize {
    core::mem::offset_of!(Heap, hot) + HOT_WORD_AT[class] * core::mem::size_of::<usize>()
}

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
        assert!(is_hot(class));
        let at = hot_at(class);
        assert!(at <= u16::MAX as usize);
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
/// class without one, of the heap's `no_stack`, whose `len` is never below its `cap` (both 0).
/// The owner's free reads `len` and `cap` there and pushes when `len < cap`, with no separate
/// test for the class and no multiply.
pub(crate) static HOT_STACK_OF: [u16; CLASS_COUNT] = {
    let mut t = [0u16; CLASS_COUNT];
    let mut class = 0;
    while class < CLASS_COUNT {
        let at = if is_hot(class) {
            hot_at(class)
        } else {
            core::mem::offset_of!(Heap, no_stack)
        };
        assert!(at <= u16::MAX as usize);
        t[class] = at as u16;
        class += 1;
    }
    t
};

/// Whether `class` has a hot stack. (The small geometry has none, so the comparison is with 0
/// there: always false, which is the point.)
#[inline(always)]
#[allow(clippy::absurd_extreme_comparisons)]
pub(crate) const fn is_hot(class: usize) -> bool {
    class < HOT_CLASSES
}

/// One class's hot stack header, followed in the [`HotArea`] by its [`HOT_CAP`] slots: the
/// addresses of blocks this heap freed last, newest at `len - 1`.
#[derive(Clone, Copy)]
#[repr(C)]
pub(crate) struct HotStack {
    pub(crate) len: usize,
    /// How many blocks frees may stack: the class's [`HOT_CAP`]; less while a burst is being
    /// given back (halved by each free that found the stack full and left its page nearly
    /// empty, [`Heap::hot_shrink`]; `len` may then exceed it until allocations pop); 0 while
    /// the class drains (a page of the class was retired, so frees outpace allocations, and
    /// stacked blocks would keep pages, and with them segments, from going back). The next
    /// allocation of the class from a page sets it back to [`HOT_CAP`]. Always 0 for the
    /// heap's `no_stack`.
    pub(crate) cap: usize,
}

impl HotStack {
    /// The header that never takes a block: `no_stack`, where [`HOT_STACK_OF`] sends the
    /// classes without a hot stack.
    pub(super) const NONE: HotStack = HotStack { len: 0, cap: 0 };

    /// The first block slot of the stack whose header is at `stack`.
    ///
    /// # Safety
    /// `stack` is a stack header in a heap's [`HotArea`] (not `no_stack`, which has no slots).
    #[inline(always)]
    pub(crate) unsafe fn slots(stack: *mut HotStack) -> *mut *mut u8 {
        // SAFETY: the slots follow the header in the same area (caller).
        unsafe { stack.add(1).cast::<*mut u8>() }
    }

    /// Puts `block` on the stack at `stack` in slot `len` with its page's free marker (the
    /// page's encoding of a null link, so the block looks free to the double-free filter).
    ///
    /// # Safety
    /// `stack` is a stack header in a heap's [`HotArea`] with `len == (*stack).len < cap`;
    /// `block` is an allocated block start of `page`, a page in use, held by the caller.
    #[inline(always)]
    pub(crate) unsafe fn push_marked(
        stack: *mut HotStack,
        len: usize,
        page: *mut Page,
        block: *mut u8,
    ) {
        // SAFETY: as stated (caller): slot `len` is inside the stack's slots.
        unsafe {
            block.cast::<usize>().write((*page).key);
            HotStack::slots(stack).add(len).write(block);
            (*stack).len = len + 1;
        }
    }
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
        loop {
            // Taken again after every free, which uses the heap (and may flush this stack).
            let stack = self.hot_stack_ptr(class);
            // SAFETY: this heap's stack of hot `class`; entries below `len` are blocks of pages
            // in use, counted in their `used`; a foreign page is reached through its atomic list.
            unsafe {
                if (*stack).len == 0 {
                    return;
                }
                (*stack).len -= 1;
                let b = *HotStack::slots(stack).add((*stack).len);
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

    /// A free found the stack of `class` full and its block's page nearly empty: frees are
    /// giving a burst back. The stack's capacity halves (its blocks stay until allocations pop
    /// them); at 0 the class drains straight into its pages, as it does once one of its pages
    /// retires, until it allocates from a page again
    /// ([`hot_refill_cap`](Self::hot_refill_cap)). Without it, a burst freed in random order
    /// would leave each class's last frees on its stack, spread over every page of the class,
    /// and no page (and no segment) could empty and go back.
    ///
    /// # Safety
    /// `stack` is this heap's stack header of hot `class`, with `cap > 0`.
    #[cold]
    #[inline(never)]
    pub(super) unsafe fn hot_shrink(&mut self, class: usize, stack: *mut HotStack) {
        // SAFETY: this heap's stack header (caller).
        let cap = unsafe {
            (*stack).cap /= 2;
            (*stack).cap
        };
        if cap == 0 {
            self.hot_flush_class(class);
        }
    }

    /// The header of the hot stack of `class` (a raw place: the stacks differ in length, see
    /// [`HotArea`]).
    ///
    /// # Panics
    /// If `class` has no hot stack.
    #[inline(always)]
    pub(crate) fn hot_stack_ptr(&mut self, class: usize) -> *mut HotStack {
        assert!(is_hot(class));
        // SAFETY: `hot_at(class)` is the offset of a stack header inside `self.hot`.
        unsafe {
            ptr::from_mut(self)
                .byte_add(HOT_STACK_OF[class] as usize)
                .cast::<HotStack>()
        }
    }

    /// Lets frees stack blocks of `class` again (its [`HOT_CAP`]) after the class drained.
    #[inline(always)]
    pub(super) fn hot_refill_cap(&mut self, class: usize) {
        let stack = self.hot_stack_ptr(class);
        // SAFETY: this heap's stack header of hot `class`.
        unsafe { (*stack).cap = HOT_CAP[class] as usize };
    }

    /// Lets the class drain: frees of `class` go to their pages until it allocates from a page
    /// again (see [`HotStack::cap`]).
    #[inline(always)]
    pub(super) fn hot_stop(&mut self, class: usize) {
        let stack = self.hot_stack_ptr(class);
        // SAFETY: this heap's stack header of hot `class`.
        unsafe { (*stack).cap = 0 };
    }

    /// Whether `block` is on the hot stack of `class` (confirms a suspected double free).
    pub(crate) fn hot_holds(&self, class: usize, block: *mut u8) -> bool {
        is_hot(class) && self.hot_stack(class).contains(&block)
    }

    /// The hot stack of `class` (for `check`, and to confirm a double free).
    pub(crate) fn hot_stack(&self, class: usize) -> &[*mut u8] {
        assert!(is_hot(class));
        // SAFETY: `HOT_STACK_OF[class]` is the offset of this class's header in `self.hot`;
        // its `len <= HOT_CAP[class]` slots follow it, initialised (module invariant).
        unsafe {
            let stack = ptr::from_ref(self)
                .byte_add(HOT_STACK_OF[class] as usize)
                .cast::<HotStack>()
                .cast_mut();
            core::slice::from_raw_parts(HotStack::slots(stack), (*stack).len)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocator::size_class::small_class_of;

    /// The per-class table names each hot class's stack header and the stackless classes'
    /// `no_stack`; the stacks tile the area one after another, each two header words and its
    /// cap in slots, so no stack's slots run into the next header.
    #[test]
    fn hot_stack_of_every_class() {
        assert_eq!(core::mem::offset_of!(HotStack, len), 0);
        assert_eq!(core::mem::offset_of!(HotStack, cap), 8);
        assert_eq!(HotStack::NONE.len, HotStack::NONE.cap);
        let base = core::mem::offset_of!(Heap, hot);
        let mut next = base;
        for (class, &at) in HOT_STACK_OF.iter().enumerate() {
            if is_hot(class) {
                assert_eq!(at as usize, next, "class {class}");
                next += (HOT_HEADER_WORDS + HOT_CAP[class] as usize) * 8;
            } else {
                assert_eq!(
                    at as usize,
                    core::mem::offset_of!(Heap, no_stack),
                    "class {class}"
                );
            }
        }
        assert_eq!(next, base + core::mem::size_of::<HotArea>());
    }

    /// A stack holds at most `HOT_DEPTH` blocks and at most `HOT_STACK_BYTES` of them (one at
    /// least), and a new heap's stacks are empty, at their cap, and read so through the heap.
    #[test]
    #[allow(clippy::absurd_extreme_comparisons)] // no hot classes in the small geometry
    fn hot_caps_bound_blocks_and_bytes() {
        let mut heap = crate::allocator::tests::heap(1);
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
            let stack = heap.hot_stack_ptr(class);
            // SAFETY: the heap's own stack header.
            unsafe {
                assert_eq!((*stack).cap, cap, "class {class}");
                assert_eq!((*stack).len, 0, "class {class}");
            }
            assert!(heap.hot_stack(class).is_empty());
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
                    HOT_STACK_BY_INDEX[small_index(size, align)],
                    HOT_STACK_OF[class],
                    "size {size} align {align}"
                );
            }
        }
    }
}
