//! `feed_file`: `feed_simulator::file::FeedReader` on any file contents.

use std::io::{Cursor, ErrorKind};

use feed_simulator::file::{FeedFileError, FeedHeader, FeedReader, FeedWriter, HEADER_LEN, MAGIC};
use tickcast_protocol::framing::parse_record;
use tickcast_protocol::{Tick, TickRef, MAX_RECORD_LEN};

use crate::alloc;
use crate::io::{seed_of, ChunkedRead};

/// How a reading ended, comparable: the error's kind and offset.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    Clean,
    BadMagic,
    UnsupportedVersion(u16),
    BadHeader,
    Truncated(u64),
    Corrupt(u64),
}

impl From<&FeedFileError> for End {
    fn from(e: &FeedFileError) -> Self {
        match e {
            FeedFileError::Io(e) => panic!("an in-memory read failed: {e}"),
            FeedFileError::BadMagic => End::BadMagic,
            FeedFileError::UnsupportedVersion(v) => End::UnsupportedVersion(*v),
            FeedFileError::BadHeader { .. } => End::BadHeader,
            FeedFileError::Truncated { offset } => End::Truncated(*offset),
            FeedFileError::Corrupt { offset, .. } => End::Corrupt(*offset),
        }
    }
}

/// What a reading gave: the header, each tick with the offset after it,
/// and the end.
#[derive(Debug, PartialEq)]
struct Reading {
    header: Option<FeedHeader>,
    ticks: Vec<(Tick, u64)>,
    end: End,
}

/// The file as `docs/FEED_FORMAT.md` specifies it, read from one slice:
/// every intact record before the first damaged one, then that damage
/// with the offset of the record it is in.
fn model(data: &[u8]) -> Reading {
    let mut r = Reading {
        header: None,
        ticks: Vec::new(),
        end: End::Clean,
    };
    let Some(bytes) = data.first_chunk::<HEADER_LEN>() else {
        let seen = data.len().min(MAGIC.len());
        r.end = if data[..seen] == MAGIC[..seen] {
            End::Truncated(0)
        } else {
            End::BadMagic
        };
        return r;
    };
    let header = match FeedHeader::from_bytes(bytes) {
        Ok(h) => h,
        Err(e) => {
            r.end = End::from(&e);
            return r;
        }
    };
    let count = header.count;
    r.header = Some(header);
    let mut at = HEADER_LEN;
    loop {
        let records = r.ticks.len() as u64;
        let offset = at as u64;
        if at == data.len() {
            if count.is_some_and(|c| records < c) {
                r.end = End::Truncated(offset);
            }
            return r;
        }
        if count.is_some_and(|c| records >= c) {
            r.end = End::Corrupt(offset);
            return r;
        }
        match parse_record(&data[at..]) {
            Err(_) => r.end = End::Corrupt(offset),
            Ok(None) => r.end = End::Truncated(offset),
            Ok(Some((payload, used))) => match TickRef::decode(payload) {
                Ok(t) => {
                    at += used;
                    r.ticks.push((t.to_tick(), at as u64));
                    continue;
                }
                Err(_) => r.end = End::Corrupt(offset),
            },
        }
        return r;
    }
}

/// The reader over `io`.
fn read(io: impl std::io::Read) -> Reading {
    let mut reader = match FeedReader::from_reader(io) {
        Ok(r) => r,
        Err(e) => {
            return Reading {
                header: None,
                ticks: Vec::new(),
                end: End::from(&e),
            }
        }
    };
    let header = Some(reader.header().clone());
    let mut ticks = Vec::new();
    loop {
        match reader.read_record() {
            Ok(Some(t)) => {
                let t = t.to_tick();
                ticks.push((t, reader.offset()));
            }
            Ok(None) => {
                return Reading {
                    header,
                    ticks,
                    end: End::Clean,
                }
            }
            Err(e) => {
                assert_eq!(
                    e.offset(),
                    Some(reader.offset()),
                    "error offset ≠ reader offset"
                );
                return Reading {
                    header,
                    ticks,
                    end: End::from(&e),
                };
            }
        }
    }
}

/// Properties:
/// - the reader yields every intact record before the first damaged one,
///   then one error naming the damaged record's offset, exactly as the
///   format's specification (the model above) says, reading the file
///   whole or in random pieces with `Interrupted` reads in between;
/// - after an end or an error it yields nothing more;
/// - memory stays within one record (at most 64 KiB, whatever a length
///   prefix claims) besides the ticks collected;
/// - the intact ticks, written again with `FeedWriter`, read back the same.
pub fn feed_file(data: &[u8]) {
    feed_file_chunked(data, seed_of(data));
}

/// [`feed_file`] with the chunk plan of `seed`.
fn feed_file_chunked(data: &[u8], seed: u64) {
    let reference = model(data);
    let budget = 2 * (MAX_RECORD_LEN + 4) + 4 * data.len() + 4096;
    let whole = alloc::within("FeedReader (whole)", budget, || read(data));
    assert_eq!(whole, reference, "the reader disagrees with the format");
    let pieces = alloc::within("FeedReader (chunked)", budget, || {
        read(ChunkedRead::new(data, seed, ErrorKind::Interrupted))
    });
    assert_eq!(pieces, reference, "chunked reads changed the reading");

    if let Ok(mut reader) = FeedReader::from_reader(data) {
        while let Ok(Some(_)) = reader.read_record() {}
        assert!(
            matches!(reader.read_record(), Ok(None)),
            "read past the end"
        );
    }

    let Some(mut header) = reference.header.clone() else {
        return;
    };
    header.count = Some(reference.ticks.len() as u64);
    let mut writer = FeedWriter::new(Cursor::new(Vec::new()), &header).expect("in memory");
    for (tick, _) in &reference.ticks {
        writer
            .write_tick(&tick.as_ref())
            .expect("a read tick can be written");
    }
    let out = writer.finish().expect("in memory").into_inner();
    let again = read(&out[..]);
    assert_eq!(again.header, Some(header));
    assert_eq!(again.end, End::Clean);
    let ticks = |r: &Reading| r.ticks.iter().map(|(t, _)| t.clone()).collect::<Vec<_>>();
    assert_eq!(
        ticks(&again),
        ticks(&reference),
        "written ticks read back differently"
    );
}
