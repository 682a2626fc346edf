//! Tokenizes a large generated `.kl`-like source twice: once with one heap allocation per token,
//! once into a kiln arena, and prints the allocator calls, bytes, peak live bytes and time of each.
//!
//! ```text
//! cargo run --release -p kiln-std --features stats --example arena_lexer [MEGABYTES]
//! ```
//!
//! kiln is the global allocator, wrapped in a counter ([`Counting`]) that sees the exact bytes
//! asked for. Each run happens in its own child process (this program started again with
//! `--run heap|arena`), so that kiln's process-wide statistics (`--features stats`: calls per
//! path, peak live bytes, segments) describe that run alone.
use std::alloc::{GlobalAlloc, Layout};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use kiln::allocator::arena::growth::EstimatedVec;
use kiln::allocator::arena::Arena;

/// Counts every call into the wrapped global allocator, the bytes asked for and the live bytes.
struct Counting<A>(A);

static CALLS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);
static LIVE: AtomicU64 = AtomicU64::new(0);
static PEAK: AtomicU64 = AtomicU64::new(0);

fn note_alloc(size: usize) {
    CALLS.fetch_add(1, Relaxed);
    BYTES.fetch_add(size as u64, Relaxed);
    let live = LIVE.fetch_add(size as u64, Relaxed) + size as u64;
    PEAK.fetch_max(live, Relaxed);
}

fn note_free(size: usize) {
    CALLS.fetch_add(1, Relaxed);
    LIVE.fetch_sub(size as u64, Relaxed);
}

// SAFETY: every call is forwarded unchanged to the wrapped allocator; only counters change.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        // SAFETY: the caller's contract, forwarded.
        unsafe { self.0.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note_free(layout.size());
        // SAFETY: the caller's contract, forwarded.
        unsafe { self.0.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_free(layout.size());
        note_alloc(new_size);
        CALLS.fetch_sub(1, Relaxed); // one call, not two
                                     // SAFETY: the caller's contract, forwarded.
        unsafe { self.0.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting<kiln_std::KilnAlloc> = Counting(kiln_std::KilnAlloc);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Keyword,
    Ident,
    Number,
    Str,
    Punct,
}

/// The lexer proper, shared by both runs: yields (kind, text, end offset) for each token.
fn lex(src: &str, mut emit: impl FnMut(Kind, &str, usize)) {
    let bytes = src.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let kind = match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                match &src[start..i] {
                    "fn" | "let" | "while" | "if" | "else" | "return" | "print" => Kind::Keyword,
                    _ => Kind::Ident,
                }
            }
            b'0'..=b'9' => {
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    i += 1;
                }
                Kind::Number
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += 1;
                }
                i = (i + 1).min(bytes.len());
                Kind::Str
            }
            _ => {
                let two = bytes.get(i..i + 2);
                i += if matches!(two, Some(b"==" | b"<=" | b"&&" | b"||")) {
                    2
                } else {
                    1
                };
                Kind::Punct
            }
        };
        emit(kind, &src[start..i], i);
    }
}

/// A deterministic source of about `bytes` bytes in kiln's little language.
fn generate(bytes: usize) -> String {
    let mut s = String::with_capacity(bytes + 256);
    let mut n = 0u64;
    while s.len() < bytes {
        n += 1;
        s += &format!(
            "fn step_{n}(count, limit) {{\n    let total_{n} = 0;\n    while count < limit && total_{n} <= {n} {{\n        total_{n} = total_{n} + count * {k};\n        count = count + 1;\n    }}\n    if total_{n} == 0 {{ print(\"empty {n}\"); }} else {{ print(total_{n}); }}\n    return total_{n};\n}}\n",
            k = n % 97
        );
    }
    s
}

/// One token with its own heap string.
struct HeapToken {
    kind: Kind,
    text: String,
}

/// One token whose text lives in the arena.
#[derive(Clone, Copy)]
struct ArenaToken<'a> {
    kind: Kind,
    text: &'a str,
}

/// What one run measured, as the child prints it on one line: `key=value` pairs.
struct Measured {
    calls: u64,
    bytes: u64,
    peak: u64,
    time: Duration,
    tokens: usize,
    fingerprint: u64,
    /// kiln's own view: allocations (fast + slow + huge), frees, peak live bytes, peak segments.
    kiln: Option<[u64; 4]>,
    /// The arena's statistics line (arena run only).
    arena: Option<String>,
}

/// Runs `f` (which returns the token count, its fingerprint and an optional note), measuring the
/// global allocator calls it makes and the peak live bytes above the live bytes at its start.
fn measure(f: impl FnOnce() -> (usize, u64, Option<String>)) -> Measured {
    let (calls, bytes, live) = (CALLS.load(Relaxed), BYTES.load(Relaxed), LIVE.load(Relaxed));
    PEAK.store(live, Relaxed);
    let before = kiln::allocator::stats::snapshot();
    let t = Instant::now();
    let (tokens, fingerprint, arena) = f();
    let time = t.elapsed();
    let after = kiln::allocator::stats::snapshot();
    let allocs = |s: &kiln::allocator::stats::Stats| s.fast_alloc + s.slow_alloc + s.huge_alloc;
    let frees = |s: &kiln::allocator::stats::Stats| s.local_free + s.remote_free + s.huge_free;
    Measured {
        time,
        calls: CALLS.load(Relaxed) - calls,
        bytes: BYTES.load(Relaxed) - bytes,
        peak: PEAK.load(Relaxed) - live,
        tokens,
        fingerprint,
        kiln: kiln::allocator::stats::ENABLED.then(|| {
            [
                allocs(&after) - allocs(&before),
                frees(&after) - frees(&before),
                after.peak_bytes.saturating_sub(before.live_bytes),
                after.peak_segments,
            ]
        }),
        arena,
    }
}

fn heap_run(src: &str) -> Measured {
    measure(|| {
        let mut tokens: Vec<HeapToken> = Vec::new();
        lex(src, |kind, text, _| {
            tokens.push(HeapToken {
                kind,
                text: text.to_owned(),
            })
        });
        let print = fingerprint(tokens.iter().map(|t| (t.kind, t.text.as_str())));
        (tokens.len(), print, None)
    })
}

fn arena_run(src: &str) -> Measured {
    measure(|| {
        let arena = Arena::new();
        // About 4 source bytes per token in this language: reserve from that, correct as we go.
        let mut tokens = EstimatedVec::with_estimate_in(src.len(), 4, &arena);
        lex(src, |kind, text, consumed| {
            let text = arena.alloc_str(text);
            tokens.push(ArenaToken { kind, text }, consumed)
        });
        let print = fingerprint(tokens.as_slice().iter().map(|t| (t.kind, t.text)));
        let n = tokens.len();
        drop(tokens);
        let s = arena.stats();
        let note = format!(
            "{} arena allocations ({} bytes) in {} chunks ({} chunk bytes, peak in use {})",
            s.allocations,
            s.bytes_allocated,
            s.chunk_allocations,
            s.peak_chunk_bytes,
            s.peak_bytes_in_use
        );
        (n, print, Some(note))
    })
}

/// Child side: one run, printed as one line for the parent.
fn child(mode: &str, megabytes: usize) {
    let src = generate(megabytes << 20);
    let m = match mode {
        "heap" => heap_run(&src),
        "arena" => arena_run(&src),
        other => panic!("unknown run `{other}` (heap or arena)"),
    };
    let kiln = m.kiln.map_or("off".to_owned(), |k| {
        format!("{},{},{},{}", k[0], k[1], k[2], k[3])
    });
    println!(
        "calls={} bytes={} peak={} nanos={} tokens={} fingerprint={} kiln={} arena={}",
        m.calls,
        m.bytes,
        m.peak,
        m.time.as_nanos(),
        m.tokens,
        m.fingerprint,
        kiln,
        m.arena.unwrap_or_default().replace(' ', "_")
    );
}

/// Parent side: runs `mode` in a child process and reads its line back.
fn run_child(mode: &str, megabytes: usize) -> Measured {
    let exe = std::env::current_exe().expect("own executable path");
    let out = Command::new(exe)
        .args(["--run", mode, &megabytes.to_string()])
        .output()
        .expect("start the child run");
    assert!(
        out.status.success(),
        "{mode} run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).expect("UTF-8 report");
    let field = |key: &str| -> &str {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
            .unwrap_or_else(|| panic!("no {key} in {line:?}"))
    };
    let num = |key: &str| -> u64 { field(key).parse().expect("a number") };
    let kiln = field("kiln");
    Measured {
        calls: num("calls"),
        bytes: num("bytes"),
        peak: num("peak"),
        time: Duration::from_nanos(num("nanos")),
        tokens: num("tokens") as usize,
        fingerprint: num("fingerprint"),
        kiln: (kiln != "off").then(|| {
            let v: Vec<u64> = kiln
                .split(',')
                .map(|x| x.parse().expect("a number"))
                .collect();
            [v[0], v[1], v[2], v[3]]
        }),
        arena: Some(field("arena").replace('_', " ")).filter(|s| !s.is_empty()),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--run") {
        let megabytes = args.get(2).map_or(8, |a| a.parse().expect("MEGABYTES"));
        return child(&args[1], megabytes);
    }
    let megabytes: usize = args
        .first()
        .map(|a| a.parse().expect("MEGABYTES must be a whole number"))
        .unwrap_or(8);
    let heap = run_child("heap", megabytes);
    let arena = run_child("arena", megabytes);
    assert_eq!(heap.tokens, arena.tokens, "both runs see the same tokens");
    assert_eq!(
        heap.fingerprint, arena.fingerprint,
        "both runs see the same texts"
    );

    println!(
        "source: {megabytes} MiB, {} tokens; global allocator: kiln",
        heap.tokens
    );
    println!(
        "{:<20} {:>12} {:>12} {:>12} {:>9}   {:>10} {:>10} {:>12} {:>5}",
        "run",
        "alloc calls",
        "bytes asked",
        "peak live",
        "time ms",
        "kiln alloc",
        "kiln free",
        "kiln peak",
        "segs"
    );
    for (name, m) in [("heap (String/token)", &heap), ("arena", &arena)] {
        let kiln = m
            .kiln
            .map_or("(build with --features stats)".to_owned(), |k| {
                format!("{:>10} {:>10} {:>12} {:>5}", k[0], k[1], k[2], k[3])
            });
        println!(
            "{:<20} {:>12} {:>12} {:>12} {:>9.1}   {kiln}",
            name,
            m.calls,
            m.bytes,
            m.peak,
            m.time.as_secs_f64() * 1e3
        );
    }
    if let Some(note) = &arena.arena {
        println!("arena: {note}");
    }
    println!(
        "heap/arena: {:.0}x the allocator calls, {:.2}x the time (one run each; not a benchmark)",
        heap.calls as f64 / arena.calls.max(1) as f64,
        heap.time.as_secs_f64() / arena.time.as_secs_f64()
    );
}

/// A cheap order-sensitive hash of a token stream, to prove both runs agree.
fn fingerprint<'a>(tokens: impl Iterator<Item = (Kind, &'a str)>) -> u64 {
    tokens.fold(0xcbf2_9ce4_8422_2325, |h, (kind, text)| {
        let h = (h ^ kind as u64).wrapping_mul(0x100_0000_01b3);
        text.bytes()
            .fold(h, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
    })
}
