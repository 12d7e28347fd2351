//! The fuzz targets' short form, run by `cargo test`: every saved input
//! (`fuzz/seeds/TARGET/`, and `fuzz/regressions/TARGET/` where each input a
//! fuzzer once broke alertd with is kept) through the same checks as the
//! targets, then a few thousand mutations of the seeds from a fixed-seed
//! generator. The long runs are `cargo fuzz run TARGET` (docs/robustness.md).

mod support;

use std::path::{Path, PathBuf};

use support::{pushes, queries};

fn saved_inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut inputs = Vec::new();
    for kind in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(kind).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            inputs.push((path.clone(), std::fs::read(&path).unwrap()));
        }
    }
    inputs.sort();
    assert!(!inputs.is_empty(), "no saved input for {target}");
    inputs
}

/// Byte-level mutations of the saved inputs, the same on every run.
fn mutations(inputs: &[(PathBuf, Vec<u8>)], count: usize) -> Vec<Vec<u8>> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    const TOKENS: &[&[u8]] = &[
        b"{",
        b"}",
        b"[",
        b"]",
        b"\"",
        b":",
        b",",
        b"-",
        b"e308",
        b"1e-400",
        b"NaN",
        b"null",
        b"\\u0000",
        b"\xff",
        b"9223372036854775808",
        b"-9223372036854775809",
        b"0.",
        b"ms",
        b"%",
        b"&",
        b"=",
        b"frame=",
        b"from=",
        b"to=",
        b"resolution=",
        b"page=",
    ];
    (0..count)
        .map(|_| {
            let mut bytes = inputs[next() as usize % inputs.len()].1.clone();
            for _ in 0..1 + next() % 4 {
                let at = if bytes.is_empty() {
                    0
                } else {
                    next() as usize % bytes.len()
                };
                match next() % 4 {
                    0 if !bytes.is_empty() => {
                        let end = (at + 1 + next() as usize % 8).min(bytes.len());
                        bytes.drain(at..end);
                    }
                    1 => {
                        let token = TOKENS[next() as usize % TOKENS.len()];
                        bytes.splice(at..at, token.iter().copied());
                    }
                    2 if !bytes.is_empty() => bytes[at] = next() as u8,
                    _ => {
                        let copy: Vec<u8> = bytes.iter().skip(at).take(16).copied().collect();
                        bytes.splice(at..at, copy);
                    }
                }
            }
            bytes
        })
        .collect()
}

fn run(target: &str, count: usize, check: impl Fn(&[u8])) {
    let inputs = saved_inputs(target);
    for (path, bytes) in &inputs {
        eprintln!("{target}: {}", path.display());
        check(bytes);
    }
    for bytes in mutations(&inputs, count) {
        check(&bytes);
    }
}

#[test]
fn config_inputs() {
    run("config", 3_000, alertd::fuzz::config);
}

#[test]
fn sample_inputs() {
    run("sample", 5_000, alertd::fuzz::sample);
}

#[test]
fn duration_inputs() {
    run("duration", 5_000, alertd::fuzz::duration);
}

#[test]
fn stored_inputs() {
    run("stored", 5_000, alertd::fuzz::stored);
}

#[test]
fn chart_inputs() {
    run("chart", 300, alertd::fuzz::chart);
}

#[test]
fn query_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let service = queries::fixture(dir.path());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    run("query", 300, |bytes| {
        runtime.block_on(queries::check(&service, bytes))
    });
}

#[test]
fn pushes_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let service = pushes::fixture(dir.path());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    run("pushes", 2_000, |bytes| {
        runtime.block_on(pushes::check(&service, bytes))
    });
}

#[test]
fn otlp_inputs() {
    run("otlp", 5_000, alertd::fuzz::otlp);
}

#[test]
fn remote_write_inputs() {
    run("remote_write", 5_000, alertd::fuzz::remote_write);
}

#[test]
fn exposition_inputs() {
    run("exposition", 5_000, alertd::fuzz::exposition);
}
