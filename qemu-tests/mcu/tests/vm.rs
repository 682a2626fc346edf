//! The `.kl` interpreter on the Cortex-M4 image, inside the 64 KiB heap: a program with
//! recursion, an array sieve, string building and arithmetic compiles, verifies and runs, and
//! prints exactly what the host's `kiln run` prints; afterwards every value is freed (the heap
//! passes the invariant walker and its segment goes back). A memory cap below what the program
//! needs stops it with an error instead of exhausting the heap.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::string::String;

use cortex_m_rt::entry;
use kiln::vm::{lang, RuntimeErrorKind, Vm, VmConfig};
use kiln_mcu_tests::{check, finish, println, Verdict, KILN, POOL};

const SOURCE: &str = r#"
fn fib(n) { if n < 2 { return n; } return fib(n - 1) + fib(n - 2); }
print("fib(15) =", fib(15));
let n = 400;
let composite = array(n, false);
let count = 0;
let i = 2;
while i < n {
    if !composite[i] {
        count = count + 1;
        let j = i * i;
        while j < n { composite[j] = true; j = j + i; }
    }
    i = i + 1;
}
print("primes below", n, "=", count);
let s = "";
let parts = [];
let k = 0;
while k < 100 { s = s + str(k % 10); push(parts, [k, str(k)]); k = k + 1; }
print(len(s), len(parts), parts[99][1]);
print(7 / 2, 7.0 / 2, -7 % 3, 2 + 0.5, 1 == 1.0);
"#;

const EXPECTED: &str = "fib(15) = 610\nprimes below 400 = 78\n100 100 99\n3 3.5 -1 2.5 true\n";

#[entry]
fn main() -> ! {
    finish(run())
}

fn run() -> Verdict {
    {
        let prog = lang::compile(SOURCE).map_err(|_| "the program does not compile")?;
        let mut vm =
            Vm::new(&prog, VmConfig::default()).map_err(|_| "the program does not verify")?;
        let mut out = String::new();
        if let Err(e) = vm.run(&mut out, None) {
            println!("runtime error: {:?}", e);
            return Err("runtime error");
        }
        println!("{}", out.trim_end());
        check(
            out == EXPECTED,
            "output differs from the host interpreter's",
        )?;

        let capped = VmConfig {
            memory_cap: 2048,
            ..VmConfig::default()
        };
        let mut vm = Vm::new(&prog, capped).map_err(|_| "the program does not verify")?;
        let mut out = String::new();
        match vm.run(&mut out, None) {
            Err(e) if e.kind == RuntimeErrorKind::OutOfMemory => {}
            _ => return Err("a 2 KiB memory cap did not stop the program"),
        }
        println!("memory cap of 2048 bytes: stopped as expected");
    }
    check(KILN.check().is_ok(), "invariant walker failed")?;
    KILN.collect();
    check(
        POOL.segments_in_use() == 0,
        "values left in the heap after the VM",
    )?;
    Ok(())
}
