//! The IR reference interpreter: the oracle for the optimiser and the backends.
//!
//! It runs a trace against a byte image of the VM slot array, laid out by a [`SlotLayout`],
//! and stops at the first side exit, returning the exit (snapshot) number with the slots
//! written back exactly as a native exit would.
//!
//! Two forms run: a *recorded* trace (no LOOP: run the body, write the tail snapshot to the
//! slots, start again) and an *optimised* one (pre-roll once, then body + parallel PHI moves).
//! Comparing the two checks the optimiser; comparing the optimised form with native code
//! checks a backend.
use alloc::vec;

use crate::jit::ir::{IrError, Op, Trace, Ty};
use crate::jit::slots::SlotLayout;
use crate::jit::snapshot::Snapshot;

/// Where a run left the trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    /// Snapshot (exit) number.
    pub snap: u32,
    /// The bytecode position to resume at.
    pub pc: u32,
}

/// Why a run did not reach an exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterpError {
    /// More loop iterations than allowed.
    OutOfFuel,
    /// A slot index beyond the slot image.
    SlotOutOfBounds(u32),
    /// The trace fails [`Trace::validate`].
    Malformed(IrError),
    /// The trace calls VM functions (`CallV`), which only a running VM can do.
    NeedsVm,
}

/// Runs `trace` for at most `fuel` iterations, with an unlimited VM fuel budget.
pub fn run(
    trace: &Trace,
    layout: &SlotLayout,
    mem: &mut [u8],
    fuel: u64,
) -> Result<Exit, InterpError> {
    let mut unlimited = u64::MAX;
    run_metered(trace, layout, mem, fuel, &mut unlimited)
}

/// [`run`] with the VM's fuel budget in `budget`: `Fuel` instructions charge it, and exit
/// (charging nothing) when less is left, as native code does.
pub fn run_metered(
    trace: &Trace,
    layout: &SlotLayout,
    mem: &mut [u8],
    fuel: u64,
    budget: &mut u64,
) -> Result<Exit, InterpError> {
    trace.validate().map_err(InterpError::Malformed)?;
    let mut vals = vec![0u64; trace.insts.len()];
    let loop_at = trace.loop_ref().map(|l| l as usize);
    let mut start = 0;
    for _ in 0..fuel {
        let end = trace.insts.len();
        if let Some(exit) = step(trace, layout, mem, &mut vals, start, end, budget)? {
            return Ok(exit);
        }
        match loop_at {
            Some(l) => {
                // Parallel PHI moves: read every source before writing any target.
                let moves: alloc::vec::Vec<(usize, u64)> = trace.insts[l..]
                    .iter()
                    .filter(|i| i.op == Op::Phi)
                    .map(|i| (i.a as usize, vals[i.b as usize]))
                    .collect();
                for (dst, v) in moves {
                    vals[dst] = v;
                }
                start = l + 1;
            }
            None => write_back(trace, layout, mem, &vals, &trace.tail)?,
        }
    }
    Err(InterpError::OutOfFuel)
}

/// Runs instructions `start..end`; `Some(exit)` if a guard failed.
fn step(
    trace: &Trace,
    layout: &SlotLayout,
    mem: &mut [u8],
    vals: &mut [u64],
    start: usize,
    end: usize,
    budget: &mut u64,
) -> Result<Option<Exit>, InterpError> {
    for r in start..end {
        let inst = trace.insts[r];
        let a = || vals[inst.a as usize];
        let b = || vals[inst.b as usize];
        let f = |x: u64| f64::from_bits(x);
        let v = match inst.op {
            Op::Nop | Op::Loop | Op::Phi => continue,
            Op::KInt | Op::KFloat | Op::KBool => inst.imm as u64,
            Op::NotB => (a() == 0) as u64,
            Op::Exit => return exit(trace, layout, mem, vals, inst.snap).map(Some),
            Op::SLoad => {
                let slot = inst.imm as u32;
                let (tag, payload) = layout
                    .read(mem, slot)
                    .ok_or(InterpError::SlotOutOfBounds(slot))?;
                if Some(tag) != layout.tag_of(inst.ty) {
                    return exit(trace, layout, mem, vals, inst.snap).map(Some);
                }
                match inst.ty {
                    // A bool's payload is its first byte (native code loads one byte too).
                    Ty::Bool => payload & 0xff,
                    _ => payload,
                }
            }
            Op::AddI => (a() as i64).wrapping_add(b() as i64) as u64,
            Op::SubI => (a() as i64).wrapping_sub(b() as i64) as u64,
            Op::MulI => (a() as i64).wrapping_mul(b() as i64) as u64,
            // `validate` guarantees a constant divisor other than 0 and -1.
            Op::DivIK => (a() as i64).checked_div(b() as i64).unwrap_or(0) as u64,
            Op::ModIK => (a() as i64).checked_rem(b() as i64).unwrap_or(0) as u64,
            Op::AddF => (f(a()) + f(b())).to_bits(),
            Op::SubF => (f(a()) - f(b())).to_bits(),
            Op::MulF => (f(a()) * f(b())).to_bits(),
            Op::DivF => (f(a()) / f(b())).to_bits(),
            Op::ToFloat => (a() as i64 as f64).to_bits(),
            // Values are held as bits: a float's bits are its int image and back.
            Op::FBits | Op::BitsF => a(),
            Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::Eq | Op::Ne | Op::ULt | Op::FNLt | Op::FNLe => {
                let ord = match trace.ty(inst.a) {
                    Ty::Float => f(a()).partial_cmp(&f(b())),
                    _ if inst.op == Op::ULt => Some(a().cmp(&b())),
                    _ => Some((a() as i64).cmp(&(b() as i64))),
                };
                if !inst.op.compare_holds(ord) {
                    // A refunding guard gives back its `Fuel`'s charge (`imm`, else 0).
                    *budget = budget.saturating_add(inst.imm as u64);
                    return exit(trace, layout, mem, vals, inst.snap).map(Some);
                }
                continue;
            }
            Op::Call => (trace.calls[inst.imm as usize])(a() as i64, b() as i64) as u64,
            Op::Fuel => {
                match budget.checked_sub(inst.imm as u64) {
                    Some(left) => *budget = left,
                    None => return exit(trace, layout, mem, vals, inst.snap).map(Some),
                }
                continue;
            }
            Op::SLoadT => {
                let slot = inst.op.slot_of(inst.imm).unwrap_or(0);
                let (tag, payload) = layout
                    .read(mem, slot)
                    .ok_or(InterpError::SlotOutOfBounds(slot))?;
                if tag != (inst.imm as u64) >> 32 {
                    return exit(trace, layout, mem, vals, inst.snap).map(Some);
                }
                payload
            }
            Op::SqrtF => crate::vm::builtins::sqrt(f(a())).to_bits(),
            Op::ToInt => (f(a()) as i64) as u64,
            // VM calls need a VM, heap accesses need real heap objects: function traces and
            // traces over arrays are checked against the interpreter instead.
            Op::LdI | Op::LdF | Op::LdB | Op::LdH | Op::SAddr | Op::StI | Op::StF | Op::StB => {
                return Err(InterpError::NeedsVm)
            }
            Op::CArgI
            | Op::CArgF
            | Op::CallV
            | Op::CResI
            | Op::CResF
            | Op::RetI
            | Op::RetF
            | Op::RetN
            | Op::CallD
            | Op::Links => return Err(InterpError::NeedsVm),
        };
        vals[r] = v;
    }
    Ok(None)
}

fn exit(
    trace: &Trace,
    layout: &SlotLayout,
    mem: &mut [u8],
    vals: &[u64],
    snap: u32,
) -> Result<Exit, InterpError> {
    let s = &trace.resolved(snap);
    write_back(trace, layout, mem, vals, s)?;
    Ok(Exit { snap, pc: s.pc })
}

fn write_back(
    trace: &Trace,
    layout: &SlotLayout,
    mem: &mut [u8],
    vals: &[u64],
    s: &Snapshot,
) -> Result<(), InterpError> {
    for e in &s.entries {
        let tag = layout.tag_of(trace.ty(e.val)).unwrap_or(0);
        if !layout.write(mem, e.slot, tag, vals[e.val as usize]) {
            return Err(InterpError::SlotOutOfBounds(e.slot));
        }
    }
    Ok(())
}
