//! The schema a phone validates with: the app's own, or a newer revision the server sent.
//!
//! The server's schema arrives inside a sync exchange (`SchemaOffer`, see
//! `yibiao_sync::protocol`). It is kept in `meta` (`schema_text`), so it survives reopening
//! and an app restart; on open the newer of the stored and the app's own revision wins.
//! Installing a revision rebuilds the query index in the same transaction (index rows
//! decode values by the schema, so fields new in the revision become searchable). A
//! schema of a format this app cannot read is not installed: the sync reports
//! [`SchemaNews::UpdateApp`] and the phone keeps validating with what it holds.
//! Values the current revision no longer accepts stay stored and are flagged
//! ([`crate::FieldView::invalid`]).

use std::sync::Arc;

use rusqlite::{Connection, Transaction};
use yibiao_model::SCHEMA_FORMAT;
use yibiao_model::ids::RecordId;
use yibiao_model::schema::Schema;
use yibiao_sync::protocol::{SchemaHeld, SchemaOffer};
use yibiao_sync::session::SchemaNews;

use crate::error::Result;
use crate::{Store, index, load_record, meta_get, meta_set};

/// `meta` key of the newest schema text the server sent.
const TEXT: &str = "schema_text";
/// `meta` key of the revision the index rows were written with.
const INDEXED: &str = "schema_indexed";

/// The schema to open with: the stored server revision when newer than the app's own.
/// Rebuilds the index when it was written with another revision.
pub(crate) fn on_open(conn: &mut Connection, app: Arc<Schema>) -> Result<Arc<Schema>> {
    let tx = conn.transaction()?;
    let stored = meta_get(&tx, TEXT)?.and_then(|text| {
        Schema::from_toml_str(&text, "stored server schema")
            .map_err(|e| tracing::warn!(error = %e, "stored server schema does not load; using the app's"))
            .ok()
    });
    let schema = match stored {
        Some(s) if s.revision > app.revision && s.township.id == app.township.id => Arc::new(s),
        _ => app,
    };
    match meta_get(&tx, INDEXED)?.and_then(|r| r.parse::<u32>().ok()) {
        // A store from before schema distribution was indexed with the app's schema.
        None => meta_set(&tx, INDEXED, &schema.revision.to_string())?,
        Some(r) if r != schema.revision => {
            reindex(&tx, &schema)?;
        }
        Some(_) => {}
    }
    tx.commit()?;
    Ok(schema)
}

/// Rewrites every record's index rows with `schema` and notes its revision.
fn reindex(tx: &Transaction<'_>, schema: &Schema) -> Result<usize> {
    let ids: Vec<String> = tx
        .prepare("SELECT id FROM records")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    // The actor only matters for writes; the index reads.
    let actor = automerge::ActorId::random();
    for id in &ids {
        let record = load_record(tx, id.parse::<RecordId>()?, &actor)?;
        index::write_fields(tx, schema, &record, None)?;
    }
    meta_set(tx, INDEXED, &schema.revision.to_string())?;
    Ok(ids.len())
}

impl Store {
    /// The revision of the schema this phone validates with.
    pub fn schema_revision(&self) -> u32 {
        self.schema().revision
    }

    /// What the phone tells the server it holds.
    pub(crate) fn schema_held(&self) -> SchemaHeld {
        SchemaHeld {
            revision: self.schema_revision(),
            format: SCHEMA_FORMAT,
        }
    }

    /// Installs a schema the server sent, if newer and readable; says what happened.
    /// The stored text, the rebuilt index and the revision commit together.
    pub fn install_schema(&self, offer: &SchemaOffer) -> Result<SchemaNews> {
        let current = self.schema();
        if offer.revision <= current.revision {
            return Ok(SchemaNews::Unchanged);
        }
        let text = match &offer.text {
            Some(text) if offer.format <= SCHEMA_FORMAT => text,
            _ => {
                tracing::warn!(
                    revision = offer.revision,
                    format = offer.format,
                    "the server's schema needs a newer app"
                );
                return Ok(SchemaNews::UpdateApp {
                    revision: offer.revision,
                    format: offer.format,
                    supported: SCHEMA_FORMAT,
                });
            }
        };
        let unusable = |reason: String| {
            tracing::warn!(revision = offer.revision, %reason, "the server's schema cannot be used");
            Ok(SchemaNews::Unusable {
                revision: offer.revision,
                reason,
            })
        };
        let schema = match Schema::from_toml_str(
            text,
            &format!("server schema revision {}", offer.revision),
        ) {
            Ok(s) => s,
            Err(e) => return unusable(e.to_string()),
        };
        if schema.revision != offer.revision || schema.township.id != current.township.id {
            return unusable(format!(
                "revision {} of township `{}` was announced as revision {} of `{}`",
                schema.revision, schema.township.id, offer.revision, current.township.id
            ));
        }
        let schema = Arc::new(schema);
        let mut inner = self.lock();
        let tx = inner.conn.transaction()?;
        meta_set(&tx, TEXT, text)?;
        let records = reindex(&tx, &schema)?;
        tx.commit()?;
        self.set_schema(schema);
        drop(inner);
        tracing::info!(
            from = current.revision,
            to = offer.revision,
            records,
            "installed the server's schema"
        );
        Ok(SchemaNews::Installed {
            from: current.revision,
            to: offer.revision,
        })
    }
}
