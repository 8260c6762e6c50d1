//! The findings report (通报) of a period as a printable page (issue 15, ADR 0012), for
//! township staff (admin, leader, clerk) and the discipline office's clerk; the figures
//! come from the same `findings::report` as `/v1/findings/report`, the XLSX and the CLI.
//! The list, one finding and its forms are `finding.rs`.

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
use crate::tasks;

/// Township staff and the discipline office's clerk read the report; another
/// department's clerk does not.
fn reader(user: &ConsoleUser) -> Result<(), PageError> {
    match &user.scope {
        Scope::Township(_) => Ok(()),
        Scope::Department(d) if d == yibiao_model::finding::rules::DISCIPLINE => Ok(()),
        Scope::Department(_) => Err(PageError::forbidden(
            "纪检通报只对镇工作人员和纪检监察开放。",
            "The findings report is for township staff and the discipline office.",
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
        match findings::report(state.storage.as_ref(), schema, &from, &to, now) {
            Ok(r) => {
                let lines = |rows: &[Row]| {
                    rows.iter()
                        .map(|r| {
                            let label = if en { &r.label_en } else { &r.label_zh };
                            line(label.clone(), &r.counts)
                        })
                        .collect()
                };
                page.sections = vec![
                    Section {
                        id: "by-category",
                        title: pick("按类别", "Per category"),
                        lines: lines(&r.by_category),
                    },
                    Section {
                        id: "by-village",
                        title: pick("按村", "Per village"),
                        lines: lines(&r.by_village),
                    },
                    Section {
                        id: "by-unit",
                        title: pick("按责任单位", "Per responsible unit"),
                        lines: lines(&r.by_unit),
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
