//! Register liveness of bytecode: which registers of a function some path from a pc reads
//! before it writes them. A snapshot entry for a register that is dead at the snapshot's
//! resume pc is never read, so the optimiser drops it (LuaJIT purges snapshots the same way):
//! the value it names needs no register and no PHI across the loop's back edge.
//!
//! A backward dataflow pass over the verified code, with the operand kinds of the opcode table:
//! `Read`, `ReadWrite` and the registers of a `Window` are read; `Write`, `ReadWrite` and a
//! call's window register are written; a `call` also clobbers every register above its window
//! (the callee's frame overlaps them), so their values before the call are dead.
//!
//! Invariant: `is_live` errs towards live (a pc that does not start an instruction, or a
//! register outside the function's frame, such as an inlined callee's, is live), so a dropped entry is always one the interpreter
//! overwrites before any read.
use alloc::vec;
use alloc::vec::Vec;

use crate::vm::bytecode::{operand, Kind, Op, Slot};
use crate::vm::program::Function;
use crate::vm::verify::successors;

/// A set of registers (a frame has at most 256).
type Regs = [u64; 4];

fn has(r: &Regs, i: usize) -> bool {
    r[i / 64] >> (i % 64) & 1 == 1
}

fn set(r: &mut Regs, i: usize, on: bool) {
    if on {
        r[i / 64] |= 1 << (i % 64);
    } else {
        r[i / 64] &= !(1 << (i % 64));
    }
}

/// The live registers at each instruction start of one function.
#[derive(Clone, Debug)]
pub struct Liveness {
    /// Live-in set per code word; `None` where no instruction starts.
    live_in: Vec<Option<Regs>>,
    /// The frame size: registers at or above it belong to callees' frames.
    nregs: u32,
}

impl Liveness {
    /// Analyses `f`, a function of a verified program.
    pub fn of(f: &Function) -> Liveness {
        let code = &f.code;
        let mut starts = Vec::new();
        let mut pc = 0;
        while pc < code.len() {
            let Some(op) = Op::from_byte(code[pc] as u8) else {
                break;
            };
            starts.push((pc, op));
            pc += op.width();
        }
        let mut live_in: Vec<Option<Regs>> = vec![None; code.len()];
        for &(pc, _) in &starts {
            live_in[pc] = Some([0; 4]);
        }
        // Backward problem: iterate in reverse order until nothing changes.
        let mut changed = true;
        while changed {
            changed = false;
            for &(pc, op) in starts.iter().rev() {
                let mut live: Regs = [0; 4];
                for s in successors(code, pc, op).into_iter().flatten() {
                    match live_in.get(s).copied().flatten() {
                        Some(succ) => live.iter_mut().zip(succ).for_each(|(l, x)| *l |= x),
                        // A successor that is not an instruction start: assume everything.
                        None => live = [u64::MAX; 4],
                    }
                }
                transfer(code, pc, op, &mut live);
                if live_in[pc] != Some(live) {
                    live_in[pc] = Some(live);
                    changed = true;
                }
            }
        }
        Liveness {
            live_in,
            nregs: u32::from(f.nregs),
        }
    }

    /// Whether register `reg` may be read, before it is written, from `pc` on.
    pub fn is_live(&self, pc: u32, reg: u32) -> bool {
        match self.live_in.get(pc as usize).copied().flatten() {
            Some(r) if reg < self.nregs.min(256) => has(&r, reg as usize),
            _ => true,
        }
    }
}

/// `live` after the instruction at `pc` becomes `live` before it.
fn transfer(code: &[u32], pc: usize, op: Op, live: &mut Regs) {
    let count = operand(code, pc, Slot::C, Kind::Count) as usize;
    // Writes first (backwards), then reads.
    for &(slot, kind) in op.operands() {
        let r = operand(code, pc, slot, kind) as usize;
        match (op, kind) {
            (_, Kind::Write) => set(live, r.min(255), false),
            (Op::Call, Kind::Window) => (r..256).for_each(|i| set(live, i, false)),
            (Op::CallB | Op::CallH, Kind::Window) => set(live, r.min(255), false),
            _ => {}
        }
    }
    for &(slot, kind) in op.operands() {
        let r = operand(code, pc, slot, kind) as usize;
        match kind {
            Kind::Read | Kind::ReadWrite => set(live, r.min(255), true),
            Kind::Window => (r..(r + count).min(256)).for_each(|i| set(live, i, true)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::lang;

    /// In `while i < n { t = i * 2; s = s + t; i = i + 1 }` the temporary `t` is dead at the
    /// loop header (written before read), while `i`, `n` and `s` are live there.
    #[test]
    fn temporaries_are_dead_at_the_loop_header_and_counters_live() {
        let src = "let n = 10; let s = 0; let i = 0; let t = 0;\n\
                   while i < n { t = i * 2; s = s + t; i = i + 1; }\nprint(s);";
        let prog = lang::compile(src).expect("compiles");
        let f = &prog.funcs[0];
        let live = Liveness::of(f);
        // Registers in declaration order: n, s, i, t.
        let (n, s, i, t) = (0, 1, 2, 3);
        let mut text = alloc::string::String::new();
        crate::vm::bytecode::disassemble(&mut text, &prog).expect("disassembles");
        // The loop header: the first backward jump's target.
        let header = (0..f.code.len())
            .filter_map(|pc| {
                let op = Op::from_byte(f.code[pc] as u8)?;
                let t = op.operands().iter().any(|(_, k)| *k == Kind::Target);
                (t && (f.code[pc + 1] as usize) < pc).then_some(f.code[pc + 1])
            })
            .next()
            .expect("a backward jump");
        for r in [n, s, i] {
            assert!(live.is_live(header, r), "r{r} live at {header}\n{text}");
        }
        assert!(!live.is_live(header, t), "r{t} dead at {header}\n{text}");
        // Outside the frame, and where no instruction starts, everything counts as live.
        assert!(live.is_live(header, f.nregs as u32));
        assert!(live.is_live(f.code.len() as u32, t));
    }
}
