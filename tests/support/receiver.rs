//! A real HTTP receiver for the notification tests: it records what each
//! path name (`/hook/{name}`) got, and answers as planned: a status, a
//! `Retry-After`, a delay.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

/// What the receiver got: per path name, each request's headers, body and
/// arrival.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: BTreeMap<String, String>,
    pub body: String,
    pub at: Instant,
}

/// An answer to give: status, and `Retry-After` in seconds.
pub type Answer = (u16, Option<u64>);

#[derive(Default)]
pub struct Receiver {
    received: Mutex<BTreeMap<String, Vec<Received>>>,
    /// Per name, the answers to give first (status, Retry-After); then 200.
    plans: Mutex<BTreeMap<String, VecDeque<Answer>>>,
    /// Per name, how long to take before answering.
    pub delays: Mutex<BTreeMap<String, Duration>>,
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let headers = headers
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap_or("").to_string()))
        .collect();
    receiver
        .received
        .lock()
        .unwrap()
        .entry(name.clone())
        .or_default()
        .push(Received {
            headers,
            body,
            at: Instant::now(),
        });
    let delay = receiver.delays.lock().unwrap().get(&name).copied();
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let planned = receiver
        .plans
        .lock()
        .unwrap()
        .get_mut(&name)
        .and_then(VecDeque::pop_front);
    match planned {
        None => (StatusCode::OK, "thanks").into_response(),
        Some((status, retry_after)) => {
            let status = StatusCode::from_u16(status).unwrap();
            match retry_after {
                Some(seconds) => {
                    (status, [("retry-after", seconds.to_string())], "later").into_response()
                }
                None => (status, "no").into_response(),
            }
        }
    }
}

/// Starts a receiver on a free port, on a runtime of its own.
pub fn start_receiver() -> (Arc<Receiver>, SocketAddr) {
    let receiver = Arc::new(Receiver::default());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let address = listener.local_addr().unwrap();
    let state = receiver.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let app = axum::Router::new()
                .route("/hook/{name}", axum::routing::post(receive))
                .with_state(state);
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    (receiver, address)
}

impl Receiver {
    pub fn got(&self, name: &str) -> Vec<Received> {
        self.received
            .lock()
            .unwrap()
            .get(name)
            .cloned()
            .unwrap_or_default()
    }

    pub fn plan(&self, name: &str, answers: &[Answer]) {
        self.plans
            .lock()
            .unwrap()
            .insert(name.to_string(), answers.iter().copied().collect());
    }
}
