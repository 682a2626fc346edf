//! x86-64 `dynasm!` templates for int `/` and `%` by a constant (`DivIK`, `ModIK`): `idiv`
//! takes its dividend in `rdx:rax`, so `rdx` is saved on the machine stack around it. Bytes
//! are compared with the real `dynasmrt` in a test. A power-of-two divisor takes shifts
//! instead (`sar`, `shr`, `shl` by an immediate count).
use crate::jit::buffer::CodeBuffer;

macro_rules! x64_div_templates {
    ($B:ty) => {
        /// `push src`.
        pub fn push_r(ops: &mut $B, s: u8) {
            ::dynasm::dynasm!(ops ; .arch x64 ; push Rq(s));
        }
        /// `pop dst`.
        pub fn pop_r(ops: &mut $B, d: u8) {
            ::dynasm::dynasm!(ops ; .arch x64 ; pop Rq(d));
        }
        /// `cqo` (`rdx` := the sign of `rax`).
        pub fn cqo(ops: &mut $B) {
            ::dynasm::dynasm!(ops ; .arch x64 ; cqo);
        }
        /// `idiv src` (`rax` := `rdx:rax / src`, `rdx` := the remainder).
        pub fn idiv_r(ops: &mut $B, s: u8) {
            ::dynasm::dynasm!(ops ; .arch x64 ; idiv Rq(s));
        }
        /// `sar dst, n` (arithmetic shift right, `n` in 0..64).
        pub fn sar_ri(ops: &mut $B, d: u8, n: i8) {
            ::dynasm::dynasm!(ops ; .arch x64 ; sar Rq(d), n);
        }
        /// `shr dst, n` (logical shift right, `n` in 0..64).
        pub fn shr_ri(ops: &mut $B, d: u8, n: i8) {
            ::dynasm::dynasm!(ops ; .arch x64 ; shr Rq(d), n);
        }
        /// `shl dst, n` (`n` in 0..64).
        pub fn shl_ri(ops: &mut $B, d: u8, n: i8) {
            ::dynasm::dynasm!(ops ; .arch x64 ; shl Rq(d), n);
        }
    };
}
#[cfg(test)]
pub(crate) use x64_div_templates;

x64_div_templates!(CodeBuffer);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jit::buffer::Arch;

    mod real {
        #[allow(unused_imports)]
        use real_dynasmrt::{DynasmApi, DynasmLabelApi};
        type B = real_dynasmrt::VecAssembler<real_dynasmrt::x64::X64Relocation>;
        crate::jit::backend::x86_64::emit_div::x64_div_templates!(B);
    }

    macro_rules! drive {
        ($m:path, $ops:expr) => {{
            use $m as t;
            let ops = $ops;
            t::cqo(ops);
            for r in 0..16u8 {
                t::push_r(ops, r);
                t::pop_r(ops, r);
                t::idiv_r(ops, r);
                for n in [1i8, 2, 31, 62, 63] {
                    t::sar_ri(ops, r, n);
                    t::shr_ri(ops, r, n);
                    t::shl_ri(ops, r, n);
                }
            }
        }};
    }

    #[test]
    fn div_templates_match_real_dynasmrt() {
        let mut mine = CodeBuffer::new(Arch::X64);
        drive!(super, &mut mine);
        let mine = mine.finish().expect("kiln buffer");
        let mut theirs = real_dynasmrt::VecAssembler::<real_dynasmrt::x64::X64Relocation>::new(0);
        drive!(real, &mut theirs);
        let theirs = theirs.finalize().expect("real dynasmrt");
        assert!(mine.len() > 50);
        assert_eq!(mine, theirs);
    }
}
