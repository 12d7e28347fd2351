//! Signing in to the pages when a token is configured: a form that takes the
//! token once and a cookie that keeps it, for the pages only (the API still
//! wants the bearer token).

use std::sync::Arc;

use axum::extract::{Form, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::PageQuery;
use super::{Chrome, Nav, PageContext, SESSION_COOKIE, layout};
use crate::auth::same_secret;
use crate::service::Service;

/// Redirects to the sign-in form when a token is configured and the
/// request has no session cookie with it.
pub(super) async fn require_session(
    State(service): State<Arc<Service>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(token) = service.token()
        && !has_session(request.headers(), token)
    {
        let target = request
            .uri()
            .path_and_query()
            .map_or("/", |target| target.as_str());
        let query = serde_urlencoded::to_string([("next", target)]).unwrap_or_default();
        return Redirect::to(&format!("/login?{query}")).into_response();
    }
    next.run(request).await
}

fn has_session(headers: &HeaderMap, token: &str) -> bool {
    let expected = hex(token);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .any(|(name, value)| {
            name == SESSION_COOKIE && same_secret(value.as_bytes(), expected.as_bytes())
        })
}

fn hex(text: &str) -> String {
    text.bytes().map(|byte| format!("{byte:02x}")).collect()
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
    Form(form): Form<LoginForm>,
) -> Response {
    let next = local_target(form.next.as_deref()).to_string();
    let Some(token) = service.token() else {
        return Redirect::to(&next).into_response();
    };
    if !same_secret(form.token.trim().as_bytes(), token.as_bytes()) {
        tracing::warn!("a sign-in to the pages failed");
        let page = login_page(&PageContext::new(service.clone()), &next, true);
        return (StatusCode::UNAUTHORIZED, page).into_response();
    }
    let cookie = format!(
        "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age=2592000",
        hex(token)
    );
    session_redirect(&next, &cookie)
}

pub(super) async fn logout() -> Response {
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
