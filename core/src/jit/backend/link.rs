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
//! ```text
//!   exit n:  [cmp tag(slot), scalar max; ja slow n]...   (unchecked slots only)
//!            [store tag, store payload]...                (every live snapshot entry)
//!            target = table[n]; if target == 0 goto written n; jmp target
//!   written n: exit id | WRITTEN -> return register; jmp handler   (the host skips its restore)
//!   slow n:  exit id -> return register; jmp handler      (dump registers, return)
//! ```
//!
//! Invariants
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
use crate::jit::regalloc::Allocation;
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
}

/// What exit stub `n` does before consulting the link table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExitPlan {
    /// Slots whose tag must be a scalar's before anything is stored.
    pub checks: Vec<u32>,
    /// The stores, one per snapshot entry that is not dead.
    pub stores: Vec<Store>,
}

/// The write-back plan of every exit, or `None` when the trace's exits all go to the host.
pub fn exit_plans(
    t: &Trace,
    links: &ExitLinks,
    alloc: &Allocation,
    layout: &SlotLayout,
) -> Option<Vec<ExitPlan>> {
    if links.table == 0 || layout.scalar_tags_max.is_none() {
        return None;
    }
    // Where each snapshot is used (its guard's position).
    let mut at = vec![usize::MAX; t.snaps.len()];
    for (pos, inst) in t.insts.iter().enumerate() {
        if inst.snap != NO_SNAP {
            at[inst.snap as usize] = pos;
        }
    }
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
        .map(|(snap, &pos)| exit_plan_at(t, alloc, snap, pos, &first_load))
        .collect();
    Some(plans)
}

/// The write-back plan of snapshot `n` alone (a function trace's exit to a linked side
/// trace), whatever the link table.
pub fn exit_plan(t: &Trace, alloc: &Allocation, n: usize) -> ExitPlan {
    let pos = t
        .insts
        .iter()
        .position(|i| i.snap as usize == n && i.snap != NO_SNAP);
    let snap = t.resolved(n as u32);
    exit_plan_at(t, alloc, &snap, pos.unwrap_or(usize::MAX), &first_loads(t))
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
    snap: &Snapshot,
    pos: usize,
    first_load: &BTreeMap<i64, usize>,
) -> ExitPlan {
    let checked = |slot: u32| first_load.get(&(slot as i64)).is_some_and(|&p| p < pos);
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
            Store {
                slot: e.slot,
                ty: inst.ty,
                src,
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
        let plans = exit_plans(&t, &links, &alloc, &VM_LAYOUT).expect("plans");
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
}
