//! The address people reach this server at, for links that leave it: the attachment
//! links of exports (opened from Excel) and the enrolment QR code (scanned by a phone).
//!
//! `public_url` in the config file wins (behind a reverse proxy that rewrites `Host`);
//! else the request's `Host` with `https` when the server serves TLS itself or its
//! console cookies are `Secure` (TLS at a proxy), `http` otherwise; a `Host` that is not
//! a plain host name or address with an optional port is not used (the server's own
//! listen address is), so a forged header cannot put markup or another path into a
//! link.

use std::convert::Infallible;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};

use crate::config::Config;
use crate::state::AppState;

/// `scheme://host[:port]` of this server as the request reached it (no trailing slash).
pub fn of(config: &Config, headers: &HeaderMap) -> String {
    if let Some(url) = &config.public_url {
        return url.clone();
    }
    let scheme = if config.tls_cert.is_some() || config.console.secure_cookies {
        "https"
    } else {
        "http"
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| is_plain_host(h))
        .map_or_else(|| config.listen.to_string(), str::to_owned);
    format!("{scheme}://{host}")
}

/// A host name, IPv4 or bracketed IPv6 address, with an optional port: letters,
/// digits, `.`, `-`, `:`, `[`, `]`, at most 255 of them.
fn is_plain_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

/// Extractor: the origin of the request ([`of`]); never refuses.
#[derive(Debug, Clone)]
pub struct Origin(pub String);

impl FromRequestParts<AppState> for Origin {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        Ok(Origin(of(&state.config, &parts.headers)))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;
    use crate::config::{FileConfig, Overrides};

    fn config(file: FileConfig) -> Config {
        Config::resolve(Overrides::default(), file).unwrap()
    }

    fn host(h: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, h.parse().unwrap());
        headers
    }

    #[test]
    fn links_use_the_configured_url_else_the_requests_host_if_it_is_plain() {
        let plain = config(FileConfig::default());
        assert_eq!(of(&plain, &host("10.0.0.5:8080")), "http://10.0.0.5:8080");
        assert_eq!(of(&plain, &host("[::1]:8080")), "http://[::1]:8080");
        for forged in ["evil.example/\"><script>", "a b", "x@y", "h/p"] {
            assert_eq!(
                of(&plain, &host(forged)),
                "http://127.0.0.1:8080",
                "{forged}"
            );
        }
        assert_eq!(of(&plain, &HeaderMap::new()), "http://127.0.0.1:8080");
        let secure = config(FileConfig {
            console: Some(crate::config::ConsoleConfig {
                secure_cookies: true,
                ..Default::default()
            }),
            ..FileConfig::default()
        });
        assert_eq!(of(&secure, &host("yb.example")), "https://yb.example");
        let public = config(FileConfig {
            public_url: Some("https://yibiao.example.cn/".into()),
            ..FileConfig::default()
        });
        assert_eq!(of(&public, &host("10.0.0.5")), "https://yibiao.example.cn");
    }

    #[test]
    fn a_public_url_must_be_an_http_address() {
        for bad in ["yibiao.example", "ftp://x", "https://x/a?b", "https://"] {
            let e = Config::resolve(
                Overrides::default(),
                FileConfig {
                    public_url: Some(bad.into()),
                    ..FileConfig::default()
                },
            )
            .unwrap_err();
            assert!(e.contains("public_url"), "{bad}: {e}");
        }
    }
}
