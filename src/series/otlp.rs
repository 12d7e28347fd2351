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
    AggregationTemporality, ExponentialHistogramDataPoint, HistogramDataPoint, SummaryDataPoint,
    metric::Data, number_data_point,
};
use prost::Message;

use std::sync::Arc;

use super::{Kind, Labels, Point, Refusals};
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
    #[error(
        "the request would take more than 256 MiB once decoded (many small messages): send \
         smaller batches"
    )]
    TooLarge,
}

/// What a request held: its points, and those refused while reading it.
#[derive(Debug, Default)]
pub struct Decoded {
    pub points: Vec<Point>,
    /// Points refused, by kind of reason.
    pub refused: Refusals,
}

/// Decodes a request's body.
pub fn decode(body: &[u8], encoding: Encoding) -> Result<ExportMetricsServiceRequest, OtlpError> {
    let size = match encoding {
        Encoding::Protobuf => super::decoded_size(body, super::DECODED_BUDGET),
        Encoding::Json => super::json_decoded_size(body),
    };
    if size > super::DECODED_BUDGET {
        return Err(OtlpError::TooLarge);
    }
    match encoding {
        Encoding::Protobuf => ExportMetricsServiceRequest::decode(body)
            .map_err(|error| OtlpError::Protobuf(error.to_string())),
        Encoding::Json => {
            serde_json::from_slice(body).map_err(|error| OtlpError::Json(error.to_string()))
        }
    }
}

/// How many points `request` gives (a histogram's or summary's data point
/// gives two, its count and sum), read before anything else so that too
/// big a request is refused at once.
pub fn count_points(request: &ExportMetricsServiceRequest) -> usize {
    request
        .resource_metrics
        .iter()
        .flat_map(|resource| &resource.scope_metrics)
        .flat_map(|scope| &scope.metrics)
        .map(|metric| match &metric.data {
            Some(Data::Gauge(gauge)) => gauge.data_points.len(),
            Some(Data::Sum(sum)) => sum.data_points.len(),
            Some(Data::Histogram(histogram)) => 2 * histogram.data_points.len(),
            Some(Data::ExponentialHistogram(histogram)) => 2 * histogram.data_points.len(),
            Some(Data::Summary(summary)) => 2 * summary.data_points.len(),
            None => 0,
        })
        .sum()
}

/// Where, in a JSON request, a metric's data could not be read: the
/// opentelemetry-proto types read a malformed `gauge`, `sum`, ... as no data
/// at all, which would drop its points without a word. `None` when every
/// metric without data really has none.
pub fn unreadable_data(request: &ExportMetricsServiceRequest, body: &[u8]) -> Option<String> {
    let empty = request
        .resource_metrics
        .iter()
        .enumerate()
        .find_map(|(r, resource)| {
            resource
                .scope_metrics
                .iter()
                .enumerate()
                .find_map(|(s, scope)| {
                    scope
                        .metrics
                        .iter()
                        .enumerate()
                        .find_map(|(m, metric)| metric.data.is_none().then_some((r, s, m)))
                })
        });
    empty?;
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    const DATA: [&str; 5] = [
        "gauge",
        "sum",
        "histogram",
        "exponentialHistogram",
        "summary",
    ];
    for (r, resource) in request.resource_metrics.iter().enumerate() {
        for (s, scope) in resource.scope_metrics.iter().enumerate() {
            for (m, metric) in scope.metrics.iter().enumerate() {
                if metric.data.is_some() {
                    continue;
                }
                let written = &json["resourceMetrics"][r]["scopeMetrics"][s]["metrics"][m];
                if let Some(key) = DATA.iter().find(|key| !written[**key].is_null()) {
                    return Some(format!(
                        "resourceMetrics[{r}].scopeMetrics[{s}].metrics[{m}] ({:?}): its {key} \
                         could not be read as OTLP (a data point's times are unsigned nanoseconds, \
                         dataPoints an array of objects)",
                        metric.name
                    ));
                }
            }
        }
    }
    None
}

/// Reads the values written as strings in a JSON request (`"asDouble":
/// "1.5"`, `"NaN"`, `"Infinity"`, as the protobuf JSON mapping allows),
/// which the opentelemetry-proto types leave unread. Only when a number
/// data point has no value: the body is read again as JSON then.
pub fn read_string_values(request: &mut ExportMetricsServiceRequest, body: &[u8]) {
    let number_points = |metric: &opentelemetry_proto::tonic::metrics::v1::Metric| {
        match &metric.data {
            Some(Data::Gauge(gauge)) => Some(&gauge.data_points),
            Some(Data::Sum(sum)) => Some(&sum.data_points),
            _ => None,
        }
        .is_some_and(|points| points.iter().any(|point| point.value.is_none()))
    };
    let unread = request
        .resource_metrics
        .iter()
        .flat_map(|resource| &resource.scope_metrics)
        .flat_map(|scope| &scope.metrics)
        .any(number_points);
    if !unread {
        return;
    }
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
        return;
    };
    for (r, resource) in request.resource_metrics.iter_mut().enumerate() {
        for (s, scope) in resource.scope_metrics.iter_mut().enumerate() {
            for (m, metric) in scope.metrics.iter_mut().enumerate() {
                let written = &json["resourceMetrics"][r]["scopeMetrics"][s]["metrics"][m];
                let (points, key) = match &mut metric.data {
                    Some(Data::Gauge(gauge)) => (&mut gauge.data_points, "gauge"),
                    Some(Data::Sum(sum)) => (&mut sum.data_points, "sum"),
                    _ => continue,
                };
                for (p, point) in points.iter_mut().enumerate() {
                    if point.value.is_some() {
                        continue;
                    }
                    let text = written[key]["dataPoints"][p]["asDouble"].as_str();
                    let value = match text {
                        Some("NaN") => Some(f64::NAN),
                        Some("Infinity") => Some(f64::INFINITY),
                        Some("-Infinity") => Some(f64::NEG_INFINITY),
                        Some(text) => text.parse::<f64>().ok(),
                        None => None,
                    };
                    point.value = value.map(number_data_point::Value::AsDouble);
                }
            }
        }
    }
}

/// The points of `request`. A resource's attributes are kept once, shared
/// by its points.
pub fn points(request: ExportMetricsServiceRequest) -> Decoded {
    let mut out = Decoded::default();
    for resource_metrics in request.resource_metrics {
        let resource: Arc<[(String, String)]> = resource_metrics
            .resource
            .map(|resource| labels(&resource.attributes))
            .unwrap_or_default()
            .into();
        for scope in resource_metrics.scope_metrics {
            for metric in scope.metrics {
                // A metric without data has no data point to take or refuse.
                let Some(data) = metric.data else {
                    continue;
                };
                let name: Arc<str> = metric.name.into();
                let with = |attributes: &[KeyValue]| Labels {
                    shared: resource.clone(),
                    own: labels(attributes).into(),
                };
                match data {
                    Data::Gauge(gauge) => {
                        for point in gauge.data_points {
                            let labels = with(&point.attributes);
                            number(&mut out, &name, Kind::Gauge, labels, point);
                        }
                    }
                    Data::Sum(sum) => {
                        let temporality = sum.aggregation_temporality;
                        for point in sum.data_points {
                            let Some(kind) = sum_kind(temporality, sum.is_monotonic, &point) else {
                                out.refused.add(
                                    || format!(" (metric {name:?})"),
                                    "a sum without its aggregation temporality",
                                );
                                continue;
                            };
                            let labels = with(&point.attributes);
                            number(&mut out, &name, kind, labels, point);
                        }
                    }
                    Data::Histogram(histogram) => counted(
                        &mut out,
                        &name,
                        histogram.aggregation_temporality,
                        histogram
                            .data_points
                            .iter()
                            .map(|p| (&p.attributes[..], p.into())),
                        &with,
                    ),
                    Data::ExponentialHistogram(histogram) => counted(
                        &mut out,
                        &name,
                        histogram.aggregation_temporality,
                        histogram
                            .data_points
                            .iter()
                            .map(|p| (&p.attributes[..], p.into())),
                        &with,
                    ),
                    Data::Summary(summary) => counted(
                        &mut out,
                        &name,
                        AggregationTemporality::Cumulative as i32,
                        summary
                            .data_points
                            .iter()
                            .map(|p| (&p.attributes[..], p.into())),
                        &with,
                    ),
                }
            }
        }
    }
    out
}

/// The points of a histogram's, exponential histogram's or summary's data
/// points: `NAME.count` and `NAME.sum` of each.
fn counted<'a>(
    out: &mut Decoded,
    name: &str,
    temporality: i32,
    points: impl Iterator<Item = (&'a [KeyValue], HistogramParts)>,
    with: &impl Fn(&[KeyValue]) -> Labels,
) {
    let names: [Arc<str>; 2] = [format!("{name}.count").into(), format!("{name}.sum").into()];
    for (attributes, parts) in points {
        histogram_points(out, &names, temporality, with(attributes), parts);
    }
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
    name: &Arc<str>,
    kind: Kind,
    labels: Labels,
    point: opentelemetry_proto::tonic::metrics::v1::NumberDataPoint,
) {
    if point.flags & NO_RECORDED_VALUE != 0 {
        return;
    }
    let value = match point.value {
        Some(number_data_point::Value::AsDouble(value)) => value,
        Some(number_data_point::Value::AsInt(value)) => value as f64,
        None => {
            out.refused.add(
                || format!(" (metric {name:?}): asDouble or asInt, as a number"),
                "a data point without a value",
            );
            return;
        }
    };
    let Some(ts) = millis(point.time_unix_nano) else {
        out.refused.add(
            || format!(" (metric {name:?})"),
            "a data point without timeUnixNano",
        );
        return;
    };
    out.points.push(Point {
        metric: name.clone(),
        labels,
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

impl From<&HistogramDataPoint> for HistogramParts {
    fn from(point: &HistogramDataPoint) -> Self {
        HistogramParts {
            count: point.count,
            sum: point.sum,
            start: point.start_time_unix_nano,
            time: point.time_unix_nano,
            flags: point.flags,
        }
    }
}

impl From<&SummaryDataPoint> for HistogramParts {
    fn from(point: &SummaryDataPoint) -> Self {
        HistogramParts {
            count: point.count,
            sum: Some(point.sum),
            start: point.start_time_unix_nano,
            time: point.time_unix_nano,
            flags: point.flags,
        }
    }
}

impl From<&ExponentialHistogramDataPoint> for HistogramParts {
    fn from(point: &ExponentialHistogramDataPoint) -> Self {
        HistogramParts {
            count: point.count,
            sum: point.sum,
            start: point.start_time_unix_nano,
            time: point.time_unix_nano,
            flags: point.flags,
        }
    }
}

fn histogram_points(
    out: &mut Decoded,
    names: &[Arc<str>; 2],
    temporality: i32,
    labels: Labels,
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
            out.refused.add(
                || format!(" (metric {:?})", names[0]),
                "a histogram without its aggregation temporality",
            );
            return;
        }
    };
    let Some(ts) = millis(parts.time) else {
        out.refused.add(
            || format!(" (metric {:?})", names[0]),
            "a data point without timeUnixNano",
        );
        return;
    };
    let count = Some(parts.count as f64);
    for (name, value) in names.iter().zip([count, parts.sum]) {
        if let Some(value) = value {
            out.points.push(Point {
                metric: name.clone(),
                labels: labels.clone(),
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
