//! The few runtime helpers that the `dynasm!` macro's aarch64 output names, for `no_std` code.
//!
//! kiln depends on this crate under the name `dynasmrt` so that the macro's
//! `::dynasmrt::aarch64::...` paths resolve without the real (std-only) `dynasmrt`.
//! Signatures and results match `dynasmrt` 5.1.0 exactly (the version `dynasm` is pinned to);
//! kiln's tests compare the assembled bytes against the real crate.
//!
//! Invariant: kiln validates every dynamic immediate before it reaches a template, so the
//! diverging `immediate_out_of_range_*` helpers are unreachable in kiln's own code. They still
//! exist (and panic with a clear message) because the macro output refers to them.
#![no_std]
#![deny(unsafe_op_in_unsafe_fn)]

/// aarch64 helpers (same module path as `dynasmrt::aarch64`).
pub mod aarch64 {
    /// Reached only if a template was handed an immediate it cannot encode.
    #[cold]
    #[inline(never)]
    pub fn immediate_out_of_range_unsigned_f32(immediate: f32) -> ! {
        panic!("aarch64 immediate {immediate} out of range")
    }

    /// Reached only if a template was handed an immediate it cannot encode.
    #[cold]
    #[inline(never)]
    pub fn immediate_out_of_range_unsigned_64(immediate: u64) -> ! {
        panic!("aarch64 immediate {immediate} out of range")
    }

    /// Reached only if a template was handed an immediate it cannot encode.
    #[cold]
    #[inline(never)]
    pub fn immediate_out_of_range_unsigned_32(immediate: u32) -> ! {
        panic!("aarch64 immediate {immediate} out of range")
    }

    /// Reached only if a template was handed an immediate it cannot encode.
    #[cold]
    #[inline(never)]
    pub fn immediate_out_of_range_signed_32(immediate: i32) -> ! {
        panic!("aarch64 immediate {immediate} out of range")
    }

    /// The `N:immr:imms` field of a 32-bit logical immediate, or `None` if `value` has no such
    /// encoding (all zeros, all ones, or not a rotated run of ones repeated in 2..32-bit elements).
    pub fn encode_logical_immediate_32bit(value: u32) -> Option<u16> {
        // A bitmask immediate is a power-of-two sized element, repeated; the element is a
        // rotated run of ones. Count bit transitions to find the element size.
        let transitions = value ^ value.rotate_right(1);
        let element_size = 64u32.checked_div(transitions.count_ones())?;
        if value != value.rotate_left(element_size) {
            return None;
        }
        let element = value & 1u32.checked_shl(element_size).unwrap_or(0).wrapping_sub(1);
        let ones = element.count_ones();
        let imms = (!((element_size << 1) - 1) & 0x3F) | (ones - 1);
        let immr = if element & 1 != 0 {
            ones - (!element).trailing_zeros()
        } else {
            element_size - element.trailing_zeros()
        };
        Some(((immr as u16) << 6) | imms as u16)
    }

    /// The `N:immr:imms` field of a 64-bit logical immediate, or `None` if `value` has none.
    pub fn encode_logical_immediate_64bit(value: u64) -> Option<u16> {
        let transitions = value ^ value.rotate_right(1);
        let element_size = 128u32.checked_div(transitions.count_ones())?;
        if value != value.rotate_left(element_size) {
            return None;
        }
        let element = value & 1u64.checked_shl(element_size).unwrap_or(0).wrapping_sub(1);
        let ones = element.count_ones();
        let imms = (!((element_size << 1) - 1) & 0x7F) | (ones - 1);
        let immr = if element & 1 != 0 {
            ones - (!element).trailing_zeros()
        } else {
            element_size - element.trailing_zeros()
        };
        // N is set exactly when the element is 64 bits wide.
        let n = imms & 0x40 == 0;
        let imms = imms & 0x3F;
        Some(((n as u16) << 12) | ((immr as u16) << 6) | imms as u16)
    }
}
