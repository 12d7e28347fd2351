//! Prometheus remote write 1.0 (`POST /api/v1/write`): a snappy-compressed
//! protobuf `WriteRequest`, as Prometheus, vmagent and Grafana Agent send it,
//! made into [`Point`]s.
//!
//! The messages are declared here with `prost` (the remote write protocol has
//! no maintained crate of its own): only the fields alertd reads; `prost`
//! skips the others (exemplars, native histograms).

use prost::Message;

use super::exposition::{Family, kind_of};
use super::{Labels, Point};

/// `prometheus.WriteRequest`.
#[derive(Clone, PartialEq, Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
    #[prost(message, repeated, tag = "3")]
    pub metadata: Vec<MetricMetadata>,
}

/// `prometheus.TimeSeries`: a series' labels (its name in `__name__`) and
/// its samples.
#[derive(Clone, PartialEq, Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<WriteSample>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`: a value at a time in milliseconds.
#[derive(Clone, PartialEq, Message)]
pub struct WriteSample {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// `prometheus.MetricMetadata`: a family's type, sent now and then.
#[derive(Clone, PartialEq, Message)]
pub struct MetricMetadata {
    /// UNKNOWN 0, COUNTER 1, GAUGE 2, HISTOGRAM 3, GAUGEHISTOGRAM 4,
    /// SUMMARY 5, INFO 6, STATESET 7.
    #[prost(int32, tag = "1")]
    pub r#type: i32,
    #[prost(string, tag = "2")]
    pub metric_family_name: String,
}

impl MetricMetadata {
    /// The family's type, as the text format names them.
    pub fn family(&self) -> Family {
        match self.r#type {
            1 => Family::Counter,
            2 => Family::Gauge,
            3 => Family::Histogram,
            5 => Family::Summary,
            _ => Family::Other,
        }
    }
}

/// Why a body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemoteWriteError {
    #[error("the body is not snappy-compressed (block format): {0}")]
    Snappy(String),
    #[error("the body would be {size} bytes once uncompressed, more than the {limit} taken")]
    TooLarge { size: usize, limit: usize },
    #[error("not a remote write WriteRequest in protobuf: {0}")]
    Protobuf(String),
    #[error(
        "{series} series in one request, more than ingest.maxPointsPerRequest ({most}): \
         lower queue_config.max_samples_per_send"
    )]
    TooManySeries { series: usize, most: usize },
    #[error(
        "the request would take more than 256 MiB once decoded (many small messages): send \
         smaller batches"
    )]
    TooManyMessages,
}

/// Uncompresses and decodes a body, refusing one that would uncompress to
/// more than `limit` bytes before uncompressing it, and one of more than
/// `most_series` series before decoding them (a series is far bigger once
/// decoded than on the wire).
pub fn decode(
    body: &[u8],
    limit: usize,
    most_series: usize,
) -> Result<WriteRequest, RemoteWriteError> {
    let size = snap::raw::decompress_len(body)
        .map_err(|error| RemoteWriteError::Snappy(error.to_string()))?;
    if size > limit {
        return Err(RemoteWriteError::TooLarge { size, limit });
    }
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|error| RemoteWriteError::Snappy(error.to_string()))?;
    let series = count_series(&raw).map_err(RemoteWriteError::Protobuf)?;
    if series > most_series {
        return Err(RemoteWriteError::TooManySeries {
            series,
            most: most_series,
        });
    }
    if super::decoded_size(&raw, super::DECODED_BUDGET) > super::DECODED_BUDGET {
        return Err(RemoteWriteError::TooManyMessages);
    }
    WriteRequest::decode(raw.as_slice())
        .map_err(|error| RemoteWriteError::Protobuf(error.to_string()))
}

/// How many `timeseries` (field 1) a `WriteRequest` holds, read from the
/// wire without decoding them.
fn count_series(mut raw: &[u8]) -> Result<usize, String> {
    use prost::encoding::{WireType, decode_key, decode_varint};
    let mut series = 0;
    while !raw.is_empty() {
        let (tag, wire_type) = decode_key(&mut raw).map_err(|error| error.to_string())?;
        let skip = match wire_type {
            WireType::Varint => {
                decode_varint(&mut raw).map_err(|error| error.to_string())?;
                0
            }
            WireType::SixtyFourBit => 8,
            WireType::ThirtyTwoBit => 4,
            WireType::LengthDelimited => {
                let length = decode_varint(&mut raw).map_err(|error| error.to_string())?;
                usize::try_from(length).map_err(|_| "a field longer than memory".to_string())?
            }
            WireType::StartGroup | WireType::EndGroup => {
                return Err("groups are not part of a WriteRequest".to_string());
            }
        };
        if skip > raw.len() {
            return Err("the message is cut short".to_string());
        }
        raw = &raw[skip..];
        if tag == 1 && wire_type == WireType::LengthDelimited {
            series += 1;
        }
    }
    Ok(series)
}

/// What a request's series held.
#[derive(Debug, Default)]
pub struct Decoded {
    pub points: Vec<Point>,
    /// Series refused whole (no name), by reason, with their sample counts.
    pub refused: Vec<(String, u64)>,
}

/// The points of `request`'s series; `family` gives the type a family's
/// metadata declared, if any was seen. A series' name and labels are kept
/// once, shared by its points.
pub fn points(request: WriteRequest, family: impl Fn(&str) -> Option<(String, Family)>) -> Decoded {
    let mut out = Decoded::default();
    for series in request.timeseries {
        let mut name = None;
        let mut labels = Vec::with_capacity(series.labels.len());
        for label in series.labels {
            if label.name == "__name__" {
                name = Some(label.value);
            } else {
                labels.push((label.name, label.value));
            }
        }
        let Some(name) = name.filter(|name| !name.is_empty()) else {
            let reason = "a series without __name__".to_string();
            let count = series.samples.len() as u64;
            match out.refused.iter_mut().find(|(text, _)| *text == reason) {
                Some(entry) => entry.1 += count,
                None => out.refused.push((reason, count)),
            }
            continue;
        };
        let declared = family(&name);
        let Some(kind) = kind_of(
            &name,
            declared
                .as_ref()
                .map(|(family, declared)| (family.as_str(), *declared)),
        ) else {
            continue;
        };
        let metric: std::sync::Arc<str> = name.into();
        let labels = Labels {
            shared: labels.into(),
            own: std::sync::Arc::from([]),
        };
        for sample in series.samples {
            out.points.push(Point {
                metric: metric.clone(),
                labels: labels.clone(),
                kind,
                value: sample.value,
                ts: sample.timestamp,
            });
        }
    }
    out
}
