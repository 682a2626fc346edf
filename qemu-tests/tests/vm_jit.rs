//! VM/JIT kernel: kiln's `.kl` compiler, interpreter and tracing JIT inside the kernel, with
//! kiln as the global allocator and the JIT's code in kiln-bare's exec window.
//!
//! `examples/mandelbrot.kl` (the repository's file) runs twice on the boot CPU:
//! 1. as `kiln run --jit=auto --trace-jit` would: the default threshold (1000 back edges), the
//!    `[JIT]` trace on the serial console, native code from [`EXEC`] (W^X page flips, icache
//!    maintenance on aarch64);
//! 2. with the JIT off (the interpreter is the oracle).
//!
//! Passes only if both print [`EXPECTED`] (the host `kiln` binary's answer for [`N`]), the trace
//! log holds `[JIT] Hot loop detected at PC` and `[JIT] Compiled loop at PC .. (<n> bytes)`,
//! and the driver's counters show a trace compiled and entered.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;

use kiln::jit::driver::{Jit, JitStats};
use kiln::platform::Console;
use kiln::vm::{lang, Program, Vm, VmConfig};
use kiln_bare::console::SerialConsole;
use kiln_bare::sync::IrqMutex;
use kiln_bare::{boot::Verdict, exec::EXEC, println};
use kiln_qemu_tests::{check, ARCH};

kiln_bare::entry!(main);

const SOURCE: &str = include_str!("../../examples/mandelbrot.kl");
/// Grid size: small enough for a few seconds of TCG on the interpreter run.
const N: &str = "200";
/// `kiln run examples/mandelbrot.kl 200` on the host (JIT on or off).
const EXPECTED: &str = "15909\n";
/// `kiln run`'s default `--jit-threshold`.
const DEFAULT_THRESHOLD: u32 = 1000;

/// The `[JIT]` log: every byte goes to the serial console and into a fixed buffer (a console
/// must not allocate) that the checks read afterwards.
struct TeeConsole {
    kept: IrqMutex<([u8; 4096], usize)>,
}

// SAFETY: write_bytes only takes IrqMutexes (the buffer's and the serial console's) and copies
// into a fixed array; it never allocates.
unsafe impl Console for TeeConsole {
    fn write_bytes(&self, bytes: &[u8]) {
        SerialConsole.write_bytes(bytes);
        let mut kept = self.kept.lock();
        let (buf, len) = &mut *kept;
        let n = bytes.len().min(buf.len() - *len);
        buf[*len..*len + n].copy_from_slice(&bytes[..n]);
        *len += n;
    }
}

static LOG: TeeConsole = TeeConsole {
    kept: IrqMutex::new(([0; 4096], 0)),
};

/// Runs the program; `jit` decides whether the tracing JIT is attached.
fn run(prog: &Program, jit: bool) -> Result<(String, JitStats), &'static str> {
    let config = VmConfig {
        jit_threshold: if jit { DEFAULT_THRESHOLD } else { 0 },
        ..VmConfig::default()
    };
    let mut vm = Vm::new(prog, config).map_err(|_| "the program does not verify")?;
    vm.set_args(&[N]).map_err(|_| "set_args failed")?;
    let mut out = String::new();
    let stats = if jit {
        let mut driver = Jit::new(prog, &EXEC, Some(&LOG));
        vm.run(&mut out, Some(&mut driver))
            .map_err(|_| "runtime error with the JIT")?;
        driver.stats()
    } else {
        vm.run(&mut out, None)
            .map_err(|_| "runtime error in the interpreter")?;
        JitStats::default()
    };
    Ok((out, stats))
}

/// Whether the log has a line `[JIT] Compiled loop at PC <pc> (<n> bytes)` with n > 0.
fn has_compiled_line(log: &str) -> bool {
    log.lines().any(|line| {
        let Some(rest) = line.strip_prefix("[JIT] Compiled loop at PC ") else {
            return false;
        };
        let Some((_pc, size)) = rest.split_once(" (") else {
            return false;
        };
        size.strip_suffix(" bytes)")
            .and_then(|n| n.parse::<usize>().ok())
            .is_some_and(|n| n > 0)
    })
}

fn main() -> Verdict {
    let prog = lang::compile(SOURCE).map_err(|_| "mandelbrot.kl does not compile")?;
    println!("{ARCH}: mandelbrot.kl {N} with --jit=auto (threshold {DEFAULT_THRESHOLD})");
    let (jit_out, stats) = run(&prog, true)?;
    println!("{ARCH}: JIT run printed {}", jit_out.trim_end());
    println!("{ARCH}: JIT stats {stats:?}");
    let (interp_out, _) = run(&prog, false)?;
    println!("{ARCH}: interpreter printed {}", interp_out.trim_end());

    let kept = LOG.kept.lock();
    let log = core::str::from_utf8(&kept.0[..kept.1]).map_err(|_| "[JIT] log is not UTF-8")?;
    check(
        log.contains("[JIT] Hot loop detected at PC "),
        "no `[JIT] Hot loop detected` line",
    )?;
    check(
        has_compiled_line(log),
        "no `[JIT] Compiled loop at PC .. (<n> bytes)` line",
    )?;
    check(
        stats.compiled >= 1 && stats.entered >= 1,
        "no trace was compiled and entered",
    )?;
    check(
        interp_out == EXPECTED,
        "interpreter count differs from the host's",
    )?;
    check(
        jit_out == interp_out,
        "JIT count differs from the interpreter's",
    )
}
