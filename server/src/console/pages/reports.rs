//! The leader's reports: the village x form summary and the burden report, each a table
//! and a server-rendered SVG bar chart (no JavaScript), from the same `tasks::summary`
//! and `tasks::burden` as `/v1/summary`, `/v1/burden` and the CLI. Township leaders and
//! admins only.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::super::i18n::Strings;
use super::super::session::ConsoleUser;
use super::super::staff::{Role, Scope};
use super::super::{Layout, PageError, blocking, render};
use super::tasks::task_error;
use crate::state::AppState;
use crate::tasks::{self, Issuer, TaskError};

/// Width of a chart's bar area, in SVG units.
const BAR_AREA: u32 = 360;
/// Height of one bar row.
const ROW: u32 = 22;

/// One bar of a chart: its label, the figure printed beside it, its length, and the
/// length of the part drawn as "done" (equal to `len` in single-colour charts).
#[derive(Debug)]
pub struct Bar {
    label: String,
    figure: String,
    len: u32,
    done_len: u32,
    y: u32,
}

/// One chart: a title and bars, with its height.
#[derive(Debug)]
pub struct Chart {
    title: String,
    bars: Vec<Bar>,
    height: u32,
}

impl Chart {
    /// Bars scaled so the largest `total` fills the bar area.
    fn new(title: String, rows: Vec<(String, String, u64, u64)>) -> Self {
        let max = rows.iter().map(|r| r.2).max().unwrap_or(0).max(1);
        let scale = |v: u64| (v.min(max) * u64::from(BAR_AREA) / max) as u32;
        let bars: Vec<Bar> = rows
            .into_iter()
            .enumerate()
            .map(|(i, (label, figure, total, done))| Bar {
                label,
                figure,
                len: scale(total),
                done_len: scale(done),
                y: i as u32 * ROW,
            })
            .collect();
        Chart {
            title,
            height: bars.len() as u32 * ROW + 4,
            bars,
        }
    }
}

/// Township leaders and admins read the reports.
fn reader(user: &ConsoleUser) -> Result<(), PageError> {
    match user.scope {
        Scope::Township(Role::Leader | Role::Admin) => Ok(()),
        _ => Err(PageError::forbidden(
            "汇总和减负报告只对镇领导和管理员开放。",
            "The summary and burden reports are for township leaders and administrators.",
        )),
    }
}

/// One line of the summary matrix.
#[derive(Debug)]
pub struct MatrixRow {
    village: String,
    cells: Vec<String>,
}

#[derive(Template)]
#[template(path = "console/summary.html")]
struct SummaryPage {
    l: Layout,
    s: &'static Strings,
    forms: Vec<String>,
    rows: Vec<MatrixRow>,
    charts: Vec<Chart>,
}

/// `GET /reports/summary`: records complete per village and form, a chart per form.
pub async fn summary(
    user: ConsoleUser,
    State(state): State<AppState>,
) -> Result<Response, PageError> {
    reader(&user)?;
    blocking(move || {
        let schema = state.hub.schema();
        let (s, en) = (user.lang.strings(), user.lang.en());
        let sum = tasks::summary(
            state.storage.as_ref(),
            schema,
            &Issuer::Township,
            state.clock.now_ms(),
        )
        .map_err(|e| PageError::internal("summary", e))?;
        let village = |v: &str| {
            schema
                .villages
                .get(v)
                .map_or_else(|| v.to_owned(), |l| l.get(en).to_owned())
        };
        let form = |f: &str| {
            schema
                .form(f)
                .map_or_else(|| f.to_owned(), |d| d.labels.get(en).to_owned())
        };
        let form_keys: Vec<String> = sum.totals.iter().map(|t| t.form.clone()).collect();
        let mut rows: Vec<MatrixRow> = Vec::new();
        for r in &sum.rows {
            if rows
                .last()
                .is_none_or(|m: &MatrixRow| m.village != village(&r.village))
            {
                rows.push(MatrixRow {
                    village: village(&r.village),
                    cells: Vec::new(),
                });
            }
            if let Some(m) = rows.last_mut() {
                let total = r.records_complete + r.records_incomplete;
                m.cells.push(format!("{} / {total}", r.records_complete));
            }
        }
        let charts = form_keys
            .iter()
            .map(|f| {
                let bars = sum
                    .rows
                    .iter()
                    .filter(|r| &r.form == f)
                    .map(|r| {
                        let total = u64::from(r.records_complete + r.records_incomplete);
                        let done = u64::from(r.records_complete);
                        (
                            village(&r.village),
                            format!("{done} / {total}"),
                            total,
                            done,
                        )
                    })
                    .collect();
                Chart::new(form(f), bars)
            })
            .collect();
        render(&SummaryPage {
            l: Layout::of(&user, schema, "/reports/summary"),
            s,
            forms: form_keys.iter().map(|f| form(f)).collect(),
            rows,
            charts,
        })
    })
    .await
}

/// The burden report's period.
#[derive(Debug, Deserialize)]
pub struct Period {
    from: Option<String>,
    to: Option<String>,
}

#[derive(Template)]
#[template(path = "console/burden.html")]
struct BurdenPage {
    l: Layout,
    s: &'static Strings,
    from: String,
    to: String,
    error: Option<String>,
    typed: u64,
    deliveries: u64,
    ratio: String,
    saved: i64,
    overall: Option<Chart>,
    departments: Option<Chart>,
    fields: Vec<(String, u64, u64, u64)>,
}

/// `GET /reports/burden?from=&to=`: values typed vs deliveries, per department and field
/// (default: the 30 days to today).
pub async fn burden(
    user: ConsoleUser,
    State(state): State<AppState>,
    Query(p): Query<Period>,
) -> Result<Response, PageError> {
    reader(&user)?;
    blocking(move || {
        let schema = state.hub.schema();
        let (s, en) = (user.lang.strings(), user.lang.en());
        let now = state.clock.now_ms();
        let to =
            p.to.filter(|t| !t.trim().is_empty())
                .unwrap_or_else(|| tasks::today(now));
        let from = p
            .from
            .filter(|f| !f.trim().is_empty())
            .unwrap_or_else(|| tasks::today(now - 29 * 24 * 3600 * 1000));
        let mut page = BurdenPage {
            l: Layout::of(&user, schema, "/reports/burden"),
            s,
            from: from.clone(),
            to: to.clone(),
            error: None,
            typed: 0,
            deliveries: 0,
            ratio: "0".into(),
            saved: 0,
            overall: None,
            departments: None,
            fields: Vec::new(),
        };
        match tasks::burden(state.storage.as_ref(), schema, &from, &to) {
            Ok(b) => {
                let dept = |d: &str| {
                    schema
                        .department(d)
                        .map_or_else(|| d.to_owned(), |d| d.labels.get(en).to_owned())
                };
                page.overall = Some(Chart::new(
                    s.burden_overall.to_owned(),
                    vec![
                        (
                            s.values_typed.to_owned(),
                            b.values_typed.to_string(),
                            b.values_typed,
                            b.values_typed,
                        ),
                        (
                            s.deliveries.to_owned(),
                            b.deliveries.to_string(),
                            b.deliveries,
                            b.deliveries,
                        ),
                    ],
                ));
                page.departments = Some(Chart::new(
                    s.deliveries_by_department.to_owned(),
                    b.departments
                        .iter()
                        .map(|d| {
                            (
                                dept(&d.department),
                                d.deliveries.to_string(),
                                d.deliveries,
                                d.deliveries,
                            )
                        })
                        .collect(),
                ));
                page.fields = b
                    .fields
                    .iter()
                    .map(|f| {
                        (
                            field_label(schema, &f.field, en),
                            f.typed,
                            f.records,
                            f.deliveries,
                        )
                    })
                    .collect();
                page.typed = b.values_typed;
                page.deliveries = b.deliveries;
                page.ratio = format!("{:.2}", b.reuse_ratio);
                page.saved = b.entries_saved;
            }
            Err(TaskError::Storage(e)) => return Err(PageError::internal("burden", e)),
            Err(e) => page.error = Some(task_error(user.lang, &e)),
        }
        render(&page)
    })
    .await
}

/// A field's label from the dictionary.
fn field_label(schema: &yibiao_model::Schema, field: &str, en: bool) -> String {
    schema
        .fields
        .get(field)
        .map_or_else(|| field.to_owned(), |f| f.labels.get(en).to_owned())
}

#[cfg(test)]
mod tests {
    use super::{BAR_AREA, Chart, ROW};

    #[test]
    fn bars_scale_to_the_largest_total_and_an_empty_chart_draws_nothing() {
        let c = Chart::new(
            "t".into(),
            vec![
                ("a".into(), "3 / 4".into(), 4, 3),
                ("b".into(), "0 / 2".into(), 2, 0),
                ("c".into(), "0 / 0".into(), 0, 0),
            ],
        );
        let lens: Vec<(u32, u32)> = c.bars.iter().map(|b| (b.len, b.done_len)).collect();
        assert_eq!(
            lens,
            [(BAR_AREA, BAR_AREA * 3 / 4), (BAR_AREA / 2, 0), (0, 0)]
        );
        assert_eq!(c.bars[2].y, 2 * ROW);
        assert!(Chart::new("e".into(), Vec::new()).bars.is_empty());
    }
}
