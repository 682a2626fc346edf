//! SMP VM/JIT kernel (run with `-smp 2`): both CPUs run `examples/mandelbrot.kl` with the
//! tracing JIT at the same time, over and over. Every run installs a trace in the shared exec
//! window and frees it when its driver drops, so permission flips (and, on x86_64, shoot-down
//! IPIs) go both ways while the other CPU is inside native code, in the interpreter, in the
//! allocator, or spinning for the window's lock.
//!
//! Passes only if every run on both CPUs prints the interpreter's count (checked once on the
//! boot CPU against the host `kiln`'s answer) and compiled and entered a trace.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use kiln::jit::driver::Jit;
use kiln::vm::{lang, Program, Vm, VmConfig};
use kiln_bare::{boot::Verdict, cpu, exec::EXEC, println, smp};
use kiln_qemu_tests::{check, ARCH};

kiln_bare::entry!(main);

const SOURCE: &str = include_str!("../../examples/mandelbrot.kl");
const N: &str = "60";
/// `kiln run examples/mandelbrot.kl 60` on the host.
const EXPECTED: &str = "1428\n";
/// Low, so every run records and compiles a trace early.
const THRESHOLD: u32 = 100;
/// Runs per CPU.
const RUNS: usize = 16;

static GO: AtomicBool = AtomicBool::new(false);
/// Runs that printed the right count and entered native code, per CPU.
static GOOD: [AtomicUsize; 2] = [AtomicUsize::new(0), AtomicUsize::new(0)];
static FINISHED: AtomicUsize = AtomicUsize::new(0);

/// One run with the JIT; whether it printed [`EXPECTED`] and ran a trace.
fn run_once(prog: &Program, jit: bool) -> Result<String, &'static str> {
    let config = VmConfig {
        jit_threshold: if jit { THRESHOLD } else { 0 },
        ..VmConfig::default()
    };
    let mut vm = Vm::new(prog, config).map_err(|_| "the program does not verify")?;
    vm.set_args(&[N]).map_err(|_| "set_args failed")?;
    let mut out = String::new();
    if jit {
        let mut driver = Jit::new(prog, &EXEC, None);
        vm.run(&mut out, Some(&mut driver))
            .map_err(|_| "runtime error with the JIT")?;
        let stats = driver.stats();
        if stats.compiled == 0 || stats.entered == 0 {
            println!("{ARCH} CPU {}: {stats:?}", cpu::cpu_index());
            return Err("no trace compiled and entered");
        }
    } else {
        vm.run(&mut out, None).map_err(|_| "runtime error")?;
    }
    Ok(out)
}

/// [`RUNS`] JIT runs on this CPU, counted in [`GOOD`].
fn runs() {
    let me = cpu::cpu_index();
    let Ok(prog) = lang::compile(SOURCE) else {
        println!("{ARCH} CPU {me}: mandelbrot.kl does not compile");
        return;
    };
    for _ in 0..RUNS {
        match run_once(&prog, true) {
            Ok(out) if out == EXPECTED => {
                GOOD[me].fetch_add(1, Ordering::AcqRel);
            }
            Ok(out) => println!("{ARCH} CPU {me}: printed {}", out.trim_end()),
            Err(why) => println!("{ARCH} CPU {me}: {why}"),
        }
    }
}

fn secondary() {
    while !GO.load(Ordering::Acquire) {
        core::hint::spin_loop();
    }
    runs();
    FINISHED.fetch_add(1, Ordering::AcqRel);
}

fn main() -> Verdict {
    check(smp::possible_cpus() >= 2, "run this kernel with -smp 2")?;
    let prog = lang::compile(SOURCE).map_err(|_| "mandelbrot.kl does not compile")?;
    check(
        run_once(&prog, false)? == EXPECTED,
        "interpreter count differs from the host's",
    )?;
    smp::start_secondary(secondary).map_err(|e| {
        println!("start_secondary: {e:?}");
        "secondary CPU did not start"
    })?;
    GO.store(true, Ordering::Release);
    runs();
    while FINISHED.load(Ordering::Acquire) < 1 {
        core::hint::spin_loop();
    }
    let good = [
        GOOD[0].load(Ordering::Acquire),
        GOOD[1].load(Ordering::Acquire),
    ];
    println!(
        "{ARCH}: JIT runs with the right count: CPU 0 {}/{RUNS}, CPU 1 {}/{RUNS}",
        good[0], good[1]
    );
    let shootdowns = kiln_bare::tlb::remote_shootdowns();
    println!("{ARCH}: {shootdowns} shoot-downs reached the other CPU");
    check(good == [RUNS, RUNS], "a concurrent JIT run went wrong")?;
    // Each run installs and frees at least one trace while both CPUs run.
    check(
        shootdowns >= 2 * 2 * RUNS,
        "fewer shoot-downs than installs and frees",
    )
}
