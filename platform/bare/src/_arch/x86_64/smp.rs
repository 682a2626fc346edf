//! x86_64: secondary CPUs are not started yet (INIT-SIPI-SIPI with a real-mode trampoline is
//! the missing piece); the kernel runs on the boot CPU alone.
use super::{Context, SmpError};

pub(super) fn possible_cpus() -> usize {
    1
}

pub(super) fn power_on(_index: usize, _ctx: &Context) -> Result<(), SmpError> {
    Err(SmpError::Unsupported)
}
