//! `alertd silence add|list|expire`: silences on a running alertd, through
//! its API (docs/notifications.md).

use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use serde_json::{Value, json};

use crate::{INVALID_INPUT, IO_FAILURE};

#[derive(Subcommand)]
pub enum Action {
    /// Silence the incidents that match, for a while.
    Add {
        /// A matcher, NAME=VALUE: rule, host, severity or label.NAME; the value
        /// exact or with `*` (host=web-*). Repeat for more: all must match.
        #[arg(long = "match", value_name = "NAME=VALUE", required = true)]
        matchers: Vec<String>,
        /// How long it lasts from its start (30m, 2h, 1d).
        #[arg(long, value_name = "DURATION", default_value = "1h")]
        duration: String,
        /// Its start, in ms since the epoch [default: now].
        #[arg(long, value_name = "MS")]
        starts_at: Option<i64>,
        /// Why.
        #[arg(long, default_value = "")]
        comment: String,
        /// Who [default: $USER].
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
    },
    /// List the silences kept: active ones first.
    List,
    /// End a silence now; what it held is sent if its incident is still open.
    Expire {
        /// The silence's id.
        id: String,
    },
}

/// Runs `action` against the alertd at `url`, with the API token from
/// `ALERTD_TOKEN` if set.
pub fn silence(action: Action, url: &str) -> ExitCode {
    let token = std::env::var("ALERTD_TOKEN")
        .ok()
        .filter(|token| !token.is_empty());
    let base = url.trim_end_matches('/');
    let request = match action {
        Action::Add {
            matchers,
            duration,
            starts_at,
            comment,
            by,
        } => {
            let matchers = match matchers_of(&matchers) {
                Ok(matchers) => matchers,
                Err(problem) => {
                    eprintln!("alertd silence add: {problem}");
                    return ExitCode::from(INVALID_INPUT);
                }
            };
            let by = by
                .or_else(|| std::env::var("USER").ok())
                .unwrap_or_default();
            let mut body = json!({"matchers": matchers, "duration": duration,
                                  "comment": comment, "createdBy": by});
            if let Some(starts_at) = starts_at {
                body["startsAt"] = json!(starts_at);
            }
            Request::Post(format!("{base}/api/v1/silences"), body)
        }
        Action::List => Request::Get(format!("{base}/api/v1/silences")),
        Action::Expire { id } => Request::Delete(format!("{base}/api/v1/silences/{id}")),
    };
    let answer = match call(request, token.as_deref()) {
        Ok(answer) => answer,
        Err(problem) => {
            eprintln!("alertd silence: {problem}");
            return ExitCode::from(IO_FAILURE);
        }
    };
    match answer {
        (status, body) if (200..300).contains(&status) => {
            print!("{}", shown(&body));
            ExitCode::SUCCESS
        }
        (status, body) => {
            let error = body["error"]
                .as_str()
                .map_or(body.to_string(), str::to_string);
            eprintln!("alertd silence: HTTP {status}: {error}");
            ExitCode::from(if status == 400 || status == 404 {
                INVALID_INPUT
            } else {
                IO_FAILURE
            })
        }
    }
}

/// `rule=x`, `host=web-*`, `severity=critical`, `label.team=ops` as the
/// API's matchers.
fn matchers_of(given: &[String]) -> Result<Value, String> {
    let mut matchers = json!({});
    for matcher in given {
        let Some((name, value)) = matcher.split_once('=') else {
            return Err(format!("--match {matcher:?}: expected NAME=VALUE"));
        };
        match name.trim() {
            "rule" | "host" | "severity" => matchers[name.trim()] = json!(value),
            other => match other
                .strip_prefix("label.")
                .or_else(|| other.strip_prefix("labels."))
            {
                Some(label) if !label.is_empty() => {
                    if matchers.get("labels").is_none() {
                        matchers["labels"] = json!({});
                    }
                    matchers["labels"][label] = json!(value);
                }
                _ => {
                    return Err(format!(
                        "--match {matcher:?}: NAME is rule, host, severity or label.NAME"
                    ));
                }
            },
        }
    }
    Ok(matchers)
}

enum Request {
    Get(String),
    Post(String, Value),
    Delete(String),
}

/// Makes the request; the status and the JSON answer.
fn call(request: Request, token: Option<&str>) -> Result<(u16, Value), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| error.to_string())?;
    runtime.block_on(async move {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|error| error.to_string())?;
        let (builder, url) = match &request {
            Request::Get(url) => (client.get(url), url),
            Request::Post(url, body) => (
                client
                    .post(url)
                    .header("Content-Type", "application/json")
                    .body(body.to_string()),
                url,
            ),
            Request::Delete(url) => (client.delete(url), url),
        };
        let builder = match token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        };
        let response = builder
            .send()
            .await
            .map_err(|error| format!("{url}: {error}"))?;
        let status = response.status().as_u16();
        let text = response
            .text()
            .await
            .map_err(|error| format!("{url}: {error}"))?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, body))
    })
}

/// One line per silence: id, state, until, matchers, comment.
fn shown(body: &Value) -> String {
    let silences = match body.get("silences").and_then(Value::as_array) {
        Some(silences) => silences.clone(),
        None => vec![body.clone()],
    };
    let mut out = String::new();
    for silence in silences {
        let until = silence["endsAt"]
            .as_i64()
            .map(alertd::incident::rfc3339)
            .unwrap_or_default();
        out.push_str(&format!(
            "{}  {:<7}  until {}  {}  {}\n",
            silence["id"].as_str().unwrap_or("?"),
            silence["state"].as_str().unwrap_or("?"),
            until,
            silence["matchers"],
            silence["comment"].as_str().unwrap_or(""),
        ));
    }
    out
}
