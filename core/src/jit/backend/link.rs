//! Trace linking: what an exit stub writes back natively before it jumps to another trace.
//!
//! Glossary
//! - *exit id*: the number native code returns: `tag << 16 | snapshot` ([`ExitLinks::tag`]),
//!   so when control has passed through several linked traces the driver knows whose snapshot
//!   to restore.
//! - *link table*: one `u64` per snapshot, owned by the driver ([`ExitLinks::table`]); 0 means
//!   "return to the host", anything else is the address of another trace's entry (just past
//!   its prologue: every trace has the same prologue, so the stack frame, the slot base and the
//!   exit frame carry over).
//! - *write-back plan* ([`ExitPlan`]): before an exit stub consults its link-table entry it
//!   stores the snapshot's values into the VM slots itself (tag and payload), as the host's
//!   restore would; the next trace reads them with its own `SLoad`s. A slot whose tag the trace
//!   has not checked before the exit might hold a heap value, which a raw store would leak, so
//!   the stub first checks each such tag against [`SlotLayout::scalar_tags_max`] and takes the
//!   host path (which drops the old value) when it is above.
//!
//! A dead snapshot entry (see `jit/ir/snapshot.rs`) gets the check but no store: a scalar
//! stays in its slot, and a heap value sends the exit to the host, whose restore replaces it.
//!
//! *Typed links.* A loop or side trace has two entries, a loop trace three. The checked entry (past the prologue,
//! where the driver and unproven links enter) verifies the trace's *entry requirements*
//! ([`EntryChecks`]: slot tags its code relies on: the scalar `SLoad`s before its first call,
//! and for a side trace what the exit it was recorded from knew); a failed check leaves
//! through the trace's *start exit* (its start pc, nothing written). The fast entry, right
//! after the checks, is where a linked exit jumps when what it knows of the slots
//! ([`ExitsKnown`]: the requirements of its own trace, the tags its `SLoad`s checked, and
//! what its stub stores) covers the target's requirements. Before the first call a trace
//! relies on its requirements: such `SLoad`s check no tag, its stubs check no slot it knows
//! and store no tag a slot already has.
//!
//! *Register entry.* A loop trace's slot loads come first (`opt::loads_first`); past them is
//! its register entry ([`RegEntry`]). A trace compiled while the trace where it ends is
//! installed jumps there from each exit that resumes at that trace's start and knows its
//! requirements ([`RegLinks`]): after the write-back, it moves the values into the registers
//! that trace loads them into and jumps straight to the address, without the link table. The
//! write-back stays: the target's own exits rely on the slots it does not write.
//!
//! ```text
//!   checked entry:  [cmp tag(slot), required; jne start exit]...
//!   fast entry:     [load slot -> its register]...           (a loop trace's leading loads)
//!   register entry: [fuel -> its register]; body
//!   exit n to a register entry: write-back; parallel move into the target's registers;
//!                               [load the slots it did not write]; jmp target
//!   exit n:  [cmp tag(slot), scalar max; ja slow n]...   (unchecked slots only)
//!            [store tag, store payload]...                (every live snapshot entry; no tag
//!                                                         store where the tag is known)
//!            target = table[n]; if target == 0 goto written n; jmp target
//!   written n: exit id | WRITTEN -> return register; jmp handler   (the host skips its restore)
//!   slow n:  exit id -> return register; jmp handler      (dump registers, return)
//! ```
//!
//! Invariants
//! - a slot's tag in memory changes only in exit stubs and calls, so what a trace knows at
//!   its entry holds up to its first call;
//! - an exit links to a target's fast entry only if what it knows gives every entry
//!   requirement of the target ([`ExitsKnown::gives`]); any other way in is the checked entry;
//! - the host's restore after a slow-path exit writes the same values again, so a stub that
//!   stored some slots and then found no link is harmless;
//! - a trace gets write-back stubs only when the layout names its scalar tags and the plans
//!   stay under [`MAX_WRITEBACK_STORES`] stores in total (code size grows with exits x slots);
//!   otherwise every exit returns to the host as before.
use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;

use crate::jit::ir::snapshot::Snapshot;
use crate::jit::ir::{Op, Trace, Ty, NO_SNAP};
use crate::jit::regalloc::{Allocation, Loc};
use crate::jit::slots::SlotLayout;

use super::Src;

/// How native code numbers and links a trace's exits (set by the driver before compiling).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitLinks {
    /// Put in bits 16.. of every exit id (the driver's trace index).
    pub tag: u16,
    /// Address of the link table (one `u64` per snapshot), or 0: no write-back stubs.
    pub table: u64,
}

impl ExitLinks {
    /// The id native code returns for snapshot `snap`.
    pub fn exit_id(&self, snap: usize) -> u32 {
        (self.tag as u32) << 16 | snap as u32
    }
}

/// Set in the exit id of a stub that wrote its snapshot back and then found no link: the VM
/// slots already hold what the host's restore would write (the stub's stores and the host's
/// restore are the same, see the module doc), so the host only needs the resume pc. Tags are
/// below 2^15 ([`MAX_TAG`]), so the bit is free.
pub const WRITTEN: u32 = 1 << 31;

/// One more than the largest tag (the driver's trace index) an exit id carries.
pub const MAX_TAG: usize = 1 << 15;

/// Splits an exit id into `(tag, snapshot)` ([`WRITTEN`] aside).
pub fn split_exit_id(id: u32) -> (u16, u32) {
    (((id & !WRITTEN) >> 16) as u16, id & 0xffff)
}

/// Most write-back stores one trace's stubs may hold.
pub const MAX_WRITEBACK_STORES: usize = 4096;

/// One store of a write-back: `slot <- src` with `ty`'s tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Store {
    /// The VM slot.
    pub slot: u32,
    /// The value's type (decides the tag).
    pub ty: Ty,
    /// Where the value is.
    pub src: Src,
    /// Whether the tag is stored too (not when the slot is known to hold that tag already).
    pub tag: bool,
}

/// What exit stub `n` does before consulting the link table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExitPlan {
    /// Slots whose tag must be a scalar's before anything is stored.
    pub checks: Vec<u32>,
    /// The stores, one per snapshot entry that is not dead.
    pub stores: Vec<Store>,
}

/// What a trace knows of a VM slot's tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Known {
    /// The slot holds this (scalar) tag.
    Tag(u64),
    /// The slot holds some scalar's tag (at most [`SlotLayout::scalar_tags_max`]).
    Scalar,
}

impl Known {
    /// Whether knowing `self` of a slot gives `need`.
    fn gives(self, need: Known) -> bool {
        match (self, need) {
            (_, Known::Scalar) => true,
            (Known::Tag(a), Known::Tag(b)) => a == b,
            (Known::Scalar, Known::Tag(_)) => false,
        }
    }
}

/// What is known of the VM slots at one point: `(slot, known)`, sorted by slot, one per slot.
pub type ExitKnowledge = Vec<(u32, Known)>;

/// A trace's checked entry: the slot tags it verifies, which the rest of its code relies on
/// up to its first call (see the module doc).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EntryChecks {
    /// The requirements, sorted by slot; empty: one entry, no checks.
    pub checks: ExitKnowledge,
    /// The start exit: a snapshot at the trace's start pc with no entries.
    pub snap: u32,
    /// The first call's position (the trace's length if none): code before it relies on
    /// `checks`.
    pub until: usize,
    /// How many `SLoad`s lead the trace (a loop trace's, see `opt::loads_first`): a linked
    /// exit that has their values enters after them, at the register entry.
    pub loads: usize,
}

impl EntryChecks {
    /// The entry checks of a trace `t` starting at `pc`. A loop trace (`inherited` is
    /// `None`) requires the tags of its scalar `SLoad`s before its first call: they are
    /// checked once, at the checked entry, and a linked exit that knows them skips them all.
    /// A side trace requires what the exit it was recorded from knew (`inherited`), which its
    /// parent's exit gives at no cost: the exact tags (they may let the traces it links to
    /// be entered fast), and "some scalar" only of slots its own exits write (there it saves
    /// a stub's check; elsewhere it would only keep the parent's other exits, which know
    /// less, from the fast entry). Its own `SLoad`s keep their checks. Appends the start
    /// exit's snapshot to `t` when there are checks. No checks without the layout's scalar
    /// tags.
    pub fn plan(
        t: &mut Trace,
        layout: &SlotLayout,
        pc: u32,
        inherited: Option<&[(u32, Known)]>,
    ) -> Self {
        let until = first_call(t);
        let Some(max) = layout.scalar_tags_max else {
            return Self::none(t);
        };
        let scalar = |ty: Ty| layout.tag_of(ty).is_some_and(|g| g <= max);
        let loads = match inherited {
            Some(_) => 0,
            None => t.insts[..until]
                .iter()
                .take_while(|i| i.op == Op::SLoad && scalar(i.ty))
                .count(),
        };
        let mut checks: ExitKnowledge = Vec::new();
        match inherited {
            Some(known) => {
                let written = |slot: u32| {
                    t.snaps
                        .iter()
                        .any(|s| s.entries.iter().any(|e| e.slot == slot))
                };
                for &(slot, k) in known {
                    if matches!(k, Known::Tag(_)) || written(slot) {
                        set_known(&mut checks, slot, k);
                    }
                }
            }
            None => {
                for inst in &t.insts[..until] {
                    if inst.op != Op::SLoad {
                        continue;
                    }
                    if let Some(tag) = layout.tag_of(inst.ty).filter(|&g| g <= max) {
                        set_known(&mut checks, inst.imm as u32, Known::Tag(tag));
                    }
                }
            }
        }
        if checks.is_empty() {
            return Self::none(t);
        }
        let snap = t.snaps.len() as u32;
        t.snaps.push(Snapshot {
            pc,
            entries: Vec::new(),
            parent: NO_SNAP,
        });
        Self {
            checks,
            snap,
            until,
            loads,
        }
    }

    /// The checked entry's compares, `(slot, tag, exact)`: with `exact` the check fails when
    /// the slot's tag differs from `tag`, else when it is above `tag` (the scalar tags' top:
    /// a tag above them may own heap memory, compared unsigned).
    pub fn compares(&self, layout: &SlotLayout) -> impl Iterator<Item = (u32, u64, bool)> + '_ {
        let max = layout.scalar_tags_max.unwrap_or(0);
        self.checks.iter().map(move |&(slot, known)| match known {
            Known::Tag(g) => (slot, g, true),
            Known::Scalar => (slot, max, false),
        })
    }

    /// No checks: a trace with one entry, whose code relies on nothing but its own `SLoad`s.
    pub fn none(t: &Trace) -> Self {
        Self {
            checks: Vec::new(),
            snap: 0,
            until: first_call(t),
            loads: 0,
        }
    }

    /// What the entry guarantees of `slot` to code at position `pos`.
    pub fn known_at(&self, pos: usize, slot: u32) -> Option<Known> {
        if pos >= self.until {
            return None;
        }
        self.checks
            .binary_search_by_key(&slot, |e| e.0)
            .ok()
            .map(|i| self.checks[i].1)
    }

    /// Whether the `SLoad` of `slot` with `tag` at position `pos` needs no tag check.
    pub fn covers(&self, pos: usize, slot: u32, tag: u64) -> bool {
        self.known_at(pos, slot) == Some(Known::Tag(tag))
    }
}

/// A loop trace's register entry, as the trace that links to it is compiled against it: past
/// the leading `SLoad`s, which the linking exit's moves replace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegEntry {
    /// The trace's start pc.
    pub pc: u32,
    /// The register entry's address.
    pub addr: u64,
    /// Per leading `SLoad`: its slot, type and register.
    pub values: Vec<(u32, Ty, Loc)>,
    /// The trace's entry requirements (the linking exit must give them).
    pub requires: ExitKnowledge,
}

impl RegEntry {
    /// The parallel move a linking exit with write-back `plan` makes for the values of one
    /// register class (`float`): each value it stored, from where it held it.
    pub fn moves(&self, plan: &ExitPlan, float: bool) -> Vec<(Loc, Src)> {
        self.values
            .iter()
            .filter(|v| (v.1 == Ty::Float) == float)
            .filter_map(|&(slot, _, to)| {
                let st = plan.stores.iter().find(|st| st.slot == slot)?;
                Some((to, st.src))
            })
            .collect()
    }

    /// The values `plan` did not store, which the exit loads from their slots after the
    /// moves: `(slot, type, register)`.
    pub fn loads<'p>(&'p self, plan: &'p ExitPlan) -> impl Iterator<Item = (u32, Ty, u8)> + 'p {
        self.values
            .iter()
            .filter_map(move |&(slot, ty, to)| match to {
                Loc::Reg(d) if !plan.stores.iter().any(|st| st.slot == slot) => Some((slot, ty, d)),
                _ => None,
            })
    }
}

/// Which exits of a trace jump to `target`'s register entry (with its values in its
/// registers) instead of through the link table.
#[derive(Clone, Debug, Default)]
pub struct RegLinks<'a> {
    /// The trace the exits resume in.
    pub target: Option<&'a RegEntry>,
    /// Per snapshot: whether its exit does.
    pub exits: Vec<bool>,
}

impl<'a> RegLinks<'a> {
    /// The exits of `t` that resume at `target`'s start and know what it requires.
    pub fn new(t: &Trace, target: Option<&'a RegEntry>, known: &ExitsKnown) -> Self {
        let Some(target) = target.filter(|e| !e.values.is_empty()) else {
            return Self::default();
        };
        let exits = (0..t.snaps.len())
            .map(|n| t.snaps[n].pc == target.pc && known.gives(n, &target.requires))
            .collect();
        Self {
            target: Some(target),
            exits,
        }
    }

    /// The register entry exit `n` jumps to, if any.
    pub fn at(&self, n: usize) -> Option<&'a RegEntry> {
        self.target.filter(|_| self.exits.get(n) == Some(&true))
    }
}

/// Sets `slot`'s entry of sorted `k`.
fn set_known(k: &mut ExitKnowledge, slot: u32, v: Known) {
    match k.binary_search_by_key(&slot, |e| e.0) {
        Ok(i) => k[i].1 = v,
        Err(i) => k.insert(i, (slot, v)),
    }
}

/// The position of `t`'s first call (its length if none).
fn first_call(t: &Trace) -> usize {
    t.insts
        .iter()
        .position(|i| i.op.is_call())
        .unwrap_or(t.insts.len())
}

/// Where each snapshot is used (its guard's position; `usize::MAX` if none).
fn guard_positions(t: &Trace) -> Vec<usize> {
    let mut at = vec![usize::MAX; t.snaps.len()];
    for (pos, inst) in t.insts.iter().enumerate() {
        if inst.snap != NO_SNAP {
            at[inst.snap as usize] = pos;
        }
    }
    at
}

/// What each exit of a trace knows of the slots once its stub has written its snapshot back
/// (see the module doc). Kept compactly: per exit only what its stub's checks and stores
/// leave; the rest is shared (the entry requirements and each slot's first `SLoad`, which an
/// exit before the trace's first call knows).
#[derive(Clone, Debug, Default)]
pub struct ExitsKnown {
    /// Per snapshot: its guard's position; `usize::MAX` for an exit that knows nothing (the
    /// start exit, a snapshot no guard uses, a trace without write-back stubs).
    at: Vec<usize>,
    /// Per snapshot: what its stub's checks and stores leave, sorted by slot (`None`: a store
    /// of a type without a scalar tag).
    own: Vec<Vec<(u32, Option<Known>)>>,
    /// The entry requirements, known before `until`.
    entry: ExitKnowledge,
    /// The first call's position.
    until: usize,
    /// Per slot an `SLoad` reads: the first such load's position and its tag, sorted by slot.
    loads: Vec<(u32, usize, u64)>,
}

impl ExitsKnown {
    /// What each exit of `t` knows, from its write-back plans (`None`: no stubs).
    pub fn of(
        t: &Trace,
        layout: &SlotLayout,
        plans: Option<&[ExitPlan]>,
        entry: &EntryChecks,
    ) -> Self {
        let Some(plans) = plans else {
            return Self::default();
        };
        let mut at = guard_positions(t);
        if !entry.checks.is_empty() {
            if let Some(p) = at.get_mut(entry.snap as usize) {
                *p = usize::MAX;
            }
        }
        let own = plans
            .iter()
            .map(|plan| {
                // The stub's checks leave scalars; its stores their own tags.
                let mut k: Vec<(u32, Option<Known>)> = Vec::new();
                let mut set =
                    |slot: u32, v: Option<Known>| match k.binary_search_by_key(&slot, |e| e.0) {
                        Ok(i) => k[i].1 = v,
                        Err(i) => k.insert(i, (slot, v)),
                    };
                for &slot in &plan.checks {
                    set(slot, Some(Known::Scalar));
                }
                for st in &plan.stores {
                    set(st.slot, layout.tag_of(st.ty).map(Known::Tag));
                }
                k
            })
            .collect();
        let loads = first_loads(t)
            .into_iter()
            .filter_map(|(slot, p)| {
                let tag = layout.tag_of(t.insts[p].ty)?;
                Some((slot as u32, p, tag))
            })
            .collect();
        Self {
            at,
            own,
            entry: entry.checks.clone(),
            until: entry.until,
            loads,
        }
    }

    /// What exit `n` knows of `slot`.
    pub fn slot(&self, n: usize, slot: u32) -> Option<Known> {
        let pos = *self.at.get(n).filter(|&&p| p != usize::MAX)?;
        let own = self.own.get(n)?;
        if let Ok(i) = own.binary_search_by_key(&slot, |e| e.0) {
            return own[i].1;
        }
        if pos >= self.until {
            return None;
        }
        if let Ok(i) = self.loads.binary_search_by_key(&slot, |e| e.0) {
            let (_, p, tag) = self.loads[i];
            if p < pos {
                return Some(Known::Tag(tag));
            }
        }
        let i = self.entry.binary_search_by_key(&slot, |e| e.0).ok()?;
        Some(self.entry[i].1)
    }

    /// Whether exit `n`'s knowledge gives every requirement of `need`.
    pub fn gives(&self, n: usize, need: &[(u32, Known)]) -> bool {
        need.iter()
            .all(|&(slot, k)| self.slot(n, slot).is_some_and(|h| h.gives(k)))
    }

    /// Everything exit `n` knows, sorted by slot (a side trace recorded from it requires it).
    pub fn all(&self, n: usize) -> ExitKnowledge {
        let mut slots: Vec<u32> = self.own.get(n).into_iter().flatten().map(|e| e.0).collect();
        slots.extend(self.loads.iter().map(|e| e.0));
        slots.extend(self.entry.iter().map(|e| e.0));
        slots.sort_unstable();
        slots.dedup();
        slots
            .into_iter()
            .filter_map(|s| Some((s, self.slot(n, s)?)))
            .collect()
    }
}

/// The write-back plan of every exit, or `None` when the trace's exits all go to the host.
pub fn exit_plans(
    t: &Trace,
    links: &ExitLinks,
    alloc: &Allocation,
    layout: &SlotLayout,
    entry: &EntryChecks,
) -> Option<Vec<ExitPlan>> {
    if links.table == 0 || layout.scalar_tags_max.is_none() {
        return None;
    }
    let at = guard_positions(t);
    // Each exit writes its resolved snapshot: stop resolving once the stores exceed the cap.
    let mut resolved = Vec::with_capacity(t.snaps.len());
    let mut total = 0;
    for (n, &pos) in at.iter().enumerate() {
        let snap = if pos == usize::MAX {
            Snapshot::default()
        } else {
            t.resolved(n as u32)
        };
        total += snap.entries.len();
        if total > MAX_WRITEBACK_STORES {
            return None;
        }
        resolved.push(snap);
    }
    let first_load = first_loads(t);
    let plans = resolved
        .iter()
        .zip(&at)
        .map(|(snap, &pos)| exit_plan_at(t, alloc, layout, snap, pos, &first_load, entry))
        .collect();
    Some(plans)
}

/// The write-back plan of snapshot `n` alone (a function trace's exit to a linked side
/// trace), whatever the link table.
pub fn exit_plan(t: &Trace, alloc: &Allocation, layout: &SlotLayout, n: usize) -> ExitPlan {
    let pos = t
        .insts
        .iter()
        .position(|i| i.snap as usize == n && i.snap != NO_SNAP);
    let snap = t.resolved(n as u32);
    let entry = EntryChecks::default();
    let pos = pos.unwrap_or(usize::MAX);
    exit_plan_at(t, alloc, layout, &snap, pos, &first_loads(t), &entry)
}

/// Where each slot is first loaded (tag-checked) by an `SLoad`: slot -> instruction position.
fn first_loads(t: &Trace) -> BTreeMap<i64, usize> {
    let mut first_load = BTreeMap::new();
    for (pos, inst) in t.insts.iter().enumerate() {
        if inst.op == Op::SLoad {
            first_load.entry(inst.imm).or_insert(pos);
        }
    }
    first_load
}

/// Snapshot `n`'s plan when its guard is instruction `pos`.
fn exit_plan_at(
    t: &Trace,
    alloc: &Allocation,
    layout: &SlotLayout,
    snap: &Snapshot,
    pos: usize,
    first_load: &BTreeMap<i64, usize>,
    entry: &EntryChecks,
) -> ExitPlan {
    let loaded = |slot: u32| first_load.get(&(slot as i64)).copied().filter(|&p| p < pos);
    let checked = |slot: u32| loaded(slot).is_some() || entry.known_at(pos, slot).is_some();
    // The tag a slot holds for sure at the exit: the entry's, or its `SLoad`'s if no call
    // came between.
    let tag_held = |slot: u32| match entry.known_at(pos, slot) {
        Some(Known::Tag(g)) => Some(g),
        _ => loaded(slot)
            .filter(|_| pos < entry.until)
            .and_then(|p| layout.tag_of(t.insts[p].ty)),
    };
    let checks = snap
        .entries
        .iter()
        .map(|e| e.slot)
        .filter(|&s| !checked(s))
        .collect();
    // A dead entry is written only over a heap value: where the tag is checked (before the
    // exit, or by the check above), the slot holds a scalar and keeps it.
    let stores = snap
        .entries
        .iter()
        .filter(|e| !e.dead)
        .map(|e| {
            let inst = t.inst(e.val);
            let src = if inst.op.is_const() {
                Src::Const(inst.imm)
            } else {
                Src::Loc(alloc.locs[e.val as usize])
            };
            let tag = layout.tag_of(inst.ty);
            Store {
                slot: e.slot,
                ty: inst.ty,
                src,
                tag: tag.is_none() || tag != tag_held(e.slot),
            }
        })
        .collect();
    ExitPlan { checks, stores }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jit::opt::{dead_temp_loop, optimize_purged};
    use crate::jit::regalloc::allocate;
    use crate::jit::slots::VM_LAYOUT;

    /// `while i < n { t = i * 2; i = i + 1 }` with `t` (slot 1) dead at every exit: each exit
    /// stub checks slot 1's tag (the trace never loads it) but stores only `i`.
    #[test]
    fn dead_entries_are_checked_not_stored() {
        let rec = dead_temp_loop();
        let t = optimize_purged(&rec, &|_, slot| slot != 1).unwrap();
        let alloc = allocate(&t, &crate::jit::backend::x86_64::target::POOL);
        let links = ExitLinks { tag: 0, table: 8 };
        let plans =
            exit_plans(&t, &links, &alloc, &VM_LAYOUT, &EntryChecks::default()).expect("plans");
        let exited = t.exited_snapshots();
        let resolved: Vec<_> = (0..t.snaps.len() as u32)
            .filter(|&n| exited[n as usize])
            .map(|n| (t.resolved(n), &plans[n as usize]))
            .collect();
        let with_t = resolved.iter().filter(|(s, _)| s.get(1).is_some()).count();
        assert!(with_t >= 1, "{:?}", t.snaps);
        for (s, p) in &resolved {
            assert!(p.stores.iter().all(|st| st.slot != 1), "{p:?}");
            assert_eq!(p.checks.contains(&1), s.get(1).is_some(), "{p:?}");
            assert_eq!(p.stores.len(), s.entries.iter().filter(|e| !e.dead).count());
        }
    }

    /// Whether `have` gives every requirement of `need` (both sorted by slot): what
    /// [`ExitsKnown::gives`] answers for one exit.
    fn gives_all(have: &[(u32, Known)], need: &[(u32, Known)]) -> bool {
        need.iter().all(|&(slot, n)| {
            have.binary_search_by_key(&slot, |e| e.0)
                .is_ok_and(|i| have[i].1.gives(n))
        })
    }

    fn sload_pos(t: &Trace, slot: i64) -> usize {
        t.insts
            .iter()
            .position(|i| i.op == Op::SLoad && i.imm == slot)
            .expect("an SLoad of the slot")
    }

    /// A loop trace requires the tags of its `SLoad`s (checked once, at the checked entry,
    /// so the `SLoad`s check nothing); its stubs check no slot it knows and store no tag a
    /// slot holds already; every exit but the start exit knows those tags afterwards, which
    /// gives the trace's own requirements (a linked exit back into it may take the fast
    /// entry).
    #[test]
    fn a_loop_trace_requires_its_loads_and_its_exits_know_them() {
        let int = VM_LAYOUT.tag_of(Ty::Int).unwrap();
        let mut t = optimize_purged(&dead_temp_loop(), &|_, slot| slot != 1).unwrap();
        let snaps_before = t.snaps.len();
        let entry = EntryChecks::plan(&mut t, &VM_LAYOUT, 7, None);
        assert_eq!(
            entry.checks,
            vec![(0, Known::Tag(int)), (2, Known::Tag(int))]
        );
        assert_eq!(entry.snap as usize, snaps_before);
        let start = &t.snaps[entry.snap as usize];
        assert_eq!((start.pc, start.entries.len()), (7, 0));
        assert!(entry.covers(sload_pos(&t, 0), 0, int));
        assert!(!entry.covers(sload_pos(&t, 0), 0, int + 1));

        let alloc = allocate(&t, &crate::jit::backend::x86_64::target::POOL);
        let links = ExitLinks { tag: 0, table: 8 };
        let plans = exit_plans(&t, &links, &alloc, &VM_LAYOUT, &entry).expect("plans");
        let known = ExitsKnown::of(&t, &VM_LAYOUT, Some(&plans), &entry);
        let exited = t.exited_snapshots();
        let mut linked = 0;
        for n in (0..t.snaps.len()).filter(|&n| exited[n]) {
            let p = &plans[n];
            assert!(!p.checks.contains(&0) && !p.checks.contains(&2), "{p:?}");
            assert!(p.stores.iter().all(|st| st.slot != 0 || !st.tag), "{p:?}");
            assert!(
                known.gives(n, &entry.checks),
                "exit {n}: {:?}",
                known.all(n)
            );
            assert!(gives_all(&known.all(n), &entry.checks));
            if t.resolved(n as u32).get(1).is_some() {
                // `t` is dead there: checked (the trace never loads it), not stored.
                assert!(p.checks.contains(&1), "{p:?}");
                assert_eq!(known.slot(n, 1), Some(Known::Scalar), "{:?}", known.all(n));
            }
            linked += 1;
        }
        assert!(linked >= 2);
        assert!(known.all(entry.snap as usize).is_empty());
        assert!(!known.gives(entry.snap as usize, &entry.checks));
    }

    /// A side trace requires the exact tags its parent's exit knew, and "some scalar" only of
    /// the slots its own exits write; its own `SLoad`s keep their checks.
    #[test]
    fn a_side_trace_requires_what_its_parent_exit_knew() {
        let int = VM_LAYOUT.tag_of(Ty::Int).unwrap();
        let float = VM_LAYOUT.tag_of(Ty::Float).unwrap();
        let mut t = optimize_purged(&dead_temp_loop(), &|_, slot| slot != 1).unwrap();
        let parent = [
            (1, Known::Scalar),
            (2, Known::Tag(int)),
            (5, Known::Scalar),
            (6, Known::Tag(float)),
        ];
        let entry = EntryChecks::plan(&mut t, &VM_LAYOUT, 3, Some(&parent));
        assert_eq!(
            entry.checks,
            vec![
                (1, Known::Scalar),
                (2, Known::Tag(int)),
                (6, Known::Tag(float))
            ]
        );
        assert!(!entry.covers(sload_pos(&t, 0), 0, int));
        assert!(entry.covers(sload_pos(&t, 2), 2, int));
        // Nothing is known past the first call.
        assert_eq!(entry.known_at(entry.until, 2), None);
    }

    #[test]
    fn knowledge_gives_requirements() {
        let (a, b) = (Known::Tag(2), Known::Tag(3));
        assert!(gives_all(&[(1, a), (4, b)], &[(1, a), (4, Known::Scalar)]));
        assert!(gives_all(&[(1, a)], &[]));
        assert!(!gives_all(&[(1, a)], &[(1, b)]));
        assert!(!gives_all(&[(1, Known::Scalar)], &[(1, a)]));
        assert!(!gives_all(&[(1, a)], &[(2, Known::Scalar)]));
    }
}
