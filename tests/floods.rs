//! Floods a real `alertd run` as a greedy or hostile client would:
//! connections held open, one address taking every slot, guessed tokens,
//! thousands of new hosts in one push. Each test checks that the others are
//! still served and that what was refused changed nothing.
//!
//! Every address of 127.0.0.0/8 is this machine on Linux: a test that needs
//! two clients connects from 127.0.0.2 as well as from 127.0.0.1.

mod support;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::json;

use support::{Alertd, now, wait_for};

fn config(server: &str) -> String {
    format!(
        r#"{{
  "alerting": {{"enabled": true, "watcherInterval": "100ms", "rules": [
    {{"name": "x high", "field": "x", "aggregation": "last",
      "operand": "equalOrMoreThan", "value": 10, "timeframe": "10s"}}]}},
  "server": {server}
}}"#
    )
}

/// A connection to `port` from `source` (an address of this machine).
fn connect_from(source: &str, port: u16) -> std::io::Result<TcpStream> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(source.parse::<IpAddr>().unwrap(), 0))?;
        let stream = socket
            .connect(SocketAddr::from(([127, 0, 0, 1], port)))
            .await?;
        let stream = stream.into_std()?;
        stream.set_nonblocking(false)?;
        Ok(stream)
    })
}

/// Sends one request from `source` and reads the answer: its status and
/// the whole text (headers and body); status 0 if the server closed the
/// connection without one.
fn request_from(source: &str, port: u16, request: &str) -> (u16, String) {
    let mut stream = connect_from(source, port).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

/// `GET /api/v1/rules` with a bearer token and headers of the caller's.
fn api_get(source: &str, port: u16, token: Option<&str>, extra: &str) -> (u16, String) {
    let authorization = token
        .map(|token| format!("Authorization: Bearer {token}\r\n"))
        .unwrap_or_default();
    request_from(
        source,
        port,
        &format!(
            "GET /api/v1/rules HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{authorization}{extra}\
             Connection: close\r\n\r\n"
        ),
    )
}

/// Whether the server closed `stream` (read gives end of file) within
/// `wait`; `false` if it is still open.
fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        // End of file, or an error answer before the close.
        Ok(0 | 1..) => true,
        Err(error) => !matches!(
            error.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn connections_held_open_and_reopened_keep_no_one_out() {
    let dir = tempfile::tempdir().unwrap();
    // The idle timeout is long: what lets others in must be that the server
    // closes the longest idle connection when the table is full.
    std::fs::write(
        dir.path().join("alertd.json"),
        config(r#"{"idleTimeout": "60s", "connectionsPerClient": 100000}"#),
    )
    .unwrap();
    // 256 open files at most: room for 64 connections.
    let alertd = Alertd::start_under(dir.path(), &["prlimit", "--nofile=256:256"]);
    let port = alertd.port;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let holder = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            // Holds 200 connections, reopening each the server closes.
            let mut held: Vec<Option<TcpStream>> = (0..200).map(|_| None).collect();
            let mut opened = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for slot in held.iter_mut() {
                    let open = slot
                        .as_mut()
                        .is_some_and(|stream| !closed_within(stream, Duration::from_micros(100)));
                    if !open {
                        *slot = connect_from("127.0.0.2", port).ok();
                        opened += 1;
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            opened
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    let mut served = 0;
    let started = Instant::now();
    for _ in 0..30 {
        let (status, _) = request_from(
            "127.0.0.1",
            port,
            &format!(
                "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
            ),
        );
        served += usize::from(status == 200);
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let opened = holder.join().unwrap();
    assert_eq!(
        served,
        30,
        "health probes served while the table was held; log:\n{}",
        alertd.log()
    );
    assert!(
        opened > 200,
        "the holder never had to reopen: the table was not full ({opened} opened)"
    );
    // Well within the 60 s idle timeout: the probes did not wait for it.
    assert!(took < Duration::from_secs(30), "{took:?}");
}

#[test]
fn one_address_holds_at_most_its_share_of_connections() {
    let dir = tempfile::tempdir().unwrap();
    let alertd = Alertd::start(
        dir.path(),
        &config(r#"{"idleTimeout": "60s", "connectionsPerClient": 8}"#),
    );
    let mut held: Vec<TcpStream> = (0..12)
        .map(|_| connect_from("127.0.0.2", alertd.port).unwrap())
        .collect();
    // The server has taken them all, in order, before we look.
    std::thread::sleep(Duration::from_millis(500));
    let closed: Vec<bool> = held
        .iter_mut()
        .map(|stream| closed_within(stream, Duration::from_millis(300)))
        .collect();
    assert_eq!(
        closed.iter().filter(|closed| !**closed).count(),
        8,
        "{closed:?}"
    );
    assert_eq!(
        closed.iter().filter(|closed| **closed).count(),
        4,
        "{closed:?}"
    );
    // Another address is served.
    assert_eq!(alertd.get("/healthz").0, 200);
    assert!(
        alertd.log().contains("server.connectionsPerClient"),
        "{}",
        alertd.log()
    );
    // Once the address lets go, it is served again.
    drop(held);
    wait_for("127.0.0.2 to be served again", 20, || {
        let (status, _) = api_get("127.0.0.2", alertd.port, None, "");
        (status == 200).then_some(())
    });
}

#[test]
fn wrong_bearer_tokens_are_throttled_per_client() {
    let dir = tempfile::tempdir().unwrap();
    let mut alertd = Alertd::start(dir.path(), &config(r#"{"token": "s3 cret"}"#));
    let port = alertd.port;
    // Requests without a token guess nothing: never throttled.
    for _ in 0..10 {
        assert_eq!(api_get("127.0.0.2", port, None, "").0, 401);
    }
    assert_eq!(api_get("127.0.0.2", port, Some("s3 cret"), "").0, 200);
    // Five wrong tokens within a minute...
    for guess in 0..5 {
        let (status, answer) = api_get("127.0.0.2", port, Some(&format!("guess{guess}")), "");
        assert_eq!(status, 401, "{answer}");
    }
    // ...and the address must wait, whatever it sends.
    let (status, answer) = api_get("127.0.0.2", port, Some("s3 cret"), "");
    assert_eq!(status, 429, "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after:"),
        "{answer}"
    );
    assert!(answer.contains("too many wrong tokens"), "{answer}");
    // The sign-in form shares the count: one secret, one throttle.
    let (status, _) = request_from(
        "127.0.0.2",
        port,
        &format!(
            "POST /login HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: \
             application/x-www-form-urlencoded\r\nContent-Length: 13\r\nConnection: close\r\n\r\n\
             token=s3+cret"
        ),
    );
    assert_eq!(status, 429);
    // Another client is not held back.
    assert_eq!(api_get("127.0.0.1", port, Some("s3 cret"), "").0, 200);
    // A forwarded address from a client that is not a trusted proxy is its
    // own word: ignored.
    let (status, _) = api_get(
        "127.0.0.2",
        port,
        Some("s3 cret"),
        "X-Forwarded-For: 198.51.100.9\r\n",
    );
    assert_eq!(status, 429);
    alertd.token = Some("s3 cret".into());
    assert_eq!(alertd.metric("alertd_wrong_tokens_total"), 8.0);
}

#[test]
fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_throttle() {
    let dir = tempfile::tempdir().unwrap();
    let alertd = Alertd::start(
        dir.path(),
        &config(r#"{"token": "s3 cret", "trustedProxies": ["127.0.0.1"]}"#),
    );
    let port = alertd.port;
    let via_proxy = |client: &str, token: &str| {
        api_get(
            "127.0.0.1",
            port,
            Some(token),
            &format!("X-Forwarded-For: 203.0.113.50, {client}\r\n"),
        )
        .0
    };
    for _ in 0..5 {
        assert_eq!(via_proxy("198.51.100.7", "wrong"), 401);
    }
    assert_eq!(via_proxy("198.51.100.7", "s3 cret"), 429);
    // Another client behind the same proxy signs in: the proxy's address
    // is not what is throttled.
    assert_eq!(via_proxy("198.51.100.8", "s3 cret"), 200);
    // The address left of the proxy's is the client's own word: a guesser
    // cannot escape its throttle by writing another there.
    let (status, _) = api_get(
        "127.0.0.1",
        port,
        Some("s3 cret"),
        "X-Forwarded-For: 198.51.100.99\r\nX-Forwarded-For: 198.51.100.7\r\n",
    );
    assert_eq!(status, 429);
    let log = alertd.log();
    assert!(log.contains("198.51.100.7"), "{log}");
}

#[test]
fn new_hosts_are_limited_per_batch_and_in_all() {
    let dir = tempfile::tempdir().unwrap();
    let server = r#"{"maxNewHostsPerBatch": 10, "maxHosts": 25}"#;
    let alertd = Alertd::start(dir.path(), &config(server));
    let batch = |prefix: &str, count: usize| {
        let samples: Vec<_> = (0..count)
            .map(|i| json!({"host": format!("{prefix}-{i}"), "ts": now(), "metrics": {"x": 1}}))
            .collect();
        serde_json::to_string(&samples).unwrap()
    };
    let hosts = |alertd: &Alertd| {
        let answer = alertd.get_json("/api/v1/hosts");
        answer["hosts"].as_array().unwrap().len()
    };
    let (status, body) = alertd.post("/api/v1/samples", "application/json", batch("a", 11));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("server.maxNewHostsPerBatch (10)"), "{body}");
    assert_eq!(hosts(&alertd), 0, "a refused batch stores nothing");
    for prefix in ["a", "b"] {
        let (status, body) = alertd.post("/api/v1/samples", "application/json", batch(prefix, 10));
        assert_eq!(status, 200, "{body}");
    }
    // 20 known: 6 more would pass 25.
    let (status, body) = alertd.post("/api/v1/samples", "application/json", batch("c", 6));
    assert_eq!(status, 429, "{body}");
    assert!(
        body.contains("alertd knows 20 hosts") && body.contains("server.maxHosts (25)"),
        "{body}"
    );
    // Known hosts still report, and 5 new ones fit.
    let (status, _) = alertd.post("/api/v1/samples", "application/json", batch("a", 10));
    assert_eq!(status, 200);
    let (status, _) = alertd.post("/api/v1/samples", "application/json", batch("c", 5));
    assert_eq!(status, 200);
    assert_eq!(hosts(&alertd), 25);
    assert_eq!(
        alertd.metric(r#"alertd_batches_refused_for_hosts_total{limit="maxNewHostsPerBatch"}"#),
        1.0
    );
    assert_eq!(
        alertd.metric(r#"alertd_batches_refused_for_hosts_total{limit="maxHosts"}"#),
        1.0
    );
    // A restarted node counts the hosts the store holds.
    drop(alertd);
    let alertd = Alertd::start_existing(dir.path());
    let (status, body) = alertd.post("/api/v1/samples", "application/json", batch("d", 1));
    assert_eq!(status, 429, "{body}");
}

#[test]
fn a_stats_answer_nobody_reads_keeps_no_page_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let alertd = Alertd::start(dir.path(), &config("{}"));
    // 4 hosts x 5,000 seconds x 20 fields: about 14 MB of answer at 1 s,
    // far more than the sockets between hold.
    let start = now() - 6_000_000;
    for chunk in (0..5_000).collect::<Vec<i64>>().chunks(500) {
        let samples: Vec<_> = chunk
            .iter()
            .flat_map(|second| {
                (0..4).map(move |host| {
                    let metrics: serde_json::Map<String, serde_json::Value> = (0..20)
                        .map(|field| (format!("field.{field}"), json!(second * 7 + field)))
                        .collect();
                    json!({"host": format!("h-{host}"), "ts": start + second * 1000, "metrics": metrics})
                })
            })
            .collect();
        let (status, body) = alertd.push(serde_json::Value::Array(samples));
        assert_eq!(status, 200, "{body}");
    }
    let port = alertd.port;
    let held = {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        runtime.block_on(async {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.set_recv_buffer_size(4096).unwrap();
            let stream = socket
                .connect(SocketAddr::from(([127, 0, 0, 1], port)))
                .await
                .unwrap();
            let stream = stream.into_std().unwrap();
            stream.set_nonblocking(false).unwrap();
            stream
        })
    };
    let mut held = held;
    let path = format!(
        "/api/v1/stats?from={start}&to={}&resolution=1000",
        start + 5_000_000
    );
    held.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    // Its head comes once every host's figures are read.
    let mut head = [0u8; 12];
    held.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    held.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    // Nothing more is read from it; the pages, which take the same turns as
    // the stats, are still served (on two cores there is one such turn).
    for page in ["/monitoring", "/rules", "/monitoring?frame=1h"] {
        let (status, body) = alertd.get(page);
        assert_eq!(status, 200, "{page}: {body}");
    }
    // And the held answer is whole when read at last.
    let mut rest = Vec::new();
    held.read_to_end(&mut rest).unwrap();
    let rest = String::from_utf8(rest).unwrap();
    assert!(rest.len() > 12_000_000, "{}", rest.len());
    assert!(rest.contains("\"h-3\":[{"), "the last host is in it");
    assert!(
        rest.ends_with("}\r\n0\r\n\r\n"),
        "{}",
        &rest[rest.len() - 100..]
    );
}
