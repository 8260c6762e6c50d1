//! The phone's side of sync as a sans-I/O session: pages of pushes and pulls until up to
//! date or out of budget.
//!
//! [`SyncSession`] never touches a socket, a clock or a sleep: the driver asks it for the
//! next request ([`SyncSession::next_request`]), moves the bytes however it likes, and
//! hands back the response ([`SyncSession::on_response`]) or the failure
//! ([`SyncSession::on_failure`], which answers how long to wait before trying again).
//! Time is passed in. The phone's blocking loop (`yibiao_store::sync`), the simulated
//! network of the tests and the benches all drive this same state machine.
//!
//! One exchange = one request = one page. Each page's outcome (acknowledgements,
//! refusals, received documents, the new cursor) is committed to the store in **one**
//! transaction, so a cut loses at most the page in flight and the next exchange resumes
//! from the last committed cursor without re-sending what the server acknowledged. The
//! server side is idempotent, so replaying a request whose response was lost is harmless.
//!
//! The network, for drivers that want one, is a [`Transport`]: the built-in HTTP one, an
//! app's own, or a test's simulated link. Failures the link may heal (timeouts, resets, 5xx, 429) are retried
//! with exponential backoff and full jitter; failures it cannot (401, 4xx, a protocol
//! version mismatch) end the sync with a clear error.

use std::collections::HashSet;
use std::time::Duration;
use yibiao_model::messages::Message;

use automerge::ChangeHash;
use yibiao_model::ids::RecordId;

use crate::protocol::{
    PushDoc, RefusalCode, SchemaHeld, SchemaOffer, SyncRequest, SyncResponse, WireId,
    heads_from_wire, heads_to_wire,
};

/// Moves one sync body to the server and back. Implement it to bring your own HTTP stack.
pub trait Transport: Send + Sync {
    /// Sends `request` (a complete sync body) and returns the response body.
    fn exchange(&self, request: &[u8]) -> Result<Vec<u8>, TransportError>;
}

/// Why an exchange failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// No connection, reset, cut mid-body, DNS failure: worth retrying.
    #[error("network: {0}")]
    Network(String),
    /// No answer in time: worth retrying.
    #[error("timed out")]
    Timeout,
    /// The server answered with an error status.
    #[error("server answered {status}: {message}")]
    Status {
        /// HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
}

impl TransportError {
    /// True when the link may heal: worth another attempt.
    pub fn retryable(&self) -> bool {
        match self {
            TransportError::Network(_) | TransportError::Timeout => true,
            TransportError::Status { status, .. } => *status == 429 || *status >= 500,
        }
    }
}

/// How hard to retry a failing exchange.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per exchange (first try included).
    pub attempts: u32,
    /// First backoff.
    pub base_delay: Duration,
    /// Largest backoff.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 6,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
        }
    }
}

/// Limits of one `sync()` run.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Target size of one request's pushed documents, before compression. The default
    /// keeps a page around 64 KiB, about 13 s up a 40 kbit/s link.
    pub page_bytes: usize,
    /// Largest response the server should send, before compression.
    pub max_response_bytes: u32,
    /// Stop starting new pages after this long.
    pub time_budget: Option<Duration>,
    /// Stop starting new pages after this many bytes on the wire (up + down).
    pub byte_budget: Option<u64>,
    /// Retries of a failing exchange.
    pub retry: RetryPolicy,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            page_bytes: 64 * 1024,
            max_response_bytes: 64 * 1024,
            time_budget: None,
            byte_budget: None,
            retry: RetryPolicy::default(),
        }
    }
}

/// Progress after each page, for a progress bar.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncProgress {
    /// Pages committed so far.
    pub pages: u32,
    /// HTTP requests sent (retries included).
    pub requests: u32,
    /// Bytes sent.
    pub bytes_up: u64,
    /// Bytes received.
    pub bytes_down: u64,
    /// Documents the server accepted.
    pub pushed: u32,
    /// Documents received.
    pub pulled: u32,
    /// Documents the server refused.
    pub refused: u32,
    /// Records still waiting to be pushed.
    pub pending: u32,
}

/// How a `sync()` run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncReport {
    /// Counters of the run.
    pub progress: SyncProgress,
    /// True when the phone is up to date both ways (refused documents aside).
    pub complete: bool,
    /// Records refused in this run, with the server's reasons.
    pub refused: Vec<(RecordId, String)>,
    /// Records whose content changed on this phone because of what arrived (for UIs).
    pub changed: Vec<RecordId>,
    /// What became of the server's schema in this run.
    pub schema: SchemaNews,
}

/// What a sync did with the server's schema.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SchemaNews {
    /// The phone already held the server's revision (or the server sent none).
    #[default]
    Unchanged,
    /// A newer revision was stored; the phone validates with it from now on.
    Installed {
        /// The revision held before.
        from: u32,
        /// The revision held now.
        to: u32,
    },
    /// The server's schema is of a format this app cannot read: the phone keeps its
    /// schema and the app should tell the cadre to update it. The sync itself went on.
    UpdateApp {
        /// The server's revision.
        revision: u32,
        /// Its format.
        format: u32,
        /// The newest format this app reads.
        supported: u32,
    },
    /// The server's schema arrived but could not be used (the phone keeps its own).
    Unusable {
        /// The server's revision.
        revision: u32,
        /// Why.
        reason: String,
    },
}

/// Why a sync stopped without finishing. `E` is the phone store's error.
#[derive(Debug, thiserror::Error)]
pub enum SyncError<E: std::error::Error + 'static> {
    /// The link failed and kept failing through every retry.
    #[error("the server could not be reached after {attempts} attempts: {last}")]
    Unreachable {
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: TransportError,
        /// What was committed before the failure.
        progress: SyncProgress,
    },
    /// The server refused the exchange itself (bad token, old app...).
    #[error("the server refused to sync: {0}")]
    Refused(TransportError),
    /// The server's answer could not be read.
    #[error(transparent)]
    Protocol(crate::protocol::ProtocolError),
    /// The local store failed.
    #[error(transparent)]
    Store(E),
}

/// A record with edits the server has not acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The record.
    pub id: RecordId,
    /// Its latest local write number; acknowledge with this value.
    pub local_seq: i64,
    /// Heads the server is known to hold (empty: the server has nothing yet).
    pub server_heads: Vec<ChangeHash>,
}

/// What merging received changes did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// The record.
    pub id: RecordId,
    /// True when the record was new to this store.
    pub created: bool,
    /// Changes that were new to this store (0 for a duplicate delivery).
    pub new_changes: usize,
}

/// Everything one sync exchange taught the phone, committed in one transaction.
#[derive(Debug, Default)]
pub struct Exchange<'a> {
    /// Pushed documents the server stored: (record, local write number sent, heads sent).
    pub acked: Vec<(RecordId, i64, Vec<ChangeHash>)>,
    /// Pushed documents the server refused: (record, local write number, code, reason).
    pub refused: Vec<(RecordId, i64, String, Message)>,
    /// Documents whose server-side history is missing: send the whole document next time.
    pub reset: Vec<RecordId>,
    /// Received documents: (record, bytes, server heads).
    pub docs: Vec<(RecordId, &'a [u8], Vec<ChangeHash>)>,
    /// The new feed cursor.
    pub cursor: u64,
}

/// What the session needs of the phone's store. The store is local state, not I/O the
/// session waits on: every call is a read or one atomic commit.
pub trait ClientStore {
    /// The store's error.
    type Error: std::error::Error + Send + Sync + 'static;
    /// This phone's device id, as the server knows it.
    fn device(&self) -> String;
    /// The feed position up to which the phone holds everything in its scope.
    fn cursor(&self) -> Result<u64, Self::Error>;
    /// Records to push, oldest first, at most `limit`.
    fn pending(&self, limit: usize) -> Result<Vec<Pending>, Self::Error>;
    /// What to send of a record: a delta after `server_heads`, or the whole document.
    fn outgoing(&self, id: RecordId, server_heads: &[ChangeHash]) -> Result<Vec<u8>, Self::Error>;
    /// The record's current heads.
    fn heads(&self, id: RecordId) -> Result<Vec<ChangeHash>, Self::Error>;
    /// Commits one exchange's outcome atomically.
    fn apply(&self, exchange: &Exchange<'_>) -> Result<Vec<Merged>, Self::Error>;
    /// Writes the receipts the phone records by itself (task delivered / done).
    fn refresh_receipts(&self) -> Result<usize, Self::Error>;
    /// The schema the phone validates with; `None` never asks the server for one.
    fn schema_held(&self) -> Option<SchemaHeld> {
        None
    }
    /// Stores a newer schema the server sent, durably, before the page that carried it
    /// is applied (so its documents are indexed by it). Keeps the current schema and
    /// says why when the offer cannot be used.
    fn offer_schema(&self, offer: &SchemaOffer) -> Result<SchemaNews, Self::Error> {
        let _ = offer;
        Ok(SchemaNews::Unchanged)
    }
}

/// What the driver does next.
#[derive(Debug)]
pub enum Next {
    /// Send these bytes (a complete sync body) and hand the answer to
    /// [`SyncSession::on_response`] or the failure to [`SyncSession::on_failure`].
    Send(Vec<u8>),
    /// The run is over.
    Done(SyncReport),
}

/// What a page in flight carries: (record, local write number, heads sent).
type Sent = Vec<(RecordId, i64, Vec<ChangeHash>)>;

/// Most pending records looked at for one page.
const PENDING_WINDOW: usize = 512;

/// One sync run on a phone, as a state machine. See the module docs.
#[derive(Debug)]
pub struct SyncSession {
    options: SyncOptions,
    started: Duration,
    progress: SyncProgress,
    refused: Vec<(RecordId, String)>,
    changed: Vec<RecordId>,
    sent_this_run: HashSet<(RecordId, i64)>,
    /// The page in flight: its body and what it carries (record, local seq, heads).
    in_flight: Option<(Vec<u8>, Sent)>,
    attempt: u32,
    finished: Option<bool>,
    rng: fastrand::Rng,
    receipts_done: bool,
    schema: SchemaNews,
}

impl SyncSession {
    /// A new run starting at `now` (any monotonic origin the driver keeps using).
    pub fn new(options: SyncOptions, now: Duration) -> Self {
        Self {
            options,
            started: now,
            progress: SyncProgress::default(),
            refused: Vec::new(),
            changed: Vec::new(),
            sent_this_run: HashSet::new(),
            in_flight: None,
            attempt: 0,
            finished: None,
            rng: fastrand::Rng::new(),
            receipts_done: false,
            schema: SchemaNews::Unchanged,
        }
    }

    /// The same run with a seeded jitter, for deterministic simulations.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.rng = fastrand::Rng::with_seed(seed);
        self
    }

    /// Counters so far (for a progress bar).
    pub fn progress(&self) -> &SyncProgress {
        &self.progress
    }

    /// The next step: a request to send (the same bytes again while a page is in
    /// flight and being retried), or the end of the run.
    pub fn next_request<S: ClientStore>(&mut self, store: &S) -> Result<Next, SyncError<S::Error>> {
        if let Some(complete) = self.finished {
            return Ok(Next::Done(self.report(complete)));
        }
        if let Some((body, _)) = &self.in_flight {
            return Ok(Next::Send(self.count_send(body.clone())));
        }
        if !self.receipts_done {
            refresh_receipts(store);
            self.receipts_done = true;
        }
        let (push, meta) = self.build_page(store)?;
        let request = SyncRequest {
            device: store.device(),
            cursor: store.cursor().map_err(SyncError::Store)?,
            push,
            max_response_bytes: self.options.max_response_bytes,
            schema: store.schema_held(),
        };
        let body = request.encode();
        self.in_flight = Some((body.clone(), meta));
        self.attempt = 0;
        Ok(Next::Send(self.count_send(body)))
    }

    /// The answer to the request in flight: commits the page atomically and decides
    /// whether the run is over.
    pub fn on_response<S: ClientStore>(
        &mut self,
        store: &S,
        body: &[u8],
        now: Duration,
    ) -> Result<(), SyncError<S::Error>> {
        self.progress.bytes_down += body.len() as u64;
        let Some((_, meta)) = self.in_flight.take() else {
            return Ok(());
        };
        let response = SyncResponse::decode(body).map_err(SyncError::Protocol)?;
        if let Some(offer) = &response.schema {
            let news = store.offer_schema(offer).map_err(SyncError::Store)?;
            self.note_schema(news);
        }
        let (ex, page_refused) = self.exchange_of(&response, &meta);
        for m in store.apply(&ex).map_err(SyncError::Store)? {
            if m.new_changes > 0 && !self.changed.contains(&m.id) {
                self.changed.push(m.id);
            }
        }
        self.refused.extend(page_refused);
        // Receipts for tasks this page brought (delivered) or records it completed (done)
        // become pending now, so the run pushes them before it ends.
        refresh_receipts(store);
        let p = &mut self.progress;
        p.pages += 1;
        p.pushed += count(ex.acked.len());
        p.pulled += count(ex.docs.len());
        p.refused += count(ex.refused.len());
        let still_pending = store
            .pending(PENDING_WINDOW)
            .map_err(SyncError::Store)?
            .into_iter()
            .filter(|x| !self.sent_this_run.contains(&(x.id, x.local_seq)))
            .count();
        self.progress.pending = count(still_pending);
        if !response.more && still_pending == 0 {
            self.finished = Some(true);
        } else if self.out_of_budget(now) {
            self.finished = Some(false);
        }
        Ok(())
    }

    /// The request in flight failed. Returns how long to wait before asking for the next
    /// request (which resends the same page), or the error that ends the run.
    pub fn on_failure<E: std::error::Error + 'static>(
        &mut self,
        error: TransportError,
    ) -> Result<Duration, SyncError<E>> {
        let attempts = self.options.retry.attempts.max(1);
        if !error.retryable() {
            self.in_flight = None;
            return Err(SyncError::Refused(error));
        }
        if self.attempt >= attempts {
            self.in_flight = None;
            return Err(SyncError::Unreachable {
                attempts: self.attempt,
                last: error,
                progress: self.progress.clone(),
            });
        }
        let retry = &self.options.retry;
        let cap = retry
            .base_delay
            .saturating_mul(1u32 << (self.attempt - 1).min(16))
            .min(retry.max_delay);
        // Full jitter: phones that lost the link together do not return together.
        let wait = cap.mul_f64(self.rng.f64());
        tracing::debug!(attempt = self.attempt, %error, ?wait, "sync exchange failed; retrying");
        Ok(wait)
    }

    fn count_send(&mut self, body: Vec<u8>) -> Vec<u8> {
        self.attempt += 1;
        self.progress.requests += 1;
        self.progress.bytes_up += body.len() as u64;
        body
    }

    fn out_of_budget(&self, now: Duration) -> bool {
        let out_of_time = self
            .options
            .time_budget
            .is_some_and(|b| now.saturating_sub(self.started) >= b);
        let p = &self.progress;
        let out_of_bytes = self
            .options
            .byte_budget
            .is_some_and(|b| p.bytes_up + p.bytes_down >= b);
        out_of_time || out_of_bytes
    }

    /// A page of pushes: pending records not yet sent in this run, up to `page_bytes`.
    fn build_page<S: ClientStore>(
        &self,
        store: &S,
    ) -> Result<(Vec<PushDoc>, Sent), SyncError<S::Error>> {
        let candidates = store.pending(PENDING_WINDOW).map_err(SyncError::Store)?;
        let mut push = Vec::new();
        let mut meta = Vec::new();
        let mut size = 0usize;
        for pending in &candidates {
            if self
                .sent_this_run
                .contains(&(pending.id, pending.local_seq))
            {
                continue;
            }
            let bytes = store
                .outgoing(pending.id, &pending.server_heads)
                .map_err(SyncError::Store)?;
            if !push.is_empty() && size + bytes.len() > self.options.page_bytes {
                break;
            }
            size += bytes.len();
            let heads = store.heads(pending.id).map_err(SyncError::Store)?;
            push.push(PushDoc {
                record: pending.id.into(),
                heads: heads_to_wire(&heads),
                bytes,
            });
            meta.push((pending.id, pending.local_seq, heads));
        }
        Ok((push, meta))
    }

    /// What the response means for the store, and the refusals to report.
    fn exchange_of<'r>(
        &mut self,
        response: &'r SyncResponse,
        meta: &[(RecordId, i64, Vec<ChangeHash>)],
    ) -> (Exchange<'r>, Vec<(RecordId, String)>) {
        let accepted: HashSet<WireId> = response.accepted.iter().copied().collect();
        let mut ex = Exchange {
            cursor: response.cursor,
            ..Exchange::default()
        };
        let mut refused = Vec::new();
        for (id, seq, heads) in meta {
            self.sent_this_run.insert((*id, *seq));
            if accepted.contains(&WireId::from(*id)) {
                ex.acked.push((*id, *seq, heads.clone()));
            }
        }
        for r in &response.refused {
            let id = RecordId::from(r.record);
            let Some((_, seq, _)) = meta.iter().find(|(m, _, _)| *m == id) else {
                continue;
            };
            if r.code == RefusalCode::MissingHistory {
                // The server lacks the base of our delta: send the whole document again.
                ex.reset.push(id);
                self.sent_this_run.remove(&(id, *seq));
            } else {
                ex.refused
                    .push((id, *seq, format!("{:?}", r.code), r.reason.clone()));
                refused.push((id, r.message.clone()));
            }
        }
        ex.docs = response
            .docs
            .iter()
            .map(|d| {
                (
                    RecordId::from(d.record),
                    d.bytes.as_slice(),
                    heads_from_wire(&d.heads),
                )
            })
            .collect();
        (ex, refused)
    }

    /// Keeps the run's schema outcome: the first revision it started from, the last news.
    fn note_schema(&mut self, news: SchemaNews) {
        self.schema = match (&self.schema, news) {
            (_, SchemaNews::Unchanged) => return,
            (SchemaNews::Installed { from, .. }, SchemaNews::Installed { to, .. }) => {
                SchemaNews::Installed { from: *from, to }
            }
            (_, news) => news,
        };
    }

    fn report(&self, complete: bool) -> SyncReport {
        SyncReport {
            progress: self.progress.clone(),
            complete,
            refused: self.refused.clone(),
            changed: self.changed.clone(),
            schema: self.schema.clone(),
        }
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Writes the receipts the phone records by itself; a failure is logged, never fatal to
/// the sync (the next sync tries again).
fn refresh_receipts<S: ClientStore>(store: &S) {
    if let Err(e) = store.refresh_receipts() {
        tracing::warn!(error = %e, "could not write task receipts");
    }
}
