//! The interpreter: one dispatch loop over verified bytecode.
//!
//! Only a [`Vm`] runs code, and [`Vm::new`] verifies the program first, so the loop may rely on
//! the verifier's guarantees (known opcodes, extension words present, registers inside the frame,
//! jump targets on instruction starts, call arities). Where the loop skips a check (the code word
//! at the PC, the opcode, a constant, the frame's 256-slot register window), a `SAFETY` comment
//! names the verifier guarantee or the interpreter invariant it rests on; other accesses keep
//! their bounds checks.
//!
//! Hooks for the JIT: every taken jump to a lower PC goes through `Vm::back_edge`, which (when
//! counting is on) decrements the loop header PC's countdown word (`HotCount`); only when it
//! reaches 0 does the cold path run: [`LoopHook::hot_loop`] once at
//! [`VmConfig::jit_threshold`], then [`LoopHook::enter`], whose [`Reply`] either resumes after
//! native code or sets how many backward jumps to wait before asking again. A loop the JIT gave
//! up on thus costs one decrement and one branch per iteration, found by PC in O(1).
//!
//! Every `call` (while counting is on) ticks the callee's `HotCount` the same way
//! (`count_call`, `native.rs`): [`LoopHook::hot_func`] at the threshold, native code from
//! [`LoopHook::native_func`] (kept for the run), run through a [`NativeEnv`] instead of
//! pushing an interpreted frame.
use core::fmt::Write;
use core::mem;

use liballoc::string::String;
use liballoc::vec;
use liballoc::vec::Vec;

use liballoc::rc::Rc;

use super::builtins::{self, Builtin, Env};
use super::bytecode::{byte, field_a, field_b, field_bx, field_c, field_sbx, Op};
use super::error::{RuntimeError, RuntimeErrorKind as E, VerifyError};
use super::host::{self, Host, HostPtr};
use super::native::{HotFunc, NativeEnv, NativeFunc};
use super::program::{Const, Program};
use super::value::{Meter, MeterCell, Value, TAG_STR};
use super::verify::verify;

// The interpreter's native-code half (calls into and out of JIT code), in interp/native.rs.
pub mod native;

/// Limits and knobs a host sets before running untrusted code.
#[derive(Clone, Copy, Debug)]
pub struct VmConfig {
    /// Instruction budget (see [`Vm`] for how it is charged); `None` means unlimited.
    pub fuel: Option<u64>,
    /// Cap on live heap bytes (strings, arrays, the register stack); `usize::MAX` for none.
    pub memory_cap: usize,
    /// Maximum call depth.
    pub max_depth: usize,
    /// Backward-jump count at which a loop header is reported hot; 0 turns counting off.
    pub jit_threshold: u32,
    /// Bytes of machine stack that native calls of the function JIT may take below the point
    /// where [`Vm::run`] was called. Each native frame costs at most
    /// [`NATIVE_FRAME_BYTES`](super::native::NATIVE_FRAME_BYTES); a call that would cross the
    /// budget runs in the interpreter instead (whose frames live on the VM's own stack), so
    /// the machine stack never grows past it, and recursion deeper than `max_depth` fails with
    /// the interpreter's error either way. The caller's stack needs this much plus
    /// [`JIT_STACK_HEADROOM`](super::native::JIT_STACK_HEADROOM) free at `run`.
    pub native_stack: usize,
}

impl Default for VmConfig {
    fn default() -> VmConfig {
        VmConfig {
            fuel: None,
            memory_cap: usize::MAX,
            max_depth: 100_000,
            jit_threshold: 0,
            native_stack: super::native::DEFAULT_NATIVE_STACK,
        }
    }
}

/// What [`LoopHook::hot_loop`] is told.
pub struct HotLoop<'a> {
    /// Index of the function holding the loop.
    pub func: usize,
    /// PC of the loop header (the backward jump's target).
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

/// Arrivals at one loop header (taken backward jumps) or calls of one function, counted down
/// to the next time the hook is asked: the interpreter's whole per-arrival cost is one
/// decrement and one branch, whatever state the JIT keeps for the loop. (Loop headers keep
/// the `left` words in an array of their own, indexed by PC; see [`Vm::loop_counts`].)
#[derive(Clone, Copy, Debug)]
pub(super) struct HotCount {
    /// Arrivals left before the hook is asked (never 0 between arrivals).
    left: u32,
    hist: HotHist,
}

/// What a countdown needs to tell how many arrivals there were in all.
#[derive(Clone, Copy, Debug)]
pub(super) struct HotHist {
    /// What `left` was last set to.
    set: u32,
    /// Arrivals counted before `left` was last set (wrapping).
    base: u32,
}

impl HotHist {
    const fn new(threshold: u32) -> Self {
        Self {
            set: threshold,
            base: 0,
        }
    }

    /// Arrivals so far (wrapping after `u32::MAX`), with `left` the countdown.
    fn count(&self, left: u32) -> u32 {
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
    pub(super) const fn new(threshold: u32) -> Self {
        Self {
            left: threshold,
            hist: HotHist::new(threshold),
        }
    }

    /// Counts one arrival; true when the hook is to be asked.
    #[inline(always)]
    pub(super) fn tick(&mut self) -> bool {
        self.left -= 1;
        self.left == 0
    }

    /// Arrivals so far (wrapping after `u32::MAX`).
    pub(super) fn count(&self) -> u32 {
        self.hist.count(self.left)
    }

    /// Ask again after `n` more arrivals (at least 1).
    pub(super) fn wait(&mut self, n: u32) {
        self.hist.wait(&mut self.left, n);
    }

    /// Takes back the last arrival (one that does not count).
    pub(super) fn untick(&mut self) {
        self.left += 1;
    }
}

/// Receives hot-loop reports; the JIT implements this.
pub trait LoopHook {
    /// Called once per loop header, when its backward-jump count reaches the threshold.
    fn hot_loop(&mut self, at: HotLoop<'_>);

    /// Called at a taken backward jump to `header_pc` once the header is hot (right after
    /// [`hot_loop`](Self::hot_loop), then whenever the wait the last reply asked for is over),
    /// after the jump's fuel was charged, with the frame's registers and the fuel left. A JIT
    /// that ran compiled code for the loop replies `Native(pc)`: the PC to continue at (the
    /// registers already hold the loop's results, and `fuel` was charged as the interpreter
    /// would have charged for the same instructions), and it is asked again at the next
    /// backward jump. `Wait(n)` keeps interpreting and asks again only after `n` more backward
    /// jumps to this header (`u32::MAX`: practically never), so a loop the JIT gave up on
    /// costs the interpreter one counter increment per iteration.
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
    /// the callee's arguments (see [`super::native`]).
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

/// Performs one host instruction for compiled code (see [`LoopHook::enter_hosted`]).
pub trait HostStep {
    /// Whether the instruction at `pc` of `func` is one [`HostStep::step`] performs.
    fn is_host_op(&self, func: usize, pc: usize) -> bool;
    /// Performs the host instruction at `pc` of `func` on the frame's registers `regs`,
    /// charging `fuel` as the interpreter would; returns the next pc. On `None` nothing was
    /// written: the caller must resume the interpreter at `pc`, which reports the error there
    /// without performing the instruction again.
    fn step(&mut self, func: usize, pc: usize, regs: &mut [Value], fuel: &mut u64)
        -> Option<usize>;
    /// Host buffer `b` as a pointer and length, for compiled code. Valid until the next call
    /// of any method of this `HostStep` and only while the hook call that received it runs.
    fn buffer(&mut self, b: usize) -> Option<(*mut u8, usize)>;
    /// Calls host import `import` for compiled code, charging `fuel` as `callh` does; on an
    /// error it is parked (see [`HostStep::step`]) and the result is `None`.
    fn call(&mut self, import: usize, args: &[Value], fuel: &mut u64) -> Option<Value>;
    /// Parks a host call's result that compiled code cannot take: the interpreter's next
    /// `callh` (where compiled code exits) uses it instead of calling again.
    fn park(&mut self, v: Value);
    /// The last result of host import `import`, when it was an int or a bool.
    fn last_result(&self, import: usize) -> Option<host::Predicted>;
}

/// The VM's [`HostStep`]: its linked host, meter and program, and where an error waits for
/// the interpreter.
struct Stepper<'a> {
    prog: &'a Program,
    link: &'a mut dyn host::HostLink,
    meter: &'a super::value::Meter,
    pending: &'a mut Option<Result<Value, E>>,
}

impl HostStep for Stepper<'_> {
    fn buffer(&mut self, b: usize) -> Option<(*mut u8, usize)> {
        self.link.buf(b).map(|s| (s.as_mut_ptr(), s.len()))
    }

    fn call(&mut self, import: usize, args: &[Value], fuel: &mut u64) -> Option<Value> {
        match self.link.call(import, args, fuel, self.meter) {
            Ok(v) => Some(v),
            Err(k) => {
                *self.pending = Some(Err(k));
                None
            }
        }
    }

    fn park(&mut self, v: Value) {
        *self.pending = Some(Ok(v));
    }

    fn last_result(&self, import: usize) -> Option<host::Predicted> {
        self.link.last_result(import)
    }

    fn is_host_op(&self, func: usize, pc: usize) -> bool {
        let w = self.prog.funcs.get(func).and_then(|f| f.code.get(pc));
        w.is_some_and(|&w| is_host_byte(w as u8))
    }

    fn step(
        &mut self,
        func: usize,
        pc: usize,
        regs: &mut [Value],
        fuel: &mut u64,
    ) -> Option<usize> {
        if self.pending.is_some() {
            // A parked result or error: the interpreter takes it at this instruction.
            return None;
        }
        let &w = self.prog.funcs.get(func).and_then(|f| f.code.get(pc))?;
        let prog = self.prog;
        let link = &mut *self.link;
        let reg = |r: usize| regs.get(r).ok_or(E::BadArgument("register out of range"));
        let done = match w as u8 {
            byte::CallH => {
                let (first, n) = (field_a(w), field_c(w));
                match regs.get(first..first + n) {
                    Some(args) => link
                        .call(field_b(w), args, fuel, self.meter)
                        .map(|v| (first, v)),
                    None => Err(E::BadArgument("register out of range")),
                }
            }
            byte::BGet => reg(field_c(w))
                .and_then(|i| host::buf_get(link, prog, field_b(w), i).map(|v| (field_a(w), v))),
            byte::BSet => reg(field_b(w)).and_then(|i| {
                let v = reg(field_c(w))?;
                host::buf_set(link, prog, field_a(w), i, v).map(|()| (usize::MAX, Value::Nil))
            }),
            byte::BLen => host::buf_len(link, field_b(w)).map(|v| (field_a(w), v)),
            _ => Err(E::BadArgument("not a host instruction")),
        };
        match done {
            Ok((r, v)) => {
                if let Some(slot) = regs.get_mut(r) {
                    *slot = v;
                }
                Some(pc + 1)
            }
            Err(k) => {
                *self.pending = Some(Err(k));
                None
            }
        }
    }
}

/// Whether an opcode byte is one of the host instructions.
pub(crate) fn is_host_byte(op: u8) -> bool {
    matches!(op, byte::CallH | byte::BGet | byte::BSet | byte::BLen)
}

/// One call frame: where the caller resumes.
#[derive(Clone, Copy, Debug)]
pub(super) struct Frame {
    pub(super) func: u32,
    pub(super) ret_pc: u32,
    pub(super) base: u32,
}

/// A virtual machine bound to one verified program.
///
/// Fuel is charged in advance for each straight-line stretch of code, in code words: the entry
/// function's length at start, a callee's length per call, the rest of the caller on return, the
/// loop body's length per backward jump. Every instruction executed was paid for, so a budget of
/// F bounds execution to at most F instructions (typically it allows fewer).
pub struct Vm<'p> {
    pub(super) prog: &'p Program,
    consts: Vec<Value>,
    stack: Vec<Value>,
    pub(super) frames: Vec<Frame>,
    meter: Meter,
    fuel: u64,
    pub(super) config: VmConfig,
    /// Per function, per PC: arrivals at the loop header at that PC (empty when counting is
    /// off).
    /// (the countdown words; see [`HotCount`]).
    counters: Vec<Vec<u32>>,
    /// The rest of each loop header's [`HotCount`], same indexing.
    loop_hist: Vec<Vec<HotHist>>,
    /// Per function, the address of its `counters` (from `Vec::as_mut_ptr`, taken once in
    /// [`Vm::new`]; the counters are never resized, and while running they are reached only
    /// through these pointers).
    hot_ptrs: Vec<*mut u32>,
    /// The running function's `counters` (see [`Vm::loop_counts`]); null when counting is off.
    hot: *mut u32,
    /// Calls per function (empty when counting is off); see [`super::native`].
    pub(super) calls: Vec<HotCount>,
    /// Call count at which a function is hot (defaults to the loop threshold).
    pub(super) func_threshold: u32,
    /// Native activations on the host stack now.
    pub(super) native_depth: usize,
    /// Lowest machine-stack address native frames may reach in this run (`run`'s stack pointer
    /// minus `config.native_stack`).
    pub(super) stack_floor: usize,
    /// Native code per function, once the hook handed some out (empty when counting is off).
    pub(super) natives: Vec<Option<Rc<dyn NativeFunc>>>,
    args: Vec<Value>,
    /// The linked host of the run in progress (see [`Vm::run_with`]); `None` outside
    /// `run_with` and for programs run without a host.
    host: Option<HostPtr>,
    /// What a [`HostStep`] parked for compiled code: an error, raised by the next host
    /// instruction, or a host call's result, taken by the next `callh`.
    host_pending: Option<Result<Value, E>>,
    /// The heap watermark of the register stack: an address (see [`Vm::execute`]).
    heap_top: usize,
}

impl<'p> Vm<'p> {
    /// Verifies `prog` and prepares a VM for it.
    pub fn new(prog: &'p Program, config: VmConfig) -> Result<Vm<'p>, VerifyError> {
        verify(prog)?;
        let meter = MeterCell::new(config.memory_cap);
        let t = config.jit_threshold;
        let loop_hist = if t > 0 {
            let h = HotHist::new(t);
            prog.funcs.iter().map(|f| vec![h; f.code.len()]).collect()
        } else {
            Vec::new()
        };
        let mut counters: Vec<Vec<u32>> = if t > 0 {
            prog.funcs.iter().map(|f| vec![t; f.code.len()]).collect()
        } else {
            Vec::new()
        };
        let calls = if config.jit_threshold > 0 {
            vec![HotCount::new(config.jit_threshold); prog.funcs.len()]
        } else {
            Vec::new()
        };
        Ok(Vm {
            prog,
            consts: Vec::new(),
            stack: Vec::new(),
            frames: Vec::new(),
            meter,
            fuel: config.fuel.unwrap_or(u64::MAX),
            config,
            hot_ptrs: counters.iter_mut().map(|c| c.as_mut_ptr()).collect(),
            counters,
            loop_hist,
            hot: core::ptr::null_mut(),
            func_threshold: config.jit_threshold,
            native_depth: 0,
            stack_floor: usize::MAX,
            natives: (0..calls.len()).map(|_| None).collect(),
            calls,
            args: Vec::new(),
            host: None,
            host_pending: None,
            heap_top: usize::MAX,
        })
    }

    /// Sets what `args()` returns.
    pub fn set_args(&mut self, args: &[&str]) -> Result<(), RuntimeError> {
        let meter = self.meter.clone();
        self.args = args
            .iter()
            .map(|s| Value::new_str(&meter, s))
            .collect::<Result<_, _>>()
            .map_err(|_| self.fail(0, 0, E::OutOfMemory))?;
        Ok(())
    }

    /// Live heap bytes charged to this VM.
    pub fn heap_bytes(&self) -> usize {
        self.meter.used()
    }

    /// Fuel left: the same with the JIT on or off (native code charges what the interpreter
    /// would, including calls compiled functions make to each other directly).
    pub fn fuel_left(&self) -> u64 {
        self.fuel
    }

    /// Register slot `i` of the whole register stack (frame base + register index).
    pub fn slot(&self, i: usize) -> Option<&Value> {
        self.stack.get(i)
    }

    /// Mutable access to register slot `i` of the register stack.
    pub fn slot_mut(&mut self, i: usize) -> Option<&mut Value> {
        self.stack.get_mut(i)
    }

    /// The backward-jump counter of a loop header (0 when counting is off).
    pub fn loop_count(&self, func: usize, header_pc: usize) -> u32 {
        let left = self.counters.get(func).and_then(|c| c.get(header_pc));
        let hist = self.loop_hist.get(func).and_then(|c| c.get(header_pc));
        match (left, hist) {
            (Some(left), Some(hist)) => hist.count(*left),
            _ => 0,
        }
    }

    #[cold]
    #[inline(never)]
    pub(super) fn fail(&self, func: usize, pc: usize, kind: E) -> RuntimeError {
        let f = self.prog.funcs.get(func);
        RuntimeError {
            kind,
            func: f
                .map(|f| String::from(self.prog.func_name(f)))
                .unwrap_or_default(),
            pc,
            line: f.and_then(|f| f.lines.get(pc)).copied().unwrap_or(0),
        }
    }

    pub(super) fn charge(&mut self, words: usize) -> Result<(), E> {
        self.fuel = self.fuel.checked_sub(words as u64).ok_or(E::OutOfFuel)?;
        Ok(())
    }

    fn load_consts(&mut self) -> Result<(), E> {
        if !self.consts.is_empty() {
            return Ok(());
        }
        let meter = self.meter.clone();
        self.consts = self
            .prog
            .consts
            .iter()
            .map(|k| match k {
                Const::Int(i) => Ok(Value::Int(*i)),
                Const::Float(x) => Ok(Value::Float(*x)),
                Const::Str(s) => Value::new_str(&meter, s).map_err(|_| E::OutOfMemory),
            })
            .collect::<Result<Vec<_>, _>>()?;
        // K operands are 8-bit: padding to 256 entries lets them index without bounds checks.
        if self.consts.len() < 256 {
            self.consts.resize(256, Value::Nil);
        }
        Ok(())
    }

    /// The loop-header counters of `func`, one per PC (null when counting is off). Taken
    /// once per frame switch, so a backward jump finds its header's counter by PC alone. A raw
    /// pointer (from `Vec::as_mut_ptr`, which keeps other such pointers valid): the counters
    /// are never resized after [`Vm::new`], and all accesses while running go through these
    /// pointers.
    #[inline(always)]
    fn loop_counts(&mut self, func: usize) -> *mut u32 {
        self.hot_ptrs
            .get(func)
            .copied()
            .unwrap_or(core::ptr::null_mut())
    }

    /// Taken jump from `at` to a lower `target`: fuel for the loop body, hot-loop counting, and
    /// compiled code for the loop if the JIT has some. Returns the PC to continue at.
    #[inline(always)]
    fn back_edge(
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

    /// The header at `target` (countdown `left`) is hot and its wait is over: tell the hook (once,
    /// at the threshold), let it run native code, and note how long to wait before asking
    /// again.
    #[cold]
    #[inline(never)]
    fn loop_event(
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

    /// Runs function 0 to completion and returns its result; `print` writes to `out`. A
    /// program that calls host functions or uses host buffers needs [`Vm::run_with`].
    pub fn run(
        &mut self,
        out: &mut dyn Write,
        hook: Option<&mut dyn LoopHook>,
    ) -> Result<Value, RuntimeError> {
        self.host = None;
        if !self.prog.imports.is_empty() || !self.prog.buffers.is_empty() {
            let why = "the program uses host functions or buffers; run it with run_with";
            return Err(self.fail(0, 0, E::Link(why.into())));
        }
        self.run_linked(out, hook)
    }

    /// [`Vm::run`] with `host`'s functions and the buffers `bufs` (buffer `i` of the host is
    /// `bufs[i]`), which the program may read and write during this call only (see
    /// [`super::host`]). Fails before running anything when the program's imports are not
    /// what `host` offers (a missing function, another arity, other buffers).
    pub fn run_with(
        &mut self,
        host: &mut Host<'_>,
        bufs: &mut [&mut [u8]],
        out: &mut dyn Write,
        hook: Option<&mut dyn LoopHook>,
    ) -> Result<Value, RuntimeError> {
        let track = self.config.jit_threshold != 0;
        let mut linked = match host.link(self.prog, bufs, track) {
            Ok(l) => l,
            Err(k) => return Err(self.fail(0, 0, k)),
        };
        // SAFETY: the pointer is used only by the dispatch loop inside `run_linked` below,
        // while `linked` (and the host and buffers it borrows) is alive, and it is cleared
        // before `linked` is dropped; every entry into the dispatch loop (`run`, `run_with`)
        // sets the field first, so a pointer left behind by an unwinding host function is
        // never read.
        self.host = Some(unsafe { host::erase(&mut linked) });
        self.host_pending = None;
        let result = self.run_linked(out, hook);
        self.host = None;
        result
    }

    fn run_linked(
        &mut self,
        out: &mut dyn Write,
        mut hook: Option<&mut dyn LoopHook>,
    ) -> Result<Value, RuntimeError> {
        let entry_len = self.prog.funcs[0].code.len();
        self.charge(entry_len).map_err(|k| self.fail(0, 0, k))?;
        self.load_consts().map_err(|k| self.fail(0, 0, k))?;
        self.frames.clear();
        self.stack_floor = super::native::stack_pointer().saturating_sub(self.config.native_stack);
        let mut pos = Pos { func: 0, pc: 0 };
        // The stack and constants move out of `self` while running, so the dispatch loop can
        // hold a borrow of the current frame's registers and still update fuel and counters.
        let mut stack = mem::take(&mut self.stack);
        let consts = mem::take(&mut self.consts);
        let result = match self.grow_stack(&mut stack, FRAME_WINDOW) {
            Ok(()) => {
                let start = Start {
                    func: 0,
                    pc: 0,
                    base: 0,
                    stop: 0,
                };
                self.execute(&mut stack, &consts, out, &mut hook, &mut pos, start)
            }
            Err(k) => Err(k),
        };
        // Release every frame's registers, also after an error, so heap values are reclaimed.
        stack.iter_mut().for_each(|v| *v = Value::Nil);
        // Native code belongs to this run's hook, which may be gone before the next run.
        self.natives.iter_mut().for_each(|n| *n = None);
        self.stack = stack;
        self.consts = consts;
        result.map_err(|k| self.fail(pos.func, pos.pc, k))
    }

    /// Whether `slots` more register slots fit under the memory cap with room to spare (a
    /// quarter of the cap stays free for the program).
    pub(super) fn heap_fits(&self, slots: usize) -> bool {
        let bytes = slots.saturating_mul(mem::size_of::<Value>());
        self.meter
            .fits(bytes.saturating_add(self.config.memory_cap / 4))
    }

    /// Makes the register stack at least `need` slots long (charged to the meter).
    #[inline(always)]
    pub(super) fn grow_stack(&mut self, stack: &mut Vec<Value>, need: usize) -> Result<(), E> {
        if stack.len() < need {
            return self.grow_stack_to(stack, need);
        }
        Ok(())
    }

    #[cold]
    #[inline(never)]
    fn grow_stack_to(&mut self, stack: &mut Vec<Value>, need: usize) -> Result<(), E> {
        {
            let more = need - stack.len();
            self.meter
                .charge(more * mem::size_of::<Value>())
                .map_err(|_| E::OutOfMemory)?;
            let old = stack.as_ptr() as usize;
            stack.try_reserve(more).map_err(|_| E::OutOfMemory)?;
            stack.resize(need, Value::Nil);
            // The watermark is an address: it moves with the slots (see `execute`).
            if self.heap_top != usize::MAX {
                self.heap_top = match self.heap_top.checked_sub(old) {
                    Some(off) if self.heap_top > old => stack.as_ptr() as usize + off,
                    _ => 0,
                };
            }
        }
        Ok(())
    }

    /// What compiled code parked for the host instruction `op` (see [`HostStep`]): a `callh`
    /// result, or an error.
    #[cold]
    #[inline(never)]
    fn take_pending(&mut self, op: u8) -> Result<Option<Value>, E> {
        match self.host_pending.take() {
            Some(Ok(v)) if op == byte::CallH => Ok(Some(v)),
            Some(Ok(_)) => Err(E::Link("a parked result at a buffer access".into())),
            Some(Err(k)) => Err(k),
            None => Ok(None),
        }
    }

    /// Runs from `start` until the frame it starts in returns (the call depth falls back to
    /// `start.stop`); an error leaves its location in `pos`.
    pub(super) fn execute(
        &mut self,
        stack: &mut Vec<Value>,
        consts: &[Value],
        out: &mut dyn Write,
        hook: &mut Option<&mut dyn LoopHook>,
        pos: &mut Pos,
        start: Start,
    ) -> Result<Value, E> {
        let prog = self.prog;
        let mut fi = start.func;
        let Some(mut func) = prog.funcs.get(fi) else {
            return Err(E::BadArgument("no such function"));
        };
        let mut base = start.base;
        let mut pc = start.pc;
        if stack.len() < base.saturating_add(FRAME_WINDOW) {
            return Err(E::StackOverflow);
        }
        let Ok(kk) = <&[Value; 256]>::try_from(&consts[..256]) else {
            return Err(E::BadArgument("constant table not padded"));
        };
        // The heap watermark: no register slot at or above address `heap_top` holds a heap
        // value (string or array), so `ret` of a frame starting there has nothing to release.
        // Every store of a heap value into a register raises it (`put!`, `ret`), and
        // `grow_stack` moves it with the stack; only the interpreter writes registers while
        // the JIT is off. With the JIT on, native code writes registers too: the watermark
        // stays at the top of the address space and every `ret` scans its frame.
        self.heap_top = if self.config.jit_threshold != 0 || start.stop != 0 {
            usize::MAX
        } else {
            let last = stack.iter().rposition(|v| v.tag() >= TAG_STR);
            last.map_or(0, |i| stack.as_ptr().wrapping_add(i + 1) as usize)
        };
        'frames: loop {
            let code: &[u32] = &func.code;
            // The PC as a pointer into the code: one register for fetching; the index is
            // computed back (`pc!`) only where it is needed (jumps, calls, errors).
            let mut ip: *const u32 = code.as_ptr().wrapping_add(pc);
            macro_rules! pc {
                () => {
                    (ip as usize - code.as_ptr() as usize) / mem::size_of::<u32>()
                };
            }
            macro_rules! bail {
                ($e:expr) => {{
                    pos.func = fi;
                    pos.pc = pc!();
                    return Err($e);
                }};
            }
            macro_rules! tri {
                ($e:expr) => {
                    match $e {
                        Ok(v) => v,
                        Err(k) => bail!(k),
                    }
                };
            }
            if self.config.jit_threshold != 0 {
                self.hot = self.loop_counts(fi);
            }
            // A frame's window is a fixed 256 slots (the stack always extends that far past the
            // base), so 8-bit register operands index it without bounds checks.
            debug_assert!(base + FRAME_WINDOW <= stack.len());
            // SAFETY: the window lies inside the stack: checked on entry for the first frame;
            // `call` grows the stack to cover the callee's window before switching to it; `ret`
            // returns to a frame this loop entered before; and the stack never shrinks while
            // the loop runs. `regs` is re-derived after every use of `stack` elsewhere (each
            // such use ends with `continue 'frames`).
            let regs =
                unsafe { &mut *stack.as_mut_ptr().add(base).cast::<[Value; FRAME_WINDOW]>() };
            // Stores into a register; dropping an old heap reference here is a collection
            // point (see the module doc). A plain assignment measured fastest (docs/perf.md).
            // A heap value raises the watermark (see `heap_top`).
            macro_rules! put {
                ($r:expr, $v:expr) => {{
                    let new = $v;
                    let r = $r;
                    if new.tag() >= TAG_STR {
                        let end = regs.as_ptr().wrapping_add(r + 1) as usize;
                        if end > self.heap_top {
                            self.heap_top = end;
                        }
                    }
                    let slot = &mut regs[r];
                    if slot.tag() >= TAG_STR {
                        drop(mem::replace(slot, new));
                    } else {
                        // SAFETY: the slot owns nothing, so overwriting it without a drop
                        // leaks nothing.
                        unsafe { core::ptr::write(slot, new) };
                    }
                }};
            }
            // Stores a number (or anything that owns nothing): the old value is tested first
            // and dropped only if it owns something, after the store, so the new value never
            // waits across the drop.
            macro_rules! set_num {
                ($r:expr, $v:expr) => {{
                    let slot = &mut regs[$r];
                    let new = $v;
                    if slot.tag() >= TAG_STR {
                        drop(mem::replace(slot, new));
                    } else {
                        // SAFETY: the slot owns nothing, so overwriting it without a drop
                        // leaks nothing.
                        unsafe { core::ptr::write(slot, new) };
                    }
                }};
            }
            loop {
                // SAFETY: `Vm::new` verified this function: execution starts at PC 0, every
                // instruction's successors are instruction starts inside the code (jump targets
                // are checked, nothing falls off the end), so `ip` points into the code here.
                let w = unsafe { *ip };
                macro_rules! ext {
                    () => {
                        // SAFETY: the verifier checked that every instruction with an `Ext`
                        // operand has its extension word inside the code.
                        unsafe { *ip.add(1) as usize }
                    };
                }
                // Int/int and float/float inline, without a `Result` in between; anything else
                // (mixed numbers, strings, errors, int division) goes to `arith`.
                macro_rules! arith {
                    ($f:ident, $rhs:expr, $iop:ident, $fop:tt) => {{
                        match (&regs[field_b(w)], $rhs) {
                            (Value::Float(x), Value::Float(y)) => {
                                let r = *x $fop *y;
                                set_num!(field_a(w), Value::Float(r));
                            }
                            (Value::Int(x), Value::Int(y)) => {
                                let r = x.$iop(*y);
                                set_num!(field_a(w), Value::Int(r));
                            }
                            (x, y) => {
                                // Mixed numbers compute in float, as `arith` does, out of line
                                // so the same-type paths above keep their shape.
                                if let Some(r) = super::arith::mixed(x, y, |p, q| p $fop q) {
                                    set_num!(field_a(w), Value::Float(r));
                                } else {
                                    let v = tri!(super::arith::$f(x, y, &self.meter));
                                    put!(field_a(w), v);
                                }
                            }
                        }
                        ip = ip.wrapping_add(1);
                    }};
                    ($f:ident, $rhs:expr, $iop:ident if nonzero, $fop:tt) => {{
                        match (&regs[field_b(w)], $rhs) {
                            (Value::Float(x), Value::Float(y)) => {
                                let r = *x $fop *y;
                                set_num!(field_a(w), Value::Float(r));
                            }
                            // Division by zero goes to `arith`, which reports it.
                            (Value::Int(x), Value::Int(y)) if *y != 0 => {
                                let r = x.$iop(*y);
                                set_num!(field_a(w), Value::Int(r));
                            }
                            (x, y) => {
                                // Mixed numbers compute in float, as `arith` does, out of line
                                // so the same-type paths above keep their shape.
                                if let Some(r) = super::arith::mixed(x, y, |p, q| p $fop q) {
                                    set_num!(field_a(w), Value::Float(r));
                                } else {
                                    let v = tri!(super::arith::$f(x, y, &self.meter));
                                    put!(field_a(w), v);
                                }
                            }
                        }
                        ip = ip.wrapping_add(1);
                    }};
                }
                macro_rules! jump {
                    () => {{
                        let target = ext!();
                        let at = pc!();
                        let to = if target <= at {
                            tri!(self.back_edge(fi, at, target, regs, hook))
                        } else {
                            target
                        };
                        ip = code.as_ptr().wrapping_add(to);
                    }};
                }
                // Compare-and-branch with the same-type fast paths inline.
                macro_rules! cmp_branch {
                    ($x:expr, $y:expr, $op:tt, $slow:ident) => {{
                        let taken = match ($x, $y) {
                            (Value::Float(x), Value::Float(y)) => x $op y,
                            (Value::Int(x), Value::Int(y)) => x $op y,
                            // Byte-wise, as `arith::lt`/`le` compare strings.
                            (Value::Str(x), Value::Str(y)) => x.as_str() $op y.as_str(),
                            (x, y) => tri!(super::arith::$slow(x, y)),
                        };
                        if taken == (field_c(w) != 0) {
                            jump!();
                        } else {
                            ip = ip.wrapping_add(2);
                        }
                    }};
                }
                // `A += step; if A < limit goto Ext` (or `<=`), with `add` and `lt`/`le`
                // semantics.
                macro_rules! for_loop {
                    ($limit:expr) => {
                        for_loop!(&kk[field_b(w)], $limit, <, lt)
                    };
                    ($step:expr, $limit:expr, $op:tt, $slow:ident) => {{
                        match (&regs[field_a(w)], $step) {
                            (Value::Int(x), Value::Int(y)) => {
                                let r = x.wrapping_add(*y);
                                set_num!(field_a(w), Value::Int(r));
                            }
                            (Value::Float(x), Value::Float(y)) => {
                                let r = *x + *y;
                                set_num!(field_a(w), Value::Float(r));
                            }
                            (x, y) => {
                                let v = tri!(super::arith::add(x, y, &self.meter));
                                put!(field_a(w), v);
                            }
                        }
                        let taken = match (&regs[field_a(w)], $limit) {
                            (Value::Int(x), Value::Int(y)) => x $op y,
                            (Value::Float(x), Value::Float(y)) => x $op y,
                            (x, y) => tri!(super::arith::$slow(x, y)),
                        };
                        if taken {
                            jump!();
                        } else {
                            ip = ip.wrapping_add(2);
                        }
                    }};
                }
                // Equality-and-branch: same-type numbers inline, the rest out of line.
                macro_rules! eq_branch {
                    ($x:expr, $y:expr) => {{
                        let taken = match ($x, $y) {
                            (Value::Int(x), Value::Int(y)) => x == y,
                            (Value::Float(x), Value::Float(y)) => x == y,
                            (x, y) => super::arith::equal(x, y),
                        };
                        if taken == (field_c(w) != 0) {
                            jump!();
                        } else {
                            ip = ip.wrapping_add(2);
                        }
                    }};
                }
                // SAFETY: `Vm::new` verified that every instruction start holds a valid
                // opcode byte (`Op::from_byte` succeeded for it), and execution only reaches
                // instruction starts, so the byte is a valid `Op` discriminant. The exhaustive
                // `match` on `Op` needs no range check before its jump table.
                let op = unsafe { core::mem::transmute::<u8, Op>(w as u8) };
                match op {
                    Op::Move => {
                        let (src, dst) = (field_b(w), field_a(w));
                        if (regs[src].tag() | regs[dst].tag()) < TAG_STR {
                            // SAFETY: neither value owns anything (the heap tags are the ones
                            // at or above `TAG_STR`, and an OR below it means both are below),
                            // so a bitwise copy over the old value is a complete move.
                            unsafe { core::ptr::copy(&regs[src], &mut regs[dst], 1) };
                        } else {
                            put!(dst, regs[src].clone());
                        }
                        ip = ip.wrapping_add(1);
                    }
                    Op::LoadK => {
                        // SAFETY: the verifier checked `bx < prog.consts.len()`, and
                        // `consts` holds one value per program constant (`load_consts`), at
                        // the address `kk` starts at.
                        let k = unsafe { &*kk.as_ptr().add(field_bx(w)) };
                        put!(field_a(w), k.clone());
                        ip = ip.wrapping_add(1);
                    }
                    Op::LoadInt => {
                        put!(field_a(w), Value::Int(field_sbx(w)));
                        ip = ip.wrapping_add(1);
                    }
                    Op::LoadNil => {
                        put!(field_a(w), Value::Nil);
                        ip = ip.wrapping_add(1);
                    }
                    Op::LoadBool => {
                        put!(field_a(w), Value::Bool(field_b(w) != 0));
                        ip = ip.wrapping_add(1);
                    }
                    Op::Add => arith!(add, &regs[field_c(w)], wrapping_add, +),
                    Op::Sub => arith!(sub, &regs[field_c(w)], wrapping_sub, -),
                    Op::Mul => arith!(mul, &regs[field_c(w)], wrapping_mul, *),
                    Op::Div => arith!(div, &regs[field_c(w)], wrapping_div if nonzero, /),
                    Op::Mod => arith!(rem, &regs[field_c(w)], wrapping_rem if nonzero, %),
                    Op::AddK => arith!(add, &kk[field_c(w)], wrapping_add, +),
                    Op::SubK => arith!(sub, &kk[field_c(w)], wrapping_sub, -),
                    Op::MulK => arith!(mul, &kk[field_c(w)], wrapping_mul, *),
                    Op::DivK => arith!(div, &kk[field_c(w)], wrapping_div if nonzero, /),
                    Op::ModK => arith!(rem, &kk[field_c(w)], wrapping_rem if nonzero, %),
                    Op::MulAdd => {
                        match (&regs[field_a(w)], &regs[field_b(w)], &regs[field_c(w)]) {
                            (Value::Float(x), Value::Float(y), Value::Float(z)) => {
                                // Two roundings, as `mul` then `add` (Rust never contracts
                                // this into a fused multiply-add).
                                let r = *x + *y * *z;
                                set_num!(field_a(w), Value::Float(r));
                            }
                            (Value::Int(x), Value::Int(y), Value::Int(z)) => {
                                let r = x.wrapping_add(y.wrapping_mul(*z));
                                set_num!(field_a(w), Value::Int(r));
                            }
                            (x, y, z) => {
                                let t = tri!(super::arith::mul(y, z, &self.meter));
                                let v = tri!(super::arith::add(x, &t, &self.meter));
                                put!(field_a(w), v);
                            }
                        }
                        ip = ip.wrapping_add(1);
                    }
                    Op::Neg => {
                        let v = tri!(super::arith::neg(&regs[field_b(w)]));
                        put!(field_a(w), v);
                        ip = ip.wrapping_add(1);
                    }
                    Op::Not => {
                        put!(field_a(w), Value::Bool(!regs[field_b(w)].truthy()));
                        ip = ip.wrapping_add(1);
                    }
                    Op::Eq => {
                        put!(
                            field_a(w),
                            Value::Bool(regs[field_b(w)].equals(&regs[field_c(w)]))
                        );
                        ip = ip.wrapping_add(1);
                    }
                    Op::Lt => {
                        let v = tri!(super::arith::lt(&regs[field_b(w)], &regs[field_c(w)]));
                        put!(field_a(w), Value::Bool(v));
                        ip = ip.wrapping_add(1);
                    }
                    Op::Le => {
                        let v = tri!(super::arith::le(&regs[field_b(w)], &regs[field_c(w)]));
                        put!(field_a(w), Value::Bool(v));
                        ip = ip.wrapping_add(1);
                    }
                    Op::Jmp => jump!(),
                    Op::JmpIf => {
                        if regs[field_a(w)].truthy() == (field_b(w) != 0) {
                            jump!();
                        } else {
                            ip = ip.wrapping_add(2);
                        }
                    }
                    Op::JLt => cmp_branch!(&regs[field_a(w)], &regs[field_b(w)], <, lt),
                    Op::JLe => cmp_branch!(&regs[field_a(w)], &regs[field_b(w)], <=, le),
                    Op::JEq => eq_branch!(&regs[field_a(w)], &regs[field_b(w)]),
                    Op::JLtK => cmp_branch!(&regs[field_a(w)], &kk[field_b(w)], <, lt),
                    Op::JLeK => cmp_branch!(&regs[field_a(w)], &kk[field_b(w)], <=, le),
                    Op::JGtK => cmp_branch!(&kk[field_b(w)], &regs[field_a(w)], <, lt),
                    Op::JGeK => cmp_branch!(&kk[field_b(w)], &regs[field_a(w)], <=, le),
                    Op::JEqK => eq_branch!(&regs[field_a(w)], &kk[field_b(w)]),
                    Op::ForLtK => for_loop!(&kk[field_c(w)]),
                    Op::ForLt => for_loop!(&regs[field_c(w)]),
                    Op::ForLeK => for_loop!(&kk[field_b(w)], &kk[field_c(w)], <=, le),
                    Op::ForLe => for_loop!(&kk[field_b(w)], &regs[field_c(w)], <=, le),
                    Op::ForLtR => for_loop!(&regs[field_b(w)], &regs[field_c(w)], <, lt),
                    Op::ForLeR => for_loop!(&regs[field_b(w)], &regs[field_c(w)], <=, le),
                    Op::Call => {
                        let callee = ext!();
                        if self.frames.len() >= self.config.max_depth {
                            bail!(E::StackOverflow);
                        }
                        // SAFETY: the verifier checked that every `call` names an existing
                        // function (`check_call`).
                        let cf = unsafe { prog.funcs.get_unchecked(callee) };
                        tri!(self.charge(cf.code.len()));
                        let new_base = base + field_a(w);
                        tri!(self.grow_stack(stack, new_base + FRAME_WINDOW));
                        if self.config.jit_threshold != 0 {
                            if let Some(native) = self.count_call(stack, callee, new_base, hook) {
                                let at = (fi, pc!());
                                let mut env = NativeEnv::new(self, stack, consts, out, hook);
                                if let Err(t) = env.run_native(&native, at, new_base) {
                                    pos.func = t.func;
                                    pos.pc = t.pc;
                                    return Err(t.kind);
                                }
                                pc = pc!() + 2;
                                continue 'frames;
                            }
                        }
                        self.frames.push(Frame {
                            func: fi as u32,
                            ret_pc: (pc!() + 2) as u32,
                            base: base as u32,
                        });
                        fi = callee;
                        func = cf;
                        base = new_base;
                        pc = 0;
                        continue 'frames;
                    }
                    Op::CallB => {
                        let (first, n) = (field_a(w), field_c(w));
                        // `sqrt` of a float, the one builtin hot inside numeric loops.
                        if field_b(w) == Builtin::Sqrt as usize {
                            if let Value::Float(x) = regs[first] {
                                regs[first] = Value::Float(builtins::sqrt(x));
                                ip = ip.wrapping_add(1);
                                continue;
                            }
                        }
                        let Some(bi) = Builtin::from_index(field_b(w)) else {
                            bail!(E::BadArgument("unknown builtin"))
                        };
                        let mut env = Env {
                            out: &mut *out,
                            meter: &self.meter,
                            args: &self.args,
                        };
                        let v = tri!(builtins::call(bi, &regs[first..first + n], &mut env));
                        put!(first, v);
                        ip = ip.wrapping_add(1);
                    }
                    Op::Ret | Op::RetNil => {
                        let v = if op == Op::Ret {
                            mem::take(&mut regs[field_a(w)])
                        } else {
                            Value::Nil
                        };
                        // Collection point: the callee's registers are released here. Only
                        // heap values need it; the rest are dead and never read again (the
                        // verifier proves every register is written before it is read). No
                        // slot from `heap_top` on holds one, so a frame above it has none.
                        let nregs = func.nregs as usize;
                        let lo = regs.as_ptr() as usize;
                        if self.heap_top > lo {
                            for r in regs[..nregs].iter_mut() {
                                if r.tag() >= TAG_STR {
                                    *r = Value::Nil;
                                }
                            }
                            if self.heap_top <= regs.as_ptr().wrapping_add(nregs) as usize {
                                self.heap_top = lo;
                            }
                        }
                        debug_assert!(regs[..nregs].iter().all(|r| r.tag() < TAG_STR));
                        if self.frames.len() <= start.stop {
                            return Ok(v);
                        }
                        let Some(fr) = self.frames.pop() else {
                            return Ok(v);
                        };
                        if v.tag() >= TAG_STR {
                            self.heap_top = self.heap_top.max(lo + mem::size_of::<Value>());
                        }
                        // SAFETY: the slot holds no heap value (released above, or none was
                        // there), so overwriting it without a drop leaks nothing.
                        unsafe { core::ptr::write(&mut regs[0], v) };
                        fi = fr.func as usize;
                        // SAFETY: `fr.func` was the index of a running function when the
                        // frame was pushed.
                        func = unsafe { prog.funcs.get_unchecked(fi) };
                        base = fr.base as usize;
                        pc = fr.ret_pc as usize;
                        if let Err(k) = self.charge(func.code.len() - pc) {
                            // Raised at the return PC of the caller, as before the switch.
                            pos.func = fi;
                            pos.pc = pc;
                            return Err(k);
                        }
                        continue 'frames;
                    }
                    Op::NewArr => {
                        let (first, n) = (field_b(w), field_c(w));
                        let items = regs[first..first + n].to_vec();
                        let v =
                            tri!(Value::new_array(&self.meter, items).map_err(|_| E::OutOfMemory));
                        put!(field_a(w), v);
                        ip = ip.wrapping_add(1);
                    }
                    Op::GetIdx => {
                        if let (Value::Array(arr), Value::Int(i)) =
                            (&regs[field_b(w)], &regs[field_c(w)])
                        {
                            if let Some(v) = arr.get(super::arith::index_of(*i)) {
                                put!(field_a(w), v);
                                ip = ip.wrapping_add(1);
                                continue;
                            }
                        }
                        let v = tri!(super::arith::get_index(
                            &regs[field_b(w)],
                            &regs[field_c(w)]
                        ));
                        put!(field_a(w), v);
                        ip = ip.wrapping_add(1);
                    }
                    Op::SetIdx => {
                        if let (Value::Array(arr), Value::Int(i)) =
                            (&regs[field_a(w)], &regs[field_b(w)])
                        {
                            let i = super::arith::index_of(*i);
                            if arr.set_inline(i, &regs[field_c(w)]) {
                                ip = ip.wrapping_add(1);
                                continue;
                            }
                            // A heap value stored or replaced: clone in, drop the old one
                            // after the store (an index past the end falls to the error path).
                            if let Ok(old) = arr.replace(i, regs[field_c(w)].clone()) {
                                drop(old);
                                ip = ip.wrapping_add(1);
                                continue;
                            }
                        }
                        let v = regs[field_c(w)].clone();
                        tri!(super::arith::set_index(
                            &regs[field_a(w)],
                            &regs[field_b(w)],
                            v
                        ));
                        ip = ip.wrapping_add(1);
                    }
                    Op::GetIdxI => {
                        if let Value::Array(arr) = &regs[field_b(w)] {
                            if let Some(v) = arr.get(field_c(w)) {
                                put!(field_a(w), v);
                                ip = ip.wrapping_add(1);
                                continue;
                            }
                        }
                        let i = Value::Int(field_c(w) as i64);
                        let v = tri!(super::arith::get_index(&regs[field_b(w)], &i));
                        put!(field_a(w), v);
                        ip = ip.wrapping_add(1);
                    }
                    Op::SetIdxI => {
                        if let Value::Array(arr) = &regs[field_a(w)] {
                            if arr.set_inline(field_b(w), &regs[field_c(w)]) {
                                ip = ip.wrapping_add(1);
                                continue;
                            }
                            if let Ok(old) = arr.replace(field_b(w), regs[field_c(w)].clone()) {
                                drop(old);
                                ip = ip.wrapping_add(1);
                                continue;
                            }
                        }
                        let v = regs[field_c(w)].clone();
                        let i = Value::Int(field_b(w) as i64);
                        tri!(super::arith::set_index(&regs[field_a(w)], &i, v));
                        ip = ip.wrapping_add(1);
                    }
                    Op::CallH | Op::BGet | Op::BSet | Op::BLen => {
                        if self.host_pending.is_some() {
                            match self.take_pending(w as u8) {
                                // Compiled code made this call and exited here with its result.
                                Ok(Some(v)) => {
                                    put!(field_a(w), v);
                                    ip = ip.wrapping_add(1);
                                    continue;
                                }
                                Ok(None) => {}
                                // Compiled code stopped here because the instruction failed.
                                Err(k) => bail!(k),
                            }
                        }
                        let Some(mut h) = self.host else {
                            bail!(E::Link("no host linked".into()))
                        };
                        // SAFETY: `run_with` keeps the linked host alive and unaliased for
                        // the whole dispatch loop (see there); this borrow ends with the arm.
                        let link = unsafe { h.as_mut() };
                        match op {
                            Op::CallH => {
                                let (first, n) = (field_a(w), field_c(w));
                                let args = &regs[first..first + n];
                                let v =
                                    tri!(link.call(field_b(w), args, &mut self.fuel, &self.meter));
                                put!(first, v);
                            }
                            Op::BGet => {
                                let v =
                                    tri!(host::buf_get(link, prog, field_b(w), &regs[field_c(w)]));
                                put!(field_a(w), v);
                            }
                            Op::BSet => {
                                let (i, v) = (&regs[field_b(w)], &regs[field_c(w)]);
                                tri!(host::buf_set(link, prog, field_a(w), i, v));
                            }
                            _ => {
                                let v = tri!(host::buf_len(link, field_b(w)));
                                put!(field_a(w), v);
                            }
                        }
                        ip = ip.wrapping_add(1);
                    }
                }
            }
        }
    }
}

/// Slots every frame can address from its base: the 8-bit register operand's range.
pub(super) const FRAME_WINDOW: usize = 256;

/// Where execution stopped, for error locations.
pub(super) struct Pos {
    pub(super) func: usize,
    pub(super) pc: usize,
}

/// Where [`Vm::execute`] starts, and the call depth at which the starting frame's `ret`
/// returns from it (0 for the entry function; the depth of a native caller's frame marker for
/// a frame the interpreter finishes for native code).
#[derive(Clone, Copy, Debug)]
pub(super) struct Start {
    pub(super) func: usize,
    pub(super) pc: usize,
    pub(super) base: usize,
    pub(super) stop: usize,
}
