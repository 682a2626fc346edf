//! `cargo xtask qemu` and the `qemu` lane of `cargo xtask test`: the bare-metal test kernels
//! of `qemu-tests/`, booted under `qemu-system-x86_64` and `qemu-system-aarch64 -M virt`, and
//! (`cargo xtask qemu` only; the `mcu` lane runs them in `cargo xtask test`) the Cortex-M4
//! images of `qemu-tests/mcu` under `qemu-system-arm -M mps2-an386`.
//!
//! Each kernel is a `harness = false` test; the cargo runner scripts in `qemu-tests/runner/`
//! boot it under a timeout and pass only on the explicit success exit code (33). The crate is
//! its own workspace (excluded from the root one), so it is built from its own directory, where
//! its `.cargo/config.toml` names the runners and the static relocation model.
use std::process::Command;

use crate::util::{ensure_debian_packages, root, run};

/// The targets every kernel runs on.
const TARGETS: &[&str] = &["x86_64-unknown-none", "aarch64-unknown-none"];

/// `cargo xtask qemu [KERNEL...]`: every kernel (or the named ones) on both architectures, and
/// without names the Cortex-M4 images too.
pub fn run_cmd(kernels: &[String]) -> Result<(), String> {
    run_kernels(kernels)?;
    if kernels.is_empty() {
        crate::mcu::images()?;
    }
    Ok(())
}

/// The kernels of `qemu-tests/` (or the named ones) on both architectures.
fn run_kernels(kernels: &[String]) -> Result<(), String> {
    ensure_debian_packages(&["qemu-system-x86", "qemu-system-arm"])?;
    for target in TARGETS {
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.current_dir(root().join("qemu-tests"))
            .args(["test", "--target", target]);
        for k in kernels {
            cmd.args(["--test", k]);
        }
        run(cmd)?;
    }
    Ok(())
}

/// The `qemu` lane: lint the bare-metal code for its real targets (the workspace's `clippy` lane
/// only sees kiln-bare's host build), then run all kernels on both architectures.
pub fn lane() -> Result<(), String> {
    let cargo = || Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    let mut fmt = cargo();
    fmt.current_dir(root().join("qemu-tests"))
        .args(["fmt", "--check"]);
    run(fmt)?;
    for target in TARGETS {
        let mut bare = cargo();
        bare.current_dir(root()).args([
            "clippy",
            "-p",
            "kiln-bare",
            "--no-deps",
            "--target",
            target,
            "--",
            "-D",
            "warnings",
        ]);
        run(bare)?;
        // Once as the kernels are run, once per must_fail mode (its code differs by feature), once
        // with the sabotaged shoot-down.
        let modes = MUST_FAIL
            .iter()
            .map(|(mode, _)| format!("must-fail-{mode}"))
            .chain(std::iter::once("sabotage-tlb".to_string()));
        for features in std::iter::once(String::new()).chain(modes) {
            let mut kernels = cargo();
            kernels
                .current_dir(root().join("qemu-tests"))
                .args(["clippy", "--lib", "--tests", "--target", target])
                .args(["--features", &features, "--", "-D", "warnings"]);
            run(kernels)?;
        }
    }
    run_kernels(&[])?;
    aarch64_el2_max()?;
    must_fail()
}

/// The aarch64 kernels that touch the boot path, the MMU, SMP and TLB maintenance once more on
/// a different machine: `-cpu max` entered at EL2 (`virtualization=on`: the drop to EL1, PSCI
/// over `smc`).
fn aarch64_el2_max() -> Result<(), String> {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root().join("qemu-tests"))
        .args(["test", "--target", "aarch64-unknown-none"])
        .args([
            "--test", "boot", "--test", "exec", "--test", "smp_lock", "--test", "smp_heap",
            "--test", "smp_exec",
        ])
        .env("KILN_QEMU_CPU", "max")
        .env("KILN_QEMU_MACHINE", "virt,virtualization=on");
    run(cmd)
}

/// Ways the `must_fail` kernel fails, and what its run must print.
const MUST_FAIL: &[(&str, &str)] = &[
    ("panic", "[kiln-bare] PANIC on CPU 0: panicked at"),
    ("fault", "[kiln-bare] EXCEPTION"),
    ("verdict", "[kiln-bare] FAILED: deliberate Err verdict"),
    ("hang", "FAIL (timeout)"),
];

/// Boots the `must_fail` kernel in each mode on both architectures: every run must be reported
/// as a failure, with the expected message. This is what shows a broken kernel cannot pass.
fn must_fail() -> Result<(), String> {
    for target in TARGETS {
        for (mode, marker) in MUST_FAIL {
            let feature = format!("must-fail-{mode}");
            let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
            cmd.current_dir(root().join("qemu-tests"))
                .args(["test", "--target", target, "--features", &feature])
                .args(["--test", "must_fail"])
                .env("KILN_QEMU_TIMEOUT", "5");
            eprintln!("+ {cmd:?} (must fail)");
            let out = cmd
                .output()
                .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
            let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
            if out.status.success() {
                return Err(format!("{target} must_fail ({mode}) passed:\n{text}"));
            }
            if !text.contains(marker) {
                return Err(format!(
                    "{target} must_fail ({mode}) failed without `{marker}`:\n{text}"
                ));
            }
            eprintln!("qemu {target} must_fail ({mode}): failed as it must (`{marker}`)");
        }
        stale_tlb_is_caught(target)?;
    }
    Ok(())
}

/// Builds `smp_exec` against a kiln-bare whose TLB shoot-downs skip the other CPU (feature
/// `sabotage-tlb`) and requires the run to fail on a stale translation: the kernel really
/// checks the shoot-down rather than passing by luck.
fn stale_tlb_is_caught(target: &str) -> Result<(), String> {
    const MARKER: &str = "(stale writable TLB entry)";
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root().join("qemu-tests"))
        .args(["test", "--target", target, "--features", "sabotage-tlb"])
        .args(["--test", "smp_exec"])
        .env("KILN_QEMU_TIMEOUT", "20");
    eprintln!("+ {cmd:?} (must fail)");
    let out = cmd
        .output()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        return Err(format!(
            "{target} smp_exec passed without TLB shoot-downs:\n{text}"
        ));
    }
    if !text.contains(MARKER) {
        return Err(format!(
            "{target} smp_exec without shoot-downs failed without `{MARKER}`:\n{text}"
        ));
    }
    eprintln!("qemu {target} smp_exec without shoot-downs: failed as it must (`{MARKER}`)");
    Ok(())
}
