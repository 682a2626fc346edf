//! `kiln-preload-probe SCENARIO`: exercises the C allocation API of whatever `malloc` the process
//! has; run it under `LD_PRELOAD=target/release/libkiln.so` (see `cargo xtask test preload`).
//!
//! Scenarios: `api` (C semantics and every alignment up to 1 GiB), `threads` (cross-thread frees with
//! content checks), `fork` (fork while other threads allocate; children must not deadlock),
//! `large-pages` (huge pages for a heap dense in small blocks, none with `KILN_LARGE_PAGES=0`),
//! and the misuse cases `double-free`, `interior-free`, `foreign-free`, `realloc-interior`, which must abort
//! with a `kiln: ...` message.
use std::ffi::c_void;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;

/// A failed check: what was expected.
type Check = Result<(), String>;

fn ensure(ok: bool, what: &str) -> Check {
    if ok {
        Ok(())
    } else {
        Err(what.to_owned())
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn set_errno(v: i32) {
    // SAFETY: this thread's errno slot is always valid.
    unsafe { *libc::__errno_location() = v };
}

/// Whether libkiln.so is loaded: it exports `kiln_preload_served_calls`.
fn under_kiln() -> bool {
    // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only looks the symbol up.
    !unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"kiln_preload_served_calls".as_ptr()) }.is_null()
}

fn fill(p: *mut c_void, n: usize, seed: u8) {
    // SAFETY: callers pass a live block of at least `n` bytes.
    unsafe { std::ptr::write_bytes(p.cast::<u8>(), seed, n) };
}

fn holds(p: *const c_void, n: usize, seed: u8) -> bool {
    // SAFETY: callers pass a live block of at least `n` bytes.
    unsafe { std::slice::from_raw_parts(p.cast::<u8>(), n) }
        .iter()
        .all(|&b| b == seed)
}

fn api() -> Check {
    // SAFETY: every pointer passed to free/realloc/usable_size below is a live block returned by
    // this process's allocator, or null where null is the point of the check.
    unsafe {
        for size in [
            0usize,
            1,
            7,
            8,
            15,
            16,
            17,
            100,
            1000,
            4096,
            65536,
            1 << 20,
            5 << 20,
        ] {
            let p = c::malloc(size);
            ensure(!p.is_null(), &format!("malloc({size}) is not null"))?;
            ensure(
                (p as usize).is_multiple_of(16),
                &format!("malloc({size}) is 16-byte aligned"),
            )?;
            ensure(c::malloc_usable_size(p) >= size, "usable size >= requested")?;
            fill(p, size, 0xAB);
            ensure(holds(p, size, 0xAB), "malloc'd bytes hold what was written")?;
            c::free(p);
        }
        let (a, b) = (c::malloc(0), c::malloc(0));
        ensure(a != b && !a.is_null(), "malloc(0) gives distinct blocks")?;
        c::free(a);
        c::free(b);
        c::free(std::ptr::null_mut());

        let z = c::calloc(1000, 8);
        ensure(!z.is_null() && holds(z, 8000, 0), "calloc zeroes")?;
        c::free(z);
        // A recycled block must be zeroed too.
        let d = c::malloc(4000);
        fill(d, 4000, 0xFF);
        c::free(d);
        let z = c::calloc(4000, 1);
        ensure(holds(z, 4000, 0), "calloc zeroes a recycled block")?;
        c::free(z);
        set_errno(0);
        ensure(
            c::calloc(usize::MAX / 2, 3).is_null(),
            "calloc overflow gives null",
        )?;
        ensure(errno() == libc::ENOMEM, "calloc overflow sets ENOMEM")?;
        set_errno(0);
        ensure(
            c::malloc(usize::MAX - 4096).is_null(),
            "a huge malloc gives null",
        )?;
        ensure(errno() == libc::ENOMEM, "a huge malloc sets ENOMEM")?;

        let r = c::realloc(std::ptr::null_mut(), 40);
        ensure(!r.is_null(), "realloc(NULL, n) allocates")?;
        fill(r, 40, 7);
        let r = c::realloc(r, 100_000);
        ensure(
            !r.is_null() && holds(r, 40, 7),
            "realloc keeps the contents when growing",
        )?;
        let r = c::realloc(r, 10);
        ensure(
            !r.is_null() && holds(r, 10, 7),
            "realloc keeps the contents when shrinking",
        )?;
        set_errno(0);
        ensure(
            c::realloc(r, usize::MAX - 4096).is_null(),
            "a huge realloc fails",
        )?;
        ensure(
            errno() == libc::ENOMEM && holds(r, 10, 7),
            "and leaves the block alone",
        )?;
        ensure(
            c::realloc(r, 0).is_null(),
            "realloc(p, 0) frees and returns null",
        )?;

        let q = c::malloc(16);
        fill(q, 16, 3);
        set_errno(0);
        ensure(
            c::reallocarray(q, usize::MAX / 2, 4).is_null(),
            "reallocarray overflow",
        )?;
        ensure(
            errno() == libc::ENOMEM && holds(q, 16, 3),
            "sets ENOMEM, keeps the block",
        )?;
        let q = c::reallocarray(q, 100, 4);
        ensure(!q.is_null() && holds(q, 16, 3), "reallocarray grows")?;
        c::free(q);

        let mut out: *mut c_void = std::ptr::null_mut();
        ensure(
            c::posix_memalign(&mut out, 24, 8) == libc::EINVAL,
            "posix_memalign(24) EINVAL",
        )?;
        ensure(
            c::posix_memalign(&mut out, 4, 8) == libc::EINVAL,
            "posix_memalign(4) EINVAL",
        )?;
        set_errno(0);
        ensure(
            c::aligned_alloc(3, 8).is_null() && errno() == libc::EINVAL,
            "aligned_alloc(3)",
        )?;
        for shift in 3..=20 {
            let align = 1usize << shift;
            for size in [1usize, align / 2 + 1, 3 * align + 5] {
                let mut p: *mut c_void = std::ptr::null_mut();
                if align >= 8 {
                    let rc = c::posix_memalign(&mut p, align, size);
                    ensure(
                        rc == 0,
                        &format!("posix_memalign({align}, {size}) returned {rc}"),
                    )?;
                    ensure(
                        (p as usize).is_multiple_of(align),
                        &format!("posix_memalign({align}) aligned"),
                    )?;
                    fill(p, size, 1);
                    c::free(p);
                }
                let p = c::aligned_alloc(align, size);
                ensure(
                    !p.is_null() && (p as usize).is_multiple_of(align),
                    &format!("aligned_alloc({align})"),
                )?;
                fill(p, size, 2);
                c::free(p);
                let p = c::memalign(align, size);
                ensure(
                    !p.is_null() && (p as usize).is_multiple_of(align),
                    &format!("memalign({align})"),
                )?;
                fill(p, size, 3);
                let p2 = c::realloc(p, size * 2);
                ensure(
                    holds(p2, size, 3),
                    "realloc of an aligned block keeps contents",
                )?;
                c::free(p2);
            }
        }
        // Alignments of a segment (2 MiB) and more, up to 1 GiB: every entry point, a 5 MiB
        // block (huge pages, DMA buffers), written at both ends, and realloc keeps it.
        for shift in 21..=30 {
            let align = 1usize << shift;
            let size = 5 << 20;
            let mut p: *mut c_void = std::ptr::null_mut();
            let rc = c::posix_memalign(&mut p, align, size);
            ensure(
                rc == 0 && (p as usize).is_multiple_of(align),
                &format!("posix_memalign({align}, 5 MiB) returned {rc}"),
            )?;
            fill(p, size, 4);
            let q = c::realloc(p, size + 4096);
            ensure(
                holds(q, size, 4),
                "realloc of a segment-aligned block keeps contents",
            )?;
            c::free(q);
            let p = c::aligned_alloc(align, size);
            ensure(
                !p.is_null() && (p as usize).is_multiple_of(align),
                &format!("aligned_alloc({align}, 5 MiB)"),
            )?;
            ensure(
                c::malloc_usable_size(p) >= size,
                "usable size of an aligned block",
            )?;
            fill(p, size, 5);
            c::free(p);
            let p = c::memalign(align, 8);
            ensure(
                !p.is_null() && (p as usize).is_multiple_of(align),
                &format!("memalign({align}, 8)"),
            )?;
            c::free(p);
        }
        // A non-power-of-two alignment beyond a segment is still EINVAL / rounded up.
        let mut p: *mut c_void = std::ptr::null_mut();
        ensure(
            c::posix_memalign(&mut p, 3 << 20, 8) == libc::EINVAL,
            "posix_memalign(3 MiB) EINVAL",
        )?;
        set_errno(0);
        ensure(
            c::aligned_alloc(3 << 20, 8).is_null() && errno() == libc::EINVAL,
            "aligned_alloc(3 MiB) EINVAL",
        )?;
        let p = c::memalign(3 << 20, 8);
        ensure(
            !p.is_null() && (p as usize).is_multiple_of(4 << 20),
            "memalign(3 MiB) rounds up to 4 MiB",
        )?;
        c::free(p);
        // Memory runs out: ENOMEM / null with errno, nothing else disturbed.
        let mut p: *mut c_void = std::ptr::null_mut();
        ensure(
            c::posix_memalign(&mut p, 1 << 30, usize::MAX / 2) == libc::ENOMEM && p.is_null(),
            "posix_memalign of an impossible size: ENOMEM",
        )?;
        set_errno(0);
        ensure(
            c::aligned_alloc(1 << 30, usize::MAX / 2).is_null() && errno() == libc::ENOMEM,
            "aligned_alloc of an impossible size: null, ENOMEM",
        )?;
        set_errno(0);
        ensure(
            c::memalign(1 << 30, usize::MAX / 2).is_null() && errno() == libc::ENOMEM,
            "memalign of an impossible size: null, ENOMEM",
        )?;
        set_errno(0);
        ensure(
            c::valloc(usize::MAX / 2).is_null() && errno() == libc::ENOMEM,
            "valloc of an impossible size: null, ENOMEM",
        )?;
        set_errno(0);
        ensure(
            c::pvalloc(usize::MAX - 10).is_null() && errno() == libc::ENOMEM,
            "pvalloc of an overflowing size: null, ENOMEM",
        )?;
        ensure(
            c::memalign(usize::MAX, 8).is_null(),
            "memalign of an alignment with no power of two above it: null",
        )?;
        let p = c::memalign(48, 10);
        ensure(
            !p.is_null() && (p as usize).is_multiple_of(64),
            "memalign(48) rounds to 64 like glibc",
        )?;
        c::free(p);
        let page = libc::sysconf(libc::_SC_PAGESIZE) as usize;
        let v = c::valloc(10);
        ensure(
            !v.is_null() && (v as usize).is_multiple_of(page),
            "valloc is page aligned",
        )?;
        c::free(v);
        let v = c::pvalloc(page + 1);
        ensure(
            !v.is_null() && (v as usize).is_multiple_of(page),
            "pvalloc is page aligned",
        )?;
        ensure(
            c::malloc_usable_size(v) >= 2 * page,
            "pvalloc rounds to whole pages",
        )?;
        c::free(v);
        ensure(
            c::malloc_usable_size(std::ptr::null_mut()) == 0,
            "usable size of NULL",
        )?;
    }
    Ok(())
}

/// The C allocation functions, called through pointers hidden from the optimiser (LLVM would
/// otherwise be free to elide a malloc/free pair, or a double free, as it knows their meaning).
mod c {
    use std::ffi::{c_int, c_void};
    use std::hint::black_box;

    extern "C" {
        #[link_name = "pvalloc"]
        fn libc_pvalloc(size: usize) -> *mut c_void;
        #[link_name = "valloc"]
        fn libc_valloc(size: usize) -> *mut c_void;
        #[link_name = "reallocarray"]
        fn libc_reallocarray(p: *mut c_void, n: usize, size: usize) -> *mut c_void;
    }

    macro_rules! opaque {
        ($($name:ident = $f:path : fn($($a:ident: $t:ty),*) -> $r:ty;)*) => {$(
            /// # Safety
            ///
            /// The C function's contract.
            pub unsafe fn $name($($a: $t),*) -> $r {
                let f: unsafe extern "C" fn($($t),*) -> $r = black_box($f);
                // SAFETY: the caller upholds the C function's contract.
                unsafe { f($($a),*) }
            }
        )*};
    }

    opaque! {
        malloc = libc::malloc: fn(n: usize) -> *mut c_void;
        free = libc::free: fn(p: *mut c_void) -> ();
        calloc = libc::calloc: fn(n: usize, size: usize) -> *mut c_void;
        realloc = libc::realloc: fn(p: *mut c_void, n: usize) -> *mut c_void;
        reallocarray = libc_reallocarray: fn(p: *mut c_void, n: usize, size: usize) -> *mut c_void;
        posix_memalign = libc::posix_memalign: fn(out: *mut *mut c_void, align: usize, n: usize) -> c_int;
        aligned_alloc = libc::aligned_alloc: fn(align: usize, n: usize) -> *mut c_void;
        memalign = libc::memalign: fn(align: usize, n: usize) -> *mut c_void;
        valloc = libc_valloc: fn(n: usize) -> *mut c_void;
        pvalloc = libc_pvalloc: fn(n: usize) -> *mut c_void;
        malloc_usable_size = libc::malloc_usable_size: fn(p: *mut c_void) -> usize;
    }
}

/// A pointer that may cross threads.
struct Block(*mut c_void, usize, u8);
// SAFETY: the block is owned by whoever holds the message; the allocator is thread-safe.
unsafe impl Send for Block {}

fn threads() -> Check {
    let (tx, rx) = mpsc::channel::<Block>();
    let producers: Vec<_> = (0..4u8)
        .map(|t| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                for i in 0..20_000usize {
                    let size = 1 + (i * 37 + t as usize * 11) % 2000;
                    let seed = (i as u8) ^ t;
                    // SAFETY: plain allocation; the block is filled then owned by `Block`.
                    let p = unsafe { c::malloc(size) };
                    assert!(!p.is_null());
                    fill(p, size, seed);
                    if i % 2 == 0 {
                        tx.send(Block(p, size, seed)).unwrap(); // freed by the consumer thread
                    } else {
                        mine.push(Block(p, size, seed));
                    }
                    if mine.len() > 100 {
                        let b = mine.swap_remove(i % 100);
                        assert!(holds(b.0, b.1, b.2), "block intact before a local free");
                        // SAFETY: `b.0` is a live block owned here.
                        unsafe { c::free(b.0) };
                    }
                }
                for b in mine {
                    assert!(holds(b.0, b.1, b.2));
                    // SAFETY: as above.
                    unsafe { c::free(b.0) };
                }
            })
        })
        .collect();
    drop(tx);
    let consumer = std::thread::spawn(move || {
        let mut n = 0;
        for b in rx {
            if !holds(b.0, b.1, b.2) {
                return Err("a block sent across threads was corrupted".to_owned());
            }
            // SAFETY: the block was handed over through the channel; nobody else uses it.
            unsafe { c::free(b.0) };
            n += 1;
        }
        ensure(n == 40_000, "every cross-thread block arrived")
    });
    for p in producers {
        p.join()
            .map_err(|_| "a producer thread panicked".to_owned())?;
    }
    consumer
        .join()
        .map_err(|_| "the consumer panicked".to_owned())?
}

fn fork() -> Check {
    let stop = Arc::new(AtomicBool::new(false));
    let busy: Vec<_> = (0..3)
        .map(|t| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut i = 0usize;
                while !stop.load(Ordering::Relaxed) {
                    let v: Vec<u8> = vec![t as u8; 1 + i % 5000];
                    let s = format!("{i}{}", v.len());
                    std::hint::black_box((v, s));
                    i += 1;
                }
            })
        })
        .collect();
    for round in 0..100 {
        // SAFETY: fork is safe to call; the child only allocates, frees and _exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: in the child: alarm kills a deadlocked child; the rest is plain allocation.
            unsafe {
                libc::alarm(10);
                for size in [16usize, 1000, 100_000, 3 << 20] {
                    let p = c::malloc(size);
                    if p.is_null() {
                        libc::_exit(2);
                    }
                    fill(p, size, 9);
                    c::free(p);
                }
                libc::_exit(0);
            }
        }
        ensure(pid > 0, "fork succeeded")?;
        let mut status = 0;
        // SAFETY: waits for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        ensure(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            &format!("fork round {round}: child exited cleanly (status {status:#x}; 0xe = SIGALRM: deadlock)"),
        )?;
    }
    stop.store(true, Ordering::Relaxed);
    for t in busy {
        t.join().map_err(|_| "a busy thread panicked".to_owned())?;
    }
    Ok(())
}

#[path = "../../../std/tests/support/huge_pages.rs"]
mod huge_pages;

/// `KILN_LARGE_PAGES=0` keeps a heap dense in small blocks on small pages; without it, its newest
/// segment is advised to use huge pages. Passes without a check where the advice does not show
/// in `/proc/self/smaps` (a kernel without transparent huge pages, qemu-user).
fn large_pages() -> Check {
    let visible = huge_pages::advice_is_visible();
    if !visible {
        println!("probe large-pages: huge-page advice does not show here, nothing checked");
        return Ok(());
    }
    let off = std::env::var("KILN_LARGE_PAGES").is_ok_and(|v| v.starts_with('0'));
    // 16 MiB of 64-byte blocks, each written: the heap is dense in small blocks.
    let blocks: Vec<usize> = (0..262_144)
        .map(|i| {
            // SAFETY: malloc has no precondition; the block is checked before it is written.
            unsafe {
                let p = c::malloc(64);
                if !p.is_null() {
                    fill(p, 64, i as u8);
                }
                p as usize
            }
        })
        .collect();
    ensure(blocks.iter().all(|&p| p != 0), "malloc(64) is not null")?;
    let advised = huge_pages::advised_huge(*blocks.last().expect("blocks"));
    for &p in &blocks {
        // SAFETY: live blocks from malloc, freed once.
        unsafe { c::free(p as *mut c_void) };
    }
    ensure(
        advised == Some(!off),
        &format!(
            "the newest segment advised huge: {}, found {advised:?}",
            !off
        ),
    )
}

// The misuse cases are deliberately wrong: the allocator must abort before any harm is done.

fn double_free() -> Check {
    // SAFETY: not safe on purpose (see above); kiln must stop the second free.
    unsafe {
        let p = c::malloc(48);
        c::free(p);
        c::free(p);
    }
    Err("a double free returned".to_owned())
}

fn interior_free() -> Check {
    // SAFETY: not safe on purpose (see above); kiln must refuse the interior pointer.
    unsafe {
        let p = c::malloc(64).cast::<u8>();
        c::free(p.add(16).cast());
    }
    Err("a free of an interior pointer returned".to_owned())
}

fn foreign_free() -> Check {
    let mut on_the_stack = [0u64; 4];
    std::hint::black_box(&mut on_the_stack);
    // SAFETY: not safe on purpose (see above); kiln must refuse a pointer it never handed out.
    unsafe { c::free(on_the_stack.as_mut_ptr().cast()) };
    Err("a free of a stack address returned".to_owned())
}

fn realloc_interior() -> Check {
    // SAFETY: not safe on purpose (see above); kiln must refuse the interior pointer.
    unsafe {
        let p = c::malloc(64).cast::<u8>();
        c::realloc(p.add(8).cast(), 200);
    }
    Err("a realloc of an interior pointer returned".to_owned())
}

fn main() -> ExitCode {
    let scenario = std::env::args().nth(1).unwrap_or_default();
    if !under_kiln() {
        eprintln!(
            "probe: libkiln.so is not loaded (run with LD_PRELOAD=target/release/libkiln.so)"
        );
        return ExitCode::from(3);
    }
    let result = match scenario.as_str() {
        "api" => api(),
        "threads" => threads(),
        "fork" => fork(),
        "large-pages" => large_pages(),
        "double-free" => double_free(),
        "interior-free" => interior_free(),
        "foreign-free" => foreign_free(),
        "realloc-interior" => realloc_interior(),
        other => Err(format!(
            "unknown scenario `{other}`: api, threads, fork, large-pages, double-free, interior-free, foreign-free, realloc-interior"
        )),
    };
    match result {
        Ok(()) => {
            println!("probe {scenario}: ok");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("probe {scenario}: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}
