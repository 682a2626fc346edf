//! SMP exec kernel (run with `-smp 2`): JIT code installed on one CPU runs on the other, and
//! permission flips reach the other CPU's TLB (the shoot-down of `kiln_bare::tlb`: x86_64 IPI,
//! aarch64 broadcast `tlbi`).
//!
//! Each round one CPU is the *installer* (takes exec memory, writes code, flips it, frees it)
//! and the other the *runner* (probes and calls the code through `guard::call_guarded`, which
//! turns a page fault into a value). Roles alternate, so both directions are covered.
//! ```text
//!   installer                         runner
//!   map_writable -> addr              write addr+0x800: must succeed (its TLB now says RW)
//!   copy code A, make_executable      write: must fault (a stale RW entry would let it through)
//!                                     call addr: must return A's result
//!   unmap                             call addr: must fault (a stale RX entry would run it)
//!   InstalledTrace::install(B) -> the same page, rewritten
//!                                     call: must return B's result (not A's)
//!   release
//! ```
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicBool, Ordering};

use kiln::jit::install::InstalledTrace;
use kiln::platform::{CodeRegion, ExecMemory};
use kiln_bare::guard::{call_guarded, PageFault};
use kiln_bare::sync::IrqMutex;
use kiln_bare::{boot::Verdict, cache, cpu, exec::EXEC, println, smp};
use kiln_qemu_tests::{check, ARCH};

kiln_bare::entry!(main);

const ROUNDS: usize = 20;
/// Where the runner's write probe lands in the page (past the code).
const PROBE_OFFSET: usize = 0x800;

/// `f(x) = x + 7`.
#[cfg(target_arch = "x86_64")]
const ADD7: &[u8] = &[0x48, 0x8d, 0x47, 0x07, 0xc3]; // lea rax, [rdi + 7]; ret
#[cfg(target_arch = "aarch64")]
const ADD7: &[u8] = &[0x00, 0x1c, 0x00, 0x91, 0xc0, 0x03, 0x5f, 0xd6]; // add x0, x0, #7; ret

/// `f(x) = x + x`.
#[cfg(target_arch = "x86_64")]
const DOUBLE: &[u8] = &[0x48, 0x8d, 0x04, 0x3f, 0xc3]; // lea rax, [rdi + rdi]; ret
#[cfg(target_arch = "aarch64")]
const DOUBLE: &[u8] = &[0x00, 0x00, 0x00, 0x8b, 0xc0, 0x03, 0x5f, 0xd6]; // add x0, x0, x0; ret

/// Machine code of `extern "C" fn(u64) -> u64`, and what it computes.
type Program = (&'static [u8], fn(u64) -> u64);

/// The two programs.
const CODES: [Program; 2] = [(ADD7, |x| x + 7), (DOUBLE, |x| x + x)];

#[derive(Clone, Copy, Debug)]
enum Op {
    Map,
    Protect(usize),
    Unmap,
    InstallTrace(usize),
    ReleaseTrace,
    Write(usize),
    Call(usize, u64),
    Stop,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reply {
    Addr(usize),
    Value(u64),
    Fault(usize),
    Done,
    Refused,
}

/// A code region handed between CPUs.
struct Owned<T>(Option<T>);

// SAFETY: a `CodeRegion` / `InstalledTrace` names exec-window memory, which any CPU may write,
// run or free (the window is global and behind its own lock); the pointer is not tied to a CPU.
unsafe impl<T> Send for Owned<T> {}

/// The installer's current region / trace (either CPU may be the installer).
static REGION: IrqMutex<Owned<CodeRegion>> = IrqMutex::new(Owned(None));
static TRACE: IrqMutex<Owned<InstalledTrace>> = IrqMutex::new(Owned(None));

static REQUEST: IrqMutex<Option<Op>> = IrqMutex::new(None);
static REPLY: IrqMutex<Option<Reply>> = IrqMutex::new(None);
static STOPPED: AtomicBool = AtomicBool::new(false);

extern "C" fn write_probe(addr: u64) -> u64 {
    // SAFETY: `addr` is inside an exec-window page; if it is not writable the access faults and
    // the guarded call recovers.
    unsafe { core::ptr::write_volatile(addr as *mut u8, 0x5A) };
    0
}

fn guarded(f: usize, arg: u64) -> Reply {
    // SAFETY: `f` is `write_probe` or an exec-window page holding `fn(u64) -> u64` code (or
    // one whose execution faults); neither holds locks or owns anything when abandoned.
    match unsafe { call_guarded(f, arg) } {
        Ok(v) => Reply::Value(v),
        Err(PageFault { addr }) => Reply::Fault(addr),
    }
}

/// Carries out `op` on this CPU.
fn perform(op: Op) -> Reply {
    match op {
        Op::Map => match EXEC.map_writable(1) {
            Some(region) => {
                REGION.lock().0 = Some(region);
                Reply::Addr(region.ptr.as_ptr() as usize)
            }
            None => Reply::Refused,
        },
        Op::Protect(code) => {
            let Some(region) = REGION.lock().0 else {
                return Reply::Refused;
            };
            let code = CODES[code].0;
            // SAFETY: the region is ours, writable and one page long; nothing runs in it.
            unsafe {
                core::ptr::copy_nonoverlapping(code.as_ptr(), region.ptr.as_ptr(), code.len())
            };
            // SAFETY: from map_writable; nobody executes or writes it meanwhile.
            if unsafe { EXEC.make_executable(region) } {
                Reply::Done
            } else {
                Reply::Refused
            }
        }
        Op::Unmap => match REGION.lock().0.take() {
            Some(region) => {
                // SAFETY: the runner has returned from the code and only probes it afterwards
                // (guarded, expecting a fault).
                unsafe { EXEC.unmap(region) };
                Reply::Done
            }
            None => Reply::Refused,
        },
        Op::InstallTrace(code) => match InstalledTrace::install(&EXEC, CODES[code].0, 0) {
            Ok(trace) => {
                let addr = trace.entry().as_ptr() as usize;
                TRACE.lock().0 = Some(trace);
                Reply::Addr(addr)
            }
            Err(_) => Reply::Refused,
        },
        Op::ReleaseTrace => match TRACE.lock().0.take() {
            Some(trace) => {
                // SAFETY: installed from EXEC; the runner has returned from it.
                unsafe { trace.release(&EXEC) };
                Reply::Done
            }
            None => Reply::Refused,
        },
        Op::Write(addr) => guarded(write_probe as *const () as usize, addr as u64),
        Op::Call(addr, arg) => {
            // Code another CPU installed: resynchronise this CPU's instruction stream first.
            cache::sync_core();
            guarded(addr, arg)
        }
        Op::Stop => {
            STOPPED.store(true, Ordering::Release);
            Reply::Done
        }
    }
}

/// The second CPU: serve requests until `Stop`.
fn worker() {
    while !STOPPED.load(Ordering::Acquire) {
        let op = REQUEST.lock().take();
        if let Some(op) = op {
            let reply = perform(op);
            *REPLY.lock() = Some(reply);
        }
        core::hint::spin_loop();
    }
}

/// Carries out `op` on CPU `cpu` (0: here; 1: the worker).
fn on(cpu: usize, op: Op) -> Reply {
    if cpu == 0 {
        return perform(op);
    }
    *REQUEST.lock() = Some(op);
    loop {
        if let Some(reply) = REPLY.lock().take() {
            return reply;
        }
        core::hint::spin_loop();
    }
}

/// `on(cpu, op)` must give `want`.
fn expect(cpu: usize, op: Op, want: Reply, what: &'static str) -> Result<(), &'static str> {
    let got = on(cpu, op);
    if got != want {
        println!("{ARCH}: CPU {cpu} {op:?}: got {got:?}, want {want:?}");
        return Err(what);
    }
    Ok(())
}

fn round(n: usize) -> Result<(), &'static str> {
    let (installer, runner) = if n.is_multiple_of(2) { (0, 1) } else { (1, 0) };
    let (first, second) = (n % 2, (n + 1) % 2);
    let arg = 1000 + n as u64;
    let Reply::Addr(addr) = on(installer, Op::Map) else {
        return Err("map_writable failed");
    };
    let probe = addr + PROBE_OFFSET;
    expect(
        runner,
        Op::Write(probe),
        Reply::Value(0),
        "writable page refused a write",
    )?;
    expect(
        installer,
        Op::Protect(first),
        Reply::Done,
        "make_executable refused",
    )?;
    expect(
        runner,
        Op::Write(probe),
        Reply::Fault(probe),
        "write to an executable page went through (stale writable TLB entry)",
    )?;
    expect(
        runner,
        Op::Call(addr, arg),
        Reply::Value(CODES[first].1(arg)),
        "installed code computed the wrong value on the other CPU",
    )?;
    expect(installer, Op::Unmap, Reply::Done, "unmap failed")?;
    expect(
        runner,
        Op::Call(addr, arg),
        Reply::Fault(addr),
        "freed page still executable (stale executable TLB entry)",
    )?;
    expect(
        installer,
        Op::InstallTrace(second),
        Reply::Addr(addr),
        "the freed page was not reused for the next install",
    )?;
    expect(
        runner,
        Op::Call(addr, arg),
        Reply::Value(CODES[second].1(arg)),
        "rewritten page ran stale code on the other CPU",
    )?;
    expect(installer, Op::ReleaseTrace, Reply::Done, "release failed")
}

fn main() -> Verdict {
    check(smp::possible_cpus() >= 2, "run this kernel with -smp 2")?;
    smp::start_secondary(worker).map_err(|e| {
        println!("start_secondary: {e:?}");
        "secondary CPU did not start"
    })?;
    check(cpu::cpu_index() == 0, "main is not on the boot CPU")?;
    for n in 0..ROUNDS {
        round(n)?;
    }
    on(1, Op::Stop);
    let shootdowns = kiln_bare::tlb::remote_shootdowns();
    println!(
        "{ARCH}: {ROUNDS} rounds of install on one CPU / run on the other, {shootdowns} shoot-downs"
    );
    // Every round flips permissions four times (protect, unmap, install, release).
    check(shootdowns >= 4 * ROUNDS, "fewer shoot-downs than flips")
}
