//! Reporting: the rows, the JSON file, the printed tables, kiln's ratios and kiln's targets.
//!
//! Glossary:
//! - row: one (workload, allocator) pair: median ops/s over the timed runs, the min and max run,
//!   the timed op count of the median run, and the peak memory from its child process. A row that
//!   failed (out of memory, a child that died) keeps its error and has no numbers: it is reported,
//!   never filled in.
//! - ratio: kiln's ops/s divided by a peer's, in the same run (> 1 means kiln is faster); the
//!   memory ratio is kiln's peak divided by mimalloc's (< 1 means kiln used less).
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::Path;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Row {
    pub bench: String,
    pub allocator: String,
    pub ops_per_sec: Option<f64>,
    pub peak_kib: Option<u64>,
    /// Ops timed in the median run (less than the workload's ops if its deadline cut it short).
    pub timed_ops: u64,
    pub runs: usize,
    pub min_ops_per_sec: Option<f64>,
    pub max_ops_per_sec: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Writes `rows` as a JSON array.
pub fn write_json(rows: &[Row], path: &Path) -> Result<(), String> {
    let text = serde_json::to_string_pretty(rows).map_err(|e| format!("JSON: {e}"))?;
    std::fs::write(path, text + "\n").map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Reads a JSON file back and checks it is what `write_json` promises: a non-empty array of
/// rows, every row either with positive numbers or with an error, and (if given) every expected
/// allocator and workload present. Returns the rows.
pub fn check_json(path: &Path, allocs: &[String], benches: &[String]) -> Result<Vec<Row>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let rows: Vec<Row> = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a list of rows: {e}", path.display()))?;
    if rows.is_empty() {
        return Err(format!("{} has no rows", path.display()));
    }
    for r in &rows {
        let good = |v: Option<f64>| v.is_some_and(|v| v.is_finite() && v > 0.0);
        match (&r.error, r.ops_per_sec, r.peak_kib) {
            (Some(_), _, _) => {}
            (None, ops, Some(_)) if good(ops) && r.timed_ops > 0 && r.runs > 0 => {}
            _ => {
                return Err(format!(
                    "row {}/{} has no usable numbers",
                    r.bench, r.allocator
                ))
            }
        }
    }
    for a in allocs {
        if !rows.iter().any(|r| &r.allocator == a) {
            return Err(format!("no row for allocator `{a}`"));
        }
    }
    for b in benches {
        if !rows.iter().any(|r| &r.bench == b) {
            return Err(format!("no row for workload `{b}`"));
        }
    }
    Ok(rows)
}

/// The workloads and allocators of `rows`, in first-seen order.
pub fn axes(rows: &[Row]) -> (Vec<String>, Vec<String>) {
    let mut benches: Vec<String> = Vec::new();
    let mut allocs: Vec<String> = Vec::new();
    for r in rows {
        if !benches.contains(&r.bench) {
            benches.push(r.bench.clone());
        }
        if !allocs.contains(&r.allocator) {
            allocs.push(r.allocator.clone());
        }
    }
    (benches, allocs)
}

fn find<'a>(rows: &'a [Row], bench: &str, alloc: &str) -> Option<&'a Row> {
    rows.iter()
        .find(|r| r.bench == bench && r.allocator == alloc)
}

fn ops(rows: &[Row], bench: &str, alloc: &str) -> Option<f64> {
    find(rows, bench, alloc)?.ops_per_sec
}

fn markdown(header: &[String], body: &[Vec<String>]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "| {} |", header.join(" | "));
    let _ = writeln!(s, "|{}", "---|".repeat(header.len()));
    for line in body {
        let _ = writeln!(s, "| {} |", line.join(" | "));
    }
    s
}

/// The throughput and peak tables (markdown, one row per workload, one column per allocator).
pub fn tables(rows: &[Row]) -> String {
    let (benches, allocs) = axes(rows);
    let mut header = vec!["workload".to_string()];
    header.extend(allocs.iter().cloned());
    let cell = |b: &str, a: &str, f: &dyn Fn(&Row) -> String| match find(rows, b, a) {
        None => "-".to_string(),
        Some(r) if r.error.is_some() => "FAILED".to_string(),
        Some(r) => f(r),
    };
    let throughput: Vec<Vec<String>> = benches
        .iter()
        .map(|b| {
            let mut line = vec![b.clone()];
            line.extend(allocs.iter().map(|a| {
                cell(b, a, &|r| {
                    let med = r.ops_per_sec.unwrap_or(0.0);
                    let spread = match (r.min_ops_per_sec, r.max_ops_per_sec) {
                        (Some(lo), Some(hi)) if med > 0.0 => (hi - lo) / med * 50.0,
                        _ => 0.0,
                    };
                    format!("{:.2} ±{spread:.0}%", med / 1e6)
                })
            }));
            line
        })
        .collect();
    let peaks: Vec<Vec<String>> = benches
        .iter()
        .map(|b| {
            let mut line = vec![b.clone()];
            line.extend(allocs.iter().map(|a| {
                cell(b, a, &|r| {
                    r.peak_kib
                        .map_or("?".into(), |k| format!("{:.1}", k as f64 / 1024.0))
                })
            }));
            line
        })
        .collect();
    let mut s = String::new();
    s += "Throughput, Mops/s (median of the runs; ± is half the min-max range):\n\n";
    s += &markdown(&header, &throughput);
    s += "\nPeak memory, MiB (child process: peak RSS above its RSS before the first allocation):\n\n";
    s += &markdown(&header, &peaks);
    s
}

/// Rows cut short by their deadline, and failed rows: said out loud under the tables.
pub fn notes(rows: &[Row], full_ops: &dyn Fn(&str) -> Option<u64>) -> String {
    let mut s = String::new();
    for r in rows {
        if let Some(e) = &r.error {
            let _ = writeln!(s, "- {}/{}: FAILED: {e}", r.bench, r.allocator);
        } else if let Some(full) = full_ops(&r.bench) {
            if r.timed_ops < full {
                let _ = writeln!(
                    s,
                    "- {}/{}: hit the time limit, timed {} of {} ops",
                    r.bench, r.allocator, r.timed_ops, full
                );
            }
        }
    }
    s
}

/// kiln's ratio against every peer, per workload, and its memory ratio against mimalloc.
pub fn ratios(rows: &[Row]) -> String {
    let (benches, allocs) = axes(rows);
    if !allocs.iter().any(|a| a == "kiln") {
        return "kiln is not in this run: no ratios.\n".into();
    }
    let peers: Vec<&String> = allocs.iter().filter(|a| *a != "kiln").collect();
    let mut header = vec!["workload".to_string()];
    header.extend(peers.iter().map(|p| format!("vs {p}")));
    header.push("peak vs mimalloc".into());
    let body: Vec<Vec<String>> = benches
        .iter()
        .map(|b| {
            let mut line = vec![b.clone()];
            line.extend(
                peers
                    .iter()
                    .map(|p| speed_ratio(rows, b, p).map_or("-".into(), |x| format!("{x:.2}x"))),
            );
            line.push(peak_ratio(rows, b).map_or("-".into(), |x| format!("{x:.2}x")));
            line
        })
        .collect();
    format!(
        "kiln's ratios (ops/s: kiln ÷ peer, > 1 = kiln faster; peak: kiln ÷ mimalloc, < 1 = kiln smaller):\n\n{}",
        markdown(&header, &body)
    )
}

fn speed_ratio(rows: &[Row], bench: &str, peer: &str) -> Option<f64> {
    Some(ops(rows, bench, "kiln")? / ops(rows, bench, peer)?)
}

fn peak_ratio(rows: &[Row], bench: &str) -> Option<f64> {
    let k = find(rows, bench, "kiln")?.peak_kib? as f64;
    let m = find(rows, bench, "mimalloc")?.peak_kib? as f64;
    Some(k / m.max(1.0))
}

/// One of kiln's allocator targets.
struct Target {
    what: String,
    /// The measured ratio, or why there is none.
    value: Result<f64, String>,
    /// Whether the ratio must be at least (`true`) or at most (`false`) `bound`.
    at_least: bool,
    bound: f64,
}

fn best_of(rows: &[Row], bench: &str, peers: &[&str]) -> Option<(f64, String)> {
    peers
        .iter()
        .filter_map(|p| Some((ops(rows, bench, p)?, p.to_string())))
        .max_by(|a, b| a.0.total_cmp(&b.0))
}

/// The hosted peers a workload's "best peer" is taken from.
const PEERS: [&str; 4] = ["glibc", "mimalloc", "jemalloc", "tcmalloc"];

fn targets(rows: &[Row]) -> Vec<Target> {
    let (benches, _) = axes(rows);
    let mut t = Vec::new();
    let kiln = |b: &str| ops(rows, b, "kiln").ok_or_else(|| format!("no kiln number for {b}"));
    let big3 = ["glibc", "mimalloc", "jemalloc"];
    for b in [
        "random-mixed-400",
        "random-mixed-8192",
        "random-mixed-100000",
    ] {
        if !benches.iter().any(|x| x == b) {
            continue;
        }
        let value = kiln(b).and_then(|k| {
            let (best, _) = best_of(rows, b, &big3).ok_or("no glibc/mimalloc/jemalloc number")?;
            Ok(k / best)
        });
        let who = best_of(rows, b, &big3).map_or(String::new(), |(_, p)| format!(" ({p})"));
        t.push(Target {
            what: format!("{b}: kiln vs best of glibc/mimalloc/jemalloc{who}"),
            value,
            at_least: true,
            bound: 1.2,
        });
    }
    // Every LD_PRELOAD workload, and larson and hashmap-churn in process: 1.1x mimalloc.
    for b in benches
        .iter()
        .filter(|b| b.starts_with("c-") || *b == "larson" || *b == "hashmap-churn")
    {
        if find(rows, b, "mimalloc").is_some() {
            t.push(Target {
                what: format!("{b}: kiln vs mimalloc"),
                value: speed_ratio(rows, b, "mimalloc").ok_or_else(|| "missing".into()),
                at_least: true,
                bound: 1.1,
            });
        }
    }
    // Over all workloads: kiln against the best hosted peer of each, as a geometric mean (at
    // least 1.0x) and the worst one (at least 0.8x).
    let per_bench: Vec<(f64, &String)> = benches
        .iter()
        .filter_map(|b| Some((ops(rows, b, "kiln")? / best_of(rows, b, &PEERS)?.0, b)))
        .collect();
    if !per_bench.is_empty() {
        let geo =
            (per_bench.iter().map(|(r, _)| r.ln()).sum::<f64>() / per_bench.len() as f64).exp();
        t.push(Target {
            what: format!(
                "geometric mean over {} workloads of kiln vs the best peer",
                per_bench.len()
            ),
            value: Ok(geo),
            at_least: true,
            bound: 1.0,
        });
        let (worst, b) = per_bench
            .iter()
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .expect("not empty");
        t.push(Target {
            what: format!("worst workload ({b}) of kiln vs the best peer"),
            value: Ok(*worst),
            at_least: true,
            bound: 0.8,
        });
    }
    for (peer, bound) in [("talc", 3.0), ("linked_list", 20.0)] {
        for b in benches.iter().filter(|b| ops(rows, b, peer).is_some()) {
            t.push(Target {
                what: format!("{b}: kiln vs {peer}"),
                value: speed_ratio(rows, b, peer).ok_or_else(|| "no kiln number".into()),
                at_least: true,
                bound,
            });
        }
    }
    for b in benches
        .iter()
        .filter(|b| find(rows, b, "mimalloc").is_some())
    {
        t.push(Target {
            what: format!("{b}: kiln peak memory vs mimalloc"),
            value: peak_ratio(rows, b).ok_or_else(|| "missing".into()),
            at_least: false,
            bound: 1.0,
        });
    }
    t
}

/// kiln's allocator targets, each met / not met with its number.
pub fn target_report(rows: &[Row]) -> String {
    if !rows.iter().any(|r| r.allocator == "kiln") {
        return "Targets: not evaluated, kiln is not in this run.\n".into();
    }
    let list = targets(rows);
    let mut s = String::from("Targets (kiln's own):\n\n");
    let mut met = 0;
    for t in &list {
        let (verdict, num) = match &t.value {
            Ok(v) => {
                let ok = if t.at_least {
                    *v >= t.bound
                } else {
                    *v <= t.bound
                };
                met += ok as usize;
                (if ok { "met" } else { "NOT MET" }, format!("{v:.2}x"))
            }
            Err(why) => ("n/a", why.clone()),
        };
        let cmp = if t.at_least { ">=" } else { "<=" };
        let _ = writeln!(
            s,
            "- [{verdict}] {}: {num} (target {cmp} {:.1}x)",
            t.what, t.bound
        );
    }
    let _ = writeln!(s, "\n{met} of {} targets met.", list.len());
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(bench: &str, alloc: &str, ops: f64, peak: u64) -> Row {
        Row {
            bench: bench.into(),
            allocator: alloc.into(),
            ops_per_sec: Some(ops),
            peak_kib: Some(peak),
            timed_ops: 100,
            runs: 3,
            min_ops_per_sec: Some(ops),
            max_ops_per_sec: Some(ops),
            error: None,
        }
    }

    #[test]
    fn targets_compare_against_the_best_peer() {
        let rows = vec![
            row("random-mixed-400", "kiln", 130.0, 100),
            row("random-mixed-400", "glibc", 100.0, 100),
            row("random-mixed-400", "mimalloc", 110.0, 100),
            row("random-mixed-400", "jemalloc", 90.0, 100),
        ];
        let report = target_report(&rows);
        // 130 / 110 = 1.18 < 1.2: not met, and the best peer is named.
        assert!(report.contains("[NOT MET] random-mixed-400: kiln vs best of glibc/mimalloc/jemalloc (mimalloc): 1.18x"), "{report}");
        assert!(
            report.contains("[met] random-mixed-400: kiln peak memory vs mimalloc: 1.00x"),
            "{report}"
        );
        assert!(
            report
                .contains("[met] geometric mean over 1 workloads of kiln vs the best peer: 1.18x"),
            "{report}"
        );
    }

    #[test]
    fn c_workloads_aim_at_mimalloc_and_the_worst_is_named() {
        let rows = vec![
            row("c-xmalloc", "kiln", 100.0, 100),
            row("c-xmalloc", "mimalloc", 95.0, 90),
            row("c-mstress", "kiln", 70.0, 100),
            row("c-mstress", "mimalloc", 100.0, 100),
        ];
        let report = target_report(&rows);
        assert!(
            report.contains("[NOT MET] c-xmalloc: kiln vs mimalloc: 1.05x"),
            "{report}"
        );
        assert!(
            report.contains("[NOT MET] c-xmalloc: kiln peak memory vs mimalloc: 1.11x"),
            "{report}"
        );
        assert!(
            report.contains("[NOT MET] worst workload (c-mstress) of kiln vs the best peer: 0.70x"),
            "{report}"
        );
    }

    #[test]
    fn json_round_trips_and_rejects_bad_rows() {
        let dir = std::env::temp_dir().join(format!("kiln-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("alloc.json");
        let rows = vec![row("realloc-churn", "glibc", 5.0, 10)];
        write_json(&rows, &path).unwrap();
        let back = check_json(&path, &["glibc".into()], &["realloc-churn".into()]).unwrap();
        assert_eq!(back[0].ops_per_sec, Some(5.0));
        assert!(check_json(&path, &["kiln".into()], &[]).is_err());
        let mut bad = rows.clone();
        bad[0].ops_per_sec = None;
        write_json(&bad, &path).unwrap();
        assert!(check_json(&path, &[], &[]).is_err());
        std::fs::write(&path, "[{\"bench\": 1}]").unwrap();
        assert!(check_json(&path, &[], &[]).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
