//! `cargo xtask bench jit`: kiln's interpreter and tracing JIT against Lua 5.4, LuaJIT (interpreter and JIT)
//! and native Rust on the same algorithm, side by side in one run.
//!
//! Workloads ([`WORKLOADS`]; `cargo xtask bench jit NAME..` runs a subset): mandelbrot,
//! N = 2000 (loops), and the call-heavy fib, N = 32, and tak, 26 18 9 (the function JIT), each
//! as `examples/NAME.kl`, `bench/NAME.lua`, `bench/NAME.rs`. Every engine runs
//! `KILN_BENCH_RUNS` times (default 5), round-robin so machine load hits all engines alike; all
//! must print the same output. Reported: median wall time and median CPU time (user + sys of
//! the child, from `getrusage`), and each engine's speed relative to the kiln interpreter.
//! Writes `target/bench/jit.json` (mandelbrot) and `target/bench/jit_NAME.json` (the others).
//! `KILN_BENCH_BASELINE=path/to/kiln` adds that binary's JIT as one more engine (a build from
//! before a change, measured in the same rounds).
//!
//! Each workload's report ends with kiln's JIT targets, from median CPU times: JIT at least 8x
//! faster than the interpreter, JIT time <= 1.2x native Rust's, and (mandelbrot) <= 1.0x
//! LuaJIT's; the ratios go into the JSON as `targets`. The JIT's compile time per trace is
//! measured once per run ([`compile_time`]) and stored as `compile_time` in every file. At the
//! end `kiln-bench jit-chart` draws every `target/bench/jit*.json` into `target/bench/jit.svg`.
mod compile_time;
mod targets;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::rusage::children_cpu_seconds;
use crate::util::{root, run as sh};

/// One program, in kiln, Lua and Rust, with its arguments.
struct Workload {
    name: &'static str,
    args: &'static [&'static str],
}

/// Every workload, in the order they run.
const WORKLOADS: &[Workload] = &[
    Workload {
        name: "mandelbrot",
        args: &["2000"],
    },
    Workload {
        name: "fib",
        args: &["32"],
    },
    Workload {
        name: "tak",
        args: &["26", "18", "9"],
    },
];

struct Engine {
    name: &'static str,
    cmd: Vec<String>,
    wall: Vec<f64>,
    cpu: Vec<f64>,
}

pub fn run(args: &[&str]) -> Result<(), String> {
    if let Some(bad) = args
        .iter()
        .find(|a| !WORKLOADS.iter().any(|w| w.name == **a))
    {
        let names: Vec<&str> = WORKLOADS.iter().map(|w| w.name).collect();
        return Err(format!(
            "bench jit: unknown workload {bad:?} (have {names:?})"
        ));
    }
    crate::util::ensure_debian_packages(&["lua5.4", "luajit"])?;
    let kiln = crate::vm::build_kiln()?;
    let compile = compile_time::measure()?;
    for w in WORKLOADS {
        if args.is_empty() || args.contains(&w.name) {
            run_workload(w, &kiln, &compile)?;
        }
    }
    compile.print();
    draw_chart()
}

/// Builds the harness and has it draw `target/bench/jit.svg` from the JSON files.
fn draw_chart() -> Result<(), String> {
    sh(crate::util::cargo(&[
        "build",
        "--release",
        "-p",
        "kiln-bench",
    ]))?;
    let mut chart = Command::new(root().join("target/release/kiln-bench"));
    chart
        .args(["jit-chart", "--out"])
        .arg(root().join("target/bench"))
        .current_dir(root());
    sh(chart)
}

fn run_workload(
    w: &Workload,
    kiln: &Path,
    compile: &compile_time::CompileTimes,
) -> Result<(), String> {
    let native = build_native(w.name)?;
    let runs: usize = std::env::var("KILN_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5)
        .max(1);
    let kiln = kiln.to_string_lossy().into_owned();
    let native = native.to_string_lossy().into_owned();
    let (kl, lua) = (
        format!("examples/{}.kl", w.name),
        format!("bench/{}.lua", w.name),
    );
    let s = |v: &[&str]| {
        v.iter()
            .chain(w.args)
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
    };
    let mut engines = vec![
        Engine {
            name: "kiln interpreter",
            cmd: s(&[&kiln, "run", "--jit=off", &kl]),
            wall: vec![],
            cpu: vec![],
        },
        Engine {
            name: "kiln JIT",
            cmd: s(&[&kiln, "run", "--jit=on", &kl]),
            wall: vec![],
            cpu: vec![],
        },
        Engine {
            name: "Lua 5.4",
            cmd: s(&["lua5.4", &lua]),
            wall: vec![],
            cpu: vec![],
        },
        Engine {
            name: "LuaJIT -joff",
            cmd: s(&["luajit", "-joff", &lua]),
            wall: vec![],
            cpu: vec![],
        },
        Engine {
            name: "LuaJIT",
            cmd: s(&["luajit", &lua]),
            wall: vec![],
            cpu: vec![],
        },
        Engine {
            name: "native Rust",
            cmd: s(&[&native]),
            wall: vec![],
            cpu: vec![],
        },
    ];
    // Another build of kiln (e.g. before a change), to measure the change side by side.
    if let Ok(base) = std::env::var("KILN_BENCH_BASELINE") {
        engines.insert(
            2,
            Engine {
                name: "kiln JIT, baseline build",
                cmd: s(&[&base, "run", "--jit=on", &kl]),
                wall: vec![],
                cpu: vec![],
            },
        );
    }
    let mut expected: Option<String> = None;
    for round in 0..runs {
        for e in engines.iter_mut() {
            let (out, wall, cpu) = time_once(&e.cmd)?;
            match &expected {
                None => expected = Some(out),
                Some(want) if *want != out => {
                    return Err(format!("{} printed {out:?}, expected {want:?}", e.name));
                }
                Some(_) => {}
            }
            e.wall.push(wall);
            e.cpu.push(cpu);
        }
        eprintln!("bench jit {}: round {}/{runs} done", w.name, round + 1);
    }
    report(
        w,
        &engines,
        runs,
        expected.unwrap_or_default().trim(),
        compile,
    )
}

fn build_native(name: &str) -> Result<PathBuf, String> {
    let dir = root().join("target/bench");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let exe = dir.join(format!("{name}-native"));
    let mut c = Command::new("rustc");
    c.args(["--edition", "2021", "-C", "opt-level=3", "-o"])
        .arg(&exe)
        .arg(root().join(format!("bench/{name}.rs")));
    sh(c)?;
    Ok(exe)
}

/// Runs `cmd` once from the workspace root: stdout, wall seconds, child CPU seconds.
fn time_once(cmd: &[String]) -> Result<(String, f64, f64), String> {
    let before = children_cpu_seconds();
    let start = Instant::now();
    let out = Command::new(&cmd[0])
        .args(&cmd[1..])
        .current_dir(root())
        .output()
        .map_err(|e| format!("cannot run {}: {e} (is it installed?)", cmd[0]))?;
    let wall = start.elapsed().as_secs_f64();
    let cpu = children_cpu_seconds() - before;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}",
            cmd.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok((String::from_utf8_lossy(&out.stdout).into_owned(), wall, cpu))
}

pub(crate) fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

fn report(
    w: &Workload,
    engines: &[Engine],
    runs: usize,
    output: &str,
    compile: &compile_time::CompileTimes,
) -> Result<(), String> {
    let base_wall = median(&engines[0].wall);
    let base_cpu = median(&engines[0].cpu);
    let (name, n) = (w.name, w.args.join(" "));
    println!("{name} {n}, {runs} runs each, median; output {output}");
    println!(
        "{:<18} {:>10} {:>10} {:>22}",
        "engine", "wall s", "cpu s", "speed vs kiln (cpu)"
    );
    let mut json = format!("{{\n  \"benchmark\": \"{name}\",\n  \"n\": \"{n}\",\n  \"runs\": {runs},\n  \"output\": \"{output}\",\n  \"engines\": [\n");
    for (i, e) in engines.iter().enumerate() {
        let (w, c) = (median(&e.wall), median(&e.cpu));
        println!(
            "{:<18} {:>10.3} {:>10.3} {:>21.2}x",
            e.name,
            w,
            c,
            base_cpu / c
        );
        let sep = if i + 1 < engines.len() { "," } else { "" };
        json.push_str(&format!(
            "    {{\"engine\": \"{}\", \"median_wall_s\": {w:.4}, \"median_cpu_s\": {c:.4}, \"wall_s\": {:?}, \"cpu_s\": {:?}, \"speed_vs_kiln_cpu\": {:.3}, \"speed_vs_kiln_wall\": {:.3}}}{sep}\n",
            e.name, e.wall, e.cpu, base_cpu / c, base_wall / w
        ));
    }
    let Some(lua) = engines.iter().find(|e| e.name == "Lua 5.4") else {
        return Err("no Lua 5.4 engine in the table".into());
    };
    let ratio_cpu = median(&lua.cpu) / base_cpu;
    let ratio_wall = median(&lua.wall) / base_wall;
    json.push_str(&format!("  ],\n  \"lua54_over_kiln_cpu\": {ratio_cpu:.3},\n  \"lua54_over_kiln_wall\": {ratio_wall:.3}"));
    println!("kiln interpreter vs Lua 5.4: Lua time / kiln time = {ratio_cpu:.2} (cpu), {ratio_wall:.2} (wall); >1 means kiln is faster");
    let cpu_of = |engine: &str| {
        engines
            .iter()
            .find(|e| e.name == engine)
            .map(|e| median(&e.cpu))
            .ok_or_else(|| format!("no {engine:?} engine in the table"))
    };
    let checks = targets::check(
        name,
        targets::CpuTimes {
            interpreter: cpu_of("kiln interpreter")?,
            jit: cpu_of("kiln JIT")?,
            native: cpu_of("native Rust")?,
            luajit: cpu_of("LuaJIT")?,
        },
    );
    targets::print(name, &checks);
    json.push_str(&format!(
        ",\n  \"targets\": {},\n  \"compile_time\": {}\n}}\n",
        targets::json(&checks),
        compile.json()
    ));
    let file = match name {
        "mandelbrot" => "jit.json".to_string(),
        other => format!("jit_{other}.json"),
    };
    let path = root().join("target/bench").join(file);
    write(&path, &json)?;
    println!("wrote {}", path.display());
    Ok(())
}

pub(crate) fn write(path: &Path, text: &str) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}
