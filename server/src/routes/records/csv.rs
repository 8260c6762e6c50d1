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
use crate::auth::DepartmentStream;
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
        (status = 429, description = "too many requests or open streams for this token", body = ErrorBody),
        (status = 503, description = "the server has all its streams open", body = ErrorBody),
    ))]
pub async fn csv(
    DepartmentStream { dept, key }: DepartmentStream,
    State(state): State<AppState>,
    Query(mut q): Query<CsvParams>,
) -> Result<Response, ApiError> {
    let schema = state.hub.schema().clone();
    let columns = columns(&schema, &dept, &mut q)?;
    let f = filter(&schema, &dept, q.entity, q.village, q.include_deleted)?;
    let head = header_row(&schema, &columns)?;
    let permit = super::stream_slot(&state, &key)?;
    let body = stream(state, f, head, "csv", permit, move |buf, r| {
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
        // Without a form: the fields the department reads of the asked entity type, or of
        // every entity type it reads (each row shows only its own entity's fields).
        let mut columns: Vec<String> = Vec::new();
        for entity in &dept.entities {
            if q.entity.as_ref().is_none_or(|e| e == entity) {
                for f in dept.fields_of(entity) {
                    if !columns.contains(f) {
                        columns.push(f.clone());
                    }
                }
            }
        }
        return Ok(columns);
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
        .filter(|f| dept.sees_field(&form.entity, f))
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
        Some(d) => neutralise(format!("{} {c}", d.labels.zh)),
        None => c.clone(),
    }));
    w.write_record(&names).map_err(read_failed)?;
    head.extend(w.into_inner().map_err(read_failed)?);
    Ok(head)
}

/// A JSON value as a cell: strings unquoted, anything else as its JSON text, then
/// [`neutralise`]d.
fn cell(raw: Option<&&RawValue>) -> String {
    match raw {
        None => String::new(),
        Some(v) => {
            let text = v.get();
            if text.starts_with('"') {
                neutralise(serde_json::from_str::<String>(text).unwrap_or_default())
            } else {
                neutralise(text.to_owned())
            }
        }
    }
}

/// Defuses a cell a spreadsheet would run as a formula (OWASP "CSV injection"): a cell
/// beginning with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'`, so
/// Excel and LibreOffice show it as text.
///
/// A cell that is a plain number (`-12`, `-3.50`: an optional minus, digits, an optional
/// fraction) is left alone, whatever field it comes from: a spreadsheet reads it as a
/// number and runs nothing, and a quote would turn a negative income into text that no
/// sum counts. Anything else after a leading `-` (`-1+2`, `-cmd|...`) is quoted.
pub fn neutralise(cell: String) -> String {
    let risky = cell.starts_with(['=', '+', '-', '@', '\t', '\r']);
    if risky && !is_plain_number(&cell) {
        format!("'{cell}")
    } else {
        cell
    }
}

/// `-?[0-9]+(\.[0-9]+)?`
fn is_plain_number(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let (whole, fraction) = match digits.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (digits, None),
    };
    let all_digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    all_digits(whole) && fraction.is_none_or(all_digits)
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

#[cfg(test)]
mod tests {
    use super::neutralise;

    #[test]
    fn formula_cells_are_quoted_and_plain_numbers_are_not() {
        for risky in [
            "=HYPERLINK(\"http://x\",\"y\")",
            "+1+1",
            "-2+3",
            "-cmd|' /C calc'!A0",
            "@SUM(A1)",
            "\t=1",
            "\r=1",
            "-",
            "-1e5",
        ] {
            assert_eq!(
                neutralise(risky.to_owned()),
                format!("'{risky}"),
                "{risky:?}"
            );
        }
        for inert in ["", "阿木", "a=b", " =1", "12", "-12", "-3.50", "0.5", "'=1"] {
            assert_eq!(neutralise(inert.to_owned()), inert, "{inert:?}");
        }
    }
}
