//! Executable memory for the JIT on a hosted OS: `mmap` read+write, then `mprotect` read+execute.
//!
//! Glossary
//! - *region*: one `mmap` mapping handed out by [`StdExecMemory::map_writable`], a whole number
//!   of OS pages.
//! - *cap*: the most bytes of JIT memory mapped at once; a request past it gets `None`, and the
//!   JIT falls back to the interpreter.
//!
//! Invariants
//! - W^X: a region is `PROT_READ|PROT_WRITE` until `make_executable`, then
//!   `PROT_READ|PROT_EXEC`; no mapping made here is ever writable and executable at once.
//! - The instruction cache is synchronised for the whole region before it becomes executable
//!   (a no-op on x86-64, `dc cvau`/`ic ivau` on AArch64).
//! - `mapped` counts the bytes of live regions; it never exceeds the cap.
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};

use kiln::platform::{CodeRegion, ExecMemory};

/// Default cap on JIT memory: 64 MiB.
pub const DEFAULT_CAP: usize = 64 << 20;

/// `ExecMemory` backed by `mmap`/`mprotect`/`munmap`.
#[derive(Debug)]
pub struct StdExecMemory {
    cap: usize,
    mapped: AtomicUsize,
}

impl StdExecMemory {
    /// An executable-memory source that maps at most `cap` bytes at once.
    pub const fn with_cap(cap: usize) -> Self {
        Self {
            cap,
            mapped: AtomicUsize::new(0),
        }
    }

    /// With the [`DEFAULT_CAP`].
    pub const fn new() -> Self {
        Self::with_cap(DEFAULT_CAP)
    }

    /// Bytes currently mapped.
    pub fn mapped(&self) -> usize {
        self.mapped.load(Ordering::Relaxed)
    }

    /// Reserves `len` bytes of the cap, or says no.
    fn charge(&self, len: usize) -> bool {
        self.mapped
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |m| {
                m.checked_add(len).filter(|&n| n <= self.cap)
            })
            .is_ok()
    }
}

impl Default for StdExecMemory {
    fn default() -> Self {
        Self::new()
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

// SAFETY: regions come from fresh anonymous mappings nobody else uses; `make_executable`
// synchronises the instruction cache before flipping to read+execute, so the CPU executes what
// was written; no region is writable and executable at once.
unsafe impl ExecMemory for StdExecMemory {
    fn map_writable(&self, len: usize) -> Option<CodeRegion> {
        let page = page_size();
        let len = len.max(1).checked_next_multiple_of(page)?;
        if !self.charge(len) {
            return None;
        }
        // SAFETY: an anonymous private mapping at an address of the kernel's choosing touches no
        // existing memory.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            self.mapped.fetch_sub(len, Ordering::AcqRel);
            return None;
        }
        let ptr = NonNull::new(p.cast::<u8>())?;
        Some(CodeRegion { ptr, len })
    }

    unsafe fn make_executable(&self, region: CodeRegion) -> bool {
        // SAFETY: the caller guarantees `region` is one of our mappings and not in use.
        unsafe { sync_icache(region.ptr.as_ptr(), region.len) };
        // SAFETY: as above; mprotect only changes the permissions of our own mapping.
        let r = unsafe {
            libc::mprotect(
                region.ptr.as_ptr().cast(),
                region.len,
                libc::PROT_READ | libc::PROT_EXEC,
            )
        };
        r == 0
    }

    unsafe fn unmap(&self, region: CodeRegion) {
        // SAFETY: the caller guarantees the region is ours and no code in it runs again.
        let r = unsafe { libc::munmap(region.ptr.as_ptr().cast(), region.len) };
        if r == 0 {
            self.mapped.fetch_sub(region.len, Ordering::AcqRel);
        }
    }
}

/// Makes freshly written code visible to instruction fetch on this CPU.
///
/// # Safety
/// `[start, start + len)` must be mapped.
#[cfg(target_arch = "aarch64")]
pub unsafe fn sync_icache(start: *mut u8, len: usize) {
    use core::arch::asm;
    let ctr: u64;
    // SAFETY: reading CTR_EL0 is allowed at EL0 on Linux and has no side effects.
    unsafe { asm!("mrs {0}, ctr_el0", out(reg) ctr, options(nomem, nostack)) };
    let dline = 4usize << ((ctr >> 16) & 0xf);
    let iline = 4usize << (ctr & 0xf);
    let begin = start as usize;
    let end = begin + len;
    let mut a = begin & !(dline - 1);
    while a < end {
        // SAFETY: cleans one data cache line of mapped memory to the point of unification.
        unsafe { asm!("dc cvau, {0}", in(reg) a, options(nostack)) };
        a += dline;
    }
    // SAFETY: barrier instructions have no memory operands.
    unsafe { asm!("dsb ish", options(nostack)) };
    let mut a = begin & !(iline - 1);
    while a < end {
        // SAFETY: invalidates one instruction cache line of mapped memory.
        unsafe { asm!("ic ivau, {0}", in(reg) a, options(nostack)) };
        a += iline;
    }
    // SAFETY: barriers have no memory operands.
    unsafe { asm!("dsb ish", "isb", options(nostack)) };
}

/// Makes freshly written code visible to instruction fetch (x86 keeps caches coherent).
///
/// # Safety
/// `[start, start + len)` must be mapped.
#[cfg(not(target_arch = "aarch64"))]
pub unsafe fn sync_icache(_start: *mut u8, _len: usize) {}

#[cfg(test)]
mod tests {
    use super::*;

    /// The permissions of the mapping containing `addr`, from /proc/self/maps.
    fn perms_at(addr: usize) -> String {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        for line in maps.lines() {
            let mut it = line.split_whitespace();
            let range = it.next().unwrap();
            let perms = it.next().unwrap();
            let (a, b) = range.split_once('-').unwrap();
            let (a, b) = (
                usize::from_str_radix(a, 16).unwrap(),
                usize::from_str_radix(b, 16).unwrap(),
            );
            if (a..b).contains(&addr) {
                return perms[..3].to_string();
            }
        }
        panic!("address {addr:#x} not mapped");
    }

    /// No mapping of the process is writable and executable at once.
    fn assert_no_wx() {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        for line in maps.lines() {
            let perms = line.split_whitespace().nth(1).unwrap();
            assert!(
                !(perms.contains('w') && perms.contains('x')),
                "W+X mapping: {line}"
            );
        }
    }

    #[cfg(target_arch = "x86_64")]
    const RET_42: &[u8] = &[0xb8, 42, 0, 0, 0, 0xc3]; // mov eax, 42; ret
    #[cfg(target_arch = "aarch64")]
    const RET_42: &[u8] = &[0x40, 0x05, 0x80, 0x52, 0xc0, 0x03, 0x5f, 0xd6]; // mov w0, 42; ret

    #[test]
    fn write_then_execute_never_both() {
        let mem = StdExecMemory::with_cap(1 << 20);
        let r = mem.map_writable(RET_42.len()).unwrap();
        let addr = r.ptr.as_ptr() as usize;
        assert_eq!(perms_at(addr), "rw-");
        assert_no_wx();
        // SAFETY: the region is writable and at least RET_42.len() bytes long.
        unsafe { core::ptr::copy_nonoverlapping(RET_42.as_ptr(), r.ptr.as_ptr(), RET_42.len()) };
        // SAFETY: region from map_writable, not in use.
        assert!(unsafe { mem.make_executable(r) });
        assert_eq!(perms_at(addr), "r-x");
        assert_no_wx();
        // SAFETY: the region holds a complete function with the C ABI that returns 42.
        let f: extern "C" fn() -> u32 = unsafe { core::mem::transmute(r.ptr.as_ptr()) };
        assert_eq!(f(), 42);
        // SAFETY: nothing runs in the region any more.
        unsafe { mem.unmap(r) };
        assert_eq!(mem.mapped(), 0);
    }

    #[test]
    fn cap_is_enforced_and_released() {
        let page = page_size();
        let mem = StdExecMemory::with_cap(2 * page);
        let a = mem.map_writable(page).unwrap();
        let b = mem.map_writable(1).unwrap();
        assert_eq!(b.len, page);
        assert!(mem.map_writable(1).is_none(), "over the cap");
        // SAFETY: unused regions from this source.
        unsafe { mem.unmap(a) };
        let c = mem.map_writable(page).expect("room again after unmap");
        // SAFETY: unused regions from this source.
        unsafe {
            mem.unmap(b);
            mem.unmap(c);
        }
        assert_eq!(mem.mapped(), 0);
        assert!(
            mem.map_writable(usize::MAX).is_none(),
            "absurd sizes are refused"
        );
    }
}
