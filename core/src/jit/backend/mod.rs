//! Code generation: one [`Backend`] trait, one implementation per architecture.
//!
//! Glossary
//! - *target* (`<arch>/target.rs`): registers, their roles and the calling convention;
//! - *emit* (`<arch>/emit.rs`): the `dynasm!` templates, including the slot load/store and tag
//!   guard shapes parameterised by a [`SlotLayout`];
//! - *isel* (`<arch>/isel.rs`): walks the optimised, allocated trace and picks templates.
//!
//! Native calling convention of a compiled trace (both architectures):
//! `extern "C" fn(slots: *mut u8) -> u32`: `slots` points at VM slot 0, the return value is the
//! exit (snapshot) number; before returning, the exit stub has written the snapshot's slots.
//!
//! Both backends build on every host (their bytes are unit-tested everywhere); [`Native`] names
//! the one that can run here, chosen by `cfg`.
use liballoc::vec::Vec;

use crate::jit::buffer::BufferError;
use crate::jit::ir::Trace;
use crate::jit::opt::{optimize, OptError};
use crate::jit::regalloc::{allocate, Allocation, Loc, RegPool};
use crate::jit::slots::{LayoutError, SlotLayout};

pub mod aarch64;
pub mod x86_64;

/// The backend that runs on this host, if any.
#[cfg(target_arch = "x86_64")]
pub type Native = x86_64::X64;
/// The backend that runs on this host, if any.
#[cfg(target_arch = "aarch64")]
pub type Native = aarch64::A64;

/// Why a trace could not be compiled (the VM then keeps interpreting the loop).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompileError {
    /// The optimiser refused the trace.
    Opt(OptError),
    /// The VM's slot layout is unusable.
    Layout(LayoutError),
    /// Assembling failed (e.g. a branch out of range).
    Buffer(BufferError),
    /// A slot offset does not fit the addressing mode.
    SlotTooFar,
    /// More spill slots than the frame can address.
    TooManySpills,
    /// More exits than the exit-number encoding allows.
    TooManyExits,
}

impl From<OptError> for CompileError {
    fn from(e: OptError) -> Self {
        CompileError::Opt(e)
    }
}
impl From<BufferError> for CompileError {
    fn from(e: BufferError) -> Self {
        CompileError::Buffer(e)
    }
}
impl From<LayoutError> for CompileError {
    fn from(e: LayoutError) -> Self {
        CompileError::Layout(e)
    }
}

/// One architecture's code generator.
pub trait Backend {
    /// The registers the allocator may hand out.
    const POOL: RegPool;
    /// Assembles an optimised, allocated trace into position-independent machine code.
    fn assemble(
        t: &Trace,
        alloc: &Allocation,
        layout: &SlotLayout,
    ) -> Result<Vec<u8>, CompileError>;
}

/// A compiled trace: the optimised IR (whose snapshots give each exit's resume pc) and code.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The optimised trace; exit `n` resumes at `trace.snaps[n].pc`.
    pub trace: Trace,
    /// Machine code, placement-free.
    pub code: Vec<u8>,
}

/// Optimises, allocates and assembles a recorded trace for backend `B`.
pub fn compile<B: Backend>(
    recorded: &Trace,
    layout: &SlotLayout,
) -> Result<Compiled, CompileError> {
    layout.validate()?;
    let trace = optimize(recorded)?;
    let alloc = allocate(&trace, &B::POOL);
    let code = B::assemble(&trace, &alloc, layout)?;
    Ok(Compiled { trace, code })
}

/// The source of a move: a location or a constant's bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Src {
    /// A register or spill slot.
    Loc(Loc),
    /// A constant (bits of an int or float).
    Const(i64),
}

/// Orders a parallel move (every source read before any target written) into single moves,
/// breaking cycles through `temp` (a location no move names). `emit(dst, src)` does one move.
pub fn sequentialize(mut moves: Vec<(Loc, Src)>, temp: Loc, mut emit: impl FnMut(Loc, Src)) {
    moves.retain(|&(d, s)| s != Src::Loc(d));
    while !moves.is_empty() {
        let ready = moves
            .iter()
            .position(|&(d, _)| !moves.iter().any(|&(_, s)| s == Src::Loc(d)));
        match ready {
            Some(i) => {
                let (d, s) = moves.remove(i);
                emit(d, s);
            }
            None => {
                // Every target is still someone's source: a cycle. Park one target in `temp`.
                let d = moves[0].0;
                emit(temp, Src::Loc(d));
                for m in moves.iter_mut() {
                    if m.1 == Src::Loc(d) {
                        m.1 = Src::Loc(temp);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use liballoc::vec;

    /// Simulates the emitted moves on a register file and checks parallel semantics.
    #[test]
    fn parallel_moves_with_cycles() {
        let r = Loc::Reg;
        let moves = vec![
            (r(1), Src::Loc(r(2))),
            (r(2), Src::Loc(r(1))),
            (r(3), Src::Loc(r(1))),
            (r(4), Src::Const(9)),
            (r(5), Src::Loc(r(6))),
            (r(6), Src::Loc(r(7))),
            (r(7), Src::Loc(r(5))),
        ];
        let mut file = [0i64, 10, 20, 30, 40, 50, 60, 70, 0];
        let before = file;
        sequentialize(moves, r(8), |d, s| {
            let v = match s {
                Src::Const(c) => c,
                Src::Loc(Loc::Reg(x)) => file[x as usize],
                _ => unreachable!(),
            };
            if let Loc::Reg(x) = d {
                file[x as usize] = v;
            }
        });
        assert_eq!(
            &file[1..8],
            &[before[2], before[1], before[1], 9, before[6], before[7], before[5]]
        );
    }
}
