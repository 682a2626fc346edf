//! AArch64 `dynasm!` templates for calls between function traces (see
//! [`crate::jit::callframe`]) that [`super::emit`] does not have: the function-trace prologue
//! and epilogue, and an indirect branch, for a side exit that continues in a linked side
//! trace. Bytes are compared with the real
//! `dynasmrt` in a test.
use crate::jit::buffer::CodeBuffer;

macro_rules! a64_call_templates {
    ($B:ty) => {
        /// A function trace's prologue: saves fp/lr and only the callee-saved registers of
        /// `target::FUNC_POOL` and the two it keeps; slot base (1st argument) into x19, frame
        /// (2nd argument) into x20.
        pub fn func_prologue(ops: &mut $B) {
            ::dynasm::dynasm!(ops ; .arch aarch64
                ; stp x29, x30, [sp, -16]!
                ; mov x29, sp
                ; stp x19, x20, [sp, -16]!
                ; stp x21, x22, [sp, -16]!
                ; mov x19, x0
                ; mov x20, x1
            );
        }
        /// A function trace's epilogue: `w0` already holds the return value.
        pub fn func_epilogue(ops: &mut $B) {
            ::dynasm::dynasm!(ops ; .arch aarch64
                ; ldp x21, x22, [sp], 16
                ; ldp x19, x20, [sp], 16
                ; ldp x29, x30, [sp], 16
                ; ret
            );
        }
        /// `br xn`.
        pub fn br(ops: &mut $B, n: u8) {
            ::dynasm::dynasm!(ops ; .arch aarch64 ; br X(n));
        }
        /// `orr xd, xn, xm`.
        pub fn orr_rr(ops: &mut $B, d: u8, n: u8, m: u8) {
            ::dynasm::dynasm!(ops ; .arch aarch64 ; orr X(d), X(n), X(m));
        }
    };
}
#[cfg(test)]
pub(crate) use a64_call_templates;

a64_call_templates!(CodeBuffer);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jit::buffer::Arch;

    mod real {
        #[allow(unused_imports)]
        use real_dynasmrt::{DynasmApi, DynasmLabelApi};
        type B = real_dynasmrt::VecAssembler<real_dynasmrt::aarch64::Aarch64Relocation>;
        crate::jit::backend::aarch64::emit_call::a64_call_templates!(B);
    }

    macro_rules! drive {
        ($m:path, $ops:expr) => {{
            use $m as t;
            let ops = $ops;
            for r in 0..31u8 {
                t::br(ops, r);
                t::orr_rr(ops, r, 30 - r, (r + 7) % 31);
            }
            t::func_prologue(ops);
            t::func_epilogue(ops);
        }};
    }

    #[test]
    fn call_templates_match_real_dynasmrt() {
        let mut mine = CodeBuffer::new(Arch::Aarch64);
        drive!(super, &mut mine);
        let mine = mine.finish().expect("kiln buffer");
        let mut theirs =
            real_dynasmrt::VecAssembler::<real_dynasmrt::aarch64::Aarch64Relocation>::new(0);
        drive!(real, &mut theirs);
        let theirs = theirs.finalize().expect("real dynasmrt");
        assert_eq!(mine.len(), 72 * 4);
        assert_eq!(mine, theirs);
    }
}
