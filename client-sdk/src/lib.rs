//! Client SDK (being written).
