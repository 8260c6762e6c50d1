//! The command line of `yibiao-server`: serve, manage accounts, issue tasks and read the
//! reports, from one binary. One module per subject: [`serve`], [`accounts`] (devices,
//! cadres, department tokens, the admin token), [`task`], [`report`] (summary, burden),
//! [`quarantine`] (stored records the server cannot serve), [`staff`] (the web console's
//! accounts), [`blobs`] (the attachments' garbage pass).
//!
//! Lives in the library so end-to-end tests can build the very same binary as a child
//! process (`tests/` has a one-line `main` calling [`main`]). The account, task and
//! report commands call the same operations as the HTTP API ([`crate::accounts`],
//! [`crate::tasks`]), so both give the same answers and the same refusals.

mod accounts;
mod backup;
mod blobs;
mod datadir;
mod findings;
mod migrate;
mod quarantine;
mod report;
mod serve;
mod staff;
mod table;
mod task;
mod webhook;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use yibiao_model::Schema;

use crate::config::{Config, FileConfig, Overrides};
use crate::storage::{ServerStorage, SqliteStorage};

#[derive(Parser)]
#[command(
    name = "yibiao-server",
    version,
    about = "yibiao sync server (一表): phones sync here, departments pull here"
)]
struct Cli {
    #[command(flatten)]
    paths: Paths,
    #[command(subcommand)]
    command: Command,
}

/// Where the configuration and the data live (every command takes them).
#[derive(clap::Args)]
struct Paths {
    /// TOML config file (flags and environment variables override it).
    #[arg(long, global = true, env = "YIBIAO_CONFIG")]
    config: Option<PathBuf>,
    /// Directory holding the database.
    #[arg(long, global = true, env = "YIBIAO_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// PostgreSQL address (postgres://user@host:port/db) [default: SQLite in DATA_DIR].
    #[arg(long, global = true, env = "YIBIAO_DATABASE")]
    database: Option<String>,
    /// Make the data directory and its database when there is none (operator commands
    /// otherwise refuse a directory without a database: a mistyped --data-dir).
    #[arg(long, global = true)]
    create: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (makes the data directory and its database on the first start).
    Serve(serve::ServeArgs),
    /// Make the data directory and its database (owner-only), without serving.
    Init,
    /// Copy the database to a file, consistent while the server serves and writes.
    Backup(backup::BackupArgs),
    /// Put a backup into a data directory (empty, or --force) where no server runs.
    Restore(backup::RestoreArgs),
    /// Manage device tokens.
    Device {
        #[command(subcommand)]
        action: accounts::DeviceAction,
    },
    /// Manage cadres and their one-time enrolment codes.
    Cadre {
        #[command(subcommand)]
        action: accounts::CadreAction,
    },
    /// Manage department tokens.
    Department {
        #[command(subcommand)]
        action: accounts::DepartmentAction,
    },
    /// Issue tasks to villages and follow their progress.
    ///
    /// Cancelling a task is not a CLI command: a running server caches documents, so
    /// only the server itself may change an issued task. Cancel over HTTP with
    /// `DELETE /v1/tasks/{id}` (admin or department token).
    Task {
        #[command(subcommand)]
        action: task::TaskAction,
    },
    /// Print records complete per village and form, and tasks by status, with totals.
    Summary(report::SummaryArgs),
    /// Print the burden report: values cadres typed vs the copies departments received.
    Burden(report::BurdenArgs),
    /// Inspection findings: the report (通报) of a period.
    ///
    /// Findings are recorded and stepped over HTTP (`/v1/findings`) and on phones: a
    /// running server caches documents, so only the server itself writes them.
    Findings {
        #[command(subcommand)]
        action: findings::FindingsAction,
    },
    /// Stored records the server cannot serve (damaged, or too large to send): list,
    /// inspect, drop.
    Quarantine {
        #[command(subcommand)]
        action: quarantine::QuarantineAction,
    },
    /// Attachments' bytes: `gc` removes blobs no record references after the grace.
    Blobs {
        #[command(subcommand)]
        action: blobs::BlobsAction,
    },
    /// Manage the web console's staff accounts (people who sign in at `/`).
    Staff {
        #[command(subcommand)]
        action: staff::StaffAction,
    },
    /// Departments' systems that get their view's changes pushed (webhooks).
    Webhook {
        #[command(subcommand)]
        action: webhook::WebhookAction,
    },
    /// Create a new admin token (the old one stops working) and print it once.
    AdminToken,
    /// Copy this SQLite data directory into a new, empty PostgreSQL database (every
    /// table, feed positions included), verified by counts and checksums.
    Migrate(migrate::MigrateArgs),
    /// Check a schema file and print a summary; with `--against`, also what serving it
    /// over that data directory would strand (exits non-zero when anything would be).
    CheckSchema {
        /// The schema file.
        file: PathBuf,
        /// A data directory whose stored records the revision is checked against.
        #[arg(long, value_name = "DATA_DIR")]
        against: Option<PathBuf>,
    },
}

/// Parses the command line and runs it; the process's exit code.
pub fn main() -> ExitCode {
    quiet_broken_pipe();
    datadir::private_umask();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("yibiao-server: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one command given as its words (`["yibiao-server", "--data-dir", "d",
/// "migrate", "--to", url]`), as the binary would: for examples that play the
/// operator in process. Bad words are an error, not an exit.
pub fn run_words<I, T>(words: I) -> Result<(), String>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = Cli::try_parse_from(words).map_err(|e| e.to_string())?;
    run(cli)
}

fn run(cli: Cli) -> Result<(), String> {
    let paths = cli.paths;
    match cli.command {
        Command::Serve(args) => serve::run(args, paths),
        Command::Init => init(&paths),
        Command::Backup(args) => args.run(&paths),
        Command::Restore(args) => args.run(&paths),
        Command::Device { action } => action.run(&paths),
        Command::Cadre { action } => action.run(&paths),
        Command::Department { action } => action.run(&paths),
        Command::Task { action } => action.run(&paths),
        Command::Summary(args) => args.run(&paths),
        Command::Burden(args) => args.run(&paths),
        Command::Findings { action } => action.run(&paths),
        Command::Quarantine { action } => action.run(&paths),
        Command::Staff { action } => action.run(&paths),
        Command::Webhook { action } => action.run(&paths),
        Command::Blobs { action } => action.run(&paths),
        Command::AdminToken => accounts::rotate_admin_token(&paths),
        Command::Migrate(args) => args.run(&paths),
        Command::CheckSchema { file, against } => check_schema(&paths, &file, against.as_deref()),
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

impl Paths {
    /// The effective configuration: `over`, then the config file, then defaults.
    fn config(&self, over: Overrides) -> Result<Config, String> {
        let file = match &self.config {
            Some(path) => FileConfig::read(path)?,
            None => FileConfig::default(),
        };
        Config::resolve(
            Overrides {
                data_dir: over.data_dir.or_else(|| self.data_dir.clone()),
                database: over.database.or_else(|| self.database.clone()),
                ..over
            },
            file,
        )
    }

    /// The configuration and the data directory's database; refused when the directory
    /// holds no database, unless `--create`.
    fn open(&self, schema: Option<PathBuf>) -> Result<(Config, Arc<dyn ServerStorage>), String> {
        let cfg = self.config(Overrides {
            schema,
            ..Overrides::default()
        })?;
        match &cfg.database {
            Some(url) => datadir::require_postgres(url, self.create)?,
            None => datadir::require_database(&cfg.data_dir, self.create)?,
        }
        std::fs::create_dir_all(&cfg.data_dir).map_err(|e| {
            format!(
                "cannot create data directory {}: {e}",
                cfg.data_dir.display()
            )
        })?;
        if let Some(url) = &cfg.database {
            let storage = crate::state::open_postgres(url)?;
            return Ok((cfg, storage));
        }
        let storage =
            SqliteStorage::open(&cfg.data_dir.join("yibiao.db")).map_err(|e| e.to_string())?;
        Ok((cfg, Arc::new(storage)))
    }

    /// The configuration, the database and the schema, for commands that check input
    /// against the schema.
    fn open_with_schema(
        &self,
        schema: Option<PathBuf>,
    ) -> Result<(Arc<dyn ServerStorage>, Schema), String> {
        let (cfg, storage) = self.open(schema)?;
        Ok((storage, load_schema(&cfg)?))
    }
}

/// `init`: the data directory and a migrated database, or a note that there is one.
fn init(paths: &Paths) -> Result<(), String> {
    let cfg = paths.config(Overrides::default())?;
    std::fs::create_dir_all(&cfg.data_dir).map_err(|e| {
        format!(
            "cannot create data directory {}: {e}",
            cfg.data_dir.display()
        )
    })?;
    if let Some(url) = &cfg.database {
        let existed = crate::storage::postgres::is_migrated(url).map_err(|e| {
            format!(
                "database {} cannot be opened: {e}",
                crate::state::redact(url)
            )
        })?;
        crate::state::open_postgres(url)?;
        let url = crate::state::redact(url);
        if existed {
            println!("{url} already holds yibiao's tables (migrated to this version)");
        } else {
            println!("created yibiao's tables in {url}");
        }
        return Ok(());
    }
    let db = datadir::database(&cfg.data_dir);
    let existed = db.exists();
    SqliteStorage::open(&db).map_err(|e| format!("database {}: {e}", db.display()))?;
    if existed {
        println!(
            "{} already holds a yibiao database (migrated to this version)",
            cfg.data_dir.display()
        );
    } else {
        println!("created a yibiao database in {}", cfg.data_dir.display());
    }
    Ok(())
}

/// The configured schema file, else the built-in Baru example.
fn load_schema(config: &Config) -> Result<Schema, String> {
    match config.schema_path() {
        Some(path) => Schema::from_toml_file(&path).map_err(|e| e.to_string()),
        None => Ok(Schema::baru_example()),
    }
}

/// Prints pretty JSON (the same shapes as the HTTP API answers).
fn print_json(value: &impl serde::Serialize) -> Result<(), String> {
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    println!("{text}");
    Ok(())
}

fn check_schema(
    paths: &Paths,
    file: &std::path::Path,
    against: Option<&std::path::Path>,
) -> Result<(), String> {
    let schema = Schema::from_toml_file(file).map_err(|e| e.to_string())?;
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
    match against {
        Some(dir) => check_against(paths, &schema, dir),
        None => Ok(()),
    }
}

/// Prints what serving `schema` over the data in `dir` would strand: the records of the
/// configured database (`--database` PostgreSQL, else `dir`'s SQLite), against the
/// revision `dir` last served.
fn check_against(paths: &Paths, schema: &Schema, dir: &std::path::Path) -> Result<(), String> {
    let cfg = paths.config(Overrides::default())?;
    let storage: Arc<dyn ServerStorage> = match &cfg.database {
        Some(url) => {
            datadir::require_postgres(url, false)?;
            crate::state::open_postgres(url)?
        }
        None => {
            let db = dir.join("yibiao.db");
            if !db.exists() {
                return Err(format!("{} holds no yibiao database", dir.display()));
            }
            Arc::new(SqliteStorage::open(&db).map_err(|e| e.to_string())?)
        }
    };
    let old = crate::schema_change::served(dir);
    let report = crate::schema_change::stranding(storage.as_ref(), old.as_ref(), schema)?;
    let against = old.map_or_else(
        || "the stored records".to_owned(),
        |s| format!("revision {} and the stored records", s.revision),
    );
    if report.is_empty() {
        println!(
            "against {against} in {}: nothing would be stranded",
            dir.display()
        );
        return Ok(());
    }
    println!(
        "against {against} in {}, revision {} would strand:",
        dir.display(),
        schema.revision
    );
    for line in report.lines() {
        println!("  {line}");
    }
    Err(format!(
        "revision {} would strand data (listed above); `serve` refuses it without --allow-stranding",
        schema.revision
    ))
}
