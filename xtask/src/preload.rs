//! Lane `preload`: `libkiln.so` under real programs.
//!
//! Builds `cargo build --release -p kiln-preload`, then:
//! - runs `kiln-preload-probe` (C semantics, every alignment up to 1 GiB, threads, fork, huge
//!   pages with and without `KILN_LARGE_PAGES=0`) under it;
//! - checks that double/interior frees abort a child process with a `kiln: ...` message;
//! - runs python3 (dicts, lists, strings, threads), `sort` on a generated file and `git` on a
//!   scratch repository with and without `LD_PRELOAD`, and requires identical output;
//! - checks the `KILN_STATS=1` report: kiln served the calls, segments were in use, and glibc's
//!   heap stayed empty.
use std::fmt::Write as _;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output};

use crate::util::{cargo, ensure_debian_packages, root, run as sh};

/// What one program run produced.
#[derive(Debug, PartialEq)]
struct Outcome {
    code: Option<i32>,
    stdout: Vec<u8>,
}

pub fn lane() -> Result<(), String> {
    ensure_debian_packages(&["python3", "git", "coreutils"])?;
    sh(cargo(&["build", "--release", "-p", "kiln-preload"]))?;
    let release = root().join("target/release");
    let lib = release.join("libkiln.so");
    let probe = release.join("kiln-preload-probe");
    let scratch = root().join("target/preload-test");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).map_err(|e| format!("mkdir {scratch:?}: {e}"))?;

    for scenario in ["api", "threads", "fork", "large-pages"] {
        probe_passes(&lib, &probe, scenario, &[])?;
    }
    probe_passes(&lib, &probe, "large-pages", &[("KILN_LARGE_PAGES", "0")])?;
    for (scenario, message) in [
        ("double-free", "double free"),
        ("interior-free", "kiln: free(0x"),
        ("foreign-free", "not allocated by kiln"),
        ("realloc-interior", "kiln: realloc(0x"),
    ] {
        probe_aborts(&lib, &probe, scenario, message)?;
    }
    same_output_with_kiln(&lib, "python3", &scratch, python)?;
    same_output_with_kiln(&lib, "sort", &scratch, sort)?;
    same_output_with_kiln(&lib, "git", &scratch, git)?;
    stats_report(&lib, &probe, &scratch)?;
    arena_lexer_example()
}

/// `examples/arena_lexer.rs` on a 2 MiB source: it must print both runs and the arena must make
/// far fewer allocator calls than one heap allocation per token.
fn arena_lexer_example() -> Result<(), String> {
    let out = cargo(&[
        "run",
        "--quiet",
        "--release",
        "-p",
        "kiln-std",
        "--features",
        "stats",
        "--example",
        "arena_lexer",
        "2",
    ])
    .output()
    .map_err(|e| format!("cannot run arena_lexer: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    eprint!("{text}");
    if !out.status.success() {
        return Err(format!(
            "arena_lexer failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let calls = |prefix: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(prefix))?;
        line[prefix.len()..].split_whitespace().next()?.parse().ok()
    };
    match (calls("heap (String/token)"), calls("arena")) {
        (Some(heap), Some(arena)) if arena * 100 < heap && text.contains("heap/arena:") => Ok(()),
        other => Err(format!(
            "arena_lexer: expected the arena to make <1% of the heap run's calls, got {other:?}"
        )),
    }
}

fn with_kiln(cmd: &mut Command, lib: &Path) {
    cmd.env("LD_PRELOAD", lib);
}

fn output(mut cmd: Command) -> Result<Output, String> {
    cmd.output()
        .map_err(|e| format!("cannot start {cmd:?}: {e}"))
}

fn probe_passes(
    lib: &Path,
    probe: &Path,
    scenario: &str,
    env: &[(&str, &str)],
) -> Result<(), String> {
    let mut cmd = Command::new(probe);
    cmd.arg(scenario).envs(env.iter().copied());
    with_kiln(&mut cmd, lib);
    let out = output(cmd)?;
    eprintln!(
        "preload: probe {scenario} {env:?}: {} {}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim()
    );
    if !out.status.success() {
        return Err(format!(
            "probe {scenario} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

/// The probe must die of SIGABRT with `message` on stderr.
fn probe_aborts(lib: &Path, probe: &Path, scenario: &str, message: &str) -> Result<(), String> {
    let mut cmd = Command::new(probe);
    cmd.arg(scenario);
    with_kiln(&mut cmd, lib);
    let out = output(cmd)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "preload: probe {scenario}: {} / {}",
        out.status,
        stderr.trim()
    );
    if out.status.signal() != Some(libc_sigabrt()) || !stderr.contains(message) {
        return Err(format!(
            "probe {scenario}: expected SIGABRT and `{message}...` on stderr, got {} and {stderr:?}",
            out.status
        ));
    }
    Ok(())
}

const fn libc_sigabrt() -> i32 {
    6
}

/// Runs the program that `make` sets up (in a fresh directory each time) without and with kiln and
/// requires the same exit code and standard output.
fn same_output_with_kiln(
    lib: &Path,
    name: &str,
    scratch: &Path,
    make: impl Fn(&Path) -> Result<Command, String>,
) -> Result<(), String> {
    let mut outcomes = Vec::new();
    for (label, preload) in [("glibc", false), ("kiln", true)] {
        let dir = scratch.join(format!("{name}-{label}"));
        std::fs::create_dir_all(&dir).map_err(|e| format!("mkdir {dir:?}: {e}"))?;
        let mut cmd = make(&dir)?;
        if preload {
            with_kiln(&mut cmd, lib);
        }
        let t = std::time::Instant::now();
        let out = output(cmd)?;
        eprintln!(
            "preload: {name} under {label}: {} in {:.2}s, {} bytes of output",
            out.status,
            t.elapsed().as_secs_f64(),
            out.stdout.len()
        );
        if !out.status.success() {
            return Err(format!(
                "{name} under {label} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        outcomes.push(Outcome {
            code: out.status.code(),
            stdout: out.stdout,
        });
    }
    if outcomes[0] != outcomes[1] {
        return Err(format!(
            "{name}: output differs under LD_PRELOAD=libkiln.so ({} vs {} bytes)",
            outcomes[0].stdout.len(),
            outcomes[1].stdout.len()
        ));
    }
    Ok(())
}

const PYTHON_SCRIPT: &str = r#"
import threading, json, collections

def work(seed, out):
    d = {}
    for i in range(40000):
        k = "k%d-%d" % (seed, i % 5000)
        d.setdefault(k, []).append(i * seed)
        if i % 7 == 0:
            d[k] = [x for x in d[k] if x % 3] or [seed]
    s = "".join(sorted(d))[:2000]
    out[seed] = (len(d), sum(len(v) for v in d.values()), hash(s) & 0, s[:80])

out = {}
threads = [threading.Thread(target=work, args=(t + 1, out)) for t in range(6)]
for t in threads: t.start()
for t in threads: t.join()
words = collections.Counter(("w%d" % (i * i % 977)) for i in range(200000))
big = [str(i) * (i % 50) for i in range(30000)]
print(json.dumps(sorted(out.items())))
print(words.most_common(5), len(big), sum(map(len, big)))
print(bytes(range(256)).hex()[:64], "ok")
"#;

fn python(dir: &Path) -> Result<Command, String> {
    let script = dir.join("script.py");
    std::fs::write(&script, PYTHON_SCRIPT).map_err(|e| format!("write {script:?}: {e}"))?;
    let mut cmd = Command::new("python3");
    cmd.arg(&script).env("PYTHONHASHSEED", "0");
    Ok(cmd)
}

/// A deterministic file of 300 000 lines of varied length.
fn sort(dir: &Path) -> Result<Command, String> {
    let path = dir.join("lines.txt");
    let mut text = String::with_capacity(12 << 20);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..300_000u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let _ = writeln!(text, "{:x} line {i} {}", x, "z".repeat((x % 40) as usize));
    }
    std::fs::write(&path, text).map_err(|e| format!("write {path:?}: {e}"))?;
    let mut cmd = Command::new("sort");
    cmd.arg(&path).env("LC_ALL", "C");
    Ok(cmd)
}

/// A scratch repository: init, add, commit twice, log with stats. Dates and identities are fixed
/// so that both runs produce the same commit ids.
fn git(dir: &Path) -> Result<Command, String> {
    let repo = dir.join("repo");
    std::fs::create_dir_all(repo.join("src")).map_err(|e| format!("mkdir: {e}"))?;
    for i in 0..200 {
        let body = format!("fn f{i}() -> u32 {{ {i} }}\n").repeat(i % 30 + 1);
        std::fs::write(repo.join(format!("src/f{i}.rs")), body)
            .map_err(|e| format!("write: {e}"))?;
    }
    let script = "set -e
git init -q -b main .
git add -A
git commit -q -m 'first commit'
echo changed >> src/f1.rs
git add -A
git commit -q -m 'second commit'
git log --stat --format='%H %an %s'
git status --porcelain
git count-objects";
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(script)
        .current_dir(&repo)
        .env("HOME", dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "kiln")
        .env("GIT_AUTHOR_EMAIL", "kiln@example.invalid")
        .env("GIT_COMMITTER_NAME", "kiln")
        .env("GIT_COMMITTER_EMAIL", "kiln@example.invalid")
        .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z");
    Ok(cmd)
}

/// `KILN_STATS=1`: the report must be there and prove that kiln did the work, for the threaded
/// probe (known call counts, cross-thread frees) and for `sort` (whose output must not change).
fn stats_report(lib: &Path, probe: &Path, scratch: &Path) -> Result<(), String> {
    let mut cmd = Command::new(probe);
    cmd.arg("threads").env("KILN_STATS", "1");
    with_kiln(&mut cmd, lib);
    let out = output(cmd)?;
    let report = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("preload: KILN_STATS=1 kiln-preload-probe threads:\n{report}");
    if !out.status.success() {
        return Err(format!("KILN_STATS=1 probe threads failed: {}", out.status));
    }
    let served = check_report(&report)?;
    let remote = number_after(&report, " remote ").ok_or("no remote free count")?;
    let fast = number_after(&report, "paths: fast ").ok_or("no fast path count")?;
    // "segments in use N (peak M)": M is the only "(peak " in the report.
    let peak_segments = number_after(&report, "(peak ").ok_or("no peak segment count")?;
    expect(
        served >= 160_000,
        "kiln served the probe's 80 000 mallocs and 80 000 frees",
        &report,
    )?;
    expect(
        remote > 0,
        "frees from the consumer thread took the remote path",
        &report,
    )?;
    expect(fast > 0, "allocations took the fast path", &report)?;
    expect(peak_segments > 0, "kiln segments were in use", &report)?;

    let dir = scratch.join("stats");
    std::fs::create_dir_all(&dir).map_err(|e| format!("mkdir: {e}"))?;
    let plain = output(sort(&dir)?)?;
    let mut cmd = sort(&dir)?;
    with_kiln(&mut cmd, lib);
    cmd.env("KILN_STATS", "1");
    let out = output(cmd)?;
    let report = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("preload: KILN_STATS=1 sort:\n{report}");
    if !out.status.success() || out.stdout != plain.stdout {
        return Err(format!(
            "KILN_STATS=1 sort failed or changed its output: {}",
            out.status
        ));
    }
    check_report(&report)?;
    let peak = number_after(&report, "peak live ").ok_or("the report has no peak")?;
    expect(
        peak > 10 << 20,
        "peak live bytes cover sort's 12 MB input",
        &report,
    )
}

/// Checks what every report must show; returns the number of calls kiln served.
fn check_report(report: &str) -> Result<u64, String> {
    let served = number_after(report, "kiln: served ")
        .ok_or(format!("no `kiln: served N of M calls` line in:\n{report}"))?;
    let calls =
        number_after(report, &format!("kiln: served {served} of ")).ok_or("no call total")?;
    let outcomes: u64 = ["served=", "null=", "refused=", "bootstrap=", "leaked-free="]
        .iter()
        .map(|k| number_after(report, k).unwrap_or(u64::MAX / 8))
        .sum();
    expect(
        outcomes == calls,
        "every call has exactly one outcome",
        report,
    )?;
    expect(
        report.contains("calls: malloc="),
        "calls are counted per entry point",
        report,
    )?;
    expect(
        report.contains("paths: fast "),
        "fast/slow path counts are printed",
        report,
    )?;
    expect(
        report.contains("size classes"),
        "size classes are printed",
        report,
    )?;
    expect(
        report.contains("glibc's allocator was not used"),
        "glibc's heap stayed empty",
        report,
    )?;
    Ok(served)
}

fn expect(ok: bool, what: &str, report: &str) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(format!(
            "KILN_STATS report: expected that {what}:\n{report}"
        ))
    }
}

/// The decimal number that follows `prefix` in `text`.
fn number_after(text: &str, prefix: &str) -> Option<u64> {
    let rest = &text[text.find(prefix)? + prefix.len()..];
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}
