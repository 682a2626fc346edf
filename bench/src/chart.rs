//! The SVG charts of the table (plotters, SVG backend): one panel per workload, one bar per
//! allocator, the same colour for an allocator in every panel and a legend on top.
//! Throughput uses a log scale (the slowest peers are orders of magnitude behind).
use crate::plot::{bar, colour, value_label, Area, DrawResult};
use crate::report::{axes, Row};
use plotters::prelude::*;
use std::path::Path;

/// What a chart plots.
#[derive(Clone, Copy)]
pub enum Metric {
    /// Mops/s, log scale.
    Throughput,
    /// Peak MiB, linear scale.
    Peak,
}

impl Metric {
    fn value(self, r: &Row) -> Option<f64> {
        match self {
            Metric::Throughput => r.ops_per_sec.map(|v| v / 1e6),
            Metric::Peak => r.peak_kib.map(|k| k as f64 / 1024.0),
        }
    }
    fn title(self) -> &'static str {
        match self {
            Metric::Throughput => {
                "kiln allocator benchmarks: throughput, Mops/s (log scale, higher is better)"
            }
            Metric::Peak => "kiln allocator benchmarks: peak memory, MiB (lower is better)",
        }
    }
}

const COLUMNS: usize = 3;
const PANEL: (u32, u32) = (420, 300);
const HEADER: u32 = 70;

/// Draws `rows` as an SVG at `path`.
pub fn draw(rows: &[Row], metric: Metric, path: &Path) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("chart {}: {e}", path.display());
    let (benches, allocs) = axes(rows);
    let lines = benches.len().div_ceil(COLUMNS).max(1);
    let size = (PANEL.0 * COLUMNS as u32, HEADER + PANEL.1 * lines as u32);
    let root = SVGBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let (header, body) = root.split_vertically(HEADER);
    legend(&header, metric, &allocs).map_err(|e| err(&e))?;
    for (panel, bench) in body.split_evenly((lines, COLUMNS)).iter().zip(&benches) {
        let values: Vec<Option<f64>> = allocs
            .iter()
            .map(|a| {
                rows.iter()
                    .find(|r| &r.bench == bench && &r.allocator == a)
                    .and_then(|r| metric.value(r))
            })
            .collect();
        draw_panel(panel, bench, metric, &values).map_err(|e| err(&e))?;
    }
    root.present().map_err(|e| err(&e))
}

fn legend(area: &Area, metric: Metric, allocs: &[String]) -> DrawResult {
    area.draw(&Text::new(metric.title(), (10, 8), ("sans-serif", 18)))?;
    for (i, a) in allocs.iter().enumerate() {
        let x = 10 + 125 * i as i32;
        area.draw(&Rectangle::new([(x, 40), (x + 14, 54)], colour(i).filled()))?;
        area.draw(&Text::new(a.as_str(), (x + 20, 40), ("sans-serif", 14)))?;
    }
    Ok(())
}

fn draw_panel(area: &Area, bench: &str, metric: Metric, values: &[Option<f64>]) -> DrawResult {
    let known = values.iter().flatten().copied();
    let max = known.clone().fold(0.0f64, f64::max).max(1e-3);
    let min = known.fold(f64::INFINITY, f64::min);
    let n = values.len() as u32;
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(bench, ("sans-serif", 15))
        .margin(8)
        .x_label_area_size(10)
        .y_label_area_size(55);
    let bars = values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| Some((i as u32, (*v)?)));
    match metric {
        Metric::Throughput => {
            let floor = (min / 2.0).max(1e-4);
            let mut chart = builder
                .build_cartesian_2d((0..n).into_segmented(), (floor..max * 2.0).log_scale())?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(n as usize)
                .x_label_formatter(&|_| String::new())
                .y_labels(6)
                .y_desc("Mops/s")
                .draw()?;
            chart.draw_series(bars.clone().map(|(i, v)| bar(i, floor, v)))?;
            chart.draw_series(bars.map(|(i, v)| label(i, v)))?;
        }
        Metric::Peak => {
            let mut chart = builder.build_cartesian_2d((0..n).into_segmented(), 0.0..max * 1.1)?;
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(n as usize)
                .x_label_formatter(&|_| String::new())
                .y_desc("MiB")
                .draw()?;
            chart.draw_series(bars.clone().map(|(i, v)| bar(i, 0.0, v)))?;
            chart.draw_series(bars.map(|(i, v)| label(i, v)))?;
        }
    }
    Ok(())
}

/// The bar's value written just above it (log axes have few labels).
fn label(i: u32, v: f64) -> Text<'static, (SegmentValue<u32>, f64), String> {
    let text = if v >= 10.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    };
    value_label(SegmentValue::CenterOf(i), v, text)
}
