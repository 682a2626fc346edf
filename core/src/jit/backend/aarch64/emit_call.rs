//! AArch64 `dynasm!` templates for calls between function traces (see
//! [`crate::jit::callframe`]) that [`super::emit`] does not have: an indirect branch, for a
//! side exit that continues in a linked side trace. Bytes are compared with the real
//! `dynasmrt` in a test.
use crate::jit::buffer::CodeBuffer;

macro_rules! a64_call_templates {
    ($B:ty) => {
        /// `br xn`.
        pub fn br(ops: &mut $B, n: u8) {
            ::dynasm::dynasm!(ops ; .arch aarch64 ; br X(n));
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
            }
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
        assert_eq!(mine.len(), 31 * 4);
        assert_eq!(mine, theirs);
    }
}
