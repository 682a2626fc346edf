//! `kiln-bench vm-chart`: draws `cargo xtask bench vm`'s JSON (`target/bench/vm.json`) as one
//! SVG (plotters).
//!
//! Glossary: a *group* is one program of the suite (plus a last group, the geometric mean over
//! the programs); inside it one bar per engine. The top panel shows each engine's median time
//! divided by Lua 5.4's on that program (log scale, lower is better; the line at 1 is Lua 5.4);
//! the bottom panel shows each engine's peak RSS in MiB (log scale). An engine keeps its colour
//! (its index in the file's `engines`) in both panels. Fields the chart does not use are
//! ignored.
use crate::plot::{colour, value_label, Area, DrawResult};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::Deserialize;
use std::path::Path;

/// The JSON file.
#[derive(Deserialize)]
pub struct VmRun {
    pub runs: usize,
    pub quick: bool,
    #[serde(default)]
    pub note: Option<String>,
    pub engines: Vec<String>,
    pub programs: Vec<ProgramRow>,
}

/// One program's engines.
#[derive(Deserialize)]
pub struct ProgramRow {
    pub name: String,
    pub args: String,
    pub engines: Vec<EngineRow>,
}

/// One engine's median time and peak memory on one program.
#[derive(Deserialize)]
pub struct EngineRow {
    pub engine: String,
    pub median_cpu_s: f64,
    pub peak_rss_kib: u64,
}

/// The engine every time is divided by.
const BASELINE: &str = "Lua 5.4";

/// Reads and checks `path`.
pub fn load(path: &Path) -> Result<VmRun, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read {}: {e} (run `cargo xtask bench vm`)",
            path.display()
        )
    })?;
    let run: VmRun = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if run.programs.is_empty() {
        return Err(format!("{}: no programs", path.display()));
    }
    if !run.engines.iter().any(|e| e == BASELINE) {
        return Err(format!("{}: no {BASELINE} engine", path.display()));
    }
    for p in &run.programs {
        for name in &run.engines {
            let Some(e) = p.engines.iter().find(|e| &e.engine == name) else {
                return Err(format!("{}: {} has no {name} row", path.display(), p.name));
            };
            if !(e.median_cpu_s.is_finite() && e.median_cpu_s > 0.0) {
                return Err(format!(
                    "{}: {} on {} has time {} (must be a positive number)",
                    path.display(),
                    name,
                    p.name,
                    e.median_cpu_s
                ));
            }
        }
    }
    Ok(run)
}

impl ProgramRow {
    fn engine(&self, name: &str) -> &EngineRow {
        // `load` checked that every engine has a row.
        self.engines.iter().find(|e| e.engine == name).unwrap()
    }
}

/// `values[group][engine]`, group labels (name, arguments), and the engines drawn (their
/// colour indices).
struct Panel {
    labels: Vec<(String, String)>,
    engines: Vec<usize>,
    values: Vec<Vec<f64>>,
}

fn time_panel(run: &VmRun) -> Panel {
    let engines: Vec<usize> = (0..run.engines.len())
        .filter(|&i| run.engines[i] != BASELINE)
        .collect();
    let mut values: Vec<Vec<f64>> = run
        .programs
        .iter()
        .map(|p| {
            let base = p.engine(BASELINE).median_cpu_s;
            engines
                .iter()
                .map(|&i| p.engine(&run.engines[i]).median_cpu_s / base)
                .collect()
        })
        .collect();
    let n = values.len() as f64;
    let geo: Vec<f64> = (0..engines.len())
        .map(|k| (values.iter().map(|v| v[k].ln()).sum::<f64>() / n).exp())
        .collect();
    values.push(geo);
    let mut labels = group_labels(run);
    labels.push(("geometric mean".into(), String::new()));
    Panel {
        labels,
        engines,
        values,
    }
}

fn rss_panel(run: &VmRun) -> Panel {
    let engines: Vec<usize> = (0..run.engines.len()).collect();
    let values = run
        .programs
        .iter()
        .map(|p| {
            engines
                .iter()
                .map(|&i| (p.engine(&run.engines[i]).peak_rss_kib.max(1) as f64) / 1024.0)
                .collect()
        })
        .collect();
    Panel {
        labels: group_labels(run),
        engines,
        values,
    }
}

fn group_labels(run: &VmRun) -> Vec<(String, String)> {
    run.programs
        .iter()
        .map(|p| (p.name.clone(), p.args.clone()))
        .collect()
}

const WIDTH: u32 = 1500;
const HEADER: u32 = 80;
const TIME_PANEL: u32 = 440;
const RSS_PANEL: u32 = 360;

/// Draws `run` as an SVG at `path`.
pub fn draw(run: &VmRun, path: &Path) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("chart {}: {e}", path.display());
    let root = SVGBackend::new(path, (WIDTH, HEADER + TIME_PANEL + RSS_PANEL)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (header, body) = root.split_vertically(HEADER);
    let (top, bottom) = body.split_vertically(TIME_PANEL);
    legend(&header, run).map_err(|e| err(&e))?;
    let time = time_panel(run);
    draw_panel(
        &top,
        "time / Lua 5.4 time (median CPU time; log scale; lower is better; the line is Lua 5.4)",
        &time,
        true,
        ratio_text,
    )
    .map_err(|e| err(&e))?;
    draw_panel(
        &bottom,
        "peak RSS, MiB (log scale; lower is better)",
        &rss_panel(run),
        false,
        mib_text,
    )
    .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}

fn legend(area: &Area, run: &VmRun) -> DrawResult {
    let title = format!(
        "kiln VM on real programs: kiln interpreter and JIT vs Lua 5.4 and LuaJIT (median of {} run{})",
        run.runs,
        if run.runs == 1 { "" } else { "s" }
    );
    area.draw(&Text::new(title, (10, 8), ("sans-serif", 16)))?;
    let mut note = run.note.clone().unwrap_or_default();
    if run.quick {
        note = format!("--quick: test sizes, one run (not a measurement). {note}");
    }
    area.draw(&Text::new(note, (10, 30), ("sans-serif", 13)))?;
    for (i, name) in run.engines.iter().enumerate() {
        let x = 10 + 170 * i as i32;
        area.draw(&Rectangle::new([(x, 54), (x + 12, 66)], colour(i).filled()))?;
        area.draw(&Text::new(name.as_str(), (x + 17, 54), ("sans-serif", 12)))?;
    }
    Ok(())
}

/// Writes a ratio above its bar.
fn ratio_text(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// Writes MiB above a bar.
fn mib_text(v: f64) -> String {
    if v >= 10.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

fn draw_panel(
    area: &Area,
    caption: &str,
    panel: &Panel,
    baseline: bool,
    text: fn(f64) -> String,
) -> DrawResult {
    let known = panel.values.iter().flatten().copied();
    let max = known.clone().fold(1.0f64, f64::max);
    let min = known.fold(1.0f64, f64::min);
    let (floor, ceil) = (min / 2.0, max * 3.0);
    let groups = panel.labels.len();
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 14))
        .margin(8)
        .x_label_area_size(36)
        .y_label_area_size(55)
        .build_cartesian_2d(0.0..groups as f64, (floor..ceil).log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_labels(8)
        .draw()?;
    // Group names under the axis, centred on their groups (in the panel's own coordinates).
    let base = area.get_base_pixel();
    let top = Pos::new(HPos::Center, VPos::Top);
    let style = TextStyle::from(("sans-serif", 12).into_font()).pos(top);
    let small = TextStyle::from(("sans-serif", 10).into_font()).pos(top);
    for (g, (name, args)) in panel.labels.iter().enumerate() {
        let (x, y) = chart.backend_coord(&(g as f64 + 0.5, floor));
        let (x, y) = (x - base.0, y - base.1);
        area.draw(&Text::new(name.clone(), (x, y + 6), style.clone()))?;
        area.draw(&Text::new(args.clone(), (x, y + 21), small.clone()))?;
    }
    let per = panel.engines.len() as f64;
    let width = 0.84 / per;
    let bars = panel.values.iter().enumerate().flat_map(|(g, vals)| {
        vals.iter().enumerate().map(move |(k, &v)| {
            let x0 = g as f64 + 0.08 + k as f64 * width;
            (k, x0, v)
        })
    });
    chart.draw_series(bars.clone().map(|(k, x0, v)| {
        Rectangle::new(
            [(x0, floor), (x0 + width * 0.9, v)],
            colour(panel.engines[k]).filled(),
        )
    }))?;
    chart.draw_series(bars.map(|(_, x0, v)| value_label(x0 + width * 0.45, v, text(v))))?;
    if baseline {
        chart.draw_series(LineSeries::new(
            [(0.0, 1.0), (groups as f64, 1.0)],
            BLACK.stroke_width(1),
        ))?;
    }
    Ok(())
}

/// `kiln-bench vm-chart --json FILE --svg FILE`.
pub fn run(json: &Path, svg: &Path) -> Result<(), String> {
    let run = load(json)?;
    if let Some(dir) = svg.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    draw(&run, svg)?;
    println!("wrote {} ({} programs)", svg.display(), run.programs.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn engine(name: &str, t: f64, kib: u64) -> String {
        format!(
            r#"{{"engine": "{name}", "median_cpu_s": {t}, "median_wall_s": {t}, "cpu_s": [{t}], "wall_s": [{t}], "peak_rss_kib": {kib}}}"#
        )
    }

    fn sample(lua_time: f64) -> String {
        let engines = |interp: f64| {
            [
                engine("kiln interpreter", interp, 3000),
                engine("kiln JIT", 0.25, 3100),
                engine("Lua 5.4", lua_time, 2000),
                engine("LuaJIT -joff", 0.5, 1800),
                engine("LuaJIT", 0.125, 1900),
            ]
            .join(", ")
        };
        format!(
            r#"{{"runs": 3, "quick": false, "note": "taken under load",
 "engines": ["kiln interpreter", "kiln JIT", "Lua 5.4", "LuaJIT -joff", "LuaJIT"],
 "programs": [
  {{"name": "nbody", "args": "1000", "output_bytes": 24, "engines": [{}], "ratios": []}},
  {{"name": "binary_trees", "args": "6", "output_bytes": 24, "engines": [{}], "ratios": []}}],
 "geomean": [], "targets": []}}"#,
            engines(2.0),
            engines(8.0)
        )
    }

    fn temp(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kiln-vm-chart-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn draws_both_panels_with_ratios_to_lua() {
        let dir = temp("ok");
        std::fs::write(dir.join("vm.json"), sample(1.0)).unwrap();
        run(&dir.join("vm.json"), &dir.join("out/vm.svg")).unwrap();
        let svg = std::fs::read_to_string(dir.join("out/vm.svg")).unwrap();
        // nbody: 2.0 / 1.0; binary_trees: 8.0 / 1.0; geometric mean of the two: 4.00.
        for text in [
            "<svg",
            "nbody",
            "binary_trees",
            "geometric mean",
            "2.00",
            "4.00",
            "taken under load",
            "LuaJIT -joff",
            "peak RSS",
        ] {
            assert!(svg.contains(text), "vm.svg lacks {text:?}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bad_files_are_errors_not_charts() {
        let dir = temp("bad");
        let (json, svg) = (dir.join("vm.json"), dir.join("vm.svg"));
        assert!(run(&json, &svg).unwrap_err().contains("cannot read"));
        std::fs::write(&json, sample(0.0)).unwrap();
        assert!(run(&json, &svg).unwrap_err().contains("positive"));
        std::fs::write(&json, sample(1.0).replace("\"Lua 5.4\"", "\"Lua\"")).unwrap();
        assert!(run(&json, &svg).unwrap_err().contains("Lua 5.4"));
        std::fs::write(&json, "{\"runs\": 1}").unwrap();
        assert!(run(&json, &svg).unwrap_err().contains("vm.json"));
        assert!(!svg.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
