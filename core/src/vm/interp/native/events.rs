//! Loop and call events: the countdowns the dispatch loop ticks at loop arrivals (backward jumps
//! and `loop` markers) and calls,
//! and the cold paths that report hot loops to a [`LoopHook`] (the JIT) and run its native
//! code.
use alloc::rc::Rc;

use super::super::hosted::{HostStep, Stepper};
use super::super::Vm;
use super::{HotFunc, NativeFunc};
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

    /// Taken jump from `at` to a lower `target`: fuel for the loop body, hot-loop counting, and
    /// compiled code for the loop if the JIT has some. Returns the PC to continue at.
    #[inline(always)]
    pub(in crate::vm) fn back_edge(
        &mut self,
        func: usize,
        at: usize,
        target: usize,
        regs: &mut [Value],
        hook: &mut Option<&mut dyn LoopHook>,
    ) -> Result<usize, E> {
        self.charge(at + 2 - target)?;
        if !self.hot.is_null() {
            // SAFETY: `hot` points at the running function's counters (set at every frame
            // switch, and a nested run of the interpreter only happens inside a `call`, after
            // which the frame switch sets it again), one per code word (`Vm::new`), never
            // resized while running; `target` is a jump target the verifier checked to lie
            // inside the code. Nothing else holds a reference to them now.
            let left = unsafe { &mut *self.hot.add(target) };
            *left -= 1;
            if *left == 0 {
                return Ok(self.loop_event(func, target, left, regs, hook));
            }
        }
        Ok(target)
    }

    /// Control falls into the loop whose header is `header` (a `loop` marker at `header - 1`):
    /// counted as an arrival at the header exactly as [`Vm::back_edge`] counts one, without
    /// fuel (no jump is taken; the first iteration was paid for with the code around the
    /// loop). Returns the PC to continue at.
    #[inline(always)]
    pub(in crate::vm) fn loop_entry(
        &mut self,
        func: usize,
        header: usize,
        regs: &mut [Value],
        hook: &mut Option<&mut dyn LoopHook>,
    ) -> usize {
        if !self.hot.is_null() {
            // SAFETY: as in `back_edge`; `header` is the instruction after a `loop`, which the
            // verifier proved lies inside the code (nothing falls off its end).
            let left = unsafe { &mut *self.hot.add(header) };
            *left -= 1;
            if *left == 0 {
                return self.loop_event(func, header, left, regs, hook);
            }
        }
        header
    }

    /// The header at `target` (countdown `left`) is hot and its wait is over: tell the hook (once,
    /// at the threshold), let it run native code, and note how long to wait before asking
    /// again.
    #[cold]
    #[inline(never)]
    pub(in crate::vm) fn loop_event(
        &mut self,
        func: usize,
        target: usize,
        left: &mut u32,
        regs: &mut [Value],
        hook: &mut Option<&mut dyn LoopHook>,
    ) -> usize {
        let Some(hist) = self.loop_hist.get_mut(func).and_then(|c| c.get_mut(target)) else {
            *left = u32::MAX;
            return target;
        };
        let mut hist = *hist;
        let count = hist.count(*left);
        let (pc, wait) = match hook.as_deref_mut() {
            None => (target, u32::MAX),
            Some(h) => {
                let nregs = self.prog.funcs[func].nregs as usize;
                if count == self.config.jit_threshold {
                    let at = HotLoop {
                        func,
                        header_pc: target,
                        count,
                        regs: &mut regs[..nregs],
                    };
                    if let Some(mut link) = self.host {
                        let mut stepper = Stepper {
                            prog: self.prog,
                            // SAFETY: as in the host arm of `execute`: `run_with` keeps the
                            // linked host alive and unaliased while the dispatch loop runs;
                            // this borrow ends here.
                            link: unsafe { link.as_mut() },
                            meter: &self.meter,
                            pending: &mut self.host_pending,
                        };
                        h.hot_loop_hosted(at, &mut stepper);
                    } else {
                        h.hot_loop(at);
                    }
                }
                let regs = &mut regs[..nregs];
                h.call_room(self.config.max_depth.saturating_sub(self.frames.len()));
                let reply = if let Some(mut link) = self.host {
                    let mut stepper = Stepper {
                        prog: self.prog,
                        // SAFETY: as above.
                        link: unsafe { link.as_mut() },
                        meter: &self.meter,
                        pending: &mut self.host_pending,
                    };
                    h.enter_hosted(func, target, regs, &mut self.fuel, &mut stepper)
                } else {
                    h.enter(func, target, regs, &mut self.fuel)
                };
                match reply {
                    Reply::Native(pc) => (pc, 1),
                    Reply::Wait(n) => (target, n),
                }
            }
        };
        hist.wait(left, wait);
        if let Some(h) = self.loop_hist.get_mut(func).and_then(|c| c.get_mut(target)) {
            *h = hist;
        }
        pc
    }
}
