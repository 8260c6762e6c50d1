//! Findings on the server (ADR 0012): record one, take a step, list and show them in the
//! caller's scope, and the report (通报). Shared by the HTTP API and the CLI, so both
//! give the same answers and refusals. Who may take which step is the model's rule
//! (`yibiao_model::finding::may_take`), the same the hub applies to phones.
//!
//! The township (admin token, CLI) acts as the township office; a department token as
//! its department, the department `discipline_inspection` as the discipline office.

pub mod xlsx;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use yibiao_model::Schema;
use yibiao_model::clock;
use yibiao_model::finding::report::{self, Entry, Report};
use yibiao_model::finding::{
    self, Actor, FindingSpec, GpsPoint, Lifecycle, Role, Severity, Step, StepKind, Unit, categories,
};
use yibiao_model::messages::Message;
use yibiao_model::task::Receipt;
use yibiao_model::{Author, CadreId, DeviceId, RecordId};

use crate::error::ApiError;
use crate::state::ServerHub;
use crate::storage::{FindingRow, ServerStorage};
use crate::tasks::Issuer;

/// The role and signature of an issuer.
fn role_of(issuer: &Issuer) -> (Role, Actor) {
    match issuer {
        Issuer::Township => (Role::Township, Actor::Staff("admin".into())),
        Issuer::Department(d) => (
            Role::of_department(&d.key),
            Actor::Department(d.key.clone()),
        ),
    }
}

fn author(issuer: &Issuer) -> Result<Author, ApiError> {
    let bad = |e: yibiao_model::BadId| ApiError::internal("a server author id", e);
    Ok(Author {
        cadre: CadreId::new(issuer.name()).map_err(bad)?,
        device: DeviceId::new("server").map_err(bad)?,
    })
}

/// A finding as the API shows it: what was found, its log folded, the phones' marks.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FindingView {
    /// The finding's id.
    #[schema(value_type = String)]
    pub id: RecordId,
    /// The village it is about.
    pub village: Option<String>,
    /// What was found.
    pub spec: FindingSpec,
    /// The folded log: state, unit, deadline, every step with whether it counted.
    pub lifecycle: Lifecycle,
    /// Past its deadline unresolved now, or resolved late.
    pub overdue: bool,
    /// Delivered / opened marks by device id.
    #[schema(value_type = Object)]
    pub receipts: std::collections::BTreeMap<String, Receipt>,
}

/// What the stored summary holds.
#[derive(Deserialize)]
struct Stored {
    spec: FindingSpec,
    #[serde(default)]
    steps: Vec<Step>,
    #[serde(default)]
    receipts: std::collections::BTreeMap<String, Receipt>,
}

fn view(row: FindingRow, now_ms: i64) -> Option<FindingView> {
    let stored: Stored = match serde_json::from_str(&row.json) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(finding = %row.id, error = %e, "unreadable finding summary skipped");
            return None;
        }
    };
    let lifecycle = finding::fold(&stored.steps);
    Some(FindingView {
        id: row.id,
        village: row.village,
        overdue: lifecycle.overdue(now_ms),
        spec: stored.spec,
        lifecycle,
        receipts: stored.receipts,
    })
}

/// The finding as the role rules read it.
fn doc_of(v: &FindingView) -> finding::FindingDoc {
    finding::FindingDoc {
        id: v.id,
        village: v.village.clone(),
        spec: v.spec.clone(),
        steps: v.lifecycle.steps.iter().map(|s| s.step.clone()).collect(),
        receipts: v.receipts.clone(),
    }
}

/// Every finding the issuer sees (a department those handed to it), oldest first.
pub fn list(
    storage: &dyn ServerStorage,
    issuer: &Issuer,
    now_ms: i64,
) -> Result<Vec<FindingView>, ApiError> {
    let (role, _) = role_of(issuer);
    let mut out: Vec<FindingView> = storage
        .findings()?
        .into_iter()
        .filter_map(|row| view(row, now_ms))
        .filter(|v| role.sees(&doc_of(v)))
        .collect();
    out.sort_by_key(|v| (v.spec.found_ms, v.id));
    Ok(out)
}

/// One finding the issuer sees; another is answered as unknown.
pub fn show(
    hub: &ServerHub,
    issuer: &Issuer,
    id: RecordId,
    now_ms: i64,
) -> Result<FindingView, ApiError> {
    let unknown = || ApiError::NotFound(format!("no finding {id}"));
    let record = hub
        .record(id)?
        .filter(finding::is_finding)
        .ok_or_else(unknown)?;
    let row = FindingRow {
        id,
        village: record.scope().village,
        json: finding::finding_json(&record),
    };
    let v = view(row, now_ms).ok_or_else(unknown)?;
    if !role_of(issuer).0.sees(&doc_of(&v)) {
        return Err(unknown());
    }
    Ok(v)
}

/// A finding as the office records it.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewFinding {
    /// The village it is about (omit for township level).
    pub village: Option<String>,
    /// Category key (lowercase letters, digits, _).
    pub category: String,
    /// What was found.
    pub description: String,
    /// The record it concerns.
    #[schema(value_type = Option<String>)]
    pub record: Option<RecordId>,
    /// Where.
    pub gps: Option<GpsPoint>,
    /// Photo references (attachment ids).
    #[serde(default)]
    pub photos: Vec<String>,
    /// How serious.
    pub severity: Severity,
}

fn forbidden(m: Message) -> ApiError {
    ApiError::Denied(m)
}

/// Records a finding, found now by the issuer. The township and the discipline office
/// may; a department may not (`403 finding_forbidden`).
pub fn record(
    hub: &ServerHub,
    issuer: &Issuer,
    new: NewFinding,
    now_ms: i64,
) -> Result<FindingView, ApiError> {
    let (role, by) = role_of(issuer);
    if let Some(v) = &new.village
        && !hub.schema().has_village(v)
    {
        return Err(ApiError::BadRequest(format!("unknown village `{v}`")));
    }
    finding::may_record(&role, new.village.as_deref()).map_err(forbidden)?;
    let spec = FindingSpec {
        category: new.category,
        description: new.description.trim().to_owned(),
        record: new.record,
        gps: new.gps,
        photos: new.photos,
        severity: new.severity,
        found_by: by,
        found_ms: now_ms,
    };
    spec.check().map_err(ApiError::Refused)?;
    categories::check_category(hub.schema(), &spec.category).map_err(ApiError::Refused)?;
    let id = RecordId::new();
    let doc = finding::new_finding_doc(
        id,
        hub.actor(),
        &spec,
        &hub.schema().township.id,
        new.village.as_deref(),
        &author(issuer)?,
        now_ms,
    )
    .map_err(|e| match e {
        yibiao_model::Error::Refused(m) => ApiError::Refused(m),
        e => ApiError::BadRequest(e.to_string()),
    })?;
    hub.commit_server_docs(vec![doc])?;
    show(hub, issuer, id, now_ms)
}

/// A step as the office asks for it: a [`StepKind`], except that a hand-over may leave
/// out its unit or deadline, which the finding's category then gives (the log always
/// holds both, written out).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NewStep {
    /// 移交: to `unit` (default: the category's unit), due at `deadline_ms` (default:
    /// now plus the category's `deadline_days`).
    HandOver {
        /// The responsible unit.
        #[serde(default)]
        unit: Option<Unit>,
        /// The deadline, ms since the epoch.
        #[serde(default)]
        deadline_ms: Option<i64>,
    },
    /// 处置: resolved by `unit` (the unit the resolver acts for).
    Resolve {
        /// The unit that resolved it.
        unit: Unit,
        /// What was done.
        note: String,
        /// Evidence references (attachment ids).
        #[serde(default)]
        evidence: Vec<String>,
    },
    /// 核查通过: the resolution is verified.
    Accept,
    /// 返工: the resolution is not accepted.
    SendBack {
        /// Why.
        reason: String,
    },
    /// 追责: who is held to account and by which measure.
    HoldToAccount {
        /// The person or unit held to account.
        who: String,
        /// The measure (reminder talk, circulated criticism...).
        measure: String,
    },
}

impl From<StepKind> for NewStep {
    fn from(kind: StepKind) -> Self {
        match kind {
            StepKind::HandOver { unit, deadline_ms } => NewStep::HandOver {
                unit: Some(unit),
                deadline_ms: Some(deadline_ms),
            },
            StepKind::Resolve {
                unit,
                note,
                evidence,
            } => NewStep::Resolve {
                unit,
                note,
                evidence,
            },
            StepKind::Accept => NewStep::Accept,
            StepKind::SendBack { reason } => NewStep::SendBack { reason },
            StepKind::HoldToAccount { who, measure } => NewStep::HoldToAccount { who, measure },
        }
    }
}

impl NewStep {
    /// The step the log will hold: a hand-over completed from the finding's category.
    fn kind(self, schema: &Schema, v: &FindingView, now_ms: i64) -> Result<StepKind, ApiError> {
        Ok(match self {
            NewStep::HandOver { unit, deadline_ms } => categories::hand_over(
                schema,
                &v.spec,
                v.village.as_deref(),
                unit,
                deadline_ms,
                now_ms,
            )
            .map_err(ApiError::Refused)?,
            NewStep::Resolve {
                unit,
                note,
                evidence,
            } => StepKind::Resolve {
                unit,
                note,
                evidence,
            },
            NewStep::Accept => StepKind::Accept,
            NewStep::SendBack { reason } => StepKind::SendBack { reason },
            NewStep::HoldToAccount { who, measure } => StepKind::HoldToAccount { who, measure },
        })
    }
}

/// Takes a step on a finding as the issuer, under the hub's write lock (so no phone's
/// concurrent step is lost). Refused `403 finding_forbidden` when the role may not take
/// it; `404` for a finding it does not see.
pub fn take_step(
    hub: &ServerHub,
    issuer: &Issuer,
    id: RecordId,
    step: impl Into<NewStep>,
    now_ms: i64,
) -> Result<FindingView, ApiError> {
    // Seen at all? (Answered as unknown otherwise, before any rule is named.)
    let seen = show(hub, issuer, id, now_ms)?;
    let kind = step.into().kind(hub.schema(), &seen, now_ms)?;
    kind.check().map_err(ApiError::Refused)?;
    let (role, by) = role_of(issuer);
    let step = Step::new(kind, by, now_ms);
    let author = author(issuer)?;
    let mut refused = None;
    hub.update_server_docs(&[id], |r| {
        let doc = finding::read_finding(r)?;
        if let Err(m) = finding::may_take(&role, &step.kind, &doc) {
            refused = Some(m);
            return Ok(false);
        }
        finding::append_step(r, &step, &author, now_ms)?;
        Ok(true)
    })?;
    if let Some(m) = refused {
        return Err(forbidden(m));
    }
    show(hub, issuer, id, now_ms)
}

/// Only the township and the discipline office read the report (`403` otherwise).
pub fn may_report(issuer: &Issuer) -> Result<(), ApiError> {
    match role_of(issuer).0 {
        Role::Township | Role::Discipline => Ok(()),
        role => Err(ApiError::Denied(
            Message::new("finding_forbidden")
                .with("role", role.name())
                .with("step", "report")
                .with("why", "role"),
        )),
    }
}

/// The report of the findings recorded from the first day to the last (UTC+8, both
/// included), overdue judged as of `now_ms`, its rows labelled from `schema`. Days are typed as people write them.
pub fn report(
    storage: &dyn ServerStorage,
    schema: &Schema,
    from: &str,
    to: &str,
    now_ms: i64,
) -> Result<Report, ApiError> {
    let day = |s: &str| {
        clock::parse_day(s).ok_or_else(|| ApiError::Refused(Message::new("bad_day").with("got", s)))
    };
    let (from, to) = (day(from)?, day(to)?);
    if to < from {
        return Err(ApiError::BadRequest(format!(
            "the period ends ({to}) before it starts ({from})"
        )));
    }
    let views: Vec<FindingView> = storage
        .findings()?
        .into_iter()
        .filter_map(|row| view(row, now_ms))
        .collect();
    let entries = views.iter().map(|v| Entry {
        spec: &v.spec,
        village: v.village.as_deref(),
        lifecycle: &v.lifecycle,
    });
    Ok(report::report(
        entries,
        clock::day_start_ms(from),
        clock::day_end_ms(to) + 1,
        now_ms,
    )
    .labelled(schema))
}
