//! Programs run by the interpreter (the oracle) and by the JIT at thresholds 1 and 7, compared:
//! output, result (error kind, pc, line) and live heap bytes. Shared by the loop-trace tests of
//! arrays and strings.
#![cfg(feature = "jit")]
#![cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]

use super::log::Log;
use kiln::jit::driver::{Jit, JitStats};
use kiln::vm::{lang, RuntimeError, Vm, VmConfig};
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
    let mut vm = Vm::new(&prog, config).expect("verifies");
    let mut out = String::new();
    let log = Log::default();
    let (result, stats) = match threshold {
        Some(_) => {
            let mut jit = Jit::new(&prog, &MEM, Some(&log));
            let r = vm.run(&mut out, Some(&mut jit)).map(drop);
            (r, jit.stats())
        }
        None => (vm.run(&mut out, None).map(drop), JitStats::default()),
    };
    Run {
        out,
        result,
        heap_bytes: vm.heap_bytes(),
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
