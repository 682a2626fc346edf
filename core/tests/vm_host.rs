//! Host functions and lent buffers: the interpreter and the JIT agree on programs that call the
//! host in hot loops and read and write a lent buffer, and every misuse is a clear error with
//! its location, the same with the JIT on.
#![cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use kiln::jit::driver::{Jit, JitStats};
use kiln::vm::host::RegisterError;
use kiln::vm::{compile_with, Host, HostError, Ty};
use kiln::vm::{Error, RuntimeError, RuntimeErrorKind, Value, Vm, VmConfig};
use kiln_std::exec::StdExecMemory;

static MEM: StdExecMemory = StdExecMemory::new();

/// What the host saw during one run.
#[derive(Default)]
struct Log {
    calls: Cell<u64>,
    emitted: RefCell<Vec<i64>>,
}

/// A host with `sample(i)`, `emit(x)`, `scale(x)`, `checksum(buf)`, `fail(code)`,
/// `costly()` (charges 1000 fuel), `name(i)` (a fresh string) and buffers `pkt` and `out`.
fn host(log: Rc<Log>) -> Host<'static> {
    let mut h = Host::new();
    let l = log.clone();
    h.register("sample", &[Ty::Int], move |_, a| {
        l.calls.set(l.calls.get() + 1);
        Ok(Value::Int(a.int(0).wrapping_mul(37) % 101))
    })
    .unwrap();
    let l = log.clone();
    h.register("emit", &[Ty::Int], move |_, a| {
        l.calls.set(l.calls.get() + 1);
        l.emitted.borrow_mut().push(a.int(0));
        Ok(Value::Nil)
    })
    .unwrap();
    h.register("scale", &[Ty::Float], |_, a| {
        Ok(Value::Float(a.float(0) * 0.5))
    })
    .unwrap();
    h.register("checksum", &[Ty::Buffer], |ctx, a| {
        let b = ctx.buffer(a, 0)?;
        Ok(Value::Int(b.iter().map(|&x| x as i64).sum()))
    })
    .unwrap();
    h.register("fail", &[Ty::Int], |_, a| match a.int(0) {
        0 => Ok(Value::Bool(true)),
        _ => Err(HostError::new("sensor offline")),
    })
    .unwrap();
    let l = log.clone();
    h.register("costly", &[], move |ctx, _| {
        l.calls.set(l.calls.get() + 1);
        ctx.charge(1000)?;
        Ok(Value::Int(1))
    })
    .unwrap();
    h.register("name", &[Ty::Any], |ctx, a| {
        ctx.new_str(&format!("sensor-{}", a.int(0)))
    })
    .unwrap();
    let l = log.clone();
    h.register("check", &[Ty::Int], move |_, a| {
        l.calls.set(l.calls.get() + 1);
        match a.int(0) {
            77 => Err(HostError::new("bad reading")),
            x => Ok(Value::Int(x * 2)),
        }
    })
    .unwrap();
    let l = log.clone();
    h.register("flip", &[Ty::Int], move |_, a| {
        l.calls.set(l.calls.get() + 1);
        Ok(match a.int(0) {
            x if x % 50 < 40 => Value::Int(x),
            x => Value::Float(x as f64 + 0.5),
        })
    })
    .unwrap();
    let l = log.clone();
    h.register("even", &[Ty::Int], move |_, a| {
        l.calls.set(l.calls.get() + 1);
        Ok(Value::Bool(a.int(0) % 2 == 0 || a.int(0) > 150))
    })
    .unwrap();
    h.buffer("pkt").unwrap();
    h.buffer("out").unwrap();
    h
}

struct Outcome {
    result: Result<String, RuntimeError>,
    pkt: Vec<u8>,
    out: Vec<u8>,
    calls: u64,
    emitted: Vec<i64>,
    fuel_left: u64,
    stats: JitStats,
}

fn run(src: &str, pkt: &[u8], config: VmConfig, threshold: Option<u32>) -> Outcome {
    let log = Rc::new(Log::default());
    let mut h = host(log.clone());
    let prog = compile_with(&h, src).expect("compiles");
    let config = VmConfig {
        jit_threshold: threshold.unwrap_or(0),
        ..config
    };
    let mut vm = Vm::new(&prog, config).expect("verifies");
    let (mut pkt, mut out) = (pkt.to_vec(), vec![0u8; 4]);
    let mut text = String::new();
    let mut stats = JitStats::default();
    let result = match threshold {
        Some(_) => {
            let mut jit = Jit::new(&prog, &MEM, None);
            let r = vm.run_with(&mut h, &mut [&mut pkt, &mut out], &mut text, Some(&mut jit));
            stats = jit.stats();
            r
        }
        None => vm.run_with(&mut h, &mut [&mut pkt, &mut out], &mut text, None),
    };
    drop(h);
    Outcome {
        result: result.map(|_| text),
        pkt,
        out,
        calls: log.calls.get(),
        emitted: log.emitted.take(),
        fuel_left: vm.fuel_left(),
        stats,
    }
}

/// Runs `src` in the interpreter and with the JIT at thresholds 1, 10 and 100: same output,
/// buffers, host calls, fuel and error. Returns the interpreter's outcome and the JIT's
/// counters at threshold 10.
fn agree(src: &str, pkt: &[u8], config: VmConfig) -> (Outcome, JitStats) {
    let want = run(src, pkt, config, None);
    let mut stats = JitStats::default();
    for t in [1, 10, 100] {
        let got = run(src, pkt, config, Some(t));
        assert_eq!(got.result, want.result, "threshold {t}\n{src}");
        assert_eq!(got.pkt, want.pkt, "pkt, threshold {t}");
        assert_eq!(got.out, want.out, "out, threshold {t}");
        assert_eq!(got.calls, want.calls, "host calls, threshold {t}");
        assert_eq!(got.emitted, want.emitted, "emitted, threshold {t}");
        assert_eq!(got.fuel_left, want.fuel_left, "fuel, threshold {t}");
        if t == 10 {
            stats = got.stats;
        }
    }
    (want, stats)
}

const HOT_CALLS: &str = "
let i = 0;
let sum = 0;
let acc = 0.0;
while i < 3000 {
    let v = sample(i);
    if v > 90 { emit(v); sum = sum + v; }
    acc = acc + scale(v);
    i = i + 1;
}
print(sum, acc);
";

#[test]
fn host_calls_in_a_hot_loop_agree() {
    let config = VmConfig {
        fuel: Some(10_000_000),
        ..VmConfig::default()
    };
    let (want, stats) = agree(HOT_CALLS, &[], config);
    let (mut sum, mut acc, mut emitted) = (0, 0.0, vec![]);
    for i in 0..3000i64 {
        let v = i * 37 % 101;
        if v > 90 {
            emitted.push(v);
            sum += v;
        }
        acc += v as f64 * 0.5;
    }
    assert_eq!(want.result.unwrap(), format!("{sum} {acc:?}\n"));
    assert_eq!(want.emitted, emitted);
    assert_eq!(want.calls, 3000 + emitted.len() as u64);
    assert!(stats.compiled > 0, "{stats:?}");
    assert!(
        stats.host_steps > 1000,
        "host calls made between traces: {stats:?}"
    );
}

/// Int host calls are runtime calls from native code: no host stops once traces exist.
#[test]
fn int_host_calls_run_from_native_code() {
    let src = "
let i = 0;
let s = 0;
while i < 3000 {
    let v = check(sample(i) + 200);
    if v > 550 { s = s + v; } else { s = s - 1; }
    i = i + 1;
}
print(s);
";
    let (want, stats) = agree(src, &[], VmConfig::default());
    let s: i64 = (0..3000i64)
        .map(|i| (i * 37 % 101 + 200) * 2)
        .map(|v| if v > 550 { v } else { -1 })
        .sum();
    assert_eq!(want.result.unwrap(), format!("{s}\n"));
    assert_eq!(want.calls, 6000);
    assert!(stats.compiled > 0, "{stats:?}");
    assert!(stats.host_steps < 30, "{stats:?}");
    assert!(stats.native_host_calls > 5000, "{stats:?}");
}

/// A native host call whose result changes type, and one that fails: the interpreter takes the
/// parked result or error at the `callh`, and no call is made twice.
#[test]
fn native_host_call_results_and_errors_reach_the_interpreter() {
    let src = "
let i = 0;
let s = 0;
while i < 200 {
    s = s + flip(i);
    i = i + 1;
}
print(s);
";
    let (want, _) = agree(src, &[], VmConfig::default());
    assert_eq!(want.calls, 200);
    let s: f64 = (0..200i64)
        .map(|x| {
            if x % 50 < 40 {
                x as f64
            } else {
                x as f64 + 0.5
            }
        })
        .sum();
    assert_eq!(want.result.unwrap(), format!("{s:?}\n"));
    // A bool result the trace specialises on: it flips every iteration, then stays true.
    let src = "
let i = 0;
let s = 0;
while i < 300 {
    if even(i) { s = s + i; } else { s = s - 1; }
    i = i + 1;
}
print(s);
";
    let (want, stats) = agree(src, &[], VmConfig::default());
    assert_eq!(want.calls, 300);
    assert!(stats.native_host_calls > 100, "{stats:?}");
    let s: i64 = (0..300i64)
        .map(|i| if i % 2 == 0 || i > 150 { i } else { -1 })
        .sum();
    assert_eq!(want.result.unwrap(), format!("{s}\n"));
    assert!(stats.compiled > 0, "{stats:?}");
    let src = "let i = 0;\nwhile i < 100 {\n  check(i);\n  i = i + 1;\n}\n";
    let e = runtime_err(src, &[], VmConfig::default());
    assert_eq!(
        (
            e.line,
            e.to_string()
                .contains("host function `check` failed: bad reading")
        ),
        (3, true)
    );
    assert_eq!(run(src, &[], VmConfig::default(), Some(1)).calls, 78);
}

const FILTER: &str = "
let i = 0;
let n = len(pkt);
let dropped = 0;
while i < n {
    let b = pkt[i];
    if b == 255 {
        dropped = dropped + 1;
        pkt[i] = 0;
    } else {
        pkt[i] = (b * 3 + 1) % 256;
    }
    i = i + 1;
}
out[0] = dropped % 256;
out[len(out) - 1] = 7;
print(dropped, checksum(pkt));
";

#[test]
fn lent_buffer_filter_agrees() {
    let pkt: Vec<u8> = (0..2000u32).map(|i| (i * 131 % 256) as u8).collect();
    let (want, stats) = agree(FILTER, &pkt, VmConfig::default());
    let mut expect = pkt.clone();
    let mut dropped = 0;
    for b in expect.iter_mut() {
        if *b == 255 {
            dropped += 1;
            *b = 0;
        } else {
            *b = ((*b as u32 * 3 + 1) % 256) as u8;
        }
    }
    let sum: i64 = expect.iter().map(|&b| b as i64).sum();
    assert_eq!(want.result.unwrap(), format!("{dropped} {sum}\n"));
    assert_eq!(want.pkt, expect);
    assert_eq!(want.out, [dropped as u8, 0, 0, 7]);
    // Buffer accesses are runtime calls from native code: the loop never leaves its traces
    // for them.
    assert!(stats.compiled > 0, "{stats:?}");
    assert_eq!(stats.host_steps, 0, "{stats:?}");
    assert!(stats.entered < 50, "{stats:?}");
}

/// Loop whose header instruction is a buffer read: compiled, and run natively throughout.
#[test]
fn loop_starting_with_a_buffer_read_is_compiled() {
    let src = "
let i = 0;
let s = 0;
while i < len(pkt) { s = s + pkt[i] * i; i = i + 1; }
print(s);
";
    let pkt: Vec<u8> = (0..500u32).map(|i| (i % 251) as u8).collect();
    let (want, stats) = agree(src, &pkt, VmConfig::default());
    let s: i64 = pkt
        .iter()
        .enumerate()
        .map(|(i, &b)| b as i64 * i as i64)
        .sum();
    assert_eq!(want.result.unwrap(), format!("{s}\n"));
    assert!(stats.compiled > 0 && stats.entered <= 2, "{stats:?}");
    assert_eq!((stats.aborted, stats.host_steps), (0, 0), "{stats:?}");
}

fn compile_err(src: &str) -> String {
    let h = host(Rc::default());
    match compile_with(&h, src) {
        Err(e) => Error::from(e).to_string(),
        Ok(_) => panic!("compiled: {src}"),
    }
}

#[test]
fn compile_errors_name_the_location() {
    assert_eq!(
        compile_err("let x = 1;\nlet y = sensor(x);"),
        "compile error at 2:9: unknown function `sensor`"
    );
    assert_eq!(
        compile_err("let x = 1;\n  emit(x, x);"),
        "compile error at 2:3: `emit` takes 1 arguments, got 2"
    );
    assert_eq!(
        compile_err("let b = pkt;"),
        "compile error at 1:9: host buffer `pkt` is not a value: index it (`pkt[i]`), \
         take `len(pkt)` or pass it to a host function"
    );
    assert!(
        compile_err("let a = [1, out];").starts_with("compile error at 1:13: host buffer `out`")
    );
    assert!(compile_err("fn f() { return pkt; }")
        .starts_with("compile error at 1:17: host buffer `pkt`"));
    assert_eq!(
        compile_err("let x = 3;\nprint(checksum(x));"),
        "compile error at 2:16: argument 1 of `checksum` must be a host buffer"
    );
    assert_eq!(
        compile_err("fn emit(x) { return x; }"),
        "compile error at 1:1: `emit` is provided by the host and cannot be redefined"
    );
}

/// Runs `src` in the interpreter and with the JIT (threshold 1); both must fail with the same
/// error, which is returned.
fn runtime_err(src: &str, pkt: &[u8], config: VmConfig) -> RuntimeError {
    let want = run(src, pkt, config, None);
    let got = run(src, pkt, config, Some(1));
    assert_eq!(got.result, want.result, "{src}");
    assert_eq!(got.calls, want.calls, "host calls\n{src}");
    assert_eq!(got.pkt, want.pkt);
    want.result.expect_err("fails")
}

#[test]
fn runtime_errors_name_the_location() {
    let hot = |body: &str| format!("let i = 0;\nwhile i < 50 {{\n{body}\ni = i + 1;\n}}\n");
    let e = runtime_err(
        &hot("scale(i);\nif i == 30 { scale(true); }"),
        &[],
        VmConfig::default(),
    );
    assert_eq!(e.line, 4);
    assert_eq!(
        e.to_string(),
        format!(
            "runtime error at line 4 (fn main, pc {}): type error: argument 1 of host function \
             `scale` must be float, got bool",
            e.pc
        )
    );
    let e = runtime_err(&hot("fail(0);\nfail(i / 40);"), &[], VmConfig::default());
    assert_eq!(e.line, 4);
    assert_eq!(
        e.kind,
        RuntimeErrorKind::Host {
            name: "fail".into(),
            msg: "sensor offline".into()
        }
    );
    assert!(e
        .to_string()
        .ends_with("host function `fail` failed: sensor offline"));

    let e = runtime_err(&hot("pkt[i] = pkt[i] + 1;"), &[9; 40], VmConfig::default());
    assert_eq!(e.line, 3);
    assert_eq!(
        e.kind,
        RuntimeErrorKind::BufferIndex {
            buffer: "pkt".into(),
            index: 40,
            len: 40
        }
    );
    assert!(e
        .to_string()
        .contains("buffer index out of range: `pkt[40]`, length 40"));

    let e = runtime_err(&hot("pkt[i] = i * 10;"), &[0; 50], VmConfig::default());
    assert_eq!(
        (e.line, e.kind.to_string().as_str()),
        (3, "bad argument: a buffer byte must be an int in 0..=255")
    );
}

#[test]
fn fuel_runs_out_inside_a_loop_of_host_calls() {
    let src = "let i = 0;\nwhile i < 1000 {\n  costly();\n  i = i + 1;\n}\n";
    let config = VmConfig {
        fuel: Some(20_000),
        ..VmConfig::default()
    };
    let want = run(src, &[], config, None);
    let e = want.result.as_ref().expect_err("runs out");
    assert_eq!((e.kind.clone(), e.line), (RuntimeErrorKind::OutOfFuel, 3));
    // 1000 per call charged by the host: at most 20 calls fit.
    assert!(want.calls <= 20 && want.calls >= 15, "{} calls", want.calls);
    let got = run(src, &[], config, Some(1));
    assert_eq!(got.result, want.result);
    assert_eq!(got.calls, want.calls);
}

#[test]
fn host_strings_count_against_the_memory_cap() {
    let src = "let names = [];\nlet i = 0;\nwhile i < 100000 {\n  push(names, name(i));\n  i = i + 1;\n}\n";
    let config = VmConfig {
        memory_cap: 64 * 1024,
        ..VmConfig::default()
    };
    let e = runtime_err(src, &[], config);
    assert_eq!(e.kind, RuntimeErrorKind::OutOfMemory);
    assert_eq!(e.line, 4);
}

#[test]
fn linking_checks_the_host() {
    let log = Rc::new(Log::default());
    let h = host(log.clone());
    let prog = compile_with(&h, "emit(len(pkt));").unwrap();
    let mut vm = Vm::new(&prog, VmConfig::default()).unwrap();
    let e = vm.run(&mut String::new(), None).unwrap_err();
    assert!(e.to_string().contains("run it with run_with"), "{e}");
    // Another host without `emit`, and the wrong number of buffers.
    let mut other = Host::new();
    other.buffer("pkt").unwrap();
    other.buffer("out").unwrap();
    let e = vm
        .run_with(
            &mut other,
            &mut [&mut [], &mut []],
            &mut String::new(),
            None,
        )
        .unwrap_err();
    assert_eq!(
        e.kind,
        RuntimeErrorKind::Link("the host has no function `emit`".into())
    );
    let mut h = host(log.clone());
    let e = vm
        .run_with(&mut h, &mut [], &mut String::new(), None)
        .unwrap_err();
    assert_eq!(
        e.kind,
        RuntimeErrorKind::Link("the host declares 2 buffers, 0 were lent".into())
    );
    let mut pkt = [1u8, 2, 3];
    vm.run_with(&mut h, &mut [&mut pkt, &mut []], &mut String::new(), None)
        .unwrap();
    drop(h);
    assert_eq!(*log.emitted.borrow(), [3]);
    assert_eq!(log.calls.get(), 1);
}

#[test]
fn registration_rejects_bad_names() {
    let mut h = Host::new();
    h.register("sensor", &[Ty::Int], |_, _| Ok(Value::Nil))
        .unwrap();
    let e = h
        .register("sensor", &[], |_, _| Ok(Value::Nil))
        .unwrap_err();
    assert_eq!(e, RegisterError::Duplicate("sensor".into()));
    let e = h.register("len", &[], |_, _| Ok(Value::Nil)).unwrap_err();
    assert_eq!(e, RegisterError::Builtin("len".into()));
    assert_eq!(
        h.buffer("while"),
        Err(RegisterError::BadName("while".into()))
    );
    assert_eq!(h.buffer("9x"), Err(RegisterError::BadName("9x".into())));
    assert_eq!(
        h.buffer("sensor"),
        Err(RegisterError::Duplicate("sensor".into()))
    );
}

#[test]
fn verifier_checks_host_indices_and_arities() {
    let h = host(Rc::default());
    let prog = compile_with(&h, "let x = sample(1); pkt[0] = x;").unwrap();
    assert!(Vm::new(&prog, VmConfig::default()).is_ok());
    // Import arity that the call does not match.
    let mut bad = prog.clone();
    bad.imports[0].arity = 2;
    let e = Vm::new(&bad, VmConfig::default()).err().unwrap();
    assert!(
        e.reason.contains("called with 1 arguments, it takes 2"),
        "{e}"
    );
    // No such import.
    let mut bad = prog.clone();
    bad.imports.clear();
    let e = Vm::new(&bad, VmConfig::default()).err().unwrap();
    assert!(e.reason.contains("host function h0 does not exist"), "{e}");
    // No such buffer.
    let mut bad = prog.clone();
    bad.buffers.clear();
    let e = Vm::new(&bad, VmConfig::default()).err().unwrap();
    assert!(e.reason.contains("host buffer 0 out of range"), "{e}");
    // The byte form keeps imports and buffers.
    let back = kiln::vm::Program::from_bytes(&prog.to_bytes()).unwrap();
    assert_eq!(back, prog);
}
