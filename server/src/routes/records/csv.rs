//! `GET /v1/records.csv`: the department's records for Excel.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use std::collections::HashMap;
use utoipa::IntoParams;

use yibiao_model::schema::DepartmentDef;
use yibiao_model::{RecordId, Schema};

use super::sheet::Sheet;
use super::{filter, read_failed, stream};
use crate::auth::DepartmentStream;
use crate::error::{ApiError, ErrorBody};
use crate::origin::Origin;
use crate::params::{Flag, Query};
use crate::state::AppState;
use crate::storage::{LastChange, RecordFilter, StoredRecord};

/// Query of `GET /v1/records.csv` and `GET /v1/records.xlsx`.
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
    /// Labels in `zh` (default) or `en`.
    #[param(value_type = Option<String>, pattern = "^(zh|en)$")]
    pub lang: Option<String>,
}

impl CsvParams {
    /// English labels asked.
    pub fn en(&self) -> Result<bool, ApiError> {
        match self.lang.as_deref() {
            None | Some("zh") => Ok(false),
            Some("en") => Ok(true),
            Some(other) => Err(ApiError::query_parameter(
                "lang",
                format!("expected `zh` or `en`, got `{other}`"),
            )),
        }
    }
}

/// What an export reads and how it labels it: the labelled projection and the filter;
/// attachment links lead to the console at `origin` ([`crate::origin`]).
pub fn export_of(
    state: &AppState,
    dept: DepartmentDef,
    mut q: CsvParams,
    origin: String,
) -> Result<(Sheet, RecordFilter), ApiError> {
    let en = q.en()?;
    let schema = state.hub.schema();
    let columns = columns(schema, &dept, &mut q)?;
    let f = filter(schema, &dept, q.entity, q.village, q.include_deleted)?;
    let cadres = state
        .storage
        .cadres()
        .map_err(read_failed)?
        .into_iter()
        .map(|c| (c.id, c.name))
        .collect();
    Ok((
        Sheet::new(schema.clone(), dept, columns, en, cadres, origin),
        f,
    ))
}

/// The last typed change of each record of a page.
pub fn last_changes(
    state: &AppState,
    page: &[StoredRecord],
) -> Result<HashMap<RecordId, LastChange>, ApiError> {
    let ids: Vec<RecordId> = page.iter().map(|r| r.id).collect();
    state.storage.last_changes(&ids).map_err(read_failed)
}

/// Every record as CSV (UTF-8 with BOM for Excel), columns = the view's or the form's
/// fields; the header says `label key`, cells as a person reads them ([`Sheet`]); an
/// attachment as `name <url>`, the url the console's route for the file.
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
    Origin(origin): Origin,
    Query(q): Query<CsvParams>,
) -> Result<Response, ApiError> {
    let (sheet, f) = export_of(&state, dept, q, origin)?;
    let head = header_row(&sheet)?;
    let permit = super::stream_slot(&state, &key)?;
    let st = state.clone();
    let body = stream(state, f, head, "csv", permit, move |buf, page| {
        let last = last_changes(&st, page)?;
        let mut w = csv::Writer::from_writer(Vec::new());
        for r in page {
            let row = sheet.row(r, last.get(&r.id))?;
            w.write_record(row.into_iter().map(|c| neutralise(c.into_text())))
                .map_err(read_failed)?;
        }
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

/// The BOM (so Excel reads UTF-8) and the header: `label key` per column.
fn header_row(sheet: &Sheet) -> Result<Vec<u8>, ApiError> {
    let mut head = b"\xEF\xBB\xBF".to_vec();
    let mut w = csv::Writer::from_writer(Vec::new());
    let names = sheet
        .labels()
        .into_iter()
        .zip(sheet.keys())
        .map(|(label, key)| neutralise(format!("{label} {key}")));
    w.write_record(names).map_err(read_failed)?;
    head.extend(w.into_inner().map_err(read_failed)?);
    Ok(head)
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
