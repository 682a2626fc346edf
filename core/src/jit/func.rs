//! The function JIT: hot functions become native code that the interpreter and other native
//! code call as real calls (no inlining); anything native code cannot finish, the interpreter
//! finishes in the same frame.
//!
//! # Glossary
//!
//! | term | meaning |
//! |---|---|
//! | function trace | a linear trace of one path through a function, from its entry (*entry trace*) or from a hot side exit (*side trace*) to a `ret` ([`crate::jit::frecord`]), compiled by [`compile_linear`] |
//! | [`FuncCode`] | an installed function trace: code, snapshots, call sites, exit links; the VM runs it through [`NativeFunc`] |
//! | activation | one run of a function trace on one VM frame, with its own frame of [`callframe::FRAME_WORDS`](crate::jit::callframe) words (register dump, spills, call area): from the pool when Rust enters it, on the machine stack for a direct call, so recursion never shares spill slots |
//! | direct call | `CallD`: native code calls a compiled callee's entry trace itself (number arguments stored as values into the callee's registers, heap arguments already there); `CallV`, and `CallD` without budget, go through [`call_helper`] and the VM |
//! | return | `RetI`/`RetF`/`RetN`: the value goes to the caller in the call area, without the interpreter |
//! | side exit | a guard failed: a linked side trace continues natively (same frame, same slots, if the exit restores nothing); else `FuncCode::finish` restores the snapshot and a side trace (hot exits) or the interpreter finishes the frame |
//! | budget | direct calls still allowed below an activation: the VM's depth limit minus the depth, capped by the machine-stack allowance ([`crate::vm::native::MAX_NATIVE_DEPTH`]) |
//!
//! ```text
//!  interpreter `call f` --> NativeEnv::run_native --> FuncCode::run: frame from the pool,
//!                                                     call area := env, base, self, budget
//!  native code of f: CallD g --(budget, no heap value in the window)--> g's code, frame on
//!                    the machine stack; g returns RET_CODE + value      (no Rust in between)
//!                               g exits ------> exit_helper: g's frame finished in the VM
//!                    CallV g / no budget -----> call_helper: NativeEnv::call (VM semantics)
//!                    guard fails --> linked side trace (tail jump), else exit n
//!  FuncCode::run after exit n: RET_CODE -> value to slot base; pending trap -> return it;
//!                    else restore snapshot n, then side trace (hot) or interpreter from its pc
//! ```
//!
//! # Invariants
//!
//! - A function returns the same value, raises the same error at the same location, and
//!   prints the same output whether it ran natively or not: the interpreter is the oracle,
//!   and every place native code gives up resumes it with a state it could have reached
//!   itself (snapshots), in the same frame.
//! - A guard failing inside a function called from native code is handled entirely inside
//!   that activation (linked side trace, exit helper, side trace or interpreter); its caller
//!   only sees the call return, so the rest of the call completes and the value reaches the
//!   native caller.
//! - Native code stores into VM registers only where no heap value is (it checks the tag
//!   first and otherwise calls the VM; exit stubs writing a snapshot back before a linked side
//!   trace check the same way), so heap values are always dropped by Rust, never leaked or
//!   aliased: the heap values a function trace handles stay in their registers, and runtime
//!   calls (`put_element`, `frecord::drop_slot`, `frecord::release_frame`, the `newarr` helper
//!   site) change them with the interpreter's reference counting, where it changes them (a
//!   trace that saw a heap value releases its frame at `ret` as the interpreter's `ret`
//!   does); registers of a natively returned frame may keep numbers where the interpreter
//!   leaves nil (the verifier guarantees nobody reads them).
//! - A trap (runtime error) below native code is parked in the [`NativeEnv`]; the call's status
//!   makes the trace leave, and every activation returns it unchanged, so it surfaces with the
//!   location where it happened.
//! - Call depth: every activation is one frame of the VM's depth count (direct ones are
//!   counted by the budget they used up, the ROOT frame's BUDGET minus their own, and
//!   materialised as frame markers whenever the VM runs under them); a direct call happens
//!   only within the budget, so deep recursion reaches the VM's limit through the VM, with the
//!   interpreter's error and location.
//! - Fuel: a direct call adds the callee's length and the caller's rest (both at the call; the
//!   rest is taken back if the callee leaves its trace, the exit helper then charging it when
//!   the call returns) to the Rust-entered activation's FUEL word, which Rust charges when
//!   native code returns; the helpers charge the same amounts in Rust. The total equals the
//!   interpreter's. Native code never checks a budget, so a run with a fuel budget makes no
//!   direct calls (budget 0): every call goes through the helper, which checks and charges.
//! - Code and metadata live as long as the [`FuncJit`]; a `FuncCode` is shared (`Rc`) and
//!   never mutated except its activation pool, side-trace table, link table and counters
//!   (cells, borrowed briefly, never across native code).
use core::cell::{Cell, RefCell};
use core::fmt::Write as _;
use core::ptr::NonNull;

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::rc::Rc;
use alloc::vec::Vec;

use crate::jit::backend::{
    compile_linear, Backend, CompileError, Compiled, ExitFrame, Native, RestoreError, FUEL,
    SPILL_BASE,
};
use crate::jit::callframe;
use crate::jit::frecord::{record_func, CallSite, Callees, FuncTrace, NewArr, SiteOp};
use crate::jit::install::InstalledTrace;
use crate::jit::ir::{Inst, Op, Ty, NONE};
use crate::jit::slots::VM_LAYOUT;
use crate::jit::trace::{Abort, Action, TraceState, Traces, MAX_ATTEMPTS};
use crate::platform::{Console, ExecMemory};
use crate::vm::error::RuntimeErrorKind as E;
use crate::vm::interp::Reply;
use crate::vm::native::{HotFunc, NativeEnv, NativeFunc, Trap};
use crate::vm::program::Program;
use crate::vm::value::{Meter, Value};

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
    /// Compiled functions the interpreter's calls keep interpreting: short and without calls,
    /// they cost less interpreted than entering native code costs (their code still serves
    /// direct calls from other native code).
    pub short_leaves: u64,
}

/// An installed function trace. `repr(C)` with the code address first: direct calls load
/// their target from word 0 of the callee's `FuncCode` (see [`crate::jit::callframe`]), and
/// a side exit linked to it jumps to word 1, the code right after the prologue.
#[repr(C)]
pub struct FuncCode {
    entry: NonNull<u8>,
    body: NonNull<u8>,
    func: usize,
    compiled: Compiled,
    sites: Vec<CallSite>,
    /// What the trace's native `newarr` calls read (their addresses are in the code).
    _arrays: Vec<Rc<NewArr>>,
    ret_ty: Ty,
    /// The trace returns an array (left in slot 0 by its last helper site).
    ret_heap: bool,
    pool: RefCell<Vec<ExitFrame>>,
    exits: RefCell<Vec<u32>>,
    sides: RefCell<BTreeMap<u32, Rc<dyn NativeFunc>>>,
    /// Exit link table (one word per snapshot; `Links` gives native code its address): the
    /// `FuncCode` of the side trace a side exit continues in natively, or 0.
    links: Box<[Cell<u64>]>,
    runs: Cell<u64>,
    /// [`largest_called_frame`] of the program: how far apart nested direct calls' frames
    /// can be (the budget Rust gives this activation keeps them all in the register stack).
    max_window: usize,
}

const _: () = assert!(
    core::mem::offset_of!(FuncCode, entry) == 0
        && core::mem::offset_of!(FuncCode, body) == callframe::BODY_OFFSET as usize
);

/// Code words below which a function without calls is not entered from the interpreter
/// (entering and leaving native code costs about as much as interpreting this many words).
pub const ENTRY_MIN_WORDS: usize = 24;

/// Whether verified code `code` contains a `call` (on any path, not only the recorded one).
fn has_call(code: &[u32]) -> bool {
    let mut pc = 0;
    while let Some(&w) = code.get(pc) {
        let Some(op) = crate::vm::bytecode::Op::from_byte(w as u8) else {
            return true;
        };
        if op == crate::vm::bytecode::Op::Call {
            return true;
        }
        pc += op.width();
    }
    false
}

/// Whether verified code `code` holds a loop (a `loop` marker: the compiler marks every loop
/// header with one).
fn has_loop(code: &[u32]) -> bool {
    let mut pc = 0;
    while let Some(&w) = code.get(pc) {
        match crate::vm::bytecode::Op::from_byte(w as u8) {
            Some(crate::vm::bytecode::Op::Loop) => return true,
            Some(op) => pc += op.width(),
            None => return false,
        }
    }
    false
}

/// The most registers a direct call's callee window can lie above its caller's: the largest
/// frame of a function some `call` names (a function trace belongs to a called function, and
/// its calls' windows are registers of its frame). At least 1.
fn largest_called_frame(prog: &Program) -> usize {
    let mut most = 1;
    for f in &prog.funcs {
        let mut pc = 0;
        while let Some(&w) = f.code.get(pc) {
            let Some(op) = crate::vm::bytecode::Op::from_byte(w as u8) else {
                // Unverifiable code does not run; be safe anyway.
                return callframe::WINDOW;
            };
            if op == crate::vm::bytecode::Op::Call {
                let callee = f.code.get(pc + 1).and_then(|&c| prog.funcs.get(c as usize));
                let regs = callee.map_or(callframe::WINDOW, |g| g.nregs as usize);
                most = most.max(regs);
            }
            pc += op.width();
        }
    }
    most
}

/// Spill words of every function-trace frame (the call area follows the spill slots).
const FRAME_EXTRA: u32 = (callframe::FRAME_WORDS - SPILL_BASE) as u32;

impl FuncCode {
    fn new(
        func: usize,
        ft: &FuncTrace,
        compiled: Compiled,
        entry: NonNull<u8>,
        links: Box<[Cell<u64>]>,
        max_window: usize,
    ) -> Self {
        let nsnaps = compiled.trace.snaps.len();
        // SAFETY: the code starts with the function-trace prologue, `func_entry_offset()`
        // bytes long.
        let body = unsafe { entry.add(<Native as Backend>::func_entry_offset()) };
        Self {
            links,
            entry,
            body,
            func,
            sites: ft.sites.clone(),
            _arrays: ft.arrays.clone(),
            ret_ty: ft.ret_ty,
            ret_heap: ft.ret_heap,
            compiled,
            pool: RefCell::new(Vec::new()),
            exits: RefCell::new(alloc::vec![0; nsnaps]),
            sides: RefCell::new(BTreeMap::new()),
            runs: Cell::new(0),
            max_window,
        }
    }

    /// Whether the interpreter's `call` should run this code: entering and leaving native code
    /// from the interpreter costs about as much as interpreting [`ENTRY_MIN_WORDS`] code words
    /// (`docs/perf.md`), so a short function that makes no calls (a function trace has no
    /// loop: it runs each word at most once) is cheaper interpreted. A function that calls
    /// others wins through its direct native calls.
    fn pays_from_interpreter(&self, prog: &Program) -> bool {
        let Some(code) = prog.funcs.get(self.func).map(|f| &f.code[..]) else {
            return false;
        };
        code.len() >= ENTRY_MIN_WORDS || has_call(code)
    }

    /// Times the code was entered from Rust.
    pub fn runs(&self) -> u64 {
        self.runs.get()
    }

    fn frame(&self) -> ExitFrame {
        self.pool
            .borrow_mut()
            .pop()
            .unwrap_or_else(|| ExitFrame::new(FRAME_EXTRA))
    }

    /// Enters the native code on the frame at `base` and returns the exit taken, with the
    /// activation's frame (for the restore).
    fn enter(&self, env: &mut NativeEnv<'_, '_, '_>, base: usize) -> Option<(u32, ExitFrame)> {
        let budget = env.direct_room(base, self.max_window);
        let slots = env.frame_ptr(base)?;
        let mut frame = self.frame();
        let words = frame.as_mut_ptr();
        let env_ptr: *mut NativeEnv<'_, '_, '_> = env;
        // SAFETY: every function-trace frame has FRAME_WORDS words (`FRAME_EXTRA` after the
        // dump), so the call area's words lie inside it.
        unsafe {
            let area = words.add(callframe::AREA);
            // This is the ROOT frame of the direct calls below it: they share its ENV, add
            // their fuel to its FUEL word and count their depth from its BUDGET.
            area.add(callframe::ROOT).write(words as usize as u64);
            area.add(callframe::ENV).write(env_ptr as usize as u64);
            area.add(callframe::META)
                .write(self as *const FuncCode as usize as u64);
            area.add(callframe::BUDGET).write(budget as u64);
            words.add(FUEL).write(0);
        }
        self.runs.set(self.runs.get() + 1);
        // `slots` points at a whole frame window of `Value`s (checked by `frame_ptr`); the
        // trace touches only registers of this function, below the window's 256, plus the
        // windows of its calls, which `call_helper` reserves and direct calls only make within
        // the budget that `direct_budget` derived from the stack's reserve; `words` is this
        // activation's own frame of FRAME_WORDS words. While it runs, `env` is used only
        // through `env_ptr` (by the helpers), and `self` only through shared references.
        // SAFETY: with those, `entry` (this trace's code, compiled by the native backend for
        // the `fn(slots, frame) -> exit` convention and installed executable) may run.
        let exit = unsafe {
            let f: unsafe extern "C" fn(*mut u8, *mut u64) -> u32 =
                core::mem::transmute(self.entry.as_ptr());
            f(slots.cast(), words)
        };
        Some((exit, frame))
    }

    /// After the native code of an activation on the frame at `base` stopped at `exit`:
    /// return its value, or finish the frame (side trace or interpreter).
    fn finish(
        &self,
        env: &mut NativeEnv<'_, '_, '_>,
        base: usize,
        exit: u32,
        frame: &ExitFrame,
    ) -> Result<(), Trap> {
        if let Some(t) = env.take_pending() {
            return Err(t);
        }
        if exit == callframe::RET_CODE && self.ret_heap {
            // The array is in slot 0 already (`frecord::release_frame`).
            let v = env.slot_mut(base).map(core::mem::take).unwrap_or_default();
            env.return_value(self.func, base, v);
            return Ok(());
        }
        if exit == callframe::RET_CODE {
            let bits = frame.word(callframe::AREA + callframe::RESULT).unwrap_or(0);
            let v = match self.ret_ty {
                Ty::Int => Value::Int(bits as i64),
                Ty::Float => Value::Float(f64::from_bits(bits)),
                Ty::Bool => Value::Bool(bits & 1 != 0),
                Ty::Void => Value::Nil,
            };
            env.return_value(self.func, base, v);
            return Ok(());
        }
        let pc = self.restore(env, base, exit, frame)?;
        match self.side_for(env, exit, pc, base) {
            Some(side) => side.run(env, base),
            None => env.interpret(self.func, pc, base),
        }
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
            .restore_with(exit, frame, |slot, ty, bits, dead| {
                let v = match ty {
                    Ty::Float => Value::Float(f64::from_bits(bits)),
                    Ty::Bool => Value::Bool(bits & 1 != 0),
                    _ => Value::Int(bits as i64),
                };
                // A dead entry only replaces a heap value. A slot past the register stack's end
                // would mean native code wrote outside it (the budget keeps every direct
                // call's window inside, see `NativeEnv::direct_room`): an error, not a skip.
                let s = env
                    .slot_mut(base + slot as usize)
                    .ok_or(RestoreError::SlotOutOfBounds(slot))?;
                if !dead || s.is_heap() {
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
        self.link(exit, &side);
        Some(side)
    }

    /// Lets native code continue in `side` at exit `exit` without leaving: only if `side`
    /// returns the same type (direct callers expect it). The exit stub first stores the
    /// snapshot into the VM slots, where the side trace reads it (see `exit_link` in the
    /// backends). The side trace stays alive in `sides`.
    fn link(&self, exit: u32, side: &Rc<dyn NativeFunc>) {
        let Some(code) = side.as_any().downcast_ref::<FuncCode>() else {
            return;
        };
        if code.ret_ty == self.ret_ty && code.ret_heap == self.ret_heap {
            if let Some(slot) = self.links.get(exit as usize) {
                slot.set(code as *const FuncCode as usize as u64);
            }
        }
    }

    /// Call site `site` of this trace, made through the VM (see [`call_helper`]); the callee
    /// is then finished and its value checked by [`Self::answer`].
    fn call_site(
        &self,
        env: &mut NativeEnv<'_, '_, '_>,
        base: usize,
        site: usize,
        area: *mut u64,
    ) -> u64 {
        let Some(s) = self.sites.get(site) else {
            env.set_pending(self.internal(0));
            return 1;
        };
        let callee_base = base + s.window;
        let mut write_args = |regs: &mut [Value]| {
            for (i, (ty, r)) in s.args.iter().zip(regs.iter_mut()).enumerate() {
                if s.heap_args & (1 << i) != 0 {
                    // Already in the callee's register.
                    continue;
                }
                // SAFETY: `area` is the call area of the running activation (see
                // `call_helper`); argument word `i < MAX_ARGS` exists and `CArgI`/`CArgF`
                // wrote it.
                let bits = unsafe { area.add(callframe::ARGS + i).read() };
                *r = match ty {
                    Ty::Float => Value::Float(f64::from_bits(bits)),
                    _ => Value::Int(bits as i64),
                };
            }
        };
        let r = env.call((self.func, s.pc), s.callee, callee_base, &mut write_args);
        Self::answer(env, r, s, callee_base, area)
    }

    /// STATUS for a finished call of `s` (result in slot `callee_base`): 0 with RESULT set if
    /// it is of the expected type, 1 (leave the trace) otherwise or on a trap (parked).
    fn answer(
        env: &mut NativeEnv<'_, '_, '_>,
        r: Result<(), Trap>,
        s: &CallSite,
        callee_base: usize,
        area: *mut u64,
    ) -> u64 {
        if let Err(t) = r {
            env.set_pending(t);
            return 1;
        }
        let result = match (env.slot_mut(callee_base), s.ret) {
            (Some(Value::Array(_)), _) if s.ret_heap => 0,
            (Some(Value::Int(i)), Ty::Int) if !s.ret_heap => *i as u64,
            (Some(Value::Float(f)), Ty::Float) if !s.ret_heap => f.to_bits(),
            _ => return 1,
        };
        // SAFETY: `area` is a live call area (see the callers); RESULT is one of its words.
        unsafe { area.add(callframe::RESULT).write(result) };
        0
    }

    /// Heap-value site `s` (not a call) of the activation on the frame at `base`, done as the
    /// interpreter does the bytecode: STATUS 0 (RESULT set for a number), or 1 having changed
    /// nothing.
    fn heap_site(
        &self,
        env: &mut NativeEnv<'_, '_, '_>,
        base: usize,
        s: &CallSite,
        area: *mut u64,
    ) -> u64 {
        // SAFETY: `area` is the running activation's call area (see `call_helper`); argument
        // word `i < MAX_ARGS` exists and `CArgI`/`CArgF` wrote the ones the site reads.
        let arg = |i: usize| unsafe { area.add(callframe::ARGS + i).read() };
        match s.op {
            SiteOp::Call => 1,
            SiteOp::NewArr { dst, first, n } => {
                let mut items = Vec::with_capacity(n);
                for (i, ty) in s.args.iter().enumerate().take(n) {
                    let item = if s.heap_args & (1 << i) != 0 {
                        match env.slot_mut(base + first + i) {
                            Some(v) => v.clone(),
                            None => return 1,
                        }
                    } else if *ty == Ty::Float {
                        Value::Float(f64::from_bits(arg(i)))
                    } else {
                        Value::Int(arg(i) as i64)
                    };
                    items.push(item);
                }
                let Some(v) = env.new_array(items) else {
                    return 1;
                };
                match env.slot_mut(base + dst) {
                    Some(slot) => {
                        *slot = v;
                        0
                    }
                    None => 1,
                }
            }
        }
    }
}

impl NativeFunc for FuncCode {
    fn run(&self, env: &mut NativeEnv<'_, '_, '_>, base: usize) -> Result<(), Trap> {
        let Some((exit, frame)) = self.enter(env, base) else {
            // No whole frame window here (never expected): the interpreter can do it.
            return env.interpret(self.func, 0, base);
        };
        // What the direct calls made natively cost, as the interpreter would have charged it.
        if let Err(t) = env.charge(frame.fuel(), (self.func, 0)) {
            self.pool.borrow_mut().push(frame);
            return Err(t);
        }
        // A linked side trace may have finished the activation: its META word says which.
        let meta =
            frame.word(callframe::AREA + callframe::META).unwrap_or(0) as usize as *const FuncCode;
        // SAFETY: META holds `self` or a side trace `self` linked (kept alive in `sides`).
        let last = unsafe { meta.as_ref() }.unwrap_or(self);
        let r = last.finish(env, base, exit, &frame);
        self.pool.borrow_mut().push(frame);
        r
    }

    fn as_any(&self) -> &dyn core::any::Any {
        self
    }
}

/// The running activation of a call area: its `NativeEnv`, `FuncCode` and direct depth.
///
/// # Safety
/// `area` is the call area of a function-trace frame whose ROOT, META and BUDGET words
/// were written (by `FuncCode::enter` or a direct call); its ROOT frame's ENV word holds a
/// `&mut NativeEnv` and META a `&FuncCode`, both alive and otherwise unused until the native
/// code that owns the frame returns.
unsafe fn activation<'e>(area: *mut u64) -> (&'e mut NativeEnv<'e, 'e, 'e>, &'e FuncCode, usize) {
    // SAFETY: per the caller's guarantee; the ROOT word points at the frame of the activation
    // Rust entered, which outlives every activation below it (`FuncCode::enter`).
    unsafe {
        let root = (area.add(callframe::ROOT).read() as usize as *const u64).add(callframe::AREA);
        let env = &mut *(root.add(callframe::ENV).read() as usize as *mut NativeEnv<'e, 'e, 'e>);
        let code = &*(area.add(callframe::META).read() as usize as *const FuncCode);
        // Each direct call took one from the budget its caller had.
        let ddepth = root
            .add(callframe::BUDGET)
            .read()
            .saturating_sub(area.add(callframe::BUDGET).read()) as usize;
        (env, code, ddepth)
    }
}

/// The slot index of the activation whose call area is `area`, from the SLOTS word native code
/// wrote right before calling the helper (the stack's length, where no frame fits, if that is
/// not a slot's address).
///
/// # Safety
/// `area` is a live call area.
unsafe fn slots_base(env: &NativeEnv<'_, '_, '_>, area: *mut u64) -> usize {
    // SAFETY: SLOTS is a word of the live call area (caller).
    let p = unsafe { area.add(callframe::SLOTS).read() };
    env.base_of(p as usize as *const Value)
}

/// Host function 0 of every function trace: runs call site `site` of the activation whose
/// call area starts at `area` (see [`crate::jit::callframe`]) through the VM, writes STATUS
/// (and RESULT), and returns the address of the activation's slot 0, which may have moved.
pub extern "C" fn call_helper(area: i64, site: i64) -> i64 {
    let area = area as usize as *mut u64;
    // SAFETY: native code passes the call area of its own, running activation, whose SLOTS
    // word it has just written.
    let (env, code, ddepth) = unsafe { activation(area) };
    // SAFETY: as above.
    let base = unsafe { slots_base(env, area) };
    let status = match code.sites.get(site as usize) {
        Some(s) if !matches!(s.op, SiteOp::Call) => {
            let status = code.heap_site(env, base, s, area);
            // SAFETY: STATUS is a word of that call area.
            unsafe { area.add(callframe::STATUS).write(status) };
            // No VM call ran: the register stack has not moved, and the frame (which
            // native code was running on) is still there.
            return env.slot_addr(base) as usize as i64;
        }
        _ => env.with_direct_frames(ddepth, |env| code.call_site(env, base, site as usize, area)),
    };
    // SAFETY: STATUS is a word of that call area.
    unsafe { area.add(callframe::STATUS).write(status) };
    slot_base(env, code, base, area)
}

/// Host function 1 of every function trace: a callee called directly left its trace. Its
/// frame is at `frame` (exit number in its STATUS word, the caller's site in its RESULT
/// word); the callee's frame is finished in the VM and the caller (call area `area`) gets
/// STATUS and RESULT as from [`call_helper`], and the address of its slot 0.
pub extern "C" fn exit_helper(frame: i64, area: i64) -> i64 {
    let (frame, area) = (frame as usize as *mut u64, area as usize as *mut u64);
    // SAFETY: native code passes its own call area and the frame of the callee it just
    // called directly, which it filled from its own ENV and a live `FuncCode` (META).
    let ((env, code, _), (_, callee, callee_dd)) =
        unsafe { (activation(area), activation(frame.add(callframe::AREA))) };
    // SAFETY: the callee's exit wrote its SLOTS word (current: no VM call ran since).
    let callee_base = unsafe { slots_base(env, frame.add(callframe::AREA)) };
    // SAFETY: the callee's frame has FRAME_WORDS words; the caller stored the exit number and
    // the site in its call area.
    let (exit, site) = unsafe {
        let a = frame.add(callframe::AREA);
        (
            a.add(callframe::STATUS).read() as u32,
            a.add(callframe::RESULT).read() as usize,
        )
    };
    // The callee's frame starts at the call's window.
    let found = code
        .sites
        .get(site)
        .and_then(|s| Some((s, callee_base.checked_sub(s.window)?)));
    let Some((s, base)) = found else {
        // Cannot happen: the site is the caller's own, compiled into it.
        env.set_pending(code.internal(0));
        // SAFETY: STATUS is a word of the caller's call area.
        unsafe { area.add(callframe::STATUS).write(1) };
        return 0;
    };
    let mut copy = callee.frame();
    // SAFETY: both frames have FRAME_WORDS words and do not overlap (one is on the machine
    // stack, the other in the pool).
    unsafe { core::ptr::copy_nonoverlapping(frame, copy.as_mut_ptr(), callframe::FRAME_WORDS) };
    let status = env.with_direct_frames(callee_dd, |env| {
        let r = callee.finish(env, callee_base, exit, &copy);
        // The call returned: the interpreter's `ret` charges the rest of the caller.
        let r = r.and_then(|()| {
            let len = env.prog().funcs.get(code.func).map_or(0, |f| f.code.len());
            let rest = len.saturating_sub(s.pc + 2) as u64;
            env.charge(rest, (code.func, s.pc + 2))
        });
        FuncCode::answer(env, r, s, callee_base, area)
    });
    callee.pool.borrow_mut().push(copy);
    // SAFETY: STATUS is a word of the caller's call area.
    unsafe { area.add(callframe::STATUS).write(status) };
    slot_base(env, code, base, area)
}

/// The address of slot `base` for native code to reload; 0 with STATUS 1 and a parked trap
/// if the frame is not there (cannot happen: the stack only grows).
fn slot_base(env: &mut NativeEnv<'_, '_, '_>, code: &FuncCode, base: usize, area: *mut u64) -> i64 {
    match env.frame_ptr(base) {
        Some(p) => p as usize as i64,
        None => {
            env.set_pending(code.internal(0));
            // SAFETY: STATUS is a word of the live call area.
            unsafe { area.add(callframe::STATUS).write(1) };
            0
        }
    }
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
    /// The VM's memory meter (from the first hot function), for native `newarr`.
    meter: Option<Meter>,
    /// [`largest_called_frame`] of the program.
    max_window: usize,
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
            meter: None,
            max_window: largest_called_frame(prog),
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

    /// A function's call count reached the threshold (the VM asks [`native`](Self::native)
    /// right after, which records it).
    pub fn hot(&mut self, at: HotFunc<'_>) {
        self.stats.hot += 1;
        if self.meter.is_none() {
            self.meter = Some(at.meter.clone());
        }
        self.say(format_args!(
            "[JIT] Hot function {} detected (calls: {})",
            self.name(at.func),
            at.count
        ));
    }

    /// Native code for a call of `func` with `args`: recorded now if the function is not
    /// compiled yet (first time hot, or the wait after an abort is over); otherwise how many
    /// calls to wait before asking again.
    pub fn native(&mut self, func: usize, args: &[Value]) -> Reply<Rc<dyn NativeFunc>> {
        let id = trace_id(func, 0, false);
        if let TraceState::Cold { .. } = self.states.state(id) {
            self.attempt(func, 0, args, false);
        }
        match self.code.get(&id) {
            Some(code) if code.pays_from_interpreter(self.prog) => Reply::Native(code.clone()),
            // Compiled for direct calls from other native code only.
            Some(_) => {
                self.stats.short_leaves += 1;
                self.say(format_args!(
                    "[JIT] Function {} stays interpreted when the interpreter calls it \
                     (shorter than {ENTRY_MIN_WORDS} words, no calls)",
                    self.name(func)
                ));
                Reply::Wait(u32::MAX)
            }
            None => Reply::Wait(self.states.wait(id)),
        }
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
                let blacklisted = self.states.abort(id, why) == Ok(TraceState::Blacklisted);
                self.stats.aborted += 1;
                let at = if side {
                    " side trace at PC "
                } else {
                    " at PC "
                };
                // A function trace has no loops: say where a function that holds one runs.
                let code = self.prog.funcs.get(func).map_or(&[][..], |f| &f.code[..]);
                let loops = if has_loop(code) && why != Abort::FuncLoop {
                    " (the function holds a loop: its loops run as loop traces)"
                } else {
                    ""
                };
                match why {
                    Abort::Unsupported(op) => {
                        let op =
                            crate::vm::bytecode::Op::from_byte(op).map_or("?", |o| o.mnemonic());
                        self.say(format_args!(
                            "[JIT] Function {name} aborted{at}{pc}: `{op}` is not supported{loops}"
                        ));
                    }
                    _ => self.say(format_args!(
                        "[JIT] Function {name} aborted{at}{pc}: {}{loops}",
                        why.message()
                    )),
                }
                if blacklisted {
                    self.say(format_args!(
                        "[JIT] Function {name}{at}{pc} blacklisted after {MAX_ATTEMPTS} aborts: \
                         interpreted from now on"
                    ));
                }
            }
        }
    }

    /// Record, compile, install; the code size on success.
    fn build(&mut self, func: usize, pc: usize, regs: &[Value], id: u64) -> Result<usize, Abort> {
        let code = &self.code;
        let compiled_callee = |g: usize| {
            let c = code.get(&trace_id(g, 0, false))?;
            Some((c.ret_ty, c.ret_heap, Rc::as_ptr(c) as usize as i64))
        };
        let callees = Callees {
            compiled: &compiled_callee,
            is_entry: id == trace_id(func, 0, false),
            helpers: [call_helper, exit_helper],
            meter: self.meter.as_ref(),
        };
        let ft = record_func(self.prog, func, pc, regs, &callees)?;
        let mut trace = ft.trace.clone();
        let links: Box<[Cell<u64>]> = (0..trace.snaps.len()).map(|_| Cell::new(0)).collect();
        let mut table = Inst::new(Op::Links, Ty::Void, NONE, NONE);
        table.imm = links.as_ptr() as usize as i64;
        // Before the final return (nothing refers to it, so no ref moves).
        let at = trace.insts.len().saturating_sub(1);
        trace.insts.insert(at, table);
        let compiled = compile_linear::<Native>(&trace, &VM_LAYOUT)?;
        if compiled.alloc.spill_slots as usize > callframe::MAX_SPILLS {
            return Err(Abort::Codegen(CompileError::TooManySpills));
        }
        if !matches!(
            compiled.trace.insts.last().map(|i| i.op),
            Some(Op::RetI | Op::RetF | Op::RetN)
        ) {
            // Native code must end in a return; anything else is a bug, so do not install.
            return Err(Abort::Malformed);
        }
        let installed = InstalledTrace::install(self.mem, &compiled.code, compiled.min_slots())?;
        let size = installed.len();
        let fc = FuncCode::new(
            func,
            &ft,
            compiled,
            installed.entry(),
            links,
            self.max_window,
        );
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
