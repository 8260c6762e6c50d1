//! `GET /v1/records.xlsx`, and the one XLSX writer of every export ([`Xlsx`]): the rows of
//! [`super::sheet::Sheet`] in a workbook Excel opens as the clerk expects, text columns
//! (ID and phone numbers) as text cells with the text number format, numbers as numbers,
//! a bold header of labels and a grey second header of keys, both frozen; attachments
//! as hyperlinks to the console's route for the file (up to Excel's [`MAX_LINKS`] per
//! sheet; text after that).
//!
//! The worksheet is written in rust_xlsxwriter's constant-memory mode (rows go to a
//! temporary file as they come), read from storage page by page, and capped at
//! [`MAX_ROWS`] records with a clear refusal that says how to narrow the export.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use rust_xlsxwriter::{Color, Format, Workbook, XlsxError};

use super::csv::{CsvParams, export_of, last_changes};
use super::sheet::{Cell, Sheet};
use super::{read_failed, stream_slot};
use crate::auth::DepartmentStream;
use crate::error::{ApiError, ErrorBody};
use crate::origin::Origin;
use crate::params::Query;
use crate::state::AppState;
use crate::storage::RecordFilter;

/// Most records in one XLSX export (Excel's own limit is 1,048,576 rows).
pub const MAX_ROWS: usize = 200_000;
const READ_PAGE: usize = 2000;

/// The content type of an XLSX file.
pub const XLSX_TYPE: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

fn xlsx_failed(e: XlsxError) -> ApiError {
    ApiError::internal("xlsx export failed", e)
}

/// One worksheet being written: two header rows, then data rows in order.
pub struct Xlsx {
    book: Workbook,
    text: Format,
    row: u32,
    /// Hyperlinks this sheet may still hold.
    links_left: usize,
}

/// Hyperlinks Excel keeps in one worksheet; past them a link is written as text
/// (`name <url>`, as in the CSV).
pub const MAX_LINKS: usize = 65_530;

impl Xlsx {
    /// A workbook of one sheet named `name`; `is_text(i)` says which columns hold text.
    pub fn new(
        name: &str,
        labels: &[String],
        keys: &[String],
        is_text: impl Fn(usize) -> bool,
    ) -> Result<Self, ApiError> {
        let mut book = Workbook::new();
        let text = Format::new().set_num_format("@");
        let bold = Format::new()
            .set_bold()
            .set_background_color(Color::RGB(0xE8EEF7));
        let grey = Format::new().set_italic().set_font_color(Color::Gray);
        let ws = book.add_worksheet_with_constant_memory();
        ws.set_name(name).map_err(xlsx_failed)?;
        for i in 0..labels.len() {
            let col = i as u16;
            ws.set_column_width(col, if i == 0 { 38 } else { 16 })
                .map_err(xlsx_failed)?;
            if is_text(i) {
                ws.set_column_format(col, &text).map_err(xlsx_failed)?;
            }
        }
        // Constant-memory mode writes a row once: every label, then every key.
        for (row, names, format) in [(0, labels, &bold), (1, keys, &grey)] {
            for (i, name) in names.iter().enumerate() {
                ws.write_string_with_format(row, i as u16, name, format)
                    .map_err(xlsx_failed)?;
            }
        }
        ws.set_freeze_panes(2, 1).map_err(xlsx_failed)?;
        Ok(Self {
            book,
            text,
            row: 2,
            links_left: MAX_LINKS,
        })
    }

    /// Appends one data row.
    pub fn push(&mut self, cells: Vec<Cell>) -> Result<(), ApiError> {
        let ws = self.book.worksheet_from_index(0).map_err(xlsx_failed)?;
        for (i, cell) in cells.into_iter().enumerate() {
            let col = i as u16;
            match cell {
                Cell::Text(t) if t.is_empty() => {}
                Cell::Text(t) => {
                    ws.write_string_with_format(self.row, col, t, &self.text)
                        .map_err(xlsx_failed)?;
                }
                Cell::Number(n) => {
                    ws.write_number(self.row, col, n).map_err(xlsx_failed)?;
                }
                Cell::Link { text, url } if self.links_left > 0 => {
                    ws.write_url_with_text(self.row, col, url.as_str(), text)
                        .map_err(xlsx_failed)?;
                    self.links_left -= 1;
                }
                link @ Cell::Link { .. } => {
                    ws.write_string_with_format(self.row, col, link.into_text(), &self.text)
                        .map_err(xlsx_failed)?;
                }
            }
        }
        self.row += 1;
        Ok(())
    }

    /// The file's bytes.
    pub fn finish(mut self) -> Result<Vec<u8>, ApiError> {
        self.book.save_to_buffer().map_err(xlsx_failed)
    }
}

/// The workbook of every record of `f`, labelled by `sheet`, read page by page; refused
/// past [`MAX_ROWS`].
pub fn records_xlsx(
    state: &AppState,
    sheet: &Sheet,
    f: &RecordFilter,
) -> Result<Vec<u8>, ApiError> {
    let name = if sheet.en() { "records" } else { "记录" };
    let mut out = Xlsx::new(name, &sheet.labels(), &sheet.keys(), |i| {
        sheet.is_text_column(i)
    })?;
    let (mut after, mut n) = (None, 0usize);
    loop {
        let page = state
            .storage
            .records_page(f, after, READ_PAGE)
            .map_err(read_failed)?;
        n += page.len();
        if n > MAX_ROWS {
            return Err(ApiError::TooLarge(format!(
                "more than {MAX_ROWS} records; narrow the export by `village`, `entity` or `form`"
            )));
        }
        let last = last_changes(state, &page)?;
        for r in &page {
            out.push(sheet.row(r, last.get(&r.id))?)?;
        }
        if page.len() < READ_PAGE {
            break;
        }
        after = page.last().map(|r| r.id);
    }
    state.metrics.served("xlsx", n as u64);
    out.finish()
}

/// An XLSX download answer.
pub fn xlsx_response(bytes: Vec<u8>, file: &str) -> Response {
    (
        [
            (header::CONTENT_TYPE, XLSX_TYPE.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        bytes,
    )
        .into_response()
}

/// Every record as an Excel workbook: the same columns and cells as the CSV, ID and phone
/// numbers as text, a header of labels (`lang`) over a header of keys; an attachment as
/// its file name, a hyperlink to the console's route for the file.
#[utoipa::path(get, path = "/v1/records.xlsx", tag = "departments", security(("department" = [])),
    params(CsvParams),
    responses(
        (status = 200, description = "an XLSX workbook", body = Vec<u8>, content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        (status = 400, description = "a query parameter, named", body = ErrorBody),
        (status = 401, description = "no, unknown or revoked department token", body = ErrorBody),
        (status = 403, description = "a form, entity or village outside the view", body = ErrorBody),
        (status = 413, description = "more records than one export holds; narrow it", body = ErrorBody),
        (status = 429, description = "too many requests or open exports for this token", body = ErrorBody),
        (status = 503, description = "the server has all its streams open", body = ErrorBody),
    ))]
pub async fn xlsx(
    DepartmentStream { dept, key }: DepartmentStream,
    State(state): State<AppState>,
    Origin(origin): Origin,
    Query(q): Query<CsvParams>,
) -> Result<Response, ApiError> {
    let (sheet, f) = export_of(&state, dept, q, origin)?;
    // The export holds a stream slot while it is built: exports are bounded like streams.
    let permit = stream_slot(&state, &key)?;
    let bytes = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        records_xlsx(&state, &sheet, &f)
    })
    .await??;
    Ok(xlsx_response(bytes, "yibiao.xlsx"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    fn part(bytes: &[u8], name: &str) -> String {
        use std::io::Read;
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let mut text = String::new();
        zip.by_name(name)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        text
    }

    #[test]
    fn links_past_what_excel_keeps_in_a_sheet_are_written_as_text() {
        let names = ["photo".to_owned()];
        let mut out = Xlsx::new("s", &names, &names, |_| true).unwrap();
        out.links_left = 1;
        for name in ["a.jpg", "b.jpg"] {
            out.push(vec![Cell::Link {
                text: name.into(),
                url: format!("http://h/records/r/attachments/{name}"),
            }])
            .unwrap();
        }
        let bytes = out.finish().unwrap();
        let sheet = part(&bytes, "xl/worksheets/sheet1.xml");
        assert_eq!(sheet.matches("<hyperlink ").count(), 1, "{sheet}");
        let rels = part(&bytes, "xl/worksheets/_rels/sheet1.xml.rels");
        assert!(rels.contains("Target=\"http://h/records/r/attachments/a.jpg\""));
        // Constant-memory mode writes strings inline.
        assert!(
            sheet.contains("b.jpg &lt;http://h/records/r/attachments/b.jpg&gt;"),
            "{sheet}"
        );
    }
}
