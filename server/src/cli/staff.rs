//! `yibiao-server staff add|list|disable|reset-password`: the web console's accounts,
//! through the same operations as the console's pages ([`crate::console::staff`]).
//!
//! A password never travels in argv (shell history, `ps`): it is generated and printed
//! once, or read from stdin with `--password-stdin` (one line; a prompt when stdin is a
//! terminal).

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use clap::Subcommand;

use super::Paths;
use super::table::{listing, print};
use crate::accounts::now_ms;
use crate::console::staff::{self, NewStaff, Role, Scope};

#[derive(Subcommand)]
pub(crate) enum StaffAction {
    /// Add a console account: township staff (--role) or a department's clerk (--department).
    Add {
        /// Login name: ASCII letters, digits, - _ . @.
        login: String,
        /// Name as people write it, e.g. 王芳.
        #[arg(long)]
        name: String,
        /// Township role: admin (everything), leader (reads everything) or clerk.
        #[arg(long, conflicts_with = "department")]
        role: Option<String>,
        /// The department (a key of the schema) whose clerk this is.
        #[arg(long)]
        department: Option<String>,
        /// Read the password from stdin instead of generating one.
        #[arg(long)]
        password_stdin: bool,
        /// Schema used to check the department [default: as for serve].
        #[arg(long, env = "YIBIAO_SCHEMA")]
        schema: Option<PathBuf>,
    },
    /// List console accounts: login, name, role or department, state.
    List,
    /// Disable an account at once (its sessions end).
    Disable {
        /// The login.
        login: String,
    },
    /// Set a new password (its sessions end, its lock is lifted).
    ResetPassword {
        /// The login.
        login: String,
        /// Read the password from stdin instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
}

/// A password from stdin, or a generated one and whether it must be shown.
fn password(from_stdin: bool) -> Result<(String, bool), String> {
    if !from_stdin {
        return Ok((staff::generate_password().map_err(|e| e.to_string())?, true));
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!(
            "password (at least {} characters): ",
            staff::MIN_PASSWORD_CHARS
        );
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password from stdin: {e}"))?;
    Ok((line.trim_end_matches(['\r', '\n']).to_owned(), false))
}

fn audit(paths: &Paths, action: &str, target: &str) -> Result<(), String> {
    let (_, storage) = paths.open(None)?;
    staff::audit(storage.as_ref(), now_ms(), "cli", action, target, "cli")
        .map_err(|e| e.to_string())
}

impl StaffAction {
    pub(crate) fn run(self, paths: &Paths) -> Result<(), String> {
        match self {
            StaffAction::Add {
                login,
                name,
                role,
                department,
                password_stdin,
                schema,
            } => {
                let scope = match (role, department) {
                    (_, Some(d)) => Scope::Department(d),
                    (Some(r), None) => Scope::Township(Role::parse(&r).map_err(|e| e.to_string())?),
                    (None, None) => {
                        return Err("give --role admin|leader|clerk for township staff, or --department KEY for a department's clerk".into());
                    }
                };
                let (storage, schema) = paths.open_with_schema(schema)?;
                let (pw, show) = password(password_stdin)?;
                let new = NewStaff {
                    login: &login,
                    name: &name,
                    scope,
                    password: &pw,
                };
                staff::add(storage.as_ref(), &schema, &new, now_ms()).map_err(|e| e.to_string())?;
                audit(paths, "staff_add", &login)?;
                println!("staff account {login} added");
                if show {
                    println!("password (shown once): {pw}");
                }
            }
            StaffAction::List => {
                let (_, storage) = paths.open(None)?;
                let rows = storage.staff_list().map_err(|e| e.to_string())?;
                print(&listing(
                    rows.into_iter()
                        .map(|r| {
                            vec![
                                r.login,
                                r.name,
                                r.department.map_or(r.role, |d| format!("clerk of {d}")),
                                if r.disabled_ms.is_some() {
                                    "disabled"
                                } else {
                                    "active"
                                }
                                .into(),
                            ]
                        })
                        .collect(),
                ));
            }
            StaffAction::Disable { login } => {
                let (_, storage) = paths.open(None)?;
                staff::disable(storage.as_ref(), &login, now_ms()).map_err(|e| e.to_string())?;
                audit(paths, "staff_disable", &login)?;
                println!("staff account {login} disabled");
            }
            StaffAction::ResetPassword {
                login,
                password_stdin,
            } => {
                let (_, storage) = paths.open(None)?;
                let (pw, show) = password(password_stdin)?;
                staff::reset_password(storage.as_ref(), &login, &pw).map_err(|e| e.to_string())?;
                audit(paths, "password_reset", &login)?;
                println!("password of {login} reset");
                if show {
                    println!("password (shown once): {pw}");
                }
            }
        }
        Ok(())
    }
}
