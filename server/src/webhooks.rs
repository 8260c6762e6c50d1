//! Webhooks: each department endpoint gets its view's changes pushed, in feed order, at
//! least once, signed. Storage is [`WebhookStorage`]; the design and why it holds:
//! docs/adr/0011-webhooks.md.
//!
//! - One task per endpoint (a supervisor starts one for each registered endpoint): a dead
//!   or slow endpoint only ever delays itself.
//! - A task delivers only while its process holds the endpoint's lease (a row with a
//!   holder and an expiry, renewed on every round): one deliverer per endpoint across
//!   processes; a crashed process's endpoints are taken over when its lease expires.
//! - A batch is the department feed's page after the endpoint's cursor (the same
//!   projection as `GET /v1/feed`, read through the [`FeedReader`] `serve` hands in, so
//!   this module does not depend on the routes), queued with its exact body before the first
//!   attempt and retried with exponential backoff until a 2xx; the next batch is built
//!   only then. Every attempt carries the same body, `Idempotency-Key` (the batch's last
//!   feed position) and a fresh `Yibiao-Signature: t=<unix secs>,v1=<hex HMAC-SHA256 of
//!   "t.body" keyed with the endpoint's secret>`.
//! - A process stopping gracefully gives up its leases ([`Deliverer::stop`]), so another
//!   process delivers at once; only a crash leaves a lease to expire.
//! - [`register`], [`remove`], [`deliveries`] and [`redeliver`] are the operations the
//!   CLI (`yibiao-server webhook`) and the admin API (`/v1/admin/webhooks`) both call,
//!   with refusals as coded messages (`docs/messages.md`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hmac::{Hmac, Mac};
use yibiao_model::messages::Message;

use crate::accounts::AccountError;

use crate::state::AppState;
use crate::storage::{DeliveryRow, NewDelivery, WebhookRow, WebhookStorage};

/// How the deliverer reads a department's feed: the page of department `dept`'s view
/// after `cursor`, at most `limit` changes, as the body `GET /v1/feed` answers, or `None`
/// when nothing is new (`routes::records::feed_batch`).
pub type FeedReader =
    Arc<dyn Fn(&AppState, &str, u64, usize) -> Result<Option<NewDelivery>, String> + Send + Sync>;

/// Changes per batch.
const BATCH: usize = 100;
/// How often an idle endpoint looks for new changes, and the supervisor for new endpoints.
const POLL: Duration = Duration::from_millis(500);
/// One attempt's deadline.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);

/// How the deliverer retries.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// The wait after the first failure; doubled after each further one.
    pub base: Duration,
    /// The longest wait. The lease lasts twice this, so it outlives any wait.
    pub max: Duration,
}

impl Backoff {
    /// The wait after `failures` consecutive failures (at least 1), with up to 10% jitter.
    pub fn delay(&self, failures: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << failures.saturating_sub(1).min(20));
        let d = exp.min(self.max);
        d + d.mul_f64(fastrand::f64() * 0.1)
    }

    fn lease(&self) -> Duration {
        self.max * 2 + ATTEMPT_TIMEOUT
    }
}

/// `Yibiao-Signature` of `body` at `t` (unix seconds) with `secret`.
pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// The shared parts of every endpoint task.
struct Ctx {
    state: AppState,
    store: Arc<dyn WebhookStorage>,
    holder: String,
    backoff: Backoff,
    agent: ureq::Agent,
    feed: FeedReader,
    /// Set when the process stops: tasks take no new round and claim nothing more.
    stopping: AtomicBool,
}

/// The running deliverer of this process.
pub struct Deliverer {
    ctx: Arc<Ctx>,
    supervisor: tokio::task::JoinHandle<()>,
}

impl Deliverer {
    /// Stops delivering and gives up this process's leases, so another process takes
    /// its endpoints at once (an attempt in flight finishes; its delivery stays pending
    /// until acknowledged, so nothing is lost). Returns the leases freed.
    pub async fn stop(self) -> usize {
        self.ctx.stopping.store(true, Ordering::SeqCst);
        self.supervisor.abort();
        let ctx = self.ctx.clone();
        match blocking(move || {
            ctx.store
                .release_webhooks(&ctx.holder)
                .map_err(|e| e.to_string())
        })
        .await
        {
            Ok(n) => {
                tracing::info!(leases = n, "webhooks: leases given up on shutdown");
                n
            }
            Err(e) => {
                tracing::warn!(error = %e, "webhooks: cannot give up leases; they expire");
                0
            }
        }
    }
}

/// Starts the supervisor: one delivery task per registered endpoint, started within
/// [`POLL`] of its registration (also by the CLI, beside the running server).
pub fn spawn(
    state: AppState,
    store: Arc<dyn WebhookStorage>,
    backoff: Backoff,
    feed: FeedReader,
) -> Deliverer {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(ATTEMPT_TIMEOUT))
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let ctx = Arc::new(Ctx {
        state,
        store,
        holder: format!("pid{}-{:016x}", std::process::id(), fastrand::u64(..)),
        backoff,
        agent,
        feed,
        stopping: AtomicBool::new(false),
    });
    let supervised = ctx.clone();
    let supervisor = tokio::spawn(async move {
        let ctx = supervised;
        let mut tasks: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
        loop {
            let store = ctx.store.clone();
            match tokio::task::spawn_blocking(move || store.webhooks()).await {
                Ok(Ok(hooks)) => {
                    tasks.retain(|_, t| !t.is_finished());
                    for hook in hooks {
                        if let std::collections::hash_map::Entry::Vacant(slot) =
                            tasks.entry(hook.id.clone())
                        {
                            slot.insert(tokio::spawn(endpoint(ctx.clone(), hook.id)));
                        }
                    }
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "webhooks: cannot list endpoints"),
                Err(e) => tracing::warn!(error = %e, "webhooks: listing failed"),
            }
            tokio::time::sleep(POLL).await;
        }
    });
    Deliverer { ctx, supervisor }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Runs `f` on the blocking pool; a failure as text.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| e.to_string())?
}

/// What one round of an endpoint's task found to do.
enum Step {
    /// Another process holds the lease.
    NotHolder,
    /// The endpoint was removed.
    Gone,
    /// Nothing new in the department's feed.
    Idle,
    /// Send this delivery.
    Send(Box<(WebhookRow, DeliveryRow)>),
}

/// One endpoint's task: claim, find the pending batch (or queue the next one), send,
/// record; until the endpoint is removed.
async fn endpoint(ctx: Arc<Ctx>, id: String) {
    let mut failures = 0u32;
    loop {
        if ctx.stopping.load(Ordering::SeqCst) {
            return;
        }
        let step = {
            let (ctx, id) = (ctx.clone(), id.clone());
            blocking(move || next_step(&ctx, &id)).await
        };
        let (hook, delivery) = match step {
            Ok(Step::Send(b)) => *b,
            Ok(Step::Gone) => return,
            Ok(Step::NotHolder) => {
                tokio::time::sleep(ctx.backoff.lease() / 4).await;
                continue;
            }
            Ok(Step::Idle) => {
                tokio::time::sleep(POLL).await;
                continue;
            }
            Err(e) => {
                tracing::warn!(webhook = %id, error = %e, "webhook: cannot prepare a delivery");
                tokio::time::sleep(POLL * 4).await;
                continue;
            }
        };
        let (agent, delivery_id) = (ctx.agent.clone(), delivery.id);
        let outcome = blocking(move || send(&agent, &hook, &delivery)).await;
        let store = ctx.store.clone();
        let logged = outcome.clone();
        let recorded = blocking(move || {
            store
                .record_attempt(
                    delivery_id,
                    logged.as_ref().map(|_| ()).map_err(String::as_str),
                    now_ms(),
                )
                .map_err(|e| e.to_string())
        })
        .await;
        if let Err(e) = recorded {
            tracing::warn!(webhook = %id, error = %e, "webhook: cannot log an attempt");
        }
        match outcome {
            Ok(()) => failures = 0,
            Err(e) => {
                failures += 1;
                let wait = ctx.backoff.delay(failures);
                tracing::info!(webhook = %id, delivery = delivery_id, failures, error = %e, retry_in = ?wait, "webhook delivery failed");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Claims the lease, then the pending delivery, or queues the next batch of the feed.
fn next_step(ctx: &Ctx, id: &str) -> Result<Step, String> {
    let store = ctx.store.as_ref();
    let now = now_ms();
    let until = now + ctx.backoff.lease().as_millis() as i64;
    if ctx.stopping.load(Ordering::SeqCst) {
        return Ok(Step::NotHolder);
    }
    if !store
        .claim_webhook(id, &ctx.holder, now, until)
        .map_err(|e| e.to_string())?
    {
        let exists = store
            .webhooks()
            .map_err(|e| e.to_string())?
            .iter()
            .any(|h| h.id == id);
        return Ok(if exists { Step::NotHolder } else { Step::Gone });
    }
    let Some(hook) = store
        .webhooks()
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|h| h.id == id)
    else {
        return Ok(Step::Gone);
    };
    if let Some(pending) = store.pending_delivery(id).map_err(|e| e.to_string())? {
        return Ok(Step::Send(Box::new((hook, pending))));
    }
    let Some(batch) = (ctx.feed)(&ctx.state, &hook.department, hook.cursor, BATCH)? else {
        return Ok(Step::Idle);
    };
    store
        .queue_delivery(id, &ctx.holder, &batch, now)
        .map_err(|e| e.to_string())?;
    // Sent on the next round (which also renews the lease).
    next_pending(ctx, id, hook)
}

fn next_pending(ctx: &Ctx, id: &str, hook: WebhookRow) -> Result<Step, String> {
    Ok(
        match ctx.store.pending_delivery(id).map_err(|e| e.to_string())? {
            Some(p) => Step::Send(Box::new((hook, p))),
            None => Step::Idle,
        },
    )
}

/// One attempt: what went wrong, unless a 2xx came back.
fn send(agent: &ureq::Agent, hook: &WebhookRow, d: &DeliveryRow) -> Result<(), String> {
    let t = chrono::Utc::now().timestamp();
    let answer = agent
        .post(&hook.url)
        .header("Content-Type", "application/json")
        .header(
            "Yibiao-Signature",
            signature(&hook.secret, t, d.body.as_bytes()),
        )
        .header("Idempotency-Key", d.last_position.to_string())
        .header("Yibiao-Webhook", &hook.id)
        .header("Yibiao-Delivery", d.id.to_string())
        .send(d.body.as_bytes())
        .map_err(|e| format!("network: {e}"))?;
    let status = answer.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("answered {}", status.as_u16()))
    }
}

/// Registers an endpoint of `department` at `url`: https, or http to a loopback host or
/// with `allow_http`. Returns the new row, whose secret is shown once.
pub fn register(
    store: &dyn WebhookStorage,
    schema: &yibiao_model::Schema,
    department: &str,
    url: &str,
    allow_http: bool,
) -> Result<WebhookRow, AccountError> {
    if schema.department(department).is_none() {
        return Err(AccountError::Invalid(
            Message::new("unknown_department")
                .with("department", department)
                .with(
                    "known",
                    schema
                        .departments
                        .keys()
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
        ));
    }
    let shown: String = url.chars().take(200).collect();
    let bad_url = || AccountError::Invalid(Message::new("webhook_url").with("url", &shown));
    let uri: axum::http::Uri = url.parse().map_err(|_| bad_url())?;
    let host = uri.host().unwrap_or_default();
    let loopback = host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match uri.scheme_str() {
        Some("https") if !host.is_empty() => {}
        Some("http") if !host.is_empty() && (loopback || allow_http) => {}
        Some("http") if !host.is_empty() => {
            return Err(AccountError::Invalid(
                Message::new("webhook_plain_http").with("url", &shown),
            ));
        }
        _ => return Err(bad_url()),
    }
    let random = |n: usize| -> Result<String, AccountError> {
        let mut bytes = vec![0u8; n];
        getrandom::fill(&mut bytes)
            .map_err(|e| AccountError::Storage(format!("no randomness: {e}")))?;
        Ok(hex::encode(bytes))
    };
    let row = WebhookRow {
        id: format!("wh_{}", random(8)?),
        department: department.to_owned(),
        url: url.to_owned(),
        secret: format!("whsec_{}", random(32)?),
        created_ms: now_ms(),
        cursor: 0,
    };
    store.add_webhook(&row)?;
    Ok(row)
}

fn no_webhook(id: &str) -> AccountError {
    AccountError::NotFound(Message::new("no_webhook").with("webhook", id))
}

/// Removes endpoint `id` and its delivery log.
pub fn remove(store: &dyn WebhookStorage, id: &str) -> Result<(), AccountError> {
    if store.remove_webhook(id)? {
        Ok(())
    } else {
        Err(no_webhook(id))
    }
}

/// The newest `limit` (1 to 1000) deliveries of endpoint `id`, newest first.
pub fn deliveries(
    store: &dyn WebhookStorage,
    id: &str,
    limit: usize,
) -> Result<Vec<DeliveryRow>, AccountError> {
    if !(1..=1000).contains(&limit) {
        return Err(AccountError::Invalid(
            Message::new("limit_range").with("max", "1000"),
        ));
    }
    if !store.webhooks()?.iter().any(|h| h.id == id) {
        return Err(no_webhook(id));
    }
    Ok(store.deliveries(id, limit)?)
}

/// Puts delivery `delivery` of endpoint `id` back in the queue: the same body and
/// Idempotency-Key are sent again.
pub fn redeliver(store: &dyn WebhookStorage, id: &str, delivery: i64) -> Result<(), AccountError> {
    if !store.webhooks()?.iter().any(|h| h.id == id) {
        return Err(no_webhook(id));
    }
    if store.redeliver(id, delivery)? {
        Ok(())
    } else {
        Err(AccountError::NotFound(
            Message::new("no_delivery")
                .with("webhook", id)
                .with("delivery", delivery.to_string()),
        ))
    }
}
