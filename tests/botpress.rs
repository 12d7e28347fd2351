//! The Botpress feed (`integrations/botpress/`): its hook runs under Node.js as Botpress v12
//! runs a global hook (`integrations/botpress/test/harness.js`), beside a busy Botpress-shaped
//! server, against a real alertd. What the server did must arrive in alertd's samples of
//! its node, exactly, through an alertd restart too.
mod support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use serde_json::{Value, json};
use support::{Alertd, free_port, wait_for};

const TOKEN: &str = "feed-token";
const NODE: &str = "node-under-test";

fn integration() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("integrations/botpress")
}

/// Whether vm2 (Botpress' sandbox) is installed for the harness; `./test` installs it
/// (`npm ci`), and under CI its absence is a failure.
fn sandbox_available() -> bool {
    if !support::programs::needed("node") {
        return false;
    }
    let installed = integration().join("test/node_modules/vm2").is_dir();
    if !installed {
        let why =
            "vm2 is not installed (run ./test, or npm ci --prefix integrations/botpress/test)";
        assert!(!support::programs::required(), "{why}");
        support::programs::skipped(why);
    }
    installed
}

fn config(port_token: &str) -> String {
    format!(
        r#"{{"server": {{"token": "{port_token}"}},
            "monitoring": {{"enabled": true, "collectionInterval": "200ms"}},
            "alerting": {{"enabled": true, "watcherInterval": "200ms", "rules": [
              {{"name": "No more incoming events", "field": "eventsIn.count", "aggregation": "sum",
               "operand": "equalOrLessThan", "value": 0, "timeframe": "10m"}}]}}}}"#
    )
}

fn start_alertd(dir: &Path, port: u16) -> Alertd {
    std::fs::write(dir.join("alertd.json"), config(TOKEN)).unwrap();
    let mut alertd = Alertd::start_on(dir, port);
    alertd.token = Some(TOKEN.to_string());
    alertd
}

/// The harness: a Botpress-shaped server running the feed hook.
struct Botpress {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    log: PathBuf,
}

impl Botpress {
    /// Runs the feed hook in `mode` (`vm2` or `trusted`).
    fn start(dir: &Path, mode: &str, env: &[(&str, &str)], runs: u32) -> Botpress {
        let hook = integration().join("hooks/after_server_start/alertd_feed.js");
        Self::start_with(dir, &hook, mode, env, runs)
    }

    /// Runs `target`, a hook file or (mode `module`) a module folder.
    fn start_with(
        dir: &Path,
        target: &Path,
        mode: &str,
        env: &[(&str, &str)],
        runs: u32,
    ) -> Botpress {
        let log = dir.join(format!("botpress-{mode}.log"));
        let mut child = Command::new("node")
            .arg(integration().join("test/harness.js"))
            .arg(target)
            .args(["--mode", mode, "--runs", &runs.to_string()])
            .env("EXPOSED_ALERTD_INTERVAL", "0.1")
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("node runs");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Botpress {
            child,
            stdin,
            stdout,
            log,
        }
    }

    /// Makes the server busy as `command` says; answers the totals generated so far.
    fn run(&mut self, command: Value) -> Value {
        writeln!(self.stdin, "{command}").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        assert!(!line.is_empty(), "the harness stopped:\n{}", self.log());
        serde_json::from_str(&line).unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The lines the server's loggers printed at `level`, the feed's own included.
    fn logged(&self, level: &str) -> usize {
        let prefix = format!("{level} ");
        self.log()
            .lines()
            .filter(|line| line.starts_with(&prefix))
            .count()
    }
}

impl Drop for Botpress {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sums of each counter over every sample of this node.
fn received(alertd: &Alertd) -> Value {
    let stats = alertd.get_json("/api/v1/stats?resolution=1h");
    let points = stats["hosts"][NODE].as_array().cloned().unwrap_or_default();
    let sum = |field: &str| -> f64 {
        points
            .iter()
            .map(|point| point["sum"][field].as_f64().unwrap_or(0.0))
            .sum()
    };
    json!({
        "requests": sum("requests.count"),
        "latency": sum("requests.latency_sum"),
        "incoming": sum("eventsIn.count"),
        "outgoing": sum("eventsOut.count"),
        "warnings": sum("warnings.count"),
        "errors": sum("errors.count"),
        "criticals": sum("criticals.count"),
        "bot_incoming": sum("bot.b.eventsIn.count"),
        "bot_outgoing": sum("bot.b.eventsOut.count"),
        "bot_warnings": sum("bot.b.warnings.count"),
        "bot_errors": sum("bot.b.errors.count"),
        "bot_criticals": sum("bot.b.criticals.count"),
    })
}

/// Waits until alertd's samples hold exactly `expected` (latency aside), then answers them.
fn wait_received(alertd: &Alertd, botpress: &Botpress, expected: &Value) -> Value {
    let mut last = json!(null);
    for _ in 0..300 {
        last = received(alertd);
        let same = [
            "requests",
            "incoming",
            "outgoing",
            "warnings",
            "errors",
            "criticals",
            "bot_incoming",
            "bot_outgoing",
            "bot_warnings",
            "bot_errors",
            "bot_criticals",
        ]
        .iter()
        .all(|key| last[key].as_f64() == expected[key].as_f64());
        if same {
            return last;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    panic!(
        "alertd has {last}, Botpress generated {expected}\nBotpress:\n{}\nalertd:\n{}",
        botpress.log(),
        alertd.log()
    );
}

/// What alertd must have received: the events generated and, outside the sandbox, the
/// requests and the warnings and errors the server's loggers printed (the feed's own too);
/// per bot, bot `b`'s events and the warnings and criticals of its logger (the errors are
/// no bot's, the strange events of a bot whose id cannot be in a field name).
fn expected(botpress: &Botpress, totals: &Value, sandboxed: bool) -> Value {
    let counted = |value: f64| if sandboxed { 0.0 } else { value };
    let total = |key: &str| totals[key].as_f64().unwrap_or(0.0);
    json!({
        "requests": counted(total("requests")),
        "incoming": total("incoming") + total("strange"),
        "outgoing": totals["outgoing"],
        "bot_incoming": total("incoming"),
        "bot_outgoing": total("outgoing"),
        "bot_warnings": counted(total("warnings")),
        "bot_errors": 0.0,
        "bot_criticals": counted(total("criticals")),
        "warnings": counted(botpress.logged("warn") as f64),
        "errors": counted(botpress.logged("error") as f64),
        "criticals": counted(botpress.logged("critical") as f64),
    })
}

const BUSY: &str = r#"{"requests": 20, "other": 5, "incoming": 7, "outgoing": 11,
                       "warnings": 3, "errors": 4, "criticals": 2, "strange": 2,
                       "delayMs": 15}"#;

fn reports_exactly(mode: &str, target: &Path, runs: u32) {
    let dir = tempfile::tempdir().unwrap();
    let alertd = start_alertd(dir.path(), free_port());
    let url = alertd.url("");
    let mut botpress = Botpress::start_with(
        dir.path(),
        target,
        mode,
        &[
            ("EXPOSED_ALERTD_URL", &url),
            ("EXPOSED_ALERTD_TOKEN", TOKEN),
        ],
        runs,
    );
    let totals = botpress.run(serde_json::from_str(BUSY).unwrap());
    let sandboxed = mode == "vm2";
    let got = wait_received(&alertd, &botpress, &expected(&botpress, &totals, sandboxed));
    if !sandboxed {
        // Each of the 20 requests waited 15 ms before its headers.
        assert!(got["latency"].as_f64().unwrap() >= 20.0 * 15.0, "{got}");
    }
    // Fed, the example rule "No more incoming events" sees them and stays quiet (with
    // nothing feeding eventsIn.count it fired at once).
    wait_for("the events rule to see the events", 10, || {
        let rules = alertd.get_json("/api/v1/rules");
        let host = rules["rules"][0]["hosts"]
            .as_array()?
            .iter()
            .find(|host| host["host"] == NODE)?
            .clone();
        (host["aggregate"].as_f64()? >= 7.0 && host["state"] != "firing").then_some(())
    });
    // A second burst lands on top of the first.
    let totals = botpress.run(json!({"requests": 2, "incoming": 1, "errors": 1}));
    wait_received(&alertd, &botpress, &expected(&botpress, &totals, sandboxed));
    let log = botpress.log();
    assert!(
        log.contains("alertd feed: reporting to http://127.0.0.1:"),
        "{log}"
    );
    assert_eq!(
        log.contains(
            "alertd feed: requests.count, requests.latency_sum, warnings.count, errors.count, \
             criticals.count not counted: this hook runs in the sandbox, out of reach of Botpress' HTTP server \
             and loggers (set DISABLE_GLOBAL_SANDBOX=true to count them)"
        ),
        sandboxed,
        "{log}"
    );
    if runs > 1 {
        assert!(log.contains("alertd feed: already running in this process"));
    }
}

fn hook() -> PathBuf {
    integration().join("hooks/after_server_start/alertd_feed.js")
}

#[test]
fn the_feed_reports_exactly_what_a_sandboxed_hook_can_count() {
    if sandbox_available() {
        reports_exactly("vm2", &hook(), 1);
    }
}

#[test]
fn the_feed_reports_exactly_outside_the_sandbox_and_counts_once_when_run_twice() {
    if !support::programs::needed("node") {
        return;
    }
    reports_exactly("trusted", &hook(), 2);
}

#[test]
fn the_packed_module_reports_everything_and_counts_once_when_loaded_twice() {
    if !support::programs::needed("node") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let packed = Command::new("bash")
        .arg(integration().join("pack-module.sh"))
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(packed.status.success(), "{packed:?}");
    let module = dir.path().join("alertd-feed");
    std::fs::create_dir(&module).unwrap();
    let extracted = Command::new("tar")
        .arg("-xzf")
        .arg(dir.path().join("alertd-feed.tgz"))
        .arg("-C")
        .arg(&module)
        .status()
        .unwrap();
    assert!(extracted.success());
    // The archive holds the hook's code itself, not a path back into this repository.
    assert_eq!(
        std::fs::read(module.join("dist/backend/alertd_feed.js")).unwrap(),
        std::fs::read(hook()).unwrap()
    );
    reports_exactly("module", &module, 2);
}

#[test]
fn counts_made_while_alertd_is_down_arrive_when_it_is_back() {
    if !support::programs::needed("node") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut alertd = start_alertd(dir.path(), port);
    let url = alertd.url("");
    let mut botpress = Botpress::start(
        dir.path(),
        "trusted",
        &[
            ("EXPOSED_ALERTD_URL", &url),
            ("EXPOSED_ALERTD_TOKEN", TOKEN),
        ],
        1,
    );
    let totals = botpress.run(serde_json::from_str(BUSY).unwrap());
    wait_received(&alertd, &botpress, &expected(&botpress, &totals, false));

    alertd.signal("KILL");
    alertd.wait_exit(10);
    let totals = botpress.run(serde_json::from_str(BUSY).unwrap());
    wait_for("the feed to keep its counts", 10, || {
        botpress
            .log()
            .contains("ECONNREFUSED")
            .then_some(())
            .filter(|_| botpress.log().contains("counts kept for the next report"))
    });
    drop(alertd);
    let alertd = start_alertd(dir.path(), port);
    wait_received(&alertd, &botpress, &expected(&botpress, &totals, false));
    assert!(
        botpress.log().contains("alertd feed: reporting again"),
        "{}",
        botpress.log()
    );
}

/// alertd paused (SIGSTOP) while the feed reports: the report is sent, no answer comes
/// within the feed's timeout, and it goes again with the same `Idempotency-Key` until alertd
/// answers: counted once, neither lost (as the feed did before, dropping a report without an
/// answer) nor doubled. (Whether alertd reads a request whose sender hung up is its kernel's
/// and HTTP library's affair; tests/service.rs shows a push alertd did read, sent again and
/// stored once.)
#[test]
fn a_report_that_got_no_answer_goes_again_and_is_counted_once() {
    if !support::programs::needed("node") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let alertd = start_alertd(dir.path(), free_port());
    let url = alertd.url("");
    let mut botpress = Botpress::start(
        dir.path(),
        "trusted",
        &[
            ("EXPOSED_ALERTD_URL", &url),
            ("EXPOSED_ALERTD_TOKEN", TOKEN),
        ],
        1,
    );
    let totals = botpress.run(serde_json::from_str(BUSY).unwrap());
    wait_received(&alertd, &botpress, &expected(&botpress, &totals, false));
    alertd.signal("STOP");
    let totals = botpress.run(serde_json::from_str(BUSY).unwrap());
    wait_for("the feed to send the report again", 15, || {
        botpress
            .log()
            .contains("the same report goes again with the same Idempotency-Key")
            .then_some(())
    });
    alertd.signal("CONT");
    let got = wait_received(&alertd, &botpress, &expected(&botpress, &totals, false));
    assert!(
        botpress.log().contains("alertd feed: reporting again"),
        "{}",
        botpress.log()
    );
    eprintln!("after a report without an answer, alertd holds exactly: {got}");
}

#[test]
fn a_wrong_token_or_no_address_is_said_and_the_bot_serves_on() {
    if !support::programs::needed("node") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let alertd = start_alertd(dir.path(), free_port());
    let url = alertd.url("");
    let mut botpress = Botpress::start(
        dir.path(),
        "trusted",
        &[
            ("EXPOSED_ALERTD_URL", &url),
            ("EXPOSED_ALERTD_TOKEN", "wrong"),
        ],
        1,
    );
    botpress.run(json!({"requests": 3, "incoming": 2}));
    wait_for("the refusal to be logged", 10, || {
        botpress
            .log()
            .contains("alertd refused them: 401")
            .then_some(())
    });
    let totals = botpress.run(json!({"requests": 3, "incoming": 2}));
    assert_eq!(totals["requests"], 6);
    std::thread::sleep(std::time::Duration::from_millis(500));
    // Said once per outage, not once per report; nothing reached alertd.
    let refusals = botpress.log().matches("alertd refused them").count();
    assert_eq!(refusals, 1, "{}", botpress.log());
    assert_eq!(received(&alertd)["incoming"], 0.0);

    for (env, message) in [
        (vec![], "alertd feed is off: set EXPOSED_ALERTD_URL"),
        (
            vec![("EXPOSED_ALERTD_URL", "ftp://x")],
            "alertd feed is off: EXPOSED_ALERTD_URL \"ftp://x\" is neither http nor https",
        ),
        (
            vec![
                ("EXPOSED_ALERTD_URL", &url),
                ("EXPOSED_ALERTD_INTERVAL", "soon"),
            ],
            "alertd feed is off: EXPOSED_ALERTD_INTERVAL \"soon\" is not a number",
        ),
    ] {
        let mut env = env;
        if !env.iter().any(|(name, _)| *name == "EXPOSED_ALERTD_URL") {
            env.push(("EXPOSED_ALERTD_URL", ""));
        }
        let mut botpress = Botpress::start(dir.path(), "trusted", &env, 1);
        assert_eq!(botpress.run(json!({"requests": 1}))["requests"], 1);
        assert!(botpress.log().contains(message), "{}", botpress.log());
    }
}
