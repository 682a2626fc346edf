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

use alloc::boxed::Box;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;

pub(crate) mod intern;

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
///
/// It also owns the VM's short-string table (`vm/value/intern.rs`): every string object holds a
/// meter, so every place that makes a string reaches the table through it.
pub struct MeterCell {
    used: Cell<usize>,
    cap: usize,
    strings: RefCell<intern::Table>,
}

impl fmt::Debug for MeterCell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeterCell")
            .field("used", &self.used.get())
            .field("cap", &self.cap)
            .finish_non_exhaustive()
    }
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
            strings: RefCell::new(intern::Table::default()),
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
///
/// Strings of at most 40 bytes (`intern::INTERN_MAX`) are normally entered in the VM's
/// short-string table (`interned`), so two entered strings of one VM are equal exactly when
/// they are the same object; a string is left out only when the table could not grow.
pub struct StrObj {
    text: Text,
    meter: Meter,
    hash: u32,
    interned: bool,
}

impl StrObj {
    /// The text.
    #[inline(always)]
    pub fn as_str(&self) -> &str {
        self.text.as_str()
    }

    /// The meter the string is charged to (the VM's): native code making a string from this
    /// one charges the same meter as the interpreter would.
    #[cfg_attr(not(feature = "jit"), allow(dead_code))]
    pub(crate) fn meter(&self) -> &Meter {
        &self.meter
    }

    /// The hash of the text ([`intern::hash`]).
    #[inline(always)]
    pub(crate) fn hash(&self) -> u32 {
        self.hash
    }

    /// Bytes charged for a string of `len` bytes: the object, the text when it does not fit
    /// inside, and (`interned`) the table share.
    fn charge_for(len: usize, interned: bool) -> usize {
        let outside = if len > INLINE_TEXT { len } else { 0 };
        size_of::<StrObj>() + outside + if interned { intern::ENTRY_BYTES } else { 0 }
    }

    /// String equality: the same object, or different hashes (unequal), or else the same
    /// bytes. Two equal short strings of one VM are one object, so the byte compare runs only
    /// for long strings, hash collisions, and strings of different VMs (which a host may mix
    /// through `Vm::slot_mut`; their tables are separate).
    #[inline(always)]
    pub fn same_text(a: &Rc<StrObj>, b: &Rc<StrObj>) -> bool {
        if Rc::ptr_eq(a, b) {
            return true;
        }
        a.hash == b.hash && a.as_str() == b.as_str()
    }

    /// Byte-wise order of two strings; the same object (common once equal short strings are
    /// one object) is equal without reading the bytes.
    #[inline(always)]
    pub fn cmp_text(a: &Rc<StrObj>, b: &Rc<StrObj>) -> core::cmp::Ordering {
        if Rc::ptr_eq(a, b) {
            return core::cmp::Ordering::Equal;
        }
        a.text.cmp(&b.text)
    }
}

/// Texts up to this many bytes live inside the [`StrObj`] (one allocation, the bytes on the
/// cache line of the reference count); longer ones in a buffer of their own. On 64-bit targets
/// the inline room (22 bytes) costs 8 bytes over the buffer's pointer and length; on 32-bit
/// targets (microcontrollers with heaps of tens of KiB) the room is 6 bytes, about what the
/// pointer and length take: with 22 bytes there, the `.kl` test program of the 64 KiB
/// Cortex-M4 image ran out of heap.
#[cfg(target_pointer_width = "64")]
pub const INLINE_TEXT: usize = 22;
/// See the 64-bit constant.
#[cfg(not(target_pointer_width = "64"))]
pub const INLINE_TEXT: usize = 6;

/// Bytes `i..i + 8` of an inline text's room as a big-endian word (zeros past the room).
#[inline(always)]
fn room_word(room: &[u8; INLINE_TEXT], i: usize) -> u64 {
    let mut w = [0u8; 8];
    let n = INLINE_TEXT.saturating_sub(i).min(8);
    if let (Some(dst), Some(src)) = (w.get_mut(..n), room.get(i..i + n)) {
        dst.copy_from_slice(src);
    }
    u64::from_be_bytes(w)
}

/// A string's bytes: inside the object or in a buffer of their own.
///
/// `repr(u8)` fixes the layout native code reads (`jit::backend::InlineCall::StrRel`): the
/// variant's tag in byte 0 ([`TEXT_INSIDE`] for `Inside`), then `Inside`'s `len` in byte 1 and
/// its room in bytes `2..2 + INLINE_TEXT`.
#[repr(u8)]
enum Text {
    /// `bytes[..len]` is the text (valid UTF-8: copied from a `&str`).
    Inside {
        len: u8,
        bytes: [u8; INLINE_TEXT],
    } = TEXT_INSIDE,
    Outside(Box<str>) = TEXT_INSIDE + 1,
}

const _: () = assert!(size_of::<Text>() <= size_of::<Box<str>>() + 8);

/// The tag byte of an inline text (`Text::Inside`); see [`Text`].
pub(crate) const TEXT_INSIDE: u8 = 0;
/// Where a string's [`Text`] sits behind the pointer its `Rc` holds.
#[allow(dead_code)]
pub(crate) const STR_TEXT_OFFSET: usize = RC_VALUE_OFFSET + core::mem::offset_of!(StrObj, text);
/// Offset of an inline text's length byte within its [`Text`].
pub(crate) const TEXT_LEN_OFFSET: usize = 1;
/// Offset of an inline text's room within its [`Text`].
pub(crate) const TEXT_ROOM_OFFSET: usize = 2;

impl Text {
    fn new(text: &str) -> Text {
        if text.len() <= INLINE_TEXT {
            let mut bytes = [0u8; INLINE_TEXT];
            bytes[..text.len()].copy_from_slice(text.as_bytes());
            Text::Inside {
                len: text.len() as u8,
                bytes,
            }
        } else {
            Text::Outside(text.into())
        }
    }

    /// Byte-wise order. Two inline texts compare their rooms a big-endian word at a time:
    /// the bytes past `len` are zero (see [`Text::new`]), so the first differing word orders
    /// them as their bytes do (a text ending where the other has a byte is its prefix, or
    /// that byte is zero and the texts still agree there), and equal rooms leave the lengths
    /// to decide. Word compares instead of `memcmp` for the short strings most programs sort.
    #[inline(always)]
    fn cmp(&self, other: &Text) -> core::cmp::Ordering {
        match (self, other) {
            (Text::Inside { len: m, bytes: a }, Text::Inside { len: n, bytes: b }) => {
                let mut i = 0;
                while i < INLINE_TEXT {
                    let (x, y) = (room_word(a, i), room_word(b, i));
                    if x != y {
                        return x.cmp(&y);
                    }
                    i += 8;
                }
                m.cmp(n)
            }
            _ => self.as_str().cmp(other.as_str()),
        }
    }

    #[inline(always)]
    fn as_str(&self) -> &str {
        match self {
            // SAFETY: `Text::new` copied these bytes from a `&str` (whole, so they are valid
            // UTF-8), and `len` is that string's length, at most `INLINE_TEXT`.
            Text::Inside { len, bytes } => unsafe {
                core::str::from_utf8_unchecked(bytes.get_unchecked(..*len as usize))
            },
            Text::Outside(s) => s,
        }
    }
}

impl Drop for StrObj {
    fn drop(&mut self) {
        if self.interned {
            self.meter
                .strings
                .borrow_mut()
                .remove(self as *const StrObj, self.hash);
        }
        self.meter
            .release(StrObj::charge_for(self.as_str().len(), self.interned));
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
/// Copies the value at `src`, which owns nothing, over the one at `dst`, which owns
/// nothing either, as two 8-byte words (tag, then payload), read before either is written
/// (`src == dst` is fine).
///
/// Not one 16-byte load: the interpreter writes a number into a register as two 8-byte
/// stores (tag and payload), and a 16-byte load of that register right after cannot take
/// its data from the two stores in flight; it waits until both reach the cache, a dozen
/// cycles on current x86-64 cores, on every `move` or `setidx` of a value just computed.
/// 8-byte loads are each forwarded from one store. The loads are volatile so that they are
/// not merged back into one.
///
/// # Safety
/// `src` is readable and `dst` writable as a `Value`; neither value owns anything (tags
/// below `TAG_STR`), so the copy leaks nothing and duplicates no ownership.
#[inline(always)]
pub(crate) unsafe fn copy_plain(src: *const Value, dst: *mut Value) {
    use core::mem::MaybeUninit;
    let (s, d) = (
        src.cast::<MaybeUninit<u64>>(),
        dst.cast::<MaybeUninit<u64>>(),
    );
    // SAFETY: a `Value` is two 8-byte words (asserted with its size), `src` readable and
    // `dst` writable (caller); `MaybeUninit` words may hold a payload's padding bytes.
    unsafe {
        let tag = core::ptr::read_volatile(s);
        let payload = core::ptr::read_volatile(s.add(1));
        d.write(tag);
        d.add(1).write(payload);
    }
}

pub(crate) const ARRAY_LEN_OFFSET: usize = RC_VALUE_OFFSET + core::mem::offset_of!(ArrayObj, len);
/// Where an array's capacity (in elements) sits behind the pointer its `Rc` holds (a push
/// with room writes the element natively, `jit::backend::InlineCall::PushInt`).
#[allow(dead_code)]
pub(crate) const ARRAY_CAP_OFFSET: usize = RC_VALUE_OFFSET + core::mem::offset_of!(ArrayObj, cap);
/// Where an `Rc`'s value sits behind the pointer an `Rc` holds (after the strong and weak
/// counts); checked against the real layout by a test.
#[allow(dead_code)]
const RC_VALUE_OFFSET: usize = 2 * size_of::<usize>();
/// Where an `Rc`'s strong count sits behind the pointer an `Rc` holds (the first word), for
/// native code that copies a string or array between a register and an element without
/// calling Rust when no count reaches zero (`jit::backend::InlineCopy`); checked against the
/// real layout by a test.
#[allow(dead_code)]
pub(crate) const RC_STRONG_OFFSET: usize = 0;

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

    /// The meter the array is charged to.
    #[cfg(feature = "jit")]
    pub(crate) fn meter(&self) -> &Meter {
        &self.meter
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
        unsafe { copy_plain(v, slot) };
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
    /// Whether the value references a heap object (a string or an array).
    #[inline]
    pub fn is_heap(&self) -> bool {
        matches!(self, Value::Str(_) | Value::Array(_))
    }

    /// A string value with this text, charged to `meter`: for a short text the object
    /// already entered in the VM's short-string table if there is one (no allocation),
    /// otherwise a new object.
    pub fn new_str(meter: &Meter, text: &str) -> Result<Value, OverCap> {
        if text.len() <= intern::INTERN_MAX {
            return Value::short_str(meter, text, || Text::new(text));
        }
        meter.charge(StrObj::charge_for(text.len(), false))?;
        Ok(Value::Str(Rc::new(StrObj {
            text: Text::Outside(text.into()),
            meter: meter.clone(),
            hash: intern::hash(text.as_bytes()),
            interned: false,
        })))
    }

    /// [`Value::new_str`] taking the text's buffer over instead of copying it (no copy and
    /// no second allocation when `text` has no spare capacity); charged the same.
    pub fn str_from_string(meter: &Meter, text: String) -> Result<Value, OverCap> {
        if text.len() <= intern::INTERN_MAX {
            return Value::short_str(meter, &text, || Text::new(&text));
        }
        meter.charge(StrObj::charge_for(text.len(), false))?;
        let hash = intern::hash(text.as_bytes());
        Ok(Value::Str(Rc::new(StrObj {
            text: Text::Outside(text.into_boxed_str()),
            meter: meter.clone(),
            hash,
            interned: false,
        })))
    }

    /// The string `a + b` (concatenation), charged to `meter`; a short result is built on the
    /// stack and looked up in the short-string table before anything is allocated.
    pub fn concat(meter: &Meter, a: &str, b: &str) -> Result<Value, OverCap> {
        let n = a.len() + b.len();
        if n <= intern::INTERN_MAX {
            let mut buf = [0u8; intern::INTERN_MAX];
            buf[..a.len()].copy_from_slice(a.as_bytes());
            buf[a.len()..n].copy_from_slice(b.as_bytes());
            // SAFETY: `buf[..n]` is the bytes of `a` followed by those of `b`, two whole
            // `&str`s, so it is valid UTF-8.
            let text = unsafe { core::str::from_utf8_unchecked(&buf[..n]) };
            return Value::short_str(meter, text, || Text::new(text));
        }
        let mut s = String::new();
        s.try_reserve_exact(n).map_err(|_| OverCap)?;
        s.push_str(a);
        s.push_str(b);
        Value::str_from_string(meter, s)
    }

    /// The object entered in `meter`'s short-string table with this text, if there is one:
    /// nothing allocated, nothing charged (a clone of an interned constant is this object).
    #[cfg(feature = "jit")]
    pub(crate) fn find_short(meter: &Meter, text: &str) -> Option<Value> {
        if text.len() > intern::INTERN_MAX {
            return None;
        }
        let p = meter
            .strings
            .borrow()
            .find(text, intern::hash(text.as_bytes()))?;
        // SAFETY: as in `short_str`: `p` is an entered object, alive while entered.
        Some(Value::Str(unsafe {
            Rc::increment_strong_count(p);
            Rc::from_raw(p)
        }))
    }

    /// A short string (`text.len() <= INTERN_MAX`): the entered object with this text, or a
    /// new one (its text made by `make`) entered in the table when the table can grow.
    #[inline]
    fn short_str(meter: &Meter, text: &str, make: impl FnOnce() -> Text) -> Result<Value, OverCap> {
        let hash = intern::hash(text.as_bytes());
        let mut table = meter.strings.borrow_mut();
        if let Some(p) = table.find(text, hash) {
            // SAFETY: `p` came from `Rc::as_ptr` of an entered `Rc<StrObj>` that is still
            // alive (an object removes its entry when dropped), so one more strong count
            // makes a valid `Rc` of our own.
            return Ok(Value::Str(unsafe {
                Rc::increment_strong_count(p);
                Rc::from_raw(p)
            }));
        }
        let interned = table.reserve_one();
        meter.charge(StrObj::charge_for(text.len(), interned))?;
        let rc = Rc::new(StrObj {
            text: make(),
            meter: meter.clone(),
            hash,
            interned,
        });
        if interned {
            table.insert(Rc::as_ptr(&rc), hash);
        }
        Ok(Value::Str(rc))
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
            (Value::Str(a), Value::Str(b)) => StrObj::same_text(a, b),
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
            Value::Str(s) => f.write_str(s.as_str()),
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
mod tests;
