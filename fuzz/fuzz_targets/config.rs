//! See `alertd::fuzz::config` for the property checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| alertd::fuzz::config(data));
