//! The allocators under test, each made into a `Box<dyn GlobalAlloc>` so that all of them run
//! through the same workload code (one `&dyn GlobalAlloc` call per operation).
//!
//! Glossary:
//! - hosted allocator: a process-wide allocator with its own global state (kiln, glibc's malloc
//!   via `std::alloc::System`, mimalloc, jemalloc); the box is a zero-sized handle to it.
//! - arena allocator: a `no_std` peer on a fresh 1 GiB arena per instance ([`crate::arena`]);
//!   the box owns the arena, so each run starts from an empty heap.
//!
//! None of these is the process's `#[global_allocator]` (that stays `System`, for the harness's
//! own bookkeeping), so an allocator under test sees only the workload's calls.
use crate::arena::{ArenaAlloc, Buddy, LinkedList, Rlsf, Talc};
use std::alloc::GlobalAlloc;

/// An allocator instance the workloads can share between threads.
pub type Instance = Box<dyn GlobalAlloc + Send + Sync>;

/// One allocator under test.
pub struct Spec {
    /// Its name in tables, JSON and filters.
    pub name: &'static str,
    /// Makes an instance (a fresh heap for arena allocators).
    pub make: fn() -> Result<Instance, String>,
}

fn hosted<A: GlobalAlloc + Send + Sync + 'static>(a: A) -> Result<Instance, String> {
    Ok(Box::new(a))
}

/// Every allocator, in table order: kiln first, then the hosted peers, then the `no_std` ones.
pub const ALL: &[Spec] = &[
    Spec {
        name: "kiln",
        make: || hosted(kiln_std::KilnAlloc),
    },
    Spec {
        name: "glibc",
        make: || hosted(std::alloc::System),
    },
    Spec {
        name: "mimalloc",
        make: || hosted(mimalloc::MiMalloc),
    },
    Spec {
        name: "jemalloc",
        make: || hosted(tikv_jemallocator::Jemalloc),
    },
    Spec {
        name: "talc",
        make: || Ok(Box::new(ArenaAlloc::<Talc>::new()?)),
    },
    Spec {
        name: "linked_list",
        make: || Ok(Box::new(ArenaAlloc::<LinkedList>::new()?)),
    },
    Spec {
        name: "buddy",
        make: || Ok(Box::new(ArenaAlloc::<Buddy>::new()?)),
    },
    Spec {
        name: "rlsf",
        make: || Ok(Box::new(ArenaAlloc::<Rlsf>::new()?)),
    },
];

/// The allocator called `name`, if there is one.
pub fn by_name(name: &str) -> Option<&'static Spec> {
    ALL.iter().find(|s| s.name == name)
}
