//! Bounds checks on a loop counter, hoisted out of the loop body (see
//! [`hoist_counter_bounds`]): the part of the unroll pass that LuaJIT calls ABC elimination.
use alloc::vec::Vec;

use super::{Emitter, Live};
use crate::jit::ir::{Inst, Op, Ref, Ty, NO_SNAP};
use crate::jit::snapshot::Snapshot;

/// Bounds checks on a loop counter, hoisted: a pre-roll guard `k <u len` (unsigned, so also
/// `k >= 0`) on the value `k` of slot `s` at the top of the iteration, where the iteration
/// ends with `s = k + 1` and the loop guard `k + 1 < n` (or `<= n`), and `len` and `n` are
/// loop-invariant, holds in every later iteration once `n <= len` (`n < len`): by induction
/// `0 <= k < n <= len` at the top of each of them (`k` only grows by one, and cannot
/// overflow below `n`). So the body keeps no copy of the check, and one guard `n <= len` goes
/// before LOOP, exiting with the tail snapshot: at the loop header after the first
/// iteration, whose back edge is already charged, where the interpreter goes on with the
/// loop (and raises the bounds error itself if it gets there). Returns the pre-roll checks
/// whose body copies are dropped. LuaJIT's ABC elimination does the same for `for` loops.
///
/// ```text
///   pre-roll:  k0 = SLoad s ; ULt k0, len ; ... ; k1 = AddI k0, 1 ; Lt k1, n ; Le n, len
///   LOOP:      (no ULt on the counter)     ; ... ; k2 = AddI k1', 1 ; Lt k2, n
/// ```
pub(super) fn hoist_counter_bounds(em: &mut Emitter, tail: &Snapshot, live: Live) -> Vec<Ref> {
    let mut implied = Vec::new();
    if tail.is_delta() {
        return implied;
    }
    let insts = &em.out.insts;
    // Loop-invariant values: constants, slots the iteration does not write, heap objects'
    // slots (never written in a loop), and headers of those when headers do not change.
    let invariant = |r: Ref| -> bool {
        let Some(i) = insts.get(r as usize) else {
            return false;
        };
        let plain = |i: &Inst| match i.op {
            op if op.is_const() => true,
            Op::SLoad => tail.get(i.imm as u32).is_none(),
            Op::SLoadT => true,
            _ => false,
        };
        plain(i)
            || (i.op == Op::LdH && em.cse_headers && insts.get(i.a as usize).is_some_and(plain))
    };
    let mut hoisted: Vec<(Op, Ref, Ref)> = Vec::new();
    for (g, inst) in insts.iter().enumerate() {
        if inst.op != Op::ULt || !invariant(inst.b) {
            continue;
        }
        let k0 = inst.a;
        let counter = insts.get(k0 as usize).filter(|i| i.op == Op::SLoad);
        let Some(k1) = counter.and_then(|i| tail.get(i.imm as u32)) else {
            continue;
        };
        let step = insts[k1 as usize];
        if step.op != Op::AddI || step.a != k0 || em.const_of(step.b) != Some(1) {
            continue;
        }
        // The loop guard on the stepped counter: `k1 < n` needs `n <= len`, `k1 <= n` needs
        // `n < len`.
        let bound = insts.iter().find_map(|l| match l.op {
            Op::Lt if l.a == k1 && invariant(l.b) => Some((Op::Le, l.b)),
            Op::Le if l.a == k1 && invariant(l.b) => Some((Op::Lt, l.b)),
            _ => None,
        });
        if let Some((op, n)) = bound {
            implied.push(g as Ref);
            if !hoisted.contains(&(op, n, inst.b)) {
                hoisted.push((op, n, inst.b));
            }
        }
    }
    for (op, n, len) in hoisted {
        let mut guard = Inst::new(op, Ty::Void, n, len);
        guard.snap = NO_SNAP;
        let exit = tail.clone();
        em.emit_with(guard, |em| {
            let s = em.push_snapshot(exit, live);
            em.own_snapshot(s)
        });
    }
    implied
}
