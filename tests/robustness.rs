//! Untrusted input never panics: arbitrary and mutated durations, configuration
//! files and sample lines either parse or give an error message. (Stands in for
//! fuzz targets until a nightly toolchain is available for cargo-fuzz.)

use alertd::config::raw::{RawAlerting, RawHooks, RawMonitoring, RawRule, RawServer, RawStorage};
use alertd::config::{Config, TOP_LEVEL_KEYS};
use alertd::duration::parse_duration;
use alertd::sample::SampleReader;
use proptest::prelude::*;
use serde_json::Value;

const SAMPLE: &str = r#"{"host":"web-1","ts":1795428010000,"metrics":{"cpu":{"usage":71.5},"mem.free":2048,"errors.count":0}}"#;
const CONFIG: &str = r#"{"monitoring":{"enabled":true,"collectionInterval":"10s"},"alerting":{"enabled":true,"rules":[{"name":"High CPU","field":"cpu.usage","aggregation":"avg","operand":"equalOrMoreThan","value":60,"timeframe":"2m","cooldown":"1m"},{}]}}"#;

/// `text` with a few bytes replaced, inserted or removed.
fn mutated(text: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let edit = (any::<prop::sample::Index>(), any::<u8>(), 0u8..3);
    prop::collection::vec(edit, 1..6).prop_map(move |edits| {
        let mut bytes = text.as_bytes().to_vec();
        for (at, byte, kind) in edits {
            let i = at.index(bytes.len().max(1)).min(bytes.len());
            match kind {
                0 if i < bytes.len() => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ if i < bytes.len() => {
                    bytes.remove(i);
                }
                _ => {}
            }
        }
        bytes
    })
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        prop::sample::select(vec![
            "2m",
            "0",
            "-1s",
            "avg",
            "equalOrMoreThan",
            "cpu.usage",
            "",
            "x"
        ])
        .prop_map(Value::from),
        ".{0,8}".prop_map(Value::from),
    ];
    let known = [
        RawMonitoring::KEYS,
        RawAlerting::KEYS,
        RawRule::KEYS,
        RawServer::KEYS,
        RawStorage::KEYS,
        RawHooks::KEYS,
        TOP_LEVEL_KEYS,
    ]
    .concat();
    let keys = prop::sample::select([&["pro", "x"][..], &known].concat());
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(keys.clone(), inner, 0..6).prop_map(|map| Value::Object(
                map.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
            )),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn durations_never_panic(text in ".{0,24}") {
        let _ = parse_duration(&text);
    }

    #[test]
    fn configurations_never_panic(value in json_value()) {
        match Config::parse(&value.to_string(), "fuzz.json") {
            Ok(_) => {}
            Err(error) => prop_assert!(!error.to_string().is_empty()),
        }
    }

    #[test]
    fn mutated_configurations_never_panic(bytes in mutated(CONFIG)) {
        let text = String::from_utf8_lossy(&bytes);
        if let Err(error) = Config::parse(&text, "fuzz.json") {
            prop_assert!(error.to_string().starts_with("fuzz.json: "));
        }
    }

    #[test]
    fn samples_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = SampleReader::default().parse(&bytes);
    }

    #[test]
    fn mutated_samples_never_panic(bytes in mutated(SAMPLE)) {
        let mut reader = SampleReader::default();
        if let Err(error) = reader.parse(&bytes) {
            prop_assert!(!error.to_string().is_empty());
        }
    }
}
