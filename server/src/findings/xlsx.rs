//! The findings report (通报) as an XLSX workbook departments open in Excel or WPS: one
//! sheet per grouping (category, village, responsible unit) with the total as the last
//! row, headers in Chinese, labels from the schema (the report carries them). rust_xlsxwriter writes it in memory.

use rust_xlsxwriter::{Format, Workbook, XlsxError};
use yibiao_model::finding::report::{Counts, Report, Row};

/// The columns after the key, in order.
const HEADERS: [&str; 10] = [
    "发现",
    "已移交",
    "已处置",
    "按期处置",
    "逾期",
    "退回返工",
    "追责",
    "已结案",
    "平均处置时长（小时）",
    "按期处置率",
];

fn figures(c: &Counts) -> [f64; 8] {
    [
        c.found,
        c.handed_over,
        c.resolved,
        c.resolved_on_time,
        c.overdue,
        c.sent_back,
        c.held_to_account,
        c.closed,
    ]
    .map(f64::from)
}

fn sheet(
    book: &mut Workbook,
    name: &str,
    key_header: &str,
    rows: &[Row],
    total: &Counts,
) -> Result<(), XlsxError> {
    let bold = Format::new().set_bold();
    let ws = book.add_worksheet().set_name(name)?;
    ws.write_string_with_format(0, 0, key_header, &bold)?;
    ws.write_string_with_format(0, 1, "代码", &bold)?;
    for (i, h) in HEADERS.iter().enumerate() {
        ws.write_string_with_format(0, 2 + i as u16, *h, &bold)?;
    }
    let total_row = Row {
        key: "合计".into(),
        label_zh: "合计".into(),
        label_en: "Total".into(),
        counts: total.clone(),
    };
    for (r, row) in rows.iter().chain(std::iter::once(&total_row)).enumerate() {
        let r = 1 + r as u32;
        let is_total = r as usize == rows.len() + 1;
        ws.write_string(r, 0, &row.label_zh)?;
        ws.write_string(r, 1, if is_total { "" } else { &row.key })?;
        for (i, v) in figures(&row.counts).into_iter().enumerate() {
            ws.write_number(r, 2 + i as u16, v)?;
        }
        if let Some(ms) = row.counts.avg_resolve_ms {
            ws.write_number(r, 10, (ms as f64 / 360_000.0).round() / 10.0)?;
        }
        if row.counts.handed_over > 0 {
            let rate = f64::from(row.counts.resolved_on_time) / f64::from(row.counts.handed_over);
            ws.write_number_with_format(r, 11, rate, &Format::new().set_num_format("0%"))?;
        }
    }
    ws.set_column_width(0, 16)?;
    Ok(())
}

/// The workbook's bytes.
pub fn workbook(report: &Report) -> Result<Vec<u8>, XlsxError> {
    let mut book = Workbook::new();
    sheet(
        &mut book,
        "按类别",
        "类别",
        &report.by_category,
        &report.total,
    )?;
    sheet(&mut book, "按村", "村", &report.by_village, &report.total)?;
    sheet(
        &mut book,
        "按责任单位",
        "责任单位",
        &report.by_unit,
        &report.total,
    )?;
    book.save_to_buffer()
}
