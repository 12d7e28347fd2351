//! The store conformance suite: what every `Store` backend must do. Each
//! backend runs every case through `conformance!`, with a function that opens
//! the backend's store on a place given by the test (the same place opens the
//! same data again, as after a restart).

use std::sync::Arc;

use alertd::incident::{Incident, PairRecord, Transition, TransitionKind};
use alertd::sample::Sample;
use alertd::store::rollup::{Point, Step};
mod support;

use alertd::store::{
    ALL_HOSTS, Claim, Delivery, HookCall, Lease, RedisStore, SampleStore, SampleVisitor,
    SqliteStore, Store, Undelivered,
};

/// What most cases need of a store: to record transitions as the one node
/// that leads, and to claim what is due as the one node that calls hooks.
trait Lead {
    fn record(
        &self,
        transitions: &[Transition],
        targets: &[String],
    ) -> Result<(), alertd::store::StoreError>;
    fn due(&self, now: i64, limit: usize) -> Result<Vec<Delivery>, alertd::store::StoreError>;
}

impl Lead for dyn Store + '_ {
    fn record(
        &self,
        transitions: &[Transition],
        targets: &[String],
    ) -> Result<(), alertd::store::StoreError> {
        // The lease "leader" holds already, or a new one.
        let lease: Lease = match self.lease_holder()? {
            Some(holder) if holder.node == "leader" => Lease {
                node: holder.node,
                token: holder.token,
            },
            _ => self
                .acquire_lease("leader", 600_000)?
                .expect("no other node leads"),
        };
        self.record_transitions(&lease, transitions, targets)
    }
    fn due(&self, now: i64, limit: usize) -> Result<Vec<Delivery>, alertd::store::StoreError> {
        self.claim_deliveries(
            now,
            &Claim {
                node: "caller",
                lasts: 600_000,
                skip: &[],
            },
            limit,
        )
    }
}

fn incident(id: &str, rule: &str, host: &str, start: i64, end: Option<i64>) -> Incident {
    Incident {
        id: id.to_string(),
        rule_name: Arc::from(rule),
        host_name: Arc::from(host),
        start_time: start,
        end_time: end,
        trigger_value: 71.5,
        resolution: None,
        details: None,
    }
}

fn opened(id: &str, rule: &str, host: &str, at: i64) -> Transition {
    Transition {
        kind: TransitionKind::Opened,
        at,
        rule: 0,
        incident: incident(id, rule, host, at, None),
    }
}

fn resolved(id: &str, rule: &str, host: &str, start: i64, at: i64) -> Transition {
    Transition {
        kind: TransitionKind::Resolved,
        at,
        rule: 0,
        incident: incident(id, rule, host, start, Some(at)),
    }
}

fn call(id: &str, target: &str, kind: TransitionKind, succeeded: bool) -> HookCall {
    HookCall {
        incident_id: id.to_string(),
        target: target.to_string(),
        kind,
        attempt: 1,
        started: 5,
        duration_ms: 12,
        outcome: if succeeded {
            "exited with status 0"
        } else {
            "exited with status 1"
        }
        .to_string(),
        succeeded,
        stdout: "out".to_string(),
        stderr: String::new(),
    }
}

fn targets(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

fn scan(store: &dyn Store, from: i64, to: i64) -> Vec<Sample> {
    let mut samples = Vec::new();
    store
        .scan_samples(from, to, &mut |s| samples.push(s))
        .unwrap();
    samples
}

pub fn samples_are_scanned_in_time_then_host_order(store: &dyn Store) {
    store
        .append_samples(&[
            Sample::new("b", 20, &[("x", 1.0)]),
            Sample::new("a", 10, &[("x", 2.0), ("cpu.usage", 0.1)]),
        ])
        .unwrap();
    store
        .append_samples(&[
            Sample::new("a", 20, &[("x", 3.0)]),
            Sample::new("a", 30, &[]),
        ])
        .unwrap();
    let all = scan(store, i64::MIN, i64::MAX);
    let order: Vec<(&str, i64)> = all.iter().map(|s| (s.host.as_str(), s.ts)).collect();
    // Equal timestamps in host order; a host's own ties in append order
    // (see `hosts_and_latest_samples`).
    assert_eq!(order, [("a", 10), ("a", 20), ("b", 20), ("a", 30)]);
    assert_eq!(
        all[0].metrics,
        vec![("x".to_string(), 2.0), ("cpu.usage".to_string(), 0.1)]
    );
    assert!(all[3].metrics.is_empty());
    // Both ends are included.
    let some = scan(store, 20, 29);
    assert_eq!(some.len(), 2);
    assert!(scan(store, 31, 100).is_empty());
}

pub fn a_large_batch_reads_back_whole(store: &dyn Store) {
    // More samples and hosts than a backend may write per statement, and not
    // a multiple of any round number.
    let batch: Vec<Sample> = (0..1_003)
        .map(|i| {
            let host = format!("h{:02}", i % 71);
            Sample::new(host, 1_000 + (i * 7919) % 500, &[("x", i as f64)])
        })
        .collect();
    store.append_samples(&batch).unwrap();
    let mut expected = batch.clone();
    // Stable: a host's samples of equal timestamp stay in append order.
    expected.sort_by(|a, b| (a.ts, &a.host).cmp(&(b.ts, &b.host)));
    assert_eq!(scan(store, i64::MIN, i64::MAX), expected);
    let hosts = store.hosts().unwrap();
    assert_eq!(hosts.len(), 71);
    for seen in &hosts {
        let latest = batch
            .iter()
            .filter(|s| s.host == seen.host)
            .map(|s| s.ts)
            .max()
            .unwrap();
        assert_eq!(seen.last_seen, latest, "{}", seen.host);
    }
    assert_eq!(store.latest_samples().unwrap().len(), 71);
}

/// Each node's latest heartbeat is kept, whichever node reads them; a
/// forgotten node is gone, and forgetting an unknown one is no error.
/// The cluster's identity is written once, by whichever node comes first;
/// a loss is recorded once with the incidents open then, which are
/// forgotten once resolved, and the loss once acknowledged. A store of one
/// process's own has no identity to lose.
pub fn the_identity_is_written_once_and_a_loss_kept_until_acknowledged([a, b]: [&dyn Store; 2]) {
    use alertd::store::{Identity, Loss};
    let first = Identity::new(1_000);
    let second = Identity::new(2_000);
    if !a.shared() {
        let found = a.identity(&first).unwrap();
        assert_eq!(found.current, first);
        assert_eq!(found.loss, None);
        return;
    }
    assert_eq!(a.identity(&first).unwrap().current, first);
    let found = b.identity(&second).unwrap();
    assert_eq!(found.current, first, "written once");
    assert_eq!((found.loss, found.lost_open.len()), (None, 0));
    let loss = Loss {
        lost: second.clone(),
        found: first.clone(),
        at: 3_000,
        node: "a".to_string(),
    };
    let open = incident("i1", "cpu", "web-1", 500, None);
    a.record_loss(&loss, std::slice::from_ref(&open)).unwrap();
    let later = Loss {
        at: 4_000,
        node: "b".to_string(),
        ..loss.clone()
    };
    b.record_loss(&later, &[]).unwrap();
    let found = b.identity(&second).unwrap();
    assert_eq!(
        found.loss.as_ref(),
        Some(&loss),
        "the first loss found is kept"
    );
    assert_eq!(found.lost_open, vec![open]);
    b.forget_lost(&["i1".to_string()]).unwrap();
    assert!(a.identity(&second).unwrap().lost_open.is_empty());
    assert_eq!(a.acknowledge_loss().unwrap(), Some(loss));
    assert_eq!(b.identity(&second).unwrap().loss, None);
    assert_eq!(b.acknowledge_loss().unwrap(), None);
}

pub fn nodes_report_and_are_forgotten(stores: [&dyn Store; 2]) {
    let [one, two] = stores;
    let status = |node: &str, heartbeat: i64| alertd::store::NodeStatus {
        node: node.to_string(),
        heartbeat,
        started: 5,
        rules: format!("rules of {node}"),
        version: "0.1.0".to_string(),
        url: (node == "a").then(|| "http://10.0.0.5:7373".to_string()),
    };
    assert_eq!(one.nodes().unwrap(), []);
    two.heartbeat(&status("b", 20)).unwrap();
    one.heartbeat(&status("a", 10)).unwrap();
    one.heartbeat(&status("a", 30)).unwrap();
    assert_eq!(two.nodes().unwrap(), [status("a", 30), status("b", 20)]);
    two.forget_node("a").unwrap();
    assert_eq!(one.nodes().unwrap(), [status("b", 20)]);
    one.forget_node("nobody").unwrap();
    assert_eq!(two.nodes().unwrap(), [status("b", 20)]);
}

/// Before any compaction nothing is rolled up; after, every sample before
/// `rolled_up_until` is in the rollups, and none after it.
pub fn rollups_cover_the_samples_before_rolled_up_until(store: &dyn Store) {
    use alertd::store::BLOCK_PERIOD;
    assert_eq!(store.rolled_up_until().unwrap(), i64::MIN);
    let base = 1_795_428_000_000;
    let samples: Vec<Sample> = (0..180)
        .map(|i| Sample::new("a", base + i * 10_000, &[("x", 1.0)]))
        .collect();
    store.append_samples(&samples).unwrap();
    let before = base + 2 * BLOCK_PERIOD + 60_000;
    while store
        .compact_samples(before, alertd::store::EVERY_ROLLUP)
        .unwrap()
        > 0
    {}
    let until = store.rolled_up_until().unwrap();
    assert!(until > base && until <= before, "{until}");
    let mut rolled = 0;
    let query = alertd::store::RollupQuery {
        step: Step::Minute,
        from: i64::MIN,
        to: i64::MAX,
        host: Some("a"),
        fields: None,
        totals_only: false,
    };
    store
        .scan_rollups(&query, &mut |_, point| rolled += point.samples)
        .unwrap();
    let expected = samples.iter().filter(|s| s.ts < until).count() as u64;
    assert_eq!(rolled, expected);
}

/// A compaction writes no rollup row of a step that ends before that step's
/// time in `rollups_from` (the rows a retention would delete at once), and
/// every other row as without it; the samples are all compacted alike.
pub fn rollups_past_their_time_are_not_written(store: &dyn Store) {
    use alertd::store::BLOCK_PERIOD;
    let hour = 3_600_000;
    // Three hours of one host, and a fourth host's sample in the last.
    let base = 1_795_428_000_000;
    let samples: Vec<Sample> = (0..3 * 360)
        .map(|i| Sample::new("a", base + i * 10_000, &[("x", i as f64)]))
        .chain([Sample::new("b", base + 2 * hour + 5, &[("x", 7.0)])])
        .collect();
    store.append_samples(&samples).unwrap();
    // Minute rows (an hour each) from the second hour on; ten-minute and
    // hour rows (a day each) all, as their day ends after the time given.
    let rollups_from = [base + hour + 1, base + hour, base];
    let before = base + 3 * hour + BLOCK_PERIOD;
    while store.compact_samples(before, rollups_from).unwrap() > 0 {}
    assert_eq!(scan(store, i64::MIN, i64::MAX), {
        let mut sorted = samples.clone();
        sorted.sort_by(|x, y| (x.ts, &x.host).cmp(&(y.ts, &y.host)));
        sorted
    });
    let later: Vec<Sample> = samples
        .iter()
        .filter(|s| s.ts >= base + hour)
        .cloned()
        .collect();
    check_rollups(store, Step::Minute, &later, "minutes from the second hour");
    check_rollups(store, Step::TenMinutes, &samples, "ten minutes");
    check_rollups(store, Step::Hour, &samples, "hours");
}

/// A value that could not be read back is refused before anything is
/// written: the store stays readable.
pub fn a_value_that_cannot_be_read_back_is_refused(store: &dyn Store) {
    let good = vec![Sample::new("a", 10, &[("x", 1.0)])];
    store.append_samples(&good).unwrap();
    for bad in [f64::INFINITY, f64::NEG_INFINITY, f64::NAN] {
        let batch = vec![
            Sample::new("a", 20, &[("x", 2.0)]),
            Sample::new("b", 20, &[("x", 3.0), ("errors.count", bad)]),
        ];
        let error = store.append_samples(&batch).unwrap_err();
        assert!(
            matches!(error, alertd::store::StoreError::Unstorable(_)),
            "{error}"
        );
        assert!(error.to_string().contains("errors.count"), "{error}");
    }
    assert_eq!(scan(store, i64::MIN, i64::MAX), good);
    assert_eq!(store.latest_samples().unwrap(), good);
}

pub fn batches_append_in_order(store: &dyn Store) {
    use alertd::store::batch::Encoded;
    let first = vec![
        Sample::new("a", 20, &[("x", 1.0)]),
        Sample::new("b", 10, &[("x", 2.0)]),
    ];
    let empty: Vec<Sample> = Vec::new();
    let second = vec![Sample::new("a", 20, &[("x", 3.0)])];
    let encoded: Vec<Encoded> = [&first, &empty, &second]
        .iter()
        .map(|samples| Encoded::new(samples).unwrap())
        .collect();
    let cursor = store.sample_cursor().unwrap();
    store
        .append_batches(&[
            (&first, &encoded[0]),
            (&empty, &encoded[1]),
            (&second, &encoded[2]),
        ])
        .unwrap();
    let all = scan(store, i64::MIN, i64::MAX);
    let values: Vec<(&str, i64, f64)> = all
        .iter()
        .map(|s| (s.host.as_str(), s.ts, s.metrics[0].1))
        .collect();
    // a's two samples at 20 in the order of their batches.
    assert_eq!(values, [("b", 10, 2.0), ("a", 20, 1.0), ("a", 20, 3.0)]);
    assert_eq!(store.latest_samples().unwrap()[0].metrics[0].1, 3.0);
    let mut before = 0;
    store
        .scan_samples_before(i64::MIN, i64::MAX, cursor, &mut |_| before += 1)
        .unwrap();
    assert_eq!(before, 0);
    assert!(store.sample_cursor().unwrap() >= cursor + 3);
}

pub fn a_cursor_splits_samples_by_append_order(store: &dyn Store) {
    store
        .append_samples(&[Sample::new("a", 10, &[]), Sample::new("b", 30, &[])])
        .unwrap();
    let cursor = store.sample_cursor().unwrap();
    assert_eq!(
        store.sample_cursor().unwrap(),
        cursor,
        "reading moves nothing"
    );
    store
        .append_samples(&[Sample::new("c", 20, &[]), Sample::new("d", 5, &[])])
        .unwrap();
    assert!(store.sample_cursor().unwrap() > cursor);
    let mut before = Vec::new();
    store
        .scan_samples_before(i64::MIN, i64::MAX, cursor, &mut |s| before.push(s.host))
        .unwrap();
    assert_eq!(
        before,
        ["a", "b"],
        "appended before the cursor, in time order"
    );
    let all: Vec<String> = scan(store, i64::MIN, i64::MAX)
        .into_iter()
        .map(|s| s.host)
        .collect();
    assert_eq!(all, ["d", "a", "c", "b"]);
}

/// A sample with its fields in name order: compaction may reorder them.
fn normalized(mut sample: Sample) -> Sample {
    sample.metrics.sort_by(|a, b| a.0.cmp(&b.0));
    sample
}

/// What a scan of `[from, to]` must return after `appended` (in append
/// order): (timestamp, host) order, ties in append order.
fn expected(appended: &[Sample], from: i64, to: i64) -> Vec<Sample> {
    let mut expected: Vec<Sample> = appended
        .iter()
        .filter(|s| s.ts >= from && s.ts <= to)
        .cloned()
        .map(normalized)
        .collect();
    expected.sort_by(|a, b| (a.ts, &a.host).cmp(&(b.ts, &b.host)));
    expected
}

fn scan_normalized(store: &dyn Store, from: i64, to: i64) -> Vec<Sample> {
    scan(store, from, to).into_iter().map(normalized).collect()
}

const MINUTE: i64 = 60_000;

pub fn compacted_and_recent_samples_read_back_exactly(store: &dyn Store) {
    let period = alertd::store::BLOCK_PERIOD;
    let base = 1_700_000_400_000 / period * period;
    let mut appended = Vec::new();
    let mut append = |store: &dyn Store, batch: Vec<Sample>| {
        store.append_samples(&batch).unwrap();
        appended.extend(batch);
    };
    // Three hosts over 40 minutes, every 10 s, with a tie on one host, a
    // field that comes and goes, and values of every kind.
    for step in 0..240i64 {
        let ts = base + step * 10_000;
        let mut batch = Vec::new();
        for host in ["web-2", "web-1", "db"] {
            let mut fields = vec![("cpu.usage", 12.5 + (step % 9) as f64 * 0.1)];
            if step % 3 != 0 {
                fields.push(("errors.count", (step / 7) as f64));
            }
            if host == "db" {
                fields.push(("odd", (step as f64).sqrt() - 1.0));
            }
            batch.push(Sample::new(host, ts, &fields));
        }
        if step % 50 == 0 {
            batch.push(Sample::new("web-1", ts, &[("cpu.usage", -0.0)]));
        }
        append(store, batch);
    }
    let before_compaction = scan(store, i64::MIN, i64::MAX);
    let cursor = store.sample_cursor().unwrap();
    // Fold the first 20 minutes, in as many calls as it takes.
    let mut folded = 0;
    loop {
        let step = store
            .compact_samples(base + 20 * MINUTE + 5, alertd::store::EVERY_ROLLUP)
            .unwrap();
        if step == 0 {
            break;
        }
        folded += step;
    }
    assert_eq!(folded, 2 * 60 * 3 + 3, "the samples of two whole periods");
    // A read with the cursor from before the compaction still works: the
    // compacted samples were all appended before it.
    let mut count = 0;
    store
        .scan_samples_before(i64::MIN, i64::MAX, cursor, &mut |_| count += 1)
        .unwrap();
    assert_eq!(count, before_compaction.len());
    // Late samples for a compacted period, one with a tie.
    append(
        store,
        vec![
            Sample::new("web-1", base + 5 * MINUTE, &[("late", 1.0)]),
            Sample::new("new-host", base + 7 * MINUTE, &[("cpu.usage", 3.0)]),
        ],
    );
    let late_cursor = store.sample_cursor().unwrap();
    append(
        store,
        vec![Sample::new("db", base + 9 * MINUTE, &[("late", 2.0)])],
    );
    for (from, to) in [
        (i64::MIN, i64::MAX),
        (base, base),
        (base + 10 * MINUTE - 1, base + 10 * MINUTE),
        (base + 19 * MINUTE, base + 21 * MINUTE),
        (base + 5 * MINUTE, base + 5 * MINUTE),
        (base + 39 * MINUTE, i64::MAX),
        (base + 41 * MINUTE, i64::MAX),
    ] {
        assert_eq!(
            scan_normalized(store, from, to),
            expected(&appended, from, to),
            "[{from}, {to}]"
        );
    }
    // Compacting again folds the late samples into their periods' blocks.
    while store
        .compact_samples(base + 40 * MINUTE, alertd::store::EVERY_ROLLUP)
        .unwrap()
        > 0
    {}
    assert_eq!(
        scan_normalized(store, i64::MIN, i64::MAX),
        expected(&appended, i64::MIN, i64::MAX)
    );
    // A cursor read before samples that are now compacted cannot leave
    // them out any more: the read says so rather than return them.
    let error = store
        .scan_samples_before(i64::MIN, i64::MAX, late_cursor, &mut |_| {})
        .expect_err("refused");
    assert!(
        matches!(error, alertd::store::StoreError::CompactedAfterCursor),
        "{error}"
    );
    // Hosts and latest samples are those of the samples, wherever they are.
    let hosts: Vec<(String, i64)> = store
        .hosts()
        .unwrap()
        .into_iter()
        .map(|h| (h.host, h.last_seen))
        .collect();
    let last = base + 239 * 10_000;
    assert_eq!(
        hosts,
        [
            ("db".to_string(), last),
            ("new-host".to_string(), base + 7 * MINUTE),
            ("web-1".to_string(), last),
            ("web-2".to_string(), last)
        ]
    );
    // Deleting across a block keeps its newer samples.
    let cut = base + 15 * MINUTE + 1;
    let deleted = store.delete_samples_before(cut).unwrap();
    assert_eq!(
        deleted as usize,
        appended.iter().filter(|s| s.ts < cut).count()
    );
    appended.retain(|s| s.ts >= cut);
    assert_eq!(
        scan_normalized(store, i64::MIN, i64::MAX),
        expected(&appended, i64::MIN, i64::MAX)
    );
    let hosts: Vec<String> = store.hosts().unwrap().into_iter().map(|h| h.host).collect();
    assert_eq!(
        hosts,
        ["db", "web-1", "web-2"],
        "new-host has no sample left"
    );
}

/// Samples in an order that does not depend on the order given.
fn in_any_order(mut samples: Vec<Sample>) -> Vec<Sample> {
    samples.sort_by_cached_key(|sample| (sample.ts, format!("{sample:?}")));
    samples
}

/// The samples [`SampleStore::visit_samples`] hands over, normalized, in any order.
fn visited(store: &dyn Store, from: i64, to: i64) -> Vec<Sample> {
    struct Collect {
        names: Vec<String>,
        samples: Vec<Sample>,
    }
    impl SampleVisitor for Collect {
        fn names(&mut self, names: &[&str]) {
            self.names = names.iter().map(|name| name.to_string()).collect();
        }
        fn sample(&mut self, host: &str, ts: i64, values: &[(usize, f64)]) {
            let fields: Vec<(&str, f64)> = values
                .iter()
                .map(|&(name, value)| (self.names[name].as_str(), value))
                .collect();
            self.samples
                .push(normalized(Sample::new(host, ts, &fields)));
        }
    }
    let mut collect = Collect {
        names: Vec::new(),
        samples: Vec::new(),
    };
    store.visit_samples(from, to, &mut collect).unwrap();
    in_any_order(collect.samples)
}

/// One step of [`samples_match_a_model`].
#[derive(Debug, Clone)]
pub enum Op {
    /// Samples as (host, seconds after the base, value, whether the second
    /// field is given).
    Append(Vec<(u8, u16, i16, bool)>),
    /// Compact before this many seconds after the base.
    Compact(u16),
    /// Delete before this many seconds after the base.
    Delete(u16),
    /// Delete the rollups of one step (0: minutes, 1: ten minutes) before
    /// this many seconds after the base.
    DeleteRollups(u8, u16),
    Reopen,
}

pub fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    use proptest::prelude::*;
    prop_oneof![
        4 => proptest::collection::vec((0u8..4, 0u16..3600, any::<i16>(), any::<bool>()), 1..40)
            .prop_map(Op::Append),
        2 => (0u16..4200).prop_map(Op::Compact),
        1 => (0u16..3600).prop_map(Op::Delete),
        1 => (0u8..3, 0u16..3600).prop_map(|(step, at)| Op::DeleteRollups(step, at)),
        1 => Just(Op::Reopen),
    ]
}

/// Runs `ops` on a store and on a plain list of samples: after each, every
/// read of the store (whole, a random range, hosts, latest samples) equals
/// the list's, wherever the store keeps its samples.
pub fn samples_match_a_model(
    place: &std::path::Path,
    open: fn(&std::path::Path) -> Box<dyn Store>,
    ops: &[Op],
) {
    let base = 1_700_000_400_000 / alertd::store::BLOCK_PERIOD * alertd::store::BLOCK_PERIOD;
    let at = |seconds: u16| base + i64::from(seconds) * 1000;
    let mut store = open(place);
    let mut model: Vec<Sample> = Vec::new();
    // Appended, neither compacted nor deleted.
    let mut pending: Vec<Sample> = Vec::new();
    // Compacted (so rolled up), per step, in the order compacted.
    let mut rolled: [Vec<Sample>; 3] = Default::default();
    for (i, op) in ops.iter().enumerate() {
        match op {
            Op::Append(batch) => {
                let batch: Vec<Sample> = batch
                    .iter()
                    .map(|&(host, seconds, value, second)| {
                        let value = f64::from(value) / 8.0;
                        let mut fields = vec![("v", value)];
                        if second {
                            fields.insert(0, ("w", value * 3.0 + 0.1));
                        }
                        Sample::new(
                            format!("h{host}"),
                            at(seconds / 30 * 30) + i64::from(host),
                            &fields,
                        )
                    })
                    .collect();
                store.append_samples(&batch).unwrap();
                pending.extend(batch.iter().cloned());
                model.extend(batch);
            }
            Op::Compact(seconds) => {
                while store
                    .compact_samples(at(*seconds), alertd::store::EVERY_ROLLUP)
                    .unwrap()
                    > 0
                {}
                let period = alertd::store::BLOCK_PERIOD;
                let before = at(*seconds).div_euclid(period) * period;
                let (old, kept): (Vec<Sample>, Vec<Sample>) =
                    pending.drain(..).partition(|s| s.ts < before);
                pending = kept;
                for list in &mut rolled {
                    list.extend(old.iter().cloned());
                }
            }
            Op::Delete(seconds) => {
                let deleted = store.delete_samples_before(at(*seconds)).unwrap();
                let before = model.len();
                model.retain(|s| s.ts >= at(*seconds));
                pending.retain(|s| s.ts >= at(*seconds));
                assert_eq!(deleted as usize, before - model.len(), "step {i}");
            }
            Op::DeleteRollups(which, seconds) => {
                let step = Step::ALL[usize::from(*which)];
                store.delete_rollups_before(step, at(*seconds)).unwrap();
                rolled[usize::from(*which)].retain(|s| step.start_of(s.ts) >= at(*seconds));
            }
            Op::Reopen => {
                drop(store);
                store = open(place);
            }
        }
        assert_eq!(
            scan_normalized(store.as_ref(), i64::MIN, i64::MAX),
            expected(&model, i64::MIN, i64::MAX),
            "step {i}: {op:?}"
        );
        let (from, to) = (at(i as u16 * 397 % 3600), at(i as u16 * 397 % 3600 + 700));
        assert_eq!(
            scan_normalized(store.as_ref(), from, to),
            expected(&model, from, to),
            "step {i}: range"
        );
        assert_eq!(
            visited(store.as_ref(), from, to),
            in_any_order(expected(&model, from, to)),
            "step {i}: visited"
        );
        // Both ends of the range hold samples.
        if let (Some(first), Some(last)) = (model.first(), model.last()) {
            let (from, to) = (first.ts.min(last.ts), first.ts.max(last.ts));
            assert_eq!(
                visited(store.as_ref(), from, to),
                in_any_order(expected(&model, from, to)),
                "step {i}: visited from {from} to {to}"
            );
        }
        let mut one_host = Vec::new();
        store
            .scan_host_samples("h1", from, to, &mut |s| one_host.push(normalized(s)))
            .unwrap();
        let wanted: Vec<Sample> = expected(&model, from, to)
            .into_iter()
            .filter(|s| s.host == "h1")
            .collect();
        assert_eq!(one_host, wanted, "step {i}: one host's range");
        let mut latest: std::collections::BTreeMap<&str, &Sample> = Default::default();
        for sample in &model {
            let entry = latest.entry(&sample.host).or_insert(sample);
            if sample.ts >= entry.ts {
                *entry = sample;
            }
        }
        let stored: Vec<Sample> = store
            .latest_samples()
            .unwrap()
            .into_iter()
            .map(normalized)
            .collect();
        let wanted: Vec<Sample> = latest.values().map(|s| normalized((*s).clone())).collect();
        assert_eq!(stored, wanted, "step {i}: latest samples");
        for (which, step) in Step::ALL.into_iter().enumerate() {
            check_rollups(
                store.as_ref(),
                step,
                &rolled[which],
                &format!("step {i}: {step:?}"),
            );
        }
    }
}

/// The stored rollups of `step` are the aggregates of `rolled` (in the
/// order compacted): counts, minimums, maximums and last values exactly,
/// sums to rounding; each host's, and every host's together under
/// [`ALL_HOSTS`] (whose last value may be any host's that sent last).
fn check_rollups(store: &dyn Store, step: Step, rolled: &[Sample], context: &str) {
    use std::collections::BTreeMap;
    let mut sorted: Vec<&Sample> = rolled.iter().collect();
    sorted.sort_by_key(|s| s.ts);
    let mut expected: BTreeMap<(String, i64), Vec<&Sample>> = BTreeMap::new();
    for sample in sorted {
        for host in [sample.host.as_str(), ALL_HOSTS] {
            expected
                .entry((host.to_string(), step.start_of(sample.ts)))
                .or_default()
                .push(sample);
        }
    }
    let mut stored: BTreeMap<(String, i64), Point> = BTreeMap::new();
    for host in [None, Some(ALL_HOSTS)] {
        for (host, point) in support::rollups(store, step, host) {
            let at = point.ts;
            let old = stored.insert((host.clone(), at), point);
            assert!(old.is_none(), "{context}: two points for {host:?} at {at}");
        }
    }
    let keys: Vec<_> = stored.keys().collect();
    let wanted: Vec<_> = expected.keys().collect();
    assert_eq!(keys, wanted, "{context}: points");
    for (key, samples) in &expected {
        let point = &stored[key];
        assert_eq!(point.samples, samples.len() as u64, "{context}: {key:?}");
        // Worked out here, not by the library's own roll-up.
        // (count, sum, min, max, last, time of the last) per field.
        type Expected = (u64, f64, f64, f64, f64, i64);
        let mut want_fields: Vec<(String, Expected)> = Vec::new();
        for sample in samples {
            for (name, value) in &sample.metrics {
                let value = *value;
                match want_fields.iter_mut().find(|(field, _)| field == name) {
                    None => {
                        want_fields.push((name.clone(), (1, value, value, value, value, sample.ts)))
                    }
                    Some((_, (count, sum, min, max, last, last_ts))) => {
                        *count += 1;
                        *sum += value;
                        *min = min.min(value);
                        *max = max.max(value);
                        // Time order, ties in the order compacted.
                        *last = value;
                        *last_ts = sample.ts;
                    }
                }
            }
        }
        let mut got_fields = point.fields.clone();
        got_fields.sort_by(|a, b| a.0.cmp(&b.0));
        want_fields.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(got_fields.len(), want_fields.len(), "{context}: {key:?}");
        for ((name, got), (_, want)) in got_fields.iter().zip(&want_fields) {
            let &(count, sum, min, max, mut last, last_ts) = want;
            if key.0 == ALL_HOSTS {
                let at_last = samples.iter().filter(|s| s.ts == last_ts);
                let mut values =
                    at_last.filter_map(|s| s.metrics.iter().find(|(f, _)| **f == **name));
                assert!(
                    values.any(|(_, value)| *value == got.last),
                    "{context}: {key:?} {name}"
                );
                last = got.last;
            }
            assert_eq!(
                (got.count, got.min, got.max, got.last, got.last_ts),
                (count, min, max, last, last_ts),
                "{context}: {key:?} {name}"
            );
            assert!(
                (got.sum - sum).abs() <= 1e-9 * sum.abs().max(1.0),
                "{context}: {key:?} {name}: sum {} for {sum}",
                got.sum,
            );
        }
    }
}

pub fn hosts_and_latest_samples(store: &dyn Store) {
    store
        .append_samples(&[
            Sample::new("web-2", 50, &[("x", 1.0)]),
            Sample::new("web-1", 40, &[("x", 1.0)]),
            Sample::new("web-1", 10, &[("x", 9.0)]),
        ])
        .unwrap();
    store
        .append_samples(&[Sample::new("web-1", 40, &[("x", 2.0)])])
        .unwrap();
    let hosts = store.hosts().unwrap();
    let seen: Vec<(&str, i64)> = hosts
        .iter()
        .map(|h| (h.host.as_str(), h.last_seen))
        .collect();
    assert_eq!(seen, [("web-1", 40), ("web-2", 50)]);
    let latest = store.latest_samples().unwrap();
    assert_eq!(latest.len(), 2);
    assert_eq!(latest[0].host, "web-1");
    assert_eq!(latest[0].ts, 40);
    // The last appended of two samples with the same timestamp.
    assert_eq!(latest[0].metrics, vec![("x".to_string(), 2.0)]);
    assert_eq!(latest[1].host, "web-2");
}

pub fn old_samples_and_silent_hosts_are_deleted(store: &dyn Store) {
    store
        .append_samples(&[
            Sample::new("old", 10, &[("x", 1.0)]),
            Sample::new("new", 10, &[("x", 1.0)]),
            Sample::new("new", 30, &[("x", 1.0)]),
        ])
        .unwrap();
    assert_eq!(store.delete_samples_before(30).unwrap(), 2);
    let left = scan(store, i64::MIN, i64::MAX);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].ts, 30);
    let hosts: Vec<String> = store.hosts().unwrap().into_iter().map(|h| h.host).collect();
    assert_eq!(hosts, ["new"]);
    assert_eq!(store.delete_samples_before(30).unwrap(), 0);
}

/// Whatever the clocks of the nodes that record them, an incident never
/// ends before it started: such a resolution is refused, nothing recorded.
pub fn an_incident_never_ends_before_it_started(store: &dyn Store) {
    let hooks = targets(&["exec:10-a"]);
    store
        .record(&[opened("i1", "cpu", "web-1", 2_000)], &hooks)
        .unwrap();
    let refused = store.record(&[resolved("i1", "cpu", "web-1", 2_000, 1_000)], &hooks);
    assert!(
        matches!(&refused, Err(alertd::store::StoreError::Unstorable(why)) if why.contains("before it started")),
        "{refused:?}"
    );
    let incidents = store.incidents(0, 10_000).unwrap();
    assert_eq!((incidents.active.len(), incidents.resolved.len()), (1, 0));
    assert_eq!(store.pending_deliveries().unwrap(), 1);
}

pub fn transitions_make_incidents_pairs_and_deliveries(store: &dyn Store) {
    let hooks = targets(&["exec:10-a", "exec:20-b"]);
    store
        .record(
            &[
                opened("i1", "cpu", "web-1", 100),
                opened("i2", "mem", "web-1", 100),
            ],
            &hooks,
        )
        .unwrap();
    let incidents = store.incidents(0, 1000).unwrap();
    assert_eq!(incidents.active.len(), 2);
    assert!(incidents.resolved.is_empty());
    assert_eq!(store.pending_deliveries().unwrap(), 4);
    let pairs = store.pairs().unwrap();
    assert_eq!(pairs.len(), 2);
    assert_eq!(
        pairs[0],
        PairRecord {
            rule_name: "cpu".to_string(),
            host: "web-1".to_string(),
            open: Some(incident("i1", "cpu", "web-1", 100, None)),
            last_end: None,
            pending_since: None,
            clear_since: None,
        }
    );

    store
        .record(&[resolved("i1", "cpu", "web-1", 100, 200)], &hooks)
        .unwrap();
    let incidents = store.incidents(0, 1000).unwrap();
    assert_eq!(incidents.active.len(), 1);
    assert_eq!(incidents.active[0].id, "i2");
    assert_eq!(
        incidents.resolved,
        vec![incident("i1", "cpu", "web-1", 100, Some(200))]
    );
    let cpu = store
        .pairs()
        .unwrap()
        .into_iter()
        .find(|p| p.rule_name == "cpu")
        .unwrap();
    assert_eq!(cpu.open, None);
    assert_eq!(cpu.last_end, Some(200));
    assert_eq!(store.pending_deliveries().unwrap(), 6);

    // No hooks: incidents still recorded, nothing to deliver.
    store
        .record(&[opened("i3", "cpu", "web-2", 300)], &[])
        .unwrap();
    assert_eq!(store.pending_deliveries().unwrap(), 6);
    assert_eq!(store.incidents(0, 1000).unwrap().active.len(), 2);
}

pub fn each_transition_goes_to_its_own_targets(store: &dyn Store) {
    let lease = store.acquire_lease("leader", 600_000).unwrap().unwrap();
    store
        .record_transitions_to(
            &lease,
            &[opened("i1", "cpu", "h", 100), opened("i2", "mem", "h", 100)],
            &[targets(&["exec:a", "notify:pager"]), targets(&["exec:a"])],
        )
        .unwrap();
    let due = store.due(1000, 10).unwrap();
    let sent: Vec<(&str, &str)> = due
        .iter()
        .map(|d| (d.incident.id.as_str(), d.target.as_str()))
        .collect();
    assert_eq!(
        sent,
        [("i1", "exec:a"), ("i1", "notify:pager"), ("i2", "exec:a")]
    );
    // Fewer target lists than transitions: the rest go nowhere.
    store
        .record_transitions_to(
            &lease,
            &[
                resolved("i1", "cpu", "h", 100, 200),
                resolved("i2", "mem", "h", 100, 200),
            ],
            &[targets(&["exec:a"])],
        )
        .unwrap();
    assert_eq!(store.pending_deliveries().unwrap(), 4);
}

pub fn a_target_s_deliveries_are_claimed_together_and_postponed(store: &dyn Store) {
    let hooks = targets(&["notify:ops", "notify:chat"]);
    for i in 0..12 {
        store
            .record(
                &[opened(&format!("i{i:02}"), "r", &format!("h{i:02}"), 100)],
                &hooks,
            )
            .unwrap();
    }
    store
        .record(&[resolved("i00", "r", "h00", 100, 200)], &hooks)
        .unwrap();
    let claim = Claim {
        node: "n1",
        lasts: 60_000,
        skip: &[],
    };
    // Every due one of the target, but the resolution behind its opening.
    let ops = store.claim_target("notify:ops", 1000, &claim).unwrap();
    assert_eq!(ops.len(), 12);
    assert!(
        ops.iter()
            .all(|d| d.target == "notify:ops" && d.kind == TransitionKind::Opened)
    );
    // Claimed: another node gets none of them, nor through a general claim.
    let other = Claim {
        node: "n2",
        lasts: 60_000,
        skip: &[],
    };
    assert!(
        store
            .claim_target("notify:ops", 1000, &other)
            .unwrap()
            .is_empty()
    );
    let general = store.claim_deliveries(1000, &other, 100).unwrap();
    assert!(
        general.iter().all(|d| d.target == "notify:chat"),
        "{general:?}"
    );
    // Postponed: not due before, no mark, no attempt, no call.
    for delivery in &ops[..6] {
        store.postpone_delivery(delivery.id, 5000).unwrap();
    }
    let again = store.claim_target("notify:ops", 4999, &other).unwrap();
    assert!(again.is_empty(), "the rest is still n1's");
    let later = store.claim_target("notify:ops", 5000, &other).unwrap();
    assert_eq!(later.len(), 6);
    assert!(later.iter().all(|d| d.held_by.is_none() && d.attempts == 0));
    // Finished at once: the opening of i00 sent, the resolution comes next.
    let finished: Vec<(i64, HookCall)> = later
        .iter()
        .map(|d| {
            (
                d.id,
                call(&d.incident.id, "notify:ops", TransitionKind::Opened, true),
            )
        })
        .collect();
    store.finish_deliveries(&finished, None).unwrap();
    let rest = store.claim_target("notify:ops", 200_000, &claim).unwrap();
    assert_eq!(rest.len(), 6 + 1, "{rest:?}");
    assert!(rest.iter().any(|d| d.kind == TransitionKind::Resolved));
    let failed: Vec<(i64, HookCall)> = rest
        .iter()
        .map(|d| (d.id, call(&d.incident.id, "notify:ops", d.kind, false)))
        .collect();
    store.finish_deliveries(&failed, Some(300_000)).unwrap();
    let retried = store.claim_target("notify:ops", 300_000, &claim).unwrap();
    assert_eq!(retried.len(), 7);
    assert!(retried.iter().all(|d| d.attempts == 1));
    // When a group was last sent: the latest kept, old ones forgotten.
    assert_eq!(
        store.group_sent("notify:ops", "{\"rule\":\"r\"}").unwrap(),
        None
    );
    store
        .set_group_sent("notify:ops", "{\"rule\":\"r\"}", 5000)
        .unwrap();
    store
        .set_group_sent("notify:ops", "{\"rule\":\"r\"}", 4000)
        .unwrap();
    store.set_group_sent("notify:chat", "{}", 100).unwrap();
    assert_eq!(
        store.group_sent("notify:ops", "{\"rule\":\"r\"}").unwrap(),
        Some(5000)
    );
    assert_eq!(store.delete_groups_sent_before(1000).unwrap(), 1);
    assert_eq!(store.group_sent("notify:chat", "{}").unwrap(), None);
    assert_eq!(
        store.group_sent("notify:ops", "{\"rule\":\"r\"}").unwrap(),
        Some(5000)
    );
}

pub fn an_incident_is_acknowledged_once(store: &dyn Store) {
    use alertd::store::Ack;
    let hooks = targets(&["exec:a"]);
    store
        .record(&[opened("i1", "r", "h", 100)], &hooks)
        .unwrap();
    let ack = |by: &str, at: i64| Ack {
        by: by.to_string(),
        comment: "on it".to_string(),
        at,
    };
    let told = targets(&["notify:chat"]);
    assert_eq!(
        store.acknowledge("nope", &ack("ana", 200), &told).unwrap(),
        None
    );
    assert!(store.acknowledgements(&["i1", "nope"]).unwrap().is_empty());
    assert_eq!(
        store.acknowledge("i1", &ack("ana", 200), &told).unwrap(),
        Some(ack("ana", 200))
    );
    // The first one stays.
    assert_eq!(
        store.acknowledge("i1", &ack("bob", 300), &told).unwrap(),
        Some(ack("ana", 200))
    );
    // The first one queued an "acknowledged" delivery for the target told;
    // the second, nothing.
    let queued: Vec<_> = store
        .incident("i1")
        .unwrap()
        .unwrap()
        .pending
        .into_iter()
        .filter(|d| d.target == "notify:chat")
        .collect();
    assert_eq!(queued.len(), 1, "{queued:?}");
    assert_eq!(queued[0].note, Some(alertd::store::Note::Acknowledged));
    assert_eq!(queued[0].kind, TransitionKind::Opened);
    assert_eq!(queued[0].next_attempt, 200);
    assert_eq!(&*queued[0].incident.host_name, "h");
    let found = store.acknowledgements(&["i1", "nope"]).unwrap();
    assert_eq!(
        found.into_iter().collect::<Vec<_>>(),
        [("i1".to_string(), ack("ana", 200))]
    );
    // Deleted with its incident.
    store
        .record(&[resolved("i1", "r", "h", 100, 400)], &hooks)
        .unwrap();
    while let Some(due) = store.due(1000, 10).unwrap().first().cloned() {
        store
            .finish_delivery(due.id, &call("i1", "exec:a", due.kind, true), None)
            .unwrap();
    }
    assert_eq!(store.delete_incidents_resolved_before(500).unwrap(), 1);
    assert!(store.acknowledgements(&["i1"]).unwrap().is_empty());
}

pub fn reminders_are_queued_with_their_next_time(store: &dyn Store) {
    let hooks = targets(&["notify:ops"]);
    store
        .record(&[opened("i1", "r", "h", 100)], &hooks)
        .unwrap();
    let incident = store.incident("i1").unwrap().unwrap().incident;
    assert!(store.reminder_times().unwrap().is_empty());
    store
        .enqueue_reminder(&incident, "notify:ops", 5000, 9000)
        .unwrap();
    let times = store.reminder_times().unwrap();
    assert_eq!(
        times.into_iter().collect::<Vec<_>>(),
        [(("i1".to_string(), "notify:ops".to_string()), 9000)]
    );
    // Behind the opening, a reminder: an opening marked as one.
    let due = store.due(6000, 10).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].note, None);
    store
        .finish_delivery(
            due[0].id,
            &call("i1", "notify:ops", TransitionKind::Opened, true),
            None,
        )
        .unwrap();
    let due = store.due(6000, 10).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].note, Some(alertd::store::Note::Reminder));
    assert_eq!(due[0].kind, TransitionKind::Opened);
    assert_eq!(due[0].incident.id, "i1");
    store
        .enqueue_reminder(&incident, "notify:ops", 9000, 13000)
        .unwrap();
    assert_eq!(
        store.reminder_times().unwrap()[&("i1".to_string(), "notify:ops".to_string())],
        13000
    );
    store
        .forget_reminders(&[("i1".to_string(), "notify:ops".to_string())])
        .unwrap();
    assert!(store.reminder_times().unwrap().is_empty());
}

pub fn a_held_delivery_waits_without_a_call(store: &dyn Store) {
    let hooks = targets(&["notify:ops"]);
    store
        .record(&[opened("i1", "r", "h", 100)], &hooks)
        .unwrap();
    store
        .record(&[opened("i2", "r", "h2", 100)], &hooks)
        .unwrap();
    let due = store.due(1000, 10).unwrap();
    assert_eq!(due.len(), 2);
    assert!(due.iter().all(|delivery| delivery.held_by.is_none()));
    store.hold_delivery(due[0].id, 50_000, "s1, s2").unwrap();
    let undelivered = store.undelivered().unwrap();
    assert_eq!(undelivered.get("i1"), Some(&Undelivered::Held));
    assert_eq!(undelivered.get("i2"), Some(&Undelivered::Waiting));
    // Its claim is freed, it is due again at the time given, no call is
    // recorded and no attempt counted.
    let again = store.due(49_999, 10).unwrap();
    assert_eq!(again.iter().map(|d| d.id).collect::<Vec<_>>(), [due[1].id]);
    // The other one is claimed (for ten minutes): the held one is next.
    assert_eq!(store.next_delivery_time().unwrap(), Some(50_000));
    let detail = store.incident("i1").unwrap().unwrap();
    assert!(detail.calls.is_empty());
    assert_eq!(
        (
            detail.pending[0].attempts,
            detail.pending[0].held_by.as_deref()
        ),
        (0, Some("s1, s2"))
    );
    let later = store.due(50_000, 10).unwrap();
    assert!(
        later
            .iter()
            .any(|d| d.id == due[0].id && d.held_by.as_deref() == Some("s1, s2"))
    );
    // Held again, then released early: due at once, still marked held.
    store.hold_delivery(due[0].id, 90_000, "s1").unwrap();
    assert_eq!(store.release_held(60_000).unwrap(), 1);
    assert_eq!(store.release_held(60_000).unwrap(), 0, "already due");
    let released = store.due(60_000, 10).unwrap();
    let held = released.iter().find(|d| d.id == due[0].id).expect("due");
    assert_eq!(held.held_by.as_deref(), Some("s1"));
    // Sent: gone, with its mark.
    store
        .finish_delivery(
            held.id,
            &call("i1", "notify:ops", TransitionKind::Opened, true),
            None,
        )
        .unwrap();
    assert_eq!(store.undelivered().unwrap().get("i1"), None);
    assert_eq!(store.release_held(70_000).unwrap(), 0);
    // A delivery finished meanwhile is left alone.
    store.hold_delivery(held.id, 80_000, "s1").unwrap();
    assert!(store.incident("i1").unwrap().unwrap().pending.is_empty());
}

pub fn silences_are_kept_changed_and_deleted(store: &dyn Store) {
    use alertd::silence::{Matchers, Silence};
    let silence = |id: &str, ends_at: i64| Silence {
        id: id.to_string(),
        matchers: Matchers {
            host: Some("web-*".to_string()),
            labels: [("team".to_string(), "ops".to_string())].into(),
            ..Default::default()
        },
        starts_at: 1000,
        ends_at,
        comment: "deploy \"v2\" \u{e9}".to_string(),
        created_by: "ana".to_string(),
        created_at: 900,
        expired_at: None,
    };
    assert!(store.silences().unwrap().is_empty());
    store.put_silence(&silence("s1", 5000)).unwrap();
    store.put_silence(&silence("s2", 9000)).unwrap();
    let mut kept = store.silences().unwrap();
    kept.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(kept, [silence("s1", 5000), silence("s2", 9000)]);
    // Expired early: stored in place.
    let expired = Silence {
        ends_at: 3000,
        expired_at: Some(3000),
        ..silence("s2", 9000)
    };
    store.put_silence(&expired).unwrap();
    let mut kept = store.silences().unwrap();
    kept.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(kept, [silence("s1", 5000), expired.clone()]);
    assert_eq!(store.delete_silences_ended_before(3000).unwrap(), 0);
    assert_eq!(store.delete_silences_ended_before(3001).unwrap(), 1);
    assert_eq!(store.silences().unwrap(), [silence("s1", 5000)]);
}

pub fn a_dead_delivery_waits_to_be_retried(store: &dyn Store) {
    let hooks = targets(&["notify:ops"]);
    store
        .record(&[opened("i1", "r", "h", 100)], &hooks)
        .unwrap();
    store
        .record(&[resolved("i1", "r", "h", 100, 200)], &hooks)
        .unwrap();
    let due = store.due(1000, 10).unwrap();
    assert_eq!(due.len(), 1);
    let undelivered = || store.undelivered().unwrap().into_iter().collect::<Vec<_>>();
    assert_eq!(
        undelivered(),
        [("i1".to_string(), Undelivered::Waiting)],
        "not tried yet: nothing failed"
    );
    store
        .bury_delivery(
            due[0].id,
            &call("i1", "notify:ops", TransitionKind::Opened, false),
        )
        .unwrap();
    assert_eq!(undelivered(), [("i1".to_string(), Undelivered::Dead)]);
    assert!(
        store.due(1000, 10).unwrap().is_empty(),
        "dead, and holding back the resolution"
    );
    assert_eq!(store.next_delivery_time().unwrap(), None);
    assert_eq!(store.pending_deliveries().unwrap(), 2);
    let detail = store.incident("i1").unwrap().unwrap();
    let dead: Vec<bool> = detail.pending.iter().map(|d| d.dead).collect();
    assert_eq!(dead, [true, false]);
    assert_eq!(detail.pending[0].attempts, 1);
    assert_eq!(detail.calls.len(), 1);
    assert_eq!(
        store.delete_incidents_resolved_before(i64::MAX).unwrap(),
        0,
        "kept"
    );
    assert_eq!(store.retry_dead("other", 7000).unwrap(), 0);
    assert_eq!(store.retry_dead("i1", 7000).unwrap(), 1);
    assert!(
        store.due(6999, 10).unwrap().is_empty(),
        "due when brought back"
    );
    let again = store.due(7000, 10).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].kind, again[0].attempts, again[0].dead),
        (TransitionKind::Opened, 1, false)
    );
    store
        .finish_delivery(
            again[0].id,
            &call("i1", "notify:ops", TransitionKind::Opened, true),
            None,
        )
        .unwrap();
    let next = store.due(7000, 10).unwrap();
    assert_eq!(next[0].kind, TransitionKind::Resolved);
    assert_eq!(
        undelivered(),
        [("i1".to_string(), Undelivered::Waiting)],
        "opened delivered; resolved not tried yet"
    );
    store
        .finish_delivery(
            next[0].id,
            &call("i1", "notify:ops", TransitionKind::Resolved, false),
            Some(9000),
        )
        .unwrap();
    assert_eq!(
        undelivered(),
        [("i1".to_string(), Undelivered::Failing)],
        "failed once, waiting"
    );
    let last = store.due(9000, 10).unwrap();
    store
        .finish_delivery(
            last[0].id,
            &call("i1", "notify:ops", TransitionKind::Resolved, true),
            None,
        )
        .unwrap();
    assert!(undelivered().is_empty(), "every hook reached");
}

pub fn sessions_expire_and_end(store: &dyn Store) {
    store.put_session("k1", 1_000).unwrap();
    store.put_session("k2", 5_000).unwrap();
    assert_eq!(store.session_expires("k1").unwrap(), Some(1_000));
    assert_eq!(store.session_expires("nope").unwrap(), None);
    store.delete_session("k2").unwrap();
    assert_eq!(store.session_expires("k2").unwrap(), None);
    store.put_session("k3", 9_000).unwrap();
    assert_eq!(store.delete_sessions_expired(2_000).unwrap(), 1);
    assert_eq!(store.session_expires("k1").unwrap(), None);
    assert_eq!(store.session_expires("k3").unwrap(), Some(9_000));
}

pub fn incident_ranges_include_touching_incidents(store: &dyn Store) {
    store
        .record(
            &[
                opened("a", "r", "h1", 100),
                opened("b", "r", "h2", 300),
                opened("open", "r", "h3", 50),
            ],
            &[],
        )
        .unwrap();
    store
        .record(
            &[
                resolved("a", "r", "h1", 100, 200),
                resolved("b", "r", "h2", 300, 400),
            ],
            &[],
        )
        .unwrap();
    let ids = |from, to| -> Vec<String> {
        let found = store.incidents(from, to).unwrap();
        assert_eq!(found.active.len(), 1, "open incidents are always listed");
        found.resolved.into_iter().map(|i| i.id).collect()
    };
    assert_eq!(ids(0, 1000), ["a", "b"]);
    assert_eq!(ids(200, 300), ["a", "b"]); // endTime >= from, startTime <= to
    assert_eq!(ids(201, 299), Vec::<String>::new());
    assert_eq!(ids(401, 1000), Vec::<String>::new());
    assert_eq!(ids(0, 99), Vec::<String>::new());
}

pub fn deliveries_keep_opened_before_resolved(store: &dyn Store) {
    let hooks = targets(&["exec:a", "exec:b"]);
    store
        .record(&[opened("i1", "r", "h", 100)], &hooks)
        .unwrap();
    store
        .record(&[resolved("i1", "r", "h", 100, 200)], &hooks)
        .unwrap();
    let due = store.due(1000, 10).unwrap();
    let seen: Vec<(&str, TransitionKind)> =
        due.iter().map(|d| (d.target.as_str(), d.kind)).collect();
    assert_eq!(
        seen,
        [
            ("exec:a", TransitionKind::Opened),
            ("exec:b", TransitionKind::Opened)
        ]
    );
    assert_eq!(due[0].incident, incident("i1", "r", "h", 100, None));
    assert_eq!(due[0].attempts, 0);
    assert!(
        store.due(99, 10).unwrap().is_empty(),
        "not due before the tick"
    );

    // Hook a fails: it is retried later, and its "resolved" waits behind it.
    let a = due[0].id;
    store
        .finish_delivery(
            a,
            &call("i1", "exec:a", TransitionKind::Opened, false),
            Some(5000),
        )
        .unwrap();
    let b = due[1].id;
    store
        .finish_delivery(b, &call("i1", "exec:b", TransitionKind::Opened, true), None)
        .unwrap();
    let due = store.due(1000, 10).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(
        (due[0].target.as_str(), due[0].kind),
        ("exec:b", TransitionKind::Resolved)
    );
    assert_eq!(due[0].incident.end_time, Some(200));
    // b's "resolved" (due at 200) is claimed: the next to look at is a's retry.
    assert_eq!(store.next_delivery_time().unwrap(), Some(5000));
    store
        .finish_delivery(
            due[0].id,
            &call("i1", "exec:b", TransitionKind::Resolved, true),
            None,
        )
        .unwrap();
    assert!(store.due(4999, 10).unwrap().is_empty());
    assert_eq!(store.next_delivery_time().unwrap(), Some(5000));
    let due = store.due(5000, 10).unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].id, a);
    assert_eq!(due[0].attempts, 1);
    store
        .finish_delivery(a, &call("i1", "exec:a", TransitionKind::Opened, true), None)
        .unwrap();
    let due = store.due(5000, 10).unwrap();
    assert_eq!(
        (due[0].target.as_str(), due[0].kind),
        ("exec:a", TransitionKind::Resolved)
    );
    assert_eq!(store.due(5000, 0).unwrap().len(), 0);

    let detail = store.incident("i1").unwrap().unwrap();
    assert_eq!(detail.incident.end_time, Some(200));
    let calls: Vec<(&str, bool)> = detail
        .calls
        .iter()
        .map(|c| (c.target.as_str(), c.succeeded))
        .collect();
    assert_eq!(
        calls,
        [
            ("exec:a", false),
            ("exec:b", true),
            ("exec:b", true),
            ("exec:a", true)
        ]
    );
    assert_eq!(detail.calls[0].stdout, "out");
    assert_eq!(detail.calls[0].duration_ms, 12);
    assert_eq!(detail.pending.len(), 1);
    assert!(store.incident("nope").unwrap().is_none());
}

pub fn old_incidents_are_deleted_once_delivered(store: &dyn Store) {
    let hooks = targets(&["exec:a"]);
    store
        .record(
            &[
                opened("done", "r", "h1", 100),
                opened("waiting", "r", "h2", 100),
            ],
            &[],
        )
        .unwrap();
    store
        .record(&[resolved("done", "r", "h1", 100, 200)], &[])
        .unwrap();
    store
        .record(&[resolved("waiting", "r", "h2", 100, 200)], &hooks)
        .unwrap();
    store
        .record(&[opened("open", "r", "h3", 200)], &[])
        .unwrap();
    assert_eq!(store.delete_incidents_resolved_before(200).unwrap(), 0);
    assert_eq!(store.delete_incidents_resolved_before(201).unwrap(), 1);
    assert!(store.incident("done").unwrap().is_none());
    assert!(
        store.incident("waiting").unwrap().is_some(),
        "its hook has not seen it yet"
    );
    assert!(store.incident("open").unwrap().is_some());
    // The cooldown outlives the incident.
    let done = store
        .pairs()
        .unwrap()
        .into_iter()
        .find(|p| p.host == "h1")
        .unwrap();
    assert_eq!(done.last_end, Some(200));
}

pub fn everything_survives_reopening(
    place: &std::path::Path,
    open: fn(&std::path::Path) -> Box<dyn Store>,
) {
    {
        let store = open(place);
        store
            .append_samples(&[Sample::new("web-1", 10, &[("x", 1.5)])])
            .unwrap();
        store
            .record(&[opened("i1", "r", "web-1", 100)], &targets(&["exec:a"]))
            .unwrap();
    }
    let store = open(place);
    store
        .append_samples(&[Sample::new("web-1", 10, &[("x", 2.5)])])
        .unwrap();
    let samples = scan(store.as_ref(), 0, 100);
    let values: Vec<f64> = samples.iter().map(|s| s.metrics[0].1).collect();
    assert_eq!(
        values,
        [1.5, 2.5],
        "ties stay in append order across a reopening"
    );
    assert_eq!(store.incidents(0, 1000).unwrap().active.len(), 1);
    assert_eq!(store.pending_deliveries().unwrap(), 1);
    assert_eq!(store.hosts().unwrap().len(), 1);
}

// What a shared store meets: several nodes at once. `nodes` are two handles
// on one store (the same handle twice for a store that one process owns).

pub fn a_lease_is_held_by_one_node_and_fences_the_others(nodes: [&dyn Store; 2]) {
    let [one, other] = nodes;
    let a = one
        .acquire_lease("a", 400)
        .unwrap()
        .expect("nobody leads yet");
    assert_eq!(other.acquire_lease("b", 400).unwrap(), None, "a leads");
    let holder = other.lease_holder().unwrap().unwrap();
    assert_eq!((holder.node.as_str(), holder.token), ("a", a.token));
    assert!(holder.expires_in > 0 && holder.expires_in <= 400);
    assert!(one.renew_lease(&a, 400).unwrap());
    let pretender = Lease {
        node: "b".to_string(),
        token: a.token,
    };
    assert!(matches!(
        other.record_transitions(&pretender, &[opened("x", "r", "h", 1)], &[]),
        Err(alertd::store::StoreError::Fenced { .. })
    ));
    // a is paused past its lease: b takes over with a higher token.
    std::thread::sleep(std::time::Duration::from_millis(600));
    assert_eq!(other.lease_holder().unwrap(), None);
    assert!(!one.renew_lease(&a, 400).unwrap(), "a's lease ran out");
    let b = other
        .acquire_lease("b", 60_000)
        .unwrap()
        .expect("the lease ran out");
    assert!(b.token > a.token);
    let refused =
        one.record_transitions(&a, &[opened("stale", "r", "h", 1)], &targets(&["exec:x"]));
    assert!(
        matches!(refused, Err(alertd::store::StoreError::Fenced { ref node, token }) if node == "a" && token == a.token),
        "{refused:?}"
    );
    assert!(
        one.incident("stale").unwrap().is_none(),
        "a stale write changes nothing"
    );
    assert_eq!(one.pending_deliveries().unwrap(), 0);
    other
        .record_transitions(&b, &[opened("fresh", "r", "h", 2)], &[])
        .unwrap();
    other.publish_states(&b, 2, b"b's view").unwrap();
    assert!(matches!(
        one.publish_states(&a, 3, b"a's stale view"),
        Err(alertd::store::StoreError::Fenced { .. })
    ));
    assert_eq!(
        one.published_states().unwrap().as_deref(),
        Some(&b"b's view"[..])
    );
    assert_eq!(one.acquire_lease("a", 60_000).unwrap(), None, "b leads");
    // b restarts: it takes its own lease back at once, and its old token
    // is stale.
    let b2 = other
        .acquire_lease("b", 60_000)
        .unwrap()
        .expect("b's own lease");
    assert!(b2.token > b.token);
    assert!(!other.renew_lease(&b, 60_000).unwrap());
    assert!(
        other
            .record_transitions(&b, &[resolved("fresh", "r", "h", 2, 3)], &[])
            .is_err()
    );
    // b stops and gives the lease up: a leads at once.
    other.release_lease(&b2).unwrap();
    let a2 = one.acquire_lease("a", 60_000).unwrap().expect("given up");
    assert!(a2.token > b2.token);
    one.release_lease(&b2).unwrap();
    assert_eq!(
        one.lease_holder().unwrap().unwrap().node,
        "a",
        "a stale release changes nothing"
    );
}

pub fn two_writers_race_to_open_one_pair(nodes: [&dyn Store; 2]) {
    let lease = nodes[0].acquire_lease("leader", 600_000).unwrap().unwrap();
    let hooks = targets(&["exec:a"]);
    let outcomes: Vec<Result<(), alertd::store::StoreError>> = std::thread::scope(|scope| {
        let racers: Vec<_> = (0..8)
            .map(|i| {
                let (store, lease, hooks) = (nodes[i % 2], &lease, &hooks);
                scope.spawn(move || {
                    store.record_transitions(
                        lease,
                        &[opened(&format!("i{i}"), "r", "h", 100)],
                        hooks,
                    )
                })
            })
            .collect();
        racers
            .into_iter()
            .map(|racer| racer.join().unwrap())
            .collect()
    });
    let won = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
    assert_eq!(won, 1, "{outcomes:?}");
    for lost in outcomes.iter().filter_map(|outcome| outcome.as_ref().err()) {
        assert!(
            matches!(lost, alertd::store::StoreError::AlreadyOpen { rule, host, .. } if rule == "r" && host == "h"),
            "{lost}"
        );
    }
    let active = nodes[1].incidents(0, 1000).unwrap().active;
    assert_eq!(active.len(), 1);
    assert_eq!(nodes[0].pending_deliveries().unwrap(), 1);
    // The winner's retry (its answer was lost, say) records nothing more.
    let winner = active[0].id.clone();
    nodes[1]
        .record_transitions(&lease, &[opened(&winner, "r", "h", 100)], &hooks)
        .unwrap();
    assert_eq!(nodes[0].pending_deliveries().unwrap(), 1);
    // A tick with one good transition and one conflicting is refused whole.
    let refused = nodes[0].record_transitions(
        &lease,
        &[
            opened("other", "r", "h2", 200),
            opened("twin", "r", "h", 200),
        ],
        &hooks,
    );
    assert!(matches!(
        refused,
        Err(alertd::store::StoreError::AlreadyOpen { .. })
    ));
    assert!(nodes[1].incident("other").unwrap().is_none());
    assert_eq!(nodes[1].pending_deliveries().unwrap(), 1);
    // Once resolved, the pair can open again; the resolution is recorded once.
    let resolution = [resolved(&winner, "r", "h", 100, 300)];
    nodes[0]
        .record_transitions(&lease, &resolution, &hooks)
        .unwrap();
    nodes[1]
        .record_transitions(&lease, &resolution, &hooks)
        .unwrap();
    assert_eq!(nodes[0].pending_deliveries().unwrap(), 2);
    nodes[1]
        .record_transitions(&lease, &[opened("again", "r", "h", 400)], &hooks)
        .unwrap();
    let pairs = nodes[0].pairs().unwrap();
    assert_eq!(pairs.len(), 1);
    assert_eq!(pairs[0].last_end, Some(300));
    assert_eq!(pairs[0].open.as_ref().unwrap().id, "again");
}

pub fn one_delivery_is_claimed_by_one_node_at_a_time(nodes: [&dyn Store; 2]) {
    let [x, y] = nodes;
    let lease = x.acquire_lease("leader", 600_000).unwrap().unwrap();
    let hooks = targets(&["exec:a"]);
    x.record_transitions(&lease, &[opened("i1", "r", "h", 100)], &hooks)
        .unwrap();
    x.record_transitions(&lease, &[resolved("i1", "r", "h", 100, 200)], &hooks)
        .unwrap();
    // Claims run on the store's clock: the callers give the wall clock's
    // time, as a node does.
    let wall = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
    };
    let by = |node, lasts| Claim {
        node,
        lasts,
        skip: &[],
    };
    let start = wall();
    let claimed = x.claim_deliveries(start, &by("x", 400), 10).unwrap();
    assert_eq!(claimed.len(), 1, "the resolution waits behind the opening");
    assert_eq!(claimed[0].kind, TransitionKind::Opened);
    assert!(
        y.claim_deliveries(wall(), &by("y", 60_000), 10)
            .unwrap()
            .is_empty()
    );
    if y.shared() {
        // A node whose clock is a minute ahead does not see x's claim run
        // out early: the claim counts on Redis's clock, not the caller's.
        assert!(
            y.claim_deliveries(wall() + 60_000, &by("y", 60_000), 10)
                .unwrap()
                .is_empty(),
            "a caller's clock decides no other node's claim"
        );
    }
    let renewed = wall();
    assert_eq!(
        x.claim_deliveries(renewed, &by("x", 400), 10)
            .unwrap()
            .len(),
        1,
        "its own claim, renewed"
    );
    let next = y.next_delivery_time().unwrap().expect("a delivery waits");
    assert!(
        next >= renewed + 400 - 50 && next <= wall() + 400 + 50,
        "the claim runs out 400 ms after its renewal: {next} against {renewed}"
    );
    // x dies mid-call: once its claim runs out, y claims the same delivery.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let again = y.claim_deliveries(wall(), &by("y", 60_000), 10).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].id, claimed[0].id);
    // x comes back and finishes late; y finishes too: called twice (at
    // least once), recorded twice, removed once.
    let done = |kind| call("i1", "exec:a", kind, true);
    x.finish_delivery(claimed[0].id, &done(TransitionKind::Opened), None)
        .unwrap();
    y.finish_delivery(again[0].id, &done(TransitionKind::Opened), None)
        .unwrap();
    assert_eq!(x.pending_deliveries().unwrap(), 1);
    let detail = y.incident("i1").unwrap().unwrap();
    assert_eq!(detail.calls.len(), 2);
    assert_eq!(detail.pending.len(), 1);
    let next = y.claim_deliveries(wall(), &by("y", 60_000), 10).unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].kind, TransitionKind::Resolved);
    assert_eq!(next[0].incident.end_time, Some(200));
}

/// A tick is recorded once: a later lease (a node whose clock is behind
/// the one that led before) cannot record a tick at or before the last
/// one, with transitions or with published states; a retry of the same tick
/// under the same lease can.
pub fn a_tick_comes_after_the_last_one_recorded(store: &dyn Store) {
    use alertd::store::StoreError;
    assert_eq!(store.last_tick().unwrap(), None);
    let a = store.acquire_lease("a", 60_000).unwrap().unwrap();
    store
        .record_transitions(&a, &[opened("i1", "r", "h1", 1000)], &[])
        .unwrap();
    // The same tick again under the same lease: a retry, or the states
    // published after the tick's transitions.
    store
        .record_transitions(&a, &[opened("i1", "r", "h1", 1000)], &[])
        .unwrap();
    store.publish_states(&a, 1000, b"a").unwrap();
    assert_eq!(store.last_tick().unwrap(), Some(1000));
    let stale =
        store.record_transitions(&a, &[opened("i2", "r", "h2", 900)], &targets(&["exec:x"]));
    assert!(
        matches!(
            stale,
            Err(StoreError::StaleTick {
                tick: 900,
                last: 1000
            })
        ),
        "{stale:?}"
    );
    assert!(store.incident("i2").unwrap().is_none(), "nothing recorded");
    assert_eq!(store.pending_deliveries().unwrap(), 0);
    // Another lease (the next leader) at the same tick: refused.
    let b = store.acquire_lease("a", 60_000).unwrap().unwrap();
    assert!(b.token > a.token);
    assert!(matches!(
        store.record_transitions(&b, &[resolved("i1", "r", "h1", 1000, 1000)], &[]),
        Err(StoreError::StaleTick {
            tick: 1000,
            last: 1000
        })
    ));
    assert!(matches!(
        store.publish_states(&b, 1000, b"b"),
        Err(StoreError::StaleTick {
            tick: 1000,
            last: 1000
        })
    ));
    assert_eq!(
        store.published_states().unwrap().as_deref(),
        Some(&b"a"[..])
    );
    assert!(store.pairs().unwrap()[0].open.is_some(), "i1 is still open");
    // A later tick goes through, and is the last one.
    store.publish_states(&b, 1500, b"b").unwrap();
    store
        .record_transitions(&b, &[resolved("i1", "r", "h1", 1000, 2000)], &[])
        .unwrap();
    assert_eq!(store.last_tick().unwrap(), Some(2000));
    // Nothing to record records no tick.
    store.record_transitions(&b, &[], &[]).unwrap();
    assert_eq!(store.last_tick().unwrap(), Some(2000));
}

/// What rules with options add is kept: each pair's `pendingSince` and
/// `clearSince` (recorded with a tick, ended by a transition), and an
/// incident's severity, labels, description, `pendingSince`, a trigger
/// value of no data and a resolution, in the incident, its deliveries and
/// the pairs.
pub fn pair_states_and_incident_details_are_kept(store: &dyn Store) {
    use alertd::incident::{IncidentDetails, PairChange};
    let lease = store.acquire_lease("leader", 600_000).unwrap().unwrap();
    let change = |host: &str, at, pending, clear| PairChange {
        rule: 0,
        rule_name: Arc::from("r"),
        host: Arc::from(host),
        at,
        pending_since: pending,
        clear_since: clear,
    };
    store
        .record_tick(
            &lease,
            &[],
            &[],
            &[
                change("h1", 100, Some(100), None),
                change("h2", 100, Some(90), None),
            ],
        )
        .unwrap();
    let state = |store: &dyn Store| -> Vec<(String, Option<i64>, Option<i64>, bool)> {
        store
            .pairs()
            .unwrap()
            .into_iter()
            .map(|pair| {
                (
                    pair.host,
                    pair.pending_since,
                    pair.clear_since,
                    pair.open.is_some(),
                )
            })
            .collect()
    };
    assert_eq!(
        state(store),
        [
            ("h1".to_string(), Some(100), None, false),
            ("h2".to_string(), Some(90), None, false)
        ]
    );
    assert_eq!(
        store.last_tick().unwrap(),
        Some(100),
        "a tick with changes only"
    );
    // h1 opens, on no data, with details; h2 stops pending.
    let mut opened = opened("i1", "r", "h1", 200);
    opened.incident.trigger_value = f64::NAN;
    opened.incident.details = Some(Arc::new(IncidentDetails {
        severity: Some("critical".to_string()),
        labels: [("team".to_string(), "web".to_string())].into(),
        description: Some("h1 has no data".to_string()),
        pending_since: Some(100),
    }));
    store
        .record_tick(
            &lease,
            std::slice::from_ref(&opened),
            &[targets(&["exec:a"])],
            &[change("h2", 200, None, None)],
        )
        .unwrap();
    assert_eq!(state(store), [("h1".to_string(), None, None, true)]);
    let read = store.incident("i1").unwrap().unwrap();
    assert!(
        read.incident.trigger_value.is_nan(),
        "no data stays no data"
    );
    assert_eq!(read.incident.details, opened.incident.details);
    let json = serde_json::to_value(&read.incident).unwrap();
    assert_eq!(json["triggerValue"], serde_json::Value::Null);
    assert_eq!(json["severity"], "critical");
    assert_eq!(json["labels"]["team"], "web");
    assert_eq!(json["pendingSince"], "1970-01-01T00:00:00.100Z");
    let due = store.due(i64::MAX / 2, 10).unwrap();
    assert_eq!(
        due[0].incident.details, opened.incident.details,
        "the delivery carries them"
    );
    assert!(due[0].incident.trigger_value.is_nan());
    // Clear since 300, then resolved apart (store lost) at 400.
    store
        .record_tick(&lease, &[], &[], &[change("h1", 300, None, Some(300))])
        .unwrap();
    assert_eq!(state(store), [("h1".to_string(), None, Some(300), true)]);
    let resolved = Transition::resolved_apart(opened.incident.clone(), 400, Some("store lost"));
    store.record_tick(&lease, &[resolved], &[], &[]).unwrap();
    let pairs = store.pairs().unwrap();
    assert_eq!((pairs[0].pending_since, pairs[0].clear_since), (None, None));
    let read = store.incident("i1").unwrap().unwrap().incident;
    assert_eq!(read.resolution.as_deref(), Some("store lost"));
    assert_eq!(read.details, opened.incident.details);
}

/// Samples appended after their time was compacted and rolled up are read
/// by `scan_unrolled` until the next compaction takes them; compacted ones
/// are not.
pub fn late_samples_are_unrolled_until_compacted(store: &dyn Store) {
    use alertd::store::BLOCK_PERIOD;
    let base = 1_700_000_000_000 / BLOCK_PERIOD * BLOCK_PERIOD;
    let early: Vec<Sample> = (0..120i64)
        .map(|i| Sample::new("h", base + i * 10_000, &[("x", 1.0)]))
        .collect();
    store.append_samples(&early).unwrap();
    let end = base + 3 * BLOCK_PERIOD;
    while store
        .compact_samples(end, alertd::store::EVERY_ROLLUP)
        .unwrap()
        > 0
    {}
    let until = store.rolled_up_until().unwrap();
    assert!(until > base + 1_200_000, "rolled up: {until}");
    let unrolled = |store: &dyn Store| {
        let mut found = Vec::new();
        store
            .scan_unrolled(base, end, &mut |sample| {
                found.push((sample.host, sample.ts))
            })
            .unwrap();
        found.sort();
        found
    };
    assert_eq!(unrolled(store), [], "every sample compacted");
    store
        .append_samples(&[Sample::new("late", base + 5_000, &[("x", 2.0)])])
        .unwrap();
    assert_eq!(unrolled(store), [("late".to_string(), base + 5_000)]);
    while store
        .compact_samples(end, alertd::store::EVERY_ROLLUP)
        .unwrap()
        > 0
    {}
    assert_eq!(unrolled(store), [], "compacted at last");
}

/// One target's backlog does not hide another's: the claim takes at most
/// so many of each target's deliveries, oldest first, counting the ones
/// the node claimed already.
pub fn claims_take_at_most_so_many_per_target(store: &dyn Store) {
    let lease = store.acquire_lease("leader", 600_000).unwrap().unwrap();
    // Five incidents to a hanging target, then one to a good one: the good
    // one's delivery is the newest.
    for n in 0..5 {
        let id = format!("h{n}");
        store
            .record_transitions(
                &lease,
                &[opened(&id, "r", &id, 100 + n)],
                &targets(&["exec:hang"]),
            )
            .unwrap();
    }
    store
        .record_transitions(
            &lease,
            &[opened("g", "r", "g", 200)],
            &targets(&["exec:good"]),
        )
        .unwrap();
    let claim = Claim {
        node: "x",
        lasts: 600_000,
        skip: &[],
    };
    let first = store.claim_deliveries(1000, &claim, 2).unwrap();
    let of = |deliveries: &[Delivery]| -> Vec<(String, String)> {
        deliveries
            .iter()
            .map(|d| (d.target.clone(), d.incident.id.clone()))
            .collect()
    };
    let pair = |target: &str, id: &str| (target.to_string(), id.to_string());
    assert_eq!(
        of(&first),
        [
            pair("exec:hang", "h0"),
            pair("exec:hang", "h1"),
            pair("exec:good", "g")
        ]
    );
    // Claimed again by the same node, they still fill the slots: no more.
    let again = store.claim_deliveries(1000, &claim, 2).unwrap();
    assert_eq!(of(&again), of(&first));
    // One of the hanging target's calls ends: the next of its backlog.
    let done = call("h0", "exec:hang", TransitionKind::Opened, true);
    store.finish_delivery(first[0].id, &done, None).unwrap();
    let next = store.claim_deliveries(1000, &claim, 2).unwrap();
    assert_eq!(
        of(&next),
        [
            pair("exec:hang", "h1"),
            pair("exec:hang", "h2"),
            pair("exec:good", "g")
        ]
    );
    assert!(store.claim_deliveries(1000, &claim, 0).unwrap().is_empty());
}

/// A batch pushed with an idempotency key is stored once, whichever node
/// it reaches again; the same key with another batch stores nothing; the
/// key is forgotten after its time.
pub fn a_batch_with_an_idempotency_key_is_stored_once([x, y]: [&dyn Store; 2]) {
    use alertd::store::{Appended, Once, batch::Encoded};
    // The embedded store numbers samples in its process: one handle.
    let y = if x.shared() { y } else { x };
    let once = |key: &str, fingerprint: &str, keep| Once {
        key: key.to_string(),
        fingerprint: fingerprint.to_string(),
        keep,
    };
    let batch = |host: &str, ts| vec![Sample::new(host, ts, &[("x", 1.0)])];
    let (a, b, c) = (batch("a", 1_000), batch("b", 2_000), batch("c", 3_000));
    let (ea, eb, ec) = (
        Encoded::new(&a).unwrap(),
        Encoded::new(&b).unwrap(),
        Encoded::new(&c).unwrap(),
    );
    let k1 = once("k1", "f-a", 60_000);
    let first = x
        .append_once(&[(&a, &ea), (&b, &eb)], &[Some(&k1), None])
        .unwrap();
    assert_eq!(first, [Appended::Stored, Appended::Stored]);
    // Sent again, to the other node, in a group with a new batch.
    let again = y
        .append_once(&[(&a, &ea), (&c, &ec)], &[Some(&k1), None])
        .unwrap();
    assert_eq!(again, [Appended::Replayed, Appended::Stored]);
    // The same key with another batch: refused, nothing of it stored, not
    // even its host's latest sample.
    let other = once("k1", "f-other", 60_000);
    let late = batch("late", 9_000);
    let refused = x
        .append_once(&[(&late, &Encoded::new(&late).unwrap())], &[Some(&other)])
        .unwrap();
    assert_eq!(refused, [Appended::Conflict]);
    let mut hosts: Vec<String> = Vec::new();
    x.scan_samples_before(
        0,
        i64::MAX,
        alertd::store::SampleCursor::MAX,
        &mut |sample| hosts.push(sample.host.clone()),
    )
    .unwrap();
    assert_eq!(hosts, ["a", "b", "c"], "each batch once");
    assert!(
        y.latest_samples().unwrap().iter().all(|s| s.host != "late"),
        "a refused batch's host is not noted"
    );
    // Keys kept without samples (counters pushed to a node).
    let k2 = once("k2", "f-counters", 300);
    assert_eq!(x.remember_once(&k2).unwrap(), Appended::Stored);
    assert_eq!(y.remember_once(&k2).unwrap(), Appended::Replayed);
    assert_eq!(
        y.remember_once(&once("k2", "f-else", 300)).unwrap(),
        Appended::Conflict
    );
    // Past its time, a key is new again.
    std::thread::sleep(std::time::Duration::from_millis(400));
    assert_eq!(y.remember_once(&k2).unwrap(), Appended::Stored);
}

pub fn samples_from_two_nodes_read_back_in_order_through_a_cursor(nodes: [&dyn Store; 2]) {
    let start = nodes[0].sample_cursor().unwrap();
    let mut seen: Vec<Sample> = Vec::new();
    std::thread::scope(|scope| {
        let writers: Vec<_> = (0..2)
            .map(|node| {
                let store = nodes[node];
                scope.spawn(move || {
                    for batch in 0..40i64 {
                        let samples: Vec<Sample> = (0..3)
                            .map(|i| {
                                Sample::new(
                                    format!("n{node}"),
                                    1_000 + batch * 3 + i,
                                    &[("x", (batch * 3 + i) as f64)],
                                )
                            })
                            .collect();
                        store.append_samples(&samples).unwrap();
                    }
                })
            })
            .collect();
        // The leader follows the appends while they happen.
        let mut cursor = start;
        while writers.iter().any(|writer| !writer.is_finished()) {
            cursor = nodes[1]
                .samples_since(cursor, &mut |sample| seen.push(sample))
                .unwrap();
        }
        for writer in writers {
            writer.join().unwrap();
        }
        let end = nodes[0]
            .samples_since(cursor, &mut |sample| seen.push(sample))
            .unwrap();
        assert_eq!(
            nodes[1].sample_cursor().unwrap(),
            end,
            "the cursor after the last"
        );
        assert_eq!(
            nodes[1]
                .samples_since(end, &mut |_| panic!("nothing new"))
                .unwrap(),
            end
        );
    });
    assert_eq!(seen.len(), 240, "each sample once");
    for node in ["n0", "n1"] {
        let values: Vec<f64> = seen
            .iter()
            .filter(|sample| sample.host == node)
            .map(|sample| sample.metrics[0].1)
            .collect();
        let expected: Vec<f64> = (0..120).map(f64::from).collect();
        assert_eq!(values, expected, "{node}'s samples in append order");
    }
    let mut before = Vec::new();
    let cursor = nodes[0].sample_cursor().unwrap();
    nodes[0]
        .append_samples(&[Sample::new("late", 1_000, &[])])
        .unwrap();
    nodes[1]
        .scan_samples_before(i64::MIN, i64::MAX, cursor, &mut |sample| {
            before.push(sample)
        })
        .unwrap();
    assert_eq!(before.len(), 240, "the late sample is after the cursor");
    assert!(
        before
            .windows(2)
            .all(|pair| (pair[0].ts, &pair[0].host) <= (pair[1].ts, &pair[1].host))
    );
}

/// Runs every case of the suite against one backend.
/// Conformance cases on one node, each on a fresh store, inside a backend's
/// module (which has `available` and `fresh`).
macro_rules! one_node {
    ($($case:ident),* $(,)?) => {$(
        #[test]
        fn $case() {
            if available() {
                let (_dir, store) = fresh();
                super::$case(store.as_ref());
            }
        }
    )*};
}

/// Conformance cases on two nodes sharing a fresh store, inside a backend's
/// module (which has `available` and `cluster`).
macro_rules! two_nodes {
    ($($case:ident),* $(,)?) => {$(
        #[test]
        fn $case() {
            if available() {
                cluster(super::$case);
            }
        }
    )*};
}

macro_rules! conformance {
    ($backend:ident, needs: $program:expr, $open:expr, $another:expr) => {
        mod $backend {
            use super::*;

            /// Whether the backend's program is here; says why not, or fails under CI.
            fn available() -> bool {
                $program.is_none_or(support::programs::needed)
            }

            fn open(place: &std::path::Path) -> Box<dyn Store> {
                $open(place)
            }

            fn fresh() -> (tempfile::TempDir, Box<dyn Store>) {
                let dir = tempfile::tempdir().unwrap();
                let store = open(dir.path());
                (dir, store)
            }

            /// Two nodes on one fresh store: two handles on it.
            fn cluster(case: fn([&dyn Store; 2])) {
                let (dir, store) = fresh();
                let another: Option<Box<dyn Store>> = $another(dir.path());
                let second = another.as_deref().unwrap_or(store.as_ref());
                case([store.as_ref(), second]);
            }

            two_nodes!(
                a_lease_is_held_by_one_node_and_fences_the_others,
                two_writers_race_to_open_one_pair,
                one_delivery_is_claimed_by_one_node_at_a_time,
                nodes_report_and_are_forgotten,
                the_identity_is_written_once_and_a_loss_kept_until_acknowledged,
                a_batch_with_an_idempotency_key_is_stored_once,
            );

            one_node!(
                samples_are_scanned_in_time_then_host_order,
                a_large_batch_reads_back_whole,
                rollups_cover_the_samples_before_rolled_up_until,
                rollups_past_their_time_are_not_written,
                a_value_that_cannot_be_read_back_is_refused,
                batches_append_in_order,
                a_cursor_splits_samples_by_append_order,
                compacted_and_recent_samples_read_back_exactly,
                hosts_and_latest_samples,
                old_samples_and_silent_hosts_are_deleted,
                transitions_make_incidents_pairs_and_deliveries,
                an_incident_never_ends_before_it_started,
                a_tick_comes_after_the_last_one_recorded,
                late_samples_are_unrolled_until_compacted,
                pair_states_and_incident_details_are_kept,
                each_transition_goes_to_its_own_targets,
                a_dead_delivery_waits_to_be_retried,
                a_held_delivery_waits_without_a_call,
                reminders_are_queued_with_their_next_time,
                an_incident_is_acknowledged_once,
                a_target_s_deliveries_are_claimed_together_and_postponed,
                silences_are_kept_changed_and_deleted,
                sessions_expire_and_end,
                incident_ranges_include_touching_incidents,
                deliveries_keep_opened_before_resolved,
                old_incidents_are_deleted_once_delivered,
                claims_take_at_most_so_many_per_target,
            );

            /// Two nodes appending samples. The embedded store numbers
            /// samples in its process, and its data directory's lock keeps
            /// a second process out: there, the two nodes are one handle.
            #[test]
            fn samples_from_two_nodes_read_back_in_order_through_a_cursor() {
                if !available() {
                    return;
                }
                let (dir, store) = fresh();
                let another = if store.shared() {
                    $another(dir.path())
                } else {
                    None
                };
                let second = another.as_deref().unwrap_or(store.as_ref());
                super::samples_from_two_nodes_read_back_in_order_through_a_cursor([
                    store.as_ref(),
                    second,
                ]);
            }

            proptest::proptest! {
                #![proptest_config(proptest::prelude::ProptestConfig {
                    cases: 48,
                    ..Default::default()
                })]
                #[test]
                fn samples_match_a_model(ops in proptest::collection::vec(super::op(), 1..24)) {
                    if available() {
                        let dir = tempfile::tempdir().unwrap();
                        super::samples_match_a_model(dir.path(), open, &ops);
                    }
                }
            }

            #[test]
            fn everything_survives_reopening() {
                if available() {
                    let dir = tempfile::tempdir().unwrap();
                    super::everything_survives_reopening(dir.path(), open);
                }
            }
        }
    };
}

conformance!(
    sqlite,
    needs: None::<&str>,
    |place: &std::path::Path| -> Box<dyn Store> { Box::new(SqliteStore::open_dir(place).unwrap()) },
    // A second handle on the same file, as a second process would open it.
    |place: &std::path::Path| -> Option<Box<dyn Store>> {
        Some(Box::new(SqliteStore::open_dir(place).unwrap()))
    }
);

/// The cluster a test's place stands for: one per place, on one server.
fn redis_store(place: &std::path::Path) -> Box<dyn Store> {
    let port = support::redis::shared_server();
    let cluster = place
        .display()
        .to_string()
        .replace(['/', ' ', '{', '}'], "_");
    Box::new(RedisStore::open(&format!("redis://127.0.0.1:{port}/0"), &cluster).unwrap())
}

conformance!(
    redis,
    needs: Some("redis-server"),
    redis_store,
    |place: &std::path::Path| -> Option<Box<dyn Store>> { Some(redis_store(place)) }
);

/// Whether other processes write to the store: the embedded one is its
/// process's own, a cluster's Redis is shared.
#[test]
fn only_the_redis_store_is_shared() {
    if !support::programs::needed("redis-server") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sqlite: Box<dyn Store> = Box::new(SqliteStore::open_dir(dir.path()).unwrap());
    assert!(!sqlite.shared());
    assert!(redis_store(dir.path()).shared());
}

#[test]
fn sqlite_refuses_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alertd.sqlite");
    drop(SqliteStore::open(&path).unwrap());
    let connection = rusqlite::Connection::open(&path).unwrap();
    connection.pragma_update(None, "user_version", 99).unwrap();
    drop(connection);
    let error = SqliteStore::open(&path).err().expect("refused");
    assert_eq!(
        error.to_string(),
        "the store's schema version is 99, this alertd knows 5: upgrade alertd"
    );
}

#[test]
fn sqlite_moves_the_samples_of_a_version_1_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alertd.sqlite");
    let connection = rusqlite::Connection::open(&path).unwrap();
    connection
        .execute_batch(
            "CREATE TABLE samples (ts INTEGER NOT NULL, seq INTEGER NOT NULL, \
             host TEXT NOT NULL, metrics BLOB NOT NULL, PRIMARY KEY (ts, seq)) WITHOUT ROWID;
             CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
             INSERT INTO meta VALUES ('next_seq', 4);
             CREATE TABLE hosts (host TEXT PRIMARY KEY, last_seen INTEGER NOT NULL) WITHOUT ROWID;
             PRAGMA user_version = 1;",
        )
        .unwrap();
    // Version 1 metrics: per field, the name's length, the name, the value.
    let metrics = |fields: &[(&str, f64)]| {
        let mut bytes = Vec::new();
        for (name, value) in fields {
            bytes.push(name.len() as u8);
            bytes.extend_from_slice(name.as_bytes());
            bytes.extend_from_slice(&value.to_le_bytes());
        }
        bytes
    };
    for (seq, ts, host, fields) in [
        (1, 20, "b", vec![("x", 1.5)]),
        (2, 10, "a", vec![("x", 2.0), ("cpu.usage", 0.25)]),
        (3, 20, "a", vec![]),
    ] {
        connection
            .execute(
                "INSERT INTO samples VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![ts, seq, host, metrics(&fields)],
            )
            .unwrap();
    }
    drop(connection);
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(
        scan(&store, i64::MIN, i64::MAX),
        [
            Sample::new("a", 10, &[("x", 2.0), ("cpu.usage", 0.25)]),
            Sample::new("a", 20, &[]),
            Sample::new("b", 20, &[("x", 1.5)]),
        ]
    );
    let hosts: Vec<String> = store.hosts().unwrap().into_iter().map(|h| h.host).collect();
    assert_eq!(hosts, ["a", "b"]);
    store
        .append_samples(&[Sample::new("a", 20, &[("y", 1.0)])])
        .unwrap();
    let latest = store.latest_samples().unwrap();
    assert_eq!(
        latest[0].metrics,
        [("y".to_string(), 1.0)],
        "appended after the moved ones"
    );
    drop(store);
    let connection = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = connection
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .unwrap();
    assert_eq!(version, 5);
    let old: i64 = connection
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name IN ('samples', 'hosts')",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(old, 0);
}

#[test]
fn sqlite_adds_dead_deliveries_to_an_earlier_version_2_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alertd.sqlite");
    {
        let store = SqliteStore::open(&path).unwrap();
        let store: &dyn Store = &store;
        store
            .record(&[opened("i1", "r", "h", 100)], &targets(&["exec:a"]))
            .unwrap();
    }
    // As written by the alertd before dead deliveries.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("ALTER TABLE outbox DROP COLUMN dead")
        .unwrap();
    let store = SqliteStore::open(&path).unwrap();
    let store: &dyn Store = &store;
    let due = store.due(1000, 10).unwrap();
    assert_eq!(due.len(), 1);
    assert!(!due[0].dead);
    store
        .bury_delivery(
            due[0].id,
            &call("i1", "exec:a", TransitionKind::Opened, false),
        )
        .unwrap();
    assert!(store.incident("i1").unwrap().unwrap().pending[0].dead);
}

/// Every point of `step` of all hosts together, by time.
fn all_hosts_points(store: &dyn Store, step: Step) -> Vec<Point> {
    let points = support::rollups(store, step, Some(ALL_HOSTS));
    points.into_iter().map(|(_, point)| point).collect()
}

/// Two hours of three hosts, compacted but for the last ten minutes.
fn fill_and_compact(store: &dyn Store) -> [Vec<Point>; 3] {
    let base = 1_700_000_400_000 / alertd::store::BLOCK_PERIOD * alertd::store::BLOCK_PERIOD;
    let samples: Vec<Sample> = (0..720i64)
        .flat_map(|i| {
            ["a", "b", "c"].map(|host| {
                let value = (i * 7 % 23) as f64 + host.len() as f64;
                Sample::new(host, base + i * 10_000, &[("v", value), ("w", -value)])
            })
        })
        .collect();
    for batch in samples.chunks(90) {
        store.append_samples(batch).unwrap();
    }
    while store
        .compact_samples(base + 6_600_000, alertd::store::EVERY_ROLLUP)
        .unwrap()
        > 0
    {}
    let points = Step::ALL.map(|step| all_hosts_points(store, step));
    assert_eq!(points[0].len(), 110, "110 minutes");
    assert_eq!(points[0][0].samples, 18, "3 hosts at 10 s");
    points
}

#[test]
fn sqlite_rolls_up_all_hosts_of_an_earlier_version_2_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alertd.sqlite");
    let points = fill_and_compact(&SqliteStore::open(&path).unwrap());
    // As written by the alertd before the rows of all hosts.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("DELETE FROM rollups WHERE host = ''; PRAGMA user_version = 2;")
        .unwrap();
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(Step::ALL.map(|step| all_hosts_points(&store, step)), points);
}

/// Every host's hour points, the fleet's included.
fn hour_points(store: &dyn Store) -> Vec<(String, Point)> {
    let mut points = support::rollups(store, Step::Hour, None);
    points.extend(support::rollups(store, Step::Hour, Some(ALL_HOSTS)));
    points
}

/// [`fill_and_compact`], and the hour points it made.
fn filled_hours(store: &dyn Store) -> Vec<(String, Point)> {
    fill_and_compact(store);
    let hours = hour_points(store);
    assert_eq!(
        hours.len(),
        4 * 3,
        "three hours of three hosts and the fleet"
    );
    hours
}

#[test]
fn sqlite_rolls_up_hours_of_an_earlier_version_3_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alertd.sqlite");
    let store = SqliteStore::open(&path).unwrap();
    let hours = filled_hours(&store);
    drop(store);
    // As written by the alertd before the hour rollups.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("DELETE FROM rollups WHERE step = 3600000; PRAGMA user_version = 3;")
        .unwrap();
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(hour_points(&store), hours);
}

#[test]
fn redis_rolls_up_hours_of_a_store_written_before_they_were_kept() {
    if !support::programs::needed("redis-server") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = support::redis::RedisServer::start(dir.path());
    let store = RedisStore::open(&server.url(), "old").unwrap();
    let hours = filled_hours(&store);
    // As written by the alertd before the hour rollups.
    server.cli(&[
        "DEL",
        "{old}:rollup:3600000",
        "{old}:rollup_by_start:3600000",
        "{old}:hour_rolled_up",
    ]);
    assert!(hour_points(&store).is_empty());
    store
        .compact_samples(0, alertd::store::EVERY_ROLLUP)
        .unwrap();
    assert_eq!(hour_points(&store), hours);
}

#[test]
fn redis_rolls_up_all_hosts_of_a_store_written_before_they_were_kept() {
    if !support::programs::needed("redis-server") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = support::redis::RedisServer::start(dir.path());
    let store = RedisStore::open(&server.url(), "old").unwrap();
    let points = fill_and_compact(&store);
    // As written by the alertd before the rows of all hosts: no row whose
    // field (`start\0host`) ends with its separator.
    let script = "for i = 1, #KEYS, 2 do \
        for _, f in ipairs(redis.call('HKEYS', KEYS[i])) do \
          if string.sub(f, -1) == '\\0' then \
            redis.call('HDEL', KEYS[i], f); redis.call('ZREM', KEYS[i + 1], f) \
          end \
        end \
      end";
    let keys = [
        "{old}:rollup:60000",
        "{old}:rollup_by_start:60000",
        "{old}:rollup:600000",
        "{old}:rollup_by_start:600000",
    ];
    server.cli(&[&["EVAL", script, "4"][..], &keys[..]].concat());
    server.cli(&["DEL", "{old}:all_hosts_rolled_up"]);
    assert!(all_hosts_points(&store, Step::Minute).is_empty());
    store
        .compact_samples(0, alertd::store::EVERY_ROLLUP)
        .unwrap();
    assert_eq!(Step::ALL.map(|step| all_hosts_points(&store, step)), points);

    // A row of all hosts that misses hosts (as compacted by an earlier
    // version after the upgrade began): one host's row in its place. Made
    // again once the key that says they were made is deleted.
    let script = "local fleet, one \
      for _, f in ipairs(redis.call('HKEYS', KEYS[1])) do \
        if string.sub(f, -1) == '\\0' then fleet = fleet or f else one = one or f end \
      end \
      redis.call('HSET', KEYS[1], fleet, redis.call('HGET', KEYS[1], one)) \
      return fleet";
    server.cli(&["EVAL", script, "1", keys[0]]);
    assert_ne!(Step::ALL.map(|step| all_hosts_points(&store, step)), points);
    server.cli(&["DEL", "{old}:all_hosts_rolled_up"]);
    store
        .compact_samples(0, alertd::store::EVERY_ROLLUP)
        .unwrap();
    assert_eq!(Step::ALL.map(|step| all_hosts_points(&store, step)), points);
}
