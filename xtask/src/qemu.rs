//! `cargo xtask qemu` and the `qemu` lane of `cargo xtask test`: the bare-metal test kernels
//! of `qemu-tests/`, booted under `qemu-system-x86_64` and `qemu-system-aarch64 -M virt`.
//!
//! Each kernel is a `harness = false` test; the cargo runner scripts in `qemu-tests/runner/`
//! boot it under a timeout and pass only on the explicit success exit code (33). The crate is
//! its own workspace (excluded from the root one), so it is built from its own directory, where
//! its `.cargo/config.toml` names the runners and the static relocation model.
use std::process::Command;

use crate::util::{ensure_debian_packages, root, run};

/// The targets every kernel runs on.
const TARGETS: &[&str] = &["x86_64-unknown-none", "aarch64-unknown-none"];

/// `cargo xtask qemu [KERNEL...]`: every kernel (or the named ones) on both architectures.
pub fn run_cmd(kernels: &[String]) -> Result<(), String> {
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
        let mut kernels = cargo();
        kernels
            .current_dir(root().join("qemu-tests"))
            .args(["clippy", "--lib", "--tests", "--target", target])
            .args(["--", "-D", "warnings"]);
        run(kernels)?;
    }
    run_cmd(&[])
}
