//! Findings on the phone (ADR 0012): record one offline, list them, open one, resolve
//! one handed to this phone's village. Forwarding wrappers over `yibiao_store`'s
//! findings API plus the records the bindings see.

use yibiao_model::finding::{FindingState as CoreState, GpsPoint, Severity, Unit};
use yibiao_store::{NewFinding, PhoneFinding};

use crate::error::YibiaoError;
use crate::store::YibiaoStore;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum FindingSeverity {
    /// Minor.
    Low,
    /// Ordinary.
    Medium,
    /// Serious.
    High,
}

/// Where a finding stands (the fold of its log, the same on every phone and the server).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum FindingState {
    /// Recorded, not handed over yet.
    Found,
    /// Handed over to a unit, awaiting its resolution.
    HandedOver,
    /// Resolved, awaiting verification.
    Resolved,
    /// Sent back for rework.
    SentBack,
    /// Verified and closed.
    Closed,
}

/// What a cadre types to record a finding.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct FindingInput {
    /// Category key, e.g. `living_environment`.
    pub category: String,
    /// What was found.
    pub description: String,
    /// How serious.
    pub severity: FindingSeverity,
    /// Photo references (attachment ids), never the bytes.
    pub photos: Vec<String>,
    /// The record it concerns, if any.
    pub record: Option<String>,
    /// Latitude and longitude, if known.
    pub lat: Option<f64>,
    /// Longitude.
    pub lon: Option<f64>,
}

/// One step of a finding's log.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FindingStepItem {
    /// The step's id.
    pub id: String,
    /// `hand_over`, `resolve`, `accept`, `send_back` or `hold_to_account`.
    pub kind: String,
    /// The step as JSON (unit, deadline, note, reason...).
    pub json: String,
    /// Who took it, as JSON (`{"cadre": "amu"}`, `{"staff": "admin"}`...).
    pub by_json: String,
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// Why it does not count (`already_resolved`, `closed`...), or `None` when it does.
    pub superseded: Option<String>,
}

/// A finding as the phone's list shows it.
#[derive(Debug, Clone, PartialEq, uniffi::Record)]
pub struct FindingItem {
    /// Its id (pass it to `finding`, `open_finding`, `resolve_finding`).
    pub id: String,
    /// The village it is about.
    pub village: Option<String>,
    /// Category key.
    pub category: String,
    /// The category's Chinese label (the key when the schema does not name it).
    pub category_zh: String,
    /// The category's English label.
    pub category_en: String,
    /// What was found.
    pub description: String,
    /// How serious.
    pub severity: FindingSeverity,
    /// Photo references.
    pub photos: Vec<String>,
    /// When it was found, ms since the epoch.
    pub found_ms: i64,
    /// Where it stands.
    pub state: FindingState,
    /// The responsible unit (`village:tujiang`, `department:public_services`).
    pub unit: Option<String>,
    /// Its deadline, ms since the epoch.
    pub deadline_ms: Option<i64>,
    /// Past its deadline unresolved, or resolved late.
    pub overdue: bool,
    /// Handed to this phone's village and waiting for its resolution.
    pub ours_to_resolve: bool,
    /// The log in order, superseded steps marked.
    pub steps: Vec<FindingStepItem>,
    /// When this phone received the hand-over.
    pub delivered_ms: Option<i64>,
    /// When the app first showed it here.
    pub opened_ms: Option<i64>,
}

/// A kind of finding the township's schema defines, for the app's category picker.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct FindingCategoryItem {
    /// Its key (pass it as `FindingInput.category`).
    pub key: String,
    /// Chinese label.
    pub zh: String,
    /// English label.
    pub en: String,
    /// Days the office gives by default to resolve one.
    pub deadline_days: Option<u32>,
}

fn severity(s: Severity) -> FindingSeverity {
    match s {
        Severity::Low => FindingSeverity::Low,
        Severity::Medium => FindingSeverity::Medium,
        Severity::High => FindingSeverity::High,
    }
}

impl From<PhoneFinding> for FindingItem {
    fn from(f: PhoneFinding) -> Self {
        Self {
            id: f.id.to_string(),
            village: f.village,
            category: f.spec.category,
            category_zh: f.category.zh,
            category_en: f.category.en,
            description: f.spec.description,
            severity: severity(f.spec.severity),
            photos: f.spec.photos,
            found_ms: f.spec.found_ms,
            state: match f.state {
                CoreState::Found => FindingState::Found,
                CoreState::HandedOver => FindingState::HandedOver,
                CoreState::Resolved => FindingState::Resolved,
                CoreState::SentBack => FindingState::SentBack,
                CoreState::Closed => FindingState::Closed,
            },
            unit: f.unit.as_ref().map(Unit::label),
            deadline_ms: f.deadline_ms,
            overdue: f.overdue,
            ours_to_resolve: f.ours_to_resolve,
            steps: f
                .steps
                .into_iter()
                .map(|s| FindingStepItem {
                    id: s.step.id.clone(),
                    kind: s.step.kind.name().to_owned(),
                    // serde_json cannot fail on these plain types.
                    json: serde_json::to_string(&s.step.kind).unwrap_or_default(),
                    by_json: serde_json::to_string(&s.step.by).unwrap_or_default(),
                    at_ms: s.step.at_ms,
                    superseded: s.superseded.map(str::to_owned),
                })
                .collect(),
            delivered_ms: f.receipt.delivered_ms,
            opened_ms: f.receipt.opened_ms,
        }
    }
}

#[uniffi::export]
impl YibiaoStore {
    /// Records a finding about `village` (`None`: township level), found now by this
    /// phone's cadre, offline; it reaches the office with the next sync. Outside the
    /// phone's village, a category the schema does not know, or malformed (empty
    /// description): `Refused` with the reason's code.
    pub fn record_finding(
        &self,
        village: Option<String>,
        finding: FindingInput,
    ) -> Result<String, YibiaoError> {
        self.guard(|| {
            let record = finding.record.as_deref().map(Self::id).transpose()?;
            let gps = match (finding.lat, finding.lon) {
                (Some(lat), Some(lon)) => Some(GpsPoint { lat, lon }),
                _ => None,
            };
            let new = NewFinding {
                category: finding.category,
                description: finding.description,
                record,
                gps,
                photos: finding.photos,
                severity: match finding.severity {
                    FindingSeverity::Low => Severity::Low,
                    FindingSeverity::Medium => Severity::Medium,
                    FindingSeverity::High => Severity::High,
                },
            };
            let id = self
                .inner
                .record_finding(village.as_deref(), new)?
                .to_string();
            Ok(id)
        })
    }

    /// The finding categories of the schema this phone holds, by key (empty for a
    /// schema without categories: any key is accepted then).
    pub fn finding_categories(&self) -> Result<Vec<FindingCategoryItem>, YibiaoError> {
        self.guard(|| {
            Ok(self
                .inner
                .schema()
                .finding_categories
                .values()
                .map(|c| FindingCategoryItem {
                    key: c.key.clone(),
                    zh: c.labels.zh.clone(),
                    en: c.labels.en.clone(),
                    deadline_days: c.deadline_days,
                })
                .collect())
        })
    }

    /// The findings on this phone, those waiting for this village first.
    pub fn findings(&self) -> Result<Vec<FindingItem>, YibiaoError> {
        self.guard(|| Ok(self.inner.findings()?.into_iter().map(Into::into).collect()))
    }

    /// One finding.
    pub fn finding(&self, id: String) -> Result<FindingItem, YibiaoError> {
        self.guard(|| Ok(self.inner.finding(Self::id(&id)?)?.into()))
    }

    /// Records that the app showed the finding; false when it already was.
    pub fn open_finding(&self, id: String) -> Result<bool, YibiaoError> {
        self.guard(|| {
            let changed = self.inner.open_finding(Self::id(&id)?)?;
            Ok(self.changed_if(&id, changed))
        })
    }

    /// Resolves a finding handed to this phone's village, offline, with a note and
    /// evidence references (attachment ids). Not handed to this village, or another
    /// step than this phone may take: `Refused` naming why (`finding_forbidden`).
    pub fn resolve_finding(
        &self,
        id: String,
        note: String,
        evidence: Vec<String>,
    ) -> Result<(), YibiaoError> {
        self.guard(|| {
            self.inner
                .resolve_finding(Self::id(&id)?, &note, evidence)?;
            self.changed_if(&id, true);
            Ok(())
        })
    }
}
