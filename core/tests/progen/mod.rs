//! A random `.kl` program generator for differential tests of the JIT against the interpreter.
//!
//! Glossary
//! - *choice stream*: the generator makes every decision by reading the next byte of a byte
//!   string (0 once the string is exhausted). proptest generates and shrinks the bytes, so a
//!   failing program shrinks towards fewer and smaller choices, and choice 0 is always the
//!   simplest option (a plain assignment, a small literal, the end of a block).
//! - *counter*: each `while` owns a counter variable `cN` that nothing but its own step writes,
//!   and every loop's step and bound are literals (or `lim`, which only ever holds small
//!   numbers), so every generated program terminates after a bounded number of iterations.
//!
//! What the programs exercise: int and float variables (and one bool), int/float/mixed
//! arithmetic including `/` and `%` (int division by zero is a runtime error), comparisons,
//! `&&`/`||`/`!`, nested `while` loops in every shape the compiler emits (fused `forlt`/
//! `forltk` steps, inverted compare-and-branch tests, `&&` conditions), `if`/`else`, `break`
//! and `return` out of loops,
//! assignments that change a variable's type at some iteration (guards failing mid-loop), `nil`
//! arriving mid-loop (a type error), calls of small generated functions (with loops of their
//! own, or branchy and loop-free: followed into loop traces, nested when one calls another),
//! prints, string constants loaded inside loops (into `s0` or a temporary), concatenation and
//! `!=` of strings, and two arrays (`ia` of ints, `fa` of floats, `len` 8 and 4) read and written
//! inside loops, indexed by literals or by int loop counters (`c % len(ia)`), whose elements
//! change type when a float lands in `ia` (element guards failing mid-loop); the other
//! programs also index out of range or with a float and store strings.
#![allow(dead_code)]

use std::fmt::Write as _;

/// Most nested loops.
const MAX_LOOP_DEPTH: u32 = 3;
/// Most statements in one block.
const MAX_BLOCK: u32 = 5;
/// Largest literal loop bound.
const MAX_TRIPS: u32 = 24;

/// The variables every program declares; their names say the type they start with.
const VARS: [&str; 6] = ["i0", "i1", "i2", "f0", "f1", "b0"];

/// The arrays every program declares, with their lengths.
const ARRAYS: [(&str, u32); 2] = [("ia", 8), ("fa", 4)];

/// Reads decisions from a byte string.
struct Gen<'a> {
    bytes: &'a [u8],
    pos: usize,
    out: String,
    indent: usize,
    /// Counters of the enclosing loops, innermost last.
    loops: Vec<String>,
    /// The counters of `loops` that are always ints (never stepped by a fraction).
    int_counters: Vec<String>,
    /// Loops emitted so far (names the next counter).
    next_loop: u32,
    /// Block-local variables in scope.
    locals: Vec<String>,
    next_local: u32,
    /// Generated functions and their parameter counts.
    funcs: Vec<(String, u32)>,
    /// Inside a function body (its parameters are `p0`, `p1`).
    params: u32,
    /// The loop being opened has a counter that may not be an int.
    float_counter: bool,
    /// Mostly what the JIT compiles today: no builtins, prints, `%` or `nil` (so most of these
    /// programs run natively; the others probe aborts and unsupported code). Both kinds call
    /// small generated functions (function traces).
    friendly: bool,
}

/// Generates one program from `bytes`.
pub fn program(bytes: &[u8]) -> String {
    let mut g = Gen {
        bytes,
        pos: 0,
        out: String::new(),
        indent: 0,
        loops: Vec::new(),
        int_counters: Vec::new(),
        next_loop: 0,
        locals: Vec::new(),
        next_local: 0,
        funcs: Vec::new(),
        params: 0,
        float_counter: false,
        friendly: false,
    };
    g.friendly = g.pick(3) != 2;
    g.top();
    g.out
}

impl Gen<'_> {
    fn byte(&mut self) -> u32 {
        let b = self.bytes.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b as u32
    }

    /// A choice in `0..n`.
    fn pick(&mut self, n: u32) -> u32 {
        self.byte() % n
    }

    /// True with probability about `pct` percent (false when the stream is exhausted).
    fn chance(&mut self, pct: u32) -> bool {
        self.pos < self.bytes.len() && self.byte() * 100 < pct * 256
    }

    fn exhausted(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn line(&mut self, s: &str) {
        for _ in 0..self.indent {
            self.out.push_str("    ");
        }
        self.out.push_str(s);
        self.out.push('\n');
    }

    // ---- program -----------------------------------------------------------------------------

    fn top(&mut self) {
        let funcs = self.pick(3);
        for f in 0..funcs {
            self.function(f);
        }
        let inits = [
            self.int_lit(),
            self.int_lit(),
            self.int_lit(),
            self.float_lit(),
            self.float_lit(),
        ];
        for (v, init) in VARS.iter().zip(inits) {
            self.line(&format!("let {v} = {init};"));
        }
        self.line("let b0 = true;");
        self.line("let s0 = \"ab\";");
        self.line("let ia = [3, 1, 4, 1, 5, 9, 2, 6];");
        self.line("let fa = [0.5, -1.25, 2.0, 8.75];");
        let lim = 1 + self.pick(MAX_TRIPS);
        self.line(&format!("let lim = {lim};"));
        // Sometimes many more variables: more values live in a loop than registers (spills).
        let wide = if self.chance(25) { 14 } else { 0 };
        for w in 0..wide {
            let init = if w % 2 == 0 {
                self.int_lit()
            } else {
                self.float_lit()
            };
            self.line(&format!("let w{w} = {init};"));
            self.locals.push(format!("w{w}"));
        }
        // Counters are declared up front so `cN` is visible wherever loop N sits.
        self.counters_up_to_now_placeholder();
        let n = 1 + self.pick(4);
        for k in 0..n {
            if k == 0 {
                // Every program has at least one loop.
                self.while_loop();
            } else {
                self.stmt();
            }
        }
        self.line("print(i0, i1, i2, f0, f1, b0, lim);");
        self.line("print(s0, len(s0));");
        self.line("print(ia[0], ia[1], ia[2], ia[3], ia[4], ia[5], ia[6], ia[7], len(ia));");
        self.line("print(fa[0], fa[1], fa[2], fa[3], len(fa));");
        if wide > 0 {
            let all: Vec<String> = (0..wide).map(|w| format!("w{w}")).collect();
            self.line(&format!("print({});", all.join(", ")));
        }
        self.declare_counters();
    }

    /// Marks where the counter declarations go; filled in by [`Gen::declare_counters`] once
    /// the number of loops is known.
    fn counters_up_to_now_placeholder(&mut self) {
        self.out.push_str("@COUNTERS@\n");
    }

    fn declare_counters(&mut self) {
        let decl: String = (0..self.next_loop)
            .map(|n| format!("let c{n} = 0;\n"))
            .collect();
        self.out = self.out.replacen("@COUNTERS@\n", &decl, 1);
    }

    /// `fn hN(p0, p1) { ... return e; }`: its own locals, maybe a loop, no globals.
    fn function(&mut self, n: u32) {
        let name = format!("h{n}");
        let arity = 1 + self.pick(2);
        let params: Vec<String> = (0..arity).map(|i| format!("p{i}")).collect();
        self.line(&format!("fn {name}({}) {{", params.join(", ")));
        self.indent += 1;
        self.params = arity;
        let first_loop = self.next_loop;
        let saved_locals = std::mem::take(&mut self.locals);
        // One choice picks the body: a loop (60%), an early `return` behind a condition (20%:
        // a branchy callee, followed into loop traces), or one expression.
        let shape = if self.exhausted() {
            u32::MAX
        } else {
            self.byte() * 100 / 256
        };
        if shape < 60 {
            // A loop whose counter is a local of the function.
            let c = format!("c{}", self.next_loop);
            self.next_loop += 1;
            self.line(&format!("let {c} = 0;"));
            self.line("let acc = 0;");
            let trips = self.pick(MAX_TRIPS);
            self.line(&format!("while {c} < {trips} {{"));
            self.indent += 1;
            let e = self.expr(1);
            self.line(&format!("acc = acc + {e};"));
            if self.chance(40) {
                let c2 = self.cond(1);
                let leave = ["break;", "return acc;"][self.pick(2) as usize];
                self.line(&format!("if {c2} {{ {leave} }}"));
            }
            self.line(&format!("{c} = {c} + 1;"));
            self.indent -= 1;
            self.line("}");
            self.line("return acc;");
        } else {
            if shape < 80 {
                let c = self.cond(1);
                let e = self.expr(2);
                self.line(&format!("if {c} {{ return {e}; }}"));
            }
            let e = self.expr(2);
            self.line(&format!("return {e};"));
        }
        self.locals = saved_locals;
        // Function counters are locals, not globals: don't declare them at the top.
        let _ = first_loop;
        self.params = 0;
        self.indent -= 1;
        self.line("}");
        self.funcs.push((name, arity));
    }

    /// A variable an expression may read.
    fn readable(&mut self) -> String {
        if self.params > 0 {
            let mut names: Vec<String> = (0..self.params).map(|i| format!("p{i}")).collect();
            names.extend(self.locals.iter().cloned());
            names.extend(self.loops.iter().cloned());
            let i = self.pick(names.len() as u32) as usize;
            return names.swap_remove(i);
        }
        let extra = self.locals.len() + self.loops.len();
        let i = self.pick((VARS.len() + extra + 1) as u32) as usize;
        if i < VARS.len() && self.friendly && VARS[i] == "b0" {
            // A bool in arithmetic is a type error that would end most programs early; the
            // friendly ones read `b0` only as a condition.
            "f1".to_string()
        } else if i < VARS.len() {
            VARS[i].to_string()
        } else if i < VARS.len() + self.locals.len() {
            self.locals[i - VARS.len()].clone()
        } else if i < VARS.len() + extra {
            self.loops[i - VARS.len() - self.locals.len()].clone()
        } else {
            "lim".to_string()
        }
    }

    /// A variable a statement may assign (never a counter or `lim`).
    fn writable(&mut self) -> String {
        let i = self.pick((VARS.len() + self.locals.len()) as u32) as usize;
        if i < VARS.len() && self.friendly && VARS[i] == "b0" {
            "i0".to_string()
        } else if i < VARS.len() {
            VARS[i].to_string()
        } else {
            self.locals[i - VARS.len()].clone()
        }
    }

    // ---- statements --------------------------------------------------------------------------

    fn block(&mut self) {
        let saved = self.locals.len();
        let n = self.pick(MAX_BLOCK + 1);
        for _ in 0..n {
            if self.exhausted() {
                break;
            }
            self.stmt();
        }
        self.locals.truncate(saved);
    }

    fn stmt(&mut self) {
        let in_loop = !self.loops.is_empty();
        match self.pick(20) {
            0..=6 => {
                let v = self.writable();
                let e = self.expr(2);
                self.line(&format!("{v} = {e};"));
            }
            7 => {
                // An accumulation, the shape hot loops have.
                let v = self.writable();
                let op = ["+", "-", "*"][self.pick(3) as usize];
                let e = self.expr(1);
                self.line(&format!("{v} = {v} {op} {e};"));
            }
            8 if in_loop => self.type_change(),
            9 | 10 => {
                let c = self.cond(2);
                self.line(&format!("if {c} {{"));
                self.nested_block();
                if self.chance(40) {
                    self.line("} else {");
                    self.nested_block();
                }
                self.line("}");
            }
            11 if in_loop => {
                let c = self.cond(2);
                // Mostly `break`; sometimes the whole program ends mid-loop.
                let leave = if self.chance(15) { "return;" } else { "break;" };
                self.line(&format!("if {c} {{ {leave} }}"));
            }
            12 | 13 if (self.loops.len() as u32) < MAX_LOOP_DEPTH => self.while_loop(),
            14 => {
                let name = format!("t{}", self.next_local);
                self.next_local += 1;
                let e = self.expr(2);
                self.line(&format!("let {name} = {e};"));
                self.locals.push(name);
            }
            15 if !self.friendly && self.chance(30) => {
                let e = self.expr(1);
                self.line(&format!("print({e});"));
            }
            16 if self.chance(30) => self.string_stmt(),
            16 => {
                let v = self.readable();
                let k = self.num_lit();
                self.line(&format!("b0 = {v} < {k};"));
            }
            17 => {
                let l = if self.chance(50) {
                    self.int_lit_small()
                } else {
                    format!("{}.5", self.pick(MAX_TRIPS))
                };
                self.line(&format!("lim = {l};"));
            }
            19 if self.chance(60) => {
                let el = self.element();
                let e = if !self.friendly && self.chance(5) {
                    "\"s\"".to_string()
                } else {
                    self.expr(1)
                };
                self.line(&format!("{el} = {e};"));
            }
            18 if !self.funcs.is_empty() => {
                let v = self.writable();
                let call = self.call();
                self.line(&format!("{v} = {call};"));
            }
            _ => {
                let v = self.writable();
                let e = self.expr(1);
                self.line(&format!("{v} = {e};"));
            }
        }
    }

    /// A string statement: a string constant loaded into `s0` or a temporary, a
    /// concatenation, or `!=`/`==` of strings.
    fn string_stmt(&mut self) {
        let k = ["\"\"", "\"ab\"", "\"zen\""][self.pick(3) as usize];
        match self.pick(4) {
            0 => self.line(&format!("s0 = {k};")),
            1 => self.line(&format!("if len(s0) < 40 {{ s0 = s0 + {k}; }}")),
            2 => {
                let v = self.writable();
                self.line(&format!("if s0 != {k} {{ {v} = {v} + 1; }}"));
            }
            _ => {
                let name = format!("t{}", self.next_local);
                self.next_local += 1;
                self.line(&format!("let {name} = {k};"));
                self.line(&format!("s0 = {name} + s0;"));
                self.line(&format!("{name} = 0;"));
                self.locals.push(name);
            }
        }
    }

    fn nested_block(&mut self) {
        self.indent += 1;
        self.block();
        self.indent -= 1;
    }

    /// At one iteration of the innermost loop a variable gets a value of another type (or
    /// `nil`, which the next arithmetic on it turns into a type error).
    fn type_change(&mut self) {
        let c = self.loops.last().cloned().unwrap_or_default();
        let at = self.pick(MAX_TRIPS / 2);
        let v = self.writable();
        let kinds = if self.friendly { 7 } else { 9 };
        let val = match self.pick(kinds) {
            0..=2 => self.float_lit(),
            3..=5 => self.int_lit(),
            6 => "false".to_string(),
            7 => "\"s\"".to_string(),
            _ => "nil".to_string(),
        };
        let cmp = ["==", ">=", ">"][self.pick(3) as usize];
        self.line(&format!("if {c} {cmp} {at} {{ {v} = {val}; }}"));
    }

    /// One `while` in one of the shapes the compiler emits differently.
    fn while_loop(&mut self) {
        let c = format!("c{}", self.next_loop);
        self.next_loop += 1;
        let bound = if self.chance(25) {
            "lim".to_string()
        } else {
            self.pick(MAX_TRIPS + 1).to_string()
        };
        let shape = self.pick(6);
        // A float counter, or one compared with `lim` (which may turn float).
        self.float_counter = shape == 5 || bound == "lim";
        match shape {
            // A float counter with a fractional step (fuses into `forltk` on floats), maybe
            // starting as an int (the first step makes it a float).
            5 => {
                let start = ["0", "0.25", "-1.5"][self.pick(3) as usize];
                let step = ["0.5", "1.25", "1"][self.pick(3) as usize];
                self.line(&format!("{c} = {start};"));
                self.line(&format!("while {c} < {bound} {{"));
                self.body(&c);
                self.line(&format!("    {c} = {c} + {step};"));
            }
            // Step last: fuses into `forltk`/`forlt`.
            0 | 1 => {
                self.line(&format!("{c} = 0;"));
                self.line(&format!("while {c} < {bound} {{"));
                self.body(&c);
                self.line(&format!("    {c} = {c} + 1;"));
            }
            // Step first: an inverted compare-and-branch at the bottom.
            2 => {
                self.line(&format!("{c} = 0;"));
                let op = ["<", "<="][self.pick(2) as usize];
                self.line(&format!("while {c} {op} {bound} {{"));
                self.line(&format!("    {c} = {c} + 1;"));
                self.body(&c);
            }
            // Counting down.
            3 => {
                self.line(&format!("{c} = {bound};"));
                self.line(&format!("while {c} > 0 {{"));
                self.line(&format!("    {c} = {c} - 1;"));
                self.body(&c);
            }
            // A second condition: two branches back to the top.
            _ => {
                self.line(&format!("{c} = 0;"));
                let extra = self.cond(1);
                let join = ["&&", "||"][self.pick(2) as usize];
                if join == "&&" {
                    self.line(&format!("while {c} < {bound} && {extra} {{"));
                } else {
                    // Bounded: `||` still needs the counter test to stop.
                    self.line(&format!("while {c} < {bound} && ({c} < 3 || {extra}) {{"));
                }
                self.line(&format!("    {c} = {c} + 1;"));
                self.body(&c);
            }
        }
        self.line("}");
    }

    fn body(&mut self, counter: &str) {
        self.loops.push(counter.to_string());
        let int_counter = !self.float_counter;
        if int_counter {
            self.int_counters.push(counter.to_string());
        }
        self.indent += 1;
        let saved = self.locals.len();
        let n = 1 + self.pick(MAX_BLOCK);
        for _ in 0..n {
            self.stmt();
            if self.exhausted() {
                break;
            }
        }
        self.locals.truncate(saved);
        self.indent -= 1;
        self.loops.pop();
        if int_counter {
            self.int_counters.pop();
        }
    }

    // ---- expressions -------------------------------------------------------------------------

    fn expr(&mut self, depth: u32) -> String {
        if depth == 0 {
            return self.leaf();
        }
        match self.pick(12) {
            0..=3 => self.leaf(),
            4..=8 => {
                // Float `%` is not compiled: only the other programs use `%`.
                let ops = if self.friendly { 7 } else { 8 };
                let op = ["+", "-", "*", "+", "-", "*", "/", "%"][self.pick(ops) as usize];
                let (l, r) = (self.expr(depth - 1), self.expr(depth - 1));
                format!("({l} {op} {r})")
            }
            9 => format!("-{}", self.leaf()),
            // Float division (inf and NaN when the literal is 0.0).
            10 if self.friendly => {
                let l = self.expr(depth - 1);
                format!("({l} / {})", self.float_lit())
            }
            10 if !self.funcs.is_empty() && self.chance(40) => self.call(),
            10 if !self.friendly => {
                let f = ["int", "float"][self.pick(2) as usize];
                let e = self.expr(depth - 1);
                format!("{f}({e})")
            }
            _ => {
                let l = self.leaf();
                format!("({l} + {})", self.num_lit())
            }
        }
    }

    /// `ia[..]` or `fa[..]`: a literal index, an int loop counter modulo the length, or (in
    /// the unfriendly programs) any expression.
    fn element(&mut self) -> String {
        let (name, n) = ARRAYS[self.pick(2) as usize];
        let counter = (!self.int_counters.is_empty()).then(|| {
            let i = self.pick(self.int_counters.len() as u32) as usize;
            self.int_counters[i].clone()
        });
        let index = match (self.pick(4), counter) {
            (0, _) => self.pick(n).to_string(),
            (3, _) if !self.friendly => self.expr(1),
            (1, Some(c)) => format!("{c} % len({name})"),
            (_, Some(c)) => format!("{c} % {n}"),
            _ => self.pick(n).to_string(),
        };
        format!("{name}[{index}]")
    }

    fn leaf(&mut self) -> String {
        match self.pick(10) {
            8 if self.params == 0 => self.element(),
            9 if self.params == 0 && self.chance(30) => "len(ia)".to_string(),
            0..=4 | 8 | 9 => self.readable(),
            5 | 6 => self.num_lit(),
            _ => self.int_lit_small(),
        }
    }

    fn cond(&mut self, depth: u32) -> String {
        match self.pick(10) {
            0..=5 => {
                let op = ["<", "<=", ">", ">=", "==", "!="][self.pick(6) as usize];
                let (l, r) = (self.expr(1), self.expr(1));
                format!("{l} {op} {r}")
            }
            6 if self.params == 0 => "b0".to_string(),
            7 => format!("!({})", self.cond(depth.saturating_sub(1))),
            8 if depth > 0 => {
                let op = ["&&", "||"][self.pick(2) as usize];
                let (l, r) = (self.cond(depth - 1), self.cond(depth - 1));
                format!("({l} {op} {r})")
            }
            _ => {
                let v = self.readable();
                format!("{v} < {}", self.num_lit())
            }
        }
    }

    fn call(&mut self) -> String {
        let i = self.pick(self.funcs.len() as u32) as usize;
        let (name, arity) = self.funcs[i].clone();
        let args: Vec<String> = (0..arity).map(|_| self.expr(1)).collect();
        format!("{name}({})", args.join(", "))
    }

    // ---- literals ----------------------------------------------------------------------------

    fn num_lit(&mut self) -> String {
        if self.chance(50) {
            self.int_lit()
        } else {
            self.float_lit()
        }
    }

    fn int_lit_small(&mut self) -> String {
        self.pick(10).to_string()
    }

    fn int_lit(&mut self) -> String {
        match self.pick(10) {
            0..=6 => (self.pick(41) as i64 - 20).to_string(),
            7 | 8 => (self.byte() as i64 * 257 + self.byte() as i64).to_string(),
            // Large enough that products wrap.
            _ => format!("{}", (self.byte() as i64 + 1) << 40),
        }
    }

    fn float_lit(&mut self) -> String {
        let whole = self.pick(21) as i64 - 10;
        let frac = ["0", "5", "25", "125", "1", "75"][self.pick(6) as usize];
        let mut s = String::new();
        let _ = write!(s, "{whole}.{frac}");
        s
    }
}
