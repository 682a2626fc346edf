//! Lane `vm`: the VM's tests, then the `kiln` CLI end to end on the examples (release build).
//!
//! The library tests (`core/tests/vm_*.rs`: snapshots, error messages, fuzzing) also run in the
//! `host` lane; this lane adds what only the built binary can show: each example's output
//! against its `.out` file, mandelbrot at N = 1000 (397380), `check`/`dis`, exit codes and
//! messages for bad programs and for JIT modes that do not exist yet; and the embedding example
//! `examples/host_filter.rs` (host functions and lent buffers, interpreter and JIT).
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{cargo, root, run as sh};

pub fn lane() -> Result<(), String> {
    sh(cargo(&[
        "test",
        "-p",
        "kiln",
        "--test",
        "vm_examples",
        "--test",
        "vm_errors",
        "--test",
        "vm_fuzz",
        "--test",
        "vm_lang",
        "--test",
        "vm_host",
    ]))?;
    // The embedding example checks itself (expected lines, interpreter == JIT) and fails
    // with a non-zero exit otherwise.
    sh(cargo(&[
        "run",
        "--release",
        "-p",
        "kiln-std",
        "--example",
        "host_filter",
    ]))?;
    let kiln = build_kiln()?;
    let examples = root().join("examples");
    for name in example_names(&examples)? {
        let args =
            std::fs::read_to_string(examples.join(format!("{name}.args"))).unwrap_or_default();
        let mut argv = vec!["run".to_string(), format!("examples/{name}.kl")];
        argv.extend(args.split_whitespace().map(String::from));
        let want = std::fs::read_to_string(examples.join(format!("{name}.out")))
            .map_err(|e| format!("examples/{name}.out: {e}"))?;
        expect(&kiln, &argv, 0, &want, "")?;
        expect(
            &kiln,
            &["check".into(), format!("examples/{name}.kl")],
            0,
            "ok (",
            "",
        )?;
    }
    let run = |args: &[&str]| args.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    expect(
        &kiln,
        &run(&["run", "examples/mandelbrot.kl", "1000"]),
        0,
        "397380\n",
        "",
    )?;
    expect(
        &kiln,
        &run(&["dis", "examples/fib.kl"]),
        0,
        "fn f1 fib (arity 1",
        "",
    )?;
    expect(
        &kiln,
        &run(&[
            "run",
            "--jit=on",
            "--trace-jit",
            "examples/mandelbrot.kl",
            "1000",
        ]),
        0,
        "397380\n",
        // The inner loop's header (PC 33: `args()[0]` is one `getidxi`, and the three loops'
        // `loop` markers come before it).
        "[JIT] Compiled loop at PC 33",
    )?;
    // Native code charges fuel as the interpreter does: the same error at the same place.
    for jit in ["--jit=off", "--jit=on"] {
        expect(
            &kiln,
            &run(&[
                "run",
                jit,
                "--jit-threshold",
                "2",
                "--fuel",
                "100000",
                "examples/mandelbrot.kl",
            ]),
            1,
            "",
            // (The `loop` markers make every function with loops longer, and its charges with
            // it: the budget runs out elsewhere than before them, the same place either way.)
            "runtime error at line 29 (fn main, pc 46): out of fuel",
        )?;
    }
    // The function JIT from the CLI: `--jit=on` compiles fib on its first call.
    for line in [
        "[JIT] Hot function fib detected (calls: 1)",
        "[JIT] Compiled function fib (",
    ] {
        expect(
            &kiln,
            &run(&["run", "--jit=on", "--trace-jit", "examples/fib.kl", "20"]),
            0,
            "fib(20) = 6765\n",
            line,
        )?;
    }
    expect(
        &kiln,
        &run(&["run", "--fuel", "1000", "examples/mandelbrot.kl"]),
        1,
        "",
        "out of fuel",
    )?;
    let bad = std::env::temp_dir().join("kiln-vm-lane-bad.kl");
    std::fs::write(&bad, "let x = 1;\nlet y = x +;\n").map_err(|e| e.to_string())?;
    let bad = bad.to_string_lossy().into_owned();
    expect(
        &kiln,
        &run(&["check", &bad]),
        1,
        "",
        "syntax error at 2:12: expected an expression, found `;`",
    )?;
    eprintln!("vm lane: CLI checks passed");
    Ok(())
}

/// Builds the release `kiln` binary and returns its path.
pub fn build_kiln() -> Result<PathBuf, String> {
    sh(cargo(&[
        "build",
        "--release",
        "-p",
        "kiln-std",
        "--bin",
        "kiln",
    ]))?;
    Ok(root().join("target/release/kiln"))
}

fn example_names(dir: &Path) -> Result<Vec<String>, String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter_map(|n| n.strip_suffix(".kl").map(String::from))
        .collect();
    names.sort();
    Ok(names)
}

/// Runs `kiln ARGS` and checks the exit code; `stdout_has`/`stderr_has` must appear in the
/// output (for a run with expected output, stdout must equal it exactly).
fn expect(
    kiln: &Path,
    args: &[String],
    code: i32,
    stdout_has: &str,
    stderr_has: &str,
) -> Result<(), String> {
    let out = Command::new(kiln)
        .args(args)
        .current_dir(root())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", kiln.display()))?;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    let exact = args.first().is_some_and(|a| a == "run") && code == 0;
    let stdout_ok = if exact {
        stdout == stdout_has
    } else {
        stdout.contains(stdout_has)
    };
    if out.status.code() != Some(code) || !stdout_ok || !stderr.contains(stderr_has) {
        return Err(format!(
            "kiln {}: want exit {code}, stdout {stdout_has:?}, stderr containing {stderr_has:?}; \
             got {:?}, stdout {stdout:?}, stderr {stderr:?}",
            args.join(" "),
            out.status.code()
        ));
    }
    eprintln!("ok: kiln {}", args.join(" "));
    Ok(())
}
