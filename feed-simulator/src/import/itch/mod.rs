//! Importing NASDAQ TotalView-ITCH 5.0: the full order-by-order feed, as
//! distributed (each message behind a 2-byte big-endian length), rebuilt
//! into per-stock books whose best bid and offer become ticks.
//!
//! A tick is written on every change of a stock's best bid or offer (price
//! or size) and on every trade (executions and non-cross trade messages set
//! `last`, `last_size` and `volume`), once its book has both sides and is
//! not crossed. Timestamps are nanoseconds since midnight New York, so the
//! day is given (`--date`).
//!
//! Built for speed (the aim: 5 M messages a second on one core, see
//! `benches/benches/import.rs`): the input is read in 1 MiB chunks and
//! messages are parsed in place; stocks are a vector indexed by their
//! locate code; live orders sit in one flat open-addressing map keyed by
//! order number, hashed so that recent orders share cache lines
//! (`orders.rs`); books are sorted vectors with
//! the best level last. Nothing is allocated per message; a tick is
//! encoded only when the top of book moved.

mod book;
mod messages;
mod orders;

use std::collections::hash_map::Entry;
use std::collections::HashSet;
use std::io::{ErrorKind, Read, Seek, Write};

use tickcast_protocol::control::validate_topic;
use tickcast_protocol::WILDCARD;

use super::sink::{fixed_price, SymbolId, TickSink};
use super::{Damage, ImportError, ImportReport, ImportStats, PROGRESS_EVERY};
use book::{Book, Price, Top};
use messages::{parse, symbol, Message, Parsed};
use orders::Orders;

/// Read chunk: big sequential reads, and always room for the longest
/// message (2 + 65,535 bytes).
const CHUNK: usize = 1024 * 1024;

/// ITCH prices have four implied decimals.
const PRICE_SCALE: f64 = 1e4;

/// Live orders a day's book starts with room for (grows as needed; a busy
/// day peaks at a few million).
const INITIAL_ORDERS: usize = 1 << 10;

/// What to import.
#[derive(Debug, Clone, Default)]
pub struct ItchOptions {
    /// Nanoseconds since the Unix epoch of the day's midnight in New York
    /// (`new_york::Date::new_york_midnight`): ITCH times count from it.
    pub day_start: u64,
    /// Only these symbols (all when `None`).
    pub symbols: Option<HashSet<String>>,
}

/// A live order.
#[derive(Debug, Clone, Copy)]
struct Order {
    locate: u16,
    buy: bool,
    price: Price,
    shares: u32,
}

/// A stock being imported.
#[derive(Debug)]
struct Stock {
    id: SymbolId,
    book: Book,
    /// The top of book last given to the sink.
    top: Top,
}

/// What a locate code stands for.
#[derive(Debug)]
enum Slot {
    /// Not seen yet.
    Unknown,
    /// Not imported (not in `--symbols`, or not a valid tickcast symbol).
    Ignored,
    Stock(Stock),
}

/// The state of one ITCH import.
struct Itch<W: Write + Seek> {
    sink: TickSink<W>,
    stocks: Vec<Slot>,
    orders: Orders<Order>,
    filter: Option<HashSet<Vec<u8>>>,
    day_start: u64,
    skipped: u64,
}

/// Converts the ITCH 5.0 stream on `input` into a feed file written to
/// `out`, calling `progress` with the input bytes consumed now and then.
/// Damage part-way (a cut message, a known type at a wrong length) is
/// reported in the result's `damage`, with every tick before it written.
pub fn import_itch<R: Read, W: Write + Seek>(
    mut input: R,
    out: W,
    options: &ItchOptions,
    mut progress: impl FnMut(u64),
) -> Result<ImportReport<W>, ImportError> {
    let mut itch = Itch {
        sink: TickSink::new(out)?,
        stocks: Vec::new(),
        orders: Orders::with_capacity_and_hasher(INITIAL_ORDERS, Default::default()),
        filter: options
            .symbols
            .as_ref()
            .map(|s| s.iter().map(|sym| sym.as_bytes().to_vec()).collect()),
        day_start: options.day_start,
        skipped: 0,
    };
    let mut buf = vec![0u8; CHUNK];
    let (mut start, mut end) = (0usize, 0usize);
    // Byte offset of `buf[start]` in the input.
    let mut offset = 0u64;
    let mut read = 0u64;
    let damage = 'input: loop {
        while end - start >= 2 {
            let len = usize::from(u16::from_be_bytes([buf[start], buf[start + 1]]));
            if end - start < 2 + len {
                break;
            }
            match parse(&buf[start + 2..start + 2 + len]) {
                Ok(parsed) => itch.apply(parsed)?,
                Err(reason) => break 'input Some(Damage { offset, reason }),
            }
            start += 2 + len;
            offset += 2 + len as u64;
            read += 1;
            if read % PROGRESS_EVERY == 0 {
                progress(offset);
            }
        }
        buf.copy_within(start..end, 0);
        end -= start;
        start = 0;
        let n = loop {
            match input.read(&mut buf[end..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        };
        if n == 0 {
            break (end > 0).then(|| Damage {
                offset,
                reason: format!("the input ends inside a message ({end} of its bytes present)"),
            });
        }
        end += n;
    };
    progress(offset);
    let skipped = itch.skipped;
    let (out, records, symbols) = itch.sink.finish()?;
    Ok(ImportReport {
        out,
        stats: ImportStats {
            records,
            symbols,
            read,
            skipped,
        },
        damage,
    })
}

impl<W: Write + Seek> Itch<W> {
    /// Applies one message to its stock's book and writes the tick it makes.
    #[inline]
    fn apply(&mut self, p: Parsed) -> std::io::Result<()> {
        let locate = usize::from(p.locate);
        // The stock whose book changed, and whether there was a trade.
        let (locate, traded) = match p.message {
            Message::StockDirectory { stock } => {
                self.register(locate, &stock);
                self.skipped += 1;
                return Ok(());
            }
            Message::Add {
                order,
                buy,
                shares,
                stock,
                price,
            } => {
                if !self.is_imported(locate, &stock) {
                    self.skipped += 1;
                    return Ok(());
                }
                let Entry::Vacant(slot) = self.orders.entry(order) else {
                    self.skipped += 1;
                    return Ok(());
                };
                slot.insert(Order {
                    locate: p.locate,
                    buy,
                    price,
                    shares,
                });
                if let Some(book) = self.book(locate) {
                    book.add(buy, price, shares);
                }
                (locate, false)
            }
            Message::Executed {
                order,
                shares,
                price,
                printable,
            } => match self.take(locate, order, Some(shares)) {
                Some((o, taken)) => {
                    let at = usize::from(o.locate);
                    if let Some(id) = self.id(at).filter(|_| printable) {
                        let price = fixed_price(i64::from(price.unwrap_or(o.price)), PRICE_SCALE);
                        self.sink.trade(id, price, taken, true);
                    }
                    (at, printable)
                }
                None => return Ok(()),
            },
            Message::Cancel { order, shares } => match self.take(locate, order, Some(shares)) {
                Some((o, _)) => (usize::from(o.locate), false),
                None => return Ok(()),
            },
            Message::Delete { order } => match self.take(locate, order, None) {
                Some((o, _)) => (usize::from(o.locate), false),
                None => return Ok(()),
            },
            Message::Replace {
                old,
                new,
                shares,
                price,
            } => {
                if self.orders.contains_key(&new) {
                    self.skipped += 1;
                    return Ok(());
                }
                match self.take(locate, old, None) {
                    Some((o, _)) => {
                        let at = usize::from(o.locate);
                        self.orders.insert(new, Order { price, shares, ..o });
                        if let Some(book) = self.book(at) {
                            book.add(o.buy, price, shares);
                        }
                        (at, false)
                    }
                    None => return Ok(()),
                }
            }
            Message::Trade { shares, price } => {
                let Some(id) = self.id(locate) else {
                    self.skipped += 1;
                    return Ok(());
                };
                let price = fixed_price(i64::from(price), PRICE_SCALE);
                self.sink.trade(id, price, shares, true);
                (locate, true)
            }
            Message::Other => {
                self.skipped += 1;
                return Ok(());
            }
        };
        self.tick(locate, p.ns, traded)
    }

    /// Writes a tick for the stock at `locate` if its top of book moved or
    /// it traded.
    #[inline]
    fn tick(&mut self, locate: usize, ns: u64, traded: bool) -> std::io::Result<()> {
        let Some(Slot::Stock(stock)) = self.stocks.get_mut(locate) else {
            return Ok(());
        };
        let top = stock.book.top();
        let moved = top != stock.top;
        if moved {
            stock.top = top;
            match top {
                (Some((bid, bid_size)), Some((ask, ask_size))) => {
                    let size = |s: u64| u32::try_from(s).unwrap_or(u32::MAX);
                    self.sink.quote(
                        stock.id,
                        (fixed_price(i64::from(bid), PRICE_SCALE), size(bid_size)),
                        (fixed_price(i64::from(ask), PRICE_SCALE), size(ask_size)),
                    );
                }
                _ => self.sink.clear_book(stock.id),
            }
        }
        let ts = self.day_start.saturating_add(ns);
        if !(moved || traded) || !self.sink.emit(stock.id, ts, Some(ts))? {
            self.skipped += 1;
        }
        Ok(())
    }

    /// Takes `shares` (all when `None`) off a live order of an imported
    /// stock, updating its book; gives the order as it was and the shares
    /// taken. An unknown order (of another stock, or added before the file
    /// began) is counted as skipped.
    #[inline]
    fn take(&mut self, locate: usize, order: u64, shares: Option<u32>) -> Option<(Order, u32)> {
        if !matches!(self.stocks.get(locate), Some(Slot::Stock(_))) {
            self.skipped += 1;
            return None;
        }
        // One probe of the map for the lookup and the removal (an entry,
        // not `get_mut` then `remove`).
        let Entry::Occupied(mut entry) = self.orders.entry(order) else {
            self.skipped += 1;
            return None;
        };
        let was = *entry.get();
        let taken = shares.map_or(was.shares, |s| s.min(was.shares));
        if taken == was.shares {
            entry.remove();
        } else {
            entry.get_mut().shares -= taken;
        }
        if let Some(book) = self.book(usize::from(was.locate)) {
            book.remove(was.buy, was.price, taken);
        }
        Some((was, taken))
    }

    /// Whether the stock at `locate` is imported, registering it from the
    /// add order's stock field on first sight (a file without its stock
    /// directory messages still imports).
    fn is_imported(&mut self, locate: usize, stock: &[u8; 8]) -> bool {
        match self.stocks.get(locate) {
            Some(Slot::Stock(_)) => true,
            Some(Slot::Ignored) => false,
            Some(Slot::Unknown) | None => {
                self.register(locate, stock);
                matches!(self.stocks.get(locate), Some(Slot::Stock(_)))
            }
        }
    }

    /// Records what the locate code stands for (a stock directory message,
    /// or the first add order naming it).
    fn register(&mut self, locate: usize, stock: &[u8; 8]) {
        if self.stocks.len() <= locate {
            self.stocks.resize_with(locate + 1, || Slot::Unknown);
        }
        if matches!(self.stocks[locate], Slot::Stock(_)) {
            return;
        }
        let sym = symbol(stock);
        let wanted = self.filter.as_ref().is_none_or(|f| f.contains(sym));
        let name = std::str::from_utf8(sym)
            .ok()
            .filter(|s| *s != WILDCARD && validate_topic(s).is_ok());
        self.stocks[locate] = match name.filter(|_| wanted) {
            Some(name) => Slot::Stock(Stock {
                id: self.sink.intern(name),
                book: Book::new(),
                top: (None, None),
            }),
            None => Slot::Ignored,
        };
    }

    /// The book of an imported stock (orders are stored only for those,
    /// and a slot never stops being one, so `None` does not happen).
    fn book(&mut self, locate: usize) -> Option<&mut Book> {
        match self.stocks.get_mut(locate) {
            Some(Slot::Stock(stock)) => Some(&mut stock.book),
            _ => None,
        }
    }

    fn id(&self, locate: usize) -> Option<SymbolId> {
        match self.stocks.get(locate) {
            Some(Slot::Stock(stock)) => Some(stock.id),
            _ => None,
        }
    }
}
