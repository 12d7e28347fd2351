//! OTLP/HTTP metrics (`POST /v1/metrics`): an `ExportMetricsServiceRequest`
//! in protobuf or JSON, decoded by the OpenTelemetry project's own message
//! types (`opentelemetry-proto`), made into [`Point`]s.
//!
//! Gauges are taken as they are; monotonic cumulative sums are counters;
//! non-monotonic cumulative sums (up-down counters) are gauges; delta sums
//! are increases. Histograms, exponential histograms and summaries give
//! `NAME.count` and `NAME.sum`, counted the same way.

use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, metric::Data, number_data_point,
};
use prost::Message;

use super::{Kind, Point};
use crate::duration::Millis;

/// The encodings of a request (and of its answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

/// A data point's flag: the sender has no value for it.
const NO_RECORDED_VALUE: u32 = 1;

/// Why a request could not be read at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OtlpError {
    #[error("not an OTLP ExportMetricsServiceRequest in protobuf: {0}")]
    Protobuf(String),
    #[error("not an OTLP ExportMetricsServiceRequest in JSON: {0}")]
    Json(String),
}

/// What a request held: its points, and those refused while reading it.
#[derive(Debug, Default)]
pub struct Decoded {
    pub points: Vec<Point>,
    /// Each reason with how many data points it refused.
    pub refused: Vec<(String, u64)>,
}

impl Decoded {
    fn refuse(&mut self, reason: String) {
        match self.refused.iter_mut().find(|(text, _)| *text == reason) {
            Some(entry) => entry.1 += 1,
            None => self.refused.push((reason, 1)),
        }
    }
}

/// Decodes a request's body.
pub fn decode(body: &[u8], encoding: Encoding) -> Result<ExportMetricsServiceRequest, OtlpError> {
    match encoding {
        Encoding::Protobuf => ExportMetricsServiceRequest::decode(body)
            .map_err(|error| OtlpError::Protobuf(error.to_string())),
        Encoding::Json => {
            serde_json::from_slice(body).map_err(|error| OtlpError::Json(error.to_string()))
        }
    }
}

/// How many data points `request` holds, read before anything else so that
/// too big a request is refused at once.
pub fn count_points(request: &ExportMetricsServiceRequest) -> usize {
    request
        .resource_metrics
        .iter()
        .flat_map(|resource| &resource.scope_metrics)
        .flat_map(|scope| &scope.metrics)
        .map(|metric| match &metric.data {
            Some(Data::Gauge(gauge)) => gauge.data_points.len(),
            Some(Data::Sum(sum)) => sum.data_points.len(),
            Some(Data::Histogram(histogram)) => histogram.data_points.len(),
            Some(Data::ExponentialHistogram(histogram)) => histogram.data_points.len(),
            Some(Data::Summary(summary)) => summary.data_points.len(),
            None => 0,
        })
        .sum()
}

/// The points of `request`.
pub fn points(request: ExportMetricsServiceRequest) -> Decoded {
    let mut out = Decoded::default();
    for resource_metrics in request.resource_metrics {
        let resource: Vec<(String, String)> = resource_metrics
            .resource
            .map(|resource| labels(&resource.attributes))
            .unwrap_or_default();
        for scope in resource_metrics.scope_metrics {
            for metric in scope.metrics {
                let name = metric.name;
                // A metric without data has no data point to take or refuse.
                let Some(data) = metric.data else {
                    continue;
                };
                let with = |attributes: &[KeyValue]| {
                    let mut all = resource.clone();
                    all.extend(labels(attributes));
                    all
                };
                match data {
                    Data::Gauge(gauge) => {
                        for point in gauge.data_points {
                            number(
                                &mut out,
                                &name,
                                Kind::Gauge,
                                &with(&point.attributes),
                                point,
                            );
                        }
                    }
                    Data::Sum(sum) => {
                        let temporality = sum.aggregation_temporality;
                        for point in sum.data_points {
                            let Some(kind) = sum_kind(temporality, sum.is_monotonic, &point) else {
                                out.refuse(format!(
                                    "metric {name:?}: a sum without its aggregation temporality"
                                ));
                                continue;
                            };
                            number(&mut out, &name, kind, &with(&point.attributes), point);
                        }
                    }
                    Data::Histogram(histogram) => {
                        let temporality = histogram.aggregation_temporality;
                        for point in histogram.data_points {
                            let parts = HistogramParts {
                                count: point.count,
                                sum: point.sum,
                                start: point.start_time_unix_nano,
                                time: point.time_unix_nano,
                                flags: point.flags,
                            };
                            histogram_points(
                                &mut out,
                                &name,
                                temporality,
                                &with(&point.attributes),
                                parts,
                            );
                        }
                    }
                    Data::ExponentialHistogram(histogram) => {
                        let temporality = histogram.aggregation_temporality;
                        for point in histogram.data_points {
                            let parts = HistogramParts {
                                count: point.count,
                                sum: point.sum,
                                start: point.start_time_unix_nano,
                                time: point.time_unix_nano,
                                flags: point.flags,
                            };
                            histogram_points(
                                &mut out,
                                &name,
                                temporality,
                                &with(&point.attributes),
                                parts,
                            );
                        }
                    }
                    Data::Summary(summary) => {
                        for point in summary.data_points {
                            let parts = HistogramParts {
                                count: point.count,
                                sum: Some(point.sum),
                                start: point.start_time_unix_nano,
                                time: point.time_unix_nano,
                                flags: point.flags,
                            };
                            histogram_points(
                                &mut out,
                                &name,
                                AggregationTemporality::Cumulative as i32,
                                &with(&point.attributes),
                                parts,
                            );
                        }
                    }
                }
            }
        }
    }
    out
}

/// A sum's points: counters, increases or gauges.
fn sum_kind(
    temporality: i32,
    monotonic: bool,
    point: &opentelemetry_proto::tonic::metrics::v1::NumberDataPoint,
) -> Option<Kind> {
    match AggregationTemporality::try_from(temporality).ok()? {
        AggregationTemporality::Cumulative if monotonic => Some(Kind::Cumulative {
            start: millis(point.start_time_unix_nano),
        }),
        AggregationTemporality::Cumulative => Some(Kind::Gauge),
        AggregationTemporality::Delta => Some(Kind::Delta),
        AggregationTemporality::Unspecified => None,
    }
}

fn number(
    out: &mut Decoded,
    name: &str,
    kind: Kind,
    labels: &[(String, String)],
    point: opentelemetry_proto::tonic::metrics::v1::NumberDataPoint,
) {
    if point.flags & NO_RECORDED_VALUE != 0 {
        return;
    }
    let value = match point.value {
        Some(number_data_point::Value::AsDouble(value)) => value,
        Some(number_data_point::Value::AsInt(value)) => value as f64,
        None => {
            out.refuse(format!("metric {name:?}: a data point without a value"));
            return;
        }
    };
    let Some(ts) = millis(point.time_unix_nano) else {
        out.refuse(format!(
            "metric {name:?}: a data point without timeUnixNano"
        ));
        return;
    };
    out.points.push(Point {
        metric: name.to_string(),
        labels: labels.to_vec(),
        kind,
        value,
        ts,
    });
}

/// What a histogram-like point gives alertd.
struct HistogramParts {
    count: u64,
    sum: Option<f64>,
    start: u64,
    time: u64,
    flags: u32,
}

fn histogram_points(
    out: &mut Decoded,
    name: &str,
    temporality: i32,
    labels: &[(String, String)],
    parts: HistogramParts,
) {
    if parts.flags & NO_RECORDED_VALUE != 0 {
        return;
    }
    let kind = match AggregationTemporality::try_from(temporality) {
        Ok(AggregationTemporality::Cumulative) => Kind::Cumulative {
            start: millis(parts.start),
        },
        Ok(AggregationTemporality::Delta) => Kind::Delta,
        _ => {
            out.refuse(format!(
                "metric {name:?}: a histogram without its aggregation temporality"
            ));
            return;
        }
    };
    let Some(ts) = millis(parts.time) else {
        out.refuse(format!(
            "metric {name:?}: a data point without timeUnixNano"
        ));
        return;
    };
    let count = Some(parts.count as f64);
    for (suffix, value) in [(".count", count), (".sum", parts.sum)] {
        if let Some(value) = value {
            out.points.push(Point {
                metric: format!("{name}{suffix}"),
                labels: labels.to_vec(),
                kind,
                value,
                ts,
            });
        }
    }
}

/// Nanoseconds since the epoch as milliseconds; `None` for 0 (unset).
fn millis(nanos: u64) -> Option<Millis> {
    (nanos != 0).then_some((nanos / 1_000_000) as Millis)
}

/// Attributes as labels: strings as they are, numbers and booleans written
/// out, arrays, maps and bytes left out (they name no host or series).
fn labels(attributes: &[KeyValue]) -> Vec<(String, String)> {
    attributes
        .iter()
        .filter_map(|attribute| {
            let value = match attribute.value.as_ref()?.value.as_ref()? {
                any_value::Value::StringValue(text) => text.clone(),
                any_value::Value::BoolValue(flag) => flag.to_string(),
                any_value::Value::IntValue(number) => number.to_string(),
                any_value::Value::DoubleValue(number) => number.to_string(),
                _ => return None,
            };
            Some((attribute.key.clone(), value))
        })
        .collect()
}

/// The answer to a request: empty when everything was taken, a partial
/// success with the count of refused points and why otherwise.
pub fn response(refused: u64, message: &str, encoding: Encoding) -> Vec<u8> {
    let answer = ExportMetricsServiceResponse {
        partial_success: (refused > 0 || !message.is_empty()).then(|| {
            ExportMetricsPartialSuccess {
                rejected_data_points: i64::try_from(refused).unwrap_or(i64::MAX),
                error_message: message.to_string(),
            }
        }),
    };
    match encoding {
        Encoding::Protobuf => answer.encode_to_vec(),
        // All taken: `{}`, not `{"partialSuccess": null}`.
        Encoding::Json if answer.partial_success.is_none() => b"{}".to_vec(),
        Encoding::Json => serde_json::to_vec(&answer).unwrap_or_else(|_| b"{}".to_vec()),
    }
}

/// `google.rpc.Status`, the body of an OTLP error answer.
#[derive(Clone, PartialEq, Message)]
pub struct Status {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// The body of an error answer, in the request's encoding.
pub fn status(code: i32, message: &str, encoding: Encoding) -> Vec<u8> {
    match encoding {
        Encoding::Protobuf => Status {
            code,
            message: message.to_string(),
        }
        .encode_to_vec(),
        Encoding::Json => serde_json::json!({"code": code, "message": message})
            .to_string()
            .into_bytes(),
    }
}
