//! One finding in the console, and the forms that record one and take its steps (issue
//! 15, ADR 0012). They call the same `findings::record` / `findings::take_step` as
//! `POST /v1/findings` and `POST /v1/findings/{id}/steps`, so the role rule, the
//! category check and the hand-over defaults are the API's: township staff act as the
//! township office, the discipline office's clerk as the discipline office, another
//! department's clerk as that department (it sees and resolves what was handed to it).
//! A leader reads only. A refusal is shown above the forms in the page's language.

use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use yibiao_model::clock;
use yibiao_model::finding::{Role as FindingRole, StepKind, Unit, categories};
use yibiao_model::messages::Lang as MsgLang;

use super::super::session::{ConsoleUser, Posted};
use super::super::staff::{self, Role, Scope};
use super::super::{Layout, PageError, blocking, render};
use super::tasks::issuer_of;
use crate::error::ApiError;
use crate::findings::{self, FindingView, NewFinding, NewStep};
use crate::state::AppState;
use crate::tasks::Issuer;

/// May `user` record findings and take steps (a leader reads only)?
pub(super) fn may_act(user: &ConsoleUser) -> bool {
    user.scope != Scope::Township(Role::Leader)
}

/// The role `issuer` acts in, as the finding rules name it.
pub(super) fn role_of(issuer: &Issuer) -> FindingRole {
    match issuer {
        Issuer::Township => FindingRole::Township,
        Issuer::Department(d) => FindingRole::of_department(&d.key),
    }
}

/// A refused finding operation in the page's language; `None` for a failure that is
/// not the user's (storage), which becomes a 500.
pub(super) fn refusal(en: bool, e: &ApiError) -> Option<String> {
    let lang = if en { MsgLang::En } else { MsgLang::Zh };
    match e {
        ApiError::Denied(m) | ApiError::Refused(m) => Some(m.render(lang)),
        ApiError::BadRequest(s) | ApiError::NotFound(s) => Some(s.clone()),
        _ => None,
    }
}

/// A step's name as people read it.
fn step_name(kind: &StepKind, en: bool) -> &'static str {
    match (kind, en) {
        (StepKind::HandOver { .. }, false) => "移交",
        (StepKind::Resolve { .. }, false) => "处置",
        (StepKind::Accept, false) => "核查通过",
        (StepKind::SendBack { .. }, false) => "退回返工",
        (StepKind::HoldToAccount { .. }, false) => "追责",
        (StepKind::HandOver { .. }, true) => "Handed over",
        (StepKind::Resolve { .. }, true) => "Resolved",
        (StepKind::Accept, true) => "Accepted",
        (StepKind::SendBack { .. }, true) => "Sent back",
        (StepKind::HoldToAccount { .. }, true) => "Held to account",
    }
}

/// A state as people read it (the page keeps the key in `data-state`).
fn state_label(state: &str, en: bool) -> &'static str {
    match (state, en) {
        ("found", false) => "已发现",
        ("handed_over", false) => "已移交",
        ("resolved", false) => "已处置",
        ("sent_back", false) => "退回返工",
        ("closed", false) => "已办结",
        ("found", true) => "found",
        ("handed_over", true) => "handed over",
        ("resolved", true) => "resolved",
        ("sent_back", true) => "sent back",
        ("closed", true) => "closed",
        _ => "?",
    }
}

/// A severity as people read it.
fn severity_label(s: yibiao_model::finding::Severity, en: bool) -> &'static str {
    use yibiao_model::finding::Severity;
    match (s, en) {
        (Severity::Low, false) => "一般",
        (Severity::Medium, false) => "较重",
        (Severity::High, false) => "严重",
        (Severity::Low, true) => "low",
        (Severity::Medium, true) => "medium",
        (Severity::High, true) => "high",
    }
}

/// One line of the log.
#[derive(Debug)]
pub struct LogLine {
    at: String,
    by: String,
    step: &'static str,
    detail: String,
    /// A resolution's evidence, as blob hashes.
    evidence: Vec<String>,
    superseded: Option<String>,
}

/// The blob hash a finding's photo or evidence reference names (bare, or `sha256:`).
fn hash_of(reference: &str) -> Option<String> {
    let h = reference.strip_prefix("sha256:").unwrap_or(reference);
    crate::blobs::BlobHash::parse(h)
        .ok()
        .map(|h| h.as_str().to_owned())
}

/// What the forms offer.
#[derive(Debug, Default)]
pub struct Forms {
    /// Hand over, accept, send back (the township and the discipline office).
    office: bool,
    /// Hold to account (the discipline office).
    discipline: bool,
    /// Resolve (a department it was handed to).
    resolve: bool,
    /// Units to hand over to: (`village:x` / `department:x`, label).
    units: Vec<(String, String)>,
    /// What the category gives a hand-over that names nothing.
    default_hint: String,
}

#[derive(Template)]
#[template(path = "console/finding.html")]
struct FindingPage {
    l: Layout,
    en: bool,
    id: String,
    category: String,
    village: String,
    description: String,
    severity: &'static str,
    found: String,
    state: &'static str,
    state_label: &'static str,
    unit: String,
    deadline: String,
    overdue: bool,
    photos: Vec<String>,
    log: Vec<LogLine>,
    forms: Option<Forms>,
    notice: Option<String>,
    error: Option<String>,
}

fn minute(ms: i64) -> String {
    clock::local(ms).format("%Y-%m-%d %H:%M").to_string()
}

fn actor(a: &yibiao_model::finding::Actor) -> String {
    use yibiao_model::finding::Actor;
    match a {
        Actor::Cadre(c) => format!("cadre {c}"),
        Actor::Staff(s) => format!("staff {s}"),
        Actor::Department(d) => d.clone(),
    }
}

fn step_detail(kind: &StepKind, schema: &yibiao_model::Schema, en: bool) -> String {
    let unit = |u: &Unit| {
        categories::unit_labels(schema, &u.label())
            .get(en)
            .to_owned()
    };
    match kind {
        StepKind::HandOver {
            unit: u,
            deadline_ms,
        } => format!("{} · {}", unit(u), minute(*deadline_ms)),
        StepKind::Resolve { unit: u, note, .. } => format!("{}: {note}", unit(u)),
        StepKind::Accept => String::new(),
        StepKind::SendBack { reason } => reason.clone(),
        StepKind::HoldToAccount { who, measure } => format!("{who}: {measure}"),
    }
}

fn forms_for(issuer: &Issuer, v: &FindingView, schema: &yibiao_model::Schema, en: bool) -> Forms {
    let role = role_of(issuer);
    let office = matches!(role, FindingRole::Township | FindingRole::Discipline);
    let mut units: Vec<(String, String)> = Vec::new();
    if office {
        let villages = schema
            .villages
            .iter()
            .filter(|(k, _)| v.village.is_none() || v.village.as_deref() == Some(k.as_str()));
        units.extend(villages.map(|(k, l)| (format!("village:{k}"), l.get(en).to_owned())));
        units.extend(
            schema
                .departments
                .iter()
                .map(|(k, d)| (format!("department:{k}"), d.labels.get(en).to_owned())),
        );
    }
    let default_hint = schema
        .finding_category(&v.spec.category)
        .map_or_else(String::new, |c| {
            let unit = match &c.unit {
                Some(yibiao_model::schema::DefaultUnit::OwnVillage) => {
                    if en {
                        "the village".to_owned()
                    } else {
                        "本村".to_owned()
                    }
                }
                Some(yibiao_model::schema::DefaultUnit::Department(d)) => {
                    categories::unit_labels(schema, &format!("department:{d}"))
                        .get(en)
                        .to_owned()
                }
                None => "-".to_owned(),
            };
            let days = c
                .deadline_days
                .map_or_else(|| "-".to_owned(), |d| d.to_string());
            if en {
                format!("left blank: {unit}, {days} days")
            } else {
                format!("不填则按类别默认：{unit}，{days} 天")
            }
        });
    Forms {
        office,
        discipline: role == FindingRole::Discipline,
        resolve: matches!(role, FindingRole::Department(_) | FindingRole::Discipline)
            && matches!(&v.lifecycle.unit, Some(Unit::Department(d)) if matches!(issuer, Issuer::Department(i) if &i.key == d)),
        units,
        default_hint,
    }
}

/// The page of finding `id` as `user` sees it (404 for one it does not see).
fn page(
    state: &AppState,
    user: &ConsoleUser,
    id: &str,
    notice: Option<String>,
    error: Option<String>,
) -> Result<Response, PageError> {
    let schema = state.hub.schema();
    let en = user.lang.en();
    let issuer = issuer_of(user, schema)?;
    let not_found = || {
        PageError::not_found(
            "没有这个问题，或不在您的范围内。",
            "No such finding in your scope.",
        )
    };
    let rid = id.parse().map_err(|_| not_found())?;
    let v = match findings::show(&state.hub, &issuer, rid, state.clock.now_ms()) {
        Ok(v) => v,
        Err(ApiError::NotFound(_)) => return Err(not_found()),
        Err(e) => return Err(PageError::internal("finding", e)),
    };
    let l = &v.lifecycle;
    let log = l
        .steps
        .iter()
        .map(|s| LogLine {
            at: minute(s.step.at_ms),
            by: actor(&s.step.by),
            step: step_name(&s.step.kind, en),
            detail: step_detail(&s.step.kind, schema, en),
            evidence: match &s.step.kind {
                StepKind::Resolve { evidence, .. } => {
                    evidence.iter().filter_map(|e| hash_of(e)).collect()
                }
                _ => Vec::new(),
            },
            superseded: s.superseded.map(str::to_owned),
        })
        .collect();
    let forms = may_act(user).then(|| forms_for(&issuer, &v, schema, en));
    render(&FindingPage {
        l: Layout::of(user, schema, "/findings"),
        en,
        id: v.id.to_string(),
        category: categories::category_labels(schema, &v.spec.category)
            .get(en)
            .to_owned(),
        village: v.village.as_deref().map_or_else(
            || {
                categories::village_labels(schema, "township")
                    .get(en)
                    .to_owned()
            },
            |x| categories::village_labels(schema, x).get(en).to_owned(),
        ),
        description: v.spec.description.clone(),
        severity: severity_label(v.spec.severity, en),
        found: format!("{} · {}", minute(v.spec.found_ms), actor(&v.spec.found_by)),
        state: l.state.as_str(),
        state_label: state_label(l.state.as_str(), en),
        unit: l.unit.as_ref().map_or_else(String::new, |u| {
            categories::unit_labels(schema, &u.label())
                .get(en)
                .to_owned()
        }),
        deadline: l.deadline_ms.map_or_else(String::new, minute),
        overdue: v.overdue,
        photos: v.spec.photos.iter().filter_map(|p| hash_of(p)).collect(),
        log,
        forms,
        notice,
        error,
    })
}

/// `GET /findings/{id}`.
pub async fn one(
    user: ConsoleUser,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    blocking(move || page(&state, &user, &id, None, None)).await
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter()
        .find_map(|(k, v)| (k == name).then_some(v.trim()))
        .unwrap_or("")
}

/// The step a posted form asks for, or what is wrong with it (in the page's language).
fn posted_step(form: &[(String, String)], issuer: &Issuer, en: bool) -> Result<NewStep, String> {
    let pick = |zh: &str, e: &str| if en { e.to_owned() } else { zh.to_owned() };
    Ok(match field(form, "step") {
        "hand_over" => {
            let unit = match field(form, "unit").split_once(':') {
                Some(("village", v)) => Some(Unit::Village(v.to_owned())),
                Some(("department", d)) => Some(Unit::Department(d.to_owned())),
                _ => None,
            };
            let deadline_ms = match field(form, "deadline") {
                "" => None,
                typed => Some(clock::day_end_ms(clock::parse_day(typed).ok_or_else(
                    || {
                        pick(
                            "期限不是有效日期，例如 2027-01-05。",
                            "The deadline is not a day, e.g. 2027-01-05.",
                        )
                    },
                )?)),
            };
            NewStep::HandOver { unit, deadline_ms }
        }
        "resolve" => match issuer {
            Issuer::Department(d) => NewStep::Resolve {
                unit: Unit::Department(d.key.clone()),
                note: field(form, "note").to_owned(),
                evidence: Vec::new(),
            },
            Issuer::Township => {
                return Err(pick(
                    "镇里不处置问题，请移交给责任单位。",
                    "The township does not resolve findings; hand them over.",
                ));
            }
        },
        "accept" => NewStep::Accept,
        "send_back" => NewStep::SendBack {
            reason: field(form, "reason").to_owned(),
        },
        "hold_to_account" => NewStep::HoldToAccount {
            who: field(form, "who").to_owned(),
            measure: field(form, "measure").to_owned(),
        },
        _ => return Err(pick("未知的处理步骤。", "Unknown step.")),
    })
}

fn leader_reads() -> PageError {
    PageError::forbidden(
        "领导账号只能查看纪检问题，不能登记或处理。",
        "A leader's account reads findings; it cannot record or act on them.",
    )
}

/// `POST /findings/{id}/steps`: take a step (field `step` and its fields).
pub async fn step(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Posted { user, form }: Posted<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    if !may_act(&user) {
        return Err(leader_reads());
    }
    blocking(move || {
        let en = user.lang.en();
        let issuer = issuer_of(&user, state.hub.schema())?;
        let rid = match id.parse() {
            Ok(r) => r,
            Err(_) => return page(&state, &user, &id, None, None),
        };
        let asked = match posted_step(&form, &issuer, en) {
            Ok(s) => s,
            Err(e) => return page(&state, &user, &id, None, Some(e)),
        };
        let now = state.clock.now_ms();
        match findings::take_step(&state.hub, &issuer, rid, asked, now) {
            Ok(v) => {
                let name = v
                    .lifecycle
                    .steps
                    .last()
                    .map_or("", |s| step_name(&s.step.kind, en));
                staff::audit(
                    state.storage.as_ref(),
                    now,
                    &user.staff.login,
                    "finding_step",
                    &id,
                    &user.addr,
                )?;
                let done = if en {
                    format!("Done: {name}")
                } else {
                    format!("已完成：{name}")
                };
                page(&state, &user, &id, Some(done), None)
            }
            Err(ApiError::NotFound(_)) => page(&state, &user, &id, None, None),
            Err(e) => match refusal(en, &e) {
                Some(msg) => page(&state, &user, &id, None, Some(msg)),
                None => Err(PageError::internal("finding step", e)),
            },
        }
    })
    .await
}

/// What the record form posted, kept when refused.
#[derive(Debug, Default)]
pub struct Typed {
    pub(super) category: String,
    pub(super) village: String,
    pub(super) description: String,
    pub(super) severity: String,
}

/// `POST /findings`: record a finding (fields `category`, `village` (blank: township
/// level), `description`, `severity`). Shows the new finding's page, or the list with
/// the refusal and what was typed.
pub async fn record(
    State(state): State<AppState>,
    Posted { user, form }: Posted<Vec<(String, String)>>,
) -> Result<Response, PageError> {
    if !may_act(&user) {
        return Err(leader_reads());
    }
    blocking(move || {
        let en = user.lang.en();
        let typed = Typed {
            category: field(&form, "category").to_owned(),
            village: field(&form, "village").to_owned(),
            description: field(&form, "description").to_owned(),
            severity: field(&form, "severity").to_owned(),
        };
        let issuer = issuer_of(&user, state.hub.schema())?;
        let new = serde_json::from_value::<NewFinding>(serde_json::json!({
            "village": (!typed.village.is_empty()).then_some(&typed.village),
            "category": typed.category,
            "description": typed.description,
            "severity": if typed.severity.is_empty() { "medium" } else { typed.severity.as_str() },
        }))
        .map_err(|_| PageError::bad_form("表单内容有误。", "The form is malformed."))?;
        let now = state.clock.now_ms();
        match findings::record(&state.hub, &issuer, new, now) {
            Ok(v) => {
                let id = v.id.to_string();
                staff::audit(
                    state.storage.as_ref(),
                    now,
                    &user.staff.login,
                    "finding_record",
                    &id,
                    &user.addr,
                )?;
                let done = if en {
                    "Recorded.".to_owned()
                } else {
                    "已登记。".to_owned()
                };
                page(&state, &user, &id, Some(done), None)
            }
            Err(e) => match refusal(en, &e) {
                Some(msg) => list_page(&state, &user, Some(typed), Some(msg)),
                None => Err(PageError::internal("finding record", e)),
            },
        }
    })
    .await
}

/// One finding as the list shows it.
#[derive(Debug)]
pub struct Item {
    id: String,
    found: String,
    village: String,
    category: String,
    description: String,
    state: &'static str,
    state_label: &'static str,
    unit: String,
    deadline: String,
    overdue: bool,
}

/// The record form: its choices and what was typed.
#[derive(Debug)]
pub struct RecordForm {
    categories: Vec<(String, String)>,
    villages: Vec<(String, String)>,
    typed: Typed,
}

#[derive(Template)]
#[template(path = "console/findings.html")]
struct ListPage {
    l: Layout,
    en: bool,
    items: Vec<Item>,
    /// The record form, for the township office and the discipline office.
    record: Option<RecordForm>,
    /// The report link, for those who read it.
    report: bool,
    error: Option<String>,
}

/// The list `user` sees (a department's clerk: what was handed to it), with the record
/// form for those who may record, `typed` kept and `error` shown when refused.
pub(super) fn list_page(
    state: &AppState,
    user: &ConsoleUser,
    typed: Option<Typed>,
    error: Option<String>,
) -> Result<Response, PageError> {
    let schema = state.hub.schema();
    let en = user.lang.en();
    let issuer = issuer_of(user, schema)?;
    let now = state.clock.now_ms();
    let all = findings::list(state.storage.as_ref(), &issuer, now)
        .map_err(|e| PageError::internal("findings", e))?;
    let day = |ms: i64| clock::day_of(ms).format("%Y-%m-%d").to_string();
    let items = all
        .into_iter()
        .map(|f| Item {
            id: f.id.to_string(),
            found: day(f.spec.found_ms),
            village: f.village.as_deref().map_or_else(String::new, |v| {
                categories::village_labels(schema, v).get(en).to_owned()
            }),
            category: categories::category_labels(schema, &f.spec.category)
                .get(en)
                .to_owned(),
            description: f.spec.description.clone(),
            state: f.lifecycle.state.as_str(),
            state_label: state_label(f.lifecycle.state.as_str(), en),
            unit: f.lifecycle.unit.as_ref().map_or_else(String::new, |u| {
                categories::unit_labels(schema, &u.label())
                    .get(en)
                    .to_owned()
            }),
            deadline: f.lifecycle.deadline_ms.map_or_else(String::new, day),
            overdue: f.overdue,
        })
        .collect();
    let role = role_of(&issuer);
    let office = matches!(role, FindingRole::Township | FindingRole::Discipline);
    let record = (office && may_act(user)).then(|| RecordForm {
        categories: schema
            .finding_categories
            .values()
            .map(|c| (c.key.clone(), c.labels.get(en).to_owned()))
            .collect(),
        villages: schema
            .villages
            .iter()
            .map(|(k, l)| (k.clone(), l.get(en).to_owned()))
            .collect(),
        typed: typed.unwrap_or_default(),
    });
    render(&ListPage {
        l: Layout::of(user, schema, "/findings"),
        en,
        items,
        record,
        report: office,
        error,
    })
}

/// `GET /findings`: the findings the user sees, oldest first, with state, unit and
/// deadline; each links to its page.
pub async fn list(user: ConsoleUser, State(state): State<AppState>) -> Result<Response, PageError> {
    blocking(move || list_page(&state, &user, None, None)).await
}
