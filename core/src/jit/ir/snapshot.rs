//! Snapshots: what the interpreter needs to resume after a side exit.
//!
//! Glossary
//! - *entry*: `slot <- value ref`: on exit, write the value (with its type's tag) into the VM
//!   slot. Slots without an entry still hold what they held when the trace was entered.
//! - *pc*: the bytecode position the interpreter resumes at.
//! - *dead entry*: an entry for a slot the interpreter overwrites before it reads it, resuming
//!   at `pc` (see [`crate::jit::live`]). Its value is the constant int 0, and the exit writes it
//!   only over a heap value (a string or array the interpreter would have released by now);
//!   a slot that holds a number, a bool or nil is left as it is.
//!
//! - *delta snapshot*: a snapshot with a `parent` (an earlier snapshot of the same trace)
//!   stores only the slots that changed since the parent was taken; every other slot is as the
//!   parent has it. Consecutive guards change a few slots each, so a trace of `g` guards over
//!   `s` written slots carries `O(g + s)` entries instead of `O(g * s)`, and every pass over
//!   snapshot entries (optimiser, DCE, register allocation, validation) stays linear in the
//!   trace's length.
//! - *tombstone*: an entry of a delta snapshot whose `val` is [`NONE`]: the slot has no entry
//!   any more (the trace forgot it: a runtime call stored it itself, or it belonged to a
//!   returned callee's frame), whatever the parent says.
//! - *resolved* snapshot ([`crate::jit::ir::Trace::resolved`]): the full entry list, the chain
//!   of parents overlaid newest first, without tombstones. Exits restore the resolved entries.
//!
//! ```text
//!   snaps[0] {pc 4, parent -, [1 <- r3]}              resolved: [1 <- r3]
//!   snaps[1] {pc 7, parent 0, [2 <- r5]}              resolved: [1 <- r3, 2 <- r5]
//!   snaps[2] {pc 9, parent 1, [1 <- r8, 2 <- NONE]}   resolved: [1 <- r8]
//! ```
//!
//! Invariants: entries are sorted by slot and name each slot at most once, so writing them back
//! in any order gives the same state; `parent < own index`; tombstones only in delta snapshots.
use alloc::vec::Vec;

use super::{Ref, NONE, NO_SNAP};

/// One slot to write back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapEntry {
    /// VM slot index.
    pub slot: u32,
    /// The value (its IR type decides the tag).
    pub val: Ref,
    /// A dead entry (see the module doc): written only over a heap value.
    pub dead: bool,
}

/// A resumable interpreter state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Where the interpreter resumes.
    pub pc: u32,
    /// Slots to write back, sorted by slot (in a delta snapshot: the changes since `parent`).
    pub entries: Vec<SnapEntry>,
    /// The snapshot this one is a delta of, or [`NO_SNAP`] for a full snapshot.
    pub parent: u32,
}

impl Default for Snapshot {
    fn default() -> Self {
        Snapshot {
            pc: 0,
            entries: Vec::new(),
            parent: NO_SNAP,
        }
    }
}

impl Snapshot {
    /// A full snapshot resuming at `pc` with `entries` (sorted by slot).
    pub fn full(pc: u32, entries: Vec<SnapEntry>) -> Snapshot {
        Snapshot {
            pc,
            entries,
            parent: NO_SNAP,
        }
    }

    /// Whether this snapshot is a delta of an earlier one.
    pub fn is_delta(&self) -> bool {
        self.parent != NO_SNAP
    }

    /// A tombstone for `slot` (see the module doc).
    pub fn tombstone(slot: u32) -> SnapEntry {
        SnapEntry {
            slot,
            val: NONE,
            dead: false,
        }
    }

    /// The value this snapshot's own entries record for `slot`, if any (a delta snapshot's
    /// parents are not consulted; see [`crate::jit::ir::Trace::resolved`]).
    pub fn get(&self, slot: u32) -> Option<Ref> {
        self.entries
            .binary_search_by_key(&slot, |e| e.slot)
            .ok()
            .map(|i| self.entries[i].val)
    }

    /// Records `slot <- val`, replacing an earlier entry for the slot.
    pub fn set(&mut self, slot: u32, val: Ref) {
        match self.entries.binary_search_by_key(&slot, |e| e.slot) {
            Ok(i) => {
                self.entries[i].val = val;
                self.entries[i].dead = false;
            }
            Err(i) => self.entries.insert(
                i,
                SnapEntry {
                    slot,
                    val,
                    dead: false,
                },
            ),
        }
    }

    /// The same snapshot with every value ref passed through `f`.
    pub fn map(&self, mut f: impl FnMut(Ref) -> Ref) -> Snapshot {
        Snapshot {
            pc: self.pc,
            parent: self.parent,
            entries: self
                .entries
                .iter()
                .map(|e| SnapEntry {
                    val: f(e.val),
                    ..*e
                })
                .collect(),
        }
    }
}
