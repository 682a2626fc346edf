//! Snapshot tests: every `examples/NAME.kl` runs with the arguments in `examples/NAME.args`
//! (if present) and must print exactly `examples/NAME.out`. `KILN_UPDATE_SNAPSHOTS=1` rewrites
//! the `.out` files from the current output instead of comparing.
use std::path::PathBuf;

use kiln::vm::{run_source, VmConfig};

fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

fn run_example(name: &str) -> String {
    let dir = examples_dir();
    let src = std::fs::read_to_string(dir.join(format!("{name}.kl"))).expect("example source");
    let args = std::fs::read_to_string(dir.join(format!("{name}.args"))).unwrap_or_default();
    let args: Vec<&str> = args.split_whitespace().collect();
    let mut out = String::new();
    if let Err(e) = run_source(&src, &args, VmConfig::default(), &mut out) {
        panic!("{name}.kl failed: {e}");
    }
    out
}

fn check(name: &str) {
    let got = run_example(name);
    let path = examples_dir().join(format!("{name}.out"));
    if std::env::var_os("KILN_UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &got).expect("write snapshot");
        return;
    }
    let want = std::fs::read_to_string(&path).expect("expected output file next to the example");
    assert_eq!(
        got,
        want,
        "{name}.kl output differs from {}",
        path.display()
    );
}

#[test]
fn every_example_has_a_snapshot_test() {
    let mut names: Vec<String> = std::fs::read_dir(examples_dir())
        .expect("examples dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".kl").map(String::from))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "fib",
            "mandelbrot",
            "sieve",
            "spectral_norm",
            "strings",
            "tak"
        ]
    );
}

#[test]
fn mandelbrot() {
    check("mandelbrot");
}

#[test]
fn fib() {
    check("fib");
}

#[test]
fn sieve() {
    check("sieve");
}

#[test]
fn spectral_norm() {
    check("spectral_norm");
}

#[test]
fn strings() {
    check("strings");
}

#[test]
fn tak() {
    check("tak");
}
