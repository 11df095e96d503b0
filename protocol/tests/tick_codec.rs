//! The tick codec against a generic MessagePack implementation (`rmpv`):
//! what we write, anyone can read with the documented keys and types, and
//! what anyone writes in that shape, we read. Plus every way decoding fails.

use proptest::prelude::*;
use rmpv::Value;
use tickcast_protocol::tick::MAX_SYMBOL_LEN;
use tickcast_protocol::{DecodeError, Tick, TickRef};

fn sample() -> Tick {
    Tick {
        ts: 1_767_225_600_000_000_000,
        bid: 189.5,
        ask_size: 100,
        volume: 12_345_600,
        ..Tick::example()
    }
}

/// The tick as a generic map, built the way another library would.
fn as_value(t: &Tick) -> Vec<(Value, Value)> {
    let mut map = vec![
        (Value::from("type"), Value::from("tick")),
        (Value::from("sym"), Value::from(t.sym.as_str())),
        (Value::from("seq"), Value::from(t.seq)),
        (Value::from("ts"), Value::from(t.ts)),
        (Value::from("bid"), Value::from(t.bid)),
        (Value::from("ask"), Value::from(t.ask)),
        (Value::from("last"), Value::from(t.last)),
        (Value::from("bid_size"), Value::from(t.bid_size)),
        (Value::from("ask_size"), Value::from(t.ask_size)),
        (Value::from("last_size"), Value::from(t.last_size)),
        (Value::from("volume"), Value::from(t.volume)),
    ];
    if let Some(orig) = t.orig_ts {
        map.push((Value::from("orig_ts"), Value::from(orig)));
    }
    map
}

fn encode_value(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, v).unwrap();
    out
}

fn with(f: impl FnOnce(&mut Vec<(Value, Value)>)) -> Vec<u8> {
    let mut map = as_value(&sample());
    f(&mut map);
    encode_value(&Value::Map(map))
}

fn set(map: &mut [(Value, Value)], key: &str, value: Value) {
    for (k, v) in map.iter_mut() {
        if k.as_str() == Some(key) {
            *v = value;
            return;
        }
    }
    panic!("no key {key}");
}

prop_compose! {
    fn any_tick()(
        sym in "[A-Z][A-Z0-9.]{0,7}",
        seq in 1u64..,
        ts in any::<u64>(),
        bid_cents in 0u64..10_000_000,
        spread in 0u64..1_000,
        last_off in 0u64..1_000,
        bid_size in any::<u32>(),
        ask_size in any::<u32>(),
        last_size in any::<u32>(),
        volume in any::<u64>(),
        orig_ts in proptest::option::of(any::<u64>()),
    ) -> Tick {
        Tick {
            sym,
            seq,
            ts,
            bid: bid_cents as f64 / 100.0,
            ask: (bid_cents + spread) as f64 / 100.0,
            last: (bid_cents + last_off) as f64 / 100.0,
            bid_size,
            ask_size,
            last_size,
            volume,
            orig_ts,
        }
    }
}

proptest! {
    #[test]
    fn round_trips_through_our_codec(t in any_tick()) {
        prop_assert_eq!(Tick::decode(&t.to_vec()), Ok(t));
    }

    #[test]
    fn our_encoding_is_the_generic_encoding(t in any_tick()) {
        // Same keys, same order, smallest integer forms, float64 prices:
        // byte-identical to what a generic encoder writes for the same map.
        prop_assert_eq!(t.to_vec(), encode_value(&Value::Map(as_value(&t))));
    }

    #[test]
    fn generic_maps_decode_whatever_the_key_order(t in any_tick(), rotate in 0usize..11) {
        let mut map = as_value(&t);
        map.rotate_left(rotate);
        map.push((Value::from("venue"), Value::Map(vec![(Value::from("x"), Value::Array(vec![Value::Nil]))])));
        prop_assert_eq!(Tick::decode(&encode_value(&Value::Map(map))), Ok(t));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Tick::decode(&bytes);
    }

    #[test]
    fn every_truncation_is_an_error(t in any_tick(), cut_frac in 0.0f64..1.0) {
        let bytes = t.to_vec();
        let cut = ((bytes.len() as f64) * cut_frac) as usize;
        prop_assert!(Tick::decode(&bytes[..cut]).is_err());
    }
}

#[test]
fn keys_and_types_seen_by_a_generic_decoder() {
    let bytes = sample().to_vec();
    let value = rmpv::decode::read_value(&mut &bytes[..]).unwrap();
    let map = value.as_map().unwrap();
    let get = |k: &str| {
        map.iter()
            .find(|(key, _)| key.as_str() == Some(k))
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(get("type").as_str(), Some("tick"));
    assert_eq!(get("sym").as_str(), Some("AAPL"));
    assert_eq!(get("seq").as_u64(), Some(42));
    assert!(matches!(get("bid"), Value::F64(_)));
    assert_eq!(get("volume").as_u64(), Some(12_345_600));
    assert_eq!(map.len(), 11);
}

#[test]
fn integer_prices_from_other_encoders_are_accepted() {
    // JavaScript encoders write 190.0 as an integer.
    let bytes = with(|m| set(m, "ask", Value::from(190u64)));
    assert_eq!(Tick::decode(&bytes).unwrap().ask, 190.0);
    let f32_bytes = with(|m| set(m, "bid", Value::F32(189.5)));
    assert_eq!(Tick::decode(&f32_bytes).unwrap().bid, 189.5);
}

#[test]
fn borrowed_decode_does_not_copy_the_symbol() {
    let bytes = sample().to_vec();
    let t = TickRef::decode(&bytes).unwrap();
    let range = bytes.as_ptr_range();
    assert!(range.contains(&t.sym.as_ptr()));
}

#[test]
fn every_decode_error() {
    let e = |bytes: Vec<u8>| Tick::decode(&bytes).unwrap_err();
    assert_eq!(e(vec![]), DecodeError::Truncated);
    assert_eq!(e(encode_value(&Value::Array(vec![]))), DecodeError::NotAMap);
    assert_eq!(
        e(encode_value(&Value::Map(vec![(
            Value::from(1),
            Value::from(1)
        )]))),
        DecodeError::NonStringKey
    );
    assert_eq!(
        e(with(|m| set(m, "sym", Value::Binary(vec![1])))),
        DecodeError::WrongType {
            key: "sym",
            expected: "a string"
        }
    );
    let mut bad_utf8 = sample().to_vec();
    let at = bad_utf8.windows(4).position(|w| w == b"AAPL").unwrap();
    bad_utf8[at] = 0xff;
    assert_eq!(e(bad_utf8), DecodeError::InvalidUtf8);
    assert_eq!(
        e(with(|m| m.retain(|(k, _)| k.as_str() != Some("volume")))),
        DecodeError::MissingKey("volume")
    );
    assert_eq!(
        e(with(|m| m.retain(|(k, _)| k.as_str() != Some("type")))),
        DecodeError::MissingKey("type")
    );
    assert_eq!(
        e(with(|m| m.push((Value::from("seq"), Value::from(1))))),
        DecodeError::DuplicateKey("seq")
    );
    assert_eq!(
        e(with(|m| set(m, "type", Value::from("quote")))),
        DecodeError::NotATick("quote".into())
    );
    assert_eq!(
        e(with(|m| set(m, "sym", Value::from("")))),
        DecodeError::BadSymbol
    );
    assert_eq!(
        e(with(|m| set(
            m,
            "sym",
            Value::from("X".repeat(MAX_SYMBOL_LEN + 1).as_str())
        ))),
        DecodeError::BadSymbol
    );
    assert_eq!(
        e(with(|m| set(m, "seq", Value::from(-1)))),
        DecodeError::WrongType {
            key: "seq",
            expected: "an unsigned integer"
        }
    );
    assert_eq!(
        e(with(|m| set(m, "seq", Value::from(1.5)))),
        DecodeError::WrongType {
            key: "seq",
            expected: "an unsigned integer"
        }
    );
    assert_eq!(
        e(with(|m| set(m, "ts", Value::from("now")))),
        DecodeError::WrongType {
            key: "ts",
            expected: "an unsigned integer"
        }
    );
    assert_eq!(
        e(with(|m| set(
            m,
            "bid_size",
            Value::from(u64::from(u32::MAX) + 1)
        ))),
        DecodeError::WrongType {
            key: "bid_size",
            expected: "an unsigned 32-bit integer"
        }
    );
    assert_eq!(
        e(with(|m| set(m, "bid", Value::from("1.0")))),
        DecodeError::WrongType {
            key: "bid",
            expected: "a number"
        }
    );
    assert!(matches!(
        e(with(|m| set(m, "last", Value::F64(f64::NAN)))),
        DecodeError::InvalidPrice { key: "last", .. }
    ));
    assert!(matches!(
        e(with(|m| set(m, "ask", Value::F64(f64::INFINITY)))),
        DecodeError::InvalidPrice { key: "ask", .. }
    ));
    assert!(matches!(
        e(with(|m| set(m, "bid", Value::F64(-0.01)))),
        DecodeError::InvalidPrice { key: "bid", .. }
    ));
    assert_eq!(
        e(with(|m| set(m, "bid", Value::F64(200.0)))),
        DecodeError::CrossedBook {
            bid: 200.0,
            ask: 189.51
        }
    );
    let mut deep = Value::Nil;
    for _ in 0..40 {
        deep = Value::Array(vec![deep]);
    }
    assert_eq!(
        e(with(|m| m.push((Value::from("extra"), deep)))),
        DecodeError::TooDeep
    );
    let mut trailing = sample().to_vec();
    trailing.extend_from_slice(&[0xc0, 0xc0]);
    assert_eq!(e(trailing), DecodeError::TrailingBytes(2));
    // Every error has a message a publisher can act on.
    assert!(DecodeError::MissingKey("bid").to_string().contains("bid"));
}
