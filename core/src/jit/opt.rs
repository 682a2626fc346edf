//! The optimiser: constant folding, CSE, loop unrolling with invariant hoisting, PHIs, DCE.
//!
//! Glossary
//! - *emitter*: appends instructions to the optimised trace through one funnel, `Emitter::emit`,
//!   which first folds (constants, identities, guards that always hold) and then CSEs (an
//!   identical pure instruction or guard that already exists is reused). Every phase emits
//!   through it, so every phase folds and CSEs.
//! - *subst*: during unrolling, `subst[r]` is the ref that the body copy of pre-roll
//!   instruction `r` produced.
//!
//! How loop-invariant code motion falls out (LuaJIT's LOOP): the recorded iteration is emitted
//! once as the *pre-roll*, then emitted again as the *body*, with each `SLoad` of a slot the
//! iteration writes replaced by the ref the iteration left in that slot. A body instruction whose
//! operands are all invariant CSEs to its pre-roll twin and costs nothing in the loop. A pre-roll
//! ref the body uses means its previous-iteration value; where the body computes a new value for
//! it, a `PHI(pre, body)` carries it around the back edge. Values stay unboxed in registers
//! across iterations because slots are written only at exits.
//!
//! A *linked* trace (one ending in `Exit`, see [`crate::jit::ir`]) runs once: it gets the
//! folding/CSE pass and DCE but no LOOP, body or PHIs.
//!
//! Invariants
//! - output passes [`Trace::validate`]; each PHI joins two values of the same type (else the
//!   loop is type-unstable and compilation is refused).
//! - body snapshots name every slot the previous iteration wrote (the tail), so an exit from
//!   the body restores the full state; with [`optimize_purged`], a slot dead at the exit's pc
//!   (overwritten before it is read) gets a dead entry instead (the constant int 0, written
//!   only over a heap value).
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::jit::ir::{flags, Inst, IrError, Op, Ref, Trace, TraceBuilder, Ty, NONE, NO_SNAP};
use crate::jit::snapshot::{SnapEntry, Snapshot};

/// Why a trace could not be optimised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptError {
    /// The input (or, a bug, the output) is malformed.
    Ir(IrError),
    /// A slot holds different types at loop entry and at the back edge.
    TypeUnstable {
        /// The slot.
        slot: u32,
    },
    /// The trace already has a LOOP (optimised twice).
    AlreadyLooped,
}

impl From<IrError> for OptError {
    fn from(e: IrError) -> Self {
        OptError::Ir(e)
    }
}

type CseKey = (Op, Ty, Ref, Ref, i64);

/// The folding, CSE-ing instruction funnel.
struct Emitter {
    out: Trace,
    cse: BTreeMap<CseKey, Ref>,
    /// The trace writes no memory (no store, no call): its loads read values that stay put,
    /// so they CSE (and, in the body, hoist) like pure instructions.
    cse_loads: bool,
    /// The trace makes no call: heap object headers (`LdH`: array lengths and element
    /// pointers) stay put, element stores included.
    cse_headers: bool,
}

impl Emitter {
    fn push(&mut self, inst: Inst) -> Ref {
        self.out.insts.push(inst);
        (self.out.insts.len() - 1) as Ref
    }

    fn konst(&mut self, ty: Ty, bits: i64) -> Ref {
        let op = match ty {
            Ty::Float => Op::KFloat,
            Ty::Bool => Op::KBool,
            _ => Op::KInt,
        };
        let mut i = Inst::new(op, ty, NONE, NONE);
        i.imm = bits;
        self.emit(i, None)
    }

    fn const_of(&self, r: Ref) -> Option<i64> {
        let i = self.out.insts.get(r as usize)?;
        i.op.is_const().then_some(i.imm)
    }

    /// Emits `inst` (operands already in output refs); returns its ref, an equivalent older
    /// ref, or `NONE` for a guard that always holds.
    fn emit(&mut self, mut inst: Inst, snap: Option<Snapshot>) -> Ref {
        if inst.op.flags() & flags::COMM != 0
            && self.const_of(inst.a).is_some()
            && self.const_of(inst.b).is_none()
        {
            core::mem::swap(&mut inst.a, &mut inst.b);
        }
        if let Some(r) = self.fold(&inst) {
            return r;
        }
        // A guard with an effect (`Fuel`) is not a fact to reuse: each one charges.
        let effect = inst.op.flags() & flags::EFFECT != 0;
        let cse = inst.op.is_pure()
            || inst.op.is_const()
            || (inst.op.is_guard() && !effect)
            || (inst.op.is_load() && self.cse_loads)
            || (inst.op == Op::LdH && self.cse_headers);
        let key = (inst.op, inst.ty, inst.a, inst.b, inst.imm);
        if cse {
            if let Some(&r) = self.cse.get(&key) {
                return r;
            }
        }
        if let Some(s) = snap {
            self.out.snaps.push(s);
            inst.snap = (self.out.snaps.len() - 1) as u32;
        } else {
            inst.snap = NO_SNAP;
        }
        let r = self.push(inst);
        if cse {
            self.cse.insert(key, r);
        }
        r
    }

    /// Makes the entries of `s` for slots dead at its pc dead entries (see
    /// `jit/ir/snapshot.rs`) naming the constant int 0.
    fn purge(&mut self, s: &mut Snapshot, live: &dyn Fn(u32, u32) -> bool) {
        let pc = s.pc;
        for i in 0..s.entries.len() {
            if !live(pc, s.entries[i].slot) {
                s.entries[i].val = self.konst(Ty::Int, 0);
                s.entries[i].dead = true;
            }
        }
    }

    /// Constant folding and algebraic identities. `Some(ref)` replaces the instruction.
    fn fold(&mut self, inst: &Inst) -> Option<Ref> {
        let (ka, kb) = (self.const_of(inst.a), self.const_of(inst.b));
        let f = |x: i64| f64::from_bits(x as u64);
        let fk = |v: f64| v.to_bits() as i64;
        match (inst.op, ka, kb) {
            (Op::AddI, Some(x), Some(y)) => Some(self.konst(Ty::Int, x.wrapping_add(y))),
            (Op::SubI, Some(x), Some(y)) => Some(self.konst(Ty::Int, x.wrapping_sub(y))),
            (Op::MulI, Some(x), Some(y)) => Some(self.konst(Ty::Int, x.wrapping_mul(y))),
            (Op::DivIK, Some(x), Some(y)) if y != 0 => Some(self.konst(Ty::Int, x.wrapping_div(y))),
            (Op::ModIK, Some(x), Some(y)) if y != 0 => Some(self.konst(Ty::Int, x.wrapping_rem(y))),
            (Op::AddF, Some(x), Some(y)) => Some(self.konst(Ty::Float, fk(f(x) + f(y)))),
            (Op::SubF, Some(x), Some(y)) => Some(self.konst(Ty::Float, fk(f(x) - f(y)))),
            (Op::MulF, Some(x), Some(y)) => Some(self.konst(Ty::Float, fk(f(x) * f(y)))),
            (Op::DivF, Some(x), Some(y)) => Some(self.konst(Ty::Float, fk(f(x) / f(y)))),
            (Op::ToFloat, Some(x), _) => Some(self.konst(Ty::Float, fk(x as f64))),
            (Op::NotB, Some(x), _) => Some(self.konst(Ty::Bool, (x == 0) as i64)),
            (Op::NotB, None, _) if self.out.inst(inst.a).op == Op::NotB => {
                Some(self.out.inst(inst.a).a)
            }
            (Op::AddI | Op::SubI, _, Some(0)) | (Op::MulI, _, Some(1)) => Some(inst.a),
            (Op::MulI, _, Some(0)) => Some(inst.b),
            (Op::SubI, _, _) if inst.a == inst.b => Some(self.konst(Ty::Int, 0)),
            (op, Some(x), Some(y)) if op.is_guard() && op != Op::SLoad => {
                let ord = match self.out.ty(inst.a) {
                    Ty::Float => f(x).partial_cmp(&f(y)),
                    _ if op == Op::ULt => Some((x as u64).cmp(&(y as u64))),
                    _ => Some(x.cmp(&y)),
                };
                // A guard that always fails stays: the trace then always exits there.
                op.compare_holds(ord).then_some(NONE)
            }
            (Op::Eq | Op::Le | Op::Ge, _, _)
                if inst.a == inst.b && self.out.ty(inst.a) == Ty::Int =>
            {
                Some(NONE)
            }
            _ => None,
        }
    }
}

/// Optimises a recorded trace into `pre-roll, LOOP, body, PHIs`.
pub fn optimize(rec: &Trace) -> Result<Trace, OptError> {
    optimize_purged(rec, &|_, _| true)
}

/// [`optimize`], with every snapshot entry for a slot that `live(pc, slot)` says the
/// interpreter, resuming at the snapshot's `pc`, overwrites before it reads (see
/// [`crate::jit::live`]) a dead entry naming the constant int 0 instead: nothing keeps such a
/// value in a register, or carries it around the back edge in a PHI, for an exit that would
/// never read it. The exit writes the entry only over a heap value (released where the
/// interpreter would have released it); a number stays as it is, at no cost.
pub fn optimize_purged(rec: &Trace, live: &dyn Fn(u32, u32) -> bool) -> Result<Trace, OptError> {
    rec.validate()?;
    if rec.loop_ref().is_some() {
        return Err(OptError::AlreadyLooped);
    }
    let mut em = Emitter {
        out: Trace {
            calls: rec.calls.clone(),
            keep: rec.keep.clone(),
            ..Trace::default()
        },
        cse: BTreeMap::new(),
        cse_loads: !rec.insts.iter().any(|i| i.op.writes_memory()),
        cse_headers: !rec.insts.iter().any(|i| i.op.is_call()),
    };
    // Pass 1: the pre-roll, folded and CSE'd.
    let mut map: Vec<Ref> = Vec::with_capacity(rec.insts.len());
    for inst in &rec.insts {
        let mut i = *inst;
        i.a = remap(&map, i.a);
        i.b = remap(&map, i.b);
        let snap = (i.snap != NO_SNAP).then(|| {
            let mut s = rec.snaps[i.snap as usize].map(|r| remap(&map, r));
            em.purge(&mut s, live);
            s
        });
        map.push(em.emit(i, snap));
    }
    let tail = rec.tail.map(|r| remap(&map, r));
    em.out.tail = tail.clone();
    if !TraceBuilder::is_linked(rec) {
        unroll(&mut em, &tail, live)?;
    }
    let mut out = em.out;
    eliminate_dead_code(&mut out);
    out.validate()?;
    Ok(out)
}

/// Optimises a trace that does not loop (a function trace, which ends in `Exit`): folding,
/// CSE and dead-code elimination in one pass, no unrolling.
pub fn optimize_linear(rec: &Trace) -> Result<Trace, OptError> {
    rec.validate()?;
    if rec.loop_ref().is_some() {
        return Err(OptError::AlreadyLooped);
    }
    let mut em = Emitter {
        out: Trace {
            calls: rec.calls.clone(),
            keep: rec.keep.clone(),
            ..Trace::default()
        },
        cse: BTreeMap::new(),
        cse_loads: !rec.insts.iter().any(|i| i.op.writes_memory()),
        cse_headers: !rec.insts.iter().any(|i| i.op.is_call()),
    };
    let mut map: Vec<Ref> = Vec::with_capacity(rec.insts.len());
    for inst in &rec.insts {
        let mut i = *inst;
        i.a = remap(&map, i.a);
        i.b = remap(&map, i.b);
        let snap = (i.snap != NO_SNAP).then(|| rec.snaps[i.snap as usize].map(|r| remap(&map, r)));
        map.push(em.emit(i, snap));
    }
    let mut out = em.out;
    eliminate_dead_code(&mut out);
    out.validate()?;
    Ok(out)
}

fn remap(map: &[Ref], r: Ref) -> Ref {
    if r == NONE {
        NONE
    } else {
        map[r as usize]
    }
}

/// Pass 2: LOOP marker, the body copy, and the PHIs.
fn unroll(
    em: &mut Emitter,
    tail: &Snapshot,
    live: &dyn Fn(u32, u32) -> bool,
) -> Result<(), OptError> {
    let pre_len = em.out.insts.len();
    let loop_ref = em.push(Inst::new(Op::Loop, Ty::Void, NONE, NONE));
    let mut subst: Vec<Ref> = (0..pre_len as Ref).collect();
    for r in 0..pre_len {
        let inst = em.out.insts[r];
        let new = match inst.op {
            Op::Nop | Op::KInt | Op::KFloat | Op::KBool => r as Ref,
            // A heap object's slot is read once, before the loop: the iteration must not
            // write it.
            Op::SLoadT => match inst.op.slot_of(inst.imm).and_then(|s| tail.get(s)) {
                Some(_) => {
                    return Err(OptError::TypeUnstable {
                        slot: inst.op.slot_of(inst.imm).unwrap_or(0),
                    })
                }
                None => r as Ref,
            },
            Op::SLoad => match tail.get(inst.imm as u32) {
                Some(t) if em.out.ty(t) != inst.ty => {
                    return Err(OptError::TypeUnstable {
                        slot: inst.imm as u32,
                    })
                }
                Some(t) => t,
                None => r as Ref,
            },
            _ => {
                let mut i = inst;
                i.a = remap(&subst, i.a);
                i.b = remap(&subst, i.b);
                let snap = (i.snap != NO_SNAP).then(|| {
                    let mut s = body_snapshot(&em.out.snaps[i.snap as usize], tail, &subst);
                    em.purge(&mut s, live);
                    s
                });
                em.emit(i, snap)
            }
        };
        subst[r] = new;
    }
    add_phis(em, loop_ref, &subst)
}

/// A body guard's snapshot: the tail's slots (previous iteration), overlaid with the guard's
/// own entries translated into body refs.
fn body_snapshot(own: &Snapshot, tail: &Snapshot, subst: &[Ref]) -> Snapshot {
    // Both entry lists are sorted by slot: one merge, the guard's own entry winning.
    let (a, b) = (&tail.entries, &own.entries);
    let mut entries = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let take_own = j < b.len() && (i == a.len() || b[j].slot <= a[i].slot);
        if take_own {
            if i < a.len() && a[i].slot == b[j].slot {
                i += 1;
            }
            entries.push(SnapEntry {
                val: remap(subst, b[j].val),
                ..b[j]
            });
            j += 1;
        } else {
            entries.push(a[i]);
            i += 1;
        }
    }
    Snapshot {
        pc: own.pc,
        entries,
    }
}

/// Adds `PHI(r, subst[r])` for every pre-roll value the body uses whose body value differs.
fn add_phis(em: &mut Emitter, loop_ref: Ref, subst: &[Ref]) -> Result<(), OptError> {
    let mut work: Vec<Ref> = Vec::new();
    for inst in &em.out.insts[loop_ref as usize + 1..] {
        work.extend([inst.a, inst.b]);
        if inst.snap != NO_SNAP {
            work.extend(
                em.out.snaps[inst.snap as usize]
                    .entries
                    .iter()
                    .map(|e| e.val),
            );
        }
    }
    let mut done = alloc::vec![false; loop_ref as usize];
    let mut phis: Vec<(Ref, Ref)> = Vec::new();
    while let Some(r) = work.pop() {
        if r == NONE || r >= loop_ref || done[r as usize] {
            continue;
        }
        done[r as usize] = true;
        let body = subst[r as usize];
        if body != r && !em.out.inst(r).op.is_const() {
            if em.out.ty(r) != em.out.ty(body) {
                let slot = em.out.inst(r).imm as u32;
                return Err(OptError::TypeUnstable { slot });
            }
            phis.push((r, body));
            work.push(body);
        }
    }
    phis.sort_unstable();
    for (a, b) in phis {
        em.push(Inst::new(Op::Phi, Ty::Void, a, b));
    }
    Ok(())
}

/// Turns pure instructions nobody uses into `Nop`.
fn eliminate_dead_code(t: &mut Trace) {
    let n = t.insts.len();
    let mut live = alloc::vec![false; n];
    for r in (0..n).rev() {
        let inst = t.insts[r];
        let root = !inst.op.is_pure() && !inst.op.is_const();
        if !(root || live[r]) {
            continue;
        }
        live[r] = true;
        for o in [inst.a, inst.b] {
            if o != NONE && (o as usize) < n {
                live[o as usize] = true;
            }
        }
        if inst.snap != NO_SNAP {
            for e in &t.snaps[inst.snap as usize].entries {
                live[e.val as usize] = true;
            }
        }
    }
    for (r, inst) in t.insts.iter_mut().enumerate() {
        if !live[r] && (inst.op.is_pure() || inst.op.is_const()) {
            *inst = Inst::new(Op::Nop, Ty::Void, NONE, NONE);
        }
    }
    // The tail is not code: native code never writes it (body exits carry their own copies).
    // A slot the iteration overwrites before every exit names a value no exit reads, which
    // is now a `Nop`; drop that entry rather than keep dead code alive for it.
    t.tail.entries.retain(|e| live[e.val as usize]);
}

/// `while i < n { t = i * 2; i = i + 1 }` as recorded: slot 0 `i`, slot 1 `t` (written,
/// never read: dead at every exit's pc), slot 2 `n`. Shared by the tests of the passes that
/// treat dead slots.
#[cfg(test)]
pub(crate) fn dead_temp_loop() -> Trace {
    let mut b = TraceBuilder::new(0);
    let i = b.slot(0, Ty::Int);
    let n = b.slot(2, Ty::Int);
    b.guard(Op::Lt, i, n);
    let two = b.kint(2);
    let t = b.op(Op::MulI, i, two);
    b.set_slot(1, t);
    let one = b.kint(1);
    let i2 = b.op(Op::AddI, i, one);
    b.set_slot(0, i2);
    b.finish(0).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `while i < n { t = i * 2; i = i + 1 }`: slot 1 (`t`) is only ever in snapshots. Kept,
    /// it needs a PHI around the back edge; dead at every exit's pc, every snapshot names the
    /// constant 0 for it and the PHI goes, while `i`'s stays.
    #[test]
    fn purged_dead_slots_leave_snapshots_and_need_no_phi() {
        let rec = dead_temp_loop();
        let phis = |t: &Trace| t.insts.iter().filter(|i| i.op == Op::Phi).count();
        let names = |t: &Trace, slot| {
            t.snaps
                .iter()
                .any(|s| s.get(slot).is_some_and(|r| !t.inst(r).op.is_const()))
        };

        let kept = optimize(&rec).unwrap();
        assert_eq!(phis(&kept), 2, "{:?}", kept.insts);
        assert!(names(&kept, 1));

        let purged = optimize_purged(&rec, &|_, slot| slot != 1).unwrap();
        assert_eq!(phis(&purged), 1, "{:?}", purged.insts);
        assert!(!names(&purged, 1));
        assert!(
            purged.snaps.iter().any(|s| s.get(1).is_some()),
            "the exits still write t"
        );
        let zero = |s: &Snapshot| s.get(1).map(|r| *purged.inst(r));
        assert!(purged
            .snaps
            .iter()
            .filter_map(zero)
            .all(|k| k.op == Op::KInt && k.imm == 0));
        assert!(
            names(&purged, 0),
            "the counter stays in the body's snapshots"
        );
        let entries = purged.snaps.iter().flat_map(|s| s.entries.iter());
        assert!(
            entries.clone().all(|e| e.dead == (e.slot == 1)),
            "t's entries, and only they, are dead: {:?}",
            purged.snaps
        );
        assert!(kept.snaps.iter().all(|s| s.entries.iter().all(|e| !e.dead)));
    }
}
