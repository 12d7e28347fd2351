//! Host names as HTTP carries them: in `Host` headers, origins and URLs.

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
}
