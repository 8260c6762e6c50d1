//! Account operations shared by the admin HTTP API and the CLI, so an operator without
//! HTTP tools can do everything an admin client can, with the same checks and messages:
//! cadres, enrolment codes, devices, department tokens, the admin token, revocation.

use yibiao_model::messages::{Lang, Message};
use yibiao_model::{CadreId, DeviceId, Schema};
use yibiao_sync::Identity;

use crate::storage::{CadreRow, DepartmentTokenRow, DeviceRow, Redeem, ServerStorage};

/// A device as listed (admin API, CLI, console): its row and when it last synced.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct ListedDevice {
    /// The device.
    #[serde(flatten)]
    pub device: DeviceRow,
    /// Its last sync, ms since the epoch (written at most once a minute; `null` before
    /// its first sync).
    pub last_seen_ms: Option<i64>,
}

/// Every device with its last sync.
pub fn devices(storage: &dyn ServerStorage) -> Result<Vec<ListedDevice>, AccountError> {
    let seen: std::collections::HashMap<String, i64> =
        storage.devices_last_seen()?.into_iter().collect();
    Ok(storage
        .devices()?
        .into_iter()
        .map(|device| ListedDevice {
            last_seen_ms: seen.get(&device.key).copied(),
            device,
        })
        .collect())
}
use crate::tokens::{new_secret, token_hash};

/// Enrolment codes: 8 characters a cadre can type, no 0/O/1/I/L to confuse.
const CODE_ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
/// Default validity of an enrolment code.
pub const DEFAULT_CODE_TTL_MINUTES: i64 = 30;

/// Why an account operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The input is wrong; the message says how.
    #[error("{}", .0.render(Lang::En))]
    Invalid(Message),
    /// The thing named does not exist.
    #[error("{}", .0.render(Lang::En))]
    NotFound(Message),
    /// The thing already exists.
    #[error("{}", .0.render(Lang::En))]
    Conflict(Message),
    /// An enrolment code that cannot be used (unknown, used, expired).
    #[error("{}", .0.render(Lang::En))]
    BadCode(Message),
    /// Storage failed.
    #[error("storage failure: {0}")]
    Storage(String),
}

impl From<yibiao_sync::hub::StorageError> for AccountError {
    fn from(e: yibiao_sync::hub::StorageError) -> Self {
        AccountError::Storage(e.0)
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn check_village(schema: &Schema, village: Option<&str>) -> Result<(), AccountError> {
    match village {
        Some(v) if !schema.has_village(v) => {
            let known: Vec<&str> = schema.villages.keys().map(String::as_str).collect();
            Err(AccountError::Invalid(
                Message::new("unknown_village")
                    .with("village", v)
                    .with("known", known.join(", ")),
            ))
        }
        _ => Ok(()),
    }
}

/// Creates a cadre working in `village` (`None`: township staff).
pub fn create_cadre(
    storage: &dyn ServerStorage,
    schema: &Schema,
    id: &str,
    name: &str,
    village: Option<&str>,
) -> Result<CadreRow, AccountError> {
    let id = CadreId::new(id).map_err(|e| AccountError::Invalid(Message::detail(e.to_string())))?;
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 60 {
        return Err(AccountError::Invalid(Message::new("name_length")));
    }
    check_village(schema, village)?;
    let row = CadreRow {
        id: id.to_string(),
        name: name.to_owned(),
        village: village.map(str::to_owned),
        created_ms: now_ms(),
    };
    if !storage.add_cadre(&row)? {
        return Err(AccountError::Conflict(
            Message::new("cadre_exists").with("cadre", id.as_str()),
        ));
    }
    Ok(row)
}

/// Disables a cadre: their phones stop syncing at once (devices revoked) and their
/// unused enrolment codes end; no new code can be issued for them. Their records and
/// history stay.
pub fn disable_cadre(storage: &dyn ServerStorage, id: &str) -> Result<(), AccountError> {
    if !storage.disable_cadre(id, now_ms())? {
        return Err(AccountError::NotFound(
            Message::new("no_cadre").with("cadre", id),
        ));
    }
    Ok(())
}

/// True when the cadre was disabled.
pub fn is_disabled(storage: &dyn ServerStorage, id: &str) -> Result<bool, AccountError> {
    Ok(storage.disabled_cadres()?.iter().any(|(c, _)| c == id))
}

/// Moves a cadre to another village (`None`: township staff).
///
/// The rule: a phone's scope is fixed at enrolment (the phone stores it,
/// `yibiao_store::Store::set_scope`, and holds that village's records), and the server
/// vouches for a device by its row's village. So the move revokes the cadre's devices
/// and ends their unused codes in the same transaction: each phone's next sync is refused
/// ("enrol the phone again"), and a new enrolment code gives the phone the new village's
/// scope and records. Nothing the cadre typed is lost: records stay with their village.
pub fn move_cadre(
    storage: &dyn ServerStorage,
    schema: &Schema,
    id: &str,
    village: Option<&str>,
) -> Result<(), AccountError> {
    check_village(schema, village)?;
    if is_disabled(storage, id)? {
        return Err(AccountError::Invalid(
            Message::new("cadre_disabled").with("cadre", id),
        ));
    }
    if !storage.move_cadre(id, village, now_ms())? {
        return Err(AccountError::NotFound(
            Message::new("no_cadre").with("cadre", id),
        ));
    }
    Ok(())
}

/// Normalises a typed code: uppercase, without dashes or spaces.
pub fn normalise_code(code: &str) -> String {
    code.chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .flat_map(char::to_uppercase)
        .collect()
}

/// Ends every unused enrolment code of `cadre` (a code handed to the wrong person, or
/// lost); returns how many were still open.
pub fn revoke_codes(storage: &dyn ServerStorage, cadre: &str) -> Result<usize, AccountError> {
    if storage.cadre(cadre)?.is_none() {
        return Err(AccountError::NotFound(
            Message::new("no_cadre").with("cadre", cadre),
        ));
    }
    Ok(storage.revoke_enrol_codes(cadre, now_ms())?)
}

/// Issues a one-time enrolment code for `cadre`, valid `ttl_minutes`, ending the cadre's
/// earlier unused codes (only the newest code handed out works). Returns the code (shown
/// once) and its expiry.
pub fn issue_code(
    storage: &dyn ServerStorage,
    cadre: &str,
    ttl_minutes: i64,
) -> Result<(String, i64), AccountError> {
    if !(1..=7 * 24 * 60).contains(&ttl_minutes) {
        return Err(AccountError::Invalid(Message::new("code_ttl")));
    }
    if storage.cadre(cadre)?.is_none() {
        return Err(AccountError::NotFound(
            Message::new("no_cadre").with("cadre", cadre),
        ));
    }
    if is_disabled(storage, cadre)? {
        return Err(AccountError::Invalid(
            Message::new("cadre_disabled_no_code").with("cadre", cadre),
        ));
    }
    let secret = new_secret().map_err(|e| AccountError::Storage(format!("no randomness: {e}")))?;
    let raw: String = secret
        .iter()
        .take(8)
        .map(|b| CODE_ALPHABET[*b as usize % CODE_ALPHABET.len()] as char)
        .collect();
    let code = format!("{}-{}", &raw[..4], &raw[4..]);
    let now = now_ms();
    let expires = now + ttl_minutes * 60_000;
    storage.revoke_enrol_codes(cadre, now)?;
    storage.add_enrol_code(&token_hash(&normalise_code(&code)), cadre, expires, now)?;
    Ok((code, expires))
}

/// A phone's enrolment: its token (shown once) and what it may do.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct Enrolled {
    /// Device token.
    pub token: String,
    /// The phone's own device id: the one its changes, conflicts, history and task
    /// receipts carry, and the one `device list` shows and `device revoke` takes.
    pub device: String,
    /// The cadre.
    pub cadre: String,
    /// Village scope; `None` for township staff.
    pub village: Option<String>,
}

/// A fresh token: `prefix` and 64 hex digits of randomness.
fn new_token(prefix: &str) -> Result<String, AccountError> {
    let secret = new_secret().map_err(|e| AccountError::Storage(format!("no randomness: {e}")))?;
    Ok(format!("{prefix}{}", hex::encode(secret)))
}

fn device_key(hash: &[u8]) -> String {
    format!("dev-{}", hex::encode(&hash[..6]))
}

/// Checks a phone's own device id before it is bound to a token: well formed, and not
/// one the server's own writers use (`server...`, `township`), whose changes and
/// receipts must never be mistaken for a phone's.
pub fn check_phone_device(phone_device: &str) -> Result<DeviceId, AccountError> {
    let id = DeviceId::new(phone_device)
        .map_err(|e| AccountError::Invalid(Message::detail(e.to_string())))?;
    let lower = phone_device.to_ascii_lowercase();
    if lower.starts_with("server") || lower == "township" {
        return Err(AccountError::Invalid(
            Message::new("device_reserved").with("device", phone_device),
        ));
    }
    Ok(id)
}

/// The message for a phone id bound to another live token.
fn taken(phone_device: &str) -> AccountError {
    AccountError::Conflict(Message::new("device_taken").with("device", phone_device))
}

/// Redeems a code for the phone whose store's device id is `phone_device`. The id is
/// the phone's own (its changes written offline before enrolment already carry it); it
/// is bound to the new token, refused when reserved or bound to another live token.
pub fn enrol(
    storage: &dyn ServerStorage,
    code: &str,
    phone_device: &str,
) -> Result<Enrolled, AccountError> {
    check_phone_device(phone_device)?;
    let normalised = normalise_code(code);
    if normalised.len() != 8 || !normalised.bytes().all(|b| CODE_ALPHABET.contains(&b)) {
        return Err(AccountError::BadCode(Message::new("code_format")));
    }
    let token = new_token("ybd_")?;
    let hash = token_hash(&token);
    let now = now_ms();
    let outcome = storage.redeem_code(&token_hash(&normalised), now, &mut |cadre| {
        let row = DeviceRow {
            key: device_key(&hash),
            name: format!(
                "{} phone {}",
                cadre.id,
                &phone_device.chars().take(16).collect::<String>()
            ),
            cadre: Some(cadre.id.clone()),
            village: cadre.village.clone(),
            created_ms: now,
            revoked_ms: None,
            phone_device: Some(phone_device.to_owned()),
        };
        (row, hash.clone())
    })?;
    match outcome {
        Redeem::Enrolled(row) => Ok(Enrolled {
            token,
            device: row.phone_device.unwrap_or(row.key),
            cadre: row.cadre.unwrap_or_default(),
            village: row.village,
        }),
        Redeem::Unknown => Err(AccountError::BadCode(Message::new("code_unknown"))),
        Redeem::Used => Err(AccountError::BadCode(Message::new("code_used"))),
        Redeem::Expired => Err(AccountError::BadCode(Message::new("code_expired"))),
        Redeem::Taken => Err(taken(phone_device)),
    }
}

/// Binds a token made without a phone (operator CLI) to the phone of its first sync,
/// with the checks of enrolment.
pub fn bind_phone(
    storage: &dyn ServerStorage,
    key: &str,
    phone_device: &str,
) -> Result<(), AccountError> {
    check_phone_device(phone_device)?;
    if storage.bind_phone_device(key, phone_device)? {
        Ok(())
    } else {
        Err(taken(phone_device))
    }
}

/// Who the server vouches for behind the token of `row`, bound to `phone`: that phone,
/// used by the token's cadre or any cadre registered in the device's village (a shared
/// phone; township staff for a township device). The accounts model registers cadres
/// per village, not per phone, so the village is what "registered on that phone" means.
pub fn identity(
    storage: &dyn ServerStorage,
    row: &DeviceRow,
    phone: DeviceId,
) -> Result<Identity, AccountError> {
    let mut cadres: Vec<CadreId> = row
        .cadre
        .iter()
        .filter_map(|c| CadreId::new(c.as_str()).ok())
        .collect();
    for cadre in storage.cadres()? {
        if cadre.village == row.village
            && let Ok(id) = CadreId::new(cadre.id)
            && !cadres.contains(&id)
        {
            cadres.push(id);
        }
    }
    Ok(Identity::new(phone, cadres))
}

/// Registers a device directly (operator CLI), returning its row and token.
pub fn register_device(
    storage: &dyn ServerStorage,
    schema: &Schema,
    name: &str,
    cadre: Option<&str>,
    village: Option<&str>,
) -> Result<(DeviceRow, String), AccountError> {
    check_village(schema, village)?;
    let token = new_token("ybd_")?;
    let hash = token_hash(&token);
    let row = DeviceRow {
        key: device_key(&hash),
        name: name.to_owned(),
        cadre: cadre.map(str::to_owned),
        village: village.map(str::to_owned),
        created_ms: now_ms(),
        revoked_ms: None,
        phone_device: None,
    };
    storage.add_device(&row, &hash)?;
    Ok((row, token))
}

/// Issues a token for `department` (a key of the schema's departments).
pub fn issue_department_token(
    storage: &dyn ServerStorage,
    schema: &Schema,
    department: &str,
    name: &str,
) -> Result<(DepartmentTokenRow, String), AccountError> {
    if schema.department(department).is_none() {
        let known: Vec<&str> = schema.departments.keys().map(String::as_str).collect();
        return Err(AccountError::NotFound(
            Message::new("unknown_department")
                .with("department", department)
                .with("known", known.join(", ")),
        ));
    }
    let token = new_token("ybk_")?;
    let hash = token_hash(&token);
    let row = DepartmentTokenRow {
        key: format!("key-{}", hex::encode(&hash[..6])),
        department: department.to_owned(),
        name: if name.trim().is_empty() {
            department.to_owned()
        } else {
            name.trim().to_owned()
        },
        created_ms: now_ms(),
        revoked_ms: None,
    };
    storage.add_department_token(&row, &hash)?;
    Ok((row, token))
}

/// Creates (or replaces) the admin token; returns it (shown once).
pub fn rotate_admin_token(storage: &dyn ServerStorage) -> Result<String, AccountError> {
    let token = new_token("yba_")?;
    storage.set_admin_token(&token_hash(&token), now_ms())?;
    Ok(token)
}

/// Revokes a device's token at once (its next request is refused). `key` is the phone's
/// device id (every token bound to that phone is revoked) or a token's server-side key.
pub fn revoke_device(storage: &dyn ServerStorage, key: &str) -> Result<(), AccountError> {
    if storage.revoke_device(key, now_ms())? {
        Ok(())
    } else {
        Err(AccountError::NotFound(
            Message::new("no_device").with("key", key),
        ))
    }
}

/// Revokes a department token at once.
pub fn revoke_department_token(storage: &dyn ServerStorage, key: &str) -> Result<(), AccountError> {
    if storage.revoke_department_token(key, now_ms())? {
        Ok(())
    } else {
        Err(AccountError::NotFound(
            Message::new("no_department_token").with("key", key),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_normalised_the_way_people_type_them() {
        assert_eq!(normalise_code("k7pm-q2xd"), "K7PMQ2XD");
        assert_eq!(normalise_code(" K7PM Q2XD "), "K7PMQ2XD");
    }
}
