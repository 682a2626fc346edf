//! The function JIT against the interpreter: programs with calls, recursion, guards failing
//! inside natively called functions, runtime errors below native code and the call-depth
//! limit must print and fail exactly as they do with the JIT off.
#![cfg(feature = "jit")]
#![cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]

mod common;

use std::sync::Mutex;

use common::vmstack::stack_len;
use kiln::jit::driver::Jit;
use kiln::jit::func::FuncStats;
use kiln::platform::Console;
use kiln::vm::{lang, Vm, VmConfig};
use kiln_std::exec::StdExecMemory;

static MEM: StdExecMemory = StdExecMemory::new();

/// Collects `[JIT]` lines.
struct Log(Mutex<Vec<u8>>);

// SAFETY: `write_bytes` only appends to a mutex-protected vector (the tests' allocator is the
// system one, not kiln, so allocating here cannot re-enter kiln).
unsafe impl Console for Log {
    fn write_bytes(&self, bytes: &[u8]) {
        self.0.lock().unwrap().extend_from_slice(bytes);
    }
}

/// What one run produced: the printed output, the error text (empty if none), and the fuel
/// left (native code must charge what the interpreter charges, also when nothing is metered).
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    out: String,
    err: String,
    fuel: u64,
    /// Heap bytes still charged when the run ended, without the register stack (which the
    /// JIT grows ahead for direct calls): arrays native code made or copied must be released
    /// exactly as the interpreter releases them.
    heap: usize,
}

struct Run {
    outcome: Outcome,
    stats: FuncStats,
    log: String,
}

/// Runs `src` with the JIT off (`threshold = None`) or on with that function threshold (loops
/// keep a threshold of 10).
fn run(src: &str, threshold: Option<u32>, max_depth: usize) -> Run {
    let config = VmConfig {
        max_depth,
        ..VmConfig::default()
    };
    run_with(src, threshold, config)
}

/// [`run`] with `config` (its JIT threshold is set here).
fn run_with(src: &str, threshold: Option<u32>, config: VmConfig) -> Run {
    let prog = lang::compile(src).expect("compiles");
    let config = VmConfig {
        jit_threshold: if threshold.is_some() { 10 } else { 0 },
        ..config
    };
    let mut vm = Vm::new(&prog, config).expect("verifies");
    let mut out = String::new();
    let log = Log(Mutex::new(Vec::new()));
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
    let log = String::from_utf8(log.0.into_inner().unwrap()).unwrap();
    let fuel = vm.fuel_left();
    let heap = vm.heap_bytes() - stack_len(&vm) * std::mem::size_of::<kiln::vm::Value>();
    Run {
        outcome: Outcome {
            out,
            err,
            fuel,
            heap,
        },
        stats,
        log,
    }
}

/// Same output and error with the JIT off and on (functions hot after 1, 2 and 10 calls);
/// returns the JIT run at threshold 2.
fn agrees(src: &str, max_depth: usize) -> Run {
    let config = VmConfig {
        max_depth,
        ..VmConfig::default()
    };
    agrees_with(src, config)
}

/// A compiled function without calls and shorter than `ENTRY_MIN_WORDS` is not entered from
/// the interpreter (entering costs more than interpreting it); one that calls is.
#[test]
fn short_leaf_functions_stay_interpreted_when_the_interpreter_calls_them() {
    let src = "fn f(x, y) { return x * 2 + y; }\nlet i = 0;\nlet s = 0;\n\
               while i < 300 { s = f(i, s) % 1000003; i = i + 1; }\nprint(s);";
    let r = agrees(src, 1000);
    assert!(r.stats.compiled >= 1, "{:?}\n{}", r.stats, r.log);
    assert_eq!(r.stats.short_leaves, 1, "{:?}", r.stats);
    let r = agrees(FIB, 1000);
    assert_eq!(r.stats.short_leaves, 0, "{:?}", r.stats);
    // Hot on its leaf path (no call recorded), but the function does call: entered.
    let src = "fn down(n) { if n < 1 { return 0; } return down(n - 1) + 1; }\n\
               let i = 0;\nlet s = 0;\nwhile i < 50 { s = s + down(0); i = i + 1; }\n\
               print(s + down(150));";
    let r = agrees(src, 1000);
    assert!(r.stats.compiled >= 1, "{:?}\n{}", r.stats, r.log);
    assert_eq!(r.stats.short_leaves, 0, "{:?}", r.stats);
}

const FIB: &str = "fn fib(n) { if n < 2 { return n; } return fib(n - 1) + fib(n - 2); }\n\
                   print(fib(20)); print(fib(7));";

#[test]
fn recursion_runs_natively_and_agrees() {
    let r = agrees(FIB, 100_000);
    assert_eq!(r.outcome.out, "6765\n13\n");
    assert!(r.stats.compiled >= 1, "{:?}\n{}", r.stats, r.log);
    assert!(
        r.log.contains("[JIT] Hot function fib detected (calls: 2)"),
        "{}",
        r.log
    );
    assert!(r.log.contains("[JIT] Compiled function fib ("), "{}", r.log);
}

#[test]
fn calls_between_compiled_functions_with_floats_and_ints() {
    let src = "fn sq(x) { return x * x; }\n\
               fn hyp(a, b) { return sq(a) + sq(b); }\n\
               fn mix(i) { return hyp(i, 0.5) - sq(i); }\n\
               let s = 0.0; let i = 0;\n\
               while i < 300 { s = s + mix(i) + hyp(i, i); i = i + 1; }\n\
               print(s);";
    let r = agrees(src, 100_000);
    assert!(r.stats.compiled >= 3, "{:?}\n{}", r.stats, r.log);
}

/// `f` is compiled for int arguments and called from compiled `g`; then `g` passes a float,
/// so `f`'s entry guard fails inside a call made by native code and the interpreter (or a
/// side trace) finishes `f`'s frame and hands the value back to `g`.
#[test]
fn guard_failing_inside_a_natively_called_function() {
    let src = "fn f(x) { return x * 3 + 1; }\n\
               fn g(x) { let y = f(x); return y + f(x + 1); }\n\
               let s = 0; let i = 0;\n\
               while i < 200 { s = s + g(i); i = i + 1; }\n\
               print(s);\n\
               let t = 0.0; i = 0;\n\
               while i < 50 { t = t + g(i + 0.25); i = i + 1; }\n\
               print(t);\n\
               print(g(2), g(2.5));";
    let r = agrees(src, 100_000);
    assert_eq!(r.outcome.out, "120400\n7675.0\n17 20.0\n");
    assert!(r.stats.compiled >= 2, "{:?}\n{}", r.stats, r.log);
}

/// A branch guard fails deep in recursion: the interpreter finishes those frames and their
/// values flow back through native callers.
#[test]
fn branch_guards_failing_mid_recursion() {
    let src = "fn tak(x, y, z) { if y < x { return tak(tak(x - 1, y, z), tak(y - 1, z, x), tak(z - 1, x, y)); } return z; }\n\
               print(tak(12, 8, 4));\n\
               fn odd(n) { if n == 0 { return 0; } if n == 1 { return 1; } return odd(n - 2); }\n\
               let i = 0; let c = 0; while i < 60 { c = c + odd(i); i = i + 1; } print(c);";
    let r = agrees(src, 100_000);
    assert_eq!(r.outcome.out, "5\n30\n");
}

/// A runtime error raised by a callee that compiled code called: same message, function,
/// pc and line as the interpreter's.
#[test]
fn runtime_error_in_a_callee_of_native_code() {
    let src = "fn f(x) { if x > 150 { return x + \"oops\"; } return x; }\n\
               fn g(x) { return f(x) + 1; }\n\
               let i = 0; let s = 0;\n\
               while i < 200 { s = s + g(i); i = i + 1; }\n\
               print(s);";
    let r = agrees(src, 100_000);
    assert!(
        r.outcome.err.contains("(fn f, pc") && r.outcome.err.contains("cannot add int and string"),
        "{:?}",
        r.outcome
    );
}

/// Division by zero inside a recursive compiled function.
#[test]
fn runtime_error_deep_in_recursion() {
    let src = "fn down(n, d) { if n == 0 { return 10 / d; } return down(n - 1, d) + 1; }\n\
               print(down(30, 2));\n\
               print(down(40, 0));";
    let r = agrees(src, 100_000);
    assert_eq!(r.outcome.out, "35\n");
    assert!(
        r.outcome.err.contains("division by zero"),
        "{:?}",
        r.outcome
    );
}

/// Unbounded recursion hits the VM's depth limit with the interpreter's error and location,
/// for a small limit and for the default one.
#[test]
fn deep_recursion_hits_the_depth_limit() {
    let src = "fn r(n) { return r(n + 1) + 1; }\nprint(r(0));";
    for depth in [40, 100_000] {
        let want = run(src, None, depth).outcome;
        assert!(
            want.err.contains("stack overflow (call depth limit)"),
            "{want:?}"
        );
        for t in [1, 2, 10] {
            let got = run(src, Some(t), depth);
            assert_eq!(
                got.outcome, want,
                "depth {depth}, threshold {t}\n{}",
                got.log
            );
        }
    }
    // A recursion that stays just inside the limit completes with the JIT too.
    let ok = "fn r(n) { if n == 0 { return 0; } return r(n - 1) + 1; }\nprint(r(37));";
    let want = run(ok, None, 40).outcome;
    assert_eq!(want.out, "37\n");
    for t in [1, 2, 10] {
        assert_eq!(run(ok, Some(t), 40).outcome, want, "threshold {t}");
    }
}

/// Functions the JIT cannot compile are reported with a reason and stay interpreted.
#[test]
fn unsupported_functions_abort_with_a_reason() {
    let src = "fn show(x) { print(x); return x; }\n\
               fn sum(n) { let s = 0; let i = 0; while i < n { s = s + i; i = i + 1; } return s; }\n\
               let i = 0; while i < 5 { show(i); print(sum(i)); i = i + 1; }";
    let r = agrees(src, 100_000);
    assert!(
        r.log
            .contains("[JIT] Function show aborted at PC 0: `callb` is not supported"),
        "{}",
        r.log
    );
    assert!(
        r.log.contains("[JIT] Function sum aborted at PC")
            && r.log.contains("the function contains a loop"),
        "{}",
        r.log
    );
    assert_eq!(r.stats.compiled, 0, "{}", r.log);
}

/// Registers a compiled caller passes arguments in may still hold strings from earlier code;
/// a direct call must not store over them (that would leak them): under a memory cap that a
/// leak of one string per iteration would exhaust, the JIT run ends like the interpreter's.
#[test]
fn stale_heap_values_in_argument_registers_are_not_leaked() {
    let src = "fn inc(x) { return x + 1; }\n\
               fn twice(x) { return inc(inc(x)); }\n\
               let i = 0; let n = 0;\n\
               while i < 20000 { let t = \"!\" + str(i); n = twice(n); i = i + 1; }\n\
               print(n);";
    let prog = lang::compile(src).expect("compiles");
    let outcome = |jit: bool| {
        let config = VmConfig {
            jit_threshold: if jit { 10 } else { 0 },
            memory_cap: 256 * 1024,
            ..VmConfig::default()
        };
        let mut vm = Vm::new(&prog, config).expect("verifies");
        vm.set_func_threshold(2);
        let mut out = String::new();
        let r = if jit {
            let mut j = Jit::new(&prog, &MEM, None);
            let r = vm.run(&mut out, Some(&mut j));
            assert!(j.func_stats().compiled >= 2, "{:?}", j.func_stats());
            r
        } else {
            vm.run(&mut out, None)
        };
        (out, r.err().map(|e| e.to_string()))
    };
    let want = outcome(false);
    assert_eq!(want, ("40000\n".to_string(), None));
    assert_eq!(outcome(true), want);
}

/// Int `/` and `%` inside compiled functions (negative operands, wrapping), and a zero divisor
/// reached only after the function was compiled.
#[test]
fn int_division_in_compiled_functions() {
    let src = "fn h(a, b) { return a / b * 10 + a % b; }\n\
               fn g(n) { return h(n * 7 - 50, n % 5 - 2) + h(n, 3); }\n\
               let i = 0; let s = 0;\n\
               while i < 40 { if i % 5 != 2 { s = s + g(i); } i = i + 1; }\n\
               print(s, h(-9223372036854775807 - 1, -1));\n\
               print(g(2));";
    let r = agrees(src, 100_000);
    assert!(
        r.outcome.err.contains("division by zero"),
        "{:?}",
        r.outcome
    );
    assert!(r.stats.compiled >= 2, "{:?}\n{}", r.stats, r.log);
}

/// Native code belongs to one run's JIT: a second run of the same VM, after that JIT is gone,
/// interprets (and gets the same output) instead of calling released code.
#[test]
fn a_second_run_does_not_reuse_native_code_of_a_dropped_jit() {
    let prog = lang::compile(FIB).expect("compiles");
    let config = VmConfig {
        jit_threshold: 10,
        ..VmConfig::default()
    };
    let mut vm = Vm::new(&prog, config).expect("verifies");
    vm.set_func_threshold(2);
    let mut first = String::new();
    {
        let mut jit = Jit::new(&prog, &MEM, None);
        vm.run(&mut first, Some(&mut jit)).expect("runs");
        assert!(jit.func_stats().compiled >= 1);
    }
    let mut second = String::new();
    vm.run(&mut second, None).expect("runs again");
    assert_eq!(first, "6765\n13\n");
    assert_eq!(second, first);
}

/// With a fuel budget the budget runs out at the same instruction, with the same fuel left,
/// as without the JIT (calls then go through the VM, which checks the budget).
#[test]
fn fuel_budgets_run_out_where_the_interpreter_does() {
    let prog = lang::compile(FIB).expect("compiles");
    let outcome = |jit: bool| {
        let config = VmConfig {
            jit_threshold: if jit { 10 } else { 0 },
            fuel: Some(50_000),
            ..VmConfig::default()
        };
        let mut vm = Vm::new(&prog, config).expect("verifies");
        vm.set_func_threshold(1);
        let mut out = String::new();
        let log = Log(Mutex::new(Vec::new()));
        let r = if jit {
            let mut j = Jit::new(&prog, &MEM, Some(&log));
            vm.run(&mut out, Some(&mut j))
        } else {
            vm.run(&mut out, None)
        };
        (out, r.err().map(|e| e.to_string()), vm.fuel_left())
    };
    let want = outcome(false);
    assert!(
        want.1.as_deref().is_some_and(|e| e.contains("out of fuel")),
        "{want:?}"
    );
    assert_eq!(outcome(true), want);
}

/// The path recorded first is a leaf (no calls), so the recursive path becomes a side trace
/// that the entry trace's exit continues in natively, past its prologue, on the same frame:
/// ints and floats live across the recursive calls (in callee-saved registers and spill
/// slots) must survive, and both paths return floats.
#[test]
fn linked_side_traces_keep_values_live_across_calls() {
    let src = "fn f(n, x) {\n\
                 if n < 2 { return x * 0.5; }\n\
                 let a = n * 3; let b = n + 7; let c = x + 1.5; let d = a * b; let e = c * 2.0;\n\
                 let r = f(n - 1, c) + f(n - 2, x);\n\
                 return r + a + b + c + d + e;\n\
               }\n\
               print(f(1, 2.0));\n\
               print(f(0, 3.0));\n\
               print(f(16, 0.25));\n\
               let i = 0; let s = 0.0; while i < 30 { s = s + f(i % 9, i * 0.5); i = i + 1; } print(s);";
    let r = agrees(src, 100_000);
    assert!(r.stats.compiled >= 2, "{:?}\n{}", r.stats, r.log);
    assert!(
        r.log.contains("side trace at PC"),
        "no side trace was compiled:\n{}",
        r.log
    );
}

/// A callee called directly returns an int on some calls and a float on others: each call
/// that does not return the type the caller's trace expects leaves the callee's or the
/// caller's trace, and the interpreter's output and fuel count come out unchanged (the rest of
/// the caller is charged once, also when the callee left its trace).
#[test]
fn mixed_int_and_float_returns_of_direct_callees() {
    let src = "fn m(n) { if n % 7 == 3 { return 1.5; } return n; }\n\
               fn s(n) { if n == 0 { return 0; } return m(n) + s(n - 1); }\n\
               fn t(n) { if n == 0 { return 0; } let k = m(n); return s(n % 11) + t(n - 1) + k; }\n\
               print(s(5)); print(s(2)); print(s(40)); print(t(60));\n\
               let i = 0; let a = 0; while i < 50 { a = a + t(i % 13); i = i + 1; } print(a);";
    let r = agrees(src, 100_000);
    assert!(r.stats.compiled >= 2, "{:?}\n{}", r.stats, r.log);
}

/// A runtime error in a leaf reached through a linked side trace deep in a recursion that
/// native code made: the interpreter's message and location, the same fuel.
#[test]
fn runtime_error_in_a_linked_side_trace_deep_in_recursion() {
    let src = "fn f(n, d) { if n < 2 { return 100 / d; } return f(n - 1, d) + f(n - 2, d); }\n\
               print(f(1, 5)); print(f(12, 5));\n\
               print(f(14, n_zero()));\n\
               fn n_zero() { return 0; }";
    let r = agrees(src, 100_000);
    assert_eq!(r.outcome.out, "20\n4660\n");
    assert!(
        r.outcome.err.contains("division by zero") && r.outcome.err.contains("fn f"),
        "{:?}",
        r.outcome
    );
}

/// [`agrees`] with `config` (memory cap, fuel).
fn agrees_with(src: &str, config: VmConfig) -> Run {
    let want = run_with(src, None, config).outcome;
    let mut keep = None;
    for t in [1, 2, 10] {
        let got = run_with(src, Some(t), config);
        assert_eq!(
            got.outcome, want,
            "function threshold {t}\n{src}\n{}",
            got.log
        );
        if t == 2 {
            keep = Some(got);
        }
    }
    keep.unwrap()
}

const TREES: &str = "fn bottom_up(depth) { if depth == 0 { return []; } \
                       return [bottom_up(depth - 1), bottom_up(depth - 1)]; }\n\
                     fn check(tree) { if len(tree) == 0 { return 1; } \
                       return 1 + check(tree[0]) + check(tree[1]); }\n\
                     let keep = bottom_up(7);\n\
                     let d = 0; let s = 0;\n\
                     while d < 9 { let i = 0; while i < 6 { s = s + check(bottom_up(d)); i = i + 1; } d = d + 1; }\n\
                     print(s, check(keep));";

/// Trees of arrays built and walked by recursive functions (binary_trees): both functions
/// compile as function traces (arrays as arguments, results, returns, `newarr`, `getidx`,
/// `len`), and the output, fuel and heap left are the interpreter's.
#[test]
fn array_trees_built_and_walked_by_function_traces() {
    let r = agrees(TREES, 100_000);
    assert_eq!(r.outcome.out, "6078 255\n");
    for f in ["bottom_up", "check"] {
        assert!(
            r.log.contains(&format!("[JIT] Compiled function {f} (")),
            "{f} not compiled:\n{}",
            r.log
        );
    }
}

/// Under a memory cap the trees fit in only if every array native code dropped is released
/// when the interpreter releases it; under a smaller cap the run fails with the interpreter's
/// error at the same place, with the same output and heap left.
#[test]
fn array_trees_under_a_memory_cap() {
    for cap in [48 * 1024, 12 * 1024, 4 * 1024] {
        let config = VmConfig {
            memory_cap: cap,
            ..VmConfig::default()
        };
        let r = agrees_with(TREES, config);
        if cap == 48 * 1024 {
            assert_eq!(r.outcome.out, "6078 255\n", "{}", r.log);
            assert!(r.stats.compiled >= 2, "{:?}\n{}", r.stats, r.log);
        } else {
            assert!(
                r.outcome.err.contains("out of memory"),
                "cap {cap}: {:?}",
                r.outcome
            );
        }
    }
}

/// With a fuel budget the trees run out of fuel where the interpreter does.
#[test]
fn array_trees_under_a_fuel_budget() {
    let config = VmConfig {
        fuel: Some(20_000),
        ..VmConfig::default()
    };
    let r = agrees_with(TREES, config);
    assert!(r.outcome.err.contains("out of fuel"), "{:?}", r.outcome);
}

/// Array arguments whose elements change type, indices that leave the array, arrays of
/// numbers built from ints and floats, and arrays returned through several compiled callers:
/// guards and helper sites fall back to the interpreter with its output and error.
#[test]
fn array_arguments_element_types_and_bounds() {
    let src = "fn pick(a, i) { return a[i]; }\n\
               fn twice(a, i) { let x = pick(a, i); return x + x; }\n\
               fn pair(x, y) { return [x, y, [x]]; }\n\
               fn nest(n) { if n == 0 { return []; } return pair(nest(n - 1), n + 0.5); }\n\
               fn depth(t) { if len(t) == 3 { return 1 + depth(t[0]); } return 0; }\n\
               let a = [1, 2, 3, 4.5, [7]];\n\
               let i = 0; let s = 0;\n\
               while i < 40 { s = s + twice(a, i % 3); i = i + 1; }\n\
               print(s, twice(a, 3), len(pick(a, 4)));\n\
               let t = 0; i = 0;\n\
               while i < 30 { t = t + depth(nest(i % 6)); i = i + 1; }\n\
               print(t, len(nest(3)), pick(pair(5, 6), 1));\n\
               print(twice(a, 9));";
    let r = agrees(src, 100_000);
    assert_eq!(r.outcome.out, "158 9.0 1\n75 3 6\n");
    assert!(r.outcome.err.contains("out of range"), "{:?}", r.outcome);
    assert!(r.stats.compiled >= 3, "{:?}\n{}", r.stats, r.log);
}

/// Branches on call results (whose payload the recorder does not know) are recorded as
/// falling through behind a guard; the other way becomes a side trace. Both ways agree with
/// the interpreter, and the function compiles instead of aborting.
#[test]
fn branches_on_call_results() {
    let src = "fn sign(x) { if x < 0 { return -1; } return 1; }\n\
               fn f(n) { let s = sign(n - 50); if s > 0 { return n * 2 + f(n - 40); } return n - 1; }\n\
               let i = 0; let t = 0;\n\
               while i < 100 { t = t + f(i); i = i + 1; }\n\
               print(t, f(120));";
    let r = agrees(src, 100_000);
    assert_eq!(r.outcome.out, "10990 439\n");
    assert!(
        r.log.contains("[JIT] Compiled function f ("),
        "f not compiled:\n{}",
        r.log
    );
    assert!(
        !r.log.contains("a branch depends on a call result"),
        "{}",
        r.log
    );
}
