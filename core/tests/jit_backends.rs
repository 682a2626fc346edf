//! Both backends on every host: each sample trace compiles for x86-64 and AArch64 (only the
//! native one runs here; `jit_native` runs it), and failures are errors, not panics.
#![cfg(feature = "jit")]
mod common;

use common::{cases, LAYOUTS};
use kiln::jit::backend::aarch64::A64;
use kiln::jit::backend::x86_64::X64;
use kiln::jit::backend::{compile, CompileError};
use kiln::jit::slots::{LayoutError, SlotLayout};

#[test]
fn every_sample_compiles_for_both_architectures() {
    for layout in &LAYOUTS {
        for (name, rec, _) in cases(layout) {
            let x = compile::<X64>(&rec, layout).unwrap_or_else(|e| panic!("x64 {name}: {e:?}"));
            let a = compile::<A64>(&rec, layout).unwrap_or_else(|e| panic!("a64 {name}: {e:?}"));
            assert!(!x.code.is_empty() && !a.code.is_empty());
            assert_eq!(a.code.len() % 4, 0, "{name}: whole AArch64 instructions");
            // The last AArch64 instruction is `ret`; x86-64 ends in `ret` (0xc3).
            assert_eq!(
                &a.code[a.code.len() - 4..],
                &[0xc0, 0x03, 0x5f, 0xd6],
                "{name}"
            );
            assert_eq!(*x.code.last().unwrap(), 0xc3, "{name}");
        }
    }
}

#[test]
fn a_bad_layout_is_refused() {
    let bad = SlotLayout {
        tag_offset: 12,
        ..SlotLayout::EXAMPLE
    };
    let e = compile::<X64>(&common::sum_loop(), &bad).unwrap_err();
    assert_eq!(e, CompileError::Layout(LayoutError::Geometry));
    let bad = SlotLayout {
        int_tag: 300,
        ..SlotLayout::EXAMPLE
    };
    let e = compile::<A64>(&common::sum_loop(), &bad).unwrap_err();
    assert_eq!(e, CompileError::Layout(LayoutError::TagValue));
}

#[test]
fn slots_beyond_the_addressable_range_are_an_error() {
    let layout = &LAYOUTS[0];
    let rec = common::far_and_wide(u32::MAX / 16);
    assert_eq!(
        compile::<X64>(&rec, layout).unwrap_err(),
        CompileError::SlotTooFar
    );
    assert_eq!(
        compile::<A64>(&rec, layout).unwrap_err(),
        CompileError::SlotTooFar
    );
}
