//! Properties of the codec over arbitrary input: encoding then parsing gives
//! back any header and payload, and no bytes make a parser panic.

use proptest::prelude::*;
use tickcast_wsframe::handshake::parse_upgrade_response;
use tickcast_wsframe::{close, mask, put_frame, Frame, Header, Role, Rules};

fn header() -> impl Strategy<Value = Header> {
    (
        any::<u8>(),
        proptest::option::of(any::<[u8; 4]>()),
        prop_oneof![0..=130u64, 65_530..=65_540u64, any::<u64>()],
    )
        .prop_map(|(first, mask, payload_len)| Header {
            first,
            mask,
            payload_len,
        })
}

fn rules(role: Role) -> Rules {
    Rules {
        role,
        max_message: 1 << 20,
    }
}

proptest! {
    #[test]
    fn any_header_round_trips(h in header(), tail in proptest::collection::vec(any::<u8>(), 0..8)) {
        let encoded = h.encode();
        let mut bytes = encoded.to_vec();
        bytes.extend_from_slice(&tail);
        prop_assert_eq!(Header::parse(&bytes), Some((h, encoded.len())));
        for cut in 0..encoded.len() {
            prop_assert_eq!(Header::parse(&bytes[..cut]), None);
        }
    }

    #[test]
    fn any_frame_round_trips_or_breaks_the_same_rule_at_every_cut(
        first in any::<u8>(),
        mask in proptest::option::of(any::<[u8; 4]>()),
        payload in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut bytes = Vec::new();
        put_frame(&mut bytes, first, mask, &payload);
        let role = if mask.is_some() { Role::Server } else { Role::Client };
        let rules = rules(role);
        let whole = Frame::parse(&bytes, &rules);
        match whole {
            Ok(Some((frame, used))) => {
                prop_assert_eq!(used, bytes.len());
                prop_assert_eq!(frame.header.first, first);
                let mut unmasked = frame.payload.to_vec();
                if let Some(m) = mask {
                    mask::apply(&mut unmasked, m);
                }
                prop_assert_eq!(unmasked, payload);
            }
            Ok(None) => prop_assert!(false, "a whole frame needs no more bytes"),
            Err(_) => {}
        }
        for cut in 0..bytes.len() {
            let part = Frame::parse(&bytes[..cut], &rules);
            prop_assert!(
                part == Ok(None) || (whole.is_err() && part == whole),
                "cut {} gave {:?}, whole {:?}", cut, part, whole
            );
        }
    }

    #[test]
    fn masking_is_the_bytewise_xor_and_undoes_itself(
        payload in proptest::collection::vec(any::<u8>(), 0..100),
        key in any::<[u8; 4]>(),
    ) {
        let mut masked = payload.clone();
        mask::apply(&mut masked, key);
        for (i, (m, p)) in masked.iter().zip(&payload).enumerate() {
            prop_assert_eq!(*m, p ^ key[i % 4]);
        }
        mask::apply(&mut masked, key);
        prop_assert_eq!(masked, payload);
    }

    #[test]
    fn close_payloads_fit_and_parse_back(code in 1000..5000u16, reason in ".{0,80}") {
        let payload = close::payload(code, &reason);
        prop_assert!(payload.len() <= close::MAX_PAYLOAD);
        match close::parse(&payload) {
            Ok(Some(parsed)) => {
                prop_assert!(close::is_valid(code));
                prop_assert_eq!(parsed.code, code);
                prop_assert!(reason.starts_with(parsed.reason));
            }
            other => prop_assert!(!close::is_valid(code), "{:?}", other),
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Some((_, used)) = Header::parse(&bytes) {
            prop_assert!(used <= bytes.len());
        }
        for role in [Role::Server, Role::Client] {
            // Each outcome is fine: a frame, "need more", or a violation.
            if let Ok(Some((frame, used))) = Frame::parse(&bytes, &rules(role)) {
                prop_assert!(used <= bytes.len());
                prop_assert_eq!(frame.payload.len() as u64, frame.header.payload_len);
            }
        }
        let _ = close::parse(&bytes);
        let _ = parse_upgrade_response(&bytes);
    }
}
