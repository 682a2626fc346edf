//! Random loop traces: the optimiser must agree with the recorded trace, and native code with
//! the optimised trace, on exit pc/number, every slot byte and the fuel left (each iteration
//! charges fuel at its back edge; small budgets run out mid-loop).
#![cfg(feature = "jit")]
mod common;

use common::{image, LAYOUTS, V};
use kiln::jit::ir::{Op, Ref, Trace, TraceBuilder, Ty, NONE};
use kiln::jit::irinterp::run_metered;
use kiln::jit::opt::optimize;
use proptest::prelude::*;

/// Fuel each iteration charges.
const FUEL_COST: i64 = 7;
const INTS: u32 = 6;
const FLOATS: u32 = 6;

/// Slot 0 counts to slot 1; slots 2.. hold `INTS` ints then `FLOATS` floats. Each step of
/// `prog` reads, computes, writes or guards, steered by its bytes.
fn build(prog: &[(u8, u8, u8, i16)]) -> Trace {
    let mut b = TraceBuilder::new(0);
    let i = b.slot(0, Ty::Int);
    let n = b.slot(1, Ty::Int);
    b.at_pc(1);
    b.guard(Op::Lt, i, n);
    let int_slot = |x: u8| 2 + x as u32 % INTS;
    let float_slot = |x: u8| 2 + INTS + x as u32 % FLOATS;
    let mut ints: Vec<Ref> = vec![i];
    let mut floats: Vec<Ref> = Vec::new();
    for (pc, &(kind, x, y, k)) in prog.iter().enumerate() {
        b.at_pc(pc as u32 + 2);
        let pick_int = |b: &mut TraceBuilder, ints: &Vec<Ref>, z: u8| -> Ref {
            match z % 3 {
                0 => b.slot(int_slot(z / 3), Ty::Int),
                1 => ints[z as usize % ints.len()],
                _ => b.kint(k as i64 * if z & 64 != 0 { 1 << 40 } else { 1 }),
            }
        };
        let pick_float = |b: &mut TraceBuilder, floats: &Vec<Ref>, z: u8| -> Ref {
            match z % 3 {
                0 => b.slot(float_slot(z / 3), Ty::Float),
                1 if !floats.is_empty() => floats[z as usize % floats.len()],
                _ => b.kfloat(k as f64 / 8.0),
            }
        };
        match kind % 11 {
            0..=2 => {
                let op = [Op::AddI, Op::SubI, Op::MulI][kind as usize % 3];
                let (p, q) = (pick_int(&mut b, &ints, x), pick_int(&mut b, &ints, y));
                let r = b.op(op, p, q);
                ints.push(r);
                b.set_slot(int_slot(x ^ y), r);
            }
            3..=5 => {
                let op = [Op::AddF, Op::SubF, Op::MulF, Op::DivF][(kind as usize + x as usize) % 4];
                let (p, q) = (
                    pick_float(&mut b, &floats, x),
                    pick_float(&mut b, &floats, y),
                );
                let r = b.op(op, p, q);
                floats.push(r);
                b.set_slot(float_slot(x ^ y), r);
            }
            6 => {
                let p = pick_int(&mut b, &ints, x);
                let r = b.op(Op::ToFloat, p, NONE);
                floats.push(r);
            }
            7 => {
                // An int guard that fails now and then.
                let p = pick_int(&mut b, &ints, x);
                let q = b.kint(k as i64);
                let op = [Op::Ne, Op::Lt, Op::Gt, Op::Le, Op::Ge, Op::Eq, Op::ULt][y as usize % 7];
                let op = if op == Op::Eq || y & 1 == 0 {
                    Op::Ne
                } else {
                    op
                };
                b.guard(op, p, q);
            }
            8 => {
                // A float's bits as an int (used by int arithmetic and stored) and back (the
                // operands and result of a runtime call on floats). Only bits of floats the
                // trace computed go back: which of two NaN payloads a float op keeps is not
                // fixed across implementations, so arbitrary NaN bit patterns would compare
                // unequal where no program could tell.
                let p = pick_float(&mut b, &floats, x);
                let bits = b.op(Op::FBits, p, NONE);
                ints.push(bits);
                b.set_slot(int_slot(x), bits);
                let r = b.op(Op::BitsF, bits, NONE);
                floats.push(r);
                b.set_slot(float_slot(y), r);
            }
            9 => {
                // `sqrt` (NaN for negative operands).
                let p = pick_float(&mut b, &floats, x);
                let r = b.op(Op::SqrtF, p, NONE);
                floats.push(r);
                b.set_slot(float_slot(y), r);
            }
            10 => {
                // `int` of a float, behind the range guards the recorder emits.
                let p = pick_float(&mut b, &floats, x);
                let (lo, hi) = (
                    b.kfloat(-9.223_372_036_854_776e18),
                    b.kfloat(9.223_372_036_854_776e18),
                );
                b.guard(Op::Gt, p, lo);
                b.guard(Op::Lt, p, hi);
                let r = b.op(Op::ToInt, p, NONE);
                ints.push(r);
                b.set_slot(int_slot(y), r);
            }
            _ => {
                let p = pick_float(&mut b, &floats, x);
                let q = pick_float(&mut b, &floats, y);
                let op =
                    [Op::Ne, Op::Lt, Op::Gt, Op::Le, Op::Ge, Op::Eq][k.unsigned_abs() as usize % 6];
                b.guard(op, p, q);
            }
        }
    }
    // The back edge's fuel charge (resuming at the back edge itself when the budget is low).
    b.at_pc(998);
    let before = b.snapshot();
    b.fuel(FUEL_COST, before);
    b.at_pc(999);
    let one = b.kint(1);
    let i2 = b.op(Op::AddI, i, one);
    b.set_slot(0, i2);
    b.finish(0).unwrap()
}

fn start(n: i64, seed: &[i16]) -> Vec<V> {
    let mut v = vec![V::I(0), V::I(n)];
    v.extend((0..INTS).map(|j| V::I(seed[j as usize % seed.len()] as i64)));
    v.extend((0..FLOATS).map(|j| V::F(seed[(j + 3) as usize % seed.len()] as f64 * 0.37)));
    v
}

fn step() -> impl Strategy<Value = (u8, u8, u8, i16)> {
    (any::<u8>(), any::<u8>(), any::<u8>(), -50i16..50)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn optimiser_agrees_with_recorded_trace(
        prog in prop::collection::vec(step(), 1..40),
        n in 0i64..40,
        seed in prop::collection::vec(any::<i16>(), 1..8),
        l in 0usize..LAYOUTS.len(),
        budget in prop_oneof![0u64..300, Just(u64::MAX)],
    ) {
        let layout = &LAYOUTS[l];
        let rec = build(&prog);
        let opt = optimize(&rec).unwrap();
        let img = image(layout, &start(n, &seed));
        let (mut a, mut b) = (img.clone(), img.clone());
        let (mut fa, mut fb) = (budget, budget);
        let ea = run_metered(&rec, layout, &mut a, 10_000, &mut fa).unwrap();
        let eb = run_metered(&opt, layout, &mut b, 10_000, &mut fb).unwrap();
        prop_assert_eq!(ea.pc, eb.pc);
        prop_assert_eq!(a, b);
        prop_assert_eq!(fa, fb);
    }
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn native_code_agrees_with_optimised_trace(
        prog in prop::collection::vec(step(), 1..40),
        n in 0i64..40,
        seed in prop::collection::vec(any::<i16>(), 1..8),
        l in 0usize..LAYOUTS.len(),
        budget in prop_oneof![0u64..300, Just(u64::MAX)],
    ) {
        use kiln::jit::backend::{compile, Native};
        use kiln::jit::install::InstalledTrace;
        use kiln_std::exec::StdExecMemory;
        static MEM: StdExecMemory = StdExecMemory::new();
        let layout = &LAYOUTS[l];
        let c = compile::<Native>(&build(&prog), layout).unwrap();
        let img = image(layout, &start(n, &seed));
        let mut want = img.clone();
        let mut fuel_left = budget;
        let e = run_metered(&c.trace, layout, &mut want, 10_000, &mut fuel_left).unwrap();
        let t = InstalledTrace::install(&MEM, &c.code, 2 + INTS + FLOATS).unwrap();
        let mut got = img.clone();
        let mut frame = c.frame();
        frame.set_fuel(budget);
        // SAFETY: `got` holds all 2 + INTS + FLOATS slots in `layout`; the trace's own frame.
        let exit = unsafe { t.enter(got.as_mut_ptr(), frame.as_mut_ptr()) };
        // SAFETY: not running; installed from MEM.
        unsafe { t.release(&MEM) };
        prop_assert_eq!(exit, e.snap);
        prop_assert_eq!(frame.fuel(), fuel_left);
        prop_assert_eq!(c.restore(exit, &frame, &mut got), Ok(e.pc));
        prop_assert_eq!(got, want);
    }
}
