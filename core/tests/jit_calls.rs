//! Calls inside loop traces against the interpreter: callees with branches, callees whose
//! guards fail, nested calls, calls nested deeper than a trace follows, the call-depth limit,
//! fuel running out inside a followed callee, errors inside callees, recursion inside a loop.
//! Every program runs with the JIT off (the oracle) and on at thresholds 1 and 7; output,
//! result (error kind, function, pc, line) and the fuel left must be the same.
#![cfg(feature = "jit")]
#![cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]

mod common;

use common::agree::run_vm;
use common::log::Log;
use kiln::jit::driver::{Jit, JitStats};
use kiln::vm::{lang, RuntimeError, RuntimeErrorKind, Vm, VmConfig};
use kiln_std::exec::StdExecMemory;

static MEM: StdExecMemory = StdExecMemory::new();

/// Everything a run shows the outside world.
#[derive(Debug, PartialEq)]
struct Outcome {
    out: String,
    result: Result<String, RuntimeError>,
    fuel_left: u64,
}

struct Run {
    outcome: Outcome,
    stats: JitStats,
    log: String,
}

#[derive(Clone, Copy)]
struct Opts {
    fuel: Option<u64>,
    max_depth: usize,
}

const PLAIN: Opts = Opts {
    fuel: None,
    max_depth: 100_000,
};

/// Runs `src`; with `threshold = Some(t)` the JIT is on (loops and functions hot at `t`).
fn run(src: &str, threshold: Option<u32>, opts: Opts) -> Run {
    let prog = lang::compile(src).expect("compiles");
    let config = VmConfig {
        jit_threshold: threshold.unwrap_or(0),
        fuel: opts.fuel,
        max_depth: opts.max_depth,
        ..VmConfig::default()
    };
    let ran = run_vm(&prog, config, &[]);
    Run {
        outcome: Outcome {
            out: ran.out,
            result: ran.result.map(|v| format!("{v:?}")),
            fuel_left: ran.vm.fuel_left(),
        },
        stats: ran.stats,
        log: ran.log,
    }
}

/// The same outcome with the JIT off and on at thresholds 1 and 7; returns the run at 7.
fn agrees_with(src: &str, opts: Opts) -> Run {
    let want = run(src, None, opts).outcome;
    let mut keep = None;
    for t in [1, 7] {
        let got = run(src, Some(t), opts);
        assert_eq!(got.outcome, want, "threshold {t}\n{src}\n{}", got.log);
        if t == 7 {
            keep = Some(got);
        }
    }
    keep.unwrap()
}

fn agrees(src: &str) -> Run {
    agrees_with(src, PLAIN)
}

fn has_line(r: &Run, start: &str, contains: &str) -> bool {
    r.log
        .lines()
        .any(|l| l.starts_with(start) && l.contains(contains))
}

/// Five small functions called from one loop, one of them branchy, one returning a bool that
/// a branch of the loop tests.
const CALLS: &str = "\
fn add(a, b) { return a + b; }
fn square(x) { return x * x; }
fn clamp(x, lo, hi) {
    if x < lo { return lo; }
    if x > hi { return hi; }
    return x;
}
fn mix(h, x) { return (h * 31 + x) % 1000003; }
fn is_odd(x) { return x % 2 == 1; }
let h = 7;
let odd = 0;
let i = 0;
while i < 600 {
    let v = clamp(square(i % 50), 100, 2000);
    h = mix(h, add(v, i));
    if is_odd(h) { odd = odd + 1; }
    i = i + 1;
}
print(h, odd);
";

/// About 40 words of int arithmetic per iteration (into `h`, from `i`): enough work before a
/// call for a loop trace to pay for entering it.
macro_rules! busy_work {
    () => {
        "    h = (h * 31 + i * 7 + 3) % 1000003;
    h = (h * 37 + i * 5 + 1) % 1000003;
    h = (h * 41 + i * 3 + 9) % 1000003;
    h = (h * 43 + i + 2) % 1000003;
    h = (h * 47 + i * 11 + 4) % 1000003;
    h = (h * 53 + i * 13 + 6) % 1000003;
    h = (h * 59 + i * 17 + 8) % 1000003;
"
    };
}

#[test]
fn calls_in_a_loop_are_inlined_and_agree() {
    let r = agrees(CALLS);
    assert!(!r.log.contains("race aborted"), "{}", r.log);
    for f in ["add", "square", "clamp", "mix", "is_odd"] {
        assert!(
            has_line(
                &r,
                "[JIT] Trace at PC ",
                &format!("inlines {f} (call at PC ")
            ),
            "{f}\n{}",
            r.log
        );
    }
    assert!(r.stats.inlined_calls >= 5, "{:?}", r.stats);
    // The existing lines stay as they were.
    assert!(
        has_line(&r, "[JIT] Compiled loop at PC ", "bytes)"),
        "{}",
        r.log
    );
    // Every path through `clamp` and both results of `is_odd` get traces of their own.
    assert!(r.stats.side_compiled >= 2, "{:?}\n{}", r.stats, r.log);
}

#[test]
fn a_callee_whose_guards_fail_resumes_the_interpreter_at_the_call() {
    // `pick` branches on its argument's value, then its argument turns into a float (the
    // loop's own load guard fails), then `half` divides by zero inside the callee: the error
    // names `half`, its pc and line, as in the interpreter.
    let src = "\
fn pick(x) { if x % 3 == 0 { return x * 2; } return x + 1; }
fn half(x, d) { return x / d; }
let s = 0;
let x = 1;
let i = 0;
while i < 200 {
    s = s + pick(i);
    if i == 120 { x = 0.5; }
    s = s + half(i, 7) + x;
    i = i + 1;
}
print(s);
let j = 0;
while j < 100 {
    s = s + half(j * 3, 60 - j);
    j = j + 1;
}
print(s);
";
    let r = agrees(src);
    let err = r.outcome.result.as_ref().unwrap_err();
    assert_eq!(err.kind, RuntimeErrorKind::DivisionByZero, "{err:?}");
    assert_eq!(err.func, "half", "{err:?}");
    assert!(
        has_line(&r, "[JIT] Trace at PC ", "inlines half"),
        "{}",
        r.log
    );
}

/// Calls three deep, one level branchy.
const NESTED: &str = "\
fn h3(x) { return x * 3 + 1; }
fn h2(x) { if x > 100 { return h3(x) - x; } return h3(x + 1); }
fn h1(x, y) { return h2(x) + h2(y); }
let s = 0;
let i = 0;
while i < 300 {
    s = (s + h1(i, s % 7)) % 100003;
    i = i + 1;
}
print(s);
";

/// A callee with more guards than the trace has snapshots (guards inside a followed call share
/// one): every exit of the compiled trace still has its link-table entry.
#[test]
fn a_callee_with_many_guards_compiles() {
    let src = "\
fn g(x) {
    if x > 100 { return 1; }
    if x > 90 { return 2; }
    if x > 80 { return 3; }
    if x > 70 { return 4; }
    if x > 60 { return 5; }
    return (0 / x) + x / 3 + x % 5;
}
let s = 0;
let c = 30;
while c > 0 {
    c = c - 1;
    s = s + g(-c);
}
print(s);
";
    let r = agrees(src);
    assert!(!r.log.contains("a recorder bug"), "{}", r.log);
    assert!(has_line(&r, "[JIT] Trace at PC ", "inlines g"), "{}", r.log);
}

#[test]
fn nested_calls_are_followed_to_the_depth_limit() {
    let r = agrees(NESTED);
    assert!(
        has_line(&r, "[JIT] Trace at PC ", "inlines h3 (call at PC "),
        "{}",
        r.log
    );
    assert!(r.log.contains(", depth 3)"), "{}", r.log);
    assert!(!r.log.contains("race aborted"), "{}", r.log);
}

#[test]
fn calls_nested_deeper_than_a_trace_follows_exit_at_the_outermost_call() {
    let src = concat!(
        "\
fn f8(x) { return x + 8; }
fn f7(x) { return f8(x) + 7; }
fn f6(x) { return f7(x) + 6; }
fn f5(x) { return f6(x) + 5; }
fn f4(x) { return f5(x) + 4; }
fn f3(x) { return f4(x) + 3; }
fn f2(x) { return f3(x) + 2; }
fn f1(x) { return f2(x) + 1; }
let s = 0;
let h = 1;
let i = 0;
while i < 200 {
",
        busy_work!(),
        "    s = s + f5(i) + f1(i);
    i = i + 1;
}
print(s, h);
"
    );
    let r = agrees(src);
    assert!(
        r.log.lines().any(|l| l.starts_with("[JIT] Trace at PC ")
            && l.contains("exits at the call of f1 at PC ")
            && l.ends_with("calls nest deeper than a loop trace follows them")),
        "{}",
        r.log
    );
    // `f5` (four deep) is followed before that.
    assert!(
        has_line(&r, "[JIT] Trace at PC ", "inlines f8"),
        "{}",
        r.log
    );
}

#[test]
fn calls_the_trace_cannot_follow_cost_an_exit_not_the_loop() {
    // A callee with a loop, a recursive callee, a callee returning nil: the trace exits at
    // each call and the interpreter makes it; the loop itself, which does enough work before
    // the first call to pay for entering it, is never blacklisted.
    let src = concat!(
        "\
fn steps(x) { let n = 0; while x > 1 { x = x / 2; n = n + 1; } return n; }
fn fib(n) { if n < 2 { return n; } return fib(n - 1) + fib(n - 2); }
fn nothing(x) { let y = x + 1; }
let s = 0;
let h = 1;
let i = 0;
while i < 300 {
",
        busy_work!(),
        "    s = s + 1;
    s = s + steps(i);
    s = s + fib(i % 9);
    nothing(i);
    i = i + 1;
}
print(s, h);
"
    );
    let r = agrees(src);
    assert!(
        has_line(
            &r,
            "[JIT] Trace at PC ",
            "exits at the call of steps at PC "
        ),
        "{}",
        r.log
    );
    assert!(r.stats.call_exits >= 1, "{:?}", r.stats);
    assert!(
        !r.log
            .lines()
            .any(|l| l.starts_with("[JIT] Trace at PC ") && l.contains("blacklisted")),
        "{}",
        r.log
    );
}

#[test]
fn recursion_inside_a_loop_agrees() {
    let src = "\
fn fib(n) { if n < 2 { return n; } return fib(n - 1) + fib(n - 2); }
fn tak(x, y, z) {
    if y < x { return tak(tak(x - 1, y, z), tak(y - 1, z, x), tak(z - 1, x, y)); }
    return z;
}
let s = 0;
let i = 0;
while i < 40 {
    s = s + fib(i % 14) + tak(i % 7, 3, 1);
    i = i + 1;
}
print(s);
";
    agrees(src);
}

/// `down(d)` recurses `d` frames deep, then runs a loop whose trace performs two calls inside
/// each other (`mid`, `leaf`). The trace is compiled at depth 1 (`down(0)`); `down(d)` then
/// enters it before its first call (iteration 0 calls nothing): near the depth limit the
/// interpreter's `StackOverflow` must come from the same call.
#[test]
fn the_call_depth_limit_is_the_interpreters() {
    let src = |d: usize| {
        format!(
            "\
fn leaf(x) {{ return x + 1; }}
fn mid(x) {{ return leaf(x) * 2; }}
fn down(d) {{
    if d > 0 {{ return down(d - 1); }}
    let s = 0;
    let i = 0;
    while i < 50 {{ if i > 0 {{ s = s + mid(i); }} i = i + 1; }}
    return s;
}}
print(down(0));
print(down({d}));
"
        )
    };
    let max_depth = 40;
    let opts = Opts {
        fuel: None,
        max_depth,
    };
    let mut overflowed = 0;
    let mut fitted = 0;
    for d in max_depth - 6..=max_depth {
        let r = agrees_with(&src(d), opts);
        match &r.outcome.result {
            Err(e) => {
                assert_eq!(e.kind, RuntimeErrorKind::StackOverflow, "{e:?}");
                overflowed += 1;
            }
            Ok(_) => {
                assert!(r.stats.inlined_calls >= 2, "{:?}\n{}", r.stats, r.log);
                fitted += 1;
            }
        }
    }
    assert!(overflowed >= 2 && fitted >= 2, "{overflowed} {fitted}");
}

/// Budgets that run out at every point of a few iterations: at followed calls (the interpreter
/// charges a callee's length at its `call`) and returns (the caller's rest), nested ones
/// inside callees included, and at the back edge. Same error, same place, same fuel left.
#[test]
fn fuel_running_out_inside_a_followed_callee_is_the_interpreters() {
    for (src, callees) in [(CALLS, &["main"][..]), (NESTED, &["h1", "h2"][..])] {
        let used = u64::MAX - run(src, None, PLAIN).outcome.fuel_left;
        let mut stops = std::collections::BTreeSet::new();
        for budget in (used / 2..used / 2 + 90).chain(used - 3..used + 2) {
            let opts = Opts {
                fuel: Some(budget),
                max_depth: 100_000,
            };
            let r = agrees_with(src, opts);
            if let Err(e) = &r.outcome.result {
                assert_eq!(e.kind, RuntimeErrorKind::OutOfFuel, "{e:?}");
                stops.insert((e.func.clone(), e.pc));
            }
        }
        for f in callees {
            assert!(stops.iter().any(|(g, _)| g == f), "{f}: {stops:?}");
        }
        assert!(stops.len() >= 5, "{stops:?}");
    }
}

#[test]
fn the_suite_call_programs_agree() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/programs");
    for (name, args) in [
        ("calls", "3000"),
        ("collatz", "3000"),
        ("spectral_norm", "30"),
    ] {
        let src = std::fs::read_to_string(root.join(format!("{name}.kl"))).unwrap();
        let prog = lang::compile(&src).expect("compiles");
        let outs: Vec<String> = [None, Some(1), Some(7)]
            .into_iter()
            .map(|t| {
                let config = VmConfig {
                    jit_threshold: t.unwrap_or(0),
                    ..VmConfig::default()
                };
                let mut vm = Vm::new(&prog, config).unwrap();
                vm.set_args(&[args]).unwrap();
                let mut out = String::new();
                match t {
                    Some(_) => {
                        let mut jit = Jit::new(&prog, &MEM, None);
                        vm.run(&mut out, Some(&mut jit)).unwrap();
                    }
                    None => {
                        vm.run(&mut out, None).unwrap();
                    }
                }
                format!("{out}{}", vm.fuel_left())
            })
            .collect();
        assert_eq!(outs[0], outs[1], "{name}");
        assert_eq!(outs[0], outs[2], "{name}");
    }
}

/// A callee that calls the host (a side effect) is not followed: the trace exits at the call,
/// and the host sees every call exactly once, in order, as without the JIT.
#[test]
fn a_callee_with_a_host_call_is_made_by_the_interpreter() {
    use kiln::vm::compile_with;
    use kiln::vm::host::{Host, Ty};
    use kiln::vm::Value;
    use std::cell::RefCell;
    use std::rc::Rc;

    let src = "\
fn report(x) { let y = x * 3; emit(y); return y + 1; }
fn plain(x) { return x * 2; }
let s = 0;
let i = 0;
while i < 200 {
    s = s + plain(i);
    if i % 3 == 0 { s = s + report(i); }
    i = i + 1;
}
print(s);
";
    let run = |threshold: u32| {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let mut h = Host::new();
        let s2 = seen.clone();
        h.register("emit", &[Ty::Int], move |_, a| {
            s2.borrow_mut().push(a.int(0));
            Ok(Value::Nil)
        })
        .unwrap();
        let prog = compile_with(&h, src).expect("compiles");
        let config = VmConfig {
            jit_threshold: threshold,
            ..VmConfig::default()
        };
        let mut vm = Vm::new(&prog, config).expect("verifies");
        let log = Log::default();
        let mut out = String::new();
        let mut stats = JitStats::default();
        let r = if threshold == 0 {
            vm.run_with(&mut h, &mut [], &mut out, None)
        } else {
            let mut jit = Jit::new(&prog, &MEM, Some(&log));
            let r = vm.run_with(&mut h, &mut [], &mut out, Some(&mut jit));
            stats = jit.stats();
            r
        };
        drop(h);
        let seen = seen.borrow().clone();
        (
            (out, r.map(|v| format!("{v:?}")), vm.fuel_left(), seen),
            stats,
            log.0.into_inner().unwrap(),
        )
    };
    let (want, ..) = run(0);
    assert_eq!(want.3.len(), 67);
    for t in [1, 7] {
        let (got, stats, log) = run(t);
        assert_eq!(got, want, "threshold {t}\n{log}");
        assert!(stats.inlined_calls >= 1, "{stats:?}\n{log}");
        assert!(
            log.contains("exits at the call of report at PC "),
            "threshold {t}\n{log}"
        );
    }
}

/// A callee that moves a string (a runtime call that writes a VM register: a side effect) is
/// not followed: the trace exits at the call with that reason, never as a recorder bug.
#[test]
fn a_callee_that_moves_a_string_exits_at_the_call() {
    let src = concat!(
        "\
fn tag(s, x) { let t = s; return x * 2 + 1; }
let s = 0;
let h = 1;
let name = \"kiln\";
let i = 0;
while i < 300 {
",
        busy_work!(),
        "    s = s + h + tag(name, i);
    s = s % 1000003;
    i = i + 1;
}
print(s, h);
"
    );
    let r = agrees(src);
    assert!(!r.log.contains("recorder bug"), "{}", r.log);
    assert!(
        has_line(&r, "[JIT] ", "exits at the call of tag at PC "),
        "{}",
        r.log
    );
}

/// A loop that does most of its work after a call it cannot follow (`steps` holds a loop): the
/// trace stops at the call, the VM makes it, and a side trace from the instruction after the
/// call runs the rest of the iteration and links back, so the loop leaves native code only
/// for the call. Nothing aborts, nothing is paused.
const CALL_STOP: &str = concat!(
    "\
fn steps(x) { let n = 0; while x > 1 { x = x / 2; n = n + 1; } return n; }
let s = 0;
let h = 1;
let i = 0;
while i < 600 {
    s = s + steps(i + 2);
",
    busy_work!(),
    "    i = i + 1;
}
print(s, h);
"
);

#[test]
fn a_call_the_trace_cannot_follow_is_a_call_stop_and_the_loop_stays_native() {
    let r = agrees(CALL_STOP);
    assert!(
        has_line(
            &r,
            "[JIT] Trace at PC ",
            "a call stop (the VM makes the call"
        ),
        "{}",
        r.log
    );
    assert!(
        has_line(&r, "[JIT] Compiled side trace at PC ", ""),
        "{}",
        r.log
    );
    assert!(r.stats.call_stops >= 550, "{:?}\n{}", r.stats, r.log);
    assert_eq!(r.stats.aborted, 0, "{:?}", r.stats);
    // (`steps`'s own loop, a few iterations per call, is paused; the main loop is not.)
    assert!(!r.log.contains("call stops included"), "{}", r.log);
}

/// A runtime error inside a call made at a call stop is reported where it happened (inside
/// the callee), with the output and fuel of the interpreter.
#[test]
fn an_error_inside_a_call_made_at_a_call_stop_is_the_interpreters() {
    let src = concat!(
        "\
fn share(x, d) { let n = 0; while n < 2 { n = n + 1; } return x / d; }
let s = 0;
let h = 1;
let i = 0;
while i < 600 {
    s = s + share(1000, 400 - i);
",
        busy_work!(),
        "    i = i + 1;
}
print(s, h);
"
    );
    let r = agrees(src);
    let e = r.outcome.result.as_ref().expect_err("divides by zero");
    assert_eq!(e.kind, RuntimeErrorKind::DivisionByZero, "{e:?}");
    assert_eq!(e.func, "share", "{e:?}");
    assert!(r.stats.call_stops >= 300, "{:?}", r.stats);
}

/// Budgets that run out around call stops: at the call (the callee's length), inside the
/// callee's loop, at its return (the caller's rest) and in the native code after the call.
/// Same error, same place, same fuel left as the interpreter.
#[test]
fn fuel_running_out_around_a_call_stop_is_the_interpreters() {
    let used = u64::MAX - run(CALL_STOP, None, PLAIN).outcome.fuel_left;
    let mut stops = std::collections::BTreeSet::new();
    for budget in (used / 2..used / 2 + 120).chain(used - 3..used + 2) {
        let opts = Opts {
            fuel: Some(budget),
            max_depth: 100_000,
        };
        let r = agrees_with(CALL_STOP, opts);
        if let Err(e) = &r.outcome.result {
            assert_eq!(e.kind, RuntimeErrorKind::OutOfFuel, "{e:?}");
            stops.insert((e.func.clone(), e.pc));
        }
    }
    for f in ["main", "steps"] {
        assert!(stops.iter().any(|(g, _)| g == f), "{f}: {stops:?}");
    }
    assert!(stops.len() >= 4, "{stops:?}");
}

/// Calls made at call stops that recurse deeper each time: the register stack grows (and
/// moves) inside the call, and native code after it must run on the moved frame; near the
/// depth limit the `StackOverflow` is the interpreter's, from the same call.
#[test]
fn calls_made_at_call_stops_grow_the_stack_and_meet_the_depth_limit_as_the_interpreter() {
    let src = |limit: usize| {
        format!(
            concat!(
                "\
fn deep(n) {{ if n == 0 {{ return 0; }} return deep(n - 1) + 1; }}
let s = 0;
let h = 1;
let i = 0;
while i < {} {{
    s = s + deep(i * 7);
",
                busy_work!(),
                "    i = i + 1;
}}
print(s, h);
"
            ),
            limit
        )
    };
    let r = agrees(&src(300));
    assert!(r.outcome.result.is_ok(), "{:?}", r.outcome.result);
    assert!(r.stats.call_stops >= 250, "{:?}\n{}", r.stats, r.log);
    let opts = Opts {
        fuel: None,
        max_depth: 1000,
    };
    let r = agrees_with(&src(300), opts);
    let e = r.outcome.result.as_ref().expect_err("too deep");
    assert_eq!(e.kind, RuntimeErrorKind::StackOverflow, "{e:?}");
    assert!(r.stats.call_stops >= 100, "{:?}", r.stats);
}
