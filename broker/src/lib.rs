//! Broker (being written).
