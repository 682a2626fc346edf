//! JIT stack kernel: a recursive `.kl` program with every function compiled on its first call
//! (function JIT, direct native-to-native calls), on kiln-bare's boot stack
//! ([`kiln_bare::boot::STACK_SIZE`]) with the default `VmConfig::native_stack`.
//!
//! Recurses to depth 5000 (far past what fits natively: the rest runs interpreted) and to the
//! recursion limit; passes only if the JIT's output and error equal the interpreter's. A stack
//! overflow here would fault (or triple fault) instead of exiting with success.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;

use kiln::jit::driver::Jit;
use kiln::vm::native::{DEFAULT_NATIVE_STACK, JIT_STACK_HEADROOM};
use kiln::vm::{lang, Vm, VmConfig};
use kiln_bare::{boot::Verdict, exec::EXEC, println};
use kiln_qemu_tests::{check, ARCH};

kiln_bare::entry!(main);

const SOURCE: &str = "fn f(n) { if n == 0 { return 0; } return f(n - 1) + 1; }\n\
                      print(f(int(args()[0])));\n";

/// Runs the program with `depth` as its argument; the output, or the error's text.
fn run(depth: usize, jit: bool, max_depth: usize) -> Result<String, &'static str> {
    let prog = lang::compile(SOURCE).map_err(|_| "the program does not compile")?;
    let config = VmConfig {
        jit_threshold: if jit { 10 } else { 0 },
        max_depth,
        ..VmConfig::default()
    };
    let mut vm = Vm::new(&prog, config).map_err(|_| "the program does not verify")?;
    let arg = format!("{depth}");
    vm.set_args(&[arg.as_str()])
        .map_err(|_| "set_args failed")?;
    let mut out = String::new();
    let r = if jit {
        vm.set_func_threshold(1);
        let mut driver = Jit::new(&prog, &EXEC, None);
        let r = vm.run(&mut out, Some(&mut driver));
        check(driver.func_stats().compiled > 0, "f was not compiled")?;
        r
    } else {
        vm.run(&mut out, None)
    };
    Ok(match r {
        Ok(_) => out,
        Err(e) => format!("{out}error: {e}"),
    })
}

fn main() -> Verdict {
    println!(
        "{ARCH}: boot stack {} KiB, native_stack {} KiB + headroom {} KiB",
        kiln_bare::boot::STACK_SIZE / 1024,
        DEFAULT_NATIVE_STACK / 1024,
        JIT_STACK_HEADROOM / 1024
    );
    check(
        kiln_bare::boot::STACK_SIZE >= DEFAULT_NATIVE_STACK + JIT_STACK_HEADROOM,
        "kiln-bare's stack is smaller than the default JIT budget needs",
    )?;
    for depth in [50, 5000] {
        let want = run(depth, false, 100_000)?;
        let got = run(depth, true, 100_000)?;
        println!(
            "{ARCH}: depth {depth}: JIT {} / interpreter {}",
            got.trim_end(),
            want.trim_end()
        );
        check(got == want, "JIT output differs from the interpreter's")?;
    }
    let want = run(3000, false, 1000)?;
    let got = run(3000, true, 1000)?;
    println!("{ARCH}: past the limit: {}", got.trim_end());
    check(
        want.contains("error"),
        "the interpreter did not hit its recursion limit",
    )?;
    check(
        got == want,
        "the JIT's recursion-limit error differs from the interpreter's",
    )
}
