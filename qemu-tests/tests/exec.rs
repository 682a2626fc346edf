//! Exec memory kernel: the JIT's executable memory on bare metal.
//!
//! Checks: a region comes back writable (page tables say RW + no-execute); code written there
//! runs after `make_executable` (page tables then say read + execute), including floating-point
//! code (SSE on x86_64, FP/SIMD on aarch64: the boot must have enabled them); a page reused for
//! different code runs the new code (instruction cache synchronised); requests larger than the
//! window or beyond what is left fail with `None` instead of overlapping.
#![no_std]
#![no_main]

use kiln::platform::{CodeRegion, ExecMemory};
use kiln_bare::{boot::Verdict, exec::page_perm, exec::EXEC, paging::PagePerm, println};
use kiln_qemu_tests::{check, ARCH};

kiln_bare::entry!(main);

/// `f(x) = x + x` on the bits of an f64, in the FP unit.
#[cfg(target_arch = "x86_64")]
const DOUBLE_IT: &[u8] = &[
    0x66, 0x48, 0x0f, 0x6e, 0xc7, // movq xmm0, rdi
    0xf2, 0x0f, 0x58, 0xc0, // addsd xmm0, xmm0
    0x66, 0x48, 0x0f, 0x7e, 0xc0, // movq rax, xmm0
    0xc3, // ret
];
#[cfg(target_arch = "aarch64")]
const DOUBLE_IT: &[u8] = &words([
    0x9e67_0000, // fmov d0, x0
    0x1e60_2800, // fadd d0, d0, d0
    0x9e66_0000, // fmov x0, d0
    0xd65f_03c0, // ret
]);

/// `f(_) = 7`.
#[cfg(target_arch = "x86_64")]
const SEVEN: &[u8] = &[0xb8, 0x07, 0x00, 0x00, 0x00, 0xc3]; // mov eax, 7; ret
#[cfg(target_arch = "aarch64")]
const SEVEN: &[u8] = &words([0xd280_00e0, 0xd65f_03c0]); // mov x0, #7; ret

#[cfg(target_arch = "aarch64")]
const fn words<const N: usize>(w: [u32; N]) -> [u8; 16] {
    let mut out = [0u8; 16];
    let mut i = 0;
    while i < N {
        let b = w[i].to_le_bytes();
        out[4 * i] = b[0];
        out[4 * i + 1] = b[1];
        out[4 * i + 2] = b[2];
        out[4 * i + 3] = b[3];
        i += 1;
    }
    out
}

/// Copies `code` into a writable region, makes it executable and calls it with `arg`.
fn install_and_call(region: CodeRegion, code: &[u8], arg: u64) -> Result<u64, &'static str> {
    check(
        page_perm(region.ptr.as_ptr()) == Some(PagePerm::Writable),
        "fresh region is not writable/no-execute",
    )?;
    // SAFETY: the region is ours, writable, and at least one page long.
    unsafe { core::ptr::copy_nonoverlapping(code.as_ptr(), region.ptr.as_ptr(), code.len()) };
    // SAFETY: the region came from map_writable and nobody else uses it.
    let executable = unsafe { EXEC.make_executable(region) };
    check(executable, "make_executable refused")?;
    check(
        page_perm(region.ptr.as_ptr()) == Some(PagePerm::Executable),
        "region is not read+execute after make_executable",
    )?;
    // SAFETY: the region holds a complete function with the C ABI `fn(u64) -> u64`.
    let f: extern "C" fn(u64) -> u64 = unsafe { core::mem::transmute(region.ptr.as_ptr()) };
    Ok(f(arg))
}

fn main() -> Verdict {
    let first = EXEC.map_writable(100).ok_or("map_writable(100) failed")?;
    check(first.len == 4096, "region not rounded to one 4 KiB page")?;
    let doubled = install_and_call(first, DOUBLE_IT, 1.5f64.to_bits())?;
    println!(
        "{ARCH} JIT fp code: 1.5 + 1.5 -> {}",
        f64::from_bits(doubled)
    );
    check(
        doubled == 3.0f64.to_bits(),
        "FP code computed the wrong value",
    )?;

    // SAFETY: the code in `first` has returned and is not called again.
    unsafe { EXEC.unmap(first) };
    check(
        page_perm(first.ptr.as_ptr()) == Some(PagePerm::Writable),
        "unmapped page did not go back to writable",
    )?;
    let again = EXEC
        .map_writable(1)
        .ok_or("map_writable after unmap failed")?;
    check(again.ptr == first.ptr, "lowest free page was not reused")?;
    let seven = install_and_call(again, SEVEN, 0)?;
    println!("{ARCH} JIT rewritten page: -> {seven}");
    check(seven == 7, "stale code ran from a rewritten page")?;

    check(
        EXEC.map_writable(3 << 20).is_none(),
        "3 MiB region from a 2 MiB window",
    )?;
    let rest = EXEC
        .map_writable((2 << 20) - 4096)
        .ok_or("the other 511 pages")?;
    check(
        rest.ptr.as_ptr() as usize == again.ptr.as_ptr() as usize + 4096,
        "rest not adjacent",
    )?;
    check(EXEC.map_writable(1).is_none(), "a page from a full window")?;
    // SAFETY: nothing runs in either region any more.
    unsafe {
        EXEC.unmap(rest);
        EXEC.unmap(again);
    }
    check(
        EXEC.map_writable(2 << 20).is_some(),
        "whole window after freeing it all",
    )?;
    Ok(())
}
