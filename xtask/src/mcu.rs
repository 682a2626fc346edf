//! The `mcu` lane of `cargo xtask test` (also run by `cargo xtask qemu`): kiln on a 32-bit
//! microcontroller.
//!
//! - the allocator's unit tests in the small geometry (`cargo test -p kiln --features
//!   small-geometry --lib`): 64 KiB segments of 2 KiB pages, the geometry the image uses;
//! - `qemu-tests/mcu` (its own workspace): fmt, clippy for `thumbv7em-none-eabihf`, then its
//!   images under `qemu-system-arm -M mps2-an386` (Cortex-M4, 64 KiB heap): the allocator stress
//!   test and a `.kl` program in the interpreter. The runner passes an image only on semihosting
//!   exit status 0 *and* its `[kiln-mcu] PASSED` line; an image that panics on purpose
//!   (`must_fail`, feature `must-fail`) must be reported as failing;
//! - the allocator's code size on thumbv7em (release `alloc_stress`, `llvm-nm`), printed.
use std::process::Command;

use crate::util::{cargo, ensure_debian_packages, root, run};

/// Debian packages the lane needs: QEMU for Arm, LLVM's binutils for the size report.
const PACKAGES: &[&str] = &["qemu-system-arm", "llvm"];

pub fn lane() -> Result<(), String> {
    ensure_debian_packages(PACKAGES)?;
    run(cargo(&[
        "test",
        "-p",
        "kiln",
        "--features",
        "small-geometry",
        "--lib",
    ]))?;
    let mcu = || {
        let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        c.current_dir(root().join("qemu-tests/mcu"));
        c
    };
    let mut fmt = mcu();
    fmt.args(["fmt", "--check"]);
    run(fmt)?;
    let mut clippy = mcu();
    clippy.args(["clippy", "--lib", "--tests", "--", "-D", "warnings"]);
    run(clippy)?;
    let mut clippy = mcu();
    clippy.args([
        "clippy",
        "--tests",
        "--features",
        "must-fail",
        "--",
        "-D",
        "warnings",
    ]);
    run(clippy)?;
    images()?;
    must_fail()?;
    code_size()
}

/// Boots the image that panics on purpose: its run must be reported as a failure, with the
/// panic message (a broken image cannot pass).
fn must_fail() -> Result<(), String> {
    const MARKER: &str = "[kiln-mcu] PANIC";
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root().join("qemu-tests/mcu"))
        .args(["test", "--features", "must-fail", "--test", "must_fail"])
        .env("KILN_QEMU_TIMEOUT", "10");
    eprintln!("+ {cmd:?} (must fail)");
    let out = cmd
        .output()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        return Err(format!("mcu must_fail passed:\n{text}"));
    }
    if !text.contains(MARKER) {
        return Err(format!("mcu must_fail failed without `{MARKER}`:\n{text}"));
    }
    eprintln!("qemu mps2-an386 must_fail: failed as it must (`{MARKER}`)");
    Ok(())
}

/// Boots the images (`cargo xtask qemu` runs this part too).
pub fn images() -> Result<(), String> {
    ensure_debian_packages(&["qemu-system-arm"])?;
    let mut test = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    test.current_dir(root().join("qemu-tests/mcu")).arg("test");
    run(test)
}

/// Prints the code size of kiln's allocator in the release stress image: the sum of the sizes
/// of the text symbols under `kiln::allocator` and `kiln::global` (the allocator and its
/// `GlobalAlloc` type: what inlining left as functions of their own), and the image's whole
/// `.text`.
fn code_size() -> Result<(), String> {
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build
        .current_dir(root().join("qemu-tests/mcu"))
        .args(["test", "--release", "--no-run", "--test", "alloc_stress"])
        .args(["--message-format", "short"]);
    run(build)?;
    let dir = root().join("target/mcu/thumbv7em-none-eabihf/release/deps");
    let image = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.starts_with("alloc_stress-") && p.extension().is_none()
        })
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
        .ok_or("no release alloc_stress image")?;
    let nm = Command::new("llvm-nm")
        .args(["-C", "--print-size", "--size-sort"])
        .arg(&image)
        .output()
        .map_err(|e| format!("llvm-nm: {e}"))?;
    let text = String::from_utf8_lossy(&nm.stdout);
    let mut alloc_bytes = 0u64;
    for line in text.lines() {
        // address size type name
        let mut f = line.splitn(4, ' ');
        let (_, Some(size), Some(kind), Some(name)) = (f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        if matches!(kind, "t" | "T")
            && (name.contains("kiln::allocator::") || name.contains("kiln::global::"))
        {
            alloc_bytes += u64::from_str_radix(size, 16).unwrap_or(0);
        }
    }
    let size = Command::new("llvm-size")
        .arg(&image)
        .output()
        .map_err(|e| format!("llvm-size: {e}"))?;
    eprintln!("{}", String::from_utf8_lossy(&size.stdout).trim_end());
    if alloc_bytes == 0 {
        return Err("no kiln::allocator or kiln::global text symbols in the release image".into());
    }
    eprintln!(
        "kiln allocator code on thumbv7em-none-eabihf (release, opt-level s): {alloc_bytes} bytes"
    );
    Ok(())
}
