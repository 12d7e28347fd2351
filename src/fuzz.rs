//! The properties the fuzz targets check (`fuzz/`), kept here so that the
//! regression test (`tests/fuzz_regressions.rs`) checks the saved inputs in
//! the same way. Each function panics when its property fails, which is how
//! a fuzzer learns of it; for any input that does not break a property it
//! returns normally.

use crate::config::Config;
use crate::duration::{HumanDuration, MAX_DURATION, parse_duration};
use crate::sample::SampleReader;

/// Any text: parsing and validating a configuration returns a result, and a
/// valid one can be summarised.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(loaded) = Config::parse(text, "fuzz.json") {
        for rule in &loaded.config.alerting.rules {
            let _ = rule.to_string();
        }
    }
}

/// Any bytes: the fast sample parser and the reference (serde) parser agree
/// on every sample the fast one takes: same host, time and metrics, bit for
/// bit, or the same error.
pub fn sample(data: &[u8]) {
    let mut fast = SampleReader::default();
    let mut reference = SampleReader::default();
    let expected = reference.parse_reference(data);
    let Some(got) = fast.parse_fast(data) else {
        return;
    };
    match (&got, &expected) {
        (Ok(()), Ok(())) => {
            assert_eq!(fast.host(), reference.host(), "host");
            assert_eq!(fast.ts(), reference.ts(), "ts");
            let bits = |reader: &SampleReader| -> Vec<(String, u64)> {
                reader
                    .metrics()
                    .map(|(field, value)| (field.to_string(), value.to_bits()))
                    .collect()
            };
            assert_eq!(bits(&fast), bits(&reference), "metrics");
        }
        (Err(_), Err(_)) => {}
        _ => panic!("the parsers disagree: fast {got:?}, reference {expected:?}"),
    }
}

/// Any text: a duration parses to a length within bounds that reads back the
/// same in milliseconds, or to an error.
pub fn duration(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(millis) = parse_duration(text) {
        assert!((0..=MAX_DURATION).contains(&millis), "{text:?} -> {millis}");
        assert_eq!(parse_duration(&format!("{millis}ms")), Ok(millis));
        assert!(!HumanDuration(millis).to_string().is_empty());
    }
}

/// Any bytes as a chart's points (8 bytes of value each, any bit pattern:
/// NaN, infinities, the largest numbers) over any frame: the chart is drawn,
/// and drawing it ends (a fuzzer's timeout catches one that does not).
pub fn chart(data: &[u8]) {
    use crate::pages::chart::{Colour, Line, NARROW, TimeChart};
    let Some((head, values)) = data.split_first_chunk::<17>() else {
        return;
    };
    let number = |at: usize| i64::from_le_bytes(head[at..at + 8].try_into().unwrap_or([0; 8]));
    // A frame of at most a week and a step of at least a second, as the
    // pages allow; where it starts is anything.
    let from = number(0);
    let span = number(8).rem_euclid(7 * 86_400_000) + 1;
    let Some(to) = from.checked_add(span) else {
        return;
    };
    let step = (span / 300).max(1_000);
    let points: Vec<(i64, f64)> = values
        .chunks_exact(8)
        .take(600)
        .enumerate()
        .map(|(index, bytes)| {
            let value = f64::from_le_bytes(bytes.try_into().unwrap_or([0; 8]));
            (from.saturating_add(index as i64 * step), value)
        })
        .collect();
    let threshold = points.first().map(|(_, value)| *value);
    let chart = TimeChart {
        from,
        to,
        step,
        width: NARROW,
        height: 200,
        top: (head[16] % 2 == 0).then_some(100.0),
        unit: "",
        threshold: if head[16] % 3 == 0 { threshold } else { None },
        lines: vec![Line {
            colour: Colour::nth(0),
            points,
        }],
    };
    let svg = chart.svg("").into_string();
    assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg:.300}");
    // The same frame as a timeline: bars from the values' bits, anywhere in
    // time, any length, even ending before they start.
    use crate::pages::timeline::{Bar, Lane, timeline};
    let bars: Vec<Bar> = chart.lines[0]
        .points
        .chunks_exact(2)
        .map(|pair| Bar {
            start: pair[0].1.to_bits() as i64,
            end: pair[1].1.to_bits() as i64,
            href: "/incidents/x".to_string(),
            title: "t".to_string(),
            undelivered: pair[0].1 > 0.0,
        })
        .collect();
    let lanes = [Lane {
        host: "h".to_string(),
        rule: "r".to_string(),
        colour: Colour::nth(1),
        bars,
    }];
    let svg = timeline(from, to, &lanes, &|_, _, _| "/".to_string()).into_string();
    assert!(svg.starts_with("<svg"), "the timeline could not be drawn");
}

/// Any bytes, as stored data: decoding them as a batch, a block or a rollup
/// gives samples or an error, never a panic; and samples made from them
/// encode and decode back bit for bit in all three formats.
pub fn stored(data: &[u8]) {
    use crate::sample::Sample;
    use crate::store::{batch, block, rollup};
    // As stored bytes.
    if let Ok(mut reader) = batch::BatchReader::new(data, 1) {
        // Read whole and read without copying, the same samples or error.
        let mut viewer = batch::BatchReader::new(data, 1).expect("read once");
        let mut values = Vec::new();
        loop {
            match (reader.next_sample(), viewer.next_values(&mut values)) {
                (Ok(Some((seq, sample))), Ok(Some((seq_too, host, ts)))) => {
                    let names = viewer.field_names();
                    let viewed: Vec<(&str, u64)> = values
                        .iter()
                        .map(|&(name, value)| (names[name], value.to_bits()))
                        .collect();
                    let read: Vec<(&str, u64)> = sample
                        .metrics
                        .iter()
                        .map(|(name, value)| (name.as_str(), value.to_bits()))
                        .collect();
                    assert_eq!((seq, &*sample.host, sample.ts), (seq_too, host, ts));
                    assert_eq!(read, viewed);
                }
                (Ok(None), Ok(None)) | (Err(_), Err(_)) => break,
                (whole, viewed) => panic!("read whole: {whole:?}; viewed: {viewed:?}"),
            }
        }
    }
    if let Ok(reader) = block::BlockReader::new(data) {
        // Visited column by column: the samples read one by one before the
        // first damage, no more.
        let mut one_by_one = Vec::new();
        let mut next = reader.clone();
        while let Ok(Some((ts, metrics))) = next.next_sample() {
            let fields: Vec<(String, u64)> = metrics
                .into_iter()
                .map(|(name, value)| (name, value.to_bits()))
                .collect();
            one_by_one.push((ts, fields));
        }
        let mut visited = block::Seen::default();
        let whole = reader.visit(
            "h",
            (i64::MIN, i64::MAX),
            &mut visited,
            &mut block::Room::default(),
        );
        assert_eq!(visited.samples, one_by_one);
        assert_eq!(whole.is_ok(), one_by_one.len() == next.len());
    }
    let _ = rollup::decode(data);
    let _ = rollup::point_count(data);
    // Column by column, the same counts, sums and maxima as point by point
    // (with totals only), or an error for both.
    let mut points = Vec::new();
    let by_points = rollup::decode_fields_into(data, None, true, &mut points);
    let mut totals = rollup::Totals::default();
    match (by_points, totals.decode(data, None, (i64::MIN, i64::MAX))) {
        (Ok(()), Ok(())) => {
            // Each point's fields in the row's order, from the columns.
            let mut by_columns: Vec<Vec<(&str, u64, u64, u64)>> = vec![Vec::new(); points.len()];
            for column in totals.columns() {
                for (i, at) in column.at.iter().enumerate() {
                    by_columns[*at as usize].push((
                        &column.name,
                        column.count[i],
                        column.sum[i].to_bits(),
                        column.max[i].to_bits(),
                    ));
                }
            }
            for (point, columns) in points.iter().zip(&by_columns) {
                let fields = point.fields.iter().map(|(name, aggregate)| {
                    let (sum, max) = (aggregate.sum.to_bits(), aggregate.max.to_bits());
                    (&**name, aggregate.count, sum, max)
                });
                assert_eq!(fields.collect::<Vec<_>>(), *columns);
            }
            assert_eq!(
                totals.stamps,
                points.iter().map(|p| p.ts).collect::<Vec<_>>()
            );
        }
        (Err(_), Err(_)) => {}
        (by_points, by_columns) => panic!("by points: {by_points:?}; by columns: {by_columns:?}"),
    }
    // As samples of one host: 10 bytes each, a field mask, a time step and
    // a value's bits.
    let mut ts = 0i64;
    let samples: Vec<Sample> = data
        .chunks_exact(10)
        .map(|chunk| {
            ts = ts.wrapping_add(i64::from(chunk[1]) * 250);
            let bits = u64::from_le_bytes(chunk[2..10].try_into().unwrap_or_default());
            let value = Some(f64::from_bits(bits))
                .filter(|v| v.is_finite())
                .unwrap_or(0.5);
            let fields: Vec<(&str, f64)> = ["a", "b.c", "d"]
                .into_iter()
                .enumerate()
                .filter(|(i, _)| chunk[0] & (1 << i) != 0)
                .map(|(i, name)| (name, value * (i as f64 + 1.0)))
                .map(|(name, value)| (name, if value.is_finite() { value } else { 1.0 }))
                .collect();
            Sample::new("h", ts, &fields)
        })
        .collect();
    if samples.is_empty() {
        return;
    }
    let same = |a: &Sample, b: &Sample| {
        let bits = |s: &Sample| -> Vec<(String, u64)> {
            let mut fields: Vec<(String, u64)> = s
                .metrics
                .iter()
                .map(|(n, v)| (n.clone(), v.to_bits()))
                .collect();
            fields.sort();
            fields
        };
        a.host == b.host && a.ts == b.ts && bits(a) == bits(b)
    };
    let mut bytes = Vec::new();
    batch::encode(&samples, &mut bytes);
    let mut reader = batch::BatchReader::new(&bytes, 7).expect("a batch just written");
    for (i, sample) in samples.iter().enumerate() {
        let (seq, back) = reader.next_sample().expect("decodes").expect("a sample");
        assert_eq!(seq, 7 + i as i64, "batch sequence");
        assert!(
            same(sample, &back),
            "batch: {sample:?} read back as {back:?}"
        );
    }
    let refs: Vec<&Sample> = samples.iter().collect();
    let bytes = block::encode(&refs).expect("a block");
    let back = block::BlockReader::new(&bytes)
        .and_then(|reader| reader.samples("h"))
        .expect("a block just written");
    assert_eq!(back.len(), samples.len());
    for (sample, back) in samples.iter().zip(&back) {
        assert!(
            same(sample, back),
            "block: {sample:?} read back as {back:?}"
        );
    }
    for step in rollup::Step::ALL {
        let points = rollup::roll_up(&samples, step);
        let encoded = rollup::encode(&points).expect("points");
        let decoded = rollup::decode(&encoded).expect("rollup just written");
        assert_eq!(decoded.len(), points.len());
        for (a, b) in points.iter().zip(&decoded) {
            assert_eq!((a.ts, a.samples), (b.ts, b.samples));
            // Fields in name order: a point's own order is not kept.
            let sorted = |point: &rollup::Point| {
                let mut fields = point.fields.clone();
                fields.sort_by(|x, y| x.0.cmp(&y.0));
                fields
            };
            assert_eq!(a.fields.len(), b.fields.len());
            for ((n, x), (m, y)) in sorted(a).iter().zip(&sorted(b)) {
                assert_eq!(n, m);
                assert_eq!(
                    [x.sum, x.min, x.max, x.last].map(f64::to_bits),
                    [y.sum, y.min, y.max, y.last].map(f64::to_bits),
                    "rollup {n}"
                );
                assert_eq!((x.count, x.last_ts), (y.count, y.last_ts));
            }
        }
    }
}

/// Translates `batch` with the default mapping at a fixed time: every point
/// is counted once (taken, refused or skipped), and every sample made holds
/// valid field names and finite values.
fn translated(batch: &crate::series::Batch) {
    use crate::series::{Mapping, Translator};
    let mut translator = Translator::default();
    let now = 1_800_000_000_000;
    let mut translation = translator.translate(&Mapping::default(), batch, now, 300_000);
    let counted = translation.taken + translation.skipped + translation.refused.count();
    assert_eq!(
        counted,
        batch.points.len() as u64,
        "every point counted once"
    );
    for sample in &translation.samples {
        assert!(!sample.host.is_empty() && sample.host.len() <= crate::sample::MAX_HOST_NAME_LEN);
        for (field, value) in &sample.metrics {
            assert!(crate::field::is_valid_field_name(field), "field {field:?}");
            assert!(value.is_finite(), "{field} = {value}");
        }
    }
    translator.rollback(&mut translation);
}

/// Any bytes as an OTLP request (the first byte picks protobuf or JSON):
/// decoded into points or refused, never a panic; see [`translated`].
pub fn otlp(data: &[u8]) {
    use crate::series::otlp;
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let encoding = if first % 2 == 0 {
        otlp::Encoding::Protobuf
    } else {
        otlp::Encoding::Json
    };
    let Ok(request) = otlp::decode(body, encoding) else {
        return;
    };
    let count = otlp::count_points(&request);
    let decoded = otlp::points(request);
    // A histogram's point gives two (count and sum), and counts as two; a
    // point without a value or marked "no recorded value" none.
    assert!(decoded.points.len() as u64 + decoded.refused.count() <= count as u64);
    translated(&crate::series::Batch {
        points: decoded.points,
        host: None,
    });
}

/// Any bytes as a remote write body: snappy-compressed as they are (the
/// first byte odd), or compressed here first; decoded into points or
/// refused, never a panic; see [`translated`].
pub fn remote_write(data: &[u8]) {
    use crate::series::remote_write;
    let Some((&first, body)) = data.split_first() else {
        return;
    };
    let compressed;
    let body = if first % 2 == 1 {
        body
    } else {
        compressed = snap::raw::Encoder::new()
            .compress_vec(body)
            .unwrap_or_default();
        &compressed
    };
    let Ok(request) = remote_write::decode(body, 1 << 24, 100_000) else {
        return;
    };
    let decoded = remote_write::points(request, |_| None);
    translated(&crate::series::Batch {
        points: decoded.points,
        host: None,
    });
}

/// Any text as a scraped page: read into points or refused with a line
/// number inside the page, never a panic; see [`translated`].
pub fn exposition(data: &[u8]) {
    use crate::series::exposition;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match exposition::parse(text, 1_800_000_000_000) {
        Ok(points) => translated(&crate::series::Batch {
            points,
            host: Some("target".to_string()),
        }),
        Err(error) => assert!(
            error.line >= 1 && error.line <= text.lines().count().max(1),
            "line {} of {}",
            error.line,
            text.lines().count()
        ),
    }
}
