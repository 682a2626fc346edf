//! Code generation: one [`Backend`] trait, one implementation per architecture.
//!
//! Glossary
//! - *target* (`<arch>/target.rs`): registers, their roles and the calling convention;
//! - *emit* (`<arch>/emit.rs`): the `dynasm!` templates, including the slot load/store and tag
//!   guard shapes parameterised by a [`SlotLayout`];
//! - *isel* (`<arch>/isel.rs`): walks the optimised, allocated trace and picks templates.
//!
//! Native calling convention of a compiled trace (both architectures):
//! `extern "C" fn(slots: *mut u8, frame: *mut u64) -> u32`: `slots` points at VM slot 0,
//! `frame` at an [`ExitFrame`]; the return value is the exit (snapshot) number.
//!
//! Side exits (LuaJIT style): each guard jumps to a two-instruction stub (`exit number ->
//! return register; jump`) and one shared handler dumps every allocatable register into the
//! exit frame and returns. [`Compiled::restore`] then writes the snapshot's values (from the
//! dump, the frame's spill slots, or constants) into the VM slots with their tags. Code size
//! stays linear in the number of guards however many slots each snapshot names.
//!
//! ```text
//!   ExitFrame words:  [0, 32) int registers by number | [32, 64) float registers
//!                     | 64: fuel left | [65, ..) spills
//! ```
//!
//! Fuel: the VM charges fuel at every taken backward jump (see [`Vm`](crate::vm::Vm)). A
//! trace's `Fuel` instruction does the same with the count in the frame's fuel word: when
//! less than its cost is left it leaves through its snapshot, which resumes the interpreter
//! *at* the backward jump with nothing charged, so the interpreter raises `OutOfFuel` at
//! the same instruction with the same fuel left. A refunding guard (a comparison guard with
//! `imm` > 0, see [`crate::jit::ir`]) adds `imm` back to the fuel word in its exit stub,
//! before any write-back or link. The caller puts the budget into the frame before entering
//! ([`ExitFrame::set_fuel`]) and takes what is left after the exit. A loop trace without calls
//! keeps the count in a register while it runs (`fuel_in_register`): loaded after the
//! prologue, stored back first thing in every exit stub, so the word is exact whenever the
//! trace is left.
//!
//! Both backends build on every host (their bytes are unit-tested everywhere); [`Native`] names
//! the one that can run here, chosen by `cfg`.
use alloc::vec::Vec;
use core::cell::OnceCell;

use crate::jit::buffer::BufferError;
use crate::jit::ir::snapshot::Snapshot;
use crate::jit::ir::{Trace, Ty};
use crate::jit::opt::{optimize_with, OptError};
use crate::jit::regalloc::{allocate, Allocation, Loc, RegPool};
use crate::jit::slots::{LayoutError, SlotLayout};

pub mod aarch64;
pub mod link;
pub mod x86_64;

pub use link::ExitLinks;
use link::{EntryChecks, ExitKnowledge, ExitsKnown, Known, RegEntry, RegLinks};

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
    /// The registers the allocator may hand out in a function trace: fewer callee-saved ones,
    /// so the prologue and epilogue of every native call save and restore fewer.
    const FUNC_POOL: RegPool;
    /// [`Self::POOL`] without [`Self::FUEL_REG`], for the traces that keep the fuel left in
    /// that register (`fuel_in_register`).
    const FUEL_POOL: RegPool;
    /// The callee-saved register that holds the fuel left in a trace that
    /// `fuel_in_register` accepts.
    const FUEL_REG: u8;
    /// Assembles an optimised, allocated trace into position-independent machine code whose
    /// exits are numbered and linked as `links` says, with `entry`'s checks in front of its
    /// fast entry, exit stubs that write back as `plans` says (none: every exit returns to
    /// the host) and the register links of `reg` (see [`link`]).
    fn assemble(
        t: &Trace,
        alloc: &Allocation,
        layout: &SlotLayout,
        links: &ExitLinks,
        entry: &EntryChecks,
        plans: Option<&[link::ExitPlan]>,
        reg: &RegLinks<'_>,
    ) -> Result<Assembled, CompileError>;

    /// Bytes from a trace's start to the end of its prologue: where a linked exit of another
    /// trace jumps in (every loop trace's prologue is the same).
    fn entry_offset() -> usize;

    /// The same for a function trace (a trace ending in `RetI`/`RetF`/`RetN`), whose prologue
    /// saves only the callee-saved registers of [`Self::FUNC_POOL`].
    fn func_entry_offset() -> usize;
}

/// A backend's output: the code and where its fast entry is.
#[derive(Clone, Debug)]
pub struct Assembled {
    /// Machine code, placement-free.
    pub code: Vec<u8>,
    /// Bytes from the start to the fast entry (past the entry checks; the checked entry is
    /// [`Backend::entry_offset`]).
    pub fast_entry: usize,
    /// Bytes from the start to the register entry (past the leading `SLoad`s).
    pub reg_entry: usize,
}

/// First word of the int register dump in an [`ExitFrame`].
pub const DUMP_INT: usize = 0;
/// First word of the float register dump.
pub const DUMP_FLOAT: usize = 32;
/// The word holding the fuel left (charged by `Fuel` instructions).
pub const FUEL: usize = 64;
/// First spill slot word.
pub const SPILL_BASE: usize = 65;

/// The memory a running trace keeps its spill slots in and dumps its registers to on exit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExitFrame {
    words: Vec<u64>,
}

impl ExitFrame {
    /// A frame for a trace with `spill_slots` spill slots.
    pub fn new(spill_slots: u32) -> Self {
        Self {
            words: alloc::vec![0; SPILL_BASE + spill_slots as usize],
        }
    }

    /// The pointer native code gets.
    pub fn as_mut_ptr(&mut self) -> *mut u64 {
        self.words.as_mut_ptr()
    }

    /// Sets the fuel the trace may charge (before entering it).
    pub fn set_fuel(&mut self, fuel: u64) {
        self.words[FUEL] = fuel;
    }

    /// The fuel left (after an exit).
    pub fn fuel(&self) -> u64 {
        self.words[FUEL]
    }

    /// Number of words (native code may touch all of them).
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// Word `i` of the frame, if it has one.
    pub fn word(&self, i: usize) -> Option<u64> {
        self.words.get(i).copied()
    }

    /// Never empty: the register dump is always there.
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// The frame word that holds a value at `loc` after an exit.
    fn word_of(loc: Loc, float: bool) -> Option<usize> {
        Some(match loc {
            Loc::Reg(r) if float => DUMP_FLOAT + r as usize,
            Loc::Reg(r) => DUMP_INT + r as usize,
            Loc::Spill(n) => SPILL_BASE + n as usize,
            Loc::None => return None,
        })
    }
}

/// The host's restore of one exit, worked out once from its resolved snapshot and the register
/// allocation: per entry the slot, the type, and where the bits come from (a constant, or a
/// word of the exit frame). Restoring then reads no IR. (The native write-back of a linked
/// exit is [`link::ExitPlan`]: it skips dead entries, which the host must see.)
#[derive(Clone, Debug)]
struct RestorePlan {
    pc: u32,
    entries: Vec<RestoreEntry>,
}

/// One slot of a [`RestorePlan`].
#[derive(Clone, Copy, Debug)]
struct RestoreEntry {
    slot: u32,
    ty: Ty,
    dead: bool,
    /// The exit-frame word holding the bits, or [`RestoreEntry::IMM`]: the bits are `imm`.
    word: u32,
    imm: u64,
}

impl RestoreEntry {
    const IMM: u32 = u32::MAX;
}

/// Why an exit could not be restored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestoreError {
    /// The exit number names no snapshot.
    BadExit(u32),
    /// The slot array is too short for a snapshot entry.
    SlotOutOfBounds(u32),
    /// The frame is too small for the trace's spill slots.
    BadFrame,
}

/// A compiled trace: the optimised IR (whose snapshots give each exit's resume pc), where each
/// value lives, the slot layout, and the code.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The optimised trace; exit `n` resumes at `trace.snaps[n].pc`.
    pub trace: Trace,
    /// Register allocation (read by [`restore`](Self::restore)).
    pub alloc: Allocation,
    /// The VM slot layout the code was built for.
    pub layout: SlotLayout,
    /// Machine code, placement-free.
    pub code: Vec<u8>,
    /// How the exits are numbered and linked.
    pub links: ExitLinks,
    /// Bytes from the start to the fast entry (see [`link`]).
    pub fast_entry: usize,
    /// Bytes from the start to the register entry, and the registers it expects the leading
    /// `SLoad`s' values in (empty: no register entry).
    pub reg_entry: (usize, Vec<(u32, Ty, Loc)>),
    /// What the checked entry verifies and the fast entry assumes.
    pub requires: ExitKnowledge,
    /// What each exit knows of the slots after its write-back.
    pub exit_known: ExitsKnown,
    /// Each exit's write-back plan (from its resolved snapshot, see `jit/ir/snapshot.rs`),
    /// made at its first use.
    plans: Vec<OnceCell<Result<RestorePlan, RestoreError>>>,
}

impl Compiled {
    fn new(
        trace: Trace,
        alloc: Allocation,
        layout: SlotLayout,
        asm: Assembled,
        links: ExitLinks,
        entry: EntryChecks,
        exit_known: ExitsKnown,
    ) -> Compiled {
        let plans = (0..trace.snaps.len()).map(|_| OnceCell::new()).collect();
        // What the registers hold at the register entry: a load whose value died at once
        // may share its register with a later one, which then holds the later value.
        let values: Vec<(u32, Ty, Loc)> = (0..entry.loads)
            .filter(|&r| {
                let float = |q: usize| trace.insts[q].ty == Ty::Float;
                let reused = (r + 1..entry.loads)
                    .any(|q| alloc.locs[q] == alloc.locs[r] && float(q) == float(r));
                alloc.locs[r] != Loc::None && !reused
            })
            .map(|r| (trace.insts[r].imm as u32, trace.insts[r].ty, alloc.locs[r]))
            .collect();
        // Only registers: a linking exit's moves must not write the shared spill area. And
        // only when the requirements give every leading load's tag (a linking exit knows
        // them; nothing past the register entry checks them).
        let in_regs = values.iter().all(|v| matches!(v.2, Loc::Reg(_)));
        let covered = (0..entry.loads).all(|r| {
            let i = &trace.insts[r];
            layout
                .tag_of(i.ty)
                .is_some_and(|g| entry.covers(r, i.imm as u32, g))
        });
        let reg_entry = match in_regs && covered && !values.is_empty() {
            true => (asm.reg_entry, values),
            false => (asm.reg_entry, Vec::new()),
        };
        Compiled {
            trace,
            alloc,
            layout,
            code: asm.code,
            links,
            fast_entry: asm.fast_entry,
            reg_entry,
            requires: entry.checks,
            exit_known,
            plans,
        }
    }

    /// The register entry of this trace, installed at `base`, as a linker is compiled against
    /// it (`None`: it has none); `pc` is its start.
    pub fn reg_entry_at(&self, base: u64, pc: u32) -> Option<RegEntry> {
        let (offset, values) = &self.reg_entry;
        (!values.is_empty()).then(|| RegEntry {
            pc,
            addr: base + *offset as u64,
            values: values.clone(),
            requires: self.requires.clone(),
        })
    }

    /// Whether exit `n` may jump to the fast entry of a trace that requires `need`.
    pub fn exit_gives(&self, n: usize, need: &[(u32, Known)]) -> bool {
        need.is_empty() || self.exit_known.gives(n, need)
    }

    /// Exit `exit`'s write-back plan.
    fn plan(&self, exit: u32) -> Result<RestorePlan, RestoreError> {
        let own = self
            .trace
            .snaps
            .get(exit as usize)
            .ok_or(RestoreError::BadExit(exit))?;
        let resolved;
        let snap: &Snapshot = if own.is_delta() {
            resolved = self.trace.resolved(exit);
            &resolved
        } else {
            own
        };
        let mut entries = Vec::with_capacity(snap.entries.len());
        for e in &snap.entries {
            let (ty, word, imm) = if e.dead {
                // The constant int 0, for the rare slot that holds a heap value.
                (Ty::Int, RestoreEntry::IMM, 0)
            } else {
                let inst = self.trace.inst(e.val);
                if inst.op.is_const() {
                    (inst.ty, RestoreEntry::IMM, inst.imm as u64)
                } else {
                    let loc = self.alloc.locs[e.val as usize];
                    let word = ExitFrame::word_of(loc, inst.ty == Ty::Float)
                        .ok_or(RestoreError::BadFrame)?;
                    (inst.ty, word as u32, 0)
                }
            };
            entries.push(RestoreEntry {
                slot: e.slot,
                ty,
                dead: e.dead,
                word,
                imm,
            });
        }
        Ok(RestorePlan {
            pc: snap.pc,
            entries,
        })
    }

    /// A fresh exit frame for this trace.
    pub fn frame(&self) -> ExitFrame {
        ExitFrame::new(self.alloc.spill_slots)
    }

    /// Number of slots the trace reads or writes (highest index plus one).
    pub fn min_slots(&self) -> u32 {
        let checked = self.requires.last().map(|e| e.0);
        self.trace.max_slot().max(checked).map_or(0, |s| s + 1)
    }

    /// After native code returned `exit`, hands each snapshot entry to
    /// `put(slot, type, bits, dead)` and returns the pc to resume at. A VM stores the values its
    /// own way (e.g. assigning typed values, so whatever the slot held before is dropped
    /// properly). For a dead entry (see `jit/ir/snapshot.rs`) the VM stores the value only
    /// if the slot holds a heap value; it leaves any other value in place.
    pub fn restore_with(
        &self,
        exit: u32,
        frame: &ExitFrame,
        mut put: impl FnMut(u32, Ty, u64, bool) -> Result<(), RestoreError>,
    ) -> Result<u32, RestoreError> {
        let plan = self
            .plans
            .get(exit as usize)
            .ok_or(RestoreError::BadExit(exit))?
            .get_or_init(|| self.plan(exit))
            .as_ref()
            .map_err(|e| *e)?;
        for e in &plan.entries {
            let bits = if e.word == RestoreEntry::IMM {
                e.imm
            } else {
                frame.word(e.word as usize).ok_or(RestoreError::BadFrame)?
            };
            put(e.slot, e.ty, bits, e.dead)?;
        }
        Ok(plan.pc)
    }

    /// [`restore_with`](Self::restore_with) into a byte image of the slot array, laid out by
    /// the trace's [`SlotLayout`]. A dead entry is skipped when the slot's tag is a scalar's
    /// ([`SlotLayout::scalar_tags_max`]; without it, every tag counts as a heap value's).
    pub fn restore(
        &self,
        exit: u32,
        frame: &ExitFrame,
        slots: &mut [u8],
    ) -> Result<u32, RestoreError> {
        let layout = self.layout;
        self.restore_with(exit, frame, |slot, ty, bits, dead| {
            let held = layout.read(slots, slot).map(|(tag, _)| tag);
            if dead && layout.scalar_tags_max.is_some_and(|max| held <= Some(max)) {
                return Ok(());
            }
            let tag = layout.tag_of(ty).unwrap_or(0);
            if layout.write(slots, slot, tag, bits) {
                Ok(())
            } else {
                Err(RestoreError::SlotOutOfBounds(slot))
            }
        })
    }
}

/// Optimises, allocates and assembles a recorded trace for backend `B`; every exit returns
/// to the host with its snapshot number.
pub fn compile<B: Backend>(
    recorded: &Trace,
    layout: &SlotLayout,
) -> Result<Compiled, CompileError> {
    compile_linked::<B>(recorded, layout, &ExitLinks::default())
}

/// [`compile`] with exits numbered and linked as `links` says.
pub fn compile_linked<B: Backend>(
    recorded: &Trace,
    layout: &SlotLayout,
    links: &ExitLinks,
) -> Result<Compiled, CompileError> {
    compile_with::<B>(recorded, layout, links, None, None)
}

/// [`compile_linked`], with the snapshot entries of slots dead at their exit's pc dropped
/// (`live(pc, slot)`, see [`crate::jit::opt::optimize_purged`]).
pub fn compile_purged<B: Backend>(
    recorded: &Trace,
    layout: &SlotLayout,
    links: &ExitLinks,
    live: &dyn Fn(u32, u32) -> bool,
) -> Result<Compiled, CompileError> {
    compile_with::<B>(recorded, layout, links, Some(live), None)
}

/// Where a loop or side trace starts, and for a side trace what the exit it was recorded
/// from knows of the slots there: what its checked entry verifies (see [`link`]).
#[derive(Clone, Copy, Debug)]
pub struct TraceStart<'a> {
    /// The start pc (the start exit resumes there).
    pub pc: u32,
    /// A side trace's: the knowledge of the exit it continues; `None` for a loop trace.
    pub inherited: Option<&'a [(u32, Known)]>,
    /// The trace installed where the trace ends, if it has a register entry: the exits that
    /// resume there and know what it requires jump into it with its values in its registers.
    pub ends_in: Option<&'a RegEntry>,
}

/// [`compile_purged`] with a checked and a fast entry (see [`link`]).
pub fn compile_entered<B: Backend>(
    recorded: &Trace,
    layout: &SlotLayout,
    links: &ExitLinks,
    live: &dyn Fn(u32, u32) -> bool,
    start: TraceStart<'_>,
) -> Result<Compiled, CompileError> {
    compile_with::<B>(recorded, layout, links, Some(live), Some(start))
}

/// [`compile_purged`] when `live` is given, else [`compile_linked`]; with entry checks when
/// `start` is given.
fn compile_with<B: Backend>(
    recorded: &Trace,
    layout: &SlotLayout,
    links: &ExitLinks,
    live: Option<&dyn Fn(u32, u32) -> bool>,
    start: Option<TraceStart<'_>>,
) -> Result<Compiled, CompileError> {
    layout.validate()?;
    // A loop trace's slot loads go first (see `opt::loads_first`).
    let front = match start {
        Some(s)
            if s.inherited.is_none() && links.table != 0 && layout.scalar_tags_max.is_some() =>
        {
            crate::jit::opt::loads_first(recorded, s.pc)
        }
        _ => None,
    };
    let recorded = front.as_ref().unwrap_or(recorded);
    let mut trace = optimize_with(recorded, live)?;
    let entry = match start {
        Some(s) if links.table != 0 => EntryChecks::plan(&mut trace, layout, s.pc, s.inherited),
        _ => EntryChecks::none(&trace),
    };
    let pool = if fuel_in_register(&trace) {
        B::FUEL_POOL
    } else {
        B::POOL
    };
    let alloc = allocate(&trace, &pool);
    let stubs = link::exit_plans(&trace, links, &alloc, layout, &entry);
    let known = ExitsKnown::of(&trace, layout, stubs.as_deref(), &entry);
    let reg = RegLinks::new(&trace, start.and_then(|s| s.ends_in), &known);
    let asm = B::assemble(
        &trace,
        &alloc,
        layout,
        links,
        &entry,
        stubs.as_deref(),
        &reg,
    )?;
    Ok(Compiled::new(
        trace, alloc, *layout, asm, *links, entry, known,
    ))
}

/// Like [`compile`], for a trace that does not loop (a function trace, see `jit::func`).
pub fn compile_linear<B: Backend>(
    recorded: &Trace,
    layout: &SlotLayout,
) -> Result<Compiled, CompileError> {
    layout.validate()?;
    let trace = crate::jit::opt::optimize_linear(recorded)?;
    let alloc = allocate(&trace, &B::FUNC_POOL);
    let links = ExitLinks::default();
    let entry = EntryChecks::none(&trace);
    let reg = RegLinks::default();
    let asm = B::assemble(&trace, &alloc, layout, &links, &entry, None, &reg)?;
    Ok(Compiled::new(
        trace,
        alloc,
        *layout,
        asm,
        links,
        entry,
        ExitsKnown::default(),
    ))
}

/// Whether loop trace `t` keeps the fuel left in [`Backend::FUEL_REG`] instead of the exit
/// frame's word: it loops and charges fuel, and makes no call (a native call charges the
/// frame's word; a runtime call might reach code that reads it; the inline runtime calls of
/// [`InlineCall`] do not, and preserve the register). Such a trace loads the word
/// into the register right after its prologue (where linked exits of other traces enter
/// too), charges the register (`sub reg, k; jb exit`: no load-modify-store of memory on the
/// loop's back edge, a chain through memory of about five cycles per iteration), and stores
/// the register back first thing in every exit stub, before any refund, write-back or link.
pub(crate) fn fuel_in_register(t: &Trace) -> bool {
    t.loop_ref().is_some()
        && t.insts.iter().any(|i| i.op == crate::jit::ir::Op::Fuel)
        && !(0..t.insts.len()).any(|r| t.insts[r].op.is_call() && InlineCall::at(t, r).is_none())
}

/// A runtime call whose common case both backends emit inline, in front of the call they
/// still make for the rest (each backend's `isel/heap.rs`). Such a call clobbers only its
/// argument registers ([`RegPool::int_args`](crate::jit::regalloc::RegPool)) and the
/// backend's scratch registers: the inline part uses nothing else, and the path that calls
/// Rust saves every other caller-saved register the trace allocates into the exit frame's
/// register dump around the call. So values stay in registers across it, and a loop trace
/// whose only calls are these keeps its fuel in a register ([`fuel_in_register`]).
///
/// Copies (`PutElement`, `StrStore`, `MoveHeap`): a string or array value copied from one
/// 16-byte value to another with the interpreter's reference counting, when no count reaches
/// zero. Only the drop of a value's last reference needs Rust (it frees the object and gives
/// its bytes back to the VM's meter); that case, a `StrStore` source that holds no string and
/// a `MoveHeap` source that holds no heap value make the call, with nothing changed yet.
///
/// ```text
///   ARG0 = dst, ARG1 = src (the call's two arguments, both addresses of values)
///   new = *src                                      tag, payload
///   StrStore: new.tag != TAG_STR              -> call (it answers -1)
///   MoveHeap: new.tag < FIRST_HEAP_TAG        -> call (it answers -1)
///   old = *dst
///   old.tag >= FIRST_HEAP_TAG:
///       strong(old) == 1                      -> call (the last reference: Rust drops it)
///       strong(old) -= 1
///   new.tag >= FIRST_HEAP_TAG: strong(new) += 1
///   *dst = new; result 0
///   strong(p) = the word at p + RC_STRONG_OFFSET (p: a heap value's payload)
/// ```
///
/// The old count is tested before anything is written, so the call finds the values as the
/// trace left them. A count never reaches zero inline, and one that was at least 2 before
/// `-= 1` cannot be the last reference of `new` either (when `dst` and `src` name one object,
/// both counts are the same word: 2 or more, down one, up one).
///
/// Comparison (`StrRel`, `==`, `<` or `<=` of two strings in VM registers): the same object is
/// equal; two texts stored inside their objects compare their rooms a word at a time, as
/// `Text::cmp` does; anything else (a register without a string, a long text) makes the call.
///
/// ```text
///   ARG0 = slot 0's address; the constant second argument names slots x, y and the relation
///   x.tag != TAG_STR or y.tag != TAG_STR      -> call (it answers -1)
///   px == py                                  -> equal
///   tag(text(px)) or tag(text(py)) != INSIDE  -> call
///   room words at 0, 8, 14 (the last overlaps the second: bytes 14..16 are equal by then):
///       first differing pair, byte-swapped    -> less or greater (unsigned)
///   len(px) vs len(py)                        -> less, equal or greater
///   result: the relation's truth (1 or 0)
///   text(p) = p + STR_TEXT_OFFSET: tag byte, len byte, INLINE_TEXT bytes of room (zeros past len)
/// ```
///
/// Push (`PushInt`, `push(a, x)` of an int onto the array in a VM register): an array with
/// room (`len < cap`) gets the int written at `len` and `len + 1`; a full array (its growth
/// is charged to the VM's meter) or a register without an array makes the call.
///
/// ```text
///   ARG0 = the register's address, ARG1 = x
///   tag != TAG_ARRAY or len(p) >= cap(p)      -> call
///   element(p, len(p)) = Int(x); len(p) += 1; result 0
///   len, cap, element: the words at p + ARRAY_LEN_OFFSET, ARRAY_CAP_OFFSET, ARRAY_PTR_OFFSET
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InlineCall {
    /// `put_element(slot, elem)`: a string or array element into a VM register.
    PutElement,
    /// `str_store(elem, src)`: a string in a VM register into an array element.
    StrStore,
    /// `str_rel(slots, packed)`: `==`, `<` or `<=` of two strings in VM registers.
    StrRel,
    /// `push_int(slot, x)`: an int pushed onto the array in a VM register.
    PushInt,
    /// `move_heap(dst, src)`: a string or array register moved into another register.
    MoveHeap,
}

impl InlineCall {
    /// The inline runtime call instruction `r` of `t` is, if it is one.
    pub(crate) fn at(t: &Trace, r: usize) -> Option<InlineCall> {
        let inst = t.insts.get(r)?;
        if inst.op != crate::jit::ir::Op::Call {
            return None;
        }
        let f = *t.calls.get(usize::try_from(inst.imm).ok()?)?;
        InlineCall::of(f)
    }

    /// The inline form of runtime function `f`, if it has one.
    pub(crate) fn of(f: crate::jit::ir::HostFn) -> Option<InlineCall> {
        use crate::jit::record::{array, strs};
        let known: [(crate::jit::ir::HostFn, InlineCall); 5] = [
            (array::put_element, InlineCall::PutElement),
            (strs::str_store, InlineCall::StrStore),
            (strs::str_rel, InlineCall::StrRel),
            (array::push_int, InlineCall::PushInt),
            (array::move_heap, InlineCall::MoveHeap),
        ];
        known
            .into_iter()
            .find(|&(g, _)| g as usize == f as usize)
            .map(|(_, kind)| kind)
    }
}

/// The caller-saved registers an inline runtime call keeps across its call of Rust (see
/// [`InlineCall`]): the int and float registers of `pool` that trace `t` allocates, other
/// than the call's argument registers. Each backend saves them in the exit frame's register
/// dump around that call.
pub(crate) struct Kept {
    /// Int register numbers.
    pub ints: Vec<u8>,
    /// Float register numbers.
    pub floats: Vec<u8>,
}

impl Kept {
    /// The registers to keep in trace `t` allocated as `alloc` from `pool`.
    pub(crate) fn of(t: &Trace, alloc: &Allocation, pool: &RegPool) -> Kept {
        let (mut ints, mut floats) = (0u64, 0u64);
        for (r, loc) in alloc.locs.iter().enumerate() {
            if let Loc::Reg(x) = *loc {
                if t.insts[r].ty == Ty::Float {
                    floats |= 1 << (x & 63);
                } else {
                    ints |= 1 << (x & 63);
                }
            }
        }
        let used = |m: u64| move |x: &&u8| m & (1 << (**x & 63)) != 0;
        Kept {
            ints: (pool.int_caller.iter())
                .filter(|x| !pool.int_args.contains(x))
                .filter(used(ints))
                .copied()
                .collect(),
            floats: (pool.float_caller.iter())
                .filter(used(floats))
                .copied()
                .collect(),
        }
    }
}

/// What a `StrRel` call's constant argument names: the two slots and the relation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct StrRelation {
    /// The left operand's slot.
    pub x: u32,
    /// The right operand's slot.
    pub y: u32,
    /// Whether the relation holds for equal strings (`==`, `<=`).
    pub holds_if_equal: bool,
    /// Whether the relation holds when `x` orders first (`<`, `<=`).
    pub holds_if_less: bool,
}

impl StrRelation {
    /// Unpacks `str_rel`'s second argument.
    pub(crate) fn unpack(packed: i64) -> Option<StrRelation> {
        let (holds_if_equal, holds_if_less) =
            crate::jit::record::strs::relation_truths(packed >> 32)?;
        Some(StrRelation {
            x: (packed & 0xffff) as u32,
            y: ((packed >> 16) & 0xffff) as u32,
            holds_if_equal,
            holds_if_less,
        })
    }
}

/// Per snapshot, the fuel its exit stub gives back first: the charge of the `Fuel` that owns
/// the snapshot (no other instruction exits through it) when the charge fits an `i32`, which
/// lets a backend charge before it tests (an exit then charges nothing); and the refund of a
/// refunding guard (see [`crate::jit::ir`]). Both backends read it.
pub(crate) fn fuel_refunds(t: &Trace) -> Vec<Option<i32>> {
    let n = t.snaps.len();
    let mut users = alloc::vec![0u32; n];
    for i in t.insts.iter().filter(|i| (i.snap as usize) < n) {
        users[i.snap as usize] += 1;
    }
    let mut refunds = alloc::vec![None; n];
    // A refunding guard's snapshot is its own (`Trace::validate`), its charge an `i32`.
    for i in t
        .insts
        .iter()
        .filter(|i| i.op.is_compare_guard() && i.imm > 0)
    {
        if let (Some(r), Ok(k)) = (refunds.get_mut(i.snap as usize), i32::try_from(i.imm)) {
            *r = Some(k);
        }
    }
    for i in t.insts.iter().filter(|i| i.op == crate::jit::ir::Op::Fuel) {
        let s = i.snap as usize;
        if let (Some(1), Ok(k)) = (users.get(s), i32::try_from(i.imm)) {
            refunds[s] = Some(k);
        }
    }
    refunds
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
    use alloc::vec;

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
