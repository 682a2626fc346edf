//! Builtin functions (`print`, `len`, `args`, ...), called by the `callb` instruction.
use core::fmt::Write;

use alloc::string::String;
use alloc::vec::Vec;

use super::error::RuntimeErrorKind as E;
use super::value::{Meter, Value};

macro_rules! builtins {
    ($($(#[doc = $doc:literal])* $name:ident = $text:literal, $arity:expr;)*) => {
        /// A builtin function. `arity() == None` means any number of arguments.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Builtin { $($(#[doc = $doc])* $name,)* }
        const ALL: &[Builtin] = &[$(Builtin::$name,)*];
        impl Builtin {
            /// The name the language uses.
            pub fn name(self) -> &'static str {
                match self { $(Builtin::$name => $text,)* }
            }
            /// The number of arguments, or `None` for variadic builtins.
            pub fn arity(self) -> Option<usize> {
                match self { $(Builtin::$name => $arity,)* }
            }
        }
    };
}

builtins! {
    /// `print(v, ...)`: writes the values separated by spaces and a newline; returns `nil`.
    Print = "print", None;
    /// `len(x)`: the length of a string (in bytes) or an array.
    Len = "len", Some(1);
    /// `args()`: a new array of the program's arguments.
    Args = "args", Some(0);
    /// `int(x)`: an int from an int, float (truncated, saturating), bool or decimal string.
    Int = "int", Some(1);
    /// `float(x)`: a float from an int, float or numeric string.
    Float = "float", Some(1);
    /// `str(x)`: the value as `print` would write it, as a new string.
    Str = "str", Some(1);
    /// `push(a, v)`: appends `v` to array `a`; returns `nil`.
    Push = "push", Some(2);
    /// `array(n, v)`: a new array of `n` copies of `v`.
    Array = "array", Some(2);
    /// `sqrt(x)`: the correctly rounded square root of an int or float, as a float.
    Sqrt = "sqrt", Some(1);
}

impl Builtin {
    /// The builtin with this index (the `B` operand of `callb`).
    pub fn from_index(i: usize) -> Option<Builtin> {
        ALL.get(i).copied()
    }
    /// The builtin with this name.
    pub fn from_name(name: &str) -> Option<Builtin> {
        ALL.iter().copied().find(|b| b.name() == name)
    }
}

/// What a builtin may touch besides its arguments.
pub struct Env<'e> {
    /// Where `print` writes.
    pub out: &'e mut dyn Write,
    /// The heap meter new strings and arrays are charged to.
    pub meter: &'e Meter,
    /// The script's command-line arguments.
    pub args: &'e [Value],
}

/// Runs builtin `b` on `args` (the verifier checked the count).
#[cold]
#[inline(never)]
pub fn call(b: Builtin, args: &[Value], env: &mut Env<'_>) -> Result<Value, E> {
    let oom = |_| E::OutOfMemory;
    let arg = |i: usize| args.get(i).unwrap_or(&Value::Nil);
    Ok(match b {
        Builtin::Print => {
            for (i, v) in args.iter().enumerate() {
                let sep = if i > 0 { " " } else { "" };
                write!(env.out, "{sep}{v}").map_err(|_| E::Output)?;
            }
            env.out.write_char('\n').map_err(|_| E::Output)?;
            Value::Nil
        }
        Builtin::Len => match arg(0) {
            Value::Str(s) => Value::Int(s.as_str().len() as i64),
            Value::Array(a) => Value::Int(a.len() as i64),
            v => {
                return Err(E::Type {
                    op: "take len of",
                    lhs: v.type_name(),
                    rhs: "",
                })
            }
        },
        Builtin::Args => Value::new_array(env.meter, env.args.to_vec()).map_err(oom)?,
        Builtin::Int => match arg(0) {
            Value::Int(i) => Value::Int(*i),
            // `as` saturates and maps NaN to 0: never undefined.
            Value::Float(x) => Value::Int(*x as i64),
            Value::Bool(b) => Value::Int(*b as i64),
            Value::Str(s) => match s.as_str().trim().parse::<i64>() {
                Ok(i) => Value::Int(i),
                Err(_) => return Err(E::BadArgument("int() of a string that is not an integer")),
            },
            v => {
                return Err(E::Type {
                    op: "convert to int",
                    lhs: v.type_name(),
                    rhs: "",
                })
            }
        },
        Builtin::Float => match arg(0) {
            Value::Int(i) => Value::Float(*i as f64),
            Value::Float(x) => Value::Float(*x),
            Value::Str(s) => match s.as_str().trim().parse::<f64>() {
                Ok(x) => Value::Float(x),
                Err(_) => return Err(E::BadArgument("float() of a string that is not a number")),
            },
            v => {
                return Err(E::Type {
                    op: "convert to float",
                    lhs: v.type_name(),
                    rhs: "",
                })
            }
        },
        Builtin::Str => {
            let mut s = String::new();
            let _ = write!(s, "{}", arg(0));
            Value::str_from_string(env.meter, s).map_err(oom)?
        }
        Builtin::Push => match arg(0) {
            Value::Array(a) => {
                a.push(arg(1).clone()).map_err(oom)?;
                Value::Nil
            }
            v => {
                return Err(E::Type {
                    op: "push to",
                    lhs: v.type_name(),
                    rhs: "",
                })
            }
        },
        Builtin::Array => match arg(0) {
            Value::Int(n) if *n >= 0 => {
                let n = *n as usize;
                // Charge before allocating so a huge `n` fails cleanly instead of aborting.
                let bytes = n.saturating_mul(core::mem::size_of::<Value>());
                if !env.meter.fits(bytes) {
                    return Err(E::OutOfMemory);
                }
                let mut items = Vec::new();
                items.try_reserve_exact(n).map_err(|_| E::OutOfMemory)?;
                items.resize(n, arg(1).clone());
                Value::new_array(env.meter, items).map_err(oom)?
            }
            Value::Int(_) => return Err(E::BadArgument("array() length is negative")),
            v => {
                return Err(E::Type {
                    op: "make an array of length",
                    lhs: v.type_name(),
                    rhs: "",
                })
            }
        },
        Builtin::Sqrt => match arg(0) {
            Value::Int(i) => Value::Float(sqrt(*i as f64)),
            Value::Float(x) => Value::Float(sqrt(*x)),
            v => {
                return Err(E::Type {
                    op: "take sqrt of",
                    lhs: v.type_name(),
                    rhs: "",
                })
            }
        },
    })
}

/// The correctly rounded square root (IEEE 754 `sqrt`, as C's `sqrt` and Lua's `math.sqrt`
/// give), from the FPU instruction: `core` has no `f64::sqrt`. Targets without SSE2 or NEON
/// fall back to `newton_sqrt`, which may differ in the last bit.
#[inline]
pub fn sqrt(x: f64) -> f64 {
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        use core::arch::x86_64::{_mm_cvtsd_f64, _mm_set_sd, _mm_sqrt_pd};
        // SAFETY: the `cfg` guarantees SSE2, which these intrinsics need.
        return unsafe { _mm_cvtsd_f64(_mm_sqrt_pd(_mm_set_sd(x))) };
    }
    #[cfg(all(target_arch = "aarch64", target_feature = "neon"))]
    {
        use core::arch::aarch64::{vdup_n_f64, vget_lane_f64, vsqrt_f64};
        // SAFETY: the `cfg` guarantees NEON, which these intrinsics need.
        return unsafe { vget_lane_f64::<0>(vsqrt_f64(vdup_n_f64(x))) };
    }
    #[allow(unreachable_code)]
    newton_sqrt(x)
}

/// Square root by Newton's method seeded from the halved exponent; six steps converge to
/// within an ulp for every finite positive input.
#[allow(dead_code)] // used on targets without an FPU square root
fn newton_sqrt(x: f64) -> f64 {
    if x.is_nan() || x < 0.0 {
        return f64::NAN;
    }
    if x == 0.0 || x.is_infinite() {
        return x;
    }
    let mut y = f64::from_bits((x.to_bits() >> 1) + (1023u64 << 51));
    for _ in 0..6 {
        y = 0.5 * (y + x / y);
    }
    y
}
