//! The short-string table: one object per distinct short string text, per VM.
//!
//! Every string of at most [`INTERN_MAX`] bytes that the VM makes (constants, `+`, `str()`,
//! host strings) is looked up here first, so equal short strings are one heap object: a sort
//! that moves 800 000 words made of a few thousand distinct texts keeps touching the same few
//! thousand objects (reference counts and bytes stay in cache), and two short strings are equal
//! exactly when they are the same object.
//!
//! The table holds no reference: its entries are raw pointers to live [`StrObj`]s, and a
//! `StrObj` that was entered removes its own entry when it is dropped. So the table never keeps
//! a string alive, and the memory cap keeps meaning "bytes of live objects" with nothing to
//! sweep. Open addressing with linear probing and backward-shift deletion (no tombstones); the
//! load factor stays at or below 1/2. Each entered string is charged [`ENTRY_BYTES`] for its
//! share of the table (two pointer-sized slots), on top of its own bytes.
use core::mem::size_of;
use core::ptr;

use alloc::vec::Vec;

use super::StrObj;

/// Strings up to this many bytes are entered in the table.
pub const INTERN_MAX: usize = 40;

/// Bytes charged to the memory cap per entered string for the table itself.
pub const ENTRY_BYTES: usize = 2 * size_of::<*const StrObj>();

/// The hash of a string's bytes (an FxHash-style multiply-rotate over 8-byte words).
#[inline]
pub fn hash(text: &[u8]) -> u32 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h = text.len() as u64;
    let (words, rest) = text.as_chunks::<8>();
    for w in words {
        h = (h.rotate_left(5) ^ u64::from_le_bytes(*w)).wrapping_mul(K);
    }
    if !rest.is_empty() {
        let mut b = [0u8; 8];
        b[..rest.len()].copy_from_slice(rest);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(b)).wrapping_mul(K);
    }
    (h >> 32) as u32
}

/// The table (see the module doc).
#[derive(Default)]
pub struct Table {
    /// Power-of-two many slots (or none); null is empty.
    slots: Vec<*const StrObj>,
    len: usize,
}

impl Table {
    fn mask(&self) -> usize {
        self.slots.len().wrapping_sub(1)
    }

    /// The live object with this text, if one is entered.
    #[inline]
    pub fn find(&self, text: &str, h: u32) -> Option<*const StrObj> {
        if self.slots.is_empty() {
            return None;
        }
        let mask = self.mask();
        let mut i = h as usize & mask;
        loop {
            // SAFETY: `i <= mask < slots.len()`.
            let p = unsafe { *self.slots.get_unchecked(i) };
            if p.is_null() {
                return None;
            }
            // SAFETY: every non-null slot points at a live `StrObj` (an object removes its
            // entry when it is dropped).
            let s = unsafe { &*p };
            if s.hash() == h && s.as_str() == text {
                return Some(p);
            }
            i = (i + 1) & mask;
        }
    }

    /// Makes room for one more entry; false when the allocation failed (the caller then makes
    /// an object that is not entered).
    pub fn reserve_one(&mut self) -> bool {
        if (self.len + 1) * 2 <= self.slots.len() {
            return true;
        }
        self.grow()
    }

    #[cold]
    #[inline(never)]
    fn grow(&mut self) -> bool {
        let cap = (self.slots.len() * 2).max(64);
        let mut slots: Vec<*const StrObj> = Vec::new();
        if slots.try_reserve_exact(cap).is_err() {
            return false;
        }
        slots.resize(cap, ptr::null());
        let old = core::mem::replace(&mut self.slots, slots);
        for p in old.into_iter().filter(|p| !p.is_null()) {
            // SAFETY: entries point at live objects (see `find`).
            let h = unsafe { (*p).hash() };
            self.place(p, h);
        }
        true
    }

    fn place(&mut self, p: *const StrObj, h: u32) {
        let mask = self.mask();
        let mut i = h as usize & mask;
        while !self.slots[i].is_null() {
            i = (i + 1) & mask;
        }
        self.slots[i] = p;
    }

    /// Enters `p` (text hashing to `h`, not entered yet); [`Table::reserve_one`] must have
    /// returned true since the last insertion.
    pub fn insert(&mut self, p: *const StrObj, h: u32) {
        debug_assert!((self.len + 1) * 2 <= self.slots.len());
        self.place(p, h);
        self.len += 1;
    }

    /// Removes the entry for `p` (hashing to `h`), if there is one.
    pub fn remove(&mut self, p: *const StrObj, h: u32) {
        if self.slots.is_empty() {
            return;
        }
        let mask = self.mask();
        let mut i = h as usize & mask;
        loop {
            let q = self.slots[i];
            if q.is_null() {
                return;
            }
            if q == p {
                break;
            }
            i = (i + 1) & mask;
        }
        // Backward-shift deletion: pull later entries of the same probe run into the hole
        // when their home slot is not after it.
        let mut hole = i;
        let mut j = (i + 1) & mask;
        loop {
            let q = self.slots[j];
            if q.is_null() {
                break;
            }
            // SAFETY: entries point at live objects (see `find`); `p` itself is being
            // dropped but is no longer in the probe run past `hole`.
            let home = unsafe { (*q).hash() } as usize & mask;
            // `q` may move to `hole` when `home` is not cyclically in (hole, j].
            if (j.wrapping_sub(home) & mask) >= (j.wrapping_sub(hole) & mask) {
                self.slots[hole] = q;
                hole = j;
            }
            j = (j + 1) & mask;
        }
        self.slots[hole] = ptr::null();
        self.len -= 1;
    }

    /// Number of entered strings.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }
}
