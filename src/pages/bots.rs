//! The monitoring page's bot health: per Botpress bot, its events and the
//! warnings, errors and criticals of its logger over the time frame, read
//! from the per-bot counters the Botpress feed pushes
//! (`bot.BOT.eventsIn.count`, ... see integrations/botpress).
//!
//! The original page showed Botpress' own status of each bot per host. alertd
//! sees what the feed counts, so a bot's state here is read from its counts:
//! a critical in the frame, errors, no event at all, or healthy.

use std::collections::BTreeMap;

use maud::{Markup, html};

use super::format;
use crate::duration::{HumanDuration, Millis};
use crate::stats::Bucket;

/// The per-bot counters, by the name after `bot.BOT.`.
const KINDS: [&str; 5] = [
    "eventsIn.count",
    "eventsOut.count",
    "warnings.count",
    "errors.count",
    "criticals.count",
];

/// The most bots listed.
const BOTS_SHOWN: usize = 50;

/// One bot over the frame.
#[derive(Debug, Default, Clone, PartialEq)]
pub(super) struct Bot {
    /// Per kind of [`KINDS`], the sum over the frame.
    totals: [f64; KINDS.len()],
    /// The start of the last point with an event.
    last_event: Option<Millis>,
}

impl Bot {
    /// What needs a look first: 0 critical, 1 errors, 2 no event, 3 healthy.
    fn state(&self) -> (u8, &'static str, &'static str) {
        let [events_in, events_out, _, errors, criticals] = self.totals;
        if criticals > 0.0 {
            (0, "critical", "firing")
        } else if errors > 0.0 {
            (1, "errors", "cooldown")
        } else if events_in + events_out <= 0.0 {
            (2, "no events", "nodata")
        } else {
            (3, "healthy", "ok")
        }
    }
}

/// The bots of the series (points of the fleet or of one host), by id.
pub(super) fn bots(series: &BTreeMap<Millis, Bucket>) -> BTreeMap<String, Bot> {
    let mut bots: BTreeMap<String, Bot> = BTreeMap::new();
    for (at, bucket) in series {
        for (field, stats) in &bucket.fields {
            let Some(rest) = field.strip_prefix("bot.") else {
                continue;
            };
            let Some((place, id)) = KINDS.iter().enumerate().find_map(|(place, kind)| {
                let id = rest.strip_suffix(kind)?.strip_suffix('.')?;
                (!id.is_empty()).then_some((place, id))
            }) else {
                continue;
            };
            let bot = bots.entry(id.to_string()).or_default();
            bot.totals[place] += stats.sum;
            if place < 2 && stats.sum > 0.0 {
                bot.last_event = bot.last_event.max(Some(*at));
            }
        }
    }
    bots
}

/// The bot health section, or nothing when no bot reports.
pub(super) fn section(bots: &BTreeMap<String, Bot>, resolution: Millis, across: bool) -> Markup {
    if bots.is_empty() {
        return html! {};
    }
    let mut rows: Vec<(&String, &Bot)> = bots.iter().collect();
    rows.sort_by_key(|(id, bot)| (bot.state().0, id.as_str()));
    let shown = &rows[..rows.len().min(BOTS_SHOWN)];
    html! {
        section #bots {
            h2 { "Bot health " span.hint { @if across { "across hosts" } @else { "on this host" } } }
            div.scroll {
                table {
                    thead { tr {
                        th { "Bot" } th { "State" } th { "Last events" }
                        th.num { "Events in" } th.num { "Events out" } th.num { "Warnings" }
                        th.num { "Errors" } th.num { "Criticals" }
                    } }
                    tbody {
                        @for (id, bot) in shown {
                            @let (_, state, look) = bot.state();
                            tr {
                                td { (id) }
                                td { span class={ "badge " (look) } { (state) } }
                                td.time { @match bot.last_event {
                                    Some(at) => { (format::time(at)) },
                                    None => "—",
                                } }
                                @for total in bot.totals {
                                    td.num { (format::value(total)) }
                                }
                            }
                        }
                    }
                }
            }
            p.hint {
                "From the counters the Botpress feed pushes per bot (bot.BOT.eventsIn.count …); "
                "a state read from them: a critical in the frame, errors, no event, or healthy. "
                "Last events: the point of " (HumanDuration(resolution)) " that holds them."
                @if rows.len() > BOTS_SHOWN {
                    " The first " (BOTS_SHOWN) " of " (format::count(rows.len())) ", those that need a look first."
                }
                @if across { " Choose a host to see its own." }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::FieldStats;

    fn bucket(fields: &[(&str, f64)]) -> Bucket {
        Bucket {
            samples: 1,
            fields: fields
                .iter()
                .map(|(name, sum)| {
                    (
                        name.to_string(),
                        FieldStats {
                            sum: *sum,
                            max: *sum,
                            count: 1,
                        },
                    )
                })
                .collect(),
        }
    }

    /// Each bot's counters add up over the points, its last events are the
    /// last point with one, and its state comes from its counts; fields
    /// that only look like a bot's are not one.
    #[test]
    fn bots_are_read_from_their_counters() {
        let series: BTreeMap<Millis, Bucket> = [
            (
                0,
                bucket(&[
                    ("bot.franky.eventsIn.count", 3.0),
                    ("bot.test-1.errors.count", 1.0),
                    ("cpu.usage", 50.0),
                    ("bot..errors.count", 9.0),
                    ("bot.x.latency", 9.0),
                ]),
            ),
            (
                60_000,
                bucket(&[
                    ("bot.franky.eventsOut.count", 2.0),
                    ("bot.franky.eventsIn.count", 0.0),
                    ("bot.quiet.warnings.count", 1.0),
                    ("bot.loud.criticals.count", 1.0),
                    ("bot.loud.eventsIn.count", 5.0),
                ]),
            ),
        ]
        .into();
        let bots = bots(&series);
        assert_eq!(
            bots.keys().collect::<Vec<_>>(),
            ["franky", "loud", "quiet", "test-1"]
        );
        assert_eq!(bots["franky"].totals, [3.0, 2.0, 0.0, 0.0, 0.0]);
        assert_eq!(bots["franky"].last_event, Some(60_000));
        assert_eq!(bots["franky"].state().1, "healthy");
        assert_eq!(bots["loud"].state().1, "critical");
        assert_eq!(bots["test-1"].state().1, "errors");
        assert_eq!(bots["quiet"].state().1, "no events");
        assert_eq!(bots["quiet"].last_event, None);
        let page = section(&bots, 60_000, true).into_string();
        let order: Vec<usize> = ["loud", "test-1", "quiet", "franky"]
            .iter()
            .map(|id| page.find(&format!("<td>{id}</td>")).unwrap())
            .collect();
        assert!(order.windows(2).all(|pair| pair[0] < pair[1]), "{page}");
        assert!(
            section(&BTreeMap::new(), 60_000, true)
                .into_string()
                .is_empty()
        );
    }
}
