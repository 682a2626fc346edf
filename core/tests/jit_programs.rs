//! Random `.kl` programs, interpreter against JIT: the interpreter is the oracle; with the JIT
//! forced on (threshold 1 to 4, sometimes 8 or 16) every program must print the same bytes and end with the same
//! result or the same error (kind, function, pc, line) and the same fuel left, also under a
//! random fuel budget that runs out mid-loop. The generator is in `progen`; its programs
//! change variable types mid-loop, break out early and fail mid-loop, so guards fail and side
//! exits resume the interpreter at every kind of place.
#![cfg(feature = "jit")]
#![cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]

mod progen;

use kiln::jit::driver::{Jit, JitStats};
use kiln::jit::trace::Abort;
use kiln::vm::{lang, Program, RuntimeError, RuntimeErrorKind, Vm, VmConfig};
use kiln_std::exec::StdExecMemory;
use std::collections::BTreeMap;
use std::sync::Mutex;

use kiln::platform::Console;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

static MEM: StdExecMemory = StdExecMemory::new();

/// Counts the JIT's abort reasons over a whole test run (reported, to show what the random
/// programs reach and what they don't).
struct AbortLog(Mutex<BTreeMap<String, u32>>);

// SAFETY: `write_bytes` only locks a std mutex and updates a map: callable from any thread,
// and it allocates from the test binary's system allocator, never through kiln.
unsafe impl Console for AbortLog {
    fn write_bytes(&self, bytes: &[u8]) {
        let line = String::from_utf8_lossy(bytes);
        if let Some((_, why)) = line.trim_end().split_once("Trace aborted at PC ") {
            let why = why.split_once(": ").map_or(why, |(_, w)| w).to_string();
            *self.0.lock().unwrap().entry(why).or_default() += 1;
        }
    }
}

static ABORTS: AbortLog = AbortLog(Mutex::new(BTreeMap::new()));

/// Everything a run shows the outside world.
#[derive(Debug, PartialEq)]
struct Outcome {
    out: String,
    result: Result<String, RuntimeError>,
    fuel_left: u64,
}

/// Runs `prog`; with `threshold` the JIT is on. Returns the outcome, the loop JIT's counters
/// and the number of function traces compiled.
fn run(prog: &Program, threshold: Option<u32>, fuel: Option<u64>) -> (Outcome, JitStats, u64) {
    let config = VmConfig {
        fuel,
        jit_threshold: threshold.unwrap_or(0),
        ..VmConfig::default()
    };
    let mut vm = Vm::new(prog, config).expect("generated programs verify");
    let mut out = String::new();
    let (result, stats, funcs) = match threshold {
        Some(_) => {
            let mut jit = Jit::new(prog, &MEM, Some(&ABORTS));
            let r = vm.run(&mut out, Some(&mut jit));
            (r, jit.stats(), jit.func_stats().compiled)
        }
        None => (vm.run(&mut out, None), JitStats::default(), 0),
    };
    let outcome = Outcome {
        out,
        result: result.map(|v| format!("{v:?}")),
        fuel_left: vm.fuel_left(),
    };
    (outcome, stats, funcs)
}

/// Fuel an unmetered run of `prog` uses (the interpreter's count).
fn fuel_used(prog: &Program) -> u64 {
    let (o, ..) = run(prog, None, Some(u64::MAX));
    u64::MAX - o.fuel_left
}

/// What one case reached.
struct Reached {
    /// The unmetered JIT run's counters.
    stats: JitStats,
    /// Function traces the unmetered JIT run compiled.
    funcs: u64,
    /// The metered JIT run entered native code and ran out of fuel.
    out_of_fuel_natively: bool,
}

/// Runs `src` in the interpreter and with the JIT at `threshold`, with and without a fuel
/// budget of `fuel_pct` percent of what the program needs.
fn check(src: &str, threshold: u32, fuel_pct: u64) -> Result<Reached, TestCaseError> {
    let prog = match lang::compile(src) {
        Ok(p) => p,
        Err(e) => return Err(TestCaseError::fail(format!("does not compile: {e}\n{src}"))),
    };
    let (want, ..) = run(&prog, None, None);
    let (got, stats, funcs) = run(&prog, Some(threshold), None);
    prop_assert_eq!(&got, &want, "threshold {}\n{}", threshold, src);
    let budget = fuel_used(&prog) * fuel_pct / 100;
    let (want, ..) = run(&prog, None, Some(budget));
    let (got, metered, _) = run(&prog, Some(threshold), Some(budget));
    prop_assert_eq!(
        &got,
        &want,
        "threshold {}, fuel {}\n{}",
        threshold,
        budget,
        src
    );
    let out_of_fuel = matches!(&got.result, Err(e) if e.kind == RuntimeErrorKind::OutOfFuel);
    Ok(Reached {
        stats,
        funcs,
        out_of_fuel_natively: out_of_fuel && metered.entered > 0,
    })
}

/// How many programs: thousands natively, fewer under an emulator; `KILN_JIT_PROGRAMS=n`
/// overrides (for long bug hunts).
fn cases() -> u32 {
    if let Some(n) = std::env::var("KILN_JIT_PROGRAMS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return n;
    }
    if std::env::var_os("KILN_TEST_RUNNER").is_some() {
        800
    } else {
        5000
    }
}

#[test]
fn random_programs_agree_with_the_interpreter() {
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let totals = std::cell::RefCell::new((0u32, 0u32, 0u32, 0u32));
    let side_traces = std::cell::Cell::new(0u64);
    let func_traces = std::cell::Cell::new(0u64);
    let strategy = (
        prop::collection::vec(any::<u8>(), 0..400),
        prop_oneof![4 => 1u32..5, 1 => Just(8u32), 1 => Just(16u32)],
        0u64..=100,
    );
    let result = runner.run(&strategy, |(bytes, threshold, fuel_pct)| {
        let src = progen::program(&bytes);
        let reached = check(&src, threshold, fuel_pct)?;
        let (stats, mut t) = (reached.stats, totals.borrow_mut());
        t.0 += 1;
        t.1 += (stats.compiled > 0) as u32;
        t.2 += (stats.entered > 0) as u32;
        t.3 += reached.out_of_fuel_natively as u32;
        side_traces.set(side_traces.get() + stats.side_compiled);
        func_traces.set(func_traces.get() + reached.funcs);
        Ok(())
    });
    if let Err(e) = result {
        match e {
            proptest::test_runner::TestError::Fail(why, (bytes, t, f)) => {
                panic!("{why}\nminimal case: threshold {t}, fuel {f}%, bytes {bytes:?}")
            }
            other => panic!("{other}"),
        }
    }
    let (programs, compiled, entered, starved) = *totals.borrow();
    eprintln!(
        "{programs} programs: {compiled} compiled a trace, {entered} entered one, \
         {starved} ran out of fuel after entering one; {} side traces, {} function traces",
        side_traces.get(),
        func_traces.get()
    );
    for (why, n) in ABORTS.0.lock().unwrap().iter() {
        eprintln!("  {n:6} aborts: {why}");
    }
    // `Malformed` means a recorder or optimiser bug, never a property of the program.
    let malformed = Abort::Malformed.message();
    assert!(
        !ABORTS.0.lock().unwrap().contains_key(malformed),
        "some traces aborted as malformed (a JIT bug; see the counts above)"
    );
    assert!(
        // Typically about half compile and enter, 30% starve (the seed is random per run).
        compiled * 5 >= programs * 2 && entered * 5 >= programs * 2 && starved * 5 >= programs,
        "too few programs reach native code: {compiled} compiled, {entered} entered, \
         {starved} ran out of fuel there, of {programs}"
    );
}

/// The generator's output is well-formed: every program compiles and verifies.
#[test]
fn generated_programs_compile() {
    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&prop::collection::vec(any::<u8>(), 0..400), |bytes| {
            let src = progen::program(&bytes);
            let prog =
                lang::compile(&src).map_err(|e| TestCaseError::fail(format!("{e}\n{src}")))?;
            Vm::new(&prog, VmConfig::default())
                .map_err(|e| TestCaseError::fail(format!("{e:?}\n{src}")))?;
            Ok(())
        })
        .unwrap();
}

/// Programs the random test once found wrong, kept as fixed cases.
const REGRESSIONS: &[(&str, &str)] = &[
    (
        "forlt's limit turning float mid-loop: the limit's tag guard resumed at the forlt with \
     the counter already stepped, so the interpreter stepped it twice",
        "let f1 = 1.0; let lim = 5; let c0 = 0; let c3 = 0; let c4 = 0;
     while c0 < lim {
         c3 = 0;
         while c3 < lim {
             c4 = 0;
             while c4 < lim { f1 = f1 + 1.0; c4 = c4 + 1; }
             lim = 2.5;
             c3 = c3 + 1;
         }
         c0 = c0 + 1;
     }
     print(f1, c0, c3, c4);",
    ),
    (
        "a slot overwritten before every exit ended the iteration as a dead constant: DCE \
         removed it but the optimised tail still named it, so every attempt aborted as malformed",
        "let f0 = -9.25; let lim = 23; let c0 = 0;
         while c0 < 13 && (c0 < 3 || 91 < 44415) { c0 = c0 + 1; lim = 17.5; let t0 = f0; }
         print(c0, lim);",
    ),
];

#[test]
fn regressions_agree_with_the_interpreter() {
    for (why, src) in REGRESSIONS {
        for threshold in 1..5 {
            for fuel_pct in [100, 50, 10] {
                if let Err(e) = check(src, threshold, fuel_pct) {
                    panic!("{why}: {e}");
                }
            }
        }
    }
}
