//! Page tables: the identity map boot builds (x86_64: in the assembly entry; aarch64: here,
//! before the MMU goes on), and the exec window's 4 KiB pages whose permission flips between
//! writable and executable (never both).

#[cfg(target_arch = "aarch64")]
#[path = "_arch/aarch64/paging.rs"]
mod arch;
#[cfg(target_arch = "x86_64")]
#[path = "_arch/x86_64/paging.rs"]
mod arch;

#[cfg(target_arch = "aarch64")]
pub(crate) use arch::init;
#[cfg(target_arch = "x86_64")]
pub(crate) use arch::make_uncached;
pub(crate) use arch::{map_exec_window, perm, set_perm};

/// Maps the memory of the identity map (x86_64: the first 4 GiB; aarch64: the first 512 GiB) a
/// second time at `virt`, a multiple of 512 GiB (x86_64: canonical, e.g. 1 TiB or the higher
/// half `0xffff_8000_0000_0000`; aarch64: below 2^48). A test of kiln with its heap above 1 TiB
/// or in the higher half hands out `phys + virt` for segments it takes from RAM.
///
/// # Safety
/// Nothing uses `virt .. virt + 512 GiB` yet; the caller accepts that the same memory is then
/// reachable under two addresses (and must not treat them as different memory).
pub unsafe fn alias_identity_map(virt: usize) -> Result<(), &'static str> {
    // SAFETY: forwarded.
    unsafe { arch::alias_identity_map(virt) }
}

/// Size of the small pages the exec window is mapped with.
pub const SMALL_PAGE: usize = 4096;
/// Small pages in the exec window (one 2 MiB segment).
pub const EXEC_WINDOW_PAGES: usize = 512;

/// What a small page of the exec window allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PagePerm {
    /// Read + write, no execute.
    Writable,
    /// Read + execute, no write.
    Executable,
}
