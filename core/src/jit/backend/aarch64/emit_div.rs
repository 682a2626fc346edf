//! AArch64 `dynasm!` templates for int `/` and `%` by a constant (`DivIK`, `ModIK`): `sdiv`,
//! and `msub` for the remainder; a power-of-two divisor takes shifts. Bytes are compared with
//! the real `dynasmrt` in a test.
use crate::jit::buffer::CodeBuffer;

macro_rules! a64_div_templates {
    ($B:ty) => {
        /// `sdiv xd, xn, xm` (truncated toward zero).
        pub fn sdiv(ops: &mut $B, d: u8, n: u8, m: u8) {
            ::dynasm::dynasm!(ops ; .arch aarch64 ; sdiv X(d), X(n), X(m));
        }
        /// `msub xd, xn, xm, xa` (`xd` := `xa - xn * xm`).
        pub fn msub(ops: &mut $B, d: u8, n: u8, m: u8, a: u8) {
            ::dynasm::dynasm!(ops ; .arch aarch64 ; msub X(d), X(n), X(m), X(a));
        }
        /// `asr xd, xn, s` (arithmetic shift right, `s` in 0..64).
        pub fn asr_ri(ops: &mut $B, d: u8, n: u8, s: u32) {
            ::dynasm::dynasm!(ops ; .arch aarch64 ; asr X(d), X(n), s);
        }
        /// `lsr xd, xn, s` (logical shift right, `s` in 0..64).
        pub fn lsr_ri(ops: &mut $B, d: u8, n: u8, s: u32) {
            ::dynasm::dynasm!(ops ; .arch aarch64 ; lsr X(d), X(n), s);
        }
        /// `lsl xd, xn, s` (`s` in 0..64).
        pub fn lsl_ri(ops: &mut $B, d: u8, n: u8, s: u32) {
            ::dynasm::dynasm!(ops ; .arch aarch64 ; lsl X(d), X(n), s);
        }
    };
}
#[cfg(test)]
pub(crate) use a64_div_templates;

a64_div_templates!(CodeBuffer);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jit::buffer::Arch;

    mod real {
        #[allow(unused_imports)]
        use real_dynasmrt::{DynasmApi, DynasmLabelApi};
        type B = real_dynasmrt::VecAssembler<real_dynasmrt::aarch64::Aarch64Relocation>;
        crate::jit::backend::aarch64::emit_div::a64_div_templates!(B);
    }

    macro_rules! drive {
        ($m:path, $ops:expr) => {{
            use $m as t;
            let ops = $ops;
            for r in 0..31u8 {
                t::sdiv(ops, r, (r + 1) % 31, (r + 7) % 31);
                t::msub(ops, r, (r + 3) % 31, (r + 5) % 31, (r + 11) % 31);
                let s = 1 + u32::from(r) * 2;
                t::asr_ri(ops, r, (r + 2) % 31, s);
                t::lsr_ri(ops, r, (r + 4) % 31, 64 - s);
                t::lsl_ri(ops, r, (r + 6) % 31, s);
            }
        }};
    }

    #[test]
    fn div_templates_match_real_dynasmrt() {
        let mut mine = CodeBuffer::new(Arch::Aarch64);
        drive!(super, &mut mine);
        let mine = mine.finish().expect("kiln buffer");
        let mut theirs =
            real_dynasmrt::VecAssembler::<real_dynasmrt::aarch64::Aarch64Relocation>::new(0);
        drive!(real, &mut theirs);
        let theirs = theirs.finalize().expect("real dynasmrt");
        assert_eq!(mine.len(), 31 * 5 * 4);
        assert_eq!(mine, theirs);
    }
}
