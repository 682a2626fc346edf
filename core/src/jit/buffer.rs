//! The code buffer: a `no_std` byte buffer that the `dynasm!` macro assembles into.
//!
//! Glossary
//! - *template*: a `dynasm!` invocation; the macro expands it (on the host, at compile time) into
//!   calls of this type's inherent methods (`push`, `extend`, `*_label`, `*_reloc`, ...).
//! - *relocation*: a field inside an instruction that must hold the distance to a label. The macro
//!   calls `*_reloc(target, target_offset, field_offset, ref_offset, kind)` right after the
//!   instruction's bytes, so with `loc` = the current length: the field starts at
//!   `loc - field_offset` and holds `label + target_offset - (loc - ref_offset)`.
//! - *kind*: one byte. Bits 6-7: 0 relative, 1 abs-to-rel, 2 rel-to-abs, 3 absolute. Bits 0-5:
//!   0..=3 a little-endian field of 1/2/4/8 bytes; `4 + code` an aarch64 instruction field
//!   (code 0 B/BL imm26, 1 B.cond/CBZ/LDR-literal imm19, 2 ADR, 3 ADRP, 4 TBZ imm14; the numbers
//!   of `dynasmrt` 5.1.0's `Aarch64RelocationEncoding::decode`).
//!
//! Invariants
//! - Only label relocations of kind *relative* are accepted, so the finished bytes do not depend
//!   on where they are placed: assemble at offset 0, copy anywhere. `value_reloc` (an address
//!   outside the buffer) is accepted only as an *absolute* field, which is also placement-free.
//! - Nothing here panics on bad input: the first problem is remembered and [`CodeBuffer::finish`]
//!   returns it as a [`BufferError`].
//! - Labels are resolved only in `finish`, so forward and backward references are handled alike.
use alloc::vec::Vec;

/// Which architecture's instruction-field relocations the buffer decodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arch {
    /// x86-64: only plain little-endian fields.
    X64,
    /// AArch64: plain fields plus the instruction-field encodings listed in the module doc.
    Aarch64,
}

/// A label created with [`CodeBuffer::new_dynamic_label`] and placed with `=>label` in a template.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DynamicLabel(pub usize);

/// Why a buffer could not be finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BufferError {
    /// A relocation refers to a label that was never defined.
    UnknownLabel(&'static str),
    /// A relocation refers to a dynamic label that was never placed.
    UnknownDynamicLabel(DynamicLabel),
    /// A dynamic label was placed twice.
    DuplicateDynamicLabel(DynamicLabel),
    /// A global label was defined twice.
    DuplicateGlobalLabel(&'static str),
    /// The distance to the label does not fit the instruction's field.
    OutOfRange {
        /// Offset of the instruction end that holds the field.
        at: usize,
    },
    /// The relocation kind would make the code depend on its final address.
    NotPositionIndependent {
        /// Offset of the instruction end that holds the field.
        at: usize,
    },
    /// The relocation's encoding byte is not one this architecture defines.
    BadRelocationKind(u8),
    /// Out of memory while growing the buffer.
    OutOfMemory,
}

/// What a relocation points at.
#[derive(Clone, Copy, Debug)]
enum Target {
    /// The `version`-th definition (1-based) of a local label.
    Local(&'static str, usize),
    Global(&'static str),
    Dynamic(DynamicLabel),
}

/// One pending relocation, resolved in `finish`.
#[derive(Clone, Copy, Debug)]
struct Patch {
    target: Target,
    /// Buffer length right after the instruction.
    loc: usize,
    target_offset: isize,
    field_offset: u8,
    ref_offset: u8,
    kind: u8,
}

/// A `no_std` assembling buffer with the inherent methods the `dynasm!` macro calls.
#[derive(Debug)]
pub struct CodeBuffer {
    arch: Arch,
    bytes: Vec<u8>,
    /// Every local label definition in order: (name, version, offset).
    locals: Vec<(&'static str, usize, usize)>,
    globals: Vec<(&'static str, usize)>,
    dynamics: Vec<Option<usize>>,
    patches: Vec<Patch>,
    error: Option<BufferError>,
}

impl CodeBuffer {
    /// An empty buffer for `arch`.
    pub fn new(arch: Arch) -> Self {
        Self {
            arch,
            bytes: Vec::new(),
            locals: Vec::new(),
            globals: Vec::new(),
            dynamics: Vec::new(),
            patches: Vec::new(),
            error: None,
        }
    }

    /// The current length: the offset the next byte will have.
    #[inline]
    pub fn offset(&self) -> usize {
        self.bytes.len()
    }

    /// A fresh label to place later with `=>label`.
    pub fn new_dynamic_label(&mut self) -> DynamicLabel {
        self.dynamics.push(None);
        DynamicLabel(self.dynamics.len() - 1)
    }

    /// The offset a dynamic label was placed at, if it was.
    pub fn label_offset(&self, label: DynamicLabel) -> Option<usize> {
        self.dynamics.get(label.0).copied().flatten()
    }

    /// Remembers the first error only: later ones are usually consequences of it.
    #[cold]
    #[inline(never)]
    fn fail(&mut self, e: BufferError) {
        self.error.get_or_insert(e);
    }

    // ---- bytes -------------------------------------------------------------------------------

    /// Appends one byte.
    #[inline]
    pub fn push(&mut self, byte: u8) {
        if self.bytes.try_reserve(1).is_err() {
            return self.fail(BufferError::OutOfMemory);
        }
        self.bytes.push(byte);
    }

    /// Appends bytes.
    #[inline]
    pub fn extend(&mut self, bytes: &[u8]) {
        if self.bytes.try_reserve(bytes.len()).is_err() {
            return self.fail(BufferError::OutOfMemory);
        }
        self.bytes.extend_from_slice(bytes);
    }

    /// Appends a signed byte.
    #[inline]
    pub fn push_i8(&mut self, v: i8) {
        self.push(v as u8);
    }
    /// Appends a little-endian i16.
    #[inline]
    pub fn push_i16(&mut self, v: i16) {
        self.extend(&v.to_le_bytes());
    }
    /// Appends a little-endian i32.
    #[inline]
    pub fn push_i32(&mut self, v: i32) {
        self.extend(&v.to_le_bytes());
    }
    /// Appends a little-endian i64.
    #[inline]
    pub fn push_i64(&mut self, v: i64) {
        self.extend(&v.to_le_bytes());
    }
    /// Appends a little-endian u16.
    #[inline]
    pub fn push_u16(&mut self, v: u16) {
        self.extend(&v.to_le_bytes());
    }
    /// Appends a little-endian u32.
    #[inline]
    pub fn push_u32(&mut self, v: u32) {
        self.extend(&v.to_le_bytes());
    }
    /// Appends a little-endian u64.
    #[inline]
    pub fn push_u64(&mut self, v: u64) {
        self.extend(&v.to_le_bytes());
    }

    /// Pads with `fill` until the length is a multiple of `alignment` (0 and 1 mean no padding).
    pub fn align(&mut self, alignment: usize, fill: u8) {
        if alignment <= 1 {
            return;
        }
        while !self.bytes.len().is_multiple_of(alignment) {
            self.push(fill);
            if self.error.is_some() {
                return;
            }
        }
    }

    // ---- labels ------------------------------------------------------------------------------

    fn local_version(&self, name: &'static str) -> usize {
        self.locals.iter().filter(|(n, _, _)| *n == name).count()
    }

    /// Defines a local label (`name:`) here; a name may be defined many times.
    pub fn local_label(&mut self, name: &'static str) {
        let version = self.local_version(name) + 1;
        let at = self.offset();
        self.locals.push((name, version, at));
    }

    /// Defines a global label (`->name:`) here; each name once.
    pub fn global_label(&mut self, name: &'static str) {
        if self.globals.iter().any(|(n, _)| *n == name) {
            return self.fail(BufferError::DuplicateGlobalLabel(name));
        }
        let at = self.offset();
        self.globals.push((name, at));
    }

    /// Places a dynamic label (`=>label:`) here; each label once.
    pub fn dynamic_label(&mut self, id: DynamicLabel) {
        let at = self.offset();
        match self.dynamics.get_mut(id.0) {
            Some(slot @ None) => *slot = Some(at),
            Some(Some(_)) => self.fail(BufferError::DuplicateDynamicLabel(id)),
            None => self.fail(BufferError::UnknownDynamicLabel(id)),
        }
    }

    // ---- relocations -------------------------------------------------------------------------

    fn add_patch(&mut self, target: Target, target_offset: isize, field: u8, rel: u8, kind: u8) {
        let patch = Patch {
            target,
            loc: self.offset(),
            target_offset,
            field_offset: field,
            ref_offset: rel,
            kind,
        };
        if self.patches.try_reserve(1).is_err() {
            return self.fail(BufferError::OutOfMemory);
        }
        self.patches.push(patch);
    }

    /// A reference to the next definition of local label `name` (`>name`).
    pub fn forward_reloc(&mut self, name: &'static str, off: isize, field: u8, rel: u8, kind: u8) {
        let version = self.local_version(name) + 1;
        self.add_patch(Target::Local(name, version), off, field, rel, kind);
    }

    /// A reference to the latest definition of local label `name` (`<name`).
    pub fn backward_reloc(&mut self, name: &'static str, off: isize, field: u8, rel: u8, kind: u8) {
        let version = self.local_version(name);
        if version == 0 {
            return self.fail(BufferError::UnknownLabel(name));
        }
        self.add_patch(Target::Local(name, version), off, field, rel, kind);
    }

    /// A reference to global label `name` (`->name`).
    pub fn global_reloc(&mut self, name: &'static str, off: isize, field: u8, rel: u8, kind: u8) {
        self.add_patch(Target::Global(name), off, field, rel, kind);
    }

    /// A reference to a dynamic label (`=>label`).
    pub fn dynamic_reloc(&mut self, id: DynamicLabel, off: isize, field: u8, rel: u8, kind: u8) {
        self.add_patch(Target::Dynamic(id), off, field, rel, kind);
    }

    /// A field holding a value outside the buffer; only the absolute kind keeps the code
    /// placement-free, so the other kinds are refused.
    pub fn value_reloc(&mut self, value: usize, field: u8, rel: u8, kind: u8) {
        let loc = self.offset();
        if kind >> 6 != 3 {
            return self.fail(BufferError::NotPositionIndependent { at: loc });
        }
        let _ = rel;
        if let Err(e) = self.write_field(loc, field, kind, value as isize) {
            self.fail(e);
        }
    }

    // ---- resolution --------------------------------------------------------------------------

    fn resolve(&self, target: Target) -> Result<usize, BufferError> {
        let found = match target {
            Target::Local(name, version) => self
                .locals
                .iter()
                .find(|(n, v, _)| *n == name && *v == version)
                .map(|l| l.2),
            Target::Global(name) => self.globals.iter().find(|g| g.0 == name).map(|g| g.1),
            Target::Dynamic(id) => {
                return self
                    .label_offset(id)
                    .ok_or(BufferError::UnknownDynamicLabel(id))
            }
        };
        let name = match target {
            Target::Local(n, _) | Target::Global(n) => n,
            Target::Dynamic(_) => "",
        };
        found.ok_or(BufferError::UnknownLabel(name))
    }

    /// Writes `value` into the field of the instruction that ends at `loc`.
    fn write_field(
        &mut self,
        loc: usize,
        field: u8,
        kind: u8,
        value: isize,
    ) -> Result<(), BufferError> {
        let at = loc;
        let start = loc
            .checked_sub(field as usize)
            .ok_or(BufferError::OutOfRange { at })?;
        let encoding = kind & 0x3f;
        let size = match encoding {
            0..=3 => 1usize << encoding,
            _ => 4,
        };
        let field = self
            .bytes
            .get_mut(start..start + size)
            .ok_or(BufferError::OutOfRange { at })?;
        match (encoding, self.arch) {
            (0..=3, _) => write_plain(field, value).ok_or(BufferError::OutOfRange { at }),
            (4..=8, Arch::Aarch64) => {
                let old = u32::from_le_bytes([field[0], field[1], field[2], field[3]]);
                let new = aarch64_field(encoding - 4, old, value)
                    .ok_or(BufferError::OutOfRange { at })?;
                field.copy_from_slice(&new.to_le_bytes());
                Ok(())
            }
            _ => Err(BufferError::BadRelocationKind(kind)),
        }
    }

    /// Resolves every label reference and returns the bytes.
    pub fn finish(mut self) -> Result<Vec<u8>, BufferError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let patches = core::mem::take(&mut self.patches);
        for p in &patches {
            if p.kind >> 6 != 0 {
                return Err(BufferError::NotPositionIndependent { at: p.loc });
            }
            let target = self.resolve(p.target)? as isize;
            let reference = p.loc as isize - p.ref_offset as isize;
            let value = target - reference + p.target_offset;
            self.write_field(p.loc, p.field_offset, p.kind, value)?;
        }
        Ok(self.bytes)
    }
}

/// Writes a little-endian field of `field.len()` bytes if `value` fits it as a signed number.
fn write_plain(field: &mut [u8], value: isize) -> Option<()> {
    let bytes = (value as i64).to_le_bytes();
    let n = field.len();
    let fits = match n {
        1 => i8::try_from(value).is_ok(),
        2 => i16::try_from(value).is_ok(),
        4 => i32::try_from(value).is_ok(),
        _ => true,
    };
    fits.then(|| field.copy_from_slice(&bytes[..n]))
}

/// Whether `v` fits a signed field of `bits` bits.
fn fits_signed(v: i64, bits: u32) -> bool {
    let half = 1i64 << (bits - 1);
    (-half..half).contains(&v)
}

/// Packs `value` into an aarch64 instruction's offset field, keeping the other bits of `insn`.
fn aarch64_field(code: u8, insn: u32, value: isize) -> Option<u32> {
    let v = value as i64;
    let (mask, bits) = match code {
        // B, BL: imm26, in words.
        0 => {
            (v & 3 == 0 && fits_signed(v >> 2, 26)).then_some(())?;
            (0xFC00_0000, ((v >> 2) as u32) & 0x3FF_FFFF)
        }
        // B.cond, CBZ, CBNZ, LDR literal: imm19 at bit 5, in words.
        1 => {
            (v & 3 == 0 && fits_signed(v >> 2, 19)).then_some(())?;
            (0xFF00_001F, (((v >> 2) as u32) & 0x7FFFF) << 5)
        }
        // ADR: immlo (2 bits at 29) and immhi (19 bits at 5), in bytes.
        2 => {
            fits_signed(v, 21).then_some(())?;
            (
                0x9F00_001F,
                ((((v >> 2) as u32) & 0x7FFFF) << 5) | (((v as u32) & 3) << 29),
            )
        }
        // ADRP: the same split, in 4 KiB pages (rounded as dynasmrt does).
        3 => {
            let v = v + 0xFFF;
            fits_signed(v >> 12, 21).then_some(())?;
            let lo = (v >> 12) as u32;
            let hi = (v >> 14) as u32;
            (0x9F00_001F, ((hi & 0x7FFFF) << 5) | ((lo & 3) << 29))
        }
        // TBZ, TBNZ: imm14 at bit 5, in words.
        4 => {
            (v & 3 == 0 && fits_signed(v >> 2, 14)).then_some(())?;
            (0xFFF8_001F, (((v >> 2) as u32) & 0x3FFF) << 5)
        }
        _ => return None,
    };
    Some((insn & mask) | bits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dynasm::dynasm;
    use real_dynasmrt::{DynasmApi, DynasmLabelApi};

    /// Local (forward and backward, redefined), global and dynamic labels, x64 and aarch64,
    /// against the real assembler.
    #[test]
    fn labels_resolve_like_dynasmrt() {
        let mut mine = CodeBuffer::new(Arch::X64);
        let mut theirs = real_dynasmrt::VecAssembler::<real_dynasmrt::x64::X64Relocation>::new(0);
        macro_rules! x64_body {
            ($ops:expr, $l:expr) => {
                dynasm!($ops ; .arch x64
                    ; top: ; jmp >next ; nop ; next: ; jne <top ; jmp ->glob
                    ; top: ; jmp <top ; jmp =>$l ; ->glob: ; =>$l ; jmp >top ; top: ; ret
                    ; .align 16
                )
            };
        }
        let l = mine.new_dynamic_label();
        x64_body!(mine, l);
        let l = theirs.new_dynamic_label();
        x64_body!(theirs, l);
        assert_eq!(mine.finish().unwrap(), theirs.finalize().unwrap());

        let mut mine = CodeBuffer::new(Arch::Aarch64);
        type R = real_dynasmrt::aarch64::Aarch64Relocation;
        let mut theirs = real_dynasmrt::VecAssembler::<R>::new(0);
        macro_rules! a64_body {
            ($ops:expr, $l:expr) => {
                dynasm!($ops ; .arch aarch64
                    ; top: ; b >next ; nop ; next: ; b.ne <top ; cbz x3, ->glob ; tbz x1, 3, <top
                    ; adr x2, >next ; bl =>$l ; next: ; ->glob: ; =>$l ; ret
                )
            };
        }
        let l = mine.new_dynamic_label();
        a64_body!(mine, l);
        let l = theirs.new_dynamic_label();
        a64_body!(theirs, l);
        assert_eq!(mine.finish().unwrap(), theirs.finalize().unwrap());
    }

    #[test]
    fn bad_label_use_is_an_error_not_a_panic() {
        let mut b = CodeBuffer::new(Arch::X64);
        dynasm!(b ; .arch x64 ; jmp ->nowhere);
        assert_eq!(b.finish(), Err(BufferError::UnknownLabel("nowhere")));

        let mut b = CodeBuffer::new(Arch::X64);
        dynasm!(b ; .arch x64 ; jmp <nothing_before);
        assert_eq!(b.finish(), Err(BufferError::UnknownLabel("nothing_before")));

        let mut b = CodeBuffer::new(Arch::X64);
        let l = b.new_dynamic_label();
        dynasm!(b ; .arch x64 ; jmp =>l);
        assert_eq!(b.finish(), Err(BufferError::UnknownDynamicLabel(l)));

        let mut b = CodeBuffer::new(Arch::X64);
        let l = b.new_dynamic_label();
        dynasm!(b ; .arch x64 ; =>l ; =>l);
        assert_eq!(b.finish(), Err(BufferError::DuplicateDynamicLabel(l)));
    }

    #[test]
    fn out_of_range_branch_is_an_error() {
        // A tbz reaches +-32 KiB; put the label 64 KiB away.
        let mut b = CodeBuffer::new(Arch::Aarch64);
        dynasm!(b ; .arch aarch64 ; tbz x0, 1, >far);
        for _ in 0..16384 {
            dynasm!(b ; .arch aarch64 ; nop);
        }
        dynasm!(b ; .arch aarch64 ; far: ; ret);
        assert_eq!(b.finish(), Err(BufferError::OutOfRange { at: 4 }));
    }

    #[test]
    fn absolute_label_relocations_are_refused() {
        let mut b = CodeBuffer::new(Arch::X64);
        b.local_label("l");
        b.push_u32(0);
        // kind 0xc2: absolute (bits 6-7 = 3), 4-byte field.
        b.backward_reloc("l", 0, 4, 0, 0xc2);
        assert!(matches!(
            b.finish(),
            Err(BufferError::NotPositionIndependent { .. })
        ));
    }
}
