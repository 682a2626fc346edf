//! `cargo xtask test | bench | qemu | surface`: the project's task runner.
//!
//! Each lane of `test` lives in the module that owns it; `main` only dispatches.
mod aarch64;
mod bench_alloc;
mod bench_jit;
mod bench_vm;
mod mcu;
mod preload;
mod qemu;
mod rusage;
mod surface;
mod test;
mod util;
mod vm;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = match args.split_first() {
        Some((cmd, rest)) => (cmd.as_str(), rest),
        None => ("help", &[][..]),
    };
    let result = match cmd {
        "test" => test::run(rest),
        "qemu" => qemu::run_cmd(rest),
        "bench" => bench(rest),
        "surface" => surface::run(rest),
        "help" | "--help" | "-h" => {
            println!(
                "usage: cargo xtask <test [LANE...] | qemu [KERNEL...] | bench alloc|jit|vm [...] | surface [--no-doc]>"
            );
            println!("lanes: {}", test::lane_names().join(", "));
            Ok(())
        }
        other => Err(format!(
            "unknown command `{other}` (try `cargo xtask help`)"
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `cargo xtask bench WHAT [ARGS]`: each benchmark lives in its own file.
fn bench(rest: &[String]) -> Result<(), String> {
    let args: Vec<&str> = rest.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["jit", more @ ..] => bench_jit::run(more),
        ["vm", more @ ..] => bench_vm::run(more),
        ["alloc", ..] => bench_alloc::run_bench(&rest[1..]),
        _ => Err("usage: cargo xtask bench <alloc|jit|vm> (see xtask/src/bench_*.rs)".into()),
    }
}
