//! The real-program suite (`bench/programs/`, the programs of `cargo xtask bench vm`) at its test
//! sizes: each `NAME.kl` must print exactly `NAME.out` (Lua 5.4's output for the same program,
//! so the expected bytes do not come from kiln) in the interpreter and with the tracing JIT at
//! low thresholds, so traces are recorded, compiled and entered wherever the JIT can; a loop it
//! leaves to the interpreter is fine, different output is not.
//!
//! `bench/programs/suite.txt` lists the programs: `NAME BENCH-ARGS | TEST-ARGS`. A program of
//! the directory missing from the list, or a listed one missing its `.kl`, `.lua` or `.out`, is
//! a failure too.
use std::path::PathBuf;

use kiln::vm::{lang, Vm, VmConfig};

struct Program {
    name: String,
    args: Vec<String>,
    source: String,
    expected: String,
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../bench/programs")
}

fn read(name: &str) -> String {
    let path = dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The programs of `suite.txt` with their test arguments, sources and expected outputs.
fn suite() -> Vec<Program> {
    let mut out = Vec::new();
    for line in read("suite.txt").lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (left, test) = line
            .split_once('|')
            .unwrap_or_else(|| panic!("suite.txt: no `|` in {line:?}"));
        let name = left.split_whitespace().next().expect("a program name");
        assert!(
            dir().join(format!("{name}.lua")).is_file(),
            "{name}.lua is missing"
        );
        out.push(Program {
            name: name.to_string(),
            args: test.split_whitespace().map(String::from).collect(),
            source: read(&format!("{name}.kl")),
            expected: read(&format!("{name}.out")),
        });
    }
    out
}

/// Runs `p` in the interpreter; `Err` carries the error as the CLI would print it.
fn interpret(p: &Program) -> Result<String, String> {
    let prog = lang::compile(&p.source).map_err(|e| format!("{e}"))?;
    let mut vm = Vm::new(&prog, VmConfig::default()).map_err(|e| format!("{e}"))?;
    let args: Vec<&str> = p.args.iter().map(String::as_str).collect();
    vm.set_args(&args).map_err(|e| format!("{e:?}"))?;
    let mut out = String::new();
    vm.run(&mut out, None).map_err(|e| format!("{e}"))?;
    Ok(out)
}

#[test]
fn every_program_of_the_directory_is_listed() {
    let listed: Vec<String> = suite().into_iter().map(|p| p.name).collect();
    assert!(listed.len() >= 13, "only {} programs", listed.len());
    for entry in std::fs::read_dir(dir()).unwrap() {
        let file = entry.unwrap().file_name().into_string().unwrap();
        if let Some(name) = file.strip_suffix(".kl") {
            assert!(
                listed.iter().any(|l| l == name),
                "bench/programs/{file} is not in suite.txt"
            );
        }
    }
}

#[test]
fn interpreter_prints_the_expected_output() {
    let mut failed = Vec::new();
    for p in suite() {
        match interpret(&p) {
            Ok(out) if out == p.expected => {}
            Ok(out) => failed.push(format!(
                "{} {}: printed {out:?}, expected {:?}",
                p.name,
                p.args.join(" "),
                p.expected
            )),
            Err(e) => failed.push(format!("{} {}: {e}", p.name, p.args.join(" "))),
        }
    }
    assert!(failed.is_empty(), "\n{}", failed.join("\n"));
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod jit {
    use super::*;
    use kiln::jit::driver::{Jit, JitStats};
    use kiln::jit::func::FuncStats;
    use kiln_std::exec::StdExecMemory;

    static MEM: StdExecMemory = StdExecMemory::new();

    /// Runs `p` with the JIT: loops and functions hot after `threshold` back edges or calls.
    fn run_jit(p: &Program, threshold: u32) -> Result<(String, JitStats, FuncStats), String> {
        let prog = lang::compile(&p.source).map_err(|e| format!("{e}"))?;
        let config = VmConfig {
            jit_threshold: threshold,
            ..VmConfig::default()
        };
        let mut vm = Vm::new(&prog, config).map_err(|e| format!("{e}"))?;
        let args: Vec<&str> = p.args.iter().map(String::as_str).collect();
        vm.set_args(&args).map_err(|e| format!("{e:?}"))?;
        let mut out = String::new();
        let mut jit = Jit::new(&prog, &MEM, None);
        vm.run(&mut out, Some(&mut jit))
            .map_err(|e| format!("{e}"))?;
        Ok((out, jit.stats(), jit.func_stats()))
    }

    #[test]
    fn jit_prints_the_expected_output() {
        let mut failed = Vec::new();
        let (mut compiled, mut entered) = (0, 0);
        for p in suite() {
            for threshold in [1, 7] {
                match run_jit(&p, threshold) {
                    Ok((out, stats, funcs)) if out == p.expected => {
                        eprintln!("{} threshold {threshold}: {stats:?} {funcs:?}", p.name);
                        compiled += stats.compiled + funcs.compiled;
                        entered += stats.entered;
                    }
                    Ok((out, ..)) => failed.push(format!(
                        "{} {} (JIT threshold {threshold}): printed {out:?}, expected {:?}",
                        p.name,
                        p.args.join(" "),
                        p.expected
                    )),
                    Err(e) => failed.push(format!(
                        "{} {} (JIT threshold {threshold}): {e}",
                        p.name,
                        p.args.join(" ")
                    )),
                }
            }
        }
        assert!(failed.is_empty(), "\n{}", failed.join("\n"));
        // The suite must exercise native code, not only the fallback to the interpreter.
        assert!(
            compiled > 0 && entered > 0,
            "no trace compiled ({compiled}) or entered ({entered}) on the whole suite"
        );
    }
}
