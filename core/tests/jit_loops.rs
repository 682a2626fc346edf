//! The loop JIT's coverage: bools, int `/` and `%`, nested loops through linked and side
//! traces. Every program runs with the JIT off (the oracle) and forced on at low thresholds;
//! output, errors (kind, pc, line) and the `[JIT]` log lines are compared.
#![cfg(feature = "jit")]
#![cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]

mod common;
use common::vmstack::stack_len;

use std::path::PathBuf;

use common::agree::run_vm;
use kiln::jit::driver::JitStats;
use kiln::vm::{lang, RuntimeError, VmConfig};

/// What one run produced.
struct Run {
    out: String,
    result: Result<(), RuntimeError>,
    stats: JitStats,
    log: String,
    /// Sum of the interpreter's loop-arrival counters over function 0: how often the
    /// interpreter itself took a loop's back edge or fell into a loop (`loop`).
    interpreted_back_edges: u64,
    /// Live heap bytes charged to the VM after the run, the register stack's not counted.
    heap_bytes: usize,
}

/// Runs `src`; with `threshold = Some(t)` the JIT is on.
fn run(src: &str, args: &[&str], threshold: Option<u32>) -> Run {
    let prog = lang::compile(src).expect("compiles");
    let config = VmConfig {
        jit_threshold: threshold.unwrap_or(0),
        ..VmConfig::default()
    };
    let ran = run_vm(&prog, config, args);
    let interpreted_back_edges = (0..prog.funcs[0].code.len())
        .map(|pc| ran.vm.loop_count(0, pc) as u64)
        .sum();
    Run {
        out: ran.out,
        result: ran.result.map(drop),
        stats: ran.stats,
        log: ran.log,
        interpreted_back_edges,
        heap_bytes: ran.vm.heap_bytes()
            - stack_len(&ran.vm) * std::mem::size_of::<kiln::vm::Value>(),
    }
}

/// Same output and same result (error kind, function, pc, line) with and without the JIT, at
/// several thresholds; returns the run at threshold 10.
fn same_as_interpreter(src: &str, args: &[&str]) -> Run {
    let want = run(src, args, None);
    let mut keep = None;
    for t in [1, 10, 57] {
        let got = run(src, args, Some(t));
        assert_eq!(got.out, want.out, "threshold {t}\n{src}\n{}", got.log);
        assert_eq!(got.result, want.result, "threshold {t}\n{src}\n{}", got.log);
        // A leaked or aliased heap value would show here. The register stack is not
        // compared: direct calls between compiled functions grow it ahead of time
        // (`vm::native::DIRECT_SLACK`), and a loop trace that follows a call from its first
        // iteration on never has the interpreter make that call (and grow the stack for it).
        assert_eq!(
            got.heap_bytes, want.heap_bytes,
            "threshold {t}: heap bytes\n{src}"
        );
        if t == 10 {
            keep = Some(got);
        }
    }
    keep.unwrap()
}

fn assert_no_abort_at(r: &Run, what: &str) {
    assert!(
        !r.log.contains("aborted"),
        "{what}: a trace aborted\n{}",
        r.log
    );
}

/// Every `[JIT]` line has one of the known shapes (loops, side traces, and the function JIT's).
fn assert_log_lines_well_formed(log: &str) {
    for line in log.lines() {
        let rest = line.strip_prefix("[JIT] ").expect(line);
        let ok = [
            "Hot loop detected at PC ",
            "Compiled loop at PC ",
            "Compiled side trace at PC ",
            "Trace aborted at PC ",
            "Side trace aborted at PC ",
            "Trace at PC ",
            "Side trace at PC ",
            "Side exit to PC ",
            "Hot function ",
            "Compiled function ",
            "Function ",
        ]
        .iter()
        .any(|p| rest.starts_with(p));
        assert!(ok, "unexpected log line {line:?}");
        if rest.starts_with("Compiled") {
            let (_, size) = rest.split_once(" (").expect(line);
            let n: usize = size
                .strip_suffix(" bytes)")
                .expect(line)
                .parse()
                .expect(line);
            assert!(n > 0, "{line}");
        }
    }
}

fn example(name: &str) -> (String, Vec<String>) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let src = std::fs::read_to_string(dir.join(format!("{name}.kl"))).unwrap();
    let args = std::fs::read_to_string(dir.join(format!("{name}.args"))).unwrap_or_default();
    (src, args.split_whitespace().map(String::from).collect())
}

// ---- bools -------------------------------------------------------------------------------------

#[test]
fn bool_registers_loadbool_not_and_jmpif_are_traced() {
    let r = same_as_interpreter(
        "let c = 0; let d = 0; let i = 0;
         while i < 4000 {
             let odd = false;
             if i % 2 == 1 { odd = true; }
             let even = !odd;
             if even { c = c + 1; }
             if !even { d = d + 3; }
             i = i + 1;
         }
         print(c, d);",
        &[],
    );
    assert_no_abort_at(&r, "bool loop");
    assert!(
        r.stats.compiled >= 1 && r.stats.entered >= 10,
        "{:?}",
        r.stats
    );
}

#[test]
fn a_bool_carried_around_the_loop_is_negated_natively() {
    let r = same_as_interpreter(
        "let f = false; let g = true; let c = 0; let i = 0;
         while i < 5001 {
             f = !f;
             let h = !g;
             if f { c = c + 1; }
             if h { c = c + 1000; }
             i = i + 1;
         }
         print(c, f, g);",
        &[],
    );
    assert_no_abort_at(&r, "flip loop");
    assert!(
        r.stats.compiled >= 1 && r.stats.entered >= 1,
        "{:?}",
        r.stats
    );
}

#[test]
fn a_bool_that_flips_mid_loop_leaves_through_its_guard() {
    let r = same_as_interpreter(
        "let flag = false; let c = 0; let i = 0;
         while i < 6000 {
             if i == 3500 { flag = true; }
             if flag { c = c + 2; } else { c = c + 1; }
             i = i + 1;
         }
         print(c, flag, !flag);",
        &[],
    );
    assert!(r.stats.compiled >= 1, "{:?}\n{}", r.stats, r.log);
}

#[test]
fn comparisons_that_produce_bools() {
    let r = same_as_interpreter(
        "let a = 0; let b = 0; let i = 0; let x = 0.5;
         while i < 5000 {
             let small = i < 2500;
             let le = x <= 1000.0;
             let same = small == le;
             if same { a = a + 1; }
             if i == 4999 == false { b = b + 1; }
             x = x + 0.5;
             i = i + 1;
         }
         print(a, b, x);",
        &[],
    );
    assert!(r.stats.compiled >= 1, "{:?}\n{}", r.stats, r.log);
}

#[test]
fn the_mandelbrot_middle_loop_records_without_aborting() {
    let (src, _) = example("mandelbrot");
    let r = same_as_interpreter(&src, &["120"]);
    assert!(!r.log.contains("`loadbool` is not supported"), "{}", r.log);
    // PC 23: the loop header after `args()[0]` compiles to one `getidxi` (after the outer and
    // the middle loop's `loop` markers).
    assert!(
        r.log.contains("[JIT] Compiled loop at PC 23 "),
        "middle loop not compiled\n{}",
        r.log
    );
    assert_log_lines_well_formed(&r.log);
}

// ---- int division ------------------------------------------------------------------------------

#[test]
fn int_division_and_remainder_match_the_interpreter() {
    let r = same_as_interpreter(
        "let s = 0; let t = 0; let i = -3000; let m = -9223372036854775807 - 1; let w = 0;
         while i < 3000 {
             s = s + i / 7 + i % 7 + 1000 / (i % 13 + 20) - i % -5;
             let d = -1;
             if i > 0 { d = 1; }
             t = t + m / d + m % d;
             w = w + (i * 31) % 1000 / 3;
             i = i + 1;
         }
         print(s, t, w);",
        &[],
    );
    assert_no_abort_at(&r, "int division loop");
    assert!(r.stats.compiled >= 1, "{:?}", r.stats);
}

/// Int `/` and `%` by constants divide inline (`DivIK`, `ModIK`; -1 and 0 stay runtime
/// calls): signs, `i64::MIN`, 1, -1, large divisors, and a dozen live values around each
/// division (x86-64's `idiv` needs `rdx`, which then holds one of them).
#[test]
fn int_division_by_constants_matches_the_interpreter() {
    let r = same_as_interpreter(
        "let a = 1; let b = 2; let c = 3; let d = 4; let e = 5; let f = 6; let g = 7; let h = 8;
         let m = -9223372036854775807 - 1; let s = 0; let i = -2000;
         while i < 2000 {
             a = a + i / 2; b = b + i % 2; c = c + i / -3; d = d + i % -3;
             e = e + (i * 7919) % 1000003; f = f + i / 1; g = g + i % 1 + i / -1 + i % -1;
             h = h + m / 2 + m % 3 + m / -7 + (m + i) % 9223372036854775807;
             s = s + a % 17 + b / 5 + c % 11 + d / 13 + e % 7 + f / 9 + g % 5 + h % 4;
             i = i + 1;
         }
         print(a, b, c, d, e, f, g, h, s);",
        &[],
    );
    assert_no_abort_at(&r, "division by constants");
    assert!(r.stats.compiled >= 1, "{:?}", r.stats);
}

/// Powers of two divide by shifts on x86-64 (a negative dividend is biased first so the
/// quotient truncates toward zero, and `%` keeps the dividend's sign): every sign, `i64::MIN`
/// and `i64::MAX`, divisors 2 to 2^62, the remainder of a spilled or a reused operand.
#[test]
fn int_division_by_powers_of_two_matches_the_interpreter() {
    let r = same_as_interpreter(
        "let a = 0; let b = 0; let c = 0; let d = 0; let e = 0; let f = 0; let g = 0; let h = 0;
         let m = -9223372036854775807 - 1; let x = 9223372036854775807; let i = -3000;
         while i < 3000 {
             let v = i * 3074457345618258 + i % 7;
             a = a + i / 2 + i % 2; b = b + i / 8 - i % 8; c = c + v / 4096 + v % 4096;
             d = d + v / 4611686018427387904 + v % 4611686018427387904;
             e = e + m / 2 + m % 2 + x / 1024 + x % 1024 + m / 4611686018427387904;
             f = f + (i - 1) % 16 * 3 + (i + 1) / 16; g = g + (a % 64) / 4; h = h + b % 32 + c / 2;
             i = i + 1;
         }
         print(a, b, c, d, e, f, g, h);",
        &[],
    );
    assert_no_abort_at(&r, "division by powers of two");
    assert!(r.stats.compiled >= 1, "{:?}", r.stats);
}

#[test]
fn a_divisor_that_becomes_zero_raises_the_interpreters_error_at_the_same_place() {
    // Computed inside the trace: only the divisor guard can catch it.
    for op in ["/", "%"] {
        let src = format!(
            "let s = 0; let i = 0;
             while i < 5000 {{
                 let d = 4000 - i;
                 s = s + 100 {op} d;
                 i = i + 1;
             }}
             print(s);"
        );
        let r = same_as_interpreter(&src, &[]);
        let e = r.result.as_ref().expect_err("divides by zero");
        assert_eq!(e.line, 4, "{e}");
        assert!(r.stats.compiled >= 1, "{op}: {:?}\n{}", r.stats, r.log);
    }
    // Set on a path of its own (the trace leaves through a branch guard first).
    for op in ["/", "%"] {
        let src = format!(
            "let d = 5; let s = 0; let i = 0;
             while i < 5000 {{
                 if i == 4000 {{ d = 0; }}
                 s = s + 100 {op} d;
                 i = i + 1;
             }}
             print(s);"
        );
        let r = same_as_interpreter(&src, &[]);
        let e = r.result.as_ref().expect_err("divides by zero");
        assert_eq!(e.line, 4, "{e}");
    }
}

#[test]
fn a_constant_zero_divisor_in_a_hot_loop_errors_like_the_interpreter() {
    let r = same_as_interpreter(
        "let s = 0; let i = 0;
         while i < 3000 { if i == 2000 { s = s % 0; } s = s + i; i = i + 1; }
         print(s);",
        &[],
    );
    assert!(r.result.is_err());
}

// ---- nested loops: linked traces and side traces -----------------------------------------------

#[test]
fn a_loop_nest_runs_without_bouncing_through_the_interpreter() {
    let src = "let t = 0; let y = 0;
         while y < 200 {
             let x = 0;
             while x < 200 {
                 let k = 0; let acc = 0;
                 while k < 5 { acc = acc + k * x; k = k + 1; }
                 if acc % 3 == 0 { t = t + acc; } else { t = t - 1; }
                 x = x + 1;
             }
             y = y + 1;
         }
         print(t);";
    let off = run(src, &[], None);
    let r = same_as_interpreter(src, &[]);
    assert!(r.stats.side_compiled >= 1, "{:?}\n{}", r.stats, r.log);
    assert!(
        r.log.contains("[JIT] Compiled side trace at PC "),
        "{}",
        r.log
    );
    assert_log_lines_well_formed(&r.log);
    // 40,000 inner-loop starts; the interpreter takes a few back edges per row at most.
    assert!(
        r.interpreted_back_edges < 5_000,
        "the interpreter took {} back edges (without the JIT: {})\n{}",
        r.interpreted_back_edges,
        off.interpreted_back_edges,
        r.log
    );
}

#[test]
fn a_side_trace_whose_first_branch_alternates_gets_a_sibling_for_the_other_way() {
    // After the inner loop, a side trace starts at the `if`: recorded one way, its first guard
    // (a bool's, which resumes at the `jmpif` itself) fails every other row, resuming at its
    // own start. That exit links to a second trace from the same start instead of returning
    // to the interpreter each time.
    let src = "let t = 0; let up = true; let y = 0;
         while y < 3000 {
             let k = 0;
             while k < 4 { t = t + k * y; k = k + 1; }
             if up { t = t + 2; up = false; } else { t = t - 1; up = true; }
             y = y + 1;
         }
         print(t, up);";
    let r = same_as_interpreter(src, &[]);
    assert_log_lines_well_formed(&r.log);
    assert!(
        r.log.contains("the other way out of the trace there"),
        "{}",
        r.log
    );
    // 3000 rows: without the sibling, about one entry from the interpreter every other row.
    assert!(r.stats.entered < 100, "{:?}\n{}", r.stats, r.log);
}

#[test]
fn a_linked_exit_that_knows_other_tags_enters_through_the_checks() {
    // The inner loop's trace requires `z` to hold a float (it reads it unchecked past its
    // fast entry). Every seventh row the outer code stores an int in `z` first: the exit that
    // links to the inner loop then knows `z` holds an int, so it takes the checked entry,
    // which fails and leaves at the inner loop's start; the other rows enter fast. Reading
    // the int's bits as a float would change the sum.
    let src = "let t = 0.0; let y = 0;
         while y < 3000 {
             let z = 0.5;
             if y % 7 == 0 { z = 3; }
             let k = 0;
             while k < 4 { t = t + z * k; k = k + 1; }
             y = y + 1;
         }
         print(t);";
    let r = same_as_interpreter(src, &[]);
    assert_log_lines_well_formed(&r.log);
    assert!(r.stats.side_compiled >= 1, "{:?}\n{}", r.stats, r.log);
    assert_eq!(r.out.trim(), "15435.0");
}

#[test]
fn a_compare_branch_exit_resumes_on_the_other_way() {
    // The side trace's first guard is a float compare-and-branch (`sign == 1.0`): its exit
    // resumes at the `else` (the guard fails exactly when the comparison comes out the other
    // way), so a second side trace starts there; nothing resumes at the `if`, and no sibling
    // is needed.
    let src = "let t = 0; let sign = 1.0; let y = 0;
         while y < 3000 {
             let k = 0;
             while k < 4 { t = t + k * y; k = k + 1; }
             if sign == 1.0 { t = t + 2; sign = -1.0; } else { t = t - 1; sign = 1.0; }
             y = y + 1;
         }
         print(t, sign);";
    let r = same_as_interpreter(src, &[]);
    assert_log_lines_well_formed(&r.log);
    assert!(
        !r.log.contains("the other way out of the trace there"),
        "{}",
        r.log
    );
    assert!(r.stats.side_compiled >= 2, "{:?}\n{}", r.stats, r.log);
    assert!(r.stats.entered < 100, "{:?}\n{}", r.stats, r.log);
}

#[test]
fn a_branch_on_a_register_that_held_a_string_resumes_at_the_branch() {
    // bench fasta: `r >= cum[k]` compares the register that holds `syms[k]`, a string, after
    // the search. Resuming past that branch, where the register is dead, left the string in it
    // for every later exit to find (each one then went through the driver): its exits resume
    // at the branch, whose side trace reads the register as a number and drops the string.
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../bench/programs");
    let src = std::fs::read_to_string(dir.join("fasta.kl")).unwrap();
    same_as_interpreter(&src, &["2000"]);
    // At the CLI's threshold: 665 returns to the driver; 2803 with the exits past the branch.
    let r = run(&src, &["2000"], Some(1000));
    assert!(r.stats.entered < 1500, "{:?}\n{}", r.stats, r.log);
}

#[test]
fn an_inner_loop_exit_records_on_through_the_outer_header_into_the_inner_loop() {
    // The outer loop's trace runs straight to the inner loop's header and links there; the
    // side trace of the inner loop's exit records the rest of the outer iteration and, instead
    // of linking to the outer trace, the next iteration's path up to the inner loop too
    // (mandelbrot's per-point path, as LuaJIT's traces have it).
    let (src, _) = example("mandelbrot");
    let r = same_as_interpreter(&src, &["60"]);
    let ends: Vec<(String, String)> = r
        .log
        .lines()
        .filter(|l| l.contains(": links to the trace there"))
        .filter_map(|l| {
            let rest = l.strip_prefix("[JIT] Trace at PC ")?;
            let (from, rest) = rest.split_once(" ends at PC ")?;
            let (to, _) = rest.split_once(':')?;
            Some((from.to_string(), to.to_string()))
        })
        .collect();
    let side_starts: Vec<&str> = r
        .log
        .lines()
        .filter_map(|l| l.strip_prefix("[JIT] Compiled side trace at PC "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    // Headers whose trace loops (no "ends at" line of its own): the inner loop's.
    let looping: Vec<&str> = r
        .log
        .lines()
        .filter_map(|l| l.strip_prefix("[JIT] Compiled loop at PC "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|pc| !ends.iter().any(|e| e.0 == *pc))
        .collect();
    assert!(
        ends.iter()
            .any(|e| side_starts.contains(&e.0.as_str()) && looping.contains(&e.1.as_str())),
        "no side trace links into the inner loop's trace\n{}",
        r.log
    );
}

#[test]
fn float_branches_on_nan_end_as_the_interpreter() {
    // `x > 4.0` and `x <= 2.0` recorded both ways, with NaN in some iterations: a guard kept
    // as "not greater" lets NaN pass (`FNLt`), one kept as "greater" exits on it, and every
    // exit resumes on the branch NaN takes in the interpreter.
    let src = "let s = 0.0; let n = 0; let i = 0; let zero = 0.0;
         while i < 3000 {
             let x = (i % 7) * 1.0;
             if i % 5 == 0 { x = zero / zero; }
             if i % 11 == 3 { x = 0.0 - zero / zero; }
             if x > 4.0 { n = n + 1; } else { s = s + 1.0; }
             if x <= 2.0 { n = n + 10; } else { s = s + 0.5; }
             if 3.0 < x { n = n + 100; }
             if 5.0 >= x { s = s + 0.25; }
             i = i + 1;
         }
         print(s, n);";
    let r = same_as_interpreter(src, &[]);
    assert!(r.stats.compiled >= 1, "{}", r.log);
}

#[test]
fn mandelbrot_runs_its_whole_nest_natively() {
    let (src, _) = example("mandelbrot");
    let n = "150";
    let off = run(&src, &[n], None);
    let r = same_as_interpreter(&src, &[n]);
    assert!(r.stats.side_compiled >= 1, "{:?}\n{}", r.stats, r.log);
    assert!(
        r.interpreted_back_edges * 20 < 150 * 150,
        "the interpreter took {} back edges (without the JIT: {})\n{}",
        r.interpreted_back_edges,
        off.interpreted_back_edges,
        r.log
    );
}

#[test]
fn a_side_trace_ends_at_a_builtin_it_cannot_make() {
    // The escape path makes a string (`str`, not traced): its side trace ends with an exit at
    // that `callb`, the interpreter makes the call, and the exit to the `callb` itself (where
    // a side recording would record nothing) stays in the interpreter without aborts.
    let r = same_as_interpreter(
        "let t = 0; let i = 0;
         while i < 6000 {
             if i % 4 == 0 { t = t + len(str(i % 10 + 10)); } else { t = t + 1; }
             i = i + 1;
         }
         print(t);",
        &[],
    );
    assert!(r.stats.side_compiled >= 1, "{:?}\n{}", r.stats, r.log);
    assert!(
        r.log.contains(": exits to the interpreter there"),
        "{}",
        r.log
    );
    assert!(r.log.contains("[JIT] Side exit to PC "), "{}", r.log);
    assert_no_abort_at(&r, "the str path");
    assert_log_lines_well_formed(&r.log);
}

#[test]
fn an_exit_never_overwrites_a_heap_value_natively() {
    // `v` holds a fresh string when the inner trace is entered (the first iterations do not
    // write it), and the trace overwrites it without reading it: a native write-back must
    // leave that exit to the host, which drops the string (a raw store would leak it and the
    // heap byte count would differ).
    let r = same_as_interpreter(
        "let t = 0; let y = 0;
         while y < 60 {
             let v = \"str\" + \"ing\";
             let x = 0;
             while x < 200 { if x > 5 { v = x; t = t + v; } x = x + 1; }
             y = y + 1;
         }
         print(t);",
        &[],
    );
    assert!(r.stats.compiled >= 1, "{:?}\n{}", r.stats, r.log);
}

#[test]
fn the_example_corpus_agrees_with_the_interpreter() {
    for name in ["mandelbrot", "fib", "sieve", "spectral_norm", "strings"] {
        let (src, args) = example(name);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let r = same_as_interpreter(&src, &args);
        assert_log_lines_well_formed(&r.log);
    }
}

#[test]
fn fused_le_and_variable_step_loops_compile_and_match() {
    let r = same_as_interpreter(
        "let n = 3000; let s = 0; let i = 1; let k = 3; let x = 0.0;
         while i <= n { s = s + i % 7; i = i + k; }
         let j = 0; let m = 2500;
         while j < m { x = x + 0.5; j = j + k; }
         let f = 0.25;
         while f <= 900.0 { s = s + 1; f = f + 0.5; }
         print(s, i, j, x, f);",
        &[],
    );
    assert!(r.stats.compiled >= 3, "{:?}\n{}", r.stats, r.log);
}

#[test]
fn multiply_accumulate_loops_compile_and_match() {
    let r = same_as_interpreter(
        "let s = 0.0; let n = 0; let i = 0; let x = 0.37;
         while i < 4000 {
             s = s + x * 1.5e-3;
             let k = i % 5;
             n = n + k * i;
             x = x + 0.001;
             s = s + x * x;
             i = i + 1;
         }
         print(s, n, x);",
        &[],
    );
    assert!(r.stats.compiled >= 1, "{:?}\n{}", r.stats, r.log);
}

/// A loop the JIT cannot compile is tried `MAX_ATTEMPTS` times, with growing waits between
/// attempts, then blacklisted (one log line says so) and never recorded again.
#[test]
fn an_uncompilable_loop_is_retried_with_backoff_then_blacklisted() {
    let src = "let s = 0;\nlet i = 0;\n\
               while i < 20000 { s = s + len(str(i % 10)); i = i + 1; }\nprint(s);";
    let r = same_as_interpreter(src, &[]);
    assert_eq!(r.out, "20000\n");
    let aborts = r.log.matches("[JIT] Trace aborted at PC ").count();
    assert_eq!(aborts, kiln::jit::trace::MAX_ATTEMPTS as usize, "{}", r.log);
    assert_eq!(r.stats.aborted, kiln::jit::trace::MAX_ATTEMPTS as u64);
    assert_eq!(r.log.matches("blacklisted after").count(), 1, "{}", r.log);
    assert_eq!(r.stats.compiled, 0);
}

/// A loop compiled on a path that turns out rare, whose common path cannot be compiled (a
/// new string): every entry leaves at the first guard, so the JIT stops entering it for a
/// while instead of paying the entry on every iteration. (At threshold 10 the loop is hot at
/// its 10th arrival: the entry and 9 backward jumps, so the recorded iteration is `i == 9`.)
#[test]
fn a_trace_whose_entries_do_not_pay_is_left_alone() {
    let src = "let i = 0;\nlet s = 0;\n\
               while i < 30000 {\n  if i % 1000 == 9 { s = s + 1; } else { s = s + len(str(i % 10 + 100)); }\n\
               i = i + 1;\n}\nprint(s);";
    let r = same_as_interpreter(src, &[]);
    assert_eq!(r.out, "89940\n");
    assert!(r.stats.compiled >= 1, "{:?}\n{}", r.stats, r.log);
    assert!(r.stats.paused >= 1, "{:?}\n{}", r.stats, r.log);
    assert!(
        r.stats.entered < 3000,
        "entered on most iterations: {:?}",
        r.stats
    );
    // A loop that runs natively is never paused.
    let r = same_as_interpreter(
        "let i = 0;\nlet s = 0;\nwhile i < 30000 { s = s + i % 7; i = i + 1; }\nprint(s);",
        &[],
    );
    assert_eq!(r.stats.paused, 0, "{:?}", r.stats);
}

// ---- loops whose recorded iteration is their last; string constants ----------------------------

#[test]
fn a_short_inner_loop_compiles_though_its_recording_sees_its_last_iteration() {
    // The inner loop runs once or twice per outer iteration: its recording usually sees the
    // `for` step fall through. The trace guards that the loop goes on; that guard is its exit.
    let src = "let s = 0; let i = 0;
        while i < 3000 {
            let j = 0;
            while j < 1 + i % 2 { s = s + i * j + 1; j = j + 1; }
            i = i + 1;
        }
        print(s, i);";
    let r = same_as_interpreter(src, &[]);
    assert!(!r.log.contains("left the loop"), "{}", r.log);
    assert!(r.stats.compiled >= 1, "{}", r.log);
    assert_log_lines_well_formed(&r.log);
}

#[test]
fn a_float_counted_loop_that_ends_in_its_recorded_iteration_matches_the_interpreter() {
    let src = "let s = 0.0; let i = 0;
        while i < 2000 {
            let x = 0.25;
            while x < 1.0 { s = s + x; x = x + 0.5; }
            i = i + 1;
        }
        print(s);";
    let r = same_as_interpreter(src, &[]);
    assert!(!r.log.contains("left the loop"), "{}", r.log);
}

#[test]
fn string_constants_loaded_in_a_loop_are_clones_of_the_constant() {
    // `w = ""` in the loop body (a `loadk` into a register that held an int before), then
    // concatenation, `!=` on strings, and a store into an array of strings: the word_count
    // shape. Heap bytes must come out exactly as the interpreter's.
    let src = "let parts = [\"ka\", \"lo\", \"mi\"]; let words = array(500, \"\");
        let i = 0; let letters = 0; let diff = 0;
        while i < 500 {
            let t = i % 7 % 3;
            let w = \"\";
            let p = 0;
            let n = 1 + t;
            while p < n { w = w + parts[(i + p) % 3]; p = p + 1; }
            if w != \"kalo\" { diff = diff + 1; }
            words[i] = w;
            letters = letters + len(w);
            i = i + 1;
        }
        print(letters, diff, words[0], words[499]);";
    let r = same_as_interpreter(src, &[]);
    // PC 13: the outer loop's header; its trace holds the `loadk` of `""`.
    assert!(r.log.contains("[JIT] Compiled loop at PC 13 "), "{}", r.log);
    assert!(r.stats.compiled >= 2, "{}", r.log);
}

#[test]
fn a_long_string_constant_in_a_loop_matches_the_interpreter() {
    // Longer than the short-string table takes: the recording gives up on it, the interpreter
    // runs it.
    let src = "let i = 0; let n = 0; let s = \"x\";
        while i < 300 {
            s = \"a constant longer than forty bytes, not interned at all\";
            n = n + len(s);
            s = \"\";
            i = i + 1;
        }
        print(n, s);";
    same_as_interpreter(src, &[]);
}

#[test]
fn float_remainder_in_a_loop_matches_the_interpreter() {
    // Float `%` (truncated, sign of the dividend), mixed with ints, by a negative divisor, and
    // by zero (NaN) in some iterations.
    let src = "let s = 0.0; let t = 0.0; let i = 0; let n = 0;
        while i < 2000 {
            let x = i * 0.37 - 300.0;
            s = s + x % 7.5 + x % (0.0 - 2.25) + i % 3.5;
            let d = (i % 50) * 0.5;
            let r = x % d;
            if r != r { n = n + 1; } else { t = t + r; }
            i = i + 1;
        }
        print(s, t, n);";
    let r = same_as_interpreter(src, &[]);
    assert!(!r.log.contains("aborted"), "{}", r.log);
    assert!(r.stats.compiled >= 1, "{}", r.log);
}

// ---- ends of linked traces: dead strings, calls and returns ---------------------------------

/// fasta's shape: an inner search loop of a few iterations inside the hot loop, a string built
/// on the side path after it (`line`, and `syms[k]` in a register the next iteration
/// overwrites), and a `print` every 60 symbols.
const FASTA_NEST: &str = "let syms = [\"a\", \"c\", \"g\", \"t\"];
     let cum = [0.3, 0.5, 0.7, 1.0];
     let line = \"\"; let w = 0; let i = 0; let seed = 42;
     while i < 12000 {
         seed = (seed * 3877 + 29573) % 139968;
         let r = 1.0 * seed / 139968.0;
         let k = 0;
         while k < 3 && r >= cum[k] { k = k + 1; }
         line = line + syms[k];
         w = w + 1;
         if w == 60 { print(line); line = \"\"; w = 0; }
         i = i + 1;
     }
     print(line);";

#[test]
fn a_string_left_in_a_dead_register_does_not_send_linked_exits_to_the_host() {
    let r = same_as_interpreter(FASTA_NEST, &[]);
    assert!(r.stats.side_compiled >= 1, "{:?}\n{}", r.stats, r.log);
    assert!(
        r.log.contains(": links to the trace there"),
        "no trace links to another\n{}",
        r.log
    );
    // Each symbol passes through the outer trace, the inner one and a side trace; the chain
    // comes back to the driver only around the `print`s (one symbol in 60) and while the
    // traces get hot. A linked exit that found the old `syms[k]` string in its register went
    // through the host instead: about one return to the driver per symbol.
    assert!(
        r.stats.entered * 30 < 12_000,
        "native code returned to the driver {} times for 12000 symbols\n{:?}\n{}",
        r.stats.entered,
        r.stats,
        r.log
    );
    assert_log_lines_well_formed(&r.log);
}

#[test]
fn a_builtin_the_side_trace_cannot_make_ends_it_with_an_exit() {
    let r = same_as_interpreter(FASTA_NEST, &[]);
    // The path that prints is a side trace ending at the `print` (the interpreter makes
    // the call), not a side recording aborted and blacklisted.
    assert!(
        r.log.contains(": exits to the interpreter there"),
        "the print path has no side trace\n{}",
        r.log
    );
    assert!(
        !r.log.contains("`callb` is not supported"),
        "a side recording aborted at the print\n{}",
        r.log
    );
}

#[test]
fn a_side_exit_at_a_return_is_left_to_the_interpreter_without_aborts() {
    // nbody's `advance`: loops nested in a function called from a hot loop; the last loop's
    // exit resumes at the function's `retnil`.
    let src = "fn step(n, v) {
             let i = 0;
             while i < n {
                 let j = i + 1;
                 while j < n { v[i] = v[i] + 0.5 * v[j]; v[j] = v[j] * 0.75; j = j + 1; }
                 i = i + 1;
             }
             i = 0;
             while i < n { v[i] = v[i] * 0.5; i = i + 1; }
         }
         let v = [1.0, 2.0, 3.0, 4.0, 5.0];
         let s = 0;
         while s < 3000 { step(5, v); s = s + 1; }
         print(v[0]); print(v[4]);";
    let r = same_as_interpreter(src, &[]);
    assert!(r.stats.side_compiled >= 2, "{:?}\n{}", r.stats, r.log);
    assert!(
        !r.log.contains("`retnil` is not supported"),
        "a side recording aborted at the return\n{}",
        r.log
    );
    assert!(
        r.log.contains("[JIT] Side exit to PC "),
        "the exit at the return was recorded\n{}",
        r.log
    );
    assert!(
        r.log.contains(": links to the trace there"),
        "no side trace links the nest\n{}",
        r.log
    );
    assert_log_lines_well_formed(&r.log);
}
