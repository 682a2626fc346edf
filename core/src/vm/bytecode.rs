//! The opcode table: one macro invocation defines every instruction's name, operands and meaning,
//! and generates the [`Op`] enum, the operand descriptors the verifier checks, the mnemonics and
//! the disassembler.
//!
//! # Encoding
//!
//! Code is a sequence of little-endian 32-bit words. Every instruction starts with one word;
//! instructions whose table entry has an `Ext` operand take a second, extension word:
//!
//! ```text
//!  31      24 23      16 15       8 7        0
//! +----------+----------+----------+----------+
//! |    C     |    B     |    A     |    op    |   word 0
//! +----------+----------+----------+----------+
//! |<------- Bx (u16) -->|                         Bx = B | C << 8 (sBx: the same bits as i16)
//! +-------------------------------------------+
//! |                 Ext (u32)                 |   word 1 (only for ops with an `Ext` operand)
//! +-------------------------------------------+
//! ```
//!
//! Jump targets are absolute word indices into the function's code and must name the first word
//! of an instruction (the verifier rejects a jump into an extension word).
//!
//! # Loops
//!
//! A loop header is the target of a backward jump. The word before every header the compiler
//! emits is a `loop` marker, reached when control falls into the loop (after `while`'s entry
//! test), never by a jump; the verifier checks that a marker is followed by a header. The
//! interpreter counts both the backward jumps to a header and its marker as arrivals there
//! (`vm::interp`); only the jumps charge fuel.
use core::fmt::{self, Write};

use alloc::string::String;

use super::program::{Const, Function, Program};

/// Where an operand lives in the instruction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// Bits 8..16 of word 0.
    A,
    /// Bits 16..24 of word 0.
    B,
    /// Bits 24..32 of word 0.
    C,
    /// Bits 16..32 of word 0 (unsigned, or signed for [`Kind::Imm`]).
    Bx,
    /// The whole extension word.
    Ext,
}

/// What an operand means; the verifier checks each kind's range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A register the instruction reads (must be below the frame size and already written).
    Read,
    /// A register the instruction writes (must be below the frame size).
    Write,
    /// A register the instruction reads and then writes.
    ReadWrite,
    /// Index into the constant pool (any constant).
    Const,
    /// Index into the constant pool naming an int or float constant.
    NumConst,
    /// A signed 16-bit immediate.
    Imm,
    /// 0 or 1.
    Flag,
    /// A jump target: a word index that starts an instruction.
    Target,
    /// A function index; the call's argument count must equal its arity.
    Func,
    /// A builtin index; the call's argument count must match the builtin.
    Builtin,
    /// The first register of a window of `C` consecutive registers the instruction reads.
    Window,
    /// The number of registers in the window.
    Count,
    /// An unsigned 8-bit immediate (a constant array index).
    Index,
    /// An index into the program's host imports; the call's argument count must equal the
    /// import's arity.
    HostFn,
    /// An index into the program's host buffers.
    Buffer,
}

macro_rules! opcodes {
    (
        $( $(#[doc = $doc:literal])* $name:ident = $mn:literal [$($slot:ident : $kind:ident),*] ; )*
        @fused {
            $( $fname:ident = $fmn:literal ($first:ident, $second:ident) ; )*
        }
    ) => {
        /// One VM instruction opcode (the first byte of word 0).
        ///
        /// The opcodes after the last program opcode are the interpreter's fused pairs (see
        /// [`FUSED_OPS`]): they never occur in a program ([`Op::from_byte`] rejects their
        /// bytes), only in the interpreter's own copy of the code.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(u8)]
        pub enum Op {
            $( $(#[doc = $doc])* $name, )*
            $( #[doc = concat!("Interpreter-only: `", stringify!($first), "` then `", stringify!($second), "`.")] $fname, )*
        }

        /// The interpreter's fused pairs: `(fused, first, second)`. A fused opcode replaces
        /// the opcode byte of an instruction `first` that the instruction `second` follows
        /// (see `vm::interp::quicken`); both words keep their operands.
        pub const FUSED_OPS: &[(Op, Op, Op)] = &[ $( (Op::$fname, Op::$first, Op::$second), )* ];

        /// Opcode bytes as constants, for `match`ing on the first byte of a word in the
        /// JIT's recorders. Not API: a program's bytes are [`Op`]s.
        #[allow(non_upper_case_globals)]
        #[doc(hidden)]
        pub mod byte {
            $( #[doc = concat!("The byte of `", $mn, "`.")] pub const $name: u8 = super::Op::$name as u8; )*
        }

        /// Every opcode in numeric order.
        pub const ALL_OPS: &[Op] = &[ $( Op::$name, )* ];

        impl Op {
            /// The opcode for a byte, or `None` for a byte no instruction uses.
            #[inline]
            pub fn from_byte(b: u8) -> Option<Op> {
                ALL_OPS.get(b as usize).copied()
            }

            /// The assembler mnemonic.
            pub fn mnemonic(self) -> &'static str {
                match self { $( Op::$name => $mn, )* $( Op::$fname => $fmn, )* }
            }

            /// The operands, in the order the disassembler prints them (a fused pair: those
            /// of its first instruction).
            pub fn operands(self) -> &'static [(Slot, Kind)] {
                match self {
                    $( Op::$name => &[ $( (Slot::$slot, Kind::$kind) ),* ], )*
                    $( Op::$fname => Op::$first.operands(), )*
                }
            }
        }
    };
}

opcodes! {
    /// `A = B`
    Move = "move" [A: Write, B: Read];
    /// `A = K[Bx]`
    LoadK = "loadk" [A: Write, Bx: Const];
    /// `A = sBx` (an int)
    LoadInt = "loadint" [A: Write, Bx: Imm];
    /// `A = nil`
    LoadNil = "loadnil" [A: Write];
    /// `A = (B != 0)`
    LoadBool = "loadbool" [A: Write, B: Flag];
    /// `A = B + C` (ints wrap; int with float gives float; string + string concatenates)
    Add = "add" [A: Write, B: Read, C: Read];
    /// `A = B - C`
    Sub = "sub" [A: Write, B: Read, C: Read];
    /// `A = B * C`
    Mul = "mul" [A: Write, B: Read, C: Read];
    /// `A = B / C` (int / int truncates; int division by zero is an error)
    Div = "div" [A: Write, B: Read, C: Read];
    /// `A = B % C` (sign of the dividend, like C and Rust)
    Mod = "mod" [A: Write, B: Read, C: Read];
    /// `A = B + K[C]`
    AddK = "addk" [A: Write, B: Read, C: NumConst];
    /// `A = B - K[C]`
    SubK = "subk" [A: Write, B: Read, C: NumConst];
    /// `A = B * K[C]`
    MulK = "mulk" [A: Write, B: Read, C: NumConst];
    /// `A = B / K[C]`
    DivK = "divk" [A: Write, B: Read, C: NumConst];
    /// `A = B % K[C]`
    ModK = "modk" [A: Write, B: Read, C: NumConst];
    /// `A = -B`
    Neg = "neg" [A: Write, B: Read];
    /// `A = !truthy(B)`
    Not = "not" [A: Write, B: Read];
    /// `A = (B == C)`
    Eq = "eq" [A: Write, B: Read, C: Read];
    /// `A = (B < C)`
    Lt = "lt" [A: Write, B: Read, C: Read];
    /// `A = (B <= C)`
    Le = "le" [A: Write, B: Read, C: Read];
    /// `pc = Ext`
    Jmp = "jmp" [Ext: Target];
    /// `if truthy(A) == B { pc = Ext }`
    JmpIf = "jmpif" [A: Read, B: Flag, Ext: Target];
    /// `if (A < B) == C { pc = Ext }`
    JLt = "jlt" [A: Read, B: Read, C: Flag, Ext: Target];
    /// `if (A <= B) == C { pc = Ext }`
    JLe = "jle" [A: Read, B: Read, C: Flag, Ext: Target];
    /// `if (A == B) == C { pc = Ext }`
    JEq = "jeq" [A: Read, B: Read, C: Flag, Ext: Target];
    /// `if (A < K[B]) == C { pc = Ext }`
    JLtK = "jltk" [A: Read, B: NumConst, C: Flag, Ext: Target];
    /// `if (A <= K[B]) == C { pc = Ext }`
    JLeK = "jlek" [A: Read, B: NumConst, C: Flag, Ext: Target];
    /// `if (A > K[B]) == C { pc = Ext }`
    JGtK = "jgtk" [A: Read, B: NumConst, C: Flag, Ext: Target];
    /// `if (A >= K[B]) == C { pc = Ext }`
    JGeK = "jgek" [A: Read, B: NumConst, C: Flag, Ext: Target];
    /// `if (A == K[B]) == C { pc = Ext }`
    JEqK = "jeqk" [A: Read, B: NumConst, C: Flag, Ext: Target];
    /// `A = A + K[B]; if A < K[C] { pc = Ext }`: a counted loop's step and test in one.
    ForLtK = "forltk" [A: ReadWrite, B: NumConst, C: NumConst, Ext: Target];
    /// `A = A + K[B]; if A < C { pc = Ext }`
    ForLt = "forlt" [A: ReadWrite, B: NumConst, C: Read, Ext: Target];
    /// `A = fn[Ext](A .. A+C)`: the callee's frame starts at register A.
    Call = "call" [A: Window, C: Count, Ext: Func];
    /// `A = builtin[B](A .. A+C)`
    CallB = "callb" [A: Window, B: Builtin, C: Count];
    /// return A
    Ret = "ret" [A: Read];
    /// return nil
    RetNil = "retnil" [];
    /// `A = [B, B+1, .. B+C-1]`
    NewArr = "newarr" [A: Write, B: Window, C: Count];
    /// `A = B[C]`
    GetIdx = "getidx" [A: Write, B: Read, C: Read];
    /// `A[B] = C`
    SetIdx = "setidx" [A: Read, B: Read, C: Read];
    /// `A = B[C]` with C an immediate index (`v[3]`)
    GetIdxI = "getidxi" [A: Write, B: Read, C: Index];
    /// `A[B] = C` with B an immediate index (`v[3] = x`)
    SetIdxI = "setidxi" [A: Read, B: Index, C: Read];
    /// `A = A + K[B]; if A <= C { pc = Ext }`
    ForLe = "forle" [A: ReadWrite, B: NumConst, C: Read, Ext: Target];
    /// `A = A + K[B]; if A <= K[C] { pc = Ext }`
    ForLeK = "forlek" [A: ReadWrite, B: NumConst, C: NumConst, Ext: Target];
    /// `A = A + B; if A < C { pc = Ext }`: a loop stepping by a variable.
    ForLtR = "forltr" [A: ReadWrite, B: Read, C: Read, Ext: Target];
    /// `A = A + B; if A <= C { pc = Ext }`
    ForLeR = "forler" [A: ReadWrite, B: Read, C: Read, Ext: Target];
    /// `A = A + B * C` (a `mul` then an `add`, each with its own rounding): `sum = sum + x * y`.
    MulAdd = "muladd" [A: ReadWrite, B: Read, C: Read];
    /// `A = host[B](A .. A+C)`: host import B (see [`super::host`]).
    CallH = "callh" [A: Window, B: HostFn, C: Count];
    /// `A = buf[B][C]`: byte C of host buffer B, an int.
    BGet = "bget" [A: Write, B: Buffer, C: Read];
    /// `buf[A][B] = C`: C must be an int in `0..=255`.
    BSet = "bset" [A: Buffer, B: Read, C: Read];
    /// `A = len(buf[B])`
    BLen = "blen" [A: Write, B: Buffer];
    /// Loop entry: the next instruction is a loop header (the target of a backward jump), and
    /// control arrives here when it falls into the loop, not when it iterates. Does nothing and
    /// charges no fuel; the interpreter counts the arrival at the header as a backward jump
    /// does, so a loop's compiled code runs from its first iteration (`vm::interp`).
    Loop = "loop" [];

    // The interpreter's fused pairs (most frequent adjacent pairs in the suite's hot loops,
    // and the tails of small functions, `x+ret`; docs/perf.md, 2026-12-04 interpreter dispatch
    // and interpreter call path). The first of each pair is one word.
    @fused {
        GetIdxMul = "getidx+mul" (GetIdx, Mul);
        GetIdxAdd = "getidx+add" (GetIdx, Add);
        GetIdxSub = "getidx+sub" (GetIdx, Sub);
        GetIdxAddK = "getidx+addk" (GetIdx, AddK);
        GetIdxGetIdx = "getidx+getidx" (GetIdx, GetIdx);
        GetIdxMulAdd = "getidx+muladd" (GetIdx, MulAdd);
        GetIdxSetIdx = "getidx+setidx" (GetIdx, SetIdx);
        SetIdxGetIdx = "setidx+getidx" (SetIdx, GetIdx);
        AddSetIdx = "add+setidx" (Add, SetIdx);
        SubSetIdx = "sub+setidx" (Sub, SetIdx);
        AddKSetIdx = "addk+setidx" (AddK, SetIdx);
        MulMul = "mul+mul" (Mul, Mul);
        MulThenAdd = "mul+add" (Mul, Add);
        MulSub = "mul+sub" (Mul, Sub);
        MulDiv = "mul+div" (Mul, Div);
        AddJGtK = "add+jgtk" (Add, JGtK);
        AddForLtK = "add+forltk" (Add, ForLtK);
        SetIdxForLt = "setidx+forlt" (SetIdx, ForLt);
        MulKMul = "mulk+mul" (MulK, Mul);
        AddSub = "add+sub" (Add, Sub);
        SubAdd = "sub+add" (Sub, Add);
        MoveMove = "move+move" (Move, Move);
        AddRet = "add+ret" (Add, Ret);
        MulRet = "mul+ret" (Mul, Ret);
        DivRet = "div+ret" (Div, Ret);
        ModKRet = "modk+ret" (ModK, Ret);
    }
}

/// The shape of a fused step-and-test loop instruction (`forlt` and its relatives).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ForShape {
    /// The step is register B (else constant `K[B]`).
    pub step_reg: bool,
    /// The limit is register C (else constant `K[C]`).
    pub limit_reg: bool,
    /// The test is `<=` (else `<`).
    pub le: bool,
}

impl Op {
    /// The shape of a fused loop instruction, `None` for every other opcode.
    pub fn for_shape(self) -> Option<ForShape> {
        let (step_reg, limit_reg, le) = match self {
            Op::ForLtK => (false, false, false),
            Op::ForLt => (false, true, false),
            Op::ForLeK => (false, false, true),
            Op::ForLe => (false, true, true),
            Op::ForLtR => (true, true, false),
            Op::ForLeR => (true, true, true),
            _ => return None,
        };
        Some(ForShape {
            step_reg,
            limit_reg,
            le,
        })
    }
}

impl Op {
    /// Number of 32-bit words the instruction occupies (1, or 2 with an extension word).
    #[inline]
    pub fn width(self) -> usize {
        if self.operands().iter().any(|(s, _)| *s == Slot::Ext) {
            2
        } else {
            1
        }
    }

    /// True when control never falls through to the next instruction.
    pub fn is_terminator(self) -> bool {
        matches!(self, Op::Jmp | Op::Ret | Op::RetNil)
    }
}

/// Field A of word 0.
#[inline(always)]
pub fn field_a(w: u32) -> usize {
    ((w >> 8) & 0xff) as usize
}
/// Field B of word 0.
#[inline(always)]
pub fn field_b(w: u32) -> usize {
    ((w >> 16) & 0xff) as usize
}
/// Field C of word 0.
#[inline(always)]
pub fn field_c(w: u32) -> usize {
    (w >> 24) as usize
}
/// Field Bx of word 0.
#[inline(always)]
pub fn field_bx(w: u32) -> usize {
    (w >> 16) as usize
}
/// Field Bx of word 0 read as a signed immediate.
#[inline(always)]
pub fn field_sbx(w: u32) -> i64 {
    ((w >> 16) as u16 as i16) as i64
}

/// Builds word 0 from an opcode and its A, B, C fields.
pub fn encode_abc(op: Op, a: u8, b: u8, c: u8) -> u32 {
    op as u32 | (a as u32) << 8 | (b as u32) << 16 | (c as u32) << 24
}

/// Builds word 0 from an opcode, A and a 16-bit Bx.
pub fn encode_abx(op: Op, a: u8, bx: u16) -> u32 {
    op as u32 | (a as u32) << 8 | (bx as u32) << 16
}

/// The value of one operand of the instruction at `code[pc]` (the caller checked the width).
pub fn operand(code: &[u32], pc: usize, slot: Slot, kind: Kind) -> i64 {
    let w = code[pc];
    match slot {
        Slot::A => field_a(w) as i64,
        Slot::B => field_b(w) as i64,
        Slot::C => field_c(w) as i64,
        Slot::Bx if kind == Kind::Imm => field_sbx(w),
        Slot::Bx => field_bx(w) as i64,
        Slot::Ext => code[pc + 1] as i64,
    }
}

/// Writes one instruction as text (`loadk r0, k3 ; 1.5`); `code[pc]` must be a whole instruction.
pub fn disassemble_one(
    out: &mut dyn Write,
    prog: &Program,
    code: &[u32],
    pc: usize,
) -> Result<usize, fmt::Error> {
    let Some(op) = Op::from_byte(code[pc] as u8) else {
        write!(out, ".word {:#010x}", code[pc])?;
        return Ok(1);
    };
    if pc + op.width() > code.len() {
        write!(out, "{} <truncated>", op.mnemonic())?;
        return Ok(1);
    }
    write!(out, "{:<9}", op.mnemonic())?;
    let mut comment = String::new();
    for (i, &(slot, kind)) in op.operands().iter().enumerate() {
        let v = operand(code, pc, slot, kind);
        if i > 0 {
            out.write_str(", ")?;
        }
        match kind {
            Kind::Read | Kind::Write | Kind::ReadWrite | Kind::Window => write!(out, "r{v}")?,
            Kind::Const | Kind::NumConst => {
                write!(out, "k{v}")?;
                if let Some(k) = prog.consts.get(v as usize) {
                    let _ = write!(comment, " k{v}={k}");
                }
            }
            Kind::Imm | Kind::Flag | Kind::Count | Kind::Index => write!(out, "{v}")?,
            Kind::Target => write!(out, "@{v}")?,
            Kind::Func => {
                write!(out, "f{v}")?;
                if let Some(f) = prog.funcs.get(v as usize) {
                    let _ = write!(comment, " {}", prog.func_name(f));
                }
            }
            Kind::HostFn => {
                write!(out, "h{v}")?;
                let name = prog.imports.get(v as usize).map(|i| i.name as usize);
                if let Some(Const::Str(n)) = name.and_then(|k| prog.consts.get(k)) {
                    let _ = write!(comment, " {n}");
                }
            }
            Kind::Buffer => {
                write!(out, "buf{v}")?;
                let name = prog.buffers.get(v as usize).map(|&k| k as usize);
                if let Some(Const::Str(n)) = name.and_then(|k| prog.consts.get(k)) {
                    let _ = write!(comment, " {n}");
                }
            }
            Kind::Builtin => {
                write!(out, "b{v}")?;
                if let Some(bi) = super::builtins::Builtin::from_index(v as usize) {
                    let _ = write!(comment, " {}", bi.name());
                }
            }
        }
    }
    if !comment.is_empty() {
        write!(out, "   ;{comment}")?;
    }
    Ok(op.width())
}

/// Writes the whole program as text, one function after another.
pub fn disassemble(out: &mut dyn Write, prog: &Program) -> fmt::Result {
    writeln!(out, "; {} constants", prog.consts.len())?;
    for (i, k) in prog.consts.iter().enumerate() {
        match k {
            Const::Str(_) => writeln!(out, ";   k{i} = {k:?}")?,
            _ => writeln!(out, ";   k{i} = {k}")?,
        }
    }
    for (fi, f) in prog.funcs.iter().enumerate() {
        disassemble_function(out, prog, fi, f)?;
    }
    Ok(())
}

fn disassemble_function(
    out: &mut dyn Write,
    prog: &Program,
    fi: usize,
    f: &Function,
) -> fmt::Result {
    writeln!(
        out,
        "\nfn f{fi} {} (arity {}, {} registers, {} words)",
        prog.func_name(f),
        f.arity,
        f.nregs,
        f.code.len()
    )?;
    let mut pc = 0;
    while pc < f.code.len() {
        let line = f.lines.get(pc).copied().unwrap_or(0);
        write!(out, "  {pc:5}  [{line:4}]  ")?;
        pc += disassemble_one(out, prog, &f.code, pc)?;
        writeln!(out)?;
    }
    Ok(())
}
