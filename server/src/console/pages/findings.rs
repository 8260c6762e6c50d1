//! The findings pages (issue 15, ADR 0012): the report (通报) of a period, printable, and
//! the list of findings with their state. Township staff (admin, leader, clerk) only;
//! the figures come from the same `findings::report` as `/v1/findings/report`, the XLSX
//! and the CLI.

use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;
use yibiao_model::finding::report::{Counts, Row};

use super::super::session::ConsoleUser;
use super::super::staff::Scope;
use super::super::{Layout, PageError, blocking, render};
use crate::error::ApiError;
use crate::findings;
use crate::state::AppState;
use crate::tasks::{self, Issuer};

/// Township staff read the findings; a department's clerk does not.
fn reader(user: &ConsoleUser) -> Result<(), PageError> {
    match user.scope {
        Scope::Township(_) => Ok(()),
        Scope::Department(_) => Err(PageError::forbidden(
            "纪检发现问题和通报只对镇工作人员开放。",
            "Findings and their report are for township staff.",
        )),
    }
}

/// The report's period (default: the 7 days to today).
#[derive(Debug, Deserialize)]
pub struct Period {
    from: Option<String>,
    to: Option<String>,
}

/// One printed line: a label and its figures as text.
#[derive(Debug)]
pub struct Line {
    label: String,
    cells: [String; 9],
}

fn line(label: String, c: &Counts) -> Line {
    let avg = c.avg_resolve_ms.map_or_else(
        || "-".to_owned(),
        |ms| format!("{:.1}", ms as f64 / 3_600_000.0),
    );
    Line {
        label,
        cells: [
            c.found.to_string(),
            c.handed_over.to_string(),
            c.resolved.to_string(),
            c.resolved_on_time.to_string(),
            c.overdue.to_string(),
            c.sent_back.to_string(),
            c.held_to_account.to_string(),
            c.closed.to_string(),
            avg,
        ],
    }
}

/// One table of the report.
#[derive(Debug)]
pub struct Section {
    id: &'static str,
    title: &'static str,
    lines: Vec<Line>,
}

#[derive(Template)]
#[template(path = "console/findings_report.html")]
struct ReportPage {
    l: Layout,
    en: bool,
    from: String,
    to: String,
    error: Option<String>,
    headers: [&'static str; 9],
    sections: Vec<Section>,
    total: Option<Line>,
}

/// `GET /findings/report?from=&to=`: the findings recorded in the period per category,
/// village and responsible unit, with print CSS (the page is the paper 通报).
pub async fn report(
    user: ConsoleUser,
    State(state): State<AppState>,
    Query(p): Query<Period>,
) -> Result<Response, PageError> {
    reader(&user)?;
    blocking(move || {
        let schema = state.hub.schema();
        let en = user.lang.en();
        let now = state.clock.now_ms();
        let to =
            p.to.filter(|t| !t.trim().is_empty())
                .unwrap_or_else(|| tasks::today(now));
        let from = p
            .from
            .filter(|f| !f.trim().is_empty())
            .unwrap_or_else(|| tasks::today(now - 6 * 24 * 3600 * 1000));
        let pick = |zh: &'static str, e: &'static str| if en { e } else { zh };
        let mut page = ReportPage {
            l: Layout::of(&user, schema, "/findings/report"),
            en,
            from: from.clone(),
            to: to.clone(),
            error: None,
            headers: [
                pick("发现", "found"),
                pick("已移交", "handed over"),
                pick("已处置", "resolved"),
                pick("按期处置", "on time"),
                pick("逾期", "overdue"),
                pick("返工", "sent back"),
                pick("追责", "held to account"),
                pick("已办结", "closed"),
                pick("平均处置时长（小时）", "avg. to resolve (h)"),
            ],
            sections: Vec::new(),
            total: None,
        };
        match findings::report(state.storage.as_ref(), &from, &to, now) {
            Ok(r) => {
                let village = |v: &str| {
                    schema
                        .villages
                        .get(v)
                        .map_or_else(|| v.to_owned(), |l| l.get(en).to_owned())
                };
                let unit = |u: &str| match u.split_once(':') {
                    Some(("village", v)) => village(v),
                    Some(("department", d)) => schema
                        .department(d)
                        .map_or_else(|| d.to_owned(), |d| d.labels.get(en).to_owned()),
                    _ => u.to_owned(),
                };
                let lines = |rows: &[Row], label: &dyn Fn(&str) -> String| {
                    rows.iter()
                        .map(|r| line(label(&r.key), &r.counts))
                        .collect()
                };
                page.sections = vec![
                    Section {
                        id: "by-category",
                        title: pick("按类别", "Per category"),
                        lines: lines(&r.by_category, &|k| k.to_owned()),
                    },
                    Section {
                        id: "by-village",
                        title: pick("按村", "Per village"),
                        lines: lines(&r.by_village, &village),
                    },
                    Section {
                        id: "by-unit",
                        title: pick("按责任单位", "Per responsible unit"),
                        lines: lines(&r.by_unit, &unit),
                    },
                ];
                page.total = Some(line(pick("合计", "Total").to_owned(), &r.total));
            }
            Err(ApiError::Refused(m)) => {
                page.error = Some(m.render(if en {
                    yibiao_model::messages::Lang::En
                } else {
                    yibiao_model::messages::Lang::Zh
                }));
            }
            Err(ApiError::BadRequest(m)) => page.error = Some(m),
            Err(e) => return Err(PageError::internal("findings report", e)),
        }
        render(&page)
    })
    .await
}

/// One finding as the list shows it.
#[derive(Debug)]
pub struct Item {
    found: String,
    village: String,
    category: String,
    description: String,
    state: &'static str,
    unit: String,
    deadline: String,
    overdue: bool,
}

#[derive(Template)]
#[template(path = "console/findings.html")]
struct ListPage {
    l: Layout,
    en: bool,
    items: Vec<Item>,
}

/// `GET /findings`: every finding, oldest first, with its state, unit and deadline.
pub async fn list(user: ConsoleUser, State(state): State<AppState>) -> Result<Response, PageError> {
    reader(&user)?;
    blocking(move || {
        let schema = state.hub.schema();
        let en = user.lang.en();
        let now = state.clock.now_ms();
        let all = findings::list(state.storage.as_ref(), &Issuer::Township, now)
            .map_err(|e| PageError::internal("findings", e))?;
        let day = |ms: i64| {
            yibiao_model::clock::day_of(ms)
                .format("%Y-%m-%d")
                .to_string()
        };
        let items = all
            .into_iter()
            .map(|f| Item {
                found: day(f.spec.found_ms),
                village: f.village.as_deref().map_or_else(String::new, |v| {
                    schema
                        .villages
                        .get(v)
                        .map_or_else(|| v.to_owned(), |l| l.get(en).to_owned())
                }),
                category: f.spec.category.clone(),
                description: f.spec.description.clone(),
                state: f.lifecycle.state.as_str(),
                unit: f
                    .lifecycle
                    .unit
                    .as_ref()
                    .map_or_else(String::new, yibiao_model::finding::Unit::label),
                deadline: f.lifecycle.deadline_ms.map_or_else(String::new, day),
                overdue: f.overdue,
            })
            .collect();
        render(&ListPage {
            l: Layout::of(&user, schema, "/findings"),
            en,
            items,
        })
    })
    .await
}
