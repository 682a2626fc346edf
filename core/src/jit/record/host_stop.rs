//! Host stops: a `callh`, and the buffer accesses `bget`, `bset` and `blen`, recorded as
//! runtime calls whose status is guarded (the guard exits to the instruction, where the
//! interpreter takes a parked result or reports the error), or, when the recorder cannot
//! record them, an exit to the instruction that the driver performs before it runs on
//! natively (see the module doc of `record`, *host stop*).
use crate::jit::hostbuf::{buf_get, buf_len, buf_set, MAX_PACKED_INDEX};
use crate::jit::hostcall::{
    host_arg, host_call, host_status, EXPECT_FALSE, EXPECT_INT, EXPECT_TRUE, MAX_ARGS,
};
use crate::jit::ir::Op;
use crate::jit::trace::Abort;
use crate::vm::bytecode::{byte, field_a, field_b, field_c};
use crate::vm::host::Predicted;

use super::{Next, Num, Recorder, Val};

impl Recorder<'_> {
    /// `callh` as runtime calls (see [`crate::jit::hostcall`]): the arguments, the call, and a
    /// guard on its status that exits to the `callh` (where the interpreter takes the parked
    /// result or error); a stop when an argument is not an int or the function's last result
    /// was neither an int (predicted only for branch directions) nor a bool (checked by the
    /// call: the trace continues with that constant).
    pub(super) fn host_call(&mut self, pc: usize, w: u32) -> Result<Next, Abort> {
        let (first, n, import) = (field_a(w), field_c(w), field_b(w));
        let Some(ctx) = self.host else {
            return Ok(Next::Stop);
        };
        let Some(predicted) = ctx.last_result(import) else {
            return Ok(Next::Stop);
        };
        let ints =
            (first..first + n).all(|r| matches!(self.shadow.get(r), Some(Some(Num::Int(_)))));
        if n > MAX_ARGS || !ints {
            return Ok(Next::Stop);
        }
        let k = self.tb.kint(ctx.addr());
        for r in first..first + n {
            let v = self.reg(r)?;
            self.tb.call(host_arg, k, v.r);
        }
        let expect = match predicted {
            Predicted::Int(_) => EXPECT_INT,
            Predicted::Bool(false) => EXPECT_FALSE,
            Predicted::Bool(true) => EXPECT_TRUE,
        };
        let what = self.tb.kint(import as i64 | expect);
        let r = self.tb.call(host_call, k, what);
        let zero = self.tb.kint(0);
        let status = self.tb.call(host_status, k, zero);
        self.tb.guard(Op::Eq, status, zero);
        let v = match predicted {
            Predicted::Int(x) => Val {
                num: Num::Int(x),
                r,
            },
            Predicted::Bool(b) => self.bool_const(b),
        };
        self.set(first, v)?;
        Ok(Next::Pc(pc + 1))
    }

    /// `bget`, `bset`, `blen` as runtime calls on the buffer's view, each result guarded
    /// (`>= 0`); a stop when the view is empty or the access would fail now (the interpreter
    /// reports it).
    pub(super) fn buffer_op(&mut self, pc: usize, w: u32) -> Result<Next, Abort> {
        let op = w as u8;
        let buf = if op == byte::BSet {
            field_a(w)
        } else {
            field_b(w)
        };
        let Some(view) = self.bufs.get(buf) else {
            return Ok(Next::Stop);
        };
        let Some(len) = view.filled_len() else {
            return Ok(Next::Stop);
        };
        let addr = view.addr();
        let zero = self.tb.kint(0);
        match op {
            byte::BLen => {
                let k = self.tb.kint(addr);
                let r = self.tb.call(buf_len, k, zero);
                self.tb.guard(Op::Ge, r, zero);
                let v = Val {
                    num: Num::Int(len as i64),
                    r,
                };
                self.set(field_a(w), v)?;
            }
            byte::BGet => {
                let Some(Num::Int(i)) = self.shadow.get(field_c(w)).copied().flatten() else {
                    return Ok(Next::Stop);
                };
                let written = self
                    .written
                    .iter()
                    .rev()
                    .find(|&&(b, j, _)| (b, j) == (buf, i));
                let Some(byte) = written.map(|&(_, _, x)| x).or_else(|| view.read(i)) else {
                    return Ok(Next::Stop);
                };
                let idx = self.reg(field_c(w))?;
                let k = self.tb.kint(addr);
                let r = self.tb.call(buf_get, k, idx.r);
                self.tb.guard(Op::Ge, r, zero);
                let v = Val {
                    num: Num::Int(byte as i64),
                    r,
                };
                self.set(field_a(w), v)?;
            }
            _ => {
                let (Some(Num::Int(i)), Some(Num::Int(x))) = (
                    self.shadow.get(field_b(w)).copied().flatten(),
                    self.shadow.get(field_c(w)).copied().flatten(),
                ) else {
                    return Ok(Next::Stop);
                };
                let (Ok(byte), true) = (u8::try_from(x), i >= 0 && (i as u64) < len as u64) else {
                    return Ok(Next::Stop);
                };
                let (idx, val) = (self.reg(field_b(w))?, self.reg(field_c(w))?);
                let (max_byte, max_idx) = (self.tb.kint(255), self.tb.kint(MAX_PACKED_INDEX));
                self.tb.guard(Op::Ge, val.r, zero);
                self.tb.guard(Op::Le, val.r, max_byte);
                self.tb.guard(Op::Ge, idx.r, zero);
                self.tb.guard(Op::Lt, idx.r, max_idx);
                let k256 = self.tb.kint(256);
                let scaled = self.tb.op(Op::MulI, idx.r, k256);
                let packed = self.tb.op(Op::AddI, scaled, val.r);
                let k = self.tb.kint(addr);
                let r = self.tb.call(buf_set, k, packed);
                self.tb.guard(Op::Ge, r, zero);
                self.written.push((buf, i, byte));
            }
        }
        Ok(Next::Pc(pc + 1))
    }
}
