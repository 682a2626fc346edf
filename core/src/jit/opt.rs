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
//! - snapshot chains keep their shape (see `jit/ir/snapshot.rs`): a recorded delta
//!   snapshot becomes a delta of its parent's copy; a body snapshot is a delta of the body copy
//!   of its pre-roll parent, and the body copy of a full pre-roll snapshot is full (the tail,
//!   the previous iteration's slots, overlaid with its entries). Snapshots are copied when a
//!   kept guard needs them (and for their parents), one per guard, so the passes cost
//!   `O(own entries)`. Purging compares a delta with what its parents' exits write: a slot
//!   dead here but written by a parent gets a dead entry, a slot live here but dead where a
//!   parent exits gets its value back (from the parents' entries before purging).
//!
//! ```text
//!   pre-roll:  s0 full  <- s1 <- s2        (deltas as recorded)
//!   body:      s0' full <- s1' <- s2'      (s' = s with refs through subst; s0' over the tail)
//! ```
use core::hash::{BuildHasherDefault, Hasher};

use alloc::vec::Vec;
use hashbrown::HashMap;

use crate::jit::ir::{flags, Inst, IrError, Op, Ref, Trace, TraceBuilder, Ty, NONE, NO_SNAP};
use crate::jit::snapshot::{SnapEntry, Snapshot};

/// Marks `slot` in `seen` with `stamp`; whether it was not marked before.
fn mark(seen: &mut Vec<u32>, stamp: u32, slot: u32) -> bool {
    let i = slot as usize;
    if i >= seen.len() {
        seen.resize(i + 1, 0);
    }
    let first = seen[i] != stamp;
    seen[i] = stamp;
    first
}

/// `vals[slot] = val`, growing `vals` as needed.
fn set_at(vals: &mut Vec<Ref>, slot: u32, val: Ref) {
    let i = slot as usize;
    if i >= vals.len() {
        vals.resize(i + 1, NONE);
    }
    vals[i] = val;
}

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

// Bounds checks on a loop counter leave the loop body (the unroll pass calls it).
mod bounds;
mod front;
use bounds::hoist_counter_bounds;
pub(crate) use front::loads_first;

type CseKey = (Op, Ty, Ref, Ref, i64);

/// A multiply-rotate hash (FxHash's) for CSE keys: a few small integers, hashed once per
/// emitted instruction; a fixed function, so compilation is deterministic.
#[derive(Default)]
struct CseHasher(u64);

impl Hasher for CseHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }

    fn write_u8(&mut self, x: u8) {
        self.write_u64(x as u64);
    }

    fn write_u32(&mut self, x: u32) {
        self.write_u64(x as u64);
    }

    fn write_i64(&mut self, x: i64) {
        self.write_u64(x as u64);
    }

    fn write_isize(&mut self, x: isize) {
        self.write_u64(x as u64);
    }

    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// `live(pc, slot)`: whether the interpreter, resuming at `pc`, may read `slot` before it
/// writes it; `None` keeps every snapshot entry.
type Live<'a> = Option<&'a dyn Fn(u32, u32) -> bool>;

/// The folding, CSE-ing instruction funnel.
struct Emitter {
    out: Trace,
    /// Which slots a purge walk has seen in the parents' entries as exits write them, and in
    /// their entries before purging, stamped with `stamp` (indexed by slot).
    seen: Vec<u32>,
    real_seen: Vec<u32>,
    /// Per slot, the value the parents' entries before purging name (valid where
    /// `real_seen` has the current stamp).
    real_val: Vec<Ref>,
    stamp: u32,
    /// Per output snapshot, its own entries before purging (empty without purging).
    raw: Vec<Vec<SnapEntry>>,
    /// Per output snapshot, whether an instruction exits through it.
    claimed: Vec<bool>,
    cse: HashMap<CseKey, Ref, BuildHasherDefault<CseHasher>>,
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

    fn new(rec: &Trace) -> Emitter {
        Emitter {
            out: Trace {
                calls: rec.calls.clone(),
                keep: rec.keep.clone(),
                ..Trace::default()
            },
            seen: Vec::new(),
            real_seen: Vec::new(),
            real_val: Vec::new(),
            stamp: 0,
            raw: Vec::new(),
            claimed: Vec::new(),
            cse: HashMap::default(),
            cse_loads: !rec.insts.iter().any(|i| i.op.writes_memory()),
            cse_headers: !rec.insts.iter().any(|i| i.op.is_call()),
        }
    }

    fn konst(&mut self, ty: Ty, bits: i64) -> Ref {
        let op = match ty {
            Ty::Float => Op::KFloat,
            Ty::Bool => Op::KBool,
            _ => Op::KInt,
        };
        let mut i = Inst::new(op, ty, NONE, NONE);
        i.imm = bits;
        self.emit(i)
    }

    /// Emits an instruction that has no snapshot.
    fn emit(&mut self, inst: Inst) -> Ref {
        self.emit_with(inst, |_| NO_SNAP)
    }

    fn const_of(&self, r: Ref) -> Option<i64> {
        let i = self.out.insts.get(r as usize)?;
        i.op.is_const().then_some(i.imm)
    }

    /// Emits `inst` (operands already in output refs); returns its ref, an equivalent older
    /// ref, or `NONE` for a guard that always holds. `snap` makes the instruction's output
    /// snapshot (or returns `NO_SNAP`); it runs only when the instruction is kept.
    fn emit_with(&mut self, mut inst: Inst, snap: impl FnOnce(&mut Self) -> u32) -> Ref {
        if inst.op.flags() & flags::COMM != 0
            && self.const_of(inst.a).is_some()
            && self.const_of(inst.b).is_none()
        {
            core::mem::swap(&mut inst.a, &mut inst.b);
        }
        if inst.op == Op::MulF && self.const_of(inst.b) == Some(2.0f64.to_bits() as i64) {
            // `x * 2.0` is `x + x` bit for bit (NaN, infinities and signed zeros included),
            // and an add has half a multiply's latency on current cores: it shortens float
            // recurrences such as mandelbrot's `2.0 * zr * zi`.
            inst.op = Op::AddF;
            inst.b = inst.a;
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
        inst.snap = snap(self);
        let r = self.push(inst);
        if cse {
            self.cse.insert(key, r);
        }
        r
    }

    /// Appends `s` (its parent, if any, already in the output) to the output's snapshots,
    /// with the slots dead at its pc turned into dead entries (see `jit/ir/snapshot.rs`)
    /// naming the constant int 0: its own entries, and a dead override for each live entry
    /// it inherits from its parents.
    /// Snapshot `n` for an instruction to exit through, or a copy of it when another
    /// instruction already does: each guard owns its snapshot, as it did when recorded
    /// (a `Fuel` that owns its snapshot charges before it tests, see `fuel_refunds`).
    fn own_snapshot(&mut self, n: u32) -> u32 {
        let i = n as usize;
        self.claimed.resize(self.out.snaps.len(), false);
        if !self.claimed[i] {
            self.claimed[i] = true;
            return n;
        }
        let copy = self.out.snaps[i].clone();
        let raw = self.raw[i].clone();
        self.out.snaps.push(copy);
        self.raw.push(raw);
        self.claimed.push(true);
        (self.out.snaps.len() - 1) as u32
    }

    fn push_snapshot(&mut self, mut s: Snapshot, live: Live) -> u32 {
        let Some(live) = live else {
            self.out.snaps.push(s);
            self.raw.push(Vec::new());
            return (self.out.snaps.len() - 1) as u32;
        };
        let raw = s.entries.clone();
        let pc = s.pc;
        self.stamp = self.stamp.wrapping_add(1);
        if self.stamp == 0 {
            self.seen.iter_mut().for_each(|x| *x = 0);
            self.real_seen.iter_mut().for_each(|x| *x = 0);
            self.stamp = 1;
        }
        for i in 0..s.entries.len() {
            let e = s.entries[i];
            mark(&mut self.seen, self.stamp, e.slot);
            mark(&mut self.real_seen, self.stamp, e.slot);
            if e.val != NONE && !live(pc, e.slot) {
                s.entries[i].val = self.konst(Ty::Int, 0);
                s.entries[i].dead = true;
            }
        }
        // What the parents' exits write for each inherited slot (their purged entries), and
        // the value the slot really holds (their entries before purging): a slot dead where a
        // parent exits may be live here, and the other way round.
        let mut inherited: Vec<SnapEntry> = Vec::new();
        let mut at = s.parent;
        while at != NO_SNAP {
            let a = at as usize;
            for i in 0..self.out.snaps[a].entries.len() {
                let e = self.out.snaps[a].entries[i];
                if mark(&mut self.seen, self.stamp, e.slot) && e.val != NONE {
                    inherited.push(e);
                }
            }
            for i in 0..self.raw[a].len() {
                let e = self.raw[a][i];
                if mark(&mut self.real_seen, self.stamp, e.slot) {
                    set_at(&mut self.real_val, e.slot, e.val);
                }
            }
            at = self.out.snaps[a].parent;
        }
        let mut changed = false;
        for e in inherited {
            let wanted = live(pc, e.slot);
            if wanted && e.dead {
                // A dead entry of a parent always stands over a real one further up.
                let real = self.real_val.get(e.slot as usize).copied().unwrap_or(NONE);
                s.entries.push(if real == NONE {
                    Snapshot::tombstone(e.slot)
                } else {
                    SnapEntry {
                        slot: e.slot,
                        val: real,
                        dead: false,
                    }
                });
                changed = true;
            } else if !wanted && !e.dead {
                let zero = self.konst(Ty::Int, 0);
                s.entries.push(SnapEntry {
                    slot: e.slot,
                    val: zero,
                    dead: true,
                });
                changed = true;
            }
        }
        if changed {
            s.entries.sort_unstable_by_key(|e| e.slot);
        }
        self.out.snaps.push(s);
        self.raw.push(raw);
        (self.out.snaps.len() - 1) as u32
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
    optimize_with(rec, None)
}

/// [`optimize`], with every snapshot entry for a slot that `live(pc, slot)` says the
/// interpreter, resuming at the snapshot's `pc`, overwrites before it reads (see
/// [`crate::jit::live`]) a dead entry naming the constant int 0 instead: nothing keeps such a
/// value in a register, or carries it around the back edge in a PHI, for an exit that would
/// never read it. The exit writes the entry only over a heap value (released where the
/// interpreter would have released it); a number stays as it is, at no cost.
pub fn optimize_purged(rec: &Trace, live: &dyn Fn(u32, u32) -> bool) -> Result<Trace, OptError> {
    optimize_with(rec, Some(live))
}

/// [`optimize_purged`] when `live` is given, else [`optimize`].
pub(crate) fn optimize_with(rec: &Trace, live: Live) -> Result<Trace, OptError> {
    rec.validate()?;
    if rec.loop_ref().is_some() {
        return Err(OptError::AlreadyLooped);
    }
    let mut em = Emitter::new(rec);
    // Pass 1: the pre-roll, folded and CSE'd.
    let map = pre_roll(&mut em, rec, live);
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
    let mut em = Emitter::new(rec);
    pre_roll(&mut em, rec, None);
    let mut out = em.out;
    eliminate_dead_code(&mut out);
    out.validate()?;
    Ok(out)
}

/// Emits every recorded instruction through the emitter; returns the map from recorded refs
/// to output refs.
fn pre_roll(em: &mut Emitter, rec: &Trace, live: Live) -> Vec<Ref> {
    let mut map: Vec<Ref> = Vec::with_capacity(rec.insts.len());
    // Recorded snapshot -> its output copy (made when a kept guard first needs it).
    let mut copies: Vec<u32> = alloc::vec![NO_SNAP; rec.snaps.len()];
    for inst in &rec.insts {
        let mut i = *inst;
        i.a = remap(&map, i.a);
        i.b = remap(&map, i.b);
        let rs = i.snap;
        let r = em.emit_with(i, |em| {
            if rs == NO_SNAP {
                NO_SNAP
            } else {
                let n = copy_snapshot(em, rec, rs, &map, &mut copies, live);
                em.own_snapshot(n)
            }
        });
        map.push(r);
    }
    map
}

/// The output copy of recorded snapshot `rs` (and of its parents first), refs through `map`.
fn copy_snapshot(
    em: &mut Emitter,
    rec: &Trace,
    rs: u32,
    map: &[Ref],
    copies: &mut [u32],
    live: Live,
) -> u32 {
    if copies[rs as usize] != NO_SNAP {
        return copies[rs as usize];
    }
    let src = &rec.snaps[rs as usize];
    let parent = if src.is_delta() {
        copy_snapshot(em, rec, src.parent, map, copies, live)
    } else {
        NO_SNAP
    };
    let mut copy = src.map(|r| remap(map, r));
    copy.parent = parent;
    let n = em.push_snapshot(copy, live);
    copies[rs as usize] = n;
    n
}

fn remap(map: &[Ref], r: Ref) -> Ref {
    if r == NONE {
        NONE
    } else {
        map[r as usize]
    }
}

/// Pass 2: LOOP marker, the body copy, and the PHIs.
fn unroll(em: &mut Emitter, tail: &Snapshot, live: Live) -> Result<(), OptError> {
    let implied = hoist_counter_bounds(em, tail, live);
    let pre_len = em.out.insts.len();
    let loop_ref = em.push(Inst::new(Op::Loop, Ty::Void, NONE, NONE));
    let mut subst: Vec<Ref> = (0..pre_len as Ref).collect();
    // Per pre-roll snapshot, its body copy.
    let mut body_copies: Vec<u32> = alloc::vec![NO_SNAP; em.out.snaps.len()];
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
            // A bounds check the loop guard and a check before LOOP imply (see
            // `hoist_counter_bounds`): the body has none.
            Op::ULt if implied.contains(&(r as Ref)) => NONE,
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
                let ps = i.snap;
                em.emit_with(i, |em| {
                    if ps == NO_SNAP {
                        NO_SNAP
                    } else {
                        let n = body_snapshot(em, ps, tail, &subst, &mut body_copies, live);
                        em.own_snapshot(n)
                    }
                })
            }
        };
        subst[r] = new;
    }
    add_phis(em, loop_ref, &subst)
}

/// The body copy of pre-roll snapshot `ps` (and of its parents first), with the snapshot's
/// own entries translated into body refs: a delta of its parent's body copy, or for a full
/// snapshot a full one, the tail (the previous iteration's slots) overlaid with its entries.
/// A tombstone takes the tail's entry for its slot (the slot holds what the previous
/// iteration left there).
fn body_snapshot(
    em: &mut Emitter,
    ps: u32,
    tail: &Snapshot,
    subst: &[Ref],
    copies: &mut [u32],
    live: Live,
) -> u32 {
    if copies[ps as usize] != NO_SNAP {
        return copies[ps as usize];
    }
    let src = &em.out.snaps[ps as usize];
    let (pc, src_parent) = (src.pc, src.parent);
    // The entries before purging: the body copy purges itself against its own parents.
    let own = match em.raw.get(ps as usize) {
        Some(raw) if live.is_some() => raw,
        _ => &src.entries,
    };
    let entries: Vec<SnapEntry> = own
        .iter()
        .map(|e| match (e.val, tail.get(e.slot)) {
            (NONE, Some(val)) => SnapEntry {
                slot: e.slot,
                val,
                dead: false,
            },
            (NONE, None) => *e,
            (val, _) => SnapEntry {
                val: remap(subst, val),
                ..*e
            },
        })
        .collect();
    let (parent, entries) = if src_parent == NO_SNAP {
        (NO_SNAP, over_tail(tail, entries))
    } else {
        let parent = body_snapshot(em, src_parent, tail, subst, copies, live);
        (parent, entries)
    };
    let n = em.push_snapshot(
        Snapshot {
            pc,
            entries,
            parent,
        },
        live,
    );
    copies[ps as usize] = n;
    n
}

/// The tail's entries overlaid with `own` (both sorted by slot; `own` wins).
fn over_tail(tail: &Snapshot, own: Vec<SnapEntry>) -> Vec<SnapEntry> {
    let (a, b) = (&tail.entries, &own);
    let mut entries = Vec::with_capacity(a.len() + b.len());
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        let take_own = j < b.len() && (i == a.len() || b[j].slot <= a[i].slot);
        if take_own {
            if i < a.len() && a[i].slot == b[j].slot {
                i += 1;
            }
            // A full snapshot has no tombstones (translated ones took the tail's entry).
            if b[j].val != NONE {
                entries.push(b[j]);
            }
            j += 1;
        } else {
            entries.push(a[i]);
            i += 1;
        }
    }
    entries
}

/// Calls `visit(entry)` for every entry of snapshot `s` and of its parents not visited yet
/// (`done`, one flag per snapshot), so a pass over the snapshots of many guards reads each
/// snapshot's own entries once.
fn for_each_inherited(
    snaps: &[Snapshot],
    mut s: u32,
    done: &mut [bool],
    mut visit: impl FnMut(&SnapEntry),
) {
    while s != NO_SNAP && !done[s as usize] {
        done[s as usize] = true;
        snaps[s as usize].entries.iter().for_each(&mut visit);
        s = snaps[s as usize].parent;
    }
}

/// Adds `PHI(r, subst[r])` for every pre-roll value the body uses whose body value differs.
fn add_phis(em: &mut Emitter, loop_ref: Ref, subst: &[Ref]) -> Result<(), OptError> {
    let mut work: Vec<Ref> = Vec::new();
    let mut done_snaps = alloc::vec![false; em.out.snaps.len()];
    for inst in &em.out.insts[loop_ref as usize + 1..] {
        work.extend([inst.a, inst.b]);
        for_each_inherited(&em.out.snaps, inst.snap, &mut done_snaps, |e| {
            work.push(e.val)
        });
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

/// Turns pure instructions nobody uses into `Nop`, and empties the snapshots no kept guard
/// exits through (directly or as a parent).
fn eliminate_dead_code(t: &mut Trace) {
    let n = t.insts.len();
    let mut live = alloc::vec![false; n];
    let mut used_snaps = alloc::vec![false; t.snaps.len()];
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
        for_each_inherited(&t.snaps, inst.snap, &mut used_snaps, |e| {
            if let Some(l) = live.get_mut(e.val as usize) {
                *l = true;
            }
        });
    }
    for (r, inst) in t.insts.iter_mut().enumerate() {
        if !live[r] && (inst.op.is_pure() || inst.op.is_const()) {
            *inst = Inst::new(Op::Nop, Ty::Void, NONE, NONE);
        }
    }
    for (s, used) in t.snaps.iter_mut().zip(used_snaps) {
        if !used {
            *s = Snapshot::full(s.pc, Vec::new());
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

    /// `while k < n { s = s + a[k]; k = k + 1 }` with `step` as the counter's increment: the
    /// array and the limit are loop-invariant. A step of 1 leaves the body without a bounds
    /// check and puts one guard `n <= len` before LOOP that exits at the loop header with the
    /// state after the first iteration; any other step keeps the check in the body.
    /// A slot written early, dead where the first guard after it exits and live where the
    /// next one exits: the second guard's snapshot is a delta of the first, and its exit
    /// writes the slot's real value, not the first exit's dead entry.
    #[test]
    fn a_slot_dead_at_one_exit_and_live_at_the_next_keeps_its_value() {
        let mut b = TraceBuilder::new(0);
        let i = b.slot(0, Ty::Int);
        let n = b.slot(2, Ty::Int);
        let one = b.kint(1);
        let t = b.op(Op::AddI, i, one);
        b.set_slot(1, t);
        b.at_pc(5);
        b.guard(Op::Lt, i, n);
        b.set_slot(3, t);
        b.at_pc(9);
        b.guard(Op::Lt, t, n);
        b.set_slot(0, t);
        let rec = b.finish(0).unwrap();
        assert!(rec.snaps.iter().any(|s| s.is_delta()), "{:?}", rec.snaps);
        // Slot 1 is dead at pc 5 only.
        let t = optimize_purged(&rec, &|pc, slot| !(pc == 5 && slot == 1)).unwrap();
        let mut checked = 0;
        for (n, exited) in t.exited_snapshots().into_iter().enumerate() {
            let s = t.resolved(n as u32);
            if !exited || s.pc != 9 {
                continue;
            }
            let e = s
                .entries
                .iter()
                .find(|e| e.slot == 1)
                .expect("slot 1 at pc 9");
            assert!(!e.dead && !t.inst(e.val).op.is_const(), "{s:?}");
            checked += 1;
        }
        assert_eq!(checked, 2, "the pre-roll and the body exit at pc 9");
    }

    /// Snapshots of a long trace are deltas: their own entries grow linearly with the number
    /// of guards, not with guards times written slots, before and after optimisation; every
    /// resolved snapshot still names every slot written before its guard.
    #[test]
    fn snapshot_entries_grow_linearly_with_the_trace() {
        let count = 200u32;
        let mut b = TraceBuilder::new(0);
        let i = b.slot(0, Ty::Int);
        let n = b.slot(count, Ty::Int);
        b.guard(Op::Lt, i, n);
        for s in 1..count {
            let k = b.kint(s as i64);
            let v = b.op(Op::AddI, i, k);
            b.guard(Op::Ne, v, n);
            b.set_slot(s, v);
        }
        let one = b.kint(1);
        let i2 = b.op(Op::AddI, i, one);
        b.set_slot(0, i2);
        let rec = b.finish(0).unwrap();
        let own = |t: &Trace| t.snaps.iter().map(|s| s.entries.len()).sum::<usize>();
        let full: usize = (0..rec.snaps.len() as u32)
            .map(|n| rec.resolved(n).entries.len())
            .sum();
        assert!(full > 15_000, "{full}");
        assert!(own(&rec) * 5 < full, "{} of {full}", own(&rec));
        // Snapshots 0 and 1 belong to the two loads, 2 to the loop guard; the guard of slot
        // `s` exits with slots 1 to `s - 1` written.
        for n in 0..rec.snaps.len() as u32 {
            let s = rec.resolved(n);
            let slots: Vec<u32> = s.entries.iter().map(|e| e.slot).collect();
            let expected: Vec<u32> = (1..n.saturating_sub(2)).collect();
            assert_eq!(slots, expected, "snapshot {n}");
        }
        let t = optimize(&rec).unwrap();
        assert!(own(&t) * 5 < 2 * full, "{}", own(&t));
    }
}
