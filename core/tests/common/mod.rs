//! Hand-built traces and slot images shared by the IR and native JIT tests.
#![allow(dead_code)]

pub mod agree;
pub mod log;
pub mod vmstack;

use kiln::jit::ir::{HostFn, Op, Trace, TraceBuilder, Ty, NONE};
use kiln::jit::slots::SlotLayout;

/// A slot's value in a test image.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum V {
    I(i64),
    F(f64),
}

/// A slot image holding `vals`.
pub fn image(layout: &SlotLayout, vals: &[V]) -> Vec<u8> {
    let mut m = vec![0xAAu8; layout.size as usize * vals.len()];
    for (s, v) in vals.iter().enumerate() {
        let (tag, pay) = match *v {
            V::I(i) => (layout.int_tag, i as u64),
            V::F(f) => (layout.float_tag, f.to_bits()),
        };
        assert!(layout.write(&mut m, s as u32, tag, pay));
    }
    m
}

/// The layouts the tests run under: the example, the VM's (8-byte tag word at 0, payload at
/// 8, int 2, float 3), a 4-byte tag after the payload, an 8-byte tag with values too wide for
/// an immediate.
pub const LAYOUTS: [SlotLayout; 4] = [
    SlotLayout::EXAMPLE,
    SlotLayout {
        size: 16,
        tag_offset: 0,
        tag_size: 8,
        payload_offset: 8,
        int_tag: 2,
        float_tag: 3,
        bool_tag: 1,
        scalar_tags_max: Some(3),
    },
    SlotLayout {
        size: 16,
        tag_offset: 8,
        tag_size: 4,
        payload_offset: 0,
        int_tag: 7,
        float_tag: 0x8000_0001,
        bool_tag: 9,
        scalar_tags_max: None,
    },
    SlotLayout {
        size: 24,
        tag_offset: 16,
        tag_size: 8,
        payload_offset: 0,
        int_tag: 0xfff8_0000_0000_0001,
        float_tag: 0x7ff0_1234_5678_9abc,
        bool_tag: 0x7ff0_0000_0000_0002,
        scalar_tags_max: Some(0x7ff0_1234_5678_9abc),
    },
];

/// `while i < n { sum += i; i += 1 }` with i, sum, n in slots 0, 1, 2.
pub fn sum_loop() -> Trace {
    let mut b = TraceBuilder::new(0);
    let i = b.slot(0, Ty::Int);
    let n = b.slot(2, Ty::Int);
    b.at_pc(1);
    b.guard(Op::Lt, i, n);
    let s = b.slot(1, Ty::Int);
    let s2 = b.op(Op::AddI, s, i);
    b.set_slot(1, s2);
    let one = b.kint(1);
    let i2 = b.op(Op::AddI, i, one);
    b.set_slot(0, i2);
    b.finish(0).unwrap()
}

/// Mandelbrot inner loop: zr, zi, cr, ci (floats) in slots 0-3, iter and max (ints) in 4-5.
pub fn mandel() -> Trace {
    let mut b = TraceBuilder::new(0);
    let it = b.slot(4, Ty::Int);
    let mx = b.slot(5, Ty::Int);
    b.at_pc(1);
    b.guard(Op::Lt, it, mx);
    let zr = b.slot(0, Ty::Float);
    let zi = b.slot(1, Ty::Float);
    let cr = b.slot(2, Ty::Float);
    let ci = b.slot(3, Ty::Float);
    let zr2 = b.op(Op::MulF, zr, zr);
    let zi2 = b.op(Op::MulF, zi, zi);
    let mag = b.op(Op::AddF, zr2, zi2);
    let four = b.kfloat(4.0);
    b.at_pc(2);
    b.guard(Op::Le, mag, four);
    let two = b.kfloat(2.0);
    let t = b.op(Op::MulF, two, zr);
    let t = b.op(Op::MulF, t, zi);
    let nzi = b.op(Op::AddF, t, ci);
    let d = b.op(Op::SubF, zr2, zi2);
    let nzr = b.op(Op::AddF, d, cr);
    b.set_slot(0, nzr);
    b.set_slot(1, nzi);
    let one = b.kint(1);
    let it2 = b.op(Op::AddI, it, one);
    b.set_slot(4, it2);
    b.finish(0).unwrap()
}

/// Float guards that NaN passes: `x += step` while `i < n`, leaving when `x < lo` (`FNLt`) or
/// `hi <= x` (`FNLe`), never on NaN. Slots: 0 i, 1 n, 2 x, 3 lo, 4 step, 5 hi.
pub fn nan_passes() -> Trace {
    let mut b = TraceBuilder::new(0);
    let i = b.slot(0, Ty::Int);
    let n = b.slot(1, Ty::Int);
    b.at_pc(1);
    b.guard(Op::Lt, i, n);
    let x = b.slot(2, Ty::Float);
    let step = b.slot(4, Ty::Float);
    let x2 = b.op(Op::AddF, x, step);
    b.set_slot(2, x2);
    let lo = b.slot(3, Ty::Float);
    b.at_pc(2);
    b.guard(Op::FNLt, x2, lo);
    let hi = b.slot(5, Ty::Float);
    b.at_pc(3);
    b.guard(Op::FNLe, hi, x2);
    let one = b.kint(1);
    let i2 = b.op(Op::AddI, i, one);
    b.set_slot(0, i2);
    b.finish(0).unwrap()
}

/// A loop whose guard `i != stop` fails in the middle of an iteration, after the sum and a
/// float slot were updated: the exit must write back the half-done iteration.
/// Slots: 0 i, 1 sum, 2 n, 3 x (float), 4 stop.
pub fn mid_exit() -> Trace {
    let mut b = TraceBuilder::new(0);
    let i = b.slot(0, Ty::Int);
    let n = b.slot(2, Ty::Int);
    b.at_pc(1);
    b.guard(Op::Lt, i, n);
    let s = b.slot(1, Ty::Int);
    let s2 = b.op(Op::AddI, s, i);
    b.set_slot(1, s2);
    let x = b.slot(3, Ty::Float);
    let k = b.kfloat(1.5);
    let x2 = b.op(Op::MulF, x, k);
    b.set_slot(3, x2);
    let stop = b.slot(4, Ty::Int);
    b.at_pc(3);
    b.guard(Op::Ne, i, stop);
    let one = b.kint(1);
    let i2 = b.op(Op::AddI, i, one);
    b.set_slot(0, i2);
    b.finish(0).unwrap()
}

/// `while k > 0 { a, b = b, a + b; k -= 1 }`: a PHI cycle (a and b swap roles).
pub fn fib() -> Trace {
    let mut b = TraceBuilder::new(0);
    let k = b.slot(2, Ty::Int);
    let zero = b.kint(0);
    b.at_pc(1);
    b.guard(Op::Gt, k, zero);
    let x = b.slot(0, Ty::Int);
    let y = b.slot(1, Ty::Int);
    let s = b.op(Op::AddI, x, y);
    b.set_slot(0, y);
    b.set_slot(1, s);
    let one = b.kint(1);
    let k2 = b.op(Op::SubI, k, one);
    b.set_slot(2, k2);
    b.finish(0).unwrap()
}

/// `while i < n { acc += c * 3 + 7; i += 1 }`: `c * 3 + 7` is loop-invariant.
/// Slots: 0 i, 1 acc, 2 n, 3 c.
pub fn invariant() -> Trace {
    let mut b = TraceBuilder::new(0);
    let i = b.slot(0, Ty::Int);
    let n = b.slot(2, Ty::Int);
    b.at_pc(1);
    b.guard(Op::Lt, i, n);
    let c = b.slot(3, Ty::Int);
    let three = b.kint(3);
    let seven = b.kint(7);
    let t = b.op(Op::MulI, c, three);
    let t = b.op(Op::AddI, t, seven);
    let acc = b.slot(1, Ty::Int);
    let acc2 = b.op(Op::AddI, acc, t);
    b.set_slot(1, acc2);
    let one = b.kint(1);
    let i2 = b.op(Op::AddI, i, one);
    b.set_slot(0, i2);
    b.finish(0).unwrap()
}

/// Many values live around the loop at once (forces spills), slots 0..count:
/// slot 0 counts up to the bound in slot `count`; every other slot j adds j * slot j-1.
pub fn pressure(count: u32, float: bool) -> Trace {
    let mut b = TraceBuilder::new(0);
    let i = b.slot(0, Ty::Int);
    let n = b.slot(count, Ty::Int);
    b.at_pc(1);
    b.guard(Op::Lt, i, n);
    let ty = if float { Ty::Float } else { Ty::Int };
    let vals: Vec<_> = (1..count).map(|s| b.slot(s, ty)).collect();
    for (j, &v) in vals.iter().enumerate() {
        let prev = if j == 0 { v } else { vals[j - 1] };
        let (mul, add, k) = if float {
            (Op::MulF, Op::AddF, b.kfloat(0.5 + j as f64))
        } else {
            (Op::MulI, Op::AddI, b.kint(j as i64 + 1))
        };
        let t = b.op(mul, prev, k);
        let t = b.op(add, v, t);
        b.set_slot(j as u32 + 1, t);
    }
    let one = b.kint(1);
    let i2 = b.op(Op::AddI, i, one);
    b.set_slot(0, i2);
    b.finish(0).unwrap()
}

pub extern "C" fn host_mix(a: i64, b: i64) -> i64 {
    a.wrapping_mul(31).wrapping_add(b) ^ 0x55
}

/// A loop that calls a host function while ints and floats are live across the call.
/// Slots: 0 i, 1 acc, 2 n, 3 f (float), 4 c.
pub fn calls() -> Trace {
    let mut b = TraceBuilder::new(0);
    let i = b.slot(0, Ty::Int);
    let n = b.slot(2, Ty::Int);
    b.at_pc(1);
    b.guard(Op::Lt, i, n);
    let acc = b.slot(1, Ty::Int);
    let f = b.slot(3, Ty::Float);
    let c = b.slot(4, Ty::Int);
    let f2 = b.op(Op::AddF, f, f);
    let r = b.call(host_mix as HostFn, acc, i);
    let r = b.op(Op::AddI, r, c);
    let fi = b.op(Op::ToFloat, i, NONE);
    let f3 = b.op(Op::SubF, f2, fi);
    b.set_slot(1, r);
    b.set_slot(3, f3);
    let one = b.kint(1);
    let i2 = b.op(Op::AddI, i, one);
    b.set_slot(0, i2);
    b.finish(0).unwrap()
}

/// Slots far from the base (offsets past every load/store immediate) and constants that need
/// full 64-bit materialisation. Slots: 0 i, 1 n, `far` x (int), `far + 1` y (float).
pub fn far_and_wide(far: u32) -> Trace {
    let mut b = TraceBuilder::new(0);
    let i = b.slot(0, Ty::Int);
    let n = b.slot(1, Ty::Int);
    b.at_pc(1);
    b.guard(Op::Lt, i, n);
    let x = b.slot(far, Ty::Int);
    let y = b.slot(far + 1, Ty::Float);
    let wide = b.kint(0x1234_5678_9abc_def0);
    let neg = b.kint(-70_000);
    let small_neg = b.kint(-5);
    let t = b.op(Op::AddI, x, wide);
    let t = b.op(Op::SubI, t, neg);
    let t = b.op(Op::AddI, t, small_neg);
    let t = b.op(Op::MulI, t, neg);
    b.set_slot(far, t);
    let third = b.kfloat(1.0 / 3.0);
    let y2 = b.op(Op::MulF, y, third);
    let y2 = b.op(Op::AddF, y2, third);
    b.set_slot(far + 1, y2);
    let big = b.kint(i64::MIN + 1);
    b.at_pc(2);
    b.guard(Op::Ne, t, big);
    let one = b.kint(1);
    let i2 = b.op(Op::AddI, i, one);
    b.set_slot(0, i2);
    b.finish(0).unwrap()
}

/// The starting values for [`far_and_wide`].
pub fn far_image(far: u32) -> Vec<V> {
    let mut v = vec![V::I(0); far as usize + 2];
    v[1] = V::I(40);
    v[far as usize] = V::I(3);
    v[far as usize + 1] = V::F(2.5);
    v
}

/// Every sample trace with a few starting images (`layout` decides the bytes).
pub fn cases(layout: &SlotLayout) -> Vec<(&'static str, Trace, Vec<u8>)> {
    use V::*;
    let im = |v: &[V]| image(layout, v);
    let mut p = vec![I(0)];
    p.extend((1..20).map(|j| I(j as i64)));
    p.push(I(50));
    let mut pf = vec![I(0)];
    pf.extend((1..20).map(|j| F(j as f64 * 0.25)));
    pf.push(I(30));
    vec![
        ("sum", sum_loop(), im(&[I(0), I(0), I(1000)])),
        ("sum, no iterations", sum_loop(), im(&[I(5), I(9), I(5)])),
        (
            "sum, float i fails the type guard",
            sum_loop(),
            im(&[F(0.0), I(0), I(10)]),
        ),
        (
            "sum, float sum fails the type guard",
            sum_loop(),
            im(&[I(0), F(1.0), I(10)]),
        ),
        (
            "mandel, inside",
            mandel(),
            im(&[F(0.0), F(0.0), F(-0.5), F(0.1), I(0), I(200)]),
        ),
        (
            "mandel, escapes",
            mandel(),
            im(&[F(0.0), F(0.0), F(0.3), F(0.6), I(0), I(200)]),
        ),
        (
            "mandel, nan",
            mandel(),
            im(&[F(f64::NAN), F(0.0), F(0.3), F(0.6), I(0), I(200)]),
        ),
        (
            "mid exit",
            mid_exit(),
            im(&[I(0), I(0), I(100), F(1.0), I(7)]),
        ),
        (
            "mid exit, first iteration",
            mid_exit(),
            im(&[I(0), I(0), I(100), F(1.0), I(0)]),
        ),
        (
            "mid exit, runs out",
            mid_exit(),
            im(&[I(0), I(0), I(20), F(1.0), I(-1)]),
        ),
        (
            "nan passes, NaN runs to the count",
            nan_passes(),
            im(&[I(0), I(50), F(f64::NAN), F(0.0), F(1.0), F(10.0)]),
        ),
        (
            "nan passes, falls below lo",
            nan_passes(),
            im(&[I(0), I(50), F(5.0), F(0.0), F(-0.5), F(100.0)]),
        ),
        (
            "nan passes, reaches hi exactly",
            nan_passes(),
            im(&[I(0), I(50), F(0.0), F(-1.0), F(0.5), F(3.0)]),
        ),
        (
            "nan passes, infinite step becomes NaN",
            nan_passes(),
            im(&[
                I(0),
                I(50),
                F(f64::INFINITY),
                F(0.0),
                F(f64::NEG_INFINITY),
                F(1e308),
            ]),
        ),
        ("fib", fib(), im(&[I(0), I(1), I(90)])),
        ("invariant", invariant(), im(&[I(0), I(0), I(100), I(5)])),
        ("pressure int", pressure(20, false), im(&p)),
        ("pressure float", pressure(20, true), im(&pf)),
        ("calls", calls(), im(&[I(0), I(1), I(50), F(0.5), I(3)])),
        ("far and wide", far_and_wide(2100), im(&far_image(2100))),
    ]
}
