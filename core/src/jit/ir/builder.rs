//! [`TraceBuilder`]: the recorders emit IR through it; it tracks which ref each VM slot holds
//! and takes the snapshots (deltas of the previous one, see `jit/ir/snapshot.rs`).
use alloc::vec::Vec;

use super::snapshot::{SnapEntry, Snapshot};
use super::{HostFn, Inst, IrError, Op, Ref, Trace, Ty, NONE};

/// Builds a recorded trace instruction by instruction, tracking which ref each VM slot holds.
///
/// Slot reads go through [`TraceBuilder::slot`]: the first read of an untouched slot emits an
/// `SLoad` (a tag guard); later reads reuse the ref. Writes only update the slot map; they reach
/// memory through snapshots at exits.
#[derive(Debug, Default)]
pub struct TraceBuilder {
    trace: Trace,
    /// The current slot map (the entries every snapshot taken now gets).
    slots: Snapshot,
    /// Refs of slots already loaded and not overwritten since.
    loaded: Snapshot,
    /// While set, every guard exits through this snapshot instead of one of the current slot
    /// map ([`TraceBuilder::pin`]).
    pinned: Option<u32>,
    /// The last snapshot taken: the next one is a delta of it.
    last: Option<u32>,
    /// Slots written or forgotten since `last` was taken (unsorted, may repeat).
    changed: Vec<u32>,
}

/// The longest chain of delta snapshots: the next snapshot is a full one. Resolving a
/// snapshot (an exit, a write-back plan) walks at most this many parents, and full snapshots
/// every this many guards add `O(guards * slots / MAX_DELTA_CHAIN)` entries.
const MAX_DELTA_CHAIN: u32 = 16;

/// A point of a recording that [`TraceBuilder::rewind`] returns to: everything emitted after
/// it is dropped and the slot map is as it was.
#[derive(Clone, Debug)]
pub struct Mark {
    insts: usize,
    snaps: usize,
    calls: usize,
    slots: Snapshot,
    loaded: Snapshot,
    last: Option<u32>,
    changed: Vec<u32>,
}

impl TraceBuilder {
    /// An empty trace starting at `pc`.
    pub fn new(pc: u32) -> Self {
        let mut b = Self::default();
        b.slots.pc = pc;
        b
    }

    /// Sets the bytecode position later guards resume at.
    pub fn at_pc(&mut self, pc: u32) {
        self.slots.pc = pc;
    }

    /// The pc the next snapshot resumes at.
    pub fn pc(&self) -> u32 {
        self.slots.pc
    }

    fn push(&mut self, inst: Inst) -> Ref {
        self.trace.insts.push(inst);
        (self.trace.insts.len() - 1) as Ref
    }

    /// A snapshot of the slot map: a delta of the last one when that is shorter and the chain
    /// is not too long, else a full copy.
    fn take_snapshot(&mut self) -> u32 {
        if let Some(snap) = self.pinned {
            return snap;
        }
        let delta = self.last.filter(|&parent| {
            self.changed.len() < self.slots.entries.len()
                && self.chain_depth(parent) < MAX_DELTA_CHAIN
        });
        let snap = match delta {
            Some(parent) => {
                self.changed.sort_unstable();
                self.changed.dedup();
                let entries = self
                    .changed
                    .iter()
                    .map(|&slot| match self.slots.get(slot) {
                        Some(val) => SnapEntry {
                            slot,
                            val,
                            dead: false,
                        },
                        None => Snapshot::tombstone(slot),
                    })
                    .collect();
                Snapshot {
                    pc: self.slots.pc,
                    entries,
                    parent,
                }
            }
            None => self.slots.clone(),
        };
        self.trace.snaps.push(snap);
        self.changed.clear();
        let n = (self.trace.snaps.len() - 1) as u32;
        self.last = Some(n);
        n
    }

    /// How many parents snapshot `n` has.
    fn chain_depth(&self, mut n: u32) -> u32 {
        let mut depth = 0;
        while let Some(s) = self.trace.snaps.get(n as usize).filter(|s| s.is_delta()) {
            n = s.parent;
            depth += 1;
        }
        depth
    }

    /// An int constant.
    pub fn kint(&mut self, v: i64) -> Ref {
        let mut i = Inst::new(Op::KInt, Ty::Int, NONE, NONE);
        i.imm = v;
        self.push(i)
    }

    /// A float constant.
    pub fn kfloat(&mut self, v: f64) -> Ref {
        let mut i = Inst::new(Op::KFloat, Ty::Float, NONE, NONE);
        i.imm = v.to_bits() as i64;
        self.push(i)
    }

    /// The current value of `slot`, which the interpreter saw holding a `ty`.
    pub fn slot(&mut self, slot: u32, ty: Ty) -> Ref {
        if let Some(r) = self.slots.get(slot).or_else(|| self.loaded.get(slot)) {
            return r;
        }
        let snap = self.take_snapshot();
        let mut i = Inst::new(Op::SLoad, ty, NONE, NONE);
        i.imm = slot as i64;
        i.snap = snap;
        let r = self.push(i);
        self.loaded.set(slot, r);
        r
    }

    /// Writes `val` to `slot`.
    pub fn set_slot(&mut self, slot: u32, val: Ref) {
        self.slots.set(slot, val);
        self.changed.push(slot);
    }

    /// A pure two-operand (or one-operand, `b = NONE`) instruction.
    pub fn op(&mut self, op: Op, a: Ref, b: Ref) -> Ref {
        self.push(Inst::new(op, op.result(), a, b))
    }

    /// A comparison guard that exits to the current pc when it fails.
    pub fn guard(&mut self, op: Op, a: Ref, b: Ref) {
        let snap = self.take_snapshot();
        let mut i = Inst::new(op, Ty::Void, a, b);
        i.snap = snap;
        self.push(i);
    }

    /// A snapshot of the current slot map and pc, for a guard emitted later
    /// ([`fuel`](Self::fuel)).
    pub fn snapshot(&mut self) -> u32 {
        self.take_snapshot()
    }

    /// A comparison guard that exits through snapshot `snap` (taken earlier with
    /// [`snapshot`](Self::snapshot)) when it fails.
    pub fn guard_to(&mut self, op: Op, a: Ref, b: Ref, snap: u32) {
        self.guard_refunding(op, a, b, snap, 0);
    }

    /// A comparison guard that exits through snapshot `snap` (its own) when it fails, giving
    /// back `refund` fuel first (a *refunding guard*, see the module doc).
    pub fn guard_refunding(&mut self, op: Op, a: Ref, b: Ref, snap: u32, refund: i64) {
        let mut i = Inst::new(op, Ty::Void, a, b);
        i.snap = snap;
        i.imm = refund;
        self.push(i);
    }

    /// Charges `cost` units of the VM's fuel; when less is left, exits through snapshot
    /// `snap` (taken with [`snapshot`](Self::snapshot)) without charging.
    pub fn fuel(&mut self, cost: i64, snap: u32) {
        let mut i = Inst::new(Op::Fuel, Ty::Void, NONE, NONE);
        i.imm = cost;
        i.snap = snap;
        self.push(i);
    }

    /// A call of a host function.
    pub fn call(&mut self, f: HostFn, a: Ref, b: Ref) -> Ref {
        self.trace.calls.push(f);
        let mut i = Inst::new(Op::Call, Ty::Int, a, b);
        i.imm = (self.trace.calls.len() - 1) as i64;
        self.push(i)
    }

    /// The payload word of `slot` (a heap object's address), guarding that its tag is `tag`.
    pub fn slot_tagged(&mut self, slot: u32, tag: u32) -> Ref {
        let snap = self.take_snapshot();
        let mut i = Inst::new(Op::SLoadT, Ty::Int, NONE, NONE);
        i.imm = slot as i64 | (tag as i64) << 32;
        i.snap = snap;
        self.push(i)
    }

    /// A load (`LdI`, `LdF`, `LdB`, `LdH`) from address `base + disp`.
    pub fn load(&mut self, op: Op, base: Ref, disp: i64) -> Ref {
        let mut i = Inst::new(op, op.result(), base, NONE);
        i.imm = disp;
        self.push(i)
    }

    /// The number of instructions recorded so far (a position for
    /// [`wrote_memory_since`](Self::wrote_memory_since)).
    pub fn recorded(&self) -> usize {
        self.trace.insts.len()
    }

    /// Whether an instruction recorded since `mark` may have written memory (a store or a
    /// call).
    pub fn wrote_memory_since(&self, mark: usize) -> bool {
        self.trace
            .insts
            .get(mark..)
            .is_some_and(|i| i.iter().any(|i| i.op.writes_memory()))
    }

    /// Whether every instruction recorded since `mark` leaves memory alone, except calls of
    /// the host functions in `allowed`: no store, no other call.
    pub fn writes_only_through(&self, mark: usize, allowed: &[HostFn]) -> bool {
        let calls = &self.trace.calls;
        self.trace.insts.get(mark..).is_some_and(|is| {
            is.iter().all(|i| match i.op {
                Op::Call => calls
                    .get(i.imm as usize)
                    .is_some_and(|&f| allowed.iter().any(|&a| a as usize == f as usize)),
                op => !op.writes_memory(),
            })
        })
    }

    /// Whether the trace has written `slot` so far (it has an entry in the slot map).
    pub fn is_written(&self, slot: u32) -> bool {
        self.slots.get(slot).is_some()
    }

    /// Whether the trace has read `slot` with an `SLoad` so far.
    pub fn was_loaded(&self, slot: u32) -> bool {
        self.loaded.get(slot).is_some()
    }

    /// Drops `slot` from the slot map: native code has stored its value in the VM slot
    /// itself (a runtime call), so exits must leave the slot alone.
    pub fn forget_slot(&mut self, slot: u32) {
        self.slots.entries.retain(|e| e.slot != slot);
        self.changed.push(slot);
    }

    /// Keeps `v` alive with the trace; the address its code may read it at.
    pub fn keep(&mut self, v: crate::vm::value::Value) -> i64 {
        let rc = alloc::rc::Rc::new(v);
        let addr = alloc::rc::Rc::as_ptr(&rc) as i64;
        self.trace.keep.push(rc);
        addr
    }

    /// The address of VM slot `slot`.
    pub fn slot_addr(&mut self, slot: u32) -> Ref {
        let mut i = Inst::new(Op::SAddr, Ty::Int, NONE, NONE);
        i.imm = slot as i64;
        self.push(i)
    }

    /// Whether a call was recorded since `mark`.
    pub fn called_since(&self, mark: usize) -> bool {
        self.trace
            .insts
            .get(mark..)
            .is_some_and(|i| i.iter().any(|i| i.op.is_call()))
    }

    /// A store (`StI`, `StF`, `StB`) of `val` to address `base + disp`.
    pub fn store(&mut self, op: Op, base: Ref, disp: i64, val: Ref) {
        let mut i = Inst::new(op, Ty::Void, base, val);
        i.imm = disp;
        self.push(i);
    }

    /// A bool constant.
    pub fn kbool(&mut self, v: bool) -> Ref {
        let mut i = Inst::new(Op::KBool, Ty::Bool, NONE, NONE);
        i.imm = v as i64;
        self.push(i)
    }

    /// Where the recording stands now, for [`rewind`](Self::rewind).
    pub fn mark(&self) -> Mark {
        Mark {
            insts: self.trace.insts.len(),
            snaps: self.trace.snaps.len(),
            calls: self.trace.calls.len(),
            slots: self.slots.clone(),
            loaded: self.loaded.clone(),
            last: self.last,
            changed: self.changed.clone(),
        }
    }

    /// Drops everything recorded since `m` was taken and restores its slot map; unpins.
    pub fn rewind(&mut self, m: Mark) {
        self.trace.insts.truncate(m.insts);
        self.trace.snaps.truncate(m.snaps);
        self.trace.calls.truncate(m.calls);
        self.slots = m.slots;
        self.loaded = m.loaded;
        self.last = m.last;
        self.changed = m.changed;
        self.pinned = None;
    }

    /// With `Some(snap)`, every guard (and slot load) recorded from now on exits through
    /// snapshot `snap` (taken with [`snapshot`](Self::snapshot)) instead of a snapshot of the
    /// slot map at the guard; `None` ends that. A call followed into a loop trace pins the
    /// snapshot taken at the call, so any exit inside the callee resumes the interpreter at the
    /// call, with the caller's state from before it (see `jit::record`).
    pub fn pin(&mut self, snap: Option<u32>) {
        self.pinned = snap;
    }

    /// Forgets what the recording knows about slots `from` and up (written or loaded): they
    /// belong to a callee's frame, or are dead after its return.
    pub fn forget_from(&mut self, from: u32) {
        let gone = self.slots.entries.iter().filter(|e| e.slot >= from);
        self.changed.extend(gone.map(|e| e.slot));
        self.slots.entries.retain(|e| e.slot < from);
        self.loaded.entries.retain(|e| e.slot < from);
    }

    /// Ends the recording with an unconditional exit to `pc` (a linked trace): the exit's
    /// snapshot, which is also the tail, holds every slot the trace wrote.
    pub fn finish_exit(mut self, pc: u32) -> Result<Trace, IrError> {
        self.slots.pc = pc;
        let snap = self.take_snapshot();
        let mut i = Inst::new(Op::Exit, Ty::Void, NONE, NONE);
        i.snap = snap;
        self.push(i);
        self.trace.tail = self.slots;
        self.trace.validate()?;
        Ok(self.trace)
    }

    /// Whether the trace ends in an unconditional `Exit` (a linked trace, never unrolled).
    pub fn is_linked(t: &Trace) -> bool {
        t.insts.last().is_some_and(|i| i.op == Op::Exit)
    }

    /// Ends the recording at the backward branch to `loop_pc`.
    pub fn finish(mut self, loop_pc: u32) -> Result<Trace, IrError> {
        self.slots.pc = loop_pc;
        self.trace.tail = self.slots;
        self.trace.validate()?;
        Ok(self.trace)
    }
}
