//! The console's Excel downloads, each written by the one XLSX writer
//! ([`crate::routes::records::xlsx::Xlsx`]: bold labels over grey keys, text cells as
//! text, counts as numbers):
//! - `GET /records.xlsx`: the records table's button. The same workbook as the department
//!   API's `GET /v1/records.xlsx` over the signed-in user's view, narrowed by the table's
//!   entity, village and form (attachments linked to the console's route for each file);
//! - `GET /tasks.xlsx`: task progress, one row per task and village (`tasks::list`, as the
//!   task page);
//! - `GET /summary.xlsx`: the village x form summary with totals (`tasks::summary`, as
//!   `GET /v1/summary`).

use axum::extract::{Query, State};
use axum::response::Response;
use yibiao_model::{Schema, clock};

use super::super::i18n::Strings;
use super::super::session::ConsoleUser;
use super::super::staff::Scope;
use super::super::{PageError, blocking, view_of};
use super::records::TableQuery;
use crate::error::ApiError;
use crate::origin::Origin;
use crate::params::Flag;
use crate::routes::records::csv::{CsvParams, export_of};
use crate::routes::records::sheet::Cell;
use crate::routes::records::xlsx::Xlsx;
use crate::routes::records::xlsx::{records_xlsx, xlsx_response};
use crate::state::AppState;
use crate::tasks::{self, Issuer, Status, StatusCounts};

/// An export refusal as a console page.
pub fn page_error(e: ApiError) -> PageError {
    match e {
        ApiError::TooLarge(m) => {
            PageError::bad_form("记录太多，一次导不出；请先选一个村或一张表再导出。", &m)
        }
        ApiError::Forbidden(m) => PageError::forbidden("这不在本部门可查看的范围内。", &m),
        ApiError::BadRequest(m) => PageError::bad_form("没有这个类别、村或表。", &m),
        other => PageError::internal("export", other),
    }
}

/// `GET /records.xlsx`.
pub async fn records(
    user: ConsoleUser,
    State(state): State<AppState>,
    Origin(origin): Origin,
    Query(q): Query<TableQuery>,
) -> Result<Response, PageError> {
    blocking(move || {
        let schema = state.hub.schema();
        let view = view_of(schema, &user.scope).ok_or_else(|| {
            PageError::forbidden(
                "本账号的部门不在当前表单定义中。",
                "This account's department is not in the schema.",
            )
        })?;
        let some = |s: String| (!s.is_empty()).then_some(s);
        let params = CsvParams {
            entity: some(q.entity),
            village: some(q.village),
            form: some(q.form),
            include_deleted: Flag(false),
            lang: Some(if user.lang.en() { "en" } else { "zh" }.to_owned()),
        };
        let (sheet, f) = export_of(&state, view, params, origin).map_err(page_error)?;
        let bytes = records_xlsx(&state, &sheet, &f).map_err(page_error)?;
        Ok(xlsx_response(bytes, "yibiao-records.xlsx"))
    })
    .await
}

/// Whose tasks a user reads: a department clerk its department's, township staff all.
fn issuer_of(schema: &Schema, user: &ConsoleUser) -> Result<Issuer, PageError> {
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

/// The labels of `names` (zh, en) and their keys.
fn header(en: bool, names: &[(&str, &str, &str)]) -> (Vec<String>, Vec<String>) {
    names
        .iter()
        .map(|(zh, e, key)| ((if en { *e } else { *zh }).to_owned(), (*key).to_owned()))
        .unzip()
}

fn text(s: impl Into<String>) -> Cell {
    Cell::Text(s.into())
}

fn when(ms: Option<i64>) -> Cell {
    text(ms.map_or_else(String::new, |ms| {
        clock::local(ms).format("%Y-%m-%d %H:%M").to_string()
    }))
}

fn status_word(s: &Strings, status: Status) -> &'static str {
    match status {
        Status::Sent => s.task_sent,
        Status::Delivered => s.task_delivered,
        Status::Opened => s.task_opened,
        Status::Overdue => s.task_overdue,
        Status::Done => s.task_done,
        Status::Cancelled => s.task_cancelled,
    }
}

const TASK_COLUMNS: [(&str, &str, &str); 12] = [
    ("任务", "Task", "title"),
    ("表单", "Form", "form"),
    ("截止", "Due", "due"),
    ("发布方", "Issuer", "issuer"),
    ("村", "Village", "village"),
    ("状态", "Status", "status"),
    ("送达时间", "Delivered at", "delivered_at"),
    ("查看时间", "Opened at", "opened_at"),
    ("完成时间", "Done at", "done_at"),
    ("已填全记录", "Records complete", "records_complete"),
    ("记录数", "Records", "records_total"),
    ("备注", "Note", "note"),
];

/// `GET /tasks.xlsx`: the progress of the user's tasks, one row per task and village.
pub async fn tasks(
    user: ConsoleUser,
    State(state): State<AppState>,
) -> Result<Response, PageError> {
    blocking(move || {
        let schema = state.hub.schema();
        let issuer = issuer_of(schema, &user)?;
        let (s, en) = (user.lang.strings(), user.lang.en());
        let list = tasks::list(
            state.storage.as_ref(),
            schema,
            &issuer,
            state.clock.now_ms(),
        )
        .map_err(|e| PageError::internal("tasks read", e))?;
        let (labels, keys) = header(en, &TASK_COLUMNS);
        let mut out = Xlsx::new(if en { "tasks" } else { "任务" }, &labels, &keys, |i| {
            !(9..=10).contains(&i)
        })
        .map_err(page_error)?;
        for t in &list {
            let form = schema
                .form(&t.form)
                .map_or_else(|| t.form.clone(), |f| f.labels.get(en).to_owned());
            let issuer = schema
                .department(&t.issuer)
                .map_or_else(|| t.issuer.clone(), |d| d.labels.get(en).to_owned());
            for v in &t.villages {
                out.push(vec![
                    text(&t.title),
                    text(&form),
                    text(&t.due),
                    text(&issuer),
                    text(village_label(schema, v.village.as_deref(), s, en)),
                    text(status_word(s, v.status)),
                    when(v.delivered_ms),
                    when(v.opened_ms),
                    when(v.done_ms),
                    Cell::Number(f64::from(v.records_complete)),
                    Cell::Number(f64::from(v.records_total)),
                    text(v.note.clone().unwrap_or_default()),
                ])
                .map_err(page_error)?;
            }
        }
        Ok(xlsx_response(
            out.finish().map_err(page_error)?,
            "yibiao-tasks.xlsx",
        ))
    })
    .await
}

fn village_label(schema: &Schema, village: Option<&str>, s: &Strings, en: bool) -> String {
    match village {
        Some(v) => schema
            .villages
            .get(v)
            .map_or_else(|| v.to_owned(), |l| l.get(en).to_owned()),
        None => s.township_level.to_owned(),
    }
}

const SUMMARY_COLUMNS: [(&str, &str, &str); 10] = [
    ("村", "Village", "village"),
    ("表单", "Form", "form"),
    ("已填全记录", "Records complete", "records_complete"),
    ("未填全记录", "Records incomplete", "records_incomplete"),
    ("任务·未送达", "Tasks sent", "tasks_sent"),
    ("任务·已送达", "Tasks delivered", "tasks_delivered"),
    ("任务·已查看", "Tasks opened", "tasks_opened"),
    ("任务·已逾期", "Tasks overdue", "tasks_overdue"),
    ("任务·已完成", "Tasks done", "tasks_done"),
    ("任务·已取消", "Tasks cancelled", "tasks_cancelled"),
];

/// `GET /summary.xlsx`: the village x form summary, then the totals by form (村 = 合计).
pub async fn summary(
    user: ConsoleUser,
    State(state): State<AppState>,
) -> Result<Response, PageError> {
    blocking(move || {
        let schema = state.hub.schema();
        let issuer = issuer_of(schema, &user)?;
        let (s, en) = (user.lang.strings(), user.lang.en());
        let sum = tasks::summary(
            state.storage.as_ref(),
            schema,
            &issuer,
            state.clock.now_ms(),
        )
        .map_err(|e| PageError::internal("summary", e))?;
        let (labels, keys) = header(en, &SUMMARY_COLUMNS);
        let mut out = Xlsx::new(if en { "summary" } else { "汇总" }, &labels, &keys, |i| {
            i < 2
        })
        .map_err(page_error)?;
        let total = if en { "Total" } else { "合计" };
        let rows = sum.rows.iter().map(|r| (false, r));
        for (is_total, r) in rows.chain(sum.totals.iter().map(|r| (true, r))) {
            let village = if is_total {
                total.to_owned()
            } else {
                village_label(schema, Some(&r.village), s, en)
            };
            let form = schema
                .form(&r.form)
                .map_or_else(|| r.form.clone(), |f| f.labels.get(en).to_owned());
            let StatusCounts {
                sent,
                delivered,
                opened,
                overdue,
                done,
                cancelled,
            } = r.tasks;
            let mut row = vec![text(village), text(form)];
            row.extend(
                [
                    r.records_complete,
                    r.records_incomplete,
                    sent,
                    delivered,
                    opened,
                    overdue,
                    done,
                    cancelled,
                ]
                .map(|n| Cell::Number(f64::from(n))),
            );
            out.push(row).map_err(page_error)?;
        }
        Ok(xlsx_response(
            out.finish().map_err(page_error)?,
            "yibiao-summary.xlsx",
        ))
    })
    .await
}
