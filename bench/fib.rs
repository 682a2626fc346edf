//! Native Rust baseline for `cargo xtask bench jit`: the same algorithm and output as
//! examples/fib.kl and bench/fib.lua. Built with `rustc -O` by the bench.
fn fib(n: i64) -> i64 {
    if n < 2 {
        return n;
    }
    fib(n - 1) + fib(n - 2)
}

fn main() {
    let n: i64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(27);
    println!("fib({n}) = {}", std::hint::black_box(fib(std::hint::black_box(n))));
}
