//! A kernel that must fail, four ways (chosen by the `must-fail-*` feature it is built with):
//! a panic, a CPU exception, an `Err` verdict, a hang. `cargo xtask test qemu` runs each and
//! passes only if the runner reports a failure with the expected message, which shows that
//! nothing but an explicit success exit counts as a pass.
#![no_std]
#![no_main]

use kiln_bare::{boot::Verdict, println};
// Links the shared crate, which holds the global allocator every kernel uses.
use kiln_qemu_tests as _;

kiln_bare::entry!(main);

fn main() -> Verdict {
    println!("must_fail: {}", MODE);
    fail()
}

#[cfg(feature = "must-fail-panic")]
const MODE: &str = "panic";
#[cfg(feature = "must-fail-panic")]
fn fail() -> Verdict {
    let v = core::hint::black_box(7u32);
    panic!("deliberate panic with value {v}");
}

#[cfg(feature = "must-fail-fault")]
const MODE: &str = "fault";
#[cfg(feature = "must-fail-fault")]
fn fail() -> Verdict {
    // Above everything either architecture maps (x86_64: 4 GiB; aarch64 with -m 256M: 2 GiB).
    let unmapped = core::hint::black_box(0x20_0000_0000usize) as *mut u64;
    // SAFETY: not safe at all, on purpose: the write must trap into the reporting vectors.
    unsafe { unmapped.write_volatile(1) };
    Ok(())
}

#[cfg(feature = "must-fail-verdict")]
const MODE: &str = "verdict";
#[cfg(feature = "must-fail-verdict")]
fn fail() -> Verdict {
    Err("deliberate Err verdict")
}

#[cfg(feature = "must-fail-hang")]
const MODE: &str = "hang";
#[cfg(feature = "must-fail-hang")]
fn fail() -> Verdict {
    loop {
        core::hint::spin_loop();
    }
}
