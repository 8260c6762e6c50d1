//! The phone's side of sync: pages of pushes and pulls until up to date or out of budget.
//!
//! One exchange = one request = one page. Each page's outcome (acknowledgements,
//! refusals, received documents, the new cursor) is committed to the store in **one**
//! transaction, so a cut loses at most the page in flight and the next exchange resumes
//! from the last committed cursor without re-sending what the server acknowledged. The
//! server side is idempotent, so replaying a request whose response was lost is harmless.
//!
//! The network is a [`Transport`]: the built-in HTTP one, an app's own, or a test's
//! simulated link. Failures the link may heal (timeouts, resets, 5xx, 429) are retried
//! with exponential backoff and full jitter; failures it cannot (401, 4xx, a protocol
//! version mismatch) end the sync with a clear error.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::protocol::{
    PushDoc, RefusalCode, SyncRequest, SyncResponse, WireId, heads_from_wire, heads_to_wire,
};
use crate::ids::RecordId;
use crate::store::{Exchange, Store};

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
    fn retryable(&self) -> bool {
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
}

/// Why `sync()` stopped without finishing.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
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
    Protocol(#[from] super::protocol::ProtocolError),
    /// The local store failed.
    #[error(transparent)]
    Store(#[from] crate::Error),
}

/// Syncs `store` through `transport` until up to date or a budget is spent.
/// `progress` is called after every committed page.
pub fn sync(
    store: &Store,
    transport: &dyn Transport,
    options: &SyncOptions,
    progress: &mut dyn FnMut(&SyncProgress),
) -> Result<SyncReport, SyncError> {
    let result = run(store, transport, options, progress, &mut |d| {
        std::thread::sleep(d)
    });
    let note = match &result {
        Ok(_) => None,
        Err(e) => Some(e.to_string()),
    };
    store.note_sync_outcome(note.as_deref())?;
    result
}

/// [`sync`] with an injected sleep (simulations and tests run without waiting).
pub fn run(
    store: &Store,
    transport: &dyn Transport,
    options: &SyncOptions,
    progress: &mut dyn FnMut(&SyncProgress),
    sleep: &mut dyn FnMut(Duration),
) -> Result<SyncReport, SyncError> {
    let started = Instant::now();
    let mut p = SyncProgress::default();
    let mut refused = Vec::new();
    let mut changed = Vec::new();
    let mut sent_this_run: HashSet<(RecordId, i64)> = HashSet::new();
    let device = store.device_id().to_string();
    refresh_receipts(store);
    loop {
        // Build a page of pushes.
        let candidates = store.pending_for_push(512)?;
        let mut push = Vec::new();
        let mut meta = Vec::new();
        let mut size = 0usize;
        for pending in &candidates {
            if sent_this_run.contains(&(pending.id, pending.local_seq)) {
                continue;
            }
            let bytes = store.outgoing(pending.id, &pending.server_heads)?;
            if !push.is_empty() && size + bytes.len() > options.page_bytes {
                break;
            }
            size += bytes.len();
            let heads = store.heads(pending.id)?;
            meta.push((pending.id, pending.local_seq, heads.clone()));
            push.push(PushDoc {
                record: pending.id.into(),
                heads: heads_to_wire(&heads),
                bytes,
            });
        }
        let request = SyncRequest {
            device: device.clone(),
            cursor: store.sync_cursor()?,
            push,
            max_response_bytes: options.max_response_bytes,
        };
        let body = request.encode();
        let response = exchange_with_retry(transport, &body, &options.retry, &mut p, sleep)?;
        let response = SyncResponse::decode(&response)?;

        // Commit the page atomically.
        let accepted: HashSet<WireId> = response.accepted.iter().copied().collect();
        let mut ex = Exchange {
            cursor: response.cursor,
            ..Exchange::default()
        };
        for (id, seq, heads) in &meta {
            sent_this_run.insert((*id, *seq));
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
                sent_this_run.remove(&(id, *seq));
            } else {
                ex.refused
                    .push((id, *seq, format!("{:?}", r.code), r.message.clone()));
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
        for m in store.apply_exchange(&ex)? {
            if m.new_changes > 0 && !changed.contains(&m.id) {
                changed.push(m.id);
            }
        }

        // Receipts for tasks this page brought (delivered) or records it completed (done)
        // become pending now, so the loop pushes them before it ends.
        refresh_receipts(store);
        p.pages += 1;
        p.pushed += u32::try_from(ex.acked.len()).unwrap_or(u32::MAX);
        p.pulled += u32::try_from(ex.docs.len()).unwrap_or(u32::MAX);
        p.refused += u32::try_from(ex.refused.len()).unwrap_or(u32::MAX);
        let still_pending = store
            .pending_for_push(512)?
            .into_iter()
            .filter(|x| !sent_this_run.contains(&(x.id, x.local_seq)))
            .count();
        p.pending = u32::try_from(still_pending).unwrap_or(u32::MAX);
        progress(&p);

        if !response.more && still_pending == 0 {
            return Ok(SyncReport {
                progress: p,
                complete: true,
                refused,
                changed,
            });
        }
        let out_of_time = options.time_budget.is_some_and(|b| started.elapsed() >= b);
        let out_of_bytes = options
            .byte_budget
            .is_some_and(|b| p.bytes_up + p.bytes_down >= b);
        if out_of_time || out_of_bytes {
            return Ok(SyncReport {
                progress: p,
                complete: false,
                refused,
                changed,
            });
        }
    }
}

/// Writes the receipts the phone records by itself; a failure is logged, never fatal to
/// the sync (the next sync tries again).
fn refresh_receipts(store: &Store) {
    if let Err(e) = store.refresh_task_receipts() {
        tracing::warn!(error = %e, "could not write task receipts");
    }
}

fn exchange_with_retry(
    transport: &dyn Transport,
    body: &[u8],
    retry: &RetryPolicy,
    p: &mut SyncProgress,
    sleep: &mut dyn FnMut(Duration),
) -> Result<Vec<u8>, SyncError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        p.requests += 1;
        p.bytes_up += body.len() as u64;
        match transport.exchange(body) {
            Ok(response) => {
                p.bytes_down += response.len() as u64;
                return Ok(response);
            }
            Err(e) if e.retryable() && attempt < retry.attempts.max(1) => {
                let cap = retry
                    .base_delay
                    .saturating_mul(1u32 << (attempt - 1).min(16))
                    .min(retry.max_delay);
                // Full jitter: phones that lost the link together do not return together.
                let wait = cap.mul_f64(fastrand::f64());
                tracing::debug!(attempt, error = %e, ?wait, "sync exchange failed; retrying");
                sleep(wait);
            }
            Err(e) if e.retryable() => {
                return Err(SyncError::Unreachable {
                    attempts: attempt,
                    last: e,
                    progress: p.clone(),
                });
            }
            Err(e) => return Err(SyncError::Refused(e)),
        }
    }
}
