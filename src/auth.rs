//! What the API and the pages share to check who is asking.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

use sha2::Digest;

/// Wrong tokens allowed per client address in [`THROTTLE_WINDOW`];
/// beyond, 429 until the window ends.
const THROTTLE_FAILURES: u32 = 5;
const THROTTLE_WINDOW: std::time::Duration = std::time::Duration::from_secs(60);

/// Wrong tokens per client address in the current window, given to the
/// sign-in form or as an API bearer token alike: both guess one secret.
///
/// While an address is throttled every token it gives is refused unread,
/// the right one too: were the right one let through, a 429 would tell a
/// guesser "wrong" as clearly as a 401 does, at full speed.
#[derive(Default)]
pub struct TokenThrottle {
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl TokenThrottle {
    /// How long `client` must wait before trying again, if it must.
    pub fn wait(&self, client: IpAddr) -> Option<std::time::Duration> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let (count, since) = failures.get(&client)?;
        let left = THROTTLE_WINDOW.checked_sub(since.elapsed())?;
        (*count >= THROTTLE_FAILURES).then_some(left)
    }

    pub fn failed(&self, client: IpAddr) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() > 10_000 {
            failures.retain(|_, (_, since)| since.elapsed() < THROTTLE_WINDOW);
        }
        let entry = failures.entry(client).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= THROTTLE_WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }
}

/// Who sent a request, as the server loop found it: the connection's
/// peer, or behind a trusted proxy the address the proxy forwarded
/// ([`crate::address::client_address`]). Throttles count per client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client(pub IpAddr);

impl Client {
    /// The client of a request; the unspecified address for a request that
    /// did not come through the server loop (a test calling the router).
    pub fn of(extensions: &axum::http::Extensions) -> IpAddr {
        extensions
            .get::<Client>()
            .map_or(IpAddr::from([0, 0, 0, 0]), |client| client.0)
    }
}

/// Compares secrets in time that depends neither on where they differ nor
/// on their lengths: both are hashed first, and the digests (of one length)
/// compared in full.
pub(crate) fn same_secret(a: &[u8], b: &[u8]) -> bool {
    let (a, b) = (sha2::Sha256::digest(a), sha2::Sha256::digest(b));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// A new random session id: 32 bytes from the operating system, in hex.
pub(crate) fn session_id() -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// What the store keeps of a session id: its SHA-256, in hex.
pub(crate) fn session_key(id: &str) -> String {
    sha2::Sha256::digest(id.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"s3 cret", b"s3 cret"));
        assert!(!same_secret(b"s3 cret", b"s3 cre"));
        assert!(!same_secret(b"", b"x"));
        let a = session_id().unwrap();
        let b = session_id().unwrap();
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
        assert_eq!(session_key(&a).len(), 64);
        assert_ne!(session_key(&a), a);
    }
}
