//! The web pages in a real browser: `alertd run` as a real process, headless
//! Chromium driven through ChromeDriver (Debian's `chromium` and
//! `chromium-driver`), samples pushed over HTTP that open and resolve real
//! incidents, and a real hook whose calls the detail page shows.
//!
//! Screenshots of every page land in `target/screenshots/`. With
//! `ALERTD_UPDATE_DOCS=1` the incidents page also replaces
//! `docs/screenshots/incidents.png`, the one the README shows.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use alertd::incident::{Incident, Transition, TransitionKind};
use alertd::store::{Claim, HookCall, SqliteStore};
use alertd::store::{Coordination, IncidentLog};
use support::{Alertd, free_port, install_logging_hook, lines, now, wait_for};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// A rule whose name would run a script if a page did not escape it.
const SCRIPT_RULE: &str = r#"Errors <script>alert("x")</script>"#;
/// A host whose name is markup too.
const ODD_HOST: &str = "db-<1>&";

/// ChromeDriver and a Chromium session on a fresh profile.
struct Browser {
    client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts the browser, or says why it cannot and returns `None` so that
    /// the test is skipped. Under CI (`./test`) a missing browser fails the
    /// test instead.
    async fn start() -> Option<Browser> {
        if !(support::programs::needed(CHROMIUM) && support::programs::needed(CHROMEDRIVER)) {
            return None;
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        wait_for("chromedriver to listen", 20, || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        let profile = tempfile::tempdir().unwrap();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_string(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                    "--disable-dev-shm-usage", "--window-size=1280,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .expect("a Chromium session through chromedriver");
        Some(Browser {
            client,
            driver,
            _profile: profile,
        })
    }

    async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    async fn find(&self, css: &str) -> Element {
        self.client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|error| panic!("{css}: {error}"))
    }

    /// Chooses the option with `value` in the select at `css`.
    async fn select(&self, css: &str, value: &str) {
        self.find(css).await.select_by_value(value).await.unwrap();
    }

    async fn type_into(&self, css: &str, text: &str) {
        self.find(css).await.send_keys(text).await.unwrap();
    }

    async fn all(&self, css: &str) -> Vec<Element> {
        self.client.find_all(Locator::Css(css)).await.unwrap()
    }

    async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    async fn rows(&self, table: &str) -> Vec<String> {
        let mut rows = Vec::new();
        for row in self.all(&format!("{table} tbody tr:not(.empty)")).await {
            rows.push(row.text().await.unwrap());
        }
        rows
    }

    async fn url(&self) -> String {
        self.client.current_url().await.unwrap().to_string()
    }

    /// Clicks a link or button by its text and waits for the next page.
    async fn click_text(&self, text: &str) {
        let before = self.url().await;
        let element = self
            .client
            .find(Locator::XPath(&format!(
                "//*[self::a or self::button][normalize-space(.)='{text}']"
            )))
            .await
            .unwrap_or_else(|error| panic!("no link or button {text:?}: {error}"));
        element.click().await.unwrap();
        self.wait_away_from(&before).await;
    }

    async fn wait_away_from(&self, url: &str) {
        for _ in 0..200 {
            let ready = self
                .client
                .execute("return document.readyState", vec![])
                .await
                .ok();
            if self.url().await != url && ready == Some(json!("complete")) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the browser stayed on {url}");
    }

    /// Whether the page is no wider than the window (nothing to scroll sideways).
    async fn fits_width(&self) -> bool {
        self.client
            .execute(
                "return document.documentElement.scrollWidth <= window.innerWidth",
                vec![],
            )
            .await
            .unwrap()
            == json!(true)
    }

    /// How many charts do not show their newest end (their drawing reaches
    /// past their figure's right edge).
    async fn charts_away_from_now(&self) -> Value {
        self.client
            .execute(
                "return [...document.querySelectorAll('figure.chart')].filter(f => \
                 f.querySelector('svg').getBoundingClientRect().right > \
                 f.getBoundingClientRect().right + 1).length",
                vec![],
            )
            .await
            .unwrap()
    }

    /// Saves the whole page as `target/screenshots/<name>.png`.
    async fn screenshot(&self, name: &str, width: u32) -> PathBuf {
        let height = self
            .client
            .execute("return document.documentElement.scrollHeight", vec![])
            .await
            .unwrap()
            .as_u64()
            .unwrap_or(1000) as u32;
        self.client
            .set_window_size(width, height.clamp(600, 4000) + 140)
            .await
            .unwrap();
        let png = self.client.screenshot().await.unwrap();
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("../screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, &png).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
        path
    }

    /// The markup of the first element at `css` (an SVG chart, say).
    async fn html(&self, css: &str) -> String {
        self.find(css).await.html(false).await.unwrap()
    }

    /// [`Browser::screenshot`], also copied to `docs/screenshots/<docs>.png`
    /// with `ALERTD_UPDATE_DOCS` set.
    async fn screenshot_for_docs(&self, name: &str, width: u32, docs: &str) {
        let shot = self.screenshot(name, width).await;
        if std::env::var_os("ALERTD_UPDATE_DOCS").is_some() {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::copy(shot, dir.join(format!("{docs}.png"))).unwrap();
        }
    }

    async fn close(mut self) {
        let _ = self.client.close().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Pushes one sample per host, now.
fn push(alertd: &Alertd, hosts: &[(&str, f64, f64)]) {
    let samples: Vec<Value> = hosts
        .iter()
        .enumerate()
        .map(|(index, (host, cpu, errors))| {
            json!({"host": host, "ts": now(), "metrics": {
                "cpu.usage": cpu, "mem.usage": 40.0 + 10.0 * index as f64,
                "requests.count": 10 + index, "eventsIn.count": 3, "eventsOut.count": 2,
                "warnings.count": index, "errors.count": errors,
                // Per bot, as the Botpress feed counts them.
                "bot.franky.eventsIn.count": 3, "bot.franky.errors.count": errors,
                "bot.test.eventsOut.count": 1,
            }})
        })
        .collect();
    let (status, body) = alertd.push(Value::Array(samples));
    assert_eq!(status, 200, "{body}");
}

/// Pushes samples every 100 ms until `done` says the incidents are as wanted.
fn push_until(
    alertd: &Alertd,
    hosts: &[(&str, f64, f64)],
    what: &str,
    done: impl Fn(&Value) -> bool,
) {
    wait_for(what, 30, || {
        push(alertd, hosts);
        std::thread::sleep(Duration::from_millis(100));
        let incidents = alertd.get_json("/api/v1/incidents");
        done(&incidents).then_some(())
    });
}

fn count(incidents: &Value, list: &str, rule: &str, host: &str) -> usize {
    incidents[list]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["ruleName"] == rule && i["hostName"] == host)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_show_incidents_metrics_and_rules_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let config = json!({
        "monitoring": {"enabled": false},
        "alerting": {"enabled": true, "watcherInterval": "200ms", "rules": [
            {"name": "High CPU", "field": "cpu.usage", "aggregation": "avg",
             "operand": "equalOrMoreThan", "value": 80, "timeframe": "1s", "cooldown": "1s"},
            {"name": SCRIPT_RULE, "field": "errors.count", "aggregation": "sum",
             "operand": "equalOrMoreThan", "value": 5, "timeframe": "1s", "cooldown": "0"},
        ]}
    });
    let history = record_history(dir.path());
    let calls = install_logging_hook(dir.path());
    let alertd = Alertd::start(dir.path(), &config.to_string());
    let quiet = [
        ("web-1", 20.0, 0.0),
        ("web-2", 30.0, 0.0),
        (ODD_HOST, 25.0, 0.0),
    ];

    // web-1 fires and resolves, the odd host's errors fire and resolve, and
    // web-2 fires and stays open.
    push_until(
        &alertd,
        &[("web-1", 95.0, 0.0), quiet[1], quiet[2]],
        "web-1 to fire",
        |i| count(i, "active", "High CPU", "web-1") == 1,
    );
    push_until(&alertd, &quiet, "web-1 to resolve", |i| {
        count(i, "resolved", "High CPU", "web-1") == 1
            && count(i, "active", "High CPU", "web-1") == 0
    });
    push_until(
        &alertd,
        &[quiet[0], quiet[1], (ODD_HOST, 25.0, 9.0)],
        "the errors to fire",
        |i| count(i, "active", SCRIPT_RULE, ODD_HOST) == 1,
    );
    push_until(&alertd, &quiet, "the errors to resolve", |i| {
        count(i, "resolved", SCRIPT_RULE, ODD_HOST) == 1
            && count(i, "active", SCRIPT_RULE, ODD_HOST) == 0
    });
    push_until(
        &alertd,
        &[quiet[0], ("web-2", 97.0, 0.0), quiet[2]],
        "web-2 to fire",
        |i| count(i, "active", "High CPU", "web-2") == 1,
    );
    let web_2 = alertd.active()[0]["id"].as_str().unwrap().to_string();
    let trigger = alertd.active()[0]["triggerValue"].as_f64().unwrap();
    wait_for("the hook to be told of web-2", 20, || {
        lines(&calls)
            .iter()
            .any(|line| line.contains(&web_2))
            .then_some(())
    });
    let base = alertd.url("");
    let Some(browser) = Browser::start().await else {
        return;
    };

    // Incidents: the tables, the escaped names, the timeline.
    browser.goto(&format!("{base}/")).await;
    assert_eq!(browser.client.title().await.unwrap(), "Incidents · alertd");
    let active = browser.rows("#table-active").await;
    assert_eq!(active.len(), 1, "{active:?}");
    assert!(
        active[0].contains("web-2") && active[0].contains("firing"),
        "{active:?}"
    );
    assert!(
        active[0].contains(">= 80%"),
        "the value against the threshold: {active:?}"
    );
    let host = browser.find("#table-active td[data-label=Host] a").await;
    assert_eq!(
        host.attr("href").await.unwrap().as_deref(),
        Some("/monitoring?frame=1h&host=web-2")
    );
    let resolved = browser.rows("#table-resolved").await;
    assert_eq!(resolved.len(), 2, "{resolved:?}");
    assert!(
        resolved
            .iter()
            .any(|row| row.contains("High CPU") && row.contains("web-1"))
    );
    assert!(
        resolved
            .iter()
            .any(|row| row.contains(SCRIPT_RULE) && row.contains(ODD_HOST)),
        "{resolved:?}"
    );
    assert!(
        browser.all("main script").await.is_empty(),
        "markup from a name made it into the page"
    );
    assert!(
        browser.client.get_alert_text().await.is_err(),
        "a script ran"
    );
    let bars = browser.all("figure.chart > svg rect").await.len();
    assert!(
        bars >= 4,
        "the timeline has a bar per incident and a background: {bars} rects"
    );
    let timeline = browser.html("figure.chart > svg").await;
    assert!(
        timeline.contains("db-&lt;1&gt;&amp;"),
        "the host's lane, escaped"
    );
    let legend = browser.text("ul.legend").await;
    assert!(
        legend.contains("High CPU") && legend.contains(SCRIPT_RULE),
        "{legend}"
    );
    browser.screenshot("incidents", 1280).await;

    // Five hours: the recorded history too, on the timeline and in the table.
    browser.goto(&format!("{base}/?frame=5h")).await;
    assert_eq!(browser.rows("#table-resolved").await.len(), 2 + history);
    let lanes = browser.html("figure.chart > svg").await;
    assert!(
        lanes.matches("<rect").count() > 1 + history,
        "a bar per incident"
    );
    // Every incident of the frame is a bar of its own, a link to it with a
    // tooltip, in a row of its rule and host, at least 3 units wide.
    let links = browser.all("svg.timeline a").await;
    assert_eq!(links.len(), 1 + 2 + history, "{lanes}");
    for link in &links {
        let href = link.attr("href").await.unwrap().unwrap();
        assert!(href.starts_with("/incidents/"), "{href}");
        let bar = link.find(Locator::Css("rect")).await.unwrap();
        let width: f64 = bar.attr("width").await.unwrap().unwrap().parse().unwrap();
        assert!(width >= 3.0);
        let title = bar.find(Locator::Css("title")).await.unwrap();
        let tooltip = title.html(true).await.unwrap();
        assert!(
            tooltip.contains(" on ") && tooltip.contains("UTC"),
            "{tooltip}"
        );
    }
    // Two rules on one host are two rows: web-1 has one, the odd host one,
    // web-2 one; each host named once, in full in its tooltip.
    assert_eq!(lanes.matches("<title>db-&lt;1&gt;&amp;</title>").count(), 1);
    assert!(lanes.contains("UTC"), "the axis says its time zone");
    browser
        .screenshot_for_docs("incidents-5h", 1280, "incidents")
        .await;
    // Every chart has a role and a text alternative.
    for chart in browser.all("figure.chart > svg").await {
        assert_eq!(chart.attr("role").await.unwrap().as_deref(), Some("img"));
        assert!(
            !chart
                .attr("aria-label")
                .await
                .unwrap()
                .unwrap_or_default()
                .is_empty()
        );
    }

    // The time frame: a preset link, then a custom range from the form.
    browser.click_text("2h").await;
    assert!(browser.url().await.contains("frame=2h"));
    assert_eq!(browser.text(".frames a[aria-current]").await, "2h");
    // The two live ones, and the five of the history that end within two hours.
    assert_eq!(browser.rows("#table-resolved").await.len(), 2 + 5);
    let frame = browser.text("p.range").await;
    browser
        .find("details.custom summary")
        .await
        .click()
        .await
        .unwrap();
    browser
        .client
        .execute(
            "document.querySelector('details.custom input[name=from]').value = '2020-01-01T00:00';\
             document.querySelector('details.custom input[name=to]').value = '2020-01-01T12:00';",
            vec![],
        )
        .await
        .unwrap();
    browser.click_text("Apply").await;
    assert!(browser.url().await.contains("frame=custom"));
    assert_ne!(browser.text("p.range").await, frame);
    assert_eq!(
        browser.text("p.range").await,
        "From 2020-01-01 00:00:00 to 2020-01-01 12:00:00 UTC"
    );
    assert!(
        browser.rows("#table-resolved").await.is_empty(),
        "nothing resolved in 2020"
    );
    assert_eq!(
        browser.rows("#table-active").await.len(),
        1,
        "open incidents show whatever the frame"
    );
    // A range that ends before it starts is a clear error, not a page of nothing.
    browser
        .goto(&format!(
            "{base}/?frame=custom&from=2020-01-02T00:00&to=2020-01-01T00:00"
        ))
        .await;
    assert!(
        browser.text(".error").await.contains("starts"),
        "an explained error"
    );

    // Filters and auto-refresh.
    browser.goto(&format!("{base}/")).await;
    browser
        .select("form.filters select[name=host]", "web-1")
        .await;
    browser.click_text("Filter").await;
    assert!(browser.rows("#table-active").await.is_empty());
    assert_eq!(browser.rows("#table-resolved").await.len(), 1);
    assert!(browser.all("meta[http-equiv=refresh]").await.is_empty());
    browser.click_text("Auto-refresh off").await;
    assert!(
        browser.url().await.contains("refresh=on") && browser.url().await.contains("host=web-1")
    );
    assert_eq!(browser.all("meta[http-equiv=refresh]").await.len(), 1);
    browser.click_text("Clear").await;
    assert_eq!(browser.rows("#table-active").await.len(), 1);

    // An incident's detail: its hook call and the outcome.
    browser.goto(&format!("{base}/")).await;
    browser.find("#table-active a").await.click().await.unwrap();
    browser.wait_away_from(&format!("{base}/")).await;
    assert!(
        browser
            .url()
            .await
            .ends_with(&format!("/incidents/{web_2}"))
    );
    let facts = browser.text("dl.facts").await;
    assert!(
        facts.contains("web-2")
            && facts.contains(&trigger.to_string())
            && facts.contains("avg(cpu.usage) over 1s >= 80"),
        "{facts}"
    );
    assert!(facts.contains(">= 80%"), "{facts}");
    let rule_link = browser.find("dl.facts dd a[href^='/rules']").await;
    assert_eq!(
        rule_link.attr("href").await.unwrap().as_deref(),
        Some("/rules#rule-1")
    );
    assert!(
        browser
            .find("dl.facts dd a[href^='/monitoring']")
            .await
            .text()
            .await
            .unwrap()
            == "web-2"
    );
    let chart = browser.html("figure.chart > svg").await;
    assert!(
        chart.contains("stroke-dasharray") && marks(&chart) >= 1,
        "the incident's own chart, with its threshold: {chart}"
    );
    let hook_calls = browser.rows("#hook-calls").await;
    assert_eq!(hook_calls.len(), 1, "{hook_calls:?}");
    assert!(
        hook_calls[0].contains("exec:10-log")
            && hook_calls[0].contains("opened")
            && hook_calls[0].contains("exited with status 0"),
        "{hook_calls:?}"
    );
    browser
        .screenshot_for_docs("incident", 1280, "incident")
        .await;
    let incident_page = browser
        .client
        .execute("return location.pathname", vec![])
        .await
        .unwrap()
        .as_str()
        .unwrap()
        .to_string();

    // Monitoring: four charts with lines, a row per host, and the resolution.
    browser.goto(&format!("{base}/monitoring")).await;
    let charts = browser.all("figure.chart > svg").await;
    // CPU and memory, requests, events, warnings and errors (their own
    // scale), CPU per host, memory per host.
    assert_eq!(charts.len(), 6);
    let headings: Vec<String> = {
        let mut texts = Vec::new();
        for heading in browser.all("div.grid h2").await {
            texts.push(heading.text().await.unwrap());
        }
        texts
    };
    assert!(
        headings
            .iter()
            .any(|h| h.starts_with("Warnings & errors per minute")),
        "{headings:?}"
    );
    for chart in &charts {
        let svg = chart.html(false).await.unwrap();
        assert!(marks(&svg) >= 1, "a chart without a line: {svg}");
    }
    let overview = browser.rows("#overview").await;
    assert_eq!(overview.len(), 3, "{overview:?}");
    assert!(
        browser
            .text("#overview thead")
            .await
            .contains("Reporting for")
    );
    assert!(
        overview.iter().any(|row| row.starts_with(ODD_HOST)),
        "{overview:?}"
    );
    assert!(
        overview
            .iter()
            .any(|row| row.starts_with("web-2") && row.contains("97%")),
        "peak CPU: {overview:?}"
    );
    // Bot health: the bot whose logger printed errors first, then the healthy one.
    let bots = browser.rows("#bots").await;
    assert_eq!(bots.len(), 2, "{bots:?}");
    assert!(
        bots[0].starts_with("franky") && bots[0].contains("errors"),
        "{bots:?}"
    );
    assert!(
        bots[1].starts_with("test") && bots[1].contains("healthy"),
        "{bots:?}"
    );
    browser
        .screenshot_for_docs("monitoring", 1280, "monitoring")
        .await;
    browser
        .select("form.filters select[name=resolution]", "30s")
        .await;
    browser.click_text("Show").await;
    assert!(browser.url().await.contains("resolution=30s"));
    assert!(browser.text("p.range").await.contains("one point per 30s"));
    browser.click_text("5h").await;
    assert!(
        browser.url().await.contains("frame=5h") && browser.url().await.contains("resolution=30s")
    );
    // 30 s is not offered for 5 h: the nearest coarser resolution, said.
    let range = browser.text("p.range").await;
    assert!(
        range.contains("one point per 1m")
            && range.contains("(30s is not offered for a frame of 5h)"),
        "{range}"
    );
    let offered = browser.text("form.filters select[name=resolution]").await;
    assert!(
        !offered.contains("10s") && !offered.contains("30s") && offered.contains("1m"),
        "{offered}"
    );
    assert_eq!(browser.rows("#overview").await.len(), 3);
    // Auto-refresh, as on the incidents page.
    browser.click_text("Auto-refresh off").await;
    assert_eq!(browser.all("meta[http-equiv=refresh]").await.len(), 1);
    // A host silent in the frame: said in words, not four empty charts.
    browser
        .goto(&format!(
            "{base}/monitoring?frame=custom&from=2020-01-01+00:00&to=2020-01-01+12:00&host=web-1"
        ))
        .await;
    let silent = browser.text("p.silent").await;
    assert!(
        silent.starts_with("web-1 sent no sample in this time frame: no data since "),
        "{silent}"
    );
    assert!(browser.all("figure.chart").await.is_empty());

    // Rules: the state per host and the aggregate against the threshold.
    browser.goto(&format!("{base}/rules")).await;
    let sections = browser.all("section.rule").await;
    assert_eq!(sections.len(), 2);
    assert_eq!(
        sections[1]
            .find(Locator::Css("h2"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        SCRIPT_RULE
    );
    assert_eq!(
        sections[0].attr("id").await.unwrap().as_deref(),
        Some("rule-1")
    );
    let counts = browser.text("section.rule p.counts").await;
    assert!(counts.starts_with("1 firing"), "{counts}");
    let high_cpu = browser.rows("section.rule:nth-of-type(1) table").await;
    assert!(
        high_cpu[0].starts_with("web-2"),
        "firing first: {high_cpu:?}"
    );
    assert!(
        high_cpu
            .iter()
            .any(|row| row.starts_with("web-2") && row.contains("firing")),
        "{high_cpu:?}"
    );
    assert!(
        high_cpu
            .iter()
            .any(|row| row.starts_with("web-1") && !row.contains("firing")),
        "{high_cpu:?}"
    );
    let chart = sections[0]
        .find(Locator::Css("figure.chart > svg"))
        .await
        .unwrap()
        .html(false)
        .await
        .unwrap();
    assert!(chart.contains("#cf222e"), "the threshold line");
    assert!(
        chart.contains("#1a7f37"),
        "web-2's aggregate (the third host's colour)"
    );
    assert!(
        marks(&chart) >= 3 && chart.contains("stroke-dasharray"),
        "a line per host and the threshold: {chart}"
    );
    browser.screenshot_for_docs("rules", 1280, "rules").await;

    // The silences page, with one silence: its form and its list.
    let (status, answer) = alertd.post(
        "/api/v1/silences",
        "application/json",
        json!({"matchers": {"host": "web-*", "severity": "warning"}, "duration": "2h",
               "comment": "deploying web", "createdBy": "ana"})
        .to_string(),
    );
    assert_eq!(status, 201, "{answer}");
    browser.goto(&format!("{base}/silences")).await;
    browser
        .screenshot_for_docs("silences", 1280, "silences")
        .await;

    // A desktop, up to a wide screen: every chart fits its column, "now" included.
    for width in [1440, 1920, 2560] {
        browser.client.set_window_size(width, 900).await.unwrap();
        for page in ["/", "/monitoring", "/rules"] {
            browser.goto(&format!("{base}{page}")).await;
            let overflowing = browser
                .client
                .execute(
                    "return [...document.querySelectorAll('figure.chart')]\
                     .filter(f => f.scrollWidth > f.clientWidth + 1).length",
                    vec![],
                )
                .await
                .unwrap();
            assert_eq!(
                overflowing,
                json!(0),
                "{page}: a chart overflows its column at {width} px"
            );
        }
    }
    // Between a desktop and a phone, and the narrowest phone: nothing wider than
    // the window, and a chart too wide for its column opens at its newest end.
    for width in [1024, 360] {
        browser.client.set_window_size(width, 900).await.unwrap();
        for page in [
            "/",
            incident_page.as_str(),
            "/monitoring",
            "/rules",
            "/silences",
        ] {
            browser.goto(&format!("{base}{page}")).await;
            assert!(
                browser.fits_width().await,
                "{page} scrolls sideways at {width} px"
            );
            assert_eq!(
                browser.charts_away_from_now().await,
                json!(0),
                "{page}: a chart opens away from now at {width} px"
            );
        }
    }

    // A phone: nothing wider than the screen.
    for (page, name) in [
        ("/", "incidents"),
        (incident_page.as_str(), "incident"),
        ("/monitoring", "monitoring"),
        ("/rules", "rules"),
        ("/silences", "silences"),
    ] {
        browser.client.set_window_size(390, 844).await.unwrap();
        browser.goto(&format!("{base}{page}")).await;
        assert!(
            browser.fits_width().await,
            "{page} scrolls sideways on a phone"
        );
        // A chart too wide for the phone scrolls, and opens at its newest end.
        assert_eq!(
            browser.charts_away_from_now().await,
            json!(0),
            "{page}: a chart opens away from now on a phone"
        );
        // Chart text is drawn at 13 units of the chart's width: at least 11 px on screen.
        let text_px = browser
            .client
            .execute(
                "const svg = document.querySelector('figure.chart > svg');\
                 return svg ? svg.getBoundingClientRect().width * 13 / svg.viewBox.baseVal.width : 13;",
                vec![],
            )
            .await
            .unwrap()
            .as_f64()
            .unwrap();
        assert!(text_px >= 11.0, "{page}: chart text of {text_px} px");
        if page == incident_page {
            // Every cell of a hook call, its outcome and output included, within the screen.
            let beyond = browser
                .client
                .execute(
                    "return [...document.querySelectorAll('#hook-calls td, #pending-hooks td')]\
                     .filter(td => td.getBoundingClientRect().right > window.innerWidth + 1).length",
                    vec![],
                )
                .await
                .unwrap();
            assert_eq!(
                beyond,
                json!(0),
                "hook call cells off the screen on a phone"
            );
        }
        if page == "/" {
            // Every cell of an incident, the value and duration included, within the screen.
            let beyond = browser
                .client
                .execute(
                    "return [...document.querySelectorAll('#table-active td')]\
                     .filter(td => td.getBoundingClientRect().right > window.innerWidth).length",
                    vec![],
                )
                .await
                .unwrap();
            assert_eq!(beyond, json!(0), "cells off the screen on a phone");
        }
        browser
            .screenshot_for_docs(&format!("{name}-phone"), 390, &format!("{name}-phone"))
            .await;
    }
    browser.close().await;
}

fn resolved(
    id: usize,
    (rule, name): (usize, &str),
    host: &str,
    start: i64,
    end: i64,
) -> Transition {
    Transition {
        kind: TransitionKind::Resolved,
        at: end,
        rule,
        incident: Incident {
            id: format!("T{id:06}"),
            rule_name: name.into(),
            host_name: host.into(),
            start_time: start,
            end_time: Some(end),
            trigger_value: 91.5,
            resolution: None,
            details: None,
        },
    }
}

/// Records, through the store, incidents resolved between five hours and
/// seventy minutes ago, before alertd starts: a history that a test cannot
/// wait for. Returns how many.
fn record_history(dir: &Path) -> usize {
    const MINUTE: i64 = 60_000;
    let store = SqliteStore::open_dir(&dir.join("data")).unwrap();
    let rules = [(0, "High CPU"), (1, SCRIPT_RULE)];
    let hosts = ["web-1", "web-2", ODD_HOST];
    // (minutes ago it started, minutes it lasted, rule, host)
    let incidents = [
        (295, 12, 0, 0),
        (280, 25, 0, 1),
        (262, 4, 1, 2),
        (240, 18, 0, 0),
        (221, 7, 1, 2),
        (205, 30, 0, 1),
        (170, 9, 0, 0),
        (160, 3, 1, 2),
        (150, 14, 1, 2),
        (131, 22, 0, 1),
        (118, 6, 0, 0),
        (100, 11, 1, 2),
        (95, 20, 0, 0),
        (92, 8, 0, 1),
    ];
    let now = now();
    let mut transitions: Vec<Transition> = incidents
        .iter()
        .enumerate()
        .map(|(id, &(ago, lasted, rule, host))| {
            let start = now - ago * MINUTE;
            resolved(id, rules[rule], hosts[host], start, start + lasted * MINUTE)
        })
        .collect();
    transitions.sort_by_key(|transition| transition.at);
    let lease = store.acquire_lease("seed", 60_000).unwrap().unwrap();
    store.record_transitions(&lease, &transitions, &[]).unwrap();
    incidents.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_asks_for_sign_in_and_thousands_of_incidents_page() {
    let dir = tempfile::tempdir().unwrap();
    // 3,000 incidents resolved within the last hour, on 30 hosts.
    let started = now() - 3_000_000;
    {
        let store = SqliteStore::open_dir(&dir.path().join("data")).unwrap();
        let transitions: Vec<Transition> = (0..3000)
            .map(|n| {
                let start = started + n as i64 * 900;
                resolved(
                    n,
                    (0, "Disk full"),
                    &format!("node-{:02}", n % 30),
                    start,
                    start + 600,
                )
            })
            .collect();
        let lease = store.acquire_lease("seed", 60_000).unwrap().unwrap();
        // The newest one's hook was given up on: on-call never heard of it.
        let mut targets = vec![Vec::new(); transitions.len()];
        targets[2999] = vec!["exec:pager".to_string()];
        store
            .record_transitions_to(&lease, &transitions, &targets)
            .unwrap();
        let claim = Claim {
            node: "seed",
            lasts: 86_400_000,
            skip: &[],
        };
        let delivery = &store.claim_deliveries(now(), &claim, 10).unwrap()[0];
        let call = HookCall {
            incident_id: delivery.incident.id.clone(),
            target: delivery.target.clone(),
            kind: delivery.kind,
            attempt: 1,
            started: now(),
            duration_ms: 5,
            outcome: "exited with status 1".to_string(),
            succeeded: false,
            stdout: String::new(),
            stderr: "no route to pager".to_string(),
        };
        store.bury_delivery(delivery.id, &call).unwrap();
    }
    let config = json!({
        "monitoring": {"enabled": false},
        "alerting": {"enabled": true, "watcherInterval": "1s", "rules": [
            {"name": "Disk full", "field": "disk.usage", "aggregation": "max",
             "operand": "equalOrMoreThan", "value": 90, "timeframe": "1m"},
        ]},
        "server": {"token": "s3cret token"},
    });
    let mut alertd = Alertd::start(dir.path(), &config.to_string());
    alertd.token = Some("s3cret token".to_string());
    let base = alertd.url("");
    let Some(browser) = Browser::start().await else {
        return;
    };

    // Every page sends to the sign-in form, and comes back after it.
    browser.goto(&format!("{base}/rules?frame=2h")).await;
    assert!(
        browser
            .url()
            .await
            .starts_with(&format!("{base}/login?next="))
    );
    browser.type_into("input[name=token]", "wrong").await;
    browser.click_text("Sign in").await;
    assert!(browser.text(".error").await.contains("not the right one"));
    browser.screenshot("sign-in", 1280).await;
    browser.type_into("input[name=token]", "s3cret token").await;
    browser.click_text("Sign in").await;
    assert_eq!(browser.url().await, format!("{base}/rules?frame=2h"));
    assert_eq!(browser.all("section.rule").await.len(), 1);
    // The cookie opens the pages, not the API.
    let (status, _) = alertd
        .agent
        .get(alertd.url("/api/v1/rules"))
        .call()
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(status, 401);

    // Thousands of resolved incidents, fifty at a time.
    browser.goto(&format!("{base}/")).await;
    assert!(
        browser
            .text("section:nth-of-type(3) h2")
            .await
            .contains("3,000")
    );
    assert_eq!(browser.rows("#table-resolved").await.len(), 50);
    assert!(browser.text("nav.pager").await.contains("Page 1 of 60"));
    let newest = browser.rows("#table-resolved").await[0].clone();
    assert!(newest.contains("node-29"), "the latest first: {newest}");
    assert!(
        newest.contains("not delivered"),
        "marked undelivered: {newest}"
    );
    assert_eq!(
        browser
            .all("#table-resolved .badge.undelivered")
            .await
            .len(),
        1
    );
    // Every other incident says whether its hooks were reached: these had
    // none to call.
    let second = browser.rows("#table-resolved").await[1].clone();
    assert!(
        second.contains("delivered") && !second.contains("not delivered"),
        "{second}"
    );
    // The incident's page says it in its summary, not only in its tables.
    let link = browser
        .find("#table-resolved td[data-label=Rule] a")
        .await
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    browser.goto(&format!("{base}{link}")).await;
    let facts = browser.text("dl.facts").await;
    assert!(facts.contains("not delivered"), "{facts}");
    assert!(facts.contains("given up: on-call was not paged"), "{facts}");
    browser.goto(&format!("{base}/")).await;
    // Each of the 3,000 incidents is under a linked bar: its own, or one of
    // at most 1,000 that stand for several (their tooltip says how many); the
    // undelivered one outlined in red.
    let timeline = browser.html("svg.timeline").await;
    let bars = timeline.matches("<a href=").count();
    assert!(bars <= 1000, "{bars} bars");
    let single = timeline.matches("<a href=\"/incidents/").count();
    let grouped: usize = timeline
        .split("<title>")
        .filter_map(|title| {
            title
                .split_once(" incidents from ")?
                .0
                .parse::<usize>()
                .ok()
        })
        .sum();
    assert_eq!(single + grouped, 3000);
    assert_eq!(timeline.matches("stroke=\"#cf222e\"").count(), 1);
    // Over a week they are closer than a pixel: fewer bars, each a link to
    // the list of the incidents it stands for.
    browser.goto(&format!("{base}/?frame=7d")).await;
    let links = browser.all("svg.timeline a").await;
    assert!(links.len() < 300, "{} bars", links.len());
    let merged = links[0].attr("href").await.unwrap().unwrap();
    assert!(merged.starts_with("/?frame=custom"), "{merged}");
    browser.goto(&format!("{base}{merged}")).await;
    let listed = browser.rows("#table-resolved").await;
    assert!(!listed.is_empty());
    // The first row is the host whose last incident ended most recently.
    assert!(
        listed.iter().all(|row| row.contains("node-29")),
        "{listed:?}"
    );
    browser.goto(&format!("{base}/")).await;
    browser.click_text("Next ›").await;
    assert!(browser.text("nav.pager").await.contains("Page 2 of 60"));
    assert_ne!(browser.rows("#table-resolved").await[0], newest);
    browser.click_text("Last »").await;
    assert!(browser.text("nav.pager").await.contains("Page 60 of 60"));
    assert_eq!(browser.rows("#table-resolved").await.len(), 50);
    // A page size of the reader's choice.
    browser.click_text("200").await;
    assert!(browser.text("nav.pager").await.contains("Page 1 of 15"));
    assert_eq!(browser.rows("#table-resolved").await.len(), 200);
    browser.click_text("Next ›").await;
    assert!(browser.url().await.contains("size=200"));
    assert!(browser.text("nav.pager").await.contains("Page 2 of 15"));
    browser.goto(&format!("{base}/?page=60")).await;
    let lanes = browser.html("figure.chart > svg").await;
    assert!(
        lanes.contains("node-00") && lanes.contains("node-29"),
        "a lane per host"
    );
    browser
        .select("form.filters select[name=host]", "node-07")
        .await;
    browser.click_text("Filter").await;
    assert!(browser.text("nav.pager").await.contains("Page 1 of 2"));
    assert!(
        browser
            .rows("#table-resolved")
            .await
            .iter()
            .all(|row| row.contains("node-07"))
    );
    browser.screenshot("incidents-paged", 1280).await;

    // Signing out closes the pages again.
    browser.click_text("Sign out").await;
    browser.goto(&format!("{base}/monitoring")).await;
    assert!(browser.url().await.starts_with(&format!("{base}/login")));
    browser.close().await;
}

/// The data a chart draws: its lines, and its points that stand alone.
fn marks(svg: &str) -> usize {
    svg.matches("<polyline").count() + svg.matches("<circle").count()
}

/// The timeline draws at most 40 hosts: those with an incident open now
/// come first, then the most recent, and the caption says how many were
/// left out. Among 60 hosts with incidents that ended an hour or more ago,
/// a host firing now (named to sort last) has its row.
#[test]
fn a_host_firing_now_has_a_timeline_row_among_sixty() {
    const MINUTE: i64 = 60_000;
    let dir = tempfile::tempdir().unwrap();
    let now = now();
    {
        let store = SqliteStore::open_dir(&dir.path().join("data")).unwrap();
        let mut transitions: Vec<Transition> = (0..60)
            .map(|n| {
                let start = now - (200 - n as i64) * MINUTE;
                resolved(
                    n,
                    (0, "Disk full"),
                    &format!("a-{n:02}"),
                    start,
                    start + 5 * MINUTE,
                )
            })
            .collect();
        transitions.push(Transition {
            kind: TransitionKind::Opened,
            at: now - 55 * MINUTE,
            rule: 0,
            incident: Incident {
                id: "OPEN-NOW".into(),
                rule_name: "Disk full".into(),
                host_name: "zz-firing-now".into(),
                start_time: now - 55 * MINUTE,
                end_time: None,
                trigger_value: 97.0,
                resolution: None,
                details: None,
            },
        });
        transitions.sort_by_key(|transition| transition.at);
        let lease = store.acquire_lease("seed", 60_000).unwrap().unwrap();
        store.record_transitions(&lease, &transitions, &[]).unwrap();
    }
    let alertd = Alertd::start(
        dir.path(),
        r#"{"monitoring": {"enabled": false}, "alerting": {"enabled": false, "rules": [
            {"name": "Disk full", "field": "disk", "aggregation": "max",
             "operand": "equalOrMoreThan", "value": 90, "timeframe": "1m"}]}}"#,
    );
    let (status, page) = alertd.get("/?frame=24h");
    assert_eq!(status, 200);
    let svg = &page[page.find("<svg").unwrap()..page.find("</svg>").unwrap()];
    assert!(
        svg.contains("zz-firing-now"),
        "the host firing now has a row"
    );
    let rows = (0..60)
        .filter(|n| svg.contains(&format!(">a-{n:02}<")))
        .collect::<Vec<_>>();
    assert_eq!(rows.len(), 39, "the 39 most recent of the others: {rows:?}");
    assert!(rows.iter().all(|n| *n >= 21), "the most recent: {rows:?}");
    assert!(
        page.contains("21 of 61 hosts, whose incidents all ended longer ago, are left out"),
        "the caption says how many were left out"
    );
    // Each row names its rule.
    assert!(svg.matches(">Disk full<").count() >= 40);
}

/// The rules page does not fold a host with no data away with the healthy
/// ones: it has a row in the rule's table, with its state.
#[test]
fn a_host_with_no_data_has_a_row_on_the_rules_page() {
    let dir = tempfile::tempdir().unwrap();
    let alertd = Alertd::start(
        dir.path(),
        r#"{"monitoring": {"enabled": false}, "alerting": {"enabled": true, "watcherInterval": "200ms", "rules": [
            {"name": "hot", "field": "x", "aggregation": "avg",
             "operand": "equalOrMoreThan", "value": 90, "timeframe": "1m"}]}}"#,
    );
    let at = now();
    let (status, _) = alertd.push(json!([
        {"host": "healthy", "ts": at, "metrics": {"x": 1}},
        {"host": "no-field", "ts": at, "metrics": {"y": 1}}
    ]));
    assert_eq!(status, 200);
    // Once a tick has seen both samples: the healthy host is ok, and folded.
    let page = wait_for("both hosts evaluated", 10, || {
        let (_, page) = alertd.get("/rules");
        (page.contains("no-field") && page.contains("1 other host")).then_some(page)
    });
    let table = &page[page
        .find("<table class=\"rule-hosts\"")
        .expect("a table of hosts")..];
    let table = &table[..table.find("</table>").unwrap()];
    assert!(
        table.contains("no-field"),
        "the host with no data has a row"
    );
    assert!(table.contains("nodata"), "with its state");
    assert!(
        !table.contains(">healthy<"),
        "the healthy host is folded: {table}"
    );
}

/// The monitoring overview lists the hosts that need someone first: silent
/// ones and those with an incident open (its badge links to it), then the
/// others by name; a silent host's own view links to its open incident.
#[test]
fn the_monitoring_overview_puts_silent_and_firing_hosts_first() {
    let dir = tempfile::tempdir().unwrap();
    let alertd = Alertd::start(
        dir.path(),
        r#"{"monitoring": {"enabled": false}, "alerting": {"enabled": true, "watcherInterval": "200ms", "rules": [
            {"name": "hot", "field": "x", "aggregation": "last",
             "operand": "equalOrMoreThan", "value": 10, "timeframe": "1h"}]}}"#,
    );
    let at = now();
    // z-silent last reported 40 minutes ago: out of a 30-minute frame.
    let (status, _) = alertd.push(json!([
        {"host": "a-fine", "ts": at, "metrics": {"x": 1}},
        {"host": "b-firing", "ts": at, "metrics": {"x": 20}},
        {"host": "z-silent", "ts": at - 40 * 60_000, "metrics": {"x": 20}}
    ]));
    assert_eq!(status, 200);
    let incidents = wait_for("two incidents", 10, || {
        let active = alertd.active();
        (active.len() == 2).then_some(active)
    });
    let (_, page) = alertd.get("/monitoring");
    let table = &page[page.find("id=\"overview\"").unwrap()..];
    let position = |host: &str| table.find(&format!(">{host}<")).unwrap();
    assert!(position("b-firing") < position("a-fine"), "firing first");
    assert!(position("z-silent") < position("a-fine"), "silent first");
    for incident in &incidents {
        assert!(
            table.contains(&format!("/incidents/{}", incident["id"].as_str().unwrap())),
            "the badge links to the open incident"
        );
    }
    // Any column sorts it; the host column by name.
    let (_, by_name) = alertd.get("/monitoring?sort=host");
    let table = &by_name[by_name.find("id=\"overview\"").unwrap()..];
    let position = |host: &str| table.find(&format!(">{host}<")).unwrap();
    assert!(
        position("a-fine") < position("b-firing") && position("b-firing") < position("z-silent")
    );
    assert!(table.contains("aria-sort=\"ascending\""));
    let (_, by_cpu) = alertd.get("/monitoring?sort=samples");
    assert!(by_cpu.contains("aria-sort=\"descending\""));
    let (status, refused) = alertd.get("/monitoring?sort=colour");
    assert_eq!(status, 400);
    assert!(
        refused.contains("Sort &quot;colour&quot;: expected one of host, last-seen"),
        "{refused}"
    );
    let silent = incidents
        .iter()
        .find(|incident| incident["hostName"] == "z-silent")
        .unwrap();
    let (_, view) = alertd.get("/monitoring?frame=30m&host=z-silent");
    assert!(
        view.contains("sent no sample in this time frame"),
        "the silent view"
    );
    assert!(view.contains(&format!("/incidents/{}", silent["id"].as_str().unwrap())));
}
