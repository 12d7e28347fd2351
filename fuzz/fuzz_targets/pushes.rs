//! Pushes to both ingestion endpoints of the real router, over the fixture
//! of `tests/support/pushes.rs`: counters that overflow, samples at the edges.
#![no_main]

use std::sync::{Arc, OnceLock};

use alertd::service::Service;

#[path = "../../tests/support/pushes.rs"]
mod pushes;

struct Fixture {
    runtime: tokio::runtime::Runtime,
    service: Arc<Service>,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let service = pushes::fixture(dir.path());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        Fixture {
            runtime,
            service,
            _dir: dir,
        }
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let fixture = fixture();
    fixture
        .runtime
        .block_on(pushes::check(&fixture.service, data));
});
