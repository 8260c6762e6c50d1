//! The built-in HTTP transport: blocking, rustls, no OpenSSL to ship on phones.

use std::time::Duration;

use yibiao_sync::session::{Transport, TransportError};

/// Media type of sync bodies.
pub const SYNC_CONTENT_TYPE: &str = "application/x-yibiao-sync";
/// Largest response body accepted.
const MAX_RESPONSE: u64 = 32 * 1024 * 1024;

/// Where a phone's sync requests go: `<server>/v1/sync`.
pub fn sync_url(server_url: &str) -> String {
    format!("{}/v1/sync", server_url.trim_end_matches('/'))
}

/// The headers of a sync request carrying `token`, for this transport and for an app's
/// own HTTP stack alike.
pub fn sync_headers(token: &str) -> [(&'static str, String); 2] {
    [
        ("Authorization", format!("Bearer {token}")),
        ("Content-Type", SYNC_CONTENT_TYPE.to_owned()),
    ]
}

/// POSTs sync bodies to `<server>/v1/sync` with a bearer token.
pub struct HttpTransport {
    agent: ureq::Agent,
    url: String,
    token: String,
}

impl std::fmt::Debug for HttpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpTransport")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// The longest a pooled connection is reused after its last exchange: below the
/// server's `header_read_timeout_secs`, after which it closes idle connections.
const IDLE_REUSE: Duration = Duration::from_secs(5);

impl HttpTransport {
    /// A transport to `server_url` (e.g. `http://10.0.0.2:8080`), authenticating with the
    /// device's `token`. `timeout` bounds one whole exchange: on a 2G link give minutes.
    pub fn new(server_url: &str, token: &str, timeout: Duration) -> Self {
        Self::with_roots(server_url, token, timeout, ureq::tls::RootCerts::WebPki)
    }

    /// Like [`HttpTransport::new`], for an `https://` server whose certificate is signed
    /// by the CA in `ca_pem` (or is that self-signed certificate itself): a county server
    /// with its own CA. Only that CA is trusted (pinned); the public roots are not.
    pub fn with_trusted_ca(
        server_url: &str,
        token: &str,
        timeout: Duration,
        ca_pem: &[u8],
    ) -> Result<Self, String> {
        Ok(Self::with_roots(
            server_url,
            token,
            timeout,
            trusted_roots(ca_pem)?,
        ))
    }

    fn with_roots(
        server_url: &str,
        token: &str,
        timeout: Duration,
        roots: ureq::tls::RootCerts,
    ) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .timeout_connect(Some(timeout.min(Duration::from_secs(30))))
            // The server closes a keep-alive connection idle for its header deadline
            // (10 s by default); reusing one older than that would fail an exchange.
            .max_idle_age(IDLE_REUSE)
            .http_status_as_error(false)
            .tls_config(ureq::tls::TlsConfig::builder().root_certs(roots).build())
            .build()
            .into();
        Self {
            agent,
            url: sync_url(server_url),
            token: token.to_owned(),
        }
    }
}

/// The roots of a pinned county CA: the certificates of `ca_pem` (PEM text), and only
/// them. An error says what is wrong with the text.
pub fn trusted_roots(ca_pem: &[u8]) -> Result<ureq::tls::RootCerts, String> {
    let certs = ureq::tls::parse_pem(ca_pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
            Ok(_) => None,
            Err(e) => Some(Err(format!("trusted CA: not PEM: {e}"))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if certs.is_empty() {
        return Err("trusted CA: no PEM certificate (-----BEGIN CERTIFICATE-----)".into());
    }
    Ok(ureq::tls::RootCerts::new_with_certs(&certs))
}

fn network(e: ureq::Error) -> TransportError {
    match e {
        ureq::Error::Timeout(_) => TransportError::Timeout,
        other => TransportError::Network(other.to_string()),
    }
}

impl Transport for HttpTransport {
    fn exchange(&self, request: &[u8]) -> Result<Vec<u8>, TransportError> {
        let mut post = self.agent.post(&self.url);
        for (name, value) in sync_headers(&self.token) {
            post = post.header(name, &value);
        }
        let mut response = post.send(request).map_err(network)?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE)
            .read_to_vec()
            .map_err(network)?;
        if status == 200 {
            return Ok(body);
        }
        // Errors come as the server's JSON envelope: {"error": {"code", "message"}}.
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect());
        Err(TransportError::Status { status, message })
    }
}

impl HttpTransport {
    fn blob_url(&self, sha256: &str) -> String {
        let base = self.url.strip_suffix("/v1/sync").unwrap_or(&self.url);
        format!("{base}/v1/blobs/{sha256}")
    }
}

/// The server's refusal of a blob request, from its JSON envelope.
fn blob_refusal(status: u16, body: &[u8]) -> crate::blobs::ChunkError {
    let v = serde_json::from_slice::<serde_json::Value>(body).unwrap_or_default();
    let message = v["error"]["message"]
        .as_str()
        .map_or_else(|| format!("server answered {status}"), str::to_owned);
    match v["error"]["reason"].as_str() {
        Some(code) if status == 400 => crate::blobs::ChunkError::Refused {
            code: code.to_owned(),
            held: v["error"]["params"]["held"]
                .as_str()
                .and_then(|h| h.parse().ok()),
            message,
        },
        _ => crate::blobs::ChunkError::Transport(TransportError::Status { status, message }),
    }
}

/// The blob routes of ADR 0013 over the same agent and token as sync.
impl crate::blobs::BlobTransport for HttpTransport {
    fn held(&self, sha256: &str) -> Result<(u64, bool), TransportError> {
        let response = self
            .agent
            .head(&self.blob_url(sha256))
            .header("Authorization", &format!("Bearer {}", self.token))
            .call()
            .map_err(network)?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(TransportError::Status {
                status,
                message: format!("asking how much of attachment {sha256} the server holds"),
            });
        }
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let held = header("upload-offset")
            .and_then(|h| h.parse().ok())
            .unwrap_or(0);
        Ok((held, header("upload-complete").as_deref() == Some("?1")))
    }

    fn put(
        &self,
        sha256: &str,
        size: u64,
        offset: u64,
        chunk: &[u8],
    ) -> Result<(u64, bool), crate::blobs::ChunkError> {
        let url = format!("{}?offset={offset}&size={size}", self.blob_url(sha256));
        let mut response = self
            .agent
            .put(&url)
            .header("Authorization", &format!("Bearer {}", self.token))
            .header("Content-Type", "application/octet-stream")
            .send(chunk)
            .map_err(network)?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(1 << 16)
            .read_to_vec()
            .map_err(network)?;
        if status != 200 {
            return Err(blob_refusal(status, &body));
        }
        let v = serde_json::from_slice::<serde_json::Value>(&body).unwrap_or_default();
        match (v["held"].as_u64(), v["complete"].as_bool()) {
            (Some(held), Some(complete)) => Ok((held, complete)),
            _ => Err(TransportError::Network("unexpected answer to a chunk".into()).into()),
        }
    }

    fn get(&self, sha256: &str) -> Result<Vec<u8>, crate::blobs::ChunkError> {
        let mut response = self
            .agent
            .get(&self.blob_url(sha256))
            .header("Authorization", &format!("Bearer {}", self.token))
            .call()
            .map_err(network)?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE)
            .read_to_vec()
            .map_err(network)?;
        if status == 200 {
            Ok(body)
        } else {
            Err(blob_refusal(status, &body))
        }
    }
}

/// What the server answers to a successful enrolment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct Enrolment {
    /// The device token; keep it secret (see [`crate::store::Store::set_credentials`]).
    pub token: String,
    /// This phone's device id, as the server lists it (the one its changes carry).
    pub device: String,
    /// The cadre the code was issued to.
    pub cadre: String,
    /// The village the device may read and write; `None` for township staff.
    pub village: Option<String>,
}

/// The server address as typed on a phone, made into a base URL: `http://` or `https://`
/// addresses are kept as they are; a bare `host:port` is taken as `http://` when the host
/// is on this phone or the local network (loopback, `localhost`, 10/8, 172.16/12,
/// 192.168/16, `*.local`), where a township server often has no certificate. Any other
/// bare address is refused with what to write: over the internet the scheme is the
/// operator's choice, never a guess.
pub fn server_base_url(typed: &str) -> Result<String, EnrolError> {
    let typed = typed.trim().trim_end_matches('/');
    if typed.starts_with("http://") || typed.starts_with("https://") {
        return Ok(typed.to_owned());
    }
    let bad = || {
        EnrolError::BadAddress(format!(
            "server address `{typed}` has no scheme; write it as https://{typed} (or http://{typed} on a local network)"
        ))
    };
    if typed.is_empty() || typed.contains("://") || typed.contains(char::is_whitespace) {
        return Err(EnrolError::BadAddress(format!(
            "`{typed}` is not a server address; write it like https://yibiao.example.gov.cn or 192.168.1.10:8080"
        )));
    }
    let host = typed.split('/').next().unwrap_or_default();
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) => h,
        _ => host,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let local = match host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => ip.is_loopback() || ip.is_private(),
        Ok(std::net::IpAddr::V6(ip)) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost") || host.ends_with(".local"),
    };
    if local {
        Ok(format!("http://{typed}"))
    } else {
        Err(bad())
    }
}

/// Why enrolment failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnrolError {
    /// The code is unknown, expired or already used.
    #[error("{0}")]
    BadCode(String),
    /// The server address cannot be used as typed; the message says what to write.
    #[error("{0}")]
    BadAddress(String),
    /// The server could not be reached or answered badly.
    #[error("enrolment failed: {0}")]
    Transport(#[from] TransportError),
}

/// Enrols this phone with a one-time code: `POST <server>/v1/enrol` (`server_url` as
/// [`server_base_url`] reads it).
pub fn enrol(
    server_url: &str,
    code: &str,
    device: &str,
    timeout: Duration,
) -> Result<Enrolment, EnrolError> {
    enrol_trusting(server_url, code, device, timeout, None)
}

/// [`enrol`] with the roots of a pinned county CA ([`trusted_roots`]) instead of the
/// public ones, when `roots` is given.
pub fn enrol_trusting(
    server_url: &str,
    code: &str,
    device: &str,
    timeout: Duration,
    roots: Option<ureq::tls::RootCerts>,
) -> Result<Enrolment, EnrolError> {
    let mut config = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(false);
    if let Some(roots) = roots {
        config = config.tls_config(ureq::tls::TlsConfig::builder().root_certs(roots).build());
    }
    let agent: ureq::Agent = config.build().into();
    let url = format!("{}/v1/enrol", server_base_url(server_url)?);
    let body = serde_json::json!({ "code": code, "device": device }).to_string();
    let mut response = agent
        .post(&url)
        .header("Content-Type", "application/json")
        .send(body.as_bytes())
        .map_err(network)?;
    let status = response.status().as_u16();
    let bytes = response
        .body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_vec()
        .map_err(network)?;
    let json: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    match status {
        200 | 201 => serde_json::from_value(json).map_err(|e| {
            EnrolError::Transport(TransportError::Network(format!(
                "unexpected enrolment answer: {e}"
            )))
        }),
        400 | 401 | 404 | 410 => Err(EnrolError::BadCode(
            json["error"]["message"]
                .as_str()
                .unwrap_or("the enrolment code was refused")
                .to_owned(),
        )),
        _ => Err(EnrolError::Transport(TransportError::Status {
            status,
            message: json["error"]["message"].as_str().unwrap_or("").to_owned(),
        })),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn a_bare_local_address_is_taken_as_http_and_another_says_what_to_write() {
        for (typed, url) in [
            ("127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("192.168.1.10:8080/", "http://192.168.1.10:8080"),
            ("localhost:8080", "http://localhost:8080"),
            ("[::1]:8080", "http://[::1]:8080"),
            (
                " https://yibiao.example.gov.cn/ ",
                "https://yibiao.example.gov.cn",
            ),
            ("http://8.8.8.8:80", "http://8.8.8.8:80"),
        ] {
            assert_eq!(server_base_url(typed).unwrap(), url, "{typed}");
        }
        assert_eq!(
            server_base_url("yibiao.example.gov.cn")
                .unwrap_err()
                .to_string(),
            "server address `yibiao.example.gov.cn` has no scheme; write it as https://yibiao.example.gov.cn (or http://yibiao.example.gov.cn on a local network)"
        );
        assert!(server_base_url("ftp://x").is_err());
        assert!(server_base_url("").is_err());
    }
}
