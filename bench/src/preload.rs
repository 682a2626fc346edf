//! The C workloads through LD_PRELOAD: each run is a separate process running
//! `bench/c/random_mixed.c` (random-mixed) or `bench/c/classic.c` (the classic multi-threaded
//! workloads), both built by `cargo xtask bench alloc`; the program times its own loop and
//! reports its own peak RSS (same reset-then-VmHWM method as the in-process children).
use crate::workloads::Outcome;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Which C program runs a workload, and its arguments.
#[derive(Clone, Copy, Debug)]
pub enum Program {
    /// `random_mixed OPS WS`.
    RandomMixed { ws: u32 },
    /// `classic NAME OPS` (NAME without the `c-` prefix).
    Classic,
}

/// The LD_PRELOAD rows' workloads: name, program, timed ops of a full run.
pub const WORKLOADS: &[(&str, Program, u64)] = &[
    ("c-random-mixed-400", Program::RandomMixed { ws: 400 }, OPS),
    (
        "c-random-mixed-8192",
        Program::RandomMixed { ws: 8192 },
        OPS,
    ),
    (
        "c-random-mixed-100000",
        Program::RandomMixed { ws: 100_000 },
        OPS / 4,
    ),
    ("c-xmalloc", Program::Classic, 8_000_000),
    ("c-cache-scratch", Program::Classic, 20_000_000),
    ("c-cache-thrash", Program::Classic, 20_000_000),
    ("c-mstress", Program::Classic, 8_000_000),
    ("c-glibc-simple", Program::Classic, OPS),
    ("c-glibc-thread", Program::Classic, 8_000_000),
];
/// Timed ops of a full random-mixed C run.
pub const OPS: u64 = 20_000_000;

/// Full-run ops of the C workload `name`.
pub fn full_ops(name: &str) -> Option<u64> {
    WORKLOADS.iter().find(|w| w.0 == name).map(|w| w.2)
}

/// The C programs (paths of the built binaries).
pub struct Programs {
    pub random_mixed: PathBuf,
    pub classic: Option<PathBuf>,
}

/// A malloc to preload: its name and the library (None = the C library's own malloc).
pub struct Malloc {
    pub name: &'static str,
    pub lib: Option<PathBuf>,
}

/// Where Debian puts shared libraries.
const LIB_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/lib64",
    "/usr/lib",
];

fn find_lib(file: &str) -> Option<PathBuf> {
    LIB_DIRS
        .iter()
        .map(|d| Path::new(d).join(file))
        .find(|p| p.exists())
}

/// The mallocs to run, and a note for each one that has to be skipped (never replaced).
pub fn mallocs(kiln_lib: Option<&Path>) -> (Vec<Malloc>, Vec<String>) {
    let mut found = vec![Malloc {
        name: "glibc",
        lib: None,
    }];
    let mut notes = Vec::new();
    let debian = [
        ("mimalloc", "libmimalloc.so.2", "libmimalloc2.0"),
        ("jemalloc", "libjemalloc.so.2", "libjemalloc2"),
        (
            "tcmalloc",
            "libtcmalloc_minimal.so.4",
            "libtcmalloc-minimal4",
        ),
    ];
    for (name, file, pkg) in debian {
        match find_lib(file) {
            Some(lib) => found.push(Malloc {
                name,
                lib: Some(lib),
            }),
            None => notes.push(format!(
                "LD_PRELOAD {name}: skipped, {file} not found (Debian package {pkg})"
            )),
        }
    }
    match kiln_lib {
        Some(lib) if lib.exists() => found.insert(
            0,
            Malloc {
                name: "kiln",
                lib: Some(lib.to_path_buf()),
            },
        ),
        _ => notes.push(
            "LD_PRELOAD kiln: skipped, libkiln.so not built (cargo build --release -p kiln-preload)"
                .into(),
        ),
    }
    (found, notes)
}

/// One run of workload `name`; returns the outcome and the peak in KiB.
pub fn run(
    progs: &Programs,
    name: &str,
    program: Program,
    m: &Malloc,
    ops: u64,
) -> Result<(Outcome, u64), String> {
    let (c_bin, mut cmd) = match program {
        Program::RandomMixed { ws } => {
            let mut cmd = Command::new(&progs.random_mixed);
            cmd.arg(ops.to_string()).arg(ws.to_string());
            (&progs.random_mixed, cmd)
        }
        Program::Classic => {
            let bin = progs
                .classic
                .as_ref()
                .ok_or("no classic C program given (--c-classic-bin)")?;
            let mut cmd = Command::new(bin);
            cmd.arg(name.trim_start_matches("c-")).arg(ops.to_string());
            (bin, cmd)
        }
    };
    // Never inherit a preload from our own environment: glibc must be glibc.
    cmd.env_remove("LD_PRELOAD");
    if let Some(lib) = &m.lib {
        cmd.env("LD_PRELOAD", lib);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot start {}: {e}", c_bin.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!(
            "{} under {} failed ({}): {}",
            c_bin.display(),
            m.name,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    parse(&text).ok_or_else(|| format!("cannot parse the C loop's output `{}`", text.trim()))
}

/// Parses `ops=N secs=S peak_kib=K`.
fn parse(text: &str) -> Option<(Outcome, u64)> {
    let field = |key: &str| {
        text.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
    };
    let ops = field("ops")?.parse().ok()?;
    let secs = field("secs")?.parse().ok()?;
    let peak = field("peak_kib")?.parse().ok()?;
    Some((Outcome { ops, secs }, peak))
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn parses_the_c_loops_line() {
        let (o, peak) = parse("ops=20000000 secs=0.5 peak_kib=68\n").unwrap();
        assert_eq!((o.ops, o.secs, peak), (20_000_000, 0.5, 68));
        assert!(parse("ops=1 secs=x peak_kib=2").is_none());
        assert!(parse("garbage").is_none());
    }
}
