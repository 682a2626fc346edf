//! Measures how long the JIT takes to optimise, allocate and assemble sample traces, for both
//! backends: `cargo run --release -p kiln --example jit_compile_time [NAME [RUNS]]` (only the
//! trace NAME, RUNS compilations each: `long-400 1` under callgrind counts the instructions of
//! one compilation per backend).
use std::time::Instant;

use kiln::jit::backend::aarch64::A64;
use kiln::jit::backend::x86_64::X64;
use kiln::jit::backend::{compile, Backend};
use kiln::jit::ir::{Op, Trace, TraceBuilder, Ty};
use kiln::jit::slots::SlotLayout;

fn mandel() -> Trace {
    let mut b = TraceBuilder::new(0);
    let it = b.slot(4, Ty::Int);
    let mx = b.slot(5, Ty::Int);
    b.guard(Op::Lt, it, mx);
    let zr = b.slot(0, Ty::Float);
    let zi = b.slot(1, Ty::Float);
    let cr = b.slot(2, Ty::Float);
    let ci = b.slot(3, Ty::Float);
    let zr2 = b.op(Op::MulF, zr, zr);
    let zi2 = b.op(Op::MulF, zi, zi);
    let mag = b.op(Op::AddF, zr2, zi2);
    let four = b.kfloat(4.0);
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

/// A long trace: `count` slots updated from their neighbours (register pressure, spills).
fn long(count: u32) -> Trace {
    let mut b = TraceBuilder::new(0);
    let i = b.slot(0, Ty::Int);
    let n = b.slot(count, Ty::Int);
    b.guard(Op::Lt, i, n);
    let vals: Vec<_> = (1..count).map(|s| b.slot(s, Ty::Int)).collect();
    for (j, &v) in vals.iter().enumerate() {
        let prev = vals[j.saturating_sub(1)];
        let k = b.kint(j as i64 + 1);
        let t = b.op(Op::MulI, prev, k);
        let t = b.op(Op::AddI, v, t);
        b.guard(Op::Ne, t, k);
        b.set_slot(j as u32 + 1, t);
    }
    let one = b.kint(1);
    let i2 = b.op(Op::AddI, i, one);
    b.set_slot(0, i2);
    b.finish(0).unwrap()
}

fn measure<B: Backend>(arch: &str, name: &str, t: &Trace, runs: usize) {
    let layout = SlotLayout::EXAMPLE;
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let s = Instant::now();
            let c = compile::<B>(t, &layout).unwrap();
            std::hint::black_box(&c);
            s.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    times.sort_by(|a, b| a.total_cmp(b));
    let size = compile::<B>(t, &layout).unwrap().code.len();
    println!(
        "{arch:8} {name:12} {:4} IR insts  {size:6} bytes  median {:8.1} us  min {:8.1} us",
        t.insts.len(),
        times[runs / 2],
        times[0]
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let only = args.first();
    let runs = args.get(1).and_then(|r| r.parse().ok()).unwrap_or(200);
    for (name, t) in [
        ("mandel", mandel()),
        ("long-64", long(64)),
        ("long-400", long(400)),
    ] {
        if only.is_some_and(|o| o != name) {
            continue;
        }
        measure::<X64>("x86_64", name, &t, runs);
        measure::<A64>("aarch64", name, &t, runs);
    }
}
