//! NASDAQ TotalView-ITCH 5.0 messages written byte by byte from the spec's
//! layouts (section 1.4 onwards; big-endian, prices with four implied
//! decimals, symbols space-padded to 8), each behind the 2-byte length of
//! the distributed files. Used by the import tests and by the import
//! benchmark (`benches/benches/import.rs` includes this file), and
//! written independently of the importer's parser.

// Each test binary (and the bench) uses the part it needs.
#![allow(dead_code)]

/// An ITCH byte stream being built.
#[derive(Default)]
pub struct ItchStream {
    pub bytes: Vec<u8>,
}

fn stock8(stock: &str) -> [u8; 8] {
    let mut b = [b' '; 8];
    b[..stock.len()].copy_from_slice(stock.as_bytes());
    b
}

impl ItchStream {
    /// Appends one message: type, stock locate, tracking number 0, the
    /// 6-byte timestamp, then `body`.
    fn push(&mut self, kind: u8, locate: u16, ns: u64, body: &[&[u8]]) {
        let len: usize = 11 + body.iter().map(|b| b.len()).sum::<usize>();
        self.bytes.extend_from_slice(&(len as u16).to_be_bytes());
        self.bytes.push(kind);
        self.bytes.extend_from_slice(&locate.to_be_bytes());
        self.bytes.extend_from_slice(&0u16.to_be_bytes());
        self.bytes.extend_from_slice(&ns.to_be_bytes()[2..]);
        for part in body {
            self.bytes.extend_from_slice(part);
        }
    }

    /// `R` (39 bytes): a stock's locate code for the day.
    pub fn stock_directory(&mut self, locate: u16, ns: u64, stock: &str) {
        self.push(
            b'R',
            locate,
            ns,
            &[
                &stock8(stock),
                b"Q",                  // market category
                b"N",                  // financial status
                &100u32.to_be_bytes(), // round lot size
                b"N",                  // round lots only
                b"C",                  // issue classification
                b"Z ",                 // issue sub-type
                b"P",                  // authenticity
                b"N",                  // short sale threshold
                b"N",                  // IPO flag
                b"1",                  // LULD reference price tier
                b"N",                  // ETP flag
                &0u32.to_be_bytes(),   // ETP leverage factor
                b"N",                  // inverse indicator
            ],
        );
    }

    /// `A` (36 bytes): add order, no MPID.
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        locate: u16,
        ns: u64,
        order: u64,
        buy: bool,
        shares: u32,
        stock: &str,
        price: u32,
    ) {
        let side: &[u8] = if buy { b"B" } else { b"S" };
        self.push(
            b'A',
            locate,
            ns,
            &[
                &order.to_be_bytes(),
                side,
                &shares.to_be_bytes(),
                &stock8(stock),
                &price.to_be_bytes(),
            ],
        );
    }

    /// `F` (40 bytes): add order with MPID attribution.
    #[allow(clippy::too_many_arguments)]
    pub fn add_mpid(
        &mut self,
        locate: u16,
        ns: u64,
        order: u64,
        buy: bool,
        shares: u32,
        stock: &str,
        price: u32,
        mpid: &str,
    ) {
        let side: &[u8] = if buy { b"B" } else { b"S" };
        self.push(
            b'F',
            locate,
            ns,
            &[
                &order.to_be_bytes(),
                side,
                &shares.to_be_bytes(),
                &stock8(stock),
                &price.to_be_bytes(),
                mpid.as_bytes(),
            ],
        );
    }

    /// `E` (31 bytes): order executed at its price.
    pub fn executed(&mut self, locate: u16, ns: u64, order: u64, shares: u32, match_no: u64) {
        self.push(
            b'E',
            locate,
            ns,
            &[
                &order.to_be_bytes(),
                &shares.to_be_bytes(),
                &match_no.to_be_bytes(),
            ],
        );
    }

    /// `C` (36 bytes): order executed with price.
    #[allow(clippy::too_many_arguments)]
    pub fn executed_with_price(
        &mut self,
        locate: u16,
        ns: u64,
        order: u64,
        shares: u32,
        match_no: u64,
        printable: bool,
        price: u32,
    ) {
        let printable: &[u8] = if printable { b"Y" } else { b"N" };
        self.push(
            b'C',
            locate,
            ns,
            &[
                &order.to_be_bytes(),
                &shares.to_be_bytes(),
                &match_no.to_be_bytes(),
                printable,
                &price.to_be_bytes(),
            ],
        );
    }

    /// `X` (23 bytes): part of an order cancelled.
    pub fn cancel(&mut self, locate: u16, ns: u64, order: u64, shares: u32) {
        self.push(
            b'X',
            locate,
            ns,
            &[&order.to_be_bytes(), &shares.to_be_bytes()],
        );
    }

    /// `D` (19 bytes): order deleted.
    pub fn delete(&mut self, locate: u16, ns: u64, order: u64) {
        self.push(b'D', locate, ns, &[&order.to_be_bytes()]);
    }

    /// `U` (35 bytes): order replaced.
    pub fn replace(&mut self, locate: u16, ns: u64, old: u64, new: u64, shares: u32, price: u32) {
        self.push(
            b'U',
            locate,
            ns,
            &[
                &old.to_be_bytes(),
                &new.to_be_bytes(),
                &shares.to_be_bytes(),
                &price.to_be_bytes(),
            ],
        );
    }

    /// `P` (44 bytes): non-cross trade (against a hidden order).
    #[allow(clippy::too_many_arguments)]
    pub fn trade(
        &mut self,
        locate: u16,
        ns: u64,
        buy: bool,
        shares: u32,
        stock: &str,
        price: u32,
        match_no: u64,
    ) {
        let side: &[u8] = if buy { b"B" } else { b"S" };
        self.push(
            b'P',
            locate,
            ns,
            &[
                &0u64.to_be_bytes(), // order reference: 0
                side,
                &shares.to_be_bytes(),
                &stock8(stock),
                &price.to_be_bytes(),
                &match_no.to_be_bytes(),
            ],
        );
    }

    /// `S` (12 bytes): system event (a type the book does not use).
    pub fn system_event(&mut self, ns: u64, code: u8) {
        self.push(b'S', 0, ns, &[&[code]]);
    }
}
