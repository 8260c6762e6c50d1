//! Aligned terminal tables (comfy-table, which counts CJK characters as two columns) and
//! the small formats the reports share: UTC+8 times, `key 中文` labels.

use comfy_table::{CellAlignment, Table, presets};
use yibiao_model::Schema;

/// Columns a table's cells are aligned in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

/// Builds a borderless table: columns two spaces apart, the first row (when `header`)
/// printed as a plain line like the others.
fn build(
    header: Option<Vec<String>>,
    rows: Vec<Vec<String>>,
    align: &[Align],
    indent: u16,
) -> Table {
    let mut table = Table::new();
    table.load_preset(presets::NOTHING);
    if let Some(h) = header {
        table.set_header(h);
    }
    table.add_rows(rows);
    for (i, column) in table.column_iter_mut().enumerate() {
        column.set_padding((if i == 0 { indent } else { 2 }, 0));
        if align.get(i) == Some(&Align::Right) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
}

/// The table's lines, without trailing blanks.
fn lines(table: &Table) -> Vec<String> {
    if table.is_empty() && table.header().is_none() {
        return Vec::new();
    }
    table.lines().map(|l| l.trim_end().to_owned()).collect()
}

/// A report table: a header row, then `rows`, indented by two.
pub(crate) fn report(header: &[&str], rows: Vec<Vec<String>>, align: &[Align]) -> Vec<String> {
    let header = header.iter().map(|h| (*h).to_owned()).collect();
    lines(&build(Some(header), rows, align, 2))
}

/// Rows without a header, indented by two.
pub(crate) fn rows_only(rows: Vec<Vec<String>>, align: &[Align]) -> Vec<String> {
    lines(&build(None, rows, align, 2))
}

/// A listing: one line per row, no header, the first column (an id) at the margin, so
/// `grep ^id` and `wc -l` work.
pub(crate) fn listing(rows: Vec<Vec<String>>) -> Vec<String> {
    lines(&build(None, rows, &[], 0))
}

/// Prints lines.
pub(crate) fn print(lines: &[String]) {
    for l in lines {
        println!("{l}");
    }
}

/// `YYYY-MM-DD HH:MM` in UTC+8 (the township's time), `-` when absent.
pub(crate) fn local_time(ms: Option<i64>) -> String {
    ms.map(|ms| {
        yibiao_model::clock::local(ms)
            .format("%Y-%m-%d %H:%M")
            .to_string()
    })
    .unwrap_or_else(|| "-".into())
}

/// A village's Chinese name, or "".
pub(crate) fn village_zh<'a>(schema: &'a Schema, village: &str) -> &'a str {
    schema.villages.get(village).map_or("", |l| l.zh.as_str())
}

/// A form's Chinese name, or "".
pub(crate) fn form_zh<'a>(schema: &'a Schema, form: &str) -> &'a str {
    schema.form(form).map_or("", |f| f.labels.zh.as_str())
}

/// `key 中文` (or just the key when there is no label).
pub(crate) fn with_label(key: &str, zh: &str) -> String {
    if zh.is_empty() {
        key.to_owned()
    } else {
        format!("{key} {zh}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|c| (*c).to_owned()).collect()
    }

    #[test]
    fn chinese_text_counts_two_columns_per_character() {
        // 土匠村 is six columns wide: the header's empty cell above it is padded to six.
        let lines = report(
            &["village", "", "records"],
            vec![
                row(&["tujiang", "土匠村", "3/4"]),
                row(&["baru", "巴如村", "10/12"]),
            ],
            &[Align::Left, Align::Left, Align::Right],
        );
        assert_eq!(
            lines,
            [
                "  village          records",
                "  tujiang  土匠村      3/4",
                "  baru     巴如村    10/12",
            ]
        );
    }

    #[test]
    fn a_listing_starts_at_the_margin_and_is_empty_without_rows() {
        assert_eq!(
            listing(vec![row(&["id-1", "a", "x"]), row(&["id-22", "bb", "y"])]),
            ["id-1   a   x", "id-22  bb  y"]
        );
        assert!(listing(Vec::new()).is_empty());
    }

    #[test]
    fn times_are_shown_in_utc_plus_8() {
        assert_eq!(local_time(Some(0)), "1970-01-01 08:00");
        assert_eq!(local_time(None), "-");
    }
}
