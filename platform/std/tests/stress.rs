//! Multi-thread stress through kiln's std API: producer/consumer and all-to-all frees across
//! threads, with every byte written checked before it is freed.

use std::sync::mpsc;
use std::thread;

struct Block(*mut u8, usize, u8);
// SAFETY: a block is handed over whole; only the receiving thread touches it afterwards.
unsafe impl Send for Block {}

fn make(size: usize, tag: u8) -> Block {
    let p = kiln_std::alloc(size, 8);
    assert!(!p.is_null());
    // SAFETY: fresh block of `size` bytes.
    unsafe { std::ptr::write_bytes(p, tag, size) };
    Block(p, size, tag)
}

fn check_and_free(b: Block) {
    // SAFETY: the block is live and ours now.
    let bytes = unsafe { std::slice::from_raw_parts(b.0, b.1) };
    assert!(
        bytes.iter().all(|&x| x == b.2),
        "block {:p} of {} bytes corrupted",
        b.0,
        b.1
    );
    // SAFETY: live block, freed once.
    unsafe { kiln_std::free(b.0) }.expect("free of a live block");
}

fn size_of(i: usize) -> usize {
    match i % 10 {
        0 => 20_000 + i % 50_000,      // medium
        1 if i % 1000 == 1 => 600_000, // huge, rarely
        _ => 1 + (i * 2654435761) % 2000,
    }
}

#[test]
fn producer_consumer() {
    let (tx, rx) = mpsc::sync_channel::<Block>(1024);
    let producer = thread::spawn(move || {
        for i in 0..200_000 {
            tx.send(make(size_of(i), i as u8)).unwrap();
        }
    });
    let consumer = thread::spawn(move || rx.iter().map(check_and_free).count());
    producer.join().unwrap();
    assert_eq!(consumer.join().unwrap(), 200_000);
    kiln_std::collect();
    kiln_std::check().unwrap();
}

#[test]
fn all_to_all() {
    const N: usize = 4;
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..N).map(|_| mpsc::channel::<Block>()).unzip();
    let handles: Vec<_> = rxs
        .into_iter()
        .enumerate()
        .map(|(me, rx)| {
            let txs = txs.clone();
            thread::spawn(move || {
                let mut kept = Vec::new();
                for i in 0..50_000 {
                    let b = make(size_of(i + me), (i ^ me) as u8);
                    if i % 3 == 0 {
                        kept.push(b); // freed locally later
                    } else {
                        txs[(me + i) % N].send(b).unwrap();
                    }
                    if i % 64 == 0 {
                        while let Ok(b) = rx.try_recv() {
                            check_and_free(b);
                        }
                    }
                }
                kept.into_iter().for_each(check_and_free);
                kiln_std::check().unwrap();
                drop(txs);
                rx
            })
        })
        .collect();
    drop(txs);
    for h in handles {
        h.join().unwrap().into_iter().for_each(check_and_free);
    }
    kiln_std::collect();
    kiln_std::check().unwrap();
}

#[test]
fn zeroed_allocations_are_zero_even_when_memory_is_reused() {
    for round in 0..4 {
        for size in [100, 5000, 100_000, 300_000, 1_500_000, 3_000_000] {
            let p = kiln_std::alloc(size, 8);
            // SAFETY: fresh block of `size` bytes; dirty it, then free it for reuse.
            unsafe {
                std::ptr::write_bytes(p, 0xEE, size);
                kiln_std::free(p).unwrap();
            }
            let z = kiln_std::alloc_zeroed(size, 8);
            // SAFETY: fresh block of `size` bytes.
            let bytes = unsafe { std::slice::from_raw_parts(z, size) };
            assert!(
                bytes.iter().all(|&b| b == 0),
                "round {round}: {size}-byte calloc not zero"
            );
            // SAFETY: live, freed once.
            unsafe { kiln_std::free(z) }.unwrap();
        }
    }
}
