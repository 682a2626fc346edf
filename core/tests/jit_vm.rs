//! The interpreter is the oracle: programs run with the tracing JIT (low threshold, so traces
//! are recorded, compiled and entered) must print exactly what the interpreter prints.
#![cfg(feature = "jit")]
#![cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]

use std::path::PathBuf;

use kiln::jit::driver::{Jit, JitStats};
use kiln::vm::{lang, Vm, VmConfig};
use kiln_std::exec::StdExecMemory;

static MEM: StdExecMemory = StdExecMemory::new();

/// Runs `src`; with `threshold = Some(t)` the JIT is on.
fn run(src: &str, args: &[&str], threshold: Option<u32>) -> (String, JitStats) {
    let prog = lang::compile(src).expect("compiles");
    let config = VmConfig {
        jit_threshold: threshold.unwrap_or(0),
        ..VmConfig::default()
    };
    let mut vm = Vm::new(&prog, config).expect("verifies");
    vm.set_args(args).unwrap();
    let mut out = String::new();
    let stats = match threshold {
        Some(_) => {
            let mut jit = Jit::new(&prog, &MEM, None);
            vm.run(&mut out, Some(&mut jit)).expect("runs with the JIT");
            jit.stats()
        }
        None => {
            vm.run(&mut out, None).expect("runs");
            JitStats::default()
        }
    };
    (out, stats)
}

/// Same output with and without the JIT, for several thresholds; returns the JIT's counters
/// at threshold 10.
fn same_output(src: &str, args: &[&str]) -> JitStats {
    let (want, _) = run(src, args, None);
    let mut stats = JitStats::default();
    for t in [1, 10, 100] {
        let (got, s) = run(src, args, Some(t));
        assert_eq!(got, want, "threshold {t}\n{src}");
        if t == 10 {
            stats = s;
        }
    }
    stats
}

fn example(name: &str) -> (String, Vec<String>) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let src = std::fs::read_to_string(dir.join(format!("{name}.kl"))).unwrap();
    let args = std::fs::read_to_string(dir.join(format!("{name}.args"))).unwrap_or_default();
    (src, args.split_whitespace().map(String::from).collect())
}

#[test]
fn examples_agree_with_the_interpreter() {
    for name in [
        "mandelbrot",
        "fib",
        "sieve",
        "spectral_norm",
        "strings",
        "tak",
    ] {
        let (src, args) = example(name);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let stats = same_output(&src, &args);
        if name == "mandelbrot" {
            // Linked traces keep control in native code, so the host enters it rarely.
            assert!(
                stats.compiled >= 1 && stats.entered >= 1,
                "{name}: {stats:?}"
            );
        }
    }
}

#[test]
fn int_loop_runs_natively() {
    let s = same_output(
        "let s = 0; let i = 0; while i < 100000 { s = s + i * 3 - 1; i = i + 1; } print(s);",
        &[],
    );
    assert_eq!(s.compiled, 1, "{s:?}");
    assert!(s.entered >= 1);
}

#[test]
fn float_and_mixed_arithmetic() {
    same_output(
        "let x = 0.5; let y = 3; let i = 0;
         while i < 5000 { x = x * 1.0001 + i; y = y * 3 + 1; x = -x / 3.0 + y; i = i + 1; }
         print(x, y);",
        &[],
    );
}

#[test]
fn break_in_the_middle_of_a_loop() {
    let s = same_output(
        "let s = 0; let i = 0;
         while i < 100000 { s = s + i; if i == 77777 { break; } i = i + 1; }
         print(s, i);",
        &[],
    );
    assert!(s.compiled >= 1, "{s:?}");
}

#[test]
fn nan_comparisons_take_the_interpreters_branch() {
    same_output(
        "let z = 0.0 / 0.0; let c = 0; let d = 0; let i = 0;
         while i < 3000 { if z < 1.0 { c = c + 1; } if z >= 1.0 { d = d + 1; } i = i + 1; }
         print(c, d);",
        &[],
    );
}

#[test]
fn a_slot_that_changes_type_leaves_the_trace() {
    same_output(
        "let x = 1; let i = 0;
         while i < 3000 { if i == 2000 { x = 1.5; } x = x + 1; i = i + 1; }
         print(x);",
        &[],
    );
}

#[test]
fn unsupported_loops_abort_and_stay_interpreted() {
    let s = same_output(
        "fn f(a) { return a + 1; }
         let s = \"\"; let i = 0; let t = 0;
         while i < 3000 { s = str(i); t = f(t); i = i + 1; }
         print(s, t);",
        &[],
    );
    assert_eq!(s.compiled, 0, "{s:?}");
    assert!(s.aborted >= 1, "{s:?}");
}

#[test]
fn nested_loops_compile_the_inner_one() {
    let s = same_output(
        "let t = 0; let y = 0;
         while y < 300 { let x = 0; while x < 300 { t = t + x * y; x = x + 1; } y = y + 1; }
         print(t);",
        &[],
    );
    assert!(s.compiled >= 1 && s.entered >= 1, "{s:?}");
}

/// Output, result (or error) and fuel left of a run with a fuel budget; the JIT's counters.
fn run_metered(
    src: &str,
    args: &[&str],
    threshold: Option<u32>,
    fuel: Option<u64>,
) -> (
    (String, Result<String, kiln::vm::RuntimeError>, u64),
    JitStats,
) {
    let prog = lang::compile(src).expect("compiles");
    let config = VmConfig {
        fuel,
        jit_threshold: threshold.unwrap_or(0),
        ..VmConfig::default()
    };
    let mut vm = Vm::new(&prog, config).expect("verifies");
    vm.set_args(args).unwrap();
    let mut out = String::new();
    let mut jit = Jit::new(&prog, &MEM, None);
    let result = match threshold {
        Some(_) => vm.run(&mut out, Some(&mut jit)),
        None => vm.run(&mut out, None),
    };
    let result = result.map(|v| format!("{v:?}"));
    ((out, result, vm.fuel_left()), jit.stats())
}

/// Native code charges fuel exactly as the interpreter does: under budgets that run out at
/// many different points (and under none), the examples print the same, fail at the same
/// instruction and leave the same fuel, with the JIT on and off.
#[test]
fn fuel_limited_examples_agree_with_the_interpreter() {
    for (name, args) in [
        ("mandelbrot", vec!["40"]),
        ("spectral_norm", vec!["20"]),
        ("sieve", vec!["3000"]),
        ("fib", vec!["15"]),
    ] {
        let (src, _) = example(name);
        let (unmetered, _) = run_metered(&src, &args, None, Some(u64::MAX));
        let need = u64::MAX - unmetered.2;
        let mut ran_out_natively = 0;
        for pct in [1, 7, 13, 29, 50, 71, 93, 99, 100] {
            let budget = need * pct / 100;
            let (want, _) = run_metered(&src, &args, None, Some(budget));
            for t in [1, 2, 10] {
                let (got, stats) = run_metered(&src, &args, Some(t), Some(budget));
                assert_eq!(got, want, "{name}: threshold {t}, fuel {budget}");
                ran_out_natively += (got.1.is_err() && stats.entered > 0) as u32;
            }
        }
        let (want, _) = run_metered(&src, &args, None, None);
        let (got, _) = run_metered(&src, &args, Some(1), None);
        assert_eq!(got, want, "{name}: unmetered");
        if name == "mandelbrot" {
            assert!(ran_out_natively >= 10, "{name}: {ran_out_natively}");
        }
    }
}

/// The fuel check costs no exits: with no budget (or a huge one) a hot loop is entered once
/// and stays in native code to the end.
#[test]
fn an_unmetered_loop_stays_native() {
    let src = "let s = 0; let i = 0; while i < 100000 { s = s + i; i = i + 1; } print(s);";
    for fuel in [None, Some(1 << 62), Some(u64::MAX)] {
        let ((out, result, _), stats) = run_metered(src, &[], Some(5), fuel);
        assert_eq!(out, "4999950000\n");
        assert!(result.is_ok());
        assert_eq!(stats.entered, 1, "fuel {fuel:?}: {stats:?}");
    }
}

/// Nested loops run as linked and side traces (jumps between traces never pass through the
/// interpreter's back edge): every backward jump they take is still charged exactly once.
#[test]
fn fuel_through_linked_and_side_traces() {
    let src = "let t = 0; let y = 0;
         while y < 60 {
             let x = 0;
             while x < 40 { if x % 7 == 3 { t = t + 2; } else { t = t + x * y; } x = x + 1; }
             if y % 5 == 0 { t = t - 1; }
             y = y + 1;
         }
         print(t);";
    let (unmetered, stats) = run_metered(src, &[], Some(2), Some(u64::MAX));
    assert!(stats.side_compiled >= 1, "{stats:?}");
    let need = u64::MAX - unmetered.2;
    assert_eq!(unmetered, run_metered(src, &[], None, Some(u64::MAX)).0);
    let mut starved = 0;
    for budget in (0..need)
        .step_by(need as usize / 97 + 1)
        .chain([need - 1, need])
    {
        let (want, _) = run_metered(src, &[], None, Some(budget));
        let (got, stats) = run_metered(src, &[], Some(2), Some(budget));
        assert_eq!(got, want, "fuel {budget}");
        starved += (got.1.is_err() && stats.side_compiled > 0) as u32;
    }
    assert!(starved >= 50, "{starved}");
}

/// A `for` step that jumps back is charged before its add, and the loop guard gives the charge
/// back when the loop ends: short inner loops (int and float counters) that leave natively
/// hundreds of times, under every budget near the end and a spread of others, print the same,
/// fail at the same instruction and leave the same fuel as the interpreter.
#[test]
fn a_for_loop_that_ends_natively_is_not_charged_its_back_edge() {
    for src in [
        "let t = 0; let y = 0;
         while y < 300 { let x = 0; while x < 3 { t = t + x * y; x = x + 1; } y = y + 1; }
         print(t);",
        "let t = 0.0; let y = 0;
         while y < 300 { let x = 0.5; while x < 3.0 { t = t + x; x = x + 1.0; } y = y + 1; }
         print(t);",
    ] {
        let (unmetered, stats) = run_metered(src, &[], Some(2), Some(u64::MAX));
        assert!(stats.entered >= 1, "{stats:?}");
        assert_eq!(unmetered, run_metered(src, &[], None, Some(u64::MAX)).0);
        let need = u64::MAX - unmetered.2;
        let mut starved = 0;
        for budget in (0..need)
            .step_by(need as usize / 61 + 1)
            .chain(need - 30..=need)
        {
            let (want, _) = run_metered(src, &[], None, Some(budget));
            let (got, stats) = run_metered(src, &[], Some(2), Some(budget));
            assert_eq!(got, want, "fuel {budget}");
            starved += (got.1.is_err() && stats.entered > 0) as u32;
        }
        assert!(starved >= 40, "{starved}");
    }
}

/// A function trace that calls a callee the function JIT refuses (it has loops, which run as
/// loop traces inside the interpreter's run of the callee) charges the call, the callee and
/// the return exactly where the interpreter does: every budget from 0 to the whole run's need
/// fails at the same instruction with the same fuel left, with the JIT on and off.
#[test]
fn fuel_sweep_over_a_function_trace_calling_an_interpreted_callee() {
    let src = "fn a(i, j) { let ij = i + j; return 1.0 / (ij * (ij + 1) / 2 + i + 1); }
         fn inner(n) {
             let s = 0.0; let i = 0;
             while i < n { let j = 0; while j < n { s = s + a(i, j); j = j + 1; } i = i + 1; }
             return s;
         }
         fn outer(n) { let x = inner(n); let y = inner(n + 1); return x - y; }
         let t = 0.0; let k = 0;
         while k < 6 { t = t + outer(k); k = k + 1; }
         print(t);";
    let (unmetered, _) = run_metered(src, &[], None, Some(u64::MAX));
    let need = u64::MAX - unmetered.2;
    let prog = lang::compile(src).expect("compiles");
    let config = VmConfig {
        jit_threshold: 1,
        ..VmConfig::default()
    };
    let mut vm = Vm::new(&prog, config).expect("verifies");
    let mut jit = Jit::new(&prog, &MEM, None);
    vm.run(&mut String::new(), Some(&mut jit)).expect("runs");
    assert!(jit.func_stats().compiled >= 1, "{:?}", jit.func_stats());
    for budget in 0..=need {
        let (want, _) = run_metered(src, &[], None, Some(budget));
        for t in [1, 2] {
            let (got, _) = run_metered(src, &[], Some(t), Some(budget));
            assert_eq!(got, want, "threshold {t}, fuel {budget}");
        }
    }
}
