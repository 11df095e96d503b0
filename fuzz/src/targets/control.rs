//! `control_message`: `ClientRequest::from_json` and `from_msgpack`, the
//! parsers of what any client may send in a text or binary frame.

use tickcast_protocol::control::{validate_topic, MAX_ERROR_MESSAGE, MAX_TOKEN_LEN};
use tickcast_protocol::{ClientRequest, ErrorCode};

use crate::alloc;

/// Properties, for the input as JSON and as MessagePack:
/// - an accepted request has only valid topics, and its own encodings
///   (`to_json`, `to_msgpack`) parse back to the same request;
/// - a refusal is `bad_request`, `unknown_op` or `invalid_topic`, and its
///   message is short (at most [`MAX_ERROR_MESSAGE`] bytes) whatever the
///   request: the reply must not echo a large request back;
/// - parsing allocates at most a small multiple of the input: an array
///   header claiming four billion topics must not reserve room for them.
pub fn control_message(data: &[u8]) {
    let budget = 8 * data.len() + 4096;
    let json = alloc::within("ClientRequest::from_json", budget, || {
        ClientRequest::from_json(data)
    });
    let msgpack = alloc::within("ClientRequest::from_msgpack", budget, || {
        ClientRequest::from_msgpack(data)
    });
    for parsed in [json, msgpack] {
        match parsed {
            Ok(req) => {
                match &req {
                    ClientRequest::Subscribe { topics, .. }
                    | ClientRequest::Unsubscribe { topics } => {
                        for topic in topics {
                            assert!(validate_topic(topic).is_ok(), "accepted topic {topic:?}");
                        }
                    }
                    ClientRequest::Auth { token } => {
                        assert!(!token.is_empty() && token.len() <= MAX_TOKEN_LEN);
                    }
                }
                assert_eq!(
                    ClientRequest::from_json(req.to_json().as_bytes()),
                    Ok(req.clone())
                );
                assert_eq!(
                    ClientRequest::from_msgpack(&req.to_msgpack()),
                    Ok(req.clone())
                );
            }
            Err(e) => {
                assert!(
                    matches!(
                        e.code,
                        ErrorCode::BadRequest | ErrorCode::UnknownOp | ErrorCode::InvalidTopic
                    ),
                    "refused with {:?}",
                    e.code
                );
                assert!(
                    e.message.len() <= MAX_ERROR_MESSAGE,
                    "a {}-byte error message for a {}-byte request",
                    e.message.len(),
                    data.len()
                );
            }
        }
    }
}
