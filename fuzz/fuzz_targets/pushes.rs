//! Pushes to both ingestion endpoints of the real router, over the fixture
//! of `tests/support/pushes.rs`: counters that overflow, samples at the edges.
#![no_main]

use std::sync::OnceLock;

mod fixture;
#[path = "../../tests/support/pushes.rs"]
mod pushes;
#[allow(dead_code)] // the fixture's service only
#[path = "../../tests/support/queries.rs"]
mod queries;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    static FIXTURE: OnceLock<fixture::Fixture> = OnceLock::new();
    let fixture = FIXTURE.get_or_init(|| fixture::Fixture::new(pushes::fixture));
    fixture
        .runtime
        .block_on(pushes::check(&fixture.service, data));
});
