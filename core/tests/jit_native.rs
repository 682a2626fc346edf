//! Native JIT tests: each sample trace compiled for this host's architecture, installed in the
//! std shim's executable memory and run; slots and exit numbers must match the IR interpreter.
#![cfg(feature = "jit")]
#![cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use common::{cases, LAYOUTS};
use kiln::jit::backend::{compile, Native};
use kiln::jit::install::InstalledTrace;
use kiln::jit::irinterp::run;
use kiln::platform::{CodeRegion, ExecMemory};
use kiln_std::exec::StdExecMemory;

/// Counts `make_executable` (the call that synchronises the instruction cache).
struct Counting {
    inner: StdExecMemory,
    syncs: AtomicUsize,
}

// SAFETY: forwards to `StdExecMemory`, which upholds the contract.
unsafe impl ExecMemory for Counting {
    fn map_writable(&self, len: usize) -> Option<CodeRegion> {
        self.inner.map_writable(len)
    }
    unsafe fn make_executable(&self, region: CodeRegion) -> bool {
        self.syncs.fetch_add(1, Ordering::SeqCst);
        // SAFETY: forwarded precondition.
        unsafe { self.inner.make_executable(region) }
    }
    unsafe fn unmap(&self, region: CodeRegion) {
        // SAFETY: forwarded precondition.
        unsafe { self.inner.unmap(region) }
    }
}

#[test]
fn native_traces_agree_with_the_ir_interpreter() {
    let mem = Counting {
        inner: StdExecMemory::with_cap(16 << 20),
        syncs: AtomicUsize::new(0),
    };
    let mut installed = 0;
    for layout in &LAYOUTS {
        for (name, rec, img) in cases(layout) {
            let c = compile::<Native>(&rec, layout).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            let mut want = img.clone();
            let exit = run(&c.trace, layout, &mut want, 1_000_000).unwrap();
            let slots = c.min_slots();
            let t = InstalledTrace::install(&mem, &c.code, slots).unwrap();
            installed += 1;
            assert_eq!(
                mem.syncs.load(Ordering::SeqCst),
                installed,
                "{name}: icache sync per trace"
            );
            let mut got = img.clone();
            assert!(got.len() >= slots as usize * layout.size as usize);
            let mut frame = c.frame();
            // SAFETY: `got` holds `slots` slots in `layout`; the frame is the trace's own; the
            // code was built for this host.
            let n = unsafe { t.enter(got.as_mut_ptr(), frame.as_mut_ptr()) };
            assert_eq!(n, exit.snap, "{name}: exit number ({:?})", layout);
            assert_eq!(c.restore(n, &frame, &mut got), Ok(exit.pc), "{name}");
            assert_eq!(got, want, "{name}: slots after exit ({:?})", layout);
            // SAFETY: the code is not running; `mem` installed it.
            unsafe { t.release(&mem) };
        }
    }
    assert_eq!(mem.inner.mapped(), 0, "every trace released");
}

/// The mandelbrot escape test really iterates in native code and leaves the right values.
#[test]
fn native_mandel_counts_iterations() {
    use common::V::*;
    let layout = &LAYOUTS[0];
    let mem = StdExecMemory::new();
    let c = compile::<Native>(&common::mandel(), layout).unwrap();
    let t = InstalledTrace::install(&mem, &c.code, 6).unwrap();
    let mut m = common::image(layout, &[F(0.0), F(0.0), F(0.3), F(0.6), I(0), I(1000)]);
    let mut frame = c.frame();
    // SAFETY: six slots in `layout`; the trace's own frame.
    let n = unsafe { t.enter(m.as_mut_ptr(), frame.as_mut_ptr()) };
    c.restore(n, &frame, &mut m).unwrap();
    assert_eq!(c.trace.snaps[n as usize].pc, 2, "escaped, not exhausted");
    let (tag, it) = layout.read(&m, 4).unwrap();
    assert_eq!(tag, layout.int_tag);
    // Reference: the same recurrence in Rust.
    let (mut zr, mut zi, mut k) = (0.0f64, 0.0f64, 0i64);
    while k < 1000 && zr * zr + zi * zi <= 4.0 {
        let nzi = 2.0 * zr * zi + 0.6;
        zr = zr * zr - zi * zi + 0.3;
        zi = nzi;
        k += 1;
    }
    assert_eq!(it as i64, k);
    assert!(k > 3, "several iterations ran natively");
    // SAFETY: not running; installed from `mem`.
    unsafe { t.release(&mem) };
}
