//! `yibiao-server summary|burden`: the reports of [`crate::tasks`], the same
//! `/v1/summary` and `/v1/burden` answer.

use std::path::PathBuf;

use yibiao_model::Schema;

use super::table::{self, Align, form_zh, local_time, print, village_zh};
use super::task::parse_issuer;
use super::{Paths, print_json};
use crate::accounts;
use crate::tasks::{self, Burden, Issuer, Summary, SummaryRow};

/// Options of `summary`.
#[derive(clap::Args)]
pub(crate) struct SummaryArgs {
    /// Whose view: `township` (everything) or a department key.
    #[arg(long, default_value = "township")]
    issuer: String,
    /// Print JSON (as `GET /v1/summary`) instead of a table.
    #[arg(long)]
    json: bool,
    /// Schema file [default: as for serve].
    #[arg(long, env = "YIBIAO_SCHEMA")]
    schema: Option<PathBuf>,
}

/// Options of `burden`.
#[derive(clap::Args)]
pub(crate) struct BurdenArgs {
    /// First day, YYYY-MM-DD in UTC+8 [default: the --to day].
    #[arg(long)]
    from: Option<String>,
    /// Last day (inclusive), YYYY-MM-DD in UTC+8 [default: today].
    #[arg(long)]
    to: Option<String>,
    /// Print JSON (as `GET /v1/burden`) instead of the report.
    #[arg(long)]
    json: bool,
    /// Schema file [default: as for serve].
    #[arg(long, env = "YIBIAO_SCHEMA")]
    schema: Option<PathBuf>,
}

impl SummaryArgs {
    pub(crate) fn run(self, paths: &Paths) -> Result<(), String> {
        let (storage, schema) = paths.open_with_schema(self.schema)?;
        let issuer = parse_issuer(&schema, &self.issuer)?;
        let s = tasks::summary(storage.as_ref(), &schema, &issuer, accounts::now_ms())
            .map_err(|e| e.to_string())?;
        if self.json {
            return print_json(&s);
        }
        print_summary(&schema, &issuer, &s);
        Ok(())
    }
}

impl BurdenArgs {
    pub(crate) fn run(self, paths: &Paths) -> Result<(), String> {
        let (storage, schema) = paths.open_with_schema(self.schema)?;
        let to = self.to.unwrap_or_else(|| tasks::today(accounts::now_ms()));
        let from = self.from.unwrap_or_else(|| to.clone());
        let b = tasks::burden(storage.as_ref(), &schema, &from, &to).map_err(|e| e.to_string())?;
        if self.json {
            return print_json(&b);
        }
        print_burden(&schema, &b);
        Ok(())
    }
}

fn print_summary(schema: &Schema, issuer: &Issuer, s: &Summary) {
    println!(
        "summary for {} at {} (records: complete/incomplete; tasks: villages by status)",
        issuer.name(),
        local_time(Some(s.generated_ms))
    );
    let line = |village: String, zh: String, r: &SummaryRow| {
        let t = &r.tasks;
        let mut row = vec![
            village,
            zh,
            r.form.clone(),
            form_zh(schema, &r.form).to_owned(),
        ];
        row.extend(
            [
                r.records_complete,
                r.records_incomplete,
                t.sent,
                t.delivered,
                t.opened,
                t.overdue,
                t.done,
                t.cancelled,
            ]
            .map(|n| n.to_string()),
        );
        row
    };
    let mut rows: Vec<Vec<String>> = s
        .rows
        .iter()
        .map(|r| {
            line(
                r.village.clone(),
                village_zh(schema, &r.village).to_owned(),
                r,
            )
        })
        .collect();
    rows.extend(
        s.totals
            .iter()
            .map(|r| line("total".into(), "合计".into(), r)),
    );
    let mut align = vec![Align::Left; 4];
    align.extend([Align::Right; 8]);
    print(&table::report(
        &[
            "village",
            "",
            "form",
            "",
            "complete",
            "incomplete",
            "sent",
            "delivered",
            "opened",
            "overdue",
            "done",
            "cancelled",
        ],
        rows,
        &align,
    ));
}

fn print_burden(schema: &Schema, b: &Burden) {
    let period = if b.from == b.to {
        b.from.clone()
    } else {
        format!("{} to {}", b.from, b.to)
    };
    println!("burden report for {period} (days in UTC+8)");
    println!();
    print(&totals_table(b));
    println!();
    println!("per department");
    let rows = b
        .departments
        .iter()
        .map(|d| {
            let zh = schema
                .department(&d.department)
                .map_or("", |x| x.labels.zh.as_str());
            vec![
                d.department.clone(),
                zh.to_owned(),
                d.deliveries.to_string(),
            ]
        })
        .collect();
    print(&table::report(
        &["department", "", "deliveries"],
        rows,
        &[Align::Left, Align::Left, Align::Right],
    ));
    println!();
    println!("per field");
    if b.fields.is_empty() {
        println!("  (nothing typed in this period)");
        return;
    }
    let rows = b
        .fields
        .iter()
        .map(|f| {
            let zh = schema.field(&f.field).map_or("", |x| x.labels.zh.as_str());
            vec![
                f.field.clone(),
                zh.to_owned(),
                f.typed.to_string(),
                f.records.to_string(),
                f.deliveries.to_string(),
            ]
        })
        .collect();
    print(&table::report(
        &["field", "", "typed", "records", "deliveries"],
        rows,
        &[
            Align::Left,
            Align::Left,
            Align::Right,
            Align::Right,
            Align::Right,
        ],
    ));
}

/// The four headline figures of the burden report, each with what it means.
fn totals_table(b: &Burden) -> Vec<String> {
    let figure = |name: &str, zh: &str, value: String, meaning: &str| {
        vec![name.to_owned(), zh.to_owned(), value, meaning.to_owned()]
    };
    let rows = vec![
        figure(
            "values typed",
            "录入次数",
            b.values_typed.to_string(),
            "field values cadres typed on phones",
        ),
        figure(
            "deliveries",
            "部门获取",
            b.deliveries.to_string(),
            "(record, field, department) copies those values reached",
        ),
        figure(
            "reuse ratio",
            "复用倍数",
            format!("{:.2}", b.reuse_ratio),
            "deliveries per value typed",
        ),
        figure(
            "entries saved",
            "少录次数",
            b.entries_saved.to_string(),
            "entries avoided had each department collected its own copy",
        ),
    ];
    table::rows_only(rows, &[Align::Left, Align::Left, Align::Right, Align::Left])
}
