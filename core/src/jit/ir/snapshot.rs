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
//! Invariant: entries are sorted by slot and name each slot at most once, so writing them back
//! in any order gives the same state.
use alloc::vec::Vec;

use super::Ref;

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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Where the interpreter resumes.
    pub pc: u32,
    /// Slots to write back, sorted by slot.
    pub entries: Vec<SnapEntry>,
}

impl Snapshot {
    /// The value recorded for `slot`, if any.
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
