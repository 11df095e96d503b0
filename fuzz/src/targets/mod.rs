//! One module per target; each target's doc lists its properties.

pub mod control;
pub mod csv_import;
pub mod feed_file;
pub mod frame_reader;
pub mod ingest;
pub mod tick;
