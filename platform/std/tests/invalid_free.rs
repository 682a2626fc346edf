//! Freeing a pointer kiln did not allocate is reported, never silently accepted: as an error from
//! `kiln_std::free`, and as an abort with a `kiln: ...` message from the global allocator.

use std::alloc::{GlobalAlloc, Layout};
use std::process::Command;

#[test]
fn free_reports_foreign_interior_and_double_frees() {
    use kiln::allocator::FreeError;
    let x = 5u32;
    // SAFETY: each call must only report, not free.
    unsafe {
        assert_eq!(
            kiln_std::free(&x as *const u32 as *mut u8),
            Err(FreeError::Foreign)
        );
        let libc_block = libc_malloc(64);
        assert_eq!(kiln_std::free(libc_block), Err(FreeError::Foreign));
        let keep = kiln_std::alloc(64, 8); // keeps the page in use after `p` is freed
        let p = kiln_std::alloc(64, 8);
        assert_eq!(kiln_std::free(p.add(1)), Err(FreeError::NotABlock));
        kiln_std::free(p).unwrap();
        assert_eq!(kiln_std::free(p), Err(FreeError::DoubleFree));
        kiln_std::free(keep).unwrap();
        // On the heap's hot stack now: a proven double free (in the small geometry, which has
        // no hot stacks, the page went empty and was retired: not a block any more). After
        // `collect` its page and then its segment went back to the platform: not kiln's memory
        // any more. Refused either way, nothing changed.
        let small_geometry = kiln::allocator::SEGMENT_SIZE < 1 << 21;
        let expected = if small_geometry {
            FreeError::NotABlock
        } else {
            FreeError::DoubleFree
        };
        assert_eq!(kiln_std::free(keep), Err(expected));
        kiln_std::collect();
        assert_eq!(kiln_std::free(keep), Err(FreeError::Foreign));
    }
    kiln_std::check().unwrap();
}

extern "C" {
    #[link_name = "malloc"]
    fn libc_malloc(n: usize) -> *mut u8;
}

/// Child mode: free a stack address through the global allocator interface.
fn child_free_foreign() {
    let x = 0u64;
    // SAFETY: deliberately wrong; kiln must detect it and abort.
    unsafe { kiln_std::KilnAlloc.dealloc(&x as *const u64 as *mut u8, Layout::new::<u64>()) };
}

#[test]
fn global_allocator_aborts_with_a_message_on_a_foreign_free() {
    if std::env::var_os("KILN_CHILD").is_some() {
        child_free_foreign();
        return; // only reached if kiln accepted the free
    }
    let exe = std::env::current_exe().unwrap();
    // Under an emulator (the aarch64 lane runs tests in qemu-aarch64) the child needs the same
    // runner; the lane passes it in KILN_TEST_RUNNER.
    let mut cmd = match std::env::var("KILN_TEST_RUNNER") {
        Ok(runner) if !runner.trim().is_empty() => {
            let mut words = runner.split_whitespace();
            let mut c = Command::new(words.next().unwrap());
            c.args(words).arg(&exe);
            c
        }
        _ => Command::new(&exe),
    };
    let out = cmd
        .args([
            "--exact",
            "global_allocator_aborts_with_a_message_on_a_foreign_free",
            "--nocapture",
        ])
        .env("KILN_CHILD", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the child must abort");
    assert!(
        stderr.contains("kiln: invalid free of 0x"),
        "stderr: {stderr}"
    );
    assert!(stderr.contains("not allocated by kiln"), "stderr: {stderr}");
}
