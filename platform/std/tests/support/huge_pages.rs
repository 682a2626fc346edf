//! Whether a mapping was advised to use transparent huge pages, read from `/proc/self/smaps`.
//! Shared by kiln-std's `tests/large_pages.rs` and libkiln.so's probe (`#[path]` includes).

/// Whether the mapping holding `addr` has the `hg` flag (`MADV_HUGEPAGE`); `None` when no
/// mapping holds it.
pub fn advised_huge(addr: usize) -> Option<bool> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let mut inside = false;
    for line in smaps.lines() {
        let range = line.split_once(' ').and_then(|(r, _)| r.split_once('-'));
        if let Some((Ok(lo), Ok(hi))) =
            range.map(|(lo, hi)| (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16)))
        {
            inside = (lo..hi).contains(&addr);
        } else if let Some(flags) = line.strip_prefix("VmFlags:").filter(|_| inside) {
            return Some(flags.split_whitespace().any(|f| f == "hg"));
        }
    }
    None
}

/// Whether `madvise(MADV_HUGEPAGE)` shows in `/proc/self/smaps` here: not on a kernel without
/// transparent huge pages, nor under an emulator that takes the advice without passing it on
/// (qemu-user, which runs kiln-std's tests for aarch64).
pub fn advice_is_visible() -> bool {
    const LEN: usize = 4 << 20;
    // SAFETY: a fresh anonymous mapping, advised and unmapped here; nothing else is touched.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            LEN,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return false;
        }
        let aligned = (p as usize).next_multiple_of(2 << 20);
        let ok = libc::madvise(aligned as *mut libc::c_void, 2 << 20, libc::MADV_HUGEPAGE) == 0
            && advised_huge(aligned) == Some(true);
        libc::munmap(p, LEN);
        ok
    }
}
