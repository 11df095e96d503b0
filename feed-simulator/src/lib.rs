//! Feed simulator (being written).
