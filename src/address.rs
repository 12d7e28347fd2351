//! Host names as HTTP carries them (in `Host` headers, origins and URLs),
//! and client addresses behind trusted proxies.

use std::net::IpAddr;

use ipnet::IpNet;

/// The name part of a `Host` header or an origin's authority, lowercased,
/// without the port.
pub fn host_name(authority: &str) -> String {
    let authority = authority.trim().to_ascii_lowercase();
    if authority.starts_with('[') {
        // [::1]:7373
        return match authority.find(']') {
            Some(end) => authority[..=end].to_string(),
            None => authority,
        };
    }
    match authority.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name.to_string(),
        _ => authority,
    }
}

/// The host (name, no port) of a public URL such as
/// `https://alerts.example.com:8443/`, or `None` if it is not an http(s) URL
/// with a host.
pub fn url_host(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit('@').next().unwrap_or("");
    let name = host_name(authority);
    (!name.is_empty()).then_some(name)
}

/// A trusted proxy as `server.trustedProxies` names it: one address
/// (`10.0.0.2`, `::1`) or a network (`10.0.0.0/8`, `fd00::/8`).
pub fn network(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if let Ok(address) = text.parse::<IpAddr>() {
        return Ok(IpNet::from(address));
    }
    text.parse::<IpNet>().map_err(|_| {
        "expected an IP address (\"10.0.0.2\") or a network (\"10.0.0.0/8\")".to_string()
    })
}

/// Who sent a request: the connection's peer, unless the peer is a trusted
/// proxy; then the last address in `X-Forwarded-For` that is not one (the
/// proxies append the address they received from, so addresses to its left
/// are whatever the client chose to send). A header that cannot be read
/// leaves the peer.
pub fn client_address(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |address: &IpAddr| trusted.iter().any(|net| net.contains(address));
    if !is_trusted(&peer) {
        return peer;
    }
    let Some(header) = forwarded_for else {
        return peer;
    };
    let mut client = peer;
    for entry in header.rsplit(',') {
        match entry.trim().parse::<IpAddr>() {
            Ok(address) => {
                client = address;
                if !is_trusted(&address) {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_lose_their_port() {
        assert_eq!(host_name("LocalHost:7373"), "localhost");
        assert_eq!(host_name("[::1]:7373"), "[::1]");
        assert_eq!(host_name("127.0.0.1"), "127.0.0.1");
        assert_eq!(
            url_host("https://Alerts.example.com:8443/x").as_deref(),
            Some("alerts.example.com")
        );
        assert_eq!(url_host("ftp://x"), None);
        assert_eq!(url_host("https://"), None);
    }

    #[test]
    fn the_client_is_the_last_untrusted_forwarded_address() {
        let proxies = [network("10.0.0.2").unwrap(), network("fd00::/8").unwrap()];
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        // Not from a proxy: the header is the client's own word, ignored.
        assert_eq!(
            client_address(ip("203.0.113.9"), Some("198.51.100.1"), &proxies),
            ip("203.0.113.9")
        );
        // From the proxy: the address it appended.
        assert_eq!(
            client_address(ip("10.0.0.2"), Some("1.2.3.4, 198.51.100.7"), &proxies),
            ip("198.51.100.7")
        );
        // Through two proxies: the last address before them.
        assert_eq!(
            client_address(ip("10.0.0.2"), Some("198.51.100.7, fd00::1"), &proxies),
            ip("198.51.100.7")
        );
        // No header, or one that cannot be read: the proxy itself.
        assert_eq!(
            client_address(ip("10.0.0.2"), None, &proxies),
            ip("10.0.0.2")
        );
        assert_eq!(
            client_address(ip("10.0.0.2"), Some("junk"), &proxies),
            ip("10.0.0.2")
        );
        assert!(network("10.0.0.0/33").is_err());
        assert!(network("proxy.example").is_err());
    }
}
