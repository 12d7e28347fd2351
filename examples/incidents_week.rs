//! Records resolved incidents into a data directory, for measuring the
//! incidents page: COUNT incidents over the last DAYS days on HOSTS hosts,
//! one every DAYS/COUNT, each 3 s long, under three rules in turn.
//!
//! `cargo run --release --example incidents_week -- DIR [COUNT] [HOSTS] [DAYS]`
//! (100,000 incidents on 100 hosts over 7 days by default).

use std::time::{SystemTime, UNIX_EPOCH};

use alertd::incident::{Incident, Transition, TransitionKind};
use alertd::store::SqliteStore;
use alertd::store::{Coordination, IncidentLog};

const RULES: [&str; 3] = [
    "High CPU Usage",
    "High number of errors",
    "No more incoming events",
];

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .expect("usage: incidents_week DIR [COUNT] [HOSTS] [DAYS]");
    let count: i64 = args.next().map_or(100_000, |n| n.parse().expect("COUNT"));
    let hosts: i64 = args.next().map_or(100, |n| n.parse().expect("HOSTS"));
    let days: i64 = args.next().map_or(7, |n| n.parse().expect("DAYS"));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let span = days * 86_400_000;
    let every = span / count;
    let store = SqliteStore::open_dir(std::path::Path::new(&dir)).expect("open the store");
    let lease = store
        .acquire_lease("incidents_week", 60_000)
        .expect("a lease")
        .expect("the lease is free");
    let transitions: Vec<Transition> = (0..count)
        .map(|n| {
            let start = now - span + n * every;
            let rule = (n % 3) as usize;
            Transition {
                kind: TransitionKind::Resolved,
                at: start + 3000,
                rule,
                incident: Incident {
                    id: format!("W{n:08}"),
                    rule_name: RULES[rule].into(),
                    host_name: format!("node-{:05}", n % hosts).into(),
                    start_time: start,
                    end_time: Some(start + 3000),
                    trigger_value: 91.5,
                    resolution: None,
                    details: None,
                },
            }
        })
        .collect();
    for chunk in transitions.chunks(10_000) {
        store
            .record_transitions(&lease, chunk, &[])
            .expect("record the incidents");
    }
    println!("{count} resolved incidents on {hosts} hosts over {days} d in {dir}");
}
