//! `alertd check`: what a configuration says, one readable line per rule.

use crate::config::{Config, Loaded, Shape};
use crate::duration::HumanDuration;

/// The lines `alertd check` prints for a valid configuration: a settings
/// line, then one line per rule.
pub fn summary(loaded: &Loaded, now: crate::duration::Millis) -> Vec<String> {
    let Config {
        shape,
        monitoring,
        alerting,
        server: _,
        storage: _,
        hooks: _,
        ingest,
    } = &loaded.config;
    let on = |enabled: bool| if enabled { "enabled" } else { "disabled" };
    let mut lines = vec![format!(
        "{} config: monitoring {} (every {}, kept {}), alerting {} (every {}, kept {}), {} rule{}",
        match shape {
            Shape::Native => "native",
            Shape::Botpress => "botpress.config.json",
        },
        on(monitoring.enabled),
        HumanDuration(monitoring.collection_interval),
        HumanDuration(monitoring.retention_period),
        on(alerting.enabled),
        HumanDuration(alerting.watcher_interval),
        HumanDuration(alerting.retention_period),
        alerting.rules.len(),
        if alerting.rules.len() == 1 { "" } else { "s" },
    )];
    lines.extend(alerting.rules.iter().map(|rule| format!("  {rule}")));
    for target in &alerting.notify {
        let group = match &target.group {
            None => "one message per transition".to_string(),
            Some(group) => format!(
                "grouped by {}, waits {}, then at most every {}",
                match group.by.is_empty() {
                    true => "nothing (one group)".to_string(),
                    false => group.by.join(", "),
                },
                HumanDuration(group.wait),
                HumanDuration(group.interval),
            ),
        };
        lines.push(format!(
            "  notify {} ({}): {group}",
            target.name,
            target.type_name()
        ));
    }
    for window in &alerting.maintenance {
        let matchers = serde_json::to_string(&window.matchers).unwrap_or_default();
        let when = match (window.active_until(now), window.next_start(now)) {
            (Some(end), _) => format!("active now, until {}", crate::incident::rfc3339(end)),
            (None, Some(start)) => format!("next starts {}", crate::incident::rfc3339(start)),
            (None, None) => "never starts".to_string(),
        };
        lines.push(format!(
            "  maintenance {}: {}, silencing {matchers}; {when}",
            window.name,
            window.summary()
        ));
    }
    for target in &ingest.scrape {
        lines.push(format!(
            "  scrape {} as host {:?}: every {}, timeout {}",
            target.shown_url(),
            target.host,
            HumanDuration(target.interval),
            HumanDuration(target.timeout)
        ));
    }
    lines
}
