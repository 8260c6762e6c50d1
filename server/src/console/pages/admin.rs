//! Township admin pages: staff accounts (add with a generated password shown once,
//! disable, and a password reset that shows the new password once) and the console
//! audit log. Only [`ConsoleAdmin`] reaches them.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use serde::Deserialize;
use yibiao_model::clock;

use super::super::i18n::Strings;
use super::super::session::{ConsoleAdmin, Posted};
use super::super::staff::{self, Role, Scope};
use super::super::{Layout, PageError, blocking, render};
use crate::state::AppState;

/// One account as listed.
#[derive(Debug)]
pub struct StaffLine {
    login: String,
    name: String,
    role: String,
    disabled: bool,
}

/// One audit line as listed.
#[derive(Debug)]
pub struct AuditLine {
    at: String,
    login: String,
    action: String,
    target: String,
    addr: String,
}

#[derive(Template)]
#[template(path = "console/staff.html")]
struct StaffPage {
    l: Layout,
    s: &'static Strings,
    staff: Vec<StaffLine>,
    audit: Vec<AuditLine>,
    reset: Option<(String, String)>,
    /// What the add form offers: `admin`, `leader`, `clerk`, `dept:<key>`, with words.
    roles: Vec<(String, String)>,
    /// The last form's outcome.
    notice: Option<String>,
    error: Option<String>,
}

fn staff_page(
    state: &AppState,
    admin: &ConsoleAdmin,
    reset: Option<(String, String)>,
) -> Result<StaffPage, PageError> {
    staff_page_with(state, admin, reset, None, None)
}

fn staff_page_with(
    state: &AppState,
    admin: &ConsoleAdmin,
    reset: Option<(String, String)>,
    notice: Option<String>,
    error: Option<String>,
) -> Result<StaffPage, PageError> {
    let user = &admin.0;
    let (s, en) = (user.lang.strings(), user.lang.en());
    let schema = state.hub.schema();
    let storage = state.storage.as_ref();
    let err = |e| PageError::internal("staff read", e);
    let staff = storage
        .staff_list()
        .map_err(err)?
        .into_iter()
        .map(|r| StaffLine {
            role: match Scope::of(&r) {
                Ok(Scope::Department(d)) => schema
                    .department(&d)
                    .map_or(d.clone(), |d| d.labels.get(en).to_owned()),
                Ok(Scope::Township(Role::Admin)) => s.role_admin.into(),
                Ok(Scope::Township(Role::Leader)) => s.role_leader.into(),
                Ok(Scope::Township(Role::Clerk)) | Err(_) => s.role_clerk.into(),
            },
            disabled: r.disabled_ms.is_some(),
            login: r.login,
            name: r.name,
        })
        .collect();
    let audit = storage
        .audit_log(100)
        .map_err(err)?
        .into_iter()
        .map(|a| AuditLine {
            at: clock::local(a.at_ms)
                .format("%Y-%m-%d %H:%M:%S")
                .to_string(),
            login: a.login,
            action: a.action,
            target: a.target,
            addr: a.addr,
        })
        .collect();
    Ok(StaffPage {
        l: Layout::of(user, schema, "/admin/staff"),
        s,
        staff,
        audit,
        reset,
        roles: [
            ("admin", s.role_admin),
            ("leader", s.role_leader),
            ("clerk", s.role_clerk),
        ]
        .into_iter()
        .map(|(k, w)| (k.to_owned(), w.to_owned()))
        .chain(
            schema
                .departments
                .iter()
                .map(|(k, d)| (format!("dept:{k}"), d.labels.get(en).to_owned())),
        )
        .collect(),
        notice,
        error,
    })
}

/// `GET /admin/staff`.
pub async fn staff(
    admin: ConsoleAdmin,
    State(state): State<AppState>,
) -> Result<Response, PageError> {
    blocking(move || render(&staff_page(&state, &admin, None)?)).await
}

/// The reset form.
#[derive(Debug, Deserialize)]
pub struct ResetForm {
    login: String,
}

/// `POST /admin/staff/reset`: a generated password, shown once on the page.
pub async fn reset(
    State(state): State<AppState>,
    Posted { user, form }: Posted<ResetForm>,
) -> Result<Response, PageError> {
    let admin = ConsoleAdmin::check(user)?;
    blocking(move || {
        let storage = state.storage.as_ref();
        let password = staff::generate_password()?;
        staff::reset_password(storage, &form.login, &password)?;
        let u = &admin.0;
        staff::audit(
            storage,
            state.clock.now_ms(),
            &u.staff.login,
            "password_reset",
            &form.login,
            &u.addr,
        )?;
        render(&staff_page(&state, &admin, Some((form.login, password)))?)
    })
    .await
}

/// The add-account form: `role` is `admin`, `leader`, `clerk` or `dept:<department>`.
#[derive(Debug, Deserialize)]
pub struct AddForm {
    login: String,
    name: String,
    role: String,
}

/// What a refused account form shows; storage failures stay 500s.
fn refusal(admin: &ConsoleAdmin, e: crate::accounts::AccountError) -> Result<String, PageError> {
    use crate::accounts::AccountError as A;
    match e {
        A::Storage(m) => Err(PageError::internal("staff storage", m)),
        other => Ok(crate::console::refusal_sentence(admin.0.lang, &other)),
    }
}

/// `POST /admin/staff/add`: a new account with a generated password, shown once.
pub async fn add(
    State(state): State<AppState>,
    Posted { user, form }: Posted<AddForm>,
) -> Result<Response, PageError> {
    let admin = ConsoleAdmin::check(user)?;
    blocking(move || {
        let storage = state.storage.as_ref();
        let now = state.clock.now_ms();
        let scope = match form.role.strip_prefix("dept:") {
            Some(d) => Ok(Scope::Department(d.to_owned())),
            None => Role::parse(&form.role).map(Scope::Township),
        };
        let password = staff::generate_password()?;
        let added = scope.and_then(|scope| {
            let new = staff::NewStaff {
                login: form.login.trim(),
                name: &form.name,
                scope,
                password: &password,
            };
            staff::add(storage, state.hub.schema(), &new, now)
        });
        let page = match added {
            Ok(row) => {
                let u = &admin.0;
                staff::audit(
                    storage,
                    now,
                    &u.staff.login,
                    "staff_add",
                    &row.login,
                    &u.addr,
                )?;
                let s = u.lang.strings();
                staff_page_with(
                    &state,
                    &admin,
                    Some((row.login, password)),
                    Some(s.staff_added.to_owned()),
                    None,
                )?
            }
            Err(e) => staff_page_with(&state, &admin, None, None, Some(refusal(&admin, e)?))?,
        };
        render(&page)
    })
    .await
}

/// `POST /admin/staff/disable`: the account's sessions end at once.
pub async fn disable(
    State(state): State<AppState>,
    Posted { user, form }: Posted<ResetForm>,
) -> Result<Response, PageError> {
    let admin = ConsoleAdmin::check(user)?;
    blocking(move || {
        let storage = state.storage.as_ref();
        let now = state.clock.now_ms();
        let u = &admin.0;
        let page = if form.login == u.staff.login {
            let e = crate::accounts::AccountError::Invalid(yibiao_model::messages::Message::new(
                "disable_self",
            ));
            staff_page_with(&state, &admin, None, None, Some(refusal(&admin, e)?))?
        } else {
            match staff::disable(storage, &form.login, now) {
                Ok(()) => {
                    staff::audit(
                        storage,
                        now,
                        &u.staff.login,
                        "staff_disable",
                        &form.login,
                        &u.addr,
                    )?;
                    let s = u.lang.strings();
                    staff_page_with(
                        &state,
                        &admin,
                        None,
                        Some(format!("{}{}", s.staff_disabled, form.login)),
                        None,
                    )?
                }
                Err(e) => staff_page_with(&state, &admin, None, None, Some(refusal(&admin, e)?))?,
            }
        };
        render(&page)
    })
    .await
}
