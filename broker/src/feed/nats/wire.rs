//! What a tick looks like on NATS: the subject of a symbol and the
//! header that carries its epoch.

/// The header that carries a tick's epoch.
pub const EPOCH_HEADER: &str = "Tickcast-Epoch";

/// The subject of `sym`'s ticks, or `None` when the symbol cannot be one
/// token path (an empty token: `..`, a leading or trailing `.`; or a NATS
/// wildcard or space in it). Symbols clients can subscribe to never have
/// `*`, `>` or spaces (`validate_topic`); `.` is allowed and simply
/// becomes more tokens (`BRK.B` → `tickcast.ticks.BRK.B`).
pub fn subject(prefix: &str, sym: &str) -> Option<String> {
    let fine = !sym.is_empty()
        && sym.split('.').all(|token| {
            !token.is_empty()
                && token
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'*' && b != b'>')
        });
    fine.then(|| format!("{prefix}.{sym}"))
}

/// Every subject under `prefix`: `<prefix>.>`.
pub fn every_subject(prefix: &str) -> String {
    format!("{prefix}.>")
}

/// Whether `prefix` is plain NATS tokens: letters, digits, `-` or `_`,
/// separated by single dots (no wildcard, no empty token).
pub fn valid_prefix(prefix: &str) -> bool {
    !prefix.is_empty()
        && prefix.split('.').all(|token| {
            !token.is_empty()
                && token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symbol_is_a_subject_when_its_tokens_are_whole() {
        assert_eq!(subject("t.x", "AAPL").as_deref(), Some("t.x.AAPL"));
        assert_eq!(subject("t.x", "BRK.B").as_deref(), Some("t.x.BRK.B"));
        assert_eq!(subject("t.x", "ES:H7^").as_deref(), Some("t.x.ES:H7^"));
        for bad in ["", ".A", "A.", "A..B", "A*", ">", "A B"] {
            assert_eq!(subject("t.x", bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_prefix_is_plain_tokens() {
        assert!(valid_prefix("tickcast.ticks"));
        assert!(valid_prefix("desk-1.ticks_a"));
        for bad in ["", "a..b", "a.*", "a.>", ".a", "a b"] {
            assert!(!valid_prefix(bad), "{bad:?}");
        }
    }
}
