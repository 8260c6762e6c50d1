//! `GET /records.xlsx`: the records table's download button. The same workbook as the
//! department API's `GET /v1/records.xlsx` ([`crate::routes::records::xlsx`]) over the
//! signed-in user's view, narrowed by the table's entity, village and form.

use axum::extract::{Query, State};
use axum::response::Response;

use super::super::session::ConsoleUser;
use super::super::{PageError, blocking, view_of};
use super::records::TableQuery;
use crate::error::ApiError;
use crate::params::Flag;
use crate::routes::records::csv::{CsvParams, export_of};
use crate::routes::records::xlsx::{records_xlsx, xlsx_response};
use crate::state::AppState;

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
        let (sheet, f) = export_of(&state, view, params).map_err(page_error)?;
        let bytes = records_xlsx(&state, &sheet, &f).map_err(page_error)?;
        Ok(xlsx_response(bytes, "yibiao-records.xlsx"))
    })
    .await
}
