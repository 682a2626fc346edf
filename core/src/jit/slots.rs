//! How the VM lays out one slot in memory: the only thing the JIT knows about VM values.
//!
//! ```text
//!   base + slot * size:  [ .. tag (tag_size bytes at tag_offset) .. payload (8 bytes) .. ]
//! ```
//! The payload is an `i64` or the bits of an `f64`, little-endian, or a bool in its first byte;
//! the tag says which.
//!
//! Invariant ([`SlotLayout::validate`]): tag and payload lie inside the slot and do not overlap,
//! `tag_size` is 1, 4 or 8, and the three tag values fit in `tag_size` bytes and differ. Everything
//! that reads or writes slots (the IR interpreter, each backend's `emit`) goes through here.
use crate::jit::ir::Ty;
use crate::vm::value::{Value, TAG_ARRAY, TAG_BOOL, TAG_FLOAT, TAG_INT, TAG_NIL, TAG_STR};

/// The VM's value layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotLayout {
    /// Bytes per slot.
    pub size: u32,
    /// Offset of the tag inside a slot.
    pub tag_offset: u32,
    /// Tag width in bytes: 1, 4 or 8.
    pub tag_size: u8,
    /// Offset of the 8-byte payload inside a slot.
    pub payload_offset: u32,
    /// Tag of an int value.
    pub int_tag: u64,
    /// Tag of a float value.
    pub float_tag: u64,
    /// Tag of a bool value (its payload is one byte, 0 or 1; the other payload bytes are
    /// unspecified, so bools are loaded with a one-byte load).
    pub bool_tag: u64,
    /// If known: the highest tag of a value that owns no heap memory (tags `0..=max`: nil,
    /// bools, numbers). Linked exits overwrite such slots natively; `None` sends every exit
    /// through the host.
    pub scalar_tags_max: Option<u64>,
}

/// How the VM's [`Value`] sits in memory: the layout every trace and function is compiled for.
pub const VM_LAYOUT: SlotLayout = SlotLayout {
    size: 16,
    tag_offset: 0,
    tag_size: 8,
    payload_offset: 8,
    int_tag: TAG_INT,
    float_tag: TAG_FLOAT,
    bool_tag: TAG_BOOL,
    scalar_tags_max: Some(TAG_FLOAT),
};
const _: () = assert!(TAG_NIL < TAG_FLOAT && TAG_BOOL < TAG_FLOAT && TAG_INT < TAG_FLOAT);
const _: () = assert!(TAG_STR > TAG_FLOAT && TAG_ARRAY > TAG_FLOAT);
const _: () = assert!(core::mem::size_of::<Value>() == 16);

/// Why a layout is unusable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// `tag_size` is not 1, 4 or 8.
    TagSize,
    /// Tag or payload outside the slot, or overlapping.
    Geometry,
    /// A tag value does not fit, or two are equal.
    TagValue,
}

impl SlotLayout {
    /// A 16-byte slot: 1-byte tag at 0 (int 1, float 2, bool 3), payload at 8.
    pub const EXAMPLE: SlotLayout = SlotLayout {
        size: 16,
        tag_offset: 0,
        tag_size: 1,
        payload_offset: 8,
        int_tag: 1,
        float_tag: 2,
        bool_tag: 3,
        scalar_tags_max: None,
    };

    /// Checks the invariant in the module doc.
    pub fn validate(&self) -> Result<(), LayoutError> {
        if !matches!(self.tag_size, 1 | 4 | 8) {
            return Err(LayoutError::TagSize);
        }
        let tag = (
            self.tag_offset as u64,
            self.tag_offset as u64 + self.tag_size as u64,
        );
        let pay = (self.payload_offset as u64, self.payload_offset as u64 + 8);
        let inside = tag.1 <= self.size as u64 && pay.1 <= self.size as u64;
        let apart = tag.1 <= pay.0 || pay.1 <= tag.0;
        if !inside || !apart {
            return Err(LayoutError::Geometry);
        }
        let max = match self.tag_size {
            8 => u64::MAX,
            n => (1u64 << (8 * n as u32)) - 1,
        };
        let tags = [self.int_tag, self.float_tag, self.bool_tag];
        let distinct = tags[0] != tags[1] && tags[0] != tags[2] && tags[1] != tags[2];
        if tags.iter().any(|&t| t > max) || !distinct {
            return Err(LayoutError::TagValue);
        }
        Ok(())
    }

    /// The tag of `ty` (`None` for `Void`).
    pub fn tag_of(&self, ty: Ty) -> Option<u64> {
        match ty {
            Ty::Int => Some(self.int_tag),
            Ty::Float => Some(self.float_tag),
            Ty::Bool => Some(self.bool_tag),
            Ty::Void => None,
        }
    }

    /// Byte offset of `slot`'s tag from the slot base, if it fits an `i32`.
    pub fn tag_disp(&self, slot: u32) -> Option<i32> {
        let d = slot as u64 * self.size as u64 + self.tag_offset as u64;
        i32::try_from(d).ok()
    }

    /// Byte offset of `slot`'s payload from the slot base, if it fits an `i32`.
    pub fn payload_disp(&self, slot: u32) -> Option<i32> {
        let d = slot as u64 * self.size as u64 + self.payload_offset as u64;
        i32::try_from(d).ok()
    }

    /// Reads `slot` from a byte image of the slot array: `(tag, payload)`.
    pub fn read(&self, mem: &[u8], slot: u32) -> Option<(u64, u64)> {
        let t = self.tag_disp(slot)? as usize;
        let p = self.payload_disp(slot)? as usize;
        let mut tag = [0u8; 8];
        tag[..self.tag_size as usize].copy_from_slice(mem.get(t..t + self.tag_size as usize)?);
        let pay = mem.get(p..p + 8)?;
        let mut pay8 = [0u8; 8];
        pay8.copy_from_slice(pay);
        Some((u64::from_le_bytes(tag), u64::from_le_bytes(pay8)))
    }

    /// Writes `slot` in a byte image of the slot array; false if out of bounds.
    pub fn write(&self, mem: &mut [u8], slot: u32, tag: u64, payload: u64) -> bool {
        let (Some(t), Some(p)) = (self.tag_disp(slot), self.payload_disp(slot)) else {
            return false;
        };
        let (t, p, n) = (t as usize, p as usize, self.tag_size as usize);
        if t + n > mem.len() || p + 8 > mem.len() {
            return false;
        }
        mem[t..t + n].copy_from_slice(&tag.to_le_bytes()[..n]);
        mem[p..p + 8].copy_from_slice(&payload.to_le_bytes());
        true
    }
}
