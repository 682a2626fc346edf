//! Programs run by the interpreter (the oracle) and by the JIT, compared: [`run_vm`] runs one
//! (every JIT test file's runs go through it); [`same_as_interpreter`] compares output, result
//! (error kind, pc, line) and live heap bytes at thresholds 1 and 7 (the loop-trace tests of
//! arrays and strings).
#![cfg(feature = "jit")]
#![cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]

use super::log::Log;
use kiln::jit::driver::{Jit, JitStats};
use kiln::vm::{lang, Program, RuntimeError, Value, Vm, VmConfig};
use kiln_std::exec::StdExecMemory;

pub static MEM: StdExecMemory = StdExecMemory::new();

/// What one run showed.
pub struct Run {
    pub out: String,
    pub result: Result<(), RuntimeError>,
    pub heap_bytes: usize,
    pub stats: JitStats,
    pub log: String,
}

pub fn run(src: &str, threshold: Option<u32>) -> Run {
    run_capped(src, threshold, VmConfig::default().memory_cap)
}

pub fn run_capped(src: &str, threshold: Option<u32>, memory_cap: usize) -> Run {
    let prog = lang::compile(src).expect("compiles");
    let config = VmConfig {
        jit_threshold: threshold.unwrap_or(0),
        memory_cap,
        ..VmConfig::default()
    };
    let ran = run_vm(&prog, config, &[]);
    Run {
        out: ran.out,
        result: ran.result.map(drop),
        heap_bytes: ran.vm.heap_bytes(),
        stats: ran.stats,
        log: ran.log,
    }
}

/// A finished run: the VM as the run left it, its output and result, and the JIT's statistics
/// and `[JIT]` log (empty with the JIT off).
pub struct Ran<'p> {
    pub vm: Vm<'p>,
    pub out: String,
    pub result: Result<Value, RuntimeError>,
    pub stats: JitStats,
    pub log: String,
}

/// Runs `prog` with `args` under `config`: with the JIT when `config.jit_threshold` is not 0,
/// in the interpreter alone otherwise.
pub fn run_vm<'p>(prog: &'p Program, config: VmConfig, args: &[&str]) -> Ran<'p> {
    let jit_on = config.jit_threshold != 0;
    let mut vm = Vm::new(prog, config).expect("verifies");
    vm.set_args(args).expect("args fit");
    let mut out = String::new();
    let log = Log::default();
    let (result, stats) = if jit_on {
        let mut jit = Jit::new(prog, &MEM, Some(&log));
        let r = vm.run(&mut out, Some(&mut jit));
        (r, jit.stats())
    } else {
        (vm.run(&mut out, None), JitStats::default())
    };
    Ran {
        vm,
        out,
        result,
        stats,
        log: log.0.into_inner().unwrap(),
    }
}

/// Same output, result and heap bytes as the interpreter at thresholds 1 and 7; returns the
/// runs.
pub fn same_as_interpreter(src: &str) -> Vec<Run> {
    let want = run(src, None);
    [1, 7]
        .into_iter()
        .map(|t| {
            let got = run(src, Some(t));
            assert_eq!(got.out, want.out, "threshold {t}\n{src}\n{}", got.log);
            assert_eq!(got.result, want.result, "threshold {t}\n{src}\n{}", got.log);
            assert_eq!(
                got.heap_bytes, want.heap_bytes,
                "threshold {t}: heap\n{src}"
            );
            got
        })
        .collect()
}

/// Agrees with the interpreter, and every run compiled a trace, entered native code and
/// aborted nothing.
pub fn native(src: &str) -> Vec<Run> {
    let runs = same_as_interpreter(src);
    for r in &runs {
        assert!(!r.log.contains("aborted"), "an abort\n{src}\n{}", r.log);
        assert!(
            r.stats.compiled >= 1 && r.stats.entered >= 1,
            "{:?}\n{src}\n{}",
            r.stats,
            r.log
        );
    }
    runs
}

/// Agrees with the interpreter, and some run logged an abort naming `what`.
pub fn aborts_naming(src: &str, what: &str) {
    let runs = same_as_interpreter(src);
    assert!(
        runs.iter().any(|r| r.log.contains(what)),
        "no abort naming {what}\n{src}\n{}",
        runs[0].log
    );
}
