//! A compiled program: the constant pool, the functions, and their byte serialisation.
//!
//! Glossary: *constant pool* — every literal and identifier a program names, interned once
//! ([`Program::intern`]); *function 0* — the entry point (the top-level statements), arity 0.
//!
//! The byte form (`to_bytes` / `from_bytes`) is what an embedder ships and what the fuzz tests
//! throw arbitrary bytes at; `from_bytes` checks every length against the bytes that remain, so
//! a hostile header cannot make it allocate more than the input's size.
//!
//! ```text
//! "KILN" u8 version=1
//! u32 nconsts  { u8 tag (0 int, 1 float, 2 str)  i64 | f64 bits | u32 len + utf-8 bytes }*
//! u32 nfuncs   { u32 name-const  u8 arity  u16 nregs  u32 nwords  u32 code[nwords]  u32 line[nwords] }*
//! ```
//!
//! A program with host imports or buffers has version 2 and two more sections at the end:
//! `u32 nimports { u32 name-const  u8 arity }*  u32 nbuffers { u32 name-const }*`.
use core::fmt;

use alloc::boxed::Box;
use alloc::vec::Vec;

/// One entry of the constant pool.
#[derive(Clone, Debug, PartialEq)]
pub enum Const {
    /// An integer literal.
    Int(i64),
    /// A float literal.
    Float(f64),
    /// A string literal or an identifier.
    Str(Box<str>),
}

impl fmt::Display for Const {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Const::Int(i) => write!(f, "{i}"),
            Const::Float(x) => write!(f, "{x:?}"),
            Const::Str(s) => f.write_str(s),
        }
    }
}

/// One function: its code, one source line per code word, and its frame size.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Function {
    /// Constant-pool index of the function's name.
    pub name: u32,
    /// Number of parameters; they arrive in registers `0 .. arity`.
    pub arity: u8,
    /// Frame size in registers (at most 256).
    pub nregs: u16,
    /// The instructions (see [`super::bytecode`]).
    pub code: Vec<u32>,
    /// Source line of each code word (extension words repeat their instruction's line).
    pub lines: Vec<u32>,
}

/// A host function a program calls (`callh` names it by index), resolved by name when the
/// program runs (see [`super::host`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Import {
    /// Constant-pool index of the function's name.
    pub name: u32,
    /// Number of arguments every call passes.
    pub arity: u8,
}

/// A whole program. Function 0 is the entry point.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Program {
    /// The constant pool.
    pub consts: Vec<Const>,
    /// The functions; calls name them by index.
    pub funcs: Vec<Function>,
    /// Host functions the program calls, in `callh` index order.
    pub imports: Vec<Import>,
    /// Constant-pool indices of the names of the host buffers, in lending order.
    pub buffers: Vec<u32>,
}

impl Program {
    /// Index of `k` in the pool, adding it if it is not there yet (floats compare by bits).
    pub fn intern(&mut self, k: Const) -> usize {
        let same = |c: &Const| match (c, &k) {
            (Const::Float(x), Const::Float(y)) => x.to_bits() == y.to_bits(),
            (a, b) => a == b,
        };
        if let Some(i) = self.consts.iter().position(same) {
            return i;
        }
        self.consts.push(k);
        self.consts.len() - 1
    }

    /// The function's name from the pool, or `?` when the index is not a string constant.
    pub fn func_name(&self, f: &Function) -> &str {
        match self.consts.get(f.name as usize) {
            Some(Const::Str(s)) => s,
            _ => "?",
        }
    }

    /// The byte form (see the module doc).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let hosted = !self.imports.is_empty() || !self.buffers.is_empty();
        out.extend_from_slice(if hosted { b"KILN\x02" } else { b"KILN\x01" });
        out.extend_from_slice(&(self.consts.len() as u32).to_le_bytes());
        for k in &self.consts {
            match k {
                Const::Int(i) => {
                    out.push(0);
                    out.extend_from_slice(&i.to_le_bytes());
                }
                Const::Float(x) => {
                    out.push(1);
                    out.extend_from_slice(&x.to_bits().to_le_bytes());
                }
                Const::Str(s) => {
                    out.push(2);
                    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
                    out.extend_from_slice(s.as_bytes());
                }
            }
        }
        out.extend_from_slice(&(self.funcs.len() as u32).to_le_bytes());
        for f in &self.funcs {
            out.extend_from_slice(&f.name.to_le_bytes());
            out.push(f.arity);
            out.extend_from_slice(&f.nregs.to_le_bytes());
            out.extend_from_slice(&(f.code.len() as u32).to_le_bytes());
            for w in f.code.iter().chain(f.lines.iter()) {
                out.extend_from_slice(&w.to_le_bytes());
            }
        }
        if hosted {
            out.extend_from_slice(&(self.imports.len() as u32).to_le_bytes());
            for i in &self.imports {
                out.extend_from_slice(&i.name.to_le_bytes());
                out.push(i.arity);
            }
            out.extend_from_slice(&(self.buffers.len() as u32).to_le_bytes());
            for b in &self.buffers {
                out.extend_from_slice(&b.to_le_bytes());
            }
        }
        out
    }

    /// Parses the byte form. Never panics; the result still has to pass the verifier.
    pub fn from_bytes(bytes: &[u8]) -> Result<Program, LoadError> {
        let mut r = Reader { bytes, pos: 0 };
        let hosted = match r.take(5)? {
            b"KILN\x01" => false,
            b"KILN\x02" => true,
            _ => {
                return Err(LoadError {
                    offset: 0,
                    reason: "bad magic or version (want \"KILN\\x01\" or \"KILN\\x02\")",
                })
            }
        };
        let nconsts = r.count(5)?;
        let mut consts = Vec::with_capacity(nconsts);
        for _ in 0..nconsts {
            let at = r.pos;
            consts.push(match r.u8()? {
                0 => Const::Int(i64::from_le_bytes(r.array()?)),
                1 => Const::Float(f64::from_bits(u64::from_le_bytes(r.array()?))),
                2 => {
                    let n = r.count(1)?;
                    let s = core::str::from_utf8(r.take(n)?).map_err(|_| LoadError {
                        offset: at,
                        reason: "string constant is not UTF-8",
                    })?;
                    Const::Str(s.into())
                }
                _ => {
                    return Err(LoadError {
                        offset: at,
                        reason: "unknown constant tag",
                    })
                }
            });
        }
        let nfuncs = r.count(11)?;
        let mut funcs = Vec::with_capacity(nfuncs);
        for _ in 0..nfuncs {
            let name = r.u32()?;
            let arity = r.u8()?;
            let nregs = u16::from_le_bytes(r.array()?);
            let nwords = r.count(8)?;
            let code = (0..nwords)
                .map(|_| r.u32())
                .collect::<Result<Vec<_>, _>>()?;
            let lines = (0..nwords)
                .map(|_| r.u32())
                .collect::<Result<Vec<_>, _>>()?;
            funcs.push(Function {
                name,
                arity,
                nregs,
                code,
                lines,
            });
        }
        let (mut imports, mut buffers) = (Vec::new(), Vec::new());
        if hosted {
            let n = r.count(5)?;
            for _ in 0..n {
                let name = r.u32()?;
                let arity = r.u8()?;
                imports.push(Import { name, arity });
            }
            let n = r.count(4)?;
            for _ in 0..n {
                buffers.push(r.u32()?);
            }
        }
        if r.pos != bytes.len() {
            return Err(LoadError {
                offset: r.pos,
                reason: "trailing bytes after the last function",
            });
        }
        Ok(Program {
            consts,
            funcs,
            imports,
            buffers,
        })
    }
}

/// Why [`Program::from_bytes`] rejected its input, and at which byte offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    /// Byte offset of the offending field.
    pub offset: usize,
    /// What is wrong there.
    pub reason: &'static str,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "bad program bytes at offset {}: {}",
            self.offset, self.reason
        )
    }
}

impl core::error::Error for LoadError {}

struct Reader<'b> {
    bytes: &'b [u8],
    pos: usize,
}

impl<'b> Reader<'b> {
    fn take(&mut self, n: usize) -> Result<&'b [u8], LoadError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or(LoadError {
            offset: self.pos,
            reason: "truncated",
        })?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], LoadError> {
        let mut a = [0; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, LoadError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, LoadError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    /// A count of items each at least `min_size` bytes long, checked against what remains.
    fn count(&mut self, min_size: usize) -> Result<usize, LoadError> {
        let at = self.pos;
        let n = self.u32()? as usize;
        if n.saturating_mul(min_size) > self.bytes.len() - self.pos {
            return Err(LoadError {
                offset: at,
                reason: "count larger than the remaining input",
            });
        }
        Ok(n)
    }
}
