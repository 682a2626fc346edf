//! Tokenizes a large generated `.kl`-like source twice: once with one heap allocation per token,
//! once into a kiln arena, and prints the allocator calls, bytes, peak live bytes and time of each.
//!
//! ```text
//! cargo run --release -p kiln-std --example arena_lexer [MEGABYTES]
//! ```
//!
//! The global allocator is wrapped in a counter ([`Counting`]) so both runs are measured by the
//! same instrument; the arena run also prints the arena's own statistics.
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use kiln::alloc::arena::growth::EstimatedVec;
use kiln::alloc::arena::Arena;

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
static GLOBAL: Counting<System> = Counting(System);

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

struct Measured {
    calls: u64,
    bytes: u64,
    peak: u64,
    time: Duration,
    tokens: usize,
}

/// Runs `f`, measuring the global allocator calls it makes and its peak live bytes above the
/// live bytes at its start.
fn measure(f: impl FnOnce() -> usize) -> Measured {
    let (calls, bytes, live) = (CALLS.load(Relaxed), BYTES.load(Relaxed), LIVE.load(Relaxed));
    PEAK.store(live, Relaxed);
    let t = Instant::now();
    let tokens = f();
    Measured {
        time: t.elapsed(),
        calls: CALLS.load(Relaxed) - calls,
        bytes: BYTES.load(Relaxed) - bytes,
        peak: PEAK.load(Relaxed) - live,
        tokens,
    }
}

fn main() {
    let megabytes: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("MEGABYTES must be a whole number"))
        .unwrap_or(8);
    let src = generate(megabytes << 20);
    println!("source: {} bytes", src.len());

    let mut heap_fingerprint = 0u64;
    let heap = measure(|| {
        let mut tokens: Vec<HeapToken> = Vec::new();
        lex(&src, |kind, text, _| {
            tokens.push(HeapToken {
                kind,
                text: text.to_owned(),
            })
        });
        heap_fingerprint = fingerprint(tokens.iter().map(|t| (t.kind, t.text.as_str())));
        tokens.len()
    });

    let mut arena_fingerprint = 0u64;
    let mut arena_stats = None;
    let arena = measure(|| {
        let arena = Arena::new();
        // About 4 source bytes per token in this language: reserve from that, correct as we go.
        let mut tokens = EstimatedVec::with_estimate_in(src.len(), 4, &arena);
        lex(&src, |kind, text, consumed| {
            let text = arena.alloc_str(text);
            tokens.push(ArenaToken { kind, text }, consumed)
        });
        arena_fingerprint = fingerprint(tokens.as_slice().iter().map(|t| (t.kind, t.text)));
        let n = tokens.len();
        drop(tokens);
        arena_stats = Some((arena.stats(), n));
        n
    });
    assert_eq!(heap.tokens, arena.tokens, "both runs see the same tokens");
    assert_eq!(
        heap_fingerprint, arena_fingerprint,
        "both runs see the same texts"
    );

    println!("tokens: {}", heap.tokens);
    println!(
        "{:<22} {:>14} {:>14} {:>14} {:>10}",
        "run", "alloc calls", "bytes asked", "peak live", "time ms"
    );
    for (name, m) in [("heap (String/token)", &heap), ("arena", &arena)] {
        println!(
            "{:<22} {:>14} {:>14} {:>14} {:>10.1}",
            name,
            m.calls,
            m.bytes,
            m.peak,
            m.time.as_secs_f64() * 1e3
        );
    }
    if let Some((s, n)) = arena_stats {
        println!(
            "arena stats: {} allocations ({} bytes) inside {} chunks ({} chunk bytes, peak in use {}), {} tokens",
            s.allocations, s.bytes_allocated, s.chunk_allocations, s.peak_chunk_bytes, s.peak_bytes_in_use, n
        );
    }
    println!(
        "ratio heap/arena: {:.0}x fewer allocator calls, {:.2}x time",
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
