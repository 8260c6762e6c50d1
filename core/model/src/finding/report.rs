//! The report (通报): for a period, findings counted per category, village and
//! responsible unit, from their folded logs. Pure: the caller passes the findings and
//! the moment the report is made as of (overdue is judged then).

use std::collections::BTreeMap;

use serde::Serialize;

use super::{FindingSpec, Lifecycle, categories};
use crate::schema::Schema;

/// The figures of one row (or the total).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Counts {
    /// Findings recorded in the period.
    pub found: u32,
    /// Of them, handed over to a unit.
    pub handed_over: u32,
    /// With a standing resolution (resolved or closed).
    pub resolved: u32,
    /// Whose standing resolution came by the deadline.
    pub resolved_on_time: u32,
    /// Past the deadline unresolved (as of the report), or resolved late.
    pub overdue: u32,
    /// Sent back for rework at least once.
    pub sent_back: u32,
    /// Held to account at least once.
    pub held_to_account: u32,
    /// Verified and closed.
    pub closed: u32,
    /// Mean ms from the first hand-over to the standing resolution, of those resolved.
    pub avg_resolve_ms: Option<i64>,
    #[serde(skip)]
    resolve_ms_sum: i64,
    #[serde(skip)]
    timed: u32,
}

impl Counts {
    fn add(&mut self, l: &Lifecycle, as_of_ms: i64) {
        let n = |b: bool| u32::from(b);
        self.found += 1;
        self.handed_over += n(l.handed_ms.is_some());
        self.resolved += n(l.resolved_ms.is_some());
        self.resolved_on_time += n(l.resolved_on_time());
        self.overdue += n(l.overdue(as_of_ms));
        self.sent_back += n(l.sent_back > 0);
        self.held_to_account += n(l.held_to_account > 0);
        self.closed += n(l.state == super::FindingState::Closed);
        if let Some(ms) = l.time_to_resolve_ms() {
            self.resolve_ms_sum = self.resolve_ms_sum.saturating_add(ms);
            self.timed += 1;
            self.avg_resolve_ms = Some(self.resolve_ms_sum / i64::from(self.timed));
        }
    }
}

/// One row: a key (category, village or unit) and its figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Row {
    /// The category key, village id or unit (`village:tujiang`, `department:x`,
    /// `unassigned`).
    pub key: String,
    /// The key as people read it, in Chinese (the key itself until
    /// [`Report::labelled`]).
    pub label_zh: String,
    /// The key as people read it, in English.
    pub label_en: String,
    /// Its figures.
    #[serde(flatten)]
    pub counts: Counts,
}

/// The report of a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Report {
    /// Findings recorded from this moment (ms since the epoch, inclusive)...
    pub from_ms: i64,
    /// ...to this one (exclusive).
    pub to_ms: i64,
    /// Overdue is judged as of this moment.
    pub as_of_ms: i64,
    /// Every finding of the period.
    pub total: Counts,
    /// Per category, by key.
    pub by_category: Vec<Row>,
    /// Per village the finding is about (`township` for township-level ones).
    pub by_village: Vec<Row>,
    /// Per responsible unit (the standing hand-over; `unassigned` if none).
    pub by_unit: Vec<Row>,
}

impl Report {
    /// The report with every row's labels from `schema`: a category's, village's or
    /// unit's name (the key when the schema does not name it).
    pub fn labelled(mut self, schema: &Schema) -> Self {
        let put = |rows: &mut Vec<Row>, labels: &dyn Fn(&Schema, &str) -> crate::value::Labels| {
            for r in rows {
                let l = labels(schema, &r.key);
                (r.label_zh, r.label_en) = (l.zh, l.en);
            }
        };
        put(&mut self.by_category, &categories::category_labels);
        put(&mut self.by_village, &categories::village_labels);
        put(&mut self.by_unit, &categories::unit_labels);
        self
    }
}

/// One finding as the report reads it.
pub struct Entry<'a> {
    /// What was found (its category and when).
    pub spec: &'a FindingSpec,
    /// The village it is about.
    pub village: Option<&'a str>,
    /// Its folded log.
    pub lifecycle: &'a Lifecycle,
}

/// Counts the findings recorded in `[from_ms, to_ms)`, overdue judged as of `as_of_ms`.
pub fn report<'a>(
    findings: impl IntoIterator<Item = Entry<'a>>,
    from_ms: i64,
    to_ms: i64,
    as_of_ms: i64,
) -> Report {
    let mut total = Counts::default();
    let mut cat: BTreeMap<String, Counts> = BTreeMap::new();
    let mut vil: BTreeMap<String, Counts> = BTreeMap::new();
    let mut unit: BTreeMap<String, Counts> = BTreeMap::new();
    for f in findings {
        if f.spec.found_ms < from_ms || f.spec.found_ms >= to_ms {
            continue;
        }
        let l = f.lifecycle;
        total.add(l, as_of_ms);
        cat.entry(f.spec.category.clone())
            .or_default()
            .add(l, as_of_ms);
        vil.entry(f.village.unwrap_or("township").to_owned())
            .or_default()
            .add(l, as_of_ms);
        let u = l
            .unit
            .as_ref()
            .map_or("unassigned".to_owned(), super::Unit::label);
        unit.entry(u).or_default().add(l, as_of_ms);
    }
    let rows = |m: BTreeMap<String, Counts>| {
        m.into_iter()
            .map(|(key, counts)| Row {
                label_zh: key.clone(),
                label_en: key.clone(),
                key,
                counts,
            })
            .collect()
    };
    Report {
        from_ms,
        to_ms,
        as_of_ms,
        total,
        by_category: rows(cat),
        by_village: rows(vil),
        by_unit: rows(unit),
    }
}
