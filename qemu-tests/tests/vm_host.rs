//! Host-API kernel: a packet filter written in `.kl` runs over a packet ring the kernel lends
//! it, calling kernel-provided functions, under the tracing JIT and in the interpreter.
//!
//! The kernel registers `port_allowed(port)` (its firewall table, a bool) and `accept(i, sum)`
//! (its accounting, an int), which the JIT's native code calls directly, declares the buffers `ring` (256 packets of 16 bytes: protocol, big-endian
//! destination port, 13 payload bytes) and `verdict` (one byte per packet), and runs
//! [`FILTER`] with the JIT (threshold 10, code in kiln-bare's exec window) and without it.
//!
//! Passes only if both runs give the kernel's own answer (computed in Rust from the same ring):
//! the same kept count, verdict bytes, accept calls and fuel, and the JIT run compiled traces
//! whose native code called the kernel's functions.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use core::cell::Cell;

use kiln::jit::driver::{Jit, JitStats};
use kiln::vm::{compile_with, Host, Ty};
use kiln::vm::{Value, Vm, VmConfig};
use kiln_bare::{boot::Verdict, exec::EXEC, println};
use kiln_qemu_tests::{check, ARCH};

kiln_bare::entry!(main);

const FILTER: &str = "
let n = len(ring) / 16;
let i = 0;
let kept = 0;
while i < n {
    let base = i * 16;
    if ring[base] == 6 && port_allowed(ring[base + 1] * 256 + ring[base + 2]) {
        let sum = 0;
        let j = 3;
        while j < 16 {
            sum = sum + ring[base + j];
            j = j + 1;
        }
        verdict[i] = sum % 255 + 1;
        accept(i, sum);
        kept = kept + 1;
    } else {
        verdict[i] = 0;
    }
    i = i + 1;
}
return kept;
";

const PACKETS: usize = 256;
const ALLOWED: [i64; 3] = [22, 80, 443];

fn make_ring() -> Vec<u8> {
    let mut ring = Vec::with_capacity(PACKETS * 16);
    let mut x: u32 = 12345;
    let ports = [22u16, 53, 80, 443, 8080];
    for _ in 0..PACKETS {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        let proto = if x >> 28 < 11 { 6 } else { 17 };
        let port = ports[(x >> 16) as usize % ports.len()];
        ring.push(proto);
        ring.extend_from_slice(&port.to_be_bytes());
        for k in 0..13u32 {
            ring.push((x >> (k % 24)) as u8);
        }
    }
    ring
}

/// What the kernel expects: kept count, verdicts, accept calls (packet, sum).
fn oracle(ring: &[u8]) -> (i64, Vec<u8>, Vec<(i64, i64)>) {
    let (mut kept, mut verdict, mut accepted) = (0, Vec::new(), Vec::new());
    for (i, p) in ring.chunks(16).enumerate() {
        let port = p[1] as i64 * 256 + p[2] as i64;
        if p[0] == 6 && ALLOWED.contains(&port) {
            let sum: i64 = p[3..].iter().map(|&b| b as i64).sum();
            verdict.push((sum % 255 + 1) as u8);
            accepted.push((i as i64, sum));
            kept += 1;
        } else {
            verdict.push(0);
        }
    }
    (kept, verdict, accepted)
}

struct Outcome {
    kept: i64,
    verdict: Vec<u8>,
    accepted: Vec<(i64, i64)>,
    fuel_left: u64,
    stats: JitStats,
}

fn run(ring: &mut [u8], jit: bool) -> Result<Outcome, &'static str> {
    let accepted = core::cell::RefCell::new(Vec::new());
    let lookups = Cell::new(0u32);
    let mut host = Host::new();
    host.register("port_allowed", &[Ty::Int], |_, args| {
        lookups.set(lookups.get() + 1);
        Ok(Value::Bool(ALLOWED.contains(&args.int(0))))
    })
    .map_err(|_| "register port_allowed")?;
    host.register("accept", &[Ty::Int, Ty::Int], |ctx, args| {
        ctx.charge(10)?;
        let mut acc = accepted.borrow_mut();
        acc.push((args.int(0), args.int(1)));
        Ok(Value::Int(acc.len() as i64))
    })
    .map_err(|_| "register accept")?;
    host.buffer("ring").map_err(|_| "declare ring")?;
    host.buffer("verdict").map_err(|_| "declare verdict")?;
    let prog = compile_with(&host, FILTER).map_err(|_| "the filter does not compile")?;
    let config = VmConfig {
        fuel: Some(100_000_000),
        memory_cap: 1 << 20,
        jit_threshold: if jit { 10 } else { 0 },
        ..VmConfig::default()
    };
    let mut vm = Vm::new(&prog, config).map_err(|_| "the filter does not verify")?;
    let mut verdict = alloc::vec![0xAAu8; PACKETS];
    let mut out = String::new();
    let mut stats = JitStats::default();
    let result = if jit {
        let mut driver = Jit::new(&prog, &EXEC, Some(&kiln_bare::console::SerialConsole));
        let r = vm.run_with(
            &mut host,
            &mut [ring, &mut verdict],
            &mut out,
            Some(&mut driver),
        );
        stats = driver.stats();
        r
    } else {
        vm.run_with(&mut host, &mut [ring, &mut verdict], &mut out, None)
    };
    drop(host);
    let Ok(Value::Int(kept)) = result else {
        return Err("the filter failed or returned a non-int");
    };
    Ok(Outcome {
        kept,
        verdict,
        accepted: accepted.into_inner(),
        fuel_left: vm.fuel_left(),
        stats,
    })
}

fn main() -> Verdict {
    let ring = make_ring();
    let (kept, verdict, accepted) = oracle(&ring);
    let jit = run(&mut ring.clone(), true)?;
    println!(
        "{ARCH}: JIT filter kept {} of {PACKETS} packets; stats {:?}",
        jit.kept, jit.stats
    );
    let interp = run(&mut ring.clone(), false)?;
    println!("{ARCH}: interpreter kept {}", interp.kept);
    check(kept > 0 && kept < PACKETS as i64, "a trivial ring")?;
    check(
        interp.kept == kept && interp.verdict == verdict && interp.accepted == accepted,
        "the interpreter disagrees with the kernel's answer",
    )?;
    check(
        jit.kept == kept && jit.verdict == verdict && jit.accepted == accepted,
        "the JIT disagrees with the kernel's answer",
    )?;
    check(
        jit.fuel_left == interp.fuel_left,
        "the JIT charged other fuel than the interpreter",
    )?;
    check(
        jit.stats.compiled >= 1 && jit.stats.entered >= 1 && jit.stats.native_host_calls >= 100,
        "no trace was compiled, entered and called the kernel's functions natively",
    )
}
