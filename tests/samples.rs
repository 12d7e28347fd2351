//! Sample parsing (docs/engine.md, Samples): what is accepted, and the error every
//! kind of bad sample gets.

use alertd::sample::{Sample, SampleReader};

#[test]
fn flat_and_nested_metrics_are_the_same_fields() {
    let flat = Sample::from_json(
        br#"{"host":"web-1","ts":1732356010000,"metrics":{"cpu.usage":71.5,"mem.free":2048}}"#,
    );
    let nested =
        Sample::from_json(br#"{"metrics":{"cpu":{"usage":71.5},"mem":{"free":2048}},"ts":1732356010000,"host":"web-1"}"#);
    let expected = Sample::new(
        "web-1",
        1_732_356_010_000,
        &[("cpu.usage", 71.5), ("mem.free", 2048.0)],
    );
    assert_eq!(flat.unwrap(), expected);
    assert_eq!(nested.unwrap(), expected);
}

#[test]
fn deep_nesting_and_mixed_forms_flatten_with_dots() {
    let sample = Sample::from_json(
        br#"{"host":"h","ts":0,"metrics":{"a":{"b":{"c":1},"d":2},"a.e":3,"f":{},"g":-4e2}}"#,
    )
    .unwrap();
    assert_eq!(
        sample.metrics,
        [
            ("a.b.c".into(), 1.0),
            ("a.d".into(), 2.0),
            ("a.e".into(), 3.0),
            ("g".into(), -400.0)
        ]
    );
}

#[test]
fn an_empty_metrics_object_is_a_sample_without_fields() {
    let sample = Sample::from_json(br#"{"host":"h","ts":5,"metrics":{}}"#).unwrap();
    assert!(sample.metrics.is_empty());
}

#[test]
fn a_whole_number_ts_written_as_a_float_is_accepted() {
    assert_eq!(
        Sample::from_json(br#"{"host":"h","ts":1000.0,"metrics":{}}"#)
            .unwrap()
            .ts,
        1000
    );
}

#[test]
fn every_bad_sample_names_its_part() {
    let cases: &[(&str, &str)] = &[
        (
            r#"{"host":"h","ts":1,"metrics":{"cpu.usage":"abc"}}"#,
            "metrics.cpu.usage: expected a finite number, got a string",
        ),
        (
            r#"{"host":"h","ts":1,"metrics":{"cpu":{"usage":null}}}"#,
            "metrics.cpu.usage: expected a finite number, got null",
        ),
        (
            r#"{"host":"h","ts":1,"metrics":{"up":true}}"#,
            "metrics.up: expected a finite number, got a boolean",
        ),
        (
            r#"{"host":"h","ts":1,"metrics":{"x":[1]}}"#,
            "metrics.x: expected a finite number, got an array",
        ),
        (
            r#"{"host":"h","ts":1,"metrics":{"x":NaN}}"#,
            "invalid JSON at column 35: expected value",
        ),
        (
            r#"{"host":"h","ts":1,"metrics":{"x":1e999}}"#,
            "invalid JSON at column 39: number out of range",
        ),
        (
            r#"{"host":"h","ts":1,"metrics":{"cpu usage":1}}"#,
            "metrics.cpu usage: field names are 1 to 128 of the characters A-Z a-z 0-9 _ . : -",
        ),
        (
            r#"{"host":"h","ts":1,"metrics":{"":1}}"#,
            "metrics.: field names are 1 to 128 of the characters A-Z a-z 0-9 _ . : -",
        ),
        (
            r#"{"host":"h","ts":1,"metrics":{"cpu.usage":1,"cpu":{"usage":2}}}"#,
            "metrics.cpu.usage: duplicate field",
        ),
        (
            r#"{"host":"h","ts":1,"metrics":{"a":1,"a":2}}"#,
            "metrics.a: duplicate field",
        ),
        (
            r#"{"host":"h","ts":1,"metrics":[1]}"#,
            "metrics: expected an object of fields and numbers, got an array",
        ),
        (r#"{"ts":1,"metrics":{}}"#, "missing host"),
        (r#"{"host":"h","metrics":{}}"#, "missing ts"),
        (r#"{"host":"h","ts":1}"#, "missing metrics"),
        (
            r#"{"host":"","ts":1,"metrics":{}}"#,
            "host: must not be empty",
        ),
        (
            r#"{"host":"a\nb","ts":1,"metrics":{}}"#,
            "host: must not contain control characters",
        ),
        (
            r#"{"host":7,"ts":1,"metrics":{}}"#,
            "host: expected a string, got a number",
        ),
        (
            r#"{"host":"h","ts":-1,"metrics":{}}"#,
            "ts: -1: expected whole milliseconds since the Unix epoch, from 0 to 253402300799999",
        ),
        (
            r#"{"host":"h","ts":1.5,"metrics":{}}"#,
            "ts: 1.5: expected whole milliseconds since the Unix epoch, from 0 to 253402300799999",
        ),
        (
            r#"{"host":"h","ts":"1","metrics":{}}"#,
            "ts: a string: expected whole milliseconds since the Unix epoch, from 0 to 253402300799999",
        ),
        (
            r#"{"host":"h","ts":1,"metrics":{},"extra":1}"#,
            "unknown key \"extra\" (a sample has host, ts and metrics)",
        ),
        (
            r#"{"host":"h","host":"i","ts":1,"metrics":{}}"#,
            "duplicate key \"host\"",
        ),
        (
            r#"[1,2]"#,
            "expected a JSON object with host, ts and metrics",
        ),
        (
            r#"{"host":"h","ts":1,"metrics":{}} {}"#,
            "invalid JSON at column 34: trailing characters",
        ),
        (
            r#"{"host":"h","ts":1,"metrics":{"#,
            "invalid JSON at column 30: EOF while parsing an object",
        ),
    ];
    for &(line, expected) in cases {
        let error = Sample::from_json(line.as_bytes()).expect_err(line);
        assert_eq!(error.to_string(), expected, "{line}");
    }
}

#[test]
fn a_long_host_name_is_rejected() {
    let line = format!(r#"{{"host":"{}","ts":1,"metrics":{{}}}}"#, "h".repeat(256));
    assert_eq!(
        Sample::from_json(line.as_bytes()).unwrap_err().to_string(),
        "host: longer than 255 bytes"
    );
}

#[test]
fn the_reader_forgets_a_rejected_sample() {
    let mut reader = SampleReader::default();
    reader
        .parse(br#"{"host":"a","ts":1,"metrics":{"x":1,"y":"bad"}}"#)
        .unwrap_err();
    reader
        .parse(br#"{"host":"b","ts":2,"metrics":{"z":3}}"#)
        .unwrap();
    assert_eq!(reader.to_sample(), Sample::new("b", 2, &[("z", 3.0)]));
}
