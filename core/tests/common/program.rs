//! Hand-assembled programs for VM tests: one function, `main`, with the given code.
use kiln::vm::{Const, Function, Program};

/// A program whose only function is `main` (no arguments, `nregs` registers, every word on
/// line 1) running `code`; constant 0 is the name `"main"`, `consts` follow it from index 1.
pub fn main_program(nregs: u16, code: Vec<u32>, consts: &[Const]) -> Program {
    let lines = vec![1; code.len()];
    let mut all = vec![Const::Str("main".into())];
    all.extend_from_slice(consts);
    Program {
        consts: all,
        funcs: vec![Function {
            name: 0,
            arity: 0,
            nregs,
            code,
            lines,
        }],
        ..Program::default()
    }
}
