//! Charts as SVG, drawn by plotters: lines over time (with an optional
//! threshold) and a timeline of incidents per host. Legends are HTML, beside
//! the chart, so that they wrap on a narrow screen.

use maud::{Markup, html};
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
fn time_ticks(from: Millis, to: Millis) -> Vec<Millis> {
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

/// When one incident was open: `[start, end]` in one row.
pub struct Bar {
    pub start: Millis,
    pub end: Millis,
    /// Where the bar leads: the incident's page.
    pub href: String,
    /// The tooltip: rule, host, times, value.
    pub title: String,
    /// A delivery of this incident failed or still waits: drawn outlined in red.
    pub undelivered: bool,
}

/// One rule's incidents on one host: a row of the timeline.
pub struct Lane {
    pub host: String,
    pub rule: String,
    pub colour: Colour,
    pub bars: Vec<Bar>,
}

/// Where a bar that stands for several incidents leads (the list of them):
/// given the lane and the span of the bar.
pub type GroupHref<'a> = &'a dyn Fn(&Lane, Millis, Millis) -> String;

/// The most bars a timeline draws (see [`timeline`]).
const MAX_BARS: usize = 1000;
const ROW: i64 = 20;
const BAR_HEIGHT: i64 = 14;
const TOP: i64 = 6;
const AXIS_HEIGHT: i64 = 36;
const LABELS: i64 = 190;
const RIGHT: i64 = 16;

/// Incidents over `[from, to]`: a row per rule and host (rows of one host
/// together, its name on the first), every bar a link with a tooltip. Bars
/// of a row closer than a pixel are drawn as one, which links to the list
/// of the incidents it stands for.
pub fn timeline(from: Millis, to: Millis, lanes: &[Lane], group_href: GroupHref) -> Markup {
    let span = to.saturating_sub(from).max(1);
    let plot = i64::from(WIDE) - LABELS - RIGHT;
    let x = |at: Millis| -> i64 {
        let offset = i128::from(at.clamp(from, to) - from) * i128::from(plot) / i128::from(span);
        LABELS + offset as i64
    };
    let rows = lanes.len() as i64;
    let height = TOP + rows * ROW + AXIS_HEIGHT;
    let bottom = TOP + rows * ROW;
    // Bars closer than a pixel are one; past MAX_BARS in all, closer than
    // two, four... pixels, so that a busy frame stays a page of a few
    // hundred kilobytes, every incident still under a link.
    let mut pixel = (span / plot).max(1);
    let mut drawn: Vec<Vec<Drawn>> = lanes
        .iter()
        .map(|lane| merged(&lane.bars, from, to, pixel))
        .collect();
    while drawn.iter().map(Vec::len).sum::<usize>() > MAX_BARS && pixel < span {
        pixel = pixel.saturating_mul(2);
        drawn = lanes
            .iter()
            .map(|lane| merged(&lane.bars, from, to, pixel))
            .collect();
    }
    let ticks = time_ticks(from, to);
    let incidents: usize = lanes.iter().map(|lane| lane.bars.len()).sum();
    let hosts = lanes
        .windows(2)
        .filter(|pair| pair[0].host != pair[1].host)
        .count()
        + 1;
    let description = format!(
        "Timeline of {incidents} incident{} on {hosts} host{}, from {} to {} UTC",
        if incidents == 1 { "" } else { "s" },
        if hosts == 1 { "" } else { "s" },
        format::time(from),
        format::time(to)
    );
    html! {
        svg xmlns="http://www.w3.org/2000/svg" class="timeline" role="img"
            aria-label=(description) viewBox={ "0 0 " (WIDE) " " (height) }
            width=(WIDE) height=(height) font-family="sans-serif" font-size="13" {
            title { (description) }
            rect width=(WIDE) height=(height) fill="#ffffff" {}
            @for tick in &ticks {
                line x1=(x(*tick)) x2=(x(*tick)) y1=(TOP) y2=(bottom) stroke=(GRID_CSS) {}
            }
            @for (index, lane) in lanes.iter().enumerate() {
                @let y = TOP + index as i64 * ROW;
                @let first = index == 0 || lanes[index - 1].host != lane.host;
                @if first && index > 0 {
                    line x1="0" x2=(WIDE) y1=(y) y2=(y) stroke=(GRID_CSS) {}
                }
                @if first {
                    text x=(LABELS - 8) y=(y + ROW / 2 + 4) text-anchor="end" fill=(AXIS_CSS) {
                        title { (lane.host) }
                        (shorten(&lane.host, 22))
                    }
                }
                @for bar in &drawn[index] {
                    @let (left, right) = (x(bar.start), x(bar.end).max(x(bar.start) + 3));
                    a href=(bar.href.clone().unwrap_or_else(|| group_href(lane, bar.start, bar.end))) {
                        rect x=(left) y=(y + (ROW - BAR_HEIGHT) / 2) width=(right - left) height=(BAR_HEIGHT)
                            rx="2" fill=(lane.colour.css())
                            stroke=[bar.undelivered.then_some(THRESHOLD_CSS)]
                            stroke-width=[bar.undelivered.then_some("2")] {
                            title { (bar.title) }
                        }
                    }
                }
            }
            line x1=(LABELS) x2=(i64::from(WIDE) - RIGHT) y1=(bottom) y2=(bottom) stroke=(AXIS_CSS) {}
            @for tick in &ticks {
                @let at = x(*tick);
                @let anchor = if at > i64::from(WIDE) - RIGHT - 40 { "end" } else if at < LABELS + 40 { "start" } else { "middle" };
                text x=(at) y=(bottom + 18) text-anchor=(anchor) fill=(AXIS_CSS) { (format::axis_time(*tick, span)) }
            }
            text x=(i64::from(WIDE) - RIGHT) y=(bottom + 33) text-anchor="end" fill=(AXIS_CSS) font-size="12" { "UTC" }
        }
    }
}

const GRID_CSS: &str = "#e6e8eb";
const AXIS_CSS: &str = "#6e7681";
const THRESHOLD_CSS: &str = "#cf222e";

/// A bar as drawn: one incident (with its link and tooltip) or several.
struct Drawn {
    start: Millis,
    end: Millis,
    /// `None` for several incidents: the row's list links them.
    href: Option<String>,
    title: String,
    undelivered: bool,
    count: usize,
}

/// The bars of a row clipped to `[from, to]`, at least `pixel` long, with
/// bars less than a pixel apart drawn as one: a row of thousands of
/// incidents stays a few hundred rectangles, each still a link.
fn merged(bars: &[Bar], from: Millis, to: Millis, pixel: Millis) -> Vec<Drawn> {
    let mut sorted: Vec<&Bar> = bars
        .iter()
        .filter(|bar| bar.end >= from && bar.start <= to)
        .collect();
    sorted.sort_by_key(|bar| bar.start);
    let mut out: Vec<Drawn> = Vec::new();
    for bar in sorted {
        let end = bar.end.min(to).max(bar.start.saturating_add(pixel)).min(to);
        let start = bar.start.max(from).min(end.saturating_sub(pixel));
        if let Some(last) = out.last_mut()
            && start <= last.end.saturating_add(pixel)
        {
            last.end = last.end.max(end);
            last.count += 1;
            last.href = None;
            last.undelivered |= bar.undelivered;
            last.title = format!(
                "{} incidents from {} to {} UTC (open the list)",
                last.count,
                format::time(last.start),
                format::time(last.end)
            );
            continue;
        }
        out.push(Drawn {
            start,
            end,
            href: Some(bar.href.clone()),
            title: bar.title.clone(),
            undelivered: bar.undelivered,
            count: 1,
        });
    }
    out
}

fn shorten(text: &str, at_most: usize) -> String {
    if text.chars().count() <= at_most {
        return text.to_string();
    }
    let mut short: String = text.chars().take(at_most - 1).collect();
    short.push('…');
    short
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

    fn bar(start: Millis, end: Millis) -> Bar {
        Bar {
            start,
            end,
            href: format!("/incidents/{start}"),
            title: format!("incident {start}"),
            undelivered: false,
        }
    }

    #[test]
    fn close_bars_of_a_row_merge_and_link_to_their_list() {
        let bars = [
            bar(100, 105),
            bar(0, 10),
            bar(12, 20),
            bar(50, 51),
            bar(-50, -10),
        ];
        let merged = merged(&bars, 0, 100, 5);
        let spans: Vec<(Millis, Millis, Option<&str>, usize)> = merged
            .iter()
            .map(|b| (b.start, b.end, b.href.as_deref(), b.count))
            .collect();
        assert_eq!(
            spans,
            [
                (0, 20, None, 2),
                (50, 55, Some("/incidents/50"), 1),
                (95, 100, Some("/incidents/100"), 1),
            ]
        );
        assert!(merged[0].title.starts_with("2 incidents from"));
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
        let lanes = [
            Lane {
                host: "<b>&host".into(),
                rule: "r".into(),
                colour: Colour::nth(1),
                bars: vec![bar(60_000, 120_000)],
            },
            Lane {
                host: "<b>&host".into(),
                rule: "s".into(),
                colour: Colour::nth(2),
                bars: vec![bar(0, 1), bar(2, 3)],
            },
        ];
        let svg = timeline(0, 3_600_000, &lanes, &|lane, _, _| {
            format!("/?rule={}", lane.rule)
        })
        .into_string();
        assert!(svg.contains("&lt;b&gt;&amp;host"), "{svg}");
        assert!(!svg.contains("<b>"));
        assert_eq!(
            svg.matches("<title>&lt;b&gt;&amp;host</title>").count(),
            1,
            "one label per host"
        );
        assert!(svg.contains(r#"<a href="/incidents/60000">"#), "{svg}");
        assert!(svg.contains(r#"<a href="/?rule=s">"#), "{svg}");
        assert!(svg.contains("UTC"));
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
