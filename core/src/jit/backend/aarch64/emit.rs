//! AArch64 `dynasm!` templates: every instruction shape the AArch64 backend emits.
//!
//! Glossary
//! - *template*: one small function wrapping one `dynasm!` invocation. Registers are numbers
//!   (`X(n)` / `D(n)`, `n < 31`); the stack pointer only appears statically (`sp`, in the
//!   prologue and epilogue).
//! - *checked immediate*: [`Imm12`], [`Off8`], [`Off4`], [`Off1`], [`Imm16`] can only be built by
//!   constructors that return `None` for values the instruction cannot encode.
//!
//! Invariants
//! - Every immediate a template encodes comes from a checked-immediate type, so the `dynasm!`
//!   expansion's out-of-range branch (`dynasmrt::aarch64::immediate_out_of_range_*`, which
//!   panics) is unreachable. Callers fall back to `movz`/`movk` sequences or address arithmetic
//!   when a constructor says no.
//! - The templates are written once inside `a64_templates!` and expanded into kiln's
//!   [`CodeBuffer`] here and into the real `dynasmrt::VecAssembler` in tests (bytes compared).
use crate::jit::buffer::{CodeBuffer, DynamicLabel};

/// An unsigned 12-bit immediate (add, sub, cmp).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Imm12(u32);
impl Imm12 {
    /// `Some` if `v < 4096`.
    pub fn new(v: i64) -> Option<Self> {
        (0..4096).contains(&v).then_some(Self(v as u32))
    }
    /// The value.
    pub fn get(self) -> u32 {
        self.0
    }
}

/// A 16-bit chunk for `movz`/`movk`/`movn`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Imm16(u32);
impl Imm16 {
    /// Always encodable: every `u16` fits.
    pub fn new(v: u16) -> Self {
        Self(v as u32)
    }
    /// The value.
    pub fn get(self) -> u32 {
        self.0
    }
}

/// A byte offset for 8-byte loads and stores: a multiple of 8 below 32768.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Off8(u32);
impl Off8 {
    /// Offset zero.
    pub const ZERO: Self = Self(0);
    /// `Some` if encodable.
    pub fn new(v: i64) -> Option<Self> {
        (v % 8 == 0 && (0..32768).contains(&v)).then_some(Self(v as u32))
    }
    /// The value.
    pub fn get(self) -> u32 {
        self.0
    }
}

/// A byte offset for 4-byte loads and stores: a multiple of 4 below 16384.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Off4(u32);
impl Off4 {
    /// Offset zero.
    pub const ZERO: Self = Self(0);
    /// `Some` if encodable.
    pub fn new(v: i64) -> Option<Self> {
        (v % 4 == 0 && (0..16384).contains(&v)).then_some(Self(v as u32))
    }
    /// The value.
    pub fn get(self) -> u32 {
        self.0
    }
}

/// A byte offset for 1-byte loads and stores: below 4096.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Off1(u32);
impl Off1 {
    /// Offset zero.
    pub const ZERO: Self = Self(0);
    /// `Some` if encodable.
    pub fn new(v: i64) -> Option<Self> {
        (0..4096).contains(&v).then_some(Self(v as u32))
    }
    /// The value.
    pub fn get(self) -> u32 {
        self.0
    }
}

/// Condition codes used by guards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cond {
    /// equal
    Eq,
    /// not equal
    Ne,
    /// signed less
    Lt,
    /// signed less or equal
    Le,
    /// signed greater
    Gt,
    /// signed greater or equal
    Ge,
    /// unsigned higher (floats: greater, not unordered)
    Hi,
    /// unsigned lower or same (floats: less or equal, or unordered)
    Ls,
    /// negative (floats: less, not unordered)
    Mi,
    /// unsigned higher or same (carry set)
    Hs,
    /// positive or zero (floats: not less, or unordered)
    Pl,
    /// unsigned lower (carry clear: a `subs` borrowed)
    Lo,
}

/// All [`Cond`]s (for exhaustive template tests).
pub const ALL_CONDS: [Cond; 12] = [
    Cond::Eq,
    Cond::Ne,
    Cond::Lt,
    Cond::Le,
    Cond::Gt,
    Cond::Ge,
    Cond::Hi,
    Cond::Ls,
    Cond::Mi,
    Cond::Pl,
    Cond::Hs,
    Cond::Lo,
];

/// Expands the AArch64 templates for an assembler type `$B` with dynamic label type `$L`.
macro_rules! a64_templates {
    ($B:ty, $L:ty) => {
        /// `mov xd, xs`.
        pub fn mov_rr(ops: &mut $B, d: u8, s: u8) {
            ::dynasm::dynasm!(ops ; .arch aarch64 ; mov X(d), X(s));
        }
        /// `movz xd, imm16, lsl 16*shift`.
        pub fn movz(ops: &mut $B, d: u8, imm: Imm16, shift: u8) {
            let imm = imm.get();
            match shift & 3 {
                0 => ::dynasm::dynasm!(ops ; .arch aarch64 ; movz X(d), imm),
                1 => ::dynasm::dynasm!(ops ; .arch aarch64 ; movz X(d), imm, lsl 16),
                2 => ::dynasm::dynasm!(ops ; .arch aarch64 ; movz X(d), imm, lsl 32),
                _ => ::dynasm::dynasm!(ops ; .arch aarch64 ; movz X(d), imm, lsl 48),
            }
        }
        /// `movk xd, imm16, lsl 16*shift`.
        pub fn movk(ops: &mut $B, d: u8, imm: Imm16, shift: u8) {
            let imm = imm.get();
            match shift & 3 {
                0 => ::dynasm::dynasm!(ops ; .arch aarch64 ; movk X(d), imm),
                1 => ::dynasm::dynasm!(ops ; .arch aarch64 ; movk X(d), imm, lsl 16),
                2 => ::dynasm::dynasm!(ops ; .arch aarch64 ; movk X(d), imm, lsl 32),
                _ => ::dynasm::dynasm!(ops ; .arch aarch64 ; movk X(d), imm, lsl 48),
            }
        }
        /// `movn xd, imm16` (xd = !imm16).
        pub fn movn(ops: &mut $B, d: u8, imm: Imm16) {
            let imm = imm.get();
            ::dynasm::dynasm!(ops ; .arch aarch64 ; movn X(d), imm);
        }
        /// `ldr xt, [xn, off]`.
        pub fn ldr_x(ops: &mut $B, t: u8, n: u8, off: Off8) {
            let off = off.get();
            ::dynasm::dynasm!(ops ; .arch aarch64 ; ldr X(t), [X(n), off]);
        }
        /// `str xt, [xn, off]`.
        pub fn str_x(ops: &mut $B, t: u8, n: u8, off: Off8) {
            let off = off.get();
            ::dynasm::dynasm!(ops ; .arch aarch64 ; str X(t), [X(n), off]);
        }
        /// `ldr wt, [xn, off]` (zero-extends).
        pub fn ldr_w(ops: &mut $B, t: u8, n: u8, off: Off4) {
            let off = off.get();
            ::dynasm::dynasm!(ops ; .arch aarch64 ; ldr W(t), [X(n), off]);
        }
        /// `str wt, [xn, off]`.
        pub fn str_w(ops: &mut $B, t: u8, n: u8, off: Off4) {
            let off = off.get();
            ::dynasm::dynasm!(ops ; .arch aarch64 ; str W(t), [X(n), off]);
        }
        /// `ldrb wt, [xn, off]`.
        pub fn ldrb(ops: &mut $B, t: u8, n: u8, off: Off1) {
            let off = off.get();
            ::dynasm::dynasm!(ops ; .arch aarch64 ; ldrb W(t), [X(n), off]);
        }
        /// `strb wt, [xn, off]`.
        pub fn strb(ops: &mut $B, t: u8, n: u8, off: Off1) {
            let off = off.get();
            ::dynasm::dynasm!(ops ; .arch aarch64 ; strb W(t), [X(n), off]);
        }
        /// `ldr dt, [xn, off]`.
        pub fn ldr_d(ops: &mut $B, t: u8, n: u8, off: Off8) {
            let off = off.get();
            ::dynasm::dynasm!(ops ; .arch aarch64 ; ldr D(t), [X(n), off]);
        }
        /// `str dt, [xn, off]`.
        pub fn str_d(ops: &mut $B, t: u8, n: u8, off: Off8) {
            let off = off.get();
            ::dynasm::dynasm!(ops ; .arch aarch64 ; str D(t), [X(n), off]);
        }
        /// `add xd, xn, xm`.
        pub fn add_rr(ops: &mut $B, d: u8, n: u8, m: u8) {
            ::dynasm::dynasm!(ops ; .arch aarch64 ; add X(d), X(n), X(m));
        }
        /// `add xd, xn, xm, lsl #4` (an element's address: 16-byte values).
        pub fn add_lsl4(ops: &mut $B, d: u8, n: u8, m: u8) {
            ::dynasm::dynasm!(ops ; .arch aarch64 ; add X(d), X(n), X(m), lsl 4);
        }
        /// `sub xd, xn, xm`.
        pub fn sub_rr(ops: &mut $B, d: u8, n: u8, m: u8) {
            ::dynasm::dynasm!(ops ; .arch aarch64 ; sub X(d), X(n), X(m));
        }
        /// `mul xd, xn, xm`.
        pub fn mul_rr(ops: &mut $B, d: u8, n: u8, m: u8) {
            ::dynasm::dynasm!(ops ; .arch aarch64 ; mul X(d), X(n), X(m));
        }
        /// `add xd, xn, imm12`.
        pub fn add_ri(ops: &mut $B, d: u8, n: u8, imm: Imm12) {
            let imm = imm.get();
            ::dynasm::dynasm!(ops ; .arch aarch64 ; add XSP(d), XSP(n), #imm);
        }
        /// `sub xd, xn, imm12`.
        pub fn sub_ri(ops: &mut $B, d: u8, n: u8, imm: Imm12) {
            let imm = imm.get();
            ::dynasm::dynasm!(ops ; .arch aarch64 ; sub XSP(d), XSP(n), #imm);
        }
        /// `subs xd, xn, imm12` (sets the flags; carry clear on a borrow).
        pub fn subs_ri(ops: &mut $B, d: u8, n: u8, imm: Imm12) {
            let imm = imm.get();
            ::dynasm::dynasm!(ops ; .arch aarch64 ; subs X(d), XSP(n), #imm);
        }
        /// `subs xd, xn, xm` (sets the flags; carry clear on a borrow).
        pub fn subs_rr(ops: &mut $B, d: u8, n: u8, m: u8) {
            ::dynasm::dynasm!(ops ; .arch aarch64 ; subs X(d), X(n), X(m));
        }
        /// `cmp xn, xm`.
        pub fn cmp_rr(ops: &mut $B, n: u8, m: u8) {
            ::dynasm::dynasm!(ops ; .arch aarch64 ; cmp X(n), X(m));
        }
        /// `cmp xn, imm12`.
        pub fn cmp_ri(ops: &mut $B, n: u8, imm: Imm12) {
            let imm = imm.get();
            ::dynasm::dynasm!(ops ; .arch aarch64 ; cmp XSP(n), #imm);
        }
        /// `fmov dd, dn`.
        pub fn fmov_dd(ops: &mut $B, d: u8, n: u8) {
            ::dynasm::dynasm!(ops ; .arch aarch64 ; fmov D(d), D(n));
        }
        /// `fmov dd, xn` (bit copy).
        pub fn fmov_dx(ops: &mut $B, d: u8, n: u8) {
            ::dynasm::dynasm!(ops ; .arch aarch64 ; fmov D(d), X(n));
        }
        /// `fmov xd, dn` (bit copy).
        pub fn fmov_xd(ops: &mut $B, d: u8, n: u8) {
            ::dynasm::dynasm!(ops ; .arch aarch64 ; fmov X(d), D(n));
        }
        /// `fadd`.
        pub fn fadd(ops: &mut $B, d: u8, n: u8, m: u8) {
            ::dynasm::dynasm!(ops ; .arch aarch64 ; fadd D(d), D(n), D(m));
        }
        /// `fsub`.
        pub fn fsub(ops: &mut $B, d: u8, n: u8, m: u8) {
            ::dynasm::dynasm!(ops ; .arch aarch64 ; fsub D(d), D(n), D(m));
        }
        /// `fmul`.
        pub fn fmul(ops: &mut $B, d: u8, n: u8, m: u8) {
            ::dynasm::dynasm!(ops ; .arch aarch64 ; fmul D(d), D(n), D(m));
        }
        /// `fdiv`.
        pub fn fdiv(ops: &mut $B, d: u8, n: u8, m: u8) {
            ::dynasm::dynasm!(ops ; .arch aarch64 ; fdiv D(d), D(n), D(m));
        }
        /// `fcmp dn, dm`.
        pub fn fcmp(ops: &mut $B, n: u8, m: u8) {
            ::dynasm::dynasm!(ops ; .arch aarch64 ; fcmp D(n), D(m));
        }
        /// `scvtf dd, xn` (int to double).
        pub fn scvtf(ops: &mut $B, d: u8, n: u8) {
            ::dynasm::dynasm!(ops ; .arch aarch64 ; scvtf D(d), X(n));
        }
        /// `fsqrt dd, dn`.
        pub fn fsqrt(ops: &mut $B, d: u8, n: u8) {
            ::dynasm::dynasm!(ops ; .arch aarch64 ; fsqrt D(d), D(n));
        }
        /// `fcvtzs xd, dn` (truncate toward zero, saturating; NaN gives 0).
        pub fn fcvtzs(ops: &mut $B, d: u8, n: u8) {
            ::dynasm::dynasm!(ops ; .arch aarch64 ; fcvtzs X(d), D(n));
        }
        /// `b.cond label`.
        pub fn b_cond(ops: &mut $B, cond: Cond, l: $L) {
            match cond {
                Cond::Eq => ::dynasm::dynasm!(ops ; .arch aarch64 ; b.eq =>l),
                Cond::Ne => ::dynasm::dynasm!(ops ; .arch aarch64 ; b.ne =>l),
                Cond::Lt => ::dynasm::dynasm!(ops ; .arch aarch64 ; b.lt =>l),
                Cond::Le => ::dynasm::dynasm!(ops ; .arch aarch64 ; b.le =>l),
                Cond::Gt => ::dynasm::dynasm!(ops ; .arch aarch64 ; b.gt =>l),
                Cond::Ge => ::dynasm::dynasm!(ops ; .arch aarch64 ; b.ge =>l),
                Cond::Hi => ::dynasm::dynasm!(ops ; .arch aarch64 ; b.hi =>l),
                Cond::Ls => ::dynasm::dynasm!(ops ; .arch aarch64 ; b.ls =>l),
                Cond::Mi => ::dynasm::dynasm!(ops ; .arch aarch64 ; b.mi =>l),
                Cond::Pl => ::dynasm::dynasm!(ops ; .arch aarch64 ; b.pl =>l),
                Cond::Hs => ::dynasm::dynasm!(ops ; .arch aarch64 ; b.hs =>l),
                Cond::Lo => ::dynasm::dynasm!(ops ; .arch aarch64 ; b.lo =>l),
            }
        }
        /// `b label`.
        pub fn b(ops: &mut $B, l: $L) {
            ::dynasm::dynasm!(ops ; .arch aarch64 ; b =>l);
        }
        /// Places `label` here.
        pub fn bind(ops: &mut $B, l: $L) {
            ::dynasm::dynasm!(ops ; .arch aarch64 ; =>l);
        }
        /// Prologue: save fp/lr and every callee-saved register; slot base (1st argument)
        /// into x19, exit frame (2nd argument) into x20.
        pub fn prologue(ops: &mut $B) {
            ::dynasm::dynasm!(ops ; .arch aarch64
                ; stp x29, x30, [sp, -16]!
                ; mov x29, sp
                ; stp x19, x20, [sp, -16]!
                ; stp x21, x22, [sp, -16]!
                ; stp x23, x24, [sp, -16]!
                ; stp x25, x26, [sp, -16]!
                ; stp x27, x28, [sp, -16]!
                ; stp d8, d9, [sp, -16]!
                ; stp d10, d11, [sp, -16]!
                ; stp d12, d13, [sp, -16]!
                ; stp d14, d15, [sp, -16]!
                ; mov x19, x0
                ; mov x20, x1
            );
        }
        /// Epilogue: `w0` already holds the return value.
        pub fn epilogue(ops: &mut $B) {
            ::dynasm::dynasm!(ops ; .arch aarch64
                ; ldp d14, d15, [sp], 16
                ; ldp d12, d13, [sp], 16
                ; ldp d10, d11, [sp], 16
                ; ldp d8, d9, [sp], 16
                ; ldp x27, x28, [sp], 16
                ; ldp x25, x26, [sp], 16
                ; ldp x23, x24, [sp], 16
                ; ldp x21, x22, [sp], 16
                ; ldp x19, x20, [sp], 16
                ; ldp x29, x30, [sp], 16
                ; ret
            );
        }
        /// `movz w16, exit` then `b label` (to the exit handler; x0 may still hold a value
        /// the handler must dump, so the number travels in the scratch register x16).
        pub fn exit_to(ops: &mut $B, exit: Imm16, l: $L) {
            let exit = exit.get();
            ::dynasm::dynasm!(ops ; .arch aarch64 ; movz w16, exit ; b =>l);
        }
        /// `rev xd, xn` (a text word in big-endian order).
        pub fn rev(ops: &mut $B, d: u8, n: u8) {
            ::dynasm::dynasm!(ops ; .arch aarch64 ; rev X(d), X(n));
        }
        /// `blr xn`.
        pub fn blr(ops: &mut $B, n: u8) {
            ::dynasm::dynasm!(ops ; .arch aarch64 ; blr X(n));
        }
        /// `br xn` (to a linked trace).
        pub fn br(ops: &mut $B, n: u8) {
            ::dynasm::dynasm!(ops ; .arch aarch64 ; br X(n));
        }
    };
}
#[cfg(test)]
pub(crate) use a64_templates;

a64_templates!(CodeBuffer, DynamicLabel);

#[cfg(test)]
mod tests {
    //! Byte-for-byte oracle: every template, through kiln's buffer and the real `dynasmrt`.
    use super::*;
    use crate::jit::buffer::Arch;

    mod real {
        use super::super::{Cond, Imm12, Imm16, Off1, Off4, Off8};
        #[allow(unused_imports)]
        use real_dynasmrt::{DynasmApi, DynasmLabelApi};
        type B = real_dynasmrt::VecAssembler<real_dynasmrt::aarch64::Aarch64Relocation>;
        crate::jit::backend::aarch64::emit::a64_templates!(B, real_dynasmrt::DynamicLabel);
    }

    /// Calls every template with a spread of operands; `$m` is the template module.
    macro_rules! drive {
        ($m:path, $ops:expr, $l0:expr, $l1:expr) => {{
            use $m as t;
            let ops = $ops;
            let (l0, l1) = ($l0, $l1);
            t::bind(ops, l0);
            t::prologue(ops);
            let regs = [0u8, 1, 5, 16, 17, 19, 28, 30];
            for d in regs {
                for n in regs {
                    t::mov_rr(ops, d, n);
                    t::cmp_rr(ops, d, n);
                    t::fmov_dd(ops, d, n);
                    t::fmov_dx(ops, d, n);
                    t::fmov_xd(ops, d, n);
                    t::fcmp(ops, d, n);
                    t::scvtf(ops, d, n);
                    t::fsqrt(ops, d, n);
                    t::fcvtzs(ops, d, n);
                    t::rev(ops, d, n);
                    for m in [2u8, 30] {
                        t::add_rr(ops, d, n, m);
                        t::add_lsl4(ops, d, n, m);
                        t::sub_rr(ops, d, n, m);
                        t::subs_rr(ops, d, n, m);
                        t::mul_rr(ops, d, n, m);
                        t::fadd(ops, d, n, m);
                        t::fsub(ops, d, n, m);
                        t::fmul(ops, d, n, m);
                        t::fdiv(ops, d, n, m);
                    }
                    for v in [0i64, 1, 4095] {
                        let i = Imm12::new(v).unwrap();
                        t::add_ri(ops, d, n, i);
                        t::sub_ri(ops, d, n, i);
                        t::subs_ri(ops, d, n, i);
                    }
                    for v in [0i64, 8, 32760] {
                        let o = Off8::new(v).unwrap();
                        t::ldr_x(ops, d, n, o);
                        t::str_x(ops, d, n, o);
                        t::ldr_d(ops, d, n, o);
                        t::str_d(ops, d, n, o);
                    }
                    for v in [0i64, 4, 16380] {
                        let o = Off4::new(v).unwrap();
                        t::ldr_w(ops, d, n, o);
                        t::str_w(ops, d, n, o);
                    }
                    for v in [0i64, 1, 4095] {
                        let o = Off1::new(v).unwrap();
                        t::ldrb(ops, d, n, o);
                        t::strb(ops, d, n, o);
                    }
                }
                for v in [0u16, 1, 0xffff, 0x1234] {
                    for sh in 0..4 {
                        t::movz(ops, d, Imm16::new(v), sh);
                        t::movk(ops, d, Imm16::new(v), sh);
                    }
                    t::movn(ops, d, Imm16::new(v));
                }
                for v in [0i64, 4095] {
                    t::cmp_ri(ops, d, Imm12::new(v).unwrap());
                }
                t::blr(ops, d);
                t::br(ops, d);
            }
            for c in ALL_CONDS {
                t::b_cond(ops, c, l0);
                t::b_cond(ops, c, l1);
            }
            t::b(ops, l0);
            t::b(ops, l1);
            t::exit_to(ops, Imm16::new(9), l1);
            t::bind(ops, l1);
            t::epilogue(ops);
        }};
    }

    #[test]
    fn a64_templates_match_real_dynasmrt() {
        let mut mine = CodeBuffer::new(Arch::Aarch64);
        let (a, b) = (mine.new_dynamic_label(), mine.new_dynamic_label());
        drive!(super, &mut mine, a, b);
        let mine = mine.finish().expect("kiln buffer");

        type R = real_dynasmrt::aarch64::Aarch64Relocation;
        let mut theirs = real_dynasmrt::VecAssembler::<R>::new(0);
        let (a, b) = (theirs.new_dynamic_label(), theirs.new_dynamic_label());
        drive!(real, &mut theirs, a, b);
        let theirs = theirs.finalize().expect("real dynasmrt");
        assert!(mine.len() > 10_000, "the drive covers many instructions");
        assert_eq!(mine, theirs);
    }

    #[test]
    fn checked_immediates_refuse_unencodable_values() {
        assert!(Imm12::new(4096).is_none() && Imm12::new(-1).is_none());
        assert!(Off8::new(4).is_none() && Off8::new(32768).is_none());
        assert!(Off4::new(2).is_none() && Off4::new(16384).is_none());
        assert!(Off1::new(4096).is_none());
    }
}
