//! The task list with progress per village: what `GET /v1/tasks` answers the same
//! issuer (a department's clerk sees its department's tasks; township staff every task),
//! read through the same `tasks::list`, with the status rule of the model.

use askama::Template;
use axum::extract::State;
use axum::response::Response;
use yibiao_model::task::TaskStatus;

use super::super::i18n::Strings;
use super::super::session::ConsoleUser;
use super::super::staff::Scope;
use super::super::{Layout, PageError, blocking, render, view_of};
use crate::state::AppState;
use crate::tasks::{self, Issuer};

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

/// `GET /tasks`.
pub async fn list(user: ConsoleUser, State(state): State<AppState>) -> Result<Response, PageError> {
    blocking(move || {
        let schema = state.hub.schema();
        let issuer = match &user.scope {
            Scope::Township(_) => Issuer::Township,
            Scope::Department(_) => {
                Issuer::Department(view_of(schema, &user.scope).ok_or_else(|| {
                    PageError::forbidden(
                        "本账号的部门不在当前表单定义中。",
                        "This account's department is not in the schema.",
                    )
                })?)
            }
        };
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
                title: t.title,
                due: t.due,
            })
            .collect();
        render(&TasksPage {
            l: Layout::of(&user, schema, "/tasks"),
            s,
            tasks,
        })
    })
    .await
}
