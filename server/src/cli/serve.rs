//! `yibiao-server serve`: logging, the listener, the data directory's lock, the first admin
//! token, graceful shutdown.
//!
//! The order is what keeps a failed start harmless: the port is bound first (a port in use
//! fails before anything is written), then the data directory is locked (a second server
//! fails naming the first one's pid), and only then is the database opened, migrated and
//! the first admin token written.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_rustls::TlsAcceptor;

use super::datadir::DataDirLock;
use super::{Paths, load_schema};
use crate::accounts;
use crate::config::{Config, Overrides};
use crate::limits::{ClientAddr, GuardedListener};
use crate::state::AppState;
use crate::storage::ServerStorage;

/// Options of `serve`.
#[derive(clap::Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "YIBIAO_LISTEN")]
    listen: Option<String>,
    /// Schema file [default: DATA_DIR/schema.toml if present, else the built-in Baru example].
    #[arg(long, env = "YIBIAO_SCHEMA")]
    schema: Option<PathBuf>,
    /// Log JSON lines instead of text.
    #[arg(long, env = "YIBIAO_LOG_JSON")]
    log_json: bool,
    /// Serve a schema revision even though it strands stored data (values it refuses,
    /// forms or fields it removes); they stay stored and are flagged on phones.
    #[arg(long, env = "YIBIAO_ALLOW_STRANDING")]
    allow_stranding: bool,
    /// Serve https with this PEM certificate chain (with --tls-key) [config: tls_cert].
    #[arg(long, env = "YIBIAO_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's PEM private key [config: tls_key].
    #[arg(long, env = "YIBIAO_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

/// Loads the schema, opens the database and serves until SIGINT or SIGTERM.
pub(crate) fn run(args: ServeArgs, paths: Paths) -> Result<(), String> {
    let cfg = paths.config(Overrides {
        listen: args.listen,
        data_dir: None,
        database: None,
        schema: args.schema,
        log_json: args.log_json,
    })?;
    init_logging(cfg.log_json);
    let tls = tls_acceptor(
        args.tls_cert.or(cfg.tls_cert.clone()),
        args.tls_key.or(cfg.tls_key.clone()),
    )?;
    let schema = load_schema(&cfg)?;
    tracing::info!(
        schema = %schema.name, revision = schema.revision,
        source = %cfg.schema_path().map(|p| p.display().to_string()).unwrap_or_else(|| "built-in Baru example".into()),
        "schema loaded"
    );
    let listener = std::net::TcpListener::bind(cfg.listen)
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| {
        format!(
            "cannot create data directory {}: {e}",
            cfg.data_dir.display()
        )
    })?;
    let _lock = DataDirLock::acquire(&cfg.data_dir)?;
    let state = AppState::open(cfg.clone(), schema)?;
    let webhooks = state
        .webhooks
        .clone()
        .ok_or("the database keeps no webhooks")?;
    crate::schema_change::prepare(
        &cfg.data_dir,
        state.storage.as_ref(),
        state.hub.schema(),
        args.allow_stranding,
    )?;
    bootstrap_admin(&cfg, state.storage.as_ref())?;
    first_run_console(&cfg, state.storage.as_ref())?;
    let runtime =
        tokio::runtime::Runtime::new().map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async move {
        let deliverer = crate::webhooks::spawn(
            state.clone(),
            webhooks,
            crate::webhooks::Backoff {
                base: Duration::from_secs(1),
                max: Duration::from_secs(cfg.webhook_max_backoff_secs),
            },
            std::sync::Arc::new(crate::routes::records::feed_batch),
        );
        let served = serve(cfg, state, listener, tls).await;
        // Another process takes this one's endpoints at once, not after the lease.
        deliverer.stop().await;
        served
    })
}

/// The TLS acceptor when a certificate and key are configured (both or neither).
fn tls_acceptor(
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
) -> Result<Option<TlsAcceptor>, String> {
    match (cert, key) {
        (Some(cert), Some(key)) => crate::tls::acceptor(&cert, &key).map(Some),
        (None, None) => Ok(None),
        _ => Err("TLS needs both tls_cert and tls_key (or --tls-cert and --tls-key)".into()),
    }
}

/// On the very first start, creates the admin token and writes it to
/// `DATA_DIR/admin-token` (readable by the owner only).
fn bootstrap_admin(cfg: &Config, storage: &dyn ServerStorage) -> Result<(), String> {
    if storage.has_admin_token().map_err(|e| e.to_string())? {
        return Ok(());
    }
    let token = accounts::rotate_admin_token(storage).map_err(|e| e.to_string())?;
    let path = cfg.data_dir.join("admin-token");
    write_private(&path, format!("{token}\n").as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    println!(
        "first start: the admin token is in {} (rotate with `yibiao-server admin-token`)",
        path.display()
    );
    Ok(())
}

/// While no township admin can sign in to the web console, says how to make one.
fn first_run_console(cfg: &Config, storage: &dyn ServerStorage) -> Result<(), String> {
    if storage.has_admin_staff().map_err(|e| e.to_string())? {
        return Ok(());
    }
    println!(
        "web console: no admin account yet. Create one (the password is printed once):\n  \
         yibiao-server --data-dir {} staff add admin --name 管理员 --role admin\n\
         then open http://{}/ and sign in.",
        cfg.data_dir.display(),
        cfg.listen
    );
    Ok(())
}

/// Writes `bytes` to `path` readable by the owner only from the first byte: a new file
/// created 0600 beside it (never widened then narrowed), synced, then renamed over `path`.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(&tmp).and_then(|mut f| {
        f.write_all(bytes)?;
        f.sync_all()
    });
    let renamed = written.and_then(|()| std::fs::rename(&tmp, path));
    if renamed.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    renamed
}

/// Logs go to stderr (stdout carries the "listening on" line and command output), in
/// colour only when stderr is a terminal: a log file or a journal gets plain text.
fn init_logging(json: bool) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tower_http=warn"));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if json {
        fmt.json().init();
    } else {
        fmt.init();
    }
}

async fn serve(
    cfg: Config,
    state: AppState,
    listener: std::net::TcpListener,
    tls: Option<TlsAcceptor>,
) -> Result<(), String> {
    let listener = tokio::net::TcpListener::from_std(listener)
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(listen = %local, scheme, data_dir = %cfg.data_dir.display(), "yibiao-server ready");
    // Printed for scripts and tests that start the server on port 0.
    println!("listening on {scheme}://{local}");
    let mut listener = GuardedListener::new(
        listener,
        cfg.max_connections,
        Duration::from_secs(cfg.write_timeout_secs),
    );
    let app = crate::app(state);
    let builder = connection_builder(&cfg);
    let handshake = Duration::from_secs(cfg.header_read_timeout_secs);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let (io, addr) = tokio::select! {
            accepted = axum::serve::Listener::accept(&mut listener) => accepted,
            () = &mut shutdown => break,
        };
        let (app, builder, watcher) = (app.clone(), builder.clone(), graceful.watcher());
        let Some(tls) = tls.clone() else {
            tokio::spawn(serve_connection(io, addr, app, builder, watcher));
            continue;
        };
        tokio::spawn(async move {
            // The handshake has the header deadline too: a client that opens a
            // connection and says nothing holds no slot for long.
            match tokio::time::timeout(handshake, tls.accept(io)).await {
                Ok(Ok(io)) => serve_connection(io, addr, app, builder, watcher).await,
                Ok(Err(e)) => {
                    tracing::debug!(client = %addr, error = %e, "TLS handshake failed");
                }
                Err(_) => tracing::debug!(client = %addr, "TLS handshake timed out"),
            }
        });
    }
    // No new connections; those open finish their requests (in-flight syncs commit).
    drop(listener);
    graceful.shutdown().await;
    tracing::info!("shut down cleanly");
    Ok(())
}

/// Serves HTTP/1.1 on one accepted connection (plain or TLS) until it ends.
async fn serve_connection<I>(
    io: I,
    addr: std::net::SocketAddr,
    app: axum::Router,
    builder: hyper::server::conn::http1::Builder,
    watcher: hyper_util::server::graceful::Watcher,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = tower::ServiceExt::map_request(
        app,
        move |mut req: axum::http::Request<hyper::body::Incoming>| {
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(ClientAddr(addr)));
            req
        },
    );
    let connection = builder.serve_connection(
        hyper_util::rt::TokioIo::new(io),
        hyper_util::service::TowerToHyperService::new(service),
    );
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!(client = %addr, error = %e, "connection ended with an error");
    }
}

/// HTTP/1.1 as `axum::serve` speaks it, plus a deadline on reading a request's headers
/// (`header_read_timeout_secs`): a client that trickles its headers byte by byte
/// (slowloris) is cut instead of holding a connection slot forever. The write and idle
/// deadlines of [`GuardedListener`] still cover everything after the headers.
fn connection_builder(cfg: &Config) -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(cfg.header_read_timeout_secs));
    builder
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing in-flight syncs");
}
