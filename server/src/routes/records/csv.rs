//! `GET /v1/records.csv`: the department's records for Excel.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::value::RawValue;
use utoipa::IntoParams;
use yibiao_model::Schema;
use yibiao_model::schema::DepartmentDef;

use super::{filter, project, read_failed, stream};
use crate::auth::Department;
use crate::error::{ApiError, ErrorBody};
use crate::params::{Flag, Query};
use crate::state::AppState;
use crate::storage::StoredRecord;

/// Query of `GET /v1/records.csv`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CsvParams {
    /// Columns of this form (one the department reads).
    pub form: Option<String>,
    /// Only this entity type (must be one the department sees).
    pub entity: Option<String>,
    /// Only this village (must be one the department sees).
    pub village: Option<String>,
    /// Include tombstoned records.
    #[serde(default)]
    #[param(value_type = Option<bool>)]
    pub include_deleted: Flag,
}

/// Every record as CSV (UTF-8 with BOM for Excel), columns = the view's or the form's
/// fields, Chinese labels in the header.
#[utoipa::path(get, path = "/v1/records.csv", tag = "departments", security(("department" = [])),
    params(CsvParams),
    responses(
        (status = 200, description = "UTF-8 CSV with a BOM", body = String, content_type = "text/csv"),
        (status = 400, description = "a query parameter, named", body = ErrorBody),
        (status = 401, description = "no, unknown or revoked department token", body = ErrorBody),
        (status = 403, description = "a form, entity or village outside the view", body = ErrorBody),
        (status = 429, description = "too many requests for this token", body = ErrorBody),
    ))]
pub async fn csv(
    Department(dept): Department,
    State(state): State<AppState>,
    Query(mut q): Query<CsvParams>,
) -> Result<Response, ApiError> {
    let schema = state.hub.schema().clone();
    let columns = columns(&schema, &dept, &mut q)?;
    let f = filter(&schema, &dept, q.entity, q.village, q.include_deleted)?;
    let head = header_row(&schema, &columns)?;
    let body = stream(state, f, head, "csv", move |buf, r| {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(row(&columns, &dept, r)?)
            .map_err(read_failed)?;
        buf.extend(w.into_inner().map_err(read_failed)?);
        Ok(())
    });
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"yibiao.csv\"",
            ),
        ],
        body,
    )
        .into_response())
}

/// The field columns: the form's fields the department sees (the form also fixes the
/// entity), else every field of the view.
fn columns(
    schema: &Schema,
    dept: &DepartmentDef,
    q: &mut CsvParams,
) -> Result<Vec<String>, ApiError> {
    let Some(form_key) = &q.form else {
        return Ok(dept.fields.clone());
    };
    let form = schema
        .form(form_key)
        .ok_or_else(|| ApiError::query_parameter("form", format!("unknown form `{form_key}`")))?;
    if !dept.forms.contains(form_key) {
        return Err(ApiError::Forbidden(format!(
            "department `{}` does not read form `{form_key}`",
            dept.key
        )));
    }
    if q.entity.as_ref().is_some_and(|e| *e != form.entity) {
        return Err(ApiError::query_parameter(
            "entity",
            format!("form `{form_key}` is for `{}` records", form.entity),
        ));
    }
    q.entity = Some(form.entity.clone());
    Ok(form
        .fields
        .iter()
        .filter(|f| dept.sees_field(f))
        .cloned()
        .collect())
}

/// The BOM (so Excel reads UTF-8) and the header: fixed columns, then `label key` per field.
fn header_row(schema: &Schema, columns: &[String]) -> Result<Vec<u8>, ApiError> {
    let mut head = b"\xEF\xBB\xBF".to_vec();
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut names = vec![
        "记录ID id".to_owned(),
        "村 village".into(),
        "类型 entity".into(),
        "冲突 conflicts".into(),
    ];
    names.extend(columns.iter().map(|c| match schema.field(c) {
        Some(d) => format!("{} {c}", d.labels.zh),
        None => c.clone(),
    }));
    w.write_record(&names).map_err(read_failed)?;
    head.extend(w.into_inner().map_err(read_failed)?);
    Ok(head)
}

/// A JSON value as a cell: strings unquoted, anything else as its JSON text.
fn cell(raw: Option<&&RawValue>) -> String {
    match raw {
        None => String::new(),
        Some(v) => {
            let text = v.get();
            if text.starts_with('"') {
                serde_json::from_str::<String>(text).unwrap_or_default()
            } else {
                text.to_owned()
            }
        }
    }
}

/// One CSV row of the department's projection: id, village, entity, conflicted fields,
/// then `columns`.
fn row(
    columns: &[String],
    dept: &DepartmentDef,
    r: &StoredRecord,
) -> Result<Vec<String>, ApiError> {
    let p = project(dept, r, None)?;
    let conflicted: Vec<&str> = p.conflicts.keys().copied().collect();
    let mut row = vec![
        p.id,
        r.village.clone().unwrap_or_default(),
        r.entity.clone(),
        conflicted.join(";"),
    ];
    row.extend(columns.iter().map(|c| cell(p.values.get(c.as_str()))));
    Ok(row)
}
