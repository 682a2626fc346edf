//! `libkiln.so`: kiln behind the C allocation API, for `LD_PRELOAD`.
//!
//! ```text
//! LD_PRELOAD=target/release/libkiln.so KILN_STATS=1 python3 script.py
//! ```
//!
//! # Glossary
//!
//! | term | meaning |
//! |---|---|
//! | entry point | one exported C function (`malloc`, `free`, `calloc`, `realloc`, `reallocarray`, `posix_memalign`, `aligned_alloc`, `memalign`, `valloc`, `pvalloc`, `malloc_usable_size`) |
//! | re-entry | a call into an entry point made while this thread is already inside kiln (kiln's own thread set-up calling `calloc` through libc, for instance) |
//! | bootstrap area | a static bump region that serves re-entrant allocations; its blocks are never reused and freeing them does nothing |
//! | served | a call that kiln's allocator (`kiln_std`) answered, as opposed to the bootstrap area |
//! | heap cache | the thread's kiln heap, kept in initial-exec TLS once kiln-std serves the thread, so `malloc`/`free` reach it without `__tls_get_addr` (`heap_cache.rs`) |
//!
//! # Invariants
//!
//! - Every pointer returned is either a kiln block or a bootstrap block; glibc's allocator is
//!   never called (the `KILN_STATS=1` report shows glibc's heap untouched through `mallinfo2`).
//! - `dlsym` is never called: nothing here needs the symbols kiln replaces.
//! - `malloc`/`calloc`/`realloc` return 16-byte aligned blocks; failures set `errno` to `ENOMEM`
//!   (`EINVAL` for a bad alignment) and return null; nothing here panics across the C boundary.
//! - A free of memory that kiln does not recognise as a live block (double free, interior
//!   pointer) aborts with a `kiln: ...` message on stderr before anything is corrupted.
//! - Nothing on the allocation path locks; `fork` is made safe by the `pthread_atfork` handlers
//!   registered at load time (see [`init`]).
#![deny(unsafe_op_in_unsafe_fn)]

mod entry;
mod fail;
mod heap_cache;
pub mod init;
mod reentry;
mod report;

pub use entry::*;
