//! Feed files: round trip, and damage (truncation at every cut point, flipped
//! bytes, bad lengths) reported with the right byte offset after every intact
//! record before it.

use std::io::Cursor;

use proptest::prelude::*;

use feed_simulator::file::{FeedFileError, FeedHeader, FeedReader, FeedWriter, Source, HEADER_LEN};
use feed_simulator::market::{Market, MarketConfig};
use tickcast_protocol::Tick;

fn header(count: Option<u64>) -> FeedHeader {
    FeedHeader {
        count,
        ..FeedHeader::simulated(20, 1_000.0, 4, 0, false)
    }
}

fn sample_ticks(n: usize) -> Vec<Tick> {
    let mut market = Market::new(&MarketConfig {
        symbols: 20,
        seed: 4,
        ..MarketConfig::default()
    })
    .unwrap();
    (0..n).map(|_| market.next_tick()).collect()
}

/// A feed file in memory and the byte offset of each record.
fn file_of(ticks: &[Tick], count: Option<u64>) -> (Vec<u8>, Vec<u64>) {
    let mut w = FeedWriter::new(Vec::new(), &header(count)).unwrap();
    let mut offsets = Vec::new();
    let mut at = HEADER_LEN as u64;
    for t in ticks {
        offsets.push(at);
        w.write_tick(&t.as_ref()).unwrap();
        at += 4 + t.to_vec().len() as u64;
    }
    let bytes = w.finish().unwrap();
    assert_eq!(bytes.len() as u64, at);
    (bytes, offsets)
}

/// Everything a reader yields: the good ticks, then the error if any.
fn read_all(bytes: &[u8]) -> Result<(Vec<Tick>, Option<FeedFileError>), FeedFileError> {
    let reader = FeedReader::from_reader(Cursor::new(bytes))?;
    let mut good = Vec::new();
    for item in reader {
        match item {
            Ok(t) => good.push(t),
            Err(e) => return Ok((good, Some(e))),
        }
    }
    Ok((good, None))
}

#[test]
fn ticks_round_trip_with_header_and_offsets() {
    let ticks = sample_ticks(500);
    let (bytes, offsets) = file_of(&ticks, Some(500));
    let mut reader = FeedReader::from_reader(Cursor::new(&bytes)).unwrap();
    assert_eq!(reader.header(), &header(Some(500)));
    assert_eq!(reader.header().source, Source::Simulated);
    for (want, &offset) in ticks.iter().zip(&offsets) {
        assert_eq!(reader.offset(), offset);
        assert_eq!(&reader.read_record().unwrap().unwrap().to_tick(), want);
    }
    assert_eq!(reader.offset(), bytes.len() as u64);
    assert!(reader.read_record().unwrap().is_none());
    assert!(reader.read_record().unwrap().is_none(), "stays at the end");
    assert_eq!(reader.records(), 500);
}

#[test]
fn open_reads_a_file_from_disk() {
    let ticks = sample_ticks(50);
    let (bytes, _) = file_of(&ticks, Some(50));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.feed");
    std::fs::write(&path, &bytes).unwrap();
    let read: Vec<Tick> = FeedReader::open(&path)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(read, ticks);
    assert!(matches!(
        FeedReader::open(dir.path().join("missing.feed")),
        Err(FeedFileError::Io(_))
    ));
}

#[test]
fn every_cut_point_yields_the_records_before_it_then_truncated() {
    let ticks = sample_ticks(6);
    for count in [Some(6), None] {
        let (bytes, offsets) = file_of(&ticks, count);
        for cut in 0..bytes.len() {
            let cut_bytes = &bytes[..cut];
            if cut < HEADER_LEN {
                assert!(
                    matches!(
                        read_all(cut_bytes),
                        Err(FeedFileError::Truncated { offset: 0 })
                    ),
                    "cut {cut} inside the header"
                );
                continue;
            }
            let (good, err) = read_all(cut_bytes).unwrap();
            // The records wholly before the cut come out intact.
            let whole = offsets
                .iter()
                .zip(&ticks)
                .filter(|(&off, t)| off + 4 + t.to_vec().len() as u64 <= cut as u64)
                .count();
            assert_eq!(good, ticks[..whole], "cut {cut}");
            let next = offsets.get(whole).copied();
            match (err, count) {
                (Some(FeedFileError::Truncated { offset }), _) => {
                    assert_eq!(Some(offset), next, "cut {cut}")
                }
                // Without a record count, a cut between records looks like
                // a shorter file; inside a record it is still caught.
                (None, None) => assert_eq!(next, Some(cut as u64), "cut {cut}"),
                (other, _) => panic!("cut {cut}: unexpected {other:?}"),
            }
        }
    }
}

#[test]
fn flipped_bytes_are_caught_at_the_damaged_record_with_earlier_ones_intact() {
    let ticks = sample_ticks(5);
    let (bytes, offsets) = file_of(&ticks, Some(5));
    let damaged_index = 2;
    let start = offsets[damaged_index] as usize;
    let end = offsets[damaged_index + 1] as usize;
    let mut caught = 0;
    for pos in start..end {
        let mut bad = bytes.clone();
        bad[pos] ^= 0xff;
        let (good, err) = read_all(&bad).unwrap();
        assert_eq!(
            good[..damaged_index],
            ticks[..damaged_index],
            "flip at {pos}"
        );
        match err {
            Some(e) => {
                assert_eq!(e.offset(), Some(start as u64), "flip at {pos}: {e}");
                caught += 1;
            }
            // A flip inside a number can still decode (MessagePack has no
            // checksum): then the stream goes on with the right framing.
            None => assert_eq!(good.len(), ticks.len(), "flip at {pos}"),
        }
    }
    // Lengths, type tags and key names are all checked.
    assert!(caught > (end - start) / 2, "only {caught} flips caught");
}

#[test]
fn bad_lengths_are_corrupt_with_the_record_offset() {
    let ticks = sample_ticks(3);
    let (bytes, offsets) = file_of(&ticks, Some(3));
    let at = offsets[1] as usize;
    for (len, want_truncated) in [
        (0u32, false),
        (u32::MAX, false),
        (70_000, false),
        (9_000, true),
    ] {
        let mut bad = bytes.clone();
        bad[at..at + 4].copy_from_slice(&len.to_be_bytes());
        let (good, err) = read_all(&bad).unwrap();
        assert_eq!(good, ticks[..1], "length {len}");
        match err {
            Some(FeedFileError::Corrupt { offset, reason }) if !want_truncated => {
                assert_eq!(offset, at as u64);
                assert!(reason.contains("length"), "{reason}");
            }
            // A plausible length running past the end of the file.
            Some(FeedFileError::Truncated { offset }) if want_truncated => {
                assert_eq!(offset, at as u64)
            }
            other => panic!("length {len}: unexpected {other:?}"),
        }
    }
    // A short length makes the tick fail to decode: corrupt, same offset.
    let mut bad = bytes.clone();
    let real = u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    bad[at..at + 4].copy_from_slice(&(real - 1).to_be_bytes());
    let (good, err) = read_all(&bad).unwrap();
    assert_eq!(good, ticks[..1]);
    assert!(matches!(err, Some(FeedFileError::Corrupt { offset, .. }) if offset == at as u64));
}

#[test]
fn extra_data_after_the_announced_records_is_corrupt() {
    let ticks = sample_ticks(3);
    let (mut bytes, _) = file_of(&ticks, Some(2));
    let end_of_two = bytes.len() as u64 - 4 - ticks[2].to_vec().len() as u64;
    bytes.push(0);
    let (good, err) = read_all(&bytes).unwrap();
    assert_eq!(good, ticks[..2]);
    assert!(
        matches!(err, Some(FeedFileError::Corrupt { offset, .. }) if offset == end_of_two),
        "{err:?}"
    );
}

#[test]
fn foreign_files_are_rejected_by_magic_and_version() {
    assert!(matches!(
        read_all(b"PK\x03\x04 definitely a zip file, not a feed file at all.........."),
        Err(FeedFileError::BadMagic)
    ));
    assert!(matches!(read_all(b"hello"), Err(FeedFileError::BadMagic)));
    let (mut bytes, _) = file_of(&[], Some(0));
    bytes[8..10].copy_from_slice(&2u16.to_be_bytes());
    assert!(matches!(
        read_all(&bytes),
        Err(FeedFileError::UnsupportedVersion(2))
    ));
}

fn arb_tick() -> impl Strategy<Value = Tick> {
    let sym = "[A-Z][A-Z0-9.]{0,31}";
    let price = 0u64..10_000_000;
    (
        sym,
        any::<u64>(),
        any::<u64>(),
        price.clone(),
        price.clone(),
        price,
    )
        .prop_flat_map(|(sym, seq, ts, a, b, last)| {
            let (bid, ask) = (a.min(b), a.max(b));
            (
                Just((sym, seq, ts, bid, ask, last)),
                any::<(u32, u32, u32, u64, Option<u64>)>(),
            )
        })
        .prop_map(
            |((sym, seq, ts, bid, ask, last), (bs, asz, ls, volume, orig_ts))| Tick {
                sym,
                seq,
                ts,
                bid: bid as f64 / 100.0,
                ask: ask as f64 / 100.0,
                last: last as f64 / 100.0,
                bid_size: bs,
                ask_size: asz,
                last_size: ls,
                volume,
                orig_ts,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_valid_ticks_round_trip(ticks in proptest::collection::vec(arb_tick(), 0..40)) {
        let (bytes, _) = file_of(&ticks, Some(ticks.len() as u64));
        let (good, err) = read_all(&bytes).unwrap();
        prop_assert!(err.is_none());
        prop_assert_eq!(good, ticks);
    }

    #[test]
    fn arbitrary_bytes_after_the_header_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..600),
        count in proptest::option::of(0u64..10),
    ) {
        let (mut bytes, _) = file_of(&[], count);
        bytes.extend_from_slice(&body);
        let (_, err) = read_all(&bytes).unwrap();
        if let Some(offset) = err.as_ref().and_then(FeedFileError::offset) {
            prop_assert!(offset >= HEADER_LEN as u64);
            prop_assert!(offset <= bytes.len() as u64);
        }
    }
}
