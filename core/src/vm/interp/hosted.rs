//! Host instructions for native code: the [`HostStep`] the VM hands a [`LoopHook`] while a
//! host is linked, and the results or errors native code parks for the interpreter.
use super::Vm;
use crate::vm::bytecode::{byte, field_a, field_b, field_c};
use crate::vm::error::RuntimeErrorKind as E;
use crate::vm::host;
use crate::vm::program::Program;
use crate::vm::value::Value;

/// Performs one host instruction for compiled code (see [`LoopHook::enter_hosted`](super::LoopHook::enter_hosted)).
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
pub(super) struct Stepper<'a> {
    pub(super) prog: &'a Program,
    pub(super) link: &'a mut dyn host::HostLink,
    pub(super) meter: &'a crate::vm::value::Meter,
    pub(super) pending: &'a mut Option<Result<Value, E>>,
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
fn is_host_byte(op: u8) -> bool {
    matches!(op, byte::CallH | byte::BGet | byte::BSet | byte::BLen)
}

impl Vm<'_> {
    /// What compiled code parked for the host instruction `op` (see [`HostStep`]): a `callh`
    /// result, or an error.
    #[cold]
    #[inline(never)]
    pub(super) fn take_pending(&mut self, op: u8) -> Result<Option<Value>, E> {
        match self.host_pending.take() {
            Some(Ok(v)) if op == byte::CallH => Ok(Some(v)),
            Some(Ok(_)) => Err(E::Link("a parked result at a buffer access".into())),
            Some(Err(k)) => Err(k),
            None => Ok(None),
        }
    }
}
