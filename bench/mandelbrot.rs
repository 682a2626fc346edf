//! Native Rust baseline for `cargo xtask bench jit`: the same algorithm as
//! examples/mandelbrot.kl and bench/mandelbrot.lua. Built with `rustc -O` by the bench.
fn main() {
    let n: i64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let nf = n as f64;
    let mut count = 0u64;
    for y in 0..n {
        let ci = 2.0 * y as f64 / nf - 1.0;
        for x in 0..n {
            let cr = 2.0 * x as f64 / nf - 1.5;
            let (mut zr, mut zi) = (0.0f64, 0.0f64);
            let mut escaped = false;
            for _ in 0..50 {
                let (zr2, zi2) = (zr * zr, zi * zi);
                if zr2 + zi2 > 4.0 {
                    escaped = true;
                    break;
                }
                zi = 2.0 * zr * zi + ci;
                zr = zr2 - zi2 + cr;
            }
            if !escaped {
                count += 1;
            }
        }
    }
    println!("{count}");
}
