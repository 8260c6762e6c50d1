//! What a new schema revision would strand: stored values it no longer accepts, records
//! of entity types or villages it no longer has, and forms, fields and departments' view
//! fields it drops. The server asks before it serves a new revision
//! (`yibiao-server check-schema --against`, `serve`); values stay stored either way.

use std::collections::BTreeMap;

use super::Schema;

/// How many example records a group keeps.
const EXAMPLES: usize = 3;

/// Stored values of one kind made invalid, with a count and a few examples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stranded {
    /// What: `household.dibao_status: field ... has no option "applying"; allowed: ...`.
    pub what: String,
    /// Records affected.
    pub count: usize,
    /// Up to three records, as `id = stored value` (or the id alone).
    pub examples: Vec<String>,
}

/// Everything a new revision would strand, gathered record by record.
#[derive(Debug, Clone, Default)]
pub struct Stranding {
    /// Changes to the schema itself that drop something (forms, fields, departments'
    /// view fields), one line each.
    pub dropped: Vec<String>,
    groups: BTreeMap<String, Stranded>,
}

impl Stranding {
    /// Starts a report for `new`, listing what it drops of `old` (the revision served
    /// until now, when known).
    pub fn new(old: Option<&Schema>, new: &Schema) -> Self {
        let mut dropped = Vec::new();
        if let Some(old) = old {
            for form in old.forms.keys().filter(|f| !new.forms.contains_key(*f)) {
                dropped.push(format!("form `{form}` is removed"));
            }
            for field in old.fields.keys().filter(|f| !new.fields.contains_key(*f)) {
                dropped.push(format!("field `{field}` is removed from the dictionary"));
            }
            for (key, dept) in &old.departments {
                let Some(now) = new.departments.get(key) else {
                    dropped.push(format!("department `{key}` is removed"));
                    continue;
                };
                for (entity, fields) in &dept.fields {
                    for f in fields.iter().filter(|f| !now.sees_field(entity, f)) {
                        let why = if new.fields.contains_key(f) {
                            "no longer in its view"
                        } else {
                            "no longer in the schema"
                        };
                        dropped.push(format!(
                            "department `{key}` read `{f}` of `{entity}`: {why}"
                        ));
                    }
                }
            }
        }
        if let Some(old) = old {
            for key in old
                .finding_categories
                .keys()
                .filter(|k| !new.finding_categories.contains_key(*k))
            {
                dropped.push(format!("finding category `{key}` is removed"));
            }
        }
        Self {
            dropped,
            groups: BTreeMap::new(),
        }
    }

    /// Checks one stored finding's category against the new schema (a schema without
    /// categories accepts every key). Its log stays as it is either way; the report
    /// shows the key where the category has no label.
    pub fn add_finding(&mut self, new: &Schema, id: &str, category: &str) {
        if !new.finding_categories.is_empty() && new.finding_category(category).is_none() {
            self.note(
                format!("findings of category `{category}`: not in the schema"),
                id.to_owned(),
            );
        }
    }

    /// Checks one stored record's current values (`values`: field → JSON, as the
    /// server's summary holds them) against the new schema.
    pub fn add_record(
        &mut self,
        new: &Schema,
        id: &str,
        entity: &str,
        village: Option<&str>,
        values: &serde_json::Map<String, serde_json::Value>,
    ) {
        if new.entity(entity).is_none() {
            let what = format!("records of entity type `{entity}`: not in the schema");
            self.note(what, id.to_owned());
            return;
        }
        if let Some(v) = village.filter(|v| !new.has_village(v)) {
            self.note(
                format!("records of village `{v}`: not in the schema"),
                id.to_owned(),
            );
        }
        for (field, json) in values {
            if let Err(e) = new.parse_json(entity, field, json) {
                // One group per kind of problem, not per value: "expects text, got 4"
                // and "..., got 3" are one line; each removed option is its own.
                let message = e.to_string();
                let kind = message.split(", got ").next().unwrap_or(&message);
                self.note(
                    format!("{entity}.{field}: {kind}"),
                    format!("{id} = {json}"),
                );
            }
        }
    }

    fn note(&mut self, what: String, example: String) {
        let g = self.groups.entry(what.clone()).or_insert(Stranded {
            what,
            count: 0,
            examples: Vec::new(),
        });
        g.count += 1;
        if g.examples.len() < EXAMPLES {
            g.examples.push(example);
        }
    }

    /// Stored values (or records) made invalid, by kind, most records first.
    pub fn stranded(&self) -> Vec<&Stranded> {
        let mut out: Vec<&Stranded> = self.groups.values().collect();
        out.sort_by(|a, b| b.count.cmp(&a.count).then(a.what.cmp(&b.what)));
        out
    }

    /// True when the new revision strands nothing.
    pub fn is_empty(&self) -> bool {
        self.dropped.is_empty() && self.groups.is_empty()
    }

    /// The report as lines a person reads: dropped parts first, then stranded values
    /// with counts and examples.
    pub fn lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self.dropped.clone();
        for g in self.stranded() {
            out.push(format!(
                "{} records: {} (e.g. {})",
                g.count,
                g.what,
                g.examples.join(", ")
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    #[test]
    fn a_removed_finding_category_and_the_findings_that_carry_it_are_reported() {
        let old = Schema::baru_example();
        let text = super::super::BARU_TOML
            .replace("revision = 1 ", "revision = 2 ")
            .replace(
                "[finding_categories.work_style]",
                "[finding_categories.conduct]",
            );
        let new = Schema::from_toml_str(&text, "new.toml").unwrap();
        let mut s = Stranding::new(Some(&old), &new);
        s.add_finding(&new, "f1", "work_style");
        s.add_finding(&new, "f2", "work_style");
        s.add_finding(&new, "f3", "conduct");
        assert_eq!(s.dropped, ["finding category `work_style` is removed"]);
        let groups = s.stranded();
        assert_eq!(groups.len(), 1);
        assert_eq!(
            groups[0].what,
            "findings of category `work_style`: not in the schema"
        );
        assert_eq!(groups[0].examples, ["f1", "f2"]);
    }

    #[test]
    fn a_narrowed_range_and_a_removed_form_are_reported_with_counts() {
        let old = Schema::baru_example();
        let text = super::super::BARU_TOML
            .replace("revision = 1 ", "revision = 2 ")
            .replace("grid_patrol", "grid_check")
            .replace(
                "en = \"Household size\"\nmin = 1\nmax = 30",
                "en = \"Household size\"\nmin = 1\nmax = 20",
            );
        let new = Schema::from_toml_str(&text, "new.toml").unwrap();
        let mut s = Stranding::new(Some(&old), &new);
        let fine = old.parse_json("household", "household_size", &serde_json::json!(25));
        assert!(fine.is_ok(), "valid under the old revision");
        let values = |j: serde_json::Value| j.as_object().unwrap().clone();
        s.add_record(
            &new,
            "r1",
            "household",
            Some("tujiang"),
            &values(serde_json::json!({"household_size": 25})),
        );
        s.add_record(
            &new,
            "r2",
            "household",
            Some("tujiang"),
            &values(serde_json::json!({"household_size": 25})),
        );
        s.add_record(
            &new,
            "r3",
            "household",
            Some("tujiang"),
            &values(serde_json::json!({"household_size": 3})),
        );
        assert!(!s.is_empty());
        assert_eq!(s.dropped, ["form `grid_patrol` is removed"]);
        let groups = s.stranded();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].count, 2);
        assert_eq!(groups[0].examples, ["r1 = 25", "r2 = 25"]);
        assert!(
            groups[0].what.starts_with("household.household_size: "),
            "{}",
            groups[0].what
        );
    }
}
