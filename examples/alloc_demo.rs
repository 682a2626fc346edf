//! kiln as the global allocator of a multi-threaded program: a burst of Vec/String/HashMap/Box
//! work with cross-thread frees, then the allocator's statistics and the memory it gave back.
//!
//! Run: `cargo run --release -p kiln-std --features stats --example alloc_demo`

use std::collections::HashMap;
use std::sync::mpsc;
use std::thread;

#[global_allocator]
static A: kiln_std::KilnAlloc = kiln_std::KilnAlloc;

fn burst(
    me: usize,
    to_next: mpsc::Sender<Vec<String>>,
    from_prev: mpsc::Receiver<Vec<String>>,
) -> usize {
    let mut index: HashMap<String, Vec<usize>> = HashMap::new();
    let mut checked = 0;
    for round in 0..200 {
        let batch: Vec<String> = (0..500)
            .map(|i| format!("t{me}-r{round}-{i}-{}", "k".repeat(i % 64)))
            .collect();
        for (i, s) in batch.iter().enumerate() {
            index
                .entry(s[..s.len().min(8)].to_string())
                .or_default()
                .push(i);
        }
        to_next.send(batch).unwrap(); // freed by the next thread: remote frees
        if let Ok(got) = from_prev.recv() {
            checked += got.iter().filter(|s| s.starts_with('t')).count();
        }
    }
    checked + index.len()
}

fn main() {
    const THREADS: usize = 4;
    let before = kiln_std::segments_in_use();
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..THREADS).map(|_| mpsc::channel()).unzip();
    let mut rxs: Vec<Option<_>> = rxs.into_iter().map(Some).collect();
    let start = std::time::Instant::now();
    let handles: Vec<_> = (0..THREADS)
        .map(|me| {
            let tx = txs[(me + 1) % THREADS].clone();
            let rx = rxs[me].take().unwrap();
            thread::spawn(move || burst(me, tx, rx))
        })
        .collect();
    drop(txs);
    let work: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    let elapsed = start.elapsed();
    let peak = kiln::allocator::stats::snapshot();
    kiln_std::collect();
    let after = kiln_std::segments_in_use();

    println!(
        "kiln allocator demo: {THREADS} threads, {work} items checked in {:.1} ms",
        elapsed.as_secs_f64() * 1e3
    );
    if kiln::allocator::stats::ENABLED {
        let total = peak.fast_alloc + peak.slow_alloc + peak.huge_alloc;
        println!(
            "  allocations     {total:>10}  (fast path {:.1}%, slow {}, huge {})",
            100.0 * peak.fast_alloc as f64 / total.max(1) as f64,
            peak.slow_alloc,
            peak.huge_alloc
        );
        println!(
            "  frees           {:>10}  (local {}, remote {}, huge {})",
            peak.local_free + peak.remote_free + peak.huge_free,
            peak.local_free,
            peak.remote_free,
            peak.huge_free
        );
        println!("  peak live bytes {:>10}", peak.peak_bytes);
        println!(
            "  peak segments   {:>10}  ({} MiB)",
            peak.peak_segments,
            peak.peak_segments * 2
        );
        println!(
            "  pages retired   {:>10}  (avg lifetime {} allocs, avg peak fill {}%)",
            peak.pages_retired,
            peak.retired_lifetime_allocs / peak.pages_retired.max(1),
            peak.retired_peak_fill_permille_sum / peak.pages_retired.max(1) / 10
        );
        let busiest = (0..kiln::allocator::size_class::CLASS_COUNT)
            .max_by_key(|&c| peak.class_alloc[c])
            .unwrap();
        println!(
            "  busiest class   {:>10}  ({} allocations)",
            kiln::allocator::size_class::class_size(busiest),
            peak.class_alloc[busiest]
        );
    } else {
        println!("  (build with --features stats for the counters)");
    }
    println!(
        "  segments in use: {before} before, {after} after the burst (memory returned to the OS)"
    );
}
