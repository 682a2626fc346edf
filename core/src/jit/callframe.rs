//! The call words of a function trace's exit frame: how native code and the VM-call helper
//! talk.
//!
//! A function trace (see [`crate::jit::func`]) runs with an [`ExitFrame`] that has, after the
//! register dump and the spill slots, a few more words: the *call area*. Its first word is at
//! frame word `SPILL_BASE + spill_slots`; backends address it from the exit frame register.
//!
//! ```text
//!   frame word SPILL_BASE + spills + ...
//!     +0 ENV     *mut NativeEnv of the running activation     (written before entry)
//!     +1 BASE    the activation's frame base, a slot index    (written before entry)
//!     +2 META    *const FuncCode of the running trace         (written before entry)
//!     +3 STATUS  0: the call returned a value of the site's type; 1: leave the trace
//!     +4 RESULT  the call's result bits (int or float)
//!     +5 ARGS..  argument bits, one word per argument         (written by CArgI/CArgF)
//! ```
//!
//! `CallV` calls host function 0 of the trace as `helper(call_area_address, site)`; the helper
//! returns the address of the activation's slot 0, which native code must reload as its slot
//! base (a call may have moved the register stack), and writes STATUS and RESULT.
//!
//! [`ExitFrame`]: crate::jit::backend::ExitFrame

/// Word of the `NativeEnv` pointer.
pub const ENV: usize = 0;
/// Word of the frame base (slot index).
pub const BASE: usize = 1;
/// Word of the `FuncCode` pointer.
pub const META: usize = 2;
/// Word of the call status.
pub const STATUS: usize = 3;
/// Word of the call result.
pub const RESULT: usize = 4;
/// First argument word.
pub const ARGS: usize = 5;

/// Words of a call area for calls of at most `max_args` arguments.
pub const fn words(max_args: usize) -> usize {
    ARGS + max_args
}
