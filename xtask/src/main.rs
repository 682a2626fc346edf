//! `cargo xtask test | bench | qemu`: the project's task runner.
//!
//! Each lane of `test` lives in the module that owns it; `main` only dispatches.
mod aarch64;
mod preload;
mod test;
mod util;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = match args.split_first() {
        Some((cmd, rest)) => (cmd.as_str(), rest),
        None => ("help", &[][..]),
    };
    let result = match cmd {
        "test" => test::run(rest),
        "help" | "--help" | "-h" => {
            println!("usage: cargo xtask <test [LANE...]>");
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
