//! Effective configuration: command-line flag, else environment variable, else the TOML
//! config file, else the default.
//!
//! ```toml
//! # yibiao-server.toml
//! listen = "0.0.0.0:8080"
//! data_dir = "/var/lib/yibiao"
//! # database = "postgres://yibiao@db.example/yibiao"  # PostgreSQL instead of SQLite in data_dir
//! schema = "/etc/yibiao/schema.toml"
//! max_body_bytes = 8388608
//! request_timeout_secs = 300
//! log_json = true
//! rate_per_minute = 600   # per device or department token; 0 = unlimited
//! rate_burst = 120
//! max_json_bytes = 65536      # bodies of the JSON routes (sync takes max_body_bytes)
//! max_in_flight = 512         # requests handled at once; more get 503
//! max_connections = 2048      # open connections; more wait to be accepted
//! max_streams = 32            # NDJSON/CSV streams open at once; more get 503
//! max_streams_per_token = 2   # per department token; more get 429
//! write_timeout_secs = 60     # a client that reads nothing this long is dropped
//! header_read_timeout_secs = 10  # a request's headers must arrive within this
//! min_free_disk_bytes = 67108864  # /healthz is not ok below this much free space
//! metrics_token = "..."       # a bearer token for /metrics besides the admin token
//! tls_cert = "/etc/yibiao/cert.pem"  # serve https (PEM chain; with tls_key)
//! tls_key = "/etc/yibiao/key.pem"    # its private key (PEM: PKCS#8, PKCS#1 or SEC1)
//! webhook_max_backoff_secs = 60  # longest wait between attempts at a failing webhook
//! public_url = "https://yibiao.example.cn"  # the address links in exports and QR codes use
//! # Budgets at merge (yibiao_sync::hub::Budgets): what one pushed record may ask.
//! budget_ops_per_change = 1000        # 100 ..= 100000
//! budget_changes_per_doc = 1000       # 100 ..= 100000
//! budget_value_bytes = 16384          # 1024 ..= budget_record_bytes
//! budget_record_bytes = 1048576       # 65536 ..= max_response_bytes
//! max_response_bytes = 8388608        # largest sync response page; 65536 ..= 8388608
//!
//! [console]                   # the web console (see ConsoleConfig)
//! max_failed_logins = 5       # wrong passwords before an account is locked
//! lockout_secs = 900          # how long; also the window the failures are counted in
//! session_idle_secs = 1800    # a session unused this long ends
//! session_max_secs = 43200    # a session ends this long after sign-in, used or not
//! secure_cookies = false      # true behind TLS: cookies get `Secure`
//!
//! [blobs]                     # attachments (see BlobConfig, ADR 0013)
//! max_bytes = 10485760        # largest blob accepted
//! grace_secs = 604800         # an unreferenced blob is collected after this
//! max_partials_per_device = 4 # unfinished uploads one device may hold
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use yibiao_sync::hub::Budgets;

/// Default address: loopback only, so a fresh install is not exposed by accident.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "yibiao-data";

/// The server's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Directory of the database.
    pub data_dir: PathBuf,
    /// A PostgreSQL address (`postgres://...`); `None`: SQLite in `data_dir` (the default).
    pub database: Option<String>,
    /// Schema file; `None` uses `DATA_DIR/schema.toml` if present, else the Baru example.
    pub schema: Option<PathBuf>,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Longest a request may take (slow links need minutes).
    pub request_timeout_secs: u64,
    /// Log as JSON lines.
    pub log_json: bool,
    /// Requests per minute per device or department token (0: unlimited).
    pub rate_per_minute: u32,
    /// Burst allowance of the rate limit.
    pub rate_burst: u32,
    /// Largest body of the JSON routes (`/v1/sync` takes [`Config::max_body_bytes`]).
    pub max_json_bytes: usize,
    /// Requests handled at once, all routes together; more are answered `503`.
    pub max_in_flight: usize,
    /// Connections open at once; more wait to be accepted.
    pub max_connections: usize,
    /// NDJSON/CSV streams open at once; more are answered `503`.
    pub max_streams: usize,
    /// NDJSON/CSV streams open at once per department token; more are answered `429`.
    pub max_streams_per_token: usize,
    /// A connection whose writes make no progress this long is closed, and a stream whose
    /// next page waits this long for the client is ended.
    pub write_timeout_secs: u64,
    /// A connection whose next request's headers have not all arrived this long after
    /// the server started waiting for them is closed (slowloris: headers sent a byte at
    /// a time; also a keep-alive connection idle that long).
    pub header_read_timeout_secs: u64,
    /// `/healthz` answers not ok when the data directory's file system has less free.
    pub min_free_disk_bytes: u64,
    /// A bearer token `/metrics` accepts besides the admin token (for a scraper that
    /// should not hold the admin token).
    pub metrics_token: Option<String>,
    /// Serve https with this PEM certificate chain (`tls_cert`; `--tls-cert` overrides).
    pub tls_cert: Option<PathBuf>,
    /// The private key of [`Config::tls_cert`] (`tls_key`; `--tls-key` overrides).
    pub tls_key: Option<PathBuf>,
    /// The longest wait between attempts at a failing webhook endpoint (the first wait is
    /// a second, doubled after each failure).
    pub webhook_max_backoff_secs: u64,
    /// The address people reach the server at, for links that leave it (exports'
    /// attachment links, the enrolment QR code); `None`: the request's `Host`
    /// (the `origin` module). `scheme://host[:port][/path]`, no trailing slash.
    pub public_url: Option<String>,
    /// The web console's sign-in and session rules.
    pub console: ConsoleConfig,
    /// Attachments' limits (`[blobs]` in the config file).
    pub blobs: BlobConfig,
    /// What one pushed record may ask of the hub (`budget_*` keys), checked at start
    /// against [`BUDGET_RANGES`].
    pub budgets: Budgets,
    /// The largest sync response page the server sends, whatever a phone asks for
    /// (`max_response_bytes`; at most an eighth of what a phone decodes, at least
    /// `budget_record_bytes` so the largest record fits a page).
    pub max_response_bytes: u32,
}

/// The web console's sign-in and session rules (`[console]` in the config file).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Wrong passwords within `lockout_secs` that lock an account (an address: 4x as many).
    pub max_failed_logins: u32,
    /// How long a lock lasts, and the window in which wrong passwords are counted.
    pub lockout_secs: u64,
    /// A session unused this long ends.
    pub session_idle_secs: u64,
    /// A session ends this long after sign-in, however busy.
    pub session_max_secs: u64,
    /// Mark cookies `Secure` (set when the console is served over TLS, e.g. by a proxy).
    pub secure_cookies: bool,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        Self {
            max_failed_logins: 5,
            lockout_secs: 900,
            session_idle_secs: 1800,
            session_max_secs: 12 * 3600,
            secure_cookies: false,
        }
    }
}

/// Attachments' limits (`[blobs]` in the config file; ADR 0013).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BlobConfig {
    /// Largest blob accepted, in bytes (a phone photo is 0.2-3 MB).
    pub max_bytes: u64,
    /// A blob no record references is collected by `blobs gc` once this old; partial
    /// uploads untouched this long too.
    pub grace_secs: u64,
    /// Unfinished uploads one device may hold at once.
    pub max_partials_per_device: usize,
}

impl Default for BlobConfig {
    fn default() -> Self {
        Self {
            max_bytes: 10 * 1024 * 1024,
            grace_secs: 7 * 24 * 3600,
            max_partials_per_device: 4,
        }
    }
}

/// The allowed range of each `budget_*` key. Low ends: an honest phone's largest form
/// and a long offline day must still pass. High ends: one change's merge stays a
/// fraction of a second under the hub's write lock, and a record stays far below the
/// 64 MiB a phone decodes (an eighth of it: the largest response page), so the server
/// never stores what it could not send.
/// Each entry: key, lowest, highest, what the range keeps.
pub const BUDGET_RANGES: [(&str, usize, usize, &str); 4] = [
    (
        "budget_ops_per_change",
        100,
        100_000,
        "operations (one change's merge stays short)",
    ),
    (
        "budget_changes_per_doc",
        100,
        100_000,
        "changes (one record's merge stays short)",
    ),
    ("budget_value_bytes", 1024, PHONE_PAGE, PHONE),
    ("budget_record_bytes", 64 * 1024, PHONE_PAGE, PHONE),
];

/// The largest record budget: an eighth of what a phone decodes.
const PHONE_PAGE: usize = yibiao_sync::protocol::MAX_DECODED_BYTES / 8;
const PHONE: &str = "bytes (a record must stay far below the 64 MiB a phone can receive)";

/// The config file's keys, all optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// See [`Config::listen`].
    pub listen: Option<String>,
    /// See [`Config::data_dir`].
    pub data_dir: Option<PathBuf>,
    /// See [`Config::database`].
    pub database: Option<String>,
    /// See [`Config::schema`].
    pub schema: Option<PathBuf>,
    /// See [`Config::max_body_bytes`].
    pub max_body_bytes: Option<usize>,
    /// See [`Config::request_timeout_secs`].
    pub request_timeout_secs: Option<u64>,
    /// See [`Config::log_json`].
    pub log_json: Option<bool>,
    /// See [`Config::rate_per_minute`].
    pub rate_per_minute: Option<u32>,
    /// See [`Config::rate_burst`].
    pub rate_burst: Option<u32>,
    /// See [`Config::max_json_bytes`].
    pub max_json_bytes: Option<usize>,
    /// See [`Config::max_in_flight`].
    pub max_in_flight: Option<usize>,
    /// See [`Config::max_connections`].
    pub max_connections: Option<usize>,
    /// See [`Config::max_streams`].
    pub max_streams: Option<usize>,
    /// See [`Config::max_streams_per_token`].
    pub max_streams_per_token: Option<usize>,
    /// See [`Config::write_timeout_secs`].
    pub write_timeout_secs: Option<u64>,
    /// See [`Config::header_read_timeout_secs`].
    pub header_read_timeout_secs: Option<u64>,
    /// See [`Config::min_free_disk_bytes`].
    pub min_free_disk_bytes: Option<u64>,
    /// See [`Config::metrics_token`].
    pub metrics_token: Option<String>,
    /// See [`Config::tls_cert`].
    pub tls_cert: Option<PathBuf>,
    /// See [`Config::tls_key`].
    pub tls_key: Option<PathBuf>,
    /// See [`Config::webhook_max_backoff_secs`].
    pub webhook_max_backoff_secs: Option<u64>,
    /// See [`Config::public_url`].
    pub public_url: Option<String>,
    /// See [`Config::console`].
    pub console: Option<ConsoleConfig>,
    /// See [`Config::blobs`].
    pub blobs: Option<BlobConfig>,
    /// See [`Budgets::max_ops_per_change`].
    pub budget_ops_per_change: Option<usize>,
    /// See [`Budgets::max_changes_per_doc`].
    pub budget_changes_per_doc: Option<usize>,
    /// See [`Budgets::max_value_bytes`].
    pub budget_value_bytes: Option<usize>,
    /// See [`Budgets::max_record_bytes`].
    pub budget_record_bytes: Option<usize>,
    /// See [`Config::max_response_bytes`].
    pub max_response_bytes: Option<u32>,
}

impl FileConfig {
    /// Reads a config file; errors name the file and the problem.
    pub fn read(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("config {}: {}", path.display(), e.message()))
    }
}

/// Values given on the command line or in the environment (clap merges those two).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--listen` / `YIBIAO_LISTEN`.
    pub listen: Option<String>,
    /// `--data-dir` / `YIBIAO_DATA_DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--database` / `YIBIAO_DATABASE`.
    pub database: Option<String>,
    /// `--schema` / `YIBIAO_SCHEMA`.
    pub schema: Option<PathBuf>,
    /// `--log-json` / `YIBIAO_LOG_JSON`.
    pub log_json: bool,
}

impl Config {
    /// Merges flags/env over the file over defaults.
    pub fn resolve(over: Overrides, file: FileConfig) -> Result<Self, String> {
        let budgets = budgets(&file)?;
        let max_response_bytes = response_bytes(&file, &budgets)?;
        let listen_text = over
            .listen
            .or(file.listen)
            .unwrap_or_else(|| DEFAULT_LISTEN.to_owned());
        let listen = listen_text.parse().map_err(|_| {
            format!("listen address `{listen_text}` is not host:port, e.g. 127.0.0.1:8080")
        })?;
        let max_body_bytes = file.max_body_bytes.unwrap_or(8 * 1024 * 1024);
        if max_body_bytes < 1024 {
            return Err(format!(
                "max_body_bytes {max_body_bytes} is too small; use at least 1024"
            ));
        }
        Ok(Self {
            listen,
            data_dir: over
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
            database: database(over.database.or(file.database))?,
            schema: over.schema.or(file.schema),
            max_body_bytes,
            request_timeout_secs: file.request_timeout_secs.unwrap_or(300).max(1),
            log_json: over.log_json || file.log_json.unwrap_or(false),
            rate_per_minute: file.rate_per_minute.unwrap_or(600),
            rate_burst: file.rate_burst.unwrap_or(120),
            max_json_bytes: file.max_json_bytes.unwrap_or(64 * 1024).max(1024),
            max_in_flight: file.max_in_flight.unwrap_or(512).max(1),
            max_connections: file.max_connections.unwrap_or(2048).max(1),
            max_streams: file.max_streams.unwrap_or(32).max(1),
            max_streams_per_token: file.max_streams_per_token.unwrap_or(2).max(1),
            write_timeout_secs: file.write_timeout_secs.unwrap_or(60).max(1),
            header_read_timeout_secs: file.header_read_timeout_secs.unwrap_or(10).max(1),
            min_free_disk_bytes: file.min_free_disk_bytes.unwrap_or(64 * 1024 * 1024),
            metrics_token: match file.metrics_token {
                Some(t) if t.trim().len() < 16 => {
                    return Err("metrics_token is too short; use at least 16 characters".into());
                }
                other => other.map(|t| t.trim().to_owned()),
            },
            tls_cert: file.tls_cert,
            tls_key: file.tls_key,
            webhook_max_backoff_secs: file.webhook_max_backoff_secs.unwrap_or(60).max(1),
            public_url: public_url(file.public_url)?,
            console: {
                let mut c = file.console.unwrap_or_default();
                c.max_failed_logins = c.max_failed_logins.max(1);
                c.session_idle_secs = c.session_idle_secs.max(60);
                c.session_max_secs = c.session_max_secs.max(c.session_idle_secs);
                c
            },
            blobs: {
                let mut b = file.blobs.unwrap_or_default();
                b.max_bytes = b.max_bytes.max(1024);
                b.max_partials_per_device = b.max_partials_per_device.max(1);
                b
            },
            budgets,
            max_response_bytes,
        })
    }

    /// The schema file to load, if any (see [`Config::schema`]).
    pub fn schema_path(&self) -> Option<PathBuf> {
        self.schema.clone().or_else(|| {
            let p = self.data_dir.join("schema.toml");
            p.exists().then_some(p)
        })
    }
}

/// `public_url`: an `http` or `https` address with a host and no query or fragment,
/// kept without its trailing slash (links are joined to it).
fn public_url(url: Option<String>) -> Result<Option<String>, String> {
    let Some(url) = url else { return Ok(None) };
    let url = url.trim().trim_end_matches('/').to_owned();
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(rest)
            if !rest.is_empty() && !rest.starts_with('/') && !rest.contains(['?', '#', ' ']) =>
        {
            Ok(Some(url))
        }
        _ => Err(format!(
            "config: public_url = \"{url}\" is not an http(s) address; write it as https://host[:port][/path]"
        )),
    }
}

/// The `budget_*` keys over [`Budgets::default`], each held to its [`BUDGET_RANGES`]
/// entry; the error names the key, its value and the allowed range.
fn budgets(file: &FileConfig) -> Result<Budgets, String> {
    let default = Budgets::default();
    let given = [
        file.budget_ops_per_change,
        file.budget_changes_per_doc,
        file.budget_value_bytes,
        file.budget_record_bytes,
    ];
    let defaults = [
        default.max_ops_per_change,
        default.max_changes_per_doc,
        default.max_value_bytes,
        default.max_record_bytes,
    ];
    let mut values = [0usize; 4];
    for (i, ((key, lo, hi, unit), value)) in BUDGET_RANGES.iter().zip(given).enumerate() {
        let value = value.unwrap_or(defaults[i]);
        if !(*lo..=*hi).contains(&value) {
            return Err(format!(
                "config: {key} = {value} is out of range; allowed {lo} to {hi} {unit}"
            ));
        }
        values[i] = value;
    }
    let [
        max_ops_per_change,
        max_changes_per_doc,
        max_value_bytes,
        max_record_bytes,
    ] = values;
    if max_value_bytes > max_record_bytes {
        return Err(format!(
            "config: budget_value_bytes = {max_value_bytes} is larger than budget_record_bytes = {max_record_bytes}; a value must fit in its record"
        ));
    }
    Ok(Budgets {
        max_ops_per_change,
        max_changes_per_doc,
        max_value_bytes,
        max_record_bytes,
    })
}

/// `max_response_bytes`: 64 KiB to an eighth of what a phone decodes, and never below
/// the record budget (a page that starts with the largest record must still fit).
fn response_bytes(file: &FileConfig, budgets: &Budgets) -> Result<u32, String> {
    let value = file.max_response_bytes.unwrap_or(8 * 1024 * 1024);
    let (lo, hi) = (64 * 1024, PHONE_PAGE);
    if !(lo..=hi).contains(&(value as usize)) {
        return Err(format!(
            "config: max_response_bytes = {value} is out of range; allowed {lo} to {hi} {PHONE}"
        ));
    }
    if (value as usize) < budgets.max_record_bytes {
        return Err(format!(
            "config: max_response_bytes = {value} is smaller than budget_record_bytes = {}; the largest record must fit one page",
            budgets.max_record_bytes
        ));
    }
    Ok(value)
}

/// A `database` setting: a PostgreSQL address, or nothing (SQLite in the data directory).
fn database(value: Option<String>) -> Result<Option<String>, String> {
    match value {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Ok(Some(url))
        }
        Some(_) => Err(
            "database must be a PostgreSQL address, postgres://user@host:port/name (leave it out to use SQLite in the data directory)"
                .to_owned(),
        ),
        None => Ok(None),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    fn resolve(toml: &str) -> Result<Config, String> {
        Config::resolve(
            Overrides::default(),
            toml::from_str(toml).map_err(|e| e.to_string())?,
        )
    }

    #[test]
    fn database_is_sqlite_by_default_and_only_a_postgres_address_otherwise() {
        assert_eq!(resolve("").unwrap().database, None);
        let pg = resolve(r#"database = "postgres://yb@db/yibiao""#).unwrap();
        assert_eq!(pg.database.as_deref(), Some("postgres://yb@db/yibiao"));
        let bad = resolve(r#"database = "/var/lib/yibiao/yibiao.db""#).unwrap_err();
        assert!(bad.contains("postgres://"), "{bad}");
    }

    #[test]
    fn budgets_default_to_the_hubs_and_are_read_from_the_file() {
        assert_eq!(resolve("").unwrap().budgets, Budgets::default());
        assert_eq!(resolve("").unwrap().max_response_bytes, 8 * 1024 * 1024);
        let cfg = resolve(
            "budget_ops_per_change = 500\nbudget_changes_per_doc = 2000\nbudget_value_bytes = 4096\nbudget_record_bytes = 262144\n",
        )
        .unwrap();
        assert_eq!(
            cfg.budgets,
            Budgets {
                max_ops_per_change: 500,
                max_changes_per_doc: 2000,
                max_value_bytes: 4096,
                max_record_bytes: 262_144,
            }
        );
    }

    #[test]
    fn a_budget_out_of_range_is_refused_naming_the_key_and_the_range() {
        // 100 MiB: more than a phone can receive.
        let e = resolve("budget_record_bytes = 104857600").unwrap_err();
        assert!(e.contains("budget_record_bytes = 104857600"), "{e}");
        assert!(e.contains("65536 to 8388608"), "{e}");
        assert!(e.contains("phone"), "{e}");
        let e = resolve("budget_ops_per_change = 10").unwrap_err();
        assert!(
            e.contains("budget_ops_per_change = 10 is out of range; allowed 100 to 100000"),
            "{e}"
        );
        let e = resolve("budget_changes_per_doc = 1000000").unwrap_err();
        assert!(e.contains("budget_changes_per_doc"), "{e}");
        let e = resolve("max_response_bytes = 67108864").unwrap_err();
        assert!(
            e.contains("max_response_bytes = 67108864 is out of range; allowed 65536 to 8388608"),
            "{e}"
        );
        let e = resolve("max_response_bytes = 524288").unwrap_err();
        assert!(
            e.contains("smaller than budget_record_bytes = 1048576"),
            "{e}"
        );
        let e = resolve("budget_value_bytes = 524288\nbudget_record_bytes = 131072").unwrap_err();
        assert!(
            e.contains("budget_value_bytes = 524288 is larger than budget_record_bytes"),
            "{e}"
        );
    }
}
