//! IR-level JIT tests: the optimiser against the reference interpreter.
#![cfg(feature = "jit")]
mod common;

use common::{cases, LAYOUTS};
use kiln::jit::ir::Op;
use kiln::jit::irinterp::run;
use kiln::jit::opt::{optimize, OptError};

/// For every sample trace and layout: the optimised trace exits at the same pc with the same
/// slot image as the recorded one.
#[test]
fn optimised_traces_agree_with_recorded_ones() {
    for layout in &LAYOUTS {
        for (name, rec, img) in cases(layout) {
            let opt = optimize(&rec).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            let (mut a, mut b) = (img.clone(), img.clone());
            let ea = run(&rec, layout, &mut a, 100_000).unwrap();
            let eb = run(&opt, layout, &mut b, 100_000).unwrap();
            assert_eq!(ea.pc, eb.pc, "{name}: exit pc");
            assert_eq!(a, b, "{name}: slots after exit");
        }
    }
}

#[test]
fn sum_loop_computes_the_sum() {
    let layout = &LAYOUTS[0];
    let opt = optimize(&common::sum_loop()).unwrap();
    let mut m = common::image(
        layout,
        &[common::V::I(0), common::V::I(0), common::V::I(100)],
    );
    let e = run(&opt, layout, &mut m, 1000).unwrap();
    assert_eq!(e.pc, 1);
    assert_eq!(layout.read(&m, 1).unwrap(), (layout.int_tag, 4950));
    assert_eq!(layout.read(&m, 0).unwrap(), (layout.int_tag, 100));
}

/// The invariant `c * 3 + 7` is computed in the pre-roll only.
#[test]
fn invariants_are_hoisted_out_of_the_loop() {
    let opt = optimize(&common::invariant()).unwrap();
    let l = opt.loop_ref().unwrap() as usize;
    let body: Vec<Op> = opt.insts[l..]
        .iter()
        .map(|i| i.op)
        .filter(|&o| o != Op::Nop)
        .collect();
    assert!(!body.contains(&Op::MulI), "body: {body:?}");
    assert_eq!(
        body.iter().filter(|&&o| o == Op::AddI).count(),
        2,
        "acc and i only: {body:?}"
    );
    assert!(opt.insts[..l].iter().any(|i| i.op == Op::MulI));
}

/// Loop-carried values become PHIs; the swap in `fib` needs two.
#[test]
fn loop_carried_values_get_phis() {
    let opt = optimize(&common::fib()).unwrap();
    let phis = opt.insts.iter().filter(|i| i.op == Op::Phi).count();
    assert_eq!(phis, 3, "a, b and k");
}

/// Constants fold, and guards on constants that hold disappear.
#[test]
fn constants_fold() {
    use kiln::jit::ir::{TraceBuilder, Ty};
    let mut b = TraceBuilder::new(0);
    let i = b.slot(0, Ty::Int);
    let two = b.kint(2);
    let three = b.kint(3);
    let six = b.op(Op::MulI, two, three);
    let five = b.kint(5);
    b.guard(Op::Gt, six, five);
    let zero = b.kint(0);
    let j = b.op(Op::AddI, i, zero);
    let j = b.op(Op::AddI, j, six);
    b.set_slot(0, j);
    let t = optimize(&b.finish(0).unwrap()).unwrap();
    let live: Vec<Op> = t
        .insts
        .iter()
        .map(|i| i.op)
        .filter(|&o| o != Op::Nop)
        .collect();
    assert!(
        !live.contains(&Op::MulI) && !live.contains(&Op::Gt),
        "{live:?}"
    );
    assert_eq!(
        live.iter().filter(|&&o| o == Op::AddI).count(),
        2,
        "one per iteration copy"
    );
    assert!(t.insts.iter().any(|i| i.op == Op::KInt && i.imm == 6));
}

/// `2.0 * x` and `x * 2.0` become `x + x` (exact, and an add is shorter than a multiply on
/// a float recurrence); other constants stay multiplies. The loop `while i < n { x = (2.0 *
/// x) * 3.0; i = i + 1 }` leaves the same slots as recorded, also for -0.0, NaN and values
/// that overflow to infinity.
#[test]
fn doubling_a_float_is_an_add() {
    use kiln::jit::ir::{TraceBuilder, Ty};
    let mut b = TraceBuilder::new(0);
    let i = b.slot(0, Ty::Int);
    let n = b.slot(1, Ty::Int);
    b.guard(Op::Lt, i, n);
    let x = b.slot(2, Ty::Float);
    let two = b.kfloat(2.0);
    let three = b.kfloat(3.0);
    let d = b.op(Op::MulF, two, x);
    let d = b.op(Op::MulF, d, three);
    b.set_slot(2, d);
    let one = b.kint(1);
    let i2 = b.op(Op::AddI, i, one);
    b.set_slot(0, i2);
    let rec = b.finish(0).unwrap();
    let opt = optimize(&rec).unwrap();
    let live = |op| opt.insts.iter().filter(|i| i.op == op).count();
    assert_eq!(
        live(Op::AddF),
        2,
        "one doubling per iteration copy: {:?}",
        opt.insts
    );
    assert_eq!(
        live(Op::MulF),
        2,
        "the multiplies by 3.0 stay: {:?}",
        opt.insts
    );
    for layout in &LAYOUTS {
        for start in [1.5, -0.0, 1e300, f64::NAN] {
            let img = common::image(
                layout,
                &[common::V::I(0), common::V::I(5), common::V::F(start)],
            );
            let (mut a, mut m) = (img.clone(), img);
            let ea = run(&rec, layout, &mut a, 1000).unwrap();
            let eb = run(&opt, layout, &mut m, 1000).unwrap();
            assert_eq!(ea.pc, eb.pc);
            assert_eq!(a, m, "start {start}");
        }
    }
}

/// A slot that is an int on entry and a float at the back edge is refused.
#[test]
fn type_unstable_loops_are_refused() {
    use kiln::jit::ir::{TraceBuilder, Ty, NONE};
    let mut b = TraceBuilder::new(0);
    let i = b.slot(0, Ty::Int);
    let f = b.op(Op::ToFloat, i, NONE);
    b.set_slot(0, f);
    let t = b.finish(0).unwrap();
    assert_eq!(
        optimize(&t).unwrap_err(),
        OptError::TypeUnstable { slot: 0 }
    );
}

/// Malformed traces are rejected with a reason, not a panic.
#[test]
fn malformed_traces_are_rejected() {
    use kiln::jit::ir::{Inst, IrError, Trace, Ty, NONE};
    let mut t = Trace::default();
    t.insts.push(Inst::new(Op::AddI, Ty::Int, 5, NONE));
    assert_eq!(t.validate(), Err(IrError::BadRef { at: 0 }));
    let mut t = Trace::default();
    let mut k = Inst::new(Op::KFloat, Ty::Float, NONE, NONE);
    k.imm = 1;
    t.insts.push(k);
    t.insts.push(Inst::new(Op::AddI, Ty::Int, 0, 0));
    assert_eq!(t.validate(), Err(IrError::BadType { at: 1 }));
    let mut t = Trace::default();
    t.insts.push(Inst::new(Op::Lt, Ty::Void, NONE, NONE));
    assert!(t.validate().is_err());
}

/// A comparison guard's refund is a charge that fits an `i32`, and a refunding guard's snapshot
/// is its own: a shared one would refund at the other guard's exit too.
#[test]
fn refunding_guards_are_validated() {
    use kiln::jit::ir::{IrError, TraceBuilder, Ty};
    let build = |refund: i64, share: bool| {
        let mut b = TraceBuilder::new(0);
        let i = b.slot(0, Ty::Int);
        let k = b.kint(10);
        let s = b.snapshot();
        if share {
            b.fuel(3, s);
        }
        b.guard_refunding(Op::Lt, i, k, s, refund);
        b.finish(0)
    };
    assert!(build(3, false).is_ok());
    assert!(build(0, true).is_ok());
    assert!(matches!(
        build(-1, false),
        Err(IrError::BadImmediate { .. })
    ));
    assert!(matches!(
        build(1 << 40, false),
        Err(IrError::BadImmediate { .. })
    ));
    assert!(matches!(build(3, true), Err(IrError::BadSnapshot { .. })));
}

/// A slot that every exit sees holding something else (the iteration overwrites it before its
/// only guard) ends the iteration as a constant nothing reads: the optimiser removes the dead
/// constant and must not leave the tail naming it (it used to fail validation and abort).
#[test]
fn a_tail_value_no_exit_reads_does_not_break_the_trace() {
    use kiln::jit::ir::{TraceBuilder, Ty};
    let mut b = TraceBuilder::new(0);
    let i = b.slot(0, Ty::Int);
    let n = b.slot(1, Ty::Int);
    let f = b.slot(2, Ty::Float);
    let one = b.kint(1);
    let i2 = b.op(Op::AddI, i, one);
    b.set_slot(0, i2);
    b.set_slot(3, f);
    b.at_pc(5);
    b.guard(Op::Lt, i2, n);
    let k = b.kint(91);
    b.set_slot(3, k);
    let rec = b.finish(0).unwrap();
    let opt = optimize(&rec).expect("optimises");
    let layout = &LAYOUTS[1];
    let img = common::image(
        layout,
        &[
            common::V::I(0),
            common::V::I(10),
            common::V::F(2.5),
            common::V::I(0),
        ],
    );
    let (mut a, mut m) = (img.clone(), img);
    let ea = run(&rec, layout, &mut a, 1000).unwrap();
    let eb = run(&opt, layout, &mut m, 1000).unwrap();
    assert_eq!(ea.pc, 5);
    assert_eq!(eb.pc, 5);
    assert_eq!(a, m);
    assert_eq!(
        layout.read(&m, 3).unwrap(),
        (layout.float_tag, 2.5f64.to_bits())
    );
}
