//! The phone's side of findings (ADR 0012): record one offline, list those about this
//! phone's village, take a step (resolve what was handed to the village) offline, and
//! the delivered / opened marks, written by the phone itself as for tasks: *delivered*
//! right after the sync that brought a hand-over to this village
//! ([`Store::refresh_finding_receipts`], called by the sync client after every committed
//! page), *opened* when the app shows it ([`Store::open_finding`]).
//!
//! Who may take which step is the model's rule ([`finding::may_take`]), checked here so
//! the cadre is told at once, and again by the server.

use rusqlite::params;
use serde::Serialize;

use super::{Inner, Store};
use crate::error::{Error, ModelError, Result};
use yibiao_model::finding::{
    self, Actor, FindingDoc, FindingSpec, FindingState, GpsPoint, Role, Severity, Step, StepKind,
    StepView, Unit,
};
use yibiao_model::ids::RecordId;
use yibiao_model::schema::Labels;
use yibiao_model::task::Receipt;
use yibiao_sync::DeviceScope;

/// What a cadre types to record a finding (who and when are filled in by the store).
#[derive(Debug, Clone, PartialEq)]
pub struct NewFinding {
    /// Category key.
    pub category: String,
    /// What was found.
    pub description: String,
    /// The record it concerns, if any.
    pub record: Option<RecordId>,
    /// Where.
    pub gps: Option<GpsPoint>,
    /// Photo references (attachment ids).
    pub photos: Vec<String>,
    /// How serious.
    pub severity: Severity,
}

/// A finding as the phone's list shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhoneFinding {
    /// The finding's id.
    pub id: RecordId,
    /// The village it is about.
    pub village: Option<String>,
    /// What was found.
    pub spec: FindingSpec,
    /// The category's labels from this phone's schema (its key when the schema does
    /// not name it).
    pub category: Labels,
    /// Where it stands (the fold of its log).
    pub state: FindingState,
    /// The responsible unit.
    pub unit: Option<Unit>,
    /// Its deadline, ms since the epoch.
    pub deadline_ms: Option<i64>,
    /// Past its deadline unresolved (by this phone's clock), or resolved late.
    pub overdue: bool,
    /// Handed to this phone's village and waiting for its resolution.
    pub ours_to_resolve: bool,
    /// The log, with superseded steps marked.
    pub steps: Vec<StepView>,
    /// This phone's delivered / opened marks.
    pub receipt: Receipt,
}

impl Store {
    /// The role this phone acts in: its enrolled village's cadres, or the township
    /// office for a township phone (or one not enrolled yet).
    fn finding_role(&self) -> Result<Role> {
        Ok(match self.scope()? {
            Some(DeviceScope::Village(v)) => Role::Village(v),
            _ => Role::Township,
        })
    }

    fn finding_ids(inner: &Inner) -> Result<Vec<RecordId>> {
        let mut stmt = inner
            .conn
            .prepare_cached("SELECT id FROM records WHERE entity = ?1 ORDER BY id")?;
        let ids = stmt
            .query_map(params![finding::FINDING_ENTITY], |r| r.get::<_, String>(0))?
            .collect::<std::result::Result<Vec<_>, _>>()?;
        ids.into_iter()
            .map(|s| s.parse().map_err(Error::from))
            .collect()
    }

    fn read_finding_doc(&self, inner: &mut Inner, id: RecordId) -> Result<FindingDoc> {
        Ok(finding::read_finding(self.load(inner, id)?)?)
    }

    fn phone_finding(&self, f: FindingDoc, role: &Role) -> PhoneFinding {
        let l = f.lifecycle();
        let overdue = l.overdue(self.clock.now_ms());
        let ours_to_resolve = matches!(
            (&l.unit, role, l.state),
            (Some(Unit::Village(u)), Role::Village(v), FindingState::HandedOver | FindingState::SentBack)
                if u == v
        );
        PhoneFinding {
            id: f.id,
            receipt: f
                .receipts
                .get(self.device.as_str())
                .cloned()
                .unwrap_or_default(),
            village: f.village,
            category: finding::categories::category_labels(&self.schema(), &f.spec.category),
            spec: f.spec,
            state: l.state,
            unit: l.unit,
            deadline_ms: l.deadline_ms,
            overdue,
            ours_to_resolve,
            steps: l.steps,
        }
    }

    /// Records a finding about `village` (`None`: township level), found now by this
    /// phone's cadre, in one durable write. Refused at once outside the phone's scope
    /// or when the role may not record there.
    pub fn record_finding(&self, village: Option<&str>, new: NewFinding) -> Result<RecordId> {
        if let Some(v) = village
            && !self.schema().has_village(v)
        {
            return Err(ModelError::UnknownVillage(v.to_owned()).into());
        }
        self.check_scope(village)?;
        finding::may_record(&self.finding_role()?, village).map_err(ModelError::Refused)?;
        finding::categories::check_category(&self.schema(), &new.category)
            .map_err(ModelError::Refused)?;
        let mut inner = self.lock();
        let now = self.clock.now_ms();
        let spec = FindingSpec {
            category: new.category,
            description: new.description.trim().to_owned(),
            record: new.record,
            gps: new.gps,
            photos: new.photos,
            severity: new.severity,
            found_by: Actor::Cadre(inner.cadre.as_str().to_owned()),
            found_ms: now,
        };
        let id = RecordId::new();
        let record = finding::new_finding_doc(
            id,
            self.actor.clone(),
            &spec,
            &self.schema().township.id,
            village,
            &self.author(&inner),
            now,
        )?;
        self.insert_created(&mut inner, record, now)?;
        Ok(id)
    }

    /// The findings on this phone, those waiting for this village first, then by
    /// deadline and id.
    pub fn findings(&self) -> Result<Vec<PhoneFinding>> {
        let role = self.finding_role()?;
        let mut inner = self.lock();
        let mut out = Vec::new();
        for id in Self::finding_ids(&inner)? {
            // One unreadable finding must not hide the others.
            match self.read_finding_doc(&mut inner, id) {
                Ok(f) => out.push(self.phone_finding(f, &role)),
                Err(e) => tracing::warn!(finding = %id, error = %e, "unreadable finding skipped"),
            }
        }
        out.sort_by_key(|f| (!f.ours_to_resolve, f.deadline_ms.unwrap_or(i64::MAX), f.id));
        Ok(out)
    }

    /// One finding.
    pub fn finding(&self, id: RecordId) -> Result<PhoneFinding> {
        let role = self.finding_role()?;
        let mut inner = self.lock();
        let f = self.read_finding_doc(&mut inner, id)?;
        Ok(self.phone_finding(f, &role))
    }

    /// Takes a step on a finding, offline, signed by this phone's cadre. Refused at once
    /// when the phone's role may not take it ([`finding::may_take`]); whether it counts
    /// is the fold's business once it merged with what others did meanwhile.
    pub fn take_finding_step(&self, id: RecordId, kind: StepKind) -> Result<()> {
        let role = self.finding_role()?;
        let mut inner = self.lock();
        let f = self.read_finding_doc(&mut inner, id)?;
        finding::may_take(&role, &kind, &f).map_err(ModelError::Refused)?;
        let author = self.author(&inner);
        let now = self.clock.now_ms();
        let step = Step::new(kind, Actor::Cadre(author.cadre.as_str().to_owned()), now);
        self.write(&mut inner, id, Some(&[]), |r| {
            finding::append_step(r, &step, &author, now)?;
            Ok(true)
        })?;
        Ok(())
    }

    /// Resolves a finding handed to this phone's village, with a note and evidence
    /// references.
    pub fn resolve_finding(&self, id: RecordId, note: &str, evidence: Vec<String>) -> Result<()> {
        let unit = match self.finding_role()? {
            Role::Village(v) => Unit::Village(v),
            role => {
                return Err(
                    ModelError::Refused(finding::forbidden(&role, "resolve", "role")).into(),
                );
            }
        };
        let kind = StepKind::Resolve {
            unit,
            note: note.trim().to_owned(),
            evidence,
        };
        self.take_finding_step(id, kind)
    }

    fn update_finding_receipt(
        &self,
        inner: &mut Inner,
        id: RecordId,
        change: impl FnOnce(&mut Receipt),
    ) -> Result<bool> {
        let f = self.read_finding_doc(inner, id)?;
        let device = self.device.as_str().to_owned();
        let mut receipt = f.receipts.get(&device).cloned().unwrap_or_default();
        let before = receipt.clone();
        change(&mut receipt);
        if receipt == before {
            return Ok(false);
        }
        receipt.cadre = Some(inner.cadre.as_str().to_owned());
        let author = self.author(inner);
        let now = self.clock.now_ms();
        self.write(inner, id, Some(&[]), |r| {
            finding::put_receipt(r, &device, &receipt, &author, now).map_err(Error::from)
        })
    }

    /// Records that the app showed the finding. Returns false when it was already opened.
    pub fn open_finding(&self, id: RecordId) -> Result<bool> {
        let mut inner = self.lock();
        let now = self.clock.now_ms();
        self.update_finding_receipt(&mut inner, id, |r| {
            r.delivered_ms.get_or_insert(now);
            r.opened_ms.get_or_insert(now);
        })
    }

    /// Writes *delivered* on every finding handed to this phone's village and not yet
    /// marked here. Returns how many marks were written. The sync client calls it after
    /// each committed page, so the mark leaves in the same sync.
    pub fn refresh_finding_receipts(&self) -> Result<usize> {
        let Role::Village(v) = self.finding_role()? else {
            return Ok(0);
        };
        let ours = Unit::Village(v);
        let mut inner = self.lock();
        let mut written = 0;
        for id in Self::finding_ids(&inner)? {
            let due =
                match self.read_finding_doc(&mut inner, id) {
                    Ok(f) => !f.receipts.contains_key(self.device.as_str())
                        && f.steps.iter().any(
                            |s| matches!(&s.kind, StepKind::HandOver { unit, .. } if *unit == ours),
                        ),
                    Err(e) => {
                        tracing::warn!(finding = %id, error = %e, "unreadable finding skipped");
                        false
                    }
                };
            if due {
                let now = self.clock.now_ms();
                written += usize::from(self.update_finding_receipt(&mut inner, id, |r| {
                    r.delivered_ms.get_or_insert(now);
                })?);
            }
        }
        Ok(written)
    }
}
