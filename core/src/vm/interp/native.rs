//! Native calls: how compiled functions run inside the interpreter's frames, and how they call
//! back into the VM.
//!
//! # Glossary
//!
//! | term | meaning |
//! |---|---|
//! | call count | calls of one function so far ([`Vm`]'s `calls`), counted only while the JIT hook is on |
//! | hot function | a function whose call count reached the function threshold ([`Vm::set_func_threshold`], default: the loop threshold); the hook's [`LoopHook::hot_func`] is told once |
//! | native function | a [`NativeFunc`]: compiled code for one function, handed out by [`LoopHook::native_func`] |
//! | activation | one run of a native function on one frame; it pushes a *frame marker* (an interpreter frame nobody pops through `ret`) so the call depth counts it |
//! | trap | a runtime error with its location ([`Trap`]), carried out of native code unchanged |
//! | finishing a frame | native code that cannot go on hands its frame to [`NativeEnv::interpret`], which runs the interpreter from a pc in that frame until the frame returns |
//!
//! ```text
//!  interpreter `call` --count--> hot? --> hook.native_func(f) = Native(code)
//!        |                                     |
//!        |                          NativeEnv::run_native: push marker, code.run(env, base)
//!        |                                     |  native code --call--> helper --> NativeEnv::call
//!        |                                     |     (depth check, count, native or interpreted)
//!        |                                     |  guard fails --> NativeEnv::interpret(f, pc, base)
//!        v                                     v
//!  result in the callee's slot 0 (= the caller's register A), interpreter continues at pc + 2
//! ```
//!
//! # Invariants
//!
//! - A native function returns exactly like `ret`: its result in slot `base`, every other
//!   register of its frame released ([`NativeEnv::return_value`]).
//! - The call depth a native call sees is the interpreter's: `frames.len()` counts interpreted
//!   frames and activation markers alike, and the depth check happens before the callee runs,
//!   at the caller's `call` pc, with the interpreter's error.
//! - Native frames (activations and direct native-to-native calls) take at most
//!   [`NATIVE_FRAME_BYTES`] of machine stack each, and they nest only while that much is left
//!   of [`VmConfig::native_stack`](super::VmConfig) below `Vm::run`'s stack pointer (and at
//!   most [`MAX_NATIVE_DEPTH`] deep); a call beyond runs the callee in the interpreter (whose
//!   frames live on the VM stack), so deep recursion cannot overflow the host stack, and
//!   recursion past `max_depth` fails with the interpreter's `StackOverflow` error.
//! - A trap raised anywhere below native code is returned to the interpreter that entered
//!   native code and reported with the trap's location, as if the interpreter had raised it.
//! - Native code keeps raw pointers into the register stack only while no VM code runs: every
//!   call back into the VM may grow (move) the stack, and the helper gives the caller a fresh
//!   pointer to its frame.
use core::fmt::Write;

use alloc::rc::Rc;
use alloc::vec::Vec;

use super::{Frame, Pos, Start, Vm, FRAME_WINDOW};

// Loop and call countdowns, the hook trait, and the cold paths that call the hook: a child of
// this module because the hook hands out native functions and native code calls the hook.
pub(in crate::vm) mod events;
use crate::vm::error::RuntimeErrorKind as E;
use crate::vm::program::Program;
use crate::vm::value::{Meter, Value};
use events::{LoopHook, Reply};

/// Native activations that may nest on the host stack; deeper calls are interpreted.
pub const MAX_NATIVE_DEPTH: usize = 200;

/// Machine stack one native frame may take, at most: a direct native-to-native call of the
/// function JIT, or an activation entered through the VM (the Rust frames of the call helper
/// and `NativeEnv` included). Measured by `core/tests/jit_stack.rs` (which fails if a frame
/// takes more) on x86_64 and aarch64, with the margin stated there.
pub const NATIVE_FRAME_BYTES: usize = 3072;

/// Default [`VmConfig::native_stack`](super::VmConfig): 128 KiB, so the default fits a host
/// thread (2 MiB) with room to spare; a kernel with small stacks sets its own.
pub const DEFAULT_NATIVE_STACK: usize = 128 * 1024;

/// Machine stack a run needs beyond [`VmConfig::native_stack`](super::VmConfig): the
/// interpreter, the JIT compiling a trace at the deepest point, and the runtime helpers
/// (measured by `core/tests/jit_stack.rs`, with margin).
pub const JIT_STACK_HEADROOM: usize = 96 * 1024;

/// The current stack pointer, approximately (the address of a local).
#[inline(always)]
pub(super) fn stack_pointer() -> usize {
    let marker = 0u8;
    core::hint::black_box(&marker) as *const u8 as usize
}

/// Register-stack slots native code gets beyond its frame window for direct calls (when no
/// memory cap is set).
pub const DIRECT_SLACK: usize = 1024;

/// What [`LoopHook::hot_func`] is told.
pub struct HotFunc<'a> {
    /// Index of the function.
    pub func: usize,
    /// Its call count (equal to the threshold).
    pub count: u32,
    /// The arguments of the call that made it hot.
    pub args: &'a [Value],
    /// The VM's memory meter (native code that builds arrays charges it as `newarr` does).
    pub meter: &'a Meter,
}

/// A runtime error and where it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trap {
    /// What went wrong.
    pub kind: E,
    /// Function index.
    pub func: usize,
    /// PC of the failing instruction.
    pub pc: usize,
}

/// Compiled code for one function.
pub trait NativeFunc {
    /// Runs the function on the frame at slot `base` (its arguments in place) until it
    /// returns; the result is then in slot `base`.
    fn run(&self, env: &mut NativeEnv<'_, '_, '_>, base: usize) -> Result<(), Trap>;

    /// The implementation, for a JIT that links its own code together.
    fn as_any(&self) -> &dyn core::any::Any;
}

/// Everything native code may use of a running VM: the register stack, the interpreter (to
/// finish a frame or run a callee) and the hook (to find other native functions).
pub struct NativeEnv<'v, 'p, 'h> {
    vm: &'v mut Vm<'p>,
    stack: &'v mut Vec<Value>,
    consts: &'v [Value],
    out: &'v mut dyn Write,
    hook: &'v mut Option<&'h mut dyn LoopHook>,
    pending: Option<Trap>,
}

impl<'v, 'p, 'h> NativeEnv<'v, 'p, 'h> {
    pub(super) fn new(
        vm: &'v mut Vm<'p>,
        stack: &'v mut Vec<Value>,
        consts: &'v [Value],
        out: &'v mut dyn Write,
        hook: &'v mut Option<&'h mut dyn LoopHook>,
    ) -> Self {
        Self {
            vm,
            stack,
            consts,
            out,
            hook,
            pending: None,
        }
    }

    /// The program.
    pub fn prog(&self) -> &Program {
        self.vm.prog
    }

    /// Pointer to slot `base` if a whole frame window follows it.
    pub fn frame_ptr(&mut self, base: usize) -> Option<*mut Value> {
        if base + FRAME_WINDOW > self.stack.len() {
            return None;
        }
        // In bounds: checked above.
        Some(self.stack[base..].as_mut_ptr())
    }

    /// The slot index of address `p` (native code's slot base): the stack's length (no frame
    /// fits there) if `p` is not the address of a slot of the register stack.
    pub fn base_of(&self, p: *const Value) -> usize {
        let off = (p as usize).wrapping_sub(self.stack.as_ptr() as usize);
        let size = core::mem::size_of::<Value>();
        if !off.is_multiple_of(size) || off / size >= self.stack.len() {
            return self.stack.len();
        }
        off / size
    }

    /// The address of slot `base` (not checked: for native code that only addresses slots the
    /// stack has, see [`Self::frame_ptr`]).
    pub fn slot_addr(&mut self, base: usize) -> *mut Value {
        self.stack.as_mut_ptr().wrapping_add(base)
    }

    /// The `n` slots from `base` on.
    pub fn frame_mut(&mut self, base: usize, n: usize) -> Option<&mut [Value]> {
        self.stack.get_mut(base..base.checked_add(n)?)
    }

    /// Slot `i` of the register stack.
    pub fn slot_mut(&mut self, i: usize) -> Option<&mut Value> {
        self.stack.get_mut(i)
    }

    /// A new array of `items`, charged to the VM's meter as `newarr` charges it; `None` when
    /// the memory cap refuses it (nothing charged; the interpreter then raises the error).
    pub fn new_array(&mut self, items: Vec<Value>) -> Option<Value> {
        Value::new_array(&self.vm.meter, items).ok()
    }

    /// Parks a trap for the native code's caller to pick up with [`take_pending`](Self::take_pending).
    pub fn set_pending(&mut self, t: Trap) {
        self.pending = Some(t);
    }

    /// The parked trap, if any.
    pub fn take_pending(&mut self) -> Option<Trap> {
        self.pending.take()
    }

    /// Makes sure a frame at `base` fits; the trap names the `call` at `at`.
    pub fn reserve_frame(&mut self, at: (usize, usize), base: usize) -> Result<(), Trap> {
        self.vm
            .grow_stack(self.stack, base + FRAME_WINDOW)
            .map_err(|kind| trap(kind, at))
    }

    /// Runs `native` on the frame at `base` as one activation.
    pub(super) fn run_native(
        &mut self,
        native: &Rc<dyn NativeFunc>,
        at: (usize, usize),
        base: usize,
    ) -> Result<(), Trap> {
        self.vm.frames.push(Frame::MARKER);
        self.vm.native_depth += 1;
        let r = native.run(self, base);
        self.vm.native_depth -= 1;
        self.vm.frames.pop();
        r?;
        self.charge_return(at)
    }

    /// Charges `fuel` as the interpreter would have (a trap at `at` if it runs out).
    pub fn charge(&mut self, fuel: u64, at: (usize, usize)) -> Result<(), Trap> {
        let words = usize::try_from(fuel).unwrap_or(usize::MAX);
        self.vm.charge(words).map_err(|k| trap(k, at))
    }

    /// The fuel the interpreter's `ret` charges when a call made at `at` returns to its
    /// caller: the rest of the caller's code (`len - ret_pc`), raised at the return pc.
    fn charge_return(&mut self, at: (usize, usize)) -> Result<(), Trap> {
        let ret_pc = at.1 + 2;
        let len = self
            .vm
            .prog
            .funcs
            .get(at.0)
            .map_or(ret_pc, |f| f.code.len());
        self.vm
            .charge(len.saturating_sub(ret_pc))
            .map_err(|k| trap(k, (at.0, ret_pc)))
    }

    /// A call made by native code: the `call` at `at` (function, pc) calls `callee` on the
    /// frame at `base`; `args` writes the arguments into the frame's first registers once the
    /// checks passed. Same checks and errors, in the same order, as the interpreter's `call`;
    /// the callee runs natively if the hook has code for it and the host stack allows, else in
    /// the interpreter.
    pub fn call(
        &mut self,
        at: (usize, usize),
        callee: usize,
        base: usize,
        args: &mut dyn FnMut(&mut [Value]),
    ) -> Result<(), Trap> {
        if self.vm.frames.len() >= self.vm.config.max_depth {
            return Err(trap(E::StackOverflow, at));
        }
        let Some(len) = self.vm.prog.funcs.get(callee).map(|f| f.code.len()) else {
            return Err(trap(E::BadArgument("no such function"), at));
        };
        self.vm.charge(len).map_err(|k| trap(k, at))?;
        self.reserve_frame(at, base)?;
        args(&mut self.stack[base..base + FRAME_WINDOW]);
        let native = self.vm.count_call(self.stack, callee, base, self.hook);
        match native {
            Some(code) => self.run_native(&code, at, base),
            None => {
                self.vm.frames.push(Frame::MARKER);
                let r = self.interpret(callee, 0, base);
                self.vm.frames.pop();
                r?;
                self.charge_return(at)
            }
        }
    }

    /// How many nested calls native code entered now on the frame at `base` may make directly
    /// (without the VM): the call depth left before the VM's limit, capped so the machine
    /// stack stays bounded ([`MAX_NATIVE_DEPTH`] activations in all), and so that every
    /// frame window of that many nested calls, each at most `per_call` registers above its
    /// caller's, lies inside the register stack (which first grows by [`DIRECT_SLACK`] slots
    /// when no memory cap is set). Direct calls then check nothing but this count.
    pub fn direct_room(&mut self, base: usize, per_call: usize) -> usize {
        let depth_left = self
            .vm
            .config
            .max_depth
            .saturating_sub(self.vm.frames.len());
        // Direct calls charge their fuel without checking a budget (`jit::callframe`), so a
        // metered run makes every call through the helper, which checks and charges exactly
        // as the interpreter.
        if self.vm.config.fuel.is_some() {
            return 0;
        }
        let budget = depth_left
            .min(MAX_NATIVE_DEPTH.saturating_sub(self.vm.native_depth))
            .min(self.vm.native_frames_left());
        let want = base + FRAME_WINDOW + DIRECT_SLACK;
        // Under a memory cap the stack grows only where the interpreter grows it (calls
        // through the helper), so the cap is reached at the same allocation with the JIT on.
        let uncapped = self.vm.config.memory_cap == usize::MAX;
        if uncapped && self.stack.len() < want && self.vm.heap_fits(want - self.stack.len()) {
            let _ = self.vm.grow_stack(self.stack, want);
        }
        let beyond = self
            .stack
            .len()
            .saturating_sub(base)
            .saturating_sub(FRAME_WINDOW);
        budget.min(beyond / per_call.max(1))
    }

    /// Runs `f` as from an activation `ddepth` direct calls below the one the VM entered:
    /// that many frame markers make the call depth exact, and the machine stack they use
    /// counts against [`MAX_NATIVE_DEPTH`].
    pub fn with_direct_frames<R>(&mut self, ddepth: usize, f: impl FnOnce(&mut Self) -> R) -> R {
        for _ in 0..ddepth {
            self.vm.frames.push(Frame::MARKER);
        }
        self.vm.native_depth += ddepth;
        let r = f(self);
        self.vm.native_depth -= ddepth;
        let keep = self.vm.frames.len() - ddepth;
        self.vm.frames.truncate(keep);
        r
    }

    /// Native code continuing `func` from `pc` on the frame at `base`, if the hook makes some
    /// (see [`LoopHook::native_side`]).
    pub fn side(&mut self, func: usize, pc: usize, base: usize) -> Option<Rc<dyn NativeFunc>> {
        let nregs = self.vm.prog.funcs.get(func)?.nregs as usize;
        let regs = self.stack.get(base..base + nregs)?;
        self.hook.as_deref_mut()?.native_side(func, pc, regs)
    }

    /// Finishes the frame at `base` of `func` in the interpreter, from `pc` until it returns;
    /// the result lands in slot `base`.
    pub fn interpret(&mut self, func: usize, pc: usize, base: usize) -> Result<(), Trap> {
        let mut pos = Pos { func, pc };
        let start = Start {
            func,
            pc,
            base,
            stop: self.vm.frames.len(),
        };
        let v = self
            .vm
            .execute(
                self.stack,
                self.consts,
                self.out,
                self.hook,
                &mut pos,
                start,
            )
            .map_err(|kind| Trap {
                kind,
                func: pos.func,
                pc: pos.pc,
            })?;
        if let Some(s) = self.stack.get_mut(base) {
            *s = v;
        }
        Ok(())
    }

    /// `ret v` of the frame at `base` of `func`: every register is released and `v` lands in
    /// slot `base`.
    pub fn return_value(&mut self, func: usize, base: usize, v: Value) {
        let nregs = self.vm.prog.funcs.get(func).map_or(0, |f| f.nregs as usize);
        let end = (base + nregs).min(self.stack.len());
        if let Some(frame) = self.stack.get_mut(base..end) {
            frame.iter_mut().for_each(|s| *s = Value::Nil);
        }
        if let Some(s) = self.stack.get_mut(base) {
            *s = v;
        }
    }
}

fn trap(kind: E, at: (usize, usize)) -> Trap {
    Trap {
        kind,
        func: at.0,
        pc: at.1,
    }
}

impl Vm<'_> {
    /// Native frames that still fit in the machine-stack budget
    /// ([`VmConfig::native_stack`](super::VmConfig)) below the current stack pointer.
    #[inline]
    pub(super) fn native_frames_left(&self) -> usize {
        stack_pointer().saturating_sub(self.stack_floor) / NATIVE_FRAME_BYTES
    }

    /// Sets the call count at which a function is hot (1: on its first call); 0 keeps the
    /// loop threshold. Counting is on only when [`VmConfig::jit_threshold`](super::VmConfig)
    /// is.
    pub fn set_func_threshold(&mut self, n: u32) {
        self.func_threshold = if n == 0 { self.config.jit_threshold } else { n };
        let t = self.func_threshold;
        for c in self.calls.iter_mut() {
            let count = c.count();
            if count < t {
                c.wait(t - count);
            }
        }
    }

    /// Counts a call of `callee` (frame at `base`, arguments in place) and returns its native
    /// code if there is some to run: one increment and one compare unless the function is
    /// hot and its wait is over (or it has native code: every call then comes here).
    #[inline(always)]
    pub(super) fn count_call(
        &mut self,
        stack: &Vec<Value>,
        callee: usize,
        base: usize,
        hook: &mut Option<&mut dyn LoopHook>,
    ) -> Option<Rc<dyn NativeFunc>> {
        if self.calls.get_mut(callee)?.tick() {
            self.call_event(stack, callee, base, hook)
        } else {
            None
        }
    }

    /// A call of a hot function whose wait is over: its native code if it has some; else
    /// tells the hook (once, at the threshold) and asks it for code.
    #[cold]
    #[inline(never)]
    // `&Vec`, one pointer, not a slice: the interpreter's `call` arm then loads nothing for
    // it before the count's branch (docs/perf.md).
    #[allow(clippy::ptr_arg)]
    fn call_event(
        &mut self,
        stack: &Vec<Value>,
        callee: usize,
        base: usize,
        hook: &mut Option<&mut dyn LoopHook>,
    ) -> Option<Rc<dyn NativeFunc>> {
        if self.native_depth >= MAX_NATIVE_DEPTH || self.native_frames_left() == 0 {
            // The host stack is as deep as native calls may go: interpret this call, which
            // does not count (the threshold is met where native code can run).
            self.calls.get_mut(callee)?.untick();
            return None;
        }
        if let Some(Some(code)) = self.natives.get(callee) {
            // Every call of a function with native code comes here to run it.
            self.calls.get_mut(callee)?.wait(1);
            return Some(code.clone());
        }
        let count = self.calls.get(callee)?.count();
        let reply = match hook.as_deref_mut() {
            None => Reply::Wait(u32::MAX),
            Some(h) => {
                let arity = self.prog.funcs.get(callee)?.arity as usize;
                let args = stack.get(base..base + arity)?;
                if count == self.func_threshold {
                    h.hot_func(HotFunc {
                        func: callee,
                        count,
                        args,
                        meter: &self.meter,
                    });
                }
                h.native_func(callee, args)
            }
        };
        match reply {
            Reply::Native(code) => {
                // Native code, once handed out, stays valid for the run: later calls skip the
                // hook, and every call comes here (wait 1) to run it.
                if let Some(slot) = self.natives.get_mut(callee) {
                    *slot = Some(code.clone());
                }
                if let Some(c) = self.calls.get_mut(callee) {
                    c.wait(1);
                }
                Some(code)
            }
            Reply::Wait(n) => {
                if let Some(c) = self.calls.get_mut(callee) {
                    c.wait(n);
                }
                None
            }
            // Meaningless for a function: ask again at the next call.
            Reply::Call(_) => {
                if let Some(c) = self.calls.get_mut(callee) {
                    c.wait(1);
                }
                None
            }
        }
    }
}
