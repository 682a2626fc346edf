//! The `for` step in loop traces: `A += K[B]; if A < limit goto target`.
//!
//! A step recorded as jumping back (or as the root loop's last iteration), outside a followed
//! call, is charged its fuel before the add (a `Fuel` whose exit resumes at the step with the
//! counter from before it), and the loop guard after the add is a *refunding guard*: failing
//! means the loop ended and the backward jump was not taken, so its exit gives the charge back.
//! Every exit after the step thus names only the stepped counter. A step that falls through
//! (the loop's last iteration in a side trace) guards that the counter stays past its limit.
use super::*;

impl Recorder<'_> {
    /// `A += K[B]; if A < limit goto target`: the guard checks the direction taken now, after
    /// the add, and resumes after the instruction.
    pub(super) fn for_loop(&mut self, pc: usize, w: u32) -> Result<Next, Abort> {
        let target = self.ext(pc)?;
        // The fuel exit needs the state before the step (the interpreter redoes it).
        let before_step = self.tb.snapshot();
        let Some(shape) = crate::vm::bytecode::Op::from_byte(w as u8).and_then(|o| o.for_shape())
        else {
            return Err(Abort::Unsupported(w as u8));
        };
        let cmp = if shape.le { Op::Le } else { Op::Lt };
        let x = self.reg(field_a(w))?;
        let step = if shape.step_reg {
            self.reg(field_b(w))?
        } else {
            self.konst(field_b(w))?
        };
        // Load the limit before the counter's slot changes: a failing tag guard on the limit
        // resumes at this instruction, which must find the counter not yet stepped.
        let limit = if shape.limit_reg {
            self.reg(field_c(w))?
        } else {
            self.konst(field_c(w))?
        };
        let last_of_root = !self.side && target == self.header && !self.calls.inside();
        // Taken now (or the root loop's last iteration) and backward, outside followed calls:
        // the back edge's charge goes before the step, where its exit needs only the counter
        // before it; the loop guard after the step refunds it when it fails. No exit after
        // the step then names the old counter, so old and new need not both be live.
        let cost = (pc + 2).saturating_sub(target) as i64;
        let charge_first = target <= pc
            && !self.calls.inside()
            && (last_of_root || {
                let v = stepped(x.num, step.num);
                let l = if shape.limit_reg && field_c(w) == field_a(w) {
                    v
                } else {
                    limit.num
                };
                cmp.compare_holds(for_ord(v, l))
            });
        if charge_first {
            self.tb.fuel(cost, before_step);
        }
        let v = self.arith(byte::Add, x, step)?;
        self.set(field_a(w), v)?;
        // `forlt r, k, r` compares the stepped counter with itself.
        let limit = if shape.limit_reg && field_c(w) == field_a(w) {
            v
        } else {
            limit
        };
        let ord = for_ord(v.num, limit.num);
        if !cmp.compare_holds(ord) && !last_of_root {
            return self.for_loop_falls_through(pc, v, limit, before_step, shape.le);
        }
        // Taken now, or the root loop's last iteration: either way the trace guards that the
        // loop goes on (a guard that fails at once, in the second case, is the loop's exit).
        // Failing `v < limit` means exactly "not taken" (NaN included): resume after this
        // instruction, whose add is already in the snapshot.
        self.tb.at_pc((pc + 2) as u32);
        let (vf, lf) = match (v.num, limit.num) {
            (Num::Int(_), Num::Int(_)) => (v, limit),
            _ => (self.float_of(v), self.float_of(limit)),
        };
        if charge_first {
            let snap = self.tb.snapshot();
            self.tb.guard_refunding(cmp, vf.r, lf.r, snap, cost);
            return self.jump(pc, target);
        }
        self.tb.guard(cmp, vf.r, lf.r);
        self.take_jump(pc, target, Some(before_step))
    }

    /// The recorded iteration is the loop's last one, and its `for` step does not jump back to
    /// the root trace's start (that case is recorded as taken, its guard being the exit). A
    /// root trace gives up; a side trace guards that an int counter stays at or past its limit and
    /// carries on. Failing means the loop continues: the exit resumes at this instruction with
    /// the state before the step (`before_step`), so the interpreter redoes the step and takes
    /// the backward jump itself, charging its fuel.
    fn for_loop_falls_through(
        &mut self,
        pc: usize,
        v: Val,
        limit: Val,
        before_step: u32,
        le: bool,
    ) -> Result<Next, Abort> {
        if !self.side {
            return Err(Abort::LeftLoop);
        }
        if !matches!((v.num, limit.num), (Num::Int(_), Num::Int(_))) {
            // `!(v < limit)` for floats includes NaN, which `Ge` does not.
            return Err(Abort::UnsupportedType);
        }
        let past = if le { Op::Gt } else { Op::Ge };
        self.tb.guard_to(past, v.r, limit.r, before_step);
        Ok(Next::Pc(pc + 2))
    }
}

/// The counter after a `for` step of `x` by `step`, as the interpreter computes it (ints wrap;
/// otherwise the sum of the floats).
fn stepped(x: Num, step: Num) -> Num {
    match (x, step) {
        (Num::Int(p), Num::Int(q)) => Num::Int(p.wrapping_add(q)),
        (p, q) => Num::Float(p.as_f64() + q.as_f64()),
    }
}

/// The ordering of a stepped `for` counter against its limit (`None`: a NaN).
fn for_ord(v: Num, limit: Num) -> Option<core::cmp::Ordering> {
    match (v, limit) {
        (Num::Int(p), Num::Int(q)) => Some(p.cmp(&q)),
        (p, q) => p.as_f64().partial_cmp(&q.as_f64()),
    }
}
