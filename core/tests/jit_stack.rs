//! The function JIT's machine-stack budget: how much stack a native frame takes (measured by
//! painting a thread's stack and finding the lowest byte touched), and that a run with
//! `VmConfig::native_stack` fits a thread of `native_stack + JIT_STACK_HEADROOM` bytes however
//! deep the program recurses, with the same result and the same recursion-limit error as the
//! interpreter.
#![cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]

use kiln::jit::driver::Jit;
use kiln::vm::native::{JIT_STACK_HEADROOM, NATIVE_FRAME_BYTES};
use kiln::vm::{lang, Vm, VmConfig};
use kiln_std::exec::StdExecMemory;

static MEM: StdExecMemory = StdExecMemory::new();

fn program(depth: usize) -> String {
    format!(
        "fn f(n) {{ if n == 0 {{ return 0; }} return f(n - 1) + 1; }}\n\
         fn g(n, a) {{ if n == 0 {{ return a; }} return g(n - 1, a + 0.5); }}\n\
         print(f({depth}), g({depth}, 0));\n"
    )
}

/// Runs `src` (JIT on, every function compiled on its first call, or off) and returns the
/// output or the error text.
fn run(src: &str, jit: bool, native_stack: usize, max_depth: usize) -> String {
    let prog = lang::compile(src).expect("compiles");
    let config = VmConfig {
        jit_threshold: if jit { 10 } else { 0 },
        native_stack,
        max_depth,
        ..VmConfig::default()
    };
    let mut vm = Vm::new(&prog, config).expect("verifies");
    let mut out = String::new();
    let r = if jit {
        vm.set_func_threshold(1);
        let mut jit = Jit::new(&prog, &MEM, None);
        let r = vm.run(&mut out, Some(&mut jit));
        assert!(jit.func_stats().compiled > 0, "the functions were compiled");
        r
    } else {
        vm.run(&mut out, None)
    };
    match r {
        Ok(_) => out,
        Err(e) => format!("{out}error: {e}"),
    }
}

/// Runs `f` on a thread with `stack` bytes of stack.
fn on_stack<R: Send + 'static>(stack: usize, f: impl FnOnce() -> R + Send + 'static) -> R {
    std::thread::Builder::new()
        .stack_size(stack)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

const PAINT: u8 = 0xA5;

/// Bytes of stack `f` touched below the caller, measured by painting: the thread's stack below
/// the current frame is filled with a pattern, `f` runs, and the lowest changed byte marks the
/// deepest point. Runs on a fresh thread with 8 MiB of stack.
fn stack_used(f: impl FnOnce() + Send + 'static) -> usize {
    on_stack(8 << 20, move || {
        let top = painted_top();
        let low = top - (6 << 20);
        // SAFETY: `low..top` lies inside this thread's 8 MiB stack, below every live frame
        // (`top` is 4 KiB under the current stack pointer) and above the guard page; nothing
        // lives there until `f` runs, and these bytes are only read back as plain integers.
        unsafe { paint(low, top) };
        f();
        // SAFETY: as above: the region is still this thread's stack memory.
        let lowest =
            unsafe { (low..top).find(|&a| std::ptr::read_volatile(a as *const u8) != PAINT) };
        top - lowest.unwrap_or(top)
    })
}

#[inline(never)]
fn painted_top() -> usize {
    let marker = 0u8;
    std::hint::black_box(&marker) as *const u8 as usize - (4 << 10)
}

/// # Safety
/// `low..top` is unused stack memory of the calling thread, below its stack pointer.
#[inline(never)]
unsafe fn paint(low: usize, top: usize) {
    for a in low..top {
        // SAFETY: caller.
        unsafe { std::ptr::write_volatile(a as *mut u8, PAINT) };
    }
}

#[test]
fn a_native_frame_takes_at_most_native_frame_bytes() {
    let budget = 4 << 20;
    let used = |depth: usize| {
        let want = run(&program(depth), false, budget, 100_000);
        stack_used(move || {
            assert_eq!(run(&program(depth), true, budget, 100_000), want);
        })
    };
    let (fixed, shallow, deep) = (used(1), used(40), used(180));
    let per_frame = (deep - shallow) / 140;
    eprintln!(
        "machine stack: {fixed} bytes at depth 1, {shallow} at depth 40, {deep} at depth 180: \
         {per_frame} bytes per native frame (NATIVE_FRAME_BYTES = {NATIVE_FRAME_BYTES}), \
         {fixed} bytes fixed (JIT_STACK_HEADROOM = {JIT_STACK_HEADROOM})"
    );
    assert!(
        per_frame > 0,
        "native frames take stack: the measurement works"
    );
    assert!(
        per_frame <= NATIVE_FRAME_BYTES,
        "{per_frame} bytes per native frame"
    );
    assert!(fixed <= JIT_STACK_HEADROOM, "{fixed} bytes at depth 1");
}

#[test]
fn deep_recursion_fits_native_stack_plus_headroom() {
    // A kernel-sized budget: 32 KiB for native frames (16 of them), the stated headroom, and
    // 16 KiB for the test thread's own frames.
    let native_stack = 32 << 10;
    let stack = native_stack + JIT_STACK_HEADROOM + (16 << 10);
    for depth in [10, 100, 5000] {
        let want = run(&program(depth), false, native_stack, 100_000);
        let got = on_stack(stack, move || {
            run(&program(depth), true, native_stack, 100_000)
        });
        assert_eq!(got, want, "depth {depth}");
    }
    // Past the recursion limit: the interpreter's error, from the interpreter and the JIT.
    let src = program(3000);
    let want = run(&src, false, native_stack, 1000);
    assert!(want.contains("error"), "{want}");
    let got = on_stack(stack, move || run(&src, true, native_stack, 1000));
    assert_eq!(got, want);
    // And the measured cost agrees: the whole run stays inside the stated stack.
    let used = stack_used(move || {
        run(&program(5000), true, native_stack, 100_000);
    });
    assert!(used <= native_stack + JIT_STACK_HEADROOM, "{used} bytes");
}
