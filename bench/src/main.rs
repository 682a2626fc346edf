//! `kiln-bench`: the allocator benchmark harness behind `cargo xtask bench alloc`.
//!
//! Every allocator runs every workload through the same code (`&dyn GlobalAlloc`), in one
//! process, side by side; peak memory comes from one child process per (workload, allocator);
//! the C loop runs once per malloc under LD_PRELOAD. Output: the tables and kiln's ratios on
//! stdout, `alloc.json`, `alloc.svg` (throughput) and `alloc_peak.svg` in the output directory.
//!
//! Subcommands: `alloc` (the benchmark), `child` (one peak measurement, used by `alloc`),
//! `profile` (one run of a fixed op count without deadline, for callgrind), `check-json` (validates a JSON file; used by the `bench_smoke` test lane), and `jit-chart`
//! (draws `cargo xtask bench jit`'s JSON files into `jit.svg`), `vm-chart` (draws
//! `cargo xtask bench vm`'s `vm.json` into an SVG).
mod allocators;
mod arena;
mod bump;
mod chart;
mod jit_chart;
mod measure;
mod plot;
mod preload;
mod report;
mod vm_chart;
mod workloads;

use clap::{Args, Parser, Subcommand};
use measure::Settings;
use report::Row;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser)]
#[command(about = "kiln's allocator benchmark harness")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the benchmark: tables, ratios, JSON and SVG.
    Alloc(AllocArgs),
    /// Measure one pair's peak memory (run by `alloc` in a child process).
    Child {
        #[arg(long)]
        alloc: String,
        #[arg(long)]
        bench: String,
        #[arg(long)]
        quick: bool,
    },
    /// Run one workload once on one allocator for exactly `--ops` ops, with no time limit, and
    /// print the ops: for instruction and cache-miss counts under callgrind or `perf stat`
    /// (`valgrind --tool=callgrind kiln-bench profile ...`), never for timing.
    Profile {
        #[arg(long)]
        alloc: String,
        #[arg(long)]
        bench: String,
        #[arg(long, default_value_t = 1_000_000)]
        ops: u64,
    },
    /// Check that a JSON file written by `alloc` is well-formed.
    CheckJson {
        file: PathBuf,
        /// Allocators that must have rows (comma-separated).
        #[arg(long, value_delimiter = ',')]
        alloc: Vec<String>,
        /// Workloads that must have rows (comma-separated).
        #[arg(long, value_delimiter = ',')]
        bench: Vec<String>,
    },
    /// Draw DIR/jit.svg from the JIT benchmark's DIR/jit.json and DIR/jit_*.json.
    JitChart {
        /// Where `cargo xtask bench jit` wrote its JSON.
        #[arg(long, default_value = "target/bench")]
        out: PathBuf,
    },
    /// Draw the VM suite's chart from `cargo xtask bench vm`'s JSON.
    VmChart {
        /// The JSON written by `cargo xtask bench vm`.
        #[arg(long, default_value = "target/bench/vm.json")]
        json: PathBuf,
        /// Where the SVG goes.
        #[arg(long, default_value = "target/bench/vm.svg")]
        svg: PathBuf,
    },
}

#[derive(Args)]
struct AllocArgs {
    /// Few ops and runs: a smoke test, not a measurement.
    #[arg(long)]
    quick: bool,
    /// Only workloads whose name starts with one of these (comma-separated; e.g. `random-mixed`
    /// picks all three random-mixed sizes, `c-` the LD_PRELOAD rows).
    #[arg(long, value_delimiter = ',')]
    bench: Vec<String>,
    /// Only these allocators (comma-separated, exact names).
    #[arg(long, value_delimiter = ',')]
    alloc: Vec<String>,
    /// Timed runs per pair (default 3).
    #[arg(long)]
    runs: Option<usize>,
    /// Where alloc.json and the SVGs go.
    #[arg(long, default_value = "target/bench")]
    out: PathBuf,
    /// The C random-mixed loop (built from bench/c/random_mixed.c); without it no LD_PRELOAD rows.
    #[arg(long)]
    c_bin: Option<PathBuf>,
    /// The classic multi-threaded C workloads (built from bench/c/classic.c); without it the
    /// `c-` rows other than random-mixed fail.
    #[arg(long)]
    c_classic_bin: Option<PathBuf>,
    /// kiln's LD_PRELOAD library (target/release/libkiln.so).
    #[arg(long)]
    kiln_preload: Option<PathBuf>,
}

fn main() -> ExitCode {
    let result = match Cli::parse().cmd {
        Cmd::Alloc(args) => run_alloc(args),
        Cmd::Child {
            alloc,
            bench,
            quick,
        } => {
            let s = if quick {
                Settings::QUICK
            } else {
                Settings::FULL
            };
            measure::child_peak(&alloc, &bench, &s).map(|kib| println!("peak_kib {kib}"))
        }
        Cmd::Profile { alloc, bench, ops } => measure::profile(&alloc, &bench, ops)
            .map(|o| println!("{bench}/{alloc}: ops {}", o.ops)),
        Cmd::CheckJson { file, alloc, bench } => report::check_json(&file, &alloc, &bench)
            .map(|rows| println!("{}: {} well-formed rows", file.display(), rows.len())),
        Cmd::JitChart { out } => jit_chart::run(&out),
        Cmd::VmChart { json, svg } => vm_chart::run(&json, &svg),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kiln-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn selected_allocs(args: &AllocArgs) -> Result<Vec<&'static allocators::Spec>, String> {
    for a in &args.alloc {
        let known = allocators::by_name(a).is_some()
            || ["tcmalloc"].contains(&a.as_str())
            || bump::ALLOCATORS.contains(&a.as_str());
        if !known {
            let names: Vec<_> = allocators::ALL.iter().map(|s| s.name).collect();
            return Err(format!(
                "unknown allocator `{a}`; known: {}, tcmalloc",
                names.join(", ")
            ));
        }
    }
    Ok(allocators::ALL
        .iter()
        .filter(|s| args.alloc.is_empty() || args.alloc.iter().any(|a| a == s.name))
        .collect())
}

fn bench_wanted(args: &AllocArgs, name: &str) -> bool {
    args.bench.is_empty() || args.bench.iter().any(|b| name.starts_with(b.as_str()))
}

fn run_alloc(args: AllocArgs) -> Result<(), String> {
    let started = Instant::now();
    let mut settings = if args.quick {
        Settings::QUICK
    } else {
        Settings::FULL
    };
    if let Some(runs) = args.runs {
        settings.runs = runs.max(1);
    }
    let allocs = selected_allocs(&args)?;
    let benches: Vec<_> = workloads::ALL
        .iter()
        .filter(|w| bench_wanted(&args, w.name))
        .collect();
    let c_benches: Vec<_> = preload::WORKLOADS
        .iter()
        .filter(|(name, _, _)| bench_wanted(&args, name))
        .collect();
    let want_bump = bench_wanted(&args, bump::NAME)
        && (args.alloc.is_empty()
            || bump::ALLOCATORS
                .iter()
                .any(|a| args.alloc.iter().any(|x| x == a)));
    if benches.is_empty() && c_benches.is_empty() && !want_bump {
        return Err(format!("no workload matches {:?}", args.bench));
    }
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    if want_bump {
        bump::report(&settings, &args.alloc, &args.out)?;
        if benches.is_empty() && c_benches.is_empty() {
            return Ok(());
        }
    }

    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for w in &benches {
        rows.extend(bench_in_process(w, &allocs, &settings, args.quick));
    }
    if !c_benches.is_empty() {
        match &args.c_bin {
            None => notes.push("LD_PRELOAD rows: skipped, no --c-bin given".to_string()),
            Some(c_bin) => {
                let (mallocs, skipped) = preload::mallocs(args.kiln_preload.as_deref());
                notes.extend(skipped);
                let mallocs: Vec<_> = mallocs
                    .into_iter()
                    .filter(|m| args.alloc.is_empty() || args.alloc.iter().any(|a| a == m.name))
                    .collect();
                let progs = preload::Programs {
                    random_mixed: c_bin.clone(),
                    classic: args.c_classic_bin.clone(),
                };
                for (name, program, ops) in &c_benches {
                    let ops = (ops / settings.divisor).max(1000);
                    rows.extend(bench_preload(
                        &progs, name, *program, ops, &mallocs, &settings,
                    ));
                }
            }
        }
    }

    let json = args.out.join("alloc.json");
    report::write_json(&rows, &json)?;
    chart::draw(
        &rows,
        chart::Metric::Throughput,
        &args.out.join("alloc.svg"),
    )?;
    chart::draw(&rows, chart::Metric::Peak, &args.out.join("alloc_peak.svg"))?;

    println!();
    println!("{}", report::tables(&rows));
    let full_ops = |b: &str| {
        workloads::by_name(b)
            .map(|w| settings.budget(w).ops)
            .or_else(|| preload::full_ops(b).map(|o| (o / settings.divisor).max(1000)))
    };
    let cut = report::notes(&rows, &full_ops);
    if !cut.is_empty() || !notes.is_empty() {
        println!("Notes:\n");
        print!("{cut}");
        for n in &notes {
            println!("- {n}");
        }
        println!();
    }
    println!("{}", report::ratios(&rows));
    println!("{}", report::target_report(&rows));
    println!(
        "Wrote {}, alloc.svg and alloc_peak.svg in {} ({} rows, {:.0} s wall, {:.0} s CPU{}).",
        json.display(),
        args.out.display(),
        rows.len(),
        started.elapsed().as_secs_f64(),
        cpu_seconds(),
        if args.quick {
            ", --quick: not a measurement"
        } else {
            ""
        }
    );
    Ok(())
}

/// CPU time (user + system) of this process and its finished children, in seconds: the wall
/// time on an idle machine is about this much over the cores the workloads use.
fn cpu_seconds() -> f64 {
    let secs = |who| {
        // SAFETY: an all-zero rusage is a valid value for getrusage to overwrite.
        let mut u: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `u` is a valid, writable rusage.
        if unsafe { libc::getrusage(who, &mut u) } != 0 {
            return 0.0;
        }
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
        tv(u.ru_utime) + tv(u.ru_stime)
    };
    secs(libc::RUSAGE_SELF) + secs(libc::RUSAGE_CHILDREN)
}

/// One workload for every allocator: timed runs round-robin, then one peak child each.
fn bench_in_process(
    w: &workloads::Workload,
    allocs: &[&allocators::Spec],
    s: &Settings,
    quick: bool,
) -> Vec<Row> {
    eprint!("{:<22}", w.name);
    let mut outcomes = vec![Vec::new(); allocs.len()];
    let mut errors: Vec<Option<String>> = vec![None; allocs.len()];
    for _ in 0..s.runs {
        for (i, spec) in allocs.iter().enumerate() {
            if errors[i].is_some() {
                continue;
            }
            match measure::timed_run(spec, w, s) {
                Ok(o) => outcomes[i].push(o),
                Err(e) => errors[i] = Some(e),
            }
        }
        eprint!(".");
    }
    let rows = allocs
        .iter()
        .zip(outcomes)
        .zip(errors)
        .map(|((spec, runs), error)| {
            let peak = match &error {
                Some(_) => Err(String::new()),
                None => measure::spawn_peak(spec.name, w.name, quick),
            };
            eprint!("+");
            row(w.name, spec.name, &runs, error, peak)
        })
        .collect();
    eprintln!();
    rows
}

/// A C workload under every malloc: runs round-robin, each run its own process.
fn bench_preload(
    progs: &preload::Programs,
    name: &str,
    program: preload::Program,
    ops: u64,
    mallocs: &[preload::Malloc],
    s: &Settings,
) -> Vec<Row> {
    eprint!("{name:<22}");
    let mut outcomes = vec![Vec::new(); mallocs.len()];
    let mut peaks = vec![Vec::new(); mallocs.len()];
    let mut errors: Vec<Option<String>> = vec![None; mallocs.len()];
    for _ in 0..s.runs {
        for (i, m) in mallocs.iter().enumerate() {
            if errors[i].is_some() {
                continue;
            }
            match preload::run(progs, name, program, m, ops) {
                Ok((o, peak)) => {
                    outcomes[i].push(o);
                    peaks[i].push(peak);
                }
                Err(e) => errors[i] = Some(e),
            }
        }
        eprint!(".");
    }
    eprintln!();
    mallocs
        .iter()
        .enumerate()
        .map(|(i, m)| {
            peaks[i].sort_unstable();
            let peak = peaks[i]
                .get(peaks[i].len() / 2)
                .copied()
                .ok_or_else(String::new);
            row(name, m.name, &outcomes[i], errors[i].take(), peak)
        })
        .collect()
}

fn row(
    bench: &str,
    alloc: &str,
    runs: &[workloads::Outcome],
    error: Option<String>,
    peak: Result<u64, String>,
) -> Row {
    let med = measure::median(runs);
    let error = error.or_else(|| peak.as_ref().err().cloned());
    let ok = error.is_none();
    let rate = |f: fn(f64, f64) -> f64| {
        runs.iter()
            .map(|o| o.ops_per_sec())
            .reduce(f)
            .filter(|_| ok)
    };
    Row {
        bench: bench.into(),
        allocator: alloc.into(),
        ops_per_sec: med.filter(|_| ok).map(|o| o.ops_per_sec()),
        peak_kib: peak.ok(),
        timed_ops: med.map_or(0, |o| o.ops),
        runs: runs.len(),
        min_ops_per_sec: rate(f64::min),
        max_ops_per_sec: rate(f64::max),
        error,
    }
}
