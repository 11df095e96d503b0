//! Benches (being written).
