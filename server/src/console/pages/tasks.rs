//! The task list with progress per village: what `GET /v1/tasks` answers the same
//! issuer (a department's clerk sees its department's tasks; township staff every task),
//! read through the same `tasks::list`, with the status rule of the model; and the two
//! task forms, issue and cancel, which call the same `tasks::issue` / `tasks::cancel` as
//! `POST /v1/tasks` and `DELETE /v1/tasks/{task}` (a leader reads only).

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use yibiao_model::messages::Lang as MsgLang;
use yibiao_model::task::TaskStatus;

use super::super::i18n::{Lang, Strings};
use super::super::session::{ConsoleUser, Posted};
use super::super::staff::{self, Role, Scope};
use super::super::{Layout, PageError, blocking, render, view_of};
use crate::state::AppState;
use crate::tasks::{self, Issuer, NewTask, TaskError};

/// One village of a task.
#[derive(Debug)]
pub struct VillageLine {
    village: String,
    status: &'static str,
    done: bool,
    overdue: bool,
    records: String,
}

/// One task.
#[derive(Debug)]
pub struct TaskLine {
    id: String,
    cancelled: bool,
    delivered: u32,
    opened: u32,
    overdue: u32,
    title: String,
    form: String,
    due: String,
    issuer: String,
    done: u32,
    total: usize,
    villages: Vec<VillageLine>,
}

#[derive(Template)]
#[template(path = "console/tasks.html")]
struct TasksPage {
    l: Layout,
    s: &'static Strings,
    tasks: Vec<TaskLine>,
    /// The issue form, for those who may issue.
    issue: Option<IssueForm>,
    /// What the last form did or why it was refused.
    notice: Option<String>,
    error: Option<String>,
}

/// The issue form: its choices and what was typed (kept when refused).
#[derive(Debug, Default)]
pub struct IssueForm {
    forms: Vec<(String, String)>,
    villages: Vec<(String, String, bool)>,
    title: String,
    form: String,
    due: String,
    instructions: String,
    records: String,
}

fn status_word(s: &'static Strings, status: TaskStatus) -> &'static str {
    match status {
        TaskStatus::Sent => s.task_sent,
        TaskStatus::Delivered => s.task_delivered,
        TaskStatus::Opened => s.task_opened,
        TaskStatus::Overdue => s.task_overdue,
        TaskStatus::Done => s.task_done,
        TaskStatus::Cancelled => s.task_cancelled,
    }
}

/// Whom `user` speaks for when reading or issuing tasks.
pub(super) fn issuer_of(
    user: &ConsoleUser,
    schema: &yibiao_model::Schema,
) -> Result<Issuer, PageError> {
    match &user.scope {
        Scope::Township(_) => Ok(Issuer::Township),
        Scope::Department(_) => Ok(Issuer::Department(
            view_of(schema, &user.scope).ok_or_else(|| {
                PageError::forbidden(
                    "本账号的部门不在当前表单定义中。",
                    "This account's department is not in the schema.",
                )
            })?,
        )),
    }
}

/// Everyone but a leader (who reads) may issue and cancel tasks.
fn may_issue(user: &ConsoleUser) -> bool {
    user.scope != Scope::Township(Role::Leader)
}

/// The rendered page; `typed` is the refused form to show again.
fn page(
    state: &AppState,
    user: &ConsoleUser,
    typed: Option<IssueForm>,
    notice: Option<String>,
    error: Option<String>,
) -> Result<Response, PageError> {
    let schema = state.hub.schema();
    let issuer = issuer_of(user, schema)?;
    let (s, en) = (user.lang.strings(), user.lang.en());
    let label = |v: Option<&str>| match v {
        Some(v) => schema
            .villages
            .get(v)
            .map_or_else(|| v.to_owned(), |l| l.get(en).to_owned()),
        None => s.township_level.to_owned(),
    };
    let list = tasks::list(
        state.storage.as_ref(),
        schema,
        &issuer,
        state.clock.now_ms(),
    )
    .map_err(|e| PageError::internal("tasks read", e))?;
    let tasks = list
        .into_iter()
        .map(|t| TaskLine {
            form: schema
                .form(&t.form)
                .map_or_else(|| t.form.clone(), |f| f.labels.get(en).to_owned()),
            issuer: schema
                .department(&t.issuer)
                .map_or_else(|| t.issuer.clone(), |d| d.labels.get(en).to_owned()),
            done: t.counts.done,
            delivered: t.villages.iter().filter(|v| v.delivered).count() as u32,
            opened: t.villages.iter().filter(|v| v.opened).count() as u32,
            overdue: t.counts.overdue,
            total: t.villages.len(),
            villages: t
                .villages
                .iter()
                .map(|v| VillageLine {
                    village: label(v.village.as_deref()),
                    status: status_word(s, v.status),
                    done: v.status == TaskStatus::Done,
                    overdue: v.status == TaskStatus::Overdue,
                    records: format!("{} / {}", v.records_complete, v.records_total),
                })
                .collect(),
            id: t.task,
            cancelled: t.cancelled,
            title: t.title,
            due: t.due,
        })
        .collect();
    let issue = may_issue(user).then(|| {
        let mut f = typed.unwrap_or_default();
        f.forms = schema
            .forms
            .iter()
            .filter(|(k, _)| match &issuer {
                Issuer::Township => true,
                Issuer::Department(d) => d.forms.contains(k),
            })
            .map(|(k, f)| (k.clone(), f.labels.get(en).to_owned()))
            .collect();
        let chosen: Vec<String> = f.villages.iter().map(|v| v.0.clone()).collect();
        f.villages = schema
            .villages
            .iter()
            .filter(|(k, _)| match &issuer {
                Issuer::Township => true,
                Issuer::Department(d) => d.sees_village(Some(k)),
            })
            .map(|(k, l)| (k.clone(), l.get(en).to_owned(), chosen.contains(k)))
            .collect();
        f
    });
    render(&TasksPage {
        l: Layout::of(user, schema, "/tasks"),
        s,
        tasks,
        issue,
        notice,
        error,
    })
}

/// `GET /tasks`.
pub async fn list(user: ConsoleUser, State(state): State<AppState>) -> Result<Response, PageError> {
    blocking(move || page(&state, &user, None, None, None)).await
}

/// A refused task operation, in the page's language: the structured reasons render in
/// it; the others are the core's English sentence after a Chinese lead.
pub fn task_error(lang: Lang, e: &TaskError) -> String {
    match (e, lang) {
        (TaskError::Refused(m) | TaskError::Denied(m), Lang::Zh) => m.render(MsgLang::Zh),
        (TaskError::Refused(m) | TaskError::Denied(m), Lang::En) => m.render(MsgLang::En),
        (e, Lang::Zh) => format!("未能完成：{e}"),
        (e, Lang::En) => format!("Not done: {e}"),
    }
}

/// `POST /tasks`: issue a task (fields `title`, `form`, `due`, `instructions`, `village`
/// repeated, or `records`: record ids separated by spaces, commas or lines).
pub async fn issue(
    State(state): State<AppState>,
    Posted { user, form }: Posted<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    if !may_issue(&user) {
        return Err(PageError::forbidden(
            "领导账号只能查看任务，不能下发或取消。",
            "A leader's account reads tasks; it cannot issue or cancel them.",
        ));
    }
    blocking(move || {
        let one = |k: &str| {
            form.iter()
                .find_map(|(n, v)| (n == k).then(|| v.trim().to_owned()))
                .unwrap_or_default()
        };
        let villages: Vec<String> = form
            .iter()
            .filter(|(n, _)| n == "village")
            .map(|(_, v)| v.clone())
            .collect();
        let records: Vec<String> = one("records")
            .split(|c: char| c.is_whitespace() || c == ',' || c == '，')
            .filter(|r| !r.is_empty())
            .map(str::to_owned)
            .collect();
        let typed = IssueForm {
            title: one("title"),
            form: one("form"),
            due: one("due"),
            instructions: one("instructions"),
            records: one("records"),
            villages: villages
                .iter()
                .map(|v| (v.clone(), String::new(), true))
                .collect(),
            forms: Vec::new(),
        };
        let req = NewTask {
            title: typed.title.clone(),
            instructions: typed.instructions.clone(),
            form: typed.form.clone(),
            due: typed.due.clone(),
            villages: (!villages.is_empty()).then_some(villages),
            records: (!records.is_empty()).then_some(records),
        };
        let schema = state.hub.schema();
        let issuer = issuer_of(&user, schema)?;
        let now = state.clock.now_ms();
        match tasks::issue(&state.hub, state.storage.as_ref(), &issuer, &req, now) {
            Ok(p) => {
                staff::audit(
                    state.storage.as_ref(),
                    now,
                    &user.staff.login,
                    "task_issue",
                    &p.task,
                    &user.addr,
                )?;
                let s = user.lang.strings();
                page(
                    &state,
                    &user,
                    None,
                    Some(format!("{}{}", s.task_issued, p.title)),
                    None,
                )
            }
            Err(TaskError::Storage(e)) => Err(PageError::internal("task issue", e)),
            Err(e) => page(
                &state,
                &user,
                Some(typed),
                None,
                Some(task_error(user.lang, &e)),
            ),
        }
    })
    .await
}

/// The cancel form.
#[derive(Debug, serde::Deserialize)]
pub struct CancelForm {
    task: String,
}

/// `POST /tasks/cancel`: cancel a task of the user's issuer.
pub async fn cancel(
    State(state): State<AppState>,
    Posted { user, form }: Posted<CancelForm>,
) -> Result<Response, PageError> {
    if !may_issue(&user) {
        return Err(PageError::forbidden(
            "领导账号只能查看任务，不能下发或取消。",
            "A leader's account reads tasks; it cannot issue or cancel them.",
        ));
    }
    blocking(move || {
        let issuer = issuer_of(&user, state.hub.schema())?;
        let now = state.clock.now_ms();
        match tasks::cancel(&state.hub, state.storage.as_ref(), &issuer, &form.task, now) {
            Ok(p) => {
                staff::audit(
                    state.storage.as_ref(),
                    now,
                    &user.staff.login,
                    "task_cancel",
                    &form.task,
                    &user.addr,
                )?;
                let s = user.lang.strings();
                page(
                    &state,
                    &user,
                    None,
                    Some(format!("{}{}", s.task_was_cancelled, p.title)),
                    None,
                )
            }
            Err(TaskError::Storage(e)) => Err(PageError::internal("task cancel", e)),
            Err(e) => page(&state, &user, None, None, Some(task_error(user.lang, &e))),
        }
    })
    .await
}
