//! `yibiao-server quarantine list|scan|show ID|drop ID`: stored records the hub cannot
//! serve (they do not load, or are too large to send).
//!
//! A running server skips such a record by itself (its village keeps syncing) and writes
//! it to the database's quarantine list, which `list` prints (the same list `/ready` and
//! the metric count). `scan` loads every stored document to find those no server met yet
//! and adds them, and takes off the list those that load and fit the budget now (as
//! `serve` does at start: a raised `budget_record_bytes` frees what it covers). Dropping deletes the server's copy and its entry together: a phone that
//! holds the record pushes it whole with its next edit.

use clap::Subcommand;
use yibiao_model::RecordId;

use super::Paths;
use super::table::{listing, print};
use crate::storage::{QuarantinedRecord, ServerStorage};

#[derive(Subcommand)]
pub(crate) enum QuarantineAction {
    /// List the records set aside (the list `/ready` counts): id, entity, village,
    /// chunks, bytes, why.
    List,
    /// Load every stored record, add those that cannot be served to the list, take off
    /// it those that load and fit the budget now, print it.
    Scan,
    /// Show one record set aside, as JSON.
    Show {
        /// The record id shown by `quarantine list`.
        id: String,
    },
    /// Delete the server's copy of a record set aside (refused for a healthy record).
    Drop {
        /// The record id shown by `quarantine list`.
        id: String,
    },
}

impl QuarantineAction {
    pub(crate) fn run(self, paths: &Paths) -> Result<(), String> {
        let (storage, budget) = open(paths)?;
        match self {
            QuarantineAction::List => {
                let rows = storage.listed_records().map_err(|e| e.to_string())?;
                print(&listing(rows.iter().map(row).collect()));
                Ok(())
            }
            QuarantineAction::Scan => {
                let released = storage.release_fitting(budget).map_err(|e| e.to_string())?;
                if !released.is_empty() {
                    println!(
                        "released {} record(s) that load and fit the budget now",
                        released.len()
                    );
                }
                let found = storage
                    .quarantined_records(budget)
                    .map_err(|e| e.to_string())?;
                let now = chrono::Utc::now().timestamp_millis();
                for q in &found {
                    storage
                        .quarantine(q.id, &q.reason, now)
                        .map_err(|e| e.to_string())?;
                }
                let rows = storage.listed_records().map_err(|e| e.to_string())?;
                print(&listing(rows.iter().map(row).collect()));
                Ok(())
            }
            QuarantineAction::Show { id } => {
                let q = set_aside(&storage, &id, budget)?;
                super::print_json(&q)
            }
            QuarantineAction::Drop { id } => {
                let q = set_aside(&storage, &id, budget)?;
                storage.drop_record(q.id).map_err(|e| e.to_string())?;
                println!(
                    "dropped record {} ({}); phones holding it push it whole with their next edit",
                    q.id, q.reason
                );
                Ok(())
            }
        }
    }
}

/// The configured database (SQLite in the data directory, or `--database`
/// PostgreSQL) and the record budget of the configuration (`budget_record_bytes`).
fn open(paths: &Paths) -> Result<(std::sync::Arc<dyn ServerStorage>, usize), String> {
    let (cfg, storage) = paths.open(None)?;
    Ok((storage, cfg.budgets.max_record_bytes))
}

/// The record `id` if it is on the list, or found unservable now; an error naming why
/// not otherwise.
fn set_aside(
    storage: &std::sync::Arc<dyn ServerStorage>,
    id: &str,
    budget: usize,
) -> Result<QuarantinedRecord, String> {
    let id: RecordId = id
        .parse()
        .map_err(|e| format!("`{id}` is not a record id: {e}"))?;
    let listed = storage.listed_records().map_err(|e| e.to_string())?;
    if let Some(q) = listed.into_iter().find(|q| q.id == id) {
        return Ok(q);
    }
    storage
        .quarantined_record(id, budget)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("record {id} is not set aside (unknown, or it loads and fits)"))
}

fn row(q: &QuarantinedRecord) -> Vec<String> {
    vec![
        q.id.to_string(),
        q.entity.clone(),
        q.village.clone().unwrap_or_else(|| "-".into()),
        format!("{} chunks", q.chunks),
        format!("{} bytes", q.bytes),
        q.reason.clone(),
    ]
}
