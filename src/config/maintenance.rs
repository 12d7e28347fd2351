//! `alerting.maintenance`: recurring windows that act as silences while
//! they last (docs/notifications.md).
//!
//! ```json
//! "maintenance": [
//!   {"name": "deploys", "weekdays": ["tue", "thu"], "times": ["02:00-03:00"],
//!    "timezone": "Europe/Paris", "matchers": {"host": "web-*"}}
//! ]
//! ```

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use serde_json::Value;

use crate::duration::Millis;
use crate::silence::{Matchers, Silence};

/// The start of a day and its end, in minutes.
const DAY: u16 = 24 * 60;

/// One recurring window.
#[derive(Debug, Clone)]
pub struct Window {
    /// Unique among the windows.
    pub name: String,
    /// The days it applies on; every day when empty.
    pub weekdays: Vec<Weekday>,
    /// Times of day, `[start, end)` in minutes since midnight, local; the
    /// whole day when empty.
    pub times: Vec<(u16, u16)>,
    /// As written (`UTC` by default).
    pub timezone_name: String,
    pub timezone: TimeZone,
    pub matchers: Matchers,
}

impl PartialEq for Window {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
            && self.weekdays == other.weekdays
            && self.times == other.times
            && self.timezone_name == other.timezone_name
            && self.matchers == other.matchers
    }
}

impl Window {
    /// The id a window's silence has: `maintenance:NAME`.
    pub fn id(&self) -> String {
        format!("maintenance:{}", self.name)
    }

    /// Its ranges of the day: `times`, or the whole day.
    fn ranges(&self) -> Vec<(u16, u16)> {
        if self.times.is_empty() {
            vec![(0, DAY)]
        } else {
            self.times.clone()
        }
    }

    fn applies_on(&self, date: Date) -> bool {
        self.weekdays.is_empty() || self.weekdays.contains(&date.weekday())
    }

    /// The instant of `minute` (of the day, local) on `date`, in ms.
    fn instant(&self, date: Date, minute: u16) -> Option<Millis> {
        let (date, minute) = if minute >= DAY {
            (date.tomorrow().ok()?, minute - DAY)
        } else {
            (date, minute)
        };
        let local = date.at((minute / 60) as i8, (minute % 60) as i8, 0, 0);
        let zoned = local.to_zoned(self.timezone.clone()).ok()?;
        Some(zoned.timestamp().as_millisecond())
    }

    fn local_date(&self, at: Millis) -> Option<(Date, u16)> {
        let zoned = jiff::Timestamp::from_millisecond(at)
            .ok()?
            .to_zoned(self.timezone.clone());
        let minute = zoned.hour() as u16 * 60 + zoned.minute() as u16;
        Some((zoned.date(), minute))
    }

    /// When the occurrence that holds `now` ends (ms), if one does.
    pub fn active_until(&self, now: Millis) -> Option<Millis> {
        let (date, minute) = self.local_date(now)?;
        if !self.applies_on(date) {
            return None;
        }
        let (_, end) = self
            .ranges()
            .into_iter()
            .find(|(start, end)| *start <= minute && minute < *end)?;
        self.instant(date, end).filter(|end| *end > now)
    }

    /// The next start after `now` (ms), within the next eight days.
    pub fn next_start(&self, now: Millis) -> Option<Millis> {
        let (mut date, _) = self.local_date(now)?;
        let mut first: Option<Millis> = None;
        for _ in 0..9 {
            if self.applies_on(date) {
                for (start, _) in self.ranges() {
                    if let Some(at) = self.instant(date, start).filter(|at| *at > now) {
                        first = Some(first.map_or(at, |first| first.min(at)));
                    }
                }
            }
            if first.is_some() {
                return first;
            }
            date = date.tomorrow().ok()?;
        }
        first
    }

    /// The window as a silence while it lasts, ending with the occurrence
    /// that holds `now`.
    pub fn as_silence(&self, now: Millis) -> Option<Silence> {
        let ends_at = self.active_until(now)?;
        Some(Silence {
            id: self.id(),
            matchers: self.matchers.clone(),
            starts_at: now,
            ends_at,
            comment: format!("maintenance window {}", self.name),
            created_by: "alerting.maintenance".to_string(),
            created_at: now,
            expired_at: None,
        })
    }

    /// `tue, thu 02:00-03:00 Europe/Paris`.
    pub fn summary(&self) -> String {
        let days = if self.weekdays.is_empty() {
            "every day".to_string()
        } else {
            let names: Vec<&str> = self.weekdays.iter().map(|day| short(*day)).collect();
            names.join(", ")
        };
        let times = if self.times.is_empty() {
            "all day".to_string()
        } else {
            let ranges: Vec<String> = (self.times.iter())
                .map(|(start, end)| format!("{}-{}", clock(*start), clock(*end)))
                .collect();
            ranges.join(", ")
        };
        format!("{days} {times} {}", self.timezone_name)
    }
}

fn clock(minute: u16) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

const WEEKDAYS: [(&str, &str, Weekday); 7] = [
    ("mon", "monday", Weekday::Monday),
    ("tue", "tuesday", Weekday::Tuesday),
    ("wed", "wednesday", Weekday::Wednesday),
    ("thu", "thursday", Weekday::Thursday),
    ("fri", "friday", Weekday::Friday),
    ("sat", "saturday", Weekday::Saturday),
    ("sun", "sunday", Weekday::Sunday),
];

fn short(day: Weekday) -> &'static str {
    WEEKDAYS
        .iter()
        .find(|(_, _, weekday)| *weekday == day)
        .map_or("?", |(short, _, _)| short)
}

fn weekday(name: &str) -> Option<Weekday> {
    let name = name.trim().to_ascii_lowercase();
    WEEKDAYS
        .iter()
        .find(|(short, long, _)| name == *short || name == *long)
        .map(|(_, _, day)| *day)
}

/// `mon`, `monday`, or a range `mon:fri` (Monday to Friday).
fn weekdays(text: &str) -> Result<Vec<Weekday>, String> {
    let problem =
        || format!("weekday {text:?}: expected mon ... sun (or monday ...), or a range mon:fri");
    match text.split_once(':') {
        None => Ok(vec![weekday(text).ok_or_else(problem)?]),
        Some((from, to)) => {
            let (from, to) = (
                weekday(from).ok_or_else(problem)?,
                weekday(to).ok_or_else(problem)?,
            );
            let mut days = vec![from];
            let mut day = from;
            while day != to {
                day = day.next();
                days.push(day);
            }
            Ok(days)
        }
    }
}

/// `HH:MM`, 00:00 to 24:00.
fn minute_of(text: &str) -> Option<u16> {
    let (hours, minutes) = text.trim().split_once(':')?;
    if hours.len() != 2 || minutes.len() != 2 {
        return None;
    }
    let (hours, minutes): (u16, u16) = (hours.parse().ok()?, minutes.parse().ok()?);
    (minutes < 60 && (hours < 24 || (hours == 24 && minutes == 0))).then_some(hours * 60 + minutes)
}

/// `02:00-03:00`: start before end, within a day (`22:00-24:00` ends at
/// midnight; a window across midnight is two ranges).
fn range(text: &str) -> Result<(u16, u16), String> {
    let problem = |why: &str| format!("time {text:?}: {why}");
    let (start, end) = text
        .split_once('-')
        .ok_or_else(|| problem("expected HH:MM-HH:MM"))?;
    let start = minute_of(start).ok_or_else(|| problem("expected HH:MM-HH:MM"))?;
    let end = minute_of(end).ok_or_else(|| problem("expected HH:MM-HH:MM"))?;
    if start >= end {
        return Err(problem(
            "the start must come before the end (across midnight, give two ranges: \
             \"22:00-24:00\" and \"00:00-02:00\")",
        ));
    }
    Ok((start, end))
}

fn window(value: &Value) -> Result<Window, String> {
    let Some(object) = value.as_object() else {
        return Err(format!("{value}: expected a window object"));
    };
    const KEYS: [&str; 5] = ["name", "weekdays", "times", "timezone", "matchers"];
    if let Some(key) = object.keys().find(|key| !KEYS.contains(&key.as_str())) {
        return Err(format!("unknown key {key:?}; known: {}", KEYS.join(", ")));
    }
    let name = match object.get("name") {
        Some(Value::String(name)) if !name.trim().is_empty() => name.trim().to_string(),
        _ => return Err("name: expected a non-empty string".to_string()),
    };
    let strings = |key: &str| -> Result<Vec<String>, String> {
        match object.get(key) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| format!("{key}: {item} is not a string"))
                })
                .collect(),
            Some(other) => Err(format!("{key} {other}: expected an array of strings")),
        }
    };
    let mut days = Vec::new();
    for text in strings("weekdays")? {
        for day in weekdays(&text)? {
            if !days.contains(&day) {
                days.push(day);
            }
        }
    }
    let mut times = Vec::new();
    for text in strings("times")? {
        times.push(range(&text)?);
    }
    let timezone_name = match object.get("timezone") {
        None => "UTC".to_string(),
        Some(Value::String(name)) => name.clone(),
        Some(other) => {
            return Err(format!(
                "timezone {other}: expected a name such as \"Europe/Paris\""
            ));
        }
    };
    let timezone = TimeZone::get(&timezone_name).map_err(|error| {
        format!("timezone {timezone_name:?}: not a time zone this machine knows ({error})")
    })?;
    let matchers: Matchers = match object.get("matchers") {
        None => return Err("matchers: none given; name a rule, host, severity or label (\"host\": \"*\" for every host)".to_string()),
        Some(value) => serde_json::from_value(value.clone()).map_err(|error| format!("matchers: {error}"))?,
    };
    if let Some(problem) = matchers.problem() {
        return Err(problem);
    }
    Ok(Window {
        name,
        weekdays: days,
        times,
        timezone_name,
        timezone,
        matchers,
    })
}

/// The windows of `value` (at `place`), and the problems found.
pub fn windows(place: &str, value: &Value) -> (Vec<Window>, Vec<(String, String)>) {
    let mut problems = Vec::new();
    let mut found: Vec<Window> = Vec::new();
    let Some(items) = value.as_array() else {
        problems.push((
            place.to_string(),
            "expected an array of window objects".to_string(),
        ));
        return (found, problems);
    };
    for (index, item) in items.iter().enumerate() {
        let at = format!("{place}[{index}]");
        match window(item) {
            Ok(window) if found.iter().any(|other| other.name == window.name) => {
                problems.push((at, format!("name {:?} is used twice", window.name)));
            }
            Ok(window) => found.push(window),
            Err(message) => problems.push((at, message)),
        }
    }
    (found, problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ms(text: &str) -> Millis {
        text.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    fn one(value: Value) -> Result<Window, String> {
        let (mut found, problems) = windows("w", &json!([value]));
        match problems.into_iter().next() {
            Some((_, problem)) => Err(problem),
            None => Ok(found.remove(0)),
        }
    }

    #[test]
    fn a_window_lasts_its_local_hours_on_its_days() {
        let window = one(json!({"name": "deploys", "weekdays": ["tue", "thu"],
            "times": ["02:00-03:00"], "timezone": "Europe/Paris",
            "matchers": {"host": "web-*"}}))
        .unwrap();
        // Tuesday 2026-12-08, 02:30 in Paris is 01:30 UTC (winter, +01:00).
        assert_eq!(
            window.active_until(ms("2026-12-08T01:30:00Z")),
            Some(ms("2026-12-08T02:00:00Z"))
        );
        assert_eq!(
            window.active_until(ms("2026-12-08T02:00:00Z")),
            None,
            "ended"
        );
        assert_eq!(
            window.active_until(ms("2026-12-08T00:59:59Z")),
            None,
            "not yet"
        );
        assert_eq!(
            window.active_until(ms("2026-12-09T01:30:00Z")),
            None,
            "a Wednesday"
        );
        // Summer time: 02:30 in Paris is 00:30 UTC.
        assert_eq!(
            window.active_until(ms("2026-07-07T00:30:00Z")),
            Some(ms("2026-07-07T01:00:00Z"))
        );
        assert_eq!(
            window.next_start(ms("2026-12-08T02:00:00Z")),
            Some(ms("2026-12-10T01:00:00Z")),
            "Thursday next"
        );
        assert_eq!(window.summary(), "tue, thu 02:00-03:00 Europe/Paris");
        let silence = window.as_silence(ms("2026-12-08T01:30:00Z")).unwrap();
        assert_eq!(silence.id, "maintenance:deploys");
        assert_eq!(silence.ends_at, ms("2026-12-08T02:00:00Z"));
        assert!(window.as_silence(ms("2026-12-08T03:00:00Z")).is_none());
    }

    #[test]
    fn whole_days_ranges_of_days_and_utc_by_default() {
        let window = one(json!({"name": "weekend", "weekdays": ["sat:sun"],
            "matchers": {"rule": "*"}}))
        .unwrap();
        // Saturday 2026-12-12.
        assert_eq!(
            window.active_until(ms("2026-12-12T10:00:00Z")),
            Some(ms("2026-12-13T00:00:00Z"))
        );
        assert!(window.active_until(ms("2026-12-14T10:00:00Z")).is_none());
        let nights = one(
            json!({"name": "nights", "times": ["22:00-24:00", "00:00-06:00"],
            "matchers": {"host": "*"}}),
        )
        .unwrap();
        assert_eq!(
            nights.active_until(ms("2026-12-12T23:00:00Z")),
            Some(ms("2026-12-13T00:00:00Z"))
        );
        assert_eq!(
            nights.active_until(ms("2026-12-13T00:00:00Z")),
            Some(ms("2026-12-13T06:00:00Z"))
        );
        assert_eq!(nights.weekdays, []);
    }

    #[test]
    fn bad_windows_say_what_and_where() {
        for (value, problem) in [
            (
                json!({"weekdays": ["tue"], "matchers": {"host": "*"}}),
                "name",
            ),
            (
                json!({"name": "a", "weekdays": ["tues"], "matchers": {"host": "*"}}),
                "weekday \"tues\"",
            ),
            (
                json!({"name": "a", "times": ["3:00-04:00"], "matchers": {"host": "*"}}),
                "HH:MM-HH:MM",
            ),
            (
                json!({"name": "a", "times": ["22:00-02:00"], "matchers": {"host": "*"}}),
                "two ranges",
            ),
            (
                json!({"name": "a", "times": ["02:00-24:30"], "matchers": {"host": "*"}}),
                "HH:MM-HH:MM",
            ),
            (
                json!({"name": "a", "timezone": "Mars/Olympus", "matchers": {"host": "*"}}),
                "not a time zone",
            ),
            (json!({"name": "a"}), "matchers: none given"),
            (json!({"name": "a", "matchers": {}}), "none given"),
            (
                json!({"name": "a", "matchers": {"hots": "x"}}),
                "unknown field",
            ),
            (
                json!({"name": "a", "matchers": {"host": "*"}, "days": []}),
                "unknown key \"days\"",
            ),
        ] {
            let error = one(value.clone()).unwrap_err();
            assert!(error.contains(problem), "{value}: {error}");
        }
        let (_, problems) = windows(
            "alerting.maintenance",
            &json!([{"name": "a", "matchers": {"host": "*"}}, {"name": "a", "matchers": {"host": "*"}}]),
        );
        assert_eq!(
            problems,
            [(
                "alerting.maintenance[1]".to_string(),
                "name \"a\" is used twice".to_string()
            )]
        );
    }
}
