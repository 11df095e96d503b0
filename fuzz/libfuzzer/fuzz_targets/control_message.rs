#![no_main]
//! `tickcast_fuzz::control_message` under libFuzzer: the properties are in its docs.

use libfuzzer_sys::fuzz_target;
use tickcast_fuzz::alloc::Tracking;

#[global_allocator]
static ALLOC: Tracking = Tracking;

fuzz_target!(|data: &[u8]| tickcast_fuzz::control_message(data));
