//! The timeline of incidents as SVG: a row per rule and host (labelled
//! with both, the rule with its colour), every bar a link with a tooltip,
//! the time axis above and below.

use maud::{Markup, html};

use super::chart::{AXIS_CSS, Colour, GRID_CSS, THRESHOLD_CSS, WIDE, legible_width, time_ticks};
use super::format;
use crate::duration::Millis;

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
/// Room for the time axis repeated above the rows.
const TOP: i64 = 24;
const AXIS_HEIGHT: i64 = 36;
/// The labels' column: the host, then the rule with its colour.
const LABELS: i64 = 300;
const HOST_LABEL: usize = 20;
const RULE_LABEL: usize = 20;
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
            width=(WIDE) height=(height) style=(legible_width(WIDE))
            font-family="sans-serif" font-size="13" {
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
                    text x="4" y=(y + ROW / 2 + 4) fill=(AXIS_CSS) {
                        title { (lane.host) }
                        (shorten(&lane.host, HOST_LABEL))
                    }
                }
                rect x=(LABELS - 20) y=(y + (ROW - 10) / 2) width="10" height="10" rx="2" fill=(lane.colour.css()) {}
                text x=(LABELS - 26) y=(y + ROW / 2 + 4) text-anchor="end" fill=(AXIS_CSS) font-size="12" {
                    title { (lane.rule) }
                    (shorten(&lane.rule, RULE_LABEL))
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
            line x1=(LABELS) x2=(i64::from(WIDE) - RIGHT) y1=(TOP) y2=(TOP) stroke=(AXIS_CSS) {}
            @for tick in &ticks {
                @let at = x(*tick);
                @let anchor = if at > i64::from(WIDE) - RIGHT - 40 { "end" } else if at < LABELS + 40 { "start" } else { "middle" };
                @let label = format::axis_time(*tick, span);
                // Above the rows too: a tall timeline reads its times at the top.
                text x=(at) y=(TOP - 8) text-anchor=(anchor) fill=(AXIS_CSS) { (label) }
                text x=(at) y=(bottom + 18) text-anchor=(anchor) fill=(AXIS_CSS) { (label) }
            }
            text x=(i64::from(WIDE) - RIGHT) y=(bottom + 33) text-anchor="end" fill=(AXIS_CSS) font-size="12" { "UTC" }
        }
    }
}

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
    fn timelines_escape_names_and_link_every_bar() {
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
}
