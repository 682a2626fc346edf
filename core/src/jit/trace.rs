//! The trace state machine: what the JIT is doing for each trace start (loop header, side-exit
//! resume pc, function entry), why traces abort, and how long the VM waits before a retry.
//!
//! ```text
//!            hot (counter reached threshold)          recording ended at the back edge
//!   Cold ---------------------------------> Recording ----------------------------> Compiled
//!    ^                                          |                                     (native code
//!    |  abort (attempts < MAX_ATTEMPTS)          | abort                                entered at the
//!    +------------------------------------------+                                      loop header)
//!                                               | abort (attempts == MAX_ATTEMPTS)
//!                                               v
//!                                          Blacklisted  (stays in the interpreter for good)
//!
//!   Traces::wait: Cold after n aborts -> PENALTY_MIN << (n - 1), plus 0..PENALTY_JITTER
//!   arrivals before the next attempt; Blacklisted -> u32::MAX (the VM's countdown never asks
//!   again in practice); otherwise 1.
//! ```
//!
//! Glossary
//! - *abort*: recording or compiling gave up; [`Abort`] is the one table of reasons (each with
//!   a message for the `[JIT]` log) — the recorder, optimiser, backends and installer all map
//!   their failures onto it, so the VM handles every failure the same way: keep interpreting.
//!
//! Invariants: at most one loop is `Recording` at a time; a `Blacklisted` loop never leaves that
//! state; `Compiled` holds the index of its installed trace.
use alloc::vec::Vec;

use crate::jit::backend::CompileError;
use crate::jit::install::InstallError;
use crate::jit::opt::OptError;

macro_rules! aborts {
    ($($name:ident $(($field:ty))? => $msg:literal;)*) => {
        /// Why a trace was abandoned.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Abort {
            $(#[doc = $msg] $name $(($field))?,)*
        }

        impl Abort {
            /// A short human-readable reason.
            pub fn message(&self) -> &'static str {
                match self {
                    $(aborts!(@pat $name $(($field))?) => $msg,)*
                }
            }
        }
    };
    (@pat $name:ident ($field:ty)) => { Abort::$name(_) };
    (@pat $name:ident) => { Abort::$name };
}

aborts! {
    Unsupported(u8)         => "bytecode the JIT does not handle (opcode byte attached)";
    UnsupportedType         => "a value type the JIT does not handle";
    LeftLoop                => "control left the loop before reaching its back edge";
    TooLong                 => "the trace grew past the instruction limit";
    TypeUnstable            => "a slot changes type around the loop";
    Malformed               => "the recorded IR failed validation (a recorder bug)";
    Codegen(CompileError)   => "the backend could not compile the trace";
    NoExecMemory            => "no executable memory left (or the JIT cap was reached)";
    Protect                 => "the platform refused to make code executable";
    InnerLoop               => "reached a loop header that has no trace yet";
    DivisionByZero          => "the recorded iteration divides an int by zero";
    FuncLoop                => "the function contains a loop (the loop JIT handles it)";
    CallResultBranch        => "a branch depends on a call result";
    TooManyArgs             => "a call passes more arguments than a function trace supports";
    UnsupportedOperand(u8)  => "bytecode whose operand or element types the JIT does not handle (opcode byte attached)";
    IndexOutOfRange         => "the recorded iteration indexes an array out of range";
    Recursive               => "a recursive call (the function JIT runs recursion)";
    InlineDepth             => "calls nest deeper than a loop trace follows them";
    WideFrames              => "the followed calls' frames need more than 256 registers";
    CallAtStart             => "the trace would start at a call it cannot follow";
    ExitAtStart             => "the side exit resumes at a return or a call the trace cannot make: nothing to record";
}

impl From<CompileError> for Abort {
    fn from(e: CompileError) -> Self {
        match e {
            CompileError::Opt(OptError::TypeUnstable { .. }) => Abort::TypeUnstable,
            CompileError::Opt(OptError::Ir(_) | OptError::AlreadyLooped) => Abort::Malformed,
            other => Abort::Codegen(other),
        }
    }
}

impl From<InstallError> for Abort {
    fn from(e: InstallError) -> Self {
        match e {
            InstallError::NoMemory | InstallError::Empty => Abort::NoExecMemory,
            InstallError::Protect => Abort::Protect,
        }
    }
}

/// Code words an entry into a loop trace must run natively to pay for itself: entering and
/// leaving native code costs about as much as interpreting this many words. The driver pauses
/// an installed trace whose entries average fewer (entries that end at a call stop, after
/// which native code goes on, are not counted).
pub const ENTRY_MIN_WORDS: u64 = 32;

/// Aborts after which a loop is blacklisted.
pub const MAX_ATTEMPTS: u8 = 3;

/// Arrivals (backward jumps or calls) the interpreter waits after a first abort before the
/// next attempt; each further abort doubles the wait and adds a random 0..[`PENALTY_JITTER`]
/// (LuaJIT's penalty), so two loops that abort together do not retry in lockstep.
pub const PENALTY_MIN: u32 = 64;
/// Exclusive bound of the random part of a wait.
pub const PENALTY_JITTER: u32 = 16;

/// The JIT's state for one trace start: a loop header, a side-exit resume pc, or a
/// function entry (the function JIT keys its traces the same way).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceState {
    /// Not (yet) hot; `aborts` earlier attempts failed.
    Cold {
        /// Failed attempts so far.
        aborts: u8,
    },
    /// The interpreter is recording this loop's next iteration.
    Recording {
        /// Failed attempts before this one.
        aborts: u8,
    },
    /// Native code exists; entered at the loop header.
    Compiled {
        /// Index of the installed trace.
        trace: usize,
    },
    /// Gave up on this loop.
    Blacklisted,
}

impl Default for TraceState {
    fn default() -> Self {
        TraceState::Cold { aborts: 0 }
    }
}

/// What the interpreter should do at a loop header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Keep interpreting.
    Interpret,
    /// Start recording this iteration.
    Record,
    /// Enter installed trace `n`.
    Enter(usize),
}

/// The bit of a trace id that marks a second trace from the same start (the driver's
/// siblings); ids are otherwise `(function << 32) | pc`.
pub(crate) const SIBLING: u64 = 1 << 63;

/// A value per trace start, found in O(1): a dense table per function (and one more for the
/// [`SIBLING`] ids), indexed by pc, grown on the first write past its end (a start never
/// written reads as `T::default()`). The driver looks up a start on every entry and every
/// exit, so a map's search would be paid on each.
#[derive(Debug)]
pub(crate) struct PcTable<T> {
    funcs: Vec<Vec<T>>,
}

impl<T> Default for PcTable<T> {
    fn default() -> Self {
        Self { funcs: Vec::new() }
    }
}

impl<T: Copy + Default> PcTable<T> {
    fn split(id: u64) -> (usize, usize) {
        let func = ((id & !SIBLING) >> 32) as usize;
        (
            2 * func + usize::from(id & SIBLING != 0),
            id as u32 as usize,
        )
    }

    /// The value at `id` (the default if never written).
    #[inline]
    pub(crate) fn get(&self, id: u64) -> T {
        let (func, pc) = Self::split(id);
        self.funcs
            .get(func)
            .and_then(|f| f.get(pc))
            .copied()
            .unwrap_or_default()
    }

    /// The value at `id`, for writing (grows the tables to hold it).
    pub(crate) fn get_mut(&mut self, id: u64) -> &mut T {
        let (func, pc) = Self::split(id);
        if self.funcs.len() <= func {
            self.funcs.resize_with(func + 1, Vec::new);
        }
        let f = &mut self.funcs[func];
        if f.len() <= pc {
            f.resize(pc + 1, T::default());
        }
        &mut f[pc]
    }

    /// Sets the value at `id`.
    pub(crate) fn set(&mut self, id: u64, v: T) {
        *self.get_mut(id) = v;
    }
}

/// Why a transition was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateError {
    /// Another loop is already being recorded.
    Busy,
    /// The loop is not in the state the event needs.
    WrongState,
}

/// The per-loop state machine, keyed by a loop id (e.g. function index and header pc).
#[derive(Debug, Default)]
pub struct Traces {
    loops: PcTable<TraceState>,
    recording: Option<u64>,
    /// xorshift32 state for the random part of the penalty (fixed seed: runs reproduce).
    seed: u32,
}

impl Traces {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The state of loop `id`.
    #[inline]
    pub fn state(&self, id: u64) -> TraceState {
        self.loops.get(id)
    }

    /// What to do on arriving at loop header `id`, given whether its counter says it is hot.
    pub fn arrive(&mut self, id: u64, hot: bool) -> Action {
        match self.state(id) {
            TraceState::Compiled { trace } => Action::Enter(trace),
            TraceState::Cold { aborts } if hot && self.recording.is_none() => {
                self.loops.set(id, TraceState::Recording { aborts });
                self.recording = Some(id);
                Action::Record
            }
            _ => Action::Interpret,
        }
    }

    /// How many arrivals the interpreter should let pass before asking about `id` again:
    /// 1 for a compiled (or unknown) loop, the penalty for one that aborted, `u32::MAX` for
    /// a blacklisted one.
    pub fn wait(&mut self, id: u64) -> u32 {
        match self.state(id) {
            TraceState::Cold { aborts } if aborts > 0 => {
                self.seed = if self.seed == 0 {
                    0x9e37_79b9
                } else {
                    self.seed
                };
                self.seed ^= self.seed << 13;
                self.seed ^= self.seed >> 17;
                self.seed ^= self.seed << 5;
                let shift = u32::from(aborts - 1).min(16);
                (PENALTY_MIN << shift).saturating_add(self.seed % PENALTY_JITTER)
            }
            TraceState::Blacklisted => u32::MAX,
            _ => 1,
        }
    }

    /// The loop being recorded, if any.
    pub fn recording(&self) -> Option<u64> {
        self.recording
    }

    /// Recording or compiling `id` failed; returns the new state.
    /// An [`Abort::ExitAtStart`] blacklists at once: the instruction at the start never changes.
    pub fn abort(&mut self, id: u64, why: Abort) -> Result<TraceState, StateError> {
        let TraceState::Recording { aborts } = self.state(id) else {
            return Err(StateError::WrongState);
        };
        self.recording = None;
        let aborts = aborts.saturating_add(1);
        let next = if aborts >= MAX_ATTEMPTS || why == Abort::ExitAtStart {
            TraceState::Blacklisted
        } else {
            TraceState::Cold { aborts }
        };
        self.loops.set(id, next);
        Ok(next)
    }

    /// Recording `id` stopped for a reason that may go away (an inner loop without a trace
    /// yet): back to `Cold` without counting an abort.
    pub fn defer(&mut self, id: u64) -> Result<(), StateError> {
        let TraceState::Recording { aborts } = self.state(id) else {
            return Err(StateError::WrongState);
        };
        self.recording = None;
        self.loops.set(id, TraceState::Cold { aborts });
        Ok(())
    }

    /// `id` was compiled and installed as trace `trace`.
    pub fn compiled(&mut self, id: u64, trace: usize) -> Result<(), StateError> {
        if !matches!(self.state(id), TraceState::Recording { .. }) {
            return Err(StateError::WrongState);
        }
        self.recording = None;
        self.loops.set(id, TraceState::Compiled { trace });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pc_table_keeps_each_start_apart_and_reads_default_elsewhere() {
        let mut t: PcTable<u32> = PcTable::default();
        let id = |func: u64, pc: u64| (func << 32) | pc;
        assert_eq!(t.get(id(3, 40)), 0, "never written");
        t.set(id(3, 40), 7);
        t.set(id(0, 2), 5);
        *t.get_mut(id(3, 1)) += 2;
        assert_eq!(t.get(id(3, 40)), 7);
        assert_eq!(t.get(id(0, 2)), 5);
        assert_eq!(t.get(id(3, 1)), 2);
        assert_eq!(t.get(id(3, 41)), 0, "past the end of a function's table");
        assert_eq!(t.get(id(2, 40)), 0, "same pc, other function");
        assert_eq!(t.get(id(9, 0)), 0, "a function with no table");
        t.set(id(3, 40) | SIBLING, 9);
        assert_eq!(t.get(id(3, 40) | SIBLING), 9);
        assert_eq!(t.get(id(3, 40)), 7, "a sibling's entry is its own");
        assert_eq!(t.get(id(4, 40)), 0);
    }

    #[test]
    fn hot_loop_records_then_compiles_then_enters() {
        let mut t = Traces::new();
        assert_eq!(t.arrive(7, false), Action::Interpret);
        assert_eq!(t.arrive(7, true), Action::Record);
        assert_eq!(t.recording(), Some(7));
        assert_eq!(
            t.arrive(9, true),
            Action::Interpret,
            "one recording at a time"
        );
        t.compiled(7, 0).unwrap();
        assert_eq!(t.arrive(7, false), Action::Enter(0));
        assert_eq!(t.compiled(7, 1), Err(StateError::WrongState));
    }

    #[test]
    fn repeated_aborts_blacklist_the_loop() {
        let mut t = Traces::new();
        for n in 1..=MAX_ATTEMPTS {
            assert_eq!(t.arrive(3, true), Action::Record);
            let s = t.abort(3, Abort::Unsupported(0x2a)).unwrap();
            if n < MAX_ATTEMPTS {
                assert_eq!(s, TraceState::Cold { aborts: n });
            } else {
                assert_eq!(s, TraceState::Blacklisted);
            }
        }
        assert_eq!(t.arrive(3, true), Action::Interpret);
        assert_eq!(t.abort(3, Abort::TooLong), Err(StateError::WrongState));
    }

    #[test]
    fn retries_back_off_and_a_blacklisted_loop_waits_forever() {
        let mut t = Traces::new();
        assert_eq!(t.wait(4), 1, "an unknown loop is asked at once");
        let mut last = 0;
        for n in 1..=MAX_ATTEMPTS {
            assert_eq!(t.arrive(4, true), Action::Record);
            t.abort(4, Abort::TooLong).unwrap();
            let w = t.wait(4);
            if n < MAX_ATTEMPTS {
                let base = PENALTY_MIN << (n - 1);
                assert!((base..base + PENALTY_JITTER).contains(&w), "{n}: {w}");
                assert!(w > last, "the wait grows: {w} after {last}");
                last = w;
            } else {
                assert_eq!(w, u32::MAX);
            }
        }
        let mut u = Traces::new();
        u.arrive(1, true);
        u.abort(1, Abort::TooLong).unwrap();
        let waits: Vec<u32> = (0..8).map(|_| u.wait(1)).collect();
        let range = PENALTY_MIN..PENALTY_MIN + PENALTY_JITTER;
        assert!(waits.iter().all(|w| range.contains(w)), "{waits:?}");
        assert!(
            waits.iter().any(|w| *w != waits[0]),
            "random part: {waits:?}"
        );
        t.compiled(4, 0).unwrap_err();
    }

    #[test]
    fn a_deferred_recording_is_not_an_abort() {
        let mut t = Traces::new();
        for _ in 0..2 * MAX_ATTEMPTS {
            assert_eq!(t.arrive(5, true), Action::Record);
            t.defer(5).unwrap();
            assert_eq!(t.state(5), TraceState::Cold { aborts: 0 });
            assert_eq!(t.recording(), None);
        }
        assert_eq!(t.defer(5), Err(StateError::WrongState));
    }

    #[test]
    fn abort_reasons_have_messages() {
        let all = [
            Abort::Unsupported(1),
            Abort::UnsupportedType,
            Abort::LeftLoop,
            Abort::TooLong,
            Abort::TypeUnstable,
            Abort::Malformed,
            Abort::Codegen(CompileError::TooManySpills),
            Abort::NoExecMemory,
            Abort::Protect,
            Abort::InnerLoop,
            Abort::DivisionByZero,
        ];
        for a in all {
            assert!(!a.message().is_empty());
        }
        assert_eq!(
            Abort::from(CompileError::Opt(OptError::TypeUnstable { slot: 1 })),
            Abort::TypeUnstable
        );
    }
}
