//! The command line of `yibiao-server`: serve, and manage devices, from one binary.
//!
//! Lives in the library so end-to-end tests can build the very same binary as a child
//! process (`tests/` has a one-line `main` calling [`main`]).

use std::path::PathBuf;
use std::process::ExitCode;

use crate::accounts;
use crate::config::{Config, FileConfig, Overrides};
use crate::storage::{ServerStorage, SqliteStorage};
use crate::{AppState, app};
use clap::{Parser, Subcommand};
use yibiao_core::Schema;

#[derive(Parser)]
#[command(
    name = "yibiao-server",
    version,
    about = "yibiao sync server (一表): phones sync here, departments pull here"
)]
struct Cli {
    /// TOML config file (flags and environment variables override it).
    #[arg(long, global = true, env = "YIBIAO_CONFIG")]
    config: Option<PathBuf>,
    /// Directory holding the database.
    #[arg(long, global = true, env = "YIBIAO_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Address to listen on [default: 127.0.0.1:8080].
        #[arg(long, env = "YIBIAO_LISTEN")]
        listen: Option<String>,
        /// Schema file [default: DATA_DIR/schema.toml if present, else the built-in Baru example].
        #[arg(long, env = "YIBIAO_SCHEMA")]
        schema: Option<PathBuf>,
        /// Log JSON lines instead of text.
        #[arg(long, env = "YIBIAO_LOG_JSON")]
        log_json: bool,
    },
    /// Manage device tokens.
    Device {
        #[command(subcommand)]
        action: DeviceAction,
    },
    /// Manage cadres and their one-time enrolment codes.
    Cadre {
        #[command(subcommand)]
        action: CadreAction,
    },
    /// Manage department tokens.
    Department {
        #[command(subcommand)]
        action: DepartmentAction,
    },
    /// Create a new admin token (the old one stops working) and print it once.
    AdminToken,
    /// Check a schema file and print a summary.
    CheckSchema {
        /// The schema file.
        file: PathBuf,
    },
}

#[derive(Subcommand)]
enum CadreAction {
    /// Add a cadre.
    Add {
        /// Cadre id: ASCII letters, digits, - _ . @ (e.g. a phone number or a staff number).
        #[arg(long)]
        id: String,
        /// Name as people write it, e.g. 阿木.
        #[arg(long)]
        name: String,
        /// The village the cadre works in; omit with --township for township staff.
        #[arg(long, conflicts_with = "township")]
        village: Option<String>,
        /// Township staff: every village.
        #[arg(long)]
        township: bool,
        /// Schema used to check the village [default: as for serve].
        #[arg(long, env = "YIBIAO_SCHEMA")]
        schema: Option<PathBuf>,
    },
    /// List cadres.
    List,
    /// Issue a one-time enrolment code for a cadre's phone.
    Code {
        /// The cadre id.
        id: String,
        /// Minutes the code stays valid.
        #[arg(long, default_value_t = accounts::DEFAULT_CODE_TTL_MINUTES)]
        ttl_minutes: i64,
    },
}

#[derive(Subcommand)]
enum DepartmentAction {
    /// Issue a token for a department of the schema; printed once.
    Token {
        /// The department key, e.g. public_services.
        department: String,
        /// Who uses it, e.g. "civil affairs Excel".
        #[arg(long, default_value = "")]
        name: String,
        /// Schema used to check the department [default: as for serve].
        #[arg(long, env = "YIBIAO_SCHEMA")]
        schema: Option<PathBuf>,
    },
    /// List department tokens.
    List,
    /// Revoke a department token at once.
    Revoke {
        /// The token key shown by `department list`.
        key: String,
    },
}

#[derive(Subcommand)]
enum DeviceAction {
    /// Register a phone; prints its token once.
    Add {
        /// A name you will recognise, e.g. "tujiang-secretary-phone".
        #[arg(long)]
        name: String,
        /// The cadre who uses it.
        #[arg(long)]
        cadre: Option<String>,
        /// The village it may read and write; omit with --township for township staff.
        #[arg(long, conflicts_with = "township")]
        village: Option<String>,
        /// Township staff: every village.
        #[arg(long)]
        township: bool,
        /// Schema used to check the village name [default: as for serve].
        #[arg(long, env = "YIBIAO_SCHEMA")]
        schema: Option<PathBuf>,
    },
    /// List devices.
    List,
    /// Revoke a device's token at once.
    Revoke {
        /// The device key shown by `device list`.
        key: String,
    },
}

/// Parses the command line and runs it; the process's exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("yibiao-server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn config(cli_config: &Option<PathBuf>, over: Overrides) -> Result<Config, String> {
    let file = match cli_config {
        Some(path) => FileConfig::read(path)?,
        None => FileConfig::default(),
    };
    Config::resolve(over, file)
}

fn load_schema(config: &Config) -> Result<Schema, String> {
    match config.schema_path() {
        Some(path) => Schema::from_toml_file(&path).map_err(|e| e.to_string()),
        None => Ok(Schema::baru_example()),
    }
}

fn open_storage(
    cli_config: &Option<PathBuf>,
    data_dir: Option<PathBuf>,
    schema: Option<PathBuf>,
) -> Result<(Config, std::sync::Arc<dyn ServerStorage>), String> {
    let cfg = config(
        cli_config,
        Overrides {
            data_dir,
            schema,
            ..Overrides::default()
        },
    )?;
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| {
        format!(
            "cannot create data directory {}: {e}",
            cfg.data_dir.display()
        )
    })?;
    let storage =
        SqliteStorage::open(&cfg.data_dir.join("yibiao.db")).map_err(|e| e.to_string())?;
    Ok((cfg, std::sync::Arc::new(storage)))
}

/// On the very first start, creates the admin token and writes it to
/// `DATA_DIR/admin-token` (readable by the owner only).
fn bootstrap_admin(cfg: &Config, storage: &dyn ServerStorage) -> Result<(), String> {
    if storage.has_admin_token().map_err(|e| e.to_string())? {
        return Ok(());
    }
    let token = accounts::rotate_admin_token(storage).map_err(|e| e.to_string())?;
    let path = cfg.data_dir.join("admin-token");
    std::fs::write(&path, format!("{token}\n"))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
    }
    println!(
        "first start: the admin token is in {} (rotate with `yibiao-server admin-token`)",
        path.display()
    );
    Ok(())
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Serve {
            listen,
            schema,
            log_json,
        } => {
            let cfg = config(
                &cli.config,
                Overrides {
                    listen,
                    data_dir: cli.data_dir,
                    schema,
                    log_json,
                },
            )?;
            init_logging(cfg.log_json);
            let schema = load_schema(&cfg)?;
            tracing::info!(
                schema = %schema.name, revision = schema.revision,
                source = %cfg.schema_path().map(|p| p.display().to_string()).unwrap_or_else(|| "built-in Baru example".into()),
                "schema loaded"
            );
            let state = AppState::open(cfg.clone(), schema)?;
            bootstrap_admin(&cfg, state.storage.as_ref())?;
            let runtime = tokio::runtime::Runtime::new()
                .map_err(|e| format!("cannot start the runtime: {e}"))?;
            runtime.block_on(serve(cfg, state))
        }
        Command::Device { action } => {
            let schema_flag = match &action {
                DeviceAction::Add { schema, .. } => schema.clone(),
                _ => None,
            };
            let (cfg, storage) = open_storage(&cli.config, cli.data_dir, schema_flag)?;
            match action {
                DeviceAction::Add {
                    name,
                    cadre,
                    village,
                    township,
                    ..
                } => {
                    if village.is_none() && !township {
                        return Err("give --village VILLAGE for a village phone, or --township for township staff".into());
                    }
                    let schema = load_schema(&cfg)?;
                    let (row, token) = accounts::register_device(
                        storage.as_ref(),
                        &schema,
                        &name,
                        cadre.as_deref(),
                        village.as_deref(),
                    )
                    .map_err(|e| e.to_string())?;
                    println!("device {} registered", row.key);
                    println!("token (shown once): {token}");
                    Ok(())
                }
                DeviceAction::List => {
                    for d in storage.devices().map_err(|e| e.to_string())? {
                        println!(
                            "{}\t{}\t{}\t{}\t{}",
                            d.key,
                            d.name,
                            d.cadre.as_deref().unwrap_or("-"),
                            d.village.as_deref().unwrap_or("(township)"),
                            if d.revoked_ms.is_some() {
                                "revoked"
                            } else {
                                "active"
                            }
                        );
                    }
                    Ok(())
                }
                DeviceAction::Revoke { key } => {
                    if storage
                        .revoke_device(&key, accounts::now_ms())
                        .map_err(|e| e.to_string())?
                    {
                        println!("device {key} revoked");
                        Ok(())
                    } else {
                        Err(format!(
                            "no device `{key}`; see `yibiao-server device list`"
                        ))
                    }
                }
            }
        }
        Command::Cadre { action } => {
            let schema_flag = match &action {
                CadreAction::Add { schema, .. } => schema.clone(),
                _ => None,
            };
            let (cfg, storage) = open_storage(&cli.config, cli.data_dir, schema_flag)?;
            match action {
                CadreAction::Add {
                    id,
                    name,
                    village,
                    township,
                    ..
                } => {
                    if village.is_none() && !township {
                        return Err("give --village VILLAGE for a village cadre, or --township for township staff".into());
                    }
                    let schema = load_schema(&cfg)?;
                    let row = accounts::create_cadre(
                        storage.as_ref(),
                        &schema,
                        &id,
                        &name,
                        village.as_deref(),
                    )
                    .map_err(|e| e.to_string())?;
                    println!(
                        "cadre {} ({}) added, scope {}",
                        row.id,
                        row.name,
                        row.village.as_deref().unwrap_or("township")
                    );
                    Ok(())
                }
                CadreAction::List => {
                    for c in storage.cadres().map_err(|e| e.to_string())? {
                        println!(
                            "{}\t{}\t{}",
                            c.id,
                            c.name,
                            c.village.as_deref().unwrap_or("(township)")
                        );
                    }
                    Ok(())
                }
                CadreAction::Code { id, ttl_minutes } => {
                    let (code, expires_ms) =
                        accounts::issue_code(storage.as_ref(), &id, ttl_minutes)
                            .map_err(|e| e.to_string())?;
                    println!("code: {code}");
                    println!(
                        "valid for {ttl_minutes} minutes, once (until {expires_ms} ms since the epoch)"
                    );
                    Ok(())
                }
            }
        }
        Command::Department { action } => {
            let schema_flag = match &action {
                DepartmentAction::Token { schema, .. } => schema.clone(),
                _ => None,
            };
            let (cfg, storage) = open_storage(&cli.config, cli.data_dir, schema_flag)?;
            match action {
                DepartmentAction::Token {
                    department, name, ..
                } => {
                    let schema = load_schema(&cfg)?;
                    let (row, token) = accounts::issue_department_token(
                        storage.as_ref(),
                        &schema,
                        &department,
                        &name,
                    )
                    .map_err(|e| e.to_string())?;
                    println!("department token {} for {} issued", row.key, row.department);
                    println!("token (shown once): {token}");
                    Ok(())
                }
                DepartmentAction::List => {
                    for t in storage.department_tokens().map_err(|e| e.to_string())? {
                        println!(
                            "{}\t{}\t{}\t{}",
                            t.key,
                            t.department,
                            t.name,
                            if t.revoked_ms.is_some() {
                                "revoked"
                            } else {
                                "active"
                            }
                        );
                    }
                    Ok(())
                }
                DepartmentAction::Revoke { key } => {
                    if storage
                        .revoke_department_token(&key, accounts::now_ms())
                        .map_err(|e| e.to_string())?
                    {
                        println!("department token {key} revoked");
                        Ok(())
                    } else {
                        Err(format!(
                            "no department token `{key}`; see `yibiao-server department list`"
                        ))
                    }
                }
            }
        }
        Command::AdminToken => {
            let (_, storage) = open_storage(&cli.config, cli.data_dir, None)?;
            let token =
                accounts::rotate_admin_token(storage.as_ref()).map_err(|e| e.to_string())?;
            println!("admin token (shown once; the previous one no longer works): {token}");
            Ok(())
        }
        Command::CheckSchema { file } => {
            let schema = Schema::from_toml_file(&file).map_err(|e| e.to_string())?;
            println!(
                "{}: schema `{}` revision {} is valid: {} villages, {} fields, {} entity types, {} forms, {} departments",
                file.display(),
                schema.name,
                schema.revision,
                schema.villages.len(),
                schema.fields.len(),
                schema.entities.len(),
                schema.forms.len(),
                schema.departments.len()
            );
            Ok(())
        }
    }
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tower_http=warn"));
    if json {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .json()
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
}

async fn serve(cfg: Config, state: AppState) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(listen = %local, data_dir = %cfg.data_dir.display(), "yibiao-server ready");
    // Printed for scripts and tests that start the server on port 0.
    println!("listening on http://{local}");
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("server error: {e}"))?;
    tracing::info!("shut down cleanly");
    Ok(())
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
