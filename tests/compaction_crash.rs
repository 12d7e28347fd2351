//! A process killed (SIGKILL) while it compacts samples loses none and
//! doubles none: a block and the removal of the rows it folds commit
//! together. The compacting process is this test binary run again (its
//! ignored `child_compacts` test), killed at a spread of moments; after each
//! kill the store is opened again and read whole.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use alertd::sample::Sample;
use alertd::store::SampleStore;
use alertd::store::rollup::{Point, Step};
use alertd::store::{ALL_HOSTS, BLOCK_PERIOD, SqliteStore};

mod support;

const DIR_VARIABLE: &str = "ALERTD_COMPACTION_CRASH_DIR";
const HOSTS: i64 = 20;

/// Samples of round `round`: new periods, and late samples for periods
/// compacted in earlier rounds (which make the compactor rewrite blocks).
fn round_samples(round: i64) -> Vec<Vec<Sample>> {
    let base = 1_700_000_400_000 / BLOCK_PERIOD * BLOCK_PERIOD;
    let mut batches = Vec::new();
    for step in 0..360 {
        let ts = base + (round * 360 + step) * 5_000;
        let batch = (0..HOSTS)
            .map(|host| {
                Sample::new(
                    format!("node-{host:02}"),
                    ts + host,
                    &[
                        ("cpu.usage", (step % 97) as f64 * 0.5),
                        ("requests.count", (round * 1000 + step + host) as f64),
                        ("ratio", 1.0 / (step + 1 + host) as f64),
                    ],
                )
            })
            .chain((round > 0).then(|| {
                Sample::new(
                    "node-00",
                    base + (step * 7919) % (round * 360 * 5_000),
                    &[("late", step as f64)],
                )
            }))
            .collect();
        batches.push(batch);
    }
    batches
}

fn sorted(mut samples: Vec<Sample>) -> Vec<Sample> {
    for sample in &mut samples {
        sample.metrics.sort_by(|a, b| a.0.cmp(&b.0));
    }
    samples.sort_by(|a, b| (a.ts, &a.host).cmp(&(b.ts, &b.host)));
    samples
}

fn read_all(dir: &Path) -> Vec<Sample> {
    let store = SqliteStore::open_dir(dir).expect("the store opens after a kill");
    let mut samples = Vec::new();
    store
        .scan_samples(i64::MIN, i64::MAX, &mut |s| samples.push(s))
        .unwrap();
    sorted(samples)
}

/// The rollups of all hosts together are each host's added up, step by
/// step: written in the same transaction, a kill leaves both or neither.
fn check_rollups_of_all_hosts(dir: &Path, round: i64) {
    let store = SqliteStore::open_dir(dir).unwrap();
    for step in Step::ALL {
        let mut added: std::collections::BTreeMap<i64, Point> = Default::default();
        for (_, point) in support::rollups(&store, step, None) {
            match added.get_mut(&point.ts) {
                Some(sum) => sum.merge(&point),
                None => drop(added.insert(point.ts, point)),
            }
        }
        let together: Vec<Point> = support::rollups(&store, step, Some(ALL_HOSTS))
            .into_iter()
            .map(|(_, point)| point)
            .collect();
        assert!(
            !together.is_empty(),
            "round {round}: {step:?}: nothing rolled up"
        );
        assert_eq!(together.len(), added.len(), "round {round}: {step:?}");
        for (point, sum) in together.iter().zip(added.values()) {
            assert_eq!(
                (point.ts, point.samples),
                (sum.ts, sum.samples),
                "round {round}"
            );
            for (name, aggregate) in &sum.fields {
                let (_, stored) = point.fields.iter().find(|(n, _)| n == name).unwrap();
                assert_eq!(
                    (stored.count, stored.min, stored.max),
                    (aggregate.count, aggregate.min, aggregate.max),
                    "round {round}: {step:?} {name}"
                );
                assert!((stored.sum - aggregate.sum).abs() <= 1e-9 * aggregate.sum.abs().max(1.0));
            }
        }
    }
}

/// Compacts everything, as fast as it can, until killed or done.
#[test]
#[ignore = "run by compaction_killed_at_any_moment_loses_nothing"]
fn child_compacts() {
    let Some(dir) = std::env::var_os(DIR_VARIABLE) else {
        return;
    };
    let store = SqliteStore::open_dir(Path::new(&dir)).unwrap();
    println!("compacting");
    while store
        .compact_samples(i64::MAX - BLOCK_PERIOD, alertd::store::EVERY_ROLLUP)
        .unwrap()
        > 0
    {}
    println!("done");
}

#[test]
fn compaction_killed_at_any_moment_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut appended = Vec::new();
    let mut kills = 0;
    let mut finished = 0;
    // The time a whole compaction takes, measured by the first round.
    let mut full = Duration::from_millis(400);
    for round in 0..12i64 {
        {
            let store = SqliteStore::open_dir(dir.path()).unwrap();
            for batch in round_samples(round).chunks(12) {
                let batch = batch.concat();
                store.append_samples(&batch).unwrap();
                appended.extend(batch);
            }
        }
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_compacts", "--ignored", "--nocapture"])
            .env(DIR_VARIABLE, dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        if round == 0 {
            let status = child.wait().unwrap();
            assert!(status.success());
            full = started.elapsed();
            finished += 1;
        } else {
            // Spread over the whole compaction, opening included.
            let wait = full.mul_f64(round as f64 / 12.0);
            std::thread::sleep(wait);
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap();
                kills += 1;
            } else {
                finished += 1;
            }
            child.wait().unwrap();
        }
        let read = read_all(dir.path());
        let expected = sorted(appended.clone());
        assert_eq!(
            read.len(),
            expected.len(),
            "round {round}: {} lost or doubled",
            expected.len().abs_diff(read.len())
        );
        assert!(read == expected, "round {round}: samples differ");
        check_rollups_of_all_hosts(dir.path(), round);
    }
    eprintln!("{kills} kills, {finished} compactions finished; whole compaction {full:?}");
    assert!(kills >= 6, "only {kills} kills ({finished} finished)");
}
