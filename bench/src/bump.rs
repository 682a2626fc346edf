//! Bump allocators on a lexer-shaped workload: kiln's `Arena` against `bumpalo`.
//!
//! Glossary:
//! - token: what a lexer keeps per token: a copy of its text (1 to 24 bytes, `alloc_str`) and a
//!   `Token { kind, text }` (24 bytes, `alloc`); two ops.
//! - round: `ROUND` tokens, then `reset` (both allocators keep their biggest chunk for the next
//!   round, as a lexer reused across files would).
//! - held: bytes the bump allocator holds from its backing allocator (the global one, `System`,
//!   for both); the peak column of this table is the most held at the end of any round.
//!
//! Invariant: both allocators see the same token sequence (same seed, same source text), and every
//! token is passed through `black_box` so that neither run can be optimised away.
use std::hint::black_box;
use std::time::Instant;

use crate::measure::Settings;
use crate::report::Row;
use crate::workloads::{Outcome, XorShift32};

/// The workload's name in tables, JSON and `--bench` filters.
pub const NAME: &str = "tokens-bump";
/// The allocators of this table (names for `--alloc`).
pub const ALLOCATORS: [&str; 2] = ["kiln-arena", "bumpalo"];
/// Ops of a full run (two per token).
const OPS: u64 = 8_000_000;
/// Tokens per round.
const ROUND: u64 = 10_000;
/// Bytes of source text the tokens are cut from.
const SOURCE: usize = 64 * 1024;

/// One token as a lexer stores it.
#[derive(Clone, Copy)]
struct Token<'a> {
    kind: u8,
    text: &'a str,
}

/// The three operations the workload needs from a bump allocator.
trait Bump {
    /// Allocates one token (text copy + `Token`) and returns its kind plus its text length.
    fn token(&self, kind: u8, text: &str) -> usize;
    /// Bytes held from the backing allocator.
    fn held(&self) -> usize;
    /// Frees every token at once.
    fn reset(&mut self);
}

impl Bump for kiln::allocator::arena::Arena {
    #[inline]
    fn token(&self, kind: u8, text: &str) -> usize {
        let text = self.alloc_str(text);
        let token = black_box(self.alloc(Token { kind, text }));
        usize::from(token.kind) + token.text.len()
    }
    fn held(&self) -> usize {
        self.stats().chunk_bytes
    }
    fn reset(&mut self) {
        kiln::allocator::arena::Arena::reset(self);
    }
}

impl Bump for bumpalo::Bump {
    #[inline]
    fn token(&self, kind: u8, text: &str) -> usize {
        let text = self.alloc_str(text);
        let token = black_box(self.alloc(Token { kind, text }));
        usize::from(token.kind) + token.text.len()
    }
    fn held(&self) -> usize {
        self.allocated_bytes()
    }
    fn reset(&mut self) {
        bumpalo::Bump::reset(self);
    }
}

/// ASCII source text, the same for every run.
fn source() -> String {
    let mut rng = XorShift32::new();
    (0..SOURCE)
        .map(|_| (b'a' + (rng.next_u32() % 26) as u8) as char)
        .collect()
}

/// One timed run: `ops / 2` tokens in rounds of `ROUND`. Returns the outcome and the peak held.
fn run(bump: &mut impl Bump, ops: u64, src: &str) -> (Outcome, usize) {
    let mut rng = XorShift32::new();
    let tokens = ops / 2;
    let mut peak = 0;
    let mut total = 0usize;
    let start = Instant::now();
    let mut done = 0;
    while done < tokens {
        let n = ROUND.min(tokens - done);
        for _ in 0..n {
            let r = rng.next_u32() as usize;
            let len = 1 + r % 24;
            let at = (r >> 8) % (SOURCE - 24);
            total += bump.token((r >> 5) as u8 & 7, &src[at..at + len]);
        }
        done += n;
        peak = peak.max(bump.held());
        bump.reset();
    }
    let secs = start.elapsed().as_secs_f64();
    black_box(total);
    (
        Outcome {
            ops: tokens * 2,
            secs,
        },
        peak,
    )
}

/// Runs the table: `s.runs` timed runs per allocator, round-robin, each on a fresh allocator.
pub fn rows(s: &Settings, allocs: &[String]) -> Vec<Row> {
    let wanted: Vec<&str> = ALLOCATORS
        .into_iter()
        .filter(|a| allocs.is_empty() || allocs.iter().any(|x| x == a))
        .collect();
    let ops = (OPS / s.divisor).max(1000);
    let src = source();
    let mut outcomes = vec![Vec::new(); wanted.len()];
    let mut peaks = vec![0usize; wanted.len()];
    eprint!("{NAME:<22}");
    for _ in 0..s.runs {
        for (i, name) in wanted.iter().enumerate() {
            let (o, peak) = match *name {
                "kiln-arena" => run(&mut kiln::allocator::arena::Arena::new(), ops, &src),
                _ => run(&mut bumpalo::Bump::new(), ops, &src),
            };
            outcomes[i].push(o);
            peaks[i] = peaks[i].max(peak);
        }
        eprint!(".");
    }
    eprintln!();
    wanted
        .iter()
        .zip(outcomes)
        .zip(peaks)
        .map(|((name, runs), peak)| {
            crate::row(NAME, name, &runs, None, Ok(peak.div_ceil(1024) as u64))
        })
        .collect()
}

/// Runs the table, prints it and writes `bump.json` and `bump.svg` in `out`.
pub fn report(s: &Settings, allocs: &[String], out: &std::path::Path) -> Result<(), String> {
    let rows = rows(s, allocs);
    println!("{}", table(&rows));
    crate::report::write_json(&rows, &out.join("bump.json"))?;
    crate::chart::draw(
        &rows,
        crate::chart::Metric::Throughput,
        &out.join("bump.svg"),
    )?;
    println!("Wrote bump.json and bump.svg in {}.", out.display());
    Ok(())
}

/// The table and the ratio, for stdout.
pub fn table(rows: &[Row]) -> String {
    let mut s = format!(
        "Bump allocators, {NAME} (a lexer's allocations: token text + token, reset every {ROUND} tokens):\n\n\
         | allocator | Mops/s (median) | min..max | peak held KiB |\n|---|---|---|---|\n"
    );
    for r in rows {
        s += &format!(
            "| {} | {:.1} | {:.1}..{:.1} | {} |\n",
            r.allocator,
            r.ops_per_sec.unwrap_or(0.0) / 1e6,
            r.min_ops_per_sec.unwrap_or(0.0) / 1e6,
            r.max_ops_per_sec.unwrap_or(0.0) / 1e6,
            r.peak_kib.unwrap_or(0)
        );
    }
    let rate = |name: &str| rows.iter().find(|r| r.allocator == name)?.ops_per_sec;
    if let (Some(k), Some(b)) = (rate("kiln-arena"), rate("bumpalo")) {
        s += &format!(
            "\nkiln-arena ÷ bumpalo: {:.2}x ops/s (> 1 = kiln's arena faster)\n",
            k / b
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_bump_allocators_see_the_same_tokens() {
        let src = source();
        let (a, _) = run(&mut kiln::allocator::arena::Arena::new(), 10_000, &src);
        let (b, peak) = run(&mut bumpalo::Bump::new(), 10_000, &src);
        assert_eq!(a.ops, b.ops);
        assert_eq!(a.ops, 10_000);
        assert!(peak > 0);
    }

    #[test]
    fn the_table_gives_the_ratio_of_the_medians() {
        let at = |ops| Outcome { ops, secs: 1.0 };
        let rows = [
            crate::row(
                NAME,
                "kiln-arena",
                &[at(1_000_000), at(3_000_000), at(2_000_000)],
                None,
                Ok(4),
            ),
            crate::row(NAME, "bumpalo", &[at(1_000_000)], None, Ok(8)),
        ];
        let t = table(&rows);
        assert!(t.contains("| kiln-arena | 2.0 | 1.0..3.0 | 4 |"), "{t}");
        assert!(t.contains("kiln-arena ÷ bumpalo: 2.00x"), "{t}");
    }
}
