//! `tick_decode`: `TickRef::decode`, `Tick::decode` and `TickHeader::peek`
//! on any bytes.

use tickcast_protocol::tick::MAX_SYMBOL_LEN;
use tickcast_protocol::{Tick, TickHeader, TickRef};

use crate::alloc;

/// Properties:
/// - decoding allocates at most the input's size (the owned symbol, or
///   the wrong `type` an error names), peeking nothing;
/// - the borrowed and the owned decoder agree;
/// - a decoded tick is valid: symbol of 1–32 bytes, prices finite and
///   non-negative, bid ≤ ask;
/// - decode → encode → decode gives the same tick, and encoding is
///   canonical (encoding the re-decoded tick gives the same bytes);
/// - the peek agrees with the full decode whenever it answers, and always
///   answers for what `encode` wrote;
/// - what we accept, rmp-serde (a generic implementation of the same
///   wire format) reads as the same tick, unless it refuses a non-UTF-8
///   string in a key we skip (we match keys as bytes: see `msgpack.rs`).
pub fn tick_decode(data: &[u8]) {
    // Only an error naming a wrong `type` allocates (its copy of it).
    let borrowed = alloc::within("TickRef::decode", data.len(), || TickRef::decode(data));
    let owned = alloc::within("Tick::decode", data.len(), || Tick::decode(data));
    let peek = alloc::within("TickHeader::peek", 0, || TickHeader::peek(data));
    // Compared as text: an error may carry a NaN, which equals nothing.
    assert_eq!(
        format!("{:?}", borrowed.clone().map(|t| t.to_tick())),
        format!("{owned:?}"),
        "borrowed and owned decoders disagree"
    );
    let Ok(tick) = borrowed else { return };

    assert!(!tick.sym.is_empty() && tick.sym.len() <= MAX_SYMBOL_LEN);
    for price in [tick.bid, tick.ask, tick.last] {
        assert!(price.is_finite() && price >= 0.0, "price {price}");
    }
    assert!(tick.bid <= tick.ask, "crossed book accepted");

    let encoded = {
        let mut out = Vec::new();
        tick.encode(&mut out);
        out
    };
    let again = TickRef::decode(&encoded).expect("our own encoding decodes");
    assert_eq!(again, tick, "decode → encode → decode changed the tick");
    let mut re_encoded = Vec::new();
    again.encode(&mut re_encoded);
    assert_eq!(re_encoded, encoded, "encoding is not canonical");

    fn header<'a>(t: &TickRef<'a>) -> TickHeader<'a> {
        TickHeader {
            sym: t.sym.as_bytes(),
            seq: t.seq,
            ts: t.ts,
        }
    }
    if let Some(peeked) = peek {
        assert_eq!(peeked, header(&tick), "peek disagrees with decode");
    }
    assert_eq!(
        TickHeader::peek(&encoded),
        Some(header(&tick)),
        "peek cannot read what encode wrote"
    );

    match rmp_serde::from_slice::<Tick>(data) {
        Ok(generic) => assert_eq!(generic, tick.to_tick(), "rmp-serde reads another tick"),
        Err(rmp_serde::decode::Error::Utf8Error(_)) => {}
        Err(e) => panic!("we accept a tick rmp-serde refuses: {e}"),
    }
}
