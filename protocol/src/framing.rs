//! The ingest framing: a `u32` big-endian length, then that many bytes of one
//! MessagePack tick.
//!
//! Used on the broker's TCP ingest (publishers → broker) and for the records
//! of feed files. A length prefix lets the broker forward a record's payload
//! without re-encoding it, and find record boundaries without parsing
//! MessagePack. The limit is hard: a length over [`MAX_RECORD_LEN`] is an
//! error, never an allocation, so a corrupt or hostile stream cannot make a
//! reader reserve gigabytes.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::tick::TickRef;

/// The largest record payload accepted, in bytes.
pub const MAX_RECORD_LEN: usize = 64 * 1024;

/// The size of the length prefix.
pub const HEADER_LEN: usize = 4;

/// Why a byte stream is not a valid sequence of records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// A length prefix announces more than [`MAX_RECORD_LEN`] bytes.
    #[error("record length {0} exceeds the {MAX_RECORD_LEN}-byte limit")]
    TooLong(u32),
    /// A length prefix of zero (no tick is empty).
    #[error("record length is zero")]
    Empty,
}

/// Appends one record holding `payload`.
///
/// # Panics
/// If `payload` is longer than [`MAX_RECORD_LEN`]; encoders only ever pass
/// encoded ticks, which are a few hundred bytes at most.
pub fn put_record(out: &mut impl BufMut, payload: &[u8]) {
    assert!(payload.len() <= MAX_RECORD_LEN, "record payload too long");
    out.put_u32(payload.len() as u32);
    out.put_slice(payload);
}

/// Encodes `tick` straight into `out` as one record (no intermediate buffer).
pub fn put_tick_record<B: BufMut + AsMut<[u8]>>(out: &mut B, tick: &TickRef<'_>) {
    let start = out.as_mut().len();
    out.put_u32(0);
    tick.encode(out);
    let buf = out.as_mut();
    let len = (buf.len() - start - HEADER_LEN) as u32;
    buf[start..start + HEADER_LEN].copy_from_slice(&len.to_be_bytes());
}

/// Looks at the front of `buf` for one complete record.
///
/// Returns `Ok(Some((payload, consumed)))` when a whole record is there,
/// `Ok(None)` when more bytes are needed, and an error when the length prefix
/// is invalid (the stream cannot be resynchronised after that).
pub fn parse_record(buf: &[u8]) -> Result<Option<(&[u8], usize)>, FrameError> {
    let Some(header) = buf.get(..HEADER_LEN) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    if len == 0 {
        return Err(FrameError::Empty);
    }
    if len as usize > MAX_RECORD_LEN {
        return Err(FrameError::TooLong(len));
    }
    let end = HEADER_LEN + len as usize;
    Ok(buf.get(HEADER_LEN..end).map(|payload| (payload, end)))
}

/// Splits one complete record off the front of `buf`, without copying the
/// payload (the returned [`Bytes`] shares `buf`'s allocation).
///
/// On `Ok(None)` the buffer is left as it is, with room reserved for the rest
/// of the record, so the caller reads more and calls again.
pub fn split_record(buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
    match parse_record(buf)? {
        Some((payload, _)) => {
            let len = payload.len();
            buf.advance(HEADER_LEN);
            Ok(Some(buf.split_to(len).freeze()))
        }
        None => {
            if buf.len() >= HEADER_LEN {
                let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
                buf.reserve(HEADER_LEN + len - buf.len());
            }
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tick::Tick;

    fn tick(seq: u64) -> Tick {
        Tick {
            seq,
            ts: 1_700_000_000_000_000_000,
            ..Tick::example()
        }
    }

    #[test]
    fn tick_records_round_trip_through_split() {
        let mut buf = BytesMut::new();
        for seq in 1..=3 {
            put_tick_record(&mut buf, &tick(seq).as_ref());
        }
        for seq in 1..=3 {
            let payload = split_record(&mut buf).unwrap().unwrap();
            assert_eq!(Tick::decode(&payload).unwrap(), tick(seq));
        }
        assert!(buf.is_empty());
        assert_eq!(split_record(&mut buf), Ok(None));
    }

    #[test]
    fn put_tick_record_matches_put_record() {
        let t = tick(7);
        let mut a = Vec::new();
        put_tick_record(&mut a, &t.as_ref());
        let mut b = Vec::new();
        put_record(&mut b, &t.to_vec());
        assert_eq!(a, b);
    }

    #[test]
    fn partial_record_waits_for_more_bytes() {
        let mut whole = Vec::new();
        put_tick_record(&mut whole, &tick(1).as_ref());
        for cut in 0..whole.len() {
            let mut buf = BytesMut::from(&whole[..cut]);
            assert_eq!(split_record(&mut buf), Ok(None), "cut at {cut}");
            assert_eq!(&buf[..], &whole[..cut], "buffer untouched at {cut}");
            buf.extend_from_slice(&whole[cut..]);
            assert!(split_record(&mut buf).unwrap().is_some());
        }
    }

    #[test]
    fn oversized_length_is_an_error_not_an_allocation() {
        let mut buf = BytesMut::from(&u32::MAX.to_be_bytes()[..]);
        assert_eq!(split_record(&mut buf), Err(FrameError::TooLong(u32::MAX)));
        assert!(buf.capacity() < 1024);
        let just_over = (MAX_RECORD_LEN as u32 + 1).to_be_bytes();
        assert_eq!(
            parse_record(&just_over),
            Err(FrameError::TooLong(MAX_RECORD_LEN as u32 + 1))
        );
    }

    #[test]
    fn zero_length_is_an_error() {
        assert_eq!(parse_record(&[0, 0, 0, 0, 1]), Err(FrameError::Empty));
    }
}
