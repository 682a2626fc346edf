//! Measuring: timed runs in this process, peak memory in a child process per pair.
//!
//! Glossary:
//! - [`Settings`]: ops scale, runs per pair and the per-phase time limit (full or `--quick`).
//! - timed run: one workload on a fresh instance of one allocator, in this process. For every
//!   workload the runs go round-robin over the allocators (run 1 of each, then run 2 of each, ...)
//!   so that a change in machine load hits all of them alike; the table shows the median.
//! - peak: the child process (`kiln-bench child ...`) runs one workload once with one allocator;
//!   just before the workload's first allocator call it resets the kernel's RSS high-water mark
//!   (`/proc/self/clear_refs` `5`) and reads VmRSS; at the end it reads VmHWM. peak = VmHWM - that
//!   baseline: what the allocator mapped and touched for the workload (live data + its overhead),
//!   without the harness's own memory.
use crate::allocators::{self, Spec};
use crate::workloads::{self, Budget, Outcome, Workload};
use std::process::Command;
use std::time::Duration;

/// How much to run.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Full ops are divided by this (1 for a full run).
    pub divisor: u64,
    /// Timed runs per (workload, allocator); the median is reported.
    pub runs: usize,
    /// Time limit per phase of a run (slow allocators stop early, see `workloads::Budget`).
    pub limit: Duration,
}

impl Settings {
    pub const FULL: Settings = Settings {
        divisor: 1,
        runs: 3,
        // Worst case per (workload, allocator): 3 runs x (0.5 s warm-up + 1 s timed) + the peak
        // child's 1.5 s = 6 s; 72 pairs stay under 7.5 minutes even if every one hits its limits.
        limit: Duration::from_millis(1000),
    };
    pub const QUICK: Settings = Settings {
        divisor: 50,
        runs: 3,
        limit: Duration::from_millis(500),
    };
    pub fn budget(&self, w: &Workload) -> Budget {
        Budget::new((w.ops / self.divisor).max(1000), self.limit)
    }
}

/// One timed run on a fresh instance.
pub fn timed_run(spec: &Spec, w: &Workload, s: &Settings) -> Result<Outcome, String> {
    let instance = (spec.make)()?;
    (w.run)(&instance, s.budget(w), &mut || {})
}

/// One run of exactly `ops` ops (no deadline to speak of), for instruction counts.
pub fn profile(alloc: &str, bench: &str, ops: u64) -> Result<Outcome, String> {
    let spec = allocators::by_name(alloc).ok_or_else(|| format!("unknown allocator `{alloc}`"))?;
    let w = workloads::by_name(bench).ok_or_else(|| format!("unknown workload `{bench}`"))?;
    let instance = (spec.make)()?;
    (w.run)(
        &instance,
        Budget::new(ops, Duration::from_secs(24 * 3600)),
        &mut || {},
    )
}

/// The median of the runs' ops/s, with the run it came from.
pub fn median(outcomes: &[Outcome]) -> Option<Outcome> {
    let mut v = outcomes.to_vec();
    v.sort_by(|a, b| a.ops_per_sec().total_cmp(&b.ops_per_sec()));
    v.get(v.len() / 2).copied()
}

/// A field of /proc/self/status in KiB ("VmRSS", "VmHWM").
fn status_kib(field: &str) -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("cannot read /proc/self/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no {field} in /proc/self/status"))
}

/// The child's side: runs `bench` once with `alloc` and returns its peak in KiB.
pub fn child_peak(alloc: &str, bench: &str, s: &Settings) -> Result<u64, String> {
    let spec = allocators::by_name(alloc).ok_or_else(|| format!("unknown allocator `{alloc}`"))?;
    let w = workloads::by_name(bench).ok_or_else(|| format!("unknown workload `{bench}`"))?;
    let instance = (spec.make)()?;
    let mut base: Result<u64, String> = Err("the workload never started its timed part".into());
    (w.run)(&instance, s.budget(w), &mut || {
        base = std::fs::write("/proc/self/clear_refs", "5")
            .map_err(|e| format!("cannot reset the peak RSS via /proc/self/clear_refs: {e}"))
            .and_then(|()| status_kib("VmRSS"));
    })?;
    let peak = status_kib("VmHWM")?;
    Ok(peak.saturating_sub(base?))
}

/// The parent's side: re-runs this binary as a child for one pair and reads its answer.
pub fn spawn_peak(alloc: &str, bench: &str, quick: bool) -> Result<u64, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find my own binary: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.args(["child", "--alloc", alloc, "--bench", bench]);
    if quick {
        cmd.arg("--quick");
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot start the peak child: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "peak child for {alloc}/{bench} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .strip_prefix("peak_kib ")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("peak child for {alloc}/{bench} printed `{}`", text.trim()))
}
