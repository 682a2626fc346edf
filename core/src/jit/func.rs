//! The function JIT: hot functions become native code that the interpreter and other native
//! code call as real calls; anything native code cannot finish, the interpreter finishes in the
//! same frame.
//!
//! # Glossary
//!
//! | term | meaning |
//! |---|---|
//! | function trace | a linear trace of one path through a function, from its entry (or from a side exit) to a `ret` ([`crate::jit::frecord`]); compiled by [`compile_linear`] |
//! | [`FuncCode`] | an installed function trace: code, snapshots, call sites; the VM runs it through [`NativeFunc`] |
//! | activation | one run of a `FuncCode` on one VM frame, with its own [`ExitFrame`] (spills, register dump, call area), so recursion never shares spill slots |
//! | return exit | the last snapshot of a function trace: its pc is the `ret`; taking it returns from the frame without the interpreter |
//! | side exit | any other snapshot: a guard failed; the frame is finished by a *side trace* compiled from that exit if it is hot, else by the interpreter |
//! | call site | a `call` inside a trace: `CallV` calls [`call_helper`], which runs the callee (native if it is compiled, else interpreted) through [`NativeEnv::call`] |
//!
//! ```text
//!  interpreter `call f` ---------------------------+
//!  native `CallV` -> call_helper -> NativeEnv::call +-> FuncCode::run(env, base)
//!                                                        | ExitFrame from the pool; call area := env, base, self
//!                                                        v
//!                                   native code(slots = &stack[base], frame) -> exit n
//!                                                        |
//!              n == return exit: restore, release the frame's registers, result -> slot base
//!              pending trap:     return it (every native caller above returns it too)
//!              side exit:        restore; hot? side trace (FuncCode) on the same frame
//!                                          : interpreter from the exit pc until the frame returns
//! ```
//!
//! # Invariants
//!
//! - A function returns the same value, raises the same error at the same location, and
//!   leaves the same registers behind whether it ran natively or not: the interpreter is the
//!   oracle, and every place native code gives up resumes it with a state it could have
//!   reached itself (snapshots), in the same frame.
//! - A guard failing inside a function called from native code is handled entirely inside
//!   that activation (side trace or interpreter); its caller only sees the call return, so the
//!   rest of the call completes and the value reaches the native caller.
//! - Native code writes VM slots only through Rust (snapshot restores, arguments stored by
//!   the helper as `Value`s), so a heap value a slot held is always dropped, never leaked.
//! - A trap (runtime error) below native code is parked in the [`NativeEnv`]; the call's status
//!   makes the trace leave, and every activation returns it unchanged, so it surfaces with the
//!   location where it happened.
//! - Call depth: every activation is one frame of the VM's depth count, checked before the
//!   call; deep recursion hits the VM's limit with the interpreter's error.
//! - Code and metadata live as long as the [`FuncJit`]; a `FuncCode` is shared (`Rc`) and never
//!   mutated except its activation pool, side-trace table and counters (cells, borrowed briefly,
//!   never across native code).
use core::cell::{Cell, RefCell};
use core::fmt::Write as _;
use core::ptr::NonNull;

use liballoc::collections::BTreeMap;
use liballoc::rc::Rc;
use liballoc::vec::Vec;

use crate::jit::backend::{compile_linear, Compiled, ExitFrame, Native, SPILL_BASE};
use crate::jit::callframe as cf;
use crate::jit::driver::VM_LAYOUT;
use crate::jit::frecord::{record_func, CallSite, FuncTrace};
use crate::jit::install::InstalledTrace;
use crate::jit::ir::{Op, Ty};
use crate::jit::trace::{Abort, Action, LoopState, Traces};
use crate::platform::{Console, ExecMemory};
use crate::vm::error::RuntimeErrorKind as E;
use crate::vm::native::{HotFunc, NativeEnv, NativeFunc, Trap};
use crate::vm::program::Program;
use crate::vm::value::Value;

/// Exits of one snapshot after which a side trace is recorded from it.
pub const SIDE_THRESHOLD: u32 = 8;

/// Counters a test or `--trace-jit` can read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FuncStats {
    /// Functions reported hot.
    pub hot: u64,
    /// Function traces (entry and side) compiled and installed.
    pub compiled: u64,
    /// Recordings or compilations abandoned.
    pub aborted: u64,
}

/// An installed function trace.
pub struct FuncCode {
    func: usize,
    compiled: Compiled,
    entry: NonNull<u8>,
    sites: Vec<CallSite>,
    ret_reg: Option<usize>,
    ret_ty: Ty,
    ret_exit: u32,
    /// Exit-frame words after the register dump: spill slots, then the call area.
    frame_extra: u32,
    /// Frame word where the call area starts.
    area: usize,
    pool: RefCell<Vec<ExitFrame>>,
    exits: RefCell<Vec<u32>>,
    sides: RefCell<BTreeMap<u32, Rc<dyn NativeFunc>>>,
    runs: Cell<u64>,
}

impl FuncCode {
    fn new(func: usize, ft: &FuncTrace, compiled: Compiled, entry: NonNull<u8>) -> Self {
        let spills = compiled.alloc.spill_slots;
        let nsnaps = compiled.trace.snaps.len();
        Self {
            func,
            entry,
            sites: ft.sites.clone(),
            ret_reg: ft.ret_reg,
            ret_ty: ft.ret_ty,
            ret_exit: (nsnaps - 1) as u32,
            frame_extra: spills + cf::words(ft.max_args()) as u32,
            area: SPILL_BASE + spills as usize,
            compiled,
            pool: RefCell::new(Vec::new()),
            exits: RefCell::new(liballoc::vec![0; nsnaps]),
            sides: RefCell::new(BTreeMap::new()),
            runs: Cell::new(0),
        }
    }

    /// Times the code was run.
    pub fn runs(&self) -> u64 {
        self.runs.get()
    }

    /// Enters the native code on the frame at `base` and returns the exit taken, with the
    /// activation's frame (for the restore).
    fn enter(&self, env: &mut NativeEnv<'_, '_, '_>, base: usize) -> Option<(u32, ExitFrame)> {
        let slots = env.frame_ptr(base)?;
        let mut frame = self
            .pool
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| ExitFrame::new(self.frame_extra));
        let words = frame.as_mut_ptr();
        let env_ptr: *mut NativeEnv<'_, '_, '_> = env;
        // SAFETY: the frame has SPILL_BASE + frame_extra words and the call area's fixed words
        // lie inside it (`area + ARGS <= SPILL_BASE + frame_extra`).
        unsafe {
            words
                .add(self.area + cf::ENV)
                .write(env_ptr as usize as u64);
            words.add(self.area + cf::BASE).write(base as u64);
            words
                .add(self.area + cf::META)
                .write(self as *const FuncCode as usize as u64);
        }
        self.runs.set(self.runs.get() + 1);
        // SAFETY: `entry` is this trace's code, compiled by the native backend for the
        // `fn(slots, frame) -> exit` convention and installed executable; `slots` points at
        // a whole frame window of `Value`s (checked by `frame_ptr`, and the trace touches only
        // registers of this function, below the window's 256); `words` is this activation's
        // own frame of the size the code was compiled for. While it runs, `env` is used only
        // through `env_ptr` (by `call_helper`), and `self` only through shared references.
        let exit = unsafe {
            let f: unsafe extern "C" fn(*mut u8, *mut u64) -> u32 =
                core::mem::transmute(self.entry.as_ptr());
            f(slots.cast(), words)
        };
        Some((exit, frame))
    }

    /// Writes exit `exit`'s snapshot into the frame at `base`; the pc to resume at.
    fn restore(
        &self,
        env: &mut NativeEnv<'_, '_, '_>,
        base: usize,
        exit: u32,
        frame: &ExitFrame,
    ) -> Result<usize, Trap> {
        let pc = self
            .compiled
            .restore_with(exit, frame, |slot, ty, bits| {
                let v = match ty {
                    Ty::Float => Value::Float(f64::from_bits(bits)),
                    _ => Value::Int(bits as i64),
                };
                if let Some(s) = env.slot_mut(base + slot as usize) {
                    *s = v;
                }
                Ok(())
            })
            .map_err(|_| self.internal(0))?;
        Ok(pc as usize)
    }

    fn internal(&self, pc: usize) -> Trap {
        Trap {
            kind: E::BadArgument("JIT exit could not be restored"),
            func: self.func,
            pc,
        }
    }

    /// After a side exit at `pc`: the side trace for it (recorded once the exit is hot).
    fn side_for(
        &self,
        env: &mut NativeEnv<'_, '_, '_>,
        exit: u32,
        pc: usize,
        base: usize,
    ) -> Option<Rc<dyn NativeFunc>> {
        if let Some(side) = self.sides.borrow().get(&exit) {
            return Some(side.clone());
        }
        let count = {
            let mut exits = self.exits.borrow_mut();
            let n = exits.get_mut(exit as usize)?;
            *n = n.saturating_add(1);
            *n
        };
        if count != SIDE_THRESHOLD {
            return None;
        }
        let side = env.side(self.func, pc, base)?;
        if core::ptr::addr_eq(Rc::as_ptr(&side), self as *const FuncCode) {
            // This trace starts at `pc` itself and failed its own first guard there: no link
            // (it would call itself forever); the interpreter takes this exit.
            return None;
        }
        self.sides.borrow_mut().insert(exit, side.clone());
        Some(side)
    }

    /// One `call` of this trace (see [`call_helper`]): 0 if it returned a value of the
    /// expected type (in the call area's RESULT), 1 to leave the trace.
    fn call_site(
        &self,
        env: &mut NativeEnv<'_, '_, '_>,
        base: usize,
        site: usize,
        area: *const u64,
    ) -> u64 {
        let Some(s) = self.sites.get(site) else {
            env.set_pending(self.internal(0));
            return 1;
        };
        let callee_base = base + s.window;
        let mut write_args = |regs: &mut [Value]| {
            for (i, (ty, r)) in s.args.iter().zip(regs.iter_mut()).enumerate() {
                // SAFETY: `area` is the call area of the running activation (see
                // `call_helper`); argument word `i` exists because the area has room for
                // the largest call site's arguments, and `CArgI`/`CArgF` wrote it.
                let bits = unsafe { area.add(cf::ARGS + i).read() };
                *r = match ty {
                    Ty::Float => Value::Float(f64::from_bits(bits)),
                    _ => Value::Int(bits as i64),
                };
            }
        };
        if let Err(t) = env.call((self.func, s.pc), s.callee, callee_base, &mut write_args) {
            env.set_pending(t);
            return 1;
        }
        let result = match (env.slot_mut(callee_base), s.ret) {
            (Some(Value::Int(i)), Ty::Int) => *i as u64,
            (Some(Value::Float(f)), Ty::Float) => f.to_bits(),
            _ => return 1,
        };
        // SAFETY: as above; RESULT is a fixed word of the call area.
        unsafe { (area as *mut u64).add(cf::RESULT).write(result) };
        0
    }
}

impl NativeFunc for FuncCode {
    fn run(&self, env: &mut NativeEnv<'_, '_, '_>, base: usize) -> Result<(), Trap> {
        let Some((exit, frame)) = self.enter(env, base) else {
            // No whole frame window here (never expected): the interpreter can do it.
            return env.interpret(self.func, 0, base);
        };
        let restored = match env.take_pending() {
            Some(t) => Err(t),
            None => self.restore(env, base, exit, &frame),
        };
        self.pool.borrow_mut().push(frame);
        let pc = restored?;
        if exit == self.ret_exit {
            env.return_from(self.func, base, self.ret_reg);
            return Ok(());
        }
        match self.side_for(env, exit, pc, base) {
            Some(side) => side.run(env, base),
            None => env.interpret(self.func, pc, base),
        }
    }
}

/// Host function 0 of every function trace: runs call site `site` of the activation whose
/// call area starts at `area` (see [`crate::jit::callframe`]), writes STATUS (and RESULT), and
/// returns the address of the activation's slot 0, which may have moved.
pub extern "C" fn call_helper(area: i64, site: i64) -> i64 {
    let area = area as usize as *mut u64;
    // SAFETY: native code passes the call area of its own activation, whose ENV, BASE and
    // META words `FuncCode::enter` wrote from a `&mut NativeEnv` and a `&FuncCode` that stay
    // alive, and otherwise unused, until the native code returns.
    let (env, code, base) = unsafe {
        let env = &mut *(area.add(cf::ENV).read() as usize as *mut NativeEnv<'_, '_, '_>);
        let code = &*(area.add(cf::META).read() as usize as *const FuncCode);
        (env, code, area.add(cf::BASE).read() as usize)
    };
    let status = code.call_site(env, base, site as usize, area);
    let slots = match env.frame_ptr(base) {
        Some(p) => p as usize as i64,
        None => {
            // Cannot happen (the stack only grows); leave through the status guard.
            env.set_pending(code.internal(0));
            // SAFETY: STATUS is a fixed word of the call area.
            unsafe { area.add(cf::STATUS).write(1) };
            return 0;
        }
    };
    // SAFETY: as above.
    unsafe { area.add(cf::STATUS).write(status) };
    slots
}

/// The function half of the JIT for one program run.
pub struct FuncJit<'a> {
    prog: &'a Program,
    mem: &'a dyn ExecMemory,
    log: Option<&'a dyn Console>,
    states: Traces,
    code: BTreeMap<u64, Rc<FuncCode>>,
    installed: Vec<InstalledTrace>,
    stats: FuncStats,
}

/// Trace id of `func`'s entry trace (`pc` 0) or of its side trace from `pc`.
fn trace_id(func: usize, pc: usize, side: bool) -> u64 {
    ((func as u64) << 33) | ((pc as u64) << 1) | side as u64
}

impl<'a> FuncJit<'a> {
    /// A function JIT taking executable memory from `mem`, logging `[JIT]` lines to `log`.
    pub fn new(prog: &'a Program, mem: &'a dyn ExecMemory, log: Option<&'a dyn Console>) -> Self {
        Self {
            prog,
            mem,
            log,
            states: Traces::new(),
            code: BTreeMap::new(),
            installed: Vec::new(),
            stats: FuncStats::default(),
        }
    }

    /// The counters so far.
    pub fn stats(&self) -> FuncStats {
        self.stats
    }

    fn say(&self, args: core::fmt::Arguments<'_>) {
        if let Some(c) = self.log {
            let mut line: heapless::String<200> = heapless::String::new();
            let _ = line.write_fmt(args);
            let _ = line.push('\n');
            c.write_bytes(line.as_bytes());
        }
    }

    fn name(&self, func: usize) -> &'a str {
        self.prog
            .funcs
            .get(func)
            .map_or("?", |f| self.prog.func_name(f))
    }

    /// A function's call count reached the threshold.
    pub fn hot(&mut self, at: HotFunc<'_>) {
        self.stats.hot += 1;
        self.say(format_args!(
            "[JIT] Hot function {} detected (calls: {})",
            self.name(at.func),
            at.count
        ));
        self.attempt(at.func, 0, at.args, false);
    }

    /// Native code for a call of `func` with `args`, retrying a recording that aborted.
    pub fn native(&mut self, func: usize, args: &[Value]) -> Option<Rc<dyn NativeFunc>> {
        let id = trace_id(func, 0, false);
        match self.states.state(id) {
            LoopState::Compiled { .. } => {}
            LoopState::Cold { aborts } if aborts > 0 => self.attempt(func, 0, args, false),
            _ => return None,
        }
        let code: Rc<dyn NativeFunc> = self.code.get(&id)?.clone();
        Some(code)
    }

    /// A side trace continuing `func` from `pc` with the frame `regs`.
    pub fn side(&mut self, func: usize, pc: usize, regs: &[Value]) -> Option<Rc<dyn NativeFunc>> {
        self.attempt(func, pc, regs, true);
        let code: Rc<dyn NativeFunc> = self.code.get(&trace_id(func, pc, true))?.clone();
        Some(code)
    }

    fn attempt(&mut self, func: usize, pc: usize, regs: &[Value], side: bool) {
        let id = trace_id(func, pc, side);
        if self.states.arrive(id, true) != Action::Record {
            return;
        }
        let name = self.name(func);
        let what = if side { " side trace at PC " } else { "" };
        match self.build(func, pc, regs, id) {
            Ok(size) => {
                let _ = self.states.compiled(id, 0);
                self.stats.compiled += 1;
                if side {
                    self.say(format_args!(
                        "[JIT] Compiled function {name}{what}{pc} ({size} bytes)"
                    ));
                } else {
                    self.say(format_args!(
                        "[JIT] Compiled function {name} ({size} bytes)"
                    ));
                }
            }
            Err(why) => {
                let _ = self.states.abort(id, why);
                self.stats.aborted += 1;
                let at = if side {
                    " side trace at PC "
                } else {
                    " at PC "
                };
                match why {
                    Abort::Unsupported(op) => {
                        let op =
                            crate::vm::bytecode::Op::from_byte(op).map_or("?", |o| o.mnemonic());
                        self.say(format_args!(
                            "[JIT] Function {name} aborted{at}{pc}: `{op}` is not supported"
                        ));
                    }
                    _ => self.say(format_args!(
                        "[JIT] Function {name} aborted{at}{pc}: {}",
                        why.message()
                    )),
                }
            }
        }
    }

    /// Record, compile, install; the code size on success.
    fn build(&mut self, func: usize, pc: usize, regs: &[Value], id: u64) -> Result<usize, Abort> {
        let code = &self.code;
        let hint = |g: usize| code.get(&trace_id(g, 0, false)).map(|c| c.ret_ty);
        let ft = record_func(self.prog, func, pc, regs, &hint)?;
        let mut trace = ft.trace.clone();
        trace.calls.push(call_helper);
        let compiled = compile_linear::<Native>(&trace, &VM_LAYOUT)?;
        let last = compiled.trace.insts.last();
        let ret_exit = compiled.trace.snaps.len().checked_sub(1);
        if last.map(|i| (i.op, i.snap as usize)) != ret_exit.map(|n| (Op::Exit, n)) {
            // The trace must still end in `Exit` through the last snapshot (`FuncCode` treats
            // that one as the return); anything else is a bug, so do not install.
            return Err(Abort::Malformed);
        }
        let installed = InstalledTrace::install(self.mem, &compiled.code, compiled.min_slots())?;
        let size = installed.len();
        let fc = FuncCode::new(func, &ft, compiled, installed.entry());
        self.installed.push(installed);
        self.code.insert(id, Rc::new(fc));
        Ok(size)
    }
}

impl Drop for FuncJit<'_> {
    fn drop(&mut self) {
        self.code.clear();
        for t in self.installed.drain(..) {
            // SAFETY: installed from `self.mem`; no activation can be running: entering code
            // needs the VM, whose run borrowed the JIT mutably and has ended.
            unsafe { t.release(self.mem) };
        }
    }
}
