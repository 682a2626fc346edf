//! Strings inside loop traces: element reads and stores, copies, concatenation and comparison,
//! reference counted as the interpreter counts them (the common cases run inline in native
//! code, `backend::InlineCall`). Every program runs in the interpreter (the oracle) and with
//! the JIT forced on at thresholds 1 and 7; output, result and live heap bytes must agree.
//! Runs on x86-64 natively and on AArch64 under qemu-user (the `aarch64` lane).
#![cfg(feature = "jit")]
#![cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]

mod common;

use common::agree::{native, run_capped, same_as_interpreter};

#[test]
fn a_string_element_is_never_overwritten_natively() {
    // Stores replace numbers natively; a heap element ends the trace through the old-tag guard
    // (the interpreter drops it), so the heap bytes match.
    same_as_interpreter(
        "let a = array(100, 0); a[77] = \"s\"; let i = 0;
         while i < 100 { a[i] = i; i = i + 1; }
         print(a[77], a[99]);",
    );
}

#[test]
fn string_copies_count_references_as_the_interpreter() {
    // Native code copies a string between an element and a register without calling Rust
    // while no count reaches zero; a last reference goes through the runtime call, which
    // frees it. Any count off by one shows as different heap bytes at the end (a leak) or a
    // wrong string (a premature free).
    for src in [
        // The register's old value is its string's last reference (a fresh concatenation)
        // after every fourth iteration, shared with the array after the others.
        "let w = [\"ab\", \"cde\", \"f\"]; let n = 0; let i = 0; let r = \"\";
         while i < 300 {
             if i % 4 != 0 { r = w[i % 3]; } else { r = w[i % 3] + w[(i + 1) % 3]; }
             n = n + len(r); i = i + 1;
         }
         print(n, r);",
        // Elements copied between two arrays: each store drops the element it replaces,
        // whose last reference the target array holds at first (fresh strings).
        "let n = 200; let src = array(n, \"\"); let dst = array(n, \"\"); let i = 0;
         let p = [\"ka\", \"lo\", \"mi\", \"ne\", \"ru\"];
         while i < n { src[i] = p[i % 5] + p[i % 3]; dst[i] = p[i % 4] + \"!\"; i = i + 1; }
         let pass = 0;
         while pass < 3 {
             i = 0;
             while i < n { dst[i] = src[(i + pass) % n]; i = i + 1; }
             let t = src; src = dst; dst = t; pass = pass + 1;
         }
         print(src[0], src[n - 1], dst[5]);",
        // A register copied from the element it already holds (one object on both sides).
        "let w = [\"same\", \"same\"]; let k = w[0]; let i = 0; let c = 0;
         while i < 300 { k = w[0]; w[1] = k; if k == w[1] { c = c + 1; } i = i + 1; }
         print(c, k, w[1]);",
    ] {
        for r in same_as_interpreter(src) {
            assert!(r.stats.entered >= 1, "{:?}\n{src}\n{}", r.stats, r.log);
        }
    }
}

#[test]
fn string_concatenation_and_element_reads_run_natively() {
    // fasta's shape: a line built from array elements, flushed every few symbols.
    native(
        "let syms = [\"a\", \"c\", \"g\", \"t\"]; let line = \"\"; let n = 0; let i = 0;
         while i < 300 { n = n + len(line); line = line + syms[i * 7 % 4]; i = i + 1; }
         print(n, len(line));",
    );
    same_as_interpreter(
        "let syms = [\"a\", \"cc\", \"g\"]; let line = \"\"; let w = 0; let i = 0;
         while i < 500 { line = line + syms[i % 3]; w = w + 1;
           if w == 13 { print(line); line = \"\"; w = 0; } i = i + 1; }
         print(line);",
    );
}

#[test]
fn string_comparisons_and_element_stores_run_natively() {
    // word_count's merge: compare two elements, copy the smaller into another array.
    native(
        "let src = [\"ka\", \"lo\", \"kalo\", \"mi\", \"ka\", \"zen\", \"a\"];
         let dst = array(300, \"\"); let k = 0; let lt = 0; let eq = 0;
         while k < 300 {
           let x = src[k % 7]; let y = src[(k + 3) % 7];
           if x <= y { dst[k] = x; } else { dst[k] = y; }
           if x < y { lt = lt + 1; }
           if x == y { eq = eq + 1; }
           k = k + 1;
         }
         print(lt, eq, dst[0], dst[299], dst[150]);",
    );
    // Runs of equal neighbours (word_count's count loop), and a string moved into a
    // register that outlives the loop.
    same_as_interpreter(
        "let s = [\"a\", \"a\", \"b\", \"c\", \"c\", \"c\"]; let d = 0; let best = \"\";
         let i = 0;
         while i < 200 { if s[(i + 1) % 6] != s[i % 6] { d = d + 1; best = s[i % 6]; } i = i + 1; }
         print(d, best);",
    );
}

#[test]
fn string_orders_compared_natively_match_the_interpreter() {
    // Native code compares texts stored inside their objects (up to 22 bytes) a word at a
    // time: pairs that differ in each of the three words (bytes 0..8, 8..16, 16..22), that
    // differ only in length (a prefix), bytes above 0x7f (unsigned order), the empty string,
    // and long texts (the runtime call).
    let a22 = "a".repeat(22);
    let mut words: Vec<String> = vec![
        String::new(),
        "a".into(),
        "ab".into(),
        "abc".into(),
        "abd".into(),
        "b".into(),
        "\u{e9}t\u{e9}".into(),
        "zz".into(),
        // Equal rooms, different lengths: the length decides (a NUL byte in the source).
        "ab\0".into(),
        "ab\0\0".into(),
        "a".repeat(7),
        "a".repeat(8),
        "a".repeat(9),
        "a".repeat(15),
        "a".repeat(16),
        "a".repeat(21),
        a22.clone(),
        "a".repeat(23),
        "a".repeat(30) + "b",
    ];
    for at in [0, 7, 8, 13, 14, 15, 16, 21] {
        let mut w = a22.clone().into_bytes();
        w[at] = b'b';
        words.push(String::from_utf8(w).unwrap());
        let mut w = a22.clone().into_bytes();
        w[at] = b'0';
        words.push(String::from_utf8(w).unwrap());
    }
    let list: Vec<String> = words.iter().map(|w| format!("\"{w}\"")).collect();
    let src = format!(
        "let w = [{}]; let n = len(w); let k = 0;
         let lt = 0; let le = 0; let eq = 0; let ne = 0; let gt = 0; let ge = 0; let sum = 0;
         while k < n * n {{
           let i = k / n; let j = k % n; let x = w[i]; let y = w[j];
           if x < y {{ lt = lt + 1; sum = sum + k; }}
           if x <= y {{ le = le + 1; }}
           if x == y {{ eq = eq + 1; sum = sum + 3 * k; }}
           if x != y {{ ne = ne + 1; }}
           if x > y {{ gt = gt + 1; sum = sum + 7 * k; }}
           if x >= y {{ ge = ge + 1; }}
           k = k + 1;
         }}
         print(lt, le, eq, ne, gt, ge, sum);",
        list.join(", ")
    );
    for r in same_as_interpreter(&src) {
        assert!(r.stats.entered >= 1, "{:?}\n{src}\n{}", r.stats, r.log);
    }
}

#[test]
fn an_element_read_again_into_its_register_matches_the_interpreter() {
    // `x = a[j]` again with `x` and the element unchanged: the second copy is left out.
    native(
        "let a = [\"ka\", \"lo\", \"mi\"]; let d = array(300, \"\"); let lo = \"lo\";
         let n = 0; let i = 0;
         while i < 300 {
           let j = i % 3; let x = a[j];
           if x <= lo { x = a[j]; d[i] = x; n = n + 1; }
           i = i + 1;
         }
         print(n, d[0], d[1], d[2], d[299]);",
    );
    for src in [
        // The element replaced in between (a string store): the copy is made again.
        "let a = [\"ka\", \"lo\", \"mi\"]; let d = array(300, \"\"); let i = 0;
         while i < 300 { let j = i % 3; let x = a[j]; a[j] = x + \"!\"; x = a[j]; d[i] = x;
           i = i + 1; }
         print(d[0], d[4], d[299], a[1]);",
        // The register written in between (a concatenation into it).
        "let a = [\"ka\", \"lo\", \"mi\"]; let d = array(300, \"\"); let n = 0; let i = 0;
         while i < 300 { let j = i % 3; let x = a[j]; x = x + \"!\"; n = n + len(x);
           x = a[j]; d[i] = x; i = i + 1; }
         print(n, d[0], d[299]);",
        // The register written in between by another element copy (a runtime call that
        // changes no array).
        "let a = [\"ka\", \"lo\", \"mi\"]; let b = [\"x\", \"y\", \"z\"];
         let d = array(300, \"\"); let n = 0; let i = 0;
         while i < 300 { let j = i % 3; let x = a[j]; n = n + len(x); x = b[j];
           x = a[j]; d[i] = x; i = i + 1; }
         print(n, d[0], d[299]);",
        // The register written by a number in between.
        "let a = [\"ka\", \"lo\", \"mi\"]; let d = array(300, \"\"); let n = 0; let i = 0;
         while i < 300 { let j = i % 3; let x = a[j]; n = n + len(x); x = 7; n = n + x;
           x = a[j]; d[i] = x; i = i + 1; }
         print(n, d[0], d[299]);",
    ] {
        same_as_interpreter(src);
    }
}

#[test]
fn strings_meeting_other_types_leave_through_their_guards() {
    for src in [
        // An element that is sometimes a number: the comparison's call refuses, the
        // interpreter raises its type error.
        "let a = [\"x\", \"y\", 3]; let n = 0; let i = 0;
         while i < 100 { if a[i % 2] < a[i % 3] { n = n + 1; } i = i + 1; }
         print(n);",
        // A string register overwritten by a number later in the iteration.
        "let a = [\"x\", \"yy\"]; let s = \"\"; let n = 0; let i = 0;
         while i < 100 { s = s + a[i % 2]; n = n + len(s); s = i; i = i + 1; }
         print(n, s);",
    ] {
        same_as_interpreter(src);
    }
    // Concatenation under a memory cap: the interpreter's out-of-memory error.
    let src = "let s = \"\"; let i = 0; while i < 5000 { s = s + \"xyz\"; i = i + 1; }
               print(len(s));";
    let want = run_capped(src, None, 8_000);
    assert!(want.result.is_err(), "{src}");
    for t in [1, 7] {
        let got = run_capped(src, Some(t), 8_000);
        assert_eq!(got.out, want.out, "threshold {t}");
        assert_eq!(got.result, want.result, "threshold {t}\n{}", got.log);
    }
}
