//! The phone's blocking sync driver: runs a [`SyncSession`] over a [`Transport`], sleeping
//! between retries, and records the outcome in the store.
//!
//! All the decisions (what to push, when the run is over, how long to back off) are the
//! session's; this loop only moves bytes and waits, so tests and benches that drive the
//! session with a simulated link exercise exactly the logic phones run.

use std::time::{Duration, Instant};

use automerge::ChangeHash;
use yibiao_model::ids::RecordId;
use yibiao_sync::protocol::{SchemaHeld, SchemaOffer};
use yibiao_sync::session::{
    ClientStore, Exchange, Merged, Next, Pending, SchemaNews, SyncOptions, SyncProgress,
    SyncReport, SyncSession, Transport,
};

use crate::{Error, Store};

/// Why a sync of the phone store stopped without finishing.
pub type SyncError = yibiao_sync::session::SyncError<Error>;

/// Syncs `store` through `transport` until up to date or a budget is spent.
/// `progress` is called after every committed page.
pub fn sync(
    store: &Store,
    transport: &dyn Transport,
    options: &SyncOptions,
    progress: &mut dyn FnMut(&SyncProgress),
) -> Result<SyncReport, SyncError> {
    let result = sync_with_sleep(store, transport, options, progress, &mut |d| {
        std::thread::sleep(d)
    });
    let note = match &result {
        Ok(_) => None,
        Err(e) => Some(e.to_string()),
    };
    store
        .note_sync_outcome(note.as_deref())
        .map_err(SyncError::Store)?;
    result
}

/// [`sync`] with an injected sleep (simulations and tests run without waiting), and
/// without recording the outcome in the store.
pub fn sync_with_sleep(
    store: &Store,
    transport: &dyn Transport,
    options: &SyncOptions,
    progress: &mut dyn FnMut(&SyncProgress),
    sleep: &mut dyn FnMut(Duration),
) -> Result<SyncReport, SyncError> {
    let origin = Instant::now();
    let mut session = SyncSession::new(options.clone(), Duration::ZERO);
    loop {
        let body = match session.next_request(store)? {
            Next::Done(report) => return Ok(report),
            Next::Send(body) => body,
        };
        match transport.exchange(&body) {
            Ok(response) => {
                session.on_response(store, &response, origin.elapsed())?;
                progress(session.progress());
            }
            Err(e) => sleep(session.on_failure(e)?),
        }
    }
}

impl ClientStore for Store {
    type Error = Error;

    fn device(&self) -> String {
        self.device_id().to_string()
    }

    fn cursor(&self) -> Result<u64, Error> {
        self.sync_cursor()
    }

    fn pending(&self, limit: usize) -> Result<Vec<Pending>, Error> {
        self.pending_for_push(limit)
    }

    fn outgoing(&self, id: RecordId, server_heads: &[ChangeHash]) -> Result<Vec<u8>, Error> {
        Store::outgoing(self, id, server_heads)
    }

    fn heads(&self, id: RecordId) -> Result<Vec<ChangeHash>, Error> {
        Store::heads(self, id)
    }

    fn apply(&self, exchange: &Exchange<'_>) -> Result<Vec<Merged>, Error> {
        self.apply_exchange(exchange)
    }

    fn refresh_receipts(&self) -> Result<usize, Error> {
        Ok(self.refresh_task_receipts()? + self.refresh_finding_receipts()?)
    }

    fn schema_held(&self) -> Option<SchemaHeld> {
        Some(Store::schema_held(self))
    }

    fn offer_schema(&self, offer: &SchemaOffer) -> Result<SchemaNews, Error> {
        self.install_schema(offer)
    }
}
