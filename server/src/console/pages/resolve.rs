//! `POST /records/{id}/resolve`: the township office settles a conflict from the record
//! page, choosing one of the competing values or typing a new one.
//!
//! Only township admins and clerks may (department clerks read their view, leaders read
//! everything, neither writes). The value is parsed and validated by the schema exactly
//! as a phone's (`Schema::parse_json`), so the page says what is wrong in the clerk's
//! language. The resolution is an ordinary automerge change written by the hub on the
//! stored document under its write lock (`Hub::update_server_docs`, as cancelling a task
//! is), authored `staff.<login>` on device `console`: it enters the feed, reaches phones
//! on their next sync, supersedes every competing value, and the record's history shows it
//! as resolved by that staff member. Every resolution is in the audit log.

use std::str::FromStr;

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use yibiao_model::messages::Lang;
use yibiao_model::{Author, CadreId, DeviceId, RecordId};

use super::super::session::{ConsoleUser, Posted};
use super::super::staff::{self, Role, Scope};
use super::super::{PageError, blocking};
use crate::state::AppState;

/// The resolve form: the field, the chosen competing value (its JSON) or `new`, and the
/// new value typed.
#[derive(Debug, Deserialize)]
pub struct ResolveForm {
    field: String,
    pick: String,
    #[serde(default)]
    other: String,
}

/// True for the accounts that may resolve conflicts: the township office.
pub fn may_resolve(user: &ConsoleUser) -> bool {
    matches!(
        user.scope,
        Scope::Township(Role::Admin) | Scope::Township(Role::Clerk)
    )
}

/// The author of a console resolution.
pub fn staff_author(login: &str) -> Result<Author, PageError> {
    let bad = |e: yibiao_model::BadId| PageError::internal("staff author", e);
    Ok(Author {
        cadre: CadreId::new(format!("staff.{login}")).map_err(bad)?,
        device: DeviceId::new("console").map_err(bad)?,
    })
}

/// `POST /records/{id}/resolve`.
pub async fn resolve(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted { user, form }: Posted<ResolveForm>,
) -> Result<Response, PageError> {
    if !may_resolve(&user) {
        return Err(PageError::forbidden(
            "只有乡镇办公室（管理员、办事员）可以处理冲突。",
            "Only the township office (administrators and clerks) resolves conflicts.",
        ));
    }
    let not_found = || PageError::not_found("没有这条记录。", "No such record.");
    let id = RecordId::from_str(&id).map_err(|_| not_found())?;
    blocking(move || {
        let schema = state.hub.schema().clone();
        let stored = state
            .storage
            .stored_records(&[id])
            .map_err(|e| PageError::internal("record read", e))?;
        let rec = stored.first().ok_or_else(not_found)?;
        let json = if form.pick == "new" {
            serde_json::Value::String(form.other.clone())
        } else {
            serde_json::from_str(&form.pick)
                .map_err(|_| PageError::bad_form("请选择一个值。", "Choose a value."))?
        };
        let value = schema
            .parse_json(&rec.entity, &form.field, &json)
            .map_err(|e| PageError::bad_form(&e.render(Lang::Zh), &e.render(Lang::En)))?;
        let author = staff_author(&user.staff.login)?;
        let now = state.clock.now_ms();
        let mut settled = false;
        state
            .hub
            .update_server_docs(&[id], |record| {
                if !record.conflicted_fields().contains(&form.field) {
                    return Ok(false);
                }
                record.resolve(&form.field, Some(&value), &author, now)?;
                settled = true;
                Ok(true)
            })
            .map_err(|e| PageError::internal("resolve", e))?;
        if !settled {
            return Err(PageError::bad_form(
                "这个字段已经没有冲突（可能已被处理），请刷新页面。",
                "This field has no conflict any more (it may have been resolved); reload the page.",
            ));
        }
        staff::audit(
            state.storage.as_ref(),
            now,
            &user.staff.login,
            "conflict_resolved",
            &format!("{id} {}", form.field),
            &user.addr,
        )?;
        tracing::info!(record = %id, field = %form.field, staff = %user.staff.login, "conflict resolved from the console");
        Ok(Redirect::to(&format!("/records/{id}")).into_response())
    })
    .await
}
