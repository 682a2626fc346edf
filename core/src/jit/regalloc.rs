//! Register allocation: linear scan over the optimised trace, one location per value.
//!
//! Glossary
//! - *interval*: `[def, last use]` of a value in instruction positions. Uses are operands,
//!   snapshot entries of guards (read by the exit stub), and PHIs (used at the very end).
//! - *loop extension*: a pre-roll value used in the body is live until the end of the trace,
//!   because the body repeats — except the left side `a` of a `PHI(a, b)`: its old value dies
//!   at its last use, and the back edge writes the new one. `b` is allocated with a hint for
//!   `a`'s register, so most PHI moves vanish.
//! - *preference*: the register a value takes when it is free: the one its PHI wants (passed
//!   back through operands dying in arithmetic, so a chain `t = x * y; b = t + z` computes in
//!   `a`'s register), else that of an operand dying at it (two-address code computes in
//!   place), else the first free one, avoiding a dying right operand of an operation that
//!   does not commute (x86-64 would copy it out of the way).
//! - *crossing a call*: live before and after a `Call`; such a value gets a callee-saved
//!   register or a spill slot.
//! - *location* ([`Loc`]): a register or a spill slot, fixed for the value's whole life (no
//!   splitting), so exit stubs and PHI moves know where everything is.
//!
//! Invariants
//! - two values whose intervals overlap never share a register (an operand dying at an
//!   instruction may share with that instruction's result; backends read operands first);
//! - int constants get [`Loc::None`]: backends rematerialise them at each use (they fit
//!   immediates); a float constant that lives across instructions gets a register when one is
//!   free (never a spill slot, never by evicting a value): the backend materialises it once,
//!   where it is defined, so a loop body does not rebuild it every iteration;
//! - ints and floats stay unboxed in their register class across iterations.
use alloc::vec;
use alloc::vec::Vec;

use crate::jit::ir::{Op, Ref, Trace, Ty, NONE};

/// Where a value lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loc {
    /// No location: constants, and instructions without a value.
    None,
    /// A register of the value's class.
    Reg(u8),
    /// Spill slot `n` (8 bytes each) in the trace's stack frame.
    Spill(u32),
}

/// The allocatable registers of a target, per class; scratch and fixed registers excluded.
#[derive(Clone, Copy, Debug)]
pub struct RegPool {
    /// Int registers a call may clobber.
    pub int_caller: &'static [u8],
    /// Int registers preserved across calls.
    pub int_callee: &'static [u8],
    /// Float registers a call may clobber.
    pub float_caller: &'static [u8],
    /// Float registers preserved across calls.
    pub float_callee: &'static [u8],
    /// Int registers an inline runtime call clobbers (its two argument registers): a runtime
    /// call the backends emit inline ([`crate::jit::backend::InlineCall`]) preserves every
    /// other allocatable register, also on the path where it calls Rust.
    pub int_args: &'static [u8],
}

/// The result: a location per ref and the number of spill slots used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Allocation {
    /// Location of each ref.
    pub locs: Vec<Loc>,
    /// Spill slots used.
    pub spill_slots: u32,
}

/// Whether instruction `op` with type `ty` produces a value that needs a location.
pub fn needs_location(op: Op, ty: Ty) -> bool {
    ty != Ty::Void && !op.is_const() && op != Op::Nop
}

/// Last-use position of every ref (its own position if unused).
fn interval_ends(t: &Trace) -> Vec<usize> {
    let n = t.insts.len();
    let mut end: Vec<usize> = (0..n).collect();
    let use_at = |r: Ref, pos: usize, end: &mut Vec<usize>| {
        if r != NONE && (r as usize) < n {
            end[r as usize] = end[r as usize].max(pos);
        }
    };
    let mut phi_lhs = vec![false; n];
    // The last guard that exits through each snapshot.
    let mut snap_end: Vec<Option<usize>> = vec![None; t.snaps.len()];
    for (pos, inst) in t.insts.iter().enumerate() {
        if inst.op == Op::Phi {
            // The back edge reads `b` and writes `a`.
            use_at(inst.b, n, &mut end);
            if (inst.a as usize) < n {
                phi_lhs[inst.a as usize] = true;
            }
            continue;
        }
        use_at(inst.a, pos, &mut end);
        use_at(inst.b, pos, &mut end);
        if let Some(e) = snap_end.get_mut(inst.snap as usize) {
            *e = Some(pos);
        }
    }
    // An exit reads the entries of its resolved snapshot: its own, and its parents' for
    // slots no nearer snapshot of the chain names. A value a delta overrides does not live on
    // for the delta's exit. Each exit walks its deltas up to the chain's full snapshot (at
    // most `MAX_DELTA_CHAIN` of them); a full snapshot's entries are then extended once each,
    // to the last exit below it that does not override the slot.
    let mut seen: Vec<usize> = Vec::new();
    // (full snapshot, exit position, slots the exit's deltas name, sorted).
    let mut below: Vec<(u32, usize, Vec<u32>)> = Vec::new();
    for (s, pos) in snap_end.iter().enumerate() {
        let Some(pos) = *pos else { continue };
        let mut at = s as u32;
        let mut named: Vec<u32> = Vec::new();
        while let Some(snap) = t.snaps.get(at as usize) {
            if !snap.is_delta() {
                named.sort_unstable();
                below.push((at, pos, named));
                break;
            }
            for e in &snap.entries {
                let i = e.slot as usize;
                if i >= seen.len() {
                    seen.resize(i + 1, usize::MAX);
                }
                if seen[i] != s {
                    seen[i] = s;
                    named.push(e.slot);
                    use_at(e.val, pos, &mut end);
                }
            }
            at = snap.parent;
        }
    }
    below.sort_unstable_by(|x, y| x.0.cmp(&y.0).then(y.1.cmp(&x.1)));
    for group in below.chunk_by(|x, y| x.0 == y.0) {
        for e in &t.snaps[group[0].0 as usize].entries {
            let last = group
                .iter()
                .find(|(_, _, named)| named.binary_search(&e.slot).is_err());
            if let Some(&(_, pos, _)) = last {
                use_at(e.val, pos, &mut end);
            }
        }
    }
    if let Some(l) = t.loop_ref() {
        for (e, &lhs) in end.iter_mut().zip(&phi_lhs).take(l as usize) {
            if lhs {
                // Live into the loop at least (the back edge refills it).
                *e = (*e).max(l as usize + 1);
            } else if *e > l as usize {
                *e = n;
            }
        }
    }
    end
}

/// Runs linear scan over `t` with the registers of `pool`.
pub fn allocate(t: &Trace, pool: &RegPool) -> Allocation {
    let n = t.insts.len();
    let end = interval_ends(t);
    // Calls that clobber every caller-saved register, and inline runtime calls, which
    // clobber only the argument registers (`RegPool::int_args`).
    let inline = |i: usize| crate::jit::backend::InlineCall::at(t, i).is_some();
    let calls: Vec<usize> = (0..n)
        .filter(|&i| t.insts[i].op.is_call() && !inline(i))
        .collect();
    let inline_calls: Vec<usize> = (0..n).filter(|&i| inline(i)).collect();
    // `hint[b] = a` for every PHI(a, b): `b` would like `a`'s register.
    let mut hint: Vec<Ref> = vec![NONE; n];
    for inst in t.insts.iter().filter(|i| i.op == Op::Phi) {
        if (inst.b as usize) < n {
            hint[inst.b as usize] = inst.a;
        }
    }
    // `want[r]`: the value whose register `r` would like. A PHI's right side wants its left
    // side's; an operand dying in an arithmetic instruction wants what the result wants (the
    // instruction then computes in place, in the register the chain ends in).
    let mut want = hint;
    for r in (0..n).rev() {
        let inst = t.insts[r];
        if want[r] == NONE || !inst.op.is_pure() {
            continue;
        }
        let commutes = matches!(inst.op, Op::AddI | Op::MulI | Op::AddF | Op::MulF);
        let ops = [Some(inst.a), commutes.then_some(inst.b)];
        for o in ops.into_iter().flatten() {
            let same =
                (o as usize) < r && (t.insts[o as usize].ty == Ty::Float) == (inst.ty == Ty::Float);
            if same && end[o as usize] == r && want[o as usize] == NONE {
                want[o as usize] = want[r];
                break;
            }
        }
    }
    let mut locs = vec![Loc::None; n];
    let mut spill_slots = 0u32;
    let set = |regs: &[u8]| regs.iter().fold(0u64, |m, &x| m | 1u64 << (x & 63));
    let (int_caller_set, int_callee_set) = (set(pool.int_caller), set(pool.int_callee));
    let (float_caller_set, float_callee_set) = (set(pool.float_caller), set(pool.float_callee));
    let args_set = set(pool.int_args);
    // Active intervals: (ref, register).
    let mut active: Vec<(usize, u8)> = Vec::new();
    for r in 0..n {
        let inst = t.insts[r];
        let hoisted_const = inst.op == Op::KFloat && end[r] > r;
        if !needs_location(inst.op, inst.ty) && !hoisted_const {
            continue;
        }
        active.retain(|&(a, _)| end[a] > r);
        // `calls` is sorted: the first call after `r` decides.
        let next_call = calls.get(calls.partition_point(|&c| c <= r));
        let crosses = next_call.is_some_and(|&c| c < end[r]);
        let next_inline = inline_calls.get(inline_calls.partition_point(|&c| c <= r));
        let float = inst.ty == Ty::Float;
        let crosses_inline = !float && next_inline.is_some_and(|&c| c < end[r]);
        let (caller, callee) = if float {
            (pool.float_caller, pool.float_callee)
        } else {
            (pool.int_caller, pool.int_callee)
        };
        let same_class = |a: usize| (t.insts[a].ty == Ty::Float) == float;
        // Registers of this class held by live intervals, one bit each.
        let held: u64 = active
            .iter()
            .filter(|&&(a, _)| same_class(a))
            .fold(0, |m, &(_, x)| m | 1u64 << (x & 63));
        let taken = |reg: u8| held & (1u64 << (reg & 63)) != 0;
        let (caller_set, callee_set) = if float {
            (float_caller_set, float_callee_set)
        } else {
            (int_caller_set, int_callee_set)
        };
        let caller_ok = if crosses { 0 } else { caller_set };
        let allowed_set = (callee_set | caller_ok) & !if crosses_inline { args_set } else { 0 };
        let allowed = |reg: u8| allowed_set & (1u64 << (reg & 63)) != 0;
        let candidates = caller
            .iter()
            .chain(callee.iter())
            .filter(move |&&reg| allowed_set & (1u64 << (reg & 63)) != 0);
        // Preferred, when free: the register of the PHI's left side this value replaces at
        // the back edge (no move there), else that of an operand dying here (a two-address
        // instruction then computes in place; `b` only if the operation commutes).
        let dying = |o: Ref| {
            (o != NONE && (o as usize) < r && end[o as usize] == r && same_class(o as usize))
                .then(|| locs[o as usize])
        };
        let commutes = matches!(inst.op, Op::AddI | Op::MulI | Op::AddF | Op::MulF);
        let preferred = [
            (want[r] != NONE).then(|| locs[want[r] as usize]),
            dying(inst.a),
            if commutes { dying(inst.b) } else { None },
        ];
        let avoid = if commutes { None } else { dying(inst.b) };
        let free = preferred
            .into_iter()
            .flatten()
            .find_map(|l| match l {
                Loc::Reg(x) if allowed(x) && !taken(x) => Some(x),
                _ => None,
            })
            .or_else(|| {
                let ok = |reg: u8| !taken(reg) && avoid != Some(Loc::Reg(reg));
                let mut cands = candidates.clone().copied();
                cands
                    .find(|&reg| ok(reg))
                    .or_else(|| candidates.copied().find(|&reg| !taken(reg)))
            });
        let reg = match free {
            Some(reg) => Some(reg),
            None if hoisted_const => continue,
            None => {
                // Steal from the same-class interval that ends last, if it ends after us.
                let victim = active
                    .iter()
                    .enumerate()
                    .filter(|(_, &(a, x))| {
                        same_class(a) && allowed(x) && end[a] > end[r] && !t.insts[a].op.is_const()
                    })
                    .max_by_key(|(_, &(a, _))| end[a])
                    .map(|(i, _)| i);
                victim.map(|i| {
                    let (a, x) = active.remove(i);
                    locs[a] = Loc::Spill(spill_slots);
                    spill_slots += 1;
                    x
                })
            }
        };
        match reg {
            Some(x) => {
                locs[r] = Loc::Reg(x);
                active.push((r, x));
            }
            None => {
                locs[r] = Loc::Spill(spill_slots);
                spill_slots += 1;
            }
        }
    }
    Allocation { locs, spill_slots }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jit::ir::{Op, TraceBuilder};
    use crate::jit::opt::optimize;

    const TINY: RegPool = RegPool {
        int_caller: &[1, 2],
        int_callee: &[3],
        float_caller: &[1],
        int_args: &[1],
        float_callee: &[],
    };

    /// Overlapping intervals never share a register; with too few registers values spill.
    #[test]
    fn overlapping_values_get_distinct_registers_or_spill() {
        let mut b = TraceBuilder::new(0);
        let vals: Vec<Ref> = (0..6).map(|s| b.slot(s, Ty::Int)).collect();
        let mut acc = vals[0];
        for &v in &vals[1..] {
            acc = b.op(Op::AddI, acc, v);
        }
        b.set_slot(0, acc);
        let t = optimize(&b.finish(0).unwrap()).unwrap();
        let a = allocate(&t, &TINY);
        let end = interval_ends(&t);
        for (x, &end_x) in end.iter().enumerate() {
            for y in x + 1..t.insts.len() {
                if let (Loc::Reg(p), Loc::Reg(q)) = (a.locs[x], a.locs[y]) {
                    let same = t.insts[x].ty == t.insts[y].ty;
                    let overlap = y < end_x;
                    assert!(!(same && overlap && p == q), "{x} and {y} share r{p}");
                }
            }
        }
        assert!(
            a.spill_slots > 0,
            "six live loads into three registers must spill"
        );
    }

    extern "C" fn add(a: i64, b: i64) -> i64 {
        a + b
    }

    /// A value live across a call lands in a callee-saved register or a spill slot.
    #[test]
    fn values_live_across_calls_avoid_caller_saved_registers() {
        let mut b = TraceBuilder::new(0);
        let x = b.slot(0, Ty::Int);
        let y = b.slot(1, Ty::Int);
        let z = b.slot(2, Ty::Int);
        let c = b.call(add, x, x);
        let s = b.op(Op::AddI, c, y);
        let s = b.op(Op::AddI, s, z);
        b.set_slot(3, s);
        let t = b.finish(0).unwrap();
        let a = allocate(&t, &TINY);
        for r in [y, z] {
            assert!(
                matches!(a.locs[r as usize], Loc::Reg(3) | Loc::Spill(_)),
                "{:?}",
                a.locs[r as usize]
            );
        }
    }

    #[test]
    fn values_live_across_an_inline_runtime_call_avoid_only_its_argument_registers() {
        // `put_element` is emitted inline (`backend::InlineCall`): it clobbers the argument
        // registers (1 in TINY) and keeps the others, so `y` and `z` may stay in caller-saved
        // register 2 or callee-saved 3, never in 1.
        let mut b = TraceBuilder::new(0);
        let x = b.slot(0, Ty::Int);
        let y = b.slot(1, Ty::Int);
        let z = b.slot(2, Ty::Int);
        let c = b.call(crate::jit::record::array::put_element, x, x);
        let s = b.op(Op::AddI, c, y);
        let s = b.op(Op::AddI, s, z);
        b.set_slot(3, s);
        let t = b.finish(0).unwrap();
        let a = allocate(&t, &TINY);
        let locs = [y, z].map(|r| a.locs[r as usize]);
        assert!(locs.iter().all(|l| *l != Loc::Reg(1)), "{locs:?}");
        assert!(
            locs.contains(&Loc::Reg(2)),
            "a caller-saved register is used: {locs:?}"
        );
    }

    /// `x = x * y + z` (floats): the product dies into the sum, which replaces `x` at the back
    /// edge; both land in `x`'s register, so the body computes in place and moves nothing.
    #[test]
    fn a_chain_into_a_phi_computes_in_the_phis_register() {
        const FLOATS: RegPool = RegPool {
            int_caller: &[1, 2],
            int_callee: &[],
            float_caller: &[1, 2, 3, 4, 5],
            float_callee: &[],
            int_args: &[1],
        };
        let mut b = TraceBuilder::new(0);
        let i = b.slot(0, Ty::Int);
        let n = b.slot(1, Ty::Int);
        b.guard(Op::Lt, i, n);
        let x = b.slot(2, Ty::Float);
        let y = b.slot(3, Ty::Float);
        let z = b.slot(4, Ty::Float);
        let t = b.op(Op::MulF, x, y);
        let s = b.op(Op::AddF, t, z);
        b.set_slot(2, s);
        let one = b.kint(1);
        let i2 = b.op(Op::AddI, i, one);
        b.set_slot(0, i2);
        let t = optimize(&b.finish(0).unwrap()).unwrap();
        let a = allocate(&t, &FLOATS);
        let l = t.loop_ref().unwrap() as usize;
        let phi = t
            .insts
            .iter()
            .find(|p| p.op == Op::Phi && t.ty(p.a) == Ty::Float)
            .unwrap();
        let body_mul = (l..t.insts.len())
            .find(|&r| t.insts[r].op == Op::MulF)
            .unwrap();
        let want = a.locs[phi.a as usize];
        assert!(matches!(want, Loc::Reg(_)), "{want:?}");
        assert_eq!(a.locs[phi.b as usize], want, "the sum");
        assert_eq!(a.locs[body_mul], want, "the product");
    }

    /// In `i += 1; sum += i`-style loops both PHIs share registers: no moves at the back edge.
    #[test]
    fn phi_operands_share_a_register_when_lifetimes_allow() {
        let mut b = TraceBuilder::new(0);
        let i = b.slot(0, Ty::Int);
        let n = b.slot(2, Ty::Int);
        b.guard(Op::Lt, i, n);
        let s = b.slot(1, Ty::Int);
        let s2 = b.op(Op::AddI, s, i);
        b.set_slot(1, s2);
        let one = b.kint(1);
        let i2 = b.op(Op::AddI, i, one);
        b.set_slot(0, i2);
        let t = optimize(&b.finish(0).unwrap()).unwrap();
        let a = allocate(&t, &TINY);
        let phis: Vec<_> = t.insts.iter().filter(|i| i.op == Op::Phi).collect();
        assert_eq!(phis.len(), 2);
        for p in phis {
            assert_eq!(a.locs[p.a as usize], a.locs[p.b as usize], "{p:?}");
        }
    }
}
