//! Language semantics: small programs and the exact output they must print.
use kiln::vm::{run_source, VmConfig};

fn run(src: &str) -> String {
    let mut out = String::new();
    if let Err(e) = run_source(src, &["a1", "22"], VmConfig::default(), &mut out) {
        panic!("{e}\nin:\n{src}");
    }
    out
}

#[test]
fn arithmetic_and_comparisons() {
    assert_eq!(
        run("print(7 / 2, -7 / 2, 7 % 3, -7 % 3, 7.5 % 2, 2 * 3 + 4, 2 * (3 + 4));"),
        "3 -3 1 -1 1.5 10 14\n"
    );
    assert_eq!(
        run("print(1 + 0.5, 3 - 1.0, 1 < 1.5, 2 <= 2, 3 > 4, 3 >= 3, 1 == 1.0, 1 != 2);"),
        "1.5 2.0 true true false true true true\n"
    );
    assert_eq!(
        run("print(9223372036854775807 + 1, -(-3), !true, !nil, !0);"),
        "-9223372036854775808 3 false true false\n"
    );
    assert_eq!(
        run("print(\"ab\" + \"cd\", \"ab\" < \"b\", \"x\" == \"x\", [1] == [1]);"),
        "abcd true true false\n"
    );
}

#[test]
fn short_circuit_returns_an_operand_and_skips_the_rest() {
    let src = "fn boom() { return 1 / 0; }\nprint(false && boom(), true || boom(), nil || 3, 2 && 5);\nlet x = 1;\nx = false || x;\nprint(x);";
    assert_eq!(run(src), "false true 3 5\n1\n");
}

#[test]
fn loops_if_else_break_and_fused_steps() {
    let src = "let i = 0;\nlet s = 0;\nwhile i < 10 {\n  if i % 2 == 0 { s = s + i; } else if i == 7 { break; } else { s = s + 100; }\n  i = i + 1;\n}\nprint(i, s);";
    assert_eq!(run(src), "7 312\n");
    // A float counter against an int limit, and a limit that changes inside the loop.
    assert_eq!(
        run("let x = 0.5;\nwhile x < 3 { x = x + 1; }\nprint(x);"),
        "3.5\n"
    );
    assert_eq!(
        run("let n = 3;\nlet i = 0;\nwhile i < n { n = n - 1; i = i + 1; }\nprint(i, n);"),
        "2 1\n"
    );
    // The last statement is an `if` around the step: no fusion, same meaning.
    assert_eq!(run("let i = 0;\nlet k = 0;\nwhile i < 5 { k = k + 1; if k > 0 { i = i + 1; } }\nprint(i, k);"), "5 5\n");
    assert_eq!(
        run("let i = 10;\nwhile i < 5 { i = i + 1; }\nprint(i);"),
        "10\n"
    );
    // The body ends by stepping a variable it declared itself (out of scope at the test).
    assert_eq!(
        run("let c = 0;\nlet s = 0;\nwhile c < 5 { c = c + 1; let t = s; t = t + 2; s = t; }\nprint(s);"),
        "10\n"
    );
    assert_eq!(
        run("let c = 0;\nwhile c < 3 { let t = c; t = t + 1; c = c + 1; let u = 0; u = u + 1; }\nprint(c);"),
        "3\n"
    );
}

#[test]
fn functions_recursion_and_scopes() {
    let src = "fn fact(n) { if n <= 1 { return 1; } return n * fact(n - 1); }\nfn nothing() { }\nlet x = 1;\nif true { let x = 2; print(x); }\nprint(x, fact(20), nothing());";
    assert_eq!(run(src), "2\n1 2432902008176640000 nil\n");
    // Calls as arguments, nested windows.
    assert_eq!(
        run("fn add(a, b) { return a + b; }\nprint(add(add(1, 2), add(3, add(4, 5))));"),
        "15\n"
    );
}

#[test]
fn arrays_strings_and_builtins() {
    let src = "let a = [1, \"two\", [3]];\npush(a, 4.5);\na[0] = a[0] + 10;\nprint(a, len(a), a[2][0], len(\"héllo\"));\nlet b = a;\nb[1] = nil;\nprint(a[1], array(3, 0), str(12) + \"!\", int(\"42\") + 1, float(2), int(3.9), sqrt(16));";
    assert_eq!(
        run(src),
        "[11, two, [3], 4.5] 4 3 6\nnil [0, 0, 0] 12! 43 2.0 3 4.0\n"
    );
    assert_eq!(run("print(args(), len(args()));"), "[a1, 22] 2\n");
    assert_eq!(
        run("print(\"tab\\there\", \"quote\\\"\", \"nl\\n\");"),
        "tab\there quote\" nl\n\n"
    );
}

#[test]
fn a_self_containing_array_prints_without_recursing_forever() {
    let out = run("let a = [1];\npush(a, a);\nprint(len(a));\nprint(a);");
    assert!(out.starts_with("2\n[1, [1, [1, "), "{out}");
    assert!(out.contains("[...]"), "{out}");
}

#[test]
fn the_front_end_allocates_from_the_arena_it_is_given() {
    let arena = kiln::allocator::arena::Arena::new();
    let src =
        "fn f(a, b) { return [a, b]; }\nlet i = 0;\nwhile i < 3 { print(f(i, \"x\")); i = i + 1; }";
    let prog = kiln::vm::lang::compile_in(src, &arena).unwrap();
    let stats = arena.stats();
    // Tokens, expression/statement pools and their lists: several vectors, all in the arena.
    assert!(stats.allocations >= 6, "{stats:?}");
    assert!(stats.bytes_allocated >= 500, "{stats:?}");
    // The program itself is ordinary heap data and outlives the arena's contents.
    drop(arena);
    let mut vm = kiln::vm::Vm::new(&prog, VmConfig::default()).unwrap();
    let mut out = String::new();
    vm.run(&mut out, None).unwrap();
    assert_eq!(out, "[0, x]\n[1, x]\n[2, x]\n");
}

#[test]
fn value_layout_is_the_documented_one() {
    use kiln::vm::value::{PAYLOAD_OFFSET, TAG_BOOL, TAG_FLOAT, TAG_INT, TAG_NIL};
    use kiln::vm::Value;
    assert_eq!(core::mem::size_of::<Value>(), 16);
    assert_eq!(PAYLOAD_OFFSET, 8);
    let tag = |v: &Value| {
        // SAFETY: `Value` is `#[repr(u64)]`: its first 8 bytes are the initialised tag word.
        unsafe { *(v as *const Value as *const u64) }
    };
    let payload = |v: &Value| {
        // SAFETY: for `Int` and `Float` (the only variants passed here) bytes 8..16 hold the
        // fully initialised i64/f64 payload.
        unsafe { *((v as *const Value as *const u8).add(PAYLOAD_OFFSET) as *const u64) }
    };
    assert_eq!(tag(&Value::Nil), TAG_NIL);
    assert_eq!(tag(&Value::Bool(true)), TAG_BOOL);
    assert_eq!(tag(&Value::Int(-5)), TAG_INT);
    assert_eq!(payload(&Value::Int(-5)), (-5i64) as u64);
    assert_eq!(tag(&Value::Float(1.5)), TAG_FLOAT);
    assert_eq!(payload(&Value::Float(1.5)), 1.5f64.to_bits());
}

#[test]
fn array_elements_of_every_kind_by_register_and_immediate_index() {
    // Immediate indices (`v[2]`) and register indices (`v[i]`) must agree, for numbers and for
    // heap values replacing numbers and the other way round (the reference-counted path).
    let src = "let v = [1, 2.5, \"s\", [7], nil, true];\n\
               let i = 0;\n\
               while i < 6 { print(v[i]); i = i + 1; }\n\
               print(v[0], v[1], v[2], v[3], v[4], v[5]);\n\
               v[0] = \"a\" + \"b\"; v[2] = 3; v[3] = v[3]; let j = 4; v[j] = [v[0]]; v[5] = v;\n\
               print(v[0], v[2], v[3], v[4], len(v[5]));\n\
               v[5] = 0; v[j] = 1.5; v[1] = v[2]; v[3][0] = v[3];\n\
               print(v[1], v[4], v[5], len(v[3][0][0]), v[255 - 250]);";
    assert_eq!(
        run(src),
        "1\n2.5\ns\n[7]\nnil\ntrue\n1 2.5 s [7] nil true\nab 3 [7] [ab] 6\n3 1.5 0 1 0\n"
    );
}

#[test]
fn immediate_index_errors_match_register_index_errors() {
    let run_err = |src: &str| {
        let mut out = String::new();
        let e = run_source(src, &[], VmConfig::default(), &mut out)
            .unwrap_err()
            .to_string();
        // The message without its location (the two forms differ in PC and line).
        e.split_once("): ").map(|(_, m)| m.to_string()).unwrap_or(e)
    };
    for (imm, reg) in [
        (
            "let a = [1];\nprint(a[1]);",
            "let a = [1];\nlet i = 1;\nprint(a[i]);",
        ),
        (
            "let a = [1];\na[200] = 2;",
            "let a = [1];\nlet i = 200;\na[i] = 2;",
        ),
        (
            "let a = 5;\nprint(a[0]);",
            "let a = 5;\nlet i = 0;\nprint(a[i]);",
        ),
        (
            "let a = \"x\";\na[0] = 1;",
            "let a = \"x\";\nlet i = 0;\na[i] = 1;",
        ),
        (
            "let a = [[1]];\na[0] = a[1];",
            "let a = [[1]];\nlet i = 1;\na[0] = a[i];",
        ),
    ] {
        assert_eq!(run_err(imm), run_err(reg), "{imm}");
    }
    // 2^32 + 1 must not wrap to 1 on any target.
    assert_eq!(
        run_err("let a = [1, 2];\nprint(a[4294967297]);"),
        "index out of range: index 4294967297, length 2"
    );
}

#[test]
fn sqrt_is_correctly_rounded() {
    // Every result must be the IEEE 754 square root, bit for bit (what Lua's math.sqrt and C's
    // sqrt print), for ints and floats, in the interpreter's fast path and its generic path.
    let src = "let i = 0;\nwhile i < 2000 {\n  print(sqrt(i * 1.37 + 0.001), sqrt(i));\n  i = i + 1;\n}\nprint(sqrt(-1.0), sqrt(0.0), sqrt(1.0 / 0.0));";
    let mut want = String::new();
    for i in 0..2000 {
        let x = i as f64 * 1.37 + 0.001;
        want.push_str(&format!("{:?} {:?}\n", x.sqrt(), (i as f64).sqrt()));
    }
    want.push_str("NaN 0.0 inf\n");
    assert_eq!(run(src), want);
}

#[test]
fn fused_loop_steps_keep_add_and_compare_semantics() {
    // `<` and `<=`, constant and variable steps and limits: each loop's last statement is the
    // step, so each compiles to one fused instruction; the result must be what separate `add`
    // and compare instructions give, also for floats, mixed numbers and strings.
    let src = "let n = 10; let s = 0; let i = 0;\n\
               while i <= n { s = s + i; i = i + 1; }\n\
               let j = 1; let k = 3;\n\
               let h = 100; while j <= h { s = s + j; j = j + k; }\n\
               let m = 200; while j < m { s = s + 1; j = j + k; }\n\
               let x = 0.5;\n\
               while x <= 4 { s = s + 1; x = x + 0.75; }\n\
               let t = \"a\";\n\
               while t <= \"aaaa\" { s = s + 1; t = t + \"a\"; }\n\
               let d = 0 - 1;\n\
               let y = 5; while y <= 9 { y = y + d; if y < 0 { break; } }\n\
               print(s, i, j, x, t, y);";
    assert_eq!(run(src), "1814 11 202 4.25 aaaaa -1\n");
    let dis = {
        let prog = kiln::vm::lang::compile(src).unwrap();
        let mut out = String::new();
        kiln::vm::bytecode::disassemble(&mut out, &prog).unwrap();
        out
    };
    for op in ["forle ", "forltr ", "forler "] {
        assert!(dis.contains(op), "no `{op}` in\n{dis}");
    }
}

#[test]
fn multiply_accumulate_keeps_mul_then_add_semantics() {
    // `s = s + a * b` compiles to one `muladd`; ints wrap, floats round twice (no fused
    // multiply-add: 0.1 * 3.0 rounds before the add), mixed numbers promote, strings still add.
    let src = "let s = 9223372036854775807; let a = 2; let b = 3;\n\
               s = s + a * b;\n\
               let f = 0.1; let g = 3.0; let h = -0.30000000000000004;\n\
               h = h + f * g;\n\
               let m = 1; m = m + f * b;\n\
               let t = \"x\"; t = t + t * 1;\n\
               print(s, h, m);";
    let mut out = String::new();
    let err = run_source(src, &[], VmConfig::default(), &mut out).unwrap_err();
    assert_eq!(out, "");
    assert!(err.to_string().contains("multiply"), "{err}");
    let src = src.replace("let t = \"x\"; t = t + t * 1;\n", "");
    assert_eq!(run(&src), "-9223372036854775803 0.0 1.3\n");
    let prog = kiln::vm::lang::compile(&src).unwrap();
    let mut dis = String::new();
    kiln::vm::bytecode::disassemble(&mut dis, &prog).unwrap();
    assert_eq!(dis.matches("muladd ").count(), 3, "{dis}");
}

/// Int `/` and `%` by a constant (`divk`, `modk` and the interpreter's `modk`+`ret` pair; a
/// positive power of two is a shift there) equal truncating division for every sign, the
/// extremes and divisors 1, 2 and 2^62, with and without fused pairs.
#[test]
fn division_by_a_constant_truncates_like_plain_division() {
    let dividends = [
        0,
        1,
        -1,
        2,
        -2,
        3,
        -3,
        7,
        -7,
        1 << 62,
        -(1 << 62),
        (1 << 62) + 3,
        -(1 << 62) - 3,
        i64::MIN,
        i64::MIN + 1,
        i64::MAX,
    ];
    let divisors = [1, 2, 4, 1 << 62, 3, -2, -4];
    let list: Vec<String> = dividends
        .iter()
        .map(|&x| match x {
            i64::MIN => "-9223372036854775807 - 1".to_string(),
            x => x.to_string(),
        })
        .collect();
    let mut src = format!("let xs = [{}];\n", list.join(", "));
    let mut want = String::new();
    for (i, k) in divisors.iter().enumerate() {
        src += &format!(
            "fn q{i}(x) {{ let q = x / {k}; let r = x % {k}; return [q, r]; }}\n\
             fn r{i}(x) {{ return x % {k}; }}\n\
             let i = 0;\nwhile i < {n} {{ let p = q{i}(xs[i]); print(p[0], p[1], r{i}(xs[i])); i = i + 1; }}\n",
            n = dividends.len()
        );
        for x in dividends {
            let (q, r) = (x.wrapping_div(*k), x.wrapping_rem(*k));
            want += &format!("{q} {r} {r}\n");
        }
    }
    for fused_pairs in [true, false] {
        let config = VmConfig {
            jit_threshold: 0,
            fused_pairs,
            ..VmConfig::default()
        };
        let mut out = String::new();
        if let Err(e) = run_source(&src, &[], config, &mut out) {
            panic!("{e}\nin:\n{src}");
        }
        assert_eq!(out, want, "fused pairs {fused_pairs}");
    }
}

/// Adjacent `move a, b; move b, a` pairs in `src`'s disassembly.
fn move_back_pairs(src: &str) -> usize {
    let prog = kiln::vm::lang::compile(src).unwrap();
    let mut dis = String::new();
    kiln::vm::bytecode::disassemble(&mut dis, &prog).unwrap();
    let moves: Vec<Option<(String, String)>> = dis
        .lines()
        .map(|l| {
            let ops = l.split(']').nth(1)?.trim();
            let rest = ops.strip_prefix("move")?;
            let (d, s) = rest.trim().split_once(", ")?;
            Some((d.to_string(), s.trim().to_string()))
        })
        .collect();
    moves
        .windows(2)
        .filter(|w| matches!((&w[0], &w[1]), (Some((a, b)), Some((c, d))) if a == d && b == c))
        .count()
}

#[test]
fn a_move_straight_back_is_left_out_unless_a_jump_lands_between() {
    // `h = f(h); g(h)`: the result moves into `h`, and `h` would move back into the window.
    let src = "fn f(x) { return x * 3 + 1; } fn g(x) { return x % 7; }\n\
               let h = 5; let s = 0; let i = 0;\n\
               while i < 10 { h = f(h); s = s + g(h); i = i + 1; }\n\
               print(h, s);";
    assert_eq!(run(src), "324769 25\n");
    assert_eq!(move_back_pairs(src), 0);
    // The `if` jumps over `a = b` to `b = a`: that move must stay.
    let src = "let a = 1; let b = 2;\n\
               if len(args()) > 5 { a = b; }\n\
               b = a;\n\
               print(a, b);";
    assert_eq!(run(src), "1 1\n");
    assert_eq!(move_back_pairs(src), 1);
}
