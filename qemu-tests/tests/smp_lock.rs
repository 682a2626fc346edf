//! SMP lock kernel (run with `-smp 2`): a second CPU starts (aarch64: PSCI `CPU_ON`), gets its
//! own CPU index, and both CPUs hammer one `IrqMutex`-protected counter with a non-atomic
//! read-modify-write. A lost update (a broken lock) or a CPU that never starts fails the run.
#![no_std]
#![no_main]

use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use kiln_bare::sync::IrqMutex;
use kiln_bare::{boot::Verdict, cpu, println, smp};
use kiln_qemu_tests::{check, ARCH};

kiln_bare::entry!(main);

const ROUNDS: usize = 200_000;

static COUNTER: IrqMutex<usize> = IrqMutex::new(0);
static GO: AtomicBool = AtomicBool::new(false);
static DONE: AtomicUsize = AtomicUsize::new(0);
static SECONDARY_INDEX: AtomicUsize = AtomicUsize::new(usize::MAX);

fn hammer() {
    for _ in 0..ROUNDS {
        let mut c = COUNTER.lock();
        // Split read and write so a second CPU inside the lock would lose an update.
        let v = core::hint::black_box(*c);
        *c = v + 1;
    }
}

fn secondary() {
    SECONDARY_INDEX.store(cpu::cpu_index(), Ordering::Release);
    println!("hello from CPU {}", cpu::cpu_index());
    while !GO.load(Ordering::Acquire) {
        core::hint::spin_loop();
    }
    hammer();
    DONE.fetch_add(1, Ordering::AcqRel);
}

fn main() -> Verdict {
    println!("{ARCH}: {} CPUs in the machine", smp::possible_cpus());
    check(smp::possible_cpus() >= 2, "run this kernel with -smp 2")?;
    let index = smp::start_secondary(secondary).map_err(|e| {
        println!("start_secondary: {e:?}");
        "secondary CPU did not start"
    })?;
    check(
        index == 1 && smp::running_cpus() == 2,
        "CPU index of the secondary",
    )?;
    GO.store(true, Ordering::Release);
    hammer();
    DONE.fetch_add(1, Ordering::AcqRel);
    while DONE.load(Ordering::Acquire) < 2 {
        core::hint::spin_loop();
    }
    check(
        SECONDARY_INDEX.load(Ordering::Acquire) == 1,
        "secondary saw the wrong CPU index",
    )?;
    check(cpu::cpu_index() == 0, "boot CPU index changed")?;
    let total = *COUNTER.lock();
    println!("counter after 2 x {ROUNDS} locked increments: {total}");
    check(total == 2 * ROUNDS, "lost updates under the lock")
}
