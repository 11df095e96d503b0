//! Test helpers shared by the integration tests (and the import bench).

pub mod itch;
