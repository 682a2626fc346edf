//! Tests of values: the layout native code relies on (array fields, strong counts, texts),
//! string order, arrays and the memory meter, and the short-string table.
use super::*;
use proptest::prelude::*;

proptest! {
    /// The order of two strings (inline or not, sharing a prefix, NUL bytes included) is
    /// the order of their bytes.
    #[test]
    fn cmp_text_is_byte_order(
        a in proptest::collection::vec(prop_oneof![Just(0u8), Just(b'a'), Just(0x7f)], 0..30),
        cut in 0usize..30,
        tail in proptest::collection::vec(prop_oneof![Just(0u8), Just(b'a'), Just(0x7f)], 0..4),
    ) {
        let mut b = a.get(..cut.min(a.len())).unwrap_or_default().to_vec();
        b.extend_from_slice(&tail);
        let meter = MeterCell::new(usize::MAX);
        let (sa, sb) = (String::from_utf8(a).unwrap(), String::from_utf8(b).unwrap());
        let (Ok(Value::Str(x)), Ok(Value::Str(y))) =
            (Value::new_str(&meter, &sa), Value::new_str(&meter, &sb))
        else {
            panic!("strings");
        };
        prop_assert_eq!(StrObj::cmp_text(&x, &y), sa.as_bytes().cmp(sb.as_bytes()));
        prop_assert_eq!(StrObj::cmp_text(&y, &x), sb.as_bytes().cmp(sa.as_bytes()));
    }
}

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
    assert_eq!(word_at(payload, ARRAY_CAP_OFFSET), rc.cap.get());
    assert!(word_at(payload, ARRAY_CAP_OFFSET) >= 5);
    let elems = word_at(payload, ARRAY_PTR_OFFSET) as *const Value;
    // SAFETY: five initialised elements, the array is alive and not being changed.
    let (e0, e4) = unsafe { (&*elems, &*elems.add(4)) };
    assert!(matches!(e0, Value::Int(7)));
    assert!(matches!(e4, Value::Int(11)));
}

#[test]
fn texts_lie_where_native_code_reads_them() {
    let meter = MeterCell::new(usize::MAX);
    let text_of = |v: &Value| {
        // SAFETY: `Value` is `repr(u64)`: the payload word sits at `PAYLOAD_OFFSET`.
        let payload = unsafe { *((v as *const Value as usize + PAYLOAD_OFFSET) as *const usize) };
        let text = (payload + STR_TEXT_OFFSET) as *const u8;
        // SAFETY: the string is alive and its `Text` (24 bytes, see `Text`) is there.
        unsafe { core::slice::from_raw_parts(text, 2 + INLINE_TEXT).to_vec() }
    };
    for s in ["", "ka", "zenzenzen", "twenty-two bytes long"] {
        let t = text_of(&Value::new_str(&meter, s).unwrap());
        assert_eq!(t[0], TEXT_INSIDE, "{s}");
        assert_eq!(t[TEXT_LEN_OFFSET] as usize, s.len());
        let room = &t[TEXT_ROOM_OFFSET..];
        assert_eq!(&room[..s.len()], s.as_bytes());
        assert!(
            room[s.len()..].iter().all(|&b| b == 0),
            "{s}: zeros past the text"
        );
    }
    let long = Value::new_str(&meter, "twenty-three bytes long").unwrap();
    assert_ne!(text_of(&long)[0], TEXT_INSIDE);
}

#[test]
fn the_strong_count_is_the_first_word_behind_the_payload() {
    let meter = MeterCell::new(usize::MAX);
    let values = [
        Value::new_array(&meter, Vec::from([Value::Int(7)])).unwrap(),
        Value::new_str(&meter, "a string longer than the short-string room").unwrap(),
    ];
    for v in values {
        // SAFETY: `Value` is `repr(u64)`: the payload word sits at `PAYLOAD_OFFSET`.
        let payload = unsafe { *((&v as *const Value as usize + PAYLOAD_OFFSET) as *const usize) };
        let strong = || word_at(payload, RC_STRONG_OFFSET);
        assert_eq!(strong(), 1);
        let copies: Vec<Value> = (0..3).map(|_| v.clone()).collect();
        assert_eq!(strong(), 4);
        drop(copies);
        assert_eq!(strong(), 1);
    }
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

fn str_ptr(v: &Value) -> *const StrObj {
    let Value::Str(s) = v else {
        panic!("not a string")
    };
    Rc::as_ptr(s)
}

#[test]
fn short_strings_are_one_object_and_leave_the_table_when_dropped() {
    let meter = MeterCell::new(usize::MAX);
    let a = Value::new_str(&meter, "kalo").unwrap();
    let b = Value::concat(&meter, "ka", "lo").unwrap();
    let c = Value::str_from_string(&meter, String::from("kalo")).unwrap();
    assert_eq!(str_ptr(&a), str_ptr(&b));
    assert_eq!(str_ptr(&a), str_ptr(&c));
    let one = meter.used();
    // The text is inside the object.
    assert_eq!(one, size_of::<StrObj>() + intern::ENTRY_BYTES);
    let d = Value::new_str(&meter, "kalomi").unwrap();
    assert!(!a.equals(&d) && a.equals(&b));
    assert_eq!(meter.strings.borrow().len(), 2);
    drop((a, b, c));
    assert_eq!(meter.strings.borrow().len(), 1);
    // A new object for the same text once the old one is gone: the table kept no reference.
    let e = Value::new_str(&meter, "kalo").unwrap();
    assert!(e.equals(&Value::concat(&meter, "kal", "o").unwrap()));
    drop((d, e));
    assert_eq!(meter.strings.borrow().len(), 0);
    assert_eq!(meter.used(), 0);
}

#[test]
fn equal_short_strings_of_two_vms_are_equal() {
    let (m1, m2) = (MeterCell::new(usize::MAX), MeterCell::new(usize::MAX));
    let a = Value::new_str(&m1, "kalo").unwrap();
    let b = Value::new_str(&m2, "kalo").unwrap();
    assert_ne!(str_ptr(&a), str_ptr(&b));
    assert!(a.equals(&b));
    assert!(!a.equals(&Value::new_str(&m2, "kalu").unwrap()));
}

#[test]
fn long_strings_are_not_entered_but_compare_by_content() {
    let meter = MeterCell::new(usize::MAX);
    let long = "x".repeat(intern::INTERN_MAX + 1);
    let a = Value::new_str(&meter, &long).unwrap();
    let b = Value::concat(&meter, &long[..10], &long[10..]).unwrap();
    assert_ne!(str_ptr(&a), str_ptr(&b));
    assert!(a.equals(&b));
    let short = Value::new_str(&meter, &long[..intern::INTERN_MAX]).unwrap();
    assert!(!a.equals(&short));
    assert_eq!(meter.strings.borrow().len(), 1);
    // Outside texts are charged too: the object, the bytes, and the table share of the
    // short one.
    assert_eq!(
        meter.used(),
        3 * size_of::<StrObj>() + 2 * long.len() + intern::INTERN_MAX + intern::ENTRY_BYTES
    );
    let Value::Str(s) = &short else { panic!() };
    assert_eq!(s.as_str(), &long[..intern::INTERN_MAX]);
    let inside = Value::new_str(&meter, "ünïcödé").unwrap();
    assert_eq!(alloc::format!("{inside}"), "ünïcödé");
    drop((a, b, short, inside));
    assert_eq!(meter.used(), 0);
}

#[test]
fn the_cap_counts_live_strings_only() {
    let each = size_of::<StrObj>() + intern::ENTRY_BYTES;
    let meter = MeterCell::new(2 * each);
    let a = Value::new_str(&meter, "abc").unwrap();
    let again = Value::new_str(&meter, "abc").unwrap();
    assert_eq!(
        meter.used(),
        each,
        "an equal short string costs nothing more"
    );
    let b = Value::new_str(&meter, "abd").unwrap();
    assert_eq!(Value::new_str(&meter, "abe").err(), Some(OverCap));
    drop(b);
    let e = Value::new_str(&meter, "abe").unwrap();
    drop((a, again, e));
    assert_eq!(meter.used(), 0);
}

/// The table against a shadow model under random inserts and drops (many texts share probe
/// runs, so backward-shift deletion is exercised).
#[test]
fn table_matches_a_shadow_model() {
    use proptest::prelude::*;
    proptest!(|(ops in proptest::collection::vec((0u8..2, 0u16..300), 1..2000))| {
        let meter = MeterCell::new(usize::MAX);
        let mut live: Vec<(String, Value)> = Vec::new();
        for (kind, n) in ops {
            let text = alloc::format!("w{n}");
            if kind == 0 {
                let v = Value::new_str(&meter, &text).unwrap();
                if let Some((_, old)) = live.iter().find(|(t, _)| *t == text) {
                    prop_assert_eq!(str_ptr(old), str_ptr(&v));
                }
                live.push((text, v));
            } else if let Some(i) = live.iter().position(|(t, _)| *t == text) {
                live.swap_remove(i);
            }
            let mut distinct: Vec<&str> = live.iter().map(|(t, _)| t.as_str()).collect();
            distinct.sort_unstable();
            distinct.dedup();
            prop_assert_eq!(meter.strings.borrow().len(), distinct.len());
            for t in distinct {
                let h = intern::hash(t.as_bytes());
                prop_assert!(meter.strings.borrow().find(t, h).is_some());
            }
        }
        drop(live);
        prop_assert_eq!(meter.used(), 0);
    });
}
