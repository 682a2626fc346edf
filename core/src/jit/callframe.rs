//! The frame of a function-trace activation, and the protocol of calls between native code,
//! the VM-call helper and other function traces.
//!
//! Every function trace (see [`crate::jit::func`]) runs with a frame of [`FRAME_WORDS`] words
//! (an [`ExitFrame`]: register dump, up to [`MAX_SPILLS`] spill slots), followed at the fixed
//! word [`AREA`] by the *call area*. The layout is the same for every function trace, so a
//! caller can make a frame for any callee without knowing it.
//!
//! ```text
//!   word 0       register dump (int, then float)     written by the exit handler
//!   word 64      spill slots (at most MAX_SPILLS)
//!   word AREA+0  ROOT    *mut u64: frame of the activation Rust entered  \
//!           +2   META    *const FuncCode (running)                        | written by whoever
//!           +3   BUDGET  direct calls still allowed below this activation | starts the
//!           +4   ENV     *mut NativeEnv (read in the ROOT frame only)     / activation:
//!                                                                           FuncCode::run, or
//!                                                                           a direct call
//!           +1   SLOTS   address of the activation's slot 0, written by native code right
//!                        before each helper call and at every exit (the register stack may
//!                        move in a VM call, so the helpers turn it into a slot index at once
//!                        and never keep it)
//!           +5   STATUS  0: call returned the expected type; 1: leave the trace
//!           +6   RESULT  a call's result bits; the activation's own return value (RetI/RetF)
//!           +7   ARGS..  argument bits of the next helper call (CArgI/CArgF), MAX_ARGS words
//! ```
//!
//! The ROOT frame (the activation Rust entered; its ROOT word points at itself) holds what
//! all direct calls below it share, so a direct call copies one pointer for all of it: the
//! `NativeEnv` (its ENV word), the fuel the direct calls below it charged (its FUEL word, which
//! Rust charges to the VM when native code returns) and the budget Rust gave it (its BUDGET
//! word: the number of direct calls between an activation and its ROOT is the ROOT's BUDGET
//! minus the activation's own). The budget Rust gives a ROOT also guarantees the register
//! stack: every frame window of that many nested calls, each at most the largest frame of
//! the program's called functions above its caller's, lies inside it (see
//! `NativeEnv::direct_room`), so a direct call checks BUDGET and nothing else about room.
//!
//! Calls (`CallV`, `CallD`):
//! - helper call: `helper(&area, site)` (host function 0 of the trace) runs the callee
//!   through the VM, writes STATUS (and RESULT) and returns the address of the caller's slot 0,
//!   which native code reloads as its slot base (the register stack may have moved);
//! - direct call (`CallD`, callee compiled): if BUDGET > 0 and no argument register holds a
//!   heap value (except the arguments that are heap values themselves, named by the mask in
//!   bits 32.. of `CallD`'s `imm`: they are already in the callee's registers and are neither
//!   checked nor stored), the caller stores the number arguments as values into the callee's
//!   registers straight from where the argument values are (the `CArgI`/`CArgF` right before
//!   a `CallD` store nothing; only the helper path writes ARGS), adds the call's fuel (the
//!   callee's length and the caller's rest at once) to the ROOT's FUEL word, pushes a fresh
//!   frame on the machine stack, fills its ROOT, META and BUDGET (the same ROOT, the callee,
//!   BUDGET - 1) and calls the callee's entry (`FuncCode` word 0) with `(slots of the callee, frame)`. The
//!   callee returns [`RET_CODE`] with its value in its RESULT (an int also in `rcx` / `x2`)
//!   and its slot base in the second return register (`rdx` / `x1`); any other exit number means the callee left its trace:
//!   the caller takes the rest back and hands the callee's frame to the exit helper (host
//!   function 1: `exit_helper(callee frame, exit, &area, site)`), which finishes the callee's frame in the VM and answers like the call helper. Otherwise the
//!   caller falls back to the helper call.
//!
//! [`ExitFrame`]: crate::jit::backend::ExitFrame

use crate::jit::backend::SPILL_BASE;
use crate::jit::ir::{Op, Ref, Trace};
use crate::jit::regalloc::Loc;

/// Spill slots a function trace may use.
pub const MAX_SPILLS: usize = 64;
/// Most arguments a call inside a function trace may pass.
pub const MAX_ARGS: usize = 16;
/// First word of the call area.
pub const AREA: usize = SPILL_BASE + MAX_SPILLS;
/// Word of the pointer to the ROOT frame (the activation Rust entered).
pub const ROOT: usize = 0;
/// Word of the activation's slot-0 address, written right before each helper call.
pub const SLOTS: usize = 1;
/// Word of the `FuncCode` pointer.
pub const META: usize = 2;
/// Word of the number of direct calls still allowed below this activation.
pub const BUDGET: usize = 3;
/// Word of the `NativeEnv` pointer (meaningful in the ROOT frame).
pub const ENV: usize = 4;
/// Word of the call status.
pub const STATUS: usize = 5;
/// Word of the call result (and of the activation's own return value).
pub const RESULT: usize = 6;
/// First argument word.
pub const ARGS: usize = 7;
/// Register slots a frame may address from its base (the VM's 8-bit register operands).
pub const WINDOW: usize = 256;
/// Words of a whole frame (an even number: the frame keeps the stack 16-byte aligned).
pub const FRAME_WORDS: usize = (AREA + ARGS + MAX_ARGS + 1) & !1;
/// Tags from this value up are heap references (strings, arrays): native code never stores
/// over them (the VM must drop them). Nil, bool, int and float lie below. A power of two, so
/// the tags of several slots are tested at once: their bitwise or is below it exactly when
/// every tag is.
pub const FIRST_HEAP_TAG: u64 = crate::vm::value::TAG_STR;
const _: () = assert!(
    FIRST_HEAP_TAG.is_power_of_two()
        && crate::vm::value::TAG_ARRAY > FIRST_HEAP_TAG
        && crate::vm::value::TAG_FLOAT < FIRST_HEAP_TAG
        && crate::vm::value::TAG_INT < FIRST_HEAP_TAG
        && crate::vm::value::TAG_BOOL < FIRST_HEAP_TAG
        && crate::vm::value::TAG_NIL < FIRST_HEAP_TAG
);
/// Byte offset in a `FuncCode` of its code address past the prologue (where a linked side
/// exit of another trace on the same frame continues).
pub const BODY_OFFSET: i32 = 8;
/// Exit number of a trace's return (`RetI`/`RetF`/`RetN`).
pub const RET_CODE: u32 = 0x7fff_fff0;
/// `CallD`'s second operand: the callee's window, the argument count, which arguments are
/// floats, and the fuel the interpreter charges for the call: the callee's length at the call,
/// the caller's rest when it returns; as
/// `window | argc << 8 | float_mask << 16 | callee_len << 32 | rest << 48`.
pub const fn pack_direct(window: usize, argc: usize, float_mask: u32, fuel: (u16, u16)) -> i64 {
    (window as i64)
        | ((argc as i64) << 8)
        | ((float_mask as i64) << 16)
        | ((fuel.0 as i64) << 32)
        | ((fuel.1 as i64) << 48)
}

/// Frame-word byte offset of call-area word `w`.
pub const fn area_disp(w: usize) -> usize {
    (AREA + w) * 8
}

/// The guard `status == 0` right after the call op `call` of `t` (nothing but constants
/// between them), if the status feeds nothing but that guard and the call's result op
/// (`CResI`/`CResF`, which does not read it) and no snapshot: a direct call's return path,
/// whose status is 0, may then continue past the guard.
pub fn status_guard(t: &Trace, call: Ref) -> Option<Ref> {
    let g = next_past_constants(t, call)?;
    let guard = t.insts.get(g)?;
    let zero = t.insts.get(guard.b as usize)?;
    if guard.op != Op::Eq || guard.a != call || zero.op != Op::KInt || zero.imm != 0 {
        return None;
    }
    let other_use = t.insts.iter().enumerate().any(|(i, inst)| {
        i != g && !matches!(inst.op, Op::CResI | Op::CResF) && (inst.a == call || inst.b == call)
    });
    let in_snapshot = t
        .snaps
        .iter()
        .any(|s| s.entries.iter().any(|e| e.val == call));
    (!other_use && !in_snapshot).then_some(g as Ref)
}

/// The `CResI` right after the status guard `guard` of a direct call (nothing but constants
/// between them): the call's return path then leaves the result in its location itself,
/// from the register the callee returned it in ([`RESULT_REG`](crate::jit::callframe)), and
/// the op is emitted once more only for the helper paths.
pub fn int_result_after(t: &Trace, guard: Ref) -> Option<Ref> {
    let r = next_past_constants(t, guard)?;
    (t.insts[r].op == Op::CResI).then_some(r as Ref)
}

/// The position of the first instruction after `r` that is not a constant (or a `Nop`).
fn next_past_constants(t: &Trace, r: Ref) -> Option<usize> {
    let mut i = r as usize + 1;
    while matches!(t.insts.get(i)?.op, Op::Nop | Op::KInt | Op::KBool) {
        i += 1;
    }
    Some(i)
}

/// One number argument of a direct call: its index, its value, whether it is a float.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DirectArg {
    /// Argument index (the callee's register).
    pub index: usize,
    /// The value passed.
    pub val: Ref,
    /// Passed as a float.
    pub float: bool,
}

/// [`direct_args`] under a register allocation (`locs`, one location per instruction): a
/// constant occupies nothing when it has no location. Both backends ask this.
pub fn direct_args_at(
    t: &Trace,
    locs: &[Loc],
    call: Ref,
) -> Option<(heapless::Vec<DirectArg, MAX_ARGS>, Ref)> {
    direct_args(t, call, |k| {
        !matches!(locs.get(k as usize), Some(Loc::None) | None)
    })
}

/// Whether the `CArgI`/`CArgF` `r` of `t` stores nothing under `locs`: the direct call right
/// after it stores its value ([`direct_args`]).
pub fn stored_by_call(t: &Trace, locs: &[Loc], r: Ref) -> bool {
    let mut call = r as usize;
    while let Some(i) = t.insts.get(call) {
        if matches!(i.op, Op::CArgI | Op::CArgF | Op::Nop) || i.op.is_const() {
            call += 1;
            continue;
        }
        break;
    }
    direct_args_at(t, locs, call as Ref).is_some_and(|(_, from)| from <= r)
}

/// The number arguments of the direct call `call` of `t`, if the `CArgI`/`CArgF` ops right
/// before it (nothing between them but constants for which `occupies` says they hold no
/// register or spill slot) pass exactly the arguments it stores (all but the heap ones):
/// nothing between them and the call then overwrites where their values are, so the call
/// stores them into the callee's registers from there, and only its helper path writes
/// them into ARGS. Also the first op of that run (its `CArg` ops store nothing).
pub fn direct_args(
    t: &Trace,
    call: Ref,
    occupies: impl Fn(Ref) -> bool,
) -> Option<(heapless::Vec<DirectArg, MAX_ARGS>, Ref)> {
    let inst = t.insts.get(call as usize)?;
    if inst.op != Op::CallD {
        return None;
    }
    let packed = t
        .insts
        .get(inst.b as usize)
        .filter(|k| k.op.is_const())?
        .imm;
    let argc = ((packed >> 8) & 0xff) as usize;
    let heap = (inst.imm >> 32) as u32;
    let mut args = heapless::Vec::new();
    let mut seen = 0u32;
    let mut from = call;
    while from > 0 {
        let prev = t.insts.get(from as usize - 1)?;
        match prev.op {
            Op::CArgI | Op::CArgF => {
                let index = usize::try_from(prev.imm).ok().filter(|&i| i < argc)?;
                if seen & (1 << index) != 0 || heap & (1 << index) != 0 {
                    return None;
                }
                seen |= 1 << index;
                let float = prev.op == Op::CArgF;
                args.push(DirectArg {
                    index,
                    val: prev.a,
                    float,
                })
                .ok()?;
            }
            op if (op == Op::Nop || op.is_const()) && !occupies(from - 1) => {}
            _ => break,
        }
        from -= 1;
    }
    let want = ((1u64 << argc) - 1) as u32 & !heap;
    (seen == want).then_some((args, from))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jit::ir::{Inst, Ty, NONE};
    use crate::jit::snapshot::{SnapEntry, Snapshot};

    /// `CallD`, `KInt 0`, `Eq` guard on the status, `CResI`, `RetI`; `extra` adds an `AddI`
    /// of the status after the guard.
    fn call_trace(extra: bool) -> Trace {
        let mut t = Trace::default();
        let mut k = |op, ty, a, b, imm| {
            let mut i = Inst::new(op, ty, a, b);
            i.imm = imm;
            t.insts.push(i);
        };
        k(Op::KInt, Ty::Int, NONE, NONE, 7); // 0: callee
        k(Op::CallD, Ty::Int, 0, 0, 0); // 1
        k(Op::KInt, Ty::Int, NONE, NONE, 0); // 2
        k(Op::Eq, Ty::Void, 1, 2, 0); // 3
        k(Op::CResI, Ty::Int, 1, NONE, 0); // 4
        if extra {
            k(Op::AddI, Ty::Int, 1, 4, 0);
        }
        k(Op::RetI, Ty::Void, 4, NONE, 0);
        t.snaps.push(Snapshot::default());
        t
    }

    #[test]
    fn the_status_guard_right_after_a_call_is_found() {
        assert_eq!(status_guard(&call_trace(false), 1), Some(3));
        // Not a call followed by its status guard.
        assert_eq!(status_guard(&call_trace(false), 0), None);
    }

    #[test]
    fn a_status_used_elsewhere_keeps_its_guard_in_place() {
        assert_eq!(status_guard(&call_trace(true), 1), None);
        let mut t = call_trace(false);
        t.snaps[0].entries.push(SnapEntry {
            slot: 0,
            val: 1,
            dead: false,
        });
        assert_eq!(status_guard(&t, 1), None);
        let mut t = call_trace(false);
        t.insts[2].imm = 1;
        assert_eq!(status_guard(&t, 1), None);
    }

    /// `SLoad`s of an int and a float, `CArgI 0`, `KInt`, `CArgF 2`, the callee and packed
    /// constants, `CallD` passing 3 arguments with argument 1 a heap value.
    fn direct_trace(between: Op) -> Trace {
        let mut t = Trace::default();
        let mut k = |op, ty, a, b, imm| {
            let mut i = Inst::new(op, ty, a, b);
            i.imm = imm;
            t.insts.push(i);
        };
        k(Op::SLoad, Ty::Int, NONE, NONE, 0); // 0
        k(Op::SLoad, Ty::Float, NONE, NONE, 1); // 1
        k(Op::CArgI, Ty::Void, 0, NONE, 0); // 2
        k(between, Ty::Int, NONE, NONE, 5); // 3
        k(Op::CArgF, Ty::Void, 1, NONE, 2); // 4
        k(Op::KInt, Ty::Int, NONE, NONE, 0); // 5: callee
        k(
            Op::KInt,
            Ty::Int,
            NONE,
            NONE,
            pack_direct(4, 3, 0b100, (3, 4)),
        ); // 6
        k(Op::CallD, Ty::Int, 5, 6, 1 << 33); // 7
        t
    }

    #[test]
    fn direct_call_arguments_are_found_behind_constants() {
        let (args, from) = direct_args(&direct_trace(Op::KInt), 7, |_| false).expect("found");
        assert_eq!(from, 2);
        let got: alloc::vec::Vec<_> = args.iter().map(|a| (a.index, a.val, a.float)).collect();
        assert_eq!(got, [(2, 1, true), (0, 0, false)]);
    }

    #[test]
    fn direct_call_arguments_behind_a_value_stay_in_the_call_area() {
        // A constant that holds a register between the argument ops could take the register
        // of an argument whose value died at its `CArg`.
        assert_eq!(direct_args(&direct_trace(Op::KInt), 7, |r| r == 3), None);
        // An op computing a value between them: the same.
        assert_eq!(direct_args(&direct_trace(Op::SLoad), 7, |_| false), None);
        // Not a direct call.
        assert_eq!(direct_args(&direct_trace(Op::KInt), 6, |_| false), None);
        // The heap argument passed by a `CArg` op: not a pattern native code makes.
        let mut t = direct_trace(Op::KInt);
        t.insts[7].imm = 1 << 32;
        assert_eq!(direct_args(&t, 7, |_| false), None);
    }
}
