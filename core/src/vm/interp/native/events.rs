//! Loop and call events: the countdowns the dispatch loop ticks at loop arrivals (backward jumps
//! and `loop` markers) and calls,
//! and the cold paths that report hot loops to a [`LoopHook`] (the JIT) and run its native
//! code.
use core::fmt::Write;

use alloc::rc::Rc;
use alloc::vec::Vec;

use super::super::hosted::{HostStep, Stepper};
use super::super::Vm;
use super::{HotFunc, NativeEnv, NativeFunc, Trap};
use crate::vm::bytecode::{byte, field_a};
use crate::vm::error::RuntimeErrorKind as E;
use crate::vm::value::Value;

/// What [`LoopHook::hot_loop`] is told.
pub struct HotLoop<'a> {
    /// Index of the function holding the loop.
    pub func: usize,
    /// PC of the loop header (the backward jump's target, the word after the `loop` marker).
    pub header_pc: usize,
    /// The header's counter value (equal to the threshold).
    pub count: u32,
    /// The current frame's registers, by index.
    pub regs: &'a mut [Value],
}

/// A hook's answer at a hot loop header or a call of a hot function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply<T> {
    /// Native code ran (a loop: the PC to resume at) or is to run (a function: its code).
    Native(T),
    /// Keep interpreting; ask again after this many more arrivals (at least 1).
    Wait(u32),
    /// (Loops only.) Native code ran up to the `call` at this PC and stopped there, the
    /// frame's registers as the interpreter would have them: the VM makes the call, then asks
    /// [`LoopHook::after_call`] to go on natively after it. A call the JIT cannot compile
    /// thus costs native code one exit, and the loop stays native. Counted as `Wait(1)` where
    /// a function is asked for ([`LoopHook::native_func`]).
    Call(usize),
}

/// Where the interpreter goes on after [`Vm::loop_event`].
pub(in crate::vm) enum Resume {
    /// At this PC (native code ran up to it, or the loop stays interpreted for now).
    At(usize),
    /// Native code stopped at the `call` at this PC: [`Vm::call_stops`] makes it.
    CallStop(usize),
}

/// Arrivals at one loop header (taken backward jumps, `loop` markers) or calls of one function, counted down
/// to the next time the hook is asked: the interpreter's whole per-arrival cost is one
/// decrement and one branch, whatever state the JIT keeps for the loop. (Loop headers keep
/// the `left` words in an array of their own, indexed by PC; see [`Vm::loop_counts`].)
#[derive(Clone, Copy, Debug)]
pub(in crate::vm) struct HotCount {
    /// Arrivals left before the hook is asked (never 0 between arrivals).
    left: u32,
    hist: HotHist,
}

/// What a countdown needs to tell how many arrivals there were in all.
#[derive(Clone, Copy, Debug)]
pub(in crate::vm) struct HotHist {
    /// What `left` was last set to.
    set: u32,
    /// Arrivals counted before `left` was last set (wrapping).
    base: u32,
}

impl HotHist {
    pub(in crate::vm) const fn new(threshold: u32) -> Self {
        Self {
            set: threshold,
            base: 0,
        }
    }

    /// Arrivals so far (wrapping after `u32::MAX`), with `left` the countdown.
    pub(in crate::vm) fn count(&self, left: u32) -> u32 {
        self.base.wrapping_add(self.set - left)
    }

    /// Ask again after `n` more arrivals (at least 1).
    fn wait(&mut self, left: &mut u32, n: u32) {
        self.base = self.count(*left);
        *left = n.max(1);
        self.set = *left;
    }
}

impl HotCount {
    pub(in crate::vm) const fn new(threshold: u32) -> Self {
        Self {
            left: threshold,
            hist: HotHist::new(threshold),
        }
    }

    /// Counts one arrival; true when the hook is to be asked.
    #[inline(always)]
    pub(in crate::vm) fn tick(&mut self) -> bool {
        self.left -= 1;
        self.left == 0
    }

    /// Arrivals so far (wrapping after `u32::MAX`).
    pub(in crate::vm) fn count(&self) -> u32 {
        self.hist.count(self.left)
    }

    /// Ask again after `n` more arrivals (at least 1).
    pub(in crate::vm) fn wait(&mut self, n: u32) {
        self.hist.wait(&mut self.left, n);
    }

    /// Takes back the last arrival (one that does not count).
    pub(in crate::vm) fn untick(&mut self) {
        self.left += 1;
    }
}

/// Receives hot-loop reports; the JIT implements this.
pub trait LoopHook {
    /// Called once per loop header, when its arrival count reaches the threshold.
    fn hot_loop(&mut self, at: HotLoop<'_>);

    /// Called at an arrival at `header_pc` (a taken backward jump to it, after the jump's fuel
    /// was charged, or the `loop` marker before it, which charges none) once the header is hot
    /// (right after [`hot_loop`](Self::hot_loop), then whenever the wait the last reply asked
    /// for is over), with the frame's registers as they are at the header and the fuel left. A
    /// JIT that ran compiled code for the loop replies `Native(pc)`: the PC to continue at (the
    /// registers already hold the loop's results, and `fuel` was charged as the interpreter
    /// would have charged for the same instructions), and it is asked again at the next
    /// arrival. `Wait(n)` keeps interpreting and asks again only after `n` more arrivals at
    /// this header (`u32::MAX`: practically never), so a loop the JIT gave up on costs the
    /// interpreter one counter decrement per iteration.
    fn enter(
        &mut self,
        _func: usize,
        _header_pc: usize,
        _regs: &mut [Value],
        _fuel: &mut u64,
    ) -> Reply<usize> {
        Reply::Wait(u32::MAX)
    }

    /// Told right before every [`enter`](Self::enter) (or
    /// [`enter_hosted`](Self::enter_hosted)): how many more frames the call-depth limit allows
    /// now (`max_depth` minus the frames on the stack). Compiled code that performs calls
    /// without pushing frames (calls inlined into a loop trace) must not run calls the
    /// interpreter would refuse with `StackOverflow`.
    fn call_room(&mut self, _frames_left: usize) {}

    /// [`LoopHook::enter`] for a program linked to a host: compiled code that stops at a host
    /// call or buffer access (`callh`, `bget`, `bset`, `blen`) may have `host` perform it and
    /// continue natively after it. The default ignores `host`.
    fn enter_hosted(
        &mut self,
        func: usize,
        header_pc: usize,
        regs: &mut [Value],
        fuel: &mut u64,
        _host: &mut dyn HostStep,
    ) -> Reply<usize> {
        self.enter(func, header_pc, regs, fuel)
    }

    /// [`LoopHook::hot_loop`] for a program linked to a host (see
    /// [`LoopHook::enter_hosted`]). The default ignores `host`.
    fn hot_loop_hosted(&mut self, at: HotLoop<'_>, _host: &mut dyn HostStep) {
        self.hot_loop(at)
    }

    /// After the VM made the call native code stopped at ([`Reply::Call`]; the call's result
    /// is in its register A): native code for `func` from `pc`, the instruction after the
    /// call, with the frame's registers as they are there. The replies are those of
    /// [`enter`](Self::enter): `Native(pc)` ran native code up to `pc`, `Call(pc)` stopped at
    /// another call, and `Wait(_)` lets the interpreter go on at `pc`. `host` performs host
    /// stops as in [`enter_hosted`](Self::enter_hosted) (`None` for a program without a host).
    fn after_call(
        &mut self,
        _func: usize,
        _pc: usize,
        _regs: &mut [Value],
        _fuel: &mut u64,
        _host: Option<&mut dyn HostStep>,
    ) -> Reply<usize> {
        Reply::Wait(1)
    }

    /// Called once per function, when its call count reaches the function threshold, with
    /// the callee's arguments (see [`super`]).
    fn hot_func(&mut self, _at: HotFunc<'_>) {}

    /// Native code for `func`, asked at a call of a hot function (at the threshold, then
    /// whenever the wait the last reply asked for is over). `Native(code)` is kept for the
    /// rest of the run and runs every later call; `Wait(n)` interprets this call and asks
    /// again after `n` more calls (`u32::MAX`: practically never).
    fn native_func(&mut self, _func: usize, _args: &[Value]) -> Reply<Rc<dyn NativeFunc>> {
        Reply::Wait(u32::MAX)
    }

    /// Native code that continues `func` from `pc` (a hot exit of its native code), with the
    /// frame's registers as they are there; `None` lets the interpreter finish the frame.
    fn native_side(
        &mut self,
        _func: usize,
        _pc: usize,
        _regs: &[Value],
    ) -> Option<Rc<dyn NativeFunc>> {
        None
    }
}

/// The VM's [`HostStep`] over its linked host `$link` (a copy of `$vm.host`), borrowing the
/// VM's program, meter and pending host result; the fields stay apart from `$vm.fuel`, which
/// the hook is handed next to it.
macro_rules! stepper {
    ($vm:expr, $link:expr) => {
        Stepper {
            prog: $vm.prog,
            // SAFETY: as in the host arm of `execute`: `run_with` keeps the linked host alive
            // and unaliased while the dispatch loop runs; this borrow ends with the hook call
            // it is made for.
            link: unsafe { $link.as_mut() },
            meter: &$vm.meter,
            pending: &mut $vm.host_pending,
        }
    };
}

impl Vm<'_> {
    /// The loop-header counters of `func`, one per PC (null when counting is off). Taken
    /// once per frame switch, so a backward jump finds its header's counter by PC alone. A raw
    /// pointer (from `Vec::as_mut_ptr`, which keeps other such pointers valid): the counters
    /// are never resized after [`Vm::new`], and all accesses while running go through these
    /// pointers.
    #[inline(always)]
    pub(in crate::vm) fn loop_counts(&mut self, func: usize) -> *mut u32 {
        self.hot_ptrs
            .get(func)
            .copied()
            .unwrap_or(core::ptr::null_mut())
    }

    /// Taken jump from `at` to a lower `target`: fuel for the loop body and hot-loop counting.
    /// `Ok(true)` when the header is hot and its wait is over: the caller then runs
    /// [`Vm::loop_event`] (cold), which may run native code for the loop.
    #[inline(always)]
    pub(in crate::vm) fn back_edge(&mut self, at: usize, target: usize) -> Result<bool, E> {
        self.charge(at + 2 - target)?;
        Ok(self.arrive(target))
    }

    /// An arrival at the loop header `header` (a taken backward jump to it, or control falling
    /// into it through its `loop` marker, which charges no fuel: the first iteration was paid
    /// for with the code around the loop): one countdown tick; true when the hook is to be
    /// asked ([`Vm::loop_event`]).
    #[inline(always)]
    pub(in crate::vm) fn arrive(&mut self, header: usize) -> bool {
        if self.hot.is_null() {
            return false;
        }
        // `hot` is set at every frame switch (a nested run of the interpreter only happens
        // inside a `call` or a call stop, after which the frame switch sets it again); `header`
        // is a jump target the verifier checked to lie inside the code, or the instruction
        // after a `loop` marker, which it proved lies inside too (nothing falls off the end).
        // SAFETY: so `hot` points at the running function's counters, one per code word, never
        // resized while running, and `header` indexes them; nothing else holds a reference now.
        let left = unsafe { &mut *self.hot.add(header) };
        *left -= 1;
        *left == 0
    }

    /// The header at `target` of the frame of `func` (registers `regs`) is hot and its wait is
    /// over: tell the hook (once, at the threshold), let it run native code, and note how long
    /// to wait before asking again. Where the interpreter goes on: a PC, or a call stop
    /// ([`Reply::Call`]) for [`Vm::call_stops`] to make.
    #[cold]
    #[inline(never)]
    pub(in crate::vm) fn loop_event(
        &mut self,
        func: usize,
        target: usize,
        regs: &mut [Value],
        hook: &mut Option<&mut dyn LoopHook>,
    ) -> Resume {
        let nregs = self.prog.funcs.get(func).map_or(0, |f| f.nregs as usize);
        let Some(regs) = regs.get_mut(..nregs) else {
            return Resume::At(target);
        };
        if self.hot.is_null() {
            return Resume::At(target);
        }
        // SAFETY: as in `arrive`; the reference ends before the hook's reply is acted on.
        let left = unsafe { &mut *self.hot.add(target) };
        let Some(hist) = self.loop_hist.get_mut(func).and_then(|c| c.get_mut(target)) else {
            *left = u32::MAX;
            return Resume::At(target);
        };
        let mut hist = *hist;
        let count = hist.count(*left);
        let (reply, wait) = match hook.as_deref_mut() {
            None => (Reply::Wait(u32::MAX), u32::MAX),
            Some(h) => {
                if count == self.config.jit_threshold {
                    let at = HotLoop {
                        func,
                        header_pc: target,
                        count,
                        regs: &mut *regs,
                    };
                    if let Some(mut link) = self.host {
                        let mut stepper = stepper!(self, link);
                        h.hot_loop_hosted(at, &mut stepper);
                    } else {
                        h.hot_loop(at);
                    }
                }
                h.call_room(self.config.max_depth.saturating_sub(self.frames.len()));
                let reply = if let Some(mut link) = self.host {
                    let mut stepper = stepper!(self, link);
                    h.enter_hosted(func, target, regs, &mut self.fuel, &mut stepper)
                } else {
                    h.enter(func, target, regs, &mut self.fuel)
                };
                let wait = match reply {
                    Reply::Wait(n) => n,
                    _ => 1,
                };
                (reply, wait)
            }
        };
        hist.wait(left, wait);
        if let Some(h) = self.loop_hist.get_mut(func).and_then(|c| c.get_mut(target)) {
            *h = hist;
        }
        match reply {
            Reply::Native(pc) => Resume::At(pc),
            Reply::Wait(_) => Resume::At(target),
            Reply::Call(pc) => Resume::CallStop(pc),
        }
    }

    /// Native code of the frame of `func` at `base` stopped at the `call` at `call_pc`
    /// ([`Reply::Call`]): the VM makes the call exactly as the interpreter's `call` does (same
    /// checks, fuel and errors, the callee native or interpreted), then asks the hook to go on
    /// natively after it ([`LoopHook::after_call`]), as long as native code stops at calls.
    /// Returns the PC the interpreter continues at; the caller re-derives its view of the
    /// registers and the loop counters afterwards (a call may move the register stack and
    /// switches `hot`).
    #[cold]
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    pub(in crate::vm) fn call_stops(
        &mut self,
        func: usize,
        mut call_pc: usize,
        stack: &mut Vec<Value>,
        base: usize,
        consts: &[Value],
        out: &mut dyn Write,
        hook: &mut Option<&mut dyn LoopHook>,
    ) -> Result<usize, Trap> {
        let prog = self.prog;
        let code = prog.funcs.get(func).map_or(&[][..], |f| &f.code[..]);
        let nregs = prog.funcs.get(func).map_or(0, |f| f.nregs as usize);
        loop {
            let (Some(&w), Some(&callee)) = (code.get(call_pc), code.get(call_pc + 1)) else {
                // Not a call (a hook bug): the interpreter runs whatever is there.
                return Ok(call_pc);
            };
            if w as u8 != byte::Call {
                return Ok(call_pc);
            }
            {
                let mut env = NativeEnv::new(self, stack, consts, out, hook);
                // The arguments are in place: the callee's frame starts at register A.
                env.call(
                    (func, call_pc),
                    callee as usize,
                    base + field_a(w),
                    &mut |_| {},
                )?;
            }
            let after = call_pc + 2;
            let (Some(h), Some(regs)) = (hook.as_deref_mut(), stack.get_mut(base..base + nregs))
            else {
                return Ok(after);
            };
            h.call_room(self.config.max_depth.saturating_sub(self.frames.len()));
            let reply = if let Some(mut link) = self.host {
                let mut stepper = stepper!(self, link);
                h.after_call(func, after, regs, &mut self.fuel, Some(&mut stepper))
            } else {
                h.after_call(func, after, regs, &mut self.fuel, None)
            };
            match reply {
                Reply::Native(pc) => return Ok(pc),
                Reply::Wait(_) => return Ok(after),
                Reply::Call(pc) => call_pc = pc,
            }
        }
    }
}
