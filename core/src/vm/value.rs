//! Values: the dynamically typed contents of VM registers, and the heap objects they reference.
//!
//! A [`Value`] is a 16-byte tagged enum (tag word + payload word). Numbers, booleans and nil are
//! stored inline; strings and arrays are reference-counted heap objects. Every heap object holds
//! a [`Meter`] handle and gives its bytes back to it when it is dropped, so the VM's memory cap
//! counts live bytes. Reference counting cannot reclaim cycles (an array stored inside itself):
//! such an array stays charged to the meter until the meter is gone. Dropping an array nested
//! N levels deep recurses N times on the native stack; the memory cap bounds N (each level costs
//! at least 64 bytes of cap), which a host with a small kernel stack must size accordingly.
use core::cell::{Cell, RefCell};
use core::fmt;
use core::mem::size_of;

use liballoc::boxed::Box;
use liballoc::rc::Rc;
use liballoc::vec::Vec;

/// A VM value. `Clone` bumps a reference count for heap values and copies otherwise.
/// `repr(u64)` fixes the layout: tag word at offset 0, payload at offset 8, no padding (see the module doc of
/// [`crate::vm`]).
#[derive(Clone, Default)]
#[repr(u64)]
pub enum Value {
    /// The absence of a value; fresh registers hold it.
    #[default]
    Nil = TAG_NIL,
    /// `true` / `false`.
    Bool(bool) = TAG_BOOL,
    /// A 64-bit integer; arithmetic wraps.
    Int(i64) = TAG_INT,
    /// A 64-bit float.
    Float(f64) = TAG_FLOAT,
    /// An immutable string.
    Str(Rc<StrObj>) = TAG_STR,
    /// A mutable, growable array shared by reference.
    Array(Rc<ArrayObj>) = TAG_ARRAY,
}

/// Tag word of [`Value::Nil`].
pub const TAG_NIL: u64 = 0;
/// Tag word of [`Value::Bool`].
pub const TAG_BOOL: u64 = 1;
/// Tag word of [`Value::Int`].
pub const TAG_INT: u64 = 2;
/// Tag word of [`Value::Float`].
pub const TAG_FLOAT: u64 = 3;
/// Tag word of [`Value::Str`].
pub const TAG_STR: u64 = 4;
/// Tag word of [`Value::Array`].
pub const TAG_ARRAY: u64 = 5;
/// Offset of the payload within a [`Value`].
pub const PAYLOAD_OFFSET: usize = 8;

const _: () = assert!(size_of::<Value>() == 16);

/// Live-byte accounting shared by one VM and every heap object it created.
pub type Meter = Rc<MeterCell>;

/// The counter behind a [`Meter`].
#[derive(Debug)]
pub struct MeterCell {
    used: Cell<usize>,
    cap: usize,
}

/// A heap allocation would exceed the VM's memory cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverCap;

impl MeterCell {
    /// A meter allowing `cap` live bytes (`usize::MAX` for no limit).
    pub fn new(cap: usize) -> Meter {
        Rc::new(MeterCell {
            used: Cell::new(0),
            cap,
        })
    }
    /// Live bytes charged now.
    pub fn used(&self) -> usize {
        self.used.get()
    }
    /// Reserves `bytes`, or fails without changing anything if that would pass the cap.
    pub fn charge(&self, bytes: usize) -> Result<(), OverCap> {
        let now = self.used.get().saturating_add(bytes);
        if now > self.cap {
            return Err(OverCap);
        }
        self.used.set(now);
        Ok(())
    }
    /// True when `bytes` more would still be within the cap.
    pub fn fits(&self, bytes: usize) -> bool {
        self.used.get().saturating_add(bytes) <= self.cap
    }
    fn release(&self, bytes: usize) {
        self.used.set(self.used.get().saturating_sub(bytes));
    }
}

/// A heap string.
pub struct StrObj {
    text: Box<str>,
    meter: Meter,
}

impl StrObj {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl Drop for StrObj {
    fn drop(&mut self) {
        self.meter.release(size_of::<StrObj>() + self.text.len());
    }
}

/// A heap array.
pub struct ArrayObj {
    /// The elements. Borrowed only for the duration of one instruction or builtin.
    pub items: RefCell<Vec<Value>>,
    charged: Cell<usize>,
    meter: Meter,
}

impl ArrayObj {
    /// Appends `v`, charging the meter for any growth of the backing store.
    pub fn push(&self, v: Value) -> Result<(), OverCap> {
        let mut items = self.items.try_borrow_mut().map_err(|_| OverCap)?;
        if items.len() == items.capacity() {
            let grow = items.capacity().max(4);
            self.meter.charge(grow * size_of::<Value>())?;
            if items.try_reserve_exact(grow).is_err() {
                self.meter.release(grow * size_of::<Value>());
                return Err(OverCap);
            }
            self.charged
                .set(self.charged.get() + grow * size_of::<Value>());
        }
        items.push(v);
        Ok(())
    }
}

impl Drop for ArrayObj {
    fn drop(&mut self) {
        self.meter.release(self.charged.get());
    }
}

impl Value {
    /// A new heap string charged to `meter`.
    pub fn new_str(meter: &Meter, text: &str) -> Result<Value, OverCap> {
        meter.charge(size_of::<StrObj>() + text.len())?;
        let obj = StrObj {
            text: text.into(),
            meter: meter.clone(),
        };
        Ok(Value::Str(Rc::new(obj)))
    }

    /// A new heap array holding `items`, charged to `meter`.
    pub fn new_array(meter: &Meter, items: Vec<Value>) -> Result<Value, OverCap> {
        let bytes = size_of::<ArrayObj>() + items.capacity() * size_of::<Value>();
        meter.charge(bytes)?;
        let obj = ArrayObj {
            items: RefCell::new(items),
            charged: Cell::new(bytes),
            meter: meter.clone(),
        };
        Ok(Value::Array(Rc::new(obj)))
    }

    /// `nil` and `false` are false; everything else (including 0) is true.
    #[inline]
    pub fn truthy(&self) -> bool {
        !matches!(self, Value::Nil | Value::Bool(false))
    }

    /// The type's name as the language spells it, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::Array(_) => "array",
        }
    }

    /// Language equality: numbers by value (int 1 == float 1.0), strings by content, arrays by
    /// identity, different types are unequal.
    pub fn equals(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Nil, Value::Nil) => true,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => a == b,
            (Value::Int(a), Value::Float(b)) | (Value::Float(b), Value::Int(a)) => {
                (*a as f64) == *b
            }
            (Value::Str(a), Value::Str(b)) => a.text == b.text,
            (Value::Array(a), Value::Array(b)) => Rc::ptr_eq(a, b),
            _ => false,
        }
    }

    fn write_nested(&self, f: &mut fmt::Formatter<'_>, depth: u32) -> fmt::Result {
        match self {
            Value::Nil => f.write_str("nil"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Str(s) => f.write_str(&s.text),
            // A cycle (an array inside itself) must not recurse forever.
            Value::Array(_) if depth > 16 => f.write_str("[...]"),
            Value::Array(a) => {
                let Ok(items) = a.items.try_borrow() else {
                    return f.write_str("[...]");
                };
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    v.write_nested(f, depth + 1)?;
                }
                f.write_str("]")
            }
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_nested(f, 0)
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => write!(f, "{:?}", s.as_str()),
            v => write!(f, "{v}"),
        }
    }
}
