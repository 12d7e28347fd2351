//! The programs some tests need beside the Rust toolchain: `node` for the
//! JavaScript hooks, `redis-server` for the cluster, Chromium for the pages.
//! `./test` installs them. Under plain `cargo test` on a machine without one,
//! a test that needs it says so and passes without running; under CI (the
//! `CI` variable set, as `./test` and `.ci/run` set it) it fails instead, so
//! that every test runs there.

use std::path::Path;

/// Whether `program` (a name looked up on `PATH`, or a path) can be run.
pub fn installed(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Whether every test must run: under CI a missing program is a failure.
pub fn required() -> bool {
    std::env::var("CI").is_ok_and(|value| !value.is_empty() && value != "false")
}

/// Whether the test can run with `program`. When it is missing, says so and
/// returns false (the caller returns), or fails under CI.
pub fn needed(program: &str) -> bool {
    if installed(program) {
        return true;
    }
    let why = format!("{program} is not installed (run ./test)");
    assert!(!required(), "{why}");
    skipped(&why);
    false
}

/// Says that a test was skipped and why, once per test (a property test
/// asks at each case; a test runs on a thread of its own). Written to the
/// process's standard error itself, not through `eprintln!`, which the test
/// harness keeps to itself for a test that passes: the reader must see it.
pub fn skipped(why: &str) {
    use std::io::Write;
    thread_local! {
        static SAID: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let first = SAID.with_borrow_mut(|said| {
        let first = !said.iter().any(|s| s == why);
        if first {
            said.push(why.to_string());
        }
        first
    });
    if first {
        let _ = writeln!(std::io::stderr(), "skipped: {why}");
    }
}
