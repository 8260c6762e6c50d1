//! `yibiao-server task add|list|show`: the operations of [`crate::tasks`], the same the
//! `/v1/tasks` endpoints call.

use std::path::PathBuf;
use std::sync::Arc;

use clap::{ArgGroup, Subcommand};
use yibiao_model::Schema;
use yibiao_model::clock::SystemClock;
use yibiao_sync::{Hub, HubConfig};

use super::table::{self, Align, form_zh, listing, local_time, print, village_zh, with_label};
use super::{Paths, print_json};
use crate::accounts;
use crate::state::ServerHub;
use crate::tasks::{self, Issuer, NewTask, TaskProgress};

#[derive(Subcommand)]
pub(crate) enum TaskAction {
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
        /// Due: YYYY-MM-DD (end of that day, UTC+8), an RFC 3339 time, or `+N` days
        /// from today in the township (`+7d`: the end of the day a week from now).
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
        #[command(flatten)]
        view: View,
    },
    /// List tasks, newest first: id, issuer, form, due, villages by status, title.
    List {
        #[command(flatten)]
        view: View,
    },
    /// Show one task's progress per village.
    Show {
        /// The task id shown by `task add` or `task list`.
        id: String,
        #[command(flatten)]
        view: View,
    },
}

/// Whose view, in which format, with which schema (every task command takes them).
#[derive(clap::Args)]
pub(crate) struct View {
    /// Whose tasks: `township` (every task) or a department key of the schema.
    #[arg(long, default_value = "township")]
    issuer: String,
    /// Print JSON (as the `/v1/tasks` endpoints answer).
    #[arg(long)]
    json: bool,
    /// Schema file [default: as for serve].
    #[arg(long, env = "YIBIAO_SCHEMA")]
    schema: Option<PathBuf>,
}

impl TaskAction {
    pub(crate) fn run(self, paths: &Paths) -> Result<(), String> {
        let view = match &self {
            TaskAction::Add { view, .. }
            | TaskAction::List { view }
            | TaskAction::Show { view, .. } => view,
        };
        let (storage, schema) = paths.open_with_schema(view.schema.clone())?;
        let issuer = parse_issuer(&schema, &view.issuer)?;
        let json = view.json;
        let now = accounts::now_ms();
        match self {
            TaskAction::Add {
                title,
                form,
                due,
                villages,
                records,
                instructions,
                ..
            } => {
                let req = NewTask {
                    title,
                    instructions,
                    form,
                    due: relative_due(&due, now)?,
                    villages: villages.map(list),
                    records: records.map(list),
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
                print(&villages_table(hub.schema(), &p));
            }
            TaskAction::List { .. } => {
                let list = tasks::list(storage.as_ref(), &schema, &issuer, now)
                    .map_err(|e| e.to_string())?;
                if json {
                    return print_json(&serde_json::json!({ "tasks": list }));
                }
                print(&listing(list.iter().map(list_row).collect()));
            }
            TaskAction::Show { id, .. } => {
                let p = tasks::progress(storage.as_ref(), &schema, &issuer, id.trim(), now)
                    .map_err(|e| e.to_string())?;
                if json {
                    return print_json(&p);
                }
                print_task(&schema, &p);
            }
        }
        Ok(())
    }
}

/// The non-empty, trimmed items of a comma-separated list.
fn list(items: Vec<String>) -> Vec<String> {
    items
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `township`, or a department of the schema.
pub(crate) fn parse_issuer(schema: &Schema, name: &str) -> Result<Issuer, String> {
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

/// One line of `task list`.
fn list_row(p: &TaskProgress) -> Vec<String> {
    let c = &p.counts;
    let mut counts = format!(
        "sent {}, delivered {}, opened {}, overdue {}, done {}",
        c.sent, c.delivered, c.opened, c.overdue, c.done
    );
    if c.cancelled > 0 {
        counts.push_str(&format!(", cancelled {}", c.cancelled));
    }
    vec![
        p.task.clone(),
        p.issuer.clone(),
        p.form.clone(),
        format!("due {}", p.due),
        counts,
        p.title.clone(),
    ]
}

fn print_task(schema: &Schema, p: &TaskProgress) {
    println!("task      {}", p.task);
    println!("title     {}", p.title);
    if !p.instructions.is_empty() {
        println!("what      {}", p.instructions);
    }
    println!(
        "form      {}",
        with_label(&p.form, form_zh(schema, &p.form))
    );
    println!("issuer    {}", p.issuer);
    println!("issued    {}", local_time(Some(p.created_ms)));
    println!("due       {} (UTC+8)", local_time(Some(p.due_ms)));
    if p.cancelled {
        println!("status    cancelled");
    }
    println!();
    print(&villages_table(schema, p));
}

/// Per village: status, when delivered / opened / done, records complete, the note.
fn villages_table(schema: &Schema, p: &TaskProgress) -> Vec<String> {
    let rows = p
        .villages
        .iter()
        .map(|v| {
            let (village, zh) = match &v.village {
                Some(v) => (v.clone(), village_zh(schema, v).to_owned()),
                None => ("(township)".to_owned(), String::new()),
            };
            vec![
                village,
                zh,
                v.status.as_str().to_owned(),
                local_time(v.delivered_ms),
                local_time(v.opened_ms),
                local_time(v.done_ms),
                format!("{}/{}", v.records_complete, v.records_total),
                v.note.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let mut align = vec![Align::Left; 6];
    align.push(Align::Right);
    table::report(
        &[
            "village",
            "",
            "status",
            "delivered",
            "opened",
            "done",
            "records",
            "note",
        ],
        rows,
        &align,
    )
}

/// `+Nd` (N days after today in the township, as YYYY-MM-DD), else `due` as typed.
fn relative_due(due: &str, now_ms: i64) -> Result<String, String> {
    let Some(days) = due.trim().strip_prefix('+') else {
        return Ok(due.to_owned());
    };
    let n: u32 = days
        .strip_suffix('d')
        .and_then(|n| n.parse().ok())
        .filter(|n| (1..=3660).contains(n))
        .ok_or_else(|| {
            format!("--due `{due}`: write +N days, e.g. +7d (1 to 3660), or a date YYYY-MM-DD")
        })?;
    let day = yibiao_model::clock::day_of(now_ms) + chrono::Days::new(u64::from(n));
    Ok(day.format("%Y-%m-%d").to_string())
}
