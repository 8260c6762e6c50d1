//! What the schema's `[finding_categories]` mean for findings: which category keys a
//! finding may carry, what a hand-over that names no deadline or unit takes, and how a
//! category, village or unit reads for people. One home for each rule: the phone store,
//! the hub, the HTTP API, the console, the XLSX and the CLI all ask here.
//!
//! A schema without categories (format 1, before they existed) accepts any category key,
//! so findings recorded then stay valid; a schema with categories accepts only its own.
//! Findings already stored keep their key when a revision drops a category: the report
//! shows the key, and `check-schema` names them (see `schema::strand`).

use super::{FindingSpec, StepKind, Unit};
use crate::messages::Message;
use crate::schema::{DefaultUnit, Schema};
use crate::value::Labels;

/// Milliseconds in a day.
const DAY_MS: i64 = 24 * 3600 * 1000;

/// May a finding carry `category` under `schema`? Refused with `unknown_category`
/// (params `got`, `allowed_zh`, `allowed_en`).
pub fn check_category(schema: &Schema, category: &str) -> Result<(), Message> {
    if schema.finding_categories.is_empty() || schema.finding_category(category).is_some() {
        return Ok(());
    }
    let join = |en: bool, sep: &str| {
        schema
            .finding_categories
            .values()
            .map(|c| format!("{} ({})", c.labels.get(en), c.key))
            .collect::<Vec<_>>()
            .join(sep)
    };
    Err(Message::new("unknown_category")
        .with("got", category.chars().take(40).collect::<String>())
        .with("allowed_zh", join(false, "、"))
        .with("allowed_en", join(true, ", ")))
}

/// The hand-over of a finding (`spec`, about `village`) made at `now_ms`: the unit and
/// deadline as given, or else the category's defaults, written out in full so the log
/// never depends on a later revision of the schema. Refused with `hand_over_needs`
/// (params `what` = `unit` or `deadline`, `category`) when neither names one.
pub fn hand_over(
    schema: &Schema,
    spec: &FindingSpec,
    village: Option<&str>,
    unit: Option<Unit>,
    deadline_ms: Option<i64>,
    now_ms: i64,
) -> Result<StepKind, Message> {
    let category = schema.finding_category(&spec.category);
    let needs = |what: &str| {
        Message::new("hand_over_needs")
            .with("what", what)
            .with("category", spec.category.as_str())
    };
    let unit = match (unit, category.and_then(|c| c.unit.as_ref())) {
        (Some(u), _) => u,
        (None, Some(DefaultUnit::Department(d))) => Unit::Department(d.clone()),
        (None, Some(DefaultUnit::OwnVillage)) => match village {
            Some(v) => Unit::Village(v.to_owned()),
            None => return Err(needs("unit")),
        },
        (None, None) => return Err(needs("unit")),
    };
    let deadline_ms = match (deadline_ms, category.and_then(|c| c.deadline_days)) {
        (Some(d), _) => d,
        (None, Some(days)) => now_ms.saturating_add(i64::from(days) * DAY_MS),
        (None, None) => return Err(needs("deadline")),
    };
    Ok(StepKind::HandOver { unit, deadline_ms })
}

fn both(s: &str) -> Labels {
    Labels {
        zh: s.to_owned(),
        en: s.to_owned(),
    }
}

/// How a category reads (its key when the schema does not name it).
pub fn category_labels(schema: &Schema, key: &str) -> Labels {
    schema
        .finding_category(key)
        .map_or_else(|| both(key), |c| c.labels.clone())
}

/// How a village reads (`township` for township-level findings).
pub fn village_labels(schema: &Schema, key: &str) -> Labels {
    if key == "township" && !schema.has_village(key) {
        return Labels {
            zh: "镇级".into(),
            en: "Township level".into(),
        };
    }
    schema
        .villages
        .get(key)
        .map_or_else(|| both(key), Clone::clone)
}

/// How a responsible unit reads, from its label (`village:tujiang`,
/// `department:public_services`, `unassigned`).
pub fn unit_labels(schema: &Schema, label: &str) -> Labels {
    match label.split_once(':') {
        Some(("village", v)) => village_labels(schema, v),
        Some(("department", d)) => schema
            .department(d)
            .map_or_else(|| both(d), |d| d.labels.clone()),
        _ if label == "unassigned" => Labels {
            zh: "未移交".into(),
            en: "Not handed over".into(),
        },
        _ => both(label),
    }
}
