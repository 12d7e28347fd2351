//! What the tests that run the real `alertd` binary share: starting it in a
//! temporary directory, talking to it over HTTP, installing hooks.
#![allow(dead_code)] // each test file uses a part

pub mod ingest;
pub mod programs;
pub mod pushes;
pub mod queries;
pub mod receiver;
pub mod redis;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// libfaketime, from Debian's `libfaketime` (the `faketime` package).
pub const FAKETIME_LIBRARY: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// A configuration for the notification tests: one rule, `x high` (the
/// last `x` >= 10 over 2 s), ticks every second, hooks given 5 s, and the
/// targets `notify`.
pub fn x_high_with(notify: Value) -> Value {
    serde_json::json!({
        "alerting": {
            "enabled": true,
            "watcherInterval": "1s",
            "rules": [
                {"name": "x high", "field": "x", "aggregation": "last",
                 "operand": "equalOrMoreThan", "value": 10, "timeframe": "2s"}
            ],
            "notify": notify
        },
        "hooks": {"timeout": "5s"}
    })
}

/// Every rolled-up point of `step`, with its host: `host`'s, or each
/// host's for `None`.
pub fn rollups(
    store: &dyn alertd::store::Store,
    step: alertd::store::rollup::Step,
    host: Option<&str>,
) -> Vec<(String, alertd::store::rollup::Point)> {
    let query = alertd::store::RollupQuery {
        step,
        from: i64::MIN,
        to: i64::MAX,
        host,
        fields: None,
        totals_only: false,
    };
    let mut points = Vec::new();
    store
        .scan_rollups(&query, &mut |host, point| {
            points.push((host.to_string(), point.clone()))
        })
        .unwrap();
    points
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `check` until it returns something, for at most `seconds`.
pub fn wait_for<T>(what: &str, seconds: u64, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running `alertd run` in a temporary directory.
pub struct Alertd {
    pub child: Child,
    pub port: u16,
    pub dir: PathBuf,
    pub token: Option<String>,
    pub agent: ureq::Agent,
}

impl Alertd {
    /// Writes `config` to `<dir>/alertd.json` and starts alertd on it, with
    /// `<dir>/data` as its data directory; waits until it answers.
    pub fn start(dir: &Path, config: &str) -> Alertd {
        std::fs::write(dir.join("alertd.json"), config).unwrap();
        Self::start_existing(dir)
    }

    pub fn start_existing(dir: &Path) -> Alertd {
        Self::start_under(dir, &[])
    }

    /// Starts alertd on `<dir>/alertd.json` under a wrapper command (such
    /// as `prlimit --nofile=256:256`).
    pub fn start_under(dir: &Path, wrapper: &[&str]) -> Alertd {
        Self::launch(dir, wrapper, "node-under-test", free_port())
    }

    /// Starts alertd on `<dir>/alertd.json` (written already) listening on
    /// `port`, as a restarted service comes back on its address.
    pub fn start_on(dir: &Path, port: u16) -> Alertd {
        Self::launch(dir, &[], "node-under-test", port)
    }

    /// Starts a node named `name` on `<dir>/alertd.json` (written already).
    pub fn start_node(dir: &Path, name: &str) -> Alertd {
        Self::launch(dir, &[], name, free_port())
    }

    /// Starts alertd on `<dir>/alertd.json` (written already) and waits
    /// until `/healthz` answers, healthy or not.
    pub fn start_answering(dir: &Path) -> Alertd {
        Self::launch_until(dir, &[], "node-under-test", free_port(), |_| true)
    }

    /// Starts a node named `name` on `<dir>/alertd.json` (written already)
    /// with a clock `offset` from the file it names (libfaketime: `+30s`,
    /// `-30s`, read again every second), and waits until `/healthz`
    /// answers, healthy or not. Its monotonic clock is left alone.
    pub fn start_node_with_clock(dir: &Path, name: &str, offset: &Path) -> Alertd {
        Self::launch_with(
            dir,
            &[],
            &[
                ("LD_PRELOAD", FAKETIME_LIBRARY),
                ("FAKETIME_TIMESTAMP_FILE", &offset.display().to_string()),
                ("FAKETIME_CACHE_DURATION", "1"),
                ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
            ],
            name,
            free_port(),
            |_| true,
        )
    }

    fn launch(dir: &Path, wrapper: &[&str], name: &str, port: u16) -> Alertd {
        Self::launch_until(dir, wrapper, name, port, |status| status == 200)
    }

    fn launch_until(
        dir: &Path,
        wrapper: &[&str],
        name: &str,
        port: u16,
        answered: fn(u16) -> bool,
    ) -> Alertd {
        Self::launch_with(dir, wrapper, &[], name, port, answered)
    }

    fn launch_with(
        dir: &Path,
        wrapper: &[&str],
        env: &[(&str, &str)],
        name: &str,
        port: u16,
        answered: fn(u16) -> bool,
    ) -> Alertd {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("alertd.log"))
            .unwrap();
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(env!("CARGO_BIN_EXE_alertd"));
                command
            }
            None => Command::new(env!("CARGO_BIN_EXE_alertd")),
        };
        let child = command
            .arg("run")
            .arg("--config")
            .arg(dir.join("alertd.json"))
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--host-name", name])
            .env("ALERTD_LOG", "debug")
            .env_remove("ALERTD_TOKEN")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(20)))
            .build()
            .into();
        let mut alertd = Alertd {
            child,
            port,
            dir: dir.to_path_buf(),
            token: None,
            agent,
        };
        wait_for("alertd to answer /healthz", 20, || {
            if let Some(status) = alertd.child.try_wait().unwrap() {
                panic!("alertd exited with {status}:\n{}", alertd.log());
            }
            alertd
                .try_get("/healthz")
                .filter(|(status, _)| answered(*status))
        });
        alertd
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn try_get(&self, path: &str) -> Option<(u16, String)> {
        let mut request = self.agent.get(self.url(path));
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let mut response = request.call().ok()?;
        let status = response.status().as_u16();
        Some((status, response.body_mut().read_to_string().unwrap()))
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        self.try_get(path)
            .unwrap_or_else(|| panic!("GET {path} failed"))
    }

    pub fn get_json(&self, path: &str) -> Value {
        let (status, body) = self.get(path);
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    pub fn post(&self, path: &str, content_type: &str, body: impl AsRef<[u8]>) -> (u16, String) {
        let (status, _, bytes) = self.post_raw(path, &[("Content-Type", content_type)], body);
        (status, String::from_utf8(bytes).unwrap())
    }

    /// A POST with `headers`, its answer's status, `Content-Type` and bytes.
    pub fn post_raw(
        &self,
        path: &str,
        headers: &[(&str, &str)],
        body: impl AsRef<[u8]>,
    ) -> (u16, String, Vec<u8>) {
        let mut request = self.agent.post(self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let mut response = request
            .send(body.as_ref())
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = response
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_vec()
            .unwrap();
        (status, content_type, bytes)
    }

    pub fn delete(&self, path: &str) -> (u16, String) {
        let mut request = self.agent.delete(self.url(path));
        if let Some(token) = &self.token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let mut response = request
            .call()
            .unwrap_or_else(|e| panic!("DELETE {path}: {e}"));
        let status = response.status().as_u16();
        (status, response.body_mut().read_to_string().unwrap())
    }

    /// A figure from `/metrics` (name with its labels, if any).
    pub fn metric(&self, name: &str) -> f64 {
        let (_, text) = self.get("/metrics");
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing from /metrics"))
            .parse()
            .unwrap()
    }

    /// Waits until the watcher has evaluated `count` more ticks.
    pub fn wait_ticks(&self, count: f64) {
        let target = self.metric("alertd_ticks_total") + count;
        wait_for("ticks", 20, || {
            (self.metric("alertd_ticks_total") >= target).then_some(())
        });
    }

    pub fn push(&self, samples: Value) -> (u16, String) {
        self.post("/api/v1/samples", "application/json", samples.to_string())
    }

    pub fn active(&self) -> Vec<Value> {
        self.get_json("/api/v1/incidents")["active"]
            .as_array()
            .unwrap()
            .clone()
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub fn wait_exit(&mut self, seconds: u64) -> ExitStatus {
        let child = &mut self.child;
        wait_for("alertd to exit", seconds, || child.try_wait().unwrap())
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("alertd.log")).unwrap_or_default()
    }
}

impl Drop for Alertd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Installs an executable hook under the data directory.
pub fn install_hook(dir: &Path, name: &str, script: &str) {
    let hooks = dir.join("data/global/hooks/on_incident_status_changed");
    std::fs::create_dir_all(&hooks).unwrap();
    let path = hooks.join(name);
    std::fs::write(&path, script).unwrap();
    let mut permissions = std::fs::metadata(&path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(&path, permissions).unwrap();
}

/// A hook that appends `status|id|rule|host|stdin` to `calls.log`.
pub fn install_logging_hook(dir: &Path) -> PathBuf {
    let log = dir.join("calls.log");
    install_hook(
        dir,
        "10-log",
        &format!(
            "#!/bin/sh\necho \"$INCIDENT_STATUS|$INCIDENT_ID|$INCIDENT_RULE|$INCIDENT_HOST|$(cat)\" >> '{}'\n",
            log.display()
        ),
    );
    log
}

pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}
