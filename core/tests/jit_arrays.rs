//! Arrays and numeric builtins inside loop traces (strings: `jit_strings.rs`): every program
//! runs in the interpreter (the oracle) and with the JIT forced on at thresholds 1 and 7; output, result (error kind, pc,
//! line) and live heap bytes must agree, and the programs meant to run natively must compile
//! without an abort and enter native code. Runs on x86-64 natively and on AArch64 under
//! qemu-user (the `aarch64` lane).
#![cfg(feature = "jit")]
#![cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]

mod common;

use common::agree::{aborts_naming, native, run, run_capped, same_as_interpreter};
use kiln::vm::lang;

// ---- reads -------------------------------------------------------------------------------------

#[test]
fn int_elements_are_read_natively() {
    native(
        "let a = array(300, 0); let i = 0;
         while i < 300 { a[i] = i * 3 - 7; i = i + 1; }
         let s = 0; i = 0;
         while i < 300 { s = s + a[i]; i = i + 1; }
         print(s);",
    );
}

#[test]
fn a_float_dot_product_reads_two_rows() {
    let runs = native(
        "let n = 200; let x = array(n, 0.0); let y = array(n, 0.0); let k = 0;
         while k < n { x[k] = k * 0.5; y[k] = 1.0 / (k + 1); k = k + 1; }
         let sum = 0.0; k = 0;
         while k < n { sum = sum + x[k] * y[k]; k = k + 1; }
         print(sum);",
    );
    assert!(runs.iter().all(|r| r.stats.entered >= 1));
}

#[test]
fn bool_elements_are_read_and_written_natively() {
    native(
        "let n = 400; let p = array(n, true); p[0] = false; p[1] = false;
         let i = 2;
         while i < n { let j = i + i; while j < n { p[j] = false; j = j + i; } i = i + 1; }
         let c = 0; i = 0;
         while i < n { if p[i] { c = c + 1; } i = i + 1; }
         print(c);",
    );
}

#[test]
fn literal_indices_read_and_write() {
    native(
        "let a = [0, 0, 0.5, 0]; let i = 0;
         while i < 500 { a[0] = a[0] + i; a[1] = a[0] - a[3]; a[2] = a[2] * 1.0001; a[3] = i; i = i + 1; }
         print(a[0], a[1], a[2], a[3]);",
    );
}

#[test]
fn len_of_an_array_in_the_loop_condition() {
    native(
        "let a = array(333, 2); let s = 0; let i = 0;
         while i < len(a) { s = s + a[i] * i; i = i + 1; }
         print(s, len(a));",
    );
}

#[test]
fn a_read_after_a_write_to_the_same_array_sees_it() {
    native(
        "let a = array(100, 1); let b = a; let i = 1;
         while i < 100 { a[i] = b[i - 1] + a[i]; i = i + 1; }
         print(a[99], b[50]);",
    );
}

// ---- guards ------------------------------------------------------------------------------------

#[test]
fn an_element_of_another_type_leaves_through_its_guard() {
    same_as_interpreter(
        "let a = array(200, 1); a[150] = 2.5; a[170] = true; let s = 0.0; let i = 0; let c = 0;
         while i < 200 {
             let v = a[i];
             if v == true { c = c + 1; } else { s = s + v; }
             i = i + 1;
         }
         print(s, c);",
    );
}

#[test]
fn an_index_out_of_range_is_the_interpreter_error() {
    for src in [
        "let a = array(50, 1); let s = 0; let i = 0;
         while i < 60 { s = s + a[i]; i = i + 1; }
         print(s);",
        "let a = array(50, 1); let i = 0;
         while i < 60 { a[i] = i; i = i + 1; }
         print(a[3]);",
        "let a = array(50, 1); let s = 0; let i = 10;
         while i > -5 { s = s + a[i]; i = i - 1; }
         print(s);",
    ] {
        let want = run(src, None);
        assert!(want.result.is_err(), "{src}");
        same_as_interpreter(src);
    }
}

/// Bounds checks on a loop counter are hoisted out of the loop body (one check of the limit
/// against the length before the loop): limits at, below and past the length, `<` and `<=`,
/// a negative start, a loop that leaves early before reaching the end, and a loop whose array
/// grows (nothing hoisted there) all end as in the interpreter.
#[test]
fn hoisted_counter_bounds_checks_end_as_the_interpreter() {
    for (limit, cmp) in [
        (50, "<"),
        (49, "<="),
        (40, "<"),
        (51, "<"),
        (50, "<="),
        (70, "<"),
    ] {
        let src = format!(
            "let a = array(50, 2); let s = 0; let i = 0;
             while i {cmp} {limit} {{ s = s + a[i]; i = i + 1; }}
             print(s);"
        );
        same_as_interpreter(&src);
    }
    for src in [
        "let a = array(50, 1); a[30] = 7; let s = 0; let i = 0;
         while i < 100 { if a[i] == 7 { break; } s = s + a[i]; i = i + 1; }
         print(s, i);",
        "let a = array(50, 1); let s = 0; let i = -3;
         while i < 50 { s = s + a[i]; i = i + 1; }
         print(s);",
        "let a = array(8, 1); let s = 0; let i = 0;
         while i < 40 { s = s + a[i]; push(a, i); i = i + 1; }
         print(s, len(a));",
        "let a = array(50, 1.5); let b = array(60, 2.0); let s = 0.0; let n = 55; let i = 0;
         while i < n { s = s + a[i] * b[i]; i = i + 1; }
         print(s);",
    ] {
        same_as_interpreter(src);
    }
    let runs = native(
        "let a = array(50, 1.5); let b = array(50, 2.0); let s = 0.0; let i = 0;
         while i < len(a) { s = s + a[i] * b[i]; i = i + 1; }
         print(s);",
    );
    assert_eq!(runs[0].out, "150.0\n");
}

/// Strided counters (a constant step, or a step from a register the loop does not write, as
/// in a sieve) have their bounds checks hoisted too; limits past the end, a negative or huge
/// step and a step that changes inside the loop end exactly as in the interpreter (output,
/// error, fuel).
#[test]
fn strided_counter_bounds_checks_end_as_the_interpreter() {
    for (limit, cmp, step) in [
        (50, "<", "3"),
        (49, "<=", "7"),
        (60, "<", "3"),
        (50, "<=", "5"),
        (50, "<", "d"),
        (49, "<=", "d"),
        (80, "<", "d"),
    ] {
        for d in [1, 3, 13, 49, 50, 64, -2] {
            let src = format!(
                "let a = array(50, 2); let s = 0; let d = {d}; let i = 1;
                 while i {cmp} {limit} {{ s = s + a[i]; i = i + {step}; if i < 0 {{ break; }} }}
                 print(s, i);"
            );
            same_as_interpreter(&src);
        }
    }
    // The sieve's shape: the inner loop steps by the outer counter.
    let runs = native(
        "let n = 3000; let c = array(n + 1, 0); let i = 1;
         while i <= n { let j = i; while j <= n { c[j] = c[j] + 1; j = j + i; } i = i + 1; }
         print(c[2520], c[2999], c[3000]);",
    );
    assert_eq!(runs[0].out, "48 2 32\n");
}

#[test]
fn rows_of_a_matrix_are_copied_into_registers_natively() {
    // `let r = m[i % 3]` copies an array element into a register (reference counted, by a
    // runtime call); the row is then read as an array register.
    native(
        "let m = [[1, 2], [3, 4], [5.5, 6]]; let s = 0.0; let i = 0;
         while i < 300 { let r = m[i % 3]; s = s + r[0] * r[1]; i = i + 1; }
         print(s);",
    );
    // Strings too; the last copy stays in the register after the loop.
    native(
        "let w = [\"ab\", \"cde\", \"f\"]; let n = 0; let i = 0; let last = 0;
         while i < 300 { last = w[i % 3]; n = n + i; i = i + 1; }
         print(n, last);",
    );
}

#[test]
fn a_heap_element_register_written_again_or_read_first_matches_the_interpreter() {
    for src in [
        // Read before the copy in the same iteration (the copy of the last iteration).
        "let m = [[1, 2], [3, 4]]; let r = m[0]; let s = 0; let i = 0;
         while i < 200 { s = s + r[1]; r = m[i % 2]; i = i + 1; }
         print(s, r[0]);",
        // Overwritten by a number after the copy.
        "let m = [[1, 2], [3, 4]]; let s = 0; let i = 0; let r = 0;
         while i < 200 { r = m[i % 2]; s = s + r[1]; r = i; i = i + 1; }
         print(s, r);",
        // An element that is sometimes a number.
        "let m = [[1, 2], 7, [3, 4]]; let s = 0; let i = 0;
         while i < 200 { let r = m[i % 3]; if i % 3 != 1 { s = s + r[0]; } i = i + 1; }
         print(s);",
    ] {
        same_as_interpreter(src);
    }
}

#[test]
fn heap_elements_and_array_moves_abort_naming_the_op() {
    aborts_naming(
        "let a = array(10, 0); let s = [1]; let i = 0;
         while i < 100 { a[i % 10] = s; i = i + 1; }
         print(a[3][0]);",
        "`setidx` on these operand types is not supported",
    );
}

#[test]
fn array_moves_copy_the_reference_natively() {
    // `let b = a` in the loop (a runtime call clones the reference into `b`), reads through
    // the copy, then `b` moved from another array.
    let runs = native(
        "let a = [1, 2, 3]; let c = [40, 50, 60]; let s = 0; let i = 0;
         while i < 300 { let b = a; s = s + b[i % 3]; b = c; s = s + b[i % 3]; i = i + 1; }
         print(s, a[0], c[2]);",
    );
    // The copies stay native: a failing copy would leave at every iteration.
    for r in &runs {
        assert!(r.stats.entered < 20, "{:?}\n{}", r.stats, r.log);
    }
    // Array arguments of a call the trace cannot follow (the callee loops): the moves into
    // the call window run natively, the trace exits at the call (sort calling merge). The
    // callee's own traces may abort; the caller's loop, which does enough work before the
    // call to pay for entering it, must not.
    let runs = same_as_interpreter(
        "fn fill(d, s, lo, hi) { let k = lo; while k < hi { d[k] = s[k] * 2; k = k + 1; } }
         let s = array(2000, 3); let d = array(2000, 0); let lo = 0; let h = 1;
         while lo < 2000 {
             s[lo] = lo;
             h = (h * 31 + lo * 7 + 3) % 1000003; h = (h * 37 + lo * 5 + 1) % 1000003;
             h = (h * 41 + lo * 3 + 9) % 1000003; h = (h * 43 + lo + 2) % 1000003;
             h = (h * 47 + lo * 11 + 4) % 1000003; h = (h * 53 + lo * 13 + 6) % 1000003;
             h = (h * 59 + lo * 17 + 8) % 1000003; h = (h * 61 + lo + 5) % 1000003;
             fill(d, s, lo, lo + 2);
             lo = lo + 2;
         }
         print(d[0], d[1], d[1999], len(d), h);",
    );
    for r in &runs {
        assert!(r.log.contains("exits at the call of fill"), "{}", r.log);
        assert!(!r.log.contains("`move`"), "{}", r.log);
    }
}

#[test]
fn array_moves_the_trace_cannot_keep_native_match_the_interpreter() {
    for src in [
        // A swap: `a` was read (its address loaded) before `move a, b` overwrites it.
        "let a = [1, 2]; let b = [3, 4]; let s = 0; let i = 0;
         while i < 200 { let t = a; s = s + a[0] * 10 + t[1]; a = b; b = t; i = i + 1; }
         print(s, a[0], b[0]);",
        // The copy overwritten by a number later in the iteration.
        "let a = [5, 6]; let s = 0; let i = 0; let b = 0;
         while i < 200 { b = a; s = s + b[i % 2]; b = i; i = i + 1; }
         print(s, b);",
        // The copy read before the move in the same iteration (last iteration's copy).
        "let a = [[1, 2], [3, 4]]; let b = a[0]; let s = 0; let i = 0;
         while i < 200 { s = s + b[1]; b = a[i % 2]; let c = b; s = s + c[0]; i = i + 1; }
         print(s, b[0]);",
        // A register that is sometimes an array, sometimes a number.
        "let a = [7, 8]; let x = 0; let s = 0; let i = 0;
         while i < 200 { if i % 50 == 0 { x = 1; } else { x = a; } if i % 50 != 0 { s = s + x[1]; } i = i + 1; }
         print(s);",
    ] {
        same_as_interpreter(src);
    }
}

#[test]
fn heap_moves_inside_a_followed_call_match_the_interpreter() {
    // The callee's move would be a side effect inside the call region: the trace exits at the
    // call instead (the caller's own move stays native; the work before the call pays for
    // entering the trace).
    let runs = same_as_interpreter(
        "fn g(a, i) { let b = a; return i + 1; }
         let arr = [1, 2, 3]; let s = 0; let i = 0; let h = 1;
         while i < 300 {
             h = (h * 31 + i * 7 + 3) % 1000003; h = (h * 37 + i * 5 + 1) % 1000003;
             h = (h * 41 + i * 3 + 9) % 1000003; h = (h * 43 + i + 2) % 1000003;
             h = (h * 47 + i * 11 + 4) % 1000003; h = (h * 53 + i * 13 + 6) % 1000003;
             h = (h * 59 + i * 17 + 8) % 1000003; h = (h * 61 + i + 5) % 1000003;
             let c = arr; s = g(c, s); i = i + 1;
         }
         print(s, arr[2], h);",
    );
    for r in &runs {
        assert!(
            r.log.contains("exits at the call of g") && !r.log.contains("recorder bug"),
            "{}",
            r.log
        );
    }
    for src in [
        "fn g(a, i) { let b = a; return i + 1; }
         let arr = [1, 2, 3]; let s = 0; let i = 0;
         while i < 300 { let c = arr; s = g(c, s); i = i + 1; }
         print(s, arr[2]);",
        "fn g(a, i) { let b = a; return i + 1; }
         let w = \"word\"; let s = 0; let i = 0;
         while i < 300 { let c = w; s = g(c, s); i = i + 1; }
         print(s, w);",
    ] {
        same_as_interpreter(src);
    }
}

#[test]
fn an_array_register_reassigned_in_the_loop_stays_correct() {
    same_as_interpreter(
        "let a = [1, 2, 3]; let b = [10, 20, 30]; let s = 0; let i = 0;
         while i < 300 { s = s + a[i % 3]; if i == 150 { a = b; } i = i + 1; }
         print(s);",
    );
}

#[test]
fn an_update_in_place_that_changes_the_element_type() {
    // `a[i] = a[i] * 0.5` reads an int and stores a float (the tag store stays); the second
    // pass reads floats, and `b` aliases `a`.
    same_as_interpreter(
        "let a = array(64, 3); let b = a; let p = 0; let s = 0.0;
         while p < 3 {
             let i = 0;
             while i < 64 { a[i] = a[i] * 0.5; b[i] = b[i] + 1; s = s + a[i]; i = i + 1; }
             p = p + 1;
         }
         print(s, a[5], b[63]);",
    );
}

#[test]
fn push_of_ints_runs_natively() {
    // The push's result register stays nil: no other temporary in the loop reuses it. Most
    // pushes find room and run inline; a full array (4, 8, 16, ... elements) calls the
    // runtime, which grows it. The sum reads every element back.
    native(
        "let a = array(0, 0); let i = 0;
         while i < 700 { push(a, i * 3); i = i + 1; }
         let s = 0; i = 0; while i < len(a) { s = s + a[i] * (i + 1); i = i + 1; }
         print(len(a), a[0], a[699], s);",
    );
    // Here `s = s + a[i] + len(a)` reuses it: the loop stays interpreted, same result.
    same_as_interpreter(
        "let a = array(0, 0); let s = 0; let i = 0;
         while i < 700 { push(a, i * 3); s = s + a[i] + len(a); i = i + 1; }
         print(s, len(a), a[699]);",
    );
}

#[test]
fn push_next_to_other_temporaries_matches_the_interpreter() {
    // The push's result register is reused by the next statement's temporaries, and floats
    // are pushed too (not traced): aborts, never a wrong register.
    same_as_interpreter(
        "let a = array(0, 0); let b = array(0, 0); let s = 0.0; let i = 0;
         while i < 400 {
             push(a, i);
             s = s + sqrt(i * 1.0) * 2.0;
             push(b, s);
             if i % 3 == 0 { push(a, a[i] + 1); }
             i = i + 1;
         }
         print(s, len(a), len(b), a[10], b[20]);",
    );
}

#[test]
fn a_push_past_the_memory_cap_is_the_interpreters_error() {
    let src = "let a = array(0, 0); let i = 0;
               while i < 100000 { push(a, i); i = i + 1; }
               print(len(a));";
    let want = run_capped(src, None, 64 * 1024);
    assert!(want.result.is_err(), "the cap stops the loop");
    for t in [1, 7] {
        let got = run_capped(src, Some(t), 64 * 1024);
        assert_eq!(got.result, want.result, "threshold {t}\n{}", got.log);
        assert_eq!(got.out, want.out);
        assert_eq!(got.heap_bytes, want.heap_bytes);
        assert!(got.stats.entered >= 1, "{:?}\n{}", got.stats, got.log);
    }
}

/// An array in a register that the inner loop overwrites with a number from its second
/// iteration on: the interpreter releases the array there, so the next array fits under the
/// cap. The inner trace is entered with the array still in the slot (the first iteration
/// leaves it); the slot is dead where the loop exits, and the exit must still replace the
/// array, or the JIT run holds two arrays where the interpreter holds one and hits the cap.
#[test]
fn a_dead_slot_does_not_keep_an_array_alive_past_the_exit() {
    let src = "let t = 0; let s = 0; let k = 0; let b = 0; let i = 0;
               while k < 30 {
                   t = array(2000, 1);
                   i = 0;
                   while i < 40 {
                       if i > 0 { t = i * 2; s = s + t; }
                       i = i + 1;
                   }
                   b = array(2000, 2);
                   s = s + len(b);
                   b = 0;
                   k = k + 1;
               }
               print(s);";
    let cap = 56 * 1024;
    let want = run_capped(src, None, cap);
    assert_eq!(want.result, Ok(()), "one array at a time fits");
    let doubled = src.replace("array(2000, 2)", "array(4000, 2)");
    assert!(
        run_capped(&doubled, None, cap).result.is_err(),
        "two arrays' worth does not fit"
    );
    for t in [1, 7] {
        let got = run_capped(src, Some(t), cap);
        assert_eq!(got.result, want.result, "threshold {t}\n{}", got.log);
        assert_eq!(got.out, want.out);
        assert_eq!(got.heap_bytes, want.heap_bytes);
        assert!(got.stats.entered >= 1, "{:?}\n{}", got.stats, got.log);
    }
}

// ---- builtins ----------------------------------------------------------------------------------

#[test]
fn sqrt_int_and_float_run_natively() {
    native(
        "let s = 0.0; let t = 0; let i = 0;
         while i < 500 {
             s = s + sqrt(i * 1.5) + sqrt(i);
             t = t + int(s / 7.0) + int(i);
             let f = float(i) / 3.0 + float(s);
             s = s - f * 0.001;
             i = i + 1;
         }
         print(s, t);",
    );
}

#[test]
fn int_of_a_float_out_of_range_or_nan_matches_the_interpreter() {
    same_as_interpreter(
        "let x = 1.0; let t = 0; let i = 0; let z = 0.0;
         while i < 400 {
             x = x * 8.0;
             t = t + int(x) % 1000 + int(z / z) + int(-x);
             i = i + 1;
         }
         print(x, t);",
    );
}

#[test]
fn sqrt_of_negative_and_special_floats() {
    same_as_interpreter(
        "let s = 0; let i = 0; let x = -3.0;
         while i < 200 { let r = sqrt(x + i * 0.25); if r == r { s = s + 1; } i = i + 1; }
         print(s, sqrt(0.0 - 0.0), sqrt(1.0 / 0.0));",
    );
}

// ---- the optimiser -----------------------------------------------------------------------------

/// Loads in the body of the recorded dot-product loop `while k < n { BODY k = k + 1; }` over
/// float arrays `x`, `y`: (element loads `LdI`, header loads `LdH`, int stores `StI`, which
/// store tags here).
fn body_loads(body: &str) -> (usize, usize, usize) {
    use kiln::jit::ir::Op;
    use kiln::jit::opt::optimize;
    use kiln::jit::record::record;
    use kiln::vm::value::{MeterCell, Value};
    let src = format!(
        "let n = 50; let x = array(n, 1.5); let y = array(n, 2.5); let sum = 0.0; let k = 0;
         while k < n {{ {body} k = k + 1; }}
         print(sum);"
    );
    let prog = lang::compile(&src).unwrap();
    let meter = MeterCell::new(usize::MAX);
    let mut regs: Vec<Value> = (0..prog.funcs[0].nregs).map(|_| Value::Nil).collect();
    regs[0] = Value::Int(50);
    regs[1] = Value::new_array(&meter, vec![Value::Float(1.5); 50]).unwrap();
    regs[2] = Value::new_array(&meter, vec![Value::Float(2.5); 50]).unwrap();
    regs[3] = Value::Float(0.0);
    regs[4] = Value::Int(5);
    let trace = (0..prog.funcs[0].code.len())
        .find_map(|pc| record(&prog, 0, pc, &regs).ok())
        .expect("the loop records");
    let t = optimize(&trace).unwrap();
    let body = &t.insts[t.loop_ref().unwrap() as usize..];
    let count = |op: Op| body.iter().filter(|i| i.op == op).count();
    (count(Op::LdI), count(Op::LdH), count(Op::StI))
}

#[test]
fn array_headers_leave_loops_without_calls_and_elements_loops_without_stores() {
    // Only the two element tag loads stay in the body of a loop that stores nothing.
    assert_eq!(body_loads("sum = sum + x[k] * y[k];"), (2, 0, 0));
    // A store to an element may change elements, never an array's length or element pointer.
    // Storing a float to the float element just read: no second tag check, no tag store.
    assert_eq!(
        body_loads("sum = sum + x[k] * y[k]; y[k] = sum;"),
        (2, 0, 0)
    );
    // A store to another element in between (`x` might be `y`) leaves `y[k]` owning nothing
    // (stores store numbers) but maybe of another type: its old tag is not read, its tag is
    // stored; `x[k]`, never read, has both.
    assert_eq!(
        body_loads("sum = sum + y[k]; x[k] = sum; y[k] = sum;"),
        (2, 0, 2)
    );
    // A call (int `%` is one) might change headers: they are read again every iteration.
    assert_eq!(body_loads("sum = sum + x[k % n] * y[k];"), (2, 4, 0));
}

// ---- strings -----------------------------------------------------------------------------------

#[test]
fn values_in_registers_survive_a_copy_that_calls_the_runtime() {
    // An inline copy keeps every register but its arguments, also on the path that calls
    // Rust to drop a last reference (a fresh array or string in the register every fifth
    // iteration): ints and floats live across it must come back intact.
    for src in [
        // The fresh array comes from the interpreter (a side exit), the copy over it at the
        // next entry.
        "let m = [[1.5, 2.0], [3.0, 4.5], [5.5, 6.0]]; let s = 0.0; let t = 1.0; let k = 7;
         let i = 0; let r = m[0];
         while i < 400 {
           s = s + 0.25; t = t * 0.5; k = k + 1;
           r = m[i % 3];
           s = s + r[0] * r[1]; t = t + r[1]; k = k * 3 % 1000003;
           if i % 5 == 0 { r = [float(i), 1.0]; }
           i = i + 1;
         }
         print(s, t, k, r[0]);",
        // The fresh string comes from native code (a concatenation), the copy over it in the
        // next iteration.
        "let w = [\"ka\", \"lo\", \"zen\"]; let s = 0.0; let k = 7; let n = 0; let i = 0;
         let x = w[0];
         while i < 400 {
           s = s * 0.5 + 1.0; k = k + 1;
           x = w[i % 3];
           s = s * 0.5 + float(i); k = k * 3 % 1000003; n = n + len(x);
           if i % 5 == 0 { x = w[i % 3] + w[(i + 1) % 3]; }
           i = i + 1;
         }
         print(s, k, n, x);",
    ] {
        for r in same_as_interpreter(src) {
            assert!(r.stats.entered >= 1, "{:?}\n{src}\n{}", r.stats, r.log);
        }
    }
}

#[test]
fn a_loop_that_only_moves_arrays_into_a_call_it_cannot_follow_stops_at_the_call() {
    // The main loop of nbody: array moves into the arguments of a callee with a loop, then the
    // call. The trace ends at the call (a call stop: the VM makes the call, native code goes on
    // after it), nothing aborts and nothing is blacklisted. Each iteration runs only a few words
    // natively around the call, less than a call stop costs: the trace is paused, and the
    // interpreter runs the loop between samples.
    let runs = same_as_interpreter(
        "fn bump(a, b, n) { let k = 0; while k < n { a[k] = a[k] + b[k]; k = k + 1; } }
         let a = array(4, 1); let b = array(4, 2); let step = 0;
         while step < 3000 { bump(a, b, 4); step = step + 1; }
         print(a[0], a[3]);",
    );
    for r in &runs {
        assert!(
            r.log.contains("a call stop (the VM makes the call"),
            "{}",
            r.log
        );
        // (The function JIT gives up on `bump`, whose loop the loop JIT compiles.)
        let trace_gave_up = |l: &str| {
            l.starts_with("[JIT] Trace") && (l.contains("aborted") || l.contains("blacklisted"))
        };
        assert!(!r.log.lines().any(trace_gave_up), "{}", r.log);
        assert_eq!(r.stats.aborted, 0, "{:?}", r.stats);
        assert!(r.stats.call_stops >= 64, "{:?}", r.stats);
        assert!(r.stats.paused >= 1, "{:?}", r.stats);
        assert!(
            r.log.contains("paused: its entries ran fewer than"),
            "{}",
            r.log
        );
        // The function JIT's attempts at `bump` say where its loop runs.
        assert!(
            r.log.contains(
                "Function bump aborted at PC 0: `setidx` is not supported (the function holds \
                 a loop: its loops run as loop traces)"
            ),
            "{}",
            r.log
        );
    }
}
