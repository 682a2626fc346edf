//! x86-64 `dynasm!` templates for calls between function traces (see
//! [`crate::jit::callframe`]): the machine-stack frame of a direct call and the loads and
//! stores around it. Same rules as [`super::emit`]: static bases (`rsp`, `r11`, `rax`, `r12`),
//! plain `i32` immediates, and a test comparing every template's bytes with the real
//! `dynasmrt`.
use crate::jit::buffer::CodeBuffer;

macro_rules! x64_call_templates {
    ($B:ty) => {
        /// A function trace's prologue: saves only the callee-saved registers of
        /// `target::FUNC_POOL` and the two it keeps (four pushes plus the return address, and
        /// 8 more bytes keep `rsp` 16-byte aligned at calls), slot base (1st argument) into
        /// rbx, frame (2nd argument) into r12.
        pub fn func_prologue(ops: &mut $B) {
            ::dynasm::dynasm!(ops ; .arch x64
                ; push rbx ; push rbp ; push r12 ; push r13
                ; sub rsp, 8
                ; mov rbx, rdi
                ; mov r12, rsi
            );
        }
        /// A function trace's epilogue: `eax` already holds the exit number.
        pub fn func_epilogue(ops: &mut $B) {
            ::dynasm::dynasm!(ops ; .arch x64
                ; add rsp, 8
                ; pop r13 ; pop r12 ; pop rbp ; pop rbx
                ; ret
            );
        }
        /// `sub rsp, imm32` (a callee frame).
        pub fn sub_rsp(ops: &mut $B, imm: i32) {
            ::dynasm::dynasm!(ops ; .arch x64 ; sub rsp, imm);
        }
        /// `add rsp, imm32`.
        pub fn add_rsp(ops: &mut $B, imm: i32) {
            ::dynasm::dynasm!(ops ; .arch x64 ; add rsp, imm);
        }
        /// `mov dst, rsp`.
        pub fn mov_from_rsp(ops: &mut $B, d: u8) {
            ::dynasm::dynasm!(ops ; .arch x64 ; mov Rq(d), rsp);
        }
        /// `mov [r11 + disp], src`.
        pub fn store_r11(ops: &mut $B, disp: i32, s: u8) {
            ::dynasm::dynasm!(ops ; .arch x64 ; mov QWORD [r11 + disp], Rq(s));
        }
        /// `mov dst, [r11 + disp]`.
        pub fn load_r11(ops: &mut $B, d: u8, disp: i32) {
            ::dynasm::dynasm!(ops ; .arch x64 ; mov Rq(d), QWORD [r11 + disp]);
        }
        /// `mov rax, [rax + disp]`.
        pub fn load_rax_rax(ops: &mut $B, disp: i32) {
            ::dynasm::dynasm!(ops ; .arch x64 ; mov rax, QWORD [rax + disp]);
        }
        /// `call qword [rax]` (a call through the code address in word 0 of a `FuncCode`).
        pub fn call_at_rax(ops: &mut $B) {
            ::dynasm::dynasm!(ops ; .arch x64 ; call QWORD [rax]);
        }
        /// `mov rax, [rsp + disp]`.
        pub fn load_rax_rsp(ops: &mut $B, disp: i32) {
            ::dynasm::dynasm!(ops ; .arch x64 ; mov rax, QWORD [rsp + disp]);
        }
        /// `jmp qword [r11 + disp]` (a jump through a code address stored in a `FuncCode`).
        pub fn jmp_at_r11(ops: &mut $B, disp: i32) {
            ::dynasm::dynasm!(ops ; .arch x64 ; jmp QWORD [r11 + disp]);
        }
        /// `add qword [rax + disp], imm32`.
        pub fn add_at_rax(ops: &mut $B, disp: i32, imm: i32) {
            ::dynasm::dynasm!(ops ; .arch x64 ; add QWORD [rax + disp], imm);
        }
        /// `sub qword [r12 + disp], imm32` (a `Fuel` charge; CF is the borrow).
        pub fn sub_ctx_i(ops: &mut $B, disp: i32, imm: i32) {
            ::dynasm::dynasm!(ops ; .arch x64 ; sub QWORD [r12 + disp], imm);
        }
        /// `add qword [r12 + disp], imm32` (a failed `Fuel` charge's refund).
        pub fn add_ctx_i(ops: &mut $B, disp: i32, imm: i32) {
            ::dynasm::dynasm!(ops ; .arch x64 ; add QWORD [r12 + disp], imm);
        }
        /// `cmp qword [r12 + disp], imm32`.
        pub fn cmp_ctx_i(ops: &mut $B, disp: i32, imm: i32) {
            ::dynasm::dynasm!(ops ; .arch x64 ; cmp QWORD [r12 + disp], imm);
        }
        /// `or dst, qword [rbx + disp]` (a slot word into an accumulated tag).
        pub fn or_slot(ops: &mut $B, d: u8, disp: i32) {
            ::dynasm::dynasm!(ops ; .arch x64 ; or Rq(d), QWORD [rbx + disp]);
        }
    };
}
#[cfg(test)]
pub(crate) use x64_call_templates;

x64_call_templates!(CodeBuffer);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jit::buffer::Arch;

    mod real {
        #[allow(unused_imports)]
        use real_dynasmrt::{DynasmApi, DynasmLabelApi};
        type B = real_dynasmrt::VecAssembler<real_dynasmrt::x64::X64Relocation>;
        crate::jit::backend::x86_64::emit_call::x64_call_templates!(B);
    }

    macro_rules! drive {
        ($m:path, $ops:expr) => {{
            use $m as t;
            let ops = $ops;
            for imm in [0i32, 8, 127, 128, 1216, -8, i32::MAX] {
                t::sub_rsp(ops, imm);
                t::add_rsp(ops, imm);
                t::load_rax_rax(ops, imm);
                t::add_at_rax(ops, imm, imm);
                t::add_at_rax(ops, 512, imm);
                t::jmp_at_r11(ops, imm);
                t::load_rax_rsp(ops, imm);
                t::cmp_ctx_i(ops, imm, imm);
                t::sub_ctx_i(ops, imm, imm);
                t::add_ctx_i(ops, 512, imm);
                t::cmp_ctx_i(ops, imm, 0);
                for r in 0..16u8 {
                    t::store_r11(ops, imm, r);
                    t::load_r11(ops, r, imm);
                    t::or_slot(ops, r, imm);
                }
            }
            for r in 0..16u8 {
                t::mov_from_rsp(ops, r);
            }
            t::call_at_rax(ops);
            t::func_prologue(ops);
            t::func_epilogue(ops);
        }};
    }

    #[test]
    fn call_templates_match_real_dynasmrt() {
        let mut mine = CodeBuffer::new(Arch::X64);
        drive!(super, &mut mine);
        let mine = mine.finish().expect("kiln buffer");
        let mut theirs = real_dynasmrt::VecAssembler::<real_dynasmrt::x64::X64Relocation>::new(0);
        drive!(real, &mut theirs);
        let theirs = theirs.finalize().expect("real dynasmrt");
        assert!(mine.len() > 1_000);
        assert_eq!(mine, theirs);
    }
}
