//! The JIT driver: the VM's [`LoopHook`]. A hot loop is recorded, compiled for this CPU and
//! installed; later arrivals at its header run the native code and resume the interpreter at
//! the exit's pc — or, when a trace starts at that pc, run that trace next.
//!
//! ```text
//!   interpreter back edge or loop entry (`loop`) --count == threshold--> hot_loop (log), then enter:
//!   enter, loop cold (first time or its wait is over) --> record -> compile -> install
//!        (abort: Wait(penalty), doubling with a random part; blacklisted: Wait(u32::MAX))
//!   enter, trace installed, its last 64 entries ran < 32 words each on average (Payoff):
//!        Wait(256 << misses) instead of entering (entering would cost more than it runs)
//!   enter, trace installed --> run_chain:
//!        run trace -> exit n -> restore slots (typed stores) -> pc = snaps[n].pc
//!        trace installed at pc?            yes: run it next (a link or a side trace)
//!        exit to pc hot (HOT_EXIT exits)?  yes: record a side trace from pc, run it next
//!        otherwise (or pc == where the last trace started): resume the interpreter at pc
//!        the trace's last exit, at a call it cannot follow?  Reply::Call(pc): a call stop
//!   after_call (the VM made that call): the trace at pc + 2 (recorded once HOT_EXIT calls
//!        returned there) --> run_chain as above; each stop-to-stop cycle counts as an entry
//!        for the payoff check of the trace that stopped first
//! ```
//!
//! Glossary
//! - *side trace*: a trace recorded from the resume pc of a side exit that got hot, with the
//!   registers that exit restored; it ends back at its own start (a loop) or, usually, at a
//!   loop header that has a trace (a *link*: its last instruction exits to that header and the
//!   chain enters that header's trace). Traces are keyed by (function, start pc): any trace is
//!   valid to run whenever the interpreter stands at its start pc, because it guards every
//!   type and branch it depends on.
//! - *deferral*: a recording that ran into a loop header without a trace yet is retried (a side
//!   recording after twice as many exits, a loop's after [`PENALTY_MIN`] arrivals, doubling),
//!   [`MAX_DEFERRALS`] times, before it counts as an abort.
//!
//! Invariants
//! - the VM's registers are `[Value]`, 16 bytes each: tag word at 0 (`TAG_INT`, `TAG_FLOAT`,
//!   `TAG_BOOL`), payload at 8 ([`VM_LAYOUT`]); native code only reads them, and exits write
//!   back through `Value` assignments, so heap values a register held are dropped, never
//!   leaked or aliased;
//! - a loop whose recording or compilation fails is never entered; the reason is logged and
//!   the [`Traces`] state machine decides when to give up on it; a side exit whose recording
//!   fails keeps resuming the interpreter;
//! - a chain hands control back to the interpreter whenever an exit resumes where the trace
//!   that took it started, so a trace whose first guard fails cannot spin;
//! - native code charges the VM's fuel exactly as the interpreter does (see the backend's
//!   module doc): the budget goes into the shared exit frame on entry and comes back on exit
//!   (linked traces charge the same word), and a trace that would run out resumes the
//!   interpreter at the backward jump, which then raises `OutOfFuel` where it would have
//!   without the JIT.
use core::fmt::Write as _;

use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::vec;
use alloc::vec::Vec;

use crate::jit::backend::link::{split_exit_id, Known, MAX_TAG, WRITTEN};
use crate::jit::backend::{
    compile_entered, Backend, Compiled, ExitFrame, ExitLinks, Native, TraceStart,
};
use crate::jit::func::{FuncJit, FuncStats};
use crate::jit::hostbuf::BufView;
use crate::jit::hostcall::HostCtx;
use crate::jit::install::InstalledTrace;
use crate::jit::ir::Ty;
use crate::jit::live::Liveness;
use crate::jit::record::{record_with_calls, CallLog, Start};
use crate::jit::slots::VM_LAYOUT;
use crate::jit::trace::{Abort, Action, PcTable, TraceState, Traces, MAX_ATTEMPTS, PENALTY_MIN};
use crate::platform::{Console, ExecMemory};
use crate::vm::interp::{HostStep, HotLoop, LoopHook, Reply};
use crate::vm::native::{HotFunc, NativeFunc};
use crate::vm::program::Program;
use crate::vm::value::Value;

// Whether entering a trace pays, and how entries that stop at calls are judged.
mod payoff;
// Recording, compiling, installing and linking one trace, and its trace-log lines.
mod build;
use payoff::{Payoff, StoppedEntry};
pub use payoff::{ENTRY_MIN_WORDS, PAUSE_MIN, PAYOFF_SAMPLE};

/// Counters a test or `--trace-jit` can read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct JitStats {
    /// Loops reported hot.
    pub hot: u64,
    /// Traces compiled and installed.
    pub compiled: u64,
    /// Recordings or compilations abandoned.
    pub aborted: u64,
    /// Times native code was entered.
    pub entered: u64,
    /// Side traces compiled and installed (also counted in `compiled`).
    pub side_compiled: u64,
    /// Times a loop trace was left alone for a while because its entries did not pay.
    pub paused: u64,
    /// Host stops: exits at host instructions that the driver performed before going on
    /// natively (see [`LoopHook::enter_hosted`]).
    pub host_steps: u64,
    /// Host calls native code made itself (see [`crate::jit::hostcall`]).
    pub native_host_calls: u64,
    /// Calls installed traces follow (inline) instead of leaving native code (see
    /// [`crate::jit::record::inline`]).
    pub inlined_calls: u64,
    /// Installed traces that end with an exit at a call they cannot follow.
    pub call_exits: u64,
    /// Call stops: exits at a `call` that the VM made before native code went on after it
    /// (see [`Reply::Call`]).
    pub call_stops: u64,
}

/// Side exits to one resume pc before a side trace is recorded from there.
pub const HOT_EXIT: u32 = 10;
/// Times a side recording that reached a loop header without a trace is retried before it
/// counts as an abort.
pub const MAX_DEFERRALS: u8 = 16;

/// Side-exit counts of one resume pc.
#[derive(Clone, Copy, Debug, Default)]
struct ExitCount {
    count: u32,
    deferred: u8,
}

struct Installed {
    compiled: Compiled,
    code: InstalledTrace,
    /// The function and pc the trace starts at.
    func: usize,
    start: usize,
    /// A sibling trace (see [`sibling_id`]): reached only from the exits of the trace at the
    /// same start that resume there; its own such exits go to the interpreter.
    sibling: bool,
    /// The link table native exit stubs read: one entry per snapshot, 0 or a trace entry
    /// address (see `backend::link`). Boxed: its address is baked into the code.
    links: Box<[u64]>,
    /// Whether entering it from the interpreter pays (see [`Payoff`]).
    payoff: Payoff,
    /// The exit that ends the trace at a call it cannot follow (a call stop: the VM makes
    /// the call, see [`Reply::Call`]). Other exits that resume at a call (guards inside a
    /// followed callee) go back to the interpreter, which makes the call and the rest of the
    /// iteration cheaper than a call stop would.
    call_stop: Option<u32>,
}

impl Installed {
    /// Where the trace ends with an exit (a link, a call stop, an exit to the interpreter);
    /// `None` when it loops.
    fn end_pc(&self) -> Option<usize> {
        let t = &self.compiled.trace;
        match t.insts.last() {
            Some(i) if i.op == crate::jit::ir::Op::Exit => {
                t.snaps.get(i.snap as usize).map(|s| s.pc as usize)
            }
            _ => None,
        }
    }

    /// Whether the trace runs straight from its start to a link to the loop trace at `home`
    /// (no loop of its own, no call stop): a side recording that leaves `home`'s loop and
    /// reaches this trace's start records on through it, back into `home`'s loop (see
    /// [`Start::passes`]).
    fn runs_to(&self, home: usize) -> bool {
        self.call_stop.is_none() && home != self.start && self.end_pc() == Some(home)
    }

    /// Where a linked exit jumps in (past the prologue): the checked entry.
    fn entry_addr(&self) -> u64 {
        self.code.entry().as_ptr() as u64 + Native::entry_offset() as u64
    }

    /// Where a linked exit that knows the slots as the trace requires jumps in (see
    /// `backend::link`).
    fn fast_entry_addr(&self) -> u64 {
        self.code.entry().as_ptr() as u64 + self.compiled.fast_entry as u64
    }
}

/// The tracing JIT for one program run.
pub struct Jit<'a> {
    prog: &'a Program,
    mem: &'a dyn ExecMemory,
    log: Option<&'a dyn Console>,
    traces: Traces,
    installed: Vec<Installed>,
    stats: JitStats,
    exits: PcTable<ExitCount>,
    funcs: FuncJit<'a>,
    /// The exit frame every trace runs with (linked traces share it), sized for the most
    /// spill slots any installed trace uses.
    frame: ExitFrame,
    max_spills: u32,
    /// One view per host buffer of the program, filled only while a hosted run is inside the
    /// driver (see [`crate::jit::hostbuf`]). Boxed: traces hold their addresses.
    views: Box<[BufView]>,
    /// The VM's host for native host calls, armed only while a hosted run is inside the
    /// driver (see [`crate::jit::hostcall`]). Boxed: traces hold its address.
    host_ctx: Box<HostCtx>,
    /// Frames the VM's depth limit allows above the frame of the loop being entered now
    /// ([`LoopHook::call_room`]).
    room: usize,
    /// Entries from the interpreter that ended at a call stop and are not judged yet (see
    /// [`Payoff`]): the trace entered, the words run natively so far, and the call room when it
    /// stopped (which tells the entries of nested runs apart; innermost last).
    stopped: Vec<StoppedEntry>,
    /// Per function: the most calls inside each other any of its installed traces performs.
    /// Its traces link to each other natively, so the chain runs only where that many fit.
    frames: Vec<u32>,
}

fn loop_id(func: usize, pc: usize) -> u64 {
    ((func as u64) << 32) | pc as u64
}

/// The id of the *sibling* of the trace at `pc`: a second trace from the same start, recorded
/// when that trace's exits that resume at its own start get hot (a first guard that fails,
/// e.g. a branch at the start of a side trace taken the other way every other time). Those
/// exits link to the sibling instead of returning to the interpreter; the sibling's own exits
/// to the start do return there (never back to the first trace), so native code always makes
/// progress.
fn sibling_id(func: usize, pc: usize) -> u64 {
    loop_id(func, pc) | crate::jit::trace::SIBLING
}

impl<'a> Jit<'a> {
    /// A JIT for `prog` that takes executable memory from `mem` and, if `log` is given, reports
    /// `[JIT]` events there.
    pub fn new(prog: &'a Program, mem: &'a dyn ExecMemory, log: Option<&'a dyn Console>) -> Self {
        Self {
            prog,
            mem,
            log,
            traces: Traces::new(),
            installed: Vec::new(),
            stats: JitStats::default(),
            exits: PcTable::default(),
            funcs: FuncJit::new(prog, mem, log),
            frame: ExitFrame::new(0),
            max_spills: 0,
            views: prog.buffers.iter().map(|_| BufView::default()).collect(),
            host_ctx: Box::default(),
            room: usize::MAX,
            stopped: Vec::new(),
            frames: alloc::vec![0; prog.funcs.len()],
        }
    }

    /// Points the buffer views at the host's buffers (again: after a host call, which may
    /// have used the buffers itself).
    /// Also arms the host context (last, after the views used `host`).
    fn fill_views(&self, host: &mut dyn HostStep) {
        for (b, v) in self.views.iter().enumerate() {
            match host.buffer(b) {
                // SAFETY: the buffer is lent to the run and reached only through `host`; the
                // views are refilled after every other use of `host` and cleared (by
                // `clear_views`) before the hook call that received `host` returns.
                Some((p, n)) => unsafe { v.set(p, n) },
                None => v.clear(),
            }
        }
        // SAFETY: `host` outlives this hook call and is used only through the context until
        // the next `fill_views` (after every direct use of `host`) or `clear_views`, which
        // every hook call that arms the context runs before returning.
        unsafe { self.host_ctx.arm(&mut *host, &self.views) };
    }

    fn clear_views(&self) {
        self.views.iter().for_each(BufView::clear);
        self.host_ctx.disarm();
    }

    /// The counters so far.
    pub fn stats(&self) -> JitStats {
        JitStats {
            native_host_calls: self.host_ctx.calls(),
            ..self.stats
        }
    }

    /// The function JIT's counters so far.
    pub fn func_stats(&self) -> FuncStats {
        self.funcs.stats()
    }

    fn say(&self, args: core::fmt::Arguments<'_>) {
        if let Some(c) = self.log {
            let mut line: heapless::String<160> = heapless::String::new();
            let _ = line.write_fmt(args);
            let _ = line.push('\n');
            c.write_bytes(line.as_bytes());
        }
    }
}

impl Jit<'_> {
    /// One recording attempt at `pc`: a hot loop header (or one aborted before and retried),
    /// or with `side`, the resume pc of a hot side exit. The new trace's index on success.
    fn attempt(&mut self, func: usize, pc: usize, side: bool, regs: &[Value]) -> Option<usize> {
        let inherited = side.then_some(&[][..]);
        self.attempt_keyed(loop_id(func, pc), func, pc, side, None, inherited, regs)
    }

    /// [`attempt`](Self::attempt) under trace id `id` (a sibling's, see [`sibling_id`]);
    /// `inherited`: for a side trace, what the exit it continues knows of the slots.
    #[allow(clippy::too_many_arguments)]
    fn attempt_keyed(
        &mut self,
        id: u64,
        func: usize,
        pc: usize,
        side: bool,
        home: Option<usize>,
        inherited: Option<&[(u32, Known)]>,
        regs: &[Value],
    ) -> Option<usize> {
        if self.traces.arrive(id, true) != Action::Record {
            return None;
        }
        let sibling = id != loop_id(func, pc);
        match self.build(pc, func, side, sibling, home, inherited, regs) {
            Ok((n, calls)) => {
                let _ = self.traces.compiled(id, n);
                self.stats.compiled += 1;
                let size = self.installed[n].code.len();
                if sibling {
                    self.stats.side_compiled += 1;
                    self.say(format_args!(
                        "[JIT] Compiled side trace at PC {pc} ({size} bytes)"
                    ));
                    self.say(format_args!(
                        "[JIT] Side trace at PC {pc} is the other way out of the trace there: \
                         that trace's exits to PC {pc} link to it"
                    ));
                } else if side {
                    self.stats.side_compiled += 1;
                    self.say(format_args!(
                        "[JIT] Compiled side trace at PC {pc} ({size} bytes)"
                    ));
                } else {
                    self.say(format_args!(
                        "[JIT] Compiled loop at PC {pc} ({size} bytes)"
                    ));
                }
                self.say_calls(pc, &calls);
                self.say_end(pc, n);
                Some(n)
            }
            Err(Abort::InnerLoop) if self.defer(id) => {
                if !side {
                    self.say(format_args!(
                        "[JIT] Trace at PC {pc} deferred: {}",
                        Abort::InnerLoop.message()
                    ));
                }
                None
            }
            Err(why @ Abort::ExitAtStart) => {
                let _ = self.traces.abort(id, why);
                self.say(format_args!(
                    "[JIT] Side exit to PC {pc} stays in the interpreter: {}",
                    why.message()
                ));
                None
            }
            Err(why) => {
                let _ = self.traces.abort(id, why);
                self.stats.aborted += 1;
                let what = if side { "Side trace" } else { "Trace" };
                match why {
                    Abort::Unsupported(op) => {
                        let name =
                            crate::vm::bytecode::Op::from_byte(op).map_or("?", |o| o.mnemonic());
                        self.say(format_args!(
                            "[JIT] {what} aborted at PC {pc}: `{name}` is not supported"
                        ));
                    }
                    Abort::UnsupportedOperand(op) => {
                        let name =
                            crate::vm::bytecode::Op::from_byte(op).map_or("?", |o| o.mnemonic());
                        self.say(format_args!(
                            "[JIT] {what} aborted at PC {pc}: `{name}` on these operand types \
                             is not supported"
                        ));
                    }
                    _ => self.say(format_args!(
                        "[JIT] {what} aborted at PC {pc}: {}",
                        why.message()
                    )),
                }
                if self.traces.state(id) == TraceState::Blacklisted {
                    self.say(format_args!(
                        "[JIT] {what} at PC {pc} blacklisted after {MAX_ATTEMPTS} aborts: \
                         interpreted from now on"
                    ));
                }
                None
            }
        }
    }

    /// A recording reached a loop header that has no trace yet: try again later (a side
    /// recording after twice as many exits as last time, a loop after [`PENALTY_MIN`] arrivals,
    /// doubled each time: [`Jit::deferred_wait`]), up to [`MAX_DEFERRALS`] times (false: count
    /// it as an abort). A loop entered at its first arrival reaches an inner loop before that
    /// loop had the arrivals to get hot whenever the inner loop runs about once per iteration
    /// of the outer one.
    fn defer(&mut self, id: u64) -> bool {
        let e = self.exits.get_mut(id);
        if e.deferred >= MAX_DEFERRALS {
            return false;
        }
        e.deferred += 1;
        e.count = 0;
        let _ = self.traces.defer(id);
        true
    }

    /// The arrivals a loop whose last recording was deferred waits before the next attempt;
    /// `None` when it was not deferred (or has aborted since).
    fn deferred_wait(&self, id: u64) -> Option<u32> {
        let d = self.exits.get(id).deferred;
        let fresh = self.traces.state(id) == (TraceState::Cold { aborts: 0 });
        (d > 0 && fresh).then(|| PENALTY_MIN << u32::from(d - 1).min(12))
    }

    /// Counts a side exit to `id`; true when it is hot: [`HOT_EXIT`] exits, doubled after each
    /// deferral (the loop the recording ran into needs time to get hot itself).
    fn exit_is_hot(&mut self, id: u64) -> bool {
        let e = self.exits.get_mut(id);
        e.count = e.count.saturating_add(1);
        e.count >= HOT_EXIT << e.deferred.min(16)
    }

    /// Runs installed trace `trace` (and the traces its exits link to natively) until an
    /// exit returns, and writes that exit's values back into `regs`: the pc to resume at, the
    /// trace that took the exit and the exit's number. Native code charges `fuel` as the
    /// interpreter would.
    #[inline(always)]
    fn run_once(
        &mut self,
        trace: usize,
        regs: &mut [Value],
        fuel: &mut u64,
    ) -> Option<(usize, usize, u32)> {
        let t = self.installed.get(trace)?;
        if regs.len() < t.code.min_slots() as usize {
            return None;
        }
        // Linked traces of this function may run too: they need no more than `nregs` slots
        // (`link` checks), which `regs` holds.
        let nregs = self.prog.funcs.get(t.func).map_or(0, |f| f.nregs as usize);
        if regs.len() < nregs {
            return None;
        }
        self.stats.entered += 1;
        self.frame.set_fuel(*fuel);
        let frame = self.frame.as_mut_ptr();
        // SAFETY: the fuel word of the exit frame native code runs with; nothing else touches
        // it until native code returns, and the next run sets it again.
        unsafe {
            self.host_ctx
                .set_fuel(frame.wrapping_add(crate::jit::backend::FUEL))
        };
        // `regs` is an exclusively borrowed array of at least `min_slots` (and `nregs`)
        // `Value`s, laid out as VM_LAYOUT (checked at compile time above); the shared exit
        // frame has room for the spill slots of every installed trace.
        // SAFETY: so the compiled code's contract holds; it came from the native backend and
        // is still installed, as is every trace a link table names.
        let id = unsafe { t.code.enter(regs.as_mut_ptr().cast(), frame) };
        *fuel = self.frame.fuel();
        let (tag, exit) = split_exit_id(id);
        let exited = tag as usize;
        let t = self.installed.get(exited)?;
        if id & WRITTEN != 0 {
            // The exit stub wrote the snapshot into `regs` itself.
            let pc = t.compiled.trace.snaps.get(exit as usize)?.pc;
            return Some((pc as usize, exited, exit));
        }
        let resume = t
            .compiled
            .restore_with(exit, &self.frame, |slot, ty, bits, dead| {
                // In bounds: `regs` holds at least `min_slots` registers.
                let Some(r) = regs.get_mut(slot as usize) else {
                    return Ok(());
                };
                // A dead entry only replaces a heap value (the interpreter has released it
                // by now).
                if dead && !r.is_heap() {
                    return Ok(());
                }
                *r = match ty {
                    Ty::Int => Value::Int(bits as i64),
                    Ty::Bool => Value::Bool(bits != 0),
                    _ => Value::Float(f64::from_bits(bits)),
                };
                Ok(())
            });
        resume.ok().map(|pc| (pc as usize, exited, exit))
    }

    /// Enters (recording first if due) the loop at `header_pc`; `host` performs host stops.
    fn enter_loop(
        &mut self,
        func: usize,
        header_pc: usize,
        regs: &mut [Value],
        fuel: &mut u64,
        host: Option<&mut dyn HostStep>,
    ) -> Reply<usize> {
        let id = loop_id(func, header_pc);
        if let TraceState::Cold { .. } = self.traces.state(id) {
            // Hot, and the wait after the last abort (if any) is over: record this iteration.
            self.attempt(func, header_pc, false, regs);
        }
        match self.traces.state(id) {
            TraceState::Compiled { trace } => {
                if !self.calls_fit(func) {
                    // Calls the traces make would overflow where the interpreter's would:
                    // the interpreter makes them (and raises the error where it does).
                    return Reply::Wait(1);
                }
                if let Some(t) = self.installed.get_mut(trace) {
                    if t.payoff.pause {
                        t.payoff.pause = false;
                        return Reply::Wait(t.payoff.pause_len());
                    }
                }
                let before = *fuel;
                let r = self.run_chain(func, trace, regs, fuel, host);
                let words = before.saturating_sub(*fuel);
                self.judge(trace, words, &r);
                r
            }
            _ => Reply::Wait(
                self.deferred_wait(id)
                    .unwrap_or_else(|| self.traces.wait(id)),
            ),
        }
    }

    /// Runs trace `trace`, then whatever trace its exit leads to, until an exit resumes where
    /// no trace (and no hot side exit) is, or where the trace that took it began (the
    /// interpreter must make progress there): `Native(pc)`, the pc to resume at; or at a
    /// `call`: `Call(pc)`, a call stop (the VM makes the call and asks
    /// [`LoopHook::after_call`] for what follows).
    #[inline(always)]
    fn run_chain(
        &mut self,
        func: usize,
        mut trace: usize,
        regs: &mut [Value],
        fuel: &mut u64,
        mut host: Option<&mut dyn HostStep>,
    ) -> Reply<usize> {
        loop {
            let Some((mut pc, exited, exit)) = self.run_once(trace, regs, fuel) else {
                return Reply::Wait(1);
            };
            if let Some(h) = host.as_deref_mut() {
                // Host stops: perform the host instructions here, then go on natively after
                // them. On an error the interpreter resumes at the instruction and reports it.
                let at = pc;
                while h.is_host_op(func, pc) {
                    match h.step(func, pc, regs, fuel) {
                        Some(next) => pc = next,
                        None => return Reply::Native(pc),
                    }
                }
                if pc != at {
                    self.stats.host_steps += 1;
                    self.fill_views(h);
                }
            }
            if self.installed[exited].call_stop == Some(exit) {
                self.stats.call_stops += 1;
                return Reply::Call(pc);
            }
            let id = if pc == self.installed[exited].start {
                if self.installed[exited].sibling {
                    return Reply::Native(pc);
                }
                sibling_id(func, pc)
            } else {
                loop_id(func, pc)
            };
            match self.trace_at(id, func, pc, regs, Some((exited, exit))) {
                Some(t) => trace = t,
                None => return Reply::Native(pc),
            }
        }
    }

    /// The trace `id` that continues `func` at `pc` (registers `regs`): installed, or recorded
    /// now as a side trace if enough arrivals made `pc` hot (kept only if its calls fit under
    /// the depth limit: it may perform more than were checked at entry). `exited`: the trace
    /// and exit that resume at `pc`, if one did.
    #[inline(always)]
    fn trace_at(
        &mut self,
        id: u64,
        func: usize,
        pc: usize,
        regs: &[Value],
        exited: Option<(usize, u32)>,
    ) -> Option<usize> {
        match self.traces.state(id) {
            TraceState::Compiled { trace } => Some(trace),
            TraceState::Cold { .. } if self.exit_is_hot(id) => {
                self.record_side(id, func, pc, regs, exited)
            }
            _ => None,
        }
    }

    /// [`trace_at`](Self::trace_at)'s recording of a side trace (out of line: the chain's
    /// loop stays small).
    #[inline(never)]
    fn record_side(
        &mut self,
        id: u64,
        func: usize,
        pc: usize,
        regs: &[Value],
        exited: Option<(usize, u32)>,
    ) -> Option<usize> {
        let parent = exited.and_then(|(n, exit)| Some((self.installed.get(n)?, exit)));
        // A loop trace's exit: the side trace may go back into that loop.
        let home = parent
            .filter(|(t, _)| t.end_pc().is_none())
            .map(|(t, _)| t.start);
        // What that exit knows of the slots: the side trace's fast entry requires it.
        let inherited = parent
            .map(|(t, exit)| t.compiled.exit_known.all(exit as usize))
            .unwrap_or_default();
        self.attempt_keyed(id, func, pc, true, home, Some(&inherited), regs)
            .filter(|_| self.calls_fit(func))
    }

    /// Whether the instruction at `pc` of `func` is a `call`.
    fn is_call(&self, func: usize, pc: usize) -> bool {
        let code = self.prog.funcs.get(func).map(|f| &f.code[..]);
        code.and_then(|c| c.get(pc))
            .is_some_and(|&w| w as u8 == crate::vm::bytecode::byte::Call)
    }

    /// Native code after a call stop: the trace that starts at `pc` (recorded once enough
    /// calls returned there), and the chain from it.
    fn go_on_after_call(
        &mut self,
        func: usize,
        pc: usize,
        regs: &mut [Value],
        fuel: &mut u64,
        host: Option<&mut dyn HostStep>,
    ) -> Reply<usize> {
        if self.is_call(func, pc) {
            // Another call right away: the VM makes it too.
            self.stats.call_stops += 1;
            return Reply::Call(pc);
        }
        let trace = self.trace_at(loop_id(func, pc), func, pc, regs, None);
        match trace.filter(|_| self.calls_fit(func)) {
            Some(t) => self.run_chain(func, t, regs, fuel, host),
            None => Reply::Wait(1),
        }
    }
}

impl Jit<'_> {
    /// Whether the calls the traces of `func` perform inside each other fit under the VM's
    /// depth limit now.
    fn calls_fit(&self, func: usize) -> bool {
        self.frames.get(func).map_or(0, |&f| f as usize) <= self.room
    }
}

impl LoopHook for Jit<'_> {
    fn call_room(&mut self, frames_left: usize) {
        self.room = frames_left;
    }

    fn hot_loop(&mut self, at: HotLoop<'_>) {
        self.stats.hot += 1;
        self.say(format_args!(
            "[JIT] Hot loop detected at PC {} (iterations: {})",
            at.header_pc, at.count
        ));
        // The VM calls `enter` right after this, which records the loop.
    }

    fn enter(
        &mut self,
        func: usize,
        header_pc: usize,
        regs: &mut [Value],
        fuel: &mut u64,
    ) -> Reply<usize> {
        self.enter_loop(func, header_pc, regs, fuel, None)
    }

    fn enter_hosted(
        &mut self,
        func: usize,
        header_pc: usize,
        regs: &mut [Value],
        fuel: &mut u64,
        host: &mut dyn HostStep,
    ) -> Reply<usize> {
        self.fill_views(host);
        let r = self.enter_loop(func, header_pc, regs, fuel, Some(host));
        self.clear_views();
        r
    }

    fn hot_loop_hosted(&mut self, at: HotLoop<'_>, host: &mut dyn HostStep) {
        self.fill_views(host);
        self.hot_loop(at);
        self.clear_views();
    }

    fn after_call(
        &mut self,
        func: usize,
        pc: usize,
        regs: &mut [Value],
        fuel: &mut u64,
        host: Option<&mut dyn HostStep>,
    ) -> Reply<usize> {
        let stopped = self.take_stopped();
        if let Some(e) = stopped {
            if self.installed.get(e.trace).is_some_and(|t| t.payoff.pause) {
                // The loop does not pay natively: the interpreter goes on after the call and
                // takes the pause at the loop's header.
                return Reply::Wait(1);
            }
        }
        let before = *fuel;
        let r = match host {
            Some(h) => {
                self.fill_views(h);
                let r = self.go_on_after_call(func, pc, regs, fuel, Some(h));
                self.clear_views();
                r
            }
            None => self.go_on_after_call(func, pc, regs, fuel, None),
        };
        // No native code ran after the call (no trace there yet): nothing to judge.
        if let Some(e) = stopped.filter(|_| !matches!(r, Reply::Wait(_))) {
            self.judge_cycle(e, before.saturating_sub(*fuel), &r);
        }
        r
    }

    fn hot_func(&mut self, at: HotFunc<'_>) {
        self.funcs.hot(at);
    }

    fn native_func(&mut self, func: usize, args: &[Value]) -> Reply<Rc<dyn NativeFunc>> {
        self.funcs.native(func, args)
    }

    fn native_side(
        &mut self,
        func: usize,
        pc: usize,
        regs: &[Value],
    ) -> Option<Rc<dyn NativeFunc>> {
        self.funcs.side(func, pc, regs)
    }
}

impl Drop for Jit<'_> {
    fn drop(&mut self) {
        for t in self.installed.drain(..) {
            // SAFETY: the code was installed from `self.mem` and cannot be running: entering
            // it needs `&mut self`.
            unsafe { t.code.release(self.mem) };
        }
    }
}
