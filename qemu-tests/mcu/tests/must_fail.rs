//! An image that must fail: it panics after printing what a passing image prints first, so a
//! run is reported as a failure only if the runner really checks the exit status and the
//! success line. Built only with feature `must-fail` (the `mcu` lane requires its run to fail
//! with `[kiln-mcu] PANIC`).
#![no_std]
#![no_main]

use cortex_m_rt::entry;
use kiln_mcu_tests::println;

#[entry]
fn main() -> ! {
    println!("about to fail on purpose");
    panic!("deliberate panic");
}
