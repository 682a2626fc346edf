//! The dispatch loop: [`Vm::execute`] runs verified bytecode frame by frame.
use core::fmt::Write;
use core::mem;

use alloc::vec::Vec;

use super::native::events::Resume;
use super::native::NativeEnv;
use super::{Frame, LoopHook, Pos, Start, Vm, FRAME_WINDOW};
use crate::vm::arith::DivByConst;
use crate::vm::builtins::{self, Builtin, Env};
use crate::vm::bytecode::{field_a, field_b, field_bx, field_c, field_sbx, Op};
use crate::vm::error::RuntimeErrorKind as E;
use crate::vm::host;
use crate::vm::value::{copy_plain, StrObj, Value, TAG_STR};

impl Vm<'_> {
    /// Runs from `start` until the frame it starts in returns (the call depth falls back to
    /// `start.stop`); an error leaves its location in `pos`.
    pub(in crate::vm) fn execute(
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
        let Some(func) = prog.funcs.get(fi) else {
            return Err(E::BadArgument("no such function"));
        };
        if start.pc >= func.code.len() {
            return Err(E::BadArgument("no such PC"));
        }
        // The code per function (see `Vm::xcode`): never changed after `Vm::new`, so these
        // addresses stay valid while this loop runs.
        let xcode: *const *const u32 = self.xcode.as_ptr();
        let mut base = start.base;
        // The running function's code (its `xcode` entry; a copy of the same length as the
        // program's code) and the PC as a pointer into it: one register for fetching; the
        // index is computed back (`pc!`) only where it is needed (jumps, calls, errors).
        // SAFETY: `fi` was checked above; `xcode` holds one address per function.
        let mut code: *const u32 = unsafe { *xcode.add(fi) };
        let mut ip: *const u32 = code.wrapping_add(start.pc);
        // The end of the running function's code (for the fuel a return charges).
        let mut end: *const u32 = code.wrapping_add(func.code.len());
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
        // Whether calls and loops are counted for the JIT: fixed for this run, read once.
        let jit_on = self.config.jit_threshold != 0;
        self.heap_top = if jit_on || start.stop != 0 {
            usize::MAX
        } else {
            let last = stack.iter().rposition(|v| v.tag() >= TAG_STR);
            last.map_or(0, |i| stack.as_ptr().wrapping_add(i + 1) as usize)
        };
        // One loop runs every frame: a call or a return switches `fi`, `code`, `ip`, `base`
        // and `regs` in place and goes on dispatching (docs/perf.md, "interpreter call path").
        {
            macro_rules! pc {
                () => {
                    (ip as usize - code as usize) / mem::size_of::<u32>()
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
            // A frame's window is a fixed 256 slots (the stack always extends that far past the
            // base), so 8-bit register operands index it without bounds checks.
            // SAFETY: the window lies inside the stack: checked on entry for the first frame;
            // `call` grows the stack to cover the callee's window before switching to it; `ret`
            // returns to a frame this loop entered before; and the stack never shrinks while
            // the loop runs. `regs` is re-derived (`enter!`) after every use of `stack`
            // elsewhere (a frame switch, or the return from a native call).
            let mut regs: &mut [Value; FRAME_WINDOW];
            // Switches to the frame of `fi` at `base`: the registers, and (`enter!`) the loop
            // counters.
            macro_rules! enter_regs {
                () => {{
                    debug_assert!(base + FRAME_WINDOW <= stack.len());
                    // SAFETY: as for `regs` above.
                    regs = unsafe {
                        &mut *stack.as_mut_ptr().add(base).cast::<[Value; FRAME_WINDOW]>()
                    };
                }};
            }
            macro_rules! enter {
                () => {{
                    if jit_on {
                        self.hot = self.loop_counts(fi);
                    }
                    enter_regs!();
                }};
            }
            enter!();
            // A hot loop header at `$header` whose wait is over: the hook may run native code
            // (which never moves the register stack), and the VM makes the calls it stops at,
            // after which the registers and loop counters are taken again (a call may have
            // moved the stack). The PC to continue at.
            macro_rules! hot_loop {
                ($header:expr) => {{
                    match self.loop_event(fi, $header, regs, hook) {
                        Resume::At(pc) => pc,
                        Resume::CallStop(pc) => {
                            let r = self.call_stops(fi, pc, stack, base, consts, out, hook);
                            enter!();
                            match r {
                                Ok(pc) => pc,
                                Err(t) => {
                                    pos.func = t.func;
                                    pos.pc = t.pc;
                                    return Err(t.kind);
                                }
                            }
                        }
                    }
                }};
            }
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
                    ($w:ident, $f:ident, $rhs:expr, $iop:ident, $fop:tt) => {{
                        match (&regs[field_b($w)], $rhs) {
                            (Value::Float(x), Value::Float(y)) => {
                                let r = *x $fop *y;
                                set_num!(field_a($w), Value::Float(r));
                            }
                            (Value::Int(x), Value::Int(y)) => {
                                let r = x.$iop(*y);
                                set_num!(field_a($w), Value::Int(r));
                            }
                            (x, y) => {
                                // Mixed numbers compute in float, as `arith` does, out of line
                                // so the same-type paths above keep their shape.
                                if let Some(r) = crate::vm::arith::mixed(x, y, |p, q| p $fop q) {
                                    set_num!(field_a($w), Value::Float(r));
                                } else {
                                    let v = tri!(crate::vm::arith::$f(x, y, &self.meter));
                                    put!(field_a($w), v);
                                }
                            }
                        }
                        ip = ip.wrapping_add(1);
                    }};
                    ($w:ident, $f:ident, $rhs:expr, $iop:ident if nonzero, $fop:tt) => {{
                        match (&regs[field_b($w)], $rhs) {
                            (Value::Float(x), Value::Float(y)) => {
                                let r = *x $fop *y;
                                set_num!(field_a($w), Value::Float(r));
                            }
                            // Division by zero goes to `arith`, which reports it.
                            (Value::Int(x), Value::Int(y)) if *y != 0 => {
                                let r = x.$iop(*y);
                                set_num!(field_a($w), Value::Int(r));
                            }
                            (x, y) => {
                                // Mixed numbers compute in float, as `arith` does, out of line
                                // so the same-type paths above keep their shape.
                                if let Some(r) = crate::vm::arith::mixed(x, y, |p, q| p $fop q) {
                                    set_num!(field_a($w), Value::Float(r));
                                } else {
                                    let v = tri!(crate::vm::arith::$f(x, y, &self.meter));
                                    put!(field_a($w), v);
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
                        let to = if target <= at && tri!(self.back_edge(at, target)) {
                            hot_loop!(target)
                        } else {
                            target
                        };
                        ip = code.wrapping_add(to);
                    }};
                }
                // Compare-and-branch with the same-type fast paths inline.
                macro_rules! cmp_branch {
                    ($w:ident, $x:expr, $y:expr, $op:tt, $slow:ident) => {{
                        let taken = match ($x, $y) {
                            (Value::Float(x), Value::Float(y)) => x $op y,
                            (Value::Int(x), Value::Int(y)) => x $op y,
                            // Byte-wise, as `arith::lt`/`le` compare strings.
                            (Value::Str(x), Value::Str(y)) => {
                                StrObj::cmp_text(x, y) $op core::cmp::Ordering::Equal
                            }
                            (x, y) => tri!(crate::vm::arith::$slow(x, y)),
                        };
                        if taken == (field_c($w) != 0) {
                            jump!();
                        } else {
                            ip = ip.wrapping_add(2);
                        }
                    }};
                }
                // `A += step; if A < limit goto Ext` (or `<=`), with `add` and `lt`/`le`
                // semantics.
                macro_rules! for_loop {
                    ($w:ident, $limit:expr) => {
                        for_loop!($w, &kk[field_b($w)], $limit, <, lt)
                    };
                    ($w:ident, $step:expr, $limit:expr, $op:tt, $slow:ident) => {{
                        match (&regs[field_a($w)], $step) {
                            (Value::Int(x), Value::Int(y)) => {
                                let r = x.wrapping_add(*y);
                                set_num!(field_a($w), Value::Int(r));
                            }
                            (Value::Float(x), Value::Float(y)) => {
                                let r = *x + *y;
                                set_num!(field_a($w), Value::Float(r));
                            }
                            (x, y) => {
                                let v = tri!(crate::vm::arith::add(x, y, &self.meter));
                                put!(field_a($w), v);
                            }
                        }
                        let taken = match (&regs[field_a($w)], $limit) {
                            (Value::Int(x), Value::Int(y)) => x $op y,
                            (Value::Float(x), Value::Float(y)) => x $op y,
                            (x, y) => tri!(crate::vm::arith::$slow(x, y)),
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
                            (x, y) => crate::vm::arith::equal(x, y),
                        };
                        if taken == (field_c(w) != 0) {
                            jump!();
                        } else {
                            ip = ip.wrapping_add(2);
                        }
                    }};
                }

                // The handlers that fused pairs share, each for the word `$w` at `ip`; every
                // one ends with `ip` on the next instruction.
                macro_rules! op_move {
                    ($w:ident) => {{
                        let (src, dst) = (field_b($w), field_a($w));
                        if (regs[src].tag() | regs[dst].tag()) < TAG_STR {
                            // SAFETY: neither value owns anything (the heap tags are the ones
                            // at or above `TAG_STR`, and an OR below it means both are below),
                            // so a bitwise copy over the old value is a complete move.
                            unsafe { copy_plain(&regs[src], &mut regs[dst]) };
                        } else {
                            put!(dst, regs[src].clone());
                        }
                        ip = ip.wrapping_add(1);
                    }};
                }
                macro_rules! op_muladd {
                    ($w:ident) => {{
                        match (&regs[field_a($w)], &regs[field_b($w)], &regs[field_c($w)]) {
                            (Value::Float(x), Value::Float(y), Value::Float(z)) => {
                                // Two roundings, as `mul` then `add` (Rust never contracts
                                // this into a fused multiply-add).
                                let r = *x + *y * *z;
                                set_num!(field_a($w), Value::Float(r));
                            }
                            (Value::Int(x), Value::Int(y), Value::Int(z)) => {
                                let r = x.wrapping_add(y.wrapping_mul(*z));
                                set_num!(field_a($w), Value::Int(r));
                            }
                            (x, y, z) => {
                                let t = tri!(crate::vm::arith::mul(y, z, &self.meter));
                                let v = tri!(crate::vm::arith::add(x, &t, &self.meter));
                                put!(field_a($w), v);
                            }
                        }
                        ip = ip.wrapping_add(1);
                    }};
                }
                macro_rules! op_getidx {
                    ($w:ident) => {{
                        let fast = match (&regs[field_b($w)], &regs[field_c($w)]) {
                            (Value::Array(arr), Value::Int(i)) => {
                                arr.get(crate::vm::arith::index_of(*i))
                            }
                            _ => None,
                        };
                        let v = match fast {
                            Some(v) => v,
                            None => tri!(crate::vm::arith::get_index(
                                &regs[field_b($w)],
                                &regs[field_c($w)]
                            )),
                        };
                        put!(field_a($w), v);
                        ip = ip.wrapping_add(1);
                    }};
                }
                macro_rules! op_setidx {
                    ($w:ident) => {{
                        let mut done = false;
                        if let (Value::Array(arr), Value::Int(i)) =
                            (&regs[field_a($w)], &regs[field_b($w)])
                        {
                            let i = crate::vm::arith::index_of(*i);
                            if arr.set_inline(i, &regs[field_c($w)]) {
                                done = true;
                            } else if let Ok(old) = arr.replace(i, regs[field_c($w)].clone()) {
                                // A heap value stored or replaced: clone in, drop the old one
                                // after the store (an index past the end falls to the error
                                // path).
                                drop(old);
                                done = true;
                            }
                        }
                        if !done {
                            let v = regs[field_c($w)].clone();
                            tri!(crate::vm::arith::set_index(
                                &regs[field_a($w)],
                                &regs[field_b($w)],
                                v
                            ));
                        }
                        ip = ip.wrapping_add(1);
                    }};
                }
                // A fused pair: the first instruction, then the second one (the next word; its
                // opcode byte may itself be a fused pair's, its operands are its own).
                macro_rules! pair {
                    ($first:expr, $w1:ident => $second:expr) => {{
                        $first;
                        // SAFETY: `quicken` fuses an instruction only with the instruction
                        // that follows it, so `ip` now points at that instruction's word.
                        let $w1 = unsafe { *ip };
                        $second
                    }};
                }
                // `ret` of the value `$v` (taken out of its register): releases the frame's
                // registers and returns to the caller (or out of this loop).
                // Returns register `$ret` (`Some(r)`) or nil (`None`). A heap result leaves
                // its register before the frame is released; a plain one stays there (the
                // release only touches heap values) and is copied into the result slot as two
                // words at the end ([`copy_plain`]): it was often written just before, and a
                // 16-byte load of it, or of a copy on the stack, would wait for the stores.
                macro_rules! op_ret {
                    ($ret:expr) => {{
                        let ret: Option<usize> = $ret;
                        let heap = match ret {
                            Some(a) if regs[a].tag() >= TAG_STR => Some(mem::take(&mut regs[a])),
                            _ => None,
                        };
                        // Collection point: the callee's registers are released here. Only
                        // heap values need it; the rest are dead and never read again (the
                        // verifier proves every register is written before it is read). No
                        // slot from `heap_top` on holds one, so a frame above it has none.
                        let lo = regs.as_ptr() as usize;
                        if self.heap_top > lo {
                            // SAFETY: `fi` is the running function's index.
                            let nregs = unsafe { prog.funcs.get_unchecked(fi) }.nregs as usize;
                            for r in regs[..nregs].iter_mut() {
                                if r.tag() >= TAG_STR {
                                    *r = Value::Nil;
                                }
                            }
                            if self.heap_top <= regs.as_ptr().wrapping_add(nregs) as usize {
                                self.heap_top = lo;
                            }
                        }
                        debug_assert!(regs[..prog.funcs[fi].nregs as usize]
                            .iter()
                            .all(|r| r.tag() < TAG_STR));
                        let top = self.frames.len() <= start.stop;
                        let Some(fr) = (if top { None } else { self.frames.pop() }) else {
                            return Ok(
                                heap.unwrap_or_else(|| ret.map_or(Value::Nil, |a| regs[a].clone()))
                            );
                        };
                        match (heap, ret) {
                            (Some(v), _) => {
                                self.heap_top = self.heap_top.max(lo + mem::size_of::<Value>());
                                // SAFETY: the slot holds no heap value (released above, or
                                // none was there), so overwriting it leaks nothing.
                                unsafe { core::ptr::write(&mut regs[0], v) };
                            }
                            // SAFETY: neither slot holds a heap value (the result is plain,
                            // and slot 0 was released above or held none).
                            (None, Some(a)) => unsafe { copy_plain(&regs[a], &mut regs[0]) },
                            // SAFETY: as above; nil owns nothing.
                            (None, None) => unsafe { core::ptr::write(&mut regs[0], Value::Nil) },
                        }
                        fi = fr.func as usize;
                        base = fr.base as usize;
                        code = fr.code;
                        ip = fr.ret_ip;
                        end = fr.end;
                        let rest = (end as usize - ip as usize) / mem::size_of::<u32>();
                        if let Err(k) = self.charge(rest) {
                            // Raised at the return PC of the caller, as before the switch.
                            bail!(k);
                        }
                        enter!();
                        continue;
                    }};
                }
                // `Vm::new` verified that every instruction start holds a valid opcode byte
                // (`Op::from_byte` succeeded for it); `quicken` replaces some of them only with
                // fused opcodes, which are `Op` variants too. The exhaustive `match` on `Op`
                // then needs no range check before its jump table.
                // SAFETY: execution only reaches instruction starts, so the byte is a valid
                // `Op` discriminant.
                let op = unsafe { core::mem::transmute::<u8, Op>(w as u8) };
                match op {
                    Op::Move => op_move!(w),
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
                    Op::Add => arith!(w, add, &regs[field_c(w)], wrapping_add, +),
                    Op::Sub => arith!(w, sub, &regs[field_c(w)], wrapping_sub, -),
                    Op::Mul => arith!(w, mul, &regs[field_c(w)], wrapping_mul, *),
                    Op::Div => arith!(w, div, &regs[field_c(w)], wrapping_div if nonzero, /),
                    Op::Mod => arith!(w, rem, &regs[field_c(w)], wrapping_rem if nonzero, %),
                    Op::AddK => arith!(w, add, &kk[field_c(w)], wrapping_add, +),
                    Op::SubK => arith!(w, sub, &kk[field_c(w)], wrapping_sub, -),
                    Op::MulK => arith!(w, mul, &kk[field_c(w)], wrapping_mul, *),
                    Op::DivK => arith!(w, div, &kk[field_c(w)], div_k if nonzero, /),
                    Op::ModK => arith!(w, rem, &kk[field_c(w)], rem_k if nonzero, %),
                    Op::MulAdd => op_muladd!(w),
                    Op::Neg => {
                        let v = tri!(crate::vm::arith::neg(&regs[field_b(w)]));
                        put!(field_a(w), v);
                        ip = ip.wrapping_add(1);
                    }
                    Op::Not => {
                        put!(field_a(w), Value::Bool(!regs[field_b(w)].truthy()));
                        ip = ip.wrapping_add(1);
                    }
                    Op::Eq => {
                        // Same-type numbers inline (predicates such as `x % 2 == 1`), the rest
                        // out of line. A bool owns nothing: `set_num!` stores it.
                        let v = match (&regs[field_b(w)], &regs[field_c(w)]) {
                            (Value::Int(x), Value::Int(y)) => x == y,
                            (Value::Float(x), Value::Float(y)) => x == y,
                            (x, y) => x.equals(y),
                        };
                        set_num!(field_a(w), Value::Bool(v));
                        ip = ip.wrapping_add(1);
                    }
                    Op::Lt => {
                        let v = tri!(crate::vm::arith::lt(&regs[field_b(w)], &regs[field_c(w)]));
                        put!(field_a(w), Value::Bool(v));
                        ip = ip.wrapping_add(1);
                    }
                    Op::Le => {
                        let v = tri!(crate::vm::arith::le(&regs[field_b(w)], &regs[field_c(w)]));
                        put!(field_a(w), Value::Bool(v));
                        ip = ip.wrapping_add(1);
                    }
                    Op::Jmp => jump!(),
                    Op::Loop => {
                        ip = ip.wrapping_add(1);
                        let header = pc!();
                        if self.arrive(header) {
                            ip = code.wrapping_add(hot_loop!(header));
                        }
                    }
                    Op::JmpIf => {
                        if regs[field_a(w)].truthy() == (field_b(w) != 0) {
                            jump!();
                        } else {
                            ip = ip.wrapping_add(2);
                        }
                    }
                    Op::JLt => cmp_branch!(w, &regs[field_a(w)], &regs[field_b(w)], <, lt),
                    Op::JLe => cmp_branch!(w, &regs[field_a(w)], &regs[field_b(w)], <=, le),
                    Op::JEq => eq_branch!(&regs[field_a(w)], &regs[field_b(w)]),
                    Op::JLtK => cmp_branch!(w, &regs[field_a(w)], &kk[field_b(w)], <, lt),
                    Op::JLeK => cmp_branch!(w, &regs[field_a(w)], &kk[field_b(w)], <=, le),
                    Op::JGtK => cmp_branch!(w, &kk[field_b(w)], &regs[field_a(w)], <, lt),
                    Op::JGeK => cmp_branch!(w, &kk[field_b(w)], &regs[field_a(w)], <=, le),
                    Op::JEqK => eq_branch!(&regs[field_a(w)], &kk[field_b(w)]),
                    Op::ForLtK => for_loop!(w, &kk[field_c(w)]),
                    Op::ForLt => for_loop!(w, &regs[field_c(w)]),
                    Op::ForLeK => for_loop!(w, &kk[field_b(w)], &kk[field_c(w)], <=, le),
                    Op::ForLe => for_loop!(w, &kk[field_b(w)], &regs[field_c(w)], <=, le),
                    Op::ForLtR => for_loop!(w, &regs[field_b(w)], &regs[field_c(w)], <, lt),
                    Op::ForLeR => for_loop!(w, &regs[field_b(w)], &regs[field_c(w)], <=, le),
                    Op::Call => {
                        let callee = ext!();
                        let depth = self.frames.len();
                        if depth >= self.frame_room {
                            tri!(self.make_frame_room());
                        }
                        // SAFETY: the verifier checked that every `call` names an existing
                        // function (`check_call`).
                        let len = unsafe { prog.funcs.get_unchecked(callee) }.code.len();
                        tri!(self.charge(len));
                        let new_base = base + field_a(w);
                        tri!(self.grow_stack(stack, new_base + FRAME_WINDOW));
                        if jit_on {
                            if let Some(native) = self.count_call(stack, callee, new_base, hook) {
                                let at = (fi, pc!());
                                let mut env = NativeEnv::new(self, stack, consts, out, hook);
                                if let Err(t) = env.run_native(&native, at, new_base) {
                                    pos.func = t.func;
                                    pos.pc = t.pc;
                                    return Err(t.kind);
                                }
                                ip = ip.wrapping_add(2);
                                enter!();
                                continue;
                            }
                            self.hot = self.loop_counts(callee);
                        }
                        let frame = Frame {
                            code,
                            ret_ip: ip.wrapping_add(2),
                            end,
                            func: fi as u32,
                            base: base as u32,
                        };
                        debug_assert!(depth < self.frames.capacity());
                        // Between the check and here only fuel, the register stack and the
                        // call counters changed (the hook `count_call` may consult sees the
                        // arguments, not the frames), and the native branch, which pushes and
                        // pops its own marker, left the arm.
                        // SAFETY: so `depth` is still the length and below `frame_room`, so
                        // below the capacity (see `Vm::frame_room`).
                        unsafe {
                            self.frames.as_mut_ptr().add(depth).write(frame);
                            self.frames.set_len(depth + 1);
                        }
                        fi = callee;
                        // SAFETY: `xcode` holds one address per function, and `callee` is one.
                        code = unsafe { *xcode.add(callee) };
                        ip = code;
                        end = code.wrapping_add(len);
                        base = new_base;
                        enter_regs!();
                        continue;
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
                    Op::Ret | Op::RetNil => op_ret!((op == Op::Ret).then(|| field_a(w))),
                    Op::NewArr => {
                        let (first, n) = (field_b(w), field_c(w));
                        let items = regs[first..first + n].to_vec();
                        let v =
                            tri!(Value::new_array(&self.meter, items).map_err(|_| E::OutOfMemory));
                        put!(field_a(w), v);
                        ip = ip.wrapping_add(1);
                    }
                    Op::GetIdx => op_getidx!(w),
                    Op::SetIdx => op_setidx!(w),
                    Op::GetIdxI => {
                        if let Value::Array(arr) = &regs[field_b(w)] {
                            if let Some(v) = arr.get(field_c(w)) {
                                put!(field_a(w), v);
                                ip = ip.wrapping_add(1);
                                continue;
                            }
                        }
                        let i = Value::Int(field_c(w) as i64);
                        let v = tri!(crate::vm::arith::get_index(&regs[field_b(w)], &i));
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
                        tri!(crate::vm::arith::set_index(&regs[field_a(w)], &i, v));
                        ip = ip.wrapping_add(1);
                    }
                    Op::GetIdxMul => {
                        pair!(op_getidx!(w), w1 => arith!(w1, mul, &regs[field_c(w1)], wrapping_mul, *))
                    }
                    Op::GetIdxAdd => {
                        pair!(op_getidx!(w), w1 => arith!(w1, add, &regs[field_c(w1)], wrapping_add, +))
                    }
                    Op::GetIdxSub => {
                        pair!(op_getidx!(w), w1 => arith!(w1, sub, &regs[field_c(w1)], wrapping_sub, -))
                    }
                    Op::GetIdxAddK => {
                        pair!(op_getidx!(w), w1 => arith!(w1, add, &kk[field_c(w1)], wrapping_add, +))
                    }
                    Op::GetIdxGetIdx => pair!(op_getidx!(w), w1 => op_getidx!(w1)),
                    Op::GetIdxMulAdd => pair!(op_getidx!(w), w1 => op_muladd!(w1)),
                    Op::GetIdxSetIdx => pair!(op_getidx!(w), w1 => op_setidx!(w1)),
                    Op::SetIdxGetIdx => pair!(op_setidx!(w), w1 => op_getidx!(w1)),
                    Op::AddSetIdx => {
                        pair!(arith!(w, add, &regs[field_c(w)], wrapping_add, +), w1 => op_setidx!(w1))
                    }
                    Op::SubSetIdx => {
                        pair!(arith!(w, sub, &regs[field_c(w)], wrapping_sub, -), w1 => op_setidx!(w1))
                    }
                    Op::AddKSetIdx => {
                        pair!(arith!(w, add, &kk[field_c(w)], wrapping_add, +), w1 => op_setidx!(w1))
                    }
                    Op::MulMul => pair!(
                        arith!(w, mul, &regs[field_c(w)], wrapping_mul, *),
                        w1 => arith!(w1, mul, &regs[field_c(w1)], wrapping_mul, *)
                    ),
                    Op::MulThenAdd => pair!(
                        arith!(w, mul, &regs[field_c(w)], wrapping_mul, *),
                        w1 => arith!(w1, add, &regs[field_c(w1)], wrapping_add, +)
                    ),
                    Op::MulSub => pair!(
                        arith!(w, mul, &regs[field_c(w)], wrapping_mul, *),
                        w1 => arith!(w1, sub, &regs[field_c(w1)], wrapping_sub, -)
                    ),
                    Op::MulDiv => pair!(
                        arith!(w, mul, &regs[field_c(w)], wrapping_mul, *),
                        w1 => arith!(w1, div, &regs[field_c(w1)], wrapping_div if nonzero, /)
                    ),
                    Op::AddJGtK => pair!(
                        arith!(w, add, &regs[field_c(w)], wrapping_add, +),
                        w1 => cmp_branch!(w1, &kk[field_b(w1)], &regs[field_a(w1)], <, lt)
                    ),
                    Op::AddForLtK => pair!(
                        arith!(w, add, &regs[field_c(w)], wrapping_add, +),
                        w1 => for_loop!(w1, &kk[field_c(w1)])
                    ),
                    Op::SetIdxForLt => {
                        pair!(op_setidx!(w), w1 => for_loop!(w1, &regs[field_c(w1)]))
                    }
                    Op::MulKMul => pair!(
                        arith!(w, mul, &kk[field_c(w)], wrapping_mul, *),
                        w1 => arith!(w1, mul, &regs[field_c(w1)], wrapping_mul, *)
                    ),
                    Op::AddSub => pair!(
                        arith!(w, add, &regs[field_c(w)], wrapping_add, +),
                        w1 => arith!(w1, sub, &regs[field_c(w1)], wrapping_sub, -)
                    ),
                    Op::SubAdd => pair!(
                        arith!(w, sub, &regs[field_c(w)], wrapping_sub, -),
                        w1 => arith!(w1, add, &regs[field_c(w1)], wrapping_add, +)
                    ),
                    Op::MoveMove => pair!(op_move!(w), w1 => op_move!(w1)),
                    Op::AddRet => pair!(
                        arith!(w, add, &regs[field_c(w)], wrapping_add, +),
                        w1 => op_ret!(Some(field_a(w1)))
                    ),
                    Op::MulRet => pair!(
                        arith!(w, mul, &regs[field_c(w)], wrapping_mul, *),
                        w1 => op_ret!(Some(field_a(w1)))
                    ),
                    Op::DivRet => pair!(
                        arith!(w, div, &regs[field_c(w)], wrapping_div if nonzero, /),
                        w1 => op_ret!(Some(field_a(w1)))
                    ),
                    Op::ModKRet => pair!(
                        arith!(w, rem, &kk[field_c(w)], rem_k if nonzero, %),
                        w1 => op_ret!(Some(field_a(w1)))
                    ),
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
