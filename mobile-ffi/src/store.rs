//! `YibiaoStore`: the phone's store as an app sees it. Each method forwards to
//! `yibiao_store::Store` (or the core's sync client) in a line or two plus type
//! conversions; every rule lives in the core.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use yibiao_model::messages::Lang;
use yibiao_model::{CadreId, RecordId, Schema};
use yibiao_store::Credentials;
use yibiao_store::blobs::Blobs;
use yibiao_store::http::{HttpTransport, SYNC_CONTENT_TYPE, sync_headers, sync_url};
use yibiao_store::{Query, Store};
use yibiao_sync::session::Transport;
use yibiao_sync::{RetryPolicy, SyncOptions};

use crate::callbacks::{
    AppTransport, AppTransportAdapter, ChangeObserver, SyncProgressListener, notify,
};
use crate::error::{YibiaoError, guard};
use crate::types::{
    Enrolment, FieldConflict, FormStatus, HistoryEntry, RecordData, RecordPage, RecordQuery,
    Refusal, SyncReport, SyncSettings, SyncStatus, TaskItem,
};

/// Bound of one HTTP exchange of the built-in transport unless the app sets another:
/// a 64 KiB page takes ~13 s up a 40 kbit/s link, and 2G round trips are long.
const DEFAULT_HTTP_TIMEOUT_MS: u64 = 120_000;

/// The sync settings the core recommends for a phone.
#[uniffi::export]
pub fn default_sync_settings() -> SyncSettings {
    let o = SyncOptions::default();
    SyncSettings {
        page_bytes: u32::try_from(o.page_bytes).unwrap_or(u32::MAX),
        max_response_bytes: o.max_response_bytes,
        time_budget_ms: o.time_budget.map(millis),
        byte_budget: o.byte_budget,
        attempts: o.retry.attempts,
        base_delay_ms: millis(o.retry.base_delay),
        max_delay_ms: millis(o.retry.max_delay),
        http_timeout_ms: DEFAULT_HTTP_TIMEOUT_MS,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl From<&SyncSettings> for SyncOptions {
    fn from(s: &SyncSettings) -> Self {
        Self {
            page_bytes: s.page_bytes as usize,
            max_response_bytes: s.max_response_bytes,
            time_budget: s.time_budget_ms.map(Duration::from_millis),
            byte_budget: s.byte_budget,
            retry: RetryPolicy {
                attempts: s.attempts,
                base_delay: Duration::from_millis(s.base_delay_ms),
                max_delay: Duration::from_millis(s.max_delay_ms),
            },
        }
    }
}

/// The local store of one phone: records, conflicts, history and sync.
///
/// Every method blocks (SQLite, HTTP): call them off the UI thread. One instance per
/// store file; share it freely between threads.
#[derive(uniffi::Object)]
pub struct YibiaoStore {
    pub(crate) inner: Arc<Store>,
    /// Attachments' blobs, beside the store file.
    pub(crate) blobs: Blobs,
    observer: Mutex<Option<Arc<dyn ChangeObserver>>>,
    settings: Mutex<SyncSettings>,
    /// The language of messages (`detail`), Chinese unless the app sets another.
    lang: Mutex<Lang>,
    /// A county CA the app pins for its `https://` server (`set_trusted_ca`), PEM.
    trusted_ca: Mutex<Option<String>>,
}

impl YibiaoStore {
    pub(crate) fn id(text: &str) -> Result<RecordId, YibiaoError> {
        Ok(text.parse::<RecordId>()?)
    }

    /// Parses a task id; a malformed one is named as a task id, not a record id.
    fn task_id(text: &str) -> Result<RecordId, YibiaoError> {
        text.parse::<RecordId>().map_err(|e| {
            yibiao_model::BadId {
                kind: "task id",
                ..e
            }
            .into()
        })
    }

    /// Runs a task call; a task this phone does not hold is named as a task.
    fn on_task<T>(
        &self,
        id: &str,
        call: impl FnOnce(RecordId) -> yibiao_store::Result<T>,
    ) -> Result<T, YibiaoError> {
        let task = Self::task_id(id)?;
        call(task).map_err(|e| match e {
            yibiao_store::Error::Model(yibiao_model::Error::NotFound(_)) => YibiaoError::NotFound {
                id: task.to_string(),
                detail: format!("task {task} is not on this phone (sync to receive new tasks)"),
            },
            other => other.into(),
        })
    }

    /// Runs one exported call (see [`guard`]), its error worded in the store's language.
    pub(crate) fn guard<T>(
        &self,
        call: impl FnOnce() -> Result<T, YibiaoError>,
    ) -> Result<T, YibiaoError> {
        guard(call).map_err(|e| e.in_language(self.lang()))
    }

    fn lang(&self) -> Lang {
        *self.lang.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The built-in HTTP transport to the enrolled server, trusting the pinned CA when
    /// the app set one.
    pub(crate) fn transport(&self) -> Result<HttpTransport, YibiaoError> {
        let creds = self.credentials()?;
        let timeout = Duration::from_millis(self.settings().http_timeout_ms);
        match self.pinned_ca() {
            Some(pem) => HttpTransport::with_trusted_ca(
                &creds.server_url,
                &creds.token,
                timeout,
                pem.as_bytes(),
            )
            .map_err(|detail| YibiaoError::InvalidInput { detail }),
            None => Ok(HttpTransport::new(&creds.server_url, &creds.token, timeout)),
        }
    }

    fn pinned_ca(&self) -> Option<String> {
        self.trusted_ca
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn settings(&self) -> SyncSettings {
        self.settings
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn credentials(&self) -> Result<Credentials, YibiaoError> {
        self.inner
            .credentials()?
            .ok_or_else(|| YibiaoError::NotEnrolled {
                detail: "this phone is not enrolled with a server yet; enter the enrolment code"
                    .into(),
            })
    }

    /// Tells the observer, if any, that `ids` changed.
    pub(crate) fn changed(&self, ids: Vec<String>) {
        let observer = self
            .observer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(o) = observer {
            notify("change observer", || o.on_records_changed(ids));
        }
    }

    pub(crate) fn changed_if(&self, id: &str, changed: bool) -> bool {
        if changed {
            self.changed(vec![id.to_owned()]);
        }
        changed
    }

    fn run_sync(
        &self,
        transport: &dyn Transport,
        listener: Option<Arc<dyn SyncProgressListener>>,
    ) -> Result<SyncReport, YibiaoError> {
        let options = SyncOptions::from(&self.settings());
        let mut pulled = 0;
        let result = yibiao_store::sync(&self.inner, transport, &options, &mut |p| {
            pulled = p.pulled;
            if let Some(l) = &listener {
                notify("sync progress listener", || l.on_progress(p.into()));
            }
        });
        match result {
            Ok(report) => {
                let report = SyncReport::from(report);
                if !report.changed.is_empty() {
                    self.changed(report.changed.clone());
                }
                Ok(report)
            }
            Err(e) => {
                // Pages committed before the failure may have brought changes; the
                // core's error does not list them, so ask the UI to reload.
                if pulled > 0 {
                    self.changed(Vec::new());
                }
                Err(e.into())
            }
        }
    }
}

#[uniffi::export]
impl YibiaoStore {
    /// Opens (creating if needed) the store file at `path` for cadre `cadre_id`.
    /// `schema_toml`: the schema text; `None` uses the built-in Baru example.
    #[uniffi::constructor]
    pub fn open(
        path: String,
        schema_toml: Option<String>,
        cadre_id: String,
    ) -> Result<Arc<Self>, YibiaoError> {
        guard(|| {
            let schema = match schema_toml {
                Some(text) => Schema::from_toml_str(&text, "schema.toml")?,
                None => Schema::baru_example(),
            };
            let blobs = Blobs::open(Blobs::dir_beside(&path))?;
            let store = Store::open(path, Arc::new(schema), CadreId::new(cadre_id)?)?;
            Ok(Arc::new(Self {
                inner: Arc::new(store),
                blobs,
                observer: Mutex::new(None),
                settings: Mutex::new(default_sync_settings()),
                lang: Mutex::new(Lang::default()),
                trusted_ca: Mutex::new(None),
            }))
        })
    }

    /// Sets the language of messages (`detail` of errors and refusals): `zh` (the
    /// default) or `en`; a region (`zh-CN`, `en-GB`) is allowed.
    pub fn set_language(&self, language: String) -> Result<(), YibiaoError> {
        let lang = Lang::from_tag(&language).ok_or_else(|| YibiaoError::InvalidInput {
            detail: format!("language `{language}` is not supported; use zh or en"),
        })?;
        *self.lang.lock().unwrap_or_else(PoisonError::into_inner) = lang;
        Ok(())
    }

    /// The language of messages: `zh` or `en`.
    pub fn language(&self) -> String {
        self.lang().tag().to_owned()
    }

    /// This phone's stable device id.
    pub fn device_id(&self) -> String {
        self.inner.device_id().to_string()
    }

    /// The revision of the schema this phone validates with: the app's own, or a newer
    /// one a sync brought (kept across restarts).
    pub fn schema_revision(&self) -> u32 {
        self.inner.schema_revision()
    }

    /// The cadre whose edits this store records.
    pub fn cadre_id(&self) -> String {
        self.inner.cadre_id().to_string()
    }

    /// Records later edits as `cadre_id`'s (another cadre uses this phone).
    pub fn set_cadre(&self, cadre_id: String) -> Result<(), YibiaoError> {
        self.guard(|| Ok(self.inner.set_cadre(CadreId::new(cadre_id)?)?))
    }

    // ----- enrolment -----------------------------------------------------------------

    /// Enrols this phone with a one-time code from the township (`POST /v1/enrol`),
    /// stores the device token, and records later edits as the enrolled cadre's.
    /// `server_url`: `https://host`, `http://host:port`, or a bare `host:port` on the
    /// phone or the local network (taken as `http://`); another bare address is
    /// `InvalidInput` saying what to write.
    pub fn enrol(&self, server_url: String, code: String) -> Result<Enrolment, YibiaoError> {
        self.guard(|| {
            let timeout = Duration::from_millis(self.settings().http_timeout_ms);
            let device = self.inner.device_id().to_string();
            let server_url = yibiao_store::http::server_base_url(&server_url)?;
            let roots = match self.pinned_ca() {
                Some(pem) => Some(
                    yibiao_store::http::trusted_roots(pem.as_bytes())
                        .map_err(|detail| YibiaoError::InvalidInput { detail })?,
                ),
                None => None,
            };
            let e = yibiao_store::http::enrol_trusting(
                &server_url,
                code.trim(),
                &device,
                timeout,
                roots,
            )?;
            let cadre = CadreId::new(e.cadre.clone())?;
            self.inner.set_credentials(&Credentials {
                server_url,
                token: e.token,
            })?;
            self.inner.set_cadre(cadre)?;
            let scope = match &e.village {
                Some(v) => yibiao_sync::DeviceScope::Village(v.clone()),
                None => yibiao_sync::DeviceScope::Township,
            };
            self.inner.set_scope(Some(&scope))?;
            Ok(Enrolment {
                device: e.device,
                cadre: e.cadre,
                village: e.village,
            })
        })
    }

    /// Pins the CA (PEM text: the county's CA certificate, or the server's self-signed
    /// certificate) that the built-in HTTP transport trusts for an `https://` server,
    /// instead of the public roots: for enrolment, sync and attachments. `None` goes back
    /// to the public roots. Text that holds no PEM certificate is `InvalidInput` and
    /// changes nothing. The app sets it at each start, like the settings.
    pub fn set_trusted_ca(&self, ca_pem: Option<String>) -> Result<(), YibiaoError> {
        self.guard(|| {
            if let Some(pem) = &ca_pem {
                yibiao_store::http::trusted_roots(pem.as_bytes())
                    .map_err(|detail| YibiaoError::InvalidInput { detail })?;
            }
            *self
                .trusted_ca
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = ca_pem;
            Ok(())
        })
    }

    /// Stores a server URL and device token obtained elsewhere (an MDM, a QR code).
    /// The address is read as `enrol` reads it.
    pub fn set_credentials(&self, server_url: String, token: String) -> Result<(), YibiaoError> {
        self.guard(|| {
            let server_url = yibiao_store::http::server_base_url(&server_url)?;
            Ok(self
                .inner
                .set_credentials(&Credentials { server_url, token })?)
        })
    }

    /// The server this phone syncs with, once enrolled.
    pub fn server_url(&self) -> Result<Option<String>, YibiaoError> {
        self.guard(|| Ok(self.inner.credentials()?.map(|c| c.server_url)))
    }

    // ----- records -------------------------------------------------------------------

    /// Creates a record of `entity` in `village` (`None`: township level) with its
    /// first values (field -> JSON text), in one durable write. Returns its id. Once
    /// enrolled, a village outside the phone's scope is `InvalidInput` at once.
    pub fn create(
        &self,
        entity: String,
        village: Option<String>,
        fields: HashMap<String, String>,
    ) -> Result<String, YibiaoError> {
        self.guard(|| {
            let id = self
                .inner
                .create_from_json_text(&entity, village.as_deref(), fields)?
                .to_string();
            self.changed(vec![id.clone()]);
            Ok(id)
        })
    }

    /// Sets one field from JSON text. False when the value was already there.
    pub fn set_field(
        &self,
        id: String,
        field: String,
        value_json: String,
    ) -> Result<bool, YibiaoError> {
        self.guard(|| {
            let changed = self
                .inner
                .update_from_json_text(Self::id(&id)?, [(field, value_json)])?;
            Ok(self.changed_if(&id, changed))
        })
    }

    /// Sets several fields (field -> JSON text) in one change; if any value is
    /// refused, nothing is written.
    pub fn set_fields(
        &self,
        id: String,
        fields: HashMap<String, String>,
    ) -> Result<bool, YibiaoError> {
        self.guard(|| {
            let changed = self.inner.update_from_json_text(Self::id(&id)?, fields)?;
            Ok(self.changed_if(&id, changed))
        })
    }

    /// Clears one field. False when it was not set.
    pub fn unset_field(&self, id: String, field: String) -> Result<bool, YibiaoError> {
        self.guard(|| {
            let changed = self.inner.unset(Self::id(&id)?, &field)?;
            Ok(self.changed_if(&id, changed))
        })
    }

    /// Deletes a record (a tombstone; `restore` undoes it).
    pub fn delete(&self, id: String) -> Result<bool, YibiaoError> {
        self.guard(|| {
            let changed = self.inner.delete(Self::id(&id)?)?;
            Ok(self.changed_if(&id, changed))
        })
    }

    /// Removes a record the server never accepted (refused, or never synced) for good,
    /// with its pending state and refusal. A record the server holds is `InvalidInput`:
    /// correct it, or `delete` it.
    pub fn discard(&self, id: String) -> Result<(), YibiaoError> {
        self.guard(|| {
            self.inner.discard(Self::id(&id)?)?;
            self.changed(vec![id]);
            Ok(())
        })
    }

    /// Restores a deleted record.
    pub fn restore(&self, id: String) -> Result<bool, YibiaoError> {
        self.guard(|| {
            let changed = self.inner.restore(Self::id(&id)?)?;
            Ok(self.changed_if(&id, changed))
        })
    }

    /// A record's current values.
    pub fn get(&self, id: String) -> Result<RecordData, YibiaoError> {
        self.guard(|| Ok(self.inner.get(Self::id(&id)?)?.into()))
    }

    /// Lists records, one page at a time (pass the page's `next` as `after`).
    pub fn query(&self, query: RecordQuery) -> Result<RecordPage, YibiaoError> {
        self.guard(|| {
            let sorted = |m: HashMap<String, String>| {
                let mut v: Vec<_> = m.into_iter().collect();
                v.sort();
                v
            };
            let q = Query {
                equals: sorted(query.equals)
                    .into_iter()
                    .map(|(f, text)| {
                        let value = Query::value_from_json_text(&self.inner.schema(), &f, &text)?;
                        Ok((f, value))
                    })
                    .collect::<Result<_, YibiaoError>>()?,
                contains: sorted(query.contains),
                entity: query.entity,
                village: query.village,
                complete_for: query.complete_for,
                incomplete_for: query.incomplete_for,
                conflicted_only: query.conflicted_only,
                include_deleted: query.include_deleted,
                after: query.after.as_deref().map(Self::id).transpose()?,
                limit: query.limit,
            };
            Ok(self.inner.query(&q)?.into())
        })
    }

    /// What form `form` still needs for record `id`.
    pub fn form_status(&self, id: String, form: String) -> Result<FormStatus, YibiaoError> {
        self.guard(|| Ok(self.inner.form_status(Self::id(&id)?, &form)?.into()))
    }

    // ----- tasks ---------------------------------------------------------------------

    /// The tasks for this phone's village, soonest due first (cancelled ones left out),
    /// with how far the village is and this phone's receipt. For the home screen.
    pub fn tasks(&self) -> Result<Vec<TaskItem>, YibiaoError> {
        self.guard(|| Ok(self.inner.tasks()?.into_iter().map(Into::into).collect()))
    }

    /// One task, by the `id` of a `TaskItem`.
    pub fn task(&self, id: String) -> Result<TaskItem, YibiaoError> {
        self.guard(|| Ok(self.on_task(&id, |t| self.inner.task(t))?.into()))
    }

    /// Records that the app showed the task to the cadre (call it when the task is
    /// shown). False when it was already opened on this phone. The receipt reaches the
    /// issuer with the next sync.
    pub fn open_task(&self, id: String) -> Result<bool, YibiaoError> {
        self.guard(|| {
            let changed = self.on_task(&id, |t| self.inner.open_task(t))?;
            Ok(self.changed_if(&id, changed))
        })
    }

    /// The cadre marks the task done, with an optional note (at most 500 characters;
    /// a longer one is `InvalidInput` and nothing is written). Marking again replaces
    /// the note. False when nothing changed. A cancelled task is `InvalidInput`.
    #[uniffi::method(default(note = None))]
    pub fn mark_task_done(&self, id: String, note: Option<String>) -> Result<bool, YibiaoError> {
        self.guard(|| {
            let changed = self.on_task(&id, |t| self.inner.mark_task_done(t, note.as_deref()))?;
            Ok(self.changed_if(&id, changed))
        })
    }

    // ----- conflicts and history -----------------------------------------------------

    /// Conflicted fields of a record, each with every competing value and its author.
    pub fn conflicts(&self, id: String) -> Result<Vec<FieldConflict>, YibiaoError> {
        self.guard(|| {
            let conflicts = self.inner.conflicts(Self::id(&id)?)?;
            Ok(conflicts.into_iter().map(Into::into).collect())
        })
    }

    /// Settles a conflicted field with `value_json` (one of the competing values or a new
    /// one), or clears it with `None`.
    pub fn resolve(
        &self,
        id: String,
        field: String,
        value_json: Option<String>,
    ) -> Result<(), YibiaoError> {
        self.guard(|| {
            self.inner
                .resolve_from_json_text(Self::id(&id)?, &field, value_json.as_deref())?;
            self.changed(vec![id]);
            Ok(())
        })
    }

    /// Who set what, when, on which device; the same order on every phone.
    pub fn history(&self, id: String) -> Result<Vec<HistoryEntry>, YibiaoError> {
        self.guard(|| {
            let history = self.inner.history(Self::id(&id)?)?;
            Ok(history.into_iter().map(Into::into).collect())
        })
    }

    // ----- sync ----------------------------------------------------------------------

    /// Syncs with the enrolled server over the built-in HTTP transport until up to
    /// date (or a budget in the settings is spent). `progress` hears every page
    /// (optional: `sync()`).
    #[uniffi::method(default(progress = None))]
    pub fn sync(
        &self,
        progress: Option<Arc<dyn SyncProgressListener>>,
    ) -> Result<SyncReport, YibiaoError> {
        self.guard(|| {
            let http = self.transport()?;
            self.run_sync(&http, progress)
        })
    }

    /// Syncs through the app's own transport. The request carries the URL and headers
    /// from the stored credentials when there are any.
    #[uniffi::method(default(progress = None))]
    pub fn sync_with(
        &self,
        transport: Arc<dyn AppTransport>,
        progress: Option<Arc<dyn SyncProgressListener>>,
    ) -> Result<SyncReport, YibiaoError> {
        self.guard(|| {
            let mut headers =
                HashMap::from([("Content-Type".to_owned(), SYNC_CONTENT_TYPE.to_owned())]);
            let mut url = String::new();
            if let Some(creds) = self.inner.credentials()? {
                url = sync_url(&creds.server_url);
                headers.extend(sync_headers(&creds.token).map(|(k, v)| (k.to_owned(), v)));
            }
            let adapter = AppTransportAdapter {
                app: transport,
                url,
                headers,
            };
            self.run_sync(&adapter, progress)
        })
    }

    /// Registers the observer told about changed records (`None` removes it).
    pub fn set_observer(&self, observer: Option<Arc<dyn ChangeObserver>>) {
        *self.observer.lock().unwrap_or_else(PoisonError::into_inner) = observer;
    }

    /// Pending changes, refusals, last successful sync and last error.
    pub fn status(&self) -> Result<SyncStatus, YibiaoError> {
        self.guard(|| Ok(self.inner.sync_status()?.into()))
    }

    /// Records the server refused, with reasons, newest first.
    pub fn refusals(&self) -> Result<Vec<Refusal>, YibiaoError> {
        self.guard(|| {
            let lang = self.lang();
            let refusals = self.inner.refusals()?.into_iter();
            Ok(refusals.map(|r| Refusal::of(r, lang)).collect())
        })
    }

    /// The settings later syncs use.
    pub fn sync_settings(&self) -> SyncSettings {
        self.settings()
    }

    /// Changes the settings later syncs use (start from `default_sync_settings()`).
    pub fn set_sync_settings(&self, settings: SyncSettings) {
        *self.settings.lock().unwrap_or_else(PoisonError::into_inner) = settings;
    }
}
