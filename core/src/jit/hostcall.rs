//! Host calls from native code: `callh` recorded as runtime calls into the VM's host.
//!
//! The driver owns one [`HostCtx`] (boxed: traces hold its address). While a hosted run is
//! inside the driver, it points at the VM's [`HostStep`] and at the fuel word of the exit frame
//! native code is running with; otherwise it is disarmed and every call fails.
//!
//! A recorded `callh` with int arguments, of a host function whose last result was an int or a
//! bool, is `host_arg(ctx, x)` per argument, `r = host_call(ctx, import | expectation)`, then
//! `guard host_status(ctx, 0) == 0`. An int result is `r`; a bool result is the predicted
//! constant, which the call checked (another bool fails the status like any other type). The call charges fuel and reports errors exactly as the
//! interpreter's `callh`: on a host error, or a result that is not an int, the result (or the
//! error) is parked in the VM and the guard exits to the `callh`, where the interpreter takes
//! the parked result instead of calling again. The recorder predicts the result (the function's
//! last one) only to choose branch directions; every guard checks the real value.
use core::cell::Cell;
use core::ptr::NonNull;

use crate::jit::hostbuf::BufView;
use crate::vm::host::Predicted;
use crate::vm::interp::HostStep;
use crate::vm::value::Value;

/// Most arguments a native host call passes.
pub const MAX_ARGS: usize = 8;

type StepPtr = NonNull<dyn HostStep>;

/// The VM's host as native code reaches it.
pub struct HostCtx {
    step: Cell<Option<StepPtr>>,
    /// The driver's buffer views, refilled after each call (the host function may have used
    /// the buffers through its own borrow).
    views: Cell<*const [BufView]>,
    fuel: Cell<*mut u64>,
    args: [Cell<i64>; MAX_ARGS],
    nargs: Cell<usize>,
    status: Cell<i64>,
    calls: Cell<u64>,
}

impl Default for HostCtx {
    fn default() -> Self {
        HostCtx {
            step: Cell::new(None),
            views: Cell::new(&[] as *const [BufView]),
            fuel: Cell::new(core::ptr::null_mut()),
            args: Default::default(),
            nargs: Cell::new(0),
            status: Cell::new(0),
            calls: Cell::new(0),
        }
    }
}

impl HostCtx {
    /// Points the context at the VM's host.
    ///
    /// # Safety
    ///
    /// `step` must stay valid, and not be used otherwise, until [`HostCtx::disarm`] or the
    /// next `arm`; so must `views`, which must hold the views of `step`'s buffers.
    pub unsafe fn arm(&self, step: &mut dyn HostStep, views: &[BufView]) {
        self.views.set(views);
        let p: NonNull<dyn HostStep + '_> = NonNull::from(step);
        // SAFETY: only the trait object's lifetime bound changes (same fat-pointer layout);
        // the caller keeps the object alive while the context is armed.
        let p = unsafe { core::mem::transmute::<NonNull<dyn HostStep + '_>, StepPtr>(p) };
        self.step.set(Some(p));
    }

    /// Forgets the host and the fuel word.
    pub fn disarm(&self) {
        self.step.set(None);
        self.views.set(&[] as *const [BufView]);
        self.fuel.set(core::ptr::null_mut());
    }

    /// Sets the fuel word host calls charge.
    ///
    /// # Safety
    ///
    /// `fuel` must be valid for reads and writes until the next `set_fuel` or `disarm`, and
    /// only native code of this driver (and this context) may use it meanwhile.
    pub unsafe fn set_fuel(&self, fuel: *mut u64) {
        self.fuel.set(fuel);
    }

    /// The last result of host import `import`, if it was an int or a bool (for the recorder).
    pub fn last_result(&self, import: usize) -> Option<Predicted> {
        let p = self.step.get()?;
        // SAFETY: an armed pointer is valid and unused by anyone else (`arm`'s contract); the
        // shared borrow ends here.
        unsafe { p.as_ref() }.last_result(import)
    }

    /// Host calls made through this context so far.
    pub fn calls(&self) -> u64 {
        self.calls.get()
    }

    /// The address traces pass to the calls below.
    pub fn addr(&self) -> i64 {
        self as *const HostCtx as i64
    }
}

/// The context at `addr`.
///
/// # Safety
///
/// `addr` must be [`HostCtx::addr`] of a live context.
unsafe fn ctx<'a>(addr: i64) -> &'a HostCtx {
    // SAFETY: the caller's contract.
    unsafe { &*(addr as *const HostCtx) }
}

/// Appends argument `x` of the next [`host_call`].
pub extern "C" fn host_arg(addr: i64, x: i64) -> i64 {
    // SAFETY: traces pass the address of their driver's context, which lives as long as the
    // driver and so as long as the trace's code.
    let c = unsafe { ctx(addr) };
    let n = c.nargs.get();
    if let Some(slot) = c.args.get(n) {
        slot.set(x);
    }
    c.nargs.set(n + 1);
    0
}

/// Bits of [`host_call`]'s second argument above the import index: the result must be an int.
pub const EXPECT_INT: i64 = 0;
/// ... the result must be `false`.
pub const EXPECT_FALSE: i64 = 1 << 8;
/// ... the result must be `true`.
pub const EXPECT_TRUE: i64 = 2 << 8;

/// Calls host import `what & 0xff` with the arguments appended since the last call; with
/// [`host_status`] 0 when the result is what `what & !0xff` expects ([`EXPECT_INT`]: any int,
/// returned; [`EXPECT_FALSE`], [`EXPECT_TRUE`]: that bool, 0 returned), else 0 with status 1
/// (the VM holds the parked result or error).
pub extern "C" fn host_call(addr: i64, what: i64) -> i64 {
    let (import, expect) = (what & 0xff, what & !0xff);
    // SAFETY: as in `host_arg`.
    let c = unsafe { ctx(addr) };
    let n = c.nargs.replace(0);
    c.status.set(1);
    let (Some(mut step), false, Ok(import)) = (
        c.step.get(),
        c.fuel.get().is_null() || n > MAX_ARGS,
        usize::try_from(import),
    ) else {
        return 0;
    };
    let mut args = heapless::Vec::<Value, MAX_ARGS>::new();
    for a in &c.args[..n] {
        let _ = args.push(Value::Int(a.get()));
    }
    // SAFETY: an armed context points at a live `HostStep` and a live fuel word that nothing
    // else uses while native code runs (`arm`/`set_fuel` contracts).
    let (step, fuel) = unsafe { (step.as_mut(), &mut *c.fuel.get()) };
    c.calls.set(c.calls.get() + 1);
    let result = step.call(import, &args, fuel);
    // SAFETY: an armed context's views are live (`arm`'s contract).
    let views = unsafe { &*c.views.get() };
    for (b, v) in views.iter().enumerate() {
        match step.buffer(b) {
            // SAFETY: the buffer is lent to the run and reached only through `step` and the
            // views, which the driver clears before the hook call that armed them returns.
            Some((p, len)) => unsafe { v.set(p, len) },
            None => v.clear(),
        }
    }
    match result {
        Some(Value::Int(x)) if expect == EXPECT_INT => {
            c.status.set(0);
            x
        }
        Some(Value::Bool(b)) if expect == if b { EXPECT_TRUE } else { EXPECT_FALSE } => {
            c.status.set(0);
            0
        }
        Some(other) => {
            step.park(other);
            0
        }
        None => 0,
    }
}

/// The status of the last [`host_call`]: 0 when its result is the call's int result.
pub extern "C" fn host_status(addr: i64, _: i64) -> i64 {
    // SAFETY: as in `host_arg`.
    unsafe { ctx(addr) }.status.get()
}
