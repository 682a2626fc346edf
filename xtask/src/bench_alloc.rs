//! `cargo xtask bench alloc [--quick] [--bench NAME,..] [--alloc NAME,..] [--runs N]` and the
//! `bench_smoke` test lane.
//!
//! This side only prepares: it installs the Debian mallocs the LD_PRELOAD rows need, builds the
//! harness (`kiln-bench`, release + LTO), the C programs (`bench/c/random_mixed.c`,
//! `bench/c/classic.c`) and, when the workspace has it, kiln's `libkiln.so`; then it hands over to `kiln-bench alloc`, which
//! measures and writes `target/bench/alloc.json`, `alloc.svg` and `alloc_peak.svg`.
use crate::util::{cargo, ensure_debian_packages, root, run};
use std::path::PathBuf;
use std::process::Command;

/// The Debian packages of the LD_PRELOAD peers (mimalloc, jemalloc, tcmalloc).
const PRELOAD_PACKAGES: &[&str] = &["libmimalloc2.0", "libjemalloc2", "libtcmalloc-minimal4"];

/// `cargo xtask bench alloc ...`.
pub fn run_bench(args: &[String]) -> Result<(), String> {
    let wants_c = wants_c_rows(args);
    if wants_c {
        ensure_debian_packages(PRELOAD_PACKAGES)?;
    }
    let bench = build_harness()?;
    let mut cmd = Command::new(bench);
    cmd.arg("alloc").args(args).current_dir(root());
    cmd.arg("--out").arg(out_dir());
    if wants_c {
        cmd.arg("--c-bin")
            .arg(build_c("random_mixed.c", "c-random-mixed")?);
        cmd.arg("--c-classic-bin")
            .arg(build_c("classic.c", "c-classic")?);
        if let Some(lib) = build_kiln_preload()? {
            cmd.arg("--kiln-preload").arg(lib);
        }
    }
    run(cmd)
}

/// Whether the selection includes LD_PRELOAD rows (`c-*`; `--bench` selects workloads by name
/// prefix, as in `kiln-bench`).
fn wants_c_rows(args: &[String]) -> bool {
    let mut benches = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--bench" {
            benches.extend(it.next().into_iter().flat_map(|v| v.split(',')));
        } else if let Some(v) = a.strip_prefix("--bench=") {
            benches.extend(v.split(','));
        }
    }
    benches.is_empty()
        || benches
            .iter()
            .any(|b| "c-".starts_with(b) || b.starts_with("c-"))
}

fn out_dir() -> PathBuf {
    root().join("target").join("bench")
}

pub(crate) fn build_harness() -> Result<PathBuf, String> {
    run(cargo(&["build", "--release", "-p", "kiln-bench"]))?;
    Ok(root().join("target/release/kiln-bench"))
}

/// Compiles `bench/c/<source>` into `target/bench/<bin>`.
fn build_c(source: &str, bin: &str) -> Result<PathBuf, String> {
    let out = out_dir();
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let bin = out.join(bin);
    let mut cc = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()));
    cc.args([
        "-O2", "-std=c11", "-pthread", "-Wall", "-Wextra", "-Werror", "-o",
    ])
    .arg(&bin)
    .arg(root().join("bench/c").join(source));
    run(cc)?;
    Ok(bin)
}

/// Builds `libkiln.so` if the workspace has the `kiln-preload` crate yet; `None` otherwise (the
/// harness then prints that kiln's LD_PRELOAD row was skipped).
fn build_kiln_preload() -> Result<Option<PathBuf>, String> {
    if !root().join("platform/preload/Cargo.toml").exists() {
        eprintln!("xtask: platform/preload is not in this tree: libkiln.so not built");
        return Ok(None);
    }
    run(cargo(&["build", "--release", "-p", "kiln-preload"]))?;
    Ok(Some(root().join("target/release/libkiln.so")))
}

/// Allocators and workloads of the smoke lane.
const SMOKE_ALLOCS: &str = "kiln,glibc";
const SMOKE_BENCHES: &str = "random-mixed-400,realloc-churn";

/// Lane `bench_smoke`: `--quick` on two allocators and two workloads, then the JSON must be
/// written anew and well-formed with a row for each of them.
pub fn smoke() -> Result<(), String> {
    let json = out_dir().join("alloc.json");
    if json.exists() {
        std::fs::remove_file(&json)
            .map_err(|e| format!("cannot remove {}: {e}", json.display()))?;
    }
    let args: Vec<String> = ["--quick", "--alloc", SMOKE_ALLOCS, "--bench", SMOKE_BENCHES]
        .map(String::from)
        .to_vec();
    run_bench(&args)?;
    let mut check = Command::new(root().join("target/release/kiln-bench"));
    check
        .arg("check-json")
        .arg(&json)
        .args(["--alloc", SMOKE_ALLOCS, "--bench", SMOKE_BENCHES]);
    run(check)?;
    for svg in ["alloc.svg", "alloc_peak.svg"] {
        let path = out_dir().join(svg);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if !text.contains("<svg") || !text.contains("random-mixed-400") {
            return Err(format!("{} is not the chart of the run", path.display()));
        }
    }
    // The harness's own tests (every workload on every allocator), in the release build the
    // smoke run just made, so the host lane need not build jemalloc and friends in debug.
    run(cargo(&["test", "--release", "-p", "kiln-bench"]))
}
