//! This test binary runs with kiln as its global allocator: multi-threaded Vec, String, HashMap
//! and Box churn where blocks allocated on one thread are freed on another.

use std::collections::HashMap;
use std::sync::mpsc;
use std::thread;

#[global_allocator]
static A: kiln_std::KilnAlloc = kiln_std::KilnAlloc;

fn payload(thread: usize, i: usize) -> (Vec<u64>, String, Box<[u8; 200]>) {
    let v: Vec<u64> = (0..(i % 97) as u64)
        .map(|k| k * 31 + thread as u64)
        .collect();
    let s = format!("t{thread}-i{i}-{}", "x".repeat(i % 300));
    let b = Box::new([(i % 251) as u8; 200]);
    (v, s, b)
}

fn verify(thread: usize, i: usize, p: &(Vec<u64>, String, Box<[u8; 200]>)) {
    let (v, s, b) = payload(thread, i);
    assert_eq!(p.0, v);
    assert_eq!(p.1, s);
    assert_eq!(p.2[..], b[..]);
}

#[test]
fn kiln_serves_the_global_allocator() {
    let v = vec![1u8; 1000];
    assert!(
        kiln_std::usable_size(v.as_ptr()).unwrap() >= 1000,
        "a Vec's buffer is a kiln block"
    );
    let big = vec![0u64; 1 << 20];
    assert!(
        kiln_std::usable_size(big.as_ptr().cast()).is_some(),
        "huge blocks too"
    );
}

#[test]
fn cross_thread_churn_stays_correct() {
    const THREADS: usize = 4;
    const ITEMS: usize = 20_000;
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..THREADS).map(|_| mpsc::channel()).unzip();
    let handles: Vec<_> = receivers
        .into_iter()
        .enumerate()
        .map(|(me, rx)| {
            let senders = senders.clone();
            thread::spawn(move || {
                let mut map: HashMap<String, Vec<u32>> = HashMap::new();
                let mut received = 0;
                for i in 0..ITEMS {
                    // Hand every item to the next thread: it frees what we allocated.
                    senders[(me + 1) % THREADS]
                        .send((me, i, payload(me, i)))
                        .unwrap();
                    while let Ok((from, j, item)) = rx.try_recv() {
                        verify(from, j, &item);
                        received += 1;
                    }
                    let key = format!("k{}", i % 512);
                    let e = map.entry(key).or_default();
                    e.push(i as u32);
                    if e.len() > 50 {
                        e.clear();
                        e.shrink_to_fit();
                    }
                }
                drop(senders);
                // The invariant walker over this thread's heap after the churn.
                kiln_std::check().unwrap();
                (rx, received, map.len())
            })
        })
        .collect();
    drop(senders);
    for h in handles {
        let (rx, mut received, keys) = h.join().unwrap();
        for (from, j, item) in rx.iter() {
            verify(from, j, &item);
            received += 1;
        }
        assert_eq!(received, ITEMS);
        assert_eq!(keys, 512);
    }
    kiln_std::collect();
    kiln_std::check().unwrap();
    assert_eq!(kiln_std::HEAPS.invalid_frees(), 0);
}

/// Every power-of-two alignment up to 1 GiB through `GlobalAlloc` (`Layout` as Rust code asks
/// for it): aligned, usable, and given back.
#[test]
fn global_alloc_serves_alignments_up_to_one_gib() {
    use std::alloc::{alloc, alloc_zeroed, dealloc, realloc, Layout};
    for shift in 4..=30 {
        let align = 1usize << shift;
        for size in [8, align + 3] {
            let layout = Layout::from_size_align(size, align).unwrap();
            // SAFETY: non-zero size; every block is written within bounds and freed once.
            unsafe {
                let p = if shift % 2 == 0 {
                    alloc(layout)
                } else {
                    alloc_zeroed(layout)
                };
                assert!(!p.is_null(), "size {size} align {align}");
                assert_eq!(p as usize % align, 0, "size {size} align {align}");
                assert!(kiln_std::usable_size(p).unwrap() >= size);
                if shift % 2 == 1 {
                    assert_eq!(*p.add(size - 1), 0, "zeroed");
                }
                *p = 0x11;
                *p.add(size - 1) = 0x22;
                let q = realloc(p, layout, size + 4096);
                assert!(!q.is_null() && (q as usize).is_multiple_of(align));
                assert_eq!((*q, *q.add(size - 1)), (0x11, 0x22));
                dealloc(q, Layout::from_size_align(size + 4096, align).unwrap());
            }
        }
    }
    kiln_std::collect();
    kiln_std::check().unwrap();
}

/// A thread whose first allocation happens while its thread-locals are being destroyed (in a
/// TLS destructor) must still be served (by the shared fallback heap), not abort.
#[test]
fn first_allocation_inside_a_tls_destructor_is_served() {
    struct AllocOnDrop;
    impl Drop for AllocOnDrop {
        fn drop(&mut self) {
            let v: Vec<u64> = (0..1000).collect();
            assert_eq!(v.iter().sum::<u64>(), 499_500);
        }
    }
    thread_local! { static LATE: AllocOnDrop = const { AllocOnDrop }; }
    std::thread::spawn(|| LATE.with(|_| {})).join().unwrap();
}
