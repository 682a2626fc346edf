//! The semantics of arithmetic, comparison and indexing on [`Value`]s.
//!
//! Each operation has an inline fast path for the common types (int with int, float with float)
//! and a `#[cold]` slow path for mixed numbers (promoted to float), string concatenation and the
//! errors. Ints wrap on overflow; int `/` truncates toward zero and `%` (int and float) takes the dividend's sign;
//! int division or remainder by zero is an error, float division follows IEEE 754.

use super::error::RuntimeErrorKind as E;
use super::value::{Meter, StrObj, Value};

macro_rules! fast_arith {
    ($name:ident, $int:expr, $float:expr, $verb:literal) => {
        /// The language operator; see the module doc.
        #[inline(always)]
        pub fn $name(x: &Value, y: &Value, meter: &Meter) -> Result<Value, E> {
            match (x, y) {
                (Value::Int(a), Value::Int(b)) => $int(*a, *b),
                (Value::Float(a), Value::Float(b)) => Ok(Value::Float($float(*a, *b))),
                _ => slow(x, y, meter, $verb, $int, $float),
            }
        }
    };
}

fast_arith!(
    add,
    |a: i64, b: i64| Ok(Value::Int(a.wrapping_add(b))),
    |a: f64, b: f64| a + b,
    "add"
);
fast_arith!(
    sub,
    |a: i64, b: i64| Ok(Value::Int(a.wrapping_sub(b))),
    |a: f64, b: f64| a - b,
    "subtract"
);
fast_arith!(
    mul,
    |a: i64, b: i64| Ok(Value::Int(a.wrapping_mul(b))),
    |a: f64, b: f64| a * b,
    "multiply"
);
fast_arith!(div, int_div, |a: f64, b: f64| a / b, "divide");
fast_arith!(
    rem,
    int_rem,
    |a: f64, b: f64| a % b,
    "take the remainder of"
);

#[inline(always)]
fn int_div(a: i64, b: i64) -> Result<Value, E> {
    if b == 0 {
        return Err(E::DivisionByZero);
    }
    Ok(Value::Int(a.wrapping_div(b)))
}

#[inline(always)]
fn int_rem(a: i64, b: i64) -> Result<Value, E> {
    if b == 0 {
        return Err(E::DivisionByZero);
    }
    Ok(Value::Int(a.wrapping_rem(b)))
}

/// Int `/` and `%` by a divisor known per instruction (a constant operand): a positive power
/// of two shifts and masks instead of dividing (an `idiv` costs tens of cycles of latency).
/// The results are exactly `wrapping_div` and `wrapping_rem`. Methods, so the interpreter's
/// `arith!` takes them where it takes `i64::wrapping_div`.
pub trait DivByConst {
    /// `self.wrapping_div(k)`; `k` must not be 0.
    fn div_k(self, k: i64) -> i64;
    /// `self.wrapping_rem(k)`; `k` must not be 0.
    fn rem_k(self, k: i64) -> i64;
}

impl DivByConst for i64 {
    #[inline(always)]
    fn div_k(self, k: i64) -> i64 {
        if k > 0 && k & (k - 1) == 0 {
            // Truncation toward zero: a negative dividend is biased by `k - 1` before the
            // arithmetic shift (which rounds down). No overflow: the bias is 0 for `x >= 0`
            // and below 2^62 for `x < 0`.
            self.wrapping_add((self >> 63) & (k - 1)) >> k.trailing_zeros()
        } else {
            self.wrapping_div(k)
        }
    }

    #[inline(always)]
    fn rem_k(self, k: i64) -> i64 {
        if k > 0 && k & (k - 1) == 0 {
            // The remainder keeps the dividend's sign: `x - trunc(x / k) * k`.
            let bias = (self >> 63) & (k - 1);
            (self.wrapping_add(bias) & (k - 1)) - bias
        } else {
            self.wrapping_rem(k)
        }
    }
}

/// Language equality ([`Value::equals`]) out of line, for the pairs the interpreter does not
/// compare inline.
#[inline(never)]
pub fn equal(x: &Value, y: &Value) -> bool {
    x.equals(y)
}

/// `op` on an int and a float (either order) promoted to float; `None` for any other pair.
/// Out of line but not cold: mixed arithmetic is common (`1.0 / n`).
#[inline(never)]
pub fn mixed(x: &Value, y: &Value, op: impl Fn(f64, f64) -> f64) -> Option<f64> {
    match (x, y) {
        (Value::Int(a), Value::Float(b)) => Some(op(*a as f64, *b)),
        (Value::Float(a), Value::Int(b)) => Some(op(*a, *b as f64)),
        _ => None,
    }
}

#[cold]
#[inline(never)]
fn slow(
    x: &Value,
    y: &Value,
    meter: &Meter,
    verb: &'static str,
    int: impl Fn(i64, i64) -> Result<Value, E>,
    float: impl Fn(f64, f64) -> f64,
) -> Result<Value, E> {
    match (x, y) {
        (Value::Int(a), Value::Int(b)) => int(*a, *b),
        (Value::Float(a), Value::Float(b)) => Ok(Value::Float(float(*a, *b))),
        (Value::Int(a), Value::Float(b)) => Ok(Value::Float(float(*a as f64, *b))),
        (Value::Float(a), Value::Int(b)) => Ok(Value::Float(float(*a, *b as f64))),
        (Value::Str(a), Value::Str(b)) if verb == "add" => {
            Value::concat(meter, a.as_str(), b.as_str()).map_err(|_| E::OutOfMemory)
        }
        _ => Err(E::Type {
            op: verb,
            lhs: x.type_name(),
            rhs: y.type_name(),
        }),
    }
}

/// Unary minus.
#[inline(always)]
pub fn neg(x: &Value) -> Result<Value, E> {
    match x {
        Value::Int(a) => Ok(Value::Int(a.wrapping_neg())),
        Value::Float(a) => Ok(Value::Float(-a)),
        _ => Err(E::Type {
            op: "negate",
            lhs: x.type_name(),
            rhs: "",
        }),
    }
}

/// `x < y` for numbers (mixed compare as floats) and strings (byte-wise).
#[inline(always)]
pub fn lt(x: &Value, y: &Value) -> Result<bool, E> {
    match (x, y) {
        (Value::Int(a), Value::Int(b)) => Ok(a < b),
        (Value::Float(a), Value::Float(b)) => Ok(a < b),
        _ => compare_slow(x, y).map(|o| o == Some(core::cmp::Ordering::Less)),
    }
}

/// `x <= y`; NaN compares false.
#[inline(always)]
pub fn le(x: &Value, y: &Value) -> Result<bool, E> {
    match (x, y) {
        (Value::Int(a), Value::Int(b)) => Ok(a <= b),
        (Value::Float(a), Value::Float(b)) => Ok(a <= b),
        _ => compare_slow(x, y).map(|o| {
            matches!(
                o,
                Some(core::cmp::Ordering::Less | core::cmp::Ordering::Equal)
            )
        }),
    }
}

#[cold]
#[inline(never)]
fn compare_slow(x: &Value, y: &Value) -> Result<Option<core::cmp::Ordering>, E> {
    match (x, y) {
        (Value::Int(a), Value::Int(b)) => Ok(Some(a.cmp(b))),
        (Value::Float(a), Value::Float(b)) => Ok(a.partial_cmp(b)),
        (Value::Int(a), Value::Float(b)) => Ok((*a as f64).partial_cmp(b)),
        (Value::Float(a), Value::Int(b)) => Ok(a.partial_cmp(&(*b as f64))),
        (Value::Str(a), Value::Str(b)) => Ok(Some(StrObj::cmp_text(a, b))),
        _ => Err(E::Type {
            op: "compare",
            lhs: x.type_name(),
            rhs: y.type_name(),
        }),
    }
}

#[cold]
#[inline(never)]
fn out_of_range(i: i64, len: usize) -> E {
    E::IndexOutOfRange { index: i, len }
}

/// An index as `usize`, saturating: a negative index or one past `usize` (32-bit targets)
/// becomes `usize::MAX`, which no array length reaches. A no-op on 64-bit targets.
#[inline(always)]
pub(super) fn index_of(i: i64) -> usize {
    (i as u64).min(usize::MAX as u64) as usize
}

/// `x[i]` for arrays.
#[cold]
#[inline(never)]
pub fn get_index(x: &Value, i: &Value) -> Result<Value, E> {
    match (x, i) {
        (Value::Array(arr), Value::Int(i)) => {
            // A negative index becomes huge as `usize` and fails the length check.
            arr.get(index_of(*i))
                .ok_or_else(|| out_of_range(*i, arr.len()))
        }
        _ => Err(index_type(x, i)),
    }
}

/// `x[i] = v` for arrays.
#[cold]
#[inline(never)]
pub fn set_index(x: &Value, i: &Value, v: Value) -> Result<(), E> {
    match (x, i) {
        (Value::Array(arr), Value::Int(i)) => match arr.replace(index_of(*i), v) {
            // Dropped after `replace` returned: freeing `old` may free other arrays.
            Ok(old) => {
                drop(old);
                Ok(())
            }
            Err(_) => Err(out_of_range(*i, arr.len())),
        },
        _ => Err(index_type(x, i)),
    }
}

#[cold]
#[inline(never)]
fn index_type(x: &Value, i: &Value) -> E {
    E::Type {
        op: "index",
        lhs: x.type_name(),
        rhs: i.type_name(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dividends around every power of two and its negation, the extremes, and small values.
    fn dividends() -> impl Iterator<Item = i64> {
        let edges = (0..64).flat_map(|s| {
            let p = 1i64.wrapping_shl(s);
            let n = p.wrapping_neg();
            [
                p,
                p.wrapping_sub(1),
                p.wrapping_add(1),
                n,
                n.wrapping_add(1),
                n.wrapping_sub(1),
            ]
        });
        edges.chain([
            0,
            1,
            -1,
            2,
            -2,
            3,
            -3,
            7,
            -7,
            i64::MIN,
            i64::MIN + 1,
            i64::MAX,
        ])
    }

    #[test]
    fn division_by_a_constant_matches_wrapping_div_and_rem() {
        let mut divisors: alloc::vec::Vec<i64> = (0..63).map(|s| 1i64 << s).collect();
        divisors.extend([3, 6, 7, 12, -1, -2, -4, -3, i64::MIN, i64::MAX, 1 << 62 | 1]);
        for k in divisors {
            for x in dividends() {
                assert_eq!(x.div_k(k), x.wrapping_div(k), "{x} / {k}");
                assert_eq!(x.rem_k(k), x.wrapping_rem(k), "{x} % {k}");
            }
        }
    }
}
