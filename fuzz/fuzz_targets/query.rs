//! Query strings against every GET endpoint of the real router, over the
//! fixture of `tests/support/queries.rs`.
#![no_main]

use std::sync::OnceLock;

mod fixture;
#[path = "../../tests/support/queries.rs"]
mod queries;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    static FIXTURE: OnceLock<fixture::Fixture> = OnceLock::new();
    let fixture = FIXTURE.get_or_init(|| fixture::Fixture::new(queries::fixture));
    fixture
        .runtime
        .block_on(queries::check(&fixture.service, data));
});
