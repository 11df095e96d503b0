//! One WebSocket client: its frame reader, its session, the registry.
pub mod connections;
pub mod reader;
pub mod session;
