//! Slot loads to the front of a recorded loop trace (see [`loads_first`]): what a trace's
//! register entry stands on (`backend::link`).
use alloc::vec::Vec;

use crate::jit::ir::{Op, Ref, Trace, Ty, NONE, NO_SNAP};
use crate::jit::snapshot::Snapshot;

/// Most slot loads of one register class [`loads_first`] moves to the front: each then holds
/// a register for the whole pre-roll.
const MAX_FRONT_LOADS: usize = 6;

/// A recorded loop trace with its scalar `SLoad`s before its first call moved to the front, in
/// their order, all on a new snapshot at `pc` (the trace's start) with no entries; `None`
/// when there is nothing to move or more than [`MAX_FRONT_LOADS`] of one class. Such loads
/// read slots nothing writes before the first call, so they read the same values at the
/// front; a linked exit that has the values in registers enters after them (see
/// `backend::link`, typed links). Their tag checks belong to the trace's checked entry.
pub(crate) fn loads_first(rec: &Trace, pc: u32) -> Option<Trace> {
    let until = rec
        .insts
        .iter()
        .position(|i| i.op.is_call())
        .unwrap_or(rec.insts.len());
    let moved: Vec<usize> = (0..until)
        .filter(|&r| rec.insts[r].op == Op::SLoad)
        .collect();
    let floats = moved
        .iter()
        .filter(|&&r| rec.insts[r].ty == Ty::Float)
        .count();
    let front = moved.len();
    if front == 0 || floats > MAX_FRONT_LOADS || front - floats > MAX_FRONT_LOADS {
        return None;
    }
    if moved.iter().enumerate().all(|(k, &r)| k == r) {
        return None;
    }
    let mut order: Vec<usize> = moved.clone();
    order.extend((0..rec.insts.len()).filter(|r| !moved.contains(r)));
    let mut new_of: Vec<Ref> = alloc::vec![NONE; rec.insts.len()];
    for (new, &old) in order.iter().enumerate() {
        new_of[old] = new as Ref;
    }
    let map = |r: Ref| if r == NONE { NONE } else { new_of[r as usize] };
    let start = rec.snaps.len() as u32;
    let mut out = rec.clone();
    out.insts = order
        .iter()
        .map(|&old| {
            let mut i = rec.insts[old];
            i.a = map(i.a);
            i.b = map(i.b);
            if i.op == Op::SLoad && new_of[old] < front as Ref {
                i.snap = start;
            }
            i
        })
        .collect();
    out.snaps = rec.snaps.iter().map(|s| s.map(map)).collect();
    out.snaps.push(Snapshot {
        pc,
        entries: Vec::new(),
        parent: NO_SNAP,
    });
    out.tail = rec.tail.map(map);
    out.validate().ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jit::ir::TraceBuilder;
    use crate::jit::opt::{dead_temp_loop, optimize};

    /// `while i < n { t = i * 2; i = i + 1 }` loads `i`, guards, then loads `n`: both loads
    /// go first, on a new snapshot at the start pc with no entries, every operand, snapshot
    /// entry and the tail following its instruction.
    #[test]
    fn loads_first_moves_the_slot_loads_to_the_front() {
        let mut b = TraceBuilder::new(0);
        let i = b.slot(0, Ty::Int);
        let two = b.kint(2);
        let t = b.op(Op::MulI, i, two);
        b.set_slot(1, t);
        let n = b.slot(2, Ty::Int);
        b.guard(Op::Lt, i, n);
        let one = b.kint(1);
        let i2 = b.op(Op::AddI, i, one);
        b.set_slot(0, i2);
        let rec = b.finish(0).unwrap();
        let out = loads_first(&rec, 5).expect("n's load moves");
        let loads: Vec<i64> = out.insts[..2].iter().map(|i| i.imm).collect();
        assert!(
            out.insts[..2].iter().all(|i| i.op == Op::SLoad),
            "{:?}",
            out.insts
        );
        assert_eq!(loads, [0, 2]);
        let start = out.insts[0].snap as usize;
        assert_eq!(start, rec.snaps.len());
        assert_eq!(
            (out.snaps[start].pc, out.snaps[start].entries.len()),
            (5, 0)
        );
        assert_eq!(out.insts[1].snap as usize, start);
        // Same computation: the guard compares the two loads, the tail holds `i + 1`.
        let guard = out.insts.iter().find(|i| i.op == Op::Lt).unwrap();
        assert_eq!((guard.a, guard.b), (0, 1));
        let tail_i = out.tail.get(0).unwrap();
        assert_eq!(out.insts[tail_i as usize].op, Op::AddI);
        assert_eq!(out.insts[tail_i as usize].a, 0);
        assert!(optimize(&out).is_ok());
        // Nothing to move: already first.
        assert!(loads_first(&dead_temp_loop(), 5).is_none());
    }
}
