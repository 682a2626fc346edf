//! Direct calls between function traces against the interpreter, where their cost was cut:
//! arguments stored into the callee's registers straight from where their values are (ints,
//! floats, constants, spilled values, next to array arguments), the budget that alone bounds
//! both the call depth and the register stack (large frames, a memory cap, the depth limit
//! around the machine-stack allowance), fuel charged call by call through the helper, and a
//! side exit three direct calls deep. Output, error text (with its location) and fuel left
//! must be the interpreter's.
#![cfg(feature = "jit")]
#![cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]

use kiln::jit::driver::Jit;
use kiln::jit::func::FuncStats;
use kiln::vm::{lang, Vm, VmConfig};
use kiln_std::exec::StdExecMemory;
use std::fmt::Write as _;

mod common;
use common::log::Log;

static MEM: StdExecMemory = StdExecMemory::new();

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    out: String,
    err: String,
    fuel: u64,
}

/// Runs `src` with the JIT off (`threshold = None`) or with functions hot after `threshold`
/// calls; the JIT's counters and log too.
fn run(src: &str, threshold: Option<u32>, config: VmConfig) -> (Outcome, FuncStats, String) {
    let prog = lang::compile(src).expect("compiles");
    let config = VmConfig {
        jit_threshold: if threshold.is_some() { 10 } else { 0 },
        ..config
    };
    let mut vm = Vm::new(&prog, config).expect("verifies");
    let mut out = String::new();
    let log = Log::default();
    let (result, stats) = match threshold {
        Some(t) => {
            vm.set_func_threshold(t);
            let mut jit = Jit::new(&prog, &MEM, Some(&log));
            let r = vm.run(&mut out, Some(&mut jit));
            (r, jit.func_stats())
        }
        None => (vm.run(&mut out, None), FuncStats::default()),
    };
    let err = result.err().map(|e| e.to_string()).unwrap_or_default();
    let log = log.0.into_inner().unwrap();
    let fuel = vm.fuel_left();
    (Outcome { out, err, fuel }, stats, log)
}

/// The interpreter's outcome, checked against the JIT at function thresholds 1, 2 and 10;
/// returns it and the JIT's counters at threshold 2.
fn agrees(src: &str, config: VmConfig) -> (Outcome, FuncStats) {
    let (want, _, _) = run(src, None, config);
    let mut stats = FuncStats::default();
    for t in [1, 2, 10] {
        let (got, s, log) = run(src, Some(t), config);
        assert_eq!(got, want, "function threshold {t}\n{src}\n{log}");
        if t == 2 {
            stats = s;
        }
    }
    (want, stats)
}

fn plain() -> VmConfig {
    VmConfig {
        max_depth: 100_000,
        ..VmConfig::default()
    }
}

/// Takeuchi's function: three int arguments, two of them computed, called in argument
/// position of another call.
const TAK: &str = "fn tak(x, y, z) { if y < x { return tak(tak(x - 1, y, z), tak(y - 1, z, x), \
                   tak(z - 1, x, y)); } return z; }\n";

#[test]
fn tak_runs_natively_and_agrees() {
    let src = format!("{TAK}print(tak(12, 8, 4)); print(tak(3, 2, 1)); print(tak(14, 9, 3));");
    let (want, stats) = agrees(&src, plain());
    assert_eq!(want.out, "5\n2\n9\n");
    assert!(stats.compiled >= 1, "{stats:?}");
}

/// Arguments of every kind in one call: int and float values, int and float constants, an
/// array (already in the callee's register) between them, and values that live across many
/// others (spilled before the call).
#[test]
fn mixed_arguments_reach_the_callee() {
    let src = "fn g(a, x, k, arr, f, n) {\n\
                 if n == 0 { return a + k + arr[0] + 0; }\n\
                 return g(a + 1, x * 0.5, 7, arr, 2.5, n - 1) + x + f + k + arr[1];\n\
               }\n\
               fn h(n) {\n\
                 let a = n * 2; let b = n * 3; let c = n * 5; let d = n * 7; let e = n * 11;\n\
                 let f = n * 13; let g2 = n * 17; let i = n * 19; let j = n * 23;\n\
                 let x = n * 0.25; let y = n * 0.125;\n\
                 let r = g(b, y, 3, [n, c], x, n % 5);\n\
                 return r + a + b + c + d + e + f + g2 + i + j + x + y;\n\
               }\n\
               let s = 0.0; let i = 0; while i < 40 { s = s + h(i); i = i + 1; } print(s);\n\
               print(g(1, 1.0, 2, [3, 4], 0.5, 6));";
    let (_, stats) = agrees(src, plain());
    assert!(stats.compiled >= 2, "{stats:?}");
}

/// A function with a frame of about 200 registers, so nested direct calls' windows lie far
/// apart: the budget Rust gives an activation must keep every one of them inside the register
/// stack, with the stack growing ahead and under a memory cap (where it grows only as the
/// interpreter grows it).
fn big_frame_source(depth: usize) -> String {
    // Constants need no spill slot where the snapshots keep them.
    let mut s = String::from("fn big(n, x) {\n  if n == 0 { return x; }\n  let v0 = n + x;\n");
    for i in 1..190 {
        let _ = writeln!(s, "  let v{i} = {i};");
    }
    s.push_str("  return big(n - 1, x + 1) + v0 + v189;\n}\n");
    let _ = write!(
        s,
        "print(big(3, 1)); print(big({depth}, 2)); print(big({}, 3));",
        depth / 2
    );
    s
}

#[test]
fn large_frames_stay_inside_the_register_stack() {
    let src = big_frame_source(300);
    let (want, stats) = agrees(&src, plain());
    assert!(want.err.is_empty(), "{want:?}");
    let (_, _, log) = run(&src, Some(2), plain());
    assert!(stats.compiled >= 1, "{stats:?}\n{log}");
    let capped = VmConfig {
        memory_cap: 8 << 20,
        ..plain()
    };
    let (want, _) = agrees(&src, capped);
    assert!(want.err.is_empty(), "{want:?}");
}

/// Unbounded recursion with three arguments and a large frame reaches the depth limit with the
/// interpreter's error and location, for limits below, at and above the number of direct
/// calls one activation may make.
#[test]
fn depth_limit_with_three_arguments_and_large_frames() {
    let src = "fn r(a, b, c) { let d = a + b; let e = d * c; let f = e - a; \
               return r(a + 1, f % 7, c) + d + e; }\nprint(r(0, 1, 2));";
    for depth in [50, 199, 200, 201, 450, 5_000] {
        let config = VmConfig {
            max_depth: depth,
            ..VmConfig::default()
        };
        let (want, _) = agrees(src, config);
        assert!(
            want.err.contains("stack overflow (call depth limit)"),
            "{want:?}"
        );
    }
    let big = big_frame_source(100_000);
    for depth in [120, 260] {
        let config = VmConfig {
            max_depth: depth,
            ..VmConfig::default()
        };
        let (want, _) = agrees(&big, config);
        assert!(
            want.err.contains("stack overflow (call depth limit)"),
            "{want:?}"
        );
    }
}

/// Fuel running out inside a chain of calls between compiled functions, at many points (each
/// budget stops at another call or return): every call then goes through the helper, which
/// must find the arguments in ARGS.
#[test]
fn fuel_runs_out_inside_a_call_chain() {
    let src = format!(
        "{TAK}fn mix(x, f, n) {{ if n == 0 {{ return f; }} return mix(x + 1, f * 0.5, n - 1) \
         + x; }}\nlet i = 0; let s = 0.0; while i < 200 {{ s = s + tak(i % 9, 4, 2) + \
         mix(i, 1.5, i % 6); i = i + 1; }} print(s);"
    );
    for fuel in [3_000, 7_777, 20_001, 54_321, 150_000] {
        let config = VmConfig {
            fuel: Some(fuel),
            ..plain()
        };
        let (want, _) = agrees(&src, config);
        assert!(want.err.contains("out of fuel"), "fuel {fuel}: {want:?}");
    }
}

/// `a` calls `b` calls `c` calls `d`, all compiled and called directly; `d`'s trace expects an
/// int and gets a float once in a while (its guard fails three calls below the activation
/// Rust entered), and sometimes a division by zero there: the interpreter finishes `d`, the
/// value reaches `c`, `b` and `a` natively, and the error carries `d`'s location.
#[test]
fn side_exit_three_calls_deep() {
    let src = "fn d(x) { return x * 3 + 1; }\n\
               fn c(x, k) { if k % 5 == 4 { return d(x + 0.5) + 1; } return d(x) + 1; }\n\
               fn b(x, k) { return c(x + 1, k) * 2; }\n\
               fn a(x, k) { return b(x, k) + b(x + 2, k + 1); }\n\
               let i = 0; let s = 0; while i < 100 { s = s + a(i, i); i = i + 1; } print(s);\n\
               fn dz(x, z) { return x / z; }\n\
               fn cz(x, z) { return dz(x, z) + 1; }\n\
               fn bz(x, z) { return cz(x, z) + 1; }\n\
               fn az(x, z) { return bz(x, z) + 1; }\n\
               let j = 0; let t = 0; while j < 60 { t = t + az(j, 3); j = j + 1; } print(t);\n\
               print(az(1, 0));";
    let (want, stats) = agrees(src, plain());
    assert!(want.err.contains("division by zero"), "{want:?}");
    assert!(want.err.contains("dz"), "{want:?}");
    assert!(stats.compiled >= 4, "{stats:?}");
}
