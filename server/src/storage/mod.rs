//! Where the server keeps documents, the change feed, what each device holds, accounts
//! and the department read model.
//!
//! Handlers never see SQL: sync goes through the hub, which goes through
//! [`yibiao_sync::HubStorage`]; the rest goes through one small trait per concern
//! ([`AccountStorage`], [`DepartmentStorage`], [`ViewStorage`], [`TaskStorage`],
//! [`StaffStorage`]), which [`ServerStorage`] gathers as a blanket supertrait. Each trait
//! has its conformance suite (`conformance`), run against every backend.

mod accounts;
pub mod backup;
mod blob_refs;
mod cadre_admin;
#[cfg(test)]
pub(crate) mod conformance;
mod device_seen;
mod findings;
pub mod postgres;
mod quarantine;
pub mod sqlite;
mod staff;
mod table;
mod tasks;
mod trail;
mod views;
mod webhooks;

use yibiao_model::RecordId;
use yibiao_model::schema::ViewFilter;
use yibiao_sync::HubStorage;
use yibiao_sync::hub::StorageError;

pub use blob_refs::{BlobRefStorage, BlobReference};
pub use cadre_admin::CadreAdminStorage;
pub use device_seen::DeviceSeenStorage;
pub use findings::{FindingRow, FindingStorage};
pub use postgres::PostgresStorage;
pub use quarantine::{QuarantineStorage, QuarantinedRecord};
pub use sqlite::{DeviceRow, SqliteStorage};
pub use staff::{AuditRow, FailedLogins, SessionRow, StaffRow, StaffStorage};
pub use table::{RecordTableStorage, TableFilter};
pub use trail::{LastChange, TrailStorage};
pub use webhooks::{DeliveryRow, NewDelivery, WebhookRow, WebhookStorage};

/// A cadre: a person who enters data, with the village they work in.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct CadreRow {
    /// Cadre id (ASCII, chosen by the operator).
    pub id: String,
    /// Name, e.g. 阿木.
    pub name: String,
    /// Village scope; `None` for township staff.
    pub village: Option<String>,
    /// Creation time, ms since the epoch.
    pub created_ms: i64,
}

/// A department token (the secret itself is never stored).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct DepartmentTokenRow {
    /// Token key, for listing and revocation.
    pub key: String,
    /// The department (a key of the schema's `[departments]`).
    pub department: String,
    /// Name given by the operator (the system or person using it).
    pub name: String,
    /// Creation time.
    pub created_ms: i64,
    /// Revocation time, if revoked.
    pub revoked_ms: Option<i64>,
}

/// What redeeming an enrolment code did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redeem {
    /// The device was registered.
    Enrolled(DeviceRow),
    /// No such code.
    Unknown,
    /// The code was already used.
    Used,
    /// The code expired.
    Expired,
    /// The phone's device id is bound to another live device.
    Taken,
}

/// Which stored records a department read may return: the department's view as the
/// schema decides it ([`ViewFilter`]), and whether tombstones come too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordFilter {
    /// The department's view, narrowed by the request.
    pub view: ViewFilter,
    /// Include tombstoned records.
    pub include_deleted: bool,
}

/// A record as the department read model stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Record id.
    pub id: RecordId,
    /// Entity type.
    pub entity: String,
    /// Village.
    pub village: Option<String>,
    /// Tombstone.
    pub deleted: bool,
    /// Current values, a JSON object.
    pub values_json: String,
    /// Conflicts, a JSON object.
    pub conflicts_json: String,
}

/// One per-village document of a task, with its JSON summary (spec and receipts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDocRow {
    /// The document's id.
    pub id: RecordId,
    /// The task's id.
    pub task: String,
    /// Who issued it.
    pub issuer: String,
    /// Its target village.
    pub village: Option<String>,
    /// `{"spec": ..., "receipts": ..., "cancelled": ...}` (see `yibiao_model::task`).
    pub json: String,
}

/// Field values typed on phones in a period, for one (entity, village, field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypedCount {
    /// Entity type.
    pub entity: String,
    /// Village (`None`: township level).
    pub village: Option<String>,
    /// Field.
    pub field: String,
    /// Values typed.
    pub typed: u64,
    /// Distinct records they went into.
    pub records: u64,
}

/// Accounts: the admin token, cadres, one-time enrolment codes and devices.
pub trait AccountStorage: Send + Sync {
    /// True once an admin token exists.
    fn has_admin_token(&self) -> Result<bool, StorageError>;
    /// Replaces the admin token.
    fn set_admin_token(&self, hash: &[u8], now_ms: i64) -> Result<(), StorageError>;
    /// True when `hash` is the admin token's.
    fn is_admin_token(&self, hash: &[u8]) -> Result<bool, StorageError>;
    /// Adds a cadre; false when the id is taken.
    fn add_cadre(&self, row: &CadreRow) -> Result<bool, StorageError>;
    /// One cadre.
    fn cadre(&self, id: &str) -> Result<Option<CadreRow>, StorageError>;
    /// Every cadre.
    fn cadres(&self) -> Result<Vec<CadreRow>, StorageError>;
    /// Stores an enrolment code hash.
    fn add_enrol_code(
        &self,
        hash: &[u8],
        cadre: &str,
        expires_ms: i64,
        now_ms: i64,
    ) -> Result<(), StorageError>;
    /// Ends every unused enrolment code of `cadre`; returns how many.
    fn revoke_enrol_codes(&self, cadre: &str, now_ms: i64) -> Result<usize, StorageError>;
    /// Redeems a code and registers the device atomically.
    fn redeem_code(
        &self,
        hash: &[u8],
        now_ms: i64,
        device: &mut dyn FnMut(&CadreRow) -> (DeviceRow, Vec<u8>),
    ) -> Result<Redeem, StorageError>;
    /// Registers a device.
    fn add_device(&self, row: &DeviceRow, token_hash: &[u8]) -> Result<(), StorageError>;
    /// The device with this token hash.
    fn device_by_token_hash(&self, hash: &[u8]) -> Result<Option<DeviceRow>, StorageError>;
    /// Every device.
    fn devices(&self) -> Result<Vec<DeviceRow>, StorageError>;
    /// Revokes every token of the device whose key or phone device id is `key`.
    fn revoke_device(&self, key: &str, now_ms: i64) -> Result<bool, StorageError>;
    /// Binds a token to the phone's device id; false when another live token holds it.
    fn bind_phone_device(&self, key: &str, phone_device: &str) -> Result<bool, StorageError>;
}

/// Department tokens (the secret itself is never stored).
pub trait DepartmentStorage: Send + Sync {
    /// Adds a department token.
    fn add_department_token(
        &self,
        row: &DepartmentTokenRow,
        hash: &[u8],
    ) -> Result<(), StorageError>;
    /// The department token with this hash.
    fn department_by_token_hash(
        &self,
        hash: &[u8],
    ) -> Result<Option<DepartmentTokenRow>, StorageError>;
    /// Every department token.
    fn department_tokens(&self) -> Result<Vec<DepartmentTokenRow>, StorageError>;
    /// Revokes a department token.
    fn revoke_department_token(&self, key: &str, now_ms: i64) -> Result<bool, StorageError>;
}

/// The department read model: the stored summaries of records (never a decoded
/// document), by id and in feed order.
pub trait ViewStorage: Send + Sync {
    /// A page of records by id.
    fn records_page(
        &self,
        f: &RecordFilter,
        after: Option<RecordId>,
        limit: usize,
    ) -> Result<Vec<StoredRecord>, StorageError>;
    /// A page of the feed.
    fn feed_page(
        &self,
        f: &RecordFilter,
        cursor: u64,
        limit: usize,
    ) -> Result<Vec<(u64, StoredRecord)>, StorageError>;
    /// Current values of live records of `entity` in `village`.
    fn live_values(
        &self,
        entity: &str,
        village: Option<&str>,
    ) -> Result<Vec<(RecordId, String)>, StorageError>;
    /// Stored summaries of those of `ids` that exist.
    fn stored_records(&self, ids: &[RecordId]) -> Result<Vec<StoredRecord>, StorageError>;
    /// Every stored record's summary (records and task documents, tombstones too), by
    /// id after `after`: what a schema change is checked against and rebuilds.
    fn all_records_page(
        &self,
        after: Option<RecordId>,
        limit: usize,
    ) -> Result<Vec<StoredRecord>, StorageError>;
    /// Replaces the read model's summaries of these records (id, values, conflicts) in
    /// one transaction.
    fn set_summaries(&self, rows: &[(RecordId, String, String)]) -> Result<(), StorageError>;
    /// `PRAGMA integrity_check` or the backend's equivalent.
    fn integrity_check(&self) -> Result<String, StorageError>;
}

/// Task documents by task and issuer, and the burden counts of typed values.
pub trait TaskStorage: Send + Sync {
    /// Task documents, optionally of one task and/or one issuer.
    fn task_docs(
        &self,
        task: Option<&str>,
        issuer: Option<&str>,
    ) -> Result<Vec<TaskDocRow>, StorageError>;
    /// Values typed in `[from_ms, to_ms)` by entity, village and field.
    fn typed_counts(&self, from_ms: i64, to_ms: i64) -> Result<Vec<TypedCount>, StorageError>;
}

/// Everything the server stores: sync ([`HubStorage`]), the web console's staff
/// ([`StaffStorage`]), accounts, department tokens, the read model and tasks; devices'
/// last sync ([`DeviceSeenStorage`]), disabling and moving cadres
/// ([`CadreAdminStorage`]), blob references ([`BlobRefStorage`]), the console's last
/// changes and records table ([`TrailStorage`], [`RecordTableStorage`]) and findings
/// ([`FindingStorage`]). A blanket supertrait: a backend implements each part and is a
/// `ServerStorage` by that. Webhooks ([`WebhookStorage`]) are apart: only the delivery
/// worker and the operator commands need them.
pub trait ServerStorage:
    HubStorage
    + StaffStorage
    + AccountStorage
    + DepartmentStorage
    + ViewStorage
    + TaskStorage
    + DeviceSeenStorage
    + CadreAdminStorage
    + BlobRefStorage
    + TrailStorage
    + RecordTableStorage
    + FindingStorage
    + QuarantineStorage
{
}

impl<T> ServerStorage for T where
    T: HubStorage
        + StaffStorage
        + AccountStorage
        + DepartmentStorage
        + ViewStorage
        + TaskStorage
        + DeviceSeenStorage
        + CadreAdminStorage
        + BlobRefStorage
        + TrailStorage
        + RecordTableStorage
        + FindingStorage
        + QuarantineStorage
{
}

impl AccountStorage for SqliteStorage {
    fn has_admin_token(&self) -> Result<bool, StorageError> {
        SqliteStorage::has_admin_token(self)
    }
    fn set_admin_token(&self, hash: &[u8], now_ms: i64) -> Result<(), StorageError> {
        SqliteStorage::set_admin_token(self, hash, now_ms)
    }
    fn is_admin_token(&self, hash: &[u8]) -> Result<bool, StorageError> {
        SqliteStorage::is_admin_token(self, hash)
    }
    fn add_cadre(&self, row: &CadreRow) -> Result<bool, StorageError> {
        SqliteStorage::add_cadre(self, row)
    }
    fn cadre(&self, id: &str) -> Result<Option<CadreRow>, StorageError> {
        SqliteStorage::cadre(self, id)
    }
    fn cadres(&self) -> Result<Vec<CadreRow>, StorageError> {
        SqliteStorage::cadres(self)
    }
    fn add_enrol_code(
        &self,
        hash: &[u8],
        cadre: &str,
        expires_ms: i64,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        SqliteStorage::add_enrol_code(self, hash, cadre, expires_ms, now_ms)
    }
    fn revoke_enrol_codes(&self, cadre: &str, now_ms: i64) -> Result<usize, StorageError> {
        SqliteStorage::revoke_enrol_codes(self, cadre, now_ms)
    }
    fn redeem_code(
        &self,
        hash: &[u8],
        now_ms: i64,
        device: &mut dyn FnMut(&CadreRow) -> (DeviceRow, Vec<u8>),
    ) -> Result<Redeem, StorageError> {
        SqliteStorage::redeem_code(self, hash, now_ms, device)
    }
    fn add_device(&self, row: &DeviceRow, token_hash: &[u8]) -> Result<(), StorageError> {
        SqliteStorage::add_device(self, row, token_hash)
    }
    fn device_by_token_hash(&self, hash: &[u8]) -> Result<Option<DeviceRow>, StorageError> {
        SqliteStorage::device_by_token_hash(self, hash)
    }
    fn devices(&self) -> Result<Vec<DeviceRow>, StorageError> {
        SqliteStorage::devices(self)
    }
    fn revoke_device(&self, key: &str, now_ms: i64) -> Result<bool, StorageError> {
        SqliteStorage::revoke_device(self, key, now_ms)
    }
    fn bind_phone_device(&self, key: &str, phone_device: &str) -> Result<bool, StorageError> {
        SqliteStorage::bind_phone_device(self, key, phone_device)
    }
}

impl DepartmentStorage for SqliteStorage {
    fn add_department_token(
        &self,
        row: &DepartmentTokenRow,
        hash: &[u8],
    ) -> Result<(), StorageError> {
        SqliteStorage::add_department_token(self, row, hash)
    }
    fn department_by_token_hash(
        &self,
        hash: &[u8],
    ) -> Result<Option<DepartmentTokenRow>, StorageError> {
        SqliteStorage::department_by_token_hash(self, hash)
    }
    fn department_tokens(&self) -> Result<Vec<DepartmentTokenRow>, StorageError> {
        SqliteStorage::department_tokens(self)
    }
    fn revoke_department_token(&self, key: &str, now_ms: i64) -> Result<bool, StorageError> {
        SqliteStorage::revoke_department_token(self, key, now_ms)
    }
}

impl ViewStorage for SqliteStorage {
    fn records_page(
        &self,
        f: &RecordFilter,
        after: Option<RecordId>,
        limit: usize,
    ) -> Result<Vec<StoredRecord>, StorageError> {
        SqliteStorage::records_page(self, f, after, limit)
    }
    fn feed_page(
        &self,
        f: &RecordFilter,
        cursor: u64,
        limit: usize,
    ) -> Result<Vec<(u64, StoredRecord)>, StorageError> {
        SqliteStorage::feed_page(self, f, cursor, limit)
    }
    fn live_values(
        &self,
        entity: &str,
        village: Option<&str>,
    ) -> Result<Vec<(RecordId, String)>, StorageError> {
        SqliteStorage::live_values(self, entity, village)
    }
    fn stored_records(&self, ids: &[RecordId]) -> Result<Vec<StoredRecord>, StorageError> {
        SqliteStorage::stored_records(self, ids)
    }
    fn integrity_check(&self) -> Result<String, StorageError> {
        SqliteStorage::integrity_check(self)
    }
    fn all_records_page(
        &self,
        after: Option<RecordId>,
        limit: usize,
    ) -> Result<Vec<StoredRecord>, StorageError> {
        SqliteStorage::all_records_page(self, after, limit)
    }
    fn set_summaries(&self, rows: &[(RecordId, String, String)]) -> Result<(), StorageError> {
        SqliteStorage::set_summaries(self, rows)
    }
}

impl TaskStorage for SqliteStorage {
    fn task_docs(
        &self,
        task: Option<&str>,
        issuer: Option<&str>,
    ) -> Result<Vec<TaskDocRow>, StorageError> {
        SqliteStorage::task_docs(self, task, issuer)
    }
    fn typed_counts(&self, from_ms: i64, to_ms: i64) -> Result<Vec<TypedCount>, StorageError> {
        SqliteStorage::typed_counts(self, from_ms, to_ms)
    }
}
