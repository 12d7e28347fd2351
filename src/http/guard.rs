//! Who may change state through this server, and under which names it may
//! be reached: what keeps a web page the operator happens to visit from
//! pushing samples or signing in (cross-site requests), and a hostile name
//! that resolves to this machine from reading it (DNS rebinding).
//!
//! - A state-changing request (any method but GET and HEAD) with an `Origin`
//!   header must come from this server's own origin (the host it was sent
//!   to, or `server.publicUrl`'s, for a proxy that rewrites `Host`): 403
//!   otherwise. Browsers
//!   send `Origin` on every cross-site POST, so a page elsewhere cannot
//!   forge one; tools such as curl send none and are not concerned.
//! - A POST to the API must say it is JSON (`application/json`, or NDJSON
//!   with `application/x-ndjson`), or protobuf (`application/x-protobuf`,
//!   remote write): 415 otherwise. A browser can send a cross-site form or
//!   `text/plain` body without asking first, never a JSON or protobuf one.
//! - The `Host` must be one this server answers to ([`AllowedHosts`]): 421
//!   otherwise.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;
use crate::address::host_name;

/// The names under which the server may be reached. Loopback names
/// (`localhost`, `127.0.0.1`, `[::1]`, any port) are always allowed: no
/// other site can make them point elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedHosts {
    /// Listening on loopback with no public URL: loopback names only.
    Loopback,
    /// The host of `server.publicUrl`, and loopback names.
    Named(String),
    /// Listening elsewhere with no public URL configured: any (warned at start).
    Any,
}

impl AllowedHosts {
    fn allow(&self, host: &str) -> bool {
        let name = host_name(host);
        let loopback = matches!(name.as_str(), "localhost" | "127.0.0.1" | "[::1]")
            || name.ends_with(".localhost");
        match self {
            AllowedHosts::Loopback => loopback,
            AllowedHosts::Named(allowed) => loopback || name.eq_ignore_ascii_case(allowed),
            AllowedHosts::Any => true,
        }
    }
}

pub(super) async fn guard(
    State(allowed): State<Arc<AllowedHosts>>,
    request: Request,
    next: Next,
) -> Response {
    match check(&allowed, &request) {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

fn check(allowed: &AllowedHosts, request: &Request) -> Result<(), ApiError> {
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()))
        .unwrap_or("");
    if !allowed.allow(host) {
        return Err(ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            format!(
                "this server does not answer to the host {host:?}: use the address it listens \
                 on, or set server.publicUrl"
            ),
        ));
    }
    if matches!(*request.method(), Method::GET | Method::HEAD) {
        return Ok(());
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("");
        let authority = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"))
            .unwrap_or("");
        // This server's own origin: the one the request was sent to, or the
        // public URL's (a proxy in front may have rewritten the Host).
        let own = authority.eq_ignore_ascii_case(host.trim())
            || matches!(allowed, AllowedHosts::Named(public) if host_name(authority) == *public);
        if authority.is_empty() || !own {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("a request from another site ({origin}) cannot change anything here"),
            ));
        }
    }
    // A DELETE carries no body, and no page of another site can send one
    // without a preflight, which this server never grants.
    if request.uri().path().starts_with("/api/") && request.method() != Method::DELETE {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("");
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if !matches!(
            essence.as_str(),
            "application/json"
                | "application/x-ndjson"
                | "application/jsonl"
                | "application/x-protobuf"
                | "application/protobuf"
        ) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "Content-Type {content_type:?}: send application/json (or \
                     application/x-ndjson for NDJSON; application/x-protobuf for remote write)"
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_and_the_public_host_are_allowed() {
        assert!(AllowedHosts::Loopback.allow("localhost:7373"));
        assert!(AllowedHosts::Loopback.allow("[::1]:80"));
        assert!(!AllowedHosts::Loopback.allow("attacker.example:7373"));
        assert!(!AllowedHosts::Loopback.allow("127.0.0.1.attacker.example"));
        assert!(AllowedHosts::Named("alerts.example.com".into()).allow("Alerts.Example.com:443"));
        assert!(!AllowedHosts::Named("alerts.example.com".into()).allow("evil.example"));
        assert!(AllowedHosts::Named("alerts.example.com".into()).allow("localhost:7373"));
    }
}
