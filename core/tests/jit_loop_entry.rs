//! Loops are entered at their first arrival: the `loop` marker the compiler puts before every
//! loop header counts as an arrival there, so a loop trace runs from the first iteration of
//! every later entry into the loop (each call of a function holding it, each pass of an outer
//! loop), not only from its first backward jump. Also the marker's verifier rule, and fuel,
//! which the marker does not charge, exactly as the interpreter and native code agree on.
#![cfg(feature = "jit")]
#![cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]

#[path = "common/program.rs"]
mod program;
use program::main_program;
use std::rc::Rc;

use kiln::jit::driver::{Jit, JitStats};
use kiln::vm::bytecode::{encode_abc, encode_abx, Op};
use kiln::vm::native::{HotFunc, NativeFunc};
use kiln::vm::{lang, Const, HotLoop, LoopHook, Program, Reply, Value, Vm, VmConfig};
use kiln_std::exec::StdExecMemory;

static MEM: StdExecMemory = StdExecMemory::new();

/// One time the interpreter asked the JIT to run a loop: the header PC, the watched register's
/// int value then, and whether native code ran.
type Asked = (usize, Option<i64>, bool);

/// The JIT, with a note of every time the interpreter asked it to run a loop: the header PC,
/// the value of register `watch` then, and whether native code ran.
struct Watched<'a> {
    jit: Jit<'a>,
    watch: usize,
    asked: Vec<Asked>,
}

impl LoopHook for Watched<'_> {
    fn hot_loop(&mut self, at: HotLoop<'_>) {
        self.jit.hot_loop(at)
    }

    fn enter(
        &mut self,
        func: usize,
        pc: usize,
        regs: &mut [Value],
        fuel: &mut u64,
    ) -> Reply<usize> {
        let seen = match regs.get(self.watch) {
            Some(Value::Int(i)) => Some(*i),
            _ => None,
        };
        let reply = self.jit.enter(func, pc, regs, fuel);
        self.asked
            .push((pc, seen, !matches!(reply, Reply::Wait(_))));
        reply
    }

    fn after_call(
        &mut self,
        func: usize,
        pc: usize,
        regs: &mut [Value],
        fuel: &mut u64,
        host: Option<&mut dyn kiln::vm::HostStep>,
    ) -> Reply<usize> {
        self.jit.after_call(func, pc, regs, fuel, host)
    }

    fn call_room(&mut self, frames_left: usize) {
        self.jit.call_room(frames_left)
    }

    fn hot_func(&mut self, at: HotFunc<'_>) {
        self.jit.hot_func(at)
    }

    fn native_func(&mut self, func: usize, args: &[Value]) -> Reply<Rc<dyn NativeFunc>> {
        self.jit.native_func(func, args)
    }

    fn native_side(
        &mut self,
        func: usize,
        pc: usize,
        regs: &[Value],
    ) -> Option<Rc<dyn NativeFunc>> {
        self.jit.native_side(func, pc, regs)
    }
}

/// Runs `src` with the JIT at `threshold`, watching register `watch`; the output, the notes
/// and the JIT's counters. Also checks the output against the interpreter's.
fn watched(src: &str, threshold: u32, watch: usize) -> (String, Vec<Asked>, JitStats) {
    let prog = lang::compile(src).expect("compiles");
    let mut want = String::new();
    Vm::new(&prog, VmConfig::default())
        .expect("verifies")
        .run(&mut want, None)
        .expect("runs");
    let config = VmConfig {
        jit_threshold: threshold,
        ..VmConfig::default()
    };
    let mut vm = Vm::new(&prog, config).expect("verifies");
    let mut hook = Watched {
        jit: Jit::new(&prog, &MEM, None),
        watch,
        asked: Vec::new(),
    };
    let mut out = String::new();
    vm.run(&mut out, Some(&mut hook)).expect("runs");
    assert_eq!(out, want, "{src}");
    let stats = hook.jit.stats();
    (out, hook.asked, stats)
}

/// nbody's shape: a function holding a loop over a few bodies (with `sqrt`, a builtin the
/// function JIT does not record, so the function itself stays interpreted), called once per
/// step from an interpreted loop. Its loop trace must run from the first iteration of every
/// call: the JIT is entered with `j` (register 3) still 0, and natively.
#[test]
fn a_loop_in_a_called_function_runs_natively_from_its_first_iteration() {
    let src = "fn step(v, n) {
            let s = 0.0;
            let j = 0;
            while j < n {
                let d = v[j] * v[j] + 1.0;
                s = s + v[j] / (d * sqrt(d));
                v[j] = v[j] * 0.999 + 0.001;
                j = j + 1;
            }
            return s;
        }
        let v = [0.5, 1.5, 2.5, 3.5];
        let t = 0.0;
        let k = 0;
        while k < 3000 { t = t + step(v, 4); k = k + 1; }
        print(t);";
    let (_, asked, stats) = watched(src, 50, 3);
    let header = asked.iter().find(|a| a.1 == Some(0)).map(|a| a.0);
    let first_native = asked
        .iter()
        .filter(|a| Some(a.0) == header && a.1 == Some(0) && a.2)
        .count();
    assert!(
        first_native > 2500,
        "{first_native} of 3000 calls ran their loop natively from j = 0: {stats:?}"
    );
    // Nothing was left for a back edge to enter: every entry ran the loop to its end.
    let later = asked
        .iter()
        .filter(|a| Some(a.0) == header && a.1 != Some(0))
        .count();
    assert!(
        later < 100,
        "{later} entries after the first iteration: {stats:?}"
    );
}

/// A loop that runs exactly once per arrival never takes a backward jump: only its first
/// arrival can make it hot and enter its trace.
#[test]
fn a_loop_that_runs_once_per_entry_is_compiled_and_entered() {
    let src = "let t = 0.0; let k = 0;
        while k < 5000 {
            let j = 0;
            while j < 1 {
                let x = t * 0.5 + k;
                t = t * 0.25 + sqrt(x * x + 1.0) * 0.125 + x * 0.0625 - 1.0;
                j = j + 1;
            }
            k = k + 1;
        }
        print(t);";
    let (_, asked, stats) = watched(src, 10, 0);
    assert!(stats.compiled >= 1, "{stats:?}");
    let native = asked.iter().filter(|a| a.2).count();
    assert!(native >= 1, "{stats:?}");
    // The outer loop's trace links into the inner one (or records it): the chain runs the
    // whole program natively after the warm-up.
    assert!(stats.entered < 100, "{stats:?}");
}

/// Output, result and fuel left under a budget, with the JIT at `threshold` (or off).
fn metered(src: &str, threshold: Option<u32>, fuel: u64) -> (String, String, u64) {
    let prog = lang::compile(src).expect("compiles");
    let config = VmConfig {
        fuel: Some(fuel),
        jit_threshold: threshold.unwrap_or(0),
        ..VmConfig::default()
    };
    let mut vm = Vm::new(&prog, config).expect("verifies");
    let mut jit = Jit::new(&prog, &MEM, None);
    let mut out = String::new();
    let r = match threshold {
        Some(_) => vm.run(&mut out, Some(&mut jit)),
        None => vm.run(&mut out, None),
    };
    (out, format!("{r:?}"), vm.fuel_left())
}

/// Entering at the marker charges nothing: native code from the first iteration on charges
/// exactly what the interpreter does, so budgets that run out anywhere (inside a trace entered
/// at a marker, in a linked inner loop, between calls) give the same output, the same error
/// (kind, function, pc, line) and the same fuel left.
#[test]
fn fuel_agrees_when_loops_are_entered_at_their_first_arrival() {
    let src = "fn inner(v, n, i) {
            let s = 0;
            let j = i + 1;
            while j < n { s = s + v[i] * v[j] % 7; j = j + 1; }
            return s;
        }
        let v = [3, 1, 4, 1, 5, 9, 2, 6];
        let t = 0; let k = 0;
        while k < 400 {
            let i = 0;
            while i < 8 { t = t + inner(v, 8, i); i = i + 1; }
            let m = 0;
            while m < k % 3 { t = t + m; m = m + 1; }
            k = k + 1;
        }
        print(t);";
    let need = u64::MAX - metered(src, None, u64::MAX).2;
    let mut starved = 0;
    for budget in (0..need)
        .step_by(need as usize / 61 + 1)
        .chain([need - 1, need])
    {
        let want = metered(src, None, budget);
        for t in [1, 3, 20] {
            let got = metered(src, Some(t), budget);
            assert_eq!(got, want, "threshold {t}, fuel {budget}");
            starved += got.1.contains("OutOfFuel") as u32;
        }
    }
    assert!(starved >= 100, "{starved}");
}

fn program(nregs: u16, code: Vec<u32>) -> Program {
    main_program(nregs, code, &[Const::Int(1), Const::Int(10)])
}

/// A `loop` marker must stand right before a loop header: the target of a backward jump.
#[test]
fn the_verifier_wants_a_loop_header_after_every_marker() {
    let ret = encode_abc(Op::RetNil, 0, 0, 0);
    let marker = encode_abc(Op::Loop, 0, 0, 0);
    // 0 loadint r0, 0; 1 loop; 2 forltk r0, k1, k2 -> 2; 4 retnil
    let good = vec![
        encode_abx(Op::LoadInt, 0, 0),
        marker,
        encode_abc(Op::ForLtK, 0, 1, 2),
        2,
        ret,
    ];
    assert_eq!(kiln::vm::verify(&program(1, good.clone())), Ok(()));
    let mut out = String::new();
    Vm::new(&program(1, good.clone()), VmConfig::default())
        .unwrap()
        .run(&mut out, None)
        .unwrap();
    // The jump goes back to the marker itself, not to the instruction after it.
    let mut off_by_one = good.clone();
    off_by_one[3] = 1;
    let err = kiln::vm::verify(&program(1, off_by_one)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "verify error in f0 at pc 1: `loop` is not followed by a loop header \
         (no backward jump targets 2)"
    );
    // A forward jump to the instruction after it does not make a loop.
    let forward = vec![
        encode_abc(Op::Jmp, 0, 0, 0),
        3,
        marker,
        encode_abx(Op::LoadInt, 0, 0),
        ret,
    ];
    let err = kiln::vm::verify(&program(1, forward)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "verify error in f0 at pc 2: `loop` is not followed by a loop header \
         (no backward jump targets 3)"
    );
    // A marker at the end falls off the code.
    let err = kiln::vm::verify(&program(1, vec![ret, marker])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "verify error in f0 at pc 1: `loop` falls off the end of the code"
    );
}

/// Every `while` gets its marker right before its header; a loop whose condition is a
/// constant false has no header (nothing jumps back), and its unreachable marker becomes a
/// `retnil` the verifier accepts.
#[test]
fn the_compiler_marks_every_loop_and_nothing_else() {
    let prog = lang::compile(
        "let i = 0; while i < 3 { let j = 0; while j < i { j = j + 1; } i = i + 1; }
         while false { i = i + 1; }
         while !true { i = i - 1; }
         print(i);",
    )
    .unwrap();
    let code = &prog.funcs[0].code;
    let mut markers = Vec::new();
    let mut pc = 0;
    while pc < code.len() {
        let op = Op::from_byte(code[pc] as u8).unwrap();
        if op == Op::Loop {
            markers.push(pc);
        }
        pc += op.width();
    }
    assert_eq!(markers.len(), 2, "{markers:?}");
    let mut out = String::new();
    Vm::new(&prog, VmConfig::default())
        .unwrap()
        .run(&mut out, None)
        .unwrap();
    assert_eq!(out, "3\n");
}
