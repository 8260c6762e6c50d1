//! `yibiao-server findings report`: the findings report (通报) of a period, the same
//! figures `/v1/findings/report` answers, as a table, JSON, or an XLSX file.

use std::path::PathBuf;

use yibiao_model::finding::report::{Counts, Report, Row};

use super::table::{self, Align, print};
use super::{Paths, print_json};
use crate::{accounts, findings, tasks};

/// What to do with findings.
#[derive(clap::Subcommand)]
pub(crate) enum FindingsAction {
    /// Print the report of the findings recorded in a period: per category, village and
    /// responsible unit; handed over, resolved on time, overdue, sent back, held to
    /// account, average hours to resolve.
    Report(ReportArgs),
}

/// Options of `findings report`.
#[derive(clap::Args)]
pub(crate) struct ReportArgs {
    /// First day, YYYY-MM-DD in UTC+8 [default: six days before --to].
    #[arg(long)]
    from: Option<String>,
    /// Last day (inclusive) [default: today].
    #[arg(long)]
    to: Option<String>,
    /// Print JSON (as `GET /v1/findings/report`) instead of tables.
    #[arg(long)]
    json: bool,
    /// Also write the report as an XLSX workbook to this file.
    #[arg(long, value_name = "FILE")]
    xlsx: Option<PathBuf>,
    /// Schema file [default: as for serve].
    #[arg(long, env = "YIBIAO_SCHEMA")]
    schema: Option<PathBuf>,
}

impl FindingsAction {
    pub(crate) fn run(self, paths: &Paths) -> Result<(), String> {
        match self {
            FindingsAction::Report(args) => args.run(paths),
        }
    }
}

impl ReportArgs {
    fn run(self, paths: &Paths) -> Result<(), String> {
        let (storage, schema) = paths.open_with_schema(self.schema)?;
        let now = accounts::now_ms();
        let to = self.to.unwrap_or_else(|| tasks::today(now));
        let from = match self.from {
            Some(f) => f,
            None => yibiao_model::clock::parse_day(&to)
                .map(|d| (d - chrono::Days::new(6)).format("%Y-%m-%d").to_string())
                .unwrap_or_else(|| to.clone()),
        };
        let r = findings::report(storage.as_ref(), &schema, &from, &to, now)
            .map_err(|e| e.to_string())?;
        if let Some(file) = &self.xlsx {
            let bytes = findings::xlsx::workbook(&r).map_err(|e| e.to_string())?;
            std::fs::write(file, bytes)
                .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        }
        if self.json {
            return print_json(&r);
        }
        print_report(&from, &to, &r);
        Ok(())
    }
}

const HEADER: [&str; 10] = [
    "",
    "found",
    "handed",
    "resolved",
    "on time",
    "overdue",
    "sent back",
    "held",
    "closed",
    "avg h",
];

/// A row's name: the schema's Chinese label, with the key when they differ.
fn label(key: &str, zh: &str) -> String {
    if key == zh {
        key.to_owned()
    } else {
        format!("{zh} ({key})")
    }
}

fn cells(key: &str, c: &Counts) -> Vec<String> {
    let mut row = vec![key.to_owned()];
    row.extend(
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
        .map(|n| n.to_string()),
    );
    row.push(
        c.avg_resolve_ms
            .map_or("-".into(), |ms| format!("{:.1}", ms as f64 / 3.6e6)),
    );
    row
}

fn print_report(from: &str, to: &str, r: &Report) {
    println!("findings report {from} .. {to} (days in UTC+8)");
    let mut align = vec![Align::Left];
    align.extend([Align::Right; 9]);
    for (title, rows) in [
        ("by category", &r.by_category),
        ("by village", &r.by_village),
        ("by responsible unit", &r.by_unit),
    ] {
        println!();
        println!("{title}");
        let mut lines: Vec<Vec<String>> = rows
            .iter()
            .map(
                |Row {
                     key,
                     label_zh,
                     counts,
                     ..
                 }| cells(&label(key, label_zh), counts),
            )
            .collect();
        lines.push(cells("total", &r.total));
        print(&table::report(&HEADER, lines, &align));
    }
}
