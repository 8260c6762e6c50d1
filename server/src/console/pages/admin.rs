//! Township admin pages: staff accounts (with a password reset that shows the new
//! password once) and the console audit log. Only [`ConsoleAdmin`] reaches them.

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
}

fn staff_page(
    state: &AppState,
    admin: &ConsoleAdmin,
    reset: Option<(String, String)>,
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
