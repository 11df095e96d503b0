//! `csv_import`: `feed_simulator::import::import_csv` on any CSV text.

use std::collections::HashMap;
use std::io::Cursor;

use feed_simulator::file::{FeedReader, Source};
use feed_simulator::import::{import_csv, ImportError};

use crate::alloc;

/// The importer's fixed buffers: the feed writer's 256 KiB and the CSV
/// reader's, with room for a copy while a buffer grows.
const FIXED_BUFFERS: usize = 1024 * 1024;

/// Properties:
/// - an import that succeeds writes a feed file that reads back whole:
///   a header saying "imported", the record count and the symbol count
///   the import reported, a finite non-negative rate; every tick valid,
///   in time order, each symbol's `seq` counting 1, 2, 3…, its volume
///   never going down;
/// - a bad row is reported with a line number past the header's;
/// - memory is the fixed buffers plus a small multiple of the input.
pub fn csv_import(data: &[u8]) {
    let budget = FIXED_BUFFERS + 64 * data.len();
    let imported = alloc::within("import_csv", budget, || {
        import_csv(data, Cursor::new(Vec::new()), |_| {})
    });
    let (out, stats) = match imported {
        Ok(done) => done,
        Err(ImportError::BadRow { line, .. }) => {
            assert!(line >= 2, "bad row at line {line}");
            return;
        }
        Err(ImportError::Io(e)) => panic!("writing into memory failed: {e}"),
        Err(ImportError::MissingColumn(_) | ImportError::Csv(_)) => return,
        Err(e @ ImportError::Unsupported { .. }) => panic!("a CSV is never unsupported: {e}"),
    };
    let file = out.into_inner();
    let mut reader = FeedReader::from_reader(&file[..]).expect("an imported header reads");
    let header = reader.header().clone();
    assert_eq!(header.source, Source::Imported);
    assert_eq!(header.count, Some(stats.records));
    assert_eq!(header.symbols as usize, stats.symbols);
    assert!(header.rate.is_finite() && header.rate >= 0.0);

    let mut last: HashMap<String, (u64, u64)> = HashMap::new();
    let mut prev_ts = 0;
    let mut n = 0;
    while let Some(tick) = reader.read_record().expect("an imported record reads") {
        n += 1;
        assert!(tick.ts >= prev_ts, "ticks out of time order");
        prev_ts = tick.ts;
        let (seq, volume) = last.get(tick.sym).copied().unwrap_or((0, 0));
        assert_eq!(tick.seq, seq + 1, "{}'s seq skips", tick.sym);
        assert!(tick.volume >= volume, "{}'s volume went down", tick.sym);
        last.insert(tick.sym.to_owned(), (tick.seq, tick.volume));
    }
    assert_eq!(n, stats.records);
    assert_eq!(last.len(), stats.symbols);
}
