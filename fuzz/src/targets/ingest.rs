//! `ingest_frames`: the ingest framing (`u32` length + tick) as the
//! broker's TCP ingest and the feed files read it.

use bytes::BytesMut;
use tickcast_protocol::framing::{parse_record, split_record, HEADER_LEN};
use tickcast_protocol::{FrameError, MAX_RECORD_LEN};

use crate::alloc;
use crate::io::{seed_of, Plan, Step};

/// What a stream of records held: each record's payload in order, then how
/// it ended (`None`: cleanly or inside a record, waiting for more bytes).
#[derive(Debug, PartialEq)]
struct Stream {
    payloads: Vec<Vec<u8>>,
    error: Option<FrameError>,
}

/// The reference reading: `parse_record` over the whole input at once.
fn whole(data: &[u8]) -> (Stream, usize) {
    let mut payloads = Vec::new();
    let mut at = 0;
    loop {
        match parse_record(&data[at..]) {
            Ok(Some((payload, used))) => {
                assert_eq!(used, HEADER_LEN + payload.len());
                assert!(!payload.is_empty() && payload.len() <= MAX_RECORD_LEN);
                payloads.push(payload.to_vec());
                at += used;
            }
            Ok(None) => {
                return (
                    Stream {
                        payloads,
                        error: None,
                    },
                    at,
                )
            }
            Err(e) => {
                return (
                    Stream {
                        payloads,
                        error: Some(e),
                    },
                    at,
                )
            }
        }
    }
}

/// Properties, for the input as a stream of records:
/// - `split_record` on a buffer the bytes arrive into in random chunks
///   (as the broker's socket reads do) yields the same records and the
///   same error as `parse_record` over the whole input;
/// - while waiting for a record, it leaves the buffer's bytes untouched,
///   and reserves about one record's worth (twice, for the buffer's
///   doubling): never what a hostile length claims beyond
///   [`MAX_RECORD_LEN`];
/// - a record that `parse_record` finds stays the same record with more
///   bytes after it (a prefix's answer is final);
/// - every payload is then decoded as the broker does, and the decoder's
///   properties (`tick_decode`) hold for it.
pub fn ingest_frames(data: &[u8]) {
    ingest_frames_chunked(data, seed_of(data));
}

/// [`ingest_frames`] with the chunk plan of `seed`.
fn ingest_frames_chunked(data: &[u8], seed: u64) {
    let (reference, consumed) = whole(data);

    // Bytes arriving in chunks into one buffer, split as they come.
    let mut plan = Plan::new(seed);
    let mut buf = BytesMut::new();
    let mut rest = data;
    let mut chunked = Stream {
        payloads: Vec::new(),
        error: None,
    };
    'read: loop {
        loop {
            let before = buf.clone();
            let capacity = buf.capacity();
            let got = alloc::within("split_record", 3 * (HEADER_LEN + MAX_RECORD_LEN), || {
                split_record(&mut buf)
            });
            match got {
                Ok(Some(payload)) => chunked.payloads.push(payload.to_vec()),
                Ok(None) => {
                    assert_eq!(buf, before, "a partial record was changed");
                    assert!(
                        buf.capacity() <= capacity.max(2 * (HEADER_LEN + MAX_RECORD_LEN)),
                        "reserved {} bytes for a partial record",
                        buf.capacity()
                    );
                    break;
                }
                Err(e) => {
                    chunked.error = Some(e);
                    break 'read;
                }
            }
        }
        if rest.is_empty() {
            break;
        }
        if let Step::Bytes(n) = plan.step() {
            let (head, tail) = rest.split_at(n.min(rest.len()));
            buf.extend_from_slice(head);
            rest = tail;
        }
    }
    assert_eq!(chunked, reference, "chunked split_record disagrees");
    if reference.error.is_none() {
        assert_eq!(buf.len(), data.len() - consumed, "leftover bytes differ");
    }

    // A complete record's answer does not change when more bytes follow.
    if let Ok(Some((payload, used))) = parse_record(data) {
        let mut longer = data[..used].to_vec();
        longer.extend_from_slice(&[0xff; 8]);
        assert_eq!(parse_record(&longer), Ok(Some((payload, used))));
    }

    for payload in &reference.payloads {
        super::tick::tick_decode(payload);
    }
}
