//! The workloads: each drives an allocator through `&dyn GlobalAlloc` and reports how many
//! operations it timed and how long they took.
//!
//! Glossary:
//! - op: one allocator call the workload counts (an alloc, a free, or a realloc; see each
//!   workload's doc for exactly what it counts).
//! - budget: the op count a run aims for, and a deadline after which it stops early so that slow
//!   allocators (linked_list on large working sets) finish in time. Throughput is ops/s over the
//!   ops actually timed, so a run cut short by its deadline is still an honest rate; the table
//!   prints the timed op count beside it.
//! - probe: called once when the workload's own bookkeeping (slot tables, rings) is set up and
//!   before its first call into the allocator, so the peak-memory child takes its baseline there:
//!   the peak then covers everything the allocator maps for the workload, prefault included.
//!
//! Invariant: every workload frees every block it allocated before it returns, error or not.
mod churn;
mod classic;
mod random_mixed;
mod threads;

use crate::allocators::Instance;
use std::alloc::Layout;
use std::time::{Duration, Instant};

/// Pins the calling thread to the `index`-th CPU it may run on (counted modulo their number)
/// and returns the affinity it had; `None`, leaving it as it was, when it may run on fewer than
/// two CPUs or the system refuses.
///
/// producer-consumer pins its two threads to different CPUs. Unpinned, the scheduler sometimes
/// ran both on one core, where nothing crosses cores (no block or ring slot moves between
/// caches) and a run is five to ten times faster: the same allocator measured 6 to 95 Mops/s
/// from run to run, and the median of three runs was scheduling luck. Pinned, runs agree
/// within a few percent, and every handover is the cross-core one the workload is about. The
/// other multi-threaded workloads stay unpinned: pinned, xmalloc's chains (handed over under a
/// lock) ran 2x (kiln) to 10x (mimalloc) slower through LD_PRELOAD, a different workload.
pub fn pin_to_cpu(index: usize) -> Option<libc::cpu_set_t> {
    let own = affinity()?;
    let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `cpu` is below CPU_SETSIZE.
        .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &own) })
        .collect();
    if cpus.len() < 2 {
        return None;
    }
    // SAFETY: an all-zero `cpu_set_t` is a valid empty set; the CPU is below CPU_SETSIZE.
    let one = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpus[index % cpus.len()], &mut set);
        set
    };
    set_affinity(&one);
    Some(own)
}

/// The calling thread's CPU affinity (`None` where it cannot be read).
fn affinity() -> Option<libc::cpu_set_t> {
    // SAFETY: an all-zero `cpu_set_t` is a valid empty set; the call writes at most its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        (libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0)
            .then_some(set)
    }
}

/// Sets the calling thread's CPU affinity (best effort: a refusal leaves it as it was).
pub fn set_affinity(set: &libc::cpu_set_t) {
    // SAFETY: `set` is a valid `cpu_set_t` of the size passed.
    unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) };
}

/// How much work one run does.
#[derive(Clone, Copy, Debug)]
pub struct Budget {
    /// Ops to time (the untimed prefault pass of random-mixed is a tenth of this).
    pub ops: u64,
    /// How long one phase (set-up or timed part) may take.
    pub limit: Duration,
    /// The current phase stops at this point even if it has not reached `ops`.
    pub deadline: Instant,
}

impl Budget {
    /// `ops` ops, or as many as fit in `limit` from now.
    pub fn new(ops: u64, limit: Duration) -> Self {
        Self {
            ops,
            limit,
            deadline: Instant::now() + limit,
        }
    }
    /// The same budget with a fresh deadline, for the next phase.
    pub fn restart(&self) -> Self {
        Self::new(self.ops, self.limit)
    }
    /// A fresh deadline of half the limit, for an untimed warm-up phase: it only brings the
    /// working set to its steady state, so a slow allocator need not spend a full phase on it.
    pub fn warm_up(&self) -> Self {
        Self {
            deadline: Instant::now() + self.limit / 2,
            ..*self
        }
    }
    /// True once the deadline has passed (callers check every [`CHECK_EVERY`] ops).
    pub fn expired(&self) -> bool {
        Instant::now() >= self.deadline
    }
}

/// How often (in ops) a loop looks at the clock: rare enough to cost nothing measurable.
pub const CHECK_EVERY: u64 = 1024;

/// What one run measured.
#[derive(Clone, Copy, Debug)]
pub struct Outcome {
    /// Ops in the timed part.
    pub ops: u64,
    /// Seconds the timed part took.
    pub secs: f64,
}

impl Outcome {
    pub fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.secs.max(1e-9)
    }
}

/// Called before the workload's first allocator call (see the module doc).
pub type Probe<'a> = &'a mut dyn FnMut();

/// One workload.
pub struct Workload {
    /// Its name in tables, JSON and filters.
    pub name: &'static str,
    /// Ops of a full run.
    pub ops: u64,
    /// Runs it.
    pub run: fn(&Instance, Budget, Probe) -> Result<Outcome, String>,
}

/// Every in-process workload, in table order. The multi-threaded ones and glibc-simple run
/// 12 to 20 million ops: at a few million, a run of the fast allocators took 10 to 25 ms, thread
/// start-up and scheduling showed in the result (cache-scratch: one allocator measured 282 and
/// 680 Mops/s in two runs), and runs of one pair spread by up to 70%.
pub const ALL: &[Workload] = &[
    Workload {
        name: "random-mixed-400",
        ops: 5_000_000,
        run: |a, b, p| random_mixed::run(a, b, p, 400, random_mixed::small_size),
    },
    Workload {
        name: "random-mixed-8192",
        ops: 5_000_000,
        run: |a, b, p| random_mixed::run(a, b, p, 8192, random_mixed::small_size),
    },
    Workload {
        name: "random-mixed-100000",
        ops: 5_000_000,
        run: |a, b, p| random_mixed::run(a, b, p, 100_000, random_mixed::small_size),
    },
    Workload {
        name: "mid-large-8192",
        ops: 5_000_000,
        run: |a, b, p| random_mixed::run(a, b, p, 8192, random_mixed::mid_large_size),
    },
    Workload {
        name: "producer-consumer",
        ops: 4_000_000,
        run: threads::producer_consumer,
    },
    Workload {
        name: "larson",
        ops: 12_000_000,
        run: threads::larson,
    },
    Workload {
        name: "realloc-churn",
        ops: 2_000_000,
        run: churn::realloc_churn,
    },
    Workload {
        name: "hashmap-churn",
        ops: 2_000_000,
        run: churn::hashmap_churn,
    },
    Workload {
        name: "xmalloc",
        ops: 12_000_000,
        run: classic::xmalloc,
    },
    Workload {
        name: "cache-scratch",
        ops: 20_000_000,
        run: classic::cache_scratch,
    },
    Workload {
        name: "cache-thrash",
        ops: 20_000_000,
        run: classic::cache_thrash,
    },
    Workload {
        name: "mstress",
        ops: 12_000_000,
        run: classic::mstress,
    },
    Workload {
        name: "glibc-simple",
        ops: 20_000_000,
        run: classic::glibc_simple,
    },
    Workload {
        name: "glibc-thread",
        ops: 12_000_000,
        run: classic::glibc_thread,
    },
];

/// The workload called `name`, if there is one.
pub fn by_name(name: &str) -> Option<&'static Workload> {
    ALL.iter().find(|w| w.name == name)
}

/// xorshift32 (Marsaglia): the same generator as the C loop in `bench/c/`.
#[derive(Clone, Copy)]
pub struct XorShift32(u32);

impl XorShift32 {
    /// A generator with the harness's fixed seed, so every allocator sees the same sequence.
    pub fn new() -> Self {
        Self(2_463_534_242)
    }
    #[inline(always)]
    pub fn next_u32(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }
}

/// Every block the workloads ask for is 8-aligned (what a `Box<[u64]>` or a C `malloc` user
/// relies on).
pub const ALIGN: usize = 8;

/// The layout of a `size`-byte block.
#[inline(always)]
pub fn layout(size: usize) -> Layout {
    // Sizes here are at most a few MiB, far below isize::MAX, and ALIGN is a power of two.
    Layout::from_size_align(size, ALIGN).expect("workload sizes are small")
}

/// The error for an allocator that returned null.
#[cold]
#[inline(never)]
pub fn out_of_memory(size: usize, done: u64) -> String {
    format!("allocator returned null for {size} bytes after {done} ops (out of memory)")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocators;

    /// Every workload runs on every allocator, counts its ops and returns (no hang, no crash,
    /// no out-of-memory on a 1 GiB arena).
    #[test]
    fn every_workload_runs_on_every_allocator() {
        for spec in allocators::ALL {
            for w in ALL {
                let a = (spec.make)().unwrap();
                let mut probed = 0;
                let o = (w.run)(&a, Budget::new(4000, Duration::from_secs(20)), &mut || {
                    probed += 1
                })
                .unwrap_or_else(|e| panic!("{}/{}: {e}", w.name, spec.name));
                assert_eq!(probed, 1, "{}/{}: probe calls", w.name, spec.name);
                assert!(
                    o.ops >= 2000 && o.ops <= 4000,
                    "{}/{}: {o:?}",
                    w.name,
                    spec.name
                );
                assert!(o.secs > 0.0);
            }
        }
    }

    /// A run whose deadline has already passed stops at once with a valid (maybe empty) outcome;
    /// the multi-threaded ones must not leave a thread waiting forever.
    #[test]
    fn an_expired_deadline_stops_every_workload() {
        let a = (allocators::by_name("glibc").unwrap().make)().unwrap();
        for w in ALL {
            let o = (w.run)(&a, Budget::new(1 << 40, Duration::ZERO), &mut || {}).unwrap();
            assert!(o.ops < 1 << 20, "{}: {o:?}", w.name);
        }
    }

    #[test]
    fn xorshift32_matches_the_c_loop() {
        // The first outputs of Marsaglia's xorshift32 from seed 2463534242 (as in random_mixed.c).
        let mut r = XorShift32::new();
        assert_eq!(r.next_u32(), 723_471_715);
        assert_eq!(r.next_u32(), 2_497_366_906);
    }
}
