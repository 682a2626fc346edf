//! Fuzzing with proptest: arbitrary bytes, random instruction streams, mutated valid programs and
//! mutated sources never crash the loader, the verifier, the compiler or the interpreter. Every
//! input ends in `Ok` or a clean error; programs that pass the verifier run under fuel and
//! memory limits.
use kiln::vm::bytecode::{Op, ALL_OPS};
use kiln::vm::{lang, verify, Const, Function, Program, Vm, VmConfig};
use proptest::prelude::*;
use proptest::strategy::ValueTree;

const EXAMPLES: [&str; 5] = ["fib", "mandelbrot", "sieve", "spectral_norm", "strings"];

fn example(name: &str) -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    std::fs::read_to_string(dir.join(format!("{name}.kl"))).unwrap()
}

fn limits() -> VmConfig {
    VmConfig {
        fuel: Some(5_000),
        memory_cap: 1 << 20,
        max_depth: 64,
        jit_threshold: 7,
        ..VmConfig::default()
    }
}

/// Verifies and, if accepted, runs; returns whether the verifier accepted.
fn verify_and_run(prog: &Program) -> bool {
    let Ok(mut vm) = Vm::new(prog, limits()) else {
        return false;
    };
    vm.set_args(&["3"]).unwrap();
    let mut out = String::new();
    let _ = vm.run(&mut out, None);
    true
}

fn arb_const() -> impl Strategy<Value = Const> {
    prop_oneof![
        any::<i64>().prop_map(Const::Int),
        any::<f64>().prop_map(Const::Float),
        "[a-z]{0,6}".prop_map(|s| Const::Str(s.into())),
    ]
}

/// Words whose opcode byte is valid and whose operands are small, so some programs verify.
fn arb_word() -> impl Strategy<Value = u32> {
    (
        0..ALL_OPS.len() as u32,
        0u32..6,
        0u32..6,
        0u32..4,
        any::<u32>(),
        0u8..10,
    )
        .prop_map(|(op, a, b, c, raw, pick)| match pick {
            0 => raw,
            1..=3 => raw % 12,
            _ => op | a << 8 | b << 16 | c << 24,
        })
}

/// Random bodies; usually with every register initialised first and a `retnil` last, so that
/// a fair share passes the verifier and reaches the interpreter.
fn arb_function() -> impl Strategy<Value = Function> {
    (
        0u8..3,
        1u16..8,
        prop::collection::vec(arb_word(), 1..10),
        prop::bool::weighted(0.9),
        0u8..8,
    )
        .prop_map(|(arity, nregs, body, init, tail)| {
            let mut code: Vec<u32> = Vec::new();
            if init {
                code.extend((0..nregs as u32).map(|r| Op::LoadNil as u32 | r << 8));
            }
            code.extend(body);
            if tail != 0 {
                code.push(Op::RetNil as u32);
            }
            Function {
                name: 0,
                arity: arity.min(nregs as u8),
                nregs,
                lines: (0..code.len() as u32).collect(),
                code,
            }
        })
}

fn arb_program() -> impl Strategy<Value = Program> {
    (
        prop::collection::vec(arb_const(), 1..6),
        prop::collection::vec(arb_function(), 1..3),
    )
        .prop_map(|(consts, mut funcs)| {
            funcs[0].arity = 0;
            Program {
                consts,
                funcs,
                ..Program::default()
            }
        })
}

#[derive(Clone, Debug)]
enum Mutation {
    SetWord(usize, u32),
    FlipBit(usize, u8),
    Truncate(usize),
    Frame(u16, u8),
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u32>()).prop_map(|(i, w)| Mutation::SetWord(i, w)),
        (any::<usize>(), 0u8..32).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (0u16..300, any::<u8>()).prop_map(|(n, a)| Mutation::Frame(n, a)),
    ]
}

fn mutate(prog: &mut Program, func: usize, m: &Mutation) {
    let nfuncs = prog.funcs.len();
    let f = &mut prog.funcs[func % nfuncs];
    let n = f.code.len();
    match *m {
        Mutation::SetWord(i, w) => f.code[i % n] = w,
        Mutation::FlipBit(i, b) => f.code[i % n] ^= 1 << b,
        Mutation::Truncate(i) => {
            f.code.truncate((i % n).max(1));
            f.lines.truncate(f.code.len());
        }
        Mutation::Frame(nregs, arity) => {
            f.nregs = nregs;
            f.arity = arity;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_crash(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(prog) = Program::from_bytes(&bytes) {
            verify_and_run(&prog);
        }
        let mut framed = b"KILN\x01".to_vec();
        framed.extend_from_slice(&bytes);
        if let Ok(prog) = Program::from_bytes(&framed) {
            verify_and_run(&prog);
        }
    }

    #[test]
    fn random_instruction_streams_never_crash(prog in arb_program()) {
        verify_and_run(&prog);
        // The byte form of anything round-trips.
        prop_assert_eq!(Program::from_bytes(&prog.to_bytes()).unwrap(), prog);
    }

    #[test]
    fn mutated_valid_programs_never_crash(which in 0..EXAMPLES.len(), func in any::<usize>(),
                                         muts in prop::collection::vec(arb_mutation(), 1..4)) {
        let mut prog = lang::compile(&example(EXAMPLES[which])).unwrap();
        for m in &muts {
            mutate(&mut prog, func, m);
        }
        verify_and_run(&prog);
    }

    #[test]
    fn mutated_sources_never_crash(which in 0..EXAMPLES.len(), edits in prop::collection::vec((any::<usize>(), "[ -~\n]{0,3}"), 1..4)) {
        let mut src = example(EXAMPLES[which]).into_bytes();
        for (at, text) in &edits {
            let at = at % (src.len() + 1);
            let end = (at + text.len()).min(src.len());
            src.splice(at..end, text.bytes());
        }
        let src = String::from_utf8_lossy(&src);
        if let Ok(prog) = lang::compile(&src) {
            verify_and_run(&prog);
        }
    }
}

#[test]
fn the_generators_reach_the_interpreter() {
    // Guard against a fuzzer that only ever exercises rejection paths.
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut accepted = 0;
    for _ in 0..2000 {
        let prog = arb_program().new_tree(&mut runner).unwrap().current();
        accepted += verify(&prog).is_ok() as u32;
    }
    assert!(
        accepted >= 80,
        "only {accepted} of 2000 random programs verified"
    );
}
