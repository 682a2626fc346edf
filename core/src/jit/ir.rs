//! The trace IR: a linear SSA instruction list with guards and snapshots.
//!
//! Glossary
//! - *ref* ([`Ref`]): the index of an instruction in [`Trace::insts`]; an instruction's result is
//!   named by its ref. Operands always point backwards (SSA in program order).
//! - *constant*: a `KInt`/`KFloat`/`KBool` instruction; it has no register, backends
//!   rematerialise it.
//! - *bool*: a [`Ty::Bool`] value is 0 or 1 in an int register; comparison guards on two bools
//!   compare them as ints.
//! - *linked trace*: a trace that ends in an `Exit` instead of looping: it runs once, straight
//!   line, and leaves through its last snapshot to a loop header that has a trace of its own
//!   (the driver enters that one next). The optimiser does not unroll it.
//! - *guard*: an instruction that checks a condition (a comparison, or the tag check of an
//!   `SLoad`) and, when it fails, leaves the trace through its snapshot ([`Inst::snap`]).
//! - *refunding guard*: a comparison guard with `imm` = k > 0 gives k fuel back when it fails,
//!   before leaving: it undoes the charge of a `Fuel` recorded before it for a backward jump
//!   the failing guard shows was not taken (a `for` step's loop guard, see
//!   [`crate::jit::record`]). Its snapshot has no other user.
//! - *pre-roll*, *loop body*: after optimisation a trace is `pre-roll, LOOP, body, PHIs`: the
//!   pre-roll is the first iteration (it loads slots and holds every loop invariant); the body
//!   repeats. A pre-roll ref used in the body means "its value in the previous iteration"; a
//!   `PHI(a, b)` says that at the back edge `a` takes the value of `b` (all PHIs at once).
//!
//! ```text
//!   recorded:   SLOAD.. ops.. guards..                tail snapshot: slot -> ref
//!   optimised:  SLOAD.. ops.. guards.. LOOP  ops'.. guards'..  PHI(a,b)..   (jump to LOOP)
//! ```
//!
//! Invariants (checked by [`Trace::validate`])
//! - every operand ref is smaller than the instruction's own ref, and has the type the opcode
//!   expects; guards carry a valid snapshot index; at most one `LOOP`, and `PHI`s only after it;
//!   a comparison guard's refund (`imm`) is 0 or a charge that fits an `i32`, and a refunding
//!   guard's snapshot belongs to it alone.
//!
//! The opcode table is defined once, in `irdef!`: name, operand modes, result type, flags.
use alloc::vec::Vec;

use crate::jit::ir::snapshot::{SnapEntry, Snapshot};

/// Snapshots (a child module: they name IR refs, and the IR holds them).
pub(crate) mod snapshot;

/// The trace builder the recorders emit IR through.
mod builder;
pub use builder::{Mark, TraceBuilder};

/// An instruction index.
pub type Ref = u32;
/// "No operand".
pub const NONE: Ref = u32::MAX;
/// "No snapshot".
pub const NO_SNAP: u32 = u32::MAX;

/// Value types of the IR.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ty {
    /// No value (guards, markers).
    Void,
    /// 64-bit signed integer, wrapping arithmetic.
    Int,
    /// IEEE-754 double.
    Float,
    /// `false` (0) or `true` (1), held in an int register; the VM slot's payload is one byte.
    Bool,
}

/// Operand mode of one opcode field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// unused
    None,
    /// an int ref
    Int,
    /// a float ref
    Float,
    /// an int or float ref (both operands of one instruction agree)
    Num,
    /// a ref of any type
    Any,
    /// a bool ref
    Bool,
}

/// Opcode flags.
pub mod flags {
    /// No side effect, no guard: may be folded, CSE'd, hoisted, removed if unused.
    pub const PURE: u8 = 1;
    /// A constant (`imm` is the value).
    pub const CONST: u8 = 2;
    /// Leaves the trace through a snapshot when its condition fails.
    pub const GUARD: u8 = 4;
    /// Has a side effect (never CSE'd or removed).
    pub const EFFECT: u8 = 8;
    /// Operands commute.
    pub const COMM: u8 = 16;
    /// Structural marker (LOOP, PHI).
    pub const MARK: u8 = 32;
}

/// The IR opcode table: `name (mode a, mode b) -> result type [flags] "doc"`.
/// Comparison guards take their operands' type (both int or both float), like LuaJIT's.
macro_rules! irdef {
    ($m:ident) => {
        $m! {
            Nop     (None, None)    -> Void  [0]                              "removed instruction";
            KInt    (None, None)    -> Int   [flags::CONST]                   "int constant, `imm`";
            KFloat  (None, None)    -> Float [flags::CONST]                   "float constant, `imm` = bits";
            SLoad   (None, None)    -> Void  [flags::GUARD]                   "load VM slot `imm`, guard its tag is `ty`";
            AddI    (Int, Int)      -> Int   [flags::PURE | flags::COMM]      "a + b (wrapping)";
            SubI    (Int, Int)      -> Int   [flags::PURE]                    "a - b (wrapping)";
            MulI    (Int, Int)      -> Int   [flags::PURE | flags::COMM]      "a * b (wrapping)";
            AddF    (Float, Float)  -> Float [flags::PURE | flags::COMM]      "a + b";
            SubF    (Float, Float)  -> Float [flags::PURE]                    "a - b";
            MulF    (Float, Float)  -> Float [flags::PURE | flags::COMM]      "a * b";
            DivF    (Float, Float)  -> Float [flags::PURE]                    "a / b";
            ToFloat (Int, None)     -> Float [flags::PURE]                    "int to float";
            Lt      (Num, Num)      -> Void  [flags::GUARD]                   "guard a < b";
            Le      (Num, Num)      -> Void  [flags::GUARD]                   "guard a <= b";
            Gt      (Num, Num)      -> Void  [flags::GUARD]                   "guard a > b";
            Ge      (Num, Num)      -> Void  [flags::GUARD]                   "guard a >= b";
            Eq      (Num, Num)      -> Void  [flags::GUARD | flags::COMM]     "guard a == b";
            Ne      (Num, Num)      -> Void  [flags::GUARD | flags::COMM]     "guard a != b";
            Loop    (None, None)    -> Void  [flags::MARK]                    "start of the repeating body";
            Phi     (Any, Any)      -> Void  [flags::MARK]                    "at the back edge, a := b";
            Call    (Int, Int)      -> Int   [flags::EFFECT]                  "host function `imm`(a, b)";
            KBool   (None, None)    -> Bool  [flags::CONST]                   "bool constant, `imm` 0 or 1";
            NotB    (Bool, None)    -> Bool  [flags::PURE]                    "!a";
            Exit    (None, None)    -> Void  [flags::GUARD | flags::EFFECT]   "leave through `snap` unconditionally (a linked trace's end)";
            Fuel    (None, None)    -> Void  [flags::GUARD | flags::EFFECT]   "charge `imm` fuel; exit instead if less is left";
            CArgI   (Int, None)     -> Void  [flags::EFFECT]                  "argument `imm` of the next CallV is int a";
            CArgF   (Float, None)   -> Void  [flags::EFFECT]                  "argument `imm` of the next CallV is float a";
            CallV   (None, None)    -> Int   [flags::EFFECT]                  "VM call of call site `imm` through host function 0 (see jit::callframe); status";
            CResI   (Int, None)     -> Int   [flags::PURE]                    "int result of the CallV a";
            CResF   (Int, None)     -> Float [flags::PURE]                    "float result of the CallV a";
            RetI    (Int, None)     -> Void  [flags::EFFECT]                  "return int a from a function trace (see jit::callframe)";
            RetF    (Float, None)   -> Void  [flags::EFFECT]                  "return float a from a function trace";
            RetN    (None, None)    -> Void  [flags::EFFECT]                  "return nil from a function trace";
            CallD   (Int, Int)      -> Int   [flags::EFFECT]                  "direct call of function trace a (0: this one) for site `imm`, b = packed window/args; status";
            Links   (None, None)    -> Void  [flags::EFFECT]                  "`imm`: address of the exit link table (one word per snapshot; see jit::callframe)";
            SLoadT  (None, None)    -> Int   [flags::GUARD]                   "load VM slot `imm & 0xffff_ffff`'s payload word, guard its tag is `imm >> 32` (a heap object's address)";
            LdI     (Int, None)     -> Int   [0]                              "the int at address a + `imm` (CSE'd only in traces that write no memory)";
            LdF     (Int, None)     -> Float [0]                              "the float at address a + `imm`";
            LdB     (Int, None)     -> Bool  [0]                              "the bool byte at address a + `imm`";
            StI     (Int, Int)      -> Void  [flags::EFFECT]                  "store int b at address a + `imm`";
            StF     (Int, Float)    -> Void  [flags::EFFECT]                  "store float b at address a + `imm`";
            StB     (Int, Bool)     -> Void  [flags::EFFECT]                  "store bool b as one byte at address a + `imm`";
            SqrtF   (Float, None)   -> Float [flags::PURE]                    "the correctly rounded square root of a";
            ULt     (Int, Int)      -> Void  [flags::GUARD]                   "guard a < b, both taken as unsigned (a bounds check: a negative a fails)";
            LdH     (Int, None)     -> Int   [0]                              "the header word at address a + `imm` of a heap object (an array's length or element pointer): only calls change it, stores to elements never do";
            ToInt   (Float, None)   -> Int   [flags::PURE]                    "a truncated toward zero; unspecified for NaN or outside (-2^63, 2^63): recorders guard that range first";
            SAddr   (None, None)    -> Int   [flags::PURE]                    "the address of VM slot `imm` (for runtime calls that work on a slot's value)";
            DivIK   (Int, Int)      -> Int   [flags::PURE]                    "a / b truncated (int `/`); b a constant other than 0 and -1";
            ModIK   (Int, Int)      -> Int   [flags::PURE]                    "a % b, sign of a (int `%`); b a constant other than 0 and -1";
            FBits   (Float, None)   -> Int   [flags::PURE]                    "the bits of float a (a float argument of a runtime call)";
            BitsF   (Int, None)     -> Float [flags::PURE]                    "the float whose bits are a (a float result of a runtime call)";
            FNLt    (Float, Float)  -> Void  [flags::GUARD]                   "guard !(a < b): holds on NaN (a float branch's kept 'not less' outcome)";
            FNLe    (Float, Float)  -> Void  [flags::GUARD]                   "guard !(a <= b): holds on NaN (a float branch's kept 'not less or equal' outcome)";
        }
    };
}

macro_rules! define_ops {
    ($($name:ident ($ma:ident, $mb:ident) -> $ty:ident [$fl:expr] $doc:literal;)*) => {
        /// IR opcodes (see `irdef!` for the table).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Op {
            $(#[doc = $doc] $name,)*
        }

        impl Op {
            /// Every opcode, in table order.
            pub const ALL: &'static [Op] = &[$(Op::$name,)*];

            /// Lower-case name for dumps.
            pub fn name(self) -> &'static str {
                match self { $(Op::$name => stringify!($name),)* }
            }

            /// Operand modes `(a, b)`.
            pub fn modes(self) -> (Mode, Mode) {
                match self { $(Op::$name => (Mode::$ma, Mode::$mb),)* }
            }

            /// Result type fixed by the opcode (`SLoad` takes [`Inst::ty`]).
            pub fn result(self) -> Ty {
                match self { $(Op::$name => Ty::$ty,)* }
            }

            /// The [`flags`] bits.
            pub fn flags(self) -> u8 {
                match self { $(Op::$name => $fl,)* }
            }
        }
    };
}
irdef!(define_ops);

impl Op {
    /// Whether the opcode is a guard.
    #[inline]
    pub fn is_guard(self) -> bool {
        self.flags() & flags::GUARD != 0
    }
    /// Whether the opcode is a comparison guard (whose `imm` is its refund, see the module doc).
    #[inline]
    pub fn is_compare_guard(self) -> bool {
        matches!(
            self,
            Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Eq | Op::Ne | Op::ULt | Op::FNLt | Op::FNLe
        )
    }
    /// Whether the opcode is a constant.
    #[inline]
    pub fn is_const(self) -> bool {
        self.flags() & flags::CONST != 0
    }
    /// Whether the opcode calls out of the trace (clobbering caller-saved registers).
    #[inline]
    pub fn is_call(self) -> bool {
        matches!(self, Op::Call | Op::CallV | Op::CallD)
    }
    /// Whether the opcode is pure.
    #[inline]
    pub fn is_pure(self) -> bool {
        self.flags() & flags::PURE != 0
    }
    /// Whether the opcode reads memory outside the VM slots that stores may change (`LdI`,
    /// `LdF`, `LdB`; `LdH` reads a header word only calls change).
    #[inline]
    pub fn is_load(self) -> bool {
        matches!(self, Op::LdI | Op::LdF | Op::LdB)
    }
    /// Whether the opcode may write memory a load reads: a store, or any call.
    #[inline]
    pub fn writes_memory(self) -> bool {
        self.is_call() || matches!(self, Op::StI | Op::StF | Op::StB)
    }
    /// The VM slot a slot-reading opcode (`SLoad`, `SLoadT`) with immediate `imm` reads.
    #[inline]
    pub fn slot_of(self, imm: i64) -> Option<u32> {
        match self {
            Op::SLoad => Some(imm as u32),
            Op::SLoadT => Some((imm as u64 & 0xffff_ffff) as u32),
            _ => None,
        }
    }
    /// Whether the comparison guard `self` holds for the ordering of `a` against `b`
    /// (`None` = unordered, i.e. a NaN operand; for `ULt` the unsigned ordering).
    pub fn compare_holds(self, ord: Option<core::cmp::Ordering>) -> bool {
        use core::cmp::Ordering::*;
        match (self, ord) {
            (Op::Ne | Op::FNLt | Op::FNLe, None) => true,
            (_, None) => false,
            (Op::Lt, Some(o)) => o == Less,
            (Op::Le, Some(o)) => o != Greater,
            (Op::Gt, Some(o)) => o == Greater,
            (Op::Ge, Some(o)) => o != Less,
            (Op::Eq, Some(o)) => o == Equal,
            (Op::Ne, Some(o)) => o != Equal,
            (Op::ULt, Some(o)) => o == Less,
            (Op::FNLt, Some(o)) => o != Less,
            (Op::FNLe, Some(o)) => o == Greater,
            _ => false,
        }
    }
}

/// One IR instruction.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Inst {
    /// The opcode.
    pub op: Op,
    /// Result type.
    pub ty: Ty,
    /// First operand.
    pub a: Ref,
    /// Second operand.
    pub b: Ref,
    /// Constant value, slot index (`SLoad`), host-function index (`Call`) or fuel (`Fuel`).
    pub imm: i64,
    /// Snapshot index for guards, else [`NO_SNAP`].
    pub snap: u32,
}

impl Inst {
    /// An instruction with no immediate and no snapshot.
    pub fn new(op: Op, ty: Ty, a: Ref, b: Ref) -> Self {
        Self {
            op,
            ty,
            a,
            b,
            imm: 0,
            snap: NO_SNAP,
        }
    }
}

/// A host function a trace may call: two int arguments, int result.
pub type HostFn = extern "C" fn(i64, i64) -> i64;

/// A trace: instructions, snapshots, and the slot state at the back edge.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    /// The instructions.
    pub insts: Vec<Inst>,
    /// Snapshots, indexed by [`Inst::snap`]; a side exit returns its snapshot index.
    pub snaps: Vec<Snapshot>,
    /// The slot state at the backward branch (recorded form); its `pc` is the loop header.
    pub tail: Snapshot,
    /// Host functions, indexed by `Call`'s `imm`.
    pub calls: Vec<HostFn>,
    /// VM values the trace's code points at (string constants its `loadk`s clone, by the
    /// address of the `Value` inside the `Rc`): alive as long as any copy of the trace is.
    pub keep: Vec<alloc::rc::Rc<crate::vm::value::Value>>,
}

/// Why a trace is malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IrError {
    /// An operand points at or after its instruction, or past the end.
    BadRef {
        /// The instruction.
        at: Ref,
    },
    /// An operand has the wrong type.
    BadType {
        /// The instruction.
        at: Ref,
    },
    /// A guard without a valid snapshot, or a snapshot entry with a bad ref.
    BadSnapshot {
        /// The instruction (or `NONE` for the tail).
        at: Ref,
    },
    /// More than one LOOP, or a PHI before it.
    BadLoop {
        /// The instruction.
        at: Ref,
    },
    /// A `Call` names a host function the trace does not have, or a negative slot.
    BadImmediate {
        /// The instruction.
        at: Ref,
    },
}

impl Trace {
    /// The instruction `r`.
    #[inline]
    pub fn inst(&self, r: Ref) -> &Inst {
        &self.insts[r as usize]
    }

    /// The type of value `r`.
    #[inline]
    pub fn ty(&self, r: Ref) -> Ty {
        self.insts[r as usize].ty
    }

    /// The index of the LOOP marker, if the trace has been unrolled.
    pub fn loop_ref(&self) -> Option<Ref> {
        self.insts
            .iter()
            .position(|i| i.op == Op::Loop)
            .map(|p| p as Ref)
    }

    /// The highest slot index the trace reads or writes, if any.
    pub fn max_slot(&self) -> Option<u32> {
        let loads = self.insts.iter().filter_map(|i| i.op.slot_of(i.imm));
        let stores = self
            .snaps
            .iter()
            .chain(core::iter::once(&self.tail))
            .flat_map(|s| s.entries.iter().map(|e| e.slot));
        loads.chain(stores).max()
    }

    /// Checks the invariants in the module doc.
    pub fn validate(&self) -> Result<(), IrError> {
        let mut seen_loop = false;
        for (i, inst) in self.insts.iter().enumerate() {
            let at = i as Ref;
            self.validate_operands(at, inst)?;
            match inst.op {
                Op::Loop if seen_loop => return Err(IrError::BadLoop { at }),
                Op::Loop => seen_loop = true,
                Op::Phi if !seen_loop => return Err(IrError::BadLoop { at }),
                Op::SLoad if inst.imm < 0 || inst.imm > u32::MAX as i64 => {
                    return Err(IrError::BadImmediate { at })
                }
                Op::SLoadT if inst.imm < 0 => return Err(IrError::BadImmediate { at }),
                Op::SAddr if inst.imm < 0 || inst.imm > u32::MAX as i64 => {
                    return Err(IrError::BadImmediate { at })
                }
                Op::SLoad if inst.ty == Ty::Void => return Err(IrError::BadType { at }),
                Op::Call if inst.imm < 0 || inst.imm as usize >= self.calls.len() => {
                    return Err(IrError::BadImmediate { at })
                }
                Op::Fuel if inst.imm < 0 => return Err(IrError::BadImmediate { at }),
                op if op.is_compare_guard() && i32::try_from(inst.imm).map_or(true, |k| k < 0) => {
                    return Err(IrError::BadImmediate { at })
                }
                op if op.is_compare_guard()
                    && inst.imm > 0
                    && self
                        .insts
                        .iter()
                        .enumerate()
                        .any(|(j, o)| j != i && o.op.is_guard() && o.snap == inst.snap) =>
                {
                    return Err(IrError::BadSnapshot { at })
                }
                // Native code divides without checks: only by a constant that cannot trap.
                Op::DivIK | Op::ModIK if !self.is_safe_divisor(inst.b) => {
                    return Err(IrError::BadImmediate { at })
                }
                _ => {}
            }
            if inst.op.is_guard() && inst.snap as usize >= self.snaps.len() {
                return Err(IrError::BadSnapshot { at });
            }
        }
        self.validate_snapshots()?;
        let end = self.insts.len() as Ref;
        if self
            .tail
            .entries
            .iter()
            .any(|e| !self.is_value_before(e.val, end))
        {
            return Err(IrError::BadSnapshot { at: NONE });
        }
        Ok(())
    }

    /// Snapshot rules: a parent comes before its child; tombstones only in delta snapshots;
    /// every entry names a value defined before the first guard that exits through the
    /// snapshot or through a delta of it (linear: each snapshot's own entries once).
    fn validate_snapshots(&self) -> Result<(), IrError> {
        let n = self.snaps.len();
        let mut first_use: Vec<Ref> = alloc::vec![NONE; n];
        for (pos, inst) in self.insts.iter().enumerate() {
            if let Some(f) = first_use.get_mut(inst.snap as usize) {
                *f = (*f).min(pos as Ref);
            }
        }
        for i in (0..n).rev() {
            let parent = self.snaps[i].parent;
            if parent == NO_SNAP {
                continue;
            }
            if parent as usize >= i {
                return Err(IrError::BadSnapshot { at: first_use[i] });
            }
            first_use[parent as usize] = first_use[parent as usize].min(first_use[i]);
        }
        let end = self.insts.len() as Ref;
        for (s, &first) in self.snaps.iter().zip(&first_use) {
            let before = first.min(end);
            let bad = s.entries.iter().any(|e| {
                if e.val == NONE {
                    !s.is_delta()
                } else {
                    !self.is_value_before(e.val, before)
                }
            });
            if bad {
                return Err(IrError::BadSnapshot { at: first });
            }
        }
        Ok(())
    }

    /// Per snapshot, whether an instruction exits through it (a snapshot that is only a
    /// parent of others, or that no guard kept, has no exit of its own).
    pub fn exited_snapshots(&self) -> Vec<bool> {
        let mut exited = alloc::vec![false; self.snaps.len()];
        for inst in &self.insts {
            if let Some(e) = exited.get_mut(inst.snap as usize) {
                *e = true;
            }
        }
        exited
    }

    /// Snapshot `n` with its chain of parents applied: every slot an exit through it writes,
    /// sorted by slot, without tombstones (see `jit/ir/snapshot.rs`). A full
    /// snapshot is returned as it is.
    pub fn resolved(&self, n: u32) -> Snapshot {
        let own = &self.snaps[n as usize];
        if !own.is_delta() {
            return own.clone();
        }
        // Newest first: the first entry seen for a slot wins.
        let mut all: Vec<(u32, u32, SnapEntry)> = Vec::new();
        let (mut at, mut depth) = (n, 0u32);
        loop {
            let s = &self.snaps[at as usize];
            all.extend(s.entries.iter().map(|e| (e.slot, depth, *e)));
            // `validate` guarantees `parent < at`; stop on a malformed chain regardless.
            if s.parent == NO_SNAP || s.parent >= at {
                break;
            }
            at = s.parent;
            depth += 1;
        }
        all.sort_unstable_by_key(|&(slot, depth, _)| (slot, depth));
        all.dedup_by_key(|&mut (slot, _, _)| slot);
        let entries = all
            .into_iter()
            .map(|(_, _, e)| e)
            .filter(|e| e.val != NONE)
            .collect();
        Snapshot::full(own.pc, entries)
    }

    /// Whether `r` is an int constant other than 0 and -1 (dividing by it cannot trap or
    /// overflow).
    fn is_safe_divisor(&self, r: Ref) -> bool {
        self.insts
            .get(r as usize)
            .is_some_and(|i| i.op == Op::KInt && i.imm != 0 && i.imm != -1)
    }

    /// Whether `r` names a value-producing instruction before `at`.
    fn is_value_before(&self, r: Ref, at: Ref) -> bool {
        r < at && self.insts[r as usize].ty != Ty::Void
    }

    fn validate_operands(&self, at: Ref, inst: &Inst) -> Result<(), IrError> {
        let (ma, mb) = inst.op.modes();
        let check = |mode: Mode, r: Ref| -> Result<Ty, IrError> {
            if mode == Mode::None {
                return Ok(Ty::Void);
            }
            // PHI operands may point anywhere before the end (b is defined in the body).
            let limit = if inst.op == Op::Phi {
                self.insts.len() as Ref
            } else {
                at
            };
            if r >= limit {
                return Err(IrError::BadRef { at });
            }
            let ty = self.ty(r);
            let ok = match mode {
                Mode::Int => ty == Ty::Int,
                Mode::Float => ty == Ty::Float,
                Mode::Bool => ty == Ty::Bool,
                Mode::Num | Mode::Any => ty != Ty::Void,
                Mode::None => true,
            };
            ok.then_some(ty).ok_or(IrError::BadType { at })
        };
        let ta = check(ma, inst.a)?;
        let tb = check(mb, inst.b)?;
        if matches!(ma, Mode::Num | Mode::Any) && ta != tb {
            return Err(IrError::BadType { at });
        }
        let expected = match inst.op {
            Op::SLoad => inst.ty,
            op => op.result(),
        };
        if inst.ty != expected {
            return Err(IrError::BadType { at });
        }
        Ok(())
    }
}
