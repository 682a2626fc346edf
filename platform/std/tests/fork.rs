//! `fork` while another thread is inside kiln's locked paths: the child must never inherit a held
//! lock (kiln-std registers `pthread_atfork` handlers). Every child allocates enough to need the
//! segment pool's lock, then exits; a child that hangs fails the test.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[global_allocator]
static A: kiln_std::KilnAlloc = kiln_std::KilnAlloc;

static STOP: AtomicBool = AtomicBool::new(false);

/// Fills and empties whole segments so the pool lock is taken and released all the time.
fn churn_segments() {
    while !STOP.load(Ordering::Relaxed) {
        let blocks: Vec<Vec<u8>> = (0..24).map(|i| vec![i as u8; 200 * 1024]).collect();
        drop(blocks);
        kiln_std::collect();
    }
}

fn wait_child(pid: libc::pid_t, limit: Duration) -> Option<i32> {
    let start = Instant::now();
    while start.elapsed() < limit {
        let mut status = 0;
        // SAFETY: `pid` is our child; WNOHANG never blocks.
        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if r == pid {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    // SAFETY: our own hung child.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    None
}

#[test]
fn children_forked_during_allocation_never_deadlock() {
    if std::env::var_os("KILN_TEST_RUNNER").is_some() {
        // qemu user mode (the aarch64 lane) holds its own locks around guest mmap/munmap, so
        // forking while other threads map memory can hang the emulated child inside qemu, not
        // kiln. The deterministic test below still runs there; this one runs natively.
        eprintln!(
            "children_forked_during_allocation_never_deadlock: not meaningful under an emulator"
        );
        return;
    }
    let churners: Vec<_> = (0..2).map(|_| std::thread::spawn(churn_segments)).collect();
    for round in 0..150 {
        // SAFETY: the child only allocates through kiln and calls async-signal-safe `_exit`.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let blocks: Vec<Vec<u8>> = (0..24).map(|i| vec![i as u8; 200 * 1024]).collect();
            let ok = blocks
                .iter()
                .enumerate()
                .all(|(i, b)| b.iter().all(|&x| x == i as u8));
            kiln_std::collect();
            // SAFETY: ends the child without running the parent's destructors.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        assert!(pid > 0, "fork failed");
        let status = wait_child(pid, Duration::from_secs(10));
        assert!(
            status.is_some(),
            "child {round} hung: it inherited a held kiln lock"
        );
        assert_eq!(status.unwrap(), 0, "child {round} saw corrupted memory");
    }
    STOP.store(true, Ordering::Relaxed);
    churners.into_iter().for_each(|t| t.join().unwrap());
}

/// Deterministic: another thread holds the pool lock at the moment of `fork`. The prepare handler
/// must wait for it, so the child starts with the lock free; without the handler the child would
/// inherit the held lock and hang on its first new segment.
#[test]
fn fork_while_another_thread_holds_the_pool_lock() {
    static HELD: AtomicBool = AtomicBool::new(false);
    drop(vec![0u8; 64]); // this thread's kiln set-up (and the atfork registration) happens here
    let holder = std::thread::spawn(|| {
        kiln_std::POOL.lock_for_fork();
        HELD.store(true, Ordering::Release);
        std::thread::sleep(Duration::from_millis(200));
        // SAFETY: taken just above by this thread.
        unsafe { kiln_std::POOL.unlock_after_fork() };
    });
    while !HELD.load(Ordering::Acquire) {
        std::hint::spin_loop();
    }
    // SAFETY: the child only allocates through kiln and calls `_exit`.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // 24 blocks of 200 KiB need fresh segments: the pool lock.
        let blocks: Vec<Vec<u8>> = (0..24).map(|i| vec![i as u8; 200 * 1024]).collect();
        kiln_std::collect();
        // SAFETY: ends the child without running the parent's destructors.
        unsafe { libc::_exit(if blocks.len() == 24 { 0 } else { 1 }) };
    }
    assert!(pid > 0, "fork failed");
    let status = wait_child(pid, Duration::from_secs(10));
    holder.join().unwrap();
    assert_eq!(
        status,
        Some(0),
        "the child hung on an inherited pool lock (or failed)"
    );
}
