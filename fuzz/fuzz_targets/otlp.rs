//! See `alertd::fuzz::otlp` for the property checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| alertd::fuzz::otlp(data));
