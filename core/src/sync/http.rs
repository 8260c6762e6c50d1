//! The built-in HTTP transport: blocking, rustls, no OpenSSL to ship on phones.

use std::time::Duration;

use super::client::{Transport, TransportError};

/// Media type of sync bodies.
pub const SYNC_CONTENT_TYPE: &str = "application/x-yibiao-sync";
/// Largest response body accepted.
const MAX_RESPONSE: u64 = 32 * 1024 * 1024;

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

impl HttpTransport {
    /// A transport to `server_url` (e.g. `http://10.0.0.2:8080`), authenticating with the
    /// device's `token`. `timeout` bounds one whole exchange: on a 2G link give minutes.
    pub fn new(server_url: &str, token: &str, timeout: Duration) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .timeout_connect(Some(timeout.min(Duration::from_secs(30))))
            .http_status_as_error(false)
            .build()
            .into();
        Self {
            agent,
            url: format!("{}/v1/sync", server_url.trim_end_matches('/')),
            token: token.to_owned(),
        }
    }
}

fn network(e: ureq::Error) -> TransportError {
    match e {
        ureq::Error::Timeout(_) => TransportError::Timeout,
        other => TransportError::Network(other.to_string()),
    }
}

impl Transport for HttpTransport {
    fn exchange(&self, request: &[u8]) -> Result<Vec<u8>, TransportError> {
        let mut response = self
            .agent
            .post(&self.url)
            .header("Authorization", &format!("Bearer {}", self.token))
            .header("Content-Type", SYNC_CONTENT_TYPE)
            .send(request)
            .map_err(network)?;
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
