//! Charts as SVG, written by hand like the timeline of incidents (in
//! [`super::timeline`]): lines over time, with an optional threshold.
//! Legends are HTML, beside the chart, so that they wrap on a narrow screen.

use std::fmt::Write;

use maud::{Markup, html};

use super::format;
use crate::duration::Millis;

/// The width of a full-width chart; the page scales it.
pub const WIDE: u32 = 900;

/// The narrowest a chart `width` units wide may be drawn with its 13-unit
/// text still at 11 px: narrower, its figure scrolls (from its newest end,
/// see alertd.css) instead of shrinking further. As a `style` attribute.
pub fn legible_width(width: u32) -> String {
    format!("min-width: {}px", (width * 11).div_ceil(13))
}
/// The width of a chart in a two-column grid.
pub const NARROW: u32 = 620;
pub(super) const AXIS_CSS: &str = "#6e7681";
pub(super) const GRID_CSS: &str = "#e6e8eb";
pub(super) const THRESHOLD_CSS: &str = "#cf222e";
/// Around the plot.
const MARGIN: f64 = 12.0;
/// Left of the plot, for the value axis's labels.
const VALUE_LABELS: f64 = 56.0;
/// Below the plot, for the time axis's labels.
const TIME_LABELS: f64 = 40.0;

/// A series colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Colour(pub u8, pub u8, pub u8);

impl Colour {
    /// The `n`-th colour of a palette that tells ten series apart.
    pub fn nth(n: usize) -> Colour {
        const PALETTE: [Colour; 10] = [
            Colour(31, 111, 235),
            Colour(230, 126, 34),
            Colour(26, 127, 55),
            Colour(137, 87, 229),
            Colour(191, 57, 137),
            Colour(27, 152, 164),
            Colour(154, 103, 0),
            Colour(87, 96, 106),
            Colour(219, 97, 162),
            Colour(84, 174, 255),
        ];
        PALETTE[n % PALETTE.len()]
    }

    pub fn css(self) -> String {
        format!("#{:02x}{:02x}{:02x}", self.0, self.1, self.2)
    }
}

/// One line of a chart. Points more than a step and a half apart are not
/// joined: a gap in the data stays a gap.
pub struct Line {
    pub colour: Colour,
    pub points: Vec<(Millis, f64)>,
}

/// Lines over `[from, to]`.
pub struct TimeChart {
    pub from: Millis,
    pub to: Millis,
    /// The distance between points, to tell a gap from the next point.
    pub step: Millis,
    pub width: u32,
    pub height: u32,
    /// A fixed top for the value axis (100 for percentages).
    pub top: Option<f64>,
    /// Appended to the value axis's labels (`%`).
    pub unit: &'static str,
    pub threshold: Option<f64>,
    pub lines: Vec<Line>,
}

/// Where the plot lies in the picture, and how times and values map onto it.
struct Plot {
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    from: Millis,
    to: Millis,
    low: f64,
    high: f64,
}

impl Plot {
    /// Where `at` is across; outside the plot for a time outside the frame
    /// (the lines are clipped to the plot).
    fn x(&self, at: Millis) -> f64 {
        let span = (i128::from(self.to) - i128::from(self.from)).max(1) as f64;
        let offset = (i128::from(at) - i128::from(self.from)) as f64;
        self.left + offset / span * (self.right - self.left)
    }

    fn y(&self, value: f64) -> f64 {
        let share = (value - self.low) / (self.high - self.low);
        self.bottom - share.clamp(0.0, 1.0) * (self.bottom - self.top)
    }
}

impl TimeChart {
    /// The chart, labelled `label` for assistive technology.
    pub fn svg(&self, label: &str) -> Markup {
        let (low, high) = self.value_range();
        let (width, height) = (f64::from(self.width), f64::from(self.height));
        let plot = Plot {
            left: MARGIN + VALUE_LABELS,
            right: width - MARGIN,
            top: MARGIN,
            bottom: height - MARGIN - TIME_LABELS,
            from: self.from,
            to: self.to,
            low,
            high,
        };
        let frame = self.to.saturating_sub(self.from);
        let times = time_ticks(self.from, self.to);
        let values = value_ticks(low, high);
        let left_out = self.left_out();
        let threshold = self.threshold.and_then(drawable).map(|value| plot.y(value));
        html! {
            svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label=(label)
                viewBox={ "0 0 " (self.width) " " (self.height) }
                width=(self.width) height=(self.height) style=(legible_width(self.width))
                font-family="sans-serif" font-size="13" {
                rect width=(self.width) height=(self.height) fill="#ffffff" {}
                @for at in &times {
                    line x1=(px(plot.x(*at))) x2=(px(plot.x(*at))) y1=(px(plot.top)) y2=(px(plot.bottom)) stroke=(GRID_CSS) {}
                }
                @for value in &values {
                    line x1=(px(plot.left)) x2=(px(plot.right)) y1=(px(plot.y(*value))) y2=(px(plot.y(*value))) stroke=(GRID_CSS) {}
                }
                line x1=(px(plot.left)) x2=(px(plot.left)) y1=(px(plot.top)) y2=(px(plot.bottom)) stroke=(AXIS_CSS) {}
                line x1=(px(plot.left)) x2=(px(plot.right)) y1=(px(plot.bottom)) y2=(px(plot.bottom)) stroke=(AXIS_CSS) {}
                @for at in &times {
                    @let x = plot.x(*at);
                    @let anchor = if x > plot.right - 40.0 { "end" } else { "middle" };
                    text x=(px(x)) y=(px(plot.bottom + 18.0)) text-anchor=(anchor) fill=(AXIS_CSS) {
                        (format::axis_time(*at, frame))
                    }
                }
                @for value in &values {
                    text x=(px(plot.left - 6.0)) y=(px(plot.y(*value) + 4.0)) text-anchor="end" fill=(AXIS_CSS) {
                        (format::value(*value)) (self.unit)
                    }
                }
                text x=(px(plot.right)) y=(px(plot.bottom + 34.0)) text-anchor="end" fill=(AXIS_CSS) font-size="12" { "UTC" }
                // A nested picture over the plot, in the same coordinates:
                // it clips what lies outside the frame.
                svg x=(px(plot.left)) y="0" width=(px(plot.right - plot.left)) height=(self.height)
                    viewBox={ (px(plot.left)) " 0 " (px(plot.right - plot.left)) " " (self.height) } {
                    @for line in &self.lines {
                        @let colour = line.colour.css();
                        @let points: Vec<(Millis, f64)> = line.points.iter()
                            .filter(|(_, value)| drawable(*value).is_some())
                            .copied().collect();
                        @for run in runs(&points, self.step) {
                            @if let [(at, value)] = run {
                                circle cx=(px(plot.x(*at))) cy=(px(plot.y(*value))) r="2" fill=(colour) {}
                            } @else {
                                polyline points=(polyline(&plot, run)) fill="none" stroke=(colour) stroke-width="2" stroke-linejoin="round" {}
                            }
                        }
                    }
                }
                @if let Some(y) = threshold {
                    line x1=(px(plot.left)) x2=(px(plot.right)) y1=(px(y)) y2=(px(y))
                        stroke=(THRESHOLD_CSS) stroke-width="2" stroke-dasharray="6 4" {}
                }
                @if left_out > 0 {
                    text x=(px(plot.left)) y="12" fill=(THRESHOLD_CSS) {
                        (left_out) " value" @if left_out != 1 { "s" } " beyond ±1e300 not drawn"
                    }
                }
            }
        }
    }

    /// The value axis: from the lowest value (or 0) to a little above the
    /// highest, over the values that can be drawn (see [`drawable`]); always
    /// finite and of positive length, whatever the data.
    fn value_range(&self) -> (f64, f64) {
        let values = self
            .lines
            .iter()
            .flat_map(|line| line.points.iter().map(|(_, value)| *value))
            .chain(self.threshold)
            .filter_map(drawable);
        let (low, high) = values.fold((0.0_f64, f64::NEG_INFINITY), |(low, high), value| {
            (low.min(value), high.max(value))
        });
        let high = match self.top {
            Some(top) if high <= top => top,
            _ if high > low => high + (high - low) * 0.08,
            _ => low + low.abs().max(1.0) * 0.1,
        };
        (low, high)
    }

    /// How many values are not drawn (not finite, or beyond [`DRAWABLE`]).
    fn left_out(&self) -> usize {
        self.lines
            .iter()
            .flat_map(|line| &line.points)
            .filter(|(_, value)| drawable(*value).is_none())
            .count()
    }
}

/// A coordinate as written: to a tenth of a pixel.
fn px(value: f64) -> String {
    format!("{value:.1}")
}

/// `x,y x,y ...` for a run of points. A run denser than a point a pixel
/// (a day of minutes in a narrow chart) is drawn at whole pixels, each
/// pixel column's lowest and highest point in the order they come: the same
/// line, at a fraction of the bytes.
fn polyline(plot: &Plot, run: &[(Millis, f64)]) -> String {
    let mut points = String::with_capacity(run.len() * 12);
    let width = match (run.first(), run.last()) {
        (Some((first, _)), Some((last, _))) => plot.x(*last) - plot.x(*first),
        _ => 0.0,
    };
    if (run.len() as f64) <= width {
        for (at, value) in run {
            let _ = write!(points, "{:.1},{:.1} ", plot.x(*at), plot.y(*value));
        }
    } else {
        // The pixel column being drawn: its x, and its lowest and highest
        // y, each with the place of the point it came from.
        type Column = (f64, (usize, f64), (usize, f64));
        let flush = |points: &mut String, (x, low, high): Column| {
            let (first, second) = if low.0 <= high.0 {
                (low, high)
            } else {
                (high, low)
            };
            let _ = write!(points, "{x:.0},{:.0} ", first.1);
            if first.1.round() != second.1.round() {
                let _ = write!(points, "{x:.0},{:.0} ", second.1);
            }
        };
        let mut column: Option<Column> = None;
        for (place, (at, value)) in run.iter().enumerate() {
            let (x, y) = (plot.x(*at).round(), plot.y(*value));
            match &mut column {
                Some((cx, low, high)) if *cx == x => {
                    if y < low.1 {
                        *low = (place, y);
                    }
                    if y > high.1 {
                        *high = (place, y);
                    }
                }
                _ => {
                    if let Some(done) = column {
                        flush(&mut points, done);
                    }
                    column = Some((x, (place, y), (place, y)));
                }
            }
        }
        if let Some(done) = column {
            flush(&mut points, done);
        }
    }
    points.pop();
    points
}

/// Round values for the value axis: multiples of 1, 2 or 5 times a power
/// of ten, about five of them, within `[low, high]`.
fn value_ticks(low: f64, high: f64) -> Vec<f64> {
    let rough = (high - low) / 5.0;
    if !(rough.is_finite() && rough > 0.0) {
        return Vec::new();
    }
    let power = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|factor| factor * power)
        .find(|step| *step >= rough)
        .unwrap_or(10.0 * power);
    let first = (low / step).ceil();
    (0..12)
        .map(|n| (first + f64::from(n)) * step)
        .take_while(|value| *value <= high)
        .collect()
}

/// Round times for the time axis: at most eight, on multiples of a step
/// a reader expects (a minute, five, an hour, a day...), in UTC.
pub(super) fn time_ticks(from: Millis, to: Millis) -> Vec<Millis> {
    const SECOND: Millis = 1000;
    const MINUTE: Millis = 60 * SECOND;
    const HOUR: Millis = 60 * MINUTE;
    const STEPS: [Millis; 21] = [
        SECOND,
        2 * SECOND,
        5 * SECOND,
        10 * SECOND,
        15 * SECOND,
        30 * SECOND,
        MINUTE,
        2 * MINUTE,
        5 * MINUTE,
        10 * MINUTE,
        15 * MINUTE,
        30 * MINUTE,
        HOUR,
        2 * HOUR,
        3 * HOUR,
        6 * HOUR,
        12 * HOUR,
        24 * HOUR,
        48 * HOUR,
        7 * 24 * HOUR,
        30 * 24 * HOUR,
    ];
    let span = to.saturating_sub(from).max(1);
    let step = STEPS
        .into_iter()
        .find(|step| span / step < 8)
        .unwrap_or(span);
    // Checked all the way: near the ends of time a tick does not exist
    // rather than wrapping round (which made the list endless).
    let first =
        from.div_euclid(step)
            .checked_mul(step)
            .and_then(|start| match from.rem_euclid(step) {
                0 => Some(start),
                _ => start.checked_add(step),
            });
    let Some(first) = first else {
        return Vec::new();
    };
    (0..)
        .map_while(|n: Millis| {
            n.checked_mul(step)
                .and_then(|offset| first.checked_add(offset))
        })
        .take_while(|tick| *tick <= to)
        .take(16)
        .collect()
}

/// The largest magnitude a chart draws. Values beyond it (a stored
/// 1.7e308, a sum that overflowed to infinity) are left out and counted on
/// the chart, so that the axis and its padding stay finite.
const DRAWABLE: f64 = 1e300;

/// `value` if a chart can draw it.
fn drawable(value: f64) -> Option<f64> {
    (value.is_finite() && value.abs() <= DRAWABLE).then_some(value)
}

/// Splits points into runs of neighbours (no more than 1.5 steps apart).
fn runs(points: &[(Millis, f64)], step: Millis) -> impl Iterator<Item = &[(Millis, f64)]> {
    let gap = step + step / 2;
    points.chunk_by(move |a, b| b.0 - a.0 <= gap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_ticks_are_round() {
        let minute = 60_000;
        // 10:03:20 to 11:03:20: every 10 minutes, from 10:10.
        let from = 36_000_000 + 200_000;
        let ticks = time_ticks(from, from + 60 * minute);
        assert_eq!(ticks.len(), 6);
        assert_eq!(ticks[0], 36_000_000 + 10 * minute);
        assert!(
            ticks
                .windows(2)
                .all(|pair| pair[1] - pair[0] == 10 * minute)
        );
        // A week: a day apart, at midnight.
        let ticks = time_ticks(from, from + 7 * 24 * 60 * minute);
        assert_eq!(ticks[0] % (24 * 60 * minute), 0);
        assert!(ticks.len() <= 8);
    }

    #[test]
    fn time_ticks_end_near_the_ends_of_time() {
        // Found by the chart fuzz target: the ticks wrapped round and never ended.
        assert!(time_ticks(Millis::MAX - 1, Millis::MAX).len() <= 16);
        assert!(time_ticks(Millis::MIN, Millis::MAX).len() <= 16);
        assert!(time_ticks(Millis::MIN, Millis::MIN + 1).len() <= 16);
    }

    #[test]
    fn value_ticks_are_round() {
        assert_eq!(
            value_ticks(0.0, 100.0),
            [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
        );
        assert_eq!(value_ticks(0.0, 7.3), [0.0, 2.0, 4.0, 6.0]);
        assert_eq!(value_ticks(-3.0, 3.0), [-2.0, 0.0, 2.0]);
        assert!(value_ticks(-1e300, 1.08e300).len() <= 12);
        assert!(value_ticks(1.0, 1.0).is_empty());
    }

    /// A day of minutes in 450 pixels: at most two points a pixel column,
    /// and a one-minute spike still drawn at its height.
    #[test]
    fn a_dense_line_keeps_each_columns_extremes() {
        let plot = Plot {
            left: 50.0,
            right: 500.0,
            top: 0.0,
            bottom: 200.0,
            from: 0,
            to: 1_440 * 60_000,
            low: 0.0,
            high: 100.0,
        };
        let run: Vec<(Millis, f64)> = (0..1_440)
            .map(|minute| (minute * 60_000, if minute == 700 { 100.0 } else { 50.0 }))
            .collect();
        let drawn = polyline(&plot, &run);
        let points: Vec<(f64, f64)> = drawn
            .split(' ')
            .map(|point| {
                let (x, y) = point.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect();
        assert!(points.len() <= 2 * 451, "{}", points.len());
        assert!(points.iter().any(|&(_, y)| y == 0.0), "the spike is drawn");
        assert!(points.windows(2).all(|pair| pair[0].0 <= pair[1].0));
        assert_eq!(points.first().unwrap().0, 50.0);
        assert_eq!(points.last().unwrap().0, plot.x(1_439 * 60_000).round());
        // A sparse line keeps its points as they are, to a tenth of a pixel.
        let sparse: Vec<(Millis, f64)> = run.iter().step_by(100).copied().collect();
        let drawn = polyline(&plot, &sparse);
        assert_eq!(drawn.split(' ').count(), sparse.len());
        assert!(drawn.starts_with("50.0,100.0 "), "{drawn}");
    }

    #[test]
    fn gaps_split_lines() {
        let points = [
            (0, 1.0),
            (10, 2.0),
            (20, 3.0),
            (50, 4.0),
            (60, 5.0),
            (100, 6.0),
        ];
        let runs: Vec<usize> = runs(&points, 10).map(<[_]>::len).collect();
        assert_eq!(runs, [3, 2, 1]);
    }

    #[test]
    fn charts_escape_labels_and_draw_every_line() {
        let chart = TimeChart {
            from: 0,
            to: 3_600_000,
            step: 60_000,
            width: WIDE,
            height: 200,
            top: Some(100.0),
            unit: "%",
            threshold: Some(60.0),
            lines: vec![Line {
                colour: Colour::nth(0),
                points: (0..60).map(|i| (i * 60_000, i as f64)).collect(),
            }],
        };
        let svg = chart.svg("CPU <use>").into_string();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("aria-label=\"CPU &lt;use&gt;\""), "{svg}");
        assert!(svg.contains("stroke=\"#1f6feb\""), "the line is drawn");
        assert!(svg.contains(">100%<"), "a percentage axis: {svg}");
        assert!(svg.contains("stroke-dasharray"), "the threshold");
        assert_eq!(svg.matches("<polyline").count(), 1);
    }

    #[test]
    fn extreme_values_are_left_out_and_said_so() {
        let extremes = [
            1.7e308,
            -1.7e308,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NAN,
            f64::MAX,
            f64::MIN_POSITIVE,
        ];
        for top in [None, Some(100.0)] {
            for threshold in [None, Some(f64::MAX), Some(1e300), Some(-1e300)] {
                for extreme in extremes {
                    let chart = TimeChart {
                        from: 0,
                        to: 600_000,
                        step: 60_000,
                        width: NARROW,
                        height: 200,
                        top,
                        unit: "",
                        threshold,
                        lines: vec![Line {
                            colour: Colour::nth(0),
                            points: vec![(0, 1.0), (60_000, extreme), (120_000, 1e300)],
                        }],
                    };
                    let (low, high) = chart.value_range();
                    assert!(
                        low.is_finite() && high.is_finite() && high > low,
                        "{extreme}"
                    );
                    let svg = chart.svg("").into_string();
                    let said = svg.contains("1 value beyond ±1e300 not drawn");
                    assert_eq!(said, drawable(extreme).is_none(), "{extreme}");
                }
            }
        }
        // All at one huge value: an axis of positive length all the same.
        let flat = TimeChart {
            from: 0,
            to: 600_000,
            step: 60_000,
            width: NARROW,
            height: 200,
            top: None,
            unit: "",
            threshold: None,
            lines: vec![Line {
                colour: Colour::nth(0),
                points: vec![(0, -1e300), (60_000, -1e300)],
            }],
        };
        let (low, high) = flat.value_range();
        assert!(high > low && high.is_finite());
        assert!(!value_ticks(low, high).is_empty());
        assert!(!flat.svg("").into_string().contains("NaN"));
    }
}
