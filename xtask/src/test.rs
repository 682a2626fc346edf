//! `cargo xtask test`: every test of the project, lane by lane.
//!
//! `cargo xtask test` runs all lanes in order; `cargo xtask test LANE...` runs only those.
use crate::util::{cargo, run as sh};

type LaneFn = fn() -> Result<(), String>;

/// The lanes, in the order they run. Later work adds its lanes here.
const LANES: &[(&str, LaneFn)] = &[
    ("fmt", fmt),
    ("clippy", clippy),
    ("doc", doc),
    ("host", host),
    ("no_std", no_std),
    ("vm", crate::vm::lane),
    ("aarch64", crate::aarch64::lane),
    ("preload", crate::preload::lane),
    ("bench_smoke", bench_smoke),
    ("qemu", crate::qemu::lane),
    ("mcu", crate::mcu::lane),
];

pub fn lane_names() -> Vec<&'static str> {
    LANES.iter().map(|(n, _)| *n).collect()
}

pub fn run(wanted: &[String]) -> Result<(), String> {
    for w in wanted {
        if !LANES.iter().any(|(n, _)| n == w) {
            return Err(format!(
                "unknown lane `{w}`; lanes: {}",
                lane_names().join(", ")
            ));
        }
    }
    let start = std::time::Instant::now();
    for (name, lane) in LANES {
        if !wanted.is_empty() && !wanted.iter().any(|w| w == name) {
            continue;
        }
        eprintln!("=== lane {name} ===");
        let t = std::time::Instant::now();
        lane().map_err(|e| format!("lane {name}: {e}"))?;
        eprintln!(
            "=== lane {name} passed in {:.1}s ===",
            t.elapsed().as_secs_f64()
        );
    }
    eprintln!("all lanes passed in {:.1}s", start.elapsed().as_secs_f64());
    Ok(())
}

fn fmt() -> Result<(), String> {
    sh(cargo(&["fmt", "--all", "--check"]))
}

fn clippy() -> Result<(), String> {
    sh(cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--all-features",
        "--",
        "-D",
        "warnings",
    ]))
}

/// The API docs build with every rustdoc warning denied (broken or private intra-doc links,
/// bare URLs, missing docs, ...), and every doctest passes.
fn doc() -> Result<(), String> {
    let rustdoc = |args: &[&str], flags: &str| {
        let mut c = cargo(args);
        c.env("RUSTDOCFLAGS", flags);
        sh(c)
    };
    // kiln-std first: its `kiln` binary documents into the same directory as the kiln crate,
    // which the last run below then leaves as the library's default-features docs.
    rustdoc(&["doc", "-p", "kiln-std", "--no-deps"], "-D warnings")?;
    // Without the `jit` feature the links into `jit` cannot resolve; every other warning counts.
    rustdoc(
        &[
            "doc",
            "-p",
            "kiln",
            "--no-deps",
            "--no-default-features",
            "--features",
            "vm,stats",
        ],
        "-D warnings -A rustdoc::broken-intra-doc-links",
    )?;
    rustdoc(
        &["doc", "-p", "kiln", "--no-deps", "--all-features"],
        "-D warnings",
    )?;
    rustdoc(&["doc", "-p", "kiln", "--no-deps"], "-D warnings")?;
    sh(cargo(&["test", "--doc", "-p", "kiln", "-p", "kiln-std"]))
}

fn host() -> Result<(), String> {
    // kiln-bench (jemalloc, mimalloc, ...) is tested in the bench_smoke lane, in release.
    sh(cargo(&[
        "test",
        "--workspace",
        "--all-features",
        "--exclude",
        "kiln-bench",
    ]))?;
    // The allocator with `stats` off (the default) must build and pass on its own too.
    sh(cargo(&[
        "test", "-p", "kiln", "-p", "kiln-std", "--lib", "--tests",
    ]))
}

/// The benchmarks' smoke runs: the allocator bench and the VM suite, `--quick`.
fn bench_smoke() -> Result<(), String> {
    crate::bench_alloc::smoke()?;
    crate::bench_vm::smoke()
}

/// The core must stay `no_std`: build it for both bare-metal targets with every feature, for
/// the 32-bit targets without the JIT (in both geometries), and check that an allocator-only
/// build compiles no proc macro.
fn no_std() -> Result<(), String> {
    for target in ["thumbv7em-none-eabihf", "riscv32imac-unknown-none-elf"] {
        for features in ["vm,stats", "vm,stats,small-geometry"] {
            sh(cargo(&[
                "build",
                "-p",
                "kiln",
                "--no-default-features",
                "--features",
                features,
                "--target",
                target,
            ]))?;
        }
    }
    let tree = cargo(&[
        "tree",
        "-p",
        "kiln",
        "--no-default-features",
        "--target",
        "x86_64-unknown-none",
        "-e",
        "normal,build",
        "--prefix",
        "none",
    ])
    .output()
    .map_err(|e| format!("cargo tree: {e}"))?;
    let deps = String::from_utf8_lossy(&tree.stdout);
    if !tree.status.success()
        || deps
            .lines()
            .any(|l| l.starts_with("dynasm") || l.starts_with("syn "))
    {
        return Err(format!(
            "the allocator-only build pulls a proc macro:\n{deps}"
        ));
    }
    for target in ["x86_64-unknown-none", "aarch64-unknown-none"] {
        sh(cargo(&["build", "-p", "kiln", "--target", target]))?;
        sh(cargo(&[
            "build",
            "-p",
            "kiln",
            "--all-features",
            "--target",
            target,
        ]))?;
    }
    Ok(())
}
