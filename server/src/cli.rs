//! The command line of `yibiao-server`: serve, manage devices, issue tasks and read the
//! reports, from one binary.
//!
//! Lives in the library so end-to-end tests can build the very same binary as a child
//! process (`tests/` has a one-line `main` calling [`main`]). The task and report
//! commands call the same operations as the HTTP API ([`crate::tasks`]), so both give the
//! same answers and the same refusals.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use crate::accounts;
use crate::config::{Config, FileConfig, Overrides};
use crate::storage::{ServerStorage, SqliteStorage};
use crate::tasks::{self, Issuer, NewTask, TaskProgress};
use crate::{AppState, ServerHub, app};
use clap::{ArgGroup, Parser, Subcommand};
use yibiao_model::Schema;
use yibiao_model::clock::SystemClock;
use yibiao_sync::{Hub, HubConfig};

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
    /// Issue tasks to villages and follow their progress.
    ///
    /// Cancelling a task is not a CLI command: a running server caches documents, so
    /// only the server itself may change an issued task. Cancel over HTTP with
    /// `DELETE /v1/tasks/{id}` (admin or department token).
    Task {
        #[command(subcommand)]
        action: TaskAction,
    },
    /// Print records complete per village and form, and tasks by status, with totals.
    Summary {
        /// Whose view: `township` (everything) or a department key.
        #[arg(long, default_value = "township")]
        issuer: String,
        /// Print JSON (as `GET /v1/summary`) instead of a table.
        #[arg(long)]
        json: bool,
        /// Schema file [default: as for serve].
        #[arg(long, env = "YIBIAO_SCHEMA")]
        schema: Option<PathBuf>,
    },
    /// Print the burden report: values cadres typed vs the copies departments received.
    Burden {
        /// First day, YYYY-MM-DD in UTC+8 [default: the --to day].
        #[arg(long)]
        from: Option<String>,
        /// Last day (inclusive), YYYY-MM-DD in UTC+8 [default: today].
        #[arg(long)]
        to: Option<String>,
        /// Print JSON (as `GET /v1/burden`) instead of the report.
        #[arg(long)]
        json: bool,
        /// Schema file [default: as for serve].
        #[arg(long, env = "YIBIAO_SCHEMA")]
        schema: Option<PathBuf>,
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
enum TaskAction {
    /// Issue a task: one document per target village, delivered on the phones' next sync.
    ///
    /// Safe while the server runs: it only adds new documents, which the running server
    /// reads from the database on the next sync.
    #[command(group(ArgGroup::new("target").required(true).args(["villages", "records"])))]
    Add {
        /// Short title, e.g. "2026 dibao review".
        #[arg(long)]
        title: String,
        /// The form to fill, e.g. dibao_check.
        #[arg(long)]
        form: String,
        /// Due: YYYY-MM-DD (end of that day, UTC+8) or an RFC 3339 time.
        #[arg(long)]
        due: String,
        /// Target villages, comma-separated; `*` for every village the issuer sees.
        #[arg(long, value_delimiter = ',')]
        villages: Option<Vec<String>>,
        /// Target record ids (UUIDs), comma-separated.
        #[arg(long, value_delimiter = ',')]
        records: Option<Vec<String>>,
        /// What to do, shown to cadres.
        #[arg(long, default_value = "")]
        instructions: String,
        /// Who issues it: `township` or a department key of the schema.
        #[arg(long, default_value = "township")]
        issuer: String,
        /// Print the task's progress as JSON (as `POST /v1/tasks` answers).
        #[arg(long)]
        json: bool,
        /// Schema file [default: as for serve].
        #[arg(long, env = "YIBIAO_SCHEMA")]
        schema: Option<PathBuf>,
    },
    /// List tasks, newest first: id, issuer, form, due, villages by status, title.
    List {
        /// Whose tasks: `township` (every task) or a department key.
        #[arg(long, default_value = "township")]
        issuer: String,
        /// Print JSON (as `GET /v1/tasks`).
        #[arg(long)]
        json: bool,
        /// Schema file [default: as for serve].
        #[arg(long, env = "YIBIAO_SCHEMA")]
        schema: Option<PathBuf>,
    },
    /// Show one task's progress per village.
    Show {
        /// The task id shown by `task add` or `task list`.
        id: String,
        /// Whose view: `township` or a department key (it sees only its own tasks).
        #[arg(long, default_value = "township")]
        issuer: String,
        /// Print JSON (as `GET /v1/tasks/{id}`).
        #[arg(long)]
        json: bool,
        /// Schema file [default: as for serve].
        #[arg(long, env = "YIBIAO_SCHEMA")]
        schema: Option<PathBuf>,
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
    quiet_broken_pipe();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("yibiao-server: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `yibiao-server task list | head` closes our stdout early; `println!` then panics.
/// Exit quietly like other Unix tools instead of printing a backtrace.
fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
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
        Command::Task { action } => {
            let schema_flag = match &action {
                TaskAction::Add { schema, .. }
                | TaskAction::List { schema, .. }
                | TaskAction::Show { schema, .. } => schema.clone(),
            };
            let (cfg, storage) = open_storage(&cli.config, cli.data_dir, schema_flag)?;
            let schema = load_schema(&cfg)?;
            run_task(action, schema, storage)
        }
        Command::Summary {
            issuer,
            json,
            schema,
        } => {
            let (cfg, storage) = open_storage(&cli.config, cli.data_dir, schema)?;
            let schema = load_schema(&cfg)?;
            let issuer = parse_issuer(&schema, &issuer)?;
            let s = tasks::summary(storage.as_ref(), &schema, &issuer, accounts::now_ms())
                .map_err(|e| e.to_string())?;
            if json {
                print_json(&s)
            } else {
                print_summary(&schema, &issuer, &s);
                Ok(())
            }
        }
        Command::Burden {
            from,
            to,
            json,
            schema,
        } => {
            let (cfg, storage) = open_storage(&cli.config, cli.data_dir, schema)?;
            let schema = load_schema(&cfg)?;
            let to = to.unwrap_or_else(|| tasks::today(accounts::now_ms()));
            let from = from.unwrap_or_else(|| to.clone());
            let b =
                tasks::burden(storage.as_ref(), &schema, &from, &to).map_err(|e| e.to_string())?;
            if json {
                print_json(&b)
            } else {
                print_burden(&schema, &b);
                Ok(())
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

fn run_task(
    action: TaskAction,
    schema: Schema,
    storage: Arc<dyn ServerStorage>,
) -> Result<(), String> {
    let now = accounts::now_ms();
    match action {
        TaskAction::Add {
            title,
            form,
            due,
            villages,
            records,
            instructions,
            issuer,
            json,
            ..
        } => {
            let issuer = parse_issuer(&schema, &issuer)?;
            let list = |v: Option<Vec<String>>| {
                v.map(|v| {
                    v.iter()
                        .map(|s| s.trim())
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect::<Vec<_>>()
                })
            };
            let req = NewTask {
                title,
                instructions,
                form,
                due,
                villages: list(villages),
                records: list(records),
            };
            let hub: ServerHub = Hub::new(
                Arc::new(schema),
                storage.clone(),
                Arc::new(SystemClock),
                HubConfig::default(),
            );
            let p = tasks::issue(&hub, storage.as_ref(), &issuer, &req, now)
                .map_err(|e| e.to_string())?;
            if json {
                return print_json(&p);
            }
            println!(
                "task {} issued by {} to {} village(s); phones receive it on their next sync",
                p.task,
                p.issuer,
                p.villages.len()
            );
            print_villages(hub.schema(), &p);
            Ok(())
        }
        TaskAction::List { issuer, json, .. } => {
            let issuer = parse_issuer(&schema, &issuer)?;
            let list =
                tasks::list(storage.as_ref(), &schema, &issuer, now).map_err(|e| e.to_string())?;
            if json {
                return print_json(&serde_json::json!({ "tasks": list }));
            }
            for p in list {
                let c = &p.counts;
                let mut counts = format!(
                    "sent {}, delivered {}, opened {}, overdue {}, done {}",
                    c.sent, c.delivered, c.opened, c.overdue, c.done
                );
                if c.cancelled > 0 {
                    counts.push_str(&format!(", cancelled {}", c.cancelled));
                }
                println!(
                    "{}\t{}\t{}\tdue {}\t{}\t{}",
                    p.task, p.issuer, p.form, p.due, counts, p.title
                );
            }
            Ok(())
        }
        TaskAction::Show {
            id, issuer, json, ..
        } => {
            let issuer = parse_issuer(&schema, &issuer)?;
            let p = tasks::progress(storage.as_ref(), &schema, &issuer, id.trim(), now)
                .map_err(|e| e.to_string())?;
            if json {
                return print_json(&p);
            }
            println!("task      {}", p.task);
            println!("title     {}", p.title);
            if !p.instructions.is_empty() {
                println!("what      {}", p.instructions);
            }
            println!(
                "form      {}",
                with_label(&p.form, form_zh(&schema, &p.form))
            );
            println!("issuer    {}", p.issuer);
            println!("issued    {}", local_time(Some(p.created_ms)));
            println!("due       {} (UTC+8)", local_time(Some(p.due_ms)));
            if p.cancelled {
                println!("status    cancelled");
            }
            println!();
            print_villages(&schema, &p);
            Ok(())
        }
    }
}

/// `township`, or a department of the schema.
fn parse_issuer(schema: &Schema, name: &str) -> Result<Issuer, String> {
    let name = name.trim();
    if name == "township" {
        return Ok(Issuer::Township);
    }
    schema
        .department(name)
        .cloned()
        .map(Issuer::Department)
        .ok_or_else(|| {
            let known: Vec<&str> = schema.departments.keys().map(String::as_str).collect();
            format!(
                "unknown issuer `{name}`: give `township` or a department of the schema: {}",
                known.join(", ")
            )
        })
}

fn print_json(value: &impl serde::Serialize) -> Result<(), String> {
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    println!("{text}");
    Ok(())
}

/// `YYYY-MM-DD HH:MM` in UTC+8 (the township's time), `-` when absent.
fn local_time(ms: Option<i64>) -> String {
    ms.and_then(|ms| chrono::DateTime::from_timestamp_millis(ms + 8 * 3_600_000))
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_else(|| "-".into())
}

fn village_zh<'a>(schema: &'a Schema, village: &str) -> &'a str {
    schema.villages.get(village).map_or("", |l| l.zh.as_str())
}

fn form_zh<'a>(schema: &'a Schema, form: &str) -> &'a str {
    schema.form(form).map_or("", |f| f.labels.zh.as_str())
}

/// `key 中文` (or just the key when there is no label).
fn with_label(key: &str, zh: &str) -> String {
    if zh.is_empty() {
        key.to_owned()
    } else {
        format!("{key} {zh}")
    }
}

/// Columns a terminal gives `s`: CJK and full-width characters take two.
fn display_width(s: &str) -> usize {
    s.chars()
        .map(|c| match c as u32 {
            0x1100..=0x115F
            | 0x2E80..=0x303E
            | 0x3041..=0x33FF
            | 0x3400..=0x4DBF
            | 0x4E00..=0x9FFF
            | 0xA000..=0xA4CF
            | 0xAC00..=0xD7A3
            | 0xF900..=0xFAFF
            | 0xFE30..=0xFE4F
            | 0xFF00..=0xFF60
            | 0xFFE0..=0xFFE6
            | 0x20000..=0x3FFFD => 2,
            _ => 1,
        })
        .sum()
}

/// Prints rows as aligned columns, two spaces apart, indented by two; columns whose
/// `right` flag is set (numbers) are right-aligned. The first row is the header.
fn print_table(rows: &[Vec<String>], right: &[bool]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| display_width(c))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            let pad = " ".repeat(width - display_width(cell));
            line.push_str("  ");
            if right.get(i).copied().unwrap_or(false) {
                line.push_str(&pad);
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&pad);
            }
        }
        println!("{}", line.trim_end());
    }
}

fn print_villages(schema: &Schema, p: &TaskProgress) {
    let mut rows = vec![
        [
            "village",
            "",
            "status",
            "delivered",
            "opened",
            "done",
            "records",
            "note",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for v in &p.villages {
        let (village, zh) = match &v.village {
            Some(v) => (v.clone(), village_zh(schema, v).to_owned()),
            None => ("(township)".to_owned(), String::new()),
        };
        rows.push(vec![
            village,
            zh,
            v.status.as_str().to_owned(),
            local_time(v.delivered_ms),
            local_time(v.opened_ms),
            local_time(v.done_ms),
            format!("{}/{}", v.records_complete, v.records_total),
            v.note.clone().unwrap_or_default(),
        ]);
    }
    print_table(&rows, &[false, false, false, false, false, false, true]);
}

fn print_summary(schema: &Schema, issuer: &Issuer, s: &tasks::Summary) {
    println!(
        "summary for {} at {} (records: complete/incomplete; tasks: villages by status)",
        issuer.name(),
        local_time(Some(s.generated_ms))
    );
    let header = [
        "village",
        "",
        "form",
        "",
        "complete",
        "incomplete",
        "sent",
        "delivered",
        "opened",
        "overdue",
        "done",
        "cancelled",
    ];
    let mut rows = vec![header.map(String::from).to_vec()];
    let line = |village: String, zh: String, r: &tasks::SummaryRow| {
        let t = &r.tasks;
        let mut row = vec![
            village,
            zh,
            r.form.clone(),
            form_zh(schema, &r.form).to_owned(),
        ];
        row.extend(
            [
                r.records_complete,
                r.records_incomplete,
                t.sent,
                t.delivered,
                t.opened,
                t.overdue,
                t.done,
                t.cancelled,
            ]
            .map(|n| n.to_string()),
        );
        row
    };
    for r in &s.rows {
        rows.push(line(
            r.village.clone(),
            village_zh(schema, &r.village).to_owned(),
            r,
        ));
    }
    for r in &s.totals {
        rows.push(line("total".into(), "合计".into(), r));
    }
    let mut right = vec![false; 4];
    right.extend([true; 8]);
    print_table(&rows, &right);
}

fn print_burden(schema: &Schema, b: &tasks::Burden) {
    let period = if b.from == b.to {
        b.from.clone()
    } else {
        format!("{} to {}", b.from, b.to)
    };
    println!("burden report for {period} (days in UTC+8)");
    println!();
    print_table(
        &[
            vec![
                "values typed".into(),
                "录入次数".into(),
                b.values_typed.to_string(),
                "field values cadres typed on phones".into(),
            ],
            vec![
                "deliveries".into(),
                "部门获取".into(),
                b.deliveries.to_string(),
                "(record, field, department) copies those values reached".into(),
            ],
            vec![
                "reuse ratio".into(),
                "复用倍数".into(),
                format!("{:.2}", b.reuse_ratio),
                "deliveries per value typed".into(),
            ],
            vec![
                "entries saved".into(),
                "少录次数".into(),
                b.entries_saved.to_string(),
                "entries avoided had each department collected its own copy".into(),
            ],
        ],
        &[false, false, true, false],
    );
    println!();
    println!("per department");
    let mut rows = vec![["department", "", "deliveries"].map(String::from).to_vec()];
    for d in &b.departments {
        let zh = schema
            .department(&d.department)
            .map_or("", |x| x.labels.zh.as_str());
        rows.push(vec![
            d.department.clone(),
            zh.to_owned(),
            d.deliveries.to_string(),
        ]);
    }
    print_table(&rows, &[false, false, true]);
    println!();
    println!("per field");
    if b.fields.is_empty() {
        println!("  (nothing typed in this period)");
        return;
    }
    let mut rows = vec![
        ["field", "", "typed", "records", "deliveries"]
            .map(String::from)
            .to_vec(),
    ];
    for f in &b.fields {
        let zh = schema.field(&f.field).map_or("", |x| x.labels.zh.as_str());
        rows.push(vec![
            f.field.clone(),
            zh.to_owned(),
            f.typed.to_string(),
            f.records.to_string(),
            f.deliveries.to_string(),
        ]);
    }
    print_table(&rows, &[false, false, true, true, true]);
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
