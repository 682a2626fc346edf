//! Values: the dynamically typed contents of VM registers, and the heap objects they reference.
//!
//! A [`Value`] is a 16-byte tagged enum (tag word + payload word). Numbers, booleans and nil are
//! stored inline; strings and arrays are reference-counted heap objects. Every heap object holds
//! a [`Meter`] handle and gives its bytes back to it when it is dropped, so the VM's memory cap
//! counts live bytes. Reference counting cannot reclaim cycles (an array stored inside itself):
//! such an array stays charged to the meter until the meter is gone. Dropping an array nested
//! N levels deep recurses N times on the native stack; the memory cap bounds N (each level costs
//! at least 64 bytes of cap), which a host with a small kernel stack must size accordingly.
use core::cell::Cell;
use core::fmt;
use core::mem::size_of;

use liballoc::boxed::Box;
use liballoc::rc::Rc;
use liballoc::string::String;
use liballoc::vec::Vec;

/// A VM value. `Clone` bumps a reference count for heap values and copies otherwise.
/// `repr(u64)` fixes the layout: tag word at offset 0, payload at offset 8, no padding (see the module doc of
/// [`crate::vm`]).
#[derive(Default)]
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

impl Clone for Value {
    /// Written out rather than derived: the derived `clone` dispatches through a jump table
    /// over all six tags; here the four inline kinds are one 16-byte copy.
    #[inline(always)]
    fn clone(&self) -> Value {
        match self {
            Value::Str(s) => Value::Str(Rc::clone(s)),
            Value::Array(a) => Value::Array(Rc::clone(a)),
            // SAFETY: the remaining variants own nothing (nil, bool, int, float), so a bitwise
            // copy is a complete clone.
            _ => unsafe { core::ptr::read(self) },
        }
    }
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

    /// The meter the string is charged to (the VM's): native code making a string from this
    /// one charges the same meter as the interpreter would.
    pub(crate) fn meter(&self) -> &Meter {
        &self.meter
    }
}

impl Drop for StrObj {
    fn drop(&mut self) {
        self.meter.release(size_of::<StrObj>() + self.text.len());
    }
}

/// A heap array.
///
/// The elements live in a buffer owned through raw parts (pointer, length, capacity) kept in
/// `Cell`s rather than in a `RefCell<Vec<Value>>`: an element access is a bounds check and a
/// load, with no borrow flag to test and update. Soundness rests on one rule, kept by every
/// method here: no reference into the buffer outlives the method that made it, and no method
/// runs code that could reach this array (a user callback, or a `Value` drop) while it holds
/// one. Elements are handed out by clone and taken out by replace; the replaced value is
/// dropped by the caller, after the method returned (dropping it may free other arrays).
///
/// `repr(C)` fixes the field order so native code can read the buffer pointer and length at
/// `ARRAY_PTR_OFFSET` and `ARRAY_LEN_OFFSET`.
#[repr(C)]
pub struct ArrayObj {
    ptr: Cell<*mut Value>,
    len: Cell<usize>,
    cap: Cell<usize>,
    charged: Cell<usize>,
    meter: Meter,
}

/// Byte offset, from the pointer stored in a [`Value::Array`] payload word, of the
/// `*mut Value` pointing at element 0 (dangling when the capacity is 0).
#[allow(dead_code)] // the layout contract for native code; checked by a test
pub(crate) const ARRAY_PTR_OFFSET: usize = RC_VALUE_OFFSET + core::mem::offset_of!(ArrayObj, ptr);
/// Byte offset, from the pointer stored in a [`Value::Array`] payload word, of the element
/// count (`usize`). Elements are [`Value`]s, 16 bytes apart. There is no borrow or lock word.
#[allow(dead_code)] // the layout contract for native code; checked by a test
pub(crate) const ARRAY_LEN_OFFSET: usize = RC_VALUE_OFFSET + core::mem::offset_of!(ArrayObj, len);
/// Where an `Rc`'s value sits behind the pointer an `Rc` holds (after the strong and weak
/// counts); checked against the real layout by a test.
#[allow(dead_code)]
const RC_VALUE_OFFSET: usize = 2 * size_of::<usize>();

impl ArrayObj {
    fn from_vec(items: Vec<Value>, charged: usize, meter: Meter) -> ArrayObj {
        let mut items = core::mem::ManuallyDrop::new(items);
        ArrayObj {
            ptr: Cell::new(items.as_mut_ptr()),
            len: Cell::new(items.len()),
            cap: Cell::new(items.capacity()),
            charged: Cell::new(charged),
            meter,
        }
    }

    /// Number of elements.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.len.get()
    }

    /// True when the array has no elements.
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.len.get() == 0
    }

    /// A clone of element `i`, or `None` past the end.
    #[inline(always)]
    pub fn get(&self, i: usize) -> Option<Value> {
        if i >= self.len.get() {
            return None;
        }
        // SAFETY: `i < len`, and elements `0..len` of the buffer are initialised; the
        // reference ends within this expression, and cloning runs no code that could touch
        // this array.
        Some(unsafe { (*self.ptr.get().add(i)).clone() })
    }

    /// Stores `v` at `i` and returns the value it replaced (for the caller to drop), or gives
    /// `v` back when `i` is past the end.
    #[inline(always)]
    pub fn replace(&self, i: usize, v: Value) -> Result<Value, Value> {
        if i >= self.len.get() {
            return Err(v);
        }
        // SAFETY: `i < len`, so the slot is initialised and inside the buffer; `replace`
        // moves the old value out without dropping it.
        Ok(unsafe { core::ptr::replace(self.ptr.get().add(i), v) })
    }

    /// Stores `v` at `i` when neither `v` nor the element there owns anything (nil, bool,
    /// int, float): a plain 16-byte copy, no reference counts, nothing to drop. Returns false
    /// (and changes nothing) otherwise, or when `i` is past the end.
    #[inline(always)]
    pub fn set_inline(&self, i: usize, v: &Value) -> bool {
        if i >= self.len.get() || v.tag() >= TAG_STR {
            return false;
        }
        // SAFETY: `i < len`, so the slot is initialised and inside the buffer.
        let slot = unsafe { &mut *self.ptr.get().add(i) };
        if slot.tag() >= TAG_STR {
            return false;
        }
        // SAFETY: both values own nothing, so overwriting one with a bitwise copy of the other
        // leaks nothing and duplicates no ownership.
        unsafe { core::ptr::copy_nonoverlapping(v, slot, 1) };
        true
    }

    /// Clones of all elements, in order.
    pub fn to_vec(&self) -> Result<Vec<Value>, OverCap> {
        let n = self.len.get();
        let mut out = Vec::new();
        out.try_reserve_exact(n).map_err(|_| OverCap)?;
        // `get` re-reads the length each time, so this stays in bounds whatever the clones do.
        out.extend((0..n).map_while(|i| self.get(i)));
        Ok(out)
    }

    /// Appends `v`, charging the meter for any growth of the backing store.
    pub fn push(&self, v: Value) -> Result<(), OverCap> {
        let (len, cap) = (self.len.get(), self.cap.get());
        if len == cap {
            let grow = cap.max(4);
            self.meter.charge(grow * size_of::<Value>())?;
            // SAFETY: the parts came from a `Vec<Value>` (`from_vec`, or this function) and
            // are handed back to exactly one `Vec` here, which is decomposed again below
            // before anything else can see the array; `try_reserve_exact` cannot panic.
            let mut items = core::mem::ManuallyDrop::new(unsafe {
                Vec::from_raw_parts(self.ptr.get(), len, cap)
            });
            let grown = items.try_reserve_exact(grow);
            self.ptr.set(items.as_mut_ptr());
            self.cap.set(items.capacity());
            if grown.is_err() {
                self.meter.release(grow * size_of::<Value>());
                return Err(OverCap);
            }
            self.charged
                .set(self.charged.get() + grow * size_of::<Value>());
        }
        // SAFETY: `len < cap`, so slot `len` is inside the buffer and uninitialised.
        unsafe { self.ptr.get().add(len).write(v) };
        self.len.set(len + 1);
        Ok(())
    }
}

impl Drop for ArrayObj {
    fn drop(&mut self) {
        self.meter.release(self.charged.get());
        // SAFETY: the parts came from a `Vec<Value>` and nothing else owns them; `&mut self`
        // means no method is running on this array.
        drop(unsafe { Vec::from_raw_parts(self.ptr.get(), self.len.get(), self.cap.get()) });
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

    /// [`Value::new_str`] taking the text's buffer over instead of copying it (no copy and
    /// no second allocation when `text` has no spare capacity); charged the same.
    pub fn str_from_string(meter: &Meter, text: String) -> Result<Value, OverCap> {
        meter.charge(size_of::<StrObj>() + text.len())?;
        let obj = StrObj {
            text: text.into_boxed_str(),
            meter: meter.clone(),
        };
        Ok(Value::Str(Rc::new(obj)))
    }

    /// A new heap array holding `items`, charged to `meter`.
    pub fn new_array(meter: &Meter, items: Vec<Value>) -> Result<Value, OverCap> {
        let bytes = size_of::<ArrayObj>() + items.capacity() * size_of::<Value>();
        meter.charge(bytes)?;
        Ok(Value::Array(Rc::new(ArrayObj::from_vec(
            items,
            bytes,
            meter.clone(),
        ))))
    }

    /// The tag word (`TAG_*`); the heap kinds are the ones at or above [`TAG_STR`].
    #[inline(always)]
    pub fn tag(&self) -> u64 {
        // SAFETY: `Value` is `repr(u64)`, so its first 8 bytes are the tag word.
        unsafe { *(self as *const Value as *const u64) }
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
                f.write_str("[")?;
                // One element at a time, by clone: the writer may run host code.
                let mut i = 0;
                while let Some(v) = a.get(i) {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    v.write_nested(f, depth + 1)?;
                    i += 1;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads the word at `base + off` the way native code does.
    fn word_at(base: usize, off: usize) -> usize {
        // SAFETY: the callers pass a live array's payload pointer and an offset inside it.
        unsafe { *((base + off) as *const usize) }
    }

    #[test]
    fn array_offsets_match_the_layout() {
        let meter = MeterCell::new(usize::MAX);
        let v = Value::new_array(&meter, Vec::from([Value::Int(7), Value::Float(2.5)])).unwrap();
        let Value::Array(rc) = &v else { panic!() };
        // SAFETY: `Value` is `repr(u64)`: the payload word sits at `PAYLOAD_OFFSET`.
        let payload = unsafe { *((&v as *const Value as usize + PAYLOAD_OFFSET) as *const usize) };
        assert_eq!(payload + RC_VALUE_OFFSET, Rc::as_ptr(rc) as usize);
        assert_eq!(word_at(payload, ARRAY_LEN_OFFSET), 2);
        rc.push(Value::Int(9)).unwrap();
        rc.push(Value::Int(10)).unwrap();
        rc.push(Value::Int(11)).unwrap();
        assert_eq!(word_at(payload, ARRAY_LEN_OFFSET), 5);
        let elems = word_at(payload, ARRAY_PTR_OFFSET) as *const Value;
        // SAFETY: five initialised elements, the array is alive and not being changed.
        let (e0, e4) = unsafe { (&*elems, &*elems.add(4)) };
        assert!(matches!(e0, Value::Int(7)));
        assert!(matches!(e4, Value::Int(11)));
    }

    #[test]
    fn array_get_replace_push_and_meter() {
        let meter = MeterCell::new(usize::MAX);
        let v = Value::new_array(&meter, Vec::new()).unwrap();
        let Value::Array(a) = &v else { panic!() };
        let inner = Value::new_array(&meter, Vec::from([Value::Int(1)])).unwrap();
        for i in 0..100 {
            a.push(if i % 2 == 0 {
                inner.clone()
            } else {
                Value::Int(i)
            })
            .unwrap();
        }
        assert_eq!(a.len(), 100);
        assert!(a.get(100).is_none());
        assert!(matches!(a.get(3), Some(Value::Int(3))));
        assert!(a.replace(100, Value::Nil).is_err());
        let old = a.replace(0, Value::Int(-1)).unwrap();
        assert!(old.equals(&inner));
        drop(old);
        assert!(matches!(a.get(0), Some(Value::Int(-1))));
        assert_eq!(a.to_vec().unwrap().len(), 100);
        drop(inner);
        assert!(meter.used() > 0);
        drop(v);
        assert_eq!(meter.used(), 0);
    }
}
