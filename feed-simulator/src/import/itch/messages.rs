//! NASDAQ TotalView-ITCH 5.0 messages: the layouts of the ones that build a
//! book, parsed in place from a borrowed slice (nothing is copied or
//! allocated per message).
//!
//! Every message starts with its type (1 byte), stock locate (2), tracking
//! number (2) and timestamp (6: nanoseconds since midnight, Eastern);
//! integers are big-endian, prices have four implied decimals. Lengths are
//! the spec's (section 1.4 onwards) and are checked: a known type at any
//! other length is damage.

/// Stock Directory (`R`).
pub(super) const LEN_STOCK_DIRECTORY: usize = 39;
/// Add Order, no MPID (`A`).
pub(super) const LEN_ADD: usize = 36;
/// Add Order with MPID attribution (`F`).
pub(super) const LEN_ADD_MPID: usize = 40;
/// Order Executed (`E`).
pub(super) const LEN_EXECUTED: usize = 31;
/// Order Executed With Price (`C`).
pub(super) const LEN_EXECUTED_PRICE: usize = 36;
/// Order Cancel (`X`).
pub(super) const LEN_CANCEL: usize = 23;
/// Order Delete (`D`).
pub(super) const LEN_DELETE: usize = 19;
/// Order Replace (`U`).
pub(super) const LEN_REPLACE: usize = 35;
/// Trade, non-cross (`P`).
pub(super) const LEN_TRADE: usize = 44;

/// The common header's length: type, locate, tracking number, timestamp.
const HEADER: usize = 11;

/// A message that matters for the book (or the last trade).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Message {
    /// A stock's locate code and symbol for the day.
    StockDirectory { stock: [u8; 8] },
    /// A new order on the book (`A` and `F`).
    Add {
        order: u64,
        buy: bool,
        shares: u32,
        stock: [u8; 8],
        price: u32,
    },
    /// Part or all of an order executed at its price (`E`), or at another
    /// price (`C`; `printable` false: not to be counted in volume).
    Executed {
        order: u64,
        shares: u32,
        price: Option<u32>,
        printable: bool,
    },
    /// Part of an order cancelled.
    Cancel { order: u64, shares: u32 },
    /// The rest of an order cancelled.
    Delete { order: u64 },
    /// An order replaced by a new one (same side and stock).
    Replace {
        old: u64,
        new: u64,
        shares: u32,
        price: u32,
    },
    /// A match against a non-displayed order: a trade, not on the book.
    Trade { shares: u32, price: u32 },
    /// Any other type (system events, halts, imbalances, cross trades, …).
    Other,
}

/// A parsed message: its stock locate code, timestamp and body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Parsed {
    pub locate: u16,
    /// Nanoseconds since midnight.
    pub ns: u64,
    pub message: Message,
}

/// Parses one message (without its length prefix). `Err` names what is
/// wrong: a known type at the wrong length, or an empty message.
#[inline]
pub(super) fn parse(m: &[u8]) -> Result<Parsed, String> {
    let Some(&kind) = m.first() else {
        return Err("an empty message".to_owned());
    };
    let expected = match kind {
        b'R' => LEN_STOCK_DIRECTORY,
        b'A' => LEN_ADD,
        b'F' => LEN_ADD_MPID,
        b'E' => LEN_EXECUTED,
        b'C' => LEN_EXECUTED_PRICE,
        b'X' => LEN_CANCEL,
        b'D' => LEN_DELETE,
        b'U' => LEN_REPLACE,
        b'P' => LEN_TRADE,
        _ => {
            return Ok(Parsed {
                locate: 0,
                ns: 0,
                message: Message::Other,
            })
        }
    };
    if m.len() != expected {
        return Err(format!(
            "message type '{}' must be {expected} bytes long, not {}",
            kind as char,
            m.len()
        ));
    }
    // From here every field read is within the checked length.
    let message = match kind {
        b'R' => Message::StockDirectory {
            stock: stock(m, 11),
        },
        b'A' | b'F' => Message::Add {
            order: u64_at(m, 11),
            buy: m[19] == b'B',
            shares: u32_at(m, 20),
            stock: stock(m, 24),
            price: u32_at(m, 32),
        },
        b'E' => Message::Executed {
            order: u64_at(m, 11),
            shares: u32_at(m, 19),
            price: None,
            printable: true,
        },
        b'C' => Message::Executed {
            order: u64_at(m, 11),
            shares: u32_at(m, 19),
            printable: m[31] == b'Y',
            price: Some(u32_at(m, 32)),
        },
        b'X' => Message::Cancel {
            order: u64_at(m, 11),
            shares: u32_at(m, 19),
        },
        b'D' => Message::Delete {
            order: u64_at(m, 11),
        },
        b'U' => Message::Replace {
            old: u64_at(m, 11),
            new: u64_at(m, 19),
            shares: u32_at(m, 27),
            price: u32_at(m, 31),
        },
        // 'P': order reference (always 0 since 2010), side, shares, stock,
        // price, match number.
        _ => Message::Trade {
            shares: u32_at(m, 20),
            price: u32_at(m, 32),
        },
    };
    let mut ts = [0u8; 8];
    ts[2..].copy_from_slice(&m[5..HEADER]);
    Ok(Parsed {
        locate: u16::from_be_bytes([m[1], m[2]]),
        ns: u64::from_be_bytes(ts),
        message,
    })
}

fn u32_at(m: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&m[at..at + 4]);
    u32::from_be_bytes(b)
}

fn u64_at(m: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&m[at..at + 8]);
    u64::from_be_bytes(b)
}

fn stock(m: &[u8], at: usize) -> [u8; 8] {
    let mut b = [0u8; 8];
    b.copy_from_slice(&m[at..at + 8]);
    b
}

/// The symbol in an 8-byte, space-padded stock field.
pub(super) fn symbol(stock: &[u8; 8]) -> &[u8] {
    let end = stock.iter().rposition(|&c| c != b' ').map_or(0, |i| i + 1);
    &stock[..end]
}
