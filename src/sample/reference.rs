//! The reference sample parser: serde over any JSON, with the precise
//! error of each part (docs/engine.md, Samples). [`super::fast`] takes the common
//! shapes first; whatever it declines comes here.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};

use super::*;

/// Each seed here is also its own visitor: deserializing it hands it to the
/// deserializer as the visitor of any value (or of a string, for keys).
macro_rules! seed_is_its_visitor {
    ($seed:ty, $value:ty, $deserialize:ident) => {
        impl<'de> DeserializeSeed<'de> for $seed {
            type Value = $value;

            fn deserialize<D: Deserializer<'de>>(
                self,
                deserializer: D,
            ) -> Result<$value, D::Error> {
                deserializer.$deserialize(self)
            }
        }
    };
}

pub(super) fn syntax_error(error: &serde_json::Error) -> SampleError {
    let message = error.to_string();
    let message = match message.rfind(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message,
    };
    SampleError::Syntax {
        column: error.column(),
        message,
    }
}

pub(super) struct SampleSeed<'r> {
    pub(super) reader: &'r mut SampleReader,
}

seed_is_its_visitor!(SampleSeed<'_>, (), deserialize_any);

impl<'de> Visitor<'de> for SampleSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sample object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let reader = self.reader;
        let (mut host, mut ts, mut metrics) = (false, false, false);
        while let Some(key) = map.next_key_seed(KeySeed)? {
            match key {
                Key::Host => {
                    if host {
                        return Err(reader.fail(SampleError::DuplicateKey("host")));
                    }
                    host = true;
                    map.next_value_seed(HostSeed {
                        reader: &mut *reader,
                    })?;
                }
                Key::Ts => {
                    if ts {
                        return Err(reader.fail(SampleError::DuplicateKey("ts")));
                    }
                    ts = true;
                    reader.ts = map.next_value_seed(TsSeed {
                        reader: &mut *reader,
                    })?;
                }
                Key::Metrics => {
                    if metrics {
                        return Err(reader.fail(SampleError::DuplicateKey("metrics")));
                    }
                    metrics = true;
                    map.next_value_seed(MetricsSeed {
                        reader: &mut *reader,
                    })?;
                }
                Key::Other(name) => {
                    return Err(reader.fail(SampleError::UnknownKey(name)));
                }
            }
        }
        for (present, name) in [(host, "host"), (ts, "ts"), (metrics, "metrics")] {
            if !present {
                return Err(reader.fail(SampleError::Missing(name)));
            }
        }
        Ok(())
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(self.reader.fail(SampleError::NotAnObject))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(self.reader.fail(SampleError::NotAnObject))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(self.reader.fail(SampleError::NotAnObject))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(self.reader.fail(SampleError::NotAnObject))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(self.reader.fail(SampleError::NotAnObject))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(self.reader.fail(SampleError::NotAnObject))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(self.reader.fail(SampleError::NotAnObject))
    }
}

enum Key {
    Host,
    Ts,
    Metrics,
    Other(String),
}

struct KeySeed;

seed_is_its_visitor!(KeySeed, Key, deserialize_str);

impl Visitor<'_> for KeySeed {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Key, E> {
        Ok(match key {
            "host" => Key::Host,
            "ts" => Key::Ts,
            "metrics" => Key::Metrics,
            other => Key::Other(other.to_string()),
        })
    }
}

struct HostSeed<'r> {
    reader: &'r mut SampleReader,
}

seed_is_its_visitor!(HostSeed<'_>, (), deserialize_any);

impl<'de> Visitor<'de> for HostSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a host name")
    }

    fn visit_str<E: de::Error>(self, host: &str) -> Result<(), E> {
        let problem = if host.is_empty() {
            Some("must not be empty")
        } else if host.len() > MAX_HOST_NAME_LEN {
            Some("longer than 255 bytes")
        } else if host.chars().any(char::is_control) {
            Some("must not contain control characters")
        } else {
            None
        };
        if let Some(problem) = problem {
            return Err(self.reader.fail(SampleError::Host(problem)));
        }
        self.reader.host.push_str(host);
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(self
            .reader
            .fail(SampleError::Host("expected a string, got an object")))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(self
            .reader
            .fail(SampleError::Host("expected a string, got an array")))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(self
            .reader
            .fail(SampleError::Host("expected a string, got a number")))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(self
            .reader
            .fail(SampleError::Host("expected a string, got a number")))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(self
            .reader
            .fail(SampleError::Host("expected a string, got a number")))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(self
            .reader
            .fail(SampleError::Host("expected a string, got a boolean")))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(self
            .reader
            .fail(SampleError::Host("expected a string, got null")))
    }
}

struct TsSeed<'r> {
    reader: &'r mut SampleReader,
}

impl TsSeed<'_> {
    fn range_error<E: de::Error>(self, shown: String) -> E {
        self.reader.fail(SampleError::Timestamp(format!(
            "{shown}: expected whole milliseconds since the Unix epoch, from 0 to {MAX_TIMESTAMP}"
        )))
    }
}

seed_is_its_visitor!(TsSeed<'_>, Millis, deserialize_any);

impl<'de> Visitor<'de> for TsSeed<'_> {
    type Value = Millis;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a timestamp")
    }

    fn visit_u64<E: de::Error>(self, ts: u64) -> Result<Millis, E> {
        if ts <= MAX_TIMESTAMP as u64 {
            Ok(ts as Millis)
        } else {
            Err(self.range_error(ts.to_string()))
        }
    }

    fn visit_i64<E: de::Error>(self, ts: i64) -> Result<Millis, E> {
        if (0..=MAX_TIMESTAMP).contains(&ts) {
            Ok(ts)
        } else {
            Err(self.range_error(ts.to_string()))
        }
    }

    fn visit_f64<E: de::Error>(self, ts: f64) -> Result<Millis, E> {
        if ts.fract() == 0.0 && (0.0..=MAX_TIMESTAMP as f64).contains(&ts) {
            Ok(ts as Millis)
        } else {
            Err(self.range_error(ts.to_string()))
        }
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Millis, E> {
        Err(self.range_error("a string".to_string()))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Millis, E> {
        Err(self.range_error("a boolean".to_string()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Millis, E> {
        Err(self.range_error("null".to_string()))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Millis, A::Error> {
        Err(self.range_error("an array".to_string()))
    }

    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Millis, A::Error> {
        Err(self.range_error("an object".to_string()))
    }
}

/// Visits the metrics object, or an object nested in it (whose dotted path
/// is `reader.prefix`).
pub(super) struct MetricsSeed<'r> {
    pub(super) reader: &'r mut SampleReader,
}

seed_is_its_visitor!(MetricsSeed<'_>, (), deserialize_any);

impl<'de> Visitor<'de> for MetricsSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object of metrics")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let reader = self.reader;
        while map
            .next_key_seed(PathKeySeed {
                reader: &mut *reader,
            })?
            .is_some()
        {
            map.next_value_seed(MetricValueSeed {
                reader: &mut *reader,
            })?;
        }
        Ok(())
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(self.reader.fail(SampleError::MetricsNotAnObject("null")))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(self
            .reader
            .fail(SampleError::MetricsNotAnObject("an array")))
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(self
            .reader
            .fail(SampleError::MetricsNotAnObject("a string")))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(self
            .reader
            .fail(SampleError::MetricsNotAnObject("a number")))
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(self
            .reader
            .fail(SampleError::MetricsNotAnObject("a number")))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(self
            .reader
            .fail(SampleError::MetricsNotAnObject("a number")))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(self
            .reader
            .fail(SampleError::MetricsNotAnObject("a boolean")))
    }
}

/// Starts the path of a metric at the end of `names`: the prefix, a dot, the
/// key (`cpu` + `usage` -> `cpu.usage`). A flat metric's name is written once
/// and kept where it is.
struct PathKeySeed<'r> {
    reader: &'r mut SampleReader,
}

seed_is_its_visitor!(PathKeySeed<'_>, (), deserialize_str);

impl Visitor<'_> for PathKeySeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<(), E> {
        let reader = self.reader;
        reader.path_start = reader.names.len();
        if !reader.prefix.is_empty() {
            reader.names.push_str(&reader.prefix);
            reader.names.push('.');
        }
        reader.names.push_str(key);
        Ok(())
    }
}

/// A metric's value: a finite number, or an object nested under the path.
struct MetricValueSeed<'r> {
    reader: &'r mut SampleReader,
}

impl MetricValueSeed<'_> {
    fn path(&self) -> &str {
        &self.reader.names[self.reader.path_start..]
    }

    fn number<E: de::Error>(self, value: f64) -> Result<(), E> {
        let Some(hash) = checked_field_hash(self.path()) else {
            let path = self.path().to_string();
            return Err(self.reader.fail(SampleError::BadFieldName(path)));
        };
        let reader = self.reader;
        reader.metrics.push(Metric {
            name_start: reader.path_start as u32,
            name_end: reader.names.len() as u32,
            hash,
            value,
        });
        Ok(())
    }

    fn not_a_number<E: de::Error>(self, got: &'static str) -> E {
        let field = self.path().to_string();
        self.reader.fail(SampleError::NotANumber { field, got })
    }
}

seed_is_its_visitor!(MetricValueSeed<'_>, (), deserialize_any);

impl<'de> Visitor<'de> for MetricValueSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number or an object")
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<(), E> {
        if value.is_finite() {
            self.number(value)
        } else {
            Err(self.not_a_number("a non-finite number"))
        }
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<(), E> {
        self.number(value as f64)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<(), E> {
        self.number(value as f64)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<(), A::Error> {
        // The path names an object, not a metric: it becomes the prefix of
        // the keys inside, and leaves `names`.
        let reader = self.reader;
        let outer_prefix = reader.prefix.len();
        reader.prefix.clear();
        reader.prefix.push_str(&reader.names[reader.path_start..]);
        reader.names.truncate(reader.path_start);
        MetricsSeed {
            reader: &mut *reader,
        }
        .visit_map(map)?;
        // The outer prefix is the start of this one.
        reader.prefix.truncate(outer_prefix);
        Ok(())
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(self.not_a_number("a string"))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(self.not_a_number("a boolean"))
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(self.not_a_number("null"))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(self.not_a_number("an array"))
    }
}
