//! Bounds checks on a loop counter, hoisted out of the loop body (see
//! [`hoist_counter_bounds`]): the part of the unroll pass that LuaJIT calls ABC elimination.
use alloc::vec::Vec;

use super::{Emitter, Live};
use crate::jit::ir::{Inst, Op, Ref, Ty, NO_SNAP};
use crate::jit::snapshot::Snapshot;

/// Bounds checks on a loop counter, hoisted: a pre-roll guard `k <u len` (unsigned, so also
/// `k >= 0`) on the value `k` of slot `s` at the top of the iteration, where the iteration
/// ends with `s = k + d` and the loop guard `k + d < n` (or `<= n`), and `len`, `n` and the
/// step `d` are loop-invariant, holds in every later iteration once `n <= len` (`n < len`)
/// and `0 <= d`: by induction `0 <= k < n <= len` at the top of each of them (`k` never
/// shrinks, and `k + d` cannot wrap: `len` is an array length, far below 2^62, and `d` is a
/// constant in `1..2^32` or guarded `d <u len`). So the body keeps no copy of the check, and
/// the guards `n <= len` (and `d <u len` for a step that is not a constant) go before LOOP,
/// exiting with the tail snapshot: at the loop header after the first iteration, whose back
/// edge is already charged, where the interpreter goes on with the loop (and raises the
/// bounds error itself if it gets there). Returns the pre-roll checks whose body copies are
/// dropped. LuaJIT's ABC elimination does the same for `for` loops.
///
/// ```text
///   pre-roll:  k0 = SLoad s ; ULt k0, len ; ... ; k1 = AddI k0, d ; Lt k1, n ; Le n, len
///              [ULt d, len]
///   LOOP:      (no ULt on the counter)     ; ... ; k2 = AddI k1', d ; Lt k2, n
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
        if step.op != Op::AddI || step.a != k0 {
            continue;
        }
        // A constant step needs no guard; an invariant one is guarded `d <u len`.
        let stride_guard = match em.const_of(step.b) {
            Some(d) if (1..1 << 32).contains(&d) => None,
            Some(_) => continue,
            None if invariant(step.b) => Some((Op::ULt, step.b, inst.b)),
            None => continue,
        };
        // The loop guard on the stepped counter: `k1 < n` needs `n <= len`, `k1 <= n` needs
        // `n < len`.
        let bound = insts.iter().find_map(|l| match l.op {
            Op::Lt if l.a == k1 && invariant(l.b) => Some((Op::Le, l.b)),
            Op::Le if l.a == k1 && invariant(l.b) => Some((Op::Lt, l.b)),
            _ => None,
        });
        if let Some((op, n)) = bound {
            implied.push(g as Ref);
            for guard in [Some((op, n, inst.b)), stride_guard].into_iter().flatten() {
                if !hoisted.contains(&guard) {
                    hoisted.push(guard);
                }
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

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use crate::jit::ir::{Inst, Op, Trace, TraceBuilder, Ty};
    use crate::jit::opt::optimize;

    /// How the counter of [`counter_loop`] steps.
    #[derive(Clone, Copy)]
    enum Step {
        /// By a constant.
        By(i64),
        /// By slot 5, which the loop does not write.
        Invariant,
        /// By slot 5, which the loop also writes.
        Written,
    }

    /// `while k < n { s = s + k; k = k + step }` with the bounds check `k <u len(a)` of an
    /// array access: k in slot 0, n in slot 1, the array in slot 2, s in slot 4.
    fn counter_loop(step: Step) -> Trace {
        let mut b = TraceBuilder::new(3);
        let k = b.slot(0, Ty::Int);
        let n = b.slot(1, Ty::Int);
        let arr = b.slot_tagged(2, crate::vm::value::TAG_ARRAY as u32);
        let len = b.load(Op::LdH, arr, crate::vm::value::ARRAY_LEN_OFFSET as i64);
        b.guard(Op::ULt, k, len);
        let s = b.slot(4, Ty::Int);
        let s2 = b.op(Op::AddI, s, k);
        b.set_slot(4, s2);
        let d = match step {
            Step::By(d) => b.kint(d),
            Step::Invariant | Step::Written => b.slot(5, Ty::Int),
        };
        if let Step::Written = step {
            let d2 = b.op(Op::AddI, d, s2);
            b.set_slot(5, d2);
        }
        let k2 = b.op(Op::AddI, k, d);
        b.set_slot(0, k2);
        b.guard(Op::Lt, k2, n);
        b.finish(3).unwrap()
    }

    /// The checks on the counter in the pre-roll and in the body, and the guards hoisted
    /// before LOOP (`Le` on n and len, `ULt` on the step).
    fn shape(t: &Trace) -> (usize, usize, Vec<Inst>) {
        let lp = t.loop_ref().expect("loops") as usize;
        let on_step = |i: &Inst| t.inst(i.a).op == Op::SLoad && t.inst(i.a).imm == 5;
        let ult = |r: core::ops::Range<usize>| {
            t.insts[r]
                .iter()
                .filter(|i| i.op == Op::ULt && !on_step(i))
                .count()
        };
        let hoisted = t.insts[..lp]
            .iter()
            .filter(|i| i.op == Op::Le || (i.op == Op::ULt && on_step(i)))
            .copied()
            .collect();
        (ult(0..lp), ult(lp..t.insts.len()), hoisted)
    }

    #[test]
    fn a_counter_bounds_check_leaves_the_loop_body() {
        let t = optimize(&counter_loop(Step::By(1))).unwrap();
        let (pre, body, hoisted) = shape(&t);
        assert_eq!(
            (pre, body),
            (1, 0),
            "checked once, not in the body: {:?}",
            t.insts
        );
        assert_eq!(hoisted.len(), 1, "{:?}", t.insts);
        let g = hoisted[0];
        assert_eq!(g.op, Op::Le);
        assert_eq!(t.inst(g.a).op, Op::SLoad, "n");
        assert_eq!(t.inst(g.b).op, Op::LdH, "len");
        let exit = t.resolved(g.snap);
        assert_eq!(exit.pc, 3, "resumes at the loop header");
        assert!(
            exit.get(0).is_some_and(|r| t.inst(r).op == Op::AddI),
            "with k + d"
        );
    }

    #[test]
    fn a_counter_with_a_constant_or_invariant_step_is_hoisted_too() {
        let t = optimize(&counter_loop(Step::By(3))).unwrap();
        let (_, body, hoisted) = shape(&t);
        assert_eq!(body, 0, "{:?}", t.insts);
        assert_eq!(
            hoisted.len(),
            1,
            "a constant step needs no guard: {:?}",
            t.insts
        );

        let t = optimize(&counter_loop(Step::Invariant)).unwrap();
        let (_, body, hoisted) = shape(&t);
        assert_eq!(body, 0, "{:?}", t.insts);
        let ops: Vec<Op> = hoisted.iter().map(|i| i.op).collect();
        assert_eq!(
            ops,
            [Op::Le, Op::ULt],
            "n <= len, then d <u len: {:?}",
            t.insts
        );
        assert_eq!(t.inst(hoisted[1].b).op, Op::LdH, "against the length");
    }

    #[test]
    fn a_counter_that_may_shrink_or_wrap_keeps_its_check() {
        for step in [Step::By(-1), Step::By(1 << 40), Step::Written] {
            let t = optimize(&counter_loop(step)).unwrap();
            let (_, body, hoisted) = shape(&t);
            assert_eq!(body, 1, "{:?}", t.insts);
            assert!(hoisted.is_empty(), "{:?}", t.insts);
        }
    }
}
