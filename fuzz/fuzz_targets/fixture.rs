//! A service on one of the fixtures of `tests/support/`, made once per
//! fuzzing process, with a runtime to call it on.

use std::path::Path;
use std::sync::Arc;

use alertd::service::Service;

pub struct Fixture {
    pub runtime: tokio::runtime::Runtime,
    pub service: Arc<Service>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new(make: fn(&Path) -> Arc<Service>) -> Fixture {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let service = make(dir.path());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        Fixture {
            runtime,
            service,
            _dir: dir,
        }
    }
}
