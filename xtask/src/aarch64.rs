//! Lane `aarch64`: the core and std crates' tests built for aarch64-unknown-linux-gnu and run
//! under `qemu-aarch64` user mode (the runner and linker come from `.cargo/config.toml`).
//! This is where the AArch64 JIT backend's native code actually executes.
use crate::util::{cargo, ensure_debian_packages, run};

pub fn lane() -> Result<(), String> {
    ensure_debian_packages(&[
        "qemu-user",
        "gcc-aarch64-linux-gnu",
        "libc6-dev-arm64-cross",
    ])?;
    run(cargo(&[
        "test",
        "-p",
        "kiln",
        "-p",
        "kiln-std",
        "--target",
        "aarch64-unknown-linux-gnu",
    ]))
}
