//! Native Rust baseline for `cargo xtask bench jit`: the same algorithm and output as
//! examples/tak.kl and bench/tak.lua. Built with `rustc -O` by the bench.
fn tak(x: i64, y: i64, z: i64) -> i64 {
    if y < x {
        return tak(tak(x - 1, y, z), tak(y - 1, z, x), tak(z - 1, x, y));
    }
    z
}

fn main() {
    let a: Vec<i64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let (x, y, z) = match a[..] {
        [x, y, z, ..] => (x, y, z),
        _ => (18, 12, 6),
    };
    println!("tak({x}, {y}, {z}) = {}", std::hint::black_box(tak(x, y, z)));
}
