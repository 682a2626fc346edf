//! Lane `aarch64`: the core and std crates' tests built for aarch64-unknown-linux-gnu and run
//! under `qemu-aarch64` user mode (the runner and linker come from `.cargo/config.toml`).
//! This is where the AArch64 JIT backend's native code actually executes. Then the `kiln` binary
//! built for aarch64 runs `examples/mandelbrot.kl --jit=auto --trace-jit` under qemu-aarch64 and
//! must print both `[JIT]` lines and 397380, and `examples/fib.kl 24 --jit=on` must compile fib
//! and print 46368.
use crate::util::{cargo, ensure_debian_packages, run};

pub fn lane() -> Result<(), String> {
    ensure_debian_packages(&[
        "qemu-user",
        "gcc-aarch64-linux-gnu",
        "libc6-dev-arm64-cross",
    ])?;
    let mut tests = cargo(&[
        "test",
        "-p",
        "kiln",
        "-p",
        "kiln-std",
        "--target",
        "aarch64-unknown-linux-gnu",
    ]);
    // Tests that re-run their own binary as a child process need the emulator too.
    tests.env("KILN_TEST_RUNNER", "qemu-aarch64 -L /usr/aarch64-linux-gnu");
    run(tests)?;
    mandelbrot_jit_on_aarch64()?;
    fib_function_jit_on_aarch64()
}

/// The aarch64 `kiln` binary (built by `mandelbrot_jit_on_aarch64`) runs fib with the
/// function JIT under qemu-aarch64: compiled on the first call, right result.
fn fib_function_jit_on_aarch64() -> Result<(), String> {
    let kiln = crate::util::root().join("target/aarch64-unknown-linux-gnu/release/kiln");
    let out = std::process::Command::new("qemu-aarch64")
        .args(["-L", "/usr/aarch64-linux-gnu"])
        .arg(&kiln)
        .args(["run", "--jit=on", "--trace-jit", "examples/fib.kl", "24"])
        .current_dir(crate::util::root())
        .output()
        .map_err(|e| format!("cannot run qemu-aarch64: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let compiled = stderr
        .lines()
        .any(|l| l.starts_with("[JIT] Compiled function fib ("));
    if out.status.success() && compiled && stdout.trim() == "fib(24) = 46368" {
        eprintln!("aarch64: fib.kl printed fib(24) = 46368 with the function JIT");
        Ok(())
    } else {
        Err(format!(
            "aarch64 kiln fib with the function JIT failed ({}):\n{stdout}{stderr}",
            out.status
        ))
    }
}

/// The `kiln` binary built for aarch64 runs mandelbrot with the JIT under qemu-aarch64: both
/// `[JIT]` log lines and the right count.
fn mandelbrot_jit_on_aarch64() -> Result<(), String> {
    const TARGET: &str = "aarch64-unknown-linux-gnu";
    run(cargo(&[
        "build",
        "--release",
        "-p",
        "kiln-std",
        "--bin",
        "kiln",
        "--target",
        TARGET,
    ]))?;
    let kiln = crate::util::root().join(format!("target/{TARGET}/release/kiln"));
    let out = std::process::Command::new("qemu-aarch64")
        .args(["-L", "/usr/aarch64-linux-gnu"])
        .arg(&kiln)
        .args(["run", "--jit=auto", "--trace-jit", "examples/mandelbrot.kl"])
        .current_dir(crate::util::root())
        .output()
        .map_err(|e| format!("cannot run qemu-aarch64: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let log = format!("{stdout}{stderr}");
    let has = |needle: &str| log.lines().any(|l| l.starts_with(needle));
    if out.status.success()
        && has("[JIT] Hot loop detected at PC ")
        && has("[JIT] Compiled loop at PC ")
        && stdout.lines().any(|l| l.trim() == "397380")
    {
        for line in log
            .lines()
            .filter(|l| l.starts_with("[JIT] Hot") || l.starts_with("[JIT] Compiled"))
        {
            eprintln!("aarch64: {line}");
        }
        eprintln!("aarch64: mandelbrot.kl printed 397380 with the JIT");
        Ok(())
    } else {
        Err(format!(
            "aarch64 kiln mandelbrot with the JIT failed ({}):\n{log}",
            out.status
        ))
    }
}
