//! Staff accounts of the web console, one function per operation, called by the console's
//! pages and by `yibiao-server staff` alike: add, list, disable, reset and change a
//! password, sign in (with the lockout rule), open and check sessions, and the audit log.
//!
//! Passwords are hashed with argon2id (the `argon2` crate's default parameters, a PHC
//! string per account with its own salt). Session ids are 256 random bits; only their
//! SHA-256 is stored. Times come in as arguments (the server's clock), so tests drive
//! expiry and lockout by hand.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use yibiao_model::Schema;
use yibiao_model::messages::Message;

use crate::accounts::AccountError;
use crate::config::ConsoleConfig;
use crate::storage::{AuditRow, SessionRow, StaffRow, StaffStorage};
use crate::tokens::{new_secret, token_hash};

/// Generated passwords: no 0/O/1/I/l to misread.
const PASSWORD_ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ";
/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// What a township account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything, including staff accounts.
    Admin,
    /// Reads everything.
    Leader,
    /// The township office's clerk (or, with a department, that department's clerk).
    Clerk,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Leader => "leader",
            Role::Clerk => "clerk",
        }
    }

    /// Parses a stored or typed name.
    pub fn parse(text: &str) -> Result<Self, AccountError> {
        match text {
            "admin" => Ok(Role::Admin),
            "leader" => Ok(Role::Leader),
            "clerk" => Ok(Role::Clerk),
            other => Err(AccountError::Invalid(
                Message::new("unknown_role").with("role", other),
            )),
        }
    }
}

/// Whom an account speaks for: the township (with a role) or one department (its clerk).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Township staff.
    Township(Role),
    /// A department's clerk: reads that department's view only.
    Department(String),
}

impl Scope {
    /// The scope of a stored account.
    pub fn of(row: &StaffRow) -> Result<Self, AccountError> {
        match &row.department {
            Some(d) => Ok(Scope::Department(d.clone())),
            None => Ok(Scope::Township(Role::parse(&row.role)?)),
        }
    }
}

/// Why a sign-in was refused. Unknown accounts, disabled accounts and wrong passwords
/// answer alike, so the form is no oracle of who has an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInRefusal {
    /// Wrong account or password.
    Wrong,
    /// Too many wrong passwords for this account (or from this address); retry after.
    Locked {
        /// Seconds until the next attempt may succeed.
        retry_after_secs: u64,
    },
}

fn storage_err(e: yibiao_sync::hub::StorageError) -> AccountError {
    AccountError::Storage(e.0)
}

/// An argon2id PHC string of `password` with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, AccountError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| AccountError::Storage(format!("no randomness: {e}")))?;
    let salt =
        SaltString::encode_b64(&salt).map_err(|e| AccountError::Storage(format!("salt: {e}")))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Storage(format!("password hash: {e}")))
}

/// True when `password` matches the PHC string `hash` (false for a damaged hash).
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A random password of 16 characters (about 92 bits), shown once.
pub fn generate_password() -> Result<String, AccountError> {
    let bytes = new_secret().map_err(|e| AccountError::Storage(format!("no randomness: {e}")))?;
    Ok(bytes
        .iter()
        .take(16)
        .map(|b| PASSWORD_ALPHABET[*b as usize % PASSWORD_ALPHABET.len()] as char)
        .collect())
}

/// Refuses passwords too short to resist guessing.
pub fn check_password(password: &str) -> Result<(), AccountError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AccountError::Invalid(
            Message::new("password_short").with("min", MIN_PASSWORD_CHARS.to_string()),
        ));
    }
    Ok(())
}

fn check_login(login: &str) -> Result<(), AccountError> {
    let ok = !login.is_empty()
        && login.len() <= 64
        && login
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(AccountError::Invalid(
            Message::new("login_format").with("login", login),
        ))
    }
}

/// A new staff account, checked against the schema (its department must exist).
pub struct NewStaff<'a> {
    /// Login name.
    pub login: &'a str,
    /// Name as people write it.
    pub name: &'a str,
    /// Whom it speaks for.
    pub scope: Scope,
    /// Its password (checked for length).
    pub password: &'a str,
}

/// Adds a staff account.
pub fn add(
    storage: &dyn StaffStorage,
    schema: &Schema,
    new: &NewStaff<'_>,
    now_ms: i64,
) -> Result<StaffRow, AccountError> {
    check_login(new.login)?;
    if new.name.trim().is_empty() {
        return Err(AccountError::Invalid(Message::new("name_empty")));
    }
    check_password(new.password)?;
    let (role, department) = match &new.scope {
        Scope::Township(role) => (*role, None),
        Scope::Department(d) => {
            if schema.department(d).is_none() {
                let known: Vec<&str> = schema.departments.keys().map(String::as_str).collect();
                return Err(AccountError::Invalid(
                    Message::new("unknown_department")
                        .with("department", d.as_str())
                        .with("known", known.join(", ")),
                ));
            }
            (Role::Clerk, Some(d.clone()))
        }
    };
    let row = StaffRow {
        login: new.login.to_owned(),
        name: new.name.trim().to_owned(),
        role: role.as_str().to_owned(),
        department,
        password_hash: hash_password(new.password)?,
        created_ms: now_ms,
        disabled_ms: None,
    };
    if !storage.add_staff(&row).map_err(storage_err)? {
        return Err(AccountError::Conflict(
            Message::new("login_taken").with("login", new.login),
        ));
    }
    Ok(row)
}

/// Disables an account and ends its sessions.
pub fn disable(storage: &dyn StaffStorage, login: &str, now_ms: i64) -> Result<(), AccountError> {
    if storage.disable_staff(login, now_ms).map_err(storage_err)? {
        Ok(())
    } else {
        Err(AccountError::NotFound(
            Message::new("no_enabled_staff").with("login", login),
        ))
    }
}

/// Sets a new password (an admin's reset): ends the account's sessions and lifts its lock.
pub fn reset_password(
    storage: &dyn StaffStorage,
    login: &str,
    password: &str,
) -> Result<(), AccountError> {
    check_password(password)?;
    if !storage
        .set_staff_password(login, &hash_password(password)?)
        .map_err(storage_err)?
    {
        return Err(AccountError::NotFound(
            Message::new("no_staff").with("login", login),
        ));
    }
    storage.clear_failed_logins(login).map_err(storage_err)
}

/// The user's own change: the current password must match.
pub fn change_password(
    storage: &dyn StaffStorage,
    login: &str,
    current: &str,
    new: &str,
) -> Result<(), AccountError> {
    let row = storage
        .staff(login)
        .map_err(storage_err)?
        .ok_or_else(|| AccountError::NotFound(Message::new("no_staff").with("login", login)))?;
    if !verify_password(&row.password_hash, current) {
        return Err(AccountError::Invalid(Message::new("password_wrong")));
    }
    reset_password(storage, login, new)
}

/// Checks a sign-in against the lockout rule and the password, and notes the attempt.
///
/// Locked when the account has `max_failed_logins` wrong passwords within
/// `lockout_secs`, or the address 4× as many (whatever the accounts); a locked attempt
/// checks no password and does not extend the lock.
pub fn sign_in(
    storage: &dyn StaffStorage,
    cfg: &ConsoleConfig,
    login: &str,
    password: &str,
    addr: &str,
    now_ms: i64,
) -> Result<Result<StaffRow, SignInRefusal>, AccountError> {
    let window_ms = (cfg.lockout_secs as i64).saturating_mul(1000);
    let failed = storage
        .failed_logins(login, addr, now_ms - window_ms)
        .map_err(storage_err)?;
    let until = |oldest: Option<i64>| {
        let ends = oldest.unwrap_or(now_ms) + window_ms;
        ((ends - now_ms).max(1000) as u64).div_ceil(1000)
    };
    let locked = if failed.login >= cfg.max_failed_logins {
        Some(until(failed.login_oldest_ms))
    } else if failed.addr >= cfg.max_failed_logins.saturating_mul(4) {
        Some(until(failed.addr_oldest_ms))
    } else {
        None
    };
    if let Some(retry_after_secs) = locked {
        storage
            .note_login(now_ms, addr, login, "locked")
            .map_err(storage_err)?;
        return Ok(Err(SignInRefusal::Locked { retry_after_secs }));
    }
    let row = storage.staff(login).map_err(storage_err)?;
    let ok = match &row {
        Some(r) => verify_password(&r.password_hash, password) && r.disabled_ms.is_none(),
        // Spend the same time on an unknown account as on a known one.
        None => {
            let _ = hash_password(password);
            false
        }
    };
    let outcome = if ok { "ok" } else { "wrong" };
    storage
        .note_login(now_ms, addr, login, outcome)
        .map_err(storage_err)?;
    match row {
        Some(r) if ok => Ok(Ok(r)),
        _ => Ok(Err(SignInRefusal::Wrong)),
    }
}

/// A new session for `login`: the cookie's id (shown once, to the browser) and the row
/// stored under its hash, with the session's CSRF token.
pub fn open_session(
    storage: &dyn StaffStorage,
    login: &str,
    now_ms: i64,
) -> Result<(String, SessionRow), AccountError> {
    let random = || {
        new_secret()
            .map(hex::encode)
            .map_err(|e| AccountError::Storage(format!("no randomness: {e}")))
    };
    let id = random()?;
    let row = SessionRow {
        id_hash: token_hash(&id),
        login: login.to_owned(),
        csrf: random()?,
        created_ms: now_ms,
        last_seen_ms: now_ms,
    };
    storage.add_session(&row).map_err(storage_err)?;
    Ok((id, row))
}

/// The live session with cookie id `id` and its enabled account, noting this request; a
/// session past its idle or absolute expiry is ended and answers `None`.
pub fn session(
    storage: &dyn StaffStorage,
    cfg: &ConsoleConfig,
    id: &str,
    now_ms: i64,
) -> Result<Option<(SessionRow, StaffRow)>, AccountError> {
    let hash = token_hash(id);
    let Some(s) = storage.session(&hash).map_err(storage_err)? else {
        return Ok(None);
    };
    let idle = now_ms - s.last_seen_ms > (cfg.session_idle_secs as i64) * 1000;
    let old = now_ms - s.created_ms > (cfg.session_max_secs as i64) * 1000;
    let staff = storage.staff(&s.login).map_err(storage_err)?;
    match staff {
        Some(staff) if !idle && !old && staff.disabled_ms.is_none() => {
            storage.touch_session(&hash, now_ms).map_err(storage_err)?;
            Ok(Some((s, staff)))
        }
        _ => {
            storage.end_session(&hash).map_err(storage_err)?;
            Ok(None)
        }
    }
}

/// Ends the session with cookie id `id`.
pub fn close_session(storage: &dyn StaffStorage, id: &str) -> Result<(), AccountError> {
    storage.end_session(&token_hash(id)).map_err(storage_err)
}

/// Writes one line of the audit log.
pub fn audit(
    storage: &dyn StaffStorage,
    now_ms: i64,
    who: &str,
    action: &str,
    target: &str,
    addr: &str,
) -> Result<(), AccountError> {
    storage
        .audit(&AuditRow {
            at_ms: now_ms,
            login: who.to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            addr: addr.to_owned(),
        })
        .map_err(storage_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_against_its_own_argon2id_hash_only() {
        let hash = hash_password("correct horse battery").expect("hash");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password(&hash, "correct horse battery"));
        assert!(!verify_password(&hash, "correct horse batterY"));
        assert!(!verify_password(
            "not a phc string",
            "correct horse battery"
        ));
        assert_ne!(hash, hash_password("correct horse battery").expect("hash"));
    }

    #[test]
    fn generated_passwords_are_long_enough_and_differ() {
        let a = generate_password().expect("random");
        assert!(check_password(&a).is_ok());
        assert_ne!(a, generate_password().expect("random"));
        assert!(check_password("short").is_err());
    }
}
