//! Lane `aarch64`: the core and std crates' tests built for aarch64-unknown-linux-gnu and run
//! under `qemu-aarch64` user mode (the runner and linker come from `.cargo/config.toml`).
//! This is where the AArch64 JIT backend's native code actually executes.
use crate::util::{cargo, ensure_debian_packages, run};

/// Tests that re-execute their own binary as a child process: under qemu user mode without a
/// binfmt_misc registration the child (an AArch64 ELF) cannot be exec'd directly. What they
/// check runs on the host lane; run by hand under qemu the child behaves (checked 20:53 UTC:
/// `KILN_CHILD=1 qemu-aarch64 -L /usr/aarch64-linux-gnu <invalid_free test binary> --exact
/// global_allocator_aborts_with_a_message_on_a_foreign_free` prints the report and aborts).
const NEEDS_REEXEC: &[&str] = &["global_allocator_aborts_with_a_message_on_a_foreign_free"];

pub fn lane() -> Result<(), String> {
    ensure_debian_packages(&[
        "qemu-user",
        "gcc-aarch64-linux-gnu",
        "libc6-dev-arm64-cross",
    ])?;
    let mut args = vec![
        "test",
        "-p",
        "kiln",
        "-p",
        "kiln-std",
        "--target",
        "aarch64-unknown-linux-gnu",
        "--",
    ];
    for t in NEEDS_REEXEC {
        args.extend(["--skip", t]);
    }
    run(cargo(&args))
}
