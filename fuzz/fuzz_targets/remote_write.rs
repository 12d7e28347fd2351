//! See `alertd::fuzz::remote_write` for the property checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| alertd::fuzz::remote_write(data));
