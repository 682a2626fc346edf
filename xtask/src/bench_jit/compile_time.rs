//! The JIT's compile time per trace, for `cargo xtask bench jit`.
//!
//! Glossary: a *sample trace* is one of the IR traces built by
//! `core/examples/jit_compile_time.rs` (`mandel`: the 20-instruction inner loop of
//! mandelbrot; `long-64`, `long-400`: synthetic long traces with register pressure and
//! spills). The example compiles each one 200 times per backend (optimise, allocate registers,
//! assemble) and prints the median and minimum; here we run it once per bench run, keep the rows
//! of the host's backend and report them against kiln's target (< 100 µs per trace).
//!
//! These are sample traces timed in the example's process, not the traces the workloads
//! compile during their timed runs (the driver is `no_std` and has no clock); the report says so.
use crate::util::{cargo, root};

/// kiln's target: a trace compiles in under this many microseconds.
pub const TARGET_US: f64 = 100.0;

/// One row of the example's output.
pub struct TraceTime {
    pub trace: String,
    pub ir_insts: u32,
    pub code_bytes: u32,
    pub median_us: f64,
    pub min_us: f64,
}

/// The host backend's rows and their median.
pub struct CompileTimes {
    pub arch: &'static str,
    pub traces: Vec<TraceTime>,
}

impl CompileTimes {
    /// Median over the sample traces of each trace's median compile time.
    pub fn median_us(&self) -> f64 {
        super::median(&self.traces.iter().map(|t| t.median_us).collect::<Vec<_>>())
    }

    /// Prints the rows and whether each meets the target.
    pub fn print(&self) {
        println!(
            "JIT compile time per trace ({}, 200 compiles each; sample traces of core/examples/jit_compile_time.rs, not timed inside the workloads):",
            self.arch
        );
        for t in &self.traces {
            println!(
                "  {:<10} {:>5} IR insts {:>7} bytes  median {:>9.1} us  min {:>9.1} us  target < {TARGET_US} us: {}",
                t.trace,
                t.ir_insts,
                t.code_bytes,
                t.median_us,
                t.min_us,
                verdict(t.median_us < TARGET_US)
            );
        }
        let m = self.median_us();
        println!(
            "  median over {} traces: {m:.1} us per trace; target < {TARGET_US} us: {}",
            self.traces.len(),
            verdict(m < TARGET_US)
        );
    }

    /// The JSON object stored under `"compile_time"` in each workload's file.
    pub fn json(&self) -> String {
        let rows: Vec<String> = self
            .traces
            .iter()
            .map(|t| {
                format!(
                    "{{\"trace\": \"{}\", \"ir_insts\": {}, \"code_bytes\": {}, \"median_us\": {:.2}, \"min_us\": {:.2}}}",
                    t.trace, t.ir_insts, t.code_bytes, t.median_us, t.min_us
                )
            })
            .collect();
        format!(
            "{{\"source\": \"core/examples/jit_compile_time.rs\", \"arch\": \"{}\", \"median_us_per_trace\": {:.2}, \"target_us\": {TARGET_US}, \"met\": {}, \"traces\": [{}]}}",
            self.arch,
            self.median_us(),
            self.median_us() < TARGET_US,
            rows.join(", ")
        )
    }
}

pub fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "NOT met"
    }
}

/// Runs the example (release build) and keeps the host backend's rows.
pub fn measure() -> Result<CompileTimes, String> {
    let mut cmd = cargo(&[
        "run",
        "--release",
        "-p",
        "kiln",
        "--example",
        "jit_compile_time",
    ]);
    eprintln!("+ {cmd:?}");
    let out = cmd
        .current_dir(root())
        .output()
        .map_err(|e| format!("cannot run the jit_compile_time example: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "jit_compile_time example failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let arch = std::env::consts::ARCH;
    let text = String::from_utf8_lossy(&out.stdout);
    let traces = parse(&text, arch)?;
    if traces.is_empty() {
        return Err(format!("jit_compile_time printed no {arch} rows:\n{text}"));
    }
    Ok(CompileTimes { arch, traces })
}

/// Parses rows like
/// `x86_64   mandel   20 IR insts   692 bytes  median   6.7 us  min   6.6 us`, keeping `arch`'s.
fn parse(text: &str, arch: &str) -> Result<Vec<TraceTime>, String> {
    let mut rows = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let w: Vec<&str> = line.split_whitespace().collect();
        let shape = ["IR", "insts", "bytes", "median", "us", "min", "us"];
        let ok = w.len() == 13 && [w[3], w[4], w[6], w[7], w[9], w[10], w[12]] == shape;
        if !ok {
            return Err(format!("jit_compile_time: unexpected line {line:?}"));
        }
        if w[0] != arch {
            continue;
        }
        let num = |s: &str| {
            s.parse::<f64>()
                .map_err(|_| format!("jit_compile_time: bad number {s:?} in {line:?}"))
        };
        rows.push(TraceTime {
            trace: w[1].to_string(),
            ir_insts: num(w[2])? as u32,
            code_bytes: num(w[5])? as u32,
            median_us: num(w[8])?,
            min_us: num(w[11])?,
        });
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str =
        "x86_64   mandel         20 IR insts     692 bytes  median      6.7 us  min      6.6 us
aarch64  mandel         20 IR insts     612 bytes  median     17.4 us  min     10.9 us
x86_64   long-64       320 IR insts   11956 bytes  median    326.6 us  min    316.4 us
";

    #[test]
    fn keeps_the_host_rows_and_takes_their_median() {
        let rows = parse(SAMPLE, "x86_64").unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].trace, "long-64");
        assert_eq!(rows[1].code_bytes, 11956);
        let t = CompileTimes {
            arch: "x86_64",
            traces: rows,
        };
        assert!((t.median_us() - (6.7 + 326.6) / 2.0).abs() < 1e-9);
        assert!(t.json().contains("\"met\": false"));
    }

    #[test]
    fn rejects_a_changed_format() {
        assert!(parse("x86_64 mandel 20 insts", "x86_64").is_err());
    }
}
