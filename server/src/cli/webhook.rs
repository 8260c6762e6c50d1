//! `yibiao-server webhook add|list|remove|deliveries|redeliver`: departments' endpoints
//! that get their view's changes pushed ([`crate::webhooks`]). They may run while the
//! server serves: it starts delivering to a new endpoint within a second.

use clap::Subcommand;

use super::Paths;
use super::datadir;
use super::table::{listing, local_time, print};
use crate::storage::{PostgresStorage, SqliteStorage, WebhookStorage};

#[derive(Subcommand)]
pub(crate) enum WebhookAction {
    /// Register an endpoint; prints its signing secret once.
    Add {
        /// The department whose view it gets.
        #[arg(long)]
        department: String,
        /// Where batches are POSTed (https; http only to loopback or with --allow-http).
        #[arg(long)]
        url: String,
        /// Allow a plain-http URL off loopback (a network you trust).
        #[arg(long)]
        allow_http: bool,
    },
    /// List the endpoints: id, department, URL, last feed position queued.
    List,
    /// Remove an endpoint and its delivery log.
    Remove {
        /// The id shown by `webhook list`.
        id: String,
    },
    /// The newest deliveries of an endpoint: number, positions, status, attempts, error.
    Deliveries {
        /// The id shown by `webhook list`.
        id: String,
        /// How many.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// Send a delivery again (same body and Idempotency-Key).
    Redeliver {
        /// The id shown by `webhook list`.
        id: String,
        /// The number shown by `webhook deliveries`.
        delivery: i64,
    },
}

impl WebhookAction {
    pub(crate) fn run(self, paths: &Paths) -> Result<(), String> {
        let (cfg, _) = paths.open(None)?;
        let store: Box<dyn WebhookStorage> = match &cfg.database {
            Some(url) => Box::new(PostgresStorage::open(url).map_err(|e| {
                format!(
                    "database {} cannot be opened: {e}",
                    crate::state::redact(url)
                )
            })?),
            None => Box::new(
                SqliteStorage::open(&datadir::database(&cfg.data_dir))
                    .map_err(|e| e.to_string())?,
            ),
        };
        let text = |e: yibiao_sync::hub::StorageError| e.to_string();
        match self {
            WebhookAction::Add {
                department,
                url,
                allow_http,
            } => {
                let schema = super::load_schema(&cfg)?;
                let row = crate::webhooks::register(
                    store.as_ref(),
                    &schema,
                    &department,
                    &url,
                    allow_http,
                )
                .map_err(|e| e.to_string())?;
                println!("webhook {} for {} at {}", row.id, row.department, row.url);
                println!("secret (shown once): {}", row.secret);
            }
            WebhookAction::List => {
                let rows = store.webhooks().map_err(text)?;
                print(&listing(
                    rows.iter()
                        .map(|w| {
                            vec![
                                w.id.clone(),
                                w.department.clone(),
                                w.url.clone(),
                                format!("cursor {}", w.cursor),
                                local_time(Some(w.created_ms)),
                            ]
                        })
                        .collect(),
                ));
            }
            WebhookAction::Remove { id } => {
                crate::webhooks::remove(store.as_ref(), &id).map_err(|e| e.to_string())?;
                println!("removed webhook {id}");
            }
            WebhookAction::Deliveries { id, limit } => {
                let rows = crate::webhooks::deliveries(store.as_ref(), &id, limit)
                    .map_err(|e| e.to_string())?;
                print(&listing(
                    rows.iter()
                        .map(|d| {
                            vec![
                                d.id.to_string(),
                                format!("{}..={}", d.first_position, d.last_position),
                                format!("{} records", d.records),
                                d.status.clone(),
                                format!("{} attempts", d.attempts),
                                d.last_error.clone().unwrap_or_else(|| "-".into()),
                            ]
                        })
                        .collect(),
                ));
            }
            WebhookAction::Redeliver { id, delivery } => {
                crate::webhooks::redeliver(store.as_ref(), &id, delivery)
                    .map_err(|e| e.to_string())?;
                println!("delivery {delivery} of {id} will be sent again");
            }
        }
        Ok(())
    }
}
