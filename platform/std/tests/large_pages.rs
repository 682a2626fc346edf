//! A thread that fills segments with small blocks gets its later segments on transparent huge
//! pages (`MADV_HUGEPAGE`, visible as the `hg` flag of their mapping in `/proc/self/smaps`),
//! unless `kiln_std::set_large_pages(false)` turned them off; a thread of a few blocks does not. (Its own test binary: no other test allocates meanwhile.)

use std::thread;

/// The `VmFlags` of the mapping holding `addr`, from `/proc/self/smaps`.
fn vm_flags_at(addr: usize) -> Option<String> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let mut inside = false;
    for line in smaps.lines() {
        if let Some((range, _)) = line.split_once(' ') {
            if let Some((lo, hi)) = range.split_once('-') {
                if let (Ok(lo), Ok(hi)) =
                    (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
                {
                    inside = (lo..hi).contains(&addr);
                    continue;
                }
            }
        }
        if inside {
            if let Some(flags) = line.strip_prefix("VmFlags:") {
                return Some(flags.trim().to_string());
            }
        }
    }
    None
}

/// Whether `madvise(MADV_HUGEPAGE)` shows in `/proc/self/smaps` here: not on a kernel without
/// transparent huge pages, nor under an emulator that takes the advice without passing it on
/// (qemu-user, which runs this test for aarch64).
fn advice_is_visible() -> bool {
    const LEN: usize = 4 << 20;
    // SAFETY: a fresh anonymous mapping, unmapped below; nothing else is touched.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            LEN,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        let aligned = (p as usize).next_multiple_of(2 << 20);
        let ok = libc::madvise(aligned as *mut libc::c_void, 2 << 20, libc::MADV_HUGEPAGE) == 0
            && vm_flags_at(aligned).is_some_and(|f| f.split(' ').any(|f| f == "hg"));
        libc::munmap(p, LEN);
        ok
    }
}

/// In a new thread (a new heap): 16 MiB of 64-byte blocks, each written; the `VmFlags` of the
/// mapping holding the last one, then everything freed.
fn flags_after_a_dense_heap() -> String {
    thread::spawn(|| {
        let blocks: Vec<usize> = (0..262_144)
            .map(|i| {
                let p = kiln_std::alloc(64, 8);
                assert!(!p.is_null());
                // SAFETY: a fresh 64-byte block.
                unsafe { p.write_bytes(i as u8, 64) };
                p as usize
            })
            .collect();
        let flags = vm_flags_at(*blocks.last().unwrap()).expect("the block's mapping");
        for p in blocks {
            // SAFETY: live, freed once.
            unsafe { kiln_std::free(p as *mut u8) }.unwrap();
        }
        flags
    })
    .join()
    .unwrap()
}

fn has_hg(flags: &str) -> bool {
    flags.split(' ').any(|f| f == "hg")
}

#[test]
fn a_heap_dense_in_small_blocks_gets_huge_pages_unless_they_are_off_and_a_small_one_does_not() {
    if !advice_is_visible() {
        eprintln!("huge-page advice does not show in /proc/self/smaps here: nothing to check");
        return;
    }
    thread::spawn(|| {
        let small: Vec<usize> = (0..100).map(|_| kiln_std::alloc(64, 8) as usize).collect();
        let flags = vm_flags_at(small[99]).expect("the block's mapping");
        assert!(!has_hg(&flags), "a small heap advised: {flags}");
        for p in small {
            // SAFETY: live, freed once.
            unsafe { kiln_std::free(p as *mut u8) }.unwrap();
        }
    })
    .join()
    .unwrap();
    let flags = flags_after_a_dense_heap();
    assert!(has_hg(&flags), "not advised: {flags}");
    // Off: the dense heap's newest segment (fresh from mmap: the pool caches at most four)
    // keeps small pages.
    kiln_std::set_large_pages(false);
    let flags = flags_after_a_dense_heap();
    kiln_std::set_large_pages(true);
    assert!(!has_hg(&flags), "advised with large pages off: {flags}");
}
