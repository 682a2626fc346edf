//! `kiln-bench jit-chart`: draws the JIT benchmark's JSON files into one SVG (plotters).
//!
//! Glossary: a *run file* is `jit.json` (mandelbrot) or `jit_NAME.json`, written by
//! `cargo xtask bench jit`; each holds one workload's engines with their median CPU and wall
//! seconds and `speed_vs_kiln_cpu` (kiln interpreter CPU time / engine CPU time). The chart,
//! `jit.svg`, has one panel per run file and one bar per engine: that speed, on a log scale
//! (native code is orders of magnitude ahead of the interpreters), labelled `N.Nx`; an engine
//! keeps its colour in every panel. When the files carry `compile_time`, the header states the
//! median JIT compile time per trace. Fields the chart does not use are ignored, so older
//! files (without `targets` or `compile_time`) still draw.
use crate::plot::{bar, colour, value_label, Area, DrawResult};
use plotters::prelude::*;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// One run file.
#[derive(Deserialize)]
pub struct RunFile {
    pub benchmark: String,
    pub n: String,
    pub runs: usize,
    pub engines: Vec<EngineRow>,
    #[serde(default)]
    pub compile_time: Option<CompileTime>,
}

/// One engine's medians.
#[derive(Deserialize)]
pub struct EngineRow {
    pub engine: String,
    pub speed_vs_kiln_cpu: f64,
}

/// The compile-time summary the xtask stores in each run file.
#[derive(Deserialize)]
pub struct CompileTime {
    pub arch: String,
    pub median_us_per_trace: f64,
}

/// `jit.json` and every `jit_*.json` in `dir`, mandelbrot first, then by name.
pub fn load(dir: &Path) -> Result<Vec<RunFile>, String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name == "jit.json" || (name.starts_with("jit_") && name.ends_with(".json"))
        })
        .collect();
    paths.sort_by_key(|p| (p.file_name().is_some_and(|n| n != "jit.json"), p.clone()));
    if paths.is_empty() {
        return Err(format!(
            "no jit.json or jit_*.json in {} (run `cargo xtask bench jit` first)",
            dir.display()
        ));
    }
    paths.iter().map(|p| read(p)).collect()
}

fn read(path: &Path) -> Result<RunFile, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let run: RunFile =
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if run.engines.is_empty() {
        return Err(format!("{}: no engines", path.display()));
    }
    if let Some(bad) = run
        .engines
        .iter()
        .find(|e| !(e.speed_vs_kiln_cpu.is_finite() && e.speed_vs_kiln_cpu > 0.0))
    {
        return Err(format!(
            "{}: engine {:?} has speed {} (must be a positive number)",
            path.display(),
            bad.engine,
            bad.speed_vs_kiln_cpu
        ));
    }
    Ok(run)
}

const COLUMNS: usize = 3;
const PANEL: (u32, u32) = (460, 320);
const HEADER: u32 = 96;
const TITLE: &str =
    "kiln JIT benchmark: speed relative to the kiln interpreter (CPU time; log scale; higher is better)";

/// Draws `runs` as an SVG at `path`.
pub fn draw(runs: &[RunFile], path: &Path) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("chart {}: {e}", path.display());
    let engines = engine_names(runs);
    let columns = runs.len().clamp(1, COLUMNS);
    let lines = runs.len().div_ceil(COLUMNS).max(1);
    let size = (PANEL.0 * columns as u32, HEADER + PANEL.1 * lines as u32);
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (header, body) = root.split_vertically(HEADER);
    legend(&header, runs, &engines).map_err(|e| err(&e))?;
    for (panel, run) in body.split_evenly((lines, columns)).iter().zip(runs) {
        let speeds: Vec<Option<f64>> = engines
            .iter()
            .map(|name| {
                run.engines
                    .iter()
                    .find(|e| &e.engine == name)
                    .map(|e| e.speed_vs_kiln_cpu)
            })
            .collect();
        let caption = format!("{} {} (median of {} runs)", run.benchmark, run.n, run.runs);
        draw_panel(panel, &caption, &speeds).map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))
}

/// Every engine, in order of first appearance (an engine's index is its colour).
fn engine_names(runs: &[RunFile]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for e in runs.iter().flat_map(|r| &r.engines) {
        if !names.contains(&e.engine) {
            names.push(e.engine.clone());
        }
    }
    names
}

fn legend(area: &Area, runs: &[RunFile], engines: &[String]) -> DrawResult {
    area.draw(&Text::new(TITLE, (10, 8), ("sans-serif", 16)))?;
    let compile = runs.iter().find_map(|r| r.compile_time.as_ref());
    let note = match compile {
        Some(c) => format!(
            "JIT compile time: median {:.1} µs per trace ({}, sample traces of core/examples/jit_compile_time.rs; target < 100 µs)",
            c.median_us_per_trace, c.arch
        ),
        None => "JIT compile time: not in these files".to_string(),
    };
    area.draw(&Text::new(note, (10, 32), ("sans-serif", 13)))?;
    for (i, name) in engines.iter().enumerate() {
        let (x, y) = (10 + 150 * (i % 8) as i32, 60 + 18 * (i / 8) as i32);
        area.draw(&Rectangle::new(
            [(x, y), (x + 12, y + 12)],
            colour(i).filled(),
        ))?;
        area.draw(&Text::new(name.as_str(), (x + 17, y), ("sans-serif", 12)))?;
    }
    Ok(())
}

fn draw_panel(area: &Area, caption: &str, speeds: &[Option<f64>]) -> DrawResult {
    let known = speeds.iter().flatten().copied();
    let max = known.clone().fold(1.0f64, f64::max);
    let min = known.fold(1.0f64, f64::min);
    let (floor, ceil) = (min / 2.0, max * 3.0);
    let n = speeds.len() as u32;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 14))
        .margin(8)
        .x_label_area_size(10)
        .y_label_area_size(55)
        .build_cartesian_2d((0..n).into_segmented(), (floor..ceil).log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n as usize)
        .x_label_formatter(&|_| String::new())
        .y_labels(6)
        .y_desc("speed vs kiln interpreter (x)")
        .draw()?;
    let bars = speeds
        .iter()
        .enumerate()
        .filter_map(|(i, v)| Some((i as u32, (*v)?)));
    chart.draw_series(bars.clone().map(|(i, v)| bar(i, floor, v)))?;
    chart.draw_series(bars.map(|(i, v)| label(i, v)))?;
    Ok(())
}

/// The bar's value written above it (a log axis has few labels).
fn label(i: u32, v: f64) -> Text<'static, (SegmentValue<u32>, f64), String> {
    let text = if v >= 10.0 {
        format!("{v:.0}x")
    } else {
        format!("{v:.2}x")
    };
    value_label(SegmentValue::CenterOf(i), v, text)
}

/// `kiln-bench jit-chart --out DIR`: reads DIR's run files, writes DIR/jit.svg.
pub fn run(out: &Path) -> Result<(), String> {
    let runs = load(out)?;
    let svg = out.join("jit.svg");
    draw(&runs, &svg)?;
    let names: Vec<&str> = runs.iter().map(|r| r.benchmark.as_str()).collect();
    println!("wrote {} ({})", svg.display(), names.join(", "));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str, jit_speed: f64) -> String {
        format!(
            r#"{{"benchmark": "{name}", "n": "32", "runs": 1, "output": "x", "engines": [
  {{"engine": "kiln interpreter", "median_wall_s": 1.0, "median_cpu_s": 1.0, "wall_s": [1.0], "cpu_s": [1.0], "speed_vs_kiln_cpu": 1.000, "speed_vs_kiln_wall": 1.0}},
  {{"engine": "kiln JIT", "median_wall_s": 0.1, "median_cpu_s": 0.1, "wall_s": [0.1], "cpu_s": [0.1], "speed_vs_kiln_cpu": {jit_speed}, "speed_vs_kiln_wall": 10.0}}],
 "lua54_over_kiln_cpu": 1.5, "lua54_over_kiln_wall": 1.5,
 "compile_time": {{"source": "e", "arch": "x86_64", "median_us_per_trace": 42.5, "target_us": 100, "met": true, "traces": []}}}}"#
        )
    }

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kiln-jit-chart-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn draws_every_run_file_into_one_svg() {
        let dir = temp_dir("ok");
        std::fs::write(dir.join("jit.json"), sample("mandelbrot", 12.4)).unwrap();
        std::fs::write(dir.join("jit_fib.json"), sample("fib", 3.25)).unwrap();
        std::fs::write(dir.join("alloc.json"), "not a run file").unwrap();
        run(&dir).unwrap();
        let svg = std::fs::read_to_string(dir.join("jit.svg")).unwrap();
        for text in [
            "<svg",
            "mandelbrot 32",
            "fib 32",
            "kiln JIT",
            "12x",
            "3.25x",
            "42.5",
        ] {
            assert!(svg.contains(text), "jit.svg lacks {text:?}");
        }
        let runs = load(&dir).unwrap();
        assert_eq!(
            runs[0].benchmark, "mandelbrot",
            "mandelbrot's panel comes first"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_files_are_errors_not_charts() {
        let dir = temp_dir("bad");
        assert!(run(&dir).unwrap_err().contains("no jit.json"));
        std::fs::write(dir.join("jit.json"), sample("mandelbrot", -1.0)).unwrap();
        assert!(run(&dir).unwrap_err().contains("positive"));
        std::fs::write(dir.join("jit.json"), "{\"benchmark\": 3}").unwrap();
        assert!(run(&dir).unwrap_err().contains("jit.json"));
        assert!(!dir.join("jit.svg").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
