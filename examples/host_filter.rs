//! Embedding kiln's VM: a log filter written in `.kl` runs over a buffer the host lends it.
//!
//! The host registers `alert(buf, start, len)` (it reads the flagged line straight out of the
//! lent buffer and returns how many lines it has been told about) and `budget()`, and declares two buffers: `log` (the input, one line per `\n`)
//! and `out` (where the filter copies the lines that start with `E `). The program runs once in
//! the interpreter and once with the tracing JIT, under a fuel budget and a memory cap; both
//! runs must give the same buffers, alerts and result.
//!
//! Run: `cargo run -p kiln-std --example host_filter` (both runs, compared), or with argument
//! `interp` or `jit` for one run only.
use std::cell::RefCell;

use kiln::vm::{compile_with, Host, HostError, Ty};
use kiln::vm::{Value, Vm, VmConfig};

const FILTER: &str = "
let i = 0;
let start = 0;
let o = 0;
let kept = 0;
let limit = budget();
while i < len(log) {
    if log[i] == 10 {
        if i - start >= 2 && log[start] == 69 && log[start + 1] == 32 && kept < limit {
            let j = start;
            while j <= i {
                out[o] = log[j];
                o = o + 1;
                j = j + 1;
            }
            kept = alert(log, start, i - start);
        }
        start = i + 1;
    }
    i = i + 1;
}
return o;
";

/// A log of `lines` lines; every seventh is an error line.
fn make_log(lines: usize) -> Vec<u8> {
    let mut log = Vec::new();
    for n in 0..lines {
        let line = if n % 7 == 3 {
            format!("E disk {} read failed\n", n % 4)
        } else {
            format!("I request {n} served in {} us\n", n * 13 % 997)
        };
        log.extend_from_slice(line.as_bytes());
    }
    log
}

struct Run {
    written: i64,
    out: Vec<u8>,
    alerts: Vec<String>,
    fuel_left: u64,
}

fn run(log: &mut [u8], jit: bool) -> Result<Run, Box<dyn std::error::Error>> {
    let alerts = RefCell::new(Vec::new());
    let mut host = Host::new();
    host.register("budget", &[], |_, _| Ok(Value::Int(1000)))?;
    host.register("alert", &[Ty::Buffer, Ty::Int, Ty::Int], |ctx, args| {
        let (start, len) = (args.int(1) as usize, args.int(2) as usize);
        ctx.charge(len as u64)?;
        let buf = ctx.buffer(args, 0)?;
        let line = buf
            .get(start..start + len)
            .ok_or(HostError::new("line outside the log"))?;
        let mut alerts = alerts.borrow_mut();
        alerts.push(String::from_utf8_lossy(line).into_owned());
        Ok(Value::Int(alerts.len() as i64))
    })?;
    host.buffer("log")?;
    host.buffer("out")?;
    let prog = compile_with(&host, FILTER)?;
    let config = VmConfig {
        fuel: Some(50_000_000),
        memory_cap: 1 << 20,
        jit_threshold: if jit { 10 } else { 0 },
        ..VmConfig::default()
    };
    let mut vm = Vm::new(&prog, config)?;
    let mut out = vec![0u8; log.len()];
    let mut sink = String::new();
    let result = if jit {
        jit_run(&prog, &mut vm, &mut host, log, &mut out, &mut sink)?
    } else {
        vm.run_with(&mut host, &mut [log, &mut out], &mut sink, None)?
    };
    drop(host);
    let Value::Int(written) = result else {
        return Err("the filter returned a non-int".into());
    };
    out.truncate(written as usize);
    Ok(Run {
        written,
        out,
        alerts: alerts.into_inner(),
        fuel_left: vm.fuel_left(),
    })
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn jit_run(
    prog: &kiln::vm::Program,
    vm: &mut Vm<'_>,
    host: &mut Host<'_>,
    log: &mut [u8],
    out: &mut [u8],
    sink: &mut String,
) -> Result<Value, Box<dyn std::error::Error>> {
    static MEM: kiln_std::exec::StdExecMemory = kiln_std::exec::StdExecMemory::new();
    let mut jit = kiln::jit::Jit::new(prog, &MEM, None);
    let v = vm.run_with(host, &mut [log, out], sink, Some(&mut jit))?;
    let s = jit.stats();
    println!(
        "JIT: {} traces compiled, {} host calls from native code, {} host stops",
        s.compiled, s.native_host_calls, s.host_steps
    );
    Ok(v)
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn jit_run(
    _: &kiln::vm::Program,
    vm: &mut Vm<'_>,
    host: &mut Host<'_>,
    log: &mut [u8],
    out: &mut [u8],
    sink: &mut String,
) -> Result<Value, Box<dyn std::error::Error>> {
    Ok(vm.run_with(host, &mut [log, out], sink, None)?)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let log = make_log(3000);
    // `interp` or `jit`: one run only (for instruction counts under callgrind).
    if let Some(mode) = std::env::args().nth(1) {
        if mode != "interp" && mode != "jit" {
            return Err(format!("unknown mode `{mode}` (want interp or jit)").into());
        }
        let r = run(&mut log.clone(), mode == "jit")?;
        println!(
            "{mode}: kept {} lines, fuel left {}",
            r.alerts.len(),
            r.fuel_left
        );
        return Ok(());
    }
    let interp = run(&mut log.clone(), false)?;
    let jit = run(&mut log.clone(), true)?;
    let want: Vec<u8> = log
        .split_inclusive(|&b| b == b'\n')
        .filter(|l| l.starts_with(b"E "))
        .flatten()
        .copied()
        .collect();
    if interp.out != want {
        return Err("the filter copied the wrong lines".into());
    }
    if jit.out != interp.out || jit.alerts != interp.alerts || jit.fuel_left != interp.fuel_left {
        return Err("the interpreter and the JIT disagree".into());
    }
    println!(
        "kept {} error lines ({} bytes) of {} bytes; first alert: {:?}; fuel left {}",
        interp.alerts.len(),
        interp.written,
        log.len(),
        interp.alerts.first().map(String::as_str).unwrap_or(""),
        interp.fuel_left
    );
    println!("interpreter and JIT agree");
    Ok(())
}
