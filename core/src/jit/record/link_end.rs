//! How a recording ends: what it leaves behind in the VM registers, and which bytecodes
//! end a side recording with an exit instead of an abort.
//!
//! Glossary
//! - *dead heap register*: a register that holds a string when the recording ends (at its
//!   back edge, at a link or at a stop), held a number earlier in the recording, and that the
//!   interpreter, resuming at the end pc, overwrites before it reads it ([`crate::jit::live`]).
//!   The interpreter would drop that string at the overwrite; the trace drops it at its end (a
//!   runtime call, [`release_heap`]), so the register holds nil. Without that, an exit that
//!   writes a number back into the register (of the next iteration, or of the trace linked
//!   to) finds a heap value there and leaves native code through the host, which drops it,
//!   instead of jumping to the next trace: in a loop whose every iteration leaves a string
//!   there, one trip through the host per iteration. A register that only ever held strings
//!   is left alone: its next write is a runtime call that drops the old value anyway, and the
//!   release would be one more call per iteration.
//! - *exit at an instruction*: a side recording (outside a followed call) that reaches a
//!   `ret`, `retnil` or a `callb` the recorder cannot record ends with an exit to that
//!   instruction, which the interpreter performs: the call or return costs one side exit,
//!   not a blacklisted side trace. A side recording that would end where it starts records
//!   nothing and is refused ([`Abort::ExitAtStart`]).
//!
//! Invariant: releasing a dead register never changes what the program computes or prints;
//! it frees the string earlier than the interpreter does, never later.
use crate::jit::live::Liveness;
use crate::jit::trace::Abort;
use crate::vm::bytecode::byte;
use crate::vm::value::{Value, TAG_STR};

use super::Recorder;

/// `*slot = nil` when the VM register at address `slot` holds a heap value (its old value is
/// dropped as the interpreter's overwrite would); 0.
pub(crate) extern "C" fn release_heap(slot: i64, _unused: i64) -> i64 {
    // SAFETY: `slot` is the address of a VM register of the running frame (`SAddr`); the
    // interpreter is suspended while native code runs, and the register is dead at the pc
    // the trace exits to, so nothing reads the value that is dropped here.
    unsafe {
        let r = slot as usize as *mut Value;
        if (*r).tag() >= TAG_STR {
            *r = Value::Nil;
        }
    }
    0
}

impl Recorder<'_> {
    /// At the end of the recording (the back edge to `pc` or the final exit to `pc`): drops
    /// the strings of registers dead at `pc`.
    pub(super) fn release_dead_heap(&mut self, func: usize, pc: usize) {
        let Some(f) = self.prog.funcs.get(func) else {
            return;
        };
        let held: alloc::vec::Vec<u32> = (0..self.strs.len())
            .filter(|&r| self.is_str(r) && self.numeric.get(r) == Some(&true))
            .map(|r| r as u32)
            .collect();
        if held.is_empty() {
            return;
        }
        let live = Liveness::of(f);
        for r in held {
            if live.is_live(pc as u32, r) {
                continue;
            }
            let addr = self.tb.slot_addr(r);
            let zero = self.tb.kint(0);
            self.tb.call(release_heap, addr, zero);
            self.forget_str(r as usize);
        }
    }

    /// Whether `why`, met at `pc` outside a followed call of a side recording, ends the trace
    /// with an exit to `pc` (see the module doc).
    pub(super) fn exits_at(&self, pc: usize, why: Abort) -> Result<bool, Abort> {
        let ends = matches!(
            why,
            Abort::Unsupported(byte::CallB | byte::Ret | byte::RetNil)
        );
        if !ends || !self.side || self.calls.inside() {
            return Ok(false);
        }
        if pc == self.header {
            return Err(Abort::ExitAtStart);
        }
        Ok(true)
    }
}
