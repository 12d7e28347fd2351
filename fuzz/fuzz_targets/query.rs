//! Query strings against every GET endpoint of the real router, over the
//! fixture of `tests/support/queries.rs`.
#![no_main]

use std::sync::{Arc, OnceLock};

use alertd::service::Service;

#[path = "../../tests/support/queries.rs"]
mod queries;

struct Fixture {
    runtime: tokio::runtime::Runtime,
    service: Arc<Service>,
    _dir: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let service = queries::fixture(dir.path());
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
        .block_on(queries::check(&fixture.service, data));
});
