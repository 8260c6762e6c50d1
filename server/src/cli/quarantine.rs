//! `yibiao-server quarantine list|show ID|drop ID`: stored records the hub cannot serve
//! (they do not load, or are too large to send), found by loading every stored document.
//!
//! A running server skips such a record by itself (its village keeps syncing); this is
//! how the operator sees which ones and removes them. Dropping deletes the server's copy
//! only: a phone that holds the record pushes it whole with its next edit.

use clap::Subcommand;
use yibiao_model::RecordId;
use yibiao_sync::hub::Budgets;

use super::Paths;
use super::table::{listing, print};
use crate::config::Overrides;
use crate::storage::{QuarantinedRecord, SqliteStorage};

#[derive(Subcommand)]
pub(crate) enum QuarantineAction {
    /// List stored records that cannot be served: id, entity, village, chunks, bytes, why.
    List,
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
        let storage = open(paths)?;
        let budget = Budgets::default().max_record_bytes;
        match self {
            QuarantineAction::List => {
                let rows = storage
                    .quarantined_records(budget)
                    .map_err(|e| e.to_string())?;
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

fn open(paths: &Paths) -> Result<SqliteStorage, String> {
    let cfg = paths.config(Overrides::default())?;
    let db = cfg.data_dir.join("yibiao.db");
    if !db.exists() {
        return Err(format!("no database at {}", db.display()));
    }
    SqliteStorage::open(&db).map_err(|e| e.to_string())
}

/// The record `id` if it is set aside; an error naming why not otherwise.
fn set_aside(
    storage: &SqliteStorage,
    id: &str,
    budget: usize,
) -> Result<QuarantinedRecord, String> {
    let id: RecordId = id
        .parse()
        .map_err(|e| format!("`{id}` is not a record id: {e}"))?;
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
