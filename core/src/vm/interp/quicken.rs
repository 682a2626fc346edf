//! The interpreter's own copy of a function's code, with fused pairs.
//!
//! The verified code is what the verifier, the disassembler and the JIT's recorders read. The
//! interpreter runs a copy of it in which the opcode byte of some instructions is replaced by a
//! fused opcode (see [`FUSED_OPS`]): the handler of `getidx+mul` runs the `getidx` at its own
//! word and then the `mul` at the next word, with one dispatch instead of two. Nothing else
//! changes: every word keeps its operands, so PCs, jump targets into the second instruction of
//! a pair, error locations and fuel are those of the verified code, and the second
//! instruction, reached by a jump, runs as itself.
use alloc::vec::Vec;

use crate::vm::bytecode::{Op, FUSED_OPS};
use crate::vm::program::Program;

/// The interpreter's code of every function of `prog` (verified), all in one buffer (one
/// allocation), with fused pairs, in the program's order.
pub(super) fn layout(prog: &Program) -> Vec<u32> {
    let words = prog.funcs.iter().map(|f| f.code.len()).sum::<usize>();
    let mut buf = Vec::with_capacity(words);
    for f in &prog.funcs {
        let start = buf.len();
        buf.extend_from_slice(&f.code);
        quicken(&mut buf[start..]);
    }
    buf
}

/// The fused opcode for `first` followed by `second`, if there is one.
fn fused(first: Op, second: Op) -> Option<Op> {
    FUSED_OPS
        .iter()
        .find(|&&(_, a, b)| a == first && b == second)
        .map(|&(f, _, _)| f)
}

/// Rewrites `code` (verified) in place: every instruction that has a fused pair with the
/// instruction after it gets that pair's opcode. Instructions are visited in order, and each
/// one's own byte is read before it is rewritten, so every decision sees the verified opcodes.
pub(super) fn quicken(code: &mut [u32]) {
    let mut pc = 0;
    while pc < code.len() {
        // The verifier proved every instruction start holds a known opcode.
        let Some(op) = Op::from_byte(code[pc] as u8) else {
            break;
        };
        let next = pc + op.width();
        // A fused pair's first instruction is one word and no terminator, so the second
        // starts right after it; the verifier proved code never ends without a terminator.
        if op.width() == 1 && !op.is_terminator() {
            if let Some(f) = code
                .get(next)
                .and_then(|&w| Op::from_byte(w as u8))
                .and_then(|second| fused(op, second))
            {
                code[pc] = (code[pc] & !0xff) | f as u32;
            }
        }
        pc = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::bytecode::{encode_abc, field_a, field_b, field_c};

    #[test]
    fn pairs_are_fused_in_place_and_keep_their_operands() {
        let code = [
            encode_abc(Op::GetIdx, 6, 1, 4),
            encode_abc(Op::AddK, 5, 6, 3),
            encode_abc(Op::SetIdx, 1, 4, 5),
            encode_abc(Op::Ret, 5, 0, 0),
        ];
        let mut q = code;
        quicken(&mut q);
        assert_eq!(q.len(), code.len());
        assert_eq!(q[0] as u8, Op::GetIdxAddK as u8);
        assert_eq!(q[1] as u8, Op::AddKSetIdx as u8);
        assert_eq!(q[2] as u8, Op::SetIdx as u8);
        assert_eq!(q[3], code[3]);
        for (a, b) in q.iter().zip(code.iter()) {
            assert_eq!(
                (field_a(*a), field_b(*a), field_c(*a)),
                (field_a(*b), field_b(*b), field_c(*b))
            );
        }
    }

    #[test]
    fn fused_opcodes_are_not_program_opcodes() {
        for &(f, a, b) in FUSED_OPS {
            assert!(Op::from_byte(f as u8).is_none(), "{}", f.mnemonic());
            assert_eq!(a.width(), 1, "{}", f.mnemonic());
            assert!(!a.is_terminator(), "{}", f.mnemonic());
            assert_eq!(fused(a, b), Some(f));
        }
    }
}
