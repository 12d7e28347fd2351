//! Charts as SVG, drawn by plotters: lines over time, with an optional
//! threshold (the timeline of incidents, written by hand, is in
//! [`super::timeline`]). Legends are HTML, beside the chart, so that they
//! wrap on a narrow screen.

use plotters::prelude::*;

use super::format;
use crate::duration::Millis;

/// The width of a full-width chart; the page scales it.
pub const WIDE: u32 = 900;
/// The width of a chart in a two-column grid.
pub const NARROW: u32 = 620;
const AXIS: RGBColor = RGBColor(110, 118, 129);
const GRID: RGBColor = RGBColor(230, 232, 235);
const THRESHOLD: RGBColor = RGBColor(207, 34, 46);

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

    fn rgb(self) -> RGBColor {
        RGBColor(self.0, self.1, self.2)
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

impl TimeChart {
    pub fn svg(&self) -> Result<String, String> {
        let mut svg = String::new();
        self.draw(&mut svg).map_err(|error| error.to_string())?;
        Ok(svg)
    }

    /// The value axis: from the lowest value (or 0) to a little above the
    /// highest, over the values that can be drawn (see [`drawable`]); always
    /// finite and of positive length, whatever the data, since the axis
    /// code would otherwise never finish.
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

    fn draw(&self, svg: &mut String) -> Result<(), Box<dyn std::error::Error>> {
        let (low, high) = self.value_range();
        let frame = self.to.saturating_sub(self.from);
        let root = SVGBackend::with_string(svg, (self.width, self.height)).into_drawing_area();
        root.fill(&WHITE)?;
        let left_out = self.left_out();
        if left_out > 0 {
            root.draw_text(
                &format!(
                    "{left_out} value{} beyond ±1e300 not drawn",
                    if left_out == 1 { "" } else { "s" }
                ),
                &("sans-serif", 13).into_font().color(&THRESHOLD),
                (70, 0),
            )?;
        }
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(
                (self.from..self.to).with_key_points(time_ticks(self.from, self.to)),
                low..high,
            )?;
        let unit = self.unit;
        chart
            .configure_mesh()
            .x_labels(20)
            .y_labels(6)
            .x_label_formatter(&|at| format::axis_time(*at, frame))
            .x_desc("UTC")
            .y_label_formatter(&|value| format!("{}{unit}", format::value(*value)))
            .bold_line_style(GRID)
            .light_line_style(TRANSPARENT)
            .axis_style(AXIS)
            .label_style(("sans-serif", 13).into_font().color(&AXIS))
            .draw()?;
        // The threshold: one dashed line, written after the rest (plotters
        // would write each dash as a line of its own).
        let threshold = self.threshold.and_then(drawable).map(|threshold| {
            let (left, y) = chart.backend_coord(&(self.from, threshold));
            let (right, _) = chart.backend_coord(&(self.to, threshold));
            format!(
                r##"<line x1="{left}" y1="{y}" x2="{right}" y2="{y}" stroke="#CF222E" stroke-width="2" stroke-dasharray="6 4"/>"##
            )
        });
        for line in &self.lines {
            let style = line.colour.rgb().stroke_width(2);
            let points: Vec<(Millis, f64)> = line
                .points
                .iter()
                .filter(|(_, value)| drawable(*value).is_some())
                .copied()
                .collect();
            for run in runs(&points, self.step) {
                if let [(at, value)] = run {
                    chart.draw_series(std::iter::once(Circle::new(
                        (*at, *value),
                        2,
                        style.filled(),
                    )))?;
                } else {
                    chart.draw_series(LineSeries::new(run.iter().copied(), style))?;
                }
            }
        }
        root.present()?;
        drop(chart);
        drop(root);
        if let Some(line) = threshold
            && let Some(end) = svg.rfind("</svg>")
        {
            svg.insert_str(end, &line);
        }
        Ok(())
    }
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
        let svg = chart.svg().unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("stroke=\"#1F6FEB\""), "the line is drawn");
        assert!(svg.contains("100%"), "a percentage axis");
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
                    let svg = chart.svg().unwrap();
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
        flat.svg().unwrap();
    }
}
