//! `cargo xtask bench vm`: the real-program suite (`bench/programs/`) under kiln's interpreter
//! and JIT, Lua 5.4 and LuaJIT (interpreter and JIT), side by side in one run.
//!
//! Glossary:
//! - *suite*: `bench/programs/suite.txt`, one line per program: its name, the arguments of a
//!   bench run and, after `|`, the arguments of a test run. Each program is `NAME.kl` and
//!   `NAME.lua`; `NAME.out` is Lua 5.4's output at the test size (the `suite` test of `kiln`).
//! - *engine*: one of [`ENGINES`]; each runs every program `--runs` times (default 3),
//!   round-robin, so a change in machine load hits all engines alike.
//! - *time*: CPU seconds (user + system) of the engine's process, from `wait4`; the table shows
//!   the median. *Peak RSS*: the largest `ru_maxrss` over the runs; Linux carries the
//!   spawning process's own peak (this harness, about 3 MiB) into the child's at `exec`, so
//!   that is a floor under every figure.
//! - *ratio*: a quotient of two engines' median times on the same program ([`RATIOS`]; lower is
//!   better for every one of them); the geometric mean is taken over the programs run.
//!
//! Every engine must print exactly the same bytes as the first one (and, at the test size, as
//! `NAME.out`); a difference stops the bench with the first differing line.
//!
//! Usage: `cargo xtask bench vm [--runs N] [--quick] [--note TEXT] [PROGRAM...]`. `--quick` is
//! one run at the test size: an output check, not a measurement. A full run (every program,
//! bench sizes) writes `docs/bench/vm.md` and `docs/bench/vm.svg`; a partial or quick one writes
//! them to `target/bench/` instead. `target/bench/vm.json` is written either way; the chart is
//! drawn from it by `kiln-bench vm-chart`.
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::bench_jit::{median, write};
use crate::rusage::{measure, Output};
use crate::util::{root, run as sh};

/// One program of the suite.
#[derive(Debug)]
pub struct Program {
    pub name: String,
    pub bench_args: Vec<String>,
    pub test_args: Vec<String>,
}

/// The programs' directory.
pub fn programs_dir() -> PathBuf {
    root().join("bench/programs")
}

/// Reads `bench/programs/suite.txt`.
pub fn programs() -> Result<Vec<Program>, String> {
    let path = programs_dir().join("suite.txt");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse_suite(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn parse_suite(text: &str) -> Result<Vec<Program>, String> {
    let mut out: Vec<Program> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |what: &str| format!("line {}: {what}: {line:?}", n + 1);
        let (bench, test) = line
            .split_once('|')
            .ok_or_else(|| err("expected `NAME BENCH-ARGS | TEST-ARGS`"))?;
        let mut words = bench.split_whitespace().map(String::from);
        let name = words.next().ok_or_else(|| err("no program name"))?;
        let bench_args: Vec<String> = words.collect();
        let test_args: Vec<String> = test.split_whitespace().map(String::from).collect();
        if bench_args.is_empty() || test_args.is_empty() {
            return Err(err("bench and test arguments are both required"));
        }
        if out.iter().any(|p| p.name == name) {
            return Err(err("program listed twice"));
        }
        out.push(Program {
            name,
            bench_args,
            test_args,
        });
    }
    if out.is_empty() {
        return Err("no programs".into());
    }
    Ok(out)
}

/// An engine, by its column in the tables.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Engine {
    Interp,
    Jit,
    Lua,
    LuaJitOff,
    LuaJit,
}

/// Every engine, in table order (the first one's output is the reference).
const ENGINES: [Engine; 5] = [
    Engine::Interp,
    Engine::Jit,
    Engine::Lua,
    Engine::LuaJitOff,
    Engine::LuaJit,
];

impl Engine {
    fn name(self) -> &'static str {
        match self {
            Engine::Interp => "kiln interpreter",
            Engine::Jit => "kiln JIT",
            Engine::Lua => "Lua 5.4",
            Engine::LuaJitOff => "LuaJIT -joff",
            Engine::LuaJit => "LuaJIT",
        }
    }

    fn index(self) -> usize {
        ENGINES.iter().position(|e| *e == self).unwrap()
    }

    fn command(self, kiln: &Path, program: &str, args: &[String]) -> Command {
        let kl = format!("bench/programs/{program}.kl");
        let lua = format!("bench/programs/{program}.lua");
        let mut c = match self {
            Engine::Interp | Engine::Jit => {
                let mut c = Command::new(kiln);
                let jit = if self == Engine::Interp {
                    "off"
                } else {
                    "auto"
                };
                c.args(["run", &format!("--jit={jit}"), &kl]);
                c
            }
            Engine::Lua => {
                let mut c = Command::new("lua5.4");
                c.arg(&lua);
                c
            }
            Engine::LuaJitOff | Engine::LuaJit => {
                let mut c = Command::new("luajit");
                if self == Engine::LuaJitOff {
                    c.arg("-joff");
                }
                c.arg(&lua);
                c
            }
        };
        c.args(args).current_dir(root());
        c
    }
}

/// A ratio of two engines' median times (lower is better).
struct Ratio {
    key: &'static str,
    label: &'static str,
    num: Engine,
    den: Engine,
}

const RATIOS: [Ratio; 4] = [
    Ratio {
        key: "interp_over_lua54",
        label: "interp / Lua 5.4",
        num: Engine::Interp,
        den: Engine::Lua,
    },
    Ratio {
        key: "interp_over_luajit_joff",
        label: "interp / LuaJIT -joff",
        num: Engine::Interp,
        den: Engine::LuaJitOff,
    },
    Ratio {
        key: "jit_over_luajit",
        label: "JIT / LuaJIT",
        num: Engine::Jit,
        den: Engine::LuaJit,
    },
    Ratio {
        key: "jit_over_interp",
        label: "JIT / interp",
        num: Engine::Jit,
        den: Engine::Interp,
    },
];

struct Options {
    runs: usize,
    quick: bool,
    note: Option<String>,
    only: Vec<String>,
}

fn parse_options(args: &[&str], suite: &[Program]) -> Result<Options, String> {
    let mut o = Options {
        runs: 3,
        quick: false,
        note: None,
        only: Vec::new(),
    };
    let mut runs = None;
    let mut it = args.iter();
    while let Some(&a) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .map(|v| v.to_string())
                .ok_or_else(|| format!("bench vm: {flag} needs a value"))
        };
        if a == "--quick" {
            o.quick = true;
        } else if a == "--runs" || a.starts_with("--runs=") {
            let v = match a.strip_prefix("--runs=") {
                Some(v) => v.to_string(),
                None => value("--runs")?,
            };
            let n: usize =
                v.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    format!("bench vm: --runs wants a positive number, got {v:?}")
                })?;
            runs = Some(n);
        } else if a == "--note" {
            o.note = Some(value("--note")?);
        } else if a.starts_with('-') {
            return Err(format!(
                "bench vm: unknown flag {a:?} (flags: --runs N, --quick, --note TEXT)"
            ));
        } else if suite.iter().any(|p| p.name == a) {
            o.only.push(a.to_string());
        } else {
            let names: Vec<&str> = suite.iter().map(|p| p.name.as_str()).collect();
            return Err(format!(
                "bench vm: unknown program {a:?} (have {})",
                names.join(", ")
            ));
        }
    }
    o.runs = runs.unwrap_or(if o.quick { 1 } else { 3 });
    Ok(o)
}

/// One program's measurements, per engine in [`ENGINES`] order.
struct Row<'p> {
    program: &'p Program,
    args: &'p [String],
    output_bytes: usize,
    cpu: [Vec<f64>; 5],
    wall: [Vec<f64>; 5],
    peak_rss_kib: [u64; 5],
}

impl Row<'_> {
    fn time(&self, e: Engine) -> f64 {
        median(&self.cpu[e.index()])
    }
    fn ratio(&self, r: &Ratio) -> f64 {
        self.time(r.num) / self.time(r.den)
    }
}

pub fn run(args: &[&str]) -> Result<(), String> {
    let suite = programs()?;
    let opts = parse_options(args, &suite)?;
    crate::util::ensure_debian_packages(&["lua5.4", "luajit"])?;
    let kiln = crate::vm::build_kiln()?;
    let selected: Vec<&Program> = suite
        .iter()
        .filter(|p| opts.only.is_empty() || opts.only.contains(&p.name))
        .collect();
    let load_before = loadavg();
    let mut rows = Vec::new();
    for p in &selected {
        rows.push(run_program(p, &kiln, &opts)?);
    }
    let load_after = loadavg();
    let full = !opts.quick && selected.len() == suite.len();
    let (md, svg) = if full {
        (
            root().join("docs/bench/vm.md"),
            root().join("docs/bench/vm.svg"),
        )
    } else {
        (
            root().join("target/bench/vm.md"),
            root().join("target/bench/vm.svg"),
        )
    };
    let header = Header {
        args: args
            .iter()
            .map(|a| {
                if a.contains(' ') {
                    format!("{a:?}")
                } else {
                    a.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(" "),
        runs: opts.runs,
        quick: opts.quick,
        note: opts.note.clone(),
        load: (load_before, load_after),
        kiln_rev: capture("git", &["rev-parse", "--short", "HEAD"]),
    };
    let markdown = render_markdown(&header, &rows);
    print!("{markdown}");
    write(&md, &markdown)?;
    let json_path = root().join("target/bench/vm.json");
    write(&json_path, &render_json(&header, &rows))?;
    println!("wrote {} and {}", md.display(), json_path.display());
    draw_chart(&json_path, &svg)
}

/// Programs of the smoke run (the `bench_smoke` lane): one allocating, one calling.
const SMOKE: [&str; 2] = ["binary_trees", "fib"];

/// Lane `bench_smoke`, VM part: `--quick` on two programs (every engine, output checked against
/// `NAME.out`), then the JSON and the chart must be written anew and name both programs.
pub fn smoke() -> Result<(), String> {
    let out = root().join("target/bench");
    let (json, svg) = (out.join("vm.json"), out.join("vm.svg"));
    for f in [&json, &svg] {
        if f.exists() {
            std::fs::remove_file(f).map_err(|e| format!("cannot remove {}: {e}", f.display()))?;
        }
    }
    let mut args = vec!["--quick"];
    args.extend(SMOKE);
    run(&args)?;
    for f in [&json, &svg] {
        let text =
            std::fs::read_to_string(f).map_err(|e| format!("cannot read {}: {e}", f.display()))?;
        if let Some(missing) = SMOKE.iter().find(|p| !text.contains(*p)) {
            return Err(format!("{} does not mention {missing}", f.display()));
        }
    }
    Ok(())
}

/// Runs `p` `opts.runs` times on every engine, round-robin, checking the outputs.
fn run_program<'p>(p: &'p Program, kiln: &Path, opts: &Options) -> Result<Row<'p>, String> {
    let args: &[String] = if opts.quick {
        &p.test_args
    } else {
        &p.bench_args
    };
    let mut row = Row {
        program: p,
        args,
        output_bytes: 0,
        cpu: Default::default(),
        wall: Default::default(),
        peak_rss_kib: [0; 5],
    };
    // At the test size the reference is NAME.out; otherwise the first engine's output.
    let mut reference: Option<(String, Output)> = None;
    if opts.quick {
        let out = programs_dir().join(format!("{}.out", p.name));
        let want = std::fs::read(&out).map_err(|e| format!("{}: {e}", out.display()))?;
        reference = Some((format!("bench/programs/{}.out", p.name), Output::of(&want)));
    }
    for round in 0..opts.runs {
        for e in ENGINES {
            let cmd = e.command(kiln, &p.name, args);
            let shown = format!("{cmd:?}");
            let m = measure(cmd)?;
            if !m.status.success() {
                return Err(format!(
                    "bench vm: {} failed on {} {} ({}): {}",
                    e.name(),
                    p.name,
                    args.join(" "),
                    m.status,
                    String::from_utf8_lossy(&m.stderr).trim()
                ));
            }
            match &reference {
                None => reference = Some((e.name().to_string(), m.stdout)),
                Some((first, want)) => {
                    if *want != m.stdout {
                        return Err(mismatch(p, args, first, want, e, &m.stdout, &shown));
                    }
                }
            }
            let i = e.index();
            row.cpu[i].push(m.cpu_s);
            row.wall[i].push(m.wall_s);
            row.peak_rss_kib[i] = row.peak_rss_kib[i].max(m.peak_rss_kib);
        }
        eprintln!(
            "bench vm {} {}: round {}/{} done",
            p.name,
            args.join(" "),
            round + 1,
            opts.runs
        );
    }
    row.output_bytes = reference.map_or(0, |(_, out)| out.len as usize);
    Ok(row)
}

/// The error for an engine whose output differs from the reference: the first differing line
/// (within the heads both kept).
fn mismatch(
    p: &Program,
    args: &[String],
    reference: &str,
    want: &Output,
    e: Engine,
    got: &Output,
    cmd: &str,
) -> String {
    let (w_text, g_text) = (
        String::from_utf8_lossy(&want.head),
        String::from_utf8_lossy(&got.head),
    );
    let (mut w, mut g) = (w_text.lines(), g_text.lines());
    let mut line = 1;
    let (a, b) = loop {
        match (w.next(), g.next()) {
            (Some(a), Some(b)) if a == b => line += 1,
            other => break other,
        }
    };
    let past_head = "<past the first 64 KiB>";
    format!(
        "bench vm: output mismatch on {} {}: {} printed something else than {reference} \
         (line {line}: {:?} instead of {:?}; {} bytes instead of {})\n  command: {cmd}",
        p.name,
        args.join(" "),
        e.name(),
        b.unwrap_or(if got.head.len() as u64 == got.len {
            "<end of output>"
        } else {
            past_head
        }),
        a.unwrap_or(if want.head.len() as u64 == want.len {
            "<end of output>"
        } else {
            past_head
        }),
        got.len,
        want.len
    )
}

fn geomean(v: impl Iterator<Item = f64>) -> f64 {
    let (mut sum, mut n) = (0.0, 0usize);
    for x in v {
        sum += x.ln();
        n += 1;
    }
    if n == 0 {
        f64::NAN
    } else {
        (sum / n as f64).exp()
    }
}

/// One of kiln's targets, checked on this run.
struct Target {
    what: String,
    value: f64,
    bound: f64,
    higher_is_better: bool,
}

impl Target {
    fn met(&self) -> bool {
        if self.higher_is_better {
            self.value >= self.bound
        } else {
            self.value <= self.bound
        }
    }
}

/// kiln's targets on the suite: the interpreter at most Lua 5.4's time on every program and 0.8x
/// as a geometric mean, no more memory than Lua 5.4 on binary-trees; the JIT never slower than
/// the interpreter, 4x faster as a geometric mean, and within 2x of LuaJIT as a geometric mean.
fn targets(rows: &[Row]) -> Vec<Target> {
    let worst = |r: &Ratio| {
        rows.iter()
            .map(|row| (row.ratio(r), row.program.name.as_str()))
            .max_by(|a, b| a.0.total_cmp(&b.0))
    };
    let gm = |r: &Ratio| geomean(rows.iter().map(|row| row.ratio(r)));
    let mut t = Vec::new();
    if let Some((v, name)) = worst(&RATIOS[0]) {
        t.push(Target {
            what: format!("interpreter time / Lua 5.4 time, every program (worst: {name})"),
            value: v,
            bound: 1.0,
            higher_is_better: false,
        });
        t.push(Target {
            what: "interpreter time / Lua 5.4 time, geometric mean".into(),
            value: gm(&RATIOS[0]),
            bound: 0.8,
            higher_is_better: false,
        });
    }
    if let Some(bt) = rows.iter().find(|r| r.program.name == "binary_trees") {
        t.push(Target {
            what: "binary_trees peak RSS, interpreter / Lua 5.4".into(),
            value: bt.peak_rss_kib[Engine::Interp.index()] as f64
                / bt.peak_rss_kib[Engine::Lua.index()].max(1) as f64,
            bound: 1.0,
            higher_is_better: false,
        });
    }
    if let Some((v, name)) = worst(&RATIOS[3]) {
        t.push(Target {
            what: format!("JIT time / interpreter time, every program (worst: {name})"),
            value: v,
            bound: 1.0,
            higher_is_better: false,
        });
        t.push(Target {
            what: "JIT speedup over the interpreter, geometric mean".into(),
            value: 1.0 / gm(&RATIOS[3]),
            bound: 4.0,
            higher_is_better: true,
        });
        t.push(Target {
            what: "JIT time / LuaJIT time, geometric mean".into(),
            value: gm(&RATIOS[2]),
            bound: 2.0,
            higher_is_better: false,
        });
    }
    t
}

/// What the report says about how it was taken.
struct Header {
    args: String,
    runs: usize,
    quick: bool,
    note: Option<String>,
    load: (String, String),
    kiln_rev: String,
}

fn render_markdown(h: &Header, rows: &[Row]) -> String {
    let mut s = String::new();
    let cmd = if h.args.is_empty() {
        "cargo xtask bench vm".to_string()
    } else {
        format!("cargo xtask bench vm {}", h.args)
    };
    let _ = writeln!(s, "# kiln VM on real programs\n");
    let _ = writeln!(
        s,
        "`{cmd}` on {}: the programs of `bench/programs/` (each in `.kl` and Lua, printing the \
         same bytes; every output checked) under kiln's interpreter (`kiln run --jit=off`), \
         kiln's JIT (`--jit=auto`), Lua 5.4, LuaJIT's interpreter (`luajit -joff`) and LuaJIT.",
        capture("date", &["-u", "+%Y-%m-%d %H:%M UTC"])
    );
    let _ = writeln!(
        s,
        "Time: median CPU seconds (user + system) of {} run(s) per engine, round-robin. \
         Ratios are quotients of those medians (lower is better).\n",
        h.runs
    );
    if h.quick {
        let _ = writeln!(
            s,
            "**`--quick`: one run at the test size: an output check, not a measurement.**\n"
        );
    }
    if let Some(note) = &h.note {
        let _ = writeln!(s, "**{note}**\n");
    }
    let _ = writeln!(
        s,
        "Machine: {} ({} CPUs), load average {} before and {} after. kiln {}, {}, {}.\n",
        cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        h.load.0,
        h.load.1,
        h.kiln_rev,
        capture("lua5.4", &["-v"])
            .split("  ")
            .next()
            .unwrap_or("")
            .trim(),
        capture("luajit", &["-v"])
            .split(" --")
            .next()
            .unwrap_or("")
            .trim(),
    );
    let _ = writeln!(s, "## Time (s) and ratios\n");
    let mut head = String::from("| program | args |");
    for e in ENGINES {
        let _ = write!(head, " {} |", e.name());
    }
    for r in &RATIOS {
        let _ = write!(head, " {} |", r.label);
    }
    let _ = writeln!(s, "{head}");
    let _ = writeln!(
        s,
        "|---|---|{}",
        "---:|".repeat(ENGINES.len() + RATIOS.len())
    );
    for row in rows {
        let mut line = format!("| {} | {} |", row.program.name, row.args.join(" "));
        for e in ENGINES {
            let _ = write!(line, " {:.3} |", row.time(e));
        }
        for r in &RATIOS {
            let _ = write!(line, " {:.2} |", row.ratio(r));
        }
        let _ = writeln!(s, "{line}");
    }
    let mut line = String::from("| **geometric mean** | |");
    for _ in ENGINES {
        line.push_str(" |");
    }
    for r in &RATIOS {
        let _ = write!(
            line,
            " **{:.2}** |",
            geomean(rows.iter().map(|row| row.ratio(r)))
        );
    }
    let _ = writeln!(s, "{line}\n");
    let _ = writeln!(
        s,
        "## Peak RSS (MiB)\n\n`ru_maxrss` of each process (the largest over the runs); Linux counts \
         the harness's own resident size at the spawn (about 3 MiB) in it, a floor under every \
         figure.\n"
    );
    let mut head = String::from("| program |");
    for e in ENGINES {
        let _ = write!(head, " {} |", e.name());
    }
    let _ = writeln!(s, "{head}\n|---|{}", "---:|".repeat(ENGINES.len()));
    for row in rows {
        let mut line = format!("| {} |", row.program.name);
        for e in ENGINES {
            let _ = write!(
                line,
                " {:.1} |",
                row.peak_rss_kib[e.index()] as f64 / 1024.0
            );
        }
        let _ = writeln!(s, "{line}");
    }
    let _ = writeln!(s, "\n## kiln's targets\n");
    let _ = writeln!(
        s,
        "| target | measured | bound | met |\n|---|---:|---:|---|"
    );
    for t in targets(rows) {
        let _ = writeln!(
            s,
            "| {} | {:.2} | {} {} | {} |",
            t.what,
            t.value,
            if t.higher_is_better { ">=" } else { "<=" },
            t.bound,
            if t.met() { "yes" } else { "**no**" }
        );
    }
    s
}

fn json_list<T>(v: &[T], f: impl Fn(&T) -> String) -> String {
    let items: Vec<String> = v.iter().map(f).collect();
    format!("[{}]", items.join(", "))
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn render_json(h: &Header, rows: &[Row]) -> String {
    let mut s = String::from("{\n");
    let _ = writeln!(s, "  \"runs\": {},\n  \"quick\": {},", h.runs, h.quick);
    let _ = writeln!(
        s,
        "  \"note\": {},\n  \"load_before\": {},\n  \"load_after\": {},\n  \"kiln_rev\": {},",
        h.note.as_deref().map_or("null".into(), json_str),
        json_str(&h.load.0),
        json_str(&h.load.1),
        json_str(&h.kiln_rev)
    );
    let _ = writeln!(
        s,
        "  \"engines\": {},\n  \"programs\": [",
        json_list(&ENGINES, |e| json_str(e.name()))
    );
    for (k, row) in rows.iter().enumerate() {
        let engines = json_list(&ENGINES, |e| {
            let i = e.index();
            format!(
                "{{\"engine\": {}, \"median_cpu_s\": {:.4}, \"median_wall_s\": {:.4}, \"cpu_s\": {:?}, \"wall_s\": {:?}, \"peak_rss_kib\": {}}}",
                json_str(e.name()),
                row.time(*e),
                median(&row.wall[i]),
                row.cpu[i],
                row.wall[i],
                row.peak_rss_kib[i]
            )
        });
        let ratios = json_list(&RATIOS, |r| {
            format!("{{\"key\": \"{}\", \"value\": {:.4}}}", r.key, row.ratio(r))
        });
        let _ = writeln!(
            s,
            "    {{\"name\": {}, \"args\": {}, \"output_bytes\": {}, \"engines\": {engines}, \"ratios\": {ratios}}}{}",
            json_str(&row.program.name),
            json_str(&row.args.join(" ")),
            row.output_bytes,
            if k + 1 < rows.len() { "," } else { "" }
        );
    }
    let geo = json_list(&RATIOS, |r| {
        format!(
            "{{\"key\": \"{}\", \"value\": {:.4}}}",
            r.key,
            geomean(rows.iter().map(|row| row.ratio(r)))
        )
    });
    let targets = json_list(&targets(rows), |t| {
        format!(
            "{{\"what\": {}, \"value\": {:.4}, \"bound\": {}, \"higher_is_better\": {}, \"met\": {}}}",
            json_str(&t.what),
            t.value,
            t.bound,
            t.higher_is_better,
            t.met()
        )
    });
    let _ = writeln!(
        s,
        "  ],\n  \"geomean\": {geo},\n  \"targets\": {targets}\n}}"
    );
    s
}

/// Builds the harness and has it draw the chart of `json` into `svg`.
fn draw_chart(json: &Path, svg: &Path) -> Result<(), String> {
    let mut chart = Command::new(crate::bench_alloc::build_harness()?);
    chart
        .arg("vm-chart")
        .arg("--json")
        .arg(json)
        .arg("--svg")
        .arg(svg)
        .current_dir(root());
    sh(chart)
}

/// A command's first line of output (stdout, else stderr), or "?" if it cannot run.
fn capture(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .current_dir(root())
        .output()
        .ok()
        .and_then(|o| {
            let text = if o.stdout.is_empty() {
                o.stderr
            } else {
                o.stdout
            };
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .map(|l| l.trim().to_string())
        })
        .unwrap_or_else(|| "?".into())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suite_file_parses_and_rejects_bad_lines() {
        let p = parse_suite("# c\n\nfib 32 | 10\ntak 1 2 3 | 4 5 6\n").unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].bench_args, ["1", "2", "3"]);
        assert_eq!(p[1].test_args, ["4", "5", "6"]);
        assert!(parse_suite("fib 32\n").unwrap_err().contains("line 1"));
        assert!(parse_suite("fib | 3\n").unwrap_err().contains("required"));
        assert!(parse_suite("a 1 | 2\na 1 | 2\n")
            .unwrap_err()
            .contains("twice"));
        assert!(parse_suite("# only a comment\n").is_err());
    }

    #[test]
    fn the_real_suite_parses() {
        let suite = programs().unwrap();
        assert!(suite.len() >= 13, "{} programs", suite.len());
    }

    #[test]
    fn targets_and_geomean() {
        assert!((geomean([2.0, 8.0].into_iter()) - 4.0).abs() < 1e-12);
        let t = Target {
            what: String::new(),
            value: 4.0,
            bound: 4.0,
            higher_is_better: true,
        };
        assert!(t.met());
        let t = Target {
            higher_is_better: false,
            value: 1.01,
            bound: 1.0,
            ..t
        };
        assert!(!t.met());
    }
}
