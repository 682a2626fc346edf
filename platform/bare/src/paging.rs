//! Page tables: the identity map boot builds (x86_64: in the assembly entry; aarch64: here,
//! before the MMU goes on).

#[cfg(target_arch = "aarch64")]
#[path = "_arch/aarch64/paging.rs"]
mod arch;
#[cfg(target_arch = "x86_64")]
#[path = "_arch/x86_64/paging.rs"]
mod arch;

#[cfg(target_arch = "aarch64")]
pub(crate) use arch::init;
