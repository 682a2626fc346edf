//! x86-64 `dynasm!` templates: every instruction shape the x86-64 backend emits, and nothing else.
//!
//! Glossary
//! - *template*: one small function wrapping one `dynasm!` invocation. Registers are numbers
//!   (`0..16`, `Rq(n)` / `Rx(n)`); the only memory bases are the fixed `rbx` (VM slot base) and
//!   `r12` (exit frame: register dump and spill slots), so dynasm encodes every addressing mode
//!   statically.
//! - *cond*: a [`Cond`] picks the `jcc` opcode; each maps to one static template arm.
//!
//! Invariants
//! - The templates are written once, inside `x64_templates!`, and expanded twice: here into
//!   kiln's [`CodeBuffer`] and, in tests, into the real `dynasmrt::VecAssembler`; the test
//!   compares the bytes, so a change in the pinned `dynasm` expansion cannot go unnoticed.
//! - x86-64 immediates here are plain `i32`/`i64`/`i8` values: every value of those types is
//!   encodable, so no template can fail at run time.
use crate::jit::buffer::{CodeBuffer, DynamicLabel};

/// Branch conditions used by guards (named after the `jcc` mnemonics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cond {
    /// equal / zero
    E,
    /// not equal
    Ne,
    /// signed less
    L,
    /// signed less or equal
    Le,
    /// signed greater
    G,
    /// signed greater or equal
    Ge,
    /// unsigned below (CF=1)
    B,
    /// unsigned below or equal
    Be,
    /// unsigned above
    A,
    /// unsigned above or equal
    Ae,
    /// parity (unordered float compare)
    P,
    /// no parity
    Np,
}

/// All [`Cond`]s (for exhaustive template tests).
pub const ALL_CONDS: [Cond; 12] = [
    Cond::E,
    Cond::Ne,
    Cond::L,
    Cond::Le,
    Cond::G,
    Cond::Ge,
    Cond::B,
    Cond::Be,
    Cond::A,
    Cond::Ae,
    Cond::P,
    Cond::Np,
];

/// Expands the x86-64 templates for an assembler type `$B` with dynamic label type `$L`.
macro_rules! x64_templates {
    ($B:ty, $L:ty) => {
        /// `mov dst, src` (64-bit).
        pub fn mov_rr(ops: &mut $B, d: u8, s: u8) {
            ::dynasm::dynasm!(ops ; .arch x64 ; mov Rq(d), Rq(s));
        }
        /// `mov dst, imm32` sign-extended to 64 bits.
        pub fn mov_ri32(ops: &mut $B, d: u8, imm: i32) {
            ::dynasm::dynasm!(ops ; .arch x64 ; mov Rq(d), imm);
        }
        /// `mov dst, imm64` (movabs).
        pub fn mov_ri64(ops: &mut $B, d: u8, imm: i64) {
            ::dynasm::dynasm!(ops ; .arch x64 ; mov Rq(d), QWORD imm);
        }
        /// `mov dst, [rbx + disp]`.
        pub fn load_slot(ops: &mut $B, d: u8, disp: i32) {
            ::dynasm::dynasm!(ops ; .arch x64 ; mov Rq(d), QWORD [rbx + disp]);
        }
        /// `movzx dst, byte [rbx + disp]` (a bool payload; zero-extends to 64 bits).
        pub fn load_slot_u8(ops: &mut $B, d: u8, disp: i32) {
            ::dynasm::dynasm!(ops ; .arch x64 ; movzx Rd(d), BYTE [rbx + disp]);
        }
        /// `mov [rbx + disp], src`.
        pub fn store_slot(ops: &mut $B, disp: i32, s: u8) {
            ::dynasm::dynasm!(ops ; .arch x64 ; mov QWORD [rbx + disp], Rq(s));
        }
        /// `movsd xmm, [rbx + disp]`.
        pub fn load_slot_f(ops: &mut $B, d: u8, disp: i32) {
            ::dynasm::dynasm!(ops ; .arch x64 ; movsd Rx(d), QWORD [rbx + disp]);
        }
        /// `movsd [rbx + disp], xmm`.
        pub fn store_slot_f(ops: &mut $B, disp: i32, s: u8) {
            ::dynasm::dynasm!(ops ; .arch x64 ; movsd QWORD [rbx + disp], Rx(s));
        }
        /// `mov dst, [r12 + disp]` (spill reload).
        pub fn load_ctx(ops: &mut $B, d: u8, disp: i32) {
            ::dynasm::dynasm!(ops ; .arch x64 ; mov Rq(d), QWORD [r12 + disp]);
        }
        /// `mov [r12 + disp], src` (spill, register dump).
        pub fn store_ctx(ops: &mut $B, disp: i32, s: u8) {
            ::dynasm::dynasm!(ops ; .arch x64 ; mov QWORD [r12 + disp], Rq(s));
        }
        /// `movsd xmm, [r12 + disp]`.
        pub fn load_ctx_f(ops: &mut $B, d: u8, disp: i32) {
            ::dynasm::dynasm!(ops ; .arch x64 ; movsd Rx(d), QWORD [r12 + disp]);
        }
        /// `movsd [r12 + disp], xmm`.
        pub fn store_ctx_f(ops: &mut $B, disp: i32, s: u8) {
            ::dynasm::dynasm!(ops ; .arch x64 ; movsd QWORD [r12 + disp], Rx(s));
        }
        /// Tag store of 1 byte: `mov byte [rbx + disp], imm8`.
        pub fn store_tag8(ops: &mut $B, disp: i32, imm: i8) {
            ::dynasm::dynasm!(ops ; .arch x64 ; mov BYTE [rbx + disp], imm);
        }
        /// Tag store of 4 bytes.
        pub fn store_tag32(ops: &mut $B, disp: i32, imm: i32) {
            ::dynasm::dynasm!(ops ; .arch x64 ; mov DWORD [rbx + disp], imm);
        }
        /// Tag store of 8 bytes (imm32 sign-extended).
        pub fn store_tag64(ops: &mut $B, disp: i32, imm: i32) {
            ::dynasm::dynasm!(ops ; .arch x64 ; mov QWORD [rbx + disp], imm);
        }
        /// Tag compare of 1 byte.
        pub fn cmp_tag8(ops: &mut $B, disp: i32, imm: i8) {
            ::dynasm::dynasm!(ops ; .arch x64 ; cmp BYTE [rbx + disp], imm);
        }
        /// Tag compare of 4 bytes.
        pub fn cmp_tag32(ops: &mut $B, disp: i32, imm: i32) {
            ::dynasm::dynasm!(ops ; .arch x64 ; cmp DWORD [rbx + disp], imm);
        }
        /// Tag compare of 8 bytes against a sign-extended imm32.
        pub fn cmp_tag64(ops: &mut $B, disp: i32, imm: i32) {
            ::dynasm::dynasm!(ops ; .arch x64 ; cmp QWORD [rbx + disp], imm);
        }
        /// Tag compare of 8 bytes against a register (wide tag values).
        pub fn cmp_tag64_r(ops: &mut $B, disp: i32, r: u8) {
            ::dynasm::dynasm!(ops ; .arch x64 ; cmp QWORD [rbx + disp], Rq(r));
        }
        /// Tag store of 8 bytes from a register (wide tag values).
        pub fn store_tag64_r(ops: &mut $B, disp: i32, r: u8) {
            ::dynasm::dynasm!(ops ; .arch x64 ; mov QWORD [rbx + disp], Rq(r));
        }
        /// `add dst, src`.
        pub fn add_rr(ops: &mut $B, d: u8, s: u8) {
            ::dynasm::dynasm!(ops ; .arch x64 ; add Rq(d), Rq(s));
        }
        /// `sub dst, src`.
        pub fn sub_rr(ops: &mut $B, d: u8, s: u8) {
            ::dynasm::dynasm!(ops ; .arch x64 ; sub Rq(d), Rq(s));
        }
        /// `imul dst, src`.
        pub fn imul_rr(ops: &mut $B, d: u8, s: u8) {
            ::dynasm::dynasm!(ops ; .arch x64 ; imul Rq(d), Rq(s));
        }
        /// `add dst, imm32`.
        pub fn add_ri(ops: &mut $B, d: u8, imm: i32) {
            ::dynasm::dynasm!(ops ; .arch x64 ; add Rq(d), imm);
        }
        /// `sub dst, imm32`.
        pub fn sub_ri(ops: &mut $B, d: u8, imm: i32) {
            ::dynasm::dynasm!(ops ; .arch x64 ; sub Rq(d), imm);
        }
        /// `cmp a, b`.
        pub fn cmp_rr(ops: &mut $B, a: u8, b: u8) {
            ::dynasm::dynasm!(ops ; .arch x64 ; cmp Rq(a), Rq(b));
        }
        /// `cmp a, imm32`.
        pub fn cmp_ri(ops: &mut $B, a: u8, imm: i32) {
            ::dynasm::dynasm!(ops ; .arch x64 ; cmp Rq(a), imm);
        }
        /// `movaps dst, src` (register copy of a double).
        pub fn fmov_rr(ops: &mut $B, d: u8, s: u8) {
            ::dynasm::dynasm!(ops ; .arch x64 ; movaps Rx(d), Rx(s));
        }
        /// `movq xmm, gpr` (bit copy).
        pub fn movq_xr(ops: &mut $B, d: u8, s: u8) {
            ::dynasm::dynasm!(ops ; .arch x64 ; movq Rx(d), Rq(s));
        }
        /// `movq gpr, xmm` (bit copy).
        pub fn movq_rx(ops: &mut $B, d: u8, s: u8) {
            ::dynasm::dynasm!(ops ; .arch x64 ; movq Rq(d), Rx(s));
        }
        /// `addsd`.
        pub fn addsd(ops: &mut $B, d: u8, s: u8) {
            ::dynasm::dynasm!(ops ; .arch x64 ; addsd Rx(d), Rx(s));
        }
        /// `subsd`.
        pub fn subsd(ops: &mut $B, d: u8, s: u8) {
            ::dynasm::dynasm!(ops ; .arch x64 ; subsd Rx(d), Rx(s));
        }
        /// `mulsd`.
        pub fn mulsd(ops: &mut $B, d: u8, s: u8) {
            ::dynasm::dynasm!(ops ; .arch x64 ; mulsd Rx(d), Rx(s));
        }
        /// `divsd`.
        pub fn divsd(ops: &mut $B, d: u8, s: u8) {
            ::dynasm::dynasm!(ops ; .arch x64 ; divsd Rx(d), Rx(s));
        }
        /// `ucomisd a, b`.
        pub fn ucomisd(ops: &mut $B, a: u8, b: u8) {
            ::dynasm::dynasm!(ops ; .arch x64 ; ucomisd Rx(a), Rx(b));
        }
        /// `xorps xmm, xmm; cvtsi2sd xmm, gpr` (int to double). `cvtsi2sd` writes only the
        /// low lane, so it waits for whatever last wrote `xmm` (often the end of a float
        /// chain); the zeroing idiom breaks that false dependency.
        pub fn cvtsi2sd(ops: &mut $B, d: u8, s: u8) {
            ::dynasm::dynasm!(ops ; .arch x64 ; xorps Rx(d), Rx(d) ; cvtsi2sd Rx(d), Rq(s));
        }
        /// `jcc label`.
        pub fn jcc(ops: &mut $B, cond: Cond, l: $L) {
            match cond {
                Cond::E => ::dynasm::dynasm!(ops ; .arch x64 ; je =>l),
                Cond::Ne => ::dynasm::dynasm!(ops ; .arch x64 ; jne =>l),
                Cond::L => ::dynasm::dynasm!(ops ; .arch x64 ; jl =>l),
                Cond::Le => ::dynasm::dynasm!(ops ; .arch x64 ; jle =>l),
                Cond::G => ::dynasm::dynasm!(ops ; .arch x64 ; jg =>l),
                Cond::Ge => ::dynasm::dynasm!(ops ; .arch x64 ; jge =>l),
                Cond::B => ::dynasm::dynasm!(ops ; .arch x64 ; jb =>l),
                Cond::Be => ::dynasm::dynasm!(ops ; .arch x64 ; jbe =>l),
                Cond::A => ::dynasm::dynasm!(ops ; .arch x64 ; ja =>l),
                Cond::Ae => ::dynasm::dynasm!(ops ; .arch x64 ; jae =>l),
                Cond::P => ::dynasm::dynasm!(ops ; .arch x64 ; jp =>l),
                Cond::Np => ::dynasm::dynasm!(ops ; .arch x64 ; jnp =>l),
            }
        }
        /// `jmp label`.
        pub fn jmp(ops: &mut $B, l: $L) {
            ::dynasm::dynasm!(ops ; .arch x64 ; jmp =>l);
        }
        /// Places `label` here.
        pub fn bind(ops: &mut $B, l: $L) {
            ::dynasm::dynasm!(ops ; .arch x64 ; =>l);
        }
        /// Prologue: save callee-saved registers (six pushes plus the return address, and 8
        /// more bytes keep `rsp` 16-byte aligned at calls), slot base (1st argument) into rbx,
        /// exit frame (2nd argument) into r12.
        pub fn prologue(ops: &mut $B) {
            ::dynasm::dynasm!(ops ; .arch x64
                ; push rbx ; push rbp ; push r12 ; push r13 ; push r14 ; push r15
                ; sub rsp, 8
                ; mov rbx, rdi
                ; mov r12, rsi
            );
        }
        /// Epilogue: `eax` already holds the exit number.
        pub fn epilogue(ops: &mut $B) {
            ::dynasm::dynasm!(ops ; .arch x64
                ; add rsp, 8
                ; pop r15 ; pop r14 ; pop r13 ; pop r12 ; pop rbp ; pop rbx
                ; ret
            );
        }
        /// `mov eax, exit` then `jmp label` (to the shared epilogue).
        pub fn exit_to(ops: &mut $B, exit: i32, l: $L) {
            ::dynasm::dynasm!(ops ; .arch x64 ; mov eax, exit ; jmp =>l);
        }
        /// `call reg`.
        pub fn call_r(ops: &mut $B, r: u8) {
            ::dynasm::dynasm!(ops ; .arch x64 ; call Rq(r));
        }
        /// `jmp reg` (to a linked trace).
        pub fn jmp_r(ops: &mut $B, r: u8) {
            ::dynasm::dynasm!(ops ; .arch x64 ; jmp Rq(r));
        }
        /// `mov dst, [base + disp]` (a link-table entry).
        pub fn load_rm(ops: &mut $B, d: u8, base: u8, disp: i32) {
            ::dynasm::dynasm!(ops ; .arch x64 ; mov Rq(d), QWORD [Rq(base) + disp]);
        }
        /// `movsd xmm, [base + disp]` (a heap float).
        pub fn load_rm_f(ops: &mut $B, d: u8, base: u8, disp: i32) {
            ::dynasm::dynasm!(ops ; .arch x64 ; movsd Rx(d), QWORD [Rq(base) + disp]);
        }
        /// `movzx dst, byte [base + disp]` (a heap bool).
        pub fn load_rm_u8(ops: &mut $B, d: u8, base: u8, disp: i32) {
            ::dynasm::dynasm!(ops ; .arch x64 ; movzx Rd(d), BYTE [Rq(base) + disp]);
        }
        /// `mov [base + disp], src`.
        pub fn store_mr(ops: &mut $B, base: u8, disp: i32, s: u8) {
            ::dynasm::dynasm!(ops ; .arch x64 ; mov QWORD [Rq(base) + disp], Rq(s));
        }
        /// `movsd [base + disp], xmm`.
        pub fn store_mr_f(ops: &mut $B, base: u8, disp: i32, s: u8) {
            ::dynasm::dynasm!(ops ; .arch x64 ; movsd QWORD [Rq(base) + disp], Rx(s));
        }
        /// `mov byte [base + disp], src8`.
        pub fn store_mr_u8(ops: &mut $B, base: u8, disp: i32, s: u8) {
            ::dynasm::dynasm!(ops ; .arch x64 ; mov BYTE [Rq(base) + disp], Rb(s));
        }
        /// `cmp qword [base + disp], imm32`.
        pub fn cmp_mi(ops: &mut $B, base: u8, disp: i32, imm: i32) {
            ::dynasm::dynasm!(ops ; .arch x64 ; cmp QWORD [Rq(base) + disp], imm);
        }
        /// `cmp byte [base + disp], imm8` (a text's tag byte).
        pub fn cmp_mi8(ops: &mut $B, base: u8, disp: i32, imm: i8) {
            ::dynasm::dynasm!(ops ; .arch x64 ; cmp BYTE [Rq(base) + disp], imm);
        }
        /// `cmp reg, qword [base + disp]` (a text word against another).
        pub fn cmp_rm(ops: &mut $B, r: u8, base: u8, disp: i32) {
            ::dynasm::dynasm!(ops ; .arch x64 ; cmp Rq(r), QWORD [Rq(base) + disp]);
        }
        /// `add reg, qword [base + disp]` (an array's element address).
        pub fn add_rm(ops: &mut $B, r: u8, base: u8, disp: i32) {
            ::dynasm::dynasm!(ops ; .arch x64 ; add Rq(r), QWORD [Rq(base) + disp]);
        }
        /// `mov qword [base + disp], imm32` (a pushed element's tag).
        pub fn mov_mi(ops: &mut $B, base: u8, disp: i32, imm: i32) {
            ::dynasm::dynasm!(ops ; .arch x64 ; mov QWORD [Rq(base) + disp], imm);
        }
        /// `bswap reg` (64-bit: a text word in big-endian order).
        pub fn bswap(ops: &mut $B, r: u8) {
            ::dynasm::dynasm!(ops ; .arch x64 ; bswap Rq(r));
        }
        /// `add qword [base + disp], imm32` (a reference count).
        pub fn add_mi(ops: &mut $B, base: u8, disp: i32, imm: i32) {
            ::dynasm::dynasm!(ops ; .arch x64 ; add QWORD [Rq(base) + disp], imm);
        }
        /// `lea dst, [rbx + disp]` (the address of a VM slot).
        pub fn lea_slot(ops: &mut $B, d: u8, disp: i32) {
            ::dynasm::dynasm!(ops ; .arch x64 ; lea Rq(d), [rbx + disp]);
        }
        /// `imul dst, src, imm32`.
        pub fn imul_rri(ops: &mut $B, d: u8, s: u8, imm: i32) {
            ::dynasm::dynasm!(ops ; .arch x64 ; imul Rq(d), Rq(s), imm);
        }
        /// `lea dst, [a + b]` (a three-operand add; `b` is never `rsp`, which is never allocated).
        pub fn lea_rr(ops: &mut $B, d: u8, a: u8, b: u8) {
            ::dynasm::dynasm!(ops ; .arch x64 ; lea Rq(d), [Rq(a) + Rq(b)]);
        }
        /// `lea dst, [a + imm32]` (a three-operand add of a constant).
        pub fn lea_ri(ops: &mut $B, d: u8, a: u8, imm: i32) {
            ::dynasm::dynasm!(ops ; .arch x64 ; lea Rq(d), [Rq(a) + imm]);
        }
        /// `sqrtsd dst, src`.
        pub fn sqrtsd(ops: &mut $B, d: u8, s: u8) {
            ::dynasm::dynasm!(ops ; .arch x64 ; sqrtsd Rx(d), Rx(s));
        }
        /// `cvttsd2si dst, xmm` (truncate; i64::MIN when out of range or NaN).
        pub fn cvttsd2si(ops: &mut $B, d: u8, s: u8) {
            ::dynasm::dynasm!(ops ; .arch x64 ; cvttsd2si Rq(d), Rx(s));
        }
    };
}
#[cfg(test)]
pub(crate) use x64_templates;

x64_templates!(CodeBuffer, DynamicLabel);

#[cfg(test)]
mod tests {
    //! Byte-for-byte oracle: every template, through kiln's buffer and the real `dynasmrt`.
    use super::*;
    use crate::jit::buffer::Arch;

    mod real {
        use super::super::Cond;
        #[allow(unused_imports)]
        use real_dynasmrt::{DynasmApi, DynasmLabelApi};
        type B = real_dynasmrt::VecAssembler<real_dynasmrt::x64::X64Relocation>;
        crate::jit::backend::x86_64::emit::x64_templates!(B, real_dynasmrt::DynamicLabel);
    }

    /// Calls every template with a spread of operands; `$m` is the template module.
    macro_rules! drive {
        ($m:path, $ops:expr, $l0:expr, $l1:expr) => {{
            use $m as t;
            let ops = $ops;
            let (l0, l1) = ($l0, $l1);
            t::bind(ops, l0);
            t::prologue(ops);
            let disps = [0i32, 8, 127, 128, -8, 4096, i32::MAX - 8];
            for d in 0..16u8 {
                for s in 0..16u8 {
                    t::mov_rr(ops, d, s);
                    t::add_rr(ops, d, s);
                    t::sub_rr(ops, d, s);
                    t::imul_rr(ops, d, s);
                    t::cmp_rr(ops, d, s);
                    t::fmov_rr(ops, d, s);
                    t::movq_xr(ops, d, s);
                    t::movq_rx(ops, d, s);
                    t::addsd(ops, d, s);
                    t::subsd(ops, d, s);
                    t::mulsd(ops, d, s);
                    t::divsd(ops, d, s);
                    t::ucomisd(ops, d, s);
                    t::cvtsi2sd(ops, d, s);
                }
                for imm in [0i32, 1, -1, 127, 128, i32::MIN, i32::MAX] {
                    t::mov_ri32(ops, d, imm);
                    t::add_ri(ops, d, imm);
                    t::sub_ri(ops, d, imm);
                    t::cmp_ri(ops, d, imm);
                }
                t::mov_ri64(ops, d, i64::MIN + 3);
                for disp in disps {
                    t::load_slot(ops, d, disp);
                    t::load_slot_u8(ops, d, disp);
                    t::store_slot(ops, disp, d);
                    t::load_slot_f(ops, d, disp);
                    t::store_slot_f(ops, disp, d);
                    t::load_ctx(ops, d, disp);
                    t::store_ctx(ops, disp, d);
                    t::load_ctx_f(ops, d, disp);
                    t::store_ctx_f(ops, disp, d);
                    t::cmp_tag64_r(ops, disp, d);
                    t::store_tag64_r(ops, disp, d);
                }
                t::call_r(ops, d);
                t::jmp_r(ops, d);
                t::bswap(ops, d);
                for base in [0u8, 3, 4, 5, 12, 13] {
                    t::load_rm(ops, d, base, 8);
                    t::load_rm(ops, d, base, -1024);
                    t::load_rm_f(ops, d, base, 8);
                    t::load_rm_u8(ops, d, base, 8);
                    t::store_mr(ops, base, 16, d);
                    t::store_mr_f(ops, base, 8, d);
                    t::store_mr_u8(ops, base, 8, d);
                    t::cmp_mi(ops, base, 8, d as i32 - 3);
                    t::add_mi(ops, base, 0, d as i32 - 3);
                    t::cmp_mi8(ops, base, 24, d as i8 - 3);
                    t::cmp_rm(ops, d, base, 16);
                    t::add_rm(ops, d, base, 32);
                    t::mov_mi(ops, base, 8, d as i32 - 3);
                }
                for s in 0..16u8 {
                    t::sqrtsd(ops, d, s);
                    t::cvttsd2si(ops, d, s);
                    for imm in [0i32, 16, -1, i32::MAX] {
                        t::imul_rri(ops, d, s, imm);
                        t::lea_ri(ops, d, s, imm);
                    }
                    t::lea_slot(ops, d, s as i32 * 16);
                    for b in [0u8, 5, 12, 13] {
                        t::lea_rr(ops, d, s, b);
                    }
                }
            }
            for disp in disps {
                for imm in [0i32, -1, 255, 0x7fff_ffff] {
                    t::store_tag8(ops, disp, imm as i8);
                    t::store_tag32(ops, disp, imm);
                    t::store_tag64(ops, disp, imm);
                    t::cmp_tag8(ops, disp, imm as i8);
                    t::cmp_tag32(ops, disp, imm);
                    t::cmp_tag64(ops, disp, imm);
                }
            }
            for c in ALL_CONDS {
                t::jcc(ops, c, l0);
                t::jcc(ops, c, l1);
            }
            t::jmp(ops, l0);
            t::jmp(ops, l1);
            t::exit_to(ops, 7, l1);
            t::bind(ops, l1);
            t::epilogue(ops);
        }};
    }

    #[test]
    fn x64_templates_match_real_dynasmrt() {
        let mut mine = CodeBuffer::new(Arch::X64);
        let (a, b) = (mine.new_dynamic_label(), mine.new_dynamic_label());
        drive!(super, &mut mine, a, b);
        let mine = mine.finish().expect("kiln buffer");

        let mut theirs = real_dynasmrt::VecAssembler::<real_dynasmrt::x64::X64Relocation>::new(0);
        let (a, b) = (theirs.new_dynamic_label(), theirs.new_dynamic_label());
        drive!(real, &mut theirs, a, b);
        let theirs = theirs.finalize().expect("real dynasmrt");
        assert!(mine.len() > 10_000, "the drive covers many instructions");
        assert_eq!(mine, theirs);
    }
}
