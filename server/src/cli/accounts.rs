//! `yibiao-server device|cadre|department|admin-token`: the account operations of
//! [`crate::accounts`], the same the admin HTTP API calls.

use std::path::PathBuf;

use clap::Subcommand;

use super::Paths;
use super::table::{listing, local_time, print};
use crate::accounts::{self, AccountError};

#[derive(Subcommand)]
pub(crate) enum DeviceAction {
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
    /// List devices: device id (the phone's own, as conflicts, history and receipts show
    /// it; the token's key until its first sync), name, cadre, village, state.
    List,
    /// Revoke a device's token at once.
    Revoke {
        /// The device id shown by `device list` (or a token key).
        key: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum CadreAction {
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
    /// List cadres: id, name, village.
    List,
    /// Issue a one-time enrolment code for a cadre's phone.
    Code {
        /// The cadre id.
        id: String,
        /// Minutes the code stays valid.
        #[arg(long, default_value_t = accounts::DEFAULT_CODE_TTL_MINUTES)]
        ttl_minutes: i64,
    },
    /// Disable a cadre: their phones are revoked and their unused codes end.
    Disable {
        /// The cadre id.
        id: String,
    },
    /// Move a cadre to another village: their phones are revoked and must enrol again
    /// with a new code (a phone's scope is fixed at enrolment).
    Move {
        /// The cadre id.
        id: String,
        /// The new village; omit with --township for township staff.
        #[arg(long, conflicts_with = "township")]
        village: Option<String>,
        /// Township staff: every village.
        #[arg(long)]
        township: bool,
        /// Schema used to check the village [default: as for serve].
        #[arg(long, env = "YIBIAO_SCHEMA")]
        schema: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
pub(crate) enum DepartmentAction {
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
    /// List department tokens: key, department, name, state.
    List,
    /// Revoke a department token at once.
    Revoke {
        /// The token key shown by `department list`.
        key: String,
    },
}

fn text(e: AccountError) -> String {
    e.to_string()
}

fn township(village: Option<&str>) -> String {
    village.unwrap_or("(township)").to_owned()
}

fn state(revoked_ms: Option<i64>) -> String {
    if revoked_ms.is_some() {
        "revoked"
    } else {
        "active"
    }
    .to_owned()
}

/// A refusal for a key that does not exist, with where to find the right one.
fn not_found_hint(e: AccountError, list: &str) -> String {
    match e {
        AccountError::NotFound(m) => format!(
            "{}; see `yibiao-server {list}`",
            m.render(yibiao_model::messages::Lang::En)
        ),
        other => other.to_string(),
    }
}

impl DeviceAction {
    pub(crate) fn run(self, paths: &Paths) -> Result<(), String> {
        match self {
            DeviceAction::Add {
                name,
                cadre,
                village,
                township,
                schema,
            } => {
                if village.is_none() && !township {
                    return Err("give --village VILLAGE for a village phone, or --township for township staff".into());
                }
                let (storage, schema) = paths.open_with_schema(schema)?;
                let (row, token) = accounts::register_device(
                    storage.as_ref(),
                    &schema,
                    &name,
                    cadre.as_deref(),
                    village.as_deref(),
                )
                .map_err(text)?;
                println!("device {} registered", row.key);
                println!("token (shown once): {token}");
            }
            DeviceAction::List => {
                let (_, storage) = paths.open(None)?;
                let rows = accounts::devices(storage.as_ref()).map_err(|e| e.to_string())?;
                print(&listing(
                    rows.into_iter()
                        .map(|l| {
                            let d = l.device;
                            vec![
                                d.phone_device.unwrap_or(d.key),
                                d.name,
                                d.cadre.unwrap_or_else(|| "-".into()),
                                township(d.village.as_deref()),
                                state(d.revoked_ms),
                                format!("last sync {}", local_time(l.last_seen_ms)),
                            ]
                        })
                        .collect(),
                ));
            }
            DeviceAction::Revoke { key } => {
                let (_, storage) = paths.open(None)?;
                accounts::revoke_device(storage.as_ref(), &key)
                    .map_err(|e| not_found_hint(e, "device list"))?;
                println!("device {key} revoked");
            }
        }
        Ok(())
    }
}

impl CadreAction {
    pub(crate) fn run(self, paths: &Paths) -> Result<(), String> {
        match self {
            CadreAction::Add {
                id,
                name,
                village,
                township,
                schema,
            } => {
                if village.is_none() && !township {
                    return Err("give --village VILLAGE for a village cadre, or --township for township staff".into());
                }
                let (storage, schema) = paths.open_with_schema(schema)?;
                let row = accounts::create_cadre(
                    storage.as_ref(),
                    &schema,
                    &id,
                    &name,
                    village.as_deref(),
                )
                .map_err(text)?;
                println!(
                    "cadre {} ({}) added, scope {}",
                    row.id,
                    row.name,
                    row.village.as_deref().unwrap_or("township")
                );
            }
            CadreAction::List => {
                let (_, storage) = paths.open(None)?;
                let rows = storage.cadres().map_err(|e| e.to_string())?;
                print(&listing(
                    rows.into_iter()
                        .map(|c| vec![c.id, c.name, township(c.village.as_deref())])
                        .collect(),
                ));
            }
            CadreAction::Code { id, ttl_minutes } => {
                let (_, storage) = paths.open(None)?;
                let (code, expires_ms) =
                    accounts::issue_code(storage.as_ref(), &id, ttl_minutes).map_err(text)?;
                println!("code: {code}");
                println!(
                    "valid for {ttl_minutes} minutes, once (until {expires_ms} ms since the epoch)"
                );
            }
            CadreAction::Disable { id } => {
                let (_, storage) = paths.open(None)?;
                accounts::disable_cadre(storage.as_ref(), &id)
                    .map_err(|e| not_found_hint(e, "cadre list"))?;
                println!("cadre {id} disabled; their phones are revoked");
            }
            CadreAction::Move {
                id,
                village,
                township: to_township,
                schema,
            } => {
                if village.is_none() && !to_township {
                    return Err("give --village VILLAGE, or --township for township staff".into());
                }
                let (storage, schema) = paths.open_with_schema(schema)?;
                accounts::move_cadre(storage.as_ref(), &schema, &id, village.as_deref())
                    .map_err(|e| not_found_hint(e, "cadre list"))?;
                println!(
                    "cadre {id} moved to {}; their phones are revoked: issue a new code (cadre code {id}) and enrol again",
                    township(village.as_deref())
                );
            }
        }
        Ok(())
    }
}

impl DepartmentAction {
    pub(crate) fn run(self, paths: &Paths) -> Result<(), String> {
        match self {
            DepartmentAction::Token {
                department,
                name,
                schema,
            } => {
                let (storage, schema) = paths.open_with_schema(schema)?;
                let (row, token) =
                    accounts::issue_department_token(storage.as_ref(), &schema, &department, &name)
                        .map_err(text)?;
                println!("department token {} for {} issued", row.key, row.department);
                println!("token (shown once): {token}");
            }
            DepartmentAction::List => {
                let (_, storage) = paths.open(None)?;
                let rows = storage.department_tokens().map_err(|e| e.to_string())?;
                print(&listing(
                    rows.into_iter()
                        .map(|t| vec![t.key, t.department, t.name, state(t.revoked_ms)])
                        .collect(),
                ));
            }
            DepartmentAction::Revoke { key } => {
                let (_, storage) = paths.open(None)?;
                accounts::revoke_department_token(storage.as_ref(), &key)
                    .map_err(|e| not_found_hint(e, "department list"))?;
                println!("department token {key} revoked");
            }
        }
        Ok(())
    }
}

/// `admin-token`: a new admin token, printed once.
pub(crate) fn rotate_admin_token(paths: &Paths) -> Result<(), String> {
    let (_, storage) = paths.open(None)?;
    let token = accounts::rotate_admin_token(storage.as_ref()).map_err(text)?;
    println!("admin token (shown once; the previous one no longer works): {token}");
    Ok(())
}
