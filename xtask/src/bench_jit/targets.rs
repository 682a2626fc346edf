//! kiln's speed targets for the JIT, checked on one workload's median CPU times.
//!
//! Glossary: a *ratio* here is always a quotient of median CPU times from the same run;
//! `speedup` = interpreter time / JIT time (higher is better), `over` = JIT time / peer time
//! (lower is better). Targets: speedup >= 8 on every workload, JIT <= 1.2x native
//! Rust's time, and JIT <= 1.0x LuaJIT's time on mandelbrot (on the others the LuaJIT ratio is
//! printed without a target).

/// Median CPU seconds of the engines the targets compare.
pub struct CpuTimes {
    pub interpreter: f64,
    pub jit: f64,
    pub native: f64,
    pub luajit: f64,
}

/// One ratio and its target, if the workload has one.
pub struct Check {
    pub key: &'static str,
    pub what: &'static str,
    pub ratio: f64,
    /// `(bound, higher_is_better)`.
    pub target: Option<(f64, bool)>,
}

impl Check {
    pub fn met(&self) -> Option<bool> {
        self.target.map(|(bound, higher)| {
            if higher {
                self.ratio >= bound
            } else {
                self.ratio <= bound
            }
        })
    }
}

/// The three ratios of `workload` with their targets.
pub fn check(workload: &str, t: CpuTimes) -> Vec<Check> {
    vec![
        Check {
            key: "jit_speedup_vs_interpreter",
            what: "JIT speedup over the interpreter (interp time / JIT time)",
            ratio: t.interpreter / t.jit,
            target: Some((8.0, true)),
        },
        Check {
            key: "jit_over_native_rust",
            what: "JIT time / native Rust time",
            ratio: t.jit / t.native,
            target: Some((1.2, false)),
        },
        Check {
            key: "jit_over_luajit",
            what: "JIT time / LuaJIT time",
            ratio: t.jit / t.luajit,
            target: (workload == "mandelbrot").then_some((1.0, false)),
        },
    ]
}

/// Prints one line per ratio: value, target, met or not.
pub fn print(workload: &str, checks: &[Check]) {
    println!("{workload}: JIT targets (median CPU time):");
    for c in checks {
        let target = match (c.target, c.met()) {
            (Some((bound, higher)), Some(met)) => format!(
                "target {} {bound}: {}",
                if higher { ">=" } else { "<=" },
                super::compile_time::verdict(met)
            ),
            _ => "no target on this workload".to_string(),
        };
        println!("  {:<60} {:>8.2}x  {target}", c.what, c.ratio);
    }
}

/// The `"targets"` JSON object: each ratio, its bound and whether it is met (null: no target).
pub fn json(checks: &[Check]) -> String {
    let fields: Vec<String> = checks
        .iter()
        .map(|c| {
            let (bound, met) = match (c.target, c.met()) {
                (Some((b, _)), Some(m)) => (format!("{b}"), format!("{m}")),
                _ => ("null".into(), "null".into()),
            };
            format!(
                "\"{}\": {{\"ratio\": {:.3}, \"target\": {bound}, \"met\": {met}}}",
                c.key, c.ratio
            )
        })
        .collect();
    format!("{{{}}}", fields.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times() -> CpuTimes {
        CpuTimes {
            interpreter: 10.0,
            jit: 1.0,
            native: 0.9,
            luajit: 0.5,
        }
    }

    #[test]
    fn ratios_and_verdicts() {
        let c = check("mandelbrot", times());
        assert_eq!(c[0].met(), Some(true)); // 10x >= 8x
        assert_eq!(c[1].met(), Some(true)); // 1.11 <= 1.2
        assert_eq!(c[2].met(), Some(false)); // 2.0 > 1.0
        let j = json(&c);
        assert!(
            j.contains("\"jit_over_luajit\": {\"ratio\": 2.000, \"target\": 1, \"met\": false}")
        );
    }

    #[test]
    fn luajit_target_only_on_mandelbrot() {
        let c = check("fib", times());
        assert_eq!(c[2].met(), None);
        assert!(json(&c).contains("\"target\": null, \"met\": null"));
    }
}
