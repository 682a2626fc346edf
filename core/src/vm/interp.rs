//! The interpreter: one dispatch loop over verified bytecode.
//!
//! Only a [`Vm`] runs code, and [`Vm::new`] verifies the program first, so the loop may rely on
//! the verifier's guarantees (known opcodes, extension words present, registers inside the frame,
//! jump targets on instruction starts, call arities). It still indexes with bounds checks: a
//! verifier bug becomes a runtime error or a clean stop, never memory corruption.
//!
//! Hooks for the JIT: every taken jump to a lower PC goes through [`Vm::back_edge`] (cold path
//! only when counting is on), which bumps the per-function counter of the loop header PC and,
//! exactly when it reaches [`VmConfig::jit_threshold`], calls [`LoopHook::hot_loop`] with the
//! frame's registers.
//!
//! Every `call` (while counting is on) goes through `count_call` (`native.rs`): per-function
//! call counts, [`LoopHook::hot_func`] at the threshold, and native code from
//! [`LoopHook::native_func`], run through a [`NativeEnv`] instead of pushing an interpreted
//! frame.
use core::fmt::Write;
use core::mem;

use liballoc::string::String;
use liballoc::vec;
use liballoc::vec::Vec;

use liballoc::rc::Rc;

use super::builtins::{self, Builtin, Env};
use super::bytecode::{a, b, bx, byte, c, sbx};
use super::error::{RuntimeError, RuntimeErrorKind as E, VerifyError};
use super::host::{self, Host, HostPtr};
use super::native::{HotFunc, NativeEnv, NativeFunc};
use super::program::{Const, Program};
use super::value::{Meter, MeterCell, Value};
use super::verify::verify;

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
}

impl Default for VmConfig {
    fn default() -> VmConfig {
        VmConfig {
            fuel: None,
            memory_cap: usize::MAX,
            max_depth: 100_000,
            jit_threshold: 0,
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

/// Receives hot-loop reports; the JIT implements this.
pub trait LoopHook {
    /// Called once per loop header, when its backward-jump count reaches the threshold.
    fn hot_loop(&mut self, at: HotLoop<'_>);

    /// Called at every taken backward jump to `header_pc` while counting is on (after the
    /// jump's fuel was charged), with the frame's registers and the fuel left. A JIT that ran
    /// compiled code for the loop returns the PC to continue at (the registers already hold
    /// the loop's results, and `fuel` was charged as the interpreter would have charged for
    /// the same instructions); `None` keeps interpreting.
    fn enter(
        &mut self,
        _func: usize,
        _header_pc: usize,
        _regs: &mut [Value],
        _fuel: &mut u64,
    ) -> Option<usize> {
        None
    }

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
    ) -> Option<usize> {
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

    /// Native code for `func`, asked at every call of a hot function; `None` interprets it.
    fn native_func(&mut self, _func: usize, _args: &[Value]) -> Option<Rc<dyn NativeFunc>> {
        None
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
                let (first, n) = (a(w), c(w));
                match regs.get(first..first + n) {
                    Some(args) => link.call(b(w), args, fuel, self.meter).map(|v| (first, v)),
                    None => Err(E::BadArgument("register out of range")),
                }
            }
            byte::BGet => {
                reg(c(w)).and_then(|i| host::buf_get(link, prog, b(w), i).map(|v| (a(w), v)))
            }
            byte::BSet => reg(b(w)).and_then(|i| {
                let v = reg(c(w))?;
                host::buf_set(link, prog, a(w), i, v).map(|()| (usize::MAX, Value::Nil))
            }),
            byte::BLen => host::buf_len(link, b(w)).map(|v| (a(w), v)),
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
    counters: Vec<Vec<u32>>,
    /// Calls per function (empty when counting is off); see [`super::native`].
    pub(super) calls: Vec<u32>,
    /// Call count at which a function is hot (defaults to the loop threshold).
    pub(super) func_threshold: u32,
    /// Native activations on the host stack now.
    pub(super) native_depth: usize,
    /// Native code per function, once the hook handed some out (empty when counting is off).
    pub(super) natives: Vec<Option<Rc<dyn NativeFunc>>>,
    args: Vec<Value>,
    /// The linked host of the run in progress (see [`Vm::run_with`]); `None` outside
    /// `run_with` and for programs run without a host.
    host: Option<HostPtr>,
    /// What a [`HostStep`] parked for compiled code: an error, raised by the next host
    /// instruction, or a host call's result, taken by the next `callh`.
    host_pending: Option<Result<Value, E>>,
}

impl<'p> Vm<'p> {
    /// Verifies `prog` and prepares a VM for it.
    pub fn new(prog: &'p Program, config: VmConfig) -> Result<Vm<'p>, VerifyError> {
        verify(prog)?;
        let meter = MeterCell::new(config.memory_cap);
        let counters = if config.jit_threshold > 0 {
            prog.funcs.iter().map(|f| vec![0; f.code.len()]).collect()
        } else {
            Vec::new()
        };
        let calls = if config.jit_threshold > 0 {
            vec![0; prog.funcs.len()]
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
            counters,
            func_threshold: config.jit_threshold,
            native_depth: 0,
            natives: (0..calls.len()).map(|_| None).collect(),
            calls,
            args: Vec::new(),
            host: None,
            host_pending: None,
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
        self.counters
            .get(func)
            .and_then(|c| c.get(header_pc))
            .copied()
            .unwrap_or(0)
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
        if self.config.jit_threshold != 0 {
            return Ok(self.count_loop(func, target, regs, hook));
        }
        Ok(target)
    }

    #[cold]
    #[inline(never)]
    fn count_loop(
        &mut self,
        func: usize,
        target: usize,
        regs: &mut [Value],
        hook: &mut Option<&mut dyn LoopHook>,
    ) -> usize {
        let Some(n) = self.counters.get_mut(func).and_then(|c| c.get_mut(target)) else {
            return target;
        };
        *n = n.saturating_add(1);
        let count = *n;
        let Some(h) = hook.as_deref_mut() else {
            return target;
        };
        let nregs = self.prog.funcs[func].nregs as usize;
        if let (true, Some(mut link)) = (count == self.config.jit_threshold, self.host) {
            let mut stepper = Stepper {
                prog: self.prog,
                // SAFETY: as in the host arm of `execute`.
                link: unsafe { link.as_mut() },
                meter: &self.meter,
                pending: &mut self.host_pending,
            };
            let at = HotLoop {
                func,
                header_pc: target,
                count,
                regs: &mut regs[..nregs],
            };
            h.hot_loop_hosted(at, &mut stepper);
        } else if count == self.config.jit_threshold {
            h.hot_loop(HotLoop {
                func,
                header_pc: target,
                count,
                regs: &mut regs[..nregs],
            });
        }
        if let (true, Some(mut link)) = (count >= self.config.jit_threshold, self.host) {
            let mut stepper = Stepper {
                prog: self.prog,
                // SAFETY: as in the host arm of `execute`: `run_with` keeps the linked host
                // alive and unaliased while the dispatch loop runs; this borrow ends here.
                link: unsafe { link.as_mut() },
                meter: &self.meter,
                pending: &mut self.host_pending,
            };
            let regs = &mut regs[..nregs];
            if let Some(pc) = h.enter_hosted(func, target, regs, &mut self.fuel, &mut stepper) {
                return pc;
            }
        } else if count >= self.config.jit_threshold {
            if let Some(pc) = h.enter(func, target, &mut regs[..nregs], &mut self.fuel) {
                return pc;
            }
        }
        target
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

    pub(super) fn grow_stack(&mut self, stack: &mut Vec<Value>, need: usize) -> Result<(), E> {
        if stack.len() < need {
            let more = need - stack.len();
            self.meter
                .charge(more * mem::size_of::<Value>())
                .map_err(|_| E::OutOfMemory)?;
            stack.try_reserve(more).map_err(|_| E::OutOfMemory)?;
            stack.resize(need, Value::Nil);
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
        let Ok(kk) = <&[Value; 256]>::try_from(&consts[..256]) else {
            return Err(E::BadArgument("constant table not padded"));
        };
        macro_rules! bail {
            ($e:expr) => {{
                pos.func = fi;
                pos.pc = pc;
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
        'frames: loop {
            let code: &[u32] = &func.code;
            let nregs = func.nregs as usize;
            // A frame's window is a fixed 256 slots (the stack always extends that far past the
            // base), so 8-bit register operands index it without bounds checks.
            let Ok(regs) =
                <&mut [Value; FRAME_WINDOW]>::try_from(&mut stack[base..base + FRAME_WINDOW])
            else {
                bail!(E::StackOverflow)
            };
            // Stores into a register; dropping an old heap reference here is a collection
            // point (see the module doc). A plain assignment measured fastest (docs/perf.md).
            macro_rules! put {
                ($r:expr, $v:expr) => {{
                    let new = $v;
                    regs[$r] = new;
                }};
            }
            loop {
                // SAFETY: `Vm::new` verified this function: execution starts at PC 0, every
                // instruction's successors are instruction starts inside the code (jump targets
                // are checked, nothing falls off the end), so `pc < code.len()` here.
                let w = unsafe { *code.get_unchecked(pc) };
                macro_rules! ext {
                    () => {
                        // SAFETY: the verifier checked that every instruction with an `Ext`
                        // operand has its extension word inside the code.
                        unsafe { *code.get_unchecked(pc + 1) as usize }
                    };
                }
                // Int/int and float/float inline, without a `Result` in between; anything else
                // (mixed numbers, strings, errors, int division) goes to `arith`.
                macro_rules! arith {
                    ($f:ident, $rhs:expr, $iop:ident, $fop:tt) => {{
                        match (&regs[b(w)], $rhs) {
                            (Value::Float(x), Value::Float(y)) => {
                                let r = *x $fop *y;
                                regs[a(w)] = Value::Float(r);
                            }
                            (Value::Int(x), Value::Int(y)) => {
                                let r = x.$iop(*y);
                                regs[a(w)] = Value::Int(r);
                            }
                            (x, y) => {
                                let v = tri!(super::arith::$f(x, y, &self.meter));
                                put!(a(w), v);
                            }
                        }
                        pc += 1;
                    }};
                    ($f:ident, $rhs:expr, $fop:tt) => {{
                        match (&regs[b(w)], $rhs) {
                            (Value::Float(x), Value::Float(y)) => {
                                let r = *x $fop *y;
                                regs[a(w)] = Value::Float(r);
                            }
                            (x, y) => {
                                let v = tri!(super::arith::$f(x, y, &self.meter));
                                put!(a(w), v);
                            }
                        }
                        pc += 1;
                    }};
                }
                macro_rules! jump {
                    () => {{
                        let target = ext!();
                        pc = if target <= pc {
                            tri!(self.back_edge(fi, pc, target, regs, hook))
                        } else {
                            target
                        };
                    }};
                }
                // Compare-and-branch with the same-type fast paths inline.
                macro_rules! cmp_branch {
                    ($x:expr, $y:expr, $op:tt, $slow:ident) => {{
                        let taken = match ($x, $y) {
                            (Value::Float(x), Value::Float(y)) => x $op y,
                            (Value::Int(x), Value::Int(y)) => x $op y,
                            (x, y) => tri!(super::arith::$slow(x, y)),
                        };
                        if taken == (c(w) != 0) {
                            jump!();
                        } else {
                            pc += 2;
                        }
                    }};
                }
                // `A += K[B]; if A < limit goto Ext`, with `add` and `lt` semantics.
                macro_rules! for_loop {
                    ($limit:expr) => {{
                        match (&regs[a(w)], &kk[b(w)]) {
                            (Value::Int(x), Value::Int(y)) => {
                                let r = x.wrapping_add(*y);
                                regs[a(w)] = Value::Int(r);
                            }
                            (Value::Float(x), Value::Float(y)) => {
                                let r = *x + *y;
                                regs[a(w)] = Value::Float(r);
                            }
                            (x, y) => {
                                let v = tri!(super::arith::add(x, y, &self.meter));
                                put!(a(w), v);
                            }
                        }
                        let taken = match (&regs[a(w)], $limit) {
                            (Value::Int(x), Value::Int(y)) => x < y,
                            (Value::Float(x), Value::Float(y)) => x < y,
                            (x, y) => tri!(super::arith::lt(x, y)),
                        };
                        if taken {
                            jump!();
                        } else {
                            pc += 2;
                        }
                    }};
                }
                macro_rules! branch {
                    ($cond:expr) => {{
                        if tri!($cond) == (c(w) != 0) {
                            jump!();
                        } else {
                            pc += 2;
                        }
                    }};
                }
                match w as u8 {
                    byte::Move => {
                        put!(a(w), regs[b(w)].clone());
                        pc += 1;
                    }
                    byte::LoadK => {
                        put!(a(w), consts[bx(w)].clone());
                        pc += 1;
                    }
                    byte::LoadInt => {
                        put!(a(w), Value::Int(sbx(w)));
                        pc += 1;
                    }
                    byte::LoadNil => {
                        put!(a(w), Value::Nil);
                        pc += 1;
                    }
                    byte::LoadBool => {
                        put!(a(w), Value::Bool(b(w) != 0));
                        pc += 1;
                    }
                    byte::Add => arith!(add, &regs[c(w)], wrapping_add, +),
                    byte::Sub => arith!(sub, &regs[c(w)], wrapping_sub, -),
                    byte::Mul => arith!(mul, &regs[c(w)], wrapping_mul, *),
                    byte::Div => arith!(div, &regs[c(w)], /),
                    byte::Mod => arith!(rem, &regs[c(w)], %),
                    byte::AddK => arith!(add, &kk[c(w)], wrapping_add, +),
                    byte::SubK => arith!(sub, &kk[c(w)], wrapping_sub, -),
                    byte::MulK => arith!(mul, &kk[c(w)], wrapping_mul, *),
                    byte::DivK => arith!(div, &kk[c(w)], /),
                    byte::ModK => arith!(rem, &kk[c(w)], %),
                    byte::Neg => {
                        let v = tri!(super::arith::neg(&regs[b(w)]));
                        put!(a(w), v);
                        pc += 1;
                    }
                    byte::Not => {
                        put!(a(w), Value::Bool(!regs[b(w)].truthy()));
                        pc += 1;
                    }
                    byte::Eq => {
                        put!(a(w), Value::Bool(regs[b(w)].equals(&regs[c(w)])));
                        pc += 1;
                    }
                    byte::Lt => {
                        let v = tri!(super::arith::lt(&regs[b(w)], &regs[c(w)]));
                        put!(a(w), Value::Bool(v));
                        pc += 1;
                    }
                    byte::Le => {
                        let v = tri!(super::arith::le(&regs[b(w)], &regs[c(w)]));
                        put!(a(w), Value::Bool(v));
                        pc += 1;
                    }
                    byte::Jmp => jump!(),
                    byte::JmpIf => {
                        if regs[a(w)].truthy() == (b(w) != 0) {
                            jump!();
                        } else {
                            pc += 2;
                        }
                    }
                    byte::JLt => cmp_branch!(&regs[a(w)], &regs[b(w)], <, lt),
                    byte::JLe => cmp_branch!(&regs[a(w)], &regs[b(w)], <=, le),
                    byte::JEq => branch!(Ok::<bool, E>(regs[a(w)].equals(&regs[b(w)]))),
                    byte::JLtK => cmp_branch!(&regs[a(w)], &kk[b(w)], <, lt),
                    byte::JLeK => cmp_branch!(&regs[a(w)], &kk[b(w)], <=, le),
                    byte::JGtK => cmp_branch!(&kk[b(w)], &regs[a(w)], <, lt),
                    byte::JGeK => cmp_branch!(&kk[b(w)], &regs[a(w)], <=, le),
                    byte::JEqK => branch!(Ok::<bool, E>(regs[a(w)].equals(&kk[b(w)]))),
                    byte::ForLtK => for_loop!(&kk[c(w)]),
                    byte::ForLt => for_loop!(&regs[c(w)]),
                    byte::Call => {
                        let callee = ext!();
                        if self.frames.len() >= self.config.max_depth {
                            bail!(E::StackOverflow);
                        }
                        let cf = &prog.funcs[callee];
                        tri!(self.charge(cf.code.len()));
                        let new_base = base + a(w);
                        tri!(self.grow_stack(stack, new_base + FRAME_WINDOW));
                        if self.config.jit_threshold != 0 {
                            if let Some(native) = self.count_call(stack, callee, new_base, hook) {
                                let at = (fi, pc);
                                let mut env = NativeEnv::new(self, stack, consts, out, hook);
                                if let Err(t) = env.run_native(&native, at, new_base) {
                                    pos.func = t.func;
                                    pos.pc = t.pc;
                                    return Err(t.kind);
                                }
                                pc += 2;
                                continue 'frames;
                            }
                        }
                        self.frames.push(Frame {
                            func: fi as u32,
                            ret_pc: (pc + 2) as u32,
                            base: base as u32,
                        });
                        fi = callee;
                        func = cf;
                        base = new_base;
                        pc = 0;
                        continue 'frames;
                    }
                    byte::CallB => {
                        let (first, n) = (a(w), c(w));
                        let Some(bi) = Builtin::from_index(b(w)) else {
                            bail!(E::BadArgument("unknown builtin"))
                        };
                        let mut env = Env {
                            out: &mut *out,
                            meter: &self.meter,
                            args: &self.args,
                        };
                        let v = tri!(builtins::call(bi, &regs[first..first + n], &mut env));
                        put!(first, v);
                        pc += 1;
                    }
                    byte::Ret | byte::RetNil => {
                        let v = if w as u8 == byte::Ret {
                            mem::take(&mut regs[a(w)])
                        } else {
                            Value::Nil
                        };
                        // Collection point: the callee's registers are released here.
                        regs[..nregs].iter_mut().for_each(|r| *r = Value::Nil);
                        if self.frames.len() <= start.stop {
                            return Ok(v);
                        }
                        let Some(fr) = self.frames.pop() else {
                            return Ok(v);
                        };
                        regs[0] = v;
                        fi = fr.func as usize;
                        func = &prog.funcs[fi];
                        base = fr.base as usize;
                        pc = fr.ret_pc as usize;
                        tri!(self.charge(func.code.len() - pc));
                        continue 'frames;
                    }
                    byte::NewArr => {
                        let (first, n) = (b(w), c(w));
                        let items = regs[first..first + n].to_vec();
                        let v =
                            tri!(Value::new_array(&self.meter, items).map_err(|_| E::OutOfMemory));
                        put!(a(w), v);
                        pc += 1;
                    }
                    byte::GetIdx => {
                        let v = tri!(super::arith::get_index(&regs[b(w)], &regs[c(w)]));
                        put!(a(w), v);
                        pc += 1;
                    }
                    byte::SetIdx => {
                        let v = regs[c(w)].clone();
                        tri!(super::arith::set_index(&regs[a(w)], &regs[b(w)], v));
                        pc += 1;
                    }
                    byte::CallH | byte::BGet | byte::BSet | byte::BLen => {
                        if self.host_pending.is_some() {
                            match self.take_pending(w as u8) {
                                // Compiled code made this call and exited here with its result.
                                Ok(Some(v)) => {
                                    put!(a(w), v);
                                    pc += 1;
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
                        match w as u8 {
                            byte::CallH => {
                                let (first, n) = (a(w), c(w));
                                let args = &regs[first..first + n];
                                let v = tri!(link.call(b(w), args, &mut self.fuel, &self.meter));
                                put!(first, v);
                            }
                            byte::BGet => {
                                let v = tri!(host::buf_get(link, prog, b(w), &regs[c(w)]));
                                put!(a(w), v);
                            }
                            byte::BSet => {
                                let (i, v) = (&regs[b(w)], &regs[c(w)]);
                                tri!(host::buf_set(link, prog, a(w), i, v));
                            }
                            _ => {
                                let v = tri!(host::buf_len(link, b(w)));
                                put!(a(w), v);
                            }
                        }
                        pc += 1;
                    }
                    _ => bail!(E::BadArgument("unknown opcode (program not verified)")),
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
