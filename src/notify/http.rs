//! What the HTTP targets share: the client, and how an answer is judged.

use std::time::{Duration, Instant};

use super::hooks::OUTPUT_LIMIT;
use super::{Called, Retry};

/// One client for every HTTP target: connections are reused.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(concat!("alertd/", env!("CARGO_PKG_VERSION")))
        .build()
        // Only a broken TLS setup fails here; the default client then.
        .unwrap_or_default()
}

/// Sends `request` within `timeout` and judges the answer:
///
/// - 2xx: delivered;
/// - 429 and 503: tried again, not before `Retry-After` (seconds) if given;
/// - any other 4xx: refused for good, not tried again (the request is
///   wrong: a bad URL, a revoked token, a payload the receiver rejects);
/// - 5xx other than 503, a timeout, a connection error: tried again after
///   the back-off.
pub async fn send(request: reqwest::RequestBuilder, timeout: Duration) -> Called {
    let started = Instant::now();
    let failed = |outcome: String, retry: Retry, body: String| Called {
        outcome,
        succeeded: false,
        retry,
        stdout: body,
        stderr: String::new(),
        duration: started.elapsed(),
    };
    let response = match request.timeout(timeout).send().await {
        Ok(response) => response,
        Err(error) if error.is_timeout() => {
            return failed(
                format!("no answer within {timeout:?}"),
                Retry::Later,
                String::new(),
            );
        }
        Err(error) => {
            return failed(
                format!("cannot send: {}", without_url(&error)),
                Retry::Later,
                String::new(),
            );
        }
    };
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = read_capped(response).await;
    let outcome = format!("HTTP {}", status.as_u16());
    if status.is_success() {
        return Called {
            outcome,
            succeeded: true,
            retry: Retry::Later,
            stdout: body,
            stderr: String::new(),
            duration: started.elapsed(),
        };
    }
    let retry = match status.as_u16() {
        429 | 503 => retry_after.map_or(Retry::Later, Retry::After),
        400..=499 => Retry::Never,
        _ => Retry::Later,
    };
    let outcome = match retry {
        Retry::Never => format!("{outcome}: refused, not tried again"),
        _ => outcome,
    };
    failed(outcome, retry, body)
}

/// An error without the URL it names (which may carry a token).
fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), "the target");
    }
    text
}

/// The answer's body, at most [`OUTPUT_LIMIT`] bytes of it.
async fn read_capped(mut response: reqwest::Response) -> String {
    let mut body = Vec::new();
    let mut cut = false;
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = OUTPUT_LIMIT.saturating_sub(body.len());
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            cut = true;
            break;
        }
        body.extend_from_slice(&chunk);
    }
    let mut text = String::from_utf8_lossy(&body).into_owned();
    if cut {
        text.push_str("\n[... cut]");
    }
    text
}
