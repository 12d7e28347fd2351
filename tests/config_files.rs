//! Configuration files next to what alertd must say about them: every
//! `tests/config/NAME.bad.json` fails with exactly the text of `NAME.err`,
//! and the good files load with the warnings they should produce.

use std::fs;
use std::path::Path;

use alertd::config::{Config, Shape};

#[test]
fn every_bad_file_gives_its_error_text() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config");
    let mut checked = 0;
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let Some(stem) = name.strip_suffix(".bad.json") else {
            continue;
        };
        let text = fs::read_to_string(&path).unwrap();
        let expected = fs::read_to_string(dir.join(format!("{stem}.err")))
            .unwrap_or_else(|_| panic!("{stem}.err is missing"));
        let error = Config::parse(&text, &name).expect_err(&name).to_string();
        assert_eq!(error.trim_end(), expected.trim_end(), "{name}");
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} bad files found");
}

#[test]
fn botpress_config_reads_pro_sections_and_warns() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config/good-botpress.config.json");
    let loaded = Config::load(&path).unwrap();
    assert_eq!(loaded.config.shape, Shape::Botpress);
    assert!(loaded.config.monitoring.enabled && loaded.config.alerting.enabled);
    let names: Vec<_> = loaded
        .config
        .alerting
        .rules
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(names, ["High CPU Usage", "Queue too deep"]);
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "pro.alerting.rules[0]: empty rule {} ignored",
            "pro.alerting.rules[2] \"Queue too deep\": field \"cpu.usgae\" is not a built-in field; it is read as a \
             custom field, and the rule sees only samples that carry it (did you mean \"cpu.usage\"?)",
            "pro.alerting.rules[2] \"Queue too deep\": timeframe 5s is shorter than monitoring.collectionInterval 10s: \
             many windows will hold no sample",
        ]
    );
}

#[test]
fn the_shipped_example_is_valid_without_warnings() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/alertd.json");
    let loaded = Config::load(&path).unwrap();
    assert_eq!(loaded.config.alerting.rules.len(), 3);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}
