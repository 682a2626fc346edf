//! The lexer: `.kl` source text to tokens, each with its line and column.
//!
//! Identifiers and string literals are slices of the source (no copies); string escapes
//! (`\n \t \" \\`) are validated here and decoded by the compiler. Comments run from `//` to the
//! end of the line.
use alloc::format;

use super::avec::{new_vec, AVec, Allocator};
use crate::vm::error::SyntaxError;

/// A token's kind and payload.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Tok<'s> {
    /// Integer literal.
    Int(i64),
    /// Float literal (has a `.` or an exponent).
    Float(f64),
    /// String literal: the raw text between the quotes, escapes not yet decoded.
    Str(&'s str),
    /// Identifier.
    Ident(&'s str),
    /// A keyword or punctuation, spelled as in the source.
    Sym(&'static str),
    /// End of input.
    Eof,
}

/// A token and where it starts (1-based line and column).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Token<'s> {
    /// What it is.
    pub tok: Tok<'s>,
    /// Line.
    pub line: u32,
    /// Column.
    pub col: u32,
}

const KEYWORDS: &[&str] = &[
    "fn", "let", "if", "else", "while", "return", "break", "true", "false", "nil",
];
/// Two-character symbols first so `<=` wins over `<`.
const SYMBOLS: &[&str] = &[
    "==", "!=", "<=", ">=", "&&", "||", "(", ")", "{", "}", "[", "]", ",", ";", "+", "-", "*", "/",
    "%", "!", "=", "<", ">",
];

/// Splits `src` into tokens ending with [`Tok::Eof`].
pub fn lex<'s, A: Allocator + Copy>(
    src: &'s str,
    alloc: A,
) -> Result<AVec<Token<'s>, A>, SyntaxError> {
    let mut out = new_vec(alloc);
    let bytes = src.as_bytes();
    let (mut i, mut line, mut line_start) = (0usize, 1u32, 0usize);
    while i < bytes.len() {
        let ch = bytes[i];
        let col = (i - line_start + 1) as u32;
        let err = |msg| SyntaxError {
            line,
            col,
            msg,
            phase: "syntax error",
        };
        if ch == b'\n' {
            line += 1;
            line_start = i + 1;
            i += 1;
            continue;
        }
        if ch.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if src[i..].starts_with("//") {
            i = src[i..].find('\n').map_or(bytes.len(), |n| i + n);
            continue;
        }
        let start = i;
        let tok = if ch.is_ascii_digit() {
            i = scan_number(bytes, i);
            let text = &src[start..i];
            if text.contains(['.', 'e', 'E']) {
                Tok::Float(
                    text.parse()
                        .map_err(|_| err(format!("bad float literal `{text}`")))?,
                )
            } else {
                Tok::Int(text.parse().map_err(|_| {
                    err(format!("integer literal `{text}` does not fit in 64 bits"))
                })?)
            }
        } else if ch.is_ascii_alphabetic() || ch == b'_' {
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            let word = &src[start..i];
            match KEYWORDS.iter().find(|k| **k == word) {
                Some(k) => Tok::Sym(k),
                None => Tok::Ident(word),
            }
        } else if ch == b'"' {
            i = scan_string(bytes, i + 1).map_err(|(at, msg)| SyntaxError {
                line,
                col: (at - line_start + 1) as u32,
                msg: msg.into(),
                phase: "syntax error",
            })?;
            Tok::Str(&src[start + 1..i - 1])
        } else {
            let Some(sym) = SYMBOLS.iter().find(|s| src[i..].starts_with(**s)) else {
                let c = src[i..].chars().next().unwrap_or('?');
                return Err(err(format!("unexpected character `{c}`")));
            };
            i += sym.len();
            Tok::Sym(sym)
        };
        out.push(Token { tok, line, col });
    }
    let col = (bytes.len() - line_start + 1) as u32;
    out.push(Token {
        tok: Tok::Eof,
        line,
        col,
    });
    Ok(out)
}

fn scan_number(bytes: &[u8], mut i: usize) -> usize {
    let digits = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    i = digits(i);
    if i + 1 < bytes.len() && bytes[i] == b'.' && bytes[i + 1].is_ascii_digit() {
        i = digits(i + 1);
    }
    if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
        let mut j = i + 1;
        if j < bytes.len() && (bytes[j] == b'+' || bytes[j] == b'-') {
            j += 1;
        }
        if j < bytes.len() && bytes[j].is_ascii_digit() {
            i = digits(j);
        }
    }
    i
}

/// Index just past the closing quote, or the offset and reason of the problem.
fn scan_string(bytes: &[u8], mut i: usize) -> Result<usize, (usize, &'static str)> {
    let open = i - 1;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => return Ok(i + 1),
            b'\n' => return Err((open, "string literal not closed before the end of the line")),
            b'\\' => match bytes.get(i + 1) {
                Some(b'n' | b't' | b'"' | b'\\') => i += 2,
                _ => return Err((i, "unknown escape (use \\n \\t \\\" \\\\)")),
            },
            _ => i += 1,
        }
    }
    Err((open, "string literal not closed"))
}
