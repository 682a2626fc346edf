//! `active_heap` and `on_thread_exit`, which libkiln.so's per-thread heap cache relies on: the
//! heap is reported only while it serves the thread, the notification runs when it stops, and
//! anything that runs later on the dying thread (a thread-local destroyed after kiln's) no longer
//! sees an active heap.
use std::sync::atomic::{AtomicUsize, Ordering};

static NOTIFIED: AtomicUsize = AtomicUsize::new(0);
/// 1 = a later destructor saw no active heap, 2 = it still saw one.
static LATE_SAW: AtomicUsize = AtomicUsize::new(0);

fn notified() {
    NOTIFIED.fetch_add(1, Ordering::SeqCst);
}

struct Late;

impl Drop for Late {
    fn drop(&mut self) {
        let seen = if kiln_std::active_heap().is_none() {
            1
        } else {
            2
        };
        LATE_SAW.store(seen, Ordering::SeqCst);
        // A late allocation still works (kiln-std's fallback heap serves it).
        let p = kiln_std::alloc(32, 8);
        assert!(!p.is_null());
        // SAFETY: allocated just above, freed once.
        unsafe { kiln_std::free(p) }.unwrap();
    }
}

thread_local! {
    static LATE: Late = const { Late };
}

#[test]
fn the_heap_is_active_only_while_it_serves_the_thread() {
    kiln_std::on_thread_exit(notified);
    std::thread::spawn(|| {
        // Registered before kiln's exit hook, so destroyed after it (reverse order).
        LATE.with(|_| {});
        assert!(
            kiln_std::active_heap().is_none(),
            "no heap before the first allocation"
        );
        let p = kiln_std::alloc(64, 8);
        assert!(!p.is_null());
        assert!(
            kiln_std::active_heap().is_some(),
            "the heap serves the thread now"
        );
        // SAFETY: allocated just above, freed once.
        unsafe { kiln_std::free(p) }.unwrap();
    })
    .join()
    .unwrap();
    assert!(NOTIFIED.load(Ordering::SeqCst) >= 1, "no exit notification");
    assert_eq!(
        LATE_SAW.load(Ordering::SeqCst),
        1,
        "a destructor after kiln's exit hook still saw an active heap"
    );
}
