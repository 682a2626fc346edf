//! Error cases: every kind of bad input gets its exact message and location.
#[path = "common/program.rs"]
mod program;
use kiln::vm::bytecode::{encode_abc, encode_abx, Op};
use kiln::vm::native::{HotFunc, NativeFunc};
use kiln::vm::{
    lang, run_source, Const, Error, Function, HotLoop, LoopHook, Program, Reply, RuntimeErrorKind,
    Value, Vm, VmConfig,
};
use program::main_program;

fn run(src: &str) -> Result<String, Error> {
    run_with(src, VmConfig::default())
}

fn run_with(src: &str, config: VmConfig) -> Result<String, Error> {
    let mut out = String::new();
    run_source(src, &[], config, &mut out).map(|_| out)
}

fn error_of(src: &str) -> String {
    match run(src) {
        Ok(out) => panic!("expected an error, program printed {out:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn syntax_errors_carry_line_and_column() {
    assert_eq!(
        error_of("let x = ;"),
        "syntax error at 1:9: expected an expression, found `;`"
    );
    assert_eq!(
        error_of("let a = 1;\nwhile a < 3 {\n  a = a + 1;\n"),
        "syntax error at 4:1: expected `}` before the end of the file"
    );
    assert_eq!(
        error_of("print(\"abc);"),
        "syntax error at 1:7: string literal not closed"
    );
    assert_eq!(
        error_of("let y = 2 $ 3;"),
        "syntax error at 1:11: unexpected character `$`"
    );
    assert_eq!(
        error_of("1 + 2 = 3;"),
        "syntax error at 1:1: can only assign to a variable or an array element"
    );
    assert_eq!(
        error_of("if 1 { fn f() {} }"),
        "syntax error at 1:8: functions can only be declared at the top level"
    );
}

#[test]
fn deep_nesting_is_a_syntax_error_not_a_stack_overflow() {
    let src = format!("let x = {}1{};", "(".repeat(5000), ")".repeat(5000));
    assert_eq!(
        error_of(&src),
        "syntax error at 1:209: nesting deeper than 200 levels"
    );
}

#[test]
fn compile_errors_carry_line_and_column() {
    assert_eq!(
        error_of("let a = 1;\nprint(b);"),
        "compile error at 2:7: unknown variable `b`"
    );
    assert_eq!(
        error_of("fn f(a) { return a; }\nf(1, 2);"),
        "compile error at 2:1: `f` takes 1 arguments, got 2"
    );
    assert_eq!(
        error_of("nope();"),
        "compile error at 1:1: unknown function `nope`"
    );
    assert_eq!(
        error_of("break;"),
        "compile error at 1:1: `break` outside a loop"
    );
    assert_eq!(
        error_of("fn len(x) { }"),
        "compile error at 1:1: `len` is a builtin and cannot be redefined"
    );
}

#[test]
fn runtime_type_error_has_pc_and_line() {
    let src = "let a = 1;\nlet b = \"two\";\nlet c = a + b;";
    assert_eq!(
        error_of(src),
        "runtime error at line 3 (fn main, pc 2): type error: cannot add int and string"
    );
    assert_eq!(
        error_of("let a = [1];\nif a < 2 { }"),
        "runtime error at line 2 (fn main, pc 2): type error: cannot compare array and int"
    );
    assert_eq!(
        error_of("let s = -\"x\";"),
        "runtime error at line 1 (fn main, pc 1): type error: cannot negate string"
    );
}

#[test]
fn runtime_division_by_zero_has_pc_and_line() {
    let src = "fn div(a, b) {\n  return a / b;\n}\nprint(div(6, 3));\nprint(div(1, 0));";
    let mut out = String::new();
    let err = run_source(src, &[], VmConfig::default(), &mut out).unwrap_err();
    assert_eq!(out, "2\n", "the first call ran before the error");
    assert_eq!(
        err.to_string(),
        "runtime error at line 2 (fn div, pc 0): division by zero"
    );
    assert_eq!(
        error_of("let x = 5 % 0;"),
        "runtime error at line 1 (fn main, pc 1): division by zero"
    );
    // Float division by zero is IEEE, not an error.
    assert_eq!(run("print(1.0 / 0.0, 0 - 1 / 0.0);").unwrap(), "inf -inf\n");
}

#[test]
fn runtime_index_out_of_range_has_pc_and_line() {
    let src = "let a = [1, 2, 3];\nlet i = 0;\nwhile i < 5 {\n  print(a[i]);\n  i = i + 1;\n}";
    let mut out = String::new();
    let err = run_source(src, &[], VmConfig::default(), &mut out).unwrap_err();
    assert_eq!(out, "1\n2\n3\n");
    assert_eq!(
        err.to_string(),
        "runtime error at line 4 (fn main, pc 8): index out of range: index 3, length 3"
    );
    assert_eq!(
        error_of("let a = [];\na[-1] = 2;"),
        "runtime error at line 2 (fn main, pc 3): index out of range: index -1, length 0"
    );
}

#[test]
fn fuel_bounds_an_infinite_loop() {
    let config = VmConfig {
        fuel: Some(10_000),
        ..VmConfig::default()
    };
    let err = run_with("let i = 0;\nwhile true {\n  i = i + 1;\n}", config).unwrap_err();
    let Error::Runtime(e) = err else {
        panic!("{err}")
    };
    assert_eq!(e.kind, RuntimeErrorKind::OutOfFuel);
    // Enough fuel lets the same kind of loop finish.
    let config = VmConfig {
        fuel: Some(10_000),
        ..VmConfig::default()
    };
    assert_eq!(
        run_with(
            "let i = 0;\nwhile i < 100 { i = i + 1; }\nprint(i);",
            config
        )
        .unwrap(),
        "100\n"
    );
}

#[test]
fn memory_cap_bounds_allocation() {
    let config = VmConfig {
        memory_cap: 64 * 1024,
        ..VmConfig::default()
    };
    let src = "let a = [];\nwhile true {\n  push(a, \"some text\");\n}";
    let err = run_with(src, config).unwrap_err();
    assert_eq!(
        err.to_string(),
        "runtime error at line 3 (fn main, pc 4): out of memory (memory cap reached)"
    );
    let config = VmConfig {
        memory_cap: 64 * 1024,
        ..VmConfig::default()
    };
    let err = run_with("let a = array(1000000000, 0);", config).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("out of memory (memory cap reached)"),
        "{err}"
    );
}

#[test]
fn heap_is_reclaimed_when_values_die() {
    let prog =
        lang::compile("let i = 0;\nwhile i < 1000 {\n  let s = [i, str(i)];\n  i = i + 1;\n}")
            .unwrap();
    let config = VmConfig {
        memory_cap: 16 * 1024,
        ..VmConfig::default()
    };
    let mut vm = Vm::new(&prog, config).unwrap();
    let mut out = String::new();
    vm.run(&mut out, None)
        .expect("garbage is freed, so 1000 iterations fit in 16 KiB");
    // Only the register stack and the interned constants stay charged.
    assert!(
        vm.heap_bytes() <= 8 * 1024,
        "{} bytes still live",
        vm.heap_bytes()
    );
}

/// Equal short strings made at run time are one object (interned per VM), and dead ones are
/// not kept: 20000 copies of one concatenated word fit where 20000 separate strings would
/// not, and 20000 distinct words made and dropped one after another fit too.
#[test]
fn short_strings_are_shared_and_dead_ones_freed_under_the_memory_cap() {
    let config = VmConfig {
        memory_cap: 400 * 1024,
        ..VmConfig::default()
    };
    // The array is 20000 * 16 = 320 KB; a separate string per slot would be >= 40 bytes more
    // each (800 KB).
    let shared = "let a = array(20000, \"\");\nlet i = 0;\nwhile i < 20000 {\n  a[i] = \"ka\" + \"lomine\";\n  i = i + 1;\n}\nprint(a[0] == a[19999], a[19999]);";
    assert_eq!(run_with(shared, config).unwrap(), "true kalomine\n");
    let distinct = "let i = 0;\nlet w = \"\";\nwhile i < 20000 {\n  w = \"w\" + str(i);\n  i = i + 1;\n}\nprint(w);";
    assert_eq!(
        run_with(
            distinct,
            VmConfig {
                memory_cap: 16 * 1024,
                ..VmConfig::default()
            }
        )
        .unwrap(),
        "w19999\n"
    );
    // Past the cap it is still the out-of-memory error.
    let many = "let a = array(20000, \"\");\nlet i = 0;\nwhile i < 20000 {\n  a[i] = \"w\" + str(i);\n  i = i + 1;\n}";
    let err = run_with(many, config).unwrap_err().to_string();
    assert!(err.ends_with("out of memory (memory cap reached)"), "{err}");
}

/// A callee's heap registers are released when it returns, wherever they sit in its frame
/// and also after deep recursion moved the register stack: a leaked 64 KiB array would not
/// leave room for the next one under a 100 KB cap. (Debug builds also check, at every `ret`,
/// that the frame holds no heap value afterwards.)
#[test]
fn callee_heap_registers_are_released_on_return() {
    let src = "fn f() { let a = 0; let b = 0; let c = 0; let s = array(4000, 0); return len(s); }
fn deep(d, s) {
  if d > 0 {
    let t = s + \"\";
    let u = [t];
    return deep(d - 1, t) + len(u);
  }
  return f();
}
let keep = str(12345);
let n = f();
n = n + deep(150, keep);
n = n + f();
let big = array(4000, 1);
print(n + len(big), keep);";
    let config = VmConfig {
        memory_cap: 100_000,
        ..VmConfig::default()
    };
    assert_eq!(run_with(src, config).unwrap(), "16150 12345\n");
    // The same with the JIT's counting on (every `ret` scans its frame).
    let config = VmConfig {
        memory_cap: 100_000,
        jit_threshold: 1,
        ..VmConfig::default()
    };
    assert_eq!(run_with(src, config).unwrap(), "16150 12345\n");
}

#[test]
fn unbounded_recursion_is_a_stack_overflow() {
    let err = error_of("fn f(n) { return f(n + 1); }\nf(0);");
    assert_eq!(
        err,
        "runtime error at line 1 (fn f, pc 1): stack overflow (call depth limit)"
    );
}

fn program(nregs: u16, code: Vec<u32>) -> Program {
    main_program(nregs, code, &[Const::Int(7)])
}

fn verify_error(p: &Program) -> String {
    kiln::vm::verify(p).unwrap_err().to_string()
}

#[test]
fn verifier_rejects_bad_jumps() {
    let ret = encode_abc(Op::RetNil, 0, 0, 0);
    let p = program(1, vec![encode_abc(Op::Jmp, 0, 0, 0), 9, ret]);
    assert_eq!(
        verify_error(&p),
        "verify error in f0 at pc 0: jump target 9 out of range (code has 3 words)"
    );
    // Word 2 is the extension word of the `jlt` at 1.
    let jlt = encode_abc(Op::JLt, 0, 0, 1);
    let p = program(1, vec![encode_abc(Op::LoadNil, 0, 0, 0), jlt, 2, ret]);
    assert_eq!(
        verify_error(&p),
        "verify error in f0 at pc 1: jump target 2 is inside an instruction"
    );
    let p = program(1, vec![encode_abc(Op::Jmp, 0, 0, 0)]);
    assert_eq!(
        verify_error(&p),
        "verify error in f0 at pc 0: `jmp` is missing its extension word"
    );
}

#[test]
fn verifier_rejects_bad_operands() {
    let ret = encode_abc(Op::RetNil, 0, 0, 0);
    let p = program(2, vec![encode_abc(Op::Move, 5, 0, 0), ret]);
    assert_eq!(
        verify_error(&p),
        "verify error in f0 at pc 0: `move` register r5 out of range (frame has 2)"
    );
    let p = program(2, vec![encode_abx(Op::LoadK, 0, 40), ret]);
    assert_eq!(
        verify_error(&p),
        "verify error in f0 at pc 0: `loadk` constant k40 out of range (pool has 2)"
    );
    let p = program(
        2,
        vec![
            encode_abc(Op::LoadInt, 0, 0, 0),
            encode_abc(Op::AddK, 0, 0, 0),
            ret,
        ],
    );
    assert_eq!(
        verify_error(&p),
        "verify error in f0 at pc 1: `addk` needs a numeric constant, k0 is a string"
    );
    let p = program(2, vec![0xee, ret]);
    assert_eq!(
        verify_error(&p),
        "verify error in f0 at pc 0: unknown opcode 0xee"
    );
    let p = program(2, vec![encode_abc(Op::LoadNil, 0, 0, 0)]);
    assert_eq!(
        verify_error(&p),
        "verify error in f0 at pc 0: `loadnil` falls off the end of the code"
    );
}

#[test]
fn verifier_rejects_inconsistent_register_use() {
    let ret = encode_abc(Op::RetNil, 0, 0, 0);
    // r1 is read before anything wrote it.
    let p = program(
        2,
        vec![
            encode_abc(Op::LoadInt, 0, 0, 0),
            encode_abc(Op::Add, 0, 0, 1),
            ret,
        ],
    );
    assert_eq!(
        verify_error(&p),
        "verify error in f0 at pc 1: `add` reads r1 before it is written"
    );
    // Written on one path only.
    let code = vec![
        encode_abc(Op::LoadBool, 0, 1, 0),
        encode_abc(Op::JmpIf, 0, 1, 0),
        5,
        encode_abc(Op::LoadInt, 1, 0, 0),
        encode_abc(Op::LoadNil, 0, 0, 0),
        encode_abc(Op::Ret, 1, 0, 0),
    ];
    assert_eq!(
        verify_error(&program(2, code)),
        "verify error in f0 at pc 5: `ret` reads r1 before it is written"
    );
}

#[test]
fn verifier_rejects_calls_with_wrong_arity() {
    let mut p = program(
        3,
        vec![
            encode_abc(Op::LoadInt, 0, 0, 0),
            encode_abc(Op::Call, 0, 0, 1),
            1,
            encode_abc(Op::RetNil, 0, 0, 0),
        ],
    );
    let callee = Function {
        name: 0,
        arity: 2,
        nregs: 2,
        code: vec![encode_abc(Op::RetNil, 0, 0, 0)],
        lines: vec![1],
    };
    p.funcs.push(callee);
    assert_eq!(
        verify_error(&p),
        "verify error in f0 at pc 1: call to f1 with 1 arguments, it takes 2"
    );
    p.funcs[0].code[2] = 7;
    assert_eq!(
        verify_error(&p),
        "verify error in f0 at pc 1: call to f7, which does not exist"
    );
    let p = program(
        3,
        vec![
            encode_abc(Op::CallB, 0, 1, 0),
            encode_abc(Op::RetNil, 0, 0, 0),
        ],
    );
    assert_eq!(
        verify_error(&p),
        "verify error in f0 at pc 0: builtin len called with 0 arguments, it takes 1"
    );
}

#[test]
fn verifier_accepts_every_example_and_bytes_round_trip() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    for name in ["fib", "mandelbrot", "sieve", "spectral_norm", "strings"] {
        let src = std::fs::read_to_string(dir.join(format!("{name}.kl"))).unwrap();
        let prog = lang::compile(&src).unwrap();
        kiln::vm::verify(&prog).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            Program::from_bytes(&prog.to_bytes()).unwrap(),
            prog,
            "{name}"
        );
    }
}

#[test]
fn load_errors_name_the_offset() {
    assert_eq!(
        Program::from_bytes(b"NOPE").unwrap_err().to_string(),
        "bad program bytes at offset 0: truncated"
    );
    let mut huge = b"KILN\x01".to_vec();
    huge.extend_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        Program::from_bytes(&huge).unwrap_err().to_string(),
        "bad program bytes at offset 5: count larger than the remaining input"
    );
}

struct Recorder(Vec<(usize, usize, u32, i64)>);

impl LoopHook for Recorder {
    fn hot_loop(&mut self, at: HotLoop<'_>) {
        let i = match at.regs[0] {
            kiln::vm::Value::Int(i) => i,
            _ => -1,
        };
        self.0.push((at.func, at.header_pc, at.count, i));
    }
}

#[test]
fn hot_loop_hook_fires_once_at_the_threshold() {
    let prog = lang::compile("let i = 0;\nwhile i < 500 {\n  i = i + 1;\n}").unwrap();
    let config = VmConfig {
        jit_threshold: 100,
        ..VmConfig::default()
    };
    let mut vm = Vm::new(&prog, config).unwrap();
    let mut hook = Recorder(Vec::new());
    let mut out = String::new();
    vm.run(&mut out, Some(&mut hook)).unwrap();
    // Code: 0 loadint; 1 jgek (entry test); 3 loop (falling into the loop); 4 forltk r0 (step,
    // test, jump back to itself: the loop header is PC 4). The first arrival is the `loop`
    // marker's, before the first increment; the 100th is the 99th backward jump.
    assert_eq!(hook.0, vec![(0, 4, 100, 99)]);
    assert_eq!(
        vm.loop_count(0, 4),
        500,
        "one arrival per iteration: the entry, then a backward jump per iteration but the last"
    );
}

/// A hook that never has native code and asks to be left alone for `wait` arrivals.
struct Waiter {
    wait: u32,
    /// (func, header pc or 0, count) of every time the VM asked.
    asked: Vec<(usize, usize, u32)>,
    hot: u32,
}

impl LoopHook for Waiter {
    fn hot_loop(&mut self, _at: HotLoop<'_>) {
        self.hot += 1;
    }

    fn enter(&mut self, func: usize, pc: usize, _: &mut [Value], _: &mut u64) -> Reply<usize> {
        self.asked.push((func, pc, 0));
        Reply::Wait(self.wait)
    }

    fn hot_func(&mut self, _at: HotFunc<'_>) {
        self.hot += 1;
    }

    fn native_func(&mut self, func: usize, _: &[Value]) -> Reply<std::rc::Rc<dyn NativeFunc>> {
        self.asked.push((func, 0, 0));
        Reply::Wait(self.wait)
    }
}

fn asked(src: &str, wait: u32) -> Waiter {
    let prog = lang::compile(src).unwrap();
    let config = VmConfig {
        jit_threshold: 100,
        ..VmConfig::default()
    };
    let mut vm = Vm::new(&prog, config).unwrap();
    let mut hook = Waiter {
        wait,
        asked: Vec::new(),
        hot: 0,
    };
    let mut out = String::new();
    vm.run(&mut out, Some(&mut hook)).unwrap();
    hook
}

#[test]
fn the_hook_is_asked_again_only_after_the_wait_it_asked_for() {
    // 10000 iterations: the entry at PC 3 (`loop`) and 9999 backward jumps to the header at
    // PC 4; hot at the 100th arrival, then every 1000th.
    let src = "let i = 0;\nwhile i < 10000 {\n  i = i + 1;\n}";
    let h = asked(src, 1000);
    assert_eq!(h.hot, 1);
    assert_eq!(h.asked.len(), 10, "at 100, 1100, ..., 9100: {:?}", h.asked);
    assert!(h.asked.iter().all(|a| *a == (0, 4, 0)));
    // A loop the hook gave up on is never asked again.
    assert_eq!(asked(src, u32::MAX).asked.len(), 1);
    // Calls: 5000 calls of f1, hot at the 100th, then every 500th.
    let src = "fn f(x) { return x + 1; }\nlet i = 0;\nwhile i < 5000 {\n  i = f(i);\n}";
    let h = asked(src, 500);
    assert_eq!(h.hot, 2, "the loop and the function");
    let calls = h.asked.iter().filter(|a| a.0 == 1).count();
    assert_eq!(calls, 10, "at 100, 600, ..., 4600: {:?}", h.asked);
    let h = asked(src, u32::MAX);
    assert_eq!(h.asked.len(), 2, "once for the loop, once for the function");
}

#[test]
fn disassembly_names_ops_constants_and_calls() {
    let prog = lang::compile("fn sq(x) { return x * x; }\nprint(sq(1.5));").unwrap();
    let mut text = String::new();
    kiln::vm::bytecode::disassemble(&mut text, &prog).unwrap();
    for needle in [
        "fn f0 main",
        "fn f1 sq (arity 1",
        "call     r0, 1, f1   ; sq",
        "callb",
        "print",
        "mul      r1, r0, r0",
        "ret      r1",
    ] {
        assert!(text.contains(needle), "{needle:?} missing in\n{text}");
    }
}

// The interpreter runs `getidx` + `mul` (and other frequent adjacent pairs) with one dispatch
// (`vm::interp::quicken`); an error in either instruction keeps that instruction's location.
#[test]
fn errors_inside_fused_pairs_keep_their_own_pc() {
    assert_eq!(
        error_of("let a = [1, 2, 3];\nlet i = 5;\nlet x = 2;\nprint(a[i] * x);\n"),
        "runtime error at line 4 (fn main, pc 6): index out of range: index 5, length 3"
    );
    assert_eq!(
        error_of("let a = [1, 2, 3];\nlet i = 1;\nlet s = \"s\";\nprint(a[i] * s);\n"),
        "runtime error at line 4 (fn main, pc 7): type error: cannot multiply int and string"
    );
}

// A jump to the second instruction of a fused pair runs that instruction alone.
#[test]
fn jump_into_the_second_instruction_of_a_fused_pair() {
    let code = vec![
        encode_abx(Op::LoadInt, 0, 3),
        encode_abx(Op::LoadInt, 1, 0),
        encode_abx(Op::LoadInt, 2, 1),
        encode_abc(Op::Mul, 2, 2, 0), // fused with the next `mul`
        encode_abc(Op::Mul, 2, 2, 0), // the loop's target
        encode_abc(Op::AddK, 1, 1, 1),
        encode_abc(Op::JLtK, 1, 2, 1),
        4,
        encode_abc(Op::Ret, 2, 0, 0),
    ];
    let lines = vec![1; code.len()];
    let p = Program {
        consts: vec![Const::Str("main".into()), Const::Int(1), Const::Int(3)],
        funcs: vec![Function {
            name: 0,
            arity: 0,
            nregs: 3,
            code,
            lines,
        }],
        ..Program::default()
    };
    for fused_pairs in [true, false] {
        let config = VmConfig {
            fused_pairs,
            ..VmConfig::default()
        };
        let mut vm = Vm::new(&p, config).unwrap();
        let mut out = String::new();
        // 1 * 3 * 3, then three more times through the second `mul`: 3^4.
        let v = vm.run(&mut out, None).unwrap();
        assert!(matches!(v, Value::Int(81)), "{v:?}");
    }
}

// Fused pairs change how many dispatches run, nothing a program can observe: under every fuel
// budget and memory cap the run stops at the same place with the same error (or prints the
// same output) with and without them.
#[test]
fn fused_pairs_keep_fuel_and_memory_cap_exact() {
    let src = "fn norm(v, n) {\n  let s = 0.0;\n  let i = 0;\n  while i < n {\n    s = s + v[i] * v[i];\n    i = i + 1;\n  }\n  return s;\n}\nlet v = array(8, 1.5);\nlet t = \"\";\nlet k = 0;\nwhile k < 20 {\n  v[k % 8] = v[k % 8] * 1.25 + k;\n  t = t + str(k);\n  k = k + 1;\n}\nprint(norm(v, 8), len(t));\n";
    let outcome = |fused_pairs: bool, fuel: Option<u64>, memory_cap: usize| {
        let config = VmConfig {
            fused_pairs,
            fuel,
            memory_cap,
            ..VmConfig::default()
        };
        match run_with(src, config) {
            Ok(out) => out,
            Err(e) => e.to_string(),
        }
    };
    let full = outcome(true, None, usize::MAX);
    assert!(!full.contains("error"), "{full}");
    assert_eq!(full, outcome(false, None, usize::MAX));
    let mut stops = 0;
    for fuel in 0..700 {
        let (on, off) = (
            outcome(true, Some(fuel), usize::MAX),
            outcome(false, Some(fuel), usize::MAX),
        );
        assert_eq!(on, off, "fuel {fuel}");
        stops += usize::from(on.contains("out of fuel"));
    }
    assert!(
        stops > 10,
        "the sweep never ran out of fuel inside the loops"
    );
    let mut capped = 0;
    for cap in (0..8000).step_by(64) {
        let (on, off) = (outcome(true, None, cap), outcome(false, None, cap));
        assert_eq!(on, off, "memory cap {cap}");
        capped += usize::from(on.contains("memory cap"));
    }
    assert!(capped > 2, "the sweep never reached the memory cap");
}

#[test]
fn the_call_depth_limit_is_exact_and_holds_on_every_run_of_a_vm() {
    // `f(n)` nests n + 1 calls under the entry function, so it needs n + 1 frames. An odd
    // limit is never a capacity the frame stack grows to by itself.
    let src = "fn f(n) {\n  if n == 0 {\n    return 0;\n  }\n  return f(n - 1) + 1;\n}\nreturn f(int(args()[0]));\n";
    let prog = lang::compile(src).unwrap();
    for max_depth in [1, 2, 37, 1000] {
        let config = VmConfig {
            max_depth,
            ..VmConfig::default()
        };
        let mut vm = Vm::new(&prog, config).unwrap();
        // Deeper and shallower runs alternate on one VM: its frame stack keeps its capacity.
        for n in [
            max_depth,
            max_depth - 1,
            max_depth + 5,
            max_depth / 2,
            max_depth - 1,
        ] {
            let arg = n.to_string();
            vm.set_args(&[arg.as_str()]).unwrap();
            let mut out = String::new();
            match vm.run(&mut out, None) {
                Ok(v) => {
                    assert!(n < max_depth, "depth {} ran under limit {max_depth}", n + 1);
                    assert!(matches!(v, Value::Int(r) if r == n as i64), "{v:?}");
                }
                Err(e) => {
                    assert!(
                        n >= max_depth,
                        "depth {} failed under limit {max_depth}",
                        n + 1
                    );
                    assert_eq!(e.kind, RuntimeErrorKind::StackOverflow, "{e:?}");
                    // The call that would have needed one frame too many: `f`'s own.
                    assert_eq!(e.func, "f");
                    let call = &prog.funcs[1].code[e.pc];
                    assert_eq!(*call as u8, Op::Call as u8, "pc {}", e.pc);
                }
            }
        }
    }
}

#[test]
fn a_call_charges_the_callee_and_its_return_the_rest_of_the_caller() {
    let src = "fn f(x) {\n  return x + 1;\n}\nlet a = f(1);\nprint(a);\n";
    let prog = lang::compile(src).unwrap();
    let main_len = prog.funcs[0].code.len();
    let callee_len = prog.funcs[1].code.len();
    let call_pc = (0..main_len)
        .find(|&pc| prog.funcs[0].code[pc] as u8 == Op::Call as u8)
        .unwrap();
    let ret_pc = call_pc + 2;
    // Charged in advance: the entry function at start, the callee at the call, the rest of
    // the caller from the return PC on at the return.
    let total = main_len + callee_len + (main_len - ret_pc);
    let mut errors = 0;
    for fuel in 0..total as u64 + 3 {
        let config = VmConfig {
            fuel: Some(fuel),
            ..VmConfig::default()
        };
        let mut vm = Vm::new(&prog, config).unwrap();
        let mut out = String::new();
        let r = vm.run(&mut out, None);
        let fuel = fuel as usize;
        if fuel >= total {
            assert!(r.is_ok(), "fuel {fuel}: {r:?}");
            assert_eq!(out, "2\n");
            assert_eq!(vm.fuel_left() as usize, fuel - total);
            continue;
        }
        let e = r.unwrap_err();
        errors += 1;
        assert_eq!(e.kind, RuntimeErrorKind::OutOfFuel, "fuel {fuel}");
        assert_eq!(e.func, "main", "fuel {fuel}");
        let at = if fuel < main_len {
            0
        } else if fuel < main_len + callee_len {
            call_pc
        } else {
            ret_pc
        };
        assert_eq!(e.pc, at, "fuel {fuel}");
        // The callee ran (and printed nothing) exactly when the return failed.
        assert_eq!(out, "", "fuel {fuel}");
    }
    assert_eq!(errors, total);
}

// `add`, `mul`, `div` and `modk` followed by `ret` (the tail of `return a + b;`) run as one
// fused pair: an error in the first keeps its PC, a jump to the `ret` runs it alone, and the
// results, errors and fuel are those of the unfused run.
#[test]
fn fused_returns_keep_pc_results_and_fuel() {
    assert_eq!(
        error_of("fn q(a, b) {\n  return a / b;\n}\nprint(q(7, 0));\n"),
        "runtime error at line 2 (fn q, pc 0): division by zero"
    );
    assert_eq!(
        error_of("fn q(a, b) {\n  return a + b;\n}\nprint(q(7, \"s\"));\n"),
        "runtime error at line 2 (fn q, pc 0): type error: cannot add int and string"
    );
    let src = "fn add(a, b) {\n  return a + b;\n}\nfn sq(x) {\n  return x * x;\n}\nfn half(x) {\n  return x / 2.0;\n}\nfn odd(x) {\n  return x % 2;\n}\nfn pick(a, b, c) {\n  let r = a;\n  if c {\n    r = a * b;\n  }\n  return r;\n}\nfn cat(s, t) {\n  return s + t;\n}\nlet h = 0;\nlet i = 0;\nlet s = \"\";\nwhile i < 30 {\n  h = add(h, sq(i)) + odd(i) + pick(i, 3, odd(i) == 1);\n  s = cat(s, str(odd(i)));\n  i = i + 1;\n}\nprint(h, half(h), s);\n";
    let prog = lang::compile(src).unwrap();
    let fused = |f: usize| {
        let code = &prog.funcs[f].code;
        code.len() >= 2 && code[code.len() - 2] as u8 == Op::Ret as u8
    };
    // The compiler ends these functions with the pairs fused here (the `ret` is followed by
    // the `retnil` every function ends with).
    assert!((1..prog.funcs.len()).all(fused));
    let outcome = |fused_pairs: bool, fuel: Option<u64>| {
        let config = VmConfig {
            fused_pairs,
            fuel,
            ..VmConfig::default()
        };
        let mut vm = Vm::new(&prog, config).unwrap();
        let mut out = String::new();
        let r = vm.run(&mut out, None);
        (out, r.map_err(|e| e.to_string()).err(), vm.fuel_left())
    };
    let full = outcome(true, None);
    assert_eq!(
        full.0, "9455 4727.5 010101010101010101010101010101\n",
        "{full:?}"
    );
    assert_eq!(full, outcome(false, None));
    let used = u64::MAX - full.2;
    for fuel in (0..used + 2).step_by(7) {
        assert_eq!(
            outcome(true, Some(fuel)),
            outcome(false, Some(fuel)),
            "fuel {fuel}"
        );
    }
}
