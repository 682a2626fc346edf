//! The interpreter: one dispatch loop over verified bytecode.
//!
//! Only a [`Vm`] runs code, and [`Vm::new`] verifies the program first, so the loop may rely on
//! the verifier's guarantees (known opcodes, extension words present, registers inside the frame,
//! jump targets on instruction starts, call arities). Where the loop skips a check (the code word
//! at the PC, the opcode, a constant, the frame's 256-slot register window), a `SAFETY` comment
//! names the verifier guarantee or the interpreter invariant it rests on; other accesses keep
//! their bounds checks.
//!
//! Hooks for the JIT: every taken jump to a lower PC goes through `Vm::back_edge`, and every
//! `loop` marker (control falling into the loop whose header is the next word) through
//! `Vm::arrive`; both (when counting is on) decrement the loop header PC's countdown word
//! (`HotCount`), the marker without charging fuel. Only when it reaches 0 does the cold path
//! (`Vm::loop_event`) run: [`LoopHook::hot_loop`] once at [`VmConfig::jit_threshold`]
//! arrivals, then [`LoopHook::enter`], whose [`Reply`] either resumes after native code, or
//! asks the VM to make the call native code stopped at and then [`LoopHook::after_call`] (a
//! call stop), or sets how many arrivals to wait before asking again. A loop the JIT gave up
//! on thus costs one decrement and
//! one branch per iteration (and per entry), found by PC in O(1); a loop with native code is
//! entered at its first arrival, so its first iteration runs natively too.
//!
//! Every `call` (while counting is on) ticks the callee's `HotCount` the same way
//! (`count_call`, `native.rs`): [`LoopHook::hot_func`] at the threshold, native code from
//! [`LoopHook::native_func`] (kept for the run), run through a [`NativeEnv`] instead of
//! pushing an interpreted frame.
//!
//! Files: this one holds the [`Vm`] (configuration, construction, `run`, the register stack);
//! `interp/dispatch.rs` the dispatch loop (`Vm::execute`); `interp/events.rs` the countdowns,
//! the hook traits and the cold loop-event path; `interp/hosted.rs` the host instructions
//! native code performs through [`HostStep`]; `interp/native.rs` calls into and out of native
//! code.
use core::fmt::Write;
use core::mem;

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use alloc::rc::Rc;

use super::error::{RuntimeError, RuntimeErrorKind as E, VerifyError};
use super::host::{self, Host, HostPtr};
use super::native::NativeFunc;
use super::program::{Const, Program};
use super::value::{Meter, MeterCell, Value};
use super::verify::verify;

// The interpreter's native-code half (calls into and out of JIT code), in interp/native.rs.
pub mod native;

// The dispatch loop (`Vm::execute`).
mod dispatch;
// Host instructions for native code.
mod hosted;
mod quicken;

pub use hosted::HostStep;
pub(in crate::vm) use native::events::{HotCount, HotHist};
pub use native::events::{HotLoop, LoopHook, Reply};

/// Limits and knobs a host sets before running untrusted code.
#[derive(Clone, Copy, Debug)]
pub struct VmConfig {
    /// Instruction budget (see [`Vm`] for how it is charged); `None` means unlimited.
    pub fuel: Option<u64>,
    /// Cap on live heap bytes (strings, arrays, the register stack); `usize::MAX` for none.
    pub memory_cap: usize,
    /// Maximum call depth.
    pub max_depth: usize,
    /// Arrivals at a loop header (backward jumps to it, entries through its `loop` marker) at
    /// which it is reported hot; 0 turns counting off.
    pub jit_threshold: u32,
    /// Bytes of machine stack that native calls of the function JIT may take below the point
    /// where [`Vm::run`] was called. Each native frame costs at most
    /// [`NATIVE_FRAME_BYTES`](super::native::NATIVE_FRAME_BYTES); a call that would cross the
    /// budget runs in the interpreter instead (whose frames live on the VM's own stack), so
    /// the machine stack never grows past it, and recursion deeper than `max_depth` fails with
    /// the interpreter's error either way. The caller's stack needs this much plus
    /// [`JIT_STACK_HEADROOM`](super::native::JIT_STACK_HEADROOM) free at `run`.
    pub native_stack: usize,
    /// Run the most frequent adjacent instruction pairs with one dispatch (see
    /// `vm::interp::quicken`): the VM keeps its own copy of the program's code (4 bytes per
    /// code word). On by default on 64-bit targets; off on 32-bit ones, where
    /// a microcontroller's heap may not have room for the copy. Results, errors and fuel are
    /// the same either way.
    pub fused_pairs: bool,
}

impl Default for VmConfig {
    fn default() -> VmConfig {
        VmConfig {
            fuel: None,
            memory_cap: usize::MAX,
            max_depth: 100_000,
            jit_threshold: 0,
            native_stack: super::native::DEFAULT_NATIVE_STACK,
            fused_pairs: cfg!(target_pointer_width = "64"),
        }
    }
}

/// One call frame: where the caller resumes, kept in the form the dispatch loop runs it, so a
/// return restores the caller without looking anything up.
#[derive(Clone, Copy, Debug)]
pub(super) struct Frame {
    /// The caller's code as the interpreter runs it (its `Vm::xcode` entry).
    pub(super) code: *const u32,
    /// Where the caller resumes: the word after its `call`, inside `code`.
    pub(super) ret_ip: *const u32,
    /// The end of the caller's code: the return charges the words from `ret_ip` to here.
    pub(super) end: *const u32,
    /// The caller's function index.
    pub(super) func: u32,
    /// The caller's register base.
    pub(super) base: u32,
}

impl Frame {
    /// A frame that only counts towards the call depth (native activations): the interpreter
    /// never returns into it (`Start::stop` ends the dispatch loop above it), so nothing reads
    /// its fields.
    pub(super) const MARKER: Frame = Frame {
        code: core::ptr::null(),
        ret_ip: core::ptr::null(),
        end: core::ptr::null(),
        func: 0,
        base: 0,
    };
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
    /// How many frames the interpreter's `call` may hold before it takes its slow path
    /// (`Vm::make_frame_room`): `min(config.max_depth, frames.capacity())` as of the last
    /// time that path ran. The capacity never shrinks, so a push below it never reallocates.
    frame_room: usize,
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
    /// Per function, the address of the code the interpreter runs: with `config.fused_pairs`
    /// its copy in `xbuf` (see [`quicken`]), else the program's own code. Never changed after
    /// [`Vm::new`].
    xcode: Vec<*const u32>,
    /// The interpreter's copy of the code, all functions in one buffer (empty when
    /// `config.fused_pairs` is off). Never changed after [`Vm::new`]: `xcode` points into it,
    /// and nothing else reads it.
    #[allow(dead_code)]
    xbuf: Vec<u32>,
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
        let xbuf = if config.fused_pairs {
            quicken::layout(prog)
        } else {
            Vec::new()
        };
        let mut at = 0;
        let xcode = prog
            .funcs
            .iter()
            .map(|f| {
                at += f.code.len();
                if xbuf.is_empty() {
                    f.code.as_ptr()
                } else {
                    xbuf[at - f.code.len()..].as_ptr()
                }
            })
            .collect();
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
            frame_room: 0,
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
            xcode,
            xbuf,
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

    /// The arrivals (backward jumps to it, entries through its `loop` marker) counted at a loop
    /// header (0 when counting is off).
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

    /// The slow path of the interpreter's call-depth check: fails at `config.max_depth`, else
    /// makes room for at least one more frame and updates `frame_room`.
    #[cold]
    #[inline(never)]
    pub(super) fn make_frame_room(&mut self) -> Result<(), E> {
        if self.frames.len() >= self.config.max_depth {
            return Err(E::StackOverflow);
        }
        self.frames.try_reserve(1).map_err(|_| E::OutOfMemory)?;
        self.frame_room = self.config.max_depth.min(self.frames.capacity());
        Ok(())
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
        // Every entry into the dispatch loop (`run`, `run_with`) sets the field first, so a
        // pointer left behind by an unwinding host function is never read.
        // SAFETY: the pointer is used only by the dispatch loop inside `run_linked` below, while
        // `linked` (and what it borrows) is alive, and is cleared before `linked` is dropped.
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
