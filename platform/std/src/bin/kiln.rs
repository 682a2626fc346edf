//! `kiln`: run, check or disassemble a `.kl` program.
//!
//! ```text
//! kiln run FILE [ARGS...] [--jit=off|auto|on] [--jit-threshold N] [--trace-jit]
//!          [--fuel N] [--memory-cap BYTES]
//! kiln check FILE        parse, compile and verify only
//! kiln dis FILE          disassemble
//! ```
//! `--fuel N` stops the program with an out-of-fuel error after N instructions (native code
//! charges the same); `--memory-cap BYTES` stops it with an error when its live heap would
//! exceed BYTES.
//! Exit codes: 0 success, 1 program error (syntax, verify, runtime), 2 usage or I/O error.
//! The whole process allocates through kiln's own allocator ([`kiln_std::KilnAlloc`]).
use std::fmt;
use std::io::Write as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use kiln::vm::{bytecode, lang, Error, Vm, VmConfig};

#[global_allocator]
static ALLOC: kiln_std::KilnAlloc = kiln_std::KilnAlloc;

#[derive(Parser)]
#[command(
    name = "kiln",
    version,
    about = "Run, check or disassemble kiln (.kl) programs"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Compile, verify and run FILE; ARGS are visible to the program via `args()`.
    Run {
        file: String,
        /// JIT mode: `auto` compiles hot loops when this CPU has a backend (x86-64, AArch64);
        /// `on` insists (error otherwise); `off` only interprets. Native code charges `--fuel`
        /// exactly as the interpreter does.
        #[arg(long, value_enum, default_value_t = JitMode::Auto)]
        jit: JitMode,
        /// Arrivals at a loop header (backward jumps, entries into the loop) before it counts as hot.
        #[arg(long, default_value_t = 1000)]
        jit_threshold: u32,
        /// Print `[JIT]` events.
        #[arg(long)]
        trace_jit: bool,
        /// Instruction budget (unlimited when absent).
        #[arg(long)]
        fuel: Option<u64>,
        /// Cap on the program's live heap bytes.
        #[arg(long)]
        memory_cap: Option<usize>,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Parse, compile and verify FILE without running it.
    Check { file: String },
    /// Print FILE's bytecode.
    Dis { file: String },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum JitMode {
    Off,
    Auto,
    On,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Run {
            file,
            jit,
            jit_threshold,
            trace_jit,
            fuel,
            memory_cap,
            args,
        } => {
            // Only two architectures have a backend.
            let jit_possible = cfg!(any(target_arch = "x86_64", target_arch = "aarch64"));
            if jit == JitMode::On && !jit_possible {
                eprintln!("kiln: --jit=on needs an x86-64 or AArch64 host");
                return ExitCode::from(2);
            }
            let use_jit = jit != JitMode::Off && jit_possible && jit_threshold > 0;
            let config = VmConfig {
                fuel,
                memory_cap: memory_cap.unwrap_or(usize::MAX),
                jit_threshold: if use_jit { jit_threshold } else { 0 },
                ..VmConfig::default()
            };
            // `--jit=on` compiles functions on their first call (loops keep the threshold).
            let eager = use_jit && jit == JitMode::On;
            with_source(&file, |src| {
                run(src, &args, config, (use_jit, eager), trace_jit)
            })
        }
        Cmd::Check { file } => with_source(&file, |src| {
            let prog = lang::compile(src)?;
            kiln::vm::verify(&prog)?;
            println!(
                "{file}: ok ({} functions, {} constants)",
                prog.funcs.len(),
                prog.consts.len()
            );
            Ok(())
        }),
        Cmd::Dis { file } => with_source(&file, |src| {
            let prog = lang::compile(src)?;
            let mut text = String::new();
            bytecode::disassemble(&mut text, &prog).expect("writing to a String cannot fail");
            print!("{text}");
            Ok(())
        }),
    }
}

fn with_source(file: &str, f: impl FnOnce(&str) -> Result<(), Error>) -> ExitCode {
    let src = match std::fs::read_to_string(file) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kiln: cannot read {file}: {e}");
            return ExitCode::from(2);
        }
    };
    match f(&src) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{file}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(
    src: &str,
    args: &[String],
    config: VmConfig,
    (use_jit, eager_funcs): (bool, bool),
    trace_jit: bool,
) -> Result<(), Error> {
    let prog = lang::compile(src)?;
    let mut vm = Vm::new(&prog, config)?;
    if eager_funcs {
        vm.set_func_threshold(1);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    vm.set_args(&args)?;
    let stdout = std::io::stdout();
    let mut out = IoWrite(std::io::BufWriter::new(stdout.lock()));
    let result = run_vm(&prog, &mut vm, &mut out, use_jit, trace_jit);
    let _ = out.0.flush();
    result.map(|_| ())?;
    Ok(())
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn run_vm(
    prog: &kiln::vm::Program,
    vm: &mut Vm<'_>,
    out: &mut dyn fmt::Write,
    use_jit: bool,
    trace_jit: bool,
) -> Result<kiln::vm::Value, kiln::vm::RuntimeError> {
    if !use_jit {
        return vm.run(out, None);
    }
    static EXEC: kiln_std::exec::StdExecMemory = kiln_std::exec::StdExecMemory::new();
    let console = kiln_std::StdConsole;
    let log: Option<&dyn kiln::platform::Console> = if trace_jit { Some(&console) } else { None };
    let mut jit = kiln::jit::driver::Jit::new(prog, &EXEC, log);
    let result = vm.run(out, Some(&mut jit));
    if trace_jit {
        eprintln!("[JIT] Stats: {:?}", jit.stats());
        eprintln!("[JIT] Function stats: {:?}", jit.func_stats());
    }
    result
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn run_vm(
    _prog: &kiln::vm::Program,
    vm: &mut Vm<'_>,
    out: &mut dyn fmt::Write,
    _use_jit: bool,
    _trace_jit: bool,
) -> Result<kiln::vm::Value, kiln::vm::RuntimeError> {
    vm.run(out, None)
}

/// `fmt::Write` over an `io::Write`, so the no_std VM can print to stdout.
struct IoWrite<W: std::io::Write>(W);

impl<W: std::io::Write> fmt::Write for IoWrite<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.write_all(s.as_bytes()).map_err(|_| fmt::Error)
    }
}
