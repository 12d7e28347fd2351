//! Signing in to the pages when a token is configured: a form that takes the
//! token once and opens a session, for the pages only (the API still wants
//! the bearer token). The session's id is random; the store keeps only its
//! hash, so that sessions survive a restart and work on every node of a
//! cluster; signing out ends it; it expires after a week. Failed sign-ins
//! are throttled per client address, together with wrong API tokens
//! ([`crate::auth::TokenThrottle`]).

use std::net::IpAddr;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Form, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::PageQuery;
use super::{Chrome, Nav, PageContext, SESSION_COOKIE, layout};
use crate::auth::{Client, same_secret, session_id, session_key};
use crate::duration::Millis;
use crate::service::Service;

/// How long a session lasts.
const SESSION_LIFETIME: Millis = 7 * 24 * 3600 * 1000;
/// Redirects to the sign-in form when a token is configured and the
/// request has no live session.
pub(super) async fn require_session(
    State(service): State<Arc<Service>>,
    request: Request,
    next: Next,
) -> Response {
    if service.token().is_some() {
        let key = session_cookie(request.headers()).map(session_key);
        let worker = service.clone();
        let live = match key {
            None => false,
            Some(key) => tokio::task::spawn_blocking(move || worker.store().session_expires(&key))
                .await
                .ok()
                .and_then(Result::ok)
                .flatten()
                .is_some_and(|expires| expires > service.now()),
        };
        if !live {
            let target = request
                .uri()
                .path_and_query()
                .map_or("/", |target| target.as_str());
            let query = serde_urlencoded::to_string([("next", target)]).unwrap_or_default();
            return Redirect::to(&format!("/login?{query}")).into_response();
        }
    }
    next.run(request).await
}

/// The session id the request's cookie carries.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == SESSION_COOKIE && !value.is_empty())
        .map(|(_, value)| value)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct LoginParams {
    next: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(super) struct LoginForm {
    token: String,
    next: Option<String>,
}

/// Where to go after signing in: a path on this server, nothing else. Only
/// visible ASCII is taken (percent-encode the rest): browsers drop tabs and
/// newlines from a `Location`, so `/\t/evil.example` would leave the site, and
/// a control character cannot be sent in a header at all.
fn local_target(next: Option<&str>) -> &str {
    match next {
        Some(next)
            if next.starts_with('/')
                && !next.starts_with("//")
                && next.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') =>
        {
            next
        }
        _ => "/",
    }
}

fn login_page(context: &PageContext, next: &str, failed: bool) -> Html<String> {
    let content = html! {
        form.signin method="post" action="/login" {
            p { "This server needs its API token (" code { "server.token" } " or " code { "ALERTD_TOKEN" } ")." }
            @if failed {
                p.error role="alert" { "That token is not the right one." }
            }
            input type="hidden" name="next" value=(next);
            label { "Token " input type="password" name="token" autocomplete="current-password" required autofocus; }
            button type="submit" { "Sign in" }
        }
    };
    let chrome = Chrome {
        title: "Sign in",
        nav: Nav::None,
        node: context.service.host_name(),
        cluster: None,
        signed_in: false,
        refresh: None,
        // Nothing about the store before signing in.
        warnings: Vec::new(),
        notices: Vec::new(),
        scrapes: false,
    };
    Html(layout(&chrome, content).into_string())
}

pub(super) async fn login_form(
    State(service): State<Arc<Service>>,
    PageQuery(params): PageQuery<LoginParams>,
) -> Response {
    let next = local_target(params.next.as_deref()).to_string();
    if service.token().is_none() {
        return Redirect::to(&next).into_response();
    }
    login_page(&PageContext::new(service), &next, false).into_response()
}

pub(super) async fn login(
    State(service): State<Arc<Service>>,
    client: Option<Extension<Client>>,
    Form(form): Form<LoginForm>,
) -> Response {
    let next = local_target(form.next.as_deref()).to_string();
    let Some(token) = service.token() else {
        return Redirect::to(&next).into_response();
    };
    let client = client.map_or(IpAddr::from([0, 0, 0, 0]), |Extension(client)| client.0);
    if let Some(wait) = service.token_throttle().wait(client) {
        service.metrics().wrong_token();
        tracing::warn!(%client, "sign-in refused: too many wrong tokens from this address");
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, wait.as_secs().max(1).to_string())],
            "Too many wrong tokens from this address: wait a minute.",
        )
            .into_response();
    }
    if !same_secret(form.token.trim().as_bytes(), token.as_bytes()) {
        service.token_throttle().failed(client);
        service.metrics().wrong_token();
        tracing::warn!(%client, "a sign-in to the pages failed");
        let page = login_page(&PageContext::new(service.clone()), &next, true);
        return (StatusCode::UNAUTHORIZED, page).into_response();
    }
    let id = match session_id() {
        Ok(id) => id,
        Err(error) => {
            tracing::error!(%error, "cannot make a session id");
            return (StatusCode::INTERNAL_SERVER_ERROR, "cannot make a session").into_response();
        }
    };
    let now = service.now();
    let key = session_key(&id);
    let worker = service.clone();
    let stored = tokio::task::spawn_blocking(move || {
        let store = worker.store();
        // Sessions that ran out go at each sign-in.
        store.delete_sessions_expired(now)?;
        store.put_session(&key, now + SESSION_LIFETIME)
    })
    .await;
    if !matches!(stored, Ok(Ok(()))) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the store cannot keep the session",
        )
            .into_response();
    }
    let secure = service
        .read_config(|config| config.server.public_url.clone())
        .is_some_and(|url| url.starts_with("https://"));
    let cookie = format!(
        "{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        SESSION_LIFETIME / 1000,
        if secure { "; Secure" } else { "" }
    );
    session_redirect(&next, &cookie)
}

/// Ends the session: it no longer opens the pages, whoever holds the
/// cookie.
pub(super) async fn logout(State(service): State<Arc<Service>>, headers: HeaderMap) -> Response {
    if let Some(key) = session_cookie(&headers).map(session_key) {
        let worker = service.clone();
        let _ = tokio::task::spawn_blocking(move || worker.store().delete_session(&key)).await;
    }
    session_redirect(
        "/login",
        &format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    )
}

fn session_redirect(to: &str, cookie: &str) -> Response {
    let mut response = Redirect::to(to).into_response();
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}
